//! LS3 Studio, the desktop app: a thin egui front end over the library.
//!
//! One background [`worker`] owns the simulation and reports typed events; [`state::AppState`]
//! collects them; the views ([`views`]: episode, plan, latents, heatmaps, curves, the episode
//! list) and the panels (`top_bar`, `controls`) are functions of that state that return
//! `Command`s; [`settings::Settings`] is what persists between launches. The UI
//! thread never simulates, renders observations or touches files.

#[allow(clippy::module_inception)]
pub mod app;
mod controls;
pub mod data;
mod error_bar;
mod frame_textures;
pub mod frame_times;
mod gif_export;
mod screenshot;
pub mod settings;
mod shortcuts;
pub mod state;
#[cfg(test)]
mod testing;
mod top_bar;
pub mod views;
pub mod worker;

use crate::env::EnvKind;
use anyhow::{Result, anyhow};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How the app starts (command-line overrides of the persisted settings).
#[derive(Clone, Debug, Default)]
pub struct AppOptions {
    /// Environment to open with (default: the one used last).
    pub env: Option<EnvKind>,
    /// Seed of every random stream.
    pub seed: u64,
    /// Pace of play in steps per second (default: the one used last).
    pub speed: Option<f32>,
    /// Capture the window to this PNG after playing `after_steps` steps, then close.
    pub screenshot: Option<PathBuf>,
    pub after_steps: u64,
    /// The view to open with (default: the one used last); a screenshot waits for its data.
    pub view: Option<views::Tab>,
    /// A trained agent (checkpoint folder) to act in its environment instead of the shipped one.
    pub agent: Option<PathBuf>,
    /// Let the demonstrators act even where a trained agent is available.
    pub demonstrators_only: bool,
    /// Start "Train from scratch" at launch.
    pub train: bool,
    /// A configuration JSON to load at launch.
    pub config: Option<PathBuf>,
    /// With `train` and `screenshot`: capture after this many rounds instead of `after_steps`.
    pub after_rounds: Option<u64>,
    /// With `train` and `screenshot`: capture once the VAE has trained this many iterations.
    pub after_vae: Option<u64>,
    /// A run, results or sweep folder to open at launch (curves overlaid).
    pub open: Option<PathBuf>,
    /// Print a responsiveness report to stderr when the window closes.
    pub report: bool,
}

/// The agents that act in the app: the shipped ones (`assets/<env>/`), replaced by `agent` for
/// its environment. An unreadable `agent` is still returned: the worker reports why it fails.
pub fn agents(options: &AppOptions) -> std::collections::HashMap<EnvKind, PathBuf> {
    let mut out = std::collections::HashMap::new();
    if options.demonstrators_only {
        return out;
    }
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    for kind in EnvKind::ALL {
        let dir = assets.join(kind.name());
        if dir.join("agent.json").is_file() {
            out.insert(kind, dir);
        }
    }
    if let Some(dir) = &options.agent {
        let kind = crate::model::checkpoint::read_meta(dir)
            .map(|m| m.spec.env)
            .unwrap_or(EnvKind::Navigation);
        out.insert(kind, dir.clone());
    }
    out
}

/// Opens the LS3 Studio window (wgpu renderer) and returns when it is closed.
pub fn run(options: AppOptions) -> Result<()> {
    let outcome: screenshot::Outcome = Arc::new(Mutex::new(None));
    let job = options
        .screenshot
        .clone()
        .map(|path| screenshot::ScreenshotJob::new(path, options.after_steps, outcome.clone()))
        .map(|job| job.for_view(options.view.unwrap_or_default()))
        .map(|job| job.after_rounds(options.after_rounds))
        .map(|job| job.after_vae(options.after_vae));
    let capturing = job.is_some();
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("LS3 Studio")
            .with_app_id("ls3-studio")
            .with_inner_size([1240.0, 800.0])
            .with_min_inner_size([820.0, 560.0]),
        renderer: eframe::Renderer::Wgpu,
        persist_window: !capturing,
        ..Default::default()
    };
    eframe::run_native(
        "LS3 Studio",
        native,
        Box::new(move |cc| Ok(Box::new(app::StudioApp::new(cc, options, job)?))),
    )
    .map_err(|e| anyhow!("LS3 Studio could not run its window: {e}"))?;

    if capturing {
        let result = outcome.lock().unwrap_or_else(|e| e.into_inner()).take();
        match result {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(anyhow!("screenshot failed: {e}")),
            None => return Err(anyhow!("the window closed before the screenshot was taken")),
        }
    }
    Ok(())
}
