//! `ls3 sweep plan | run | local | report`: many runs (environments × seeds × ablations) as one
//! sweep folder, run by a cluster's job array or on this machine.

use super::run::RunView;
use anyhow::{Context, Result, bail};
use ls3::analysis::sweep::write_report;
use ls3::config::{Preset, read_file};
use ls3::env::EnvKind;
use ls3::model::DeviceChoice;
use ls3::planner::Ablation;
use ls3::train::sweep::local::{LocalEvent, run_local};
use ls3::train::sweep::plan::{parse_list, parse_seeds};
use ls3::train::sweep::{Base, Outcome, SweepPlan, SweepSpec, index_from_env, run_one};
use std::path::PathBuf;

/// `ls3 sweep` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum SweepCommand {
    /// Write <OUT>/sweep.json: the numbered runs (env × seed × ablation) with full configurations.
    Plan(PlanArgs),
    /// Run one planned run (resumed if interrupted, skipped if finished): the job-array worker.
    Run(RunArgs),
    /// Run every unfinished run on this machine, K worker processes at a time.
    Local(LocalArgs),
    /// Write report.md, report.json and report.png: means ± std over seeds per variant.
    Report(ReportArgs),
}

/// Arguments of `ls3 sweep plan`.
#[derive(clap::Args, Clone, Debug)]
pub struct PlanArgs {
    /// The sweep folder (created; an existing plan must be the same).
    #[arg(long)]
    pub out: PathBuf,
    /// Environments, comma-separated: navigation, reacher, push.
    #[arg(long, default_value = "navigation")]
    pub envs: String,
    /// Seeds: ranges and lists, e.g. 0-4 or 1,3,5.
    #[arg(long, default_value = "0-4")]
    pub seeds: String,
    /// Ablations, comma-separated: none, no-safe-set, no-constraints.
    #[arg(long, default_value = "none,no-safe-set,no-constraints")]
    pub ablations: String,
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    pub preset: Preset,
    /// A configuration JSON instead of the preset (--envs must then be its environment).
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Online rounds of every run (default: the configuration's).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Cap the episodes of every demo set (small experiments).
    #[arg(long, value_name = "N")]
    pub demo_episodes: Option<usize>,
}

/// Arguments of `ls3 sweep run`.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// The sweep folder (holding sweep.json).
    pub dir: PathBuf,
    /// Run to do; default: $SLURM_ARRAY_TASK_ID, else $JOB_COMPLETION_INDEX.
    #[arg(long)]
    pub index: Option<usize>,
}

/// Arguments of `ls3 sweep local`.
#[derive(clap::Args, Clone, Debug)]
pub struct LocalArgs {
    /// The sweep folder (holding sweep.json).
    pub dir: PathBuf,
    /// Worker processes at a time.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Devices to pin the workers to, in turn by run index (e.g. `cuda:0,cuda:1`); each worker
    /// gets `--device <one of them>`. Default: every worker uses `--device` as given to this
    /// command.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<DeviceChoice>,
}

/// Arguments of `ls3 sweep report`.
#[derive(clap::Args, Clone, Debug)]
pub struct ReportArgs {
    /// The sweep folder (holding sweep.json).
    pub dir: PathBuf,
    /// Rounds at the end of each run that the summary covers.
    #[arg(long, default_value_t = 3)]
    pub last_rounds: usize,
}

/// Dispatches `ls3 sweep …`.
/// Runs a sweep subcommand; `device` is the `--device` this process was given.
pub fn run(command: &SweepCommand, device: DeviceChoice) -> Result<()> {
    match command {
        SweepCommand::Plan(args) => plan(args),
        SweepCommand::Run(args) => run_index(args),
        SweepCommand::Local(args) => local(args, device),
        SweepCommand::Report(args) => report(args),
    }
}

