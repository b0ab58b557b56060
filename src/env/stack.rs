//! Frame stacking: the reacher's observation is its last three frames.

use super::{Env, FRAME_LEN, Frame, Step};
use std::collections::VecDeque;

/// Wraps an environment so observations are the last `k` frames, oldest first, as one
/// `k×3×64×64` byte buffer. After a reset the stack holds the first frame `k` times.
pub struct FrameStack {
    k: usize,
    frames: VecDeque<Frame>,
}

impl FrameStack {
    /// A stack of depth `k` (1 = no stacking).
    pub fn new(k: usize) -> Self {
        assert!(k >= 1, "frame stack depth must be at least 1");
        Self {
            k,
            frames: VecDeque::with_capacity(k),
        }
    }

    /// Depth of the stack.
    pub fn depth(&self) -> usize {
        self.k
    }

    /// Resets the env and fills the stack with its first frame; returns the observation.
    pub fn reset(&mut self, env: &mut dyn Env) -> Vec<u8> {
        let first = env.reset();
        self.restart(first)
    }

    /// Fills the stack with `frame` (e.g. after the env was moved with `set_state`).
    pub fn restart(&mut self, frame: Frame) -> Vec<u8> {
        self.frames.clear();
        for _ in 0..self.k {
            self.frames.push_back(frame.clone());
        }
        self.observation()
    }

    /// Steps the env and pushes the new frame; returns the step and the new observation.
    pub fn step(&mut self, env: &mut dyn Env, action: [f32; 2]) -> (Step, Vec<u8>) {
        let step = env.step(action);
        if self.frames.len() == self.k {
            self.frames.pop_front();
        }
        self.frames.push_back(step.frame.clone());
        let obs = self.observation();
        (step, obs)
    }

    /// The current observation, oldest frame first.
    pub fn observation(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.k * FRAME_LEN);
        for f in &self.frames {
            out.extend_from_slice(&f.0);
        }
        out
    }
}
