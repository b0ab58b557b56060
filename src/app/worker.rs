//! The background worker: it owns the environment, who acts in it — a trained LS3 agent when one
//! is available for the environment (loaded here, off the UI thread), else the task
//! demonstrator — and the seeded random streams; it advances one environment step at a time and
//! reports what happened as typed [`Event`]s. The UI only sends [`Command`]s and drains events; it
//! never simulates, plans or loads files.
//!
//! Demonstrator episode `i` is seeded exactly like episode `i` of the environment's first demo
//! set in `ls3 collect` ([`crate::data::collect::demo_episode`]), so what the app shows is the
//! data the pipeline collects; agent episode `i` like episode `i` of `ls3 eval`.

use crate::env::demos::{DemoSet, Teacher};
use crate::env::{Env, EnvKind, Frame, Overlay};
use crate::model::agent::Agent;
use super::data::{HeatmapSnapshot, JobProgress, LatentSnapshot, PlanShot};
use crate::model::agent::ModuleKind;
use crate::planner::PlannerConfig;
use crate::train::metrics::{EpisodeSummary, RoundMetrics};
use crate::seed::derive;
use crate::train::Actor;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the UI asks the worker to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Switch to another environment and restart its stream from episode 0.
    SetEnv(EnvKind),
    /// Run steps continuously at the configured pace.
    Play,
    /// Run `n` more steps at the configured pace, then pause.
    PlayFor(u64),
    /// Stop stepping (the current episode stays where it is).
    Pause,
    /// One environment step; only while paused.
    Step,
    /// Restart the current environment's stream from episode 0 (paused).
    Reset,
    /// Pace of continuous play, in environment steps per second.
    SetSpeed(f32),
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
    /// Something failed (a panic in the simulation, for example); the worker keeps running.
    Error(String),
}

/// What a training run ("Train from scratch") reports to the views.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainingUpdate {
    /// A run started in this folder: forget the previous run's curves.
    Started { run_dir: PathBuf },
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
    /// Rounds of another run to overlay on the curves (e.g. an ablation).
    Overlay { name: String, rounds: Vec<RoundMetrics> },
    /// The run ended (all rounds done) or was stopped; its folder is consistent.
    Ended { completed: bool },
}

