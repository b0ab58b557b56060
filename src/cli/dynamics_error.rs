//! `ls3 dynamics-error`: the agent's one-step latent prediction error on fresh demo episodes,
//! for the demonstrated actions and for random ones.

use super::fresh_task_demos;
use anyhow::Result;
use rand::SeedableRng;
use std::path::PathBuf;

/// Arguments of `ls3 dynamics-error`.
#[derive(clap::Args, Clone, Debug)]
pub struct DynamicsErrorArgs {
    /// The agent's checkpoint folder.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_folder: PathBuf,
    /// Demo episodes (of the environment's first demo set) to measure on.
    #[arg(long, default_value_t = 5)]
    pub episodes: usize,
    /// Seed of the episodes and the random actions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Measures and prints the mean errors next to the true latent changes.
pub fn run(args: &DynamicsErrorArgs) -> Result<()> {
    let (episodes, seed) = (args.episodes, args.seed);
    let device = ls3::model::default_device();
    let (agent, meta) = ls3::model::checkpoint::load(&args.checkpoint_folder, None, &device)?;
    let kind = meta.spec.env;
    let (set, eps) = fresh_task_demos(kind, seed, "dynamics-error", episodes);
    let mut env = kind.make(seed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(ls3::seed::derive(seed, "random-actions", 0));
    let e = ls3::analysis::dynamics_error::one_step_error(&agent, env.as_mut(), &eps, &mut rng)?;
    println!(
        "{} transitions of {episodes} {} episodes; latent L2, mean:",
        e.transitions, set.name
    );
    println!(
        "  demo actions:   error {:.3}  (true change {:.3})",
        e.demo, e.demo_change
    );
    println!(
        "  random actions: error {:.3}  (true change {:.3})",
        e.random, e.random_change
    );
    Ok(())
}
