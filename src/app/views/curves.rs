//! Learning curves of a training run: loss per module (log scale), cost per agent episode with
//! the demonstrators' mean, success and violation rate per round and cumulative violations;
//! other runs' rounds (`TrainingData::overlays`) are drawn as extra, dashed lines.

use super::episode::{GOAL, HAZARD, PATH, VIOLATION};
use crate::analysis::sweep::{RoundSpread, Spread};
use crate::app::data::TrainingData;
use crate::train::metrics::RoundMetrics;
use egui::Color32;
use egui::{RichText, Ui};
use egui_plot::{
    ColorConflictHandling, FilledArea, HLine, HoverPosition, Legend, Line, LineStyle, Plot,
    PlotPoints, PlotUi, Points,
};

/// Smallest height of one plot; below it the panel scrolls.
const MIN_PLOT_HEIGHT: f32 = 160.0;
/// Room for a plot's title and the gap below it.
const TITLE_HEIGHT: f32 = 36.0;

/// Losses that reach zero or below (the dynamics' Gaussian NLL) shifted up so their smallest
/// value is 0.01 and they fit a log axis; returns the shift added, if any.
pub fn shifted_positive(points: &[[f64; 2]]) -> (Option<f64>, Vec<[f64; 2]>) {
    let min = points
        .iter()
        .map(|p| p[1])
        .filter(|y| y.is_finite())
        .fold(f64::INFINITY, f64::min);
    if min > 0.0 || !min.is_finite() {
        return (None, points.to_vec());
    }
    let shift = 0.01 - min;
    (
        Some(shift),
        points.iter().map(|&[x, y]| [x, y + shift]).collect(),
    )
}

/// `(x, log10 y)` of the points with a positive, finite y (the rest cannot go on a log axis).
pub fn log_points(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    points
        .iter()
        .filter(|[x, y]| x.is_finite() && y.is_finite() && *y > 0.0)
        .map(|&[x, y]| [x, y.log10()])
        .collect()
}

/// `(round, f(round))` for the rounds where `f` is a number.
pub fn round_points(rounds: &[RoundMetrics], f: impl Fn(&RoundMetrics) -> f64) -> Vec<[f64; 2]> {
    rounds
        .iter()
        .map(|r| [r.round as f64, f(r)])
        .filter(|[_, y]| y.is_finite())
        .collect()
}

/// Colours of an opened sweep's variants, in the order they come.
const SWEEP_COLORS: [Color32; 6] = [
    Color32::from_rgb(70, 140, 230),
    Color32::from_rgb(240, 150, 50),
    Color32::from_rgb(80, 190, 100),
    Color32::from_rgb(200, 90, 200),
    Color32::from_rgb(230, 210, 70),
    Color32::from_rgb(120, 200, 210),
];

/// `(round, mean − std, mean, mean + std)` of the rounds where `f` gives a finite mean (the band
/// collapses onto the mean where the std is not a number).
pub fn spread_points(rounds: &[RoundSpread], f: impl Fn(&RoundSpread) -> Spread) -> Vec<[f64; 4]> {
    rounds
        .iter()
        .map(|r| (r.round as f64, f(r)))
        .filter(|(_, s)| s.mean.is_finite())
        .map(|(x, s)| {
            let (m, d) = (
                s.mean as f64,
                if s.std.is_finite() { s.std as f64 } else { 0.0 },
            );
            [x, m - d, m, m + d]
        })
        .collect()
}

/// A sweep variant's mean over seeds as a line on its ±1 std band.
fn spread_band(plot: &mut PlotUi, name: &str, points: &[[f64; 4]], color: Color32) {
    let xs: Vec<f64> = points.iter().map(|p| p[0]).collect();
    let lo: Vec<f64> = points.iter().map(|p| p[1]).collect();
    let hi: Vec<f64> = points.iter().map(|p| p[3]).collect();
    // Same name as the line: one legend entry (in the line's colour) shows and hides both.
    plot.add(
        FilledArea::new(name, &xs, &lo, &hi)
            .fill_color(color.gamma_multiply(0.25))
            .allow_hover(false),
    );
    let mean: Vec<[f64; 2]> = points.iter().map(|p| [p[0], p[2]]).collect();
    plot.line(Line::new(name.to_string(), mean).color(color));
}

