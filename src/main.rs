//! `ls3`: the command line of LS3 Studio. Without a subcommand it opens the desktop app.
//!
//! This file only parses arguments and dispatches; each command's arguments and body live in
//! its module under `cli/`.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cli;

/// LS3 Studio: safe model-based reinforcement learning from pixels (Latent Space Safe Sets).
///
/// Run without a subcommand to open the desktop app.
#[derive(Parser)]
#[command(name = "ls3", version, about, long_about)]
struct Cli {
    /// Where the networks run: auto (a CUDA GPU when built with `--features cuda` and one is
    /// present, else the CPU), cpu, cuda or cuda:N. Applies to every command, the app included.
    #[arg(long, global = true, default_value = "auto")]
    device: ls3::model::DeviceChoice,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the desktop app (the default when no subcommand is given).
    App(cli::app::AppArgs),
    /// Run an environment's scripted demonstrators and write all its demo sets to disk.
    ///
    /// Writes <OUT>/<env>/<SetName>/ with, per trajectory, i.json (transitions without images),
    /// i_obs.npy and i_next_obs.npy (uint8 T×3×64×64; the reacher stores 3-frame stacks as
    /// T×3×3×64×64), readable by numpy and by the original LS3 code. Sets: navigation →
    /// SimplePointBot (50), SimplePointBotConstraints (50); reacher → Reacher (50),
    /// ReacherConstraints (50), ReacherInteractions (100); push → Push (500), PushOutbursts (300).
    /// Prints per set: episodes, success rate (goal reached at least once), constraint-violation
    /// rate and mean cost (steps outside the goal).
    Collect(cli::collect::CollectArgs),
    /// Train the VAE on an environment's demo images (LS3_SPEC §3, §5 step 2).
    ///
    /// Reads the demo sets of --env under --data (as `ls3 collect` writes them), trains for the
    /// preset's iterations (or --iters), and writes a run folder <OUT>/<date>/<time>/ with
    /// config.json, vae_loss.csv (mean loss per 25 iterations), vae_recon_<iter>.png (originals
    /// above reconstructions) and vae_samples_<iter>.png every --png-every iterations, and the
    /// agent checkpoint folder checkpoint/ (its latent modules untrained).
    TrainVae(cli::train::TrainVaeArgs),
    /// Train the latent modules (dynamics, value, safe set, constraint, goal) on demo data.
    ///
    /// Encodes the demo sets of --env under --data with the VAE of --vae (a checkpoint folder or
    /// a vae.safetensors file), trains each module of --modules for the preset's initial
    /// iterations, and writes a run folder with config.json, module_loss.csv and checkpoint/.
    TrainModules(cli::train::TrainModulesArgs),
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
    /// Many runs as one sweep: plan environments × seeds × ablations into a folder, run them
    /// (one index per job-array task, or all on this machine) and report means ± std over seeds.
    #[command(subcommand)]
    Sweep(cli::sweep::SweepCommand),
    /// Writes a half-precision copy of a checkpoint folder (weights as 16-bit floats: half the
    /// size, for shipping an agent; every command loads it like any other checkpoint).
    Compact(cli::checkpoint::CompactArgs),
    /// Measures the agent's dynamics one step ahead on fresh demo episodes: latent error for the
    /// demonstrated actions and for uniformly random actions from the same states (which the
    /// planner also proposes), next to the size of the true latent change.
    DynamicsError(cli::dynamics_error::DynamicsErrorArgs),
    /// How much of the ground-truth state the agent's VAE encodes: a ridge regression from
    /// latent samples μ + σ·ε (what the latent modules train on) to the state (navigation x, y; reacher sin/cos of both joints and the finger;
    /// push the pusher and each block) is fitted on 4 of every 5 demo episodes and scored on the
    /// fifth. Prints the held-out R² per quantity (1 = perfect, 0 = no better than the mean) and
    /// one JSON line.
    Probe(cli::probe::ProbeArgs),
    /// Checks whether the planner fools itself: from states of fresh demo episodes it plans,
    /// plays the best plan in the simulator and compares the imagined terminal value and
    /// safe-set probability with what the models say about the frames that really come out; the
    /// demonstrator's next actions are scored the same way for comparison, and so is holding
    /// still (zero actions, imagined with each dynamics member): an imagined value above the true
    /// one there means the dynamics moves the agent along the demos without being asked to.
    PlanCheck(cli::plan_check::PlanCheckArgs),
    /// Writes the safe-set, value, constraint and goal maps of an agent over the environment's
    /// 2-D state grid as one PNG (navigation x–y, reacher joint angles, push pusher x–y).
    Heatmap(cli::heatmap::HeatmapArgs),
    /// Prints a preset's full configuration as JSON: edit it and pass it to `ls3 run --config`.
    Config(cli::config::ConfigArgs),
    /// Convert the original implementation's PyTorch checkpoints into an LS3 Studio checkpoint.
    ///
    /// Reads vae.pth, dyn.pth, val.pth, ss.pth, constr.pth and gi.pth (state dicts saved with
    /// torch.save) from --from, checks every tensor's name and shape against our modules, and
    /// writes <OUT>/{vae,dyn,val,ss,constr,gi}.safetensors plus agent.json. A single-net val.pth
    /// becomes a single value net; missing target nets are copied from their online nets.
    ImportTorch(cli::checkpoint::ImportTorchArgs),
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
    ls3::model::choose_device(cli.device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    let Some(command) = cli.command else {
        return ls3::app::run(ls3::app::AppOptions::default());
    };
    match command {
        Command::App(args) => cli::app::open(args),
        Command::Collect(args) => cli::collect::run(&args),
        Command::TrainVae(args) => cli::train::train_vae(&args.run, args.png_every),
        Command::TrainModules(args) => {
            cli::train::train_modules(&args.run, &args.vae, &args.modules)
        }
        Command::Run(args) => cli::run::run(&args),
        Command::Eval(args) => cli::run::eval(&args),
        Command::Results(args) => cli::results::results(&args),
        Command::Sweep(command) => cli::sweep::run(&command, cli.device),
        Command::Compact(args) => cli::checkpoint::compact(&args),
        Command::DynamicsError(args) => cli::dynamics_error::run(&args),
        Command::Probe(args) => cli::probe::run(
            &args.checkpoint_folder,
            args.data.as_deref(),
            args.episodes,
            args.seed,
        )
        .map(|_| ()),
        Command::PlanCheck(args) => cli::plan_check::run(&args),
        Command::Heatmap(args) => cli::heatmap::run(&args),
        Command::Config(args) => cli::config::print(&args),
        Command::ImportTorch(args) => cli::checkpoint::import_torch(&args),
    }
}
