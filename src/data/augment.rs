//! Image augmentation for VAE training: random resized crops (LS3_SPEC §3), drawn the way
//! torchvision's `RandomResizedCrop` draws them (area fraction uniform in a range, aspect ratio
//! log-uniform in [3/4, 4/3], centre-crop fallback when ten tries do not fit) and resized back
//! with bilinear interpolation (half-pixel centres, as `align_corners = false`).
//!
//! Images are `f32` channel-major (`C×H×W`). Each frame of an image gets its own crop: the
//! channels of one RGB frame share it, and the three frames of a reacher stack are cropped
//! independently, as the original's loader does (LS3_SPEC §3).

use rand::Rng;

/// The aspect-ratio range (width / height) of a crop, torchvision's default.
pub const ASPECT: [f32; 2] = [3.0 / 4.0, 4.0 / 3.0];

/// Tries before falling back to a centre crop.
const TRIES: usize = 10;

/// A crop window in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

impl Crop {
    /// The whole `height × width` image.
    pub fn full(height: usize, width: usize) -> Self {
        Self {
            top: 0,
            left: 0,
            height,
            width,
        }
    }
}

/// Draws a crop of an `height × width` image whose area is a fraction in `scale` of the image's
/// and whose aspect ratio lies in [`ASPECT`].
pub fn sample_crop(height: usize, width: usize, scale: [f32; 2], rng: &mut impl Rng) -> Crop {
    let area = (height * width) as f32;
    let log_ratio = [ASPECT[0].ln(), ASPECT[1].ln()];
    for _ in 0..TRIES {
        let target = area * uniform(rng, scale[0], scale[1]);
        let ratio = uniform(rng, log_ratio[0], log_ratio[1]).exp();
        let w = (target * ratio).sqrt().round() as usize;
        let h = (target / ratio).sqrt().round() as usize;
        if w > 0 && h > 0 && w <= width && h <= height {
            return Crop {
                top: rng.random_range(0..=height - h),
                left: rng.random_range(0..=width - w),
                height: h,
                width: w,
            };
        }
    }
    // No draw fitted: the largest centred window whose aspect ratio is within range.
    let in_ratio = width as f32 / height as f32;
    let (w, h) = if in_ratio < ASPECT[0] {
        (
            width,
            ((width as f32 / ASPECT[0]).round() as usize).min(height),
        )
    } else if in_ratio > ASPECT[1] {
        (
            ((height as f32 * ASPECT[1]).round() as usize).min(width),
            height,
        )
    } else {
        (width, height)
    };
    Crop {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

fn uniform(rng: &mut impl Rng, lo: f32, hi: f32) -> f32 {
    if hi > lo {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

/// For each output pixel along one axis: the two source indices and the weight of the second,
/// sampling `len` source pixels starting at `start` onto `out` pixels with half-pixel centres.
fn axis_taps(start: usize, len: usize, out: usize) -> Vec<(usize, usize, f32)> {
    let scale = len as f32 / out as f32;
    (0..out)
        .map(|o| {
            let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(len - 1);
            let i1 = (i0 + 1).min(len - 1);
            (start + i0, start + i1, src - i0 as f32)
        })
        .collect()
}

/// Cuts `crop` out of `src` (shape `[channels, height, width]`) and resizes it bilinearly into
/// `dst` (shape `[channels, out_h, out_w]`).
pub fn resized_crop(
    src: &[f32],
    [channels, height, width]: [usize; 3],
    crop: Crop,
    [out_h, out_w]: [usize; 2],
    dst: &mut [f32],
) {
    assert_eq!(src.len(), channels * height * width, "source size");
    assert_eq!(dst.len(), channels * out_h * out_w, "destination size");
    assert!(
        crop.height > 0
            && crop.width > 0
            && crop.top + crop.height <= height
            && crop.left + crop.width <= width,
        "crop {crop:?} outside a {height}×{width} image"
    );
    let rows = axis_taps(crop.top, crop.height, out_h);
    let cols = axis_taps(crop.left, crop.width, out_w);
    for c in 0..channels {
        let plane = &src[c * height * width..(c + 1) * height * width];
        let out = &mut dst[c * out_h * out_w..(c + 1) * out_h * out_w];
        for (y, &(r0, r1, wy)) in rows.iter().enumerate() {
            let (a, b) = (&plane[r0 * width..], &plane[r1 * width..]);
            for (x, &(c0, c1, wx)) in cols.iter().enumerate() {
                let top = a[c0] + (a[c1] - a[c0]) * wx;
                let bottom = b[c0] + (b[c1] - b[c0]) * wx;
                out[y * out_w + x] = top + (bottom - top) * wy;
            }
        }
    }
}

/// Applies an independent random resized crop (back to the same size) to each frame of the
/// square images packed in `images`: every `frame_channels × size × size` block (one RGB frame;
/// a stacked image holds several) gets its own crop. Returns the augmented copies.
pub fn random_resized_crops(
    images: &[f32],
    frame_channels: usize,
    size: usize,
    scale: [f32; 2],
    rng: &mut impl Rng,
) -> Vec<f32> {
    let len = frame_channels * size * size;
    assert_eq!(images.len() % len, 0, "images are not whole frames");
    let mut out = vec![0.0; images.len()];
    for (src, dst) in images.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
        let crop = sample_crop(size, size, scale, rng);
        resized_crop(src, [frame_channels, size, size], crop, [size, size], dst);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const S: usize = 64;

    fn image(channels: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..channels * S * S)
            .map(|_| rng.random_range(0.0..1.0))
            .collect()
    }

    #[test]
    fn identity_crop_reproduces_the_image() {
        let img = image(9, 1);
        let mut out = vec![0.0; img.len()];
        resized_crop(&img, [9, S, S], Crop::full(S, S), [S, S], &mut out);
        assert_eq!(out, img);
        // A crop range of exactly [1, 1] can only pick the whole image.
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(random_resized_crops(&img, 3, S, [1.0, 1.0], &mut rng), img);
    }

    #[test]
    fn crops_keep_the_value_range_and_fit_the_scale() {
        let img = image(3, 2);
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..200 {
            let c = sample_crop(S, S, [0.8, 1.0], &mut rng);
            let frac = (c.height * c.width) as f32 / (S * S) as f32;
            assert!((0.75..=1.0).contains(&frac), "{c:?} keeps {frac}");
            let ratio = c.width as f32 / c.height as f32;
            assert!((0.7..=1.4).contains(&ratio), "{c:?} ratio {ratio}");
            assert!(c.top + c.height <= S && c.left + c.width <= S);
        }
        let out = random_resized_crops(&img, 3, S, [0.8, 1.0], &mut rng);
        let (lo, hi) = img
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(out.iter().all(|&v| v >= lo && v <= hi));
    }

    #[test]
    fn same_seed_same_crops_and_each_stacked_frame_gets_its_own() {
        // Three identical frames stacked: the channels of one frame share a crop, and the three
        // frames are cropped differently.
        let frame = image(3, 5);
        let stacked: Vec<f32> = frame.iter().chain(&frame).chain(&frame).copied().collect();
        let batch: Vec<f32> = stacked.iter().chain(&stacked).copied().collect();
        let a = random_resized_crops(&batch, 3, S, [0.8, 1.0], &mut StdRng::seed_from_u64(9));
        let b = random_resized_crops(&batch, 3, S, [0.8, 1.0], &mut StdRng::seed_from_u64(9));
        assert_eq!(a, b);
        let n = 3 * S * S;
        assert_ne!(a[..n], a[n..2 * n], "two frames of a stack shared a crop");
        assert_ne!(a[n..2 * n], a[2 * n..3 * n]);
        // each frame is the frame under one crop: cropping it alone with that draw agrees
        let mut rng = StdRng::seed_from_u64(9);
        let first = random_resized_crops(&frame, 3, S, [0.8, 1.0], &mut rng);
        assert_eq!(first, a[..n]);
        let c = random_resized_crops(&batch, 3, S, [0.8, 1.0], &mut StdRng::seed_from_u64(10));
        assert_ne!(a, c);
    }

    #[test]
    fn impossible_ranges_fall_back_to_a_centred_crop() {
        // A 64×16 strip cannot hold a crop of ≥ 90 % of its area with ratio ≥ 3/4.
        let mut rng = StdRng::seed_from_u64(0);
        let c = sample_crop(64, 16, [0.9, 1.0], &mut rng);
        assert_eq!((c.width, c.height), (16, 21));
        assert_eq!((c.left, c.top), (0, 21));
    }

    #[test]
    fn a_shifted_crop_samples_the_shifted_pixels() {
        // Cropping rows 1.. of a 4-row ramp and resizing 3 → 3 rows moves every row up by one.
        let src: Vec<f32> = (0..4 * 4).map(|i| (i / 4) as f32).collect();
        let crop = Crop {
            top: 1,
            left: 0,
            height: 3,
            width: 4,
        };
        let mut out = vec![0.0; 3 * 4];
        resized_crop(&src, [1, 4, 4], crop, [3, 4], &mut out);
        assert_eq!(out[..4], [1.0; 4]);
        assert_eq!(out[8..], [3.0; 4]);
    }
}
