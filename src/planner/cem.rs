//! Cross-entropy-method MPC with the safe-set constraint (LS3_SPEC §4).
//!
//! Per action: sample candidate action sequences (uniform at first, then from the elites'
//! Gaussian), imagine each with several particles, score
//! `value − 1e5·(violations + safe-set miss) + goal count`, keep the best feasible ones, refit.
//! When nothing is feasible the safe-set threshold decays and the search restarts from uniform
//! samples; when that keeps failing the planner acts randomly.

use super::fused::FusedModels;
use super::models::LatentModels;
use super::record::{CandidateStats, PlanRecord};
use super::rollout::{Rollout, RolloutStats};
use super::spread;
use super::{Fallback, PlannerConfig};
use crate::env::EnvKind;
use crate::model::conv::Precision;
use crate::valid::Valid;
use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::sync::Arc;

/// Score penalty per predicted violation and for a safe-set miss; also the score of a NaN.
pub const PENALTY: f32 = 1e5;

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the planner's models failed: {0}")]
    Model(#[from] candle_core::Error),
}

/// A candidate's score and whether it may become an elite.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// `value − 1e5·(violations + miss) + goals`, or −1e5 when any term is NaN.
    pub score: f32,
    /// No counted violation, no counted safe-set miss, no NaN, and score > −1e5.
    pub feasible: bool,
}

/// Scores every candidate of a rollout against the current safe-set `threshold`.
pub fn score_candidates(
    stats: &RolloutStats,
    horizon: usize,
    cfg: &PlannerConfig,
    threshold: f32,
) -> Vec<Score> {
    (0..stats.value.len())
        .map(|c| {
            let steps = c * horizon..(c + 1) * horizon;
            let (cons, goal) = (&stats.constraint[steps.clone()], &stats.goal_logit[steps]);
            let mut nan = stats.value[c].is_nan() || goal.iter().any(|g| g.is_nan());
            let violations = violations(cons, cfg).unwrap_or_else(|| {
                nan = true;
                0
            });
            let miss = if cfg.ignore_safe_set {
                0
            } else {
                nan |= stats.safe_set[c].is_nan();
                usize::from(stats.safe_set[c] < threshold)
            };
            let goals = goal.iter().filter(|&&g| g > cfg.goal_threshold).count();
            let value = stats.value[c] - cfg.disagreement_penalty * stats.value_std[c];
            let score = value - PENALTY * (violations + miss) as f32 + goals as f32;
            if nan || score.is_nan() {
                return Score {
                    score: -PENALTY,
                    feasible: false,
                };
            }
            Score {
                score,
                feasible: violations == 0 && miss == 0 && score > -PENALTY,
            }
        })
        .collect()
}

/// The feasible candidates, best first (ties keep index order), at most `elites` of them.
pub fn elites(scores: &[Score], elites: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).filter(|&c| scores[c].feasible).collect();
    idx.sort_by(|&a, &b| scores[b].score.total_cmp(&scores[a].score));
    idx.truncate(elites);
    idx
}

/// A diagonal Gaussian over action sequences, `[horizon][2]` means and standard deviations.
#[derive(Clone, Debug, PartialEq)]
struct Gaussian {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Gaussian {
    /// Mean and (population) standard deviation of the chosen candidates' sequences.
    fn fit(actions: &[f32], chosen: &[usize], per: usize) -> Self {
        let k = chosen.len() as f32;
        let mut mean = vec![0f32; per];
        for &c in chosen {
            for (m, a) in mean.iter_mut().zip(&actions[c * per..(c + 1) * per]) {
                *m += a;
            }
        }
        mean.iter_mut().for_each(|m| *m /= k);
        let mut var = vec![0f32; per];
        for &c in chosen {
            for ((v, a), m) in var
                .iter_mut()
                .zip(&actions[c * per..(c + 1) * per])
                .zip(&mean)
            {
                *v += (a - m) * (a - m);
            }
        }
        Self {
            mean,
            std: var.into_iter().map(|v| (v / k).sqrt()).collect(),
        }
    }

