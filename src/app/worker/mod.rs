//! The background worker: it owns the environment, who acts in it — a trained LS3 agent when one
//! is available for the environment (loaded here, off the UI thread), else the task
//! demonstrator — the seeded random streams and, during "Train from scratch", the training
//! [`Session`](crate::train::Session). It advances one environment step (or one training step) at
//! a time and reports what happened as typed [`Event`]s. The UI only sends [`Command`]s and drains
//! events; it never simulates, trains, plans or touches files.
//!
//! - [`episodes`]: the live episode (demonstrator or agent) and its plans' imagined frames.
//! - [`training`]: the training run driver and its progress estimates.
//! - [`analysis`]: heatmaps and the latent PCA, computed on a helper thread.
//! - [`files`]: checkpoints, configurations, datasets and imports asked for by the controls.
//!
//! Demonstrator episode `i` is seeded exactly like episode `i` of the environment's first demo
//! set in `ls3 collect` ([`crate::data::collect::demo_episode`]), so what the app shows is the
//! data the pipeline collects; agent episode `i` like episode `i` of `ls3 eval`.

mod analysis;
mod episodes;
mod files;
mod training;

use super::data::{HeatmapSnapshot, JobProgress, LatentSnapshot, PlanShot, SceneProbe};
use crate::config::{Config, Preset, Valid, Validate};
use crate::env::{Env, EnvKind, Frame, Overlay};
use crate::model::agent::{Agent, ModuleKind};
use crate::planner::PlannerConfig;
use crate::train::metrics::{EpisodeSummary, RoundMetrics};
use analysis::Analyst;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use episodes::Live;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use training::Training;

/// What the UI asks the worker to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Switch to another environment and restart its stream from episode 0 (stops a training
    /// run).
    SetEnv(EnvKind),
    /// Run steps continuously at the configured pace.
    Play,
    /// Run `n` more steps at the configured pace, then pause.
    PlayFor(u64),
    /// Stop stepping (the current episode stays where it is).
    Pause,
    /// One environment step (or one training step); only while paused.
    Step,
    /// Restart the current environment's stream from episode 0 (paused; stops a training run).
    Reset,
    /// Pace of continuous play, in environment steps per second.
    SetSpeed(f32),
    /// Train a new agent for the current environment from the current configuration, in a new
    /// run folder, and play.
    TrainFromScratch,
    /// End the training run between two of its steps; its folder stays consistent.
    StopTraining,
    /// Planner settings for every planner call from the next step on (training runs included).
    SetPlanner(PlannerConfig),
    /// Training configuration for the next run, or for the running one from its next phase.
    SetConfig(Box<Config>),
    /// Read a configuration (JSON) and use it.
    LoadConfig(PathBuf),
    /// Write the configuration in effect as JSON.
    SaveConfig(PathBuf),
    /// Let the agent in this checkpoint folder act in its environment.
    LoadAgent(PathBuf),
    /// Write the acting (or training) agent as a checkpoint folder.
    SaveAgent(PathBuf),
    /// Import the original implementation's `.pth` files (a folder, or one file in it) as the
    /// current environment's agent.
    ImportTorch(PathBuf),
    /// Use the demo sets in this folder for the next training run.
    OpenDataset(PathBuf),
    /// Overlay a finished run's per-round metrics on the curves (an `ls3 results` folder: its
    /// three runs).
    OpenRun(PathBuf),
    /// End the worker thread.
    Shutdown,
}

/// Whether the worker is stepping on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkerState {
    #[default]
    Paused,
    Playing,
}

/// The start of an episode: everything a view needs before the first step.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeStart {
    /// Episode number within the current stream (0, 1, 2, …).
    pub episode: u64,
    pub kind: EnvKind,
    /// Name of the demo set whose teacher acts (e.g. `SimplePointBot`).
    pub demonstrator: &'static str,
    /// Steps this episode will run.
    pub steps: usize,
    /// Static scene geometry in image pixels.
    pub overlay: Overlay,
    /// The first observation.
    pub frame: Frame,
    /// Ground-truth state at the start.
    pub state: Vec<f64>,
    /// Path marker at the start, in image pixels.
    pub marker: [f32; 2],
}

/// One environment step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepEvent {
    pub episode: u64,
    /// Steps done in this episode, including this one (1 for the first step).
    pub t: usize,
    /// The action executed (after noise and clipping).
    pub action: [f32; 2],
    /// The observation after the step.
    pub frame: Frame,
    /// Ground-truth state after the step.
    pub state: Vec<f64>,
    /// Path marker after the step, in image pixels.
    pub marker: [f32; 2],
    /// −1 outside the goal, 0 inside.
    pub reward: f32,
    /// The new state violates the constraint.
    pub constraint: bool,
    /// What the planner imagined (with the imagined latents decoded), when an agent acts.
    pub plan: Option<Arc<PlanShot>>,
}

