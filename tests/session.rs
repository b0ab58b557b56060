//! The training session end to end on navigation with a tiny seeded budget: every phase runs,
//! every artifact is written, an interrupted run resumes without losing or repeating episodes and
//! trains exactly as an uninterrupted one, and run folders are never overwritten.

use ls3::config::{Config, Validate};
use ls3::env::EnvKind;
use ls3::model::agent::ModuleKind;
use ls3::train::metrics::RoundMetrics;
use ls3::train::{Event, Session, SessionOptions};
use std::collections::BTreeMap;
use std::path::Path;

/// The quick preset cut to seconds: 2 rounds of 2 episodes with a tiny planner.
fn tiny() -> Config {
    let mut c = Config::quick(EnvKind::Navigation);
    c.vae.iterations = 30;
    c.vae.batch = 8;
    c.set_latent_iters(60, 20);
    c.online.num_updates = 2;
    c.online.traj_per_update = 2;
    c.planner.population = 20;
    c.planner.elites = 4;
    c.planner.particles = 2;
    c.planner.horizon = 2;
    c.planner.iterations = 2;
    c
}

fn options(dir: &Path) -> SessionOptions {
    SessionOptions {
        config: tiny().validated().unwrap(),
        preset: None,
        seed: 7,
        data: None,
        checkpoint: None,
        run_dir: dir.to_path_buf(),
        demo_limit: Some(3),
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_session_runs_every_phase_and_writes_every_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut opts = options(&dir);
    let mut config = tiny();
    config.online.traj_per_update = 1;
    opts.config = config.validated().unwrap();
    let mut session = Session::create(opts).unwrap();
    let mut phases = Vec::new();
    let (mut steps, mut episodes, mut rounds) = (0, 0, Vec::<RoundMetrics>::new());
    let mut planned_with = None;
    session
        .run_to_end(&mut |e| match e {
            Event::Progress(p) if phases.last() != Some(&p.phase) => phases.push(p.phase),
            Event::Step(s) => {
                steps += 1;
                planned_with = Some(s.plan.config.population);
                assert_eq!(s.plan.actions.len(), 2, "horizon 2");
            }
            Event::EpisodeFinished(_) => episodes += 1,
            Event::RoundFinished(r) => rounds.push(r),
            _ => {}
        })
        .unwrap();
    assert!(session.finished());

    for phase in [
        "collect SimplePointBot",
        "collect SimplePointBotConstraints",
        "vae",
        "encode",
        "init dyn",
        "init val",
        "init ss",
        "init constr",
        "init gi",
        "update dyn",
        "update gi",
    ] {
        assert!(
            phases.iter().any(|p| p == phase),
            "{phase} missing from {phases:?}"
        );
    }
    assert_eq!((steps, episodes, rounds.len()), (200, 2, 2));
    assert_eq!(planned_with, Some(20));
    assert_eq!(rounds[1].round, 1);
    assert_eq!(rounds[1].episodes, 1);
    // The replay holds both demo sets, the quick preset's random-action branches off the task
    // demos (first steps left out: their start states are not stored) and the agent's 200
    // transitions.
    assert_eq!(session.replay().len(), 3 * 100 + 3 * 100 + 3 * 99 + 200);

    for f in [
        "config.json",
        "state.json",
        "log.txt",
        "vae_loss.csv",
        "module_loss.csv",
        "vae_recon_000030.png",
        "vae_samples_000030.png",
        "data/navigation/SimplePointBot/2.json",
        "data/navigation/SimplePointBotConstraints/2_obs.npy",
        "checkpoints/vae/agent.json",
        "checkpoints/init/vae.safetensors",
        "checkpoints/round_01/gi.safetensors",
        "checkpoints/round_02/agent.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    for i in 0..2 {
        for suffix in [".json", "_obs.npy", "_next_obs.npy", ".gif"] {
            let f = dir.join(format!("episodes/{i}{suffix}"));
            assert!(f.is_file(), "{} missing", f.display());
        }
    }
    let gif = image::open(dir.join("episodes/0.gif")).unwrap();
    assert_eq!((gif.width(), gif.height()), (128, 128));

    let metrics = lines(&dir.join("metrics.csv"));
    assert_eq!(metrics.len(), 3, "{metrics:?}");
    assert!(metrics[0].starts_with("round,episodes,mean_cost,std_cost,success_rate"));
    assert_eq!(lines(&dir.join("episodes.csv")).len(), 3);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["rounds_done"], 2);
    assert_eq!(state["episodes"], 2);
    assert_eq!(state["finished"], true);
    assert_eq!(state["iterations"]["vae"], 30);
    assert_eq!(state["iterations"]["dyn"], 60 + 2 * 20);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["seed"], 7);
    assert_eq!(config["config"]["planner"]["population"], 20);

    // The final checkpoint loads as a complete navigation agent.
    let device = ls3::model::default_device();
    let (agent, meta) = ls3::model::checkpoint::load(
        &dir.join("checkpoints/round_02"),
        Some(EnvKind::Navigation),
        &device,
    )
    .unwrap();
    assert_eq!(agent.spec.env, EnvKind::Navigation);
    assert_eq!(meta.config["rounds"], 2);

    // A finished run's folder is never reused for a new run.
    let err = Session::create(options(&dir)).err().expect("refused");
    assert!(err.to_string().contains("never overwritten"), "{err:#}");
}

