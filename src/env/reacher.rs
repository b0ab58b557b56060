//! Reacher (LS3_SPEC §2.2): two-link planar arm reaching a target past an obstacle.
//! PLACEHOLDER — being implemented.

use super::demos::Teacher;
use super::raster::Frame;
use super::{Env, EnvKind, Overlay, Step};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Per-component action bound (motor control range).
pub const MAX_ACTION: f32 = 1.0;

/// The reacher simulator.
pub struct Reacher {
    rng: StdRng,
}

impl Reacher {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Env for Reacher {
    fn kind(&self) -> EnvKind {
        EnvKind::Reacher
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

pub struct TaskTeacher;
impl Teacher for TaskTeacher {
    fn act(&mut self, _t: usize, _s: &[f64], _rng: &mut StdRng) -> [f32; 2] {
        [0.0, 0.0]
    }
}
#[derive(Default)]
pub struct ConstraintTeacher;
impl Teacher for ConstraintTeacher {
    fn act(&mut self, _t: usize, _s: &[f64], _rng: &mut StdRng) -> [f32; 2] {
        [0.0, 0.0]
    }
}
#[derive(Default)]
pub struct InteractionTeacher;
impl Teacher for InteractionTeacher {
    fn act(&mut self, _t: usize, _s: &[f64], _rng: &mut StdRng) -> [f32; 2] {
        [0.0, 0.0]
    }
}
