//! The heatmap view: the four maps of the latest [`HeatmapSnapshot`] (safe set, value,
//! constraint, goal) over the environment's 2-D state grid, each with a colour bar, the value
//! under the cursor, its axes, and the selected episode's trajectory and current state on top.
//! Maps are coloured on the GPU (`heatmap_gpu`) when the window has a wgpu renderer, otherwise on
//! the CPU with the same colour map.

use super::episode::{PATH, Selection};
use super::heatmap_gpu::{self, HeatmapPaint};
use crate::analysis::colormap;
use crate::analysis::heatmap::{Axes, Head, Heatmaps};
use crate::app::data::HeatmapSnapshot;
use crate::app::state::AppState;
use crate::env::EnvKind;
use eframe::egui_wgpu::{self, RenderState};
use egui::{
    Align2, Color32, ColorImage, FontId, Pos2, Rect, RichText, Sense, Stroke, StrokeKind,
    TextureHandle, TextureOptions, Ui, pos2, vec2,
};
use std::sync::Arc;

/// Width of a colour bar and of its numbers.
const BAR_WIDTH: f32 = 14.0;
const BAR_LABELS: f32 = 56.0;
/// Room for a map's title, axes and readout lines.
const PANEL_CHROME: f32 = 78.0;

/// The values at the ends of a map's colour range: [0, 1] for probabilities, the finite
/// minimum–maximum for the value ([0, 1] when it has none).
pub fn value_range(head: Head, values: &[f32]) -> [f32; 2] {
    if head != Head::Value {
        return [0.0, 1.0];
    }
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo <= hi { [lo, hi] } else { [0.0, 1.0] }
}

/// Where a ground-truth state lies on `kind`'s grid: navigation x, y; reacher the two joint
/// angles (wrapped to [−π, π)); push the pusher's x, y.
pub fn grid_point(kind: EnvKind, state: &[f64]) -> Option<[f64; 2]> {
    let [a, b] = [*state.first()?, *state.get(1)?];
    Some(match kind {
        EnvKind::Navigation | EnvKind::Push => [a, b],
        EnvKind::Reacher => {
            let wrap = |x: f64| {
                use std::f64::consts::{PI, TAU};
                (x + PI).rem_euclid(TAU) - PI
            };
            [wrap(a), wrap(b)]
        }
    })
}

/// A grid point as fractions of the map, `[0, 0]` top left (x = `axes.x[0]`, y = `axes.y[0]`:
/// row 0 is drawn at the top, as in `heatmap::save_png`).
pub fn unit_position(axes: &Axes, p: [f64; 2]) -> [f64; 2] {
    let f = |r: [f64; 2], v: f64| (v - r[0]) / (r[1] - r[0]);
    [f(axes.x, p[0]), f(axes.y, p[1])]
}

/// The cell `(i, j)` under the fractions `u` of the map, if inside.
pub fn cell_at(maps: &Heatmaps, u: [f64; 2]) -> Option<(usize, usize)> {
    let inside = |x: f64| (0.0..1.0).contains(&x);
    (inside(u[0]) && inside(u[1])).then(|| {
        (
            (u[0] * maps.nx as f64) as usize,
            (u[1] * maps.ny as f64) as usize,
        )
    })
}

/// The colours of `head`'s map, row 0 first, with the colour map over `range`.
pub fn color_image(maps: &Heatmaps, head: Head, range: [f32; 2]) -> ColorImage {
    let span = (range[1] - range[0]).max(1e-6);
    let rgb: Vec<u8> = maps
        .get(head)
        .iter()
        .flat_map(|&v| colormap::color((v - range[0]) / span))
        .collect();
    ColorImage::from_rgb([maps.nx, maps.ny], &rgb)
}

fn format_value(v: f32) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The view: whether the GPU pipeline is installed, and the CPU textures otherwise.
#[derive(Default)]
pub struct HeatmapView {
    gpu_installed: bool,
    cpu: [Option<(u64, TextureHandle)>; 4],
}

