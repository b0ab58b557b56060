//! Analysis snapshots on a helper thread, so stepping never waits for them: heatmaps of the
//! latent heads over the state grid, and a 2-D PCA of labelled latents with decoded thumbnails.
//! Only the newest request matters; older pending ones are skipped.

use super::{Event, Repaint, Worker};
use crate::analysis::heatmap;
use crate::analysis::pca::Pca;
use crate::app::data::{HeatmapSnapshot, LatentLabel, LatentSnapshot, SceneProbe};
use crate::data::collect::demo_episode;
use crate::data::replay::LatentReplay;
use crate::env::EnvKind;
use crate::model::agent::Agent;
use crate::model::frames::decode_frames;
use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Points the PCA is fitted on and shows.
const MAX_POINTS: usize = 2000;
/// Points that get a decoded thumbnail.
const MAX_THUMBNAILS: usize = 200;
/// Episodes per demo set collected for an agent without a replay buffer.
const DEMOS_PER_SET: usize = 2;
/// Demo episodes per set the scene probe is fitted on.
const SCENE_DEMOS_PER_SET: usize = 10;

/// Labelled latents, row after row.
#[derive(Clone, Debug, Default)]
pub(super) struct LatentPoints {
    pub latents: Vec<Vec<f32>>,
    pub labels: Vec<LatentLabel>,
}

impl LatentPoints {
    /// At most [`MAX_POINTS`] evenly spread transitions of `replay`: the latent of each next
    /// observation, labelled by what holds there. Transitions inserted before the first
    /// `demo_transitions` are demos, later ones the agent's.
    pub fn from_replay(replay: &LatentReplay, demo_transitions: u64) -> Self {
        let n = replay.len();
        let stride = n.div_ceil(MAX_POINTS).max(1);
        let mut out = Self::default();
        for slot in (0..n).step_by(stride) {
            let r = replay.record(slot);
            let label = if r.constraint {
                LatentLabel::Constraint
            } else if r.reward == 0.0 {
                LatentLabel::Goal
            } else if r.safe_set {
                LatentLabel::SafeSet
            } else if insertion_index(replay, slot) < demo_transitions {
                LatentLabel::Demo
            } else {
                LatentLabel::Agent
            };
            out.latents.push(replay.next_mean(slot).to_vec());
            out.labels.push(label);
        }
        out
    }
}

/// When slot `i` was written, counting inserts over the buffer's life.
fn insertion_index(replay: &LatentReplay, i: usize) -> u64 {
    let (inserted, cap) = (replay.inserted(), replay.capacity() as u64);
    if inserted <= cap {
        return i as u64;
    }
    let head = inserted % cap;
    let i = i as u64;
    if i >= head {
        inserted - cap + (i - head)
    } else {
        inserted - head + i
    }
}

/// One request: analyse this agent (a copy that does not change) around `base`.
struct Job {
    agent: Arc<Agent>,
    kind: EnvKind,
    base: Vec<f64>,
    /// `None`: collect a few demo episodes and encode them.
    points: Option<LatentPoints>,
    seed: u64,
}

/// The worker's end of the analysis thread; dropping it ends the thread after its current job.
pub(super) struct Analyst {
    jobs: Option<Sender<Job>>,
}

impl Analyst {
    /// Starts the thread (none when `cells` is 0: analysis off).
    pub fn spawn(events: Sender<Event>, repaint: Repaint, cells: usize) -> std::io::Result<Self> {
        if cells == 0 {
            return Ok(Self { jobs: None });
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("ls3-analysis".into())
            .spawn(move || serve(&rx, &events, &repaint, cells))?;
        Ok(Self { jobs: Some(tx) })
    }
}

impl Worker {
    /// Asks for new snapshots of `agent` (which must not change afterwards) around the state
    /// `base`, with the latents of `points` or, without, of a few fresh demo episodes.
    pub(super) fn analyse(&self, agent: Arc<Agent>, base: Vec<f64>, points: Option<LatentPoints>) {
        if let Some(jobs) = &self.analyst.jobs {
            let _ = jobs.send(Job {
                kind: agent.spec.env,
                agent,
                base,
                points,
                seed: self.seed,
            });
        }
    }
}

fn serve(jobs: &Receiver<Job>, events: &Sender<Event>, repaint: &Repaint, cells: usize) {
    let mut version = 0;
    while let Ok(mut job) = jobs.recv() {
        while let Ok(newer) = jobs.try_recv() {
            job = newer;
        }
        version += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let maps = heatmaps(&job, cells, version).map(|s| Event::Heatmaps(Arc::new(s)));
            let _ = events.send(maps.unwrap_or_else(|e| error(&job, "heatmaps", &e)));
            repaint();
            let latents = latents(&job).map(|s| Event::Latents(Arc::new(s)));
            let _ = events.send(latents.unwrap_or_else(|e| error(&job, "latent PCA", &e)));
            repaint();
            match scene_probe(&job) {
                Ok(Some(p)) => {
                    let _ = events.send(Event::SceneProbe(job.kind, Arc::new(p)));
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = events.send(error(&job, "scene probe", &e));
                }
            }
        }));
        if let Err(payload) = outcome {
            let message = super::panic_message(payload.as_ref());
            let _ = events.send(Event::Error(format!(
                "the {} analysis failed: {message}",
                job.kind
            )));
        }
        repaint();
    }
}

fn error(job: &Job, what: &str, e: &anyhow::Error) -> Event {
    Event::Error(format!(
        "the {what} of the {} agent failed: {e:#}",
        job.kind
    ))
}

