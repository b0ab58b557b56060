//! The safe-set CEM planner (LS3_SPEC §4): sample action sequences, imagine them through the
//! latent dynamics ensemble, keep those that avoid predicted constraint violations and end inside
//! the learned safe set, refit, and execute the first action of the best plan.
//!
//! - [`cem`]: the [`Planner`] (sampling, scoring, elites, threshold decay, random fallback).
//! - [`rollout`]: the [`Rollout`] job (candidates, particles, noise) and the [`RolloutStats`]
//!   summaries that every rollout shares.
//! - [`models`]: the [`LatentModels`] seam between the planner and the networks, with a portable
//!   tensor rollout that any implementation gets for free.
//! - [`fused`] and [`kernel`]: the agent's CPU fast path (the whole rollout of a group of
//!   candidates in cache, on every core); [`bf16_dense`]: its dense layers in bf16, where the
//!   process-wide precision ([`crate::model::conv::set_precision`]) asks for it.
//! - [`record`]: the [`PlanRecord`] the views draw.
//! - [`spread`]: the chosen plan's particles and the models' disagreement along it.
//! - [`ablation`]: the paper's [`Ablation`]s (no safe set, no constraints).

pub mod ablation;
pub mod bf16_dense;
pub mod cem;
pub mod fused;
pub mod kernel;
pub mod models;
pub mod record;
pub mod rollout;
pub mod spread;
#[cfg(test)]
mod testing;

pub use ablation::Ablation;
pub use cem::{PlanError, Planner};
pub use models::LatentModels;
pub use record::{CandidateStats, PlanRecord};
pub use rollout::{Rollout, RolloutStats};
pub use spread::{Particles, PlanSpread};

use crate::valid::{ConfigError, Validate, check, positive_count, unit_interval};
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
    /// Each particle keeps one dynamics member for the whole plan (particle `q` uses member
    /// `q mod 5`) instead of one random member per step shared by all particles (the
    /// original's). The particles' spread then shows where the members disagree.
    pub particle_members: bool,
    /// A plan's score loses this many standard deviations (over its particles) of its terminal
    /// value: plans the models disagree about rank lower. 0 is the original's score.
    pub disagreement_penalty: f32,
    /// Every step of a plan must lie in the safe set, not only its end (the original checks the
    /// end). Rejects plans that leave the safe set and imagine their way back.
    pub safe_set_every_step: bool,
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
            particle_members: false,
            disagreement_penalty: 0.0,
            safe_set_every_step: false,
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
}