#[test]
fn an_interrupted_session_resumes_without_losing_or_repeating_episodes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut session = Session::create(options(&dir)).unwrap();
    // Stop in the middle of episode 3 (round 2), after episode 2 was stored.
    let mut stored = 0;
    let mut steps_in_current = 0;
    while stored < 3 || steps_in_current < 40 {
        session
            .step(&mut |e| match e {
                Event::EpisodeFinished(_) => {
                    stored += 1;
                    steps_in_current = 0;
                }
                Event::Step(_) => steps_in_current += 1,
                _ => {}
            })
            .unwrap();
    }
    let episode_2 = std::fs::read(dir.join("episodes/2_obs.npy")).unwrap();
    drop(session);

    let mut resumed = Session::resume(&dir).unwrap();
    assert_eq!(resumed.state().rounds_done, 1);
    assert_eq!(resumed.state().episodes, 3);
    let mut started = Vec::new();
    resumed
        .run_to_end(&mut |e| {
            if let Event::EpisodeStarted { index, round, .. } = e {
                started.push((index, round));
            }
        })
        .unwrap();
    // Only the unfinished episode is played again, in round 2.
    assert_eq!(started, vec![(3, 1)]);
    assert_eq!(
        std::fs::read(dir.join("episodes/2_obs.npy")).unwrap(),
        episode_2
    );
    let episodes = lines(&dir.join("episodes.csv"));
    assert_eq!(episodes.len(), 5, "{episodes:?}");
    let metrics = lines(&dir.join("metrics.csv"));
    assert_eq!(metrics.len(), 3, "{metrics:?}");
    assert!(
        metrics[2].starts_with("1,2,"),
        "round 2 has both episodes: {metrics:?}"
    );
    assert!(resumed.finished());
    // The replay holds the demos and all four agent episodes.
    // (plus the quick preset's branches off the 3 task demos, first steps left out)
    assert_eq!(resumed.replay().len(), 600 + 3 * 99 + 400);
    assert!(
        lines(&dir.join("log.txt"))
            .iter()
            .any(|l| l.contains("resuming"))
    );
}

/// Steps `session` until it has written the checkpoint folder called `name`.
fn run_until_checkpoint(session: &mut Session, name: &str) {
    let mut written = false;
    while !written {
        let more = session
            .step(&mut |e| {
                if let Event::Checkpoint(p) = e {
                    written |= p.ends_with(name);
                }
            })
            .unwrap();
        assert!(more || written, "the run ended before checkpoint {name}");
    }
}

/// Every tensor of every module of a checkpoint (targets and running statistics included).
fn checkpoint_tensors(dir: &Path) -> BTreeMap<String, Vec<f32>> {
    let device = ls3::model::default_device();
    let (agent, _) = ls3::model::checkpoint::load(dir, None, &device).unwrap();
    let mut out = BTreeMap::new();
    for m in ModuleKind::ALL {
        let data = agent.vars(m).data().lock().unwrap();
        for (name, var) in data.iter() {
            let v = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            out.insert(format!("{}/{name}", m.name()), v);
        }
    }
    out
}