/// Draws the four plots, or says why there is nothing to draw yet.
pub fn ui(ui: &mut Ui, training: &TrainingData) {
    let nothing = training.losses.is_empty()
        && training.episodes.is_empty()
        && training.rounds.is_empty()
        && training.overlays.is_empty()
        && training.sweep_overlays.is_empty();
    if nothing {
        ui.centered_and_justified(|ui| {
            ui.label("No training curves yet: they appear while an agent trains.");
        });
        return;
    }
    if let Some(dir) = &training.run_dir {
        ui.label(
            RichText::new(format!("run {}", dir.display()))
                .weak()
                .small(),
        );
    }
    // Opened runs and sweeps have rounds only: their two plots then take the whole panel.
    let training_rows = !(training.losses.is_empty() && training.episodes.is_empty());
    let rows = if training_rows { 2.0 } else { 1.0 };
    let height = plot_height(ui.available_height(), rows);
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.columns(2, |cols| {
            if training_rows {
                losses(&mut cols[0], training, height);
                costs(&mut cols[1], training, height);
            }
            rates(&mut cols[0], training, height);
            violations(&mut cols[1], training, height);
        });
    });
}

/// Each of `rows` rows of plots shares `available` height (never below [`MIN_PLOT_HEIGHT`]).
pub fn plot_height(available: f32, rows: f32) -> f32 {
    (available / rows - TITLE_HEIGHT).max(MIN_PLOT_HEIGHT)
}

fn titled(ui: &mut Ui, title: &str, empty: bool, height: f32, plot: impl FnOnce(&mut Ui)) {
    ui.label(RichText::new(title).strong());
    if empty {
        ui.label(RichText::new("nothing yet").weak());
        ui.add_space(height - 16.0);
    } else {
        plot(ui);
    }
    ui.add_space(8.0);
}

fn plot(id: &str, height: f32) -> Plot<'static> {
    Plot::new(id.to_owned()).height(height).legend(
        Legend::default()
            .background_alpha(0.6)
            // A line and its points or band share a name: show the line's colour.
            .color_conflict_handling(ColorConflictHandling::PickLast),
    )
}

fn losses(ui: &mut Ui, t: &TrainingData, height: f32) {
    titled(
        ui,
        "Loss per module (log scale; a negative NLL is shown shifted)",
        t.losses.is_empty(),
        height,
        |ui| {
            plot("curves_losses", height)
                .x_axis_label("iteration")
                .y_axis_formatter(|mark, _| format!("{:.0e}", 10f64.powf(mark.value)))
                .label_formatter(|hover| {
                    Some(match hover {
                        HoverPosition::NearDataPoint {
                            plot_name,
                            position,
                            ..
                        } => format!(
                            "{plot_name}\niteration {:.0}\nloss {:.4}",
                            position.x,
                            10f64.powf(position.y)
                        ),
                        HoverPosition::Elsewhere { position } => {
                            format!("loss {:.4}", 10f64.powf(position.y))
                        }
                    })
                })
                .show(ui, |plot| {
                    for (module, points) in &t.losses {
                        let (shift, points) = shifted_positive(points);
                        let name = match shift {
                            Some(s) => format!("{} (+{s:.2})", module.name()),
                            None => module.name().to_string(),
                        };
                        let points = log_points(&points);
                        // Points too, so a module with a single chunk so far shows.
                        plot.points(Points::new(name.as_str(), points.clone()).radius(1.5));
                        plot.line(Line::new(name.as_str(), points));
                    }
                });
        },
    );
}

fn costs(ui: &mut Ui, t: &TrainingData, height: f32) {
    titled(
        ui,
        "Cost per agent episode",
        t.episodes.is_empty(),
        height,
        |ui| {
            plot("curves_costs", height)
                .x_axis_label("agent episode")
                .include_y(0.0)
                .show(ui, |plot| {
                    let points: Vec<[f64; 2]> = t
                        .episodes
                        .iter()
                        .map(|e| [e.index as f64, e.cost as f64])
                        .collect();
                    plot.line(Line::new("episode cost", points.clone()).color(PATH));
                    let violated: PlotPoints = t
                        .episodes
                        .iter()
                        .filter(|e| e.violation)
                        .map(|e| [e.index as f64, e.cost as f64])
                        .collect();
                    plot.points(
                        Points::new("with violation", violated)
                            .color(VIOLATION)
                            .radius(4.0),
                    );
                    if let Some(c) = t.demo_mean_cost {
                        plot.hline(
                            HLine::new("demonstrators' mean", c)
                                .color(GOAL)
                                .style(LineStyle::dashed_loose()),
                        );
                    }
                });
        },
    );
}