fn plan(args: &PlanArgs) -> Result<()> {
    let envs = parse_list(
        &args.envs,
        "--envs: environment",
        |s| <EnvKind as clap::ValueEnum>::from_str(s, true).ok(),
        "navigation, reacher, push",
    )?;
    let ablations = parse_list(
        &args.ablations,
        "--ablations: ablation",
        Ablation::from_name,
        "none, no-safe-set, no-constraints",
    )?;
    let base = match &args.config {
        Some(path) => Base::Config(Box::new(read_file(path)?)),
        None => Base::Preset(args.preset),
    };
    let plan = SweepPlan::new(&SweepSpec {
        envs,
        seeds: parse_seeds(&args.seeds).context("--seeds")?,
        ablations,
        base,
        rounds: args.rounds,
        demo_limit: args.demo_episodes,
    })?;
    let path = plan.write(&args.out)?;
    let n = plan.runs.len();
    println!("{n} runs (indices 0-{}) in {}", n - 1, path.display());
    println!(
        "run them here with `ls3 sweep local {dir} --jobs K`, or on SLURM with \
         `sbatch --array=0-{}%K deploy/slurm-array.sh {dir}`",
        n - 1,
        dir = args.out.display()
    );
    Ok(())
}

fn run_index(args: &RunArgs) -> Result<()> {
    let index = match args.index {
        Some(i) => i,
        None => index_from_env()?,
    };
    let mut view = RunView::default();
    let outcome = run_one(&args.dir, index, &mut |e| view.event(e));
    view.clear();
    match outcome? {
        Outcome::AlreadyFinished => println!("run {index}: finished earlier"),
        Outcome::Finished => println!("run {index}: finished"),
    }
    Ok(())
}

/// The `--device` of the worker of run `index`: the pinned devices in turn, else this process's
/// own choice when it is not `auto`.
fn device_for(pinned: &[DeviceChoice], index: usize, own: DeviceChoice) -> Option<DeviceChoice> {
    match pinned {
        [] => (own != DeviceChoice::Auto).then_some(own),
        _ => Some(pinned[index % pinned.len()]),
    }
}

fn local(args: &LocalArgs, device: DeviceChoice) -> Result<()> {
    let exe = std::env::current_exe().context("finding the ls3 executable")?;
    let dir = args.dir.clone();
    let worker = |index: usize| {
        let mut c = std::process::Command::new(&exe);
        c.arg("sweep")
            .arg("run")
            .arg(&dir)
            .arg("--index")
            .arg(index.to_string());
        if let Some(d) = device_for(&args.devices, index, device) {
            c.arg("--device").arg(d.to_string());
        }
        c
    };
    let failed = run_local(&args.dir, args.jobs, &worker, &mut |e| match e {
        LocalEvent::Skipped { index, name } => println!("run {index} {name}: finished earlier"),
        LocalEvent::Started { .. } => {}
        LocalEvent::Ended {
            index,
            name,
            ok,
            seconds,
            log,
        } => println!(
            "run {index} {name}: {} after {seconds:.0} s ({})",
            if ok { "finished" } else { "FAILED" },
            log.display()
        ),
    })?;
    if !failed.is_empty() {
        bail!(
            "runs {failed:?} failed (see their logs under {}); `ls3 sweep local` again resumes \
             them",
            args.dir.join("logs").display()
        );
    }
    println!(
        "all runs finished; `ls3 sweep report {}` summarises them",
        args.dir.display()
    );
    Ok(())
}

fn report(args: &ReportArgs) -> Result<()> {
    let report = write_report(&args.dir, args.last_rounds)?;
    for v in &report.variants {
        let success = v.last_success_rate;
        let summary = if v.n == 0 {
            "no finished seeds".to_string()
        } else {
            format!(
                "success (last {}) {:.0} ± {:.0} %",
                report.last_rounds,
                success.mean * 100.0,
                success.std * 100.0
            )
        };
        println!("{} {}: n = {}, {summary}", v.env, v.ablation.label(), v.n);
    }
    for u in &report.unfinished {
        println!("unfinished: run {} {}", u.index, u.name);
    }
    println!("written to {}", args.dir.join("report.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_pinned_to_devices_in_turn() {
        let pinned = [DeviceChoice::Cuda(0), DeviceChoice::Cuda(1)];
        let got: Vec<_> = (0..3)
            .map(|i| device_for(&pinned, i, DeviceChoice::Auto))
            .collect();
        assert_eq!(got, [Some(pinned[0]), Some(pinned[1]), Some(pinned[0])]);
        assert_eq!(device_for(&[], 5, DeviceChoice::Auto), None);
        assert_eq!(
            device_for(&[], 5, DeviceChoice::Cpu),
            Some(DeviceChoice::Cpu)
        );
    }
}
