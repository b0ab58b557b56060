//! What the analysis views draw — plans, latents, heatmaps and learning curves — as plain data
//! the worker reports and [`super::state::AppState`] keeps. The worker computes all of it (decoding,
//! PCA, heatmaps); the views only read it.

use crate::analysis::heatmap::Heatmaps;
use crate::env::Frame;
use crate::model::agent::ModuleKind;
use crate::model::probe::LinearProbe;
use crate::planner::PlanRecord;
use crate::train::metrics::{EpisodeSummary, RoundMetrics};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One planner call as the plan view shows it: the record and its imagined latents decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanShot {
    pub record: PlanRecord,
    /// `imagined[i]` is the decoded `record.latents[i]` (the frame expected after step `i + 1`);
    /// empty when decoding was skipped.
    pub imagined: Vec<Frame>,
}

/// Where a background job stands: the phase, how far it got and the time it expects to need.
#[derive(Clone, Debug, PartialEq)]
pub struct JobProgress {
    /// E.g. "collecting demos", "VAE", "safe set", "round 3/5 episode 2/4".
    pub phase: String,
    pub done: usize,
    pub total: usize,
    /// Estimated time left in this phase, once it can be estimated.
    pub eta: Option<Duration>,
    /// The latest training loss of the phase, if it trains.
    pub loss: Option<f32>,
}

/// What a training run reported so far, for the curves and the top bar.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingData {
    /// The run folder, once the run has one.
    pub run_dir: Option<PathBuf>,
    pub progress: Option<JobProgress>,
    /// Per module: `(iteration, mean loss of a chunk)` in order.
    pub losses: Vec<(ModuleKind, Vec<[f64; 2]>)>,
    /// Agent episodes in order.
    pub episodes: Vec<EpisodeSummary>,
    pub rounds: Vec<RoundMetrics>,
    /// Mean cost of the demonstrators' episodes (reference line of the cost curve).
    pub demo_mean_cost: Option<f32>,
    /// The VAE's latest reconstructions while it trains (and its last ones after).
    pub reconstructions: Option<Arc<crate::train::phases::Reconstructions>>,
    /// What the trained VAE's latents encode.
    pub probe: Option<Arc<crate::model::probe::ProbeReport>>,
    /// Rounds of other runs to overlay (e.g. the ablations of `ls3 results`), by name.
    pub overlays: Vec<(String, Vec<RoundMetrics>)>,
    /// Variants of an opened sweep: per round, mean ± std over seeds, by name.
    pub sweep_overlays: Vec<(String, Vec<crate::analysis::sweep::RoundSpread>)>,
}

impl TrainingData {
    /// Appends one loss point of `module`.
    pub fn push_loss(&mut self, module: ModuleKind, iteration: u64, loss: f32) {
        let point = [iteration as f64, loss as f64];
        match self.losses.iter_mut().find(|(m, _)| *m == module) {
            Some((_, points)) => points.push(point),
            None => self.losses.push((module, vec![point])),
        }
    }

    /// The loss points of `module` (empty when none yet).
    pub fn loss(&self, module: ModuleKind) -> &[[f64; 2]] {
        self.losses
            .iter()
            .find(|(m, _)| *m == module)
            .map_or(&[], |(_, p)| p.as_slice())
    }
}

/// What a latent point stands for, in the order the latent view colours them (the first that
/// holds wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LatentLabel {
    /// The constraint is violated in this observation.
    Constraint,
    /// The goal holds.
    Goal,
    /// Inside the safe set (on a path that reached the goal).
    SafeSet,
    /// From a demonstration, otherwise unlabelled.
    Demo,
    /// From an agent episode, otherwise unlabelled.
    Agent,
}

impl LatentLabel {
    pub const ALL: [LatentLabel; 5] = [
        LatentLabel::Constraint,
        LatentLabel::Goal,
        LatentLabel::SafeSet,
        LatentLabel::Demo,
        LatentLabel::Agent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LatentLabel::Constraint => "constraint",
            LatentLabel::Goal => "goal",
            LatentLabel::SafeSet => "safe set",
            LatentLabel::Demo => "demo",
            LatentLabel::Agent => "agent",
        }
    }
}

/// A 2-D PCA of replay latents: the projected points with their labels, and the projection
/// itself so the current state and imagined plans can be drawn in the same plane.
#[derive(Clone, Debug, PartialEq)]
pub struct LatentSnapshot {
    /// Projected points (a subsample of the replay buffer).
    pub points: Vec<[f32; 2]>,
    pub labels: Vec<LatentLabel>,
    /// The decoded image of some points (`thumbnails[i]` belongs to `points[i]`), for hovering.
    pub thumbnails: Vec<Option<Frame>>,
    /// Mean latent the projection subtracts.
    pub mean: Vec<f32>,
    /// The two principal directions (unit length, latent size each).
    pub components: [Vec<f32>; 2],
    /// Fraction of the variance each component explains.
    pub explained: [f32; 2],
}