fn heatmaps(job: &Job, cells: usize, version: u64) -> Result<HeatmapSnapshot> {
    let axes = heatmap::axes(job.kind);
    let (w, h) = (axes.x[1] - axes.x[0], axes.y[1] - axes.y[0]);
    let short = |long: f64, short: f64| ((cells as f64 * short / long).round() as usize).max(1);
    let (nx, ny) = if w >= h {
        (cells, short(w, h))
    } else {
        (short(h, w), cells)
    };
    let env = job.kind.make(job.seed);
    let maps = heatmap::compute(&job.agent, env.as_ref(), &job.base, nx, ny)?;
    Ok(HeatmapSnapshot {
        maps,
        base: job.base.clone(),
        version,
    })
}

fn latents(job: &Job) -> Result<LatentSnapshot> {
    let points = match &job.points {
        Some(p) => p.clone(),
        None => demo_points(&job.agent, job.kind, job.seed)?,
    };
    let dim = job.agent.spec.latent;
    let flat: Vec<f32> = points.latents.iter().flatten().copied().collect();
    let pca = Pca::fit(&flat, dim).context("no latents to project")?;
    let n = points.latents.len();
    let stride = n.div_ceil(MAX_THUMBNAILS).max(1);
    let picked: Vec<usize> = (0..n).step_by(stride).collect();
    let chosen: Vec<Vec<f32>> = picked.iter().map(|&i| points.latents[i].clone()).collect();
    let frames = decode_frames(&job.agent, &chosen).context("decoding thumbnails")?;
    let mut thumbnails = vec![None; n];
    for (i, frame) in picked.into_iter().zip(frames) {
        thumbnails[i] = Some(frame);
    }
    Ok(LatentSnapshot {
        points: points.latents.iter().map(|z| pca.project(z)).collect(),
        labels: points.labels,
        thumbnails,
        mean: pca.mean,
        components: pca.components,
        explained: pca.explained,
    })
}

/// The latent → marker-pixel map of `job`'s agent, from fresh demo episodes of every set (the
/// frame after each step against the marker and objects of the state it shows; every fifth
/// episode of a set held out).
fn scene_probe(job: &Job) -> Result<Option<SceneProbe>> {
    let kind = job.kind;
    let env = kind.make(job.seed);
    let (mut frames, mut pixels): (Vec<Vec<u8>>, Vec<f64>) = (vec![], vec![]);
    let mut episode = Vec::new();
    let mut markers = 1;
    for set in kind.demo_sets() {
        for i in 0..SCENE_DEMOS_PER_SET.min(set.count) {
            let ep = demo_episode(kind, set, job.seed, i);
            let n = ep.next_obs.len() / ep.len().max(1);
            for (t, step) in ep.transitions.iter().enumerate() {
                let Some(state) = step.state.as_ref() else {
                    continue;
                };
                if !crate::model::probe::probed(kind, state) {
                    continue;
                }
                frames.push(ep.next_obs[t * n..(t + 1) * n].to_vec());
                let objects = env.objects(state);
                markers = 1 + objects.len();
                for m in std::iter::once(env.marker(state)).chain(objects) {
                    pixels.extend([m[0] as f64, m[1] as f64]);
                }
                episode.push(i);
            }
        }
    }
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let (means, _) = job
        .agent
        .encode_observations(&refs)
        .context("encoding demo frames for the scene probe")?;
    Ok(SceneProbe::fit(&means, &pixels, markers, &episode))
}

/// Latents of a few freshly collected demo episodes of every set (all labelled demo).
fn demo_points(agent: &Agent, kind: EnvKind, seed: u64) -> Result<LatentPoints> {
    let mut replay = LatentReplay::new(MAX_POINTS * 4, agent.spec.latent);
    for set in kind.demo_sets() {
        for i in 0..DEMOS_PER_SET.min(set.count) {
            let ep = demo_episode(kind, set, seed, i);
            replay
                .add_episode(agent, &ep)
                .with_context(|| format!("encoding {} demo {i}", set.name))?;
        }
    }
    Ok(LatentPoints::from_replay(&replay, replay.inserted()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::replay::Record;

    fn record(reward: f32, constraint: bool, safe_set: bool) -> Record {
        Record {
            action: [0.0, 0.0],
            reward,
            done: false,
            constraint,
            safe_set,
            on_policy: true,
            rtg: 0.0,
        }
    }

    #[test]
    fn labels_prefer_constraint_then_goal_then_safe_set_then_origin() {
        let mut replay = LatentReplay::new(4, 1);
        let z = [0.0f32];
        for r in [
            record(0.0, true, true),
            record(0.0, false, true),
            record(-1.0, false, true),
            record(-1.0, false, false),
        ] {
            replay.insert((&z, &z), (&z, &z), r).unwrap();
        }
        // The ring wraps: the newest insert (an agent transition) overwrites slot 0.
        replay
            .insert((&z, &z), (&z, &z), record(-1.0, false, false))
            .unwrap();
        let p = LatentPoints::from_replay(&replay, 4);
        assert_eq!(
            p.labels,
            [
                LatentLabel::Agent,
                LatentLabel::Goal,
                LatentLabel::SafeSet,
                LatentLabel::Demo
            ]
        );
        assert_eq!(
            (0..4)
                .map(|i| insertion_index(&replay, i))
                .collect::<Vec<_>>(),
            [4, 1, 2, 3]
        );
    }
}
