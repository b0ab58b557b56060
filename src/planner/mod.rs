//! The safe-set CEM planner (LS3_SPEC §4): sample action sequences, imagine them through the
//! latent dynamics ensemble, keep those that avoid predicted constraint violations and end inside
//! the learned safe set, refit, and execute the first action of the best plan.
//!
//! - [`cem`]: the [`Planner`] (sampling, scoring, elites, threshold decay, random fallback).
//! - [`models`]: the [`LatentModels`] seam between the planner and the networks, with a portable
//!   tensor rollout that any implementation gets for free.
//! - [`fused`] and [`kernel`]: the agent's CPU fast path (the whole rollout of a group of
//!   candidates in cache, on every core).
//! - [`record`]: the [`PlanRecord`] the views draw.

pub mod cem;
pub mod fused;
pub mod kernel;
pub mod models;
pub mod record;
#[cfg(test)]
mod testing;

pub use cem::{PlanError, Planner};
pub use models::{LatentModels, Rollout, RolloutStats};
pub use record::PlanRecord;

use serde::{Deserialize, Serialize};

/// Every planner setting (LS3_SPEC §4); all of them may change between two `plan` calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlannerConfig {
    /// Candidate action sequences per CEM iteration.
    pub population: usize,
    /// Candidates the sampling distribution is refitted to (fewer when fewer are feasible).
    pub elites: usize,
    /// CEM iterations; the models score the candidates of all but the last, which only refits
    /// (with 1, the single iteration is scored).
    pub iterations: usize,
    /// Imagined rollouts per candidate.
    pub particles: usize,
    /// Plan length in steps.
    pub horizon: usize,
    /// A plan must end where the mean safe-set probability reaches this (before decays).
    pub safe_set_threshold: f32,
    /// Factor applied to the safe-set threshold whenever no candidate is feasible.
    pub threshold_decay: f32,
    /// Threshold reductions allowed per action; one more and the planner acts randomly.
    pub max_decays: usize,
    /// A step violates the constraint when any particle's constraint probability exceeds this.
    pub constraint_threshold: f32,
    /// A step counts as reaching the goal when the particles' mean goal *logit* exceeds this.
    pub goal_threshold: f32,
    /// Share of the first iteration's candidates drawn uniformly; the rest come from the previous
    /// action's elite distribution (1.0: always uniform, as in the paper).
    pub random_percent: f32,
    /// Execute the first action of the final elite mean instead of the best candidate's (the
    /// paper's choice). The mean averages out the particles' noise in the winner's first action.
    pub act_on_mean: bool,
    /// Ablation: plans need not end in the safe set.
    pub ignore_safe_set: bool,
    /// Ablation: predicted constraint violations are not penalised.
    pub ignore_constraints: bool,
    /// What to do when no candidate is feasible after every threshold decay.
    pub fallback: Fallback,
}

/// The action taken when no plan is feasible even at the lowest safe-set threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fallback {
    /// A uniformly random action (the original's).
    #[default]
    Random,
    /// The first action of the last search's candidate that heads back into the safe set: fewest
    /// predicted constraint violations, then the highest terminal safe-set probability.
    SafestPlan,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            population: 1000,
            elites: 100,
            iterations: 5,
            particles: 20,
            horizon: 5,
            safe_set_threshold: 0.8,
            threshold_decay: 0.8,
            max_decays: 5,
            constraint_threshold: 0.2,
            goal_threshold: 0.5,
            random_percent: 1.0,
            act_on_mean: false,
            ignore_safe_set: false,
            ignore_constraints: false,
            fallback: Fallback::Random,
        }
    }
}

impl PlannerConfig {
    /// The settings of the original's README command for `env` (LS3_SPEC §2.1): horizon 5 on
    /// navigation, 3 on reacher and push; reacher's safe-set threshold 0.5; the rest §4's.
    pub fn paper(env: crate::env::EnvKind) -> Self {
        use crate::env::EnvKind;
        let d = Self::default();
        match env {
            EnvKind::Navigation => d,
            EnvKind::Reacher => Self {
                horizon: 3,
                safe_set_threshold: 0.5,
                ..d
            },
            EnvKind::Push => Self { horizon: 3, ..d },
        }
    }

    /// CEM iterations whose candidates the models score.
    pub fn scored_iterations(&self) -> usize {
        self.iterations.saturating_sub(1).max(1)
    }

    /// Checks the sizes (every count at least 1) and the thresholds (finite).
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("population", self.population),
            ("elites", self.elites),
            ("iterations", self.iterations),
            ("particles", self.particles),
            ("horizon", self.horizon),
        ] {
            if v == 0 {
                return Err(format!("planner {name} must be at least 1"));
            }
        }
        for (name, v) in [
            ("safe_set_threshold", self.safe_set_threshold),
            ("threshold_decay", self.threshold_decay),
            ("constraint_threshold", self.constraint_threshold),
            ("goal_threshold", self.goal_threshold),
            ("random_percent", self.random_percent),
        ] {
            if !v.is_finite() {
                return Err(format!("planner {name} must be finite, got {v}"));
            }
        }
        Ok(())
    }
}
