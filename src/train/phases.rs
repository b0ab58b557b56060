//! The offline phases of LS3_SPEC §5, shared by the CLI and (later) the training session:
//! loading the demos, training the VAE (with loss CSV and PNG grids), filling the latent replay
//! and initial-training the latent modules.

use super::{ChunkReport, Trainer};
use crate::data::dataset::read_set;
use crate::data::episode::Episode;
use crate::data::images::{ImagePool, to_unit};
use crate::data::replay::LatentReplay;
use crate::env::{EnvKind, FRAME_LEN, Frame};
use crate::model::agent::{Agent, ModuleKind};
use crate::model::frames::decode_frames;
use crate::model::rng::TensorRng;
use crate::run::{CsvLog, RunDir, save_grid_png};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// Progress of a phase: what runs, how far it is, and the latest chunk's mean loss.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseProgress {
    pub phase: String,
    pub done: usize,
    pub total: usize,
    pub loss: Option<f32>,
}

/// Reads every demo set of `env` found under `data` — either `data/<env>/<Set>/` as `ls3 collect`
/// writes it, or `data/<Set>/` — and returns the episodes with the names of the sets read.
pub fn load_demos(data: &Path, env: EnvKind) -> Result<(Vec<Episode>, Vec<String>)> {
    if !data.is_dir() {
        bail!(
            "data folder {} does not exist (make one with `ls3 collect --env {env} --out {}`)",
            data.display(),
            data.display()
        );
    }
    let mut episodes = Vec::new();
    let mut found = Vec::new();
    for set in env.demo_sets() {
        let dir = [data.join(env.name()).join(set.name), data.join(set.name)]
            .into_iter()
            .find(|d| d.is_dir());
        let Some(dir) = dir else { continue };
        let eps = read_set(&dir)?;
        if let Some(bad) = eps.iter().find(|e| e.frame_stack != env.frame_stack()) {
            bail!(
                "{}: observations stack {} frames, {env} uses {}",
                dir.display(),
                bad.frame_stack,
                env.frame_stack()
            );
        }
        found.push(format!("{} ({} episodes)", set.name, eps.len()));
        episodes.extend(eps);
    }
    if episodes.is_empty() {
        let names: Vec<_> = env.demo_sets().iter().map(|s| s.name).collect();
        bail!(
            "no {env} demo sets ({}) under {}; make them with `ls3 collect --env {env} --out {}`",
            names.join(", "),
            data.display(),
            data.display()
        );
    }
    Ok((episodes, found))
}

/// Writes `<run>/vae_recon_<iter>.png` (the originals of `shown` above their reconstructions)
/// and `<run>/vae_samples_<iter>.png` (as many decoded prior samples), the newest frame of stacks.
pub fn write_vae_grids(
    agent: &Agent,
    shown: &Reconstructions,
    run: &RunDir,
    rng: &mut TensorRng,
) -> Result<()> {
    let n = shown.originals.len();
    if n == 0 {
        return Ok(());
    }
    let z = rng.normal((n, agent.spec.latent), &agent.device)?;
    let samples = decode_frames(agent, &z.to_vec2::<f32>()?)?;
    let unit = |frames: &[Frame]| frames.iter().map(|f| to_unit(&f.0)).collect::<Vec<_>>();
    let mut grid = unit(&shown.originals);
    grid.extend(unit(&shown.decoded));
    let iteration = shown.iteration;
    save_grid_png(
        &run.path.join(format!("vae_recon_{iteration:06}.png")),
        &grid,
        n,
    )?;
    save_grid_png(
        &run.path.join(format!("vae_samples_{iteration:06}.png")),
        &unit(&samples),
        n,
    )
}

/// Demo frames in a PNG grid (and prior samples beside them).
pub const GRID_FRAMES: usize = 8;

/// A few demo frames beside what the VAE makes of them (the newest frame of stacks).
#[derive(Clone, Debug, PartialEq)]
pub struct Reconstructions {
    /// VAE iterations trained so far.
    pub iteration: u64,
    pub originals: Vec<Frame>,
    /// Each original encoded to its latent mean and decoded.
    pub decoded: Vec<Frame>,
}

