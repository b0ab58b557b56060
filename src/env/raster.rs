//! 64×64 drawing: shapes given in world coordinates are painted on a supersampled grid and
//! averaged down, which is what drawing on a large canvas and area-resizing would give.

/// Side of an observation image in pixels.
pub const IMAGE_SIZE: usize = 64;
/// Bytes in one RGB frame (3×64×64).
pub const FRAME_LEN: usize = 3 * IMAGE_SIZE * IMAGE_SIZE;
/// Subsamples per pixel along each axis.
const SS: usize = 4;
const FINE: usize = IMAGE_SIZE * SS;

/// One RGB frame, channel-major (`3×64×64`, uint8): the layout of the networks and `.npy` files.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(pub Vec<u8>);

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({} bytes)", self.0.len())
    }
}

impl Frame {
    /// An all-black frame.
    pub fn black() -> Self {
        Frame(vec![0; FRAME_LEN])
    }

    /// Wraps a channel-major byte buffer; `None` unless it has exactly [`FRAME_LEN`] bytes.
    pub fn from_chw(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() == FRAME_LEN).then_some(Frame(bytes))
    }

    /// The RGB value at column `x`, row `y`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = y * IMAGE_SIZE + x;
        let plane = IMAGE_SIZE * IMAGE_SIZE;
        [self.0[i], self.0[plane + i], self.0[2 * plane + i]]
    }

    /// Row-major RGBA bytes (for textures and image files).
    pub fn to_rgba(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(IMAGE_SIZE * IMAGE_SIZE * 4);
        for y in 0..IMAGE_SIZE {
            for x in 0..IMAGE_SIZE {
                let [r, g, b] = self.pixel(x, y);
                out.extend_from_slice(&[r, g, b, 255]);
            }
        }
        out
    }
}

/// Maps a world rectangle onto the image: `x.0` → left edge, `x.1` → right edge,
/// `y.0` → top edge, `y.1` → bottom edge (so `y.0 > y.1` puts world +y up).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    pub x: (f64, f64),
    pub y: (f64, f64),
}

impl View {
    /// World point → image pixel coordinates (continuous, 0..64).
    pub fn to_image(&self, p: [f64; 2]) -> [f32; 2] {
        let s = IMAGE_SIZE as f64;
        [
            ((p[0] - self.x.0) / (self.x.1 - self.x.0) * s) as f32,
            ((p[1] - self.y.0) / (self.y.1 - self.y.0) * s) as f32,
        ]
    }

    /// Image pixel coordinates → world point.
    pub fn to_world(&self, q: [f64; 2]) -> [f64; 2] {
        let s = IMAGE_SIZE as f64;
        [
            self.x.0 + q[0] / s * (self.x.1 - self.x.0),
            self.y.0 + q[1] / s * (self.y.1 - self.y.0),
        ]
    }

    /// Image pixels per world unit, horizontally and vertically (absolute values).
    pub fn scale(&self) -> [f32; 2] {
        let s = IMAGE_SIZE as f64;
        [
            (s / (self.x.1 - self.x.0)).abs() as f32,
            (s / (self.y.1 - self.y.0)).abs() as f32,
        ]
    }
}

/// A filled shape in world coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// Axis-aligned rectangle between two corners.
    Rect { min: [f64; 2], max: [f64; 2] },
    /// Disc.
    Circle { center: [f64; 2], radius: f64 },
    /// Segment `a`–`b` thickened by `radius` (rounded ends).
    Capsule {
        a: [f64; 2],
        b: [f64; 2],
        radius: f64,
    },
    /// Rectangle of half-extents `half` rotated by `angle` (radians) about `center`.
    OrientedBox {
        center: [f64; 2],
        half: [f64; 2],
        angle: f64,
    },
}

