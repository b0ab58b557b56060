//! Every unfinished run of a sweep on this machine, `jobs` worker processes at a time. Each
//! worker is a separate process (the caller builds its command), so an interrupted sweep leaves
//! ordinary resumable runs behind and starting it again picks up where they stopped.

use super::execute::{RunStatus, shared_ready, status};
use super::plan::{PlannedRun, SweepPlan};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What happened to a run, one report per run.
#[derive(Clone, Debug, PartialEq)]
pub enum LocalEvent {
    /// Finished before this call; not run again.
    Skipped {
        index: usize,
        name: String,
    },
    Started {
        index: usize,
        name: String,
    },
    /// The worker ended; `ok` is its success, `log` holds what it printed.
    Ended {
        index: usize,
        name: String,
        ok: bool,
        seconds: f64,
        log: PathBuf,
    },
}

/// Runs every unfinished run of the sweep in `sweep`, `jobs` at a time; `worker(index)` is the
/// command that runs one (e.g. `ls3 sweep run <sweep> --index <index>`). Its output goes to
/// `<sweep>/logs/<name>.log`. Returns the indices that failed (all others finished).
pub fn run_local(
    sweep: &Path,
    jobs: usize,
    worker: &dyn Fn(usize) -> Command,
    report: &mut dyn FnMut(LocalEvent),
) -> Result<Vec<usize>> {
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let plan = SweepPlan::read(sweep)?;
    let logs = sweep.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut pending = Vec::new();
    for run in &plan.runs {
        if status(sweep, run)? == RunStatus::Finished {
            report(LocalEvent::Skipped {
                index: run.index,
                name: run.name.clone(),
            });
        } else {
            pending.push(run);
        }
    }
    let mut running: Vec<(&PlannedRun, Child, Instant)> = Vec::new();
    let mut failed = Vec::new();
    while !pending.is_empty() || !running.is_empty() {
        while running.len() < jobs && !pending.is_empty() {
            let run = pending.remove(next_run(sweep, &pending, &running));
            let log = logs.join(format!("{}.log", run.name));
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .with_context(|| format!("opening {}", log.display()))?;
            let err = out
                .try_clone()
                .with_context(|| format!("opening {}", log.display()))?;
            let child = worker(run.index)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .with_context(|| format!("starting the worker of run {}", run.index))?;
            report(LocalEvent::Started {
                index: run.index,
                name: run.name.clone(),
            });
            running.push((run, child, Instant::now()));
        }
        let mut k = 0;
        while k < running.len() {
            let (run, child, started) = &mut running[k];
            match child
                .try_wait()
                .with_context(|| format!("waiting for run {}", run.index))?
            {
                Some(exit) => {
                    if !exit.success() {
                        failed.push(run.index);
                    }
                    report(LocalEvent::Ended {
                        index: run.index,
                        name: run.name.clone(),
                        ok: exit.success(),
                        seconds: started.elapsed().as_secs_f64(),
                        log: logs.join(format!("{}.log", run.name)),
                    });
                    running.remove(k);
                }
                None => k += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    failed.sort_unstable();
    Ok(failed)
}

/// Which pending run to start: the first whose shared training is ready or not being done by a
/// running worker (so workers do not sit waiting on each other), else the first.
fn next_run(
    sweep: &Path,
    pending: &[&PlannedRun],
    running: &[(&PlannedRun, Child, Instant)],
) -> usize {
    pending
        .iter()
        .position(|run| {
            shared_ready(sweep, run)
                || !running
                    .iter()
                    .any(|(other, _, _)| other.shared.is_some() && other.shared == run.shared)
        })
        .unwrap_or(0)
}
