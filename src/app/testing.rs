//! Hand-made app states for the view tests: one finished agent episode with plans, a live one,
//! a latent snapshot, heatmaps and training curves — everything the worker would report.

use super::data::{HeatmapSnapshot, LatentLabel, LatentSnapshot, PlanShot};
use super::state::AppState;
use super::worker::{AGENT_NAME, EpisodeEnd, EpisodeStart, Event, StepEvent, TrainingUpdate};
use crate::analysis::heatmap::{Heatmaps, axes};
use crate::env::{EnvKind, Frame, Overlay, OverlayShape};
use crate::model::agent::ModuleKind;
use crate::planner::{PlanRecord, PlannerConfig};
use crate::train::metrics::{EpisodeSummary, RoundMetrics};
use std::sync::Arc;

/// Latent size of the hand-made plans.
pub const LATENT: usize = 4;

/// A frame of one colour.
pub fn frame(shade: u8) -> Frame {
    Frame(vec![shade; crate::env::raster::FRAME_LEN])
}

/// A plan of `horizon` steps starting at latent `[t, 0, 0, 0]`; `random` marks a fallback.
pub fn plan(t: usize, horizon: usize, random: bool) -> PlanShot {
    let config = PlannerConfig {
        horizon,
        ..PlannerConfig::default()
    };
    let latent = |k: usize| {
        let mut z = vec![0.0; LATENT];
        z[0] = (t + k) as f32;
        z[1] = k as f32 * 0.5;
        z
    };
    PlanShot {
        record: PlanRecord {
            action: [0.5, -0.25],
            start: latent(0),
            actions: vec![[0.5, -0.25]; horizon],
            latents: (1..=horizon).map(latent).collect(),
            constraint_prob: (0..horizon).map(|k| 0.1 * k as f32).collect(),
            goal_prob: (0..horizon).map(|k| 0.2 * k as f32).collect(),
            safe_set_prob: 0.85,
            value: -12.5,
            score: -12.0,
            feasible: vec![120, 400, 800, 950],
            safe_set_threshold: 0.64,
            decays: 1,
            random_fallback: random,
            candidates: Some(std::sync::Arc::new(candidates(config.population))),
            spread: Some(crate::planner::PlanSpread {
                particle_std: (0..horizon).map(|k| 0.2 * (k + 1) as f32).collect(),
                member_std: (0..horizon).map(|k| 0.1 * (k + 1) as f32).collect(),
                constraint_min: (0..horizon).map(|k| 0.05 * k as f32).collect(),
                constraint_max: (0..horizon).map(|k| 0.1 * k as f32).collect(),
            }),
            config,
        },
        imagined: (0..horizon).map(|k| frame(40 * k as u8)).collect(),
    }
}

/// `n` candidates: terminal safe-set probability i / n; every second one predicts a violation
/// (0.5), the others 0.1; 20 % of them feasible at the default thresholds (0.8, 0.2).
pub fn candidates(n: usize) -> crate::planner::CandidateStats {
    crate::planner::CandidateStats {
        safe_set: (0..n).map(|i| i as f32 / n as f32).collect(),
        max_constraint: (0..n).map(|i| if i % 2 == 0 { 0.1 } else { 0.5 }).collect(),
        usable: vec![true; n],
        feasible_now: n / 10,
        ..Default::default()
    }
}

/// A scene probe that maps latent `z` to pixel `(2 z₀ + 5, 3 z₁ + 7)`, fitted on a grid.
pub fn scene_probe() -> crate::app::data::SceneProbe {
    scene_probe_with_objects(0)
}

/// [`scene_probe`] with `objects` further objects, object `k` at `(z₀ + k, z₁)`.
pub fn scene_probe_with_objects(objects: usize) -> crate::app::data::SceneProbe {
    let (mut latents, mut pixels) = (vec![], vec![]);
    for i in 0..20 {
        for j in 0..20 {
            let mut z = vec![0.0; crate::model::LATENT];
            z[0] = i as f32;
            z[1] = j as f32;
            // other dimensions vary without mattering
            z[2] = ((i * 7 + j * 3) % 5) as f32;
            latents.extend(z);
            pixels.extend([2.0 * i as f64 + 5.0, 3.0 * j as f64 + 7.0]);
            for k in 0..objects {
                pixels.extend([(i + k) as f64, j as f64]);
            }
        }
    }
    // 20 "episodes" of 20 frames: rows of the grid
    let episode: Vec<usize> = (0..400).map(|k| k / 20).collect();
    crate::app::data::SceneProbe::fit(&latents, &pixels, 1 + objects, &episode)
        .expect("enough points")
}

/// Candidate numbers with `elites` elite paths of `horizon` steps and 30 first-iteration ends.
pub fn search(elites: usize, horizon: usize) -> crate::planner::CandidateStats {
    let latent = |a: f32, b: f32| {
        let mut z = vec![0.0; LATENT];
        z[0] = a;
        z[1] = b;
        z
    };
    crate::planner::CandidateStats {
        horizon,
        latent: LATENT,
        elite_latents: (0..elites)
            .flat_map(|e| (0..horizon).flat_map(move |k| latent(k as f32, e as f32)))
            .collect(),
        elite_scores: (0..elites).map(|e| -(e as f32)).collect(),
        first_terminal: (0..30).flat_map(|c| latent(c as f32 % 9.0, 3.0)).collect(),
        // 4 particles fanning out from the best elite's path
        particles: crate::planner::Particles {
            count: 4,
            horizon,
            latent: LATENT,
            latents: (0..4)
                .flat_map(|p| (0..horizon).flat_map(move |k| latent(k as f32, 0.3 * p as f32)))
                .collect(),
        },
        ..candidates(30)
    }
}