impl Shape {
    fn contains(&self, p: [f64; 2]) -> bool {
        match *self {
            Shape::Rect { min, max } => {
                p[0] >= min[0] && p[0] <= max[0] && p[1] >= min[1] && p[1] <= max[1]
            }
            Shape::Circle { center, radius } => {
                let (dx, dy) = (p[0] - center[0], p[1] - center[1]);
                dx * dx + dy * dy <= radius * radius
            }
            Shape::Capsule { a, b, radius } => {
                let (abx, aby) = (b[0] - a[0], b[1] - a[1]);
                let len2 = abx * abx + aby * aby;
                let t = if len2 > 0.0 {
                    (((p[0] - a[0]) * abx + (p[1] - a[1]) * aby) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (dx, dy) = (p[0] - a[0] - t * abx, p[1] - a[1] - t * aby);
                dx * dx + dy * dy <= radius * radius
            }
            Shape::OrientedBox {
                center,
                half,
                angle,
            } => {
                let (s, c) = angle.sin_cos();
                let (dx, dy) = (p[0] - center[0], p[1] - center[1]);
                let u = c * dx + s * dy;
                let v = -s * dx + c * dy;
                u.abs() <= half[0] && v.abs() <= half[1]
            }
        }
    }

    /// World-space bounding box (min, max).
    fn bounds(&self) -> ([f64; 2], [f64; 2]) {
        match *self {
            Shape::Rect { min, max } => (min, max),
            Shape::Circle { center, radius } => (
                [center[0] - radius, center[1] - radius],
                [center[0] + radius, center[1] + radius],
            ),
            Shape::Capsule { a, b, radius } => (
                [a[0].min(b[0]) - radius, a[1].min(b[1]) - radius],
                [a[0].max(b[0]) + radius, a[1].max(b[1]) + radius],
            ),
            Shape::OrientedBox { center, half, .. } => {
                let r = half[0].hypot(half[1]);
                (
                    [center[0] - r, center[1] - r],
                    [center[0] + r, center[1] + r],
                )
            }
        }
    }
}

/// Paints shapes in order (later ones on top) onto a supersampled canvas.
pub struct Painter {
    view: View,
    fine: Vec<[u8; 3]>,
}

impl Painter {
    /// A canvas showing `view`, filled with `background`.
    pub fn new(view: View, background: [u8; 3]) -> Self {
        Self {
            view,
            fine: vec![background; FINE * FINE],
        }
    }

    /// Paints `shape` in `color` over what is there.
    pub fn fill(&mut self, shape: &Shape, color: [u8; 3]) {
        let (lo, hi) = shape.bounds();
        let a = self.view.to_image(lo);
        let b = self.view.to_image(hi);
        let range = |u: f32, v: f32| {
            let (u, v) = (u.min(v) * SS as f32, u.max(v) * SS as f32);
            let start = (u.floor().max(0.0) as usize).min(FINE);
            let end = ((v.ceil() + 1.0).max(0.0) as usize).min(FINE);
            start..end
        };
        let step = 1.0 / SS as f64;
        for fy in range(a[1], b[1]) {
            for fx in range(a[0], b[0]) {
                let q = [(fx as f64 + 0.5) * step, (fy as f64 + 0.5) * step];
                if shape.contains(self.view.to_world(q)) {
                    self.fine[fy * FINE + fx] = color;
                }
            }
        }
    }

    /// Averages the subsamples into the final 64×64 frame.
    pub fn finish(self) -> Frame {
        let plane = IMAGE_SIZE * IMAGE_SIZE;
        let mut out = vec![0u8; FRAME_LEN];
        let n = (SS * SS) as u32;
        for y in 0..IMAGE_SIZE {
            for x in 0..IMAGE_SIZE {
                let mut acc = [0u32; 3];
                for sy in 0..SS {
                    let row = (y * SS + sy) * FINE + x * SS;
                    for c in &self.fine[row..row + SS] {
                        acc[0] += c[0] as u32;
                        acc[1] += c[1] as u32;
                        acc[2] += c[2] as u32;
                    }
                }
                let i = y * IMAGE_SIZE + x;
                for ch in 0..3 {
                    out[ch * plane + i] = ((acc[ch] + n / 2) / n) as u8;
                }
            }
        }
        Frame(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_rect_covers_whole_image_and_view_round_trips() {
        let view = View {
            x: (0.0, 2.0),
            y: (1.0, -1.0),
        };
        let mut p = Painter::new(view, [0, 0, 0]);
        p.fill(
            &Shape::Rect {
                min: [-1.0, -2.0],
                max: [3.0, 2.0],
            },
            [10, 20, 30],
        );
        let f = p.finish();
        assert_eq!(f.pixel(0, 0), [10, 20, 30]);
        assert_eq!(f.pixel(63, 63), [10, 20, 30]);
        let w = view.to_world([16.0, 48.0]);
        let back = view.to_image(w);
        assert!((back[0] - 16.0).abs() < 1e-4 && (back[1] - 48.0).abs() < 1e-4);
        // world +y is up in this view
        assert!(view.to_image([0.0, 0.9])[1] < view.to_image([0.0, -0.9])[1]);
    }

    #[test]
    fn disc_area_matches_its_pixel_coverage() {
        let view = View {
            x: (0.0, 64.0),
            y: (0.0, 64.0),
        };
        let mut p = Painter::new(view, [0, 0, 0]);
        p.fill(
            &Shape::Circle {
                center: [32.0, 32.0],
                radius: 10.0,
            },
            [255, 0, 0],
        );
        let f = p.finish();
        let covered: f64 = (0..64)
            .flat_map(|y| (0..64).map(move |x| (x, y)))
            .map(|(x, y)| f.pixel(x, y)[0] as f64 / 255.0)
            .sum();
        let area = std::f64::consts::PI * 100.0;
        assert!(
            (covered - area).abs() / area < 0.02,
            "covered {covered}, area {area}"
        );
    }
}
