//! `ls3 config`: a preset's full configuration printed as JSON, to edit and pass back.

use anyhow::Result;
use ls3::config::{Config, Preset};
use ls3::env::EnvKind;

/// Arguments of `ls3 config`.
#[derive(clap::Args, Clone, Debug)]
pub struct ConfigArgs {
    /// Environment whose per-task numbers to use.
    #[arg(long, value_enum)]
    pub env: EnvKind,
    /// quick or paper.
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    pub preset: Preset,
}

/// Prints the preset's configuration for the environment.
pub fn print(args: &ConfigArgs) -> Result<()> {
    let config = Config::preset(args.preset, args.env);
    println!("{}", serde_json::to_string_pretty(&config)?);
    Ok(())
}
