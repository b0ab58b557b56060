//! `ls3 compact` and `ls3 import-torch`: a checkpoint folder written from another one (a
//! half-precision copy, or the original implementation's PyTorch files).

use anyhow::{Result, bail};
use ls3::env::EnvKind;
use ls3::model::checkpoint;
use std::path::{Path, PathBuf};

/// Arguments of `ls3 compact`.
#[derive(clap::Args, Clone, Debug)]
pub struct CompactArgs {
    /// The checkpoint folder to copy.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Where to write the copy.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace an existing folder.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `ls3 import-torch`.
#[derive(clap::Args, Clone, Debug)]
pub struct ImportTorchArgs {
    /// Folder with the original's .pth files.
    #[arg(long)]
    pub from: PathBuf,
    /// Checkpoint folder to write (must not exist unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Environment the agent was trained on (decides the VAE's input channels).
    #[arg(long, value_enum)]
    pub env: EnvKind,
    /// Replace an existing checkpoint folder.
    #[arg(long)]
    pub force: bool,
}

/// Refuses to write over `out` unless `force`.
fn check_out(out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        bail!(
            "{} already exists; pass --force to replace it",
            out.display()
        );
    }
    Ok(())
}

/// Writes a half-precision copy of the checkpoint folder `args.from` to `args.out`.
pub fn compact(args: &CompactArgs) -> Result<()> {
    let (from, out) = (&args.from, &args.out);
    check_out(out, args.force)?;
    let device = ls3::model::default_device();
    let (agent, meta) = checkpoint::load(from, None, &device)?;
    checkpoint::save_with(&agent, out, meta.config, true)?;
    println!(
        "wrote a half-precision copy of {} to {}",
        from.display(),
        out.display()
    );
    Ok(())
}

/// Converts the original's `.pth` files in `args.from` into a checkpoint folder at `args.out`.
pub fn import_torch(args: &ImportTorchArgs) -> Result<()> {
    let (from, out, env) = (&args.from, &args.out, args.env);
    check_out(out, args.force)?;
    let device = ls3::model::default_device();
    let agent = checkpoint::import_torch(from, env, &device)?;
    let origin = serde_json::json!({ "imported_from": from.display().to_string() });
    checkpoint::save(&agent, out, origin)?;
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
