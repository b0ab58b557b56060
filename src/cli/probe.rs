//! `ls3 probe`: how much of the ground-truth state an agent's VAE encodes (held-out R² of a
//! linear probe from latent samples to state quantities).

use anyhow::{Context, Result};
use ls3::data::collect::demo_episode;
use ls3::data::episode::Episode;
use ls3::env::EnvKind;
use ls3::model::probe::{DEFAULT_FRAMES, ProbeReport, probe};
use std::path::{Path, PathBuf};

/// Arguments of `ls3 probe`.
#[derive(clap::Args, Clone, Debug)]
pub struct ProbeArgs {
    /// The agent's checkpoint folder (only its VAE is used).
    #[arg(long, value_name = "DIR")]
    pub checkpoint_folder: PathBuf,
    /// Demo sets to probe on (<DATA>/<env>/<SetName>/); default: fresh demos.
    #[arg(long, value_name = "DATA")]
    pub data: Option<PathBuf>,
    /// Fresh demo episodes per demo set (without --data).
    #[arg(long, default_value_t = 50)]
    pub episodes: usize,
    /// Seed of the fresh demos.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Demo episodes of every set of `kind`, `per_set` each, from `seed`'s "probe" stream.
pub fn fresh_demos(kind: EnvKind, seed: u64, per_set: usize) -> Vec<Episode> {
    let seed = ls3::seed::derive(seed, "probe", 0);
    kind.demo_sets()
        .iter()
        .flat_map(|set| (0..per_set.min(set.count)).map(move |i| demo_episode(kind, set, seed, i)))
        .collect()
}

/// Prints the probe of the agent in `dir` on `data`'s demos (or fresh ones) and returns it.
pub fn run(dir: &Path, data: Option<&Path>, per_set: usize, seed: u64) -> Result<ProbeReport> {
    let device = ls3::model::default_device();
    let (agent, meta) = ls3::model::checkpoint::load(dir, None, &device)?;
    let kind = meta.spec.env;
    let episodes = match data {
        Some(data) => ls3::train::phases::load_demos(data, kind)?.0,
        None => fresh_demos(kind, seed, per_set),
    };
    let report = probe(&agent, &episodes, DEFAULT_FRAMES)
        .with_context(|| format!("probing the VAE of {}", dir.display()))?;
    println!(
        "{} ({} episodes, {} frames fitted)",
        report.summary(),
        episodes.len(),
        report.train_frames
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(report)
}
