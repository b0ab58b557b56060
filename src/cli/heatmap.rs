//! `ls3 heatmap`: an agent's safe-set, value, constraint and goal maps over its environment's
//! 2-D state grid, as one PNG.

use anyhow::Result;
use ls3::analysis::heatmap;
use std::path::PathBuf;

/// Arguments of `ls3 heatmap`.
#[derive(clap::Args, Clone, Debug)]
pub struct HeatmapArgs {
    /// The agent's checkpoint folder.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_folder: PathBuf,
    /// The PNG to write.
    #[arg(long, default_value = "heatmaps.png")]
    pub out: PathBuf,
    /// Grid cells along the longer axis.
    #[arg(long, default_value_t = 45)]
    pub cells: usize,
}

/// Computes the four maps at the environment's start state and writes them to `args.out`.
pub fn run(args: &HeatmapArgs) -> Result<()> {
    let out = &args.out;
    let device = ls3::model::default_device();
    let (agent, meta) = ls3::model::checkpoint::load(&args.checkpoint_folder, None, &device)?;
    let env = meta.spec.env.make(0);
    let axes = heatmap::axes(meta.spec.env);
    let (w, h) = (axes.x[1] - axes.x[0], axes.y[1] - axes.y[0]);
    let cells = args.cells.max(2);
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
