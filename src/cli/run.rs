//! `ls3 run` (the whole LS3 procedure, resumable) and `ls3 eval` (frozen-model episodes).

use super::PhaseBars;
use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use ls3::config::{Config, Preset, Validate, read_file};
use ls3::env::EnvKind;
use ls3::model::checkpoint;
use ls3::planner::Ablation;
use ls3::run::RunDir;
use ls3::train::metrics::{EpisodeSummary, mean_std};
use ls3::train::{Event, Session, SessionOptions, evaluate};
use std::path::PathBuf;

/// Arguments of `ls3 run`.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Environment: navigation (alias spb), reacher or push. Not needed with --resume or
    /// --config (the file names its environment; a different --env is refused).
    #[arg(long, value_enum, required_unless_present_any = ["resume", "config"])]
    pub env: Option<EnvKind>,
    /// Hyperparameters: quick (CPU minutes) or paper (the published numbers).
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    pub preset: Preset,
    /// A configuration JSON (as `ls3 config` or the app writes it, or a run's config.json) used
    /// instead of the preset. It names the environment, so --env may be left out. Every value is
    /// checked before anything runs (e.g. planner.elites ≤ planner.population).
    #[arg(long, value_name = "JSON", conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Seed of every random stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Demo sets to train from (<DATA>/<env>/<Set>/); default: collect them into the run folder.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Start from the modules in this checkpoint folder and train only what it lacks.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_folder: Option<PathBuf>,
    /// Planner ablation.
    #[arg(long, value_enum, default_value_t = Ablation::None)]
    pub ablation: Ablation,
    /// Online rounds (default: the preset's num_updates). With --resume, sets the run's total,
    /// so a finished run goes on for more rounds.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Arithmetic of the VAE's convolutions and the planner's dense layers: f32, or bf16
    /// products with f32 accumulation (AVX512-BF16; f32 where the CPU lacks it). Overrides the configuration's `precision` and
    /// is saved with the run's configuration.
    #[arg(long, value_enum)]
    pub precision: Option<ls3::config::Precision>,
    /// Root of run folders: the run goes to <OUT>/<date>/<time>/.
    #[arg(long, default_value = "outputs")]
    pub out: PathBuf,
    /// Exact run folder instead of a timestamped one; must not exist or be empty.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub run_dir: Option<PathBuf>,
    /// Continue an interrupted run in this folder (its config, checkpoints and episodes).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Cap the episodes of every demo set (small experiments).
    #[arg(long, value_name = "N")]
    pub demo_episodes: Option<usize>,
}

/// `ls3 run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let mut session = match &args.resume {
        Some(dir) => Session::resume_with_rounds(dir, args.rounds)?,
        None => {
            let mut config = match (&args.config, args.env) {
                (Some(path), env) => {
                    let config = read_file(path)?;
                    if let Some(env) = env.filter(|&env| env != config.env) {
                        bail!(
                            "--env {env} contradicts the configuration file {}, which is for {}",
                            path.display(),
                            config.env
                        );
                    }
                    config.into_inner()
                }
                (None, Some(env)) => Config::preset(args.preset, env),
                (None, None) => bail!("--env is required without --config or --resume"),
            };
            args.ablation.apply(&mut config.planner);
            if let Some(r) = args.rounds {
                config.online.num_updates = r;
            }
            if let Some(p) = args.precision {
                config.precision = p;
            }
            let config = config.validated()?;
            let run_dir = match &args.run_dir {
                Some(dir) => dir.clone(),
                None => RunDir::create(&args.out)?.path,
            };
            Session::create(SessionOptions {
                config,
                preset: args.config.is_none().then_some(args.preset),
                seed: args.seed,
                data: args.data.clone(),
                checkpoint: args.checkpoint_folder.clone(),
                run_dir,
                demo_limit: args.demo_episodes,
            })?
        }
    };
    println!("run folder: {}", session.dir().display());
    let mut view = RunView::default();
    let result = session.run_to_end(&mut |e| view.event(e));
    view.clear();
    result?;
    println!("finished: {}", session.dir().display());
    Ok(())
}

/// Turns session events into progress bars and log lines.
#[derive(Default)]
pub struct RunView {
    bars: PhaseBars,
    episode: Option<ProgressBar>,
}

