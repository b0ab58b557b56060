//! What one planner call decided and imagined, as plain data for the plan and latent views.

use super::PlannerConfig;
use super::spread::{Particles, PlanSpread};
use serde::Serialize;
use std::sync::Arc;

/// One action selection: the executed action, the best candidate of the last scored CEM
/// iteration (its actions, its imagined latents and what the models said about them) and how the
/// search went.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanRecord {
    /// The action sent to the environment: the best plan's first action (the elite mean's with
    /// `act_on_mean`); when `random_fallback`, a uniformly random one, or the safest candidate's
    /// first action under [`Fallback::SafestPlan`](super::Fallback).
    pub action: [f32; 2],
    /// The latent the plan starts from.
    pub start: Vec<f32>,
    /// The best candidate's action sequence (`horizon` actions).
    pub actions: Vec<[f32; 2]>,
    /// Its imagined latent after each step, mean over particles (`horizon` × latent size), for
    /// decoding into frames.
    pub latents: Vec<Vec<f32>>,
    /// Per step: the largest constraint probability over particles.
    pub constraint_prob: Vec<f32>,
    /// Per step: the sigmoid of the particles' mean goal logit.
    pub goal_prob: Vec<f32>,
    /// At the final latent: the particles' mean safe-set probability.
    pub safe_set_prob: f32,
    /// At the final latent: the particles' mean value (ensemble mean).
    pub value: f32,
    /// The candidate's score (value − 1e5·(violations + safe-set miss) + goal count).
    pub score: f32,
    /// Feasible candidates in each scored CEM iteration, restarts included, in order.
    pub feasible: Vec<usize>,
    /// The safe-set threshold of the last scored iteration (after decays).
    pub safe_set_threshold: f32,
    /// How many times no candidate was feasible (each time the threshold was decayed and CEM
    /// restarted, except the last one when `random_fallback`).
    pub decays: usize,
    /// No candidate was feasible even after `max_decays` reductions, so the configured fallback
    /// acted: a random action (the plan fields describe the last attempt's best, infeasible
    /// candidate) or the safest plan (the plan fields describe that plan).
    pub random_fallback: bool,
    /// The settings of this call.
    pub config: PlannerConfig,
    /// What the feasibility of every candidate of the last scored iteration rests on, so other
    /// thresholds can be tried on this call without planning again. Not written to files; the
    /// app keeps it for the latest call only.
    #[serde(skip)]
    pub candidates: Option<Arc<CandidateStats>>,
    /// The chosen plan's spread over particles and dynamics members, per step.
    pub spread: Option<PlanSpread>,
}

/// Per candidate of a call's last scored CEM iteration: the terminal safe-set probability, the
/// largest constraint probability over the plan, and whether its score is a usable number; and
/// for drawing the search: the last iteration's elites and where the first iteration's candidates
/// ended, as imagined latents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CandidateStats {
    pub safe_set: Vec<f32>,
    pub max_constraint: Vec<f32>,
    pub usable: Vec<bool>,
    /// Feasible candidates at the call's own (possibly decayed) thresholds.
    pub feasible_now: usize,
    pub horizon: usize,
    /// Latent size.
    pub latent: usize,
    /// The last iteration's elites, best first: `[elite][horizon][latent]` (particle means).
    pub elite_latents: Vec<f32>,
    /// Their scores, best first.
    pub elite_scores: Vec<f32>,
    /// Each candidate of the first scored iteration after its last step: `[candidate][latent]`.
    pub first_terminal: Vec<f32>,
    /// The chosen plan's particles, one by one.
    pub particles: Particles,
}

impl CandidateStats {
    /// Candidates.
    pub fn len(&self) -> usize {
        self.safe_set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.safe_set.is_empty()
    }

    /// How many candidates would be feasible under `cfg`'s thresholds and ablation switches:
    /// the planner's test (no predicted violation above the constraint threshold, terminal
    /// safe-set probability at least the safe-set threshold) on the stored numbers.
    pub fn feasible_at(&self, cfg: &PlannerConfig) -> usize {
        self.feasible_with(cfg, cfg.safe_set_threshold)
    }

    /// [`CandidateStats::feasible_at`] with the safe-set threshold `threshold` (e.g. a decayed one).
    pub fn feasible_with(&self, cfg: &PlannerConfig, threshold: f32) -> usize {
        (0..self.len())
            .filter(|&c| {
                let (ss, cons) = (self.safe_set[c], self.max_constraint[c]);
                self.usable[c]
                    && (cfg.ignore_constraints || cons <= cfg.constraint_threshold)
                    && (cfg.ignore_safe_set || ss >= threshold)
            })
            .count()
    }
}
