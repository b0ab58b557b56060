//! Observations as network input: uint8 `C×64×64` images become `f32` in 0..1, and the pool of
//! demo images the VAE trains on (kept as bytes: push's demos hold ~120 000 images).

use super::episode::Episode;
use crate::env::{FRAME_LEN, IMAGE_SIZE};
use candle_core::{Device, Result, Tensor};
use rand::Rng;

/// Bytes 0..255 → floats 0..1.
pub fn to_unit(bytes: &[u8]) -> Vec<f32> {
    bytes.iter().map(|&b| b as f32 / 255.0).collect()
}

/// Packed `n × channels × 64 × 64` floats as a `[n, channels, 64, 64]` tensor.
pub fn image_tensor(pixels: Vec<f32>, channels: usize, device: &Device) -> Result<Tensor> {
    let n = pixels.len() / (channels * IMAGE_SIZE * IMAGE_SIZE);
    Tensor::from_vec(pixels, (n, channels, IMAGE_SIZE, IMAGE_SIZE), device)
}

/// The distinct observations of an episode in time order — every `obs`, plus each `next_obs`
/// that is not the following `obs` (normally just the last one) — and, per transition, the
/// positions of its `obs` and `next_obs` among them.
pub fn distinct_observations(ep: &Episode) -> (Vec<&[u8]>, Vec<[usize; 2]>) {
    let mut images: Vec<&[u8]> = Vec::with_capacity(ep.len() + 1);
    let mut pairs = Vec::with_capacity(ep.len());
    for t in 0..ep.len() {
        let chained = t > 0 && ep.obs_at(t) == ep.next_obs_at(t - 1);
        if !chained {
            images.push(ep.obs_at(t));
        }
        let obs = images.len() - 1;
        images.push(ep.next_obs_at(t));
        pairs.push([obs, images.len() - 1]);
    }
    (images, pairs)
}

/// Observation images (all of one channel count) to draw VAE batches from.
#[derive(Clone, Debug, Default)]
pub struct ImagePool {
    channels: usize,
    bytes: Vec<u8>,
    /// Per-pixel median of the images, computed on first use.
    background: std::sync::OnceLock<Vec<f32>>,
}

/// Images the background median is taken over (evenly spaced through the pool).
const BACKGROUND_SAMPLE: usize = 801;
/// A pixel whose colour differs from the background by more than this (0..1, any channel of its
/// frame) is foreground.
pub const FOREGROUND_TOLERANCE: f32 = 0.1;

impl ImagePool {
    /// An empty pool of `channels`-channel images (3, or 9 for three stacked frames).
    pub fn new(channels: usize) -> Self {
        Self {
            channels,
            bytes: Vec::new(),
            background: Default::default(),
        }
    }