impl RunView {
    /// Shows one event.
    pub fn event(&mut self, e: Event) {
        match e {
            Event::Progress(p) => self.bars.update(&p),
            Event::EpisodeStarted { round, index, .. } => {
                let bar = ProgressBar::new(100);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>14} [{bar:30}] {pos}/{len} steps ({eta})",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("round {} ep {index}", round + 1));
                self.episode = Some(bar);
            }
            Event::Step(s) => {
                if let Some(bar) = &self.episode {
                    bar.set_position(s.t as u64 + 1);
                }
            }
            Event::EpisodeFinished(s) => {
                self.clear();
                println!("{}", episode_line(&s));
            }
            Event::RoundFinished(r) => println!(
                "round {:>2}: success {:>5.1} %  violations {:>5.1} %  cost {:.1} ± {:.1}  \
                 (cumulative violations {})",
                r.round + 1,
                r.success_rate * 100.0,
                r.violation_rate * 100.0,
                r.mean_cost,
                r.std_cost,
                r.cumulative_violations
            ),
            Event::Checkpoint(p) => println!("checkpoint: {}", p.display()),
            Event::Probe(r) => println!("VAE {}", r.summary()),
            Event::Loss { .. } | Event::Log(_) | Event::VaeReconstructions(_) => {}
        }
    }

    /// Removes the episode bar.
    pub fn clear(&mut self) {
        if let Some(bar) = self.episode.take() {
            bar.finish_and_clear();
        }
    }
}

fn episode_line(s: &EpisodeSummary) -> String {
    format!(
        "episode {:>3}: cost {:>5.1}  {}{}{}",
        s.index,
        s.cost,
        if s.success { "success" } else { "no goal" },
        if s.violation { "  VIOLATION" } else { "" },
        if s.random_actions > 0 {
            format!("  ({} random actions)", s.random_actions)
        } else {
            String::new()
        }
    )
}

/// Arguments of `ls3 eval`.
#[derive(clap::Args, Clone, Debug)]
pub struct EvalArgs {
    /// The agent: a checkpoint folder (agent.json + six .safetensors).
    #[arg(long, value_name = "DIR")]
    pub checkpoint_folder: PathBuf,
    /// Episodes to run.
    #[arg(long, default_value_t = 10)]
    pub episodes: usize,
    /// Seed of the episodes' start states and the planner's sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Planner settings from this configuration JSON (default: those saved with the checkpoint,
    /// else the quick preset's).
    #[arg(long, value_name = "JSON")]
    pub config: Option<PathBuf>,
    /// Planner ablation.
    #[arg(long, value_enum, default_value_t = Ablation::None)]
    pub ablation: Ablation,
    /// Arithmetic of the planner's dense layers and the VAE's convolutions: f32, or bf16
    /// products with f32 accumulation (AVX512-BF16; f32 where the CPU lacks it). Default: the
    /// `precision` of --config, else of the configuration saved with the agent, else f32.
    #[arg(long, value_enum)]
    pub precision: Option<ls3::config::Precision>,
}

/// `ls3 eval`: per-episode lines, then one JSON line for scripts.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let device = ls3::model::default_device();
    let (agent, meta) = checkpoint::load(&args.checkpoint_folder, None, &device)?;
    let env = meta.spec.env;
    let (mut planner, precision) = match &args.config {
        Some(path) => {
            let c = read_file(path)?.into_inner();
            (c.planner, c.precision)
        }
        None => (
            ls3::config::saved_planner(&meta)?.into_inner(),
            ls3::config::saved_precision(&meta),
        ),
    };
    ls3::model::conv::set_precision(args.precision.unwrap_or(precision));
    args.ablation.apply(&mut planner);
    let planner = planner.validated()?;
    let summaries = evaluate(&agent, env, &planner, args.episodes, args.seed, |s, _| {
        println!("{}", episode_line(s))
    })?;
    let n = summaries.len().max(1) as f32;
    let rate =
        |f: fn(&EpisodeSummary) -> bool| summaries.iter().filter(|s| f(s)).count() as f32 / n;
    let costs: Vec<f32> = summaries.iter().map(|s| s.cost).collect();
    let line = serde_json::json!({
        "env": env,
        "episodes": summaries.len(),
        "success_rate": rate(|s| s.success),
        "violation_rate": rate(|s| s.violation),
        "mean_cost": mean_std(&costs).0,
    });
    println!("{line}");
    Ok(())
}
