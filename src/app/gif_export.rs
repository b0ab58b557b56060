//! "Export GIF" of the episode shown: a short-lived thread asks for the path (native dialog),
//! encodes the frames and writes the file, then reports back; the UI thread only clicks and
//! shows the outcome.

use super::state::EpisodeRecord;
use crate::env::Frame;
use crossbeam_channel::Receiver;
use egui::{RichText, Ui};
use std::path::{Path, PathBuf};

/// Upscaling of the 64×64 frames in the GIF.
const SCALE: u32 = 4;
/// Time each frame is shown.
const FRAME_MS: u32 = 80;

/// What an export ended with: the file written, or nothing when the dialog was cancelled.
type Outcome = Result<Option<PathBuf>, String>;

/// The export button's state: the running export, if any, and the last outcome.
#[derive(Default)]
pub struct GifExport {
    running: Option<Receiver<Outcome>>,
    last: Option<Result<PathBuf, String>>,
}

/// The file name the save dialog proposes.
pub fn default_file_name(episode: &EpisodeRecord) -> String {
    format!("{}_episode_{}.gif", episode.kind.name(), episode.episode)
}

/// Encodes `frames` as a looping GIF at `path`.
pub fn write_gif(path: &Path, frames: &[Frame]) -> Result<(), String> {
    let chw: Vec<&[u8]> = frames.iter().map(|f| f.0.as_slice()).collect();
    crate::run::save_gif(path, &chw, SCALE, FRAME_MS).map_err(|e| format!("{e:#}"))
}

impl GifExport {
    /// The button, or a spinner while exporting, and the last outcome.
    pub fn ui(&mut self, ui: &mut Ui, episode: &EpisodeRecord) {
        if let Some(outcome) = self.running.as_ref().and_then(|rx| rx.try_recv().ok()) {
            self.running = None;
            self.last = outcome.transpose();
        }
        if self.running.is_some() {
            ui.spinner();
            ui.label(RichText::new("exporting…").weak());
            return;
        }
        match &self.last {
            Some(Ok(path)) => {
                ui.label(RichText::new("GIF saved").weak())
                    .on_hover_text(path.display().to_string());
            }
            Some(Err(e)) => {
                ui.label(RichText::new("GIF failed").color(ui.visuals().error_fg_color))
                    .on_hover_text(e);
            }
            None => {}
        }
        let hint = format!(
            "Save the {} frames of this episode as an animated GIF",
            episode.frames.len()
        );
        if ui.button("Export GIF").on_hover_text(hint).clicked() {
            self.start(ui.ctx().clone(), episode);
        }
    }

    fn start(&mut self, ctx: egui::Context, episode: &EpisodeRecord) {
        let frames = episode.frames.clone();
        let name = default_file_name(episode);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let spawned = std::thread::Builder::new()
            .name("gif-export".into())
            .spawn(move || {
                let outcome = rfd::FileDialog::new()
                    .add_filter("GIF", &["gif"])
                    .set_file_name(name)
                    .save_file()
                    .map(|path| write_gif(&path, &frames).map(|()| path))
                    .transpose();
                let _ = tx.send(outcome);
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => self.running = Some(rx),
            Err(e) => self.last = Some(Err(format!("could not start the export: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;

    #[test]
    fn the_proposed_name_says_environment_and_episode() {
        let state = testing::populated();
        assert_eq!(
            default_file_name(&state.finished[0]),
            "navigation_episode_0.gif"
        );
    }

    #[test]
    fn an_episode_is_written_as_an_animated_gif() {
        let state = testing::populated();
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("episode.gif");
        write_gif(&path, &state.finished[0].frames).expect("GIF written");
        let bytes = std::fs::read(&path).expect("GIF read back");
        assert!(bytes.starts_with(b"GIF89a"));
    }
}
