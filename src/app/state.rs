//! What the app knows, filled only by worker [`Event`]s; the views read it and never change it.

use super::data::{AnalysisData, PlanShot, SceneProbe};
use super::worker::{EpisodeEnd, EpisodeStart, Event, StepEvent, TrainingUpdate, WorkerState};
use crate::config::Config;
use crate::env::{EnvKind, Frame, Overlay};
use crate::planner::CandidateStats;
use std::collections::VecDeque;
use std::sync::Arc;

/// Finished episodes kept with all their frames (a push episode is about 1.8 MB).
pub const DEFAULT_CAPACITY: usize = 50;
/// Finished episodes that keep their plans' decoded imagined frames (about 6 MB per 100-step
/// episode); older ones keep only the plan records.
pub const IMAGINED_KEPT: usize = 10;
/// Error messages kept for display.
const MAX_ERRORS: usize = 20;

/// One environment step as stored for replay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    pub action: [f32; 2],
    pub reward: f32,
    pub constraint: bool,
}

/// An episode, live or finished. Index `i` of `frames`, `markers` and `states` is the situation
/// after `i` steps (0 = the start); `steps[i - 1]` is the step that led there.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeRecord {
    /// Unique within this app run (episode numbers restart with the stream; this never does).
    pub uid: u64,
    /// Episode number within its stream.
    pub episode: u64,
    pub kind: EnvKind,
    pub demonstrator: &'static str,
    /// Planned number of steps.
    pub horizon: usize,
    pub overlay: Overlay,
    pub frames: Vec<Frame>,
    pub markers: Vec<[f32; 2]>,
    pub states: Vec<Vec<f64>>,
    pub steps: Vec<StepRecord>,
    /// `plans[i - 1]` chose step `i` (`None` where a demonstrator acted).
    pub plans: Vec<Option<Arc<PlanShot>>>,
    /// Set when the episode has ended.
    pub outcome: Option<EpisodeEnd>,
}

impl EpisodeRecord {
    fn new(uid: u64, start: EpisodeStart) -> Self {
        let mut frames = Vec::with_capacity(start.steps + 1);
        frames.push(start.frame);
        Self {
            uid,
            episode: start.episode,
            kind: start.kind,
            demonstrator: start.demonstrator,
            horizon: start.steps,
            overlay: start.overlay,
            frames,
            markers: vec![start.marker],
            states: vec![start.state],
            steps: Vec::with_capacity(start.steps),
            plans: Vec::with_capacity(start.steps),
            outcome: None,
        }
    }

    /// Drops the decoded imagined frames of every plan, keeping the records.
    fn forget_imagined(&mut self) {
        for plan in self.plans.iter_mut().flatten() {
            if !plan.imagined.is_empty() {
                *plan = Arc::new(PlanShot {
                    record: plan.record.clone(),
                    imagined: Vec::new(),
                });
            }
        }
    }

    fn push(&mut self, step: StepEvent) {
        self.frames.push(step.frame);
        self.markers.push(step.marker);
        self.states.push(step.state);
        self.steps.push(StepRecord {
            action: step.action,
            reward: step.reward,
            constraint: step.constraint,
        });
        self.plans.push(step.plan);
    }

    /// Steps taken so far.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// No step taken yet.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The step that led to position `i` (none at the start).
    pub fn step_at(&self, i: usize) -> Option<&StepRecord> {
        i.checked_sub(1).and_then(|j| self.steps.get(j))
    }

    /// Cost (steps outside the goal) accumulated up to position `i`.
    pub fn cost_until(&self, i: usize) -> f32 {
        -self.steps.iter().take(i).map(|s| s.reward).sum::<f32>()
    }

    /// Constraint violations up to position `i`.
    pub fn violations_until(&self, i: usize) -> usize {
        self.steps.iter().take(i).filter(|s| s.constraint).count()
    }
}

/// Running totals over every finished episode of the current stream (also the evicted ones).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    pub episodes: usize,
    pub successes: usize,
    pub violations: usize,
    pub cost: f64,
}

impl Totals {
    fn add(&mut self, end: &EpisodeEnd) {
        self.episodes += 1;
        self.successes += end.success as usize;
        self.violations += end.violated as usize;
        self.cost += end.cost as f64;
    }

    /// Fraction of episodes that reached the goal.
    pub fn success_rate(&self) -> Option<f64> {
        (self.episodes > 0).then(|| self.successes as f64 / self.episodes as f64)
    }

