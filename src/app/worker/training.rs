//! "Train from scratch": the worker drives a [`Session`] one step at a time while playing, and
//! turns what it reports into app events — progress with an estimated time left, losses, the
//! agent's episodes (shown live like any other), rounds, and analysis requests after the initial
//! training and after every round's update. Stopping happens between two session steps, so the
//! run folder is always consistent (and can be resumed with `ls3 run --resume`).

use super::analysis::LatentPoints;
use super::{
    EpisodeEnd, EpisodeStart, Event, StepEvent, TRAINING_AGENT_NAME, TrainingUpdate, Worker,
    WorkerState, panic_message,
};
use crate::app::data::{JobProgress, PlanShot};
use crate::model::agent::{Agent, ModuleKind};
use crate::model::frames::decode_frames;
use crate::train::observer::Event as SessionEvent;
use crate::train::phases::PhaseProgress;
use crate::train::{Session, SessionOptions};
use anyhow::{Context, Result, anyhow};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A training run in progress.
pub(super) struct Training {
    pub session: Session,
    clock: PhaseClock,
    demo_cost_sent: bool,
    /// Transitions in the replay buffer before the first agent episode (the demos).
    demo_transitions: Option<u64>,
    /// The agent episode in progress and its steps so far.
    episode: u64,
    t: usize,
    /// When the last analysis was asked for during the initial module training.
    analysed: Option<Instant>,
}

/// How often the heatmaps refresh while the latent modules' initial training runs.
const ANALYSIS_EVERY: Duration = Duration::from_secs(20);

/// What one training step asks of the worker.
#[derive(Default)]
pub(super) struct StepReport {
    /// The step was an environment step (paced like play).
    pub acted: bool,
    /// Every phase is done.
    pub finished: bool,
    /// Fresh snapshots are due: a copy of the agent, the state to centre them on, its latents.
    pub analysis: Option<(Arc<Agent>, Vec<f64>, LatentPoints)>,
}

impl Training {
    fn new(session: Session) -> Self {
        Self {
            session,
            clock: PhaseClock::default(),
            demo_cost_sent: false,
            demo_transitions: None,
            episode: 0,
            t: 0,
            analysed: None,
        }
    }

    /// One session step; its reports become app events in `out`.
    pub fn step(&mut self, out: &mut Vec<Event>) -> Result<StepReport> {
        let mut reported = Vec::new();
        let more = self.session.step(&mut |e| reported.push(e))?;
        let mut report = StepReport {
            finished: !more,
            ..StepReport::default()
        };
        let mut progressed = false;
        for event in reported {
            progressed |= matches!(event, SessionEvent::Progress(_));
            self.translate(event, out, &mut report)?;
        }
        if !progressed && more {
            out.push(self.progress_now());
        }
        if !self.demo_cost_sent
            && let Some(cost) = self.session.state().demo_mean_cost
        {
            self.demo_cost_sent = true;
            out.push(Event::Training(TrainingUpdate::DemoMeanCost(cost)));
        }
        Ok(report)
    }

    fn translate(
        &mut self,
        event: SessionEvent,
        out: &mut Vec<Event>,
        report: &mut StepReport,
    ) -> Result<()> {
        let kind = self.session.config().env;
        match event {
            SessionEvent::Progress(p) => {
                let key = p.phase.clone();
                out.push(self.clock.progress(&key, p));
            }
            SessionEvent::Loss {
                module,
                iteration,
                loss,
            } => {
                out.push(Event::Training(TrainingUpdate::Loss {
                    module,
                    iteration,
                    loss,
                }));
                // The heatmaps follow the initial training of the latent modules as it goes.
                let initial = module != ModuleKind::Vae && !self.session.state().offline_done;
                if initial && self.analysed.is_none_or(|t| t.elapsed() >= ANALYSIS_EVERY) {
                    self.analysed = Some(Instant::now());
                    report.analysis = Some(self.analysis_request()?);
                }
            }
            SessionEvent::VaeReconstructions(r) => {
                out.push(Event::Training(TrainingUpdate::Reconstructions(r)));
            }
            SessionEvent::Probe(p) => {
                out.push(Event::Training(TrainingUpdate::Probe(Arc::from(p))));
            }
            SessionEvent::EpisodeStarted {
                index,
                start_state,
                frame,
                ..
            } => {
                self.t = 0;
                self.episode = index as u64;
                let env = self.session.env();
                out.push(Event::EpisodeStarted(EpisodeStart {
                    episode: index as u64,
                    kind,
                    demonstrator: TRAINING_AGENT_NAME,
                    steps: kind.horizon(),
                    overlay: env.overlay(),
                    frame,
                    marker: env.marker(&start_state),
                    state: start_state,
                }));
            }
            SessionEvent::Step(step) => {
                report.acted = true;
                self.t = step.t + 1;
                let agent = self.session.agent();
                let imagined = decode_frames(agent, &step.plan.latents).unwrap_or_default();
                out.push(Event::Step(StepEvent {
                    episode: self.episode,
                    t: step.t + 1,
                    action: kind.clip_action(step.plan.action),
                    marker: self.session.env().marker(&step.state),
                    frame: step.frame,
                    state: step.state,
                    reward: step.reward,
                    constraint: step.constraint,
                    plan: Some(Arc::new(PlanShot {
                        record: step.plan,
                        imagined,
                    })),
                }));
            }
            SessionEvent::EpisodeFinished(summary) => {
                self.t = 0;
                out.push(Event::EpisodeFinished(EpisodeEnd {
                    episode: summary.index as u64,
                    steps: summary.steps,
                    cost: summary.cost,
                    success: summary.success,
                    violated: summary.violation,
                }));
                out.push(Event::Training(TrainingUpdate::Episode(summary)));
            }
            SessionEvent::RoundFinished(metrics) => {
                out.push(Event::Training(TrainingUpdate::Round(metrics)));
            }
            SessionEvent::Checkpoint(_) if self.session.state().offline_done => {
                // After the initial training (round 0) and after every round's update.
                report.analysis = Some(self.analysis_request()?);
            }
            SessionEvent::Checkpoint(_) | SessionEvent::Log(_) => {}
        }
        Ok(())
    }

