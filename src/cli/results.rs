//! `ls3 results`: LS3 and both planner ablations on one environment, then the comparison table.

use super::run::RunView;
use anyhow::{Context, Result};
use ls3::config::{Config, Preset, Validate, read_file};
use ls3::env::EnvKind;
use ls3::planner::Ablation;
use ls3::train::results::{RunResult, markdown_table, summarize};
use ls3::train::run_state::Layout;
use ls3::train::{Session, SessionOptions};
use std::path::{Path, PathBuf};

/// Arguments of `ls3 results`.
#[derive(clap::Args, Clone, Debug)]
pub struct ResultsArgs {
    /// Environment: navigation (alias spb), reacher or push.
    #[arg(long, value_enum, default_value_t = EnvKind::Navigation)]
    pub env: EnvKind,
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    pub preset: Preset,
    /// A configuration JSON used instead of the preset.
    #[arg(long, value_name = "JSON")]
    pub config: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Online rounds of each run (default: the preset's).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Arithmetic of the VAE's convolutions and the planner's dense layers: f32, or bf16
    /// products with f32 accumulation (AVX512-BF16; f32 where the CPU lacks it). Overrides the configuration's `precision` and
    /// is saved with the run's configuration.
    #[arg(long, value_enum)]
    pub precision: Option<ls3::config::Precision>,
    /// Rounds at the end of each run that the table summarises.
    #[arg(long, default_value_t = 3)]
    pub last_rounds: usize,
    /// Start the LS3 run from this agent instead of training one (e.g. the shipped
    /// `assets/navigation`, which is this command's `checkpoints/init` at seed 0); the ablations
    /// then start from the LS3 run's `checkpoints/init` as always.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_folder: Option<PathBuf>,
    /// Folder of the three runs (ls3/, no-safe-set/, no-constraints/) and of results.md/.json.
    /// Finished runs in it are reused and interrupted ones resumed.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
}

/// `ls3 results`. The ablations start from the LS3 run's demos and initial training
/// (`checkpoints/init`), so the three runs differ only in how the planner treats the safe set and
/// the constraint during the online rounds.
pub fn results(args: &ResultsArgs) -> Result<()> {
    let env = args.env;
    let mut base = match &args.config {
        Some(p) => read_file(p)?.into_inner(),
        None => Config::preset(args.preset, env),
    };
    anyhow::ensure!(
        base.env == env,
        "the configuration is for {}, not {env}",
        base.env
    );
    if let Some(r) = args.rounds {
        base.online.num_updates = r;
    }
    if let Some(p) = args.precision {
        base.precision = p;
    }
    let out = args.out.join(env.name());
    let ls3_dir = out.join("ls3");
    let runs = [
        ("LS3", Ablation::None, "ls3"),
        ("no safe set", Ablation::NoSafeSet, "no-safe-set"),
        ("no constraints", Ablation::NoConstraints, "no-constraints"),
    ];
    let mut table = Vec::<RunResult>::new();
    for (name, ablation, folder) in runs {
        let dir = out.join(folder);
        let mut config = base.clone();
        ablation.apply(&mut config.planner);
        let mut opts = SessionOptions {
            config: config.validated()?,
            preset: args.config.is_none().then_some(args.preset),
            seed: args.seed,
            data: None,
            checkpoint: None,
            run_dir: dir.clone(),
            demo_limit: None,
        };
        if ablation == Ablation::None {
            opts.checkpoint = args.checkpoint_folder.clone();
        } else {
            opts.data = Some(Layout(&ls3_dir).data());
            opts.checkpoint = Some(Layout(&ls3_dir).round_checkpoint(0));
        }
        run_or_resume(name, opts)?;
        table.push(summarize(&dir, name, args.last_rounds)?);
    }
    let md = markdown_table(&table);
    let header = format!(
        "{env}, preset {}, seed {}: the last {} rounds of each run\n\n",
        if args.config.is_some() {
            "custom"
        } else {
            args.preset.name()
        },
        args.seed,
        args.last_rounds
    );
    write(&out.join("results.md"), &(header.clone() + &md))?;
    write(
        &out.join("results.json"),
        &serde_json::to_string_pretty(&table)?,
    )?;
    println!("\n{header}{md}");
    println!("written to {}", out.join("results.md").display());
    Ok(())
}

fn run_or_resume(name: &str, opts: SessionOptions) -> Result<()> {
    let dir = opts.run_dir.clone();
    let mut session = if Layout(&dir).config().is_file() {
        Session::resume(&dir)?
    } else {
        Session::create(opts)?
    };
    if session.finished() {
        println!("{name}: finished earlier in {}", dir.display());
        return Ok(());
    }
    println!("{name}: {}", dir.display());
    let mut view = RunView::default();
    let result = session.run_to_end(&mut |e| view.event(e));
    view.clear();
    result.with_context(|| format!("the {name} run in {}", dir.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    ls3::files::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