fn rates(ui: &mut Ui, t: &TrainingData, height: f32) {
    let empty = t.rounds.is_empty() && t.overlays.is_empty() && t.sweep_overlays.is_empty();
    titled(
        ui,
        "Success and violation rate per round",
        empty,
        height,
        |ui| {
            plot("curves_rates", height)
                .x_axis_label("round")
                .include_y(0.0)
                .include_y(1.0)
                .show(ui, |plot| {
                    let success = |r: &RoundMetrics| r.success_rate as f64;
                    let violation = |r: &RoundMetrics| r.violation_rate as f64;
                    plot.line(Line::new("success", round_points(&t.rounds, success)).color(GOAL));
                    plot.line(
                        Line::new("violation", round_points(&t.rounds, violation)).color(VIOLATION),
                    );
                    for (name, rounds) in &t.overlays {
                        let dashed = LineStyle::dashed_dense();
                        plot.line(
                            Line::new(format!("{name}: success"), round_points(rounds, success))
                                .style(dashed),
                        );
                        plot.line(
                            Line::new(
                                format!("{name}: violation"),
                                round_points(rounds, violation),
                            )
                            .style(dashed),
                        );
                    }
                    for (i, (name, rounds)) in t.sweep_overlays.iter().enumerate() {
                        let color = SWEEP_COLORS[i % SWEEP_COLORS.len()];
                        let points = spread_points(rounds, |r| r.success_rate);
                        spread_band(plot, &format!("{name}: success"), &points, color);
                    }
                });
        },
    );
}

fn violations(ui: &mut Ui, t: &TrainingData, height: f32) {
    let empty = t.rounds.is_empty() && t.overlays.is_empty() && t.sweep_overlays.is_empty();
    titled(ui, "Cumulative violations", empty, height, |ui| {
        plot("curves_violations", height)
            .x_axis_label("round")
            .include_y(0.0)
            .show(ui, |plot| {
                let total = |r: &RoundMetrics| r.cumulative_violations as f64;
                plot.line(Line::new("this run", round_points(&t.rounds, total)).color(HAZARD));
                for (name, rounds) in &t.overlays {
                    plot.line(
                        Line::new(name.clone(), round_points(rounds, total))
                            .style(LineStyle::dashed_dense()),
                    );
                }
                for (i, (name, rounds)) in t.sweep_overlays.iter().enumerate() {
                    let color = SWEEP_COLORS[i % SWEEP_COLORS.len()];
                    let points = spread_points(rounds, |r| r.cumulative_violations);
                    spread_band(plot, name, &points, color);
                }
            });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;

    #[test]
    fn log_points_drop_what_a_log_axis_cannot_show() {
        let p = [
            [0.0, 100.0],
            [1.0, 0.0],
            [2.0, -1.0],
            [3.0, f64::NAN],
            [4.0, 0.01],
        ];
        assert_eq!(log_points(&p), [[0.0, 2.0], [4.0, -2.0]]);
    }

    #[test]
    fn negative_losses_are_shifted_onto_the_log_axis_and_positive_ones_left_alone() {
        let (shift, p) = shifted_positive(&[[0.0, -2.0], [1.0, 3.0]]);
        assert_eq!(shift, Some(2.01));
        assert!((p[0][1] - 0.01).abs() < 1e-12 && (p[1][1] - 5.01).abs() < 1e-12);
        assert_eq!(shifted_positive(&[[0.0, 0.5]]), (None, vec![[0.0, 0.5]]));
    }

    #[test]
    fn spread_points_are_mean_and_one_std_either_side() {
        let spread = |mean, std| Spread { mean, std };
        let round = |round, s| RoundSpread {
            round,
            seeds: 2,
            success_rate: s,
            violation_rate: spread(0.0, 0.0),
            mean_cost: spread(80.0, 1.0),
            cumulative_violations: spread(1.0, 0.5),
        };
        let rounds = [
            round(0, spread(0.5, 0.25)),
            round(1, spread(f32::NAN, f32::NAN)),
            round(2, spread(1.0, f32::NAN)),
        ];
        assert_eq!(
            spread_points(&rounds, |r| r.success_rate),
            [[0.0, 0.25, 0.5, 0.75], [2.0, 1.0, 1.0, 1.0]]
        );
    }

    #[test]
    fn plots_share_the_panel_height_down_to_a_minimum() {
        assert_eq!(plot_height(1000.0, 2.0), 500.0 - TITLE_HEIGHT);
        assert_eq!(plot_height(1000.0, 1.0), 1000.0 - TITLE_HEIGHT);
        assert_eq!(plot_height(100.0, 2.0), MIN_PLOT_HEIGHT);
    }

    #[test]
    fn round_points_skip_rounds_without_a_number() {
        let state = testing::populated();
        let mut rounds = state.analysis.training.rounds.clone();
        assert_eq!(
            round_points(&rounds, |r| r.success_rate as f64),
            [[0.0, 0.5], [1.0, 0.75]]
        );
        rounds[0].success_rate = f32::NAN;
        assert_eq!(round_points(&rounds, |r| r.success_rate as f64).len(), 1);
    }
}
