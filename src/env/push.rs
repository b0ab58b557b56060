//! Sequential pushing (LS3_SPEC §2.3).
//! PLACEHOLDER — being implemented.

use super::demos::Teacher;
use super::raster::Frame;
use super::{Env, EnvKind, Overlay, Step};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Per-component action bound (motor control range).
pub const MAX_ACTION: f32 = 0.05;
/// Noise of the task teacher as a fraction of the action range.
pub const TASK_NOISE: f32 = 0.0;

/// The reacher simulator.
pub struct Push {
    rng: StdRng,
}

impl Push {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Env for Push {
    fn kind(&self) -> EnvKind {
        EnvKind::Push
    }
    fn reset(&mut self) -> Frame {
        Frame::black()
    }
    fn step(&mut self, _action: [f32; 2]) -> Step {
        Step {
            frame: Frame::black(),
            reward: -1.0,
            constraint: false,
            state: vec![],
        }
    }
    fn state(&self) -> Vec<f64> {
        vec![]
    }
    fn set_state(&mut self, _state: &[f64]) {}
    fn render_state(&self, _state: &[f64]) -> Frame {
        Frame::black()
    }
    fn marker(&self, _state: &[f64]) -> [f32; 2] {
        [0.0, 0.0]
    }
    fn overlay(&self) -> Overlay {
        Overlay::default()
    }
    fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }
}

#[derive(Default)]
pub struct TaskTeacher;
impl Teacher for TaskTeacher {
    fn act(&mut self, _t: usize, _s: &[f64], _rng: &mut StdRng) -> [f32; 2] {
        [0.0, 0.0]
    }
}
#[derive(Default)]
pub struct OutburstTeacher;
impl Teacher for OutburstTeacher {
    fn act(&mut self, _t: usize, _s: &[f64], _rng: &mut StdRng) -> [f32; 2] {
        [0.0, 0.0]
    }
}
