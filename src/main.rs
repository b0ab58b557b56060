//! `ls3`: the command line of LS3 Studio. Without a subcommand it opens the desktop app.

use anyhow::Result;
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ls3::data::collect::{CollectOptions, CollectProgress, collect};
use ls3::env::EnvKind;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod cli;

/// LS3 Studio: safe model-based reinforcement learning from pixels (Latent Space Safe Sets).
///
/// Run without a subcommand to open the desktop app.
#[derive(Parser)]
#[command(name = "ls3", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the desktop app (the default when no subcommand is given).
    App {
        /// Environment to open with (default: the one used last).
        #[arg(long, value_enum)]
        env: Option<EnvKind>,
        /// Seed of every random stream.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Pace of play in environment steps per second (default: the one used last).
        #[arg(long)]
        speed: Option<f32>,
        /// Play, capture the rendered window to this PNG after --after-steps steps, and close.
        /// Stored settings are neither read nor written in this mode.
        #[arg(long, value_name = "PNG")]
        screenshot: Option<PathBuf>,
        /// Steps to play before the screenshot.
        #[arg(long, default_value_t = 260, requires = "screenshot")]
        after_steps: u64,
        /// The view to open with: episode, plan, latents, heatmaps or curves (default: the one
        /// used last; with --screenshot, the episode view). A screenshot of a view waits up to
        /// two minutes after the steps for that view's data (a plan, latents, heatmaps, curves).
        #[arg(long, value_enum)]
        view: Option<ls3::app::views::Tab>,
        /// A trained agent (checkpoint folder) to act in its environment; by default the shipped
        /// agents in assets/ act where one exists.
        #[arg(long, value_name = "DIR")]
        checkpoint_folder: Option<PathBuf>,
        /// Let the scripted demonstrators act, even where a trained agent exists.
        #[arg(long)]
        demonstrators: bool,
        /// Start "Train from scratch" at launch (quick preset, or --config).
        #[arg(long)]
        train: bool,
        /// A configuration JSON (as `ls3 config` writes it) loaded at launch: the training
        /// settings of --train / Train from scratch and the planner settings.
        #[arg(long, value_name = "JSON")]
        config: Option<PathBuf>,
        /// With --train and --screenshot: capture once this many training rounds are done
        /// (instead of after --after-steps steps).
        #[arg(long, requires_all = ["train", "screenshot"])]
        after_rounds: Option<u64>,
        /// When the window closes, print frame times (median, 95th percentile), the worker→UI
        /// event latency and the memory in use to stderr.
        #[arg(long)]
        report: bool,
    },
    /// Run an environment's scripted demonstrators and write all its demo sets to disk.
    ///
    /// Writes <OUT>/<env>/<SetName>/ with, per trajectory, i.json (transitions without images),
    /// i_obs.npy and i_next_obs.npy (uint8 T×3×64×64; the reacher stores 3-frame stacks as
    /// T×3×3×64×64), readable by numpy and by the original LS3 code. Sets: navigation →
    /// SimplePointBot (50), SimplePointBotConstraints (50); reacher → Reacher (50),
    /// ReacherConstraints (50), ReacherInteractions (100); push → Push (500), PushOutbursts (300).
    /// Prints per set: episodes, success rate (goal reached at least once), constraint-violation
    /// rate and mean cost (steps outside the goal).
    Collect {
        /// Environment: navigation (alias spb), reacher or push.
        #[arg(long, value_enum)]
        env: EnvKind,
        /// Root folder for the datasets.
        #[arg(long)]
        out: PathBuf,
        /// Seed of every random stream (same seed, same data).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Cap on the episodes of every set (default: the published counts).
        #[arg(long)]
        episodes: Option<usize>,
        /// Replace sets that already exist (otherwise they are never overwritten).
        #[arg(long)]
        force: bool,
        /// Worker threads (default: all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Train the VAE on an environment's demo images (LS3_SPEC §3, §5 step 2).
    ///
    /// Reads the demo sets of --env under --data (as `ls3 collect` writes them), trains for the
    /// preset's iterations (or --iters), and writes a run folder <OUT>/<date>/<time>/ with
    /// config.json, vae_loss.csv (mean loss per 25 iterations), vae_recon_<iter>.png (originals
    /// above reconstructions) and vae_samples_<iter>.png every --png-every iterations, and the
    /// agent checkpoint folder checkpoint/ (its latent modules untrained).
    TrainVae {
        #[command(flatten)]
        run: cli::TrainArgs,
        /// Write reconstruction and sample grids every this many iterations.
        #[arg(long, default_value_t = 500)]
        png_every: usize,
    },
    /// Train the latent modules (dynamics, value, safe set, constraint, goal) on demo data.
    ///
    /// Encodes the demo sets of --env under --data with the VAE of --vae (a checkpoint folder or
    /// a vae.safetensors file), trains each module of --modules for the preset's initial
    /// iterations, and writes a run folder with config.json, module_loss.csv and checkpoint/.
    TrainModules {
        #[command(flatten)]
        run: cli::TrainArgs,
        /// The trained VAE: a checkpoint folder or its vae.safetensors.
        #[arg(long)]
        vae: PathBuf,
        /// Modules to train, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "dyn,val,ss,constr,gi")]
        modules: Vec<String>,
    },
    /// Runs LS3 end to end (collect → VAE → modules → online rounds), like the original's
    /// mpc_learning script: trains whatever --checkpoint-folder lacks, writes metrics, GIFs and a
    /// checkpoint per round into a new run folder, and can resume an interrupted run.
    Run(cli::run::RunArgs),
    /// Runs planner episodes with a frozen agent; ends with one JSON line of rates for scripts.
    Eval(cli::run::EvalArgs),
    /// Runs LS3 and its two planner ablations (no safe set, no constraints) on one environment
    /// and writes the comparison table (success, violations, cost of the last rounds, the
    /// demonstrators' cost) to <OUT>/<env>/results.md.
    Results(cli::results::ResultsArgs),
    /// Writes a half-precision copy of a checkpoint folder (weights as 16-bit floats: half the
    /// size, for shipping an agent; every command loads it like any other checkpoint).
    Compact {
        /// The checkpoint folder to copy.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Where to write the copy.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Replace an existing folder.
        #[arg(long)]
        force: bool,
    },
    /// Measures the agent's dynamics one step ahead on fresh demo episodes: latent error for the
    /// demonstrated actions and for uniformly random actions from the same states (which the
    /// planner also proposes), next to the size of the true latent change.
    DynamicsError {
        /// The agent's checkpoint folder.
        #[arg(long, value_name = "DIR")]
        checkpoint_folder: PathBuf,
        /// Demo episodes (of the environment's first demo set) to measure on.
        #[arg(long, default_value_t = 5)]
        episodes: usize,
        /// Seed of the episodes and the random actions.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// How much of the ground-truth state the agent's VAE encodes: a ridge regression from
    /// latent samples μ + σ·ε (what the latent modules train on) to the state (navigation x, y; reacher sin/cos of both joints and the finger;
    /// push the pusher and each block) is fitted on 4 of every 5 demo episodes and scored on the
    /// fifth. Prints the held-out R² per quantity (1 = perfect, 0 = no better than the mean) and
    /// one JSON line.
    Probe {
        /// The agent's checkpoint folder (only its VAE is used).
        #[arg(long, value_name = "DIR")]
        checkpoint_folder: PathBuf,
        /// Demo sets to probe on (<DATA>/<env>/<SetName>/); default: fresh demos.
        #[arg(long, value_name = "DATA")]
        data: Option<PathBuf>,
        /// Fresh demo episodes per demo set (without --data).
        #[arg(long, default_value_t = 20)]
        episodes: usize,
        /// Seed of the fresh demos.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Checks whether the planner fools itself: from states of fresh demo episodes it plans,
    /// plays the best plan in the simulator and compares the imagined terminal value and
    /// safe-set probability with what the models say about the frames that really come out; the
    /// demonstrator's next actions are scored the same way for comparison, and so is holding
    /// still (zero actions, imagined with each dynamics member): an imagined value above the true
    /// one there means the dynamics moves the agent along the demos without being asked to.
    PlanCheck {
        /// The agent's checkpoint folder.
        #[arg(long, value_name = "DIR")]
        checkpoint_folder: PathBuf,
        /// Demo episodes (of the environment's first demo set) to check along.
        #[arg(long, default_value_t = 2)]
        episodes: usize,
        /// Check every N-th state of each episode.
        #[arg(long, default_value_t = 5)]
        every: usize,
        /// Planner settings from this configuration JSON (default: those saved with the
        /// checkpoint, else the quick preset's), as for `ls3 eval`.
        #[arg(long, value_name = "JSON")]
        config: Option<PathBuf>,
        /// Print one line per checked state.
        #[arg(long)]
        verbose: bool,
        /// Seed of the episodes and the planner.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Writes the safe-set, value, constraint and goal maps of an agent over the environment's
    /// 2-D state grid as one PNG (navigation x–y, reacher joint angles, push pusher x–y).
    Heatmap {
        /// The agent's checkpoint folder.
        #[arg(long, value_name = "DIR")]
        checkpoint_folder: PathBuf,
        /// The PNG to write.
        #[arg(long, default_value = "heatmaps.png")]
        out: PathBuf,
        /// Grid cells along the longer axis.
        #[arg(long, default_value_t = 45)]
        cells: usize,
    },
    /// Prints a preset's full configuration as JSON: edit it and pass it to `ls3 run --config`.
    Config {
        /// Environment whose per-task numbers to use.
        #[arg(long, value_enum)]
        env: EnvKind,
        /// quick or paper.
        #[arg(long, value_enum, default_value_t = ls3::config::Preset::Quick)]
        preset: ls3::config::Preset,
    },
    /// Convert the original implementation's PyTorch checkpoints into an LS3 Studio checkpoint.
    ///
    /// Reads vae.pth, dyn.pth, val.pth, ss.pth, constr.pth and gi.pth (state dicts saved with
    /// torch.save) from --from, checks every tensor's name and shape against our modules, and
    /// writes <OUT>/{vae,dyn,val,ss,constr,gi}.safetensors plus agent.json. A single-net val.pth
    /// becomes a single value net; missing target nets are copied from their online nets.
    ImportTorch {
        /// Folder with the original's .pth files.
        #[arg(long)]
        from: PathBuf,
        /// Checkpoint folder to write (must not exist unless --force).
        #[arg(long)]
        out: PathBuf,
        /// Environment the agent was trained on (decides the VAE's input channels).
        #[arg(long, value_enum)]
        env: EnvKind,
        /// Replace an existing checkpoint folder.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        None => ls3::app::run(ls3::app::AppOptions::default()),
        Some(Command::App {
            env,
            seed,
            speed,
            screenshot,
            after_steps,
            view,
            checkpoint_folder,
            demonstrators,
            train,
            config,
            after_rounds,
            report,
        }) => ls3::app::run(ls3::app::AppOptions {
            env,
            seed,
            speed,
            screenshot,
            after_steps,
            view,
            agent: checkpoint_folder,
            demonstrators_only: demonstrators,
            train,
            config,
            after_rounds,
            report,
        }),
        Some(Command::Collect {
            env,
            out,
            seed,
            episodes,
            force,
            threads,
        }) => {
            let opts = CollectOptions {
                kind: env,
                out,
                seed,
                max_episodes: episodes,
                force,
                threads,
            };
            run_collect(&opts)
        }
        Some(Command::Run(args)) => cli::run::run(&args),
        Some(Command::Eval(args)) => cli::run::eval(&args),
        Some(Command::Results(args)) => cli::results::results(&args),
        Some(Command::Compact { from, out, force }) => compact(&from, &out, force),
        Some(Command::Heatmap {
            checkpoint_folder,
            out,
            cells,
        }) => heatmap(&checkpoint_folder, &out, cells),
        Some(Command::DynamicsError {
            checkpoint_folder,
            episodes,
            seed,
        }) => dynamics_error(&checkpoint_folder, episodes, seed),
        Some(Command::Probe {
            checkpoint_folder,
            data,
            episodes,
            seed,
        }) => cli::probe::run(&checkpoint_folder, data.as_deref(), episodes, seed).map(|_| ()),
        Some(Command::PlanCheck {
            checkpoint_folder,
            episodes,
            every,
            config,
            verbose,
            seed,
        }) => plan_check(
            &checkpoint_folder,
            episodes,
            every,
            config.as_deref(),
            verbose,
            seed,
        ),
        Some(Command::Config { env, preset }) => {
            let config = ls3::config::Config::preset(preset, env);
            println!("{}", serde_json::to_string_pretty(&config)?);
            Ok(())
        }
        Some(Command::ImportTorch {
            from,
            out,
            env,
            force,
        }) => import_torch(&from, &out, env, force),
        Some(Command::TrainVae { run, png_every }) => cli::train::train_vae(&run, png_every),
        Some(Command::TrainModules { run, vae, modules }) => {
            cli::train::train_modules(&run, &vae, &modules)
        }
    }
}

fn heatmap(dir: &Path, out: &Path, cells: usize) -> Result<()> {
    use ls3::analysis::heatmap;
    let device = ls3::model::default_device();
    let (agent, meta) = ls3::model::checkpoint::load(dir, None, &device)?;
    let env = meta.spec.env.make(0);
    let axes = heatmap::axes(meta.spec.env);
    let (w, h) = (axes.x[1] - axes.x[0], axes.y[1] - axes.y[0]);
    let cells = cells.max(2);
    let (nx, ny) = if w >= h {
        (cells, ((cells as f64 * h / w).round() as usize).max(2))
    } else {
        (((cells as f64 * w / h).round() as usize).max(2), cells)
    };
    let maps = heatmap::compute(&agent, env.as_ref(), &env.state(), nx, ny)?;
    heatmap::save_png(&maps, out, (360 / nx.max(ny)).max(2) as u32)?;
    println!(
        "wrote {} (safe set, value, constraint, goal over {} × {})",
        out.display(),
        axes.x_label,
        axes.y_label
    );
    Ok(())
}

fn dynamics_error(dir: &Path, episodes: usize, seed: u64) -> Result<()> {
    use rand::SeedableRng;
    let device = ls3::model::default_device();
    let (agent, meta) = ls3::model::checkpoint::load(dir, None, &device)?;
    let kind = meta.spec.env;
    let (set, eps) = fresh_demos(kind, seed, "dynamics-error", episodes);
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

/// `episodes` episodes of `kind`'s first demo set (its task demonstrator), seeded from `seed`
/// and `stream` apart from `ls3 collect`'s, so they are not the training demos.
fn fresh_demos(
    kind: ls3::env::EnvKind,
    seed: u64,
    stream: &str,
    episodes: usize,
) -> (
    &'static ls3::env::demos::DemoSet,
    Vec<ls3::data::episode::Episode>,
) {
    let demo_seed = ls3::seed::derive(seed, stream, 0);
    let set = &kind.demo_sets()[0];
    let eps = (0..episodes)
        .map(|i| ls3::data::collect::demo_episode(kind, set, demo_seed, i))
        .collect();
    (set, eps)
}

fn plan_check(
    dir: &Path,
    episodes: usize,
    every: usize,
    config: Option<&Path>,
    verbose: bool,
    seed: u64,
) -> Result<()> {
    use ls3::analysis::plan_check;
    let device = ls3::model::default_device();
    let (agent, meta) = ls3::model::checkpoint::load(dir, None, &device)?;
    let kind = meta.spec.env;
    let cfg = match config {
        Some(path) => ls3::config::read_file(path)?.valid_planner(),
        None => meta.planner()?,
    };
    let (set, eps) = fresh_demos(kind, seed, "plan-check", episodes);
    let mut env = kind.make(seed);
    let mut planner = ls3::planner::Planner::for_env(kind, ls3::seed::derive(seed, "planner", 0));
    let checked = plan_check::check(&agent, env.as_mut(), &mut planner, &cfg, &eps, every)?;
    let f = |s: &[f64]| {
        s.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    if verbose {
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

fn compact(from: &Path, out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        anyhow::bail!(
            "{} already exists; pass --force to replace it",
            out.display()
        );
    }
    let device = ls3::model::default_device();
    let (agent, meta) = ls3::model::checkpoint::load(from, None, &device)?;
    ls3::model::checkpoint::save_with(&agent, out, meta.config, true)?;
    println!(
        "wrote a half-precision copy of {} to {}",
        from.display(),
        out.display()
    );
    Ok(())
}

fn import_torch(from: &Path, out: &Path, env: EnvKind, force: bool) -> Result<()> {
    if out.exists() && !force {
        anyhow::bail!(
            "{} already exists; pass --force to replace it",
            out.display()
        );
    }
    let device = ls3::model::default_device();
    let agent = ls3::model::checkpoint::import_torch(from, env, &device)?;
    let origin = serde_json::json!({ "imported_from": from.display().to_string() });
    ls3::model::checkpoint::save(&agent, out, origin)?;
    println!(
        "imported {} agent ({} value net{}) from {} into {}",
        env,
        agent.spec.value_members,
        if agent.spec.value_members == 1 {
            ""
        } else {
            "s"
        },
        from.display(),
        out.display()
    );
    Ok(())
}

fn run_collect(opts: &CollectOptions) -> Result<()> {
    let multi = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} episodes ({eta})")
            .expect("valid template")
            .progress_chars("=> ");
    let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    let on_progress = |p: CollectProgress| {
        let mut bars = bars.lock().expect("progress lock");
        let bar = bars.entry(p.set.to_string()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(p.total as u64));
            b.set_style(style.clone());
            b.set_prefix(p.set.to_string());
            b
        });
        bar.set_position(p.done as u64);
        if p.done == p.total {
            bar.finish();
        }
    };
    let start = std::time::Instant::now();
    let summaries = collect(opts, &on_progress)?;
    println!(
        "{:<28} {:>8} {:>9} {:>10} {:>9}",
        "set", "episodes", "success", "violation", "mean cost"
    );
    for s in &summaries {
        println!(
            "{:<28} {:>8} {:>8.1}% {:>9.1}% {:>9.1}",
            s.name,
            s.episodes,
            100.0 * s.success_rate,
            100.0 * s.violation_rate,
            s.mean_cost
        );
    }
    println!(
        "wrote {} under {} in {:.1} s",
        opts.kind,
        opts.out.join(opts.kind.name()).display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