/// Builds an environment from its kind and seed ([`EnvKind::make`] outside tests).
pub type EnvFactory = fn(EnvKind, u64) -> Box<dyn Env>;

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
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            kind: EnvKind::Navigation,
            seed: 0,
            steps_per_second: 25.0,
            make_env: EnvKind::make,
            agents: HashMap::new(),
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
    pub fn spawn(options: WorkerOptions, repaint: Box<dyn Fn() + Send>) -> std::io::Result<Self> {
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("ls3-episode-worker".into())
            .spawn(move || Worker::new(options, ev_tx, repaint).run(&cmd_rx))?;
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

/// Who acts in the live episode.
enum Driver {
    /// The task demonstrator with its random stream and action noise.
    Teacher {
        set: &'static DemoSet,
        teacher: Box<dyn Teacher>,
        rng: StdRng,
        noise: Normal<f32>,
    },
    /// A trained agent planning every step; its actor owns the environment.
    Agent {
        actor: Box<Actor>,
        agent: Arc<Agent>,
        planner: PlannerConfig,
    },
}

/// The live episode: who acts and how far it got.
struct Live {
    episode: u64,
    driver: Driver,
    steps: usize,
    t: usize,
    cost: f32,
    success: bool,
    violated: bool,
}

struct Worker {
    kind: EnvKind,
    seed: u64,
    period: Duration,
    make_env: EnvFactory,
    agent_dirs: HashMap<EnvKind, PathBuf>,
    /// Agents loaded so far (`None`: loading failed, the demonstrator acts).
    agents: HashMap<EnvKind, Option<(Arc<Agent>, PlannerConfig)>>,
    env: Option<Box<dyn Env>>,
    live: Option<Live>,
    next_episode: u64,
    state: WorkerState,
    /// Steps left before pausing (from [`Command::PlayFor`]).
    budget: Option<u64>,
    events: Sender<Event>,
    repaint: Box<dyn Fn() + Send>,
}

/// Outcome of handling one command.
enum Flow {
    Continue,
    Stop,
}

impl Worker {
    fn new(options: WorkerOptions, events: Sender<Event>, repaint: Box<dyn Fn() + Send>) -> Self {
        Self {
            kind: options.kind,
            seed: options.seed,
            period: period(options.steps_per_second),
            make_env: options.make_env,
            agent_dirs: options.agents,
            agents: HashMap::new(),
            env: None,
            live: None,
            next_episode: 0,
            state: WorkerState::Paused,
            budget: None,
            events,
            repaint,
        }
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
                    self.advance();
                    next_step = (next_step + self.period).max(Instant::now());
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.flush();
        }
    }

    fn handle(&mut self, command: Command) -> Flow {
        match command {
            Command::SetEnv(kind) => {
                self.kind = kind;
                self.set_state(WorkerState::Paused);
                self.restart();
            }
            Command::Reset => {
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

    /// Starts the stream over: episode 0 of the current environment, shown paused at its start.
    fn restart(&mut self) {
        self.next_episode = 0;
        self.live = None;
        self.env = None;
        self.emit(Event::Restarted {
            kind: self.kind,
            seed: self.seed,
        });
        self.guarded(Self::start_episode);
    }

    /// One environment step (starting a fresh episode first when none is live).
    fn advance(&mut self) {
        if self.live.is_none() && !self.guarded(Self::start_episode) {
            return;
        }
        if self.guarded(Self::step)
            && let Some(budget) = self.budget.as_mut()
        {
            *budget = budget.saturating_sub(1);
            if *budget == 0 {
                self.set_state(WorkerState::Paused);
            }
        }
    }

    /// Runs `f`, turning a panic into an [`Event::Error`] and a paused worker whose episode is
    /// dropped (the next step starts a fresh one). Returns whether `f` completed.
    fn guarded(&mut self, f: fn(&mut Self)) -> bool {
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(()) => true,
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                self.live = None;
                self.env = None;
                self.emit(Event::Error(format!(
                    "{} episode {} failed: {message}",
                    self.kind, self.next_episode
                )));
                self.set_state(WorkerState::Paused);
                false
            }
        }
    }

    /// The agent for the current environment, loaded on first use.
    fn agent(&mut self) -> Option<(Arc<Agent>, PlannerConfig)> {
        let kind = self.kind;
        if !self.agents.contains_key(&kind) {
            let loaded = self.agent_dirs.get(&kind).and_then(|dir| {
                let device = crate::model::default_device();
                match crate::model::checkpoint::load(dir, Some(kind), &device) {
                    Ok((agent, meta)) => {
                        let planner = meta
                            .config
                            .get("config")
                            .and_then(|c| {
                                serde_json::from_value::<crate::config::Config>(c.clone()).ok()
                            })
                            .map_or_else(
                                || crate::config::Config::quick(kind).planner,
                                |c| c.planner,
                            );
                        Some((Arc::new(agent), planner))
                    }
                    Err(e) => {
                        self.emit(Event::Error(format!(
                            "the {kind} agent could not be loaded, the demonstrator acts \
                             instead: {e}"
                        )));
                        None
                    }
                }
            });
            self.agents.insert(kind, loaded);
        }
        self.agents[&kind].clone()
    }

    fn start_episode(&mut self) {
        let kind = self.kind;
        let episode = self.next_episode;
        self.next_episode += 1;
        if let Some((agent, planner)) = self.agent() {
            // Keep the actor of the episode that just ended (same seeds); a new one otherwise.
            let mut actor = match self.live.take().map(|l| l.driver) {
                Some(Driver::Agent { actor, .. }) if actor.env().kind() == kind => actor,
                _ => Box::new(Actor::new(kind, derive(self.seed, "eval", 0))),
            };
            let (state, frame) = actor.begin(episode as usize);
            let env = actor.env();
            let start = EpisodeStart {
                episode,
                kind,
                demonstrator: AGENT_NAME,
                steps: kind.horizon(),
                overlay: env.overlay(),
                frame,
                marker: env.marker(&state),
                state,
            };
            self.env = None;
            self.live = Some(Live {
                episode,
                driver: Driver::Agent {
                    actor,
                    agent,
                    planner,
                },
                steps: kind.horizon(),
                t: 0,
                cost: 0.0,
                success: false,
                violated: false,
            });
            self.emit(Event::EpisodeStarted(start));
            return;
        }
        let set = &kind.demo_sets()[0];
        // The same streams as episode `episode` of `ls3 collect` for this set.
        let mut env = (self.make_env)(kind, derive(self.seed, set.name, episode));
        let mut rng =
            StdRng::seed_from_u64(derive(self.seed, &format!("{}/teacher", set.name), episode));
        let mut teacher = set.teacher.build();
        env.reset();
        teacher.begin(env.as_mut(), &mut rng);
        let state = env.state();
        let std = set.noise * 2.0 * kind.action_bound();
        let start = EpisodeStart {
            episode,
            kind,
            demonstrator: set.name,
            steps: set.steps,
            overlay: env.overlay(),
            frame: env.render(),
            marker: env.marker(&state),
            state,
        };
        self.env = Some(env);
        self.live = Some(Live {
            episode,
            driver: Driver::Teacher {
                set,
                teacher,
                rng,
                noise: Normal::new(0.0f32, std.max(f32::MIN_POSITIVE)).expect("finite std"),
            },
            steps: set.steps,
            t: 0,
            cost: 0.0,
            success: false,
            violated: false,
        });
        self.emit(Event::EpisodeStarted(start));
    }

    fn step(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let event = match &mut live.driver {
            Driver::Teacher {
                set,
                teacher,
                rng,
                noise,
            } => {
                let Some(env) = self.env.as_mut() else {
                    return;
                };
                let kind = env.kind();
                let state = env.state();
                let mut action = teacher.act(live.t, &state, rng);
                if set.noise > 0.0 {
                    action[0] += noise.sample(rng);
                    action[1] += noise.sample(rng);
                }
                let action = kind.clip_action(action);
                let step = env.step(action);
                StepEvent {
                    episode: live.episode,
                    t: live.t + 1,
                    action,
                    marker: env.marker(&step.state),
                    frame: step.frame,
                    state: step.state,
                    reward: step.reward,
                    constraint: step.constraint,
                    plan: None,
                }
            }
            Driver::Agent {
                actor,
                agent,
                planner,
            } => match actor.step(agent, planner) {
                Ok(s) => StepEvent {
                    episode: live.episode,
                    t: live.t + 1,
                    action: actor.env().kind().clip_action(s.plan.action),
                    marker: actor.env().marker(&s.state),
                    frame: s.frame,
                    state: s.state,
                    reward: s.reward,
                    constraint: s.constraint,
                    plan: Some(Arc::new(PlanShot {
                        record: s.plan,
                        imagined: Vec::new(),
                    })),
                },
                Err(e) => {
                    let message = format!("the agent failed to act: {e:#}");
                    self.live = None;
                    self.emit(Event::Error(message));
                    self.set_state(WorkerState::Paused);
                    return;
                }
            },
        };
        live.t += 1;
        live.cost -= event.reward;
        live.success |= event.reward == 0.0;
        live.violated |= event.constraint;
        let end = (live.t >= live.steps).then_some(EpisodeEnd {
            episode: live.episode,
            steps: live.t,
            cost: live.cost,
            success: live.success,
            violated: live.violated,
        });
        self.emit(Event::Step(event));
        if let Some(end) = end {
            self.emit(Event::EpisodeFinished(end));
            self.start_episode();
        }
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
mod tests {
    use super::*;
    use crate::data::collect::demo_episode;
    use crate::env::{FRAME_LEN, IMAGE_SIZE, Step};

    const WAIT: Duration = Duration::from_secs(10);

    fn spawn(kind: EnvKind, steps_per_second: f32) -> WorkerHandle {
        let options = WorkerOptions {
            kind,
            seed: 3,
            steps_per_second,
            ..WorkerOptions::default()
        };
        WorkerHandle::spawn(options, Box::new(|| {})).expect("spawning the worker")
    }

    /// Receives events until `pred` matches one, failing after a timeout.
    fn wait_for(worker: &WorkerHandle, mut pred: impl FnMut(&Event) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let event = worker
                .events()
                .recv_deadline(deadline)
                .unwrap_or_else(|_| panic!("timed out; events so far: {seen:#?}"));
            let done = pred(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }

    /// Everything that arrives within `quiet` of the last event.
    fn drain(worker: &WorkerHandle, quiet: Duration) -> Vec<Event> {
        std::iter::from_fn(|| worker.events().recv_timeout(quiet).ok()).collect()
    }

    fn steps(events: &[Event]) -> Vec<&StepEvent> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Step(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_trained_agent_acts_and_reports_its_plans_where_one_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("agent");
        let spec = crate::model::agent::AgentSpec::for_env(EnvKind::Navigation);
        let agent = Agent::new(spec, &candle_core::Device::Cpu, 1).unwrap();
        let mut config = crate::config::Config::quick(EnvKind::Navigation);
        config.planner.population = 12;
        config.planner.elites = 3;
        config.planner.particles = 2;
        let meta = serde_json::json!({ "config": config });
        crate::model::checkpoint::save(&agent, &ck, meta).unwrap();
        let options = WorkerOptions {
            seed: 3,
            agents: HashMap::from([(EnvKind::Navigation, ck)]),
            ..WorkerOptions::default()
        };
        let worker = WorkerHandle::spawn(options, Box::new(|| {})).unwrap();
        let events = wait_for(&worker, |e| matches!(e, Event::EpisodeStarted(_)));
        let Some(Event::EpisodeStarted(start)) = events.last() else {
            unreachable!()
        };
        assert_eq!(start.demonstrator, AGENT_NAME);
        assert_eq!(start.steps, 100);
        worker.send(Command::Step);
        let events = wait_for(&worker, |e| matches!(e, Event::Step(_)));
        let step = steps(&events)[0];
        let plan = &step
            .plan
            .as_ref()
            .expect("the agent's step carries its plan")
            .record;
        assert_eq!(
            plan.config.population, 12,
            "planner settings from the checkpoint"
        );
        assert_eq!(plan.actions.len(), plan.config.horizon);
        assert_eq!(step.action, EnvKind::Navigation.clip_action(plan.action));
    }

    #[test]
    fn an_unreadable_agent_is_reported_and_the_demonstrator_acts() {
        let options = WorkerOptions {
            agents: HashMap::from([(EnvKind::Navigation, PathBuf::from("/no/such/agent"))]),
            ..WorkerOptions::default()
        };
        let worker = WorkerHandle::spawn(options, Box::new(|| {})).unwrap();
        let events = wait_for(&worker, |e| matches!(e, Event::EpisodeStarted(_)));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Error(m) if m.contains("/no/such/agent"))),
            "{events:#?}"
        );
        let Some(Event::EpisodeStarted(start)) = events.last() else {
            unreachable!()
        };
        assert_eq!(start.demonstrator, EnvKind::Navigation.demo_sets()[0].name);
    }

    #[test]
    fn starts_paused_showing_the_first_frame_of_episode_zero() {
        let worker = spawn(EnvKind::Navigation, 25.0);
        let events = wait_for(&worker, |e| matches!(e, Event::EpisodeStarted(_)));
        assert!(matches!(
            events[0],
            Event::Restarted {
                kind: EnvKind::Navigation,
                seed: 3
            }
        ));
        let Some(Event::EpisodeStarted(start)) = events.last() else {
            unreachable!()
        };
        assert_eq!(start.episode, 0);
        assert_eq!(start.frame.0.len(), FRAME_LEN);
        assert!(!start.overlay.hazards.is_empty() && !start.overlay.goals.is_empty());
        assert!(steps(&drain(&worker, Duration::from_millis(200))).is_empty());
    }

    #[test]
    fn play_streams_steps_with_full_frames_and_markers_inside_the_image() {
        let worker = spawn(EnvKind::Navigation, 500.0);
        worker.send(Command::Play);
        let mut n = 0;
        let events = wait_for(&worker, |e| {
            n += matches!(e, Event::Step(_)) as usize;
            n == 20
        });
        assert!(events.contains(&Event::State(WorkerState::Playing)));
        for (i, s) in steps(&events).into_iter().enumerate() {
            assert_eq!(s.t, i + 1);
            assert_eq!(s.frame.0.len(), FRAME_LEN);
            let size = IMAGE_SIZE as f32;
            assert!((0.0..=size).contains(&s.marker[0]) && (0.0..=size).contains(&s.marker[1]));
            assert_eq!(s.state.len(), 2);
        }
    }

    #[test]
    fn pause_stops_the_step_events() {
        let worker = spawn(EnvKind::Navigation, 200.0);
        worker.send(Command::Play);
        wait_for(&worker, |e| matches!(e, Event::Step(_)));
        worker.send(Command::Pause);
        wait_for(&worker, |e| *e == Event::State(WorkerState::Paused));
        let after = drain(&worker, Duration::from_millis(300));
        assert!(steps(&after).is_empty(), "stepped while paused: {after:#?}");
    }

    #[test]
    fn step_while_paused_emits_exactly_one_step() {
        let worker = spawn(EnvKind::Navigation, 25.0);
        wait_for(&worker, |e| matches!(e, Event::EpisodeStarted(_)));
        worker.send(Command::Step);
        let events = drain(&worker, Duration::from_millis(300));
        let s = steps(&events);
        assert_eq!(s.len(), 1, "{events:#?}");
        assert_eq!((s[0].episode, s[0].t), (0, 1));
    }

    #[test]
    fn play_for_pauses_after_exactly_n_steps() {
        let worker = spawn(EnvKind::Navigation, 1000.0);
        worker.send(Command::PlayFor(30));
        let events = wait_for(&worker, |e| *e == Event::State(WorkerState::Paused));
        let more = drain(&worker, Duration::from_millis(200));
        assert_eq!(steps(&events).len() + steps(&more).len(), 30);
    }

    #[test]
    fn set_env_switches_the_kind_of_the_next_episode() {
        let worker = spawn(EnvKind::Navigation, 25.0);
        wait_for(&worker, |e| matches!(e, Event::EpisodeStarted(_)));
        worker.send(Command::SetEnv(EnvKind::Push));
        let events = wait_for(&worker, |e| matches!(e, Event::EpisodeStarted(_)));
        assert!(events.contains(&Event::Restarted {
            kind: EnvKind::Push,
            seed: 3
        }));
        let Some(Event::EpisodeStarted(start)) = events.last() else {
            unreachable!()
        };
        assert_eq!((start.kind, start.episode), (EnvKind::Push, 0));
        assert_eq!(start.demonstrator, EnvKind::Push.demo_sets()[0].name);
    }

    #[test]
    fn shutdown_ends_the_thread() {
        let mut worker = spawn(EnvKind::Navigation, 200.0);
        worker.send(Command::Play);
        wait_for(&worker, |e| matches!(e, Event::Step(_)));
        worker.send(Command::Shutdown);
        let deadline = Instant::now() + WAIT;
        while !worker.is_finished() {
            assert!(Instant::now() < deadline, "worker did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
        worker.shutdown();
    }

    #[test]
    fn episodes_replay_the_collected_demo_episodes_and_continue() {
        let kind = EnvKind::Navigation;
        let set = &kind.demo_sets()[0];
        let worker = spawn(kind, 10_000.0);
        worker.send(Command::PlayFor(set.steps as u64 + 1));
        let events = wait_for(&worker, |e| *e == Event::State(WorkerState::Paused));
        let expected = demo_episode(kind, set, 3, 0);
        let got: Vec<_> = steps(&events)
            .into_iter()
            .filter(|s| s.episode == 0)
            .collect();
        assert_eq!(got.len(), expected.len());
        for (s, e) in got.iter().zip(&expected.transitions) {
            assert_eq!(s.action, e.action);
            assert_eq!(s.reward, e.reward);
            assert_eq!(s.constraint, e.constraint);
            assert_eq!(Some(&s.state), e.state.as_ref());
        }
        let end = events.iter().find_map(|e| match e {
            Event::EpisodeFinished(end) => Some(end.clone()),
            _ => None,
        });
        assert_eq!(
            end,
            Some(EpisodeEnd {
                episode: 0,
                steps: set.steps,
                cost: expected.cost(),
                success: expected.success(),
                violated: expected.violated(),
            })
        );
        let next = events.iter().rev().find_map(|e| match e {
            Event::Step(s) => Some((s.episode, s.t)),
            _ => None,
        });
        assert_eq!(next, Some((1, 1)));
    }

    /// An environment whose `step` always panics.
    struct Broken;
    impl Env for Broken {
        fn kind(&self) -> EnvKind {
            EnvKind::Navigation
        }
        fn reset(&mut self) -> Frame {
            Frame::black()
        }
        fn step(&mut self, _action: [f32; 2]) -> Step {
            panic!("simulated failure")
        }
        fn state(&self) -> Vec<f64> {
            vec![0.0, 0.0]
        }
        fn set_state(&mut self, _state: &[f64]) {}
        fn render_state(&self, _state: &[f64]) -> Frame {
            Frame::black()
        }
        fn marker(&self, _state: &[f64]) -> [f32; 2] {
            [0.0, 0.0]
        }
        fn overlay(&self) -> Overlay {
            Overlay::default()
        }
        fn rng(&mut self) -> &mut StdRng {
            unimplemented!("not used")
        }
    }

    #[test]
    fn a_panicking_step_becomes_an_error_event_and_the_worker_stays_up() {
        let options = WorkerOptions {
            make_env: |_, _| Box::new(Broken),
            steps_per_second: 100.0,
            ..WorkerOptions::default()
        };
        let mut worker = WorkerHandle::spawn(options, Box::new(|| {})).expect("spawn");
        worker.send(Command::Play);
        let events = wait_for(&worker, |e| matches!(e, Event::Error(_)));
        let Some(Event::Error(message)) = events.last() else {
            unreachable!()
        };
        assert!(message.contains("simulated failure"), "{message}");
        wait_for(&worker, |e| *e == Event::State(WorkerState::Paused));
        // Still answering: a step starts a fresh episode (which fails again, reported again).
        worker.send(Command::Step);
        let events = wait_for(&worker, |e| matches!(e, Event::Error(_)));
        assert!(events.iter().any(|e| matches!(e, Event::EpisodeStarted(_))));
        assert!(!worker.is_finished());
        worker.shutdown();
        assert!(worker.is_finished());
    }
}