impl HeatmapView {
    /// Draws the latest heatmaps with the trajectory of the episode `selection` points at.
    pub fn ui(
        &mut self,
        ui: &mut Ui,
        state: &AppState,
        selection: &mut Selection,
        render: Option<&RenderState>,
    ) {
        let Some(snapshot) = &state.analysis.heatmaps else {
            ui.centered_and_justified(|ui| {
                ui.label(
                    "No heatmaps yet: they are computed in the background once an agent is \
                     trained or loaded.",
                );
            });
            return;
        };
        if let Some(render) = render.filter(|_| !self.gpu_installed) {
            heatmap_gpu::install(render);
            self.gpu_installed = true;
        }
        let maps = &snapshot.maps;
        selection.forget_missing(state);
        let path: Vec<[f64; 2]> = selection
            .resolve(state)
            .filter(|(episode, _)| episode.kind == maps.kind)
            .map(|(episode, frame)| {
                episode.states[..=frame]
                    .iter()
                    .filter_map(|s| grid_point(maps.kind, s))
                    .collect()
            })
            .unwrap_or_default();
        ui.horizontal(|ui| {
            ui.heading("Heatmaps");
            let how = if render.is_some() { "GPU" } else { "CPU" };
            ui.label(
                RichText::new(format!(
                    "{} · {} × {} grid · coloured on the {how}",
                    maps.kind, maps.nx, maps.ny
                ))
                .weak(),
            );
        });
        if maps.kind == EnvKind::Push {
            ui.label(
                RichText::new("The blocks stay where they were when the maps were computed.")
                    .weak()
                    .small(),
            );
        }
        let avail = ui.available_size();
        let aspect = ((maps.axes.x[1] - maps.axes.x[0]) / (maps.axes.y[1] - maps.axes.y[0])) as f32;
        let width = (avail.x / 2.0 - BAR_WIDTH - BAR_LABELS - 24.0)
            .min((avail.y / 2.0 - PANEL_CHROME) * aspect)
            .max(64.0);
        let size = vec2(width, width / aspect);
        egui::Grid::new("heatmaps")
            .spacing([24.0, 8.0])
            .show(ui, |ui| {
                for (k, head) in Head::ALL.into_iter().enumerate() {
                    ui.vertical(|ui| {
                        self.panel(ui, snapshot, head, size, &path, render.is_some());
                    });
                    if k % 2 == 1 {
                        ui.end_row();
                    }
                }
            });
    }

    fn panel(
        &mut self,
        ui: &mut Ui,
        snapshot: &Arc<HeatmapSnapshot>,
        head: Head,
        size: egui::Vec2,
        path: &[[f64; 2]],
        gpu: bool,
    ) {
        let maps = &snapshot.maps;
        let range = value_range(head, maps.get(head));
        let what = if head == Head::Value {
            "ensemble mean"
        } else {
            "probability"
        };
        ui.label(RichText::new(format!("{} · {what}", head.name())).strong());
        let (rect, response) = ui
            .horizontal(|ui| {
                let (rect, response) = ui.allocate_exact_size(size, Sense::hover());
                self.paint_map(ui, snapshot, head, rect, gpu);
                ui.painter().rect_stroke(
                    rect,
                    0.0,
                    Stroke::new(1.0, Color32::from_gray(110)),
                    StrokeKind::Outside,
                );
                draw_path(&ui.painter_at(rect), rect, &maps.axes, path);
                ui.add_space(4.0);
                colour_bar(ui, size.y, range);
                (rect, response)
            })
            .inner;
        let a = &maps.axes;
        ui.label(
            RichText::new(format!(
                "{}: {} … {} (left to right) · {}: {} … {} (top to bottom)",
                a.x_label,
                format_value(a.x[0] as f32),
                format_value(a.x[1] as f32),
                a.y_label,
                format_value(a.y[0] as f32),
                format_value(a.y[1] as f32),
            ))
            .small()
            .weak(),
        );
        let under = response.hover_pos().and_then(|p| {
            let u = [
                ((p.x - rect.left()) / rect.width()) as f64,
                ((p.y - rect.top()) / rect.height()) as f64,
            ];
            cell_at(maps, u)
        });
        let readout = match under {
            Some((i, j)) => {
                let [x, y] = maps.cell_center(i, j);
                format!(
                    "{} = {}, {} = {}: {}",
                    a.x_label,
                    format_value(x as f32),
                    a.y_label,
                    format_value(y as f32),
                    format_value(maps.at(head, i, j))
                )
            }
            None => "hover the map for values".into(),
        };
        ui.label(RichText::new(readout).monospace().small());
    }