    /// Fraction of episodes with at least one violation.
    pub fn violation_rate(&self) -> Option<f64> {
        (self.episodes > 0).then(|| self.violations as f64 / self.episodes as f64)
    }

    /// Mean episode cost.
    pub fn mean_cost(&self) -> Option<f64> {
        (self.episodes > 0).then(|| self.cost / self.episodes as f64)
    }
}

/// Everything the views show.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The environment of the current stream.
    pub kind: EnvKind,
    pub seed: u64,
    pub worker: WorkerState,
    /// The episode being played (or waiting at its start while paused).
    pub live: Option<EpisodeRecord>,
    /// Finished episodes, oldest first, at most `capacity`.
    pub finished: VecDeque<EpisodeRecord>,
    pub capacity: usize,
    pub totals: Totals,
    /// Steps received since the app started (all streams).
    pub total_steps: u64,
    /// Recent worker errors, oldest first.
    pub errors: VecDeque<String>,
    /// Errors received since the app started (also those no longer kept).
    pub error_count: u64,
    /// Training curves, latents and heatmaps.
    pub analysis: AnalysisData,
    /// The configuration the worker uses, as it last reported it (the controls show it).
    pub config: Option<Config>,
    /// Counts the configurations reported, so the controls can tell a new one.
    pub config_version: u64,
    /// The latest thing that worked (a file saved, a dataset opened).
    pub notice: Option<String>,
    /// Per-candidate numbers of the latest planner call, for the thresholds' feasibility
    /// preview (stored episodes' plan records do not keep them).
    pub last_candidates: Option<Arc<CandidateStats>>,
    /// Per environment, its acting agent's latent → scene map (its plans are drawn with it).
    pub scene_probes: std::collections::HashMap<EnvKind, Arc<SceneProbe>>,
    next_uid: u64,
}

impl Default for AppState {
    fn default() -> Self {
        Self::new(EnvKind::Navigation, DEFAULT_CAPACITY)
    }
}

impl AppState {
    /// An empty state that keeps at most `capacity` finished episodes.
    pub fn new(kind: EnvKind, capacity: usize) -> Self {
        Self {
            kind,
            seed: 0,
            worker: WorkerState::Paused,
            live: None,
            finished: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
            totals: Totals::default(),
            total_steps: 0,
            errors: VecDeque::new(),
            error_count: 0,
            analysis: AnalysisData::default(),
            config: None,
            config_version: 0,
            notice: None,
            last_candidates: None,
            scene_probes: Default::default(),
            next_uid: 0,
        }
    }