#[test]
fn a_resumed_session_trains_exactly_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    let mut session = Session::create(options(&straight)).unwrap();
    run_until_checkpoint(&mut session, "round_01");
    drop(session);

    // The same run, stopped after the initial checkpoint, a few steps into its first episode. It
    // starts from the first run's VAE: the VAE's kernel gradients are summed in the order the
    // threads finish, so two VAE trainings can differ in the last bits (not a resume effect).
    let cut = tmp.path().join("cut");
    let mut opts = options(&cut);
    opts.checkpoint = Some(straight.join("checkpoints/vae"));
    let mut session = Session::create(opts).unwrap();
    run_until_checkpoint(&mut session, "init");
    for _ in 0..5 {
        session.step(&mut |_| {}).unwrap();
    }
    drop(session);
    let init = cut.join("checkpoints/init");
    for f in [
        "dyn_adam.safetensors",
        "gi_adam.safetensors",
        "training.json",
    ] {
        assert!(init.join(f).is_file(), "{f} missing from the checkpoint");
    }
    let mut resumed = Session::resume(&cut).unwrap();
    run_until_checkpoint(&mut resumed, "round_01");
    drop(resumed);

    let want = checkpoint_tensors(&straight.join("checkpoints/round_01"));
    let got = checkpoint_tensors(&cut.join("checkpoints/round_01"));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    let init_weights = checkpoint_tensors(&init);
    assert_eq!(
        checkpoint_tensors(&straight.join("checkpoints/init")),
        init_weights,
        "both runs are the same run up to the interruption"
    );
    let mut moved = 0.0f32;
    for (name, w) in &want {
        let g = &got[name];
        let worst = w
            .iter()
            .zip(g)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst <= 1e-6, "{name} differs by {worst} after the resume");
        let d = w
            .iter()
            .zip(&init_weights[name])
            .map(|(a, b)| (a - b).abs());
        moved = moved.max(d.fold(0.0, f32::max));
    }
    assert!(moved > 1e-3, "round 1 trained the modules ({moved})");

    // A checkpoint without optimiser state (older runs) still resumes, with fresh moments.
    let round_01 = cut.join("checkpoints/round_01");
    for m in ModuleKind::ALL {
        let _ = std::fs::remove_file(round_01.join(format!("{}_adam.safetensors", m.name())));
    }
    std::fs::remove_file(round_01.join("training.json")).unwrap();
    let mut resumed = Session::resume(&cut).unwrap();
    resumed.step(&mut |_| {}).unwrap();
    let log = lines(&cut.join("log.txt"));
    assert!(
        log.iter()
            .any(|l| l.contains("no optimiser state for dyn, val, ss, constr, gi")),
        "{log:?}"
    );
}

#[test]
fn a_checkpoint_of_another_environment_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let device = ls3::model::default_device();
    let spec = ls3::model::agent::AgentSpec::for_env(EnvKind::Reacher);
    let agent = ls3::model::agent::Agent::new(spec, &device, 1).unwrap();
    let ck = tmp.path().join("reacher-agent");
    ls3::model::checkpoint::save(&agent, &ck, serde_json::json!({})).unwrap();

    let dir = tmp.path().join("run");
    let mut opts = options(&dir);
    opts.checkpoint = Some(ck.clone());
    let err = Session::create(opts).err().expect("refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("reacher") && msg.contains("navigation") && msg.contains("reacher-agent"),
        "{msg}"
    );
    assert!(!dir.join("config.json").exists());
}

#[test]
fn a_finished_run_goes_on_for_more_rounds_and_refuses_fewer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut opts = options(&dir);
    let mut config = tiny();
    config.online.num_updates = 1;
    // Branches join the replay: off the 3 task demos and off each agent episode, 100 steps
    // each, the first step (start state not stored on disk) left out.
    config.replay.branch_demos = true;
    config.replay.branch_agent = true;
    opts.config = config.validated().unwrap();
    let mut session = Session::create(opts).unwrap();
    session.run_to_end(&mut |_| {}).unwrap();
    assert_eq!(session.state().rounds_done, 1);
    assert_eq!(session.replay().len(), 600 + 3 * 99 + 2 * (100 + 99));
    drop(session);

    let err = Session::resume_with_rounds(&dir, Some(0))
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("already finished 1 rounds"),
        "{err:#}"
    );
    // Unchanged rounds: nothing more to do.
    assert!(Session::resume(&dir).unwrap().finished());

    let mut more = Session::resume_with_rounds(&dir, Some(2)).unwrap();
    assert!(!more.finished());
    let mut started = Vec::new();
    more.run_to_end(&mut |e| {
        if let Event::EpisodeStarted { index, round, .. } = e {
            started.push((index, round));
        }
    })
    .unwrap();
    assert_eq!(started, vec![(2, 1), (3, 1)]);
    assert_eq!(more.state().rounds_done, 2);
    // Rebuilt on resume: the same branches, then those of the new episodes.
    assert_eq!(more.replay().len(), 600 + 3 * 99 + 4 * (100 + 99));
    assert_eq!(lines(&dir.join("metrics.csv")).len(), 3);
    // The new total is the run's own now: a plain resume finds it finished.
    drop(more);
    assert!(Session::resume(&dir).unwrap().finished());
}
