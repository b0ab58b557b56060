//! `ls3 train-vae` and `ls3 train-modules`.

use super::{PhaseBars, TrainArgs};
use anyhow::{Context, Result, bail};
use ls3::config::{Config, Valid, Validate, read_file};
use ls3::data::episode::Episode;
use ls3::data::images::ImagePool;
use ls3::model::agent::{Agent, ModuleKind};
use ls3::model::checkpoint;
use ls3::run::RunDir;
use ls3::train::{Trainer, phases};
use std::path::{Path, PathBuf};

/// Arguments of `ls3 train-vae`.
#[derive(clap::Args, Clone, Debug)]
pub struct TrainVaeArgs {
    #[command(flatten)]
    pub run: TrainArgs,
    /// Write reconstruction and sample grids every this many iterations.
    #[arg(long, default_value_t = 500)]
    pub png_every: usize,
}

/// Arguments of `ls3 train-modules`.
#[derive(clap::Args, Clone, Debug)]
pub struct TrainModulesArgs {
    #[command(flatten)]
    pub run: TrainArgs,
    /// The trained VAE: a checkpoint folder or its vae.safetensors.
    #[arg(long)]
    pub vae: PathBuf,
    /// Modules to train, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "dyn,val,ss,constr,gi")]
    pub modules: Vec<String>,
}

/// The demos, the configuration (the preset's or --config's, with `flags` applied, checked), a
/// fresh run folder and a fresh agent.
fn start(
    args: &TrainArgs,
    flags: impl FnOnce(&mut Config),
) -> Result<(Vec<Episode>, Valid<Config>, RunDir, Agent)> {
    let (env, preset, seed) = (args.env, args.preset, args.seed);
    let (episodes, sets) = phases::load_demos(&args.data, env)?;
    let mut config = match &args.config {
        Some(path) => read_file(path)?.into_inner(),
        None => Config::preset(preset, env),
    };
    if config.env != env {
        bail!("the configuration is for {}, not {env}", config.env);
    }
    flags(&mut config);
    if let Some(p) = args.precision {
        config.precision = p;
    }
    let config = config.validated()?;
    let run = RunDir::create(&args.out)?;
    let saved = serde_json::json!({ "seed": seed, "preset": preset, "config": &config });
    run.write_json("config.json", &saved)?;
    println!("run folder: {}", run.path.display());
    println!("demos: {}", sets.join(", "));
    let device = ls3::model::default_device();
    let agent = Agent::new(
        config.agent_spec(),
        &device,
        ls3::seed::derive(seed, "init", 0),
    )?;
    Ok((episodes, config, run, agent))
}

/// Saves the agent; `trained` lists the modules with trained weights (the others are initial).
fn save(
    agent: &Agent,
    config: &Config,
    run: &RunDir,
    seed: u64,
    trained: &[ModuleKind],
) -> Result<()> {
    let dir = run.path.join("checkpoint");
    let trained: Vec<&str> = trained.iter().map(|m| m.name()).collect();
    let meta = serde_json::json!({ "seed": seed, "config": config, "trained": trained });
    checkpoint::save(agent, &dir, meta)?;
    println!("checkpoint: {}", dir.display());
    Ok(())
}

/// Trains a VAE on the demos of `args.env`.
pub fn train_vae(args: &TrainArgs, png_every: usize) -> Result<()> {
    let (episodes, config, run, agent) = start(args, |c| {
        if let Some(n) = args.iters {
            c.vae.iterations = n;
        }
    })?;
    let pool = ImagePool::from_episodes(agent.spec.channels, &episodes);
    let mut trainer = Trainer::new(&agent, &config, args.seed)?;
    let mut bars = PhaseBars::default();
    let iters = config.vae.iterations;
    phases::train_vae(
        &agent,
        &mut trainer,
        &pool,
        iters,
        &run,
        phases::Grids {
            every: png_every,
            seed: args.seed,
        },
        &mut |p| bars.update(p),
    )?;
    use ls3::model::probe::{ProbeError, probe};
    match probe(&agent, &episodes, ls3::model::probe::DEFAULT_FRAMES) {
        Ok(report) => {
            println!("{}", report.summary());
            run.write_json("probe.json", &report)?;
        }
        Err(ProbeError::Data(why)) => println!("probe skipped: {why}"),
        Err(e) => return Err(e).context("probing the trained VAE"),
    }
    save(&agent, &config, &run, args.seed, &[ModuleKind::Vae])
}

/// Trains latent modules over a trained VAE.
pub fn train_modules(args: &TrainArgs, vae: &Path, modules: &[String]) -> Result<()> {
    let modules = modules
        .iter()
        .map(|m| match ModuleKind::parse(m.trim()) {
            Some(ModuleKind::Vae) | None => {
                bail!("unknown module {m:?}: choose from dyn, val, ss, constr, gi")
            }
            Some(k) => Ok(k),
        })
        .collect::<Result<Vec<_>>>()?;
    let vae_file = if vae.is_dir() {
        let meta = checkpoint::read_meta(vae)?;
        if meta.spec.env != args.env {
            bail!(
                "{} is a {} checkpoint, not {}",
                vae.display(),
                meta.spec.env,
                args.env
            );
        }
        checkpoint::module_path(vae, ModuleKind::Vae)
    } else {
        vae.to_path_buf()
    };
    let (mut episodes, config, run, agent) = start(args, |_| {})?;
    if config.replay.branch_demos {
        let branches = ls3::data::branch::branch_task_demos(args.env, &episodes, args.seed);
        println!("random-action branches off {} task demos", branches.len());
        episodes.extend(branches);
    }
    checkpoint::load_module(&agent, ModuleKind::Vae, &vae_file)
        .with_context(|| format!("loading the VAE from {}", vae.display()))?;
    let mut bars = PhaseBars::default();
    let mut replay = phases::fill_replay(&agent, &episodes, config.replay.capacity, &mut |p| {
        bars.update(p)
    })?;
    let mut trainer = Trainer::new(&agent, &config, args.seed)?;
    let n = |m: ModuleKind| args.iters.unwrap_or_else(|| config.init_iters(m));
    phases::train_modules(
        &agent,
        &mut trainer,
        &mut replay,
        &modules,
        &n,
        &run,
        &mut |p| bars.update(p),
    )?;
    let mut trained = vec![ModuleKind::Vae];
    trained.extend(&modules);
    save(&agent, &config, &run, args.seed, &trained)
}