    /// The distribution for the next action: one step later, the last step repeated.
    fn shifted(&self) -> Self {
        let shift = |v: &[f32]| {
            let mut s = v[2.min(v.len())..].to_vec();
            s.extend_from_slice(&v[v.len() - 2..]);
            s
        };
        Self {
            mean: shift(&self.mean),
            std: shift(&self.std),
        }
    }
}

/// The best candidate of a scored iteration, with what was imagined for it.
struct Best {
    job: Rollout,
    stats: RolloutStats,
    index: usize,
    score: f32,
    /// Every candidate's score in this iteration and the elites, best first.
    scores: Vec<Score>,
    elites: Vec<usize>,
}

/// The CEM planner of one agent: its random stream and the elite distribution carried from one
/// action to the next within an episode.
#[derive(Debug)]
pub struct Planner {
    bound: f32,
    rng: StdRng,
    warm: Option<Gaussian>,
    /// The models' packed weights and the weights version and process-wide precision they were
    /// packed for ([`LatentModels::weights_version`], [`crate::model::conv::precision`]): packed
    /// once per version and precision, not once per action.
    packed: Option<((u64, Precision), Arc<FusedModels>)>,
}

impl Planner {
    /// A planner for actions in `[−action_bound, action_bound]²`, its randomness seeded with
    /// `seed` (derive it with [`crate::seed::derive`]).
    pub fn new(action_bound: f32, seed: u64) -> Self {
        assert!(
            action_bound.is_finite() && action_bound >= 0.0,
            "action bound {action_bound}"
        );
        Self {
            bound: action_bound,
            rng: StdRng::seed_from_u64(seed),
            warm: None,
            packed: None,
        }
    }

    /// A planner for `env`'s action box.
    pub fn for_env(env: EnvKind, seed: u64) -> Self {
        Self::new(env.action_bound(), seed)
    }

    /// The action box's half-width.
    pub fn action_bound(&self) -> f32 {
        self.bound
    }

    /// Forgets the sampling distribution carried between actions (call at every episode start).
    pub fn reset(&mut self) {
        self.warm = None;
    }

    /// The models' packed weights, from the cache while their weights version and the precision
    /// are unchanged.
    fn packed<M: LatentModels + ?Sized>(
        &mut self,
        models: &M,
    ) -> candle_core::Result<Option<Arc<FusedModels>>> {
        let version = models
            .weights_version()
            .map(|v| (v, crate::model::conv::precision()));
        if let (Some(v), Some((cached, fused))) = (version, &self.packed)
            && *cached == v
        {
            return Ok(Some(fused.clone()));
        }
        let fused = models.packed()?.map(Arc::new);
        self.packed = version.zip(fused.clone());
        Ok(fused)
    }

    /// Chooses the action for the latent `z0` (`[1, latent]` or `[latent]`) with checked
    /// settings (never more elites than candidates).
    pub fn plan<M: LatentModels + ?Sized>(
        &mut self,
        models: &M,
        z0: &Tensor,
        cfg: &Valid<PlannerConfig>,
    ) -> Result<([f32; 2], PlanRecord), PlanError> {
        crate::cpu::flush_denormals();
        let start = z0.flatten_all()?.to_vec1::<f32>()?;
        let (n, h) = (cfg.population, cfg.horizon);
        let warm = self.warm.take().filter(|g| g.mean.len() == h * 2);
        let mut threshold = cfg.safe_set_threshold;
        let mut decays = 0;
        let mut feasible = Vec::new();
        let mut best: Option<Best> = None;
        // Where each candidate of the call's first scored iteration ends (for the app's cloud).
        let mut first_terminal: Option<Vec<f32>> = None;
        let mut dist: Option<Gaussian>;
        let mut fallback = false;
        let packed = self.packed(models)?;
        let rollout = |job: &Rollout| match &packed {
            Some(fused) => fused.rollout(job),
            None => models.rollout(job),
        };

        'attempts: loop {
            // The first attempt may start from the previous action's elites; restarts are uniform.
            dist = if decays == 0 { warm.clone() } else { None };
            for it in 0..cfg.scored_iterations() {
                let uniform = match (it, &dist) {
                    (_, None) => n,
                    (0, Some(_)) => ((cfg.random_percent * n as f32) as usize).min(n),
                    _ => 0,
                };
                let actions = self.sample(n, h, dist.as_ref(), uniform);
                let members = (0..h)
                    .map(|_| self.rng.random_range(0..models.dynamics_members()))
                    .collect();
                let job = Rollout {
                    start: start.clone(),
                    actions,
                    population: n,
                    horizon: h,
                    particles: cfg.particles,
                    members,
                    particle_members: cfg.particle_members,
                    safe_set_every_step: cfg.safe_set_every_step,
                    noise_seed: self.rng.random(),
                };
                let stats = rollout(&job)?;
                if first_terminal.is_none() {
                    first_terminal = Some(terminal_latents(&stats, n, h, job.latent()));
                }
                let scores = score_candidates(&stats, h, cfg, threshold);
                let chosen = elites(&scores, cfg.elites);
                feasible.push(scores.iter().filter(|s| s.feasible).count());
                let index = chosen.first().copied().unwrap_or_else(|| {
                    (0..n)
                        .max_by(|&a, &b| {
                            scores[a].score.total_cmp(&scores[b].score).then(b.cmp(&a))
                        })
                        .unwrap_or(0)
                });
                let refit =
                    (!chosen.is_empty()).then(|| Gaussian::fit(&job.actions, &chosen, h * 2));
                let score = scores[index].score;
                best = Some(Best {
                    job,
                    stats,
                    index,
                    score,
                    scores,
                    elites: chosen,
                });
                if refit.is_none() {
                    decays += 1;
                    if decays > cfg.max_decays {
                        fallback = true;
                        break 'attempts;
                    }
                    threshold *= cfg.threshold_decay;
                    continue 'attempts;
                }
                dist = refit;
            }
            break;
        }