fn start(episode: u64) -> Event {
    Event::EpisodeStarted(EpisodeStart {
        episode,
        kind: EnvKind::Navigation,
        demonstrator: AGENT_NAME,
        steps: 6,
        overlay: Overlay {
            hazards: vec![OverlayShape::Rect {
                min: [20.0, 10.0],
                max: [30.0, 40.0],
            }],
            goals: vec![OverlayShape::Circle {
                center: [50.0, 32.0],
                radius: 3.0,
            }],
        },
        frame: frame(0),
        state: vec![10.0, 75.0],
        marker: [4.0, 32.0],
    })
}

fn step(episode: u64, t: usize) -> Event {
    Event::Step(StepEvent {
        episode,
        t,
        action: [0.5, -0.25],
        frame: frame(20 * t as u8),
        state: vec![10.0 + 20.0 * t as f64, 75.0],
        marker: [4.0 + 7.0 * t as f32, 32.0],
        reward: if t == 4 { 0.0 } else { -1.0 },
        constraint: t == 2,
        plan: Some(Arc::new(plan(t - 1, 3, t == 3))),
    })
}

/// A latent snapshot with one point per label (and a thumbnail on the first).
pub fn latents() -> LatentSnapshot {
    let points: Vec<[f32; 2]> = (0..10).map(|i| [i as f32, (i % 3) as f32]).collect();
    let labels = (0..10)
        .map(|i| LatentLabel::ALL[i % LatentLabel::ALL.len()])
        .collect();
    let mut thumbnails = vec![None; 10];
    thumbnails[0] = Some(frame(200));
    LatentSnapshot {
        points,
        labels,
        thumbnails,
        mean: vec![0.0; LATENT],
        components: [vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0]],
        explained: [0.6, 0.25],
    }
}

/// Navigation heatmaps of a 6 × 5 grid (one NaN cell in the value map).
pub fn heatmaps() -> HeatmapSnapshot {
    let (nx, ny) = (6, 5);
    let ramp = |scale: f32, offset: f32| -> Vec<f32> {
        (0..nx * ny)
            .map(|k| offset + scale * k as f32 / (nx * ny) as f32)
            .collect()
    };
    let mut value = ramp(-30.0, 0.0);
    value[7] = f32::NAN;
    HeatmapSnapshot {
        maps: Heatmaps {
            kind: EnvKind::Navigation,
            axes: axes(EnvKind::Navigation),
            nx,
            ny,
            values: [ramp(1.0, 0.0), value, ramp(0.5, 0.1), ramp(0.9, 0.05)],
        },
        base: vec![10.0, 75.0],
        version: 1,
    }
}

fn round(round: usize, success: f32) -> RoundMetrics {
    RoundMetrics {
        round,
        episodes: 4,
        mean_cost: 40.0 - 5.0 * round as f32,
        std_cost: 3.0,
        success_rate: success,
        violation_rate: 0.25,
        mean_cost_successful: 30.0,
        cumulative_violations: round + 1,
    }
}

/// Every event a short training run and two agent episodes would send.
pub fn populated() -> AppState {
    let mut state = AppState::default();
    let mut events = vec![start(0)];
    events.extend((1..=4).map(|t| step(0, t)));
    events.push(Event::EpisodeFinished(EpisodeEnd {
        episode: 0,
        steps: 4,
        cost: 3.0,
        success: true,
        violated: true,
    }));
    events.push(start(1));
    events.extend((1..=2).map(|t| step(1, t)));
    events.push(Event::Latents(Arc::new(latents())));
    events.push(Event::Heatmaps(Arc::new(heatmaps())));
    let training = [
        TrainingUpdate::Started {
            run_dir: "outputs/test".into(),
        },
        TrainingUpdate::Loss {
            module: ModuleKind::Vae,
            iteration: 100,
            loss: 300.0,
        },
        TrainingUpdate::Loss {
            module: ModuleKind::Vae,
            iteration: 200,
            loss: 120.0,
        },
        TrainingUpdate::Loss {
            module: ModuleKind::Dyn,
            iteration: 100,
            loss: 0.5,
        },
        TrainingUpdate::DemoMeanCost(25.0),
        TrainingUpdate::Round(round(0, 0.5)),
        TrainingUpdate::Round(round(1, 0.75)),
        TrainingUpdate::Overlay {
            name: "no safe set".into(),
            rounds: vec![round(0, 0.25), round(1, 0.5)],
        },
    ];
    events.extend(training.into_iter().map(Event::Training));
    for (index, cost) in [45.0, 38.0, 30.0].into_iter().enumerate() {
        events.push(Event::Training(TrainingUpdate::Episode(EpisodeSummary {
            round: index / 2,
            index,
            steps: 50,
            cost,
            success: index > 0,
            violation: index == 1,
            random_actions: 0,
        })));
    }
    for event in events {
        state.apply(event);
    }
    state
}