    /// A pool of every distinct observation of `episodes`.
    pub fn from_episodes<'a>(
        channels: usize,
        episodes: impl IntoIterator<Item = &'a Episode>,
    ) -> Self {
        let mut pool = Self::new(channels);
        for ep in episodes {
            pool.add_episode(ep);
        }
        pool
    }

    /// Adds the distinct observations of `ep` (whose frame stack must match the channels).
    pub fn add_episode(&mut self, ep: &Episode) {
        assert_eq!(
            ep.obs_len(),
            self.image_len(),
            "episode observations have {} channels, the pool {}",
            ep.obs_len() / (IMAGE_SIZE * IMAGE_SIZE),
            self.channels
        );
        for obs in distinct_observations(ep).0 {
            self.bytes.extend_from_slice(obs);
        }
        self.background = Default::default();
    }

    /// The per-pixel median image (0..1, the pool's layout) over up to 801 images spread evenly
    /// through the pool: the static scene without what moves.
    pub fn background(&self) -> &[f32] {
        self.background.get_or_init(|| {
            let n = self.image_len();
            let picks: Vec<usize> = if self.len() <= BACKGROUND_SAMPLE {
                (0..self.len()).collect()
            } else {
                (0..BACKGROUND_SAMPLE)
                    .map(|k| k * (self.len() - 1) / (BACKGROUND_SAMPLE - 1))
                    .collect()
            };
            let mut column = vec![0u8; picks.len()];
            (0..n)
                .map(|p| {
                    for (c, &i) in column.iter_mut().zip(&picks) {
                        *c = self.bytes[i * n + p];
                    }
                    let mid = column.len() / 2;
                    *column.select_nth_unstable(mid).1 as f32 / 255.0
                })
                .collect()
        })
    }

    /// Per-element reconstruction weights for a batch `images` (packed floats in 0..1): the
    /// channels of a pixel whose frame differs from [`background`](Self::background) by more than
    /// [`FOREGROUND_TOLERANCE`] get `1 + extra`, the rest 1, all scaled to a mean of 1.
    pub fn foreground_weights(&self, images: &[f32], extra: f32) -> Vec<f32> {
        let bg = self.background();
        let plane = IMAGE_SIZE * IMAGE_SIZE;
        let mut w = vec![1.0f32; images.len()];
        for (img, w) in images
            .chunks_exact(bg.len())
            .zip(w.chunks_exact_mut(bg.len()))
        {
            for f in 0..self.channels / 3 {
                let at = |c: usize, p: usize| (f * 3 + c) * plane + p;
                for p in 0..plane {
                    let fg =
                        (0..3).any(|c| (img[at(c, p)] - bg[at(c, p)]).abs() > FOREGROUND_TOLERANCE);
                    if fg {
                        for c in 0..3 {
                            w[at(c, p)] = 1.0 + extra;
                        }
                    }
                }
            }
        }
        let mean = w.iter().map(|&v| v as f64).sum::<f64>() / w.len().max(1) as f64;
        let inv = (1.0 / mean) as f32;
        w.iter_mut().for_each(|v| *v *= inv);
        w
    }

    /// Channels per image.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels / 3 * FRAME_LEN
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.bytes.len() / self.image_len()
    }

    /// True when the pool holds no image.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Image `i` as bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.bytes[i * n..(i + 1) * n]
    }

    /// `batch` images drawn uniformly with replacement, as packed floats in 0..1.
    pub fn sample(&self, batch: usize, rng: &mut impl Rng) -> Vec<f32> {
        assert!(!self.is_empty(), "sampling from an empty image pool");
        let mut out = Vec::with_capacity(batch * self.image_len());
        for _ in 0..batch {
            let i = rng.random_range(0..self.len());
            out.extend(self.image(i).iter().map(|&b| b as f32 / 255.0));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::episode::Transition;

    fn episode(frames: &[u8], next: &[u8]) -> Episode {
        let t = Transition::unlabelled([0.0; 2], -1.0, false, true, None);
        let img = |v: u8| vec![v; FRAME_LEN];
        Episode {
            frame_stack: 1,
            transitions: vec![t; frames.len()],
            obs: frames.iter().flat_map(|&v| img(v)).collect(),
            next_obs: next.iter().flat_map(|&v| img(v)).collect(),
            start_state: None,
        }
    }

    #[test]
    fn foreground_pixels_weigh_more_and_the_mean_weight_is_one() {
        // a grey scene; one image has a bright 4×4 square
        let mut ep = episode(&[100, 100, 100, 100], &[100, 100, 100, 100]);
        for y in 10..14 {
            for x in 20..24 {
                for c in 0..3 {
                    ep.obs[FRAME_LEN + c * 4096 + y * 64 + x] = 250;
                }
            }
        }
        let pool = ImagePool::from_episodes(3, [&ep]);
        let bright = (0..pool.len())
            .find(|&i| pool.image(i).contains(&250))
            .expect("the square is in the pool");
        assert!(pool.background().iter().all(|&v| v == 100.0 / 255.0));
        let img: Vec<f32> = pool
            .image(bright)
            .iter()
            .map(|&b| b as f32 / 255.0)
            .collect();
        let w = pool.foreground_weights(&img, 9.0);
        let mean = w.iter().sum::<f32>() / w.len() as f32;
        assert!((mean - 1.0).abs() < 1e-3, "mean weight {mean}");
        let (fg, bg) = (w[2 * 4096 + 11 * 64 + 21], w[0]);
        assert!(
            (fg / bg - 10.0).abs() < 1e-3,
            "foreground {fg}, background {bg}"
        );
        assert_eq!(w.iter().filter(|&&v| v == fg).count(), 3 * 16);
    }

    #[test]
    fn a_chained_episode_contributes_each_observation_once() {
        let ep = episode(&[1, 2, 3], &[2, 3, 4]);
        let (images, pairs) = distinct_observations(&ep);
        let firsts: Vec<u8> = images.iter().map(|o| o[0]).collect();
        assert_eq!(firsts, [1, 2, 3, 4]);
        assert_eq!(pairs, [[0, 1], [1, 2], [2, 3]]);
        // A break in the chain keeps both images.
        let ep = episode(&[1, 2, 3], &[2, 9, 4]);
        let (images, pairs) = distinct_observations(&ep);
        let firsts: Vec<u8> = images.iter().map(|o| o[0]).collect();
        assert_eq!(firsts, [1, 2, 9, 3, 4]);
        assert_eq!(pairs, [[0, 1], [1, 2], [3, 4]]);
        let pool = ImagePool::from_episodes(3, [&ep]);
        assert_eq!(pool.len(), 5);
        assert!(
            pool.background().iter().all(|&v| v == 3.0 / 255.0),
            "median of 1,2,9,3,4"
        );
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let px = pool.sample(4, &mut rng);
        assert_eq!(px.len(), 4 * FRAME_LEN);
        assert!(px.iter().all(|&v| (0.0..=9.0 / 255.0 + 1e-6).contains(&v)));
    }
}
