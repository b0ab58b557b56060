//! Training: the [`Session`] that runs LS3_SPEC §5 end to end (observed through [`Event`]s), the
//! [`Actor`] that plays planner episodes, and the [`Trainer`]: one Adam optimiser and one step
//! per module with the losses of LS3_SPEC §3, run in chunks that report their mean loss.
//!
//! [`Trainer`] keeps each module's iteration count across calls, so the target-net copies and
//! the value's switch from reward-to-go regression to TD updates happen at the same iterations
//! whether a phase runs in one call or in many small ones between environment steps.

pub mod actor;
pub mod adam;
pub mod losses;
pub mod metrics;
pub mod observer;
pub mod phases;
pub mod results;
pub mod run_state;
pub mod session;
pub mod sweep;
mod trainer;

pub use actor::Actor;
pub use observer::{Event, Observer};
pub use session::{Session, SessionOptions, evaluate};
pub use trainer::{Restored, TRAINING_FILE, Trainer, optimizer_path};

use crate::data::replay::ReplayError;
use crate::model::agent::ModuleKind;

/// What one chunk of iterations did, for progress bars and loss curves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChunkReport {
    pub module: ModuleKind,
    /// Iterations finished in this call so far, and how many the call runs.
    pub done: usize,
    pub total: usize,
    /// The module's iteration count over the trainer's life, after this chunk.
    pub iteration: u64,
    /// Mean loss over the chunk's iterations.
    pub mean_loss: f32,
}

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(
        "the {module} loss became {value} at iteration {iteration}; training stopped before that \
         update, so the weights are those of the iteration before (try a lower learning rate)"
    )]
    NonFinite {
        module: ModuleKind,
        iteration: u64,
        value: f32,
    },
    #[error("cannot train {module}: {source}")]
    Data {
        module: ModuleKind,
        source: ReplayError,
    },
    #[error("cannot train {0}: the VAE trains on images, use Trainer::train_vae")]
    NotLatent(ModuleKind),
    #[error("cannot train the VAE: the image pool is empty")]
    NoImages,
    #[error("cannot train the VAE: the images have {pool} channels, its encoder takes {agent}")]
    Channels { pool: usize, agent: usize },
    #[error(
        "the agent has {agent} value members but the configuration asks for {config}; build the \
         agent from Config::agent_spec"
    )]
    ValueMembers { agent: usize, config: usize },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