    /// Paints `head`'s map over `rect`: through the shader on the GPU, or as a texture coloured
    /// on the CPU.
    fn paint_map(
        &mut self,
        ui: &Ui,
        snapshot: &Arc<HeatmapSnapshot>,
        head: Head,
        rect: Rect,
        gpu: bool,
    ) {
        let range = value_range(head, snapshot.maps.get(head));
        if gpu {
            let paint = HeatmapPaint {
                snapshot: snapshot.clone(),
                head,
                range,
            };
            ui.painter()
                .add(egui_wgpu::Callback::new_paint_callback(rect, paint));
        } else {
            let texture = self.cpu_texture(ui.ctx(), snapshot, head, range);
            let uv = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
            ui.painter().image(texture.id(), rect, uv, Color32::WHITE);
        }
    }

    fn cpu_texture(
        &mut self,
        ctx: &egui::Context,
        snapshot: &HeatmapSnapshot,
        head: Head,
        range: [f32; 2],
    ) -> &TextureHandle {
        let slot = &mut self.cpu[head as usize];
        if slot.as_ref().is_none_or(|(v, _)| *v != snapshot.version) {
            let image = color_image(&snapshot.maps, head, range);
            let texture = ctx.load_texture(
                format!("heatmap/{}", head.name()),
                image,
                TextureOptions::NEAREST,
            );
            *slot = Some((snapshot.version, texture));
        }
        &slot.as_ref().expect("texture was just made").1
    }
}

/// The trajectory (broken where it wraps around, as reacher angles do) and the current state.
fn draw_path(painter: &egui::Painter, rect: Rect, axes: &Axes, path: &[[f64; 2]]) {
    let at = |p: [f64; 2]| -> Pos2 {
        let u = unit_position(axes, p);
        rect.min + vec2(u[0] as f32 * rect.width(), u[1] as f32 * rect.height())
    };
    let stroke = Stroke::new(2.0, PATH);
    for w in path.windows(2) {
        let jump = unit_position(axes, w[0])
            .iter()
            .zip(unit_position(axes, w[1]))
            .any(|(a, b)| (a - b).abs() > 0.5);
        if !jump {
            painter.line_segment([at(w[0]), at(w[1])], stroke);
        }
    }
    if let Some(&now) = path.last() {
        painter.circle_stroke(at(now), 5.0, Stroke::new(2.0, Color32::WHITE));
    }
}

