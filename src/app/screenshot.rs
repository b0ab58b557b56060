//! `--screenshot` mode: play a given number of steps, wait for the data of the view shown, let
//! the layout settle, capture the real rendered window (`ViewportCommand::Screenshot`), write it
//! as PNG on a helper thread, close.

use super::state::AppState;
use super::views::Tab;
use super::worker::WorkerState;
use anyhow::{Context as _, Result};
use crossbeam_channel::{Receiver, Sender};
use egui::{ColorImage, ScreenshotCallback, ViewportCommand};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Frames drawn after the last step before capturing, so sizes measured in one frame are used.
const SETTLE_FRAMES: u32 = 6;
/// Give up when the capture has not happened by then (the tiny 25-round curves run takes
/// ≈ 15 min on two shared cores).
const TIMEOUT: Duration = Duration::from_secs(1800);
/// After the steps, how long to wait for the shown view's data before capturing it without.
const DATA_WAIT: Duration = Duration::from_secs(120);

/// Where the outcome of the capture is reported to [`super::run`].
pub type Outcome = Arc<Mutex<Option<Result<(), String>>>>;

enum Phase {
    Playing,
    Settling(u32),
    Capturing,
    Done,
}

/// One requested capture.
pub struct ScreenshotJob {
    path: PathBuf,
    after_steps: u64,
    /// Capture after this many training rounds instead (the worker keeps training meanwhile).
    after_rounds: Option<u64>,
    /// Capture once the VAE has trained this many iterations instead.
    after_vae: Option<u64>,
    view: Tab,
    /// When the steps had been played (the wait for the view's data starts there).
    reached: Option<Instant>,
    phase: Phase,
    started: Instant,
    saved_tx: Sender<Result<(), String>>,
    saved_rx: Receiver<Result<(), String>>,
    outcome: Outcome,
}

impl ScreenshotJob {
    /// Capture to `path` once `after_steps` steps have been shown.
    pub fn new(path: PathBuf, after_steps: u64, outcome: Outcome) -> Self {
        let (saved_tx, saved_rx) = crossbeam_channel::bounded(1);
        Self {
            path,
            after_steps,
            after_rounds: None,
            after_vae: None,
            view: Tab::Episode,
            reached: None,
            phase: Phase::Playing,
            started: Instant::now(),
            saved_tx,
            saved_rx,
            outcome,
        }
    }

    /// Captures `view`, once its data has arrived (or `DATA_WAIT` after the steps).
    pub fn for_view(mut self, view: Tab) -> Self {
        self.view = view;
        self
    }

    /// Captures once `rounds` training rounds are done (when given), not after a step count.
    pub fn after_rounds(mut self, rounds: Option<u64>) -> Self {
        self.after_rounds = rounds;
        self
    }

    /// Captures once the VAE of a training run has trained `iterations` (when given).
    pub fn after_vae(mut self, iterations: Option<u64>) -> Self {
        self.after_vae = iterations;
        self
    }

    /// Steps to play before the capture; `None` when the capture waits for training.
    pub fn after_steps(&self) -> Option<u64> {
        (self.after_rounds.is_none() && self.after_vae.is_none()).then_some(self.after_steps)
    }

    /// Advances the job by one frame.
    pub fn poll(&mut self, ctx: &egui::Context, state: &AppState) {
        if !matches!(self.phase, Phase::Done) && self.started.elapsed() > TIMEOUT {
            self.finish(ctx, Err(format!("no screenshot after {TIMEOUT:?}")));
            return;
        }
        match self.phase {
            Phase::Playing => {
                let training = &state.analysis.training;
                let vae_done = |n| {
                    let r = training.reconstructions.as_ref();
                    r.is_some_and(|r| r.iteration >= n)
                };
                let reached = match (self.after_rounds, self.after_vae) {
                    (Some(n), _) => training.rounds.len() as u64 >= n,
                    (None, Some(n)) => vae_done(n),
                    (None, None) => {
                        state.total_steps >= self.after_steps
                            && state.worker == WorkerState::Paused
                            && state.live.is_some()
                    }
                };
                if reached || state.error_count > 0 {
                    let since = *self.reached.get_or_insert_with(Instant::now);
                    if has_data(self.view, state) || since.elapsed() > DATA_WAIT {
                        self.phase = Phase::Settling(SETTLE_FRAMES);
                    }
                }
                ctx.request_repaint();
            }
            Phase::Settling(0) => {
                let (tx, path, repaint) = (self.saved_tx.clone(), self.path.clone(), ctx.clone());
                ctx.send_viewport_cmd(ViewportCommand::Screenshot(ScreenshotCallback::new(
                    move |image| {
                        // Encoding and writing happen off the UI thread.
                        std::thread::spawn(move || {
                            let _ = tx.send(save_png(&path, &image).map_err(|e| format!("{e:#}")));
                            repaint.request_repaint();
                        });
                    },
                )));
                self.phase = Phase::Capturing;
            }
            Phase::Settling(n) => {
                self.phase = Phase::Settling(n - 1);
                ctx.request_repaint();
            }
            Phase::Capturing => {
                if let Ok(saved) = self.saved_rx.try_recv() {
                    self.finish(ctx, saved);
                } else {
                    ctx.request_repaint_after(Duration::from_millis(50));
                }
            }
            Phase::Done => {}
        }
    }

    fn finish(&mut self, ctx: &egui::Context, outcome: Result<(), String>) {
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        self.phase = Phase::Done;
        ctx.send_viewport_cmd(ViewportCommand::Close);
    }
}

/// Whether `view` has something to show: a plan at the live step, latents, heatmaps, curves.
fn has_data(view: Tab, state: &AppState) -> bool {
    let analysis = &state.analysis;
    match view {
        Tab::Episode => true,
        Tab::Plan => state
            .live
            .as_ref()
            .is_some_and(|l| l.plans.last().is_some_and(Option::is_some)),
        Tab::Latents => analysis.latents.is_some(),
        Tab::Heatmaps => analysis.heatmaps.is_some(),
        Tab::Curves => {
            let t = &analysis.training;
            !t.losses.is_empty()
                || !t.rounds.is_empty()
                || !t.overlays.is_empty()
                || !t.sweep_overlays.is_empty()
        }
    }
}

fn save_png(path: &Path, image: &ColorImage) -> Result<()> {
    let [w, h] = image.size;
    let bytes: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|c| {
            let [r, g, b, _] = c.to_srgba_unmultiplied();
            [r, g, b, 255]
        })
        .collect();
    let rgba = image::RgbaImage::from_raw(w as u32, h as u32, bytes)
        .context("screenshot buffer has the wrong size")?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    rgba.save_with_format(path, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;

    #[test]
    fn waiting_for_training_plays_no_fixed_step_count() {
        let job = |_| ScreenshotJob::new("x.png".into(), 160, Outcome::default());
        assert_eq!(job(()).after_steps(), Some(160));
        assert_eq!(job(()).after_rounds(Some(2)).after_steps(), None);
        assert_eq!(job(()).after_vae(Some(500)).after_steps(), None);
    }

    #[test]
    fn each_view_waits_for_its_own_data() {
        let empty = AppState::default();
        let full = testing::populated();
        assert!(has_data(Tab::Episode, &empty));
        for view in [Tab::Plan, Tab::Latents, Tab::Heatmaps, Tab::Curves] {
            assert!(!has_data(view, &empty), "{view:?}");
            assert!(has_data(view, &full), "{view:?}");
        }
    }
}
