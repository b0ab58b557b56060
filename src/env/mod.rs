//! Environments: small simulators that produce 64×64 RGB observations, the ground truth behind
//! them, and the scripted demonstrators of LS3_SPEC §2.
//!
//! Every environment owns one seeded random stream, so an episode is a pure function of the seed
//! and the actions. Observations are single frames here; [`FrameStack`] stacks them for the
//! reacher.

pub mod demos;
pub mod navigation;
pub mod push;
pub mod raster;
pub mod reacher;
mod stack;
pub mod teacher;

pub use raster::{FRAME_LEN, Frame, IMAGE_SIZE};
pub use stack::FrameStack;

use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// The three LS3 tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EnvKind {
    /// 2-D point robot around a wall ("SimplePointBot", short name `spb`).
    #[value(alias = "spb")]
    #[serde(alias = "spb")]
    Navigation,
    /// Two-link planar arm reaching past an obstacle.
    Reacher,
    /// Top-down pusher moving three blocks off a line.
    Push,
}

impl EnvKind {
    /// All environments, in the order the UI lists them.
    pub const ALL: [EnvKind; 3] = [EnvKind::Navigation, EnvKind::Reacher, EnvKind::Push];

    /// Lower-case name used on the command line and in folder names.
    pub fn name(self) -> &'static str {
        match self {
            EnvKind::Navigation => "navigation",
            EnvKind::Reacher => "reacher",
            EnvKind::Push => "push",
        }
    }

    /// Steps per episode.
    pub fn horizon(self) -> usize {
        match self {
            EnvKind::Navigation | EnvKind::Reacher => 100,
            EnvKind::Push => 150,
        }
    }

    /// Frames stacked into one observation (3 for the reacher, else 1).
    pub fn frame_stack(self) -> usize {
        match self {
            EnvKind::Reacher => 3,
            _ => 1,
        }
    }

    /// Half-width of the symmetric action box: each action component lies in `[-b, b]`.
    pub fn action_bound(self) -> f32 {
        match self {
            EnvKind::Navigation => navigation::MAX_ACTION,
            EnvKind::Reacher => reacher::MAX_ACTION,
            EnvKind::Push => push::MAX_ACTION,
        }
    }

    /// Clips an action into the box.
    pub fn clip_action(self, a: [f32; 2]) -> [f32; 2] {
        let b = self.action_bound();
        [a[0].clamp(-b, b), a[1].clamp(-b, b)]
    }

    /// Builds the environment with its random stream seeded from `seed`.
    pub fn make(self, seed: u64) -> Box<dyn Env> {
        match self {
            EnvKind::Navigation => Box::new(navigation::Navigation::new(seed)),
            EnvKind::Reacher => Box::new(reacher::Reacher::new(seed)),
            EnvKind::Push => Box::new(push::Push::new(seed)),
        }
    }
}

impl std::fmt::Display for EnvKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one environment step produced.
#[derive(Clone, Debug)]
pub struct Step {
    /// The frame seen after the step.
    pub frame: Frame,
    /// −1 while outside the goal, 0 on a step where the goal condition holds.
    pub reward: f32,
    /// The new state violates the safety constraint.
    pub constraint: bool,
    /// Ground-truth state after the step (layout documented by each environment).
    pub state: Vec<f64>,
}

/// A 2-D shape in image pixel coordinates (0..64 on both axes, origin top-left), for overlays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OverlayShape {
    /// Axis-aligned rectangle.
    Rect { min: [f32; 2], max: [f32; 2] },
    /// Circle (ellipses are approximated by their mean radius).
    Circle { center: [f32; 2], radius: f32 },
}

/// Scene geometry that the views draw over the observation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overlay {
    /// Regions whose entry violates the constraint (wall, obstacle, table edge).
    pub hazards: Vec<OverlayShape>,
    /// Regions where the goal condition holds.
    pub goals: Vec<OverlayShape>,
}

/// A seedable, deterministic simulator with pixel observations.
///
/// Episodes do not end at the goal: the caller runs `kind().horizon()` steps.
pub trait Env: Send {
    /// Which task this is.
    fn kind(&self) -> EnvKind;
    /// Starts a new episode (start-state noise comes from the env's seeded stream); returns the
    /// first frame.
    fn reset(&mut self) -> Frame;
    /// Applies one action (clipped into the action box) and advances the simulation.
    fn step(&mut self, action: [f32; 2]) -> Step;
    /// The current ground-truth state.
    fn state(&self) -> Vec<f64>;
    /// Moves the simulator to an arbitrary ground-truth state (random demo starts, heatmaps).
    fn set_state(&mut self, state: &[f64]);
    /// What the camera would see in `state`; does not change the simulator.
    fn render_state(&self, state: &[f64]) -> Frame;
    /// What the camera sees now.
    fn render(&self) -> Frame {
        self.render_state(&self.state())
    }
    /// The point the views trace as the agent's path, in image pixel coordinates.
    fn marker(&self, state: &[f64]) -> [f32; 2];
    /// The further objects the task moves, in image pixel coordinates (push: its blocks; none
    /// elsewhere).
    fn objects(&self, _state: &[f64]) -> Vec<[f32; 2]> {
        Vec::new()
    }
    /// Static scene geometry in image pixel coordinates.
    fn overlay(&self) -> Overlay;
    /// The environment's own random stream (shared by teachers for reproducible demos).
    fn rng(&mut self) -> &mut StdRng;
}
