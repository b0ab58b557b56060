//! The latent view: the worker's 2-D PCA of replay latents, coloured by label, with the current
//! state and the imagined plan of the selected step projected on top; hovering a point shows its
//! decoded image where the snapshot has one.

use super::episode::{GOAL, HAZARD, PATH, Selection, VIOLATION};
use super::plan::plan_at;
use crate::app::data::{LatentLabel, LatentSnapshot};
use crate::app::frame_textures::{FrameTextures, frame_square};
use crate::app::state::AppState;
use egui::{Color32, RichText, Ui};
use egui_plot::{Legend, Line, MarkerShape, Plot, Points};
use std::sync::Arc;

/// How close (in screen points) the pointer must be to a point to show its image.
const HOVER_RADIUS: f64 = 8.0;

/// The colour of a label's points.
pub fn label_color(label: LatentLabel) -> Color32 {
    match label {
        LatentLabel::Constraint => VIOLATION,
        LatentLabel::Goal => GOAL,
        LatentLabel::SafeSet => Color32::from_rgb(90, 160, 255),
        LatentLabel::Demo => HAZARD.gamma_multiply(0.8),
        LatentLabel::Agent => Color32::from_gray(150),
    }
}

/// The point nearest to `target` within `max_px` screen points, measuring with `px_per_unit`
/// (screen points per plot unit along x and y).
pub fn nearest(
    points: &[[f32; 2]],
    target: [f64; 2],
    px_per_unit: [f64; 2],
    max_px: f64,
) -> Option<usize> {
    let distance = |p: &[f32; 2]| {
        let dx = (p[0] as f64 - target[0]) * px_per_unit[0];
        let dy = (p[1] as f64 - target[1]) * px_per_unit[1];
        dx.hypot(dy)
    };
    points
        .iter()
        .map(distance)
        .enumerate()
        .filter(|(_, d)| *d <= max_px)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// Points of one label, as plot coordinates.
fn points_of(s: &LatentSnapshot, label: LatentLabel) -> Vec<[f64; 2]> {
    s.points
        .iter()
        .zip(&s.labels)
        .filter(|(_, l)| **l == label)
        .map(|(p, _)| [p[0] as f64, p[1] as f64])
        .collect()
}

/// The view and the texture of the hovered point's image.
pub struct LatentView {
    thumbnail: FrameTextures<(usize, usize)>,
}

impl Default for LatentView {
    fn default() -> Self {
        Self {
            thumbnail: FrameTextures::new("latents/thumbnail"),
        }
    }
}

impl LatentView {
    /// Draws the snapshot of `state` with the plan `selection` points at on top.
    pub fn ui(&mut self, ui: &mut Ui, state: &AppState, selection: &mut Selection) {
        let Some(snapshot) = &state.analysis.latents else {
            ui.centered_and_justified(|ui| {
                ui.label(
                    "No latent projection yet: it appears once an agent has data to encode \
                     (a PCA of its replay latents).",
                );
            });
            return;
        };
        selection.forget_missing(state);
        let plan = selection
            .resolve(state)
            .and_then(|(episode, frame)| plan_at(episode, frame))
            .and_then(|at| at.shot);
        let [e0, e1] = snapshot.explained.map(|e| 100.0 * e);
        ui.horizontal(|ui| {
            ui.heading("Latent space");
            ui.label(
                RichText::new(format!(
                    "{} replay latents, PCA explains {e0:.0} % + {e1:.0} % of the variance",
                    snapshot.points.len()
                ))
                .weak(),
            );
        });
        let response = Plot::new("latents")
            .legend(Legend::default())
            .x_axis_label(format!("PC 1 ({e0:.0} %)"))
            .y_axis_label(format!("PC 2 ({e1:.0} %)"))
            .data_aspect(1.0)
            .show(ui, |plot| {
                for label in LatentLabel::ALL.into_iter().rev() {
                    let points = points_of(snapshot, label);
                    let name = format!("{} ({})", label.name(), points.len());
                    plot.points(
                        Points::new(name, points)
                            .color(label_color(label))
                            .radius(2.5)
                            .filled(true),
                    );
                }
                if let Some(shot) = plan {
                    let start = snapshot.project(&shot.record.start);
                    let path: Vec<[f64; 2]> = std::iter::once(start)
                        .chain(shot.record.latents.iter().map(|z| snapshot.project(z)))
                        .map(|p| [p[0] as f64, p[1] as f64])
                        .collect();
                    plot.line(
                        Line::new("imagined plan", path.clone())
                            .color(PATH)
                            .width(2.0),
                    );
                    plot.points(Points::new("imagined plan", path).color(PATH).radius(3.5));
                    plot.points(
                        Points::new("current state", [start[0] as f64, start[1] as f64])
                            .color(Color32::WHITE)
                            .shape(MarkerShape::Diamond)
                            .radius(7.0)
                            .filled(true),
                    );
                }
                let pointer = plot.pointer_coordinate()?;
                let scale = plot.transform().dpos_dvalue().map(f64::abs);
                nearest(
                    &snapshot.points,
                    [pointer.x, pointer.y],
                    scale,
                    HOVER_RADIUS,
                )
            });
        let hovered = response
            .inner
            .filter(|&i| snapshot.thumbnails.get(i).is_some_and(Option::is_some));
        if let Some(i) = hovered {
            let frame = snapshot.thumbnails[i].as_ref();
            let key = (Arc::as_ptr(snapshot) as usize, i);
            let texture = self.thumbnail.get(ui.ctx(), key, frame).first().cloned();
            let label = snapshot.labels.get(i).copied();
            response.response.on_hover_ui_at_pointer(|ui| {
                frame_square(ui, texture.as_ref(), 128.0);
                if let Some(label) = label {
                    ui.label(label.name());
                }
            });
        }
        if plan.is_none() {
            ui.label(
                RichText::new("No plan at the selected step: only the replay latents are shown.")
                    .weak()
                    .small(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;

    #[test]
    fn nearest_point_is_measured_on_screen_and_bounded() {
        let points = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        // 10 points per unit along x, 100 along y: (0.6, 0.05) is 4 px from (1, 0) and 6 from 0.
        assert_eq!(nearest(&points, [0.6, 0.05], [10.0, 100.0], 8.0), Some(1));
        assert_eq!(nearest(&points, [0.0, 0.9], [10.0, 100.0], 8.0), None);
        assert_eq!(nearest(&points, [0.0, 0.95], [10.0, 100.0], 8.0), Some(2));
        assert_eq!(nearest(&[], [0.0, 0.0], [1.0, 1.0], 8.0), None);
    }

    #[test]
    fn every_label_has_its_own_colour_and_points() {
        let colors: std::collections::HashSet<Color32> =
            LatentLabel::ALL.iter().map(|&l| label_color(l)).collect();
        assert_eq!(colors.len(), LatentLabel::ALL.len());
        let s = testing::latents();
        let total: usize = LatentLabel::ALL
            .iter()
            .map(|&l| points_of(&s, l).len())
            .sum();
        assert_eq!(total, s.points.len());
        assert_eq!(
            points_of(&s, LatentLabel::Constraint),
            [[0.0, 0.0], [5.0, 2.0]]
        );
    }
}
