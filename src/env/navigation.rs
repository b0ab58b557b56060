//! Navigation ("SimplePointBot", LS3_SPEC §2.1): a point robot on a 180×150 canvas must get
//! from the left to the goal on the right around a wall it must never enter.
//!
//! State layout: `[x, y]` in canvas units, y growing downwards (image rows).

use super::raster::{Frame, Painter, Shape, View};
use super::teacher::Teacher;
use super::{Env, EnvKind, Overlay, OverlayShape, Step};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// Canvas width.
pub const WIDTH: f64 = 180.0;
/// Canvas height.
pub const HEIGHT: f64 = 150.0;
/// Nominal start.
pub const START: [f64; 2] = [30.0, 75.0];
/// Goal centre.
pub const GOAL: [f64; 2] = [150.0, 75.0];
/// Goal radius (strict).
pub const GOAL_RADIUS: f64 = 3.0;
/// The wall, an open rectangle: (x_min, x_max, y_min, y_max).
pub const WALL: (f64, f64, f64, f64) = (75.0, 100.0, 55.0, 95.0);
/// Per-component action bound.
pub const MAX_ACTION: f32 = 3.0;
/// Std of the Gaussian transition noise.
pub const NOISE_STD: f64 = 0.125;
/// Robot disc radius in canvas units.
pub const ROBOT_RADIUS: f64 = 10.0;

const VIEW: View = View {
    x: (0.0, WIDTH),
    y: (0.0, HEIGHT),
};

/// True when `p` is strictly inside the wall.
pub fn in_wall(p: [f64; 2]) -> bool {
    p[0] > WALL.0 && p[0] < WALL.1 && p[1] > WALL.2 && p[1] < WALL.3
}

/// True when `p` is within the goal radius.
pub fn at_goal(p: [f64; 2]) -> bool {
    (p[0] - GOAL[0]).hypot(p[1] - GOAL[1]) < GOAL_RADIUS
}

/// The navigation simulator.
pub struct Navigation {
    pos: [f64; 2],
    rng: StdRng,
    noise: Normal<f64>,
}

impl Navigation {
    /// A navigation env whose start and transition noise come from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            pos: START,
            rng: StdRng::seed_from_u64(seed),
            noise: Normal::new(0.0, 1.0).expect("unit normal"),
        }
    }
}

impl Env for Navigation {
    fn kind(&self) -> EnvKind {
        EnvKind::Navigation
    }

    fn reset(&mut self) -> Frame {
        let dx = self.noise.sample(&mut self.rng);
        let dy = self.noise.sample(&mut self.rng);
        self.pos = [START[0] + dx, START[1] + dy];
        self.render()
    }

    fn step(&mut self, action: [f32; 2]) -> Step {
        let a = EnvKind::Navigation.clip_action(action);
        if !in_wall(self.pos) {
            let nx = self.noise.sample(&mut self.rng) * NOISE_STD;
            let ny = self.noise.sample(&mut self.rng) * NOISE_STD;
            self.pos = [
                (self.pos[0] + a[0] as f64 + nx).clamp(0.0, WIDTH),
                (self.pos[1] + a[1] as f64 + ny).clamp(0.0, HEIGHT),
            ];
        }
        Step {
            frame: self.render(),
            reward: if at_goal(self.pos) { 0.0 } else { -1.0 },
            constraint: in_wall(self.pos),
            state: self.pos.to_vec(),
        }
    }

    fn state(&self) -> Vec<f64> {
        self.pos.to_vec()
    }

    fn set_state(&mut self, state: &[f64]) {
        self.pos = [state[0], state[1]];
    }

    fn render_state(&self, state: &[f64]) -> Frame {
        let mut p = Painter::new(VIEW, [0, 0, 0]);
        p.fill(
            &Shape::Rect {
                min: [WALL.0, WALL.2],
                max: [WALL.1, WALL.3],
            },
            [0, 0, 255],
        );
        p.fill(
            &Shape::Circle {
                center: [state[0], state[1]],
                radius: ROBOT_RADIUS,
            },
            [255, 0, 0],
        );
        p.finish()
    }

    fn marker(&self, state: &[f64]) -> [f32; 2] {
        VIEW.to_image([state[0], state[1]])
    }

    fn overlay(&self) -> Overlay {
        let r = VIEW.scale();
        Overlay {
            hazards: vec![OverlayShape::Rect {
                min: VIEW.to_image([WALL.0, WALL.2]),
                max: VIEW.to_image([WALL.1, WALL.3]),
            }],
            goals: vec![OverlayShape::Circle {
                center: VIEW.to_image(GOAL),
                radius: GOAL_RADIUS as f32 * 0.5 * (r[0] + r[1]),
            }],
        }
    }

    fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }
}

fn steer(target: [f64; 2], s: &[f64], speed: f64) -> [f32; 2] {
    let (dx, dy) = (target[0] - s[0], target[1] - s[1]);
    let d = dx.hypot(dy);
    if speed.is_infinite() || d <= speed {
        [dx as f32, dy as f32]
    } else {
        [(dx / d * speed) as f32, (dy / d * speed) as f32]
    }
}

/// Task teacher: waypoints (30, 15) until t = 20, (150, 15) until t = 60, then the goal;
/// action = clip(waypoint − s); the first action is uniformly random.
pub struct TaskTeacher;