impl LatentSnapshot {
    /// Projects a latent onto the two components.
    pub fn project(&self, z: &[f32]) -> [f32; 2] {
        crate::analysis::pca::project(&self.mean, &self.components, z)
    }
}

/// Heatmaps of the current agent, with the state whose non-grid parts they hold fixed.
#[derive(Clone, Debug, PartialEq)]
pub struct HeatmapSnapshot {
    pub maps: Heatmaps,
    /// The state the grid was built around (push: where the blocks were).
    pub base: Vec<f64>,
    /// Counts the snapshots of this app run, so views can tell a new one from the last.
    pub version: u64,
}

/// The analysis data of the app, shared cheaply between state and views.
#[derive(Clone, Debug, Default)]
pub struct AnalysisData {
    pub training: TrainingData,
    pub latents: Option<Arc<LatentSnapshot>>,
    pub heatmaps: Option<Arc<HeatmapSnapshot>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_are_kept_per_module_in_order() {
        let mut t = TrainingData::default();
        t.push_loss(ModuleKind::Vae, 25, 3.0);
        t.push_loss(ModuleKind::Dyn, 50, 1.0);
        t.push_loss(ModuleKind::Vae, 50, 2.0);
        assert_eq!(t.loss(ModuleKind::Vae), [[25.0, 3.0], [50.0, 2.0]]);
        assert_eq!(t.loss(ModuleKind::Dyn), [[50.0, 1.0]]);
        assert!(t.loss(ModuleKind::Gi).is_empty());
    }

    #[test]
    fn projection_subtracts_the_mean_and_dots_the_components() {
        let s = LatentSnapshot {
            points: vec![],
            labels: vec![],
            thumbnails: vec![],
            mean: vec![1.0, 1.0, 0.0],
            components: [vec![1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0]],
            explained: [0.6, 0.3],
        };
        assert_eq!(s.project(&[3.0, 7.0, -2.0]), [2.0, -2.0]);
    }
}

/// A linear map from the loaded agent's latents to image pixels of the environment's markers
/// (navigation's robot, reacher's fingertip, push's pusher, then push's blocks), fitted on its
/// demo latents: where the planner's imagined latents are drawn in the scene. `r2` (held out, per
/// pixel axis) says how far to trust the drawing.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneProbe {
    pub probe: LinearProbe,
    /// Held-out R² (x, y) of the path marker.
    pub r2: [f64; 2],
    /// Held-out R² (x, y) of each further object (push's blocks; empty elsewhere).
    pub objects_r2: Vec<[f64; 2]>,
}

impl SceneProbe {
    /// Fits on the `(latent, pixels)` pairs of 4 of every 5 episodes and scores on the fifth's
    /// (whole episodes held out, so neighbouring frames do not flatter the score); `None` with
    /// fewer than 10 pairs or no pair on either side. `latents` is `[n][latent]`, `pixels`
    /// `[n][markers][2]` (the path marker first), `episode` `[n]`.
    ///
    /// The score is 1 − (held-out mean squared error) / (variance over all pairs): a few held-out
    /// episodes can span a narrow range of a coordinate, and their own variance would then turn
    /// a small error into a large negative R².
    pub fn fit(latents: &[f32], pixels: &[f64], markers: usize, episode: &[usize]) -> Option<Self> {
        let width = 2 * markers.max(1);
        let n = episode.len();
        let held = |i: usize| episode[i] % 5 == 4;
        if n < 10
            || !latents.len().is_multiple_of(n)
            || pixels.len() != n * width
            || (0..n).all(held)
            || !(0..n).any(held)
        {
            return None;
        }
        let l = latents.len() / n;
        let (mut fx, mut fy, mut hx, mut hy) = (vec![], vec![], vec![], vec![]);
        for i in 0..n {
            let (x, y) = if held(i) {
                (&mut hx, &mut hy)
            } else {
                (&mut fx, &mut fy)
            };
            x.extend_from_slice(&latents[i * l..(i + 1) * l]);
            y.extend_from_slice(&pixels[i * width..(i + 1) * width]);
        }
        let probe = LinearProbe::fit(&fx, &fy, width);
        let pred: Vec<f64> = hx.chunks(l).flat_map(|z| probe.predict(z)).collect();
        let held_n = hy.len() / width;
        let r2: Vec<f64> = (0..width)
            .map(|o| {
                let column =
                    |v: &[f64]| v.iter().skip(o).step_by(width).copied().collect::<Vec<_>>();
                let all = column(pixels);
                let mean = all.iter().sum::<f64>() / n as f64;
                let var = all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
                let (p, t) = (column(&pred), column(&hy));
                let mse =
                    p.iter().zip(&t).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / held_n as f64;
                1.0 - mse / var.max(1e-12)
            })
            .collect();
        let pairs: Vec<[f64; 2]> = r2.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        Some(Self {
            probe,
            r2: pairs[0],
            objects_r2: pairs[1..].to_vec(),
        })
    }

