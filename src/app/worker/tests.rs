use super::*;
use crate::data::collect::demo_episode;
use crate::env::{FRAME_LEN, IMAGE_SIZE, Step};
use crate::model::agent::Agent;
use rand::rngs::StdRng;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

/// The quick preset cut to seconds: one round of one episode with a tiny planner.
fn tiny_config() -> crate::config::Config {
    let mut c = crate::config::Config::quick(EnvKind::Navigation);
    c.vae.iterations = 25;
    c.vae.batch = 8;
    c.set_latent_iters(50, 10);
    c.online.num_updates = 1;
    c.online.traj_per_update = 1;
    c.planner = tiny_planner();
    c
}

fn tiny_planner() -> PlannerConfig {
    PlannerConfig {
        population: 12,
        elites: 3,
        particles: 2,
        horizon: 2,
        iterations: 2,
        ..PlannerConfig::default()
    }
}

/// A worker for training runs in `runs`: 3 demos per set (the VAE probe holds out every fifth
/// episode, so it needs at least five).
fn training_worker(runs: &std::path::Path, heatmap_cells: usize) -> WorkerHandle {
    let options = WorkerOptions {
        seed: 5,
        steps_per_second: 10_000.0,
        runs_dir: Some(runs.to_path_buf()),
        demo_limit: Some(3),
        heatmap_cells,
        ..WorkerOptions::default()
    };
    let worker = WorkerHandle::spawn(options, Box::new(|| {})).unwrap();
    wait_for(&worker, |e| matches!(e, Event::EpisodeStarted(_)));
    worker.send(Command::SetPlanner(tiny_planner()));
    worker.send(Command::SetConfig(Box::new(tiny_config())));
    worker
}

