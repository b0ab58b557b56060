//! A sweep's results: per environment and variant (ablation), the mean ± standard deviation over
//! finished seeds of success, violations and cost — per round and over the last rounds — and
//! which runs have not finished (listed, never silently dropped).
//!
//! [`markdown`] renders `report.md`; [`plot`] draws `report.png`, the curves with ±1 std bands.

pub mod markdown;
pub mod plot;

use crate::env::EnvKind;
use crate::planner::Ablation;
use crate::train::metrics::{mean_std, read_rounds};
use crate::train::results::summarize;
use crate::train::run_state::{Layout, RunState, read_json};
use crate::train::sweep::execute::run_dir;
use crate::train::sweep::{RunStatus, SweepPlan, status};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Mean and (population) standard deviation over seeds; NaN (null in JSON) with no seeds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f32,
    pub std: f32,
}

impl Spread {
    pub fn of(xs: &[f32]) -> Self {
        let (mean, std) = mean_std(xs);
        Self { mean, std }
    }
}

/// One round, over the seeds that finished it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoundSpread {
    /// 0-based round.
    pub round: usize,
    pub seeds: usize,
    pub success_rate: Spread,
    pub violation_rate: Spread,
    pub mean_cost: Spread,
    pub cumulative_violations: Spread,
}

/// One environment and ablation over its finished seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VariantReport {
    pub env: EnvKind,
    pub ablation: Ablation,
    /// Seeds whose run finished (the `n` of every mean).
    pub seeds: Vec<u64>,
    pub n: usize,
    pub rounds: Vec<RoundSpread>,
    /// Over each seed's last `last_rounds` rounds.
    pub last_success_rate: Spread,
    pub last_violation_rate: Spread,
    pub last_mean_cost: Spread,
    /// The task demonstrators' mean cost, over the seeds' demos.
    pub demo_cost: Spread,
}

/// A planned run that has not finished.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Unfinished {
    pub index: usize,
    pub name: String,
    /// Online rounds done (none when it has not started).
    pub rounds_done: Option<usize>,
    pub rounds: usize,
}

/// An environment and ablation with the seeds and folders of its finished runs.
type Variant = (EnvKind, Ablation, Vec<(u64, PathBuf)>);

/// `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepReport {
    pub last_rounds: usize,
    pub variants: Vec<VariantReport>,
    pub unfinished: Vec<Unfinished>,
}

impl SweepReport {
    /// Reads every finished run of the sweep in `sweep`.
    pub fn read(sweep: &Path, last_rounds: usize) -> Result<Self> {
        let plan = SweepPlan::read(sweep)?;
        let mut variants: Vec<Variant> = Vec::new();
        let mut unfinished = Vec::new();
        for run in &plan.runs {
            let at = variants
                .iter()
                .position(|(e, a, _)| (*e, *a) == (run.env, run.ablation))
                .unwrap_or_else(|| {
                    variants.push((run.env, run.ablation, Vec::new()));
                    variants.len() - 1
                });
            match status(sweep, run)? {
                RunStatus::Finished => variants[at].2.push((run.seed, run_dir(sweep, run))),
                s => unfinished.push(Unfinished {
                    index: run.index,
                    name: run.name.clone(),
                    rounds_done: match s {
                        RunStatus::InProgress { rounds_done } => Some(rounds_done),
                        _ => None,
                    },
                    rounds: run.config.online.num_updates,
                }),
            }
        }
        let variants = variants
            .into_iter()
            .map(|(env, ablation, runs)| variant(env, ablation, &runs, last_rounds))
            .collect::<Result<_>>()?;
        Ok(Self {
            last_rounds,
            variants,
            unfinished,
        })
    }
}

fn variant(
    env: EnvKind,
    ablation: Ablation,
    runs: &[(u64, PathBuf)],
    last_rounds: usize,
) -> Result<VariantReport> {
    let mut per_seed = Vec::new();
    let (mut success, mut violation, mut cost, mut demo) = (vec![], vec![], vec![], vec![]);
    for (_, dir) in runs {
        let rounds = read_rounds(dir)?;
        let last = summarize(dir, ablation.label(), last_rounds)?;
        let state: RunState = read_json(&Layout(dir).state())?;
        success.push(last.success_rate);
        violation.push(last.violation_rate);
        cost.push(last.mean_cost);
        demo.extend(state.demo_mean_cost);
        per_seed.push(rounds);
    }
    let longest = per_seed.iter().map(Vec::len).max().unwrap_or(0);
    let rounds = (0..longest)
        .map(|r| {
            let have: Vec<_> = per_seed.iter().filter_map(|rs| rs.get(r)).collect();
            let col = |f: fn(&crate::train::metrics::RoundMetrics) -> f32| {
                Spread::of(&have.iter().map(|m| f(m)).collect::<Vec<_>>())
            };
            RoundSpread {
                round: r,
                seeds: have.len(),
                success_rate: col(|m| m.success_rate),
                violation_rate: col(|m| m.violation_rate),
                mean_cost: col(|m| m.mean_cost),
                cumulative_violations: col(|m| m.cumulative_violations as f32),
            }
        })
        .collect();
    Ok(VariantReport {
        env,
        ablation,
        seeds: runs.iter().map(|(s, _)| *s).collect(),
        n: runs.len(),
        rounds,
        last_success_rate: Spread::of(&success),
        last_violation_rate: Spread::of(&violation),
        last_mean_cost: Spread::of(&cost),
        demo_cost: Spread::of(&demo),
    })
}

/// Writes `report.md`, `report.json` and `report.png` into `sweep`; returns the report.
pub fn write_report(sweep: &Path, last_rounds: usize) -> Result<SweepReport> {
    let report = SweepReport::read(sweep, last_rounds)?;
    let write = |name: &str, bytes: &[u8]| {
        let path = sweep.join(name);
        crate::files::write_atomic(&path, bytes)
            .with_context(|| format!("writing {}", path.display()))
    };
    write("report.md", markdown::render(&report).as_bytes())?;
    write(
        "report.json",
        &serde_json::to_vec_pretty(&report).context("serialising the report")?,
    )?;
    let png = sweep.join("report.png");
    plot::render(&report)
        .save(&png)
        .with_context(|| format!("writing {}", png.display()))?;
    Ok(report)
}