        let mut best = best.expect("at least one iteration is scored");
        if fallback && cfg.fallback == Fallback::SafestPlan {
            // The plan shown is the one acted on.
            best.index = safest(&best.stats, h, cfg);
            best.score = best.scores[best.index].score;
        }
        let action = match (&dist, fallback) {
            (_, true) if cfg.fallback == Fallback::SafestPlan => best.job.action(best.index, 0),
            (_, true) => {
                let b = self.bound;
                [self.rng.random_range(-b..=b), self.rng.random_range(-b..=b)]
            }
            (Some(d), false) if cfg.act_on_mean => [d.mean[0], d.mean[1]],
            _ => best.job.action(best.index, 0),
        };
        self.warm = if fallback {
            None
        } else {
            dist.map(|d| d.shifted())
        };
        let feasible_now = feasible.last().copied().unwrap_or(0);
        let mut record = record(&best, action, threshold, decays, fallback, feasible, cfg);
        let first_terminal = first_terminal.unwrap_or_default();
        let (spread, particles) = spread::imagine(models, &best.job, best.index)?;
        record.spread = Some(spread);
        let mut candidates = candidate_stats(&best, feasible_now, cfg, threshold, first_terminal);
        candidates.particles = particles;
        record.candidates = Some(Arc::new(candidates));
        Ok((action, record))
    }

    /// `n` sequences of `h` actions: the first `n − uniform` from `dist` (clipped to the box),
    /// the rest uniform in the box.
    fn sample(&mut self, n: usize, h: usize, dist: Option<&Gaussian>, uniform: usize) -> Vec<f32> {
        let b = self.bound;
        let per = h * 2;
        let mut out = Vec::with_capacity(n * per);
        for c in 0..n {
            match dist {
                Some(g) if c < n - uniform => {
                    for i in 0..per {
                        let e: f32 = StandardNormal.sample(&mut self.rng);
                        out.push((g.mean[i] + g.std[i] * e).clamp(-b, b));
                    }
                }
                _ => {
                    for _ in 0..per {
                        out.push(self.rng.random_range(-b..=b));
                    }
                }
            }
        }
        out
    }
}

/// Steps of one candidate whose constraint probability exceeds the threshold (0 under the
/// no-constraints ablation); `None` when a probability is NaN.
fn violations(cons: &[f32], cfg: &PlannerConfig) -> Option<usize> {
    if cfg.ignore_constraints {
        Some(0)
    } else if cons.iter().any(|p| p.is_nan()) {
        None
    } else {
        Some(
            cons.iter()
                .filter(|&&p| p > cfg.constraint_threshold)
                .count(),
        )
    }
}

/// The candidate of `stats` with the fewest predicted violations (counted as the scoring does;
/// none under the no-constraints ablation), then the highest terminal safe-set probability; NaNs
/// rank last.
fn safest(stats: &RolloutStats, horizon: usize, cfg: &PlannerConfig) -> usize {
    let key = |c: usize| {
        let cons = &stats.constraint[c * horizon..(c + 1) * horizon];
        let violations = violations(cons, cfg).unwrap_or(usize::MAX);
        let ss = stats.safe_set[c];
        (violations, if ss.is_nan() { f32::NEG_INFINITY } else { ss })
    };
    (0..stats.safe_set.len())
        .min_by(|&a, &b| {
            let ((va, sa), (vb, sb)) = (key(a), key(b));
            va.cmp(&vb).then(sb.total_cmp(&sa)).then(a.cmp(&b))
        })
        .unwrap_or(0)
}

fn record(
    best: &Best,
    action: [f32; 2],
    threshold: f32,
    decays: usize,
    random_fallback: bool,
    feasible: Vec<usize>,
    cfg: &PlannerConfig,
) -> PlanRecord {
    let (c, h, l) = (best.index, best.job.horizon, best.job.latent());
    let s = &best.stats;
    PlanRecord {
        action,
        start: best.job.start.clone(),
        actions: (0..h).map(|t| best.job.action(c, t)).collect(),
        latents: (0..h)
            .map(|t| s.latents[(c * h + t) * l..(c * h + t + 1) * l].to_vec())
            .collect(),
        constraint_prob: s.constraint[c * h..(c + 1) * h].to_vec(),
        goal_prob: s.goal_logit[c * h..(c + 1) * h]
            .iter()
            .map(|&g| 1.0 / (1.0 + (-g).exp()))
            .collect(),
        safe_set_prob: s.safe_set[c],
        value: s.value[c],
        score: best.score,
        feasible,
        safe_set_threshold: threshold,
        decays,
        random_fallback,
        // Filled in by the call (see `candidate_stats` and `spread::imagine`).
        candidates: None,
        spread: None,
        config: cfg.clone(),
    }
}