/// Like [`wait_for`] with a longer timeout (training runs).
fn wait_long(worker: &WorkerHandle, mut pred: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen = Vec::new();
    loop {
        let event = worker
            .events()
            .recv_deadline(deadline)
            .unwrap_or_else(|_| panic!("timed out after {} events", seen.len()));
        let done = pred(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

#[test]
fn train_from_scratch_reports_every_phase_shows_its_episodes_and_analyses_the_agent() {
    let runs = tempfile::tempdir().unwrap();
    let worker = training_worker(runs.path(), 4);
    worker.send(Command::TrainFromScratch);
    let events = wait_long(&worker, |e| {
        matches!(e, Event::Training(TrainingUpdate::Ended { .. }))
    });
    let updates: Vec<&TrainingUpdate> = events
        .iter()
        .filter_map(|e| match e {
            Event::Training(u) => Some(u),
            _ => None,
        })
        .collect();
    let Some(TrainingUpdate::Started { run_dir }) = updates.first() else {
        panic!("no Started first: {:?}", updates.first());
    };
    assert!(run_dir.starts_with(runs.path()));
    assert!(run_dir.join("state.json").is_file() && run_dir.join("config.json").is_file());
    let phases: Vec<&str> = updates
        .iter()
        .filter_map(|u| match u {
            TrainingUpdate::Progress(p) => Some(p.phase.as_str()),
            _ => None,
        })
        .collect();
    for phase in [
        "collect SimplePointBot",
        "vae",
        "encode",
        "init gi",
        "update dyn",
    ] {
        assert!(phases.contains(&phase), "{phase} missing from {phases:?}");
    }
    assert!(
        phases
            .iter()
            .any(|p| p.starts_with("round 1/1 episode 1/1"))
    );
    let has = |f: fn(&TrainingUpdate) -> bool| updates.iter().any(|u| f(u));
    assert!(has(|u| matches!(u, TrainingUpdate::Loss { .. })));
    // What the VAE makes of a few demo frames after every chunk, then its probe.
    let recons: Vec<_> = updates
        .iter()
        .filter_map(|u| match u {
            TrainingUpdate::Reconstructions(r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(!recons.is_empty(), "no reconstructions");
    assert!(recons.windows(2).all(|w| w[0].iteration < w[1].iteration));
    for r in &recons {
        assert_eq!((r.originals.len(), r.decoded.len()), (8, 8));
        assert!(r.decoded.iter().all(|f| f.0.len() == crate::env::FRAME_LEN));
    }
    assert!(
        has(|u| matches!(u, TrainingUpdate::Probe(p) if p.quantities.len() == 2)),
        "{}",
        std::fs::read_to_string(run_dir.join("log.txt")).unwrap_or_default()
    );
    assert!(has(
        |u| matches!(u, TrainingUpdate::DemoMeanCost(c) if c.is_finite())
    ));
    assert!(has(
        |u| matches!(u, TrainingUpdate::Episode(e) if e.steps == 100)
    ));
    assert!(has(
        |u| matches!(u, TrainingUpdate::Round(r) if r.episodes == 1)
    ));
    assert!(has(|u| *u == TrainingUpdate::Ended { completed: true }));
    assert!(has(
        |u| matches!(u, TrainingUpdate::Progress(p) if p.eta.is_some())
    ));

    // The agent's training episode plays like any other, with its plans' imagined frames.
    let start = events.iter().find_map(|e| match e {
        Event::EpisodeStarted(s) if s.demonstrator == TRAINING_AGENT_NAME => Some(s),
        _ => None,
    });
    assert_eq!(start.map(|s| s.episode), Some(0));
    let agent_steps: Vec<&StepEvent> = steps(&events)
        .into_iter()
        .filter(|s| s.plan.is_some())
        .collect();
    assert_eq!(agent_steps.len(), 100);
    let shot = agent_steps[0].plan.as_ref().unwrap();
    assert_eq!(shot.record.config.population, 12);
    assert_eq!(shot.imagined.len(), shot.record.latents.len());
    assert!(events.iter().any(|e| matches!(
        e,
        Event::EpisodeFinished(end) if end.episode == 0 && end.steps == 100
    )));

    // Snapshots after the initial training and after the round (on the helper thread).
    let mut snapshots = events.clone();
    if !snapshots.iter().any(|e| matches!(e, Event::SceneProbe(..))) {
        snapshots.extend(wait_long(&worker, |e| matches!(e, Event::SceneProbe(..))));
    }
    // The scene probe of the trained agent, for drawing its plans (R² is a number; this tiny
    // agent need not encode the robot well).
    assert!(snapshots.iter().any(|e| matches!(
        e,
        Event::SceneProbe(kind, p) if *kind == EnvKind::Navigation && p.r2.iter().all(|r| r.is_finite())
    )));
    let (mut heatmaps, mut latents) = (0, 0);
    for e in &snapshots {
        match e {
            Event::Heatmaps(h) => {
                heatmaps += 1;
                assert_eq!((h.maps.nx, h.maps.ny), (4, 3));
            }
            Event::Latents(l) => {
                latents += 1;
                assert_eq!(l.points.len(), l.labels.len());
                assert_eq!(l.thumbnails.len(), l.points.len());
                assert!(l.thumbnails.iter().any(Option::is_some));
                assert!(l.labels.contains(&crate::app::data::LatentLabel::Demo));
            }
            _ => {}
        }
    }
    assert!(heatmaps >= 1 && latents >= 1);
    // Afterwards the trained agent acts.
    worker.send(Command::Step);
    let events = wait_for(&worker, |e| matches!(e, Event::Step(_)));
    assert!(steps(&events)[0].plan.is_some());
}

#[test]
fn training_pauses_steps_and_stops_leaving_a_resumable_run_folder() {
    let runs = tempfile::tempdir().unwrap();
    let worker = training_worker(runs.path(), 0);
    worker.send(Command::TrainFromScratch);
    worker.send(Command::Pause);
    let events = wait_for(&worker, |e| *e == Event::State(WorkerState::Paused));
    let run_dir = events
        .iter()
        .find_map(|e| match e {
            Event::Training(TrainingUpdate::Started { run_dir }) => Some(run_dir.clone()),
            _ => None,
        })
        .expect("started");
    drain(&worker, Duration::from_millis(300));
    // One Step is one session step: a single demo episode collected.
    worker.send(Command::Step);
    let events = drain(&worker, Duration::from_millis(500));
    let progress: Vec<&JobProgress> = events
        .iter()
        .filter_map(|e| match e {
            Event::Training(TrainingUpdate::Progress(p)) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(progress.len(), 1, "{events:#?}");
    assert!(progress[0].phase.starts_with("collect"));
    worker.send(Command::StopTraining);
    let events = wait_for(&worker, |e| {
        matches!(e, Event::Training(TrainingUpdate::Ended { .. }))
    });
    assert!(events.contains(&Event::Training(TrainingUpdate::Ended { completed: false })));
    let run = crate::train::Session::resume(&run_dir).expect("the stopped run resumes");
    assert_eq!(run.config().planner.population, 12);
    // The app carries on with the demonstrator.
    worker.send(Command::Step);
    let events = wait_for(&worker, |e| matches!(e, Event::Step(_)));
    assert!(steps(&events)[0].plan.is_none());
}

#[test]
fn a_corrupt_checkpoint_is_reported_with_its_file_and_the_worker_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("agent");
    std::fs::create_dir(&ck).unwrap();
    std::fs::write(ck.join("agent.json"), "{ not json").unwrap();
    let worker = spawn(EnvKind::Navigation, 25.0);
    wait_for(&worker, |e| matches!(e, Event::EpisodeStarted(_)));
    worker.send(Command::LoadAgent(ck.clone()));
    let events = wait_for(&worker, |e| matches!(e, Event::Error(_)));
    let Some(Event::Error(message)) = events.last() else {
        unreachable!()
    };
    assert!(message.contains("agent.json"), "{message}");
    worker.send(Command::Step);
    wait_for(&worker, |e| matches!(e, Event::Step(_)));
}

#[test]
fn configurations_round_trip_through_json_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let worker = spawn(EnvKind::Navigation, 25.0);
    wait_for(&worker, |e| matches!(e, Event::EpisodeStarted(_)));
    worker.send(Command::SetPlanner(tiny_planner()));
    worker.send(Command::SaveConfig(path.clone()));
    wait_for(&worker, |e| matches!(e, Event::Notice(_)));
    let mut saved: crate::config::Config =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved.planner, tiny_planner());
    saved.env = EnvKind::Push;
    std::fs::write(&path, serde_json::to_vec(&saved).unwrap()).unwrap();
    worker.send(Command::LoadConfig(path.clone()));
    let events = wait_for(&worker, |e| matches!(e, Event::Notice(_)));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Config(c) if c.env == EnvKind::Push && c.planner == tiny_planner()
    )));
    assert!(events.contains(&Event::Restarted {
        kind: EnvKind::Push,
        seed: 3
    }));
    std::fs::write(&path, "{ \"env\": ").unwrap();
    worker.send(Command::LoadConfig(path.clone()));
    let events = wait_for(&worker, |e| matches!(e, Event::Error(_)));
    assert!(
        matches!(events.last(), Some(Event::Error(m)) if m.contains("config.json")),
        "{events:#?}"
    );
}

#[test]
fn persisted_planner_settings_are_in_effect_from_the_start() {
    let options = WorkerOptions {
        planner: Some(tiny_planner()),
        heatmap_cells: 0,
        ..WorkerOptions::default()
    };
    let worker = WorkerHandle::spawn(options, Box::new(|| {})).unwrap();
    let events = wait_for(&worker, |e| matches!(e, Event::Config(_)));
    let Some(Event::Config(config)) = events.last() else {
        unreachable!()
    };
    assert_eq!(config.planner, tiny_planner());
}

#[test]
fn a_results_folder_overlays_each_of_its_runs_and_a_missing_one_is_an_error() {
    use crate::train::metrics::{MetricsLog, RoundMetrics};
    let dir = tempfile::tempdir().unwrap();
    for (folder, rounds) in [("ls3", 3), ("no-safe-set", 2)] {
        let run = dir.path().join(folder);
        std::fs::create_dir_all(&run).unwrap();
        let mut log = MetricsLog::open(&run).unwrap();
        for r in 0..rounds {
            log.round(&RoundMetrics::of(r, &[], 0)).unwrap();
        }
    }
    let worker = spawn(EnvKind::Navigation, 25.0);
    wait_for(&worker, |e| matches!(e, Event::EpisodeStarted(_)));
    worker.send(Command::OpenRun(dir.path().to_path_buf()));
    let mut overlays = Vec::new();
    wait_for(&worker, |e| {
        if let Event::Training(TrainingUpdate::Overlay { name, rounds }) = e {
            overlays.push((name.clone(), rounds.len()));
        }
        overlays.len() == 2
    });
    assert_eq!(
        overlays,
        [("LS3".to_string(), 3), ("no safe set".to_string(), 2)]
    );
    worker.send(Command::OpenRun(dir.path().join("elsewhere")));
    let events = wait_for(&worker, |e| matches!(e, Event::Error(_)));
    assert!(
        matches!(events.last(), Some(Event::Error(m)) if m.contains("elsewhere")),
        "{events:#?}"
    );
}

#[test]
fn open_run_on_a_sweep_overlays_each_variant_over_its_finished_seeds() {
    use crate::config::Preset;
    use crate::planner::Ablation;
    use crate::train::metrics::{MetricsLog, RoundMetrics};
    use crate::train::run_state::{Layout, RunState};
    use crate::train::sweep::{Base, SweepPlan, SweepSpec, execute::run_dir};
    let dir = tempfile::tempdir().unwrap();
    let plan = SweepPlan::new(&SweepSpec {
        envs: vec![EnvKind::Navigation],
        seeds: vec![0, 1, 2],
        ablations: vec![Ablation::None, Ablation::NoSafeSet],
        base: Base::Preset(Preset::Quick),
        rounds: Some(2),
        demo_limit: None,
    })
    .unwrap();
    plan.write(dir.path()).unwrap();
    // every seed of LS3 finished with success 0.5 then 1.0 · seed; seed 2 of the ablation did not
    for run in &plan.runs {
        let folder = run_dir(dir.path(), run);
        std::fs::create_dir_all(&folder).unwrap();
        let finished = !(run.ablation == Ablation::NoSafeSet && run.seed == 2);
        let mut log = MetricsLog::open(&folder).unwrap();
        for r in 0..2 {
            let mut m = RoundMetrics::of(r, &[], 0);
            m.success_rate = if r == 0 { 0.5 } else { run.seed as f32 / 2.0 };
            log.round(&m).unwrap();
        }
        let state = RunState {
            finished,
            rounds_done: 2,
            ..RunState::default()
        };
        std::fs::write(Layout(&folder).state(), serde_json::to_vec(&state).unwrap()).unwrap();
    }
    let worker = spawn(EnvKind::Navigation, 25.0);
    wait_for(&worker, |e| matches!(e, Event::EpisodeStarted(_)));
    worker.send(Command::OpenRun(dir.path().to_path_buf()));
    let mut overlays = Vec::new();
    wait_for(&worker, |e| {
        if let Event::Training(TrainingUpdate::SweepOverlay { name, rounds }) = e {
            overlays.push((name.clone(), rounds.clone()));
        }
        overlays.len() == 2
    });
    let names: Vec<&str> = overlays.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["navigation LS3 (n = 3)", "navigation no safe set (n = 2)"]
    );
    let ls3 = &overlays[0].1;
    assert_eq!(ls3.len(), 2);
    assert_eq!(
        (ls3[0].success_rate.mean, ls3[0].success_rate.std),
        (0.5, 0.0)
    );
    // seeds 0, 1, 2 → 0, 0.5, 1: mean 0.5, population std √(1/6)
    assert!((ls3[1].success_rate.mean - 0.5).abs() < 1e-6);
    assert!((ls3[1].success_rate.std - (1.0f32 / 6.0).sqrt()).abs() < 1e-5);
    // a sweep folder whose plan cannot be read is an error naming it
    std::fs::write(dir.path().join("sweep.json"), b"{").unwrap();
    worker.send(Command::OpenRun(dir.path().to_path_buf()));
    let events = wait_for(&worker, |e| matches!(e, Event::Error(_)));
    assert!(
        matches!(events.last(), Some(Event::Error(m)) if m.contains("could not open the sweep")),
        "{events:#?}"
    );
}

/// Quick planner settings with more elites than candidates.
fn too_many_elites() -> PlannerConfig {
    PlannerConfig {
        population: 500,
        elites: 5000,
        ..tiny_planner()
    }
}

#[test]
fn invalid_planner_settings_from_the_controls_or_a_file_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let worker = spawn(EnvKind::Navigation, 25.0);
    wait_for(&worker, |e| matches!(e, Event::EpisodeStarted(_)));
    worker.send(Command::SetPlanner(too_many_elites()));
    let events = wait_for(&worker, |e| matches!(e, Event::Error(_)));
    assert!(
        matches!(events.last(), Some(Event::Error(m))
            if m.contains("planner.elites = 5000 must be ≤ planner.population (500)")),
        "{events:#?}"
    );
    worker.send(Command::SaveConfig(path.clone()));
    wait_for(&worker, |e| matches!(e, Event::Notice(_)));
    let mut saved: Config = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved.planner, Config::quick(EnvKind::Navigation).planner);

    saved.planner = too_many_elites();
    std::fs::write(&path, serde_json::to_vec(&saved).unwrap()).unwrap();
    worker.send(Command::LoadConfig(path.clone()));
    let events = wait_for(&worker, |e| matches!(e, Event::Error(_)));
    assert!(
        matches!(events.last(), Some(Event::Error(m))
            if m.contains("config.json") && m.contains("planner.elites = 5000")),
        "{events:#?}"
    );
}

#[test]
fn invalid_persisted_planner_settings_are_dropped_with_a_message() {
    let options = WorkerOptions {
        planner: Some(too_many_elites()),
        heatmap_cells: 0,
        ..WorkerOptions::default()
    };
    let worker = WorkerHandle::spawn(options, Box::new(|| {})).unwrap();
    let events = wait_for(&worker, |e| matches!(e, Event::Config(_)));
    assert!(
        events.iter().any(|e| matches!(e, Event::Error(m)
            if m.contains("stored planner settings") && m.contains("planner.elites"))),
        "{events:#?}"
    );
    let Some(Event::Config(config)) = events.last() else {
        unreachable!()
    };
    assert_eq!(config.planner, Config::quick(EnvKind::Navigation).planner);
}