/// A vertical colour bar (high end at the top) with its numbers.
fn colour_bar(ui: &mut Ui, height: f32, range: [f32; 2]) {
    let (rect, _) = ui.allocate_exact_size(vec2(BAR_WIDTH + BAR_LABELS, height), Sense::hover());
    let bar = Rect::from_min_size(rect.min, vec2(BAR_WIDTH, height));
    let painter = ui.painter();
    let steps = 48;
    for k in 0..steps {
        let t = 1.0 - (k as f32 + 0.5) / steps as f32;
        let [r, g, b] = colormap::color(t);
        let top = bar.top() + bar.height() * k as f32 / steps as f32;
        let cell = Rect::from_min_max(
            pos2(bar.left(), top),
            pos2(bar.right(), top + bar.height() / steps as f32 + 0.5),
        );
        painter.rect_filled(cell, 0.0, Color32::from_rgb(r, g, b));
    }
    painter.rect_stroke(
        bar,
        0.0,
        Stroke::new(1.0, Color32::from_gray(110)),
        StrokeKind::Outside,
    );
    let color = ui.visuals().text_color();
    let font = FontId::monospace(10.0);
    for (t, anchor) in [
        (1.0, Align2::LEFT_TOP),
        (0.5, Align2::LEFT_CENTER),
        (0.0, Align2::LEFT_BOTTOM),
    ] {
        let v = range[0] + (range[1] - range[0]) * t;
        let y = bar.bottom() - bar.height() * t;
        painter.text(
            pos2(bar.right() + 4.0, y),
            anchor,
            format_value(v),
            font.clone(),
            color,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;
    use std::f64::consts::PI;

    #[test]
    fn probabilities_span_zero_to_one_and_the_value_its_finite_extent() {
        let s = testing::heatmaps();
        assert_eq!(
            value_range(Head::SafeSet, s.maps.get(Head::SafeSet)),
            [0.0, 1.0]
        );
        assert_eq!(value_range(Head::Goal, &[3.0, 4.0]), [0.0, 1.0]);
        assert_eq!(
            value_range(Head::Value, &[-3.0, f32::NAN, 2.0, -1.0]),
            [-3.0, 2.0]
        );
        assert_eq!(value_range(Head::Value, &[f32::NAN]), [0.0, 1.0]);
        assert_eq!(value_range(Head::Value, &[]), [0.0, 1.0]);
    }

    #[test]
    fn states_map_to_grid_points_per_environment() {
        assert_eq!(
            grid_point(EnvKind::Navigation, &[12.0, 40.0]),
            Some([12.0, 40.0])
        );
        let push = [0.1, -0.2, 0.3, 0.4, 0.0];
        assert_eq!(grid_point(EnvKind::Push, &push), Some([0.1, -0.2]));
        let [a, b] = grid_point(EnvKind::Reacher, &[PI + 0.5, -0.25, 3.0, 1.0]).unwrap();
        assert!((a - (0.5 - PI)).abs() < 1e-12 && b == -0.25);
        assert_eq!(grid_point(EnvKind::Navigation, &[1.0]), None);
    }

    #[test]
    fn cells_under_the_cursor_follow_the_axes_with_row_zero_on_top() {
        let s = testing::heatmaps();
        let maps = &s.maps;
        // Navigation: x 0..180 over 6 columns, y 0..150 over 5 rows.
        let u = unit_position(&maps.axes, [45.0, 140.0]);
        assert_eq!(u, [0.25, 140.0 / 150.0]);
        assert_eq!(cell_at(maps, u), Some((1, 4)));
        assert_eq!(cell_at(maps, [0.0, 0.0]), Some((0, 0)));
        assert_eq!(cell_at(maps, [0.999, 0.999]), Some((5, 4)));
        assert_eq!(cell_at(maps, [1.0, 0.5]), None);
        assert_eq!(cell_at(maps, [0.5, -0.01]), None);
    }

    #[test]
    fn the_cpu_colours_are_the_colour_map_with_nan_grey() {
        let s = testing::heatmaps();
        let range = value_range(Head::Value, s.maps.get(Head::Value));
        let image = color_image(&s.maps, Head::Value, range);
        assert_eq!(image.size, [6, 5]);
        assert_eq!(image.pixels[7], Color32::from_rgb(128, 128, 128));
        let [r, g, b] = colormap::color(1.0);
        assert_eq!(
            image.pixels[0],
            Color32::from_rgb(r, g, b),
            "0 is the maximum"
        );
    }

    /// Draws the value map twice, on the GPU (left) and coloured on the CPU (right).
    struct TwoMaps {
        view: HeatmapView,
        snapshot: Arc<HeatmapSnapshot>,
    }

    impl eframe::App for TwoMaps {
        fn ui(&mut self, ui: &mut Ui, frame: &mut eframe::Frame) {
            let render = frame.wgpu_render_state().expect("a wgpu renderer");
            if !self.view.gpu_installed {
                heatmap_gpu::install(render);
                self.view.gpu_installed = true;
            }
            for (x, gpu) in [(0.0, true), (200.0, false)] {
                let rect = Rect::from_min_size(pos2(x, 0.0), vec2(180.0, 150.0));
                self.view
                    .paint_map(ui, &self.snapshot, Head::Value, rect, gpu);
            }
        }
    }

    #[test]
    #[ignore = "needs a GPU adapter (Mesa's lavapipe will do): \
                cargo test --lib views::heatmaps -- --ignored"]
    fn the_gpu_shader_draws_the_same_colours_as_the_cpu() {
        let snapshot = Arc::new(testing::heatmaps());
        let mut harness = egui_kittest::Harness::builder()
            .with_size([400.0, 160.0])
            .wgpu()
            .build_eframe(|_| TwoMaps {
                view: HeatmapView::default(),
                snapshot: snapshot.clone(),
            });
        harness.run();
        let image = harness.render().expect("rendered with wgpu");
        let maps = &snapshot.maps;
        let range = value_range(Head::Value, maps.get(Head::Value));
        let span = range[1] - range[0];
        for j in 0..maps.ny {
            for i in 0..maps.nx {
                // Cell centres: 30 × 30 points per cell.
                let (x, y) = (30 * i as u32 + 15, 30 * j as u32 + 15);
                let gpu = image.get_pixel(x, y).0;
                let cpu = image.get_pixel(x + 200, y).0;
                let want = colormap::color((maps.at(Head::Value, i, j) - range[0]) / span);
                for c in 0..3 {
                    let near = |got: u8| got.abs_diff(want[c]) <= 2;
                    assert!(near(gpu[c]), "GPU cell ({i}, {j}): {gpu:?}, want {want:?}");
                    assert!(near(cpu[c]), "CPU cell ({i}, {j}): {cpu:?}, want {want:?}");
                }
            }
        }
    }
}