    /// A copy of the agent, the state to centre the heatmaps on and the replay's latents (the
    /// demos' transitions are those in the replay before the first agent episode).
    fn analysis_request(&mut self) -> Result<(Arc<Agent>, Vec<f64>, LatentPoints)> {
        let replay = self.session.replay();
        let demos = *self.demo_transitions.get_or_insert(replay.inserted());
        let agent = self
            .session
            .agent()
            .deep_copy()
            .context("copying the agent for the analysis")?;
        Ok((
            Arc::new(agent),
            self.session.env().state(),
            LatentPoints::from_replay(replay, demos),
        ))
    }

    /// Where the session stands when its step reported no progress itself (agent episodes,
    /// loading demos): episodes are counted in environment steps, so the estimate moves.
    fn progress_now(&mut self) -> Event {
        let p = self.session.progress();
        let c = self.session.config();
        if p.phase.ends_with("episode") {
            let horizon = c.env.horizon();
            let round = self.session.state().rounds_done + 1;
            let key = format!("round {round}");
            let phase = format!(
                "round {round}/{} episode {}/{}",
                c.online.num_updates,
                (p.done + 1).min(p.total),
                p.total
            );
            let steps = PhaseProgress {
                phase,
                done: p.done * horizon + self.t,
                total: p.total * horizon,
                loss: None,
            };
            return self.clock.progress(&key, steps);
        }
        let key = p.phase.clone();
        self.clock.progress(&key, p)
    }
}

/// Estimates the time left in a phase from its rate so far.
#[derive(Default)]
struct PhaseClock {
    key: String,
    /// When the phase's first reported work began, and how much was done then.
    started: Option<(Instant, usize)>,
    /// When the latest progress arrived (a new phase's work began about then).
    last: Option<Instant>,
}

impl PhaseClock {
    fn progress(&mut self, key: &str, p: PhaseProgress) -> Event {
        let now = Instant::now();
        if self.key != key || self.started.is_none() {
            self.key = key.to_string();
            self.started = Some((self.last.unwrap_or(now), 0));
        }
        self.last = Some(now);
        let (since, base) = self.started.unwrap_or((now, 0));
        Event::Training(TrainingUpdate::Progress(JobProgress {
            eta: eta(
                now - since,
                p.done.saturating_sub(base),
                p.total - p.done.min(p.total),
            ),
            phase: p.phase,
            done: p.done,
            total: p.total,
            loss: p.loss,
        }))
    }
}

/// Time left for `left` units at the rate of `done` units in `elapsed`.
fn eta(elapsed: Duration, done: usize, left: usize) -> Option<Duration> {
    if left == 0 {
        return Some(Duration::ZERO);
    }
    (done > 0 && !elapsed.is_zero()).then(|| elapsed.mul_f64(left as f64 / done as f64))
}

/// `$XDG_DATA_HOME/ls3-studio/runs`, else `$HOME/.local/share/ls3-studio/runs`.
fn default_runs_dir() -> Result<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let data = var("XDG_DATA_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|h| h.join(".local").join("share")))
        .ok_or_else(|| anyhow!("neither XDG_DATA_HOME nor HOME is set: nowhere to keep runs"))?;
    Ok(data.join("ls3-studio").join("runs"))
}