/// Reconstructs `n` images spread evenly over `pool` (the same ones every time, so successive
/// calls show the VAE improving on fixed examples).
pub fn reconstructions(
    agent: &Agent,
    pool: &ImagePool,
    n: usize,
    iteration: u64,
) -> Result<Reconstructions> {
    let n = pool.len().min(n);
    let step = pool.len() / n.max(1);
    let images: Vec<&[u8]> = (0..n).map(|k| pool.image(k * step)).collect();
    let (means, _) = agent.encode_observations(&images)?;
    let latents: Vec<Vec<f32>> = means
        .chunks_exact(agent.spec.latent)
        .map(<[f32]>::to_vec)
        .collect();
    let newest = |b: &[u8]| Frame(b[b.len() - FRAME_LEN..].to_vec());
    Ok(Reconstructions {
        iteration,
        originals: images.iter().map(|b| newest(b)).collect(),
        decoded: decode_frames(agent, &latents)?,
    })
}

/// When the VAE phase writes its PNG grids of reconstructions and samples.
#[derive(Clone, Copy, Debug)]
pub struct Grids {
    /// Every this many iterations (0 = only at the end).
    pub every: usize,
    /// The run's seed, from which the grids' random draws derive.
    pub seed: u64,
}

/// Trains the VAE for `iters` iterations in chunks, logging every chunk's mean loss to
/// `<run>/vae_loss.csv` and writing PNG grids as `grids` says and at the end.
pub fn train_vae(
    agent: &Agent,
    trainer: &mut Trainer,
    pool: &ImagePool,
    iters: usize,
    run: &RunDir,
    grids: Grids,
    on_progress: &mut dyn FnMut(&PhaseProgress),
) -> Result<()> {
    let png_every = grids.every;
    let mut csv = CsvLog::open(&run.path.join("vae_loss.csv"), &["iteration", "loss"])?;
    let mut rng = TensorRng::new(crate::seed::derive(grids.seed, "vae-grids", 0));
    let chunk = 25.min(png_every.max(1));
    let mut failure = None;
    let result = trainer.train_vae(agent, pool, iters, chunk, |r: &ChunkReport| {
        if failure.is_some() {
            return;
        }
        let logged = csv.row(&[r.iteration.to_string(), r.mean_loss.to_string()]);
        let grids = if r.done == r.total || (png_every > 0 && r.done.is_multiple_of(png_every)) {
            reconstructions(agent, pool, GRID_FRAMES, r.iteration)
                .and_then(|shown| write_vae_grids(agent, &shown, run, &mut rng))
        } else {
            Ok(())
        };
        failure = logged.and(grids).err();
        on_progress(&PhaseProgress {
            phase: "vae".into(),
            done: r.done,
            total: r.total,
            loss: Some(r.mean_loss),
        });
    });
    result.context("training the VAE")?;
    failure.map_or(Ok(()), Err)
}

/// Encodes every episode into a fresh replay buffer of `capacity` transitions.
pub fn fill_replay(
    agent: &Agent,
    episodes: &[Episode],
    capacity: usize,
    on_progress: &mut dyn FnMut(&PhaseProgress),
) -> Result<LatentReplay> {
    let mut replay = LatentReplay::new(capacity, agent.spec.latent);
    for (i, ep) in episodes.iter().enumerate() {
        replay
            .add_episode(agent, ep)
            .context("encoding demo episodes into the replay buffer")?;
        on_progress(&PhaseProgress {
            phase: "encode".into(),
            done: i + 1,
            total: episodes.len(),
            loss: None,
        });
    }
    Ok(replay)
}

/// Trains each of `modules` for `iters(m)` iterations, logging chunk losses to
/// `<run>/module_loss.csv` (module, iteration, loss).
pub fn train_modules(
    agent: &Agent,
    trainer: &mut Trainer,
    replay: &mut LatentReplay,
    modules: &[ModuleKind],
    iters: &dyn Fn(ModuleKind) -> usize,
    run: &RunDir,
    on_progress: &mut dyn FnMut(&PhaseProgress),
) -> Result<()> {
    let mut csv = CsvLog::open(
        &run.path.join("module_loss.csv"),
        &["module", "iteration", "loss"],
    )?;
    for &m in modules {
        let mut failure = None;
        let result = trainer.train_module(agent, replay, m, iters(m), 50, |r: &ChunkReport| {
            if failure.is_none() {
                failure = csv
                    .row(&[
                        m.name().into(),
                        r.iteration.to_string(),
                        r.mean_loss.to_string(),
                    ])
                    .err();
            }
            on_progress(&PhaseProgress {
                phase: m.name().into(),
                done: r.done,
                total: r.total,
                loss: Some(r.mean_loss),
            });
        });
        result.with_context(|| format!("training {m}"))?;
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Ok(())
}