/// What each candidate of `best`'s iteration needs for re-scoring and drawing (see
/// [`CandidateStats`]).
fn candidate_stats(
    best: &Best,
    feasible_now: usize,
    cfg: &PlannerConfig,
    threshold: f32,
    first_terminal: Vec<f32>,
) -> CandidateStats {
    let (s, h) = (&best.stats, best.job.horizon);
    let n = s.value.len();
    let max_constraint: Vec<f32> = (0..n)
        .map(|c| {
            let cons = &s.constraint[c * h..(c + 1) * h];
            // NaN anywhere makes the candidate fail every constraint test, as in the scoring.
            if cons.iter().any(|p| p.is_nan()) {
                f32::NAN
            } else {
                cons.iter().copied().fold(f32::NEG_INFINITY, f32::max)
            }
        })
        .collect();
    // Feasible with neither test: the value and goals give a usable score.
    let neither = PlannerConfig {
        ignore_constraints: true,
        ignore_safe_set: true,
        ..cfg.clone()
    };
    let usable = score_candidates(s, h, &neither, threshold)
        .iter()
        .map(|sc| sc.feasible)
        .collect();
    let l = best.job.latent();
    let elite_latents = best
        .elites
        .iter()
        .flat_map(|&c| s.latents[c * h * l..(c + 1) * h * l].iter().copied())
        .collect();
    CandidateStats {
        safe_set: s.safe_set.clone(),
        max_constraint,
        usable,
        feasible_now,
        horizon: h,
        latent: l,
        elite_latents,
        elite_scores: best.elites.iter().map(|&c| best.scores[c].score).collect(),
        first_terminal,
        particles: Default::default(),
    }
}