    /// The pixel of the path marker a latent maps to.
    pub fn pixel(&self, z: &[f32]) -> [f32; 2] {
        let p = self.probe.predict(z);
        [p[0] as f32, p[1] as f32]
    }

    /// The pixels of the further objects a latent maps to (push: the blocks).
    pub fn objects(&self, z: &[f32]) -> Vec<[f32; 2]> {
        let p = self.probe.predict(z);
        p[2..]
            .chunks_exact(2)
            .map(|q| [q[0] as f32, q[1] as f32])
            .collect()
    }
}

#[cfg(test)]
mod scene_probe_tests {
    #[test]
    fn the_scene_probe_recovers_a_linear_latent_to_pixel_map() {
        let probe = crate::app::testing::scene_probe();
        assert!(probe.r2.iter().all(|&r| r > 0.999), "{:?}", probe.r2);
        let mut z = vec![0.0; crate::model::LATENT];
        z[0] = 4.5;
        z[1] = -2.0;
        let [x, y] = probe.pixel(&z);
        assert!((x - 14.0).abs() < 0.1 && (y - 1.0).abs() < 0.1, "{x} {y}");
        assert!(probe.objects(&z).is_empty() && probe.objects_r2.is_empty());
    }

    #[test]
    fn further_objects_get_their_own_map_and_score() {
        // marker (z0, z1); one object at (10 − z1, 2 z0); 8 episodes of 10 frames
        let (mut latents, mut pixels, mut episode) = (vec![], vec![], vec![]);
        for e in 0..8 {
            for t in 0..10 {
                let (a, b) = (e as f32 + 0.3 * t as f32, (t * 3 % 7) as f32);
                let mut z = vec![0.0; crate::model::LATENT];
                (z[0], z[1], z[3]) = (a, b, (e * t % 3) as f32);
                latents.extend(z);
                pixels.extend([a as f64, b as f64, 10.0 - b as f64, 2.0 * a as f64]);
                episode.push(e);
            }
        }
        let probe = super::SceneProbe::fit(&latents, &pixels, 2, &episode).expect("fits");
        assert_eq!(probe.objects_r2.len(), 1);
        assert!(probe.objects_r2[0].iter().all(|&r| r > 0.999));
        let mut z = vec![0.0; crate::model::LATENT];
        (z[0], z[1], z[3]) = (2.0, 4.0, 1.0);
        let [[x, y]] = probe.objects(&z)[..] else {
            panic!("one object")
        };
        assert!((x - 6.0).abs() < 0.01 && (y - 4.0).abs() < 0.01, "{x} {y}");
    }

    #[test]
    fn a_held_out_episode_of_narrow_range_is_scored_against_the_whole_spread() {
        // x = z₀ + a small wobble; episodes 0–3 sweep x over 0..40, episode 4 stays near 20.
        let (mut latents, mut pixels, mut episode) = (vec![], vec![], vec![]);
        for e in 0..5 {
            for t in 0..20 {
                let x = if e == 4 {
                    20.0 + 0.1 * t as f64
                } else {
                    2.0 * t as f64
                };
                let wobble = if t % 2 == 0 { 0.3 } else { -0.3 };
                let mut z = vec![0.0; crate::model::LATENT];
                z[0] = x as f32;
                latents.extend(z);
                pixels.extend([x + wobble, 1.0 + wobble]);
                episode.push(e);
            }
        }
        let probe = super::SceneProbe::fit(&latents, &pixels, 1, &episode).expect("fits");
        // Error ≈ the wobble (0.3) against x's spread over all episodes (std ≈ 11): R² ≈ 1.
        assert!(probe.r2[0] > 0.99, "{:?}", probe.r2);
    }

    #[test]
    fn without_a_held_out_episode_there_is_no_score_and_no_probe() {
        let z = vec![0.5; crate::model::LATENT * 20];
        let pixels = vec![1.0; 2 * 20];
        assert!(super::SceneProbe::fit(&z, &pixels, 1, &[0; 20]).is_none());
        assert!(super::SceneProbe::fit(&z, &pixels, 1, &[4; 20]).is_none());
    }

    #[test]
    fn too_few_points_fit_no_scene_probe() {
        let z = vec![0.0; crate::model::LATENT * 5];
        assert!(super::SceneProbe::fit(&z, &[1.0; 10], 1, &[0, 1, 2, 3, 4]).is_none());
    }
}
