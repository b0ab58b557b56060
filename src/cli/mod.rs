//! The `ls3` commands: each module holds one command's (or a few related commands')
//! arguments and its presentation on a terminal (progress bars, summaries). Only the `ls3`
//! binary uses this; the work itself lives in the library.

pub mod app;
pub mod checkpoint;
pub mod collect;
pub mod config;
pub mod dynamics_error;
pub mod heatmap;
pub mod plan_check;
pub mod probe;
pub mod results;
pub mod run;
pub mod sweep;
pub mod train;

use indicatif::{ProgressBar, ProgressStyle};
use ls3::config::Preset;
use ls3::data::collect::demo_episode;
use ls3::data::episode::Episode;
use ls3::env::EnvKind;
use ls3::env::demos::DemoSet;
use ls3::train::phases::PhaseProgress;
use std::path::PathBuf;

/// Arguments every training command takes.
#[derive(clap::Args, Clone, Debug)]
pub struct TrainArgs {
    /// Environment: navigation (alias spb), reacher or push.
    #[arg(long, value_enum)]
    pub env: EnvKind,
    /// Folder holding the demo sets (<DATA>/<env>/<SetName>/).
    #[arg(long)]
    pub data: PathBuf,
    /// Hyperparameters: quick (CPU minutes) or paper (the published numbers).
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    pub preset: Preset,
    /// A configuration JSON (as `ls3 config` writes it) instead of the preset; its environment
    /// must be --env.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Iterations of the VAE, or per latent module (default: the preset's).
    #[arg(long)]
    pub iters: Option<usize>,
    /// Root of run folders.
    #[arg(long, default_value = "outputs")]
    pub out: PathBuf,
    /// Seed of every random stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Arithmetic of the VAE's convolutions: f32, or bf16 products with f32 accumulation
    /// (AVX512-BF16; f32 where the CPU lacks it). Overrides the configuration's `precision` and
    /// is saved with the run's configuration.
    #[arg(long, value_enum)]
    pub precision: Option<ls3::config::Precision>,
}

/// One progress bar for the phase that runs now; a new phase finishes the previous bar.
#[derive(Default)]
pub struct PhaseBars {
    current: Option<(String, ProgressBar)>,
}

impl PhaseBars {
    /// Shows `p` (phase name, i/n, ETA, latest loss).
    pub fn update(&mut self, p: &PhaseProgress) {
        if self
            .current
            .as_ref()
            .is_some_and(|(name, _)| *name != p.phase)
            && let Some((_, bar)) = self.current.take()
        {
            bar.finish();
        }
        let (_, bar) = self.current.get_or_insert_with(|| {
            let b = ProgressBar::new(p.total as u64);
            b.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} ({eta}) {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix(p.phase.clone());
            (p.phase.clone(), b)
        });
        bar.set_position(p.done as u64);
        if let Some(loss) = p.loss {
            bar.set_message(format!("loss {loss:.5}"));
        }
        if p.done >= p.total {
            bar.finish();
        }
    }
}

/// `episodes` episodes of `kind`'s first demo set (its task demonstrator), seeded from `seed`
/// and `stream` apart from `ls3 collect`'s, so they are not the training demos.
pub fn fresh_task_demos(
    kind: EnvKind,
    seed: u64,
    stream: &str,
    episodes: usize,
) -> (&'static DemoSet, Vec<Episode>) {
    let demo_seed = ls3::seed::derive(seed, stream, 0);
    let set = &kind.demo_sets()[0];
    let eps = (0..episodes)
        .map(|i| demo_episode(kind, set, demo_seed, i))
        .collect();
    (set, eps)
}