impl Teacher for TaskTeacher {
    fn act(&mut self, t: usize, s: &[f64], rng: &mut StdRng) -> [f32; 2] {
        if t == 0 {
            return [
                rng.random_range(-MAX_ACTION..=MAX_ACTION),
                rng.random_range(-MAX_ACTION..=MAX_ACTION),
            ];
        }
        let waypoint = match t {
            0..20 => [30.0, 15.0],
            20..60 => [150.0, 15.0],
            _ => GOAL,
        };
        steer(waypoint, s, f64::INFINITY)
    }
}

/// Constraint teacher: random start outside the wall, 15 steps in a random constant direction,
/// then toward the wall centre at speed 1.5.
#[derive(Default)]
pub struct ConstraintTeacher {
    direction: [f32; 2],
}

impl Teacher for ConstraintTeacher {
    fn begin(&mut self, env: &mut dyn Env, rng: &mut StdRng) {
        let start = loop {
            let p = [rng.random_range(0.0..WIDTH), rng.random_range(0.0..HEIGHT)];
            if !in_wall(p) {
                break p;
            }
        };
        env.set_state(&start);
        let angle: f32 = rng.random_range(0.0..std::f32::consts::TAU);
        self.direction = [MAX_ACTION * angle.cos(), MAX_ACTION * angle.sin()];
    }

    fn act(&mut self, t: usize, s: &[f64], _rng: &mut StdRng) -> [f32; 2] {
        if t < 15 {
            self.direction
        } else {
            steer([88.0, 75.0], s, 1.5)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_is_clipped_to_the_canvas() {
        let mut env = Navigation::new(1);
        env.set_state(&[1.0, 149.0]);
        for _ in 0..5 {
            env.step([-3.0, 3.0]);
        }
        assert_eq!(env.state(), vec![0.0, HEIGHT]);
        // actions beyond the box are clipped to ±3
        env.set_state(&[50.0, 20.0]);
        let s = env.step([100.0, 0.0]).state;
        assert!((s[0] - 53.0).abs() < 1.0, "moved to {}", s[0]);
    }

    #[test]
    fn robot_freezes_inside_the_wall() {
        let mut env = Navigation::new(2);
        env.set_state(&[80.0, 60.0]);
        for _ in 0..10 {
            let step = env.step([3.0, 3.0]);
            assert!(step.constraint);
            assert_eq!(step.state, vec![80.0, 60.0]);
        }
        // the wall is an open interval: its boundary is not inside
        assert!(!in_wall([75.0, 60.0]) && !in_wall([80.0, 95.0]));
    }

    #[test]
    fn goal_is_a_strict_radius_of_three() {
        assert!(at_goal([150.0, 77.9]));
        assert!(!at_goal([150.0, 78.0]));
        let mut env = Navigation::new(3);
        env.set_state(&[149.0, 75.0]);
        assert_eq!(env.step([0.0, 0.0]).reward, 0.0);
        env.set_state(&[140.0, 75.0]);
        assert_eq!(env.step([0.0, 0.0]).reward, -1.0);
    }

    #[test]
    fn zero_action_noise_has_std_one_eighth() {
        let mut env = Navigation::new(4);
        let n = 20_000;
        let mut sum = [0.0; 2];
        let mut sq = [0.0; 2];
        for _ in 0..n {
            env.set_state(&[40.0, 40.0]);
            let s = env.step([0.0, 0.0]).state;
            for k in 0..2 {
                let d = s[k] - 40.0;
                sum[k] += d;
                sq[k] += d * d;
            }
        }
        for k in 0..2 {
            let mean = sum[k] / n as f64;
            let std = (sq[k] / n as f64 - mean * mean).sqrt();
            assert!((std - NOISE_STD).abs() < 0.005, "axis {k}: std {std}");
            assert!(mean.abs() < 0.005, "axis {k}: mean {mean}");
        }
    }

    #[test]
    fn red_centroid_sits_on_the_true_position() {
        let env = Navigation::new(5);
        for p in [
            [30.0, 75.0],
            [150.0, 75.0],
            [12.0, 140.0],
            [60.0, 30.0],
            [170.0, 10.0],
        ] {
            let f = env.render_state(&p);
            let (mut wx, mut wy, mut w) = (0.0, 0.0, 0.0);
            for y in 0..64 {
                for x in 0..64 {
                    let [r, g, b] = f.pixel(x, y);
                    let red = (r as f64 - g.max(b) as f64).max(0.0);
                    wx += red * (x as f64 + 0.5);
                    wy += red * (y as f64 + 0.5);
                    w += red;
                }
            }
            // discs touching the border are cut off, so compare only the fully visible ones
            let m = env.marker(&p);
            let inside = p[0] >= ROBOT_RADIUS
                && p[0] <= WIDTH - ROBOT_RADIUS
                && p[1] >= ROBOT_RADIUS
                && p[1] <= HEIGHT - ROBOT_RADIUS;
            if inside {
                let err = ((wx / w - m[0] as f64).powi(2) + (wy / w - m[1] as f64).powi(2)).sqrt();
                assert!(err < 2.0, "state {p:?}: centroid off by {err} px");
            }
            assert!(w > 0.0);
        }
    }

    #[test]
    fn same_seed_same_episode() {
        let run = |seed| {
            let mut env = Navigation::new(seed);
            env.reset();
            (0..20)
                .map(|_| env.step([1.0, -0.5]).state)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