/// Who acts in the episodes.
pub const AGENT_NAME: &str = "LS3 agent";
/// Who acts in the episodes of a training run.
pub const TRAINING_AGENT_NAME: &str = "LS3 agent (training)";

/// Whether the actor named `name` (an [`EpisodeStart::demonstrator`]) is an LS3 agent rather
/// than a scripted demonstrator.
pub fn is_agent(name: &str) -> bool {
    name == AGENT_NAME || name == TRAINING_AGENT_NAME
}

/// The end of an episode, with its outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeEnd {
    pub episode: u64,
    pub steps: usize,
    /// Steps spent outside the goal.
    pub cost: f32,
    /// The goal held after at least one step.
    pub success: bool,
    /// The constraint was violated at least once.
    pub violated: bool,
}

/// What the worker reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The stream (re)started: forget earlier episodes.
    Restarted {
        kind: EnvKind,
        seed: u64,
    },
    EpisodeStarted(EpisodeStart),
    Step(StepEvent),
    EpisodeFinished(EpisodeEnd),
    State(WorkerState),
    /// A training run reported progress or results.
    Training(TrainingUpdate),
    /// A new PCA of the replay latents.
    Latents(Arc<LatentSnapshot>),
    /// New heatmaps of the current agent.
    Heatmaps(Arc<HeatmapSnapshot>),
    /// Where the current agent's latents lie in the scene (for drawing its plans).
    SceneProbe(EnvKind, Arc<SceneProbe>),
    /// The configuration in effect changed other than through the controls (another
    /// environment, a loaded configuration or agent, a training run started): the controls show
    /// it. Its planner is the one the acting agent uses.
    Config(Box<Config>),
    /// Something the person asked for worked (a file saved, a dataset opened).
    Notice(String),
    /// Something failed (a panic in the simulation, an unreadable file, …); the worker keeps
    /// running.
    Error(String),
}

/// What a training run ("Train from scratch") reports to the views.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainingUpdate {
    /// A run started in this folder: forget the previous run's curves.
    Started {
        run_dir: PathBuf,
    },
    Progress(JobProgress),
    Loss {
        module: ModuleKind,
        iteration: u64,
        loss: f32,
    },
    Episode(EpisodeSummary),
    Round(RoundMetrics),
    /// The demonstrators' mean cost, once the demos are loaded.
    DemoMeanCost(f32),
    /// The VAE's latest reconstructions of a few demo frames (after every chunk while it trains).
    Reconstructions(Arc<crate::train::phases::Reconstructions>),
    /// The trained VAE's linear probe.
    Probe(Arc<crate::model::probe::ProbeReport>),
    /// Rounds of another run to overlay on the curves (e.g. an ablation).
    Overlay {
        name: String,
        rounds: Vec<RoundMetrics>,
    },
    /// One variant of a sweep: per round, mean and std over its finished seeds (`name` says n).
    SweepOverlay {
        name: String,
        rounds: Vec<crate::analysis::sweep::RoundSpread>,
    },
    /// The run ended (all rounds done) or was stopped; its folder is consistent.
    Ended {
        completed: bool,
    },
}

/// Builds an environment from its kind and seed ([`EnvKind::make`] outside tests).
pub type EnvFactory = fn(EnvKind, u64) -> Box<dyn Env>;

/// Called after every batch of events (the UI asks egui for a repaint).
pub type Repaint = Arc<dyn Fn() + Send + Sync>;

/// How to start a worker.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub kind: EnvKind,
    /// Seed from which every stream is derived.
    pub seed: u64,
    /// Pace of continuous play.
    pub steps_per_second: f32,
    pub make_env: EnvFactory,
    /// Checkpoint folders of trained agents by environment: where one is given, that agent acts
    /// (planner settings from its configuration) instead of the demonstrator.
    pub agents: HashMap<EnvKind, PathBuf>,
    /// Where training runs go (`None`: `$XDG_DATA_HOME/ls3-studio/runs`, falling back to
    /// `$HOME/.local/share/ls3-studio/runs`).
    pub runs_dir: Option<PathBuf>,
    /// Cap on episodes per demo set of a training run (small test runs).
    pub demo_limit: Option<usize>,
    /// Heatmap cells along the grid's longer axis; 0 turns the analysis snapshots off.
    pub heatmap_cells: usize,
    /// Planner settings chosen earlier (persisted); `None`: each agent's own.
    pub planner: Option<PlannerConfig>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            kind: EnvKind::Navigation,
            seed: 0,
            steps_per_second: 25.0,
            make_env: EnvKind::make,
            agents: HashMap::new(),
            runs_dir: None,
            demo_limit: None,
            heatmap_cells: 32,
            planner: None,
        }
    }
}

