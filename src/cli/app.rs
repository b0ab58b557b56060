//! `ls3 app` (and `ls3` alone): the options the desktop app opens with.

use anyhow::Result;
use ls3::app::AppOptions;
use ls3::app::views::Tab;
use ls3::env::EnvKind;
use std::path::PathBuf;

/// Arguments of `ls3 app`.
#[derive(clap::Args, Clone, Debug)]
pub struct AppArgs {
    /// Environment to open with (default: the one used last).
    #[arg(long, value_enum)]
    pub env: Option<EnvKind>,
    /// Seed of every random stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Pace of play in environment steps per second (default: the one used last).
    #[arg(long)]
    pub speed: Option<f32>,
    /// Play, capture the rendered window to this PNG after --after-steps steps, and close.
    /// Stored settings are neither read nor written in this mode.
    #[arg(long, value_name = "PNG")]
    pub screenshot: Option<PathBuf>,
    /// Steps to play before the screenshot.
    #[arg(long, default_value_t = 260, requires = "screenshot")]
    pub after_steps: u64,
    /// The view to open with: episode, plan, latents, heatmaps or curves (default: the one
    /// used last; with --screenshot, the episode view). A screenshot of a view waits up to
    /// two minutes after the steps for that view's data (a plan, latents, heatmaps, curves).
    #[arg(long, value_enum)]
    pub view: Option<Tab>,
    /// A trained agent (checkpoint folder) to act in its environment; by default the shipped
    /// agents in assets/ act where one exists.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_folder: Option<PathBuf>,
    /// Let the scripted demonstrators act, even where a trained agent exists.
    #[arg(long)]
    pub demonstrators: bool,
    /// Start "Train from scratch" at launch (quick preset, or --config).
    #[arg(long)]
    pub train: bool,
    /// A configuration JSON (as `ls3 config` writes it) loaded at launch: the training
    /// settings of --train / Train from scratch and the planner settings.
    #[arg(long, value_name = "JSON")]
    pub config: Option<PathBuf>,
    /// With --train and --screenshot: capture once this many training rounds are done
    /// (instead of after --after-steps steps).
    #[arg(long, requires_all = ["train", "screenshot"], conflicts_with = "after_vae")]
    pub after_rounds: Option<u64>,
    /// With --train and --screenshot: capture once the VAE has trained this many iterations
    /// (the episode view then shows its reconstructions).
    #[arg(long, value_name = "ITERATIONS", requires_all = ["train", "screenshot"])]
    pub after_vae: Option<u64>,
    /// A run, `ls3 results` or `ls3 sweep` folder to open at launch, as *Open run…* does: its
    /// per-round curves (a sweep: each variant's mean ± std over seeds) in the curves view.
    #[arg(long, value_name = "DIR")]
    pub open: Option<PathBuf>,
    /// When the window closes, print frame times (median, 95th percentile), the worker→UI
    /// event latency and the memory in use to stderr.
    #[arg(long)]
    pub report: bool,
}

/// Opens the app as `args` say; returns when its window closes.
pub fn open(args: AppArgs) -> Result<()> {
    ls3::app::run(AppOptions {
        env: args.env,
        seed: args.seed,
        speed: args.speed,
        screenshot: args.screenshot,
        after_steps: args.after_steps,
        view: args.view,
        agent: args.checkpoint_folder,
        demonstrators_only: args.demonstrators,
        train: args.train,
        config: args.config,
        after_rounds: args.after_rounds,
        after_vae: args.after_vae,
        open: args.open,
        report: args.report,
    })
}
