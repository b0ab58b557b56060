//! What a [`Session`](super::Session) reports while it works: typed events for whoever watches —
//! progress bars and log lines in the CLI, channels to the views in the app.

use super::metrics::{EpisodeSummary, RoundMetrics};
use super::phases::PhaseProgress;
use crate::env::Frame;
use crate::model::agent::ModuleKind;
use crate::planner::PlanRecord;
use std::path::PathBuf;

/// One thing that happened in a session.
#[derive(Clone, Debug)]
pub enum Event {
    /// A phase advanced (collecting, VAE, encoding, a module's training, an episode, an update).
    Progress(PhaseProgress),
    /// A chunk of training iterations finished with this mean loss.
    Loss {
        module: ModuleKind,
        iteration: u64,
        loss: f32,
    },
    /// A new agent episode starts (`index` counts agent episodes over the run).
    EpisodeStarted {
        round: usize,
        index: usize,
        start_state: Vec<f64>,
        frame: Frame,
    },
    /// The agent acted: what the planner imagined and what the environment did.
    Step(Box<AgentStep>),
    /// An agent episode ended and was stored.
    EpisodeFinished(EpisodeSummary),
    /// A round ended: its metrics, after the modules were updated and the checkpoint written.
    RoundFinished(RoundMetrics),
    /// A checkpoint folder was written.
    Checkpoint(PathBuf),
    /// A VAE chunk finished: a few demo frames and what the VAE now makes of them.
    VaeReconstructions(std::sync::Arc<super::phases::Reconstructions>),
    /// The VAE finished training: what its latents encode (also in the run's `probe.json`).
    Probe(Box<crate::model::probe::ProbeReport>),
    /// A line for the log (also written to the run's `log.txt`).
    Log(String),
}

/// One environment step of the agent, with the plan that chose it.
#[derive(Clone, Debug)]
pub struct AgentStep {
    /// Step index within the episode (0-based).
    pub t: usize,
    /// The newest frame after the step.
    pub frame: Frame,
    /// Ground-truth state after the step.
    pub state: Vec<f64>,
    pub reward: f32,
    pub constraint: bool,
    pub plan: PlanRecord,
}

/// Receives a session's events. Any `FnMut(Event)` is an observer.
pub trait Observer {
    fn event(&mut self, event: Event);
}

impl<F: FnMut(Event)> Observer for F {
    fn event(&mut self, event: Event) {
        self(event)
    }
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {
    fn event(&mut self, _: Event) {}
}
