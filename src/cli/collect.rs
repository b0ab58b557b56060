//! `ls3 collect`: the environment's demo sets written to disk, one progress bar per set, then
//! a table of each set's rates.

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ls3::data::collect::{CollectOptions, CollectProgress, collect};
use ls3::env::EnvKind;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Arguments of `ls3 collect`.
#[derive(clap::Args, Clone, Debug)]
pub struct CollectArgs {
    /// Environment: navigation (alias spb), reacher or push.
    #[arg(long, value_enum)]
    pub env: EnvKind,
    /// Root folder for the datasets.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of every random stream (same seed, same data).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Cap on the episodes of every set (default: the published counts).
    #[arg(long)]
    pub episodes: Option<usize>,
    /// Replace sets that already exist (otherwise they are never overwritten).
    #[arg(long)]
    pub force: bool,
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Collects every demo set of `args.env` and prints their summaries.
pub fn run(args: &CollectArgs) -> Result<()> {
    let opts = CollectOptions {
        kind: args.env,
        out: args.out.clone(),
        seed: args.seed,
        max_episodes: args.episodes,
        force: args.force,
        threads: args.threads,
    };
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
    let summaries = collect(&opts, &on_progress)?;
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
