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
}

impl ImagePool {
    /// An empty pool of `channels`-channel images (3, or 9 for three stacked frames).
    pub fn new(channels: usize) -> Self {
        Self {
            channels,
            bytes: Vec::new(),
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
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let px = pool.sample(4, &mut rng);
        assert_eq!(px.len(), 4 * FRAME_LEN);
        assert!(px.iter().all(|&v| (0.0..=9.0 / 255.0 + 1e-6).contains(&v)));
    }
}
