//! What a training run learns before its first episode: the VAE's reconstructions of a few demo
//! frames beside the originals (refreshed after every chunk), the linear probe of its latents
//! once the VAE is done, and a pointer to the heatmaps while the latent modules train. The
//! episode view shows it until there is an episode to show.

use super::episode::{GOAL, HAZARD, VIOLATION};
use crate::app::data::TrainingData;
use crate::app::frame_textures::{FrameTextures, frame_square};
use crate::model::agent::ModuleKind;
use egui::{Color32, RichText, Ui};

/// The textures of the reconstructions shown, keyed by the VAE iteration they come from.
pub struct LearningView {
    originals: FrameTextures<u64>,
    decoded: FrameTextures<u64>,
}

impl Default for LearningView {
    fn default() -> Self {
        Self {
            originals: FrameTextures::new("learning/originals"),
            decoded: FrameTextures::new("learning/decoded"),
        }
    }
}

/// Colour of a probe R²: green when the latent encodes the quantity linearly, orange when partly,
/// red when not.
pub fn r2_color(r2: f64) -> Color32 {
    if r2 >= 0.9 {
        GOAL
    } else if r2 >= 0.5 {
        HAZARD
    } else {
        VIOLATION
    }
}

impl LearningView {
    /// Draws what `training` has learnt so far; `false` (and nothing drawn) before the VAE's
    /// first chunk.
    pub fn ui(&mut self, ui: &mut Ui, training: &TrainingData) -> bool {
        let Some(rec) = training.reconstructions.as_ref() else {
            return false;
        };
        ui.heading("What the agent is learning");
        ui.label(
            RichText::new(
                "No episode yet: the first one starts after the VAE and the latent modules' \
                 initial training.",
            )
            .weak(),
        );
        ui.add_space(10.0);
        ui.label(
            RichText::new(format!(
                "VAE reconstructions of demo frames · iteration {}",
                rec.iteration
            ))
            .strong(),
        );
        let ctx = ui.ctx().clone();
        let n = rec.originals.len().max(1);
        let side = ((ui.available_width() - 130.0) / n as f32 - 6.0).clamp(40.0, 128.0);
        let originals = self.originals.get(&ctx, rec.iteration, &rec.originals);
        let decoded = self.decoded.get(&ctx, rec.iteration, &rec.decoded);
        egui::Grid::new("learning_reconstructions")
            .spacing([6.0, 4.0])
            .show(ui, |ui| {
                for (name, row, hover) in [
                    ("demo frame", originals, "A frame of the demonstrations"),
                    (
                        "reconstruction",
                        decoded,
                        "The frame encoded to its latent mean and decoded by the VAE as it is now",
                    ),
                ] {
                    ui.label(name);
                    for k in 0..rec.originals.len() {
                        frame_square(ui, row.get(k), side).on_hover_text(hover);
                    }
                    ui.end_row();
                }
            });
        ui.add_space(10.0);
        match training.probe.as_ref() {
            Some(probe) => {
                ui.label(RichText::new("Linear probe of the latent (held-out R²)").strong())
                    .on_hover_text(
                        "A ridge regression from the latent mean to the true state, scored on \
                         demo frames it was not fitted on: near 1, the planner's models can read \
                         the quantity off the latent.",
                    );
                egui::Grid::new("learning_probe")
                    .num_columns(2)
                    .spacing([16.0, 3.0])
                    .show(ui, |ui| {
                        for (name, r2) in &probe.quantities {
                            ui.label(name);
                            ui.label(
                                RichText::new(format!("{r2:.2}"))
                                    .monospace()
                                    .color(r2_color(*r2)),
                            );
                            ui.end_row();
                        }
                    });
            }
            None => {
                ui.label(
                    RichText::new("The probe of the latent runs when the VAE is done.").weak(),
                );
            }
        }
        let modules_training = training
            .losses
            .iter()
            .any(|(m, points)| *m != ModuleKind::Vae && !points.is_empty());
        if modules_training {
            ui.add_space(10.0);
            ui.label(
                "The latent modules are in their initial training: the Heatmaps tab (4) refreshes \
                 as they learn.",
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::state::AppState;
    use crate::env::Frame;
    use crate::model::probe::ProbeReport;
    use crate::train::phases::Reconstructions;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;
    use std::sync::Arc;

    fn harness(training: TrainingData) -> Harness<'static, (LearningView, bool)> {
        Harness::builder()
            .with_size([1000.0, 700.0])
            .build_ui_state(
                move |ui, (view, drawn): &mut (LearningView, bool)| {
                    *drawn = view.ui(ui, &training);
                },
                (LearningView::default(), false),
            )
    }

    #[test]
    fn nothing_is_drawn_before_the_first_reconstructions() {
        let mut h = harness(AppState::default().analysis.training);
        h.run();
        assert!(!h.state().1);
    }

    #[test]
    fn reconstructions_then_the_probe_are_shown() {
        let mut training = TrainingData {
            reconstructions: Some(Arc::new(Reconstructions {
                iteration: 75,
                originals: vec![Frame::black(); 8],
                decoded: vec![Frame::black(); 8],
            })),
            ..Default::default()
        };
        let mut h = harness(training.clone());
        h.run();
        assert!(h.state().1);
        h.get_by_label_contains("iteration 75");
        h.get_by_label_contains("runs when the VAE is done");

        training.probe = Some(Arc::new(ProbeReport {
            env: crate::env::EnvKind::Navigation,
            train_frames: 80,
            held_out_frames: 20,
            quantities: vec![("x".into(), 0.93), ("y".into(), 0.41)],
            noise_share: None,
            probe: None,
        }));
        training.push_loss(ModuleKind::Dyn, 50, 0.1);
        let mut h = harness(training);
        h.run();
        h.get_by_label("0.93");
        h.get_by_label("0.41");
        h.get_by_label_contains("Heatmaps tab (4)");
    }

    #[test]
    fn probe_colours_rank_the_fit() {
        assert_eq!(r2_color(0.95), GOAL);
        assert_eq!(r2_color(0.7), HAZARD);
        assert_eq!(r2_color(0.2), VIOLATION);
    }
}
