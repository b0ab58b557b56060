//! A perceptually ordered dark-blue → green → yellow colour map (viridis-like), the same control
//! points as `shaders/heatmap.wgsl`, for maps written to PNG.

/// Control colours at t = 0, 0.25, 0.5, 0.75, 1.
pub const STOPS: [[f32; 3]; 5] = [
    [0.267, 0.005, 0.329],
    [0.230, 0.322, 0.546],
    [0.128, 0.567, 0.551],
    [0.369, 0.789, 0.383],
    [0.993, 0.906, 0.144],
];

/// The colour of `t` in [0, 1] (clamped; NaN is drawn grey).
pub fn color(t: f32) -> [u8; 3] {
    if t.is_nan() {
        return [128, 128, 128];
    }
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let k = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - k as f32;
    let (a, b) = (STOPS[k], STOPS[k + 1]);
    std::array::from_fn(|c| ((a[c] + (b[c] - a[c]) * f) * 255.0).round() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_brightness_are_ordered() {
        assert_eq!(color(0.0), [68, 1, 84]);
        assert_eq!(color(1.0), [253, 231, 37]);
        assert_eq!(color(-3.0), color(0.0));
        let luma = |c: [u8; 3]| 0.3 * c[0] as f32 + 0.59 * c[1] as f32 + 0.11 * c[2] as f32;
        let l: Vec<f32> = (0..=10).map(|i| luma(color(i as f32 / 10.0))).collect();
        assert!(l.windows(2).all(|w| w[1] > w[0]), "{l:?}");
        assert_eq!(color(f32::NAN), [128, 128, 128]);
    }
}