    /// Folds one worker event into the state.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Restarted { kind, seed } => {
                self.kind = kind;
                self.seed = seed;
                self.live = None;
                self.finished.clear();
                self.totals = Totals::default();
                self.last_candidates = None;
            }
            Event::EpisodeStarted(start) => {
                self.live = Some(EpisodeRecord::new(self.next_uid, start));
                self.next_uid += 1;
            }
            Event::Step(mut step) => {
                // The candidates' numbers are kept for the latest planner call only.
                if let Some(shot) = step.plan.as_mut() {
                    let taken = match Arc::get_mut(shot) {
                        Some(s) => s.record.candidates.take(),
                        None => shot.record.candidates.clone(),
                    };
                    if taken.is_some() {
                        self.last_candidates = taken;
                    }
                }
                if let Some(live) = self.live.as_mut().filter(|l| l.episode == step.episode) {
                    live.push(step);
                    self.total_steps += 1;
                }
            }
            Event::EpisodeFinished(end) => {
                let Some(mut live) = self.live.take_if(|l| l.episode == end.episode) else {
                    return;
                };
                self.totals.add(&end);
                live.outcome = Some(end);
                if self.finished.len() == self.capacity {
                    self.finished.pop_front();
                }
                self.finished.push_back(live);
                let older = self.finished.len().saturating_sub(IMAGINED_KEPT);
                if let Some(episode) = older.checked_sub(1).and_then(|i| self.finished.get_mut(i)) {
                    episode.forget_imagined();
                }
            }
            Event::State(state) => self.worker = state,
            Event::Training(update) => self.apply_training(update),
            Event::Latents(snapshot) => self.analysis.latents = Some(snapshot),
            Event::Heatmaps(snapshot) => self.analysis.heatmaps = Some(snapshot),
            Event::SceneProbe(kind, probe) => {
                self.scene_probes.insert(kind, probe);
            }
            Event::Config(config) => {
                self.config = Some(*config);
                self.config_version += 1;
            }
            Event::Notice(message) => self.notice = Some(message),
            Event::Error(message) => {
                if self.errors.len() == MAX_ERRORS {
                    self.errors.pop_front();
                }
                self.errors.push_back(message);
                self.error_count += 1;
            }
        }
    }

    fn apply_training(&mut self, update: TrainingUpdate) {
        let t = &mut self.analysis.training;
        match update {
            TrainingUpdate::Started { run_dir } => {
                *t = Default::default();
                t.run_dir = Some(run_dir);
            }
            TrainingUpdate::Progress(p) => t.progress = Some(p),
            TrainingUpdate::Loss {
                module,
                iteration,
                loss,
            } => t.push_loss(module, iteration, loss),
            TrainingUpdate::Episode(e) => t.episodes.push(e),
            TrainingUpdate::Round(r) => t.rounds.push(r),
            TrainingUpdate::DemoMeanCost(c) => t.demo_mean_cost = Some(c),
            TrainingUpdate::Reconstructions(r) => t.reconstructions = Some(r),
            TrainingUpdate::Probe(p) => t.probe = Some(p),
            TrainingUpdate::Overlay { name, rounds } => {
                t.overlays.retain(|(n, _)| *n != name);
                t.overlays.push((name, rounds));
            }
            TrainingUpdate::SweepOverlay { name, rounds } => {
                t.sweep_overlays.retain(|(n, _)| *n != name);
                t.sweep_overlays.push((name, rounds));
            }
            TrainingUpdate::Ended { .. } => t.progress = None,
        }
    }

    /// The episode with this uid, live or finished.
    pub fn episode(&self, uid: u64) -> Option<&EpisodeRecord> {
        self.live
            .iter()
            .chain(self.finished.iter())
            .find(|e| e.uid == uid)
    }

    /// Finished episodes, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &EpisodeRecord> {
        self.finished.iter().rev()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::OverlayShape;

    fn start(episode: u64, steps: usize) -> Event {
        Event::EpisodeStarted(EpisodeStart {
            episode,
            kind: EnvKind::Navigation,
            demonstrator: "SimplePointBot",
            steps,
            overlay: Overlay {
                hazards: vec![OverlayShape::Rect {
                    min: [1.0, 1.0],
                    max: [2.0, 2.0],
                }],
                goals: vec![],
            },
            frame: Frame::black(),
            state: vec![0.0, 0.0],
            marker: [0.0, 0.0],
        })
    }

    fn step(episode: u64, t: usize, reward: f32, constraint: bool) -> Event {
        Event::Step(StepEvent {
            episode,
            t,
            action: [0.5, -0.5],
            frame: Frame::black(),
            state: vec![t as f64, 0.0],
            marker: [t as f32, 1.0],
            reward,
            constraint,
            plan: None,
        })
    }

    fn finish(episode: u64, steps: usize, cost: f32, success: bool, violated: bool) -> Event {
        Event::EpisodeFinished(EpisodeEnd {
            episode,
            steps,
            cost,
            success,
            violated,
        })
    }

    /// A whole episode of three steps: outside, violation, goal.
    fn episode(i: u64) -> Vec<Event> {
        vec![
            start(i, 3),
            step(i, 1, -1.0, false),
            step(i, 2, -1.0, true),
            step(i, 3, 0.0, false),
            finish(i, 3, 2.0, true, true),
        ]
    }

    #[test]
    fn events_build_episode_records_with_frames_markers_and_flags() {
        let mut state = AppState::default();
        state.apply(Event::Restarted {
            kind: EnvKind::Navigation,
            seed: 9,
        });
        state.apply(Event::State(WorkerState::Playing));
        for e in episode(0) {
            state.apply(e);
        }
        state.apply(start(1, 3));
        state.apply(step(1, 1, -1.0, false));

        assert_eq!(state.worker, WorkerState::Playing);
        assert_eq!(state.seed, 9);
        assert_eq!(state.total_steps, 4);
        assert_eq!(state.finished.len(), 1);
        let done = &state.finished[0];
        assert_eq!(done.frames.len(), 4);
        assert_eq!(
            done.markers,
            vec![[0.0, 0.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]]
        );
        let flags: Vec<bool> = done.steps.iter().map(|s| s.constraint).collect();
        assert_eq!(flags, [false, true, false]);
        assert_eq!(done.cost_until(2), 2.0);
        assert_eq!(done.violations_until(1), 0);
        assert_eq!(done.violations_until(3), 1);
        assert!(done.step_at(0).is_none());
        assert_eq!(done.step_at(3).map(|s| s.reward), Some(0.0));
        assert!(
            done.outcome
                .as_ref()
                .is_some_and(|o| o.success && o.violated)
        );

        let live = state.live.as_ref().expect("live episode");
        assert_eq!((live.episode, live.len()), (1, 1));
        assert_ne!(live.uid, done.uid);
        assert_eq!(state.episode(live.uid).map(|e| e.episode), Some(1));
        assert_eq!(state.totals.success_rate(), Some(1.0));
        assert_eq!(state.totals.mean_cost(), Some(2.0));
    }

    #[test]
    fn only_the_newest_episodes_keep_their_imagined_frames() {
        let mut state = AppState::default();
        let shot = Arc::new(PlanShot {
            record: crate::app::testing::plan(1, 2, false).record,
            imagined: vec![Frame::black(); 2],
        });
        for i in 0..(IMAGINED_KEPT as u64 + 3) {
            state.apply(start(i, 1));
            let Event::Step(mut s) = step(i, 1, -1.0, false) else {
                unreachable!()
            };
            s.plan = Some(shot.clone());
            state.apply(Event::Step(s));
            state.apply(finish(i, 1, 1.0, false, false));
        }
        let imagined: Vec<usize> = state
            .finished
            .iter()
            .map(|e| e.plans[0].as_ref().map_or(99, |p| p.imagined.len()))
            .collect();
        let mut expected = vec![0; 3];
        expected.extend(vec![2; IMAGINED_KEPT]);
        assert_eq!(imagined, expected, "records stay, old frames go");
        assert_eq!(
            state.finished[0].plans[0].as_ref().unwrap().record,
            shot.record
        );
    }

    #[test]
    fn finished_episodes_are_bounded_but_totals_count_all() {
        let mut state = AppState::new(EnvKind::Navigation, 5);
        for i in 0..12 {
            for e in episode(i) {
                state.apply(e);
            }
        }
        assert_eq!(state.finished.len(), 5);
        let kept: Vec<u64> = state.newest_first().map(|e| e.episode).collect();
        assert_eq!(kept, [11, 10, 9, 8, 7]);
        assert_eq!(state.totals.episodes, 12);
        assert_eq!(state.totals.violation_rate(), Some(1.0));
        for i in 0..30 {
            state.apply(Event::Error(format!("error {i}")));
        }
        assert_eq!(state.errors.len(), MAX_ERRORS);
        assert_eq!(state.errors.back().map(String::as_str), Some("error 29"));
        assert_eq!(state.error_count, 30);
    }

    #[test]
    fn stale_events_of_another_episode_are_ignored() {
        let mut state = AppState::default();
        state.apply(start(4, 3));
        state.apply(step(3, 1, -1.0, false));
        state.apply(finish(3, 3, 3.0, false, false));
        assert_eq!(state.live.as_ref().map(EpisodeRecord::len), Some(0));
        assert!(state.finished.is_empty());
        assert_eq!(state.total_steps, 0);
    }

    #[test]
    fn only_the_latest_planner_call_keeps_its_candidates() {
        let mut state = AppState::default();
        state.apply(start(0, 5));
        let with = |n: usize, t: usize| {
            let mut shot = crate::app::testing::plan(t, 3, false);
            shot.record.candidates = Some(Arc::new(crate::app::testing::candidates(n)));
            let Event::Step(mut step) = step(0, t, -1.0, false) else {
                unreachable!()
            };
            step.plan = Some(Arc::new(shot));
            Event::Step(step)
        };
        state.apply(with(10, 1));
        state.apply(with(20, 2));
        assert_eq!(state.last_candidates.as_ref().map(|c| c.len()), Some(20));
        let live = state.live.as_ref().unwrap();
        assert_eq!(live.plans.len(), 2);
        assert!(
            live.plans
                .iter()
                .flatten()
                .all(|p| p.record.candidates.is_none()),
            "stored plan records keep only what the views draw"
        );
    }

    #[test]
    fn restart_forgets_the_previous_stream() {
        let mut state = AppState::default();
        for e in episode(0) {
            state.apply(e);
        }
        state.apply(Event::Restarted {
            kind: EnvKind::Push,
            seed: 1,
        });
        assert_eq!(state.kind, EnvKind::Push);
        assert!(state.finished.is_empty() && state.live.is_none());
        assert_eq!(state.totals, Totals::default());
    }
}
