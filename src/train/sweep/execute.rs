//! Running one planned run of a sweep into `<sweep>/runs/<name>/`: resumed if interrupted, left
//! alone if finished, and started from its environment and seed's shared demos and initial
//! agent (`<sweep>/shared/<env>-s<seed>/`), which the first worker to need them trains.

use super::lock::Lock;
use super::plan::{PlannedRun, SweepPlan, shared_config};
use crate::config::Validate;
use crate::train::run_state::{Layout, RunState, read_json};
use crate::train::{Event, Observer, Session, SessionOptions};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a worker waiting for another's shared training looks again.
const WAIT_POLL: Duration = Duration::from_secs(1);

/// How far a run got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    NotStarted,
    /// Started; `rounds_done` online rounds finished.
    InProgress {
        rounds_done: usize,
    },
    Finished,
}

/// What [`run_one`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The run was finished before; nothing was done.
    AlreadyFinished,
    /// The run ran (or resumed) to its end.
    Finished,
}

/// `<sweep>/runs/<name>`.
pub fn run_dir(sweep: &Path, run: &PlannedRun) -> PathBuf {
    sweep.join("runs").join(&run.name)
}

/// `<sweep>/shared/<name>`.
pub fn shared_dir(sweep: &Path, name: &str) -> PathBuf {
    sweep.join("shared").join(name)
}

/// How far `run` got, from its `state.json`.
pub fn status(sweep: &Path, run: &PlannedRun) -> Result<RunStatus> {
    let layout = Layout(&run_dir(sweep, run)).state();
    if !layout.is_file() {
        return Ok(RunStatus::NotStarted);
    }
    let state: RunState = read_json(&layout)?;
    Ok(if state.finished {
        RunStatus::Finished
    } else {
        RunStatus::InProgress {
            rounds_done: state.rounds_done,
        }
    })
}

/// The initial agent of a shared training folder: it exists once that training is complete.
fn shared_init(shared: &Path) -> PathBuf {
    Layout(shared).round_checkpoint(0).join("agent.json")
}

/// The shared training `run` starts from is complete (or it has none).
pub fn shared_ready(sweep: &Path, run: &PlannedRun) -> bool {
    run.shared
        .as_ref()
        .is_none_or(|name| shared_init(&shared_dir(sweep, name)).is_file())
}

/// Runs run `index` of the sweep in `sweep` to its end, resuming it if it was interrupted.
pub fn run_one(sweep: &Path, index: usize, observer: &mut dyn Observer) -> Result<Outcome> {
    let plan = SweepPlan::read(sweep)?;
    let run = plan.run(index)?;
    let dir = run_dir(sweep, run);
    // Checked before opening the session, which would append to a finished run's log.
    if status(sweep, run)? == RunStatus::Finished {
        return Ok(Outcome::AlreadyFinished);
    }
    let mut session = if Layout(&dir).config().is_file() {
        Session::resume(&dir)?
    } else {
        let (data, checkpoint) = match &run.shared {
            Some(name) => {
                let shared = shared_dir(sweep, name);
                train_shared(&shared, run, observer)?;
                let layout = Layout(&shared);
                (Some(layout.data()), Some(layout.round_checkpoint(0)))
            }
            None => (None, None),
        };
        Session::create(SessionOptions {
            config: run.config.clone(),
            preset: run.preset,
            seed: run.seed,
            data,
            checkpoint,
            run_dir: dir.clone(),
            demo_limit: run.demo_limit,
        })?
    };
    if session.finished() {
        return Ok(Outcome::AlreadyFinished);
    }
    observer.event(Event::Log(format!("run {index}: {}", dir.display())));
    session
        .run_to_end(observer)
        .with_context(|| format!("run {index} ({})", dir.display()))?;
    Ok(Outcome::Finished)
}

/// Makes sure `shared` holds the demos and initial agent of `run`'s environment and seed:
/// trains them (a run with no online rounds) unless another worker did or is doing so, in which
/// case it waits for that worker.
fn train_shared(shared: &Path, run: &PlannedRun, observer: &mut dyn Observer) -> Result<()> {
    let init = shared_init(shared);
    let parent = shared.parent().unwrap_or(shared);
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let lock_path = shared.with_extension("lock");
    let mut waiting = false;
    while !init.is_file() {
        let Some(_lock) = Lock::try_acquire(&lock_path)? else {
            if !waiting {
                observer.event(Event::Log(format!(
                    "waiting for another worker to train {}",
                    shared.display()
                )));
                waiting = true;
            }
            std::thread::sleep(WAIT_POLL);
            continue;
        };
        if init.is_file() {
            break;
        }
        let mut session = if Layout(shared).config().is_file() {
            Session::resume(shared)?
        } else {
            Session::create(SessionOptions {
                config: shared_config(&run.config).validated()?,
                preset: run.preset,
                seed: run.seed,
                data: None,
                checkpoint: None,
                run_dir: shared.to_path_buf(),
                demo_limit: run.demo_limit,
            })?
        };
        observer.event(Event::Log(format!(
            "training the shared demos and initial agent in {}",
            shared.display()
        )));
        session
            .run_to_end(observer)
            .with_context(|| format!("the shared initial training in {}", shared.display()))?;
    }
    Ok(())
}
