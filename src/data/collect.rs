//! Collecting an environment's demo sets into dataset folders, in parallel and reproducibly:
//! episode `i` of set `S` depends only on (seed, S, i), never on thread scheduling.

use super::dataset::write_episode;
use super::demo::run_episode;
use super::episode::Episode;
use crate::env::EnvKind;
use crate::env::demos::DemoSet;
use crate::seed::derive;
use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Statistics of one collected set.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SetSummary {
    pub name: String,
    pub episodes: usize,
    /// Fraction of episodes that reached the goal at least once.
    pub success_rate: f64,
    /// Fraction of episodes that violated the constraint at least once.
    pub violation_rate: f64,
    /// Mean episode cost (steps outside the goal).
    pub mean_cost: f64,
}

impl SetSummary {
    /// Summarises finished episodes.
    pub fn of(name: &str, eps: &[(bool, bool, f32)]) -> Self {
        let n = eps.len().max(1) as f64;
        Self {
            name: name.to_string(),
            episodes: eps.len(),
            success_rate: eps.iter().filter(|e| e.0).count() as f64 / n,
            violation_rate: eps.iter().filter(|e| e.1).count() as f64 / n,
            mean_cost: eps.iter().map(|e| e.2 as f64).sum::<f64>() / n,
        }
    }
}

/// Progress callback argument: which set, how many episodes are done of how many.
#[derive(Clone, Copy, Debug)]
pub struct CollectProgress<'a> {
    pub set: &'a str,
    pub done: usize,
    pub total: usize,
}

/// Options of a collection run.
#[derive(Clone, Debug)]
pub struct CollectOptions {
    pub kind: EnvKind,
    /// Root folder; sets go to `<out>/<env>/<SetName>/`.
    pub out: PathBuf,
    pub seed: u64,
    /// Caps the episodes of every set (for quick runs).
    pub max_episodes: Option<usize>,
    /// Replace existing sets.
    pub force: bool,
    /// Worker threads (0 = all cores).
    pub threads: usize,
}

/// Runs episode `i` of `set` for `kind` from the run seed.
pub fn demo_episode(kind: EnvKind, set: &DemoSet, seed: u64, i: usize) -> Episode {
    let mut env = kind.make(derive(seed, set.name, i as u64));
    let rng =
        rand::rngs::StdRng::seed_from_u64(derive(seed, &format!("{}/teacher", set.name), i as u64));
    run_episode(env.as_mut(), set, rng)
}

/// The folder a set is written to.
pub fn set_dir(out: &Path, kind: EnvKind, set: &DemoSet) -> PathBuf {
    out.join(kind.name()).join(set.name)
}

/// Collects every demo set of `opts.kind`. A set is written into a temporary folder and renamed
/// into place only when complete, so an interrupted run never leaves a half set or destroys an
/// old one. Existing sets are refused unless `force`.
pub fn collect(
    opts: &CollectOptions,
    progress: &(dyn Fn(CollectProgress) + Sync),
) -> Result<Vec<SetSummary>> {
    let sets = opts.kind.demo_sets();
    for set in sets {
        let dir = set_dir(&opts.out, opts.kind, set);
        if dir.exists() && !opts.force {
            bail!(
                "{} already exists; pass --force to replace it",
                dir.display()
            );
        }
    }
    let threads = match opts.threads {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let mut summaries = Vec::new();
    for set in sets {
        let dir = set_dir(&opts.out, opts.kind, set);
        let parent = dir.parent().expect("set dir has a parent");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let tmp = parent.join(format!(".{}.partial", set.name));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)
                .with_context(|| format!("removing stale {}", tmp.display()))?;
        }
        std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;

        let total = opts.max_episodes.map_or(set.count, |m| m.min(set.count));
        let stats = collect_set(opts, set, &tmp, total, threads, progress)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("replacing {}", dir.display()))?;
        }
        std::fs::rename(&tmp, &dir)
            .with_context(|| format!("moving {} into place", dir.display()))?;
        summaries.push(SetSummary::of(set.name, &stats));
    }
    Ok(summaries)
}

fn collect_set(
    opts: &CollectOptions,
    set: &DemoSet,
    dir: &Path,
    total: usize,
    threads: usize,
    progress: &(dyn Fn(CollectProgress) + Sync),
) -> Result<Vec<(bool, bool, f32)>> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let stats = Mutex::new(vec![(false, false, 0.0f32); total]);
    progress(CollectProgress {
        set: set.name,
        done: 0,
        total,
    });
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..threads.min(total.max(1)))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return Ok(());
                        }
                        let ep = demo_episode(opts.kind, set, opts.seed, i);
                        write_episode(dir, i, &ep).with_context(|| {
                            format!("writing episode {i} into {}", dir.display())
                        })?;
                        stats.lock().expect("stats lock")[i] =
                            (ep.success(), ep.violated(), ep.cost());
                        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                        progress(CollectProgress {
                            set: set.name,
                            done: d,
                            total,
                        });
                    }
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a collection worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(stats.into_inner().expect("stats lock"))
}