impl Validate for PlannerConfig {
    /// Every count at least 1 and no more elites than candidates; the probability thresholds,
    /// the decay factor and the uniform share inside [0, 1]; the goal threshold (a logit) finite.
    fn validate(&self) -> Result<(), ConfigError> {
        positive_count("planner.population", self.population)?;
        positive_count("planner.elites", self.elites)?;
        check(
            self.elites <= self.population,
            "planner.elites",
            self.elites,
            format!("must be ≤ planner.population ({})", self.population),
        )?;
        positive_count("planner.iterations", self.iterations)?;
        positive_count("planner.particles", self.particles)?;
        positive_count("planner.horizon", self.horizon)?;
        unit_interval("planner.safe_set_threshold", self.safe_set_threshold)?;
        unit_interval("planner.threshold_decay", self.threshold_decay)?;
        unit_interval("planner.constraint_threshold", self.constraint_threshold)?;
        check(
            self.goal_threshold.is_finite(),
            "planner.goal_threshold",
            self.goal_threshold,
            "must be a finite number (a logit)",
        )?;
        check(
            self.disagreement_penalty.is_finite() && self.disagreement_penalty >= 0.0,
            "planner.disagreement_penalty",
            self.disagreement_penalty,
            "must be a finite number ≥ 0 (standard deviations of the terminal value)",
        )?;
        unit_interval("planner.random_percent", self.random_percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::EnvKind;

    /// A change to the settings under test.
    type Edit = fn(&mut PlannerConfig);
    /// Sets one `f32` setting.
    type Set = fn(&mut PlannerConfig, f32);

    /// The error of `cfg` changed by `edit`.
    fn rejected(edit: impl FnOnce(&mut PlannerConfig)) -> ConfigError {
        let mut cfg = PlannerConfig::default();
        edit(&mut cfg);
        cfg.validate().expect_err("rejected")
    }

    #[test]
    fn the_papers_settings_are_valid() {
        for env in EnvKind::ALL {
            PlannerConfig::paper(env).validate().unwrap();
        }
    }

    #[test]
    fn more_elites_than_candidates_are_refused_with_both_numbers() {
        let e = rejected(|c| (c.population, c.elites) = (500, 5000));
        assert_eq!(e.field, "planner.elites");
        assert_eq!(
            e.to_string(),
            "invalid configuration: planner.elites = 5000 must be ≤ planner.population (500)"
        );
        let d = PlannerConfig::default();
        let equal = PlannerConfig {
            elites: d.population,
            ..d
        };
        equal.validate().unwrap();
    }

    #[test]
    fn every_count_must_be_at_least_one() {
        let cases: [(&str, Edit); 5] = [
            ("planner.population", |c| c.population = 0),
            ("planner.elites", |c| c.elites = 0),
            ("planner.iterations", |c| c.iterations = 0),
            ("planner.particles", |c| c.particles = 0),
            ("planner.horizon", |c| c.horizon = 0),
        ];
        for (field, edit) in cases {
            let e = rejected(edit);
            assert_eq!(e.field, field);
            assert_eq!(e.value, "0", "{e}");
            assert!(e.to_string().contains("must be at least 1"), "{e}");
        }
        let no_decays = PlannerConfig {
            max_decays: 0,
            ..PlannerConfig::default()
        };
        no_decays.validate().unwrap();
    }

    #[test]
    fn probabilities_the_decay_and_the_uniform_share_lie_in_the_unit_interval() {
        let cases: [(&str, Set); 4] = [
            ("planner.safe_set_threshold", |c, v| {
                c.safe_set_threshold = v
            }),
            ("planner.threshold_decay", |c, v| c.threshold_decay = v),
            ("planner.constraint_threshold", |c, v| {
                c.constraint_threshold = v
            }),
            ("planner.random_percent", |c, v| c.random_percent = v),
        ];
        for (field, set) in cases {
            for bad in [-0.1, 1.5, f32::NAN] {
                let e = rejected(|c| set(c, bad));
                assert_eq!(e.field, field);
                assert_eq!(e.value, bad.to_string());
                assert!(e.to_string().contains("[0, 1]"), "{e}");
            }
            for good in [0.0, 1.0] {
                let mut c = PlannerConfig::default();
                set(&mut c, good);
                c.validate().unwrap();
            }
        }
    }

    #[test]
    fn the_disagreement_penalty_is_a_finite_non_negative_number() {
        for bad in [-0.5, f32::NAN, f32::INFINITY] {
            let e = rejected(|c| c.disagreement_penalty = bad);
            assert_eq!(e.field, "planner.disagreement_penalty");
            assert!(e.to_string().contains("≥ 0"), "{e}");
        }
        let c = PlannerConfig {
            disagreement_penalty: 2.0,
            ..PlannerConfig::default()
        };
        c.validate().unwrap();
    }

    #[test]
    fn the_goal_threshold_is_a_logit_any_finite_number() {
        for good in [-3.0, 0.5, 7.0] {
            let c = PlannerConfig {
                goal_threshold: good,
                ..PlannerConfig::default()
            };
            c.validate().unwrap();
        }
        for bad in [f32::NAN, f32::INFINITY] {
            let e = rejected(|c| c.goal_threshold = bad);
            assert_eq!(e.field, "planner.goal_threshold");
            assert_eq!(e.value, bad.to_string());
        }
    }
}
