//! `ls3 train-vae` and `ls3 train-modules`.

use super::PhaseBars;
use anyhow::{Context, Result, bail};
use ls3::config::{Config, Preset};
use ls3::data::images::ImagePool;
use ls3::env::EnvKind;
use ls3::model::agent::{Agent, ModuleKind};
use ls3::model::checkpoint;
use ls3::run::RunDir;
use ls3::train::{Trainer, phases};
use std::path::Path;

fn start(env: EnvKind, preset: Preset, out: &Path, seed: u64) -> Result<(Config, RunDir)> {
    let config = Config::preset(preset, env);
    config.validate()?;
    let run = RunDir::create(out)?;
    let saved = serde_json::json!({ "seed": seed, "preset": preset, "config": &config });
    run.write_json("config.json", &saved)?;
    println!("run folder: {}", run.path.display());
    Ok((config, run))
}

fn save(agent: &Agent, config: &Config, run: &RunDir, seed: u64) -> Result<()> {
    let dir = run.path.join("checkpoint");
    let meta = serde_json::json!({ "seed": seed, "config": config });
    checkpoint::save(agent, &dir, meta)?;
    println!("checkpoint: {}", dir.display());
    Ok(())
}

/// Trains a VAE on the demos of `env`.
pub fn train_vae(
    env: EnvKind,
    data: &Path,
    preset: Preset,
    iters: Option<usize>,
    out: &Path,
    seed: u64,
    png_every: usize,
) -> Result<()> {
    let (episodes, sets) = phases::load_demos(data, env)?;
    let (mut config, run) = start(env, preset, out, seed)?;
    if let Some(n) = iters {
        config.vae.iterations = n;
    }
    println!("demos: {}", sets.join(", "));
    let device = ls3::model::default_device();
    let agent = Agent::new(
        config.agent_spec(),
        &device,
        ls3::seed::derive(seed, "init", 0),
    )?;
    let pool = ImagePool::from_episodes(agent.spec.channels, &episodes);
    let mut trainer = Trainer::new(&agent, &config, seed)?;
    let mut bars = PhaseBars::default();
    phases::train_vae(
        &agent,
        &mut trainer,
        &pool,
        config.vae.iterations,
        &run,
        png_every,
        seed,
        &mut |p| bars.update(p),
    )?;
    save(&agent, &config, &run, seed)
}

/// Trains latent modules over a trained VAE.
#[allow(clippy::too_many_arguments)]
pub fn train_modules(
    env: EnvKind,
    data: &Path,
    vae: &Path,
    modules: &[String],
    preset: Preset,
    iters: Option<usize>,
    out: &Path,
    seed: u64,
) -> Result<()> {
    let modules = modules
        .iter()
        .map(|m| match ModuleKind::parse(m.trim()) {
            Some(ModuleKind::Vae) | None => {
                bail!("unknown module {m:?}: choose from dyn, val, ss, constr, gi")
            }
            Some(k) => Ok(k),
        })
        .collect::<Result<Vec<_>>>()?;
    let (episodes, sets) = phases::load_demos(data, env)?;
    let vae_file = if vae.is_dir() {
        checkpoint::module_path(vae, ModuleKind::Vae)
    } else {
        vae.to_path_buf()
    };
    if vae.is_dir() {
        let meta = checkpoint::read_meta(vae)?;
        if meta.spec.env != env {
            bail!(
                "{} is a {} checkpoint, not {env}",
                vae.display(),
                meta.spec.env
            );
        }
    }
    let (config, run) = start(env, preset, out, seed)?;
    println!("demos: {}", sets.join(", "));
    let device = ls3::model::default_device();
    let agent = Agent::new(
        config.agent_spec(),
        &device,
        ls3::seed::derive(seed, "init", 0),
    )?;
    checkpoint::load_module(&agent, ModuleKind::Vae, &vae_file)
        .with_context(|| format!("loading the VAE from {}", vae.display()))?;
    let mut bars = PhaseBars::default();
    let mut replay = phases::fill_replay(&agent, &episodes, config.replay.capacity, &mut |p| {
        bars.update(p)
    })?;
    let mut trainer = Trainer::new(&agent, &config, seed)?;
    let n = |m: ModuleKind| iters.unwrap_or_else(|| config.init_iters(m));
    phases::train_modules(
        &agent,
        &mut trainer,
        &mut replay,
        &modules,
        &n,
        &run,
        &mut |p| bars.update(p),
    )?;
    save(&agent, &config, &run, seed)
}