impl Worker {
    /// Creates a run folder and a session for the current environment and configuration, and
    /// plays it.
    pub(super) fn start_training(&mut self) {
        if self.training.is_some() {
            return;
        }
        let session = match self.create_session() {
            Ok(s) => s,
            Err(e) => {
                self.emit(Event::Error(format!("Train from scratch failed: {e:#}")));
                return;
            }
        };
        self.live = None;
        self.emit(Event::Restarted {
            kind: self.kind,
            seed: self.seed,
        });
        self.emit(Event::Training(TrainingUpdate::Started {
            run_dir: session.dir().to_path_buf(),
        }));
        self.emit(Event::Config(Box::new(session.config().as_ref().clone())));
        let mut training = Training::new(session);
        let progress = training.progress_now();
        self.emit(progress);
        self.training = Some(training);
        self.budget = None;
        self.set_state(WorkerState::Playing);
    }

    fn create_session(&self) -> Result<Session> {
        let root = match &self.runs_dir {
            Some(dir) => dir.clone(),
            None => default_runs_dir()?,
        };
        let mut opts = SessionOptions::new(self.config_in_use(), self.seed, &root)
            .with_context(|| format!("creating a run folder under {}", root.display()))?;
        opts.data = self
            .dataset
            .as_ref()
            .filter(|(kind, _)| *kind == self.kind)
            .map(|(_, dir)| dir.clone());
        opts.demo_limit = self.demo_limit;
        let dir = opts.run_dir.clone();
        Session::create(opts).with_context(|| format!("starting a run in {}", dir.display()))
    }

    /// Ends the training run (if any) between two of its steps; a completed run's agent then
    /// acts in its environment. The next step starts a fresh episode of the stream.
    pub(super) fn stop_training(&mut self, completed: bool) {
        let Some(training) = self.training.take() else {
            return;
        };
        let session = &training.session;
        if completed {
            match session.agent().deep_copy() {
                Ok(agent) => {
                    let planner = session.config().valid_planner();
                    self.agents
                        .insert(self.kind, Some((Arc::new(agent), planner)));
                }
                Err(e) => self.emit(Event::Error(format!(
                    "the trained agent could not be taken over: {e}"
                ))),
            }
        }
        self.live = None;
        self.next_episode = session.state().episodes as u64;
        self.emit(Event::Training(TrainingUpdate::Ended { completed }));
        self.emit(Event::Notice(if completed {
            format!(
                "training finished; the run is in {}",
                session.dir().display()
            )
        } else {
            format!(
                "training stopped; continue it with `ls3 run --resume {}`",
                session.dir().display()
            )
        }));
    }

    /// One training step. Returns whether it was an environment step (paced).
    pub(super) fn advance_training(&mut self) -> bool {
        let Some(training) = self.training.as_mut() else {
            return false;
        };
        let mut out = Vec::new();
        let result = catch_unwind(AssertUnwindSafe(|| training.step(&mut out)));
        let dir = training.session.dir().display().to_string();
        for event in out {
            self.emit(event);
        }
        let failure = match result {
            Ok(Ok(report)) => {
                if let Some((agent, base, points)) = report.analysis {
                    self.analyse(agent, base, Some(points));
                }
                if report.finished {
                    self.finish_training(true);
                }
                return report.acted;
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(payload) => panic_message(payload.as_ref()),
        };
        self.emit(Event::Error(format!(
            "training stopped: {failure} (the run folder {dir} is consistent up to the last \
             completed step)"
        )));
        self.finish_training(false);
        false
    }

    /// Stops the run, pauses and shows the start of the next episode.
    pub(super) fn finish_training(&mut self, completed: bool) {
        self.stop_training(completed);
        self.set_state(WorkerState::Paused);
        self.guarded(Self::start_episode);
        self.emit(Event::Config(Box::new(self.config_in_use().into_inner())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_scales_the_elapsed_time_by_the_work_left() {
        let s = Duration::from_secs;
        assert_eq!(eta(s(10), 5, 10), Some(s(20)));
        assert_eq!(eta(s(10), 0, 10), None, "no rate yet");
        assert_eq!(eta(s(0), 3, 0), Some(Duration::ZERO), "nothing left");
    }

    #[test]
    fn the_clock_restarts_with_each_phase() {
        let mut clock = PhaseClock::default();
        let p = |phase: &str, done| PhaseProgress {
            phase: phase.into(),
            done,
            total: 100,
            loss: None,
        };
        let Event::Training(TrainingUpdate::Progress(first)) = clock.progress("vae", p("vae", 25))
        else {
            unreachable!()
        };
        assert_eq!(first.eta, None, "no time has passed in the phase yet");
        std::thread::sleep(Duration::from_millis(20));
        let Event::Training(TrainingUpdate::Progress(later)) = clock.progress("vae", p("vae", 50))
        else {
            unreachable!()
        };
        assert!(later.eta.is_some_and(|e| e >= Duration::from_millis(20)));
        let Event::Training(TrainingUpdate::Progress(next)) =
            clock.progress("encode", p("encode", 0))
        else {
            unreachable!()
        };
        assert_eq!((next.phase.as_str(), next.eta), ("encode", None));
    }
}
