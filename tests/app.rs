//! The real app (StudioApp and its worker) driven headless through its widgets with
//! egui_kittest: no window, no GPU. Tiny agents and planners keep every test to seconds.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use ls3::app::AppOptions;
use ls3::app::app::StudioApp;
use ls3::app::worker::{Command, WorkerState};
use ls3::config::Config;
use ls3::env::EnvKind;
use ls3::model::agent::{Agent, AgentSpec};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn app(options: AppOptions) -> Harness<'static, StudioApp> {
    Harness::builder()
        .with_size(egui::vec2(1500.0, 900.0))
        .build_eframe(move |cc| StudioApp::new(cc, options, None).expect("the app starts"))
}

fn demonstrators() -> AppOptions {
    AppOptions {
        demonstrators_only: true,
        ..AppOptions::default()
    }
}

/// An untrained navigation agent with a tiny planner, saved as a checkpoint folder in `dir`.
fn tiny_agent(dir: &Path) -> PathBuf {
    let ck = dir.join("agent");
    let agent = Agent::new(
        AgentSpec::for_env(EnvKind::Navigation),
        &candle_core::Device::Cpu,
        1,
    )
    .unwrap();
    let mut config = Config::quick(EnvKind::Navigation);
    config.planner.population = 12;
    config.planner.elites = 3;
    config.planner.particles = 2;
    config.planner.horizon = 2;
    config.planner.iterations = 2;
    ls3::model::checkpoint::save(&agent, &ck, serde_json::json!({ "config": config })).unwrap();
    ck
}

/// Runs frames until `done` holds, failing after a timeout.
fn until(h: &mut Harness<'_, StudioApp>, what: &str, done: impl Fn(&StudioApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        h.step();
        if done(h.state()) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_app_boots_into_navigation_showing_episode_zero() {
    let mut h = app(demonstrators());
    until(&mut h, "the first episode", |a| a.state().live.is_some());
    assert_eq!(h.state().state().kind, EnvKind::Navigation);
    assert_eq!(h.state().state().worker, WorkerState::Paused);
    h.get_by_label("▶ Play");
    h.get_by_label("Train from scratch");
    h.get_by_label("ignore safe set");
}

#[test]
fn picking_another_environment_restarts_the_stream_there() {
    let mut h = app(demonstrators());
    until(&mut h, "the first episode", |a| a.state().live.is_some());
    h.get_by_role_and_label(egui::accesskit::Role::ComboBox, "Environment")
        .click();
    for _ in 0..20 {
        if h.query_by_label("push").is_some() {
            break;
        }
        h.step();
    }
    h.get_by_label("push").click();
    until(&mut h, "the push episode", |a| {
        a.state().kind == EnvKind::Push
            && a.state()
                .live
                .as_ref()
                .is_some_and(|l| l.kind == EnvKind::Push)
    });
}

#[test]
fn play_and_pause_change_the_workers_state() {
    let mut h = app(demonstrators());
    until(&mut h, "the first episode", |a| a.state().live.is_some());
    h.get_by_label("▶ Play").click();
    until(&mut h, "playing", |a| {
        a.state().worker == WorkerState::Playing && a.state().total_steps > 0
    });
    h.get_by_label("‖ Pause").click();
    until(&mut h, "paused", |a| {
        a.state().worker == WorkerState::Paused
    });
}

#[test]
fn a_planner_setting_reaches_the_planner_at_the_next_step() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = app(AppOptions {
        agent: Some(tiny_agent(tmp.path())),
        ..AppOptions::default()
    });
    until(&mut h, "the agent's first episode", |a| {
        a.state().live.is_some() && a.state().config.is_some()
    });
    h.get_by_label("ignore safe set").click();
    h.step();
    h.get_by_label("⇥ Step").click();
    until(&mut h, "a planned step", |a| {
        a.state()
            .live
            .as_ref()
            .and_then(|l| l.plans.last().cloned().flatten())
            .is_some()
    });
    let live = h.state().state().live.as_ref().unwrap();
    let shot = live.plans.last().unwrap().as_ref().unwrap();
    assert!(shot.record.config.ignore_safe_set);
    assert_eq!(shot.record.config.population, 12, "the rest as the agent's");
    assert_eq!(shot.imagined.len(), shot.record.latents.len());
}

#[test]
fn a_corrupt_checkpoint_shows_an_error_and_the_app_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("broken");
    std::fs::create_dir(&ck).unwrap();
    std::fs::write(ck.join("agent.json"), "{ truncated").unwrap();
    let mut h = app(demonstrators());
    until(&mut h, "the first episode", |a| a.state().live.is_some());
    h.state().send(Command::LoadAgent(ck));
    until(&mut h, "the error", |a| a.state().error_count > 0);
    h.step();
    h.get_by_label_contains("agent.json");
    h.get_by_label("▶ Play").click();
    until(&mut h, "steps after the error", |a| {
        a.state().total_steps > 3
    });
}
