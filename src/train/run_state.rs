//! What a run folder holds, and `state.json`: how far a session got, so it can be resumed.
//!
//! ```text
//! <run>/config.json          Config, seed, preset (written once at the start)
//! <run>/state.json           RunState (rewritten atomically after every stored episode and round)
//! <run>/log.txt              one line per notable event
//! <run>/data/<env>/<Set>/    demos the run collected (absent when it used --data)
//! <run>/vae_loss.csv, module_loss.csv, vae_recon_*.png, vae_samples_*.png
//! <run>/episodes/<i>.json, <i>_obs.npy, <i>_next_obs.npy, <i>.gif   agent episodes
//! <run>/episodes.csv, metrics.csv    per-episode and per-round metrics
//! <run>/checkpoints/vae, init, round_NN   agent checkpoints, each with the latent modules'
//!                            training state: <module>_adam.safetensors, training.json
//! ```

use crate::config::{Config, Preset, Valid};
use crate::model::agent::ModuleKind;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `config.json`: how the run was started.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    pub seed: u64,
    /// The preset the configuration started from (edits may follow).
    pub preset: Option<Preset>,
    /// Demo folder used; `None` when the run collected its own into `<run>/data`.
    pub data: Option<PathBuf>,
    /// Checkpoint folder whose modules the run started from, if any.
    pub checkpoint: Option<PathBuf>,
    /// Episodes per demo set were capped at this (small test runs).
    pub demo_limit: Option<usize>,
    /// Checked when the file is read, so a resumed run never starts from an invalid one.
    pub config: Valid<Config>,
}

/// `state.json`: progress of the online phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// VAE and initial module training are finished (`checkpoints/init` exists).
    pub offline_done: bool,
    /// Rounds whose module update and checkpoint are finished.
    pub rounds_done: usize,
    /// Agent episodes stored in `episodes/`.
    pub episodes: usize,
    /// Index of the first episode of the round in progress.
    pub round_start: usize,
    /// Training iterations per module over the run (value: selects reward-to-go vs TD updates).
    pub iterations: BTreeMap<String, u64>,
    /// All rounds are done.
    pub finished: bool,
    /// Mean cost of the task demonstrations (on-policy demo episodes), for comparison.
    #[serde(default)]
    pub demo_mean_cost: Option<f32>,
}

/// Paths inside a run folder.
pub struct Layout<'a>(pub &'a Path);

impl Layout<'_> {
    pub fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }
    pub fn state(&self) -> PathBuf {
        self.0.join("state.json")
    }
    pub fn log(&self) -> PathBuf {
        self.0.join("log.txt")
    }
    pub fn data(&self) -> PathBuf {
        self.0.join("data")
    }
    pub fn episodes(&self) -> PathBuf {
        self.0.join("episodes")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.0.join("checkpoints")
    }
    /// Checkpoint after `rounds` finished rounds (0 = after initial training).
    pub fn round_checkpoint(&self, rounds: usize) -> PathBuf {
        match rounds {
            0 => self.checkpoints().join("init"),
            r => self.checkpoints().join(format!("round_{r:02}")),
        }
    }
    pub fn vae_checkpoint(&self) -> PathBuf {
        self.checkpoints().join("vae")
    }

    /// The newest complete checkpoint: the last round's, else `init`, else `vae`.
    pub fn latest_checkpoint(&self, state: &RunState) -> Option<PathBuf> {
        let candidates = (0..=state.rounds_done)
            .rev()
            .map(|r| self.round_checkpoint(r))
            .chain([self.vae_checkpoint()]);
        candidates
            .into_iter()
            .find(|p| p.join("agent.json").is_file())
    }
}

/// Reads a JSON file, naming it in errors.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is malformed", path.display()))
}

impl RunState {
    /// Iterations recorded for module `m`.
    pub fn iterations_of(&self, m: ModuleKind) -> u64 {
        self.iterations.get(m.name()).copied().unwrap_or(0)
    }
}