/// The UI's end of a running worker. Dropping it shuts the worker down and joins it.
pub struct WorkerHandle {
    commands: Sender<Command>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Starts the worker thread; `repaint` is called after every batch of events.
    pub fn spawn(
        options: WorkerOptions,
        repaint: Box<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Self> {
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let repaint: Repaint = Arc::from(repaint);
        let analyst = Analyst::spawn(ev_tx.clone(), repaint.clone(), options.heatmap_cells)?;
        let thread = std::thread::Builder::new()
            .name("ls3-episode-worker".into())
            .spawn(move || Worker::new(options, ev_tx, repaint, analyst).run(&cmd_rx))?;
        Ok(Self {
            commands: cmd_tx,
            events: ev_rx,
            thread: Some(thread),
        })
    }

    /// Sends a command; a worker that has already ended ignores it.
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// The next pending event, without blocking.
    pub fn try_recv(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// The event receiver (tests wait on it with timeouts).
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// The worker thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Sends `Shutdown` and waits for the thread to end.
    pub fn shutdown(&mut self) {
        self.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A loaded agent and the planner settings of its checkpoint.
type LoadedAgent = (Arc<Agent>, Valid<PlannerConfig>);

struct Worker {
    kind: EnvKind,
    seed: u64,
    period: Duration,
    make_env: EnvFactory,
    agent_dirs: HashMap<EnvKind, PathBuf>,
    /// Agents loaded so far (`None`: loading failed, the demonstrator acts).
    agents: HashMap<EnvKind, Option<LoadedAgent>>,
    /// An agent was just loaded: analyse it once its first episode starts.
    analyse_agent: bool,
    live: Option<Live>,
    next_episode: u64,
    state: WorkerState,
    /// Steps left before pausing (from [`Command::PlayFor`]).
    budget: Option<u64>,
    /// Planner settings chosen in the app; `None`: each agent's own.
    planner: Option<Valid<PlannerConfig>>,
    /// What "Train from scratch" starts from: the quick preset of `kind` until changed.
    config: Valid<Config>,
    /// Demo sets for the next training run, with the environment they were checked for.
    dataset: Option<(EnvKind, PathBuf)>,
    runs_dir: Option<PathBuf>,
    demo_limit: Option<usize>,
    training: Option<Training>,
    analyst: Analyst,
    events: Sender<Event>,
    repaint: Repaint,
}

/// Outcome of handling one command.
enum Flow {
    Continue,
    Stop,
}

impl Worker {
    fn new(
        options: WorkerOptions,
        events: Sender<Event>,
        repaint: Repaint,
        analyst: Analyst,
    ) -> Self {
        // The persisted settings enter here: checked once, dropped with a message when invalid.
        let (planner, refused) = match options.planner.map(Valid::new).transpose() {
            Ok(planner) => (planner, None),
            Err(e) => (None, Some(e)),
        };
        let worker = Self {
            kind: options.kind,
            seed: options.seed,
            period: period(options.steps_per_second),
            make_env: options.make_env,
            agent_dirs: options.agents,
            agents: HashMap::new(),
            analyse_agent: false,
            live: None,
            next_episode: 0,
            state: WorkerState::Paused,
            budget: None,
            planner,
            config: Valid::preset(Preset::Quick, options.kind),
            dataset: None,
            runs_dir: options.runs_dir,
            demo_limit: options.demo_limit,
            training: None,
            analyst,
            events,
            repaint,
        };
        if let Some(e) = refused {
            worker.emit(Event::Error(format!(
                "the stored planner settings were not applied: {e}"
            )));
        }
        worker
    }

    fn run(mut self, commands: &Receiver<Command>) {
        self.restart();
        self.flush();
        let mut next_step = Instant::now();
        loop {
            let received = match self.state {
                WorkerState::Paused => commands.recv().map_err(|_| RecvTimeoutError::Disconnected),
                WorkerState::Playing => commands.recv_deadline(next_step),
            };
            match received {
                Ok(command) => {
                    let was_paused = self.state == WorkerState::Paused;
                    if let Flow::Stop = self.handle(command) {
                        return;
                    }
                    if was_paused && self.state == WorkerState::Playing {
                        next_step = Instant::now();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    // Environment steps keep the pace; training work runs back to back.
                    let paced = self.advance();
                    next_step = if paced {
                        (next_step + self.period).max(Instant::now())
                    } else {
                        Instant::now()
                    };
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.flush();
        }
    }

    fn handle(&mut self, command: Command) -> Flow {
        match command {
            Command::SetEnv(kind) => {
                self.stop_training(false);
                if kind != self.kind {
                    self.kind = kind;
                    self.config = Valid::preset(Preset::Quick, kind);
                }
                self.set_state(WorkerState::Paused);
                self.restart();
            }
            Command::Reset => {
                self.stop_training(false);
                self.set_state(WorkerState::Paused);
                self.restart();
            }
            Command::Play => {
                self.budget = None;
                self.set_state(WorkerState::Playing);
            }
            Command::PlayFor(n) => {
                self.budget = Some(n);
                self.set_state(if n > 0 {
                    WorkerState::Playing
                } else {
                    WorkerState::Paused
                });
            }
            Command::Pause => self.set_state(WorkerState::Paused),
            Command::Step => {
                if self.state == WorkerState::Paused {
                    self.advance();
                }
            }
            Command::SetSpeed(steps_per_second) => self.period = period(steps_per_second),
            Command::TrainFromScratch => self.start_training(),
            Command::StopTraining => {
                if self.training.is_some() {
                    self.stop_training(false);
                    self.set_state(WorkerState::Paused);
                }
            }
            Command::SetPlanner(planner) => self.set_planner(planner),
            Command::SetConfig(config) => self.set_config(*config),
            Command::LoadConfig(path) => self.load_config(&path),
            Command::SaveConfig(path) => self.save_config(&path),
            Command::LoadAgent(dir) => self.load_agent(&dir),
            Command::SaveAgent(dir) => self.save_agent(&dir),
            Command::ImportTorch(path) => self.import_torch(&path),
            Command::OpenDataset(dir) => self.open_dataset(&dir),
            Command::OpenRun(dir) => self.open_run(&dir),
            Command::Shutdown => return Flow::Stop,
        }
        Flow::Continue
    }

    fn set_state(&mut self, state: WorkerState) {
        if state == WorkerState::Paused {
            self.budget = None;
        }
        if self.state != state {
            self.state = state;
            self.emit(Event::State(state));
        }
    }

    /// One step of whatever runs: the training run, else the live episode. Returns whether it
    /// was an environment step (paced) rather than training work (run back to back).
    fn advance(&mut self) -> bool {
        let paced = if self.training.is_some() {
            self.advance_training()
        } else {
            self.advance_episode()
        };
        if let Some(budget) = self.budget.as_mut() {
            *budget = budget.saturating_sub(1);
            if *budget == 0 {
                self.set_state(WorkerState::Paused);
            }
        }
        paced
    }

    /// The app's planner controls enter here: checked once, then used as they are.
    fn set_planner(&mut self, planner: PlannerConfig) {
        let planner = match planner.validated() {
            Ok(planner) => planner,
            Err(e) => {
                self.emit(Event::Error(format!("planner settings not applied: {e}")));
                return;
            }
        };
        if let Some(training) = self.training.as_mut() {
            training.session.set_planner(planner.clone());
        }
        self.config.set_planner(planner.clone());
        self.planner = Some(planner);
    }

    /// The app's training controls enter here (checked with the full rule set).
    fn set_config(&mut self, config: Config) {
        if config.env != self.kind {
            self.emit(Event::Error(format!(
                "a {} configuration does not fit {}; switch the environment first",
                config.env, self.kind
            )));
            return;
        }
        let mut config = match config.validated() {
            Ok(config) => config,
            Err(e) => {
                self.emit(Event::Error(format!("configuration not applied: {e}")));
                return;
            }
        };
        // The planner has its own command; keep the one in use.
        config.set_planner(self.planner_in_use());
        if let Some(training) = self.training.as_mut()
            && let Err(e) = training.session.set_config(config.clone())
        {
            self.emit(Event::Error(format!(
                "configuration not applied to the running training: {e:#}"
            )));
            return;
        }
        self.config = config;
    }

    /// The planner settings the acting agent plans with.
    fn planner_in_use(&self) -> Valid<PlannerConfig> {
        if let Some(training) = &self.training {
            return training.session.config().valid_planner();
        }
        if let Some(p) = &self.planner {
            return p.clone();
        }
        match self.agents.get(&self.kind) {
            Some(Some((_, p))) => p.clone(),
            _ => self.config.valid_planner(),
        }
    }

    /// The configuration in effect, with the planner the acting agent uses.
    fn config_in_use(&self) -> Valid<Config> {
        if let Some(training) = &self.training {
            return training.session.config().clone();
        }
        let mut config = self.config.clone();
        config.set_planner(self.planner_in_use());
        config
    }

    fn emit(&self, event: Event) {
        // A closed channel means the UI is gone; the next receive ends the loop.
        let _ = self.events.send(event);
    }

    fn flush(&self) {
        (self.repaint)();
    }
}

fn period(steps_per_second: f32) -> Duration {
    Duration::from_secs_f32(1.0 / steps_per_second.clamp(0.1, 10_000.0))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests;
