//! `ls3 plan-check`: whether the planner fools itself, measured along fresh demo episodes (the
//! imagined end of the best plan, the demonstrator's actions and holding still, each against
//! what the models say about the frames that really come out).

use super::fresh_task_demos;
use anyhow::Result;
use ls3::analysis::plan_check;
use std::path::PathBuf;

/// Arguments of `ls3 plan-check`.
#[derive(clap::Args, Clone, Debug)]
pub struct PlanCheckArgs {
    /// The agent's checkpoint folder.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_folder: PathBuf,
    /// Demo episodes (of the environment's first demo set) to check along.
    #[arg(long, default_value_t = 2)]
    pub episodes: usize,
    /// Check every N-th state of each episode.
    #[arg(long, default_value_t = 5)]
    pub every: usize,
    /// Planner settings from this configuration JSON (default: those saved with the
    /// checkpoint, else the quick preset's), as for `ls3 eval`.
    #[arg(long, value_name = "JSON")]
    pub config: Option<PathBuf>,
    /// Print one line per checked state.
    #[arg(long)]
    pub verbose: bool,
    /// Seed of the episodes and the planner.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Checks the states, prints them with `--verbose`, then the means of the three rollouts.
pub fn run(args: &PlanCheckArgs) -> Result<()> {
    let (episodes, seed) = (args.episodes, args.seed);
    let device = ls3::model::default_device();
    let (agent, meta) = ls3::model::checkpoint::load(&args.checkpoint_folder, None, &device)?;
    let kind = meta.spec.env;
    let cfg = match &args.config {
        Some(path) => ls3::config::read_file(path)?.valid_planner(),
        None => ls3::config::saved_planner(&meta)?,
    };
    let (set, eps) = fresh_task_demos(kind, seed, "plan-check", episodes);
    let mut env = kind.make(seed);
    let mut planner = ls3::planner::Planner::for_env(kind, ls3::seed::derive(seed, "planner", 0));
    let checked = plan_check::check(&agent, env.as_mut(), &mut planner, &cfg, &eps, args.every)?;
    let f = |s: &[f64]| {
        s.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    if args.verbose {
        for c in &checked {
            println!(
                "({}) plan a=({:.1},{:.1}) → ({}) value {:.1} imagined / {:.1} true, ss {:.2}/{:.2} | \
                 demo a=({:.1},{:.1}) → ({}) value {:.1}/{:.1}, ss {:.2}/{:.2} | \
                 still → ({}) value {:.1}/{:.1}",
                f(&c.state),
                c.plan_action[0],
                c.plan_action[1],
                f(&c.plan_end),
                c.plan.imagined_value,
                c.plan.true_value,
                c.plan.imagined_safe_set,
                c.plan.true_safe_set,
                c.demo_action[0],
                c.demo_action[1],
                f(&c.demo_end),
                c.demo.imagined_value,
                c.demo.true_value,
                c.demo.imagined_safe_set,
                c.demo.true_safe_set,
                f(&c.still_end),
                c.still.imagined_value,
                c.still.true_value,
            );
        }
    }
    let (plan, demo, still) = plan_check::summarize(&checked);
    println!(
        "{} states of {episodes} {} episodes; means at the end of the {}-step plan:",
        checked.len(),
        set.name,
        cfg.horizon
    );
    for (name, o) in [
        ("planner's best", plan),
        ("demonstrator's", demo),
        ("holding still", still),
    ] {
        println!(
            "  {name:15} value {:7.2} imagined, {:7.2} true; safe set {:.3} imagined, {:.3} true",
            o.imagined_value, o.true_value, o.imagined_safe_set, o.true_safe_set
        );
    }
    Ok(())
}