/// Each candidate's imagined latent after the last step, `[population][latent]`.
fn terminal_latents(s: &RolloutStats, n: usize, h: usize, l: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|c| {
            s.latents[((c * h) + h - 1) * l..(c * h + h) * l]
                .iter()
                .copied()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::Toy;
    use super::*;
    use crate::model::agent::{Agent, AgentSpec};
    use candle_core::Device;

    fn small() -> PlannerConfig {
        PlannerConfig {
            population: 200,
            elites: 20,
            iterations: 4,
            particles: 2,
            horizon: 2,
            ..PlannerConfig::default()
        }
    }

    fn valid(cfg: PlannerConfig) -> Valid<PlannerConfig> {
        Valid::new(cfg).expect("valid test settings")
    }

    fn start() -> Tensor {
        Tensor::zeros((1, 2), candle_core::DType::F32, &Device::Cpu).unwrap()
    }

    fn stats(value: &[f32], safe: &[f32], constraint: &[&[f32]], goal: &[&[f32]]) -> RolloutStats {
        RolloutStats {
            value: value.to_vec(),
            value_std: vec![0.0; value.len()],
            safe_set: safe.to_vec(),
            constraint: constraint.concat(),
            goal_logit: goal.concat(),
            latents: vec![0.0; value.len() * constraint[0].len()],
        }
    }

    #[test]
    fn picks_the_action_along_the_rewarded_direction() {
        let toy = Toy::new().value([1.0, -1.0]);
        let (a, rec) = Planner::new(1.0, 1)
            .plan(&toy, &start(), &valid(small()))
            .unwrap();
        assert!(a[0] > 0.8 && a[1] < -0.8, "action {a:?}");
        assert_eq!(rec.action, a);
        assert_eq!(rec.actions[0], a);
        assert!(rec.value > 3.0, "imagined value {}", rec.value);
        assert!(!rec.random_fallback && rec.decays == 0);
    }

    #[test]
    fn acting_on_the_elite_mean_goes_the_rewarded_way_without_being_the_best_candidate() {
        let toy = Toy::new().value([1.0, -1.0]);
        let cfg = PlannerConfig {
            act_on_mean: true,
            ..small()
        };
        let (a, rec) = Planner::new(1.0, 1)
            .plan(&toy, &start(), &valid(cfg.clone()))
            .unwrap();
        assert!(a[0] > 0.5 && a[1] < -0.5, "action {a:?}");
        assert_eq!(rec.action, a);
        assert_ne!(
            rec.actions[0], a,
            "the mean is not one of the sampled candidates"
        );
    }

    #[test]
    fn the_disagreement_penalty_ranks_a_plan_the_models_disagree_on_lower() {
        let mut s = stats(
            &[1.0, 0.8],
            &[1.0, 1.0],
            &[&[0.0], &[0.0]],
            &[&[0.0], &[0.0]],
        );
        s.value_std = vec![0.5, 0.1];
        let scores = |k: f32| {
            let cfg = PlannerConfig {
                disagreement_penalty: k,
                ..small()
            };
            score_candidates(&s, 1, &cfg, 0.5)
        };
        let plain = scores(0.0);
        assert!(plain[0].score > plain[1].score);
        let penalised = scores(1.0);
        assert!((penalised[0].score - 0.5).abs() < 1e-6 && (penalised[1].score - 0.7).abs() < 1e-6);
        assert!(penalised.iter().all(|s| s.feasible));
    }

    #[test]
    fn a_violating_candidate_is_infeasible_even_with_the_higher_value() {
        let cfg = PlannerConfig::default();
        let s = stats(
            &[5.0, 1.0],
            &[0.9, 0.9],
            &[&[0.1, 0.9], &[0.1, 0.1]],
            &[&[0.0; 2], &[0.0; 2]],
        );
        let scores = score_candidates(&s, 2, &cfg, 0.8);
        assert!(!scores[0].feasible && scores[1].feasible);
        assert_eq!(elites(&scores, 100), vec![1]);
        // The goal bonus cannot buy a violating plan back into the feasible set.
        let s = stats(&[5.0], &[0.9], &[&[0.9, 0.1]], &[&[9.0, 9.0]]);
        assert!(!score_candidates(&s, 2, &cfg, 0.8)[0].feasible);
    }

    #[test]
    fn imagined_paths_through_the_constraint_region_are_rejected() {
        // Reward +x; every latent with x > 1 violates; two steps of at most 1 each.
        let toy = Toy::new().value([1.0, 0.0]).forbid_x_above(1.0);
        let (_, rec) = Planner::new(1.0, 2)
            .plan(&toy, &start(), &valid(small()))
            .unwrap();
        assert!(
            rec.feasible[0] < 200,
            "some uniform candidates violate: {:?}",
            rec.feasible
        );
        assert!(rec.latents.iter().all(|z| z[0] <= 1.0), "{:?}", rec.latents);
        assert!(rec.constraint_prob.iter().all(|&p| p <= 0.2));
        assert!(rec.latents[1][0] > 0.8, "still goes as far as allowed");
    }

    #[test]
    fn stored_candidates_rescore_to_the_planners_own_feasibility_at_other_thresholds() {
        // The constraint region cuts some candidates; P(safe) = 0.3 makes the safe set decide.
        let toy = Toy::new()
            .value([1.0, 0.0])
            .forbid_x_above(1.0)
            .safe_prob(0.3);
        let cfg = small();
        let (_, rec) = Planner::new(1.0, 2)
            .plan(&toy, &start(), &valid(cfg.clone()))
            .unwrap();
        let stats = rec
            .candidates
            .clone()
            .expect("the call keeps its candidates");
        assert_eq!(stats.len(), cfg.population);
        let now = *rec.feasible.last().unwrap();
        assert_eq!(stats.feasible_now, now);
        // At the call's own (decayed) threshold: exactly the planner's count.
        assert_eq!(stats.feasible_with(&cfg, rec.safe_set_threshold), now);
        assert!(0 < now && now < cfg.population, "{now} {:?}", rec.feasible);
        // The undecayed threshold rejects every candidate (P(safe) = 0.3 < 0.8) …
        assert_eq!(stats.feasible_at(&cfg), 0);
        // … and without the constraint term only the safe-set test is left.
        let lax = PlannerConfig {
            ignore_constraints: true,
            ..cfg.clone()
        };
        assert_eq!(
            stats.feasible_with(&lax, rec.safe_set_threshold),
            cfg.population
        );
    }

    #[test]
    fn ignoring_constraints_accepts_the_forbidden_candidates() {
        let toy = Toy::new().value([1.0, 0.0]).forbid_x_above(1.0);
        let cfg = PlannerConfig {
            ignore_constraints: true,
            ..small()
        };
        let (a, rec) = Planner::new(1.0, 2)
            .plan(&toy, &start(), &valid(cfg.clone()))
            .unwrap();
        assert_eq!(rec.feasible[0], 200);
        assert!(rec.latents[1][0] > 1.5 && a[0] > 0.8, "{:?}", rec.latents);
        assert!(rec.constraint_prob[1] > 0.2);
    }

    #[test]
    fn ignoring_the_safe_set_makes_misses_irrelevant() {
        let toy = Toy::new().value([1.0, 0.0]).safe_prob(0.1);
        let s = stats(&[1.0], &[0.1], &[&[0.0, 0.0]], &[&[0.0, 0.0]]);
        let cfg = PlannerConfig {
            ignore_safe_set: true,
            ..small()
        };
        assert!(score_candidates(&s, 2, &cfg, 0.8)[0].feasible);
        assert!(!score_candidates(&s, 2, &small(), 0.8)[0].feasible);
        let (_, rec) = Planner::new(1.0, 3)
            .plan(&toy, &start(), &valid(cfg.clone()))
            .unwrap();
        assert_eq!(rec.feasible, vec![200; 3]);
        assert_eq!((rec.decays, rec.safe_set_threshold), (0, 0.8));
    }

    #[test]
    fn nan_scores_are_infeasible() {
        let cfg = PlannerConfig::default();
        for s in [
            stats(&[f32::NAN], &[0.9], &[&[0.0]], &[&[0.0]]),
            stats(&[1.0], &[f32::NAN], &[&[0.0]], &[&[0.0]]),
            stats(&[1.0], &[0.9], &[&[f32::NAN]], &[&[0.0]]),
            stats(&[1.0], &[0.9], &[&[0.0]], &[&[f32::NAN]]),
        ] {
            let sc = score_candidates(&s, 1, &cfg, 0.8)[0];
            assert_eq!(
                sc,
                Score {
                    score: -PENALTY,
                    feasible: false
                }
            );
        }
        // End to end: the value is NaN beyond x = 0.5, so the plan stops short of it.
        let toy = Toy::new().value([1.0, 0.0]).nan_value_x_above(0.5);
        let (_, rec) = Planner::new(1.0, 4)
            .plan(&toy, &start(), &valid(small()))
            .unwrap();
        assert!(rec.feasible[0] < 200 && rec.value.is_finite() && rec.latents[1][0] <= 0.5);
    }

    /// Thresholds the planner tries: 0.8, then ×0.8 per decay, in f32 as the planner computes.
    fn thresholds(k: usize) -> f32 {
        (0..k).fold(0.8f32, |t, _| t * 0.8)
    }

    #[test]
    fn threshold_decays_by_0_8_and_restarts_uniform_until_a_plan_is_feasible() {
        // P(safe) = 0.3 everywhere: 0.8, 0.64, 0.512, 0.41, 0.33 fail; 0.262 succeeds.
        let toy = Toy::new().value([1.0, 0.0]).safe_prob(0.3);
        let (_, rec) = Planner::new(1.0, 5)
            .plan(&toy, &start(), &valid(small()))
            .unwrap();
        assert_eq!(rec.decays, 5);
        assert!(!rec.random_fallback);
        assert_eq!(rec.safe_set_threshold, thresholds(5));
        assert_eq!(rec.feasible, vec![0, 0, 0, 0, 0, 200, 200, 200]);
        let jobs = toy.jobs();
        assert_eq!(
            jobs.len(),
            5 + 3,
            "one failed iteration per decay, then 3 scored iterations"
        );
        for job in &jobs[..6] {
            for d in 0..2 {
                let v: Vec<f32> = job.actions.iter().skip(d).step_by(2).copied().collect();
                let (lo, hi) = v
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(l, h), &x| (l.min(x), h.max(x)));
                assert!(
                    lo < -0.9 && hi > 0.9,
                    "restart {d} samples uniformly: {lo}..{hi}"
                );
            }
        }
    }

    #[test]
    fn more_than_five_decays_fall_back_to_a_random_action() {
        let toy = Toy::new().value([1.0, 0.0]).safe_prob(0.2);
        let (a, rec) = Planner::new(2.0, 6)
            .plan(&toy, &start(), &valid(small()))
            .unwrap();
        assert!(rec.random_fallback);
        assert_eq!(rec.decays, 6);
        assert_eq!(rec.feasible, vec![0; 6]);
        assert_eq!(toy.jobs().len(), 6);
        assert_eq!(rec.safe_set_threshold, thresholds(5));
        assert!(a.iter().all(|x| x.abs() <= 2.0));
        assert_eq!(rec.action, a);
    }

    #[test]
    fn safest_plan_fallback_heads_for_the_safe_set_and_shows_that_plan() {
        // P(safe) rises with the final y but stays below the last threshold (0.26) everywhere
        // reachable, so nothing is ever feasible; the value pulls toward +x instead.
        let toy = Toy::new()
            .value([1.0, 0.0])
            .safe_prob(0.01)
            .safe_slope_y(0.5);
        let cfg = PlannerConfig {
            fallback: Fallback::SafestPlan,
            horizon: 3,
            ..small()
        };
        let (a, rec) = Planner::new(1.0, 7)
            .plan(&toy, &start(), &valid(cfg.clone()))
            .unwrap();
        assert!(rec.random_fallback && rec.decays == 6);
        assert!(a[1] > 0.0, "the safest plan climbs in y first: {a:?}");
        let last = rec.latents.last().unwrap();
        assert!(
            last[1] > 0.5 * cfg.horizon as f32,
            "plan ends at y = {}",
            last[1]
        );
        assert_eq!(rec.action, a);
        assert_eq!(rec.actions[0], a);
    }

    #[test]
    fn safest_plan_prefers_fewer_violations_over_a_higher_safe_set() {
        let stats = RolloutStats {
            constraint: vec![0.9, 0.0, 0.0, 0.0, 0.1, 0.3],
            safe_set: vec![0.9, 0.2, 0.1],
            ..RolloutStats::zeros(3, 2, 2)
        };
        let cfg = PlannerConfig::default();
        // candidate 0 violates once, 1 never (ss 0.2), 2 once (0.3 > 0.2)
        assert_eq!(safest(&stats, 2, &cfg), 1);
        let ablated = PlannerConfig {
            ignore_constraints: true,
            ..cfg
        };
        assert_eq!(safest(&stats, 2, &ablated), 0);
    }

    #[test]
    fn the_same_seed_gives_the_same_plan() {
        let toy = Toy::new().value([0.3, 1.0]);
        let cfg = small();
        let plan = |seed| {
            Planner::new(1.0, seed)
                .plan(&toy, &start(), &valid(cfg.clone()))
                .unwrap()
        };
        let (a1, r1) = plan(7);
        let (a2, r2) = plan(7);
        let (a3, _) = plan(8);
        assert_eq!((a1, &r1), (a2, &r2));
        assert_ne!(a1, a3);
    }

    #[test]
    fn warm_start_uses_the_previous_elites_until_reset() {
        let toy = Toy::new().value([1.0, -1.0]);
        let cfg = PlannerConfig {
            random_percent: 0.25,
            ..small()
        };
        let mut planner = Planner::new(1.0, 9);
        planner.plan(&toy, &start(), &valid(cfg.clone())).unwrap();
        planner.plan(&toy, &start(), &valid(cfg.clone())).unwrap();
        let jobs = toy.jobs();
        let first = &jobs[3].actions; // first iteration of the second call
        let near = first.chunks(4).take(150).filter(|a| a[0] > 0.5).count();
        assert!(
            near > 140,
            "150 of 200 drawn around the previous plan, {near} of them near it"
        );
        planner.reset();
        planner.plan(&toy, &start(), &valid(cfg.clone())).unwrap();
        let uniform = &toy.jobs()[6].actions;
        let near = uniform.chunks(4).take(150).filter(|a| a[0] > 0.5).count();
        assert!(
            near < 80,
            "after reset the first iteration is uniform ({near})"
        );
    }

    #[test]
    fn plans_with_a_fresh_navigation_agent_end_to_end() {
        let agent = Agent::new(AgentSpec::for_env(EnvKind::Navigation), &Device::Cpu, 0).unwrap();
        let z0 = Tensor::zeros(32, candle_core::DType::F32, &Device::Cpu).unwrap();
        let cfg = PlannerConfig {
            population: 60,
            elites: 10,
            iterations: 3,
            particles: 4,
            horizon: 3,
            ..PlannerConfig::default()
        };
        let mut planner = Planner::for_env(EnvKind::Navigation, 0);
        let (a, rec) = planner.plan(&agent, &z0, &valid(cfg.clone())).unwrap();
        let b = EnvKind::Navigation.action_bound();
        assert!(a.iter().all(|x| x.abs() <= b));
        assert_eq!(rec.start.len(), 32);
        assert_eq!(rec.actions.len(), 3);
        assert_eq!(rec.latents.len(), 3);
        assert!(
            rec.latents
                .iter()
                .all(|z| z.len() == 32 && z.iter().all(|v| v.is_finite()))
        );
        assert_eq!((rec.constraint_prob.len(), rec.goal_prob.len()), (3, 3));
        assert!(
            rec.constraint_prob
                .iter()
                .chain(&rec.goal_prob)
                .all(|p| (0.0..=1.0).contains(p))
        );
        assert!((0.0..=1.0).contains(&rec.safe_set_prob) && rec.value.is_finite());
        assert!(!rec.feasible.is_empty() && rec.feasible.len() <= 2 + 6);
        assert_eq!(rec.config, cfg);
        serde_json::to_string(&rec).unwrap();
        let again = Planner::for_env(EnvKind::Navigation, 0)
            .plan(&agent, &z0, &valid(cfg.clone()))
            .unwrap();
        assert_eq!(
            again,
            (a, rec),
            "the same seed plans the same on the fused path"
        );
    }

    #[test]
    fn a_bf16_planner_call_scores_its_candidates_like_the_f32_call() {
        if !crate::cpu::avx512_bf16() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        let agent = Agent::new(AgentSpec::for_env(EnvKind::Navigation), &Device::Cpu, 0).unwrap();
        let z0 = Tensor::full(0.1f32, (1, 32), &Device::Cpu).unwrap();
        // One scored iteration: both calls score the same candidates with the same noise, so
        // their best scores, and the k-th best for every k, differ by at most the largest
        // per-candidate difference.
        let cfg = valid(PlannerConfig {
            population: 300,
            elites: 30,
            iterations: 1,
            particles: 5,
            horizon: 3,
            ignore_safe_set: true,
            ignore_constraints: true,
            ..PlannerConfig::default()
        });
        let (_, f) = Planner::for_env(EnvKind::Navigation, 4)
            .plan(&agent, &z0, &cfg)
            .unwrap();
        let (_, b) = Planner::for_env(EnvKind::Navigation, 4)
            .plan(&crate::planner::testing::InBf16(&agent), &z0, &cfg)
            .unwrap();
        let (fe, be) = (
            &f.candidates.as_ref().unwrap().elite_scores,
            &b.candidates.as_ref().unwrap().elite_scores,
        );
        // (0.4 % of the elites' spread here)
        let spread = fe[0] - fe[fe.len() - 1];
        assert_eq!(fe.len(), be.len());
        assert!(
            (f.score - b.score).abs() <= 0.02 * spread,
            "{} vs {}",
            f.score,
            b.score
        );
        for (k, (x, y)) in fe.iter().zip(be).enumerate() {
            assert!((x - y).abs() <= 0.02 * spread, "{k}-th best: {x} vs {y}");
        }
    }

    /// The agent, counting how often the planner packs it.
    struct CountingPacks<'a>(&'a Agent, std::cell::Cell<usize>);

    impl LatentModels for CountingPacks<'_> {
        fn device(&self) -> &candle_core::Device {
            LatentModels::device(self.0)
        }
        fn dynamics_members(&self) -> usize {
            self.0.dynamics_members()
        }
        fn dynamics(
            &self,
            m: usize,
            z: &Tensor,
            a: &Tensor,
        ) -> candle_core::Result<(Tensor, Tensor)> {
            LatentModels::dynamics(self.0, m, z, a)
        }
        fn step_heads(&self, z: &Tensor) -> candle_core::Result<Tensor> {
            self.0.step_heads(z)
        }
        fn final_heads(&self, z: &Tensor) -> candle_core::Result<Tensor> {
            self.0.final_heads(z)
        }
        fn packed(&self) -> candle_core::Result<Option<FusedModels>> {
            self.1.set(self.1.get() + 1);
            self.0.packed()
        }
        fn weights_version(&self) -> Option<u64> {
            Some(self.0.weights_version())
        }
    }

    #[test]
    fn weights_are_packed_once_per_version_and_new_weights_are_seen() {
        use crate::model::agent::ModuleKind;
        let spec = AgentSpec::for_env(EnvKind::Navigation);
        let (a, b) = (
            Agent::new(spec.clone(), &Device::Cpu, 0).unwrap(),
            Agent::new(spec, &Device::Cpu, 1).unwrap(),
        );
        let z0 = Tensor::full(0.1f32, (1, 32), &Device::Cpu).unwrap();
        let cfg = valid(PlannerConfig {
            ignore_safe_set: true,
            ignore_constraints: true,
            ..small()
        });
        let counting = CountingPacks(&a, std::cell::Cell::new(0));
        let (mut p, mut q) = (
            Planner::for_env(EnvKind::Navigation, 5),
            Planner::for_env(EnvKind::Navigation, 5),
        );
        for _ in 0..3 {
            let from_p = p.plan(&counting, &z0, &cfg).unwrap();
            assert_eq!(from_p, q.plan(&a, &z0, &cfg).unwrap());
        }
        assert_eq!(counting.1.get(), 1, "three plans with the same weights");
        // load b's weights into a: the next plan must use them, as a planner that never saw a
        // does with b itself
        for m in ModuleKind::ALL {
            let tensors = b
                .vars(m)
                .data()
                .lock()
                .unwrap()
                .iter()
                .map(|(n, v)| (n.clone(), v.as_tensor().copy().unwrap()))
                .collect();
            crate::model::checkpoint::assign(&a, m, tensors, std::path::Path::new("b")).unwrap();
        }
        let from_p = p.plan(&counting, &z0, &cfg).unwrap();
        assert_eq!(counting.1.get(), 2, "new weights are packed again");
        assert_eq!(from_p, q.plan(&b, &z0, &cfg).unwrap());
    }
}
