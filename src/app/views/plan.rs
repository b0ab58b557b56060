//! The plan view: what the planner imagined at the selected step — the decoded frames of the
//! best plan beside the real frames that followed, its per-step constraint and goal
//! probabilities, the terminal safe-set probability and value, the CEM search (feasible
//! candidates per iteration, threshold decays, random fallback) and the settings of that call.

use super::episode::{GOAL, HAZARD, PATH, Selection, VIOLATION};
use crate::app::data::PlanShot;
use crate::app::frame_textures::{FrameTextures, frame_square};
use crate::app::state::{AppState, EpisodeRecord};
use crate::env::Frame;
use crate::planner::PlannerConfig;
use egui::{Color32, RichText, Sense, Ui, pos2, vec2};
use egui_plot::{FilledArea, HLine, Legend, Line, LineStyle, Plot, Points};

/// Width of the readout column.
const READOUT_WIDTH: f32 = 300.0;

/// The plan made at one position of an episode.
#[derive(Clone, Copy, Debug)]
pub struct PlanAt<'a> {
    /// Steps taken when the plan was made; its action led to position `position + 1`.
    pub position: usize,
    /// `None` where a demonstrator acted.
    pub shot: Option<&'a PlanShot>,
}

/// The plan made at timeline position `frame` (the latest one at the end of the episode, so a
/// live episode shows the newest plan); `None` before the first step.
pub fn plan_at(episode: &EpisodeRecord, frame: usize) -> Option<PlanAt<'_>> {
    let position = frame.min(episode.len().checked_sub(1)?);
    Some(PlanAt {
        position,
        shot: episode.plans.get(position).and_then(|p| p.as_deref()),
    })
}

/// The real frames after `position`, at most `horizon` of them (fewer near the live end).
pub fn frames_after(episode: &EpisodeRecord, position: usize, horizon: usize) -> &[Frame] {
    let from = (position + 1).min(episode.frames.len());
    let to = (position + 1 + horizon).min(episode.frames.len());
    &episode.frames[from..to]
}

/// The safe-set threshold a plan needs in probability terms, and whether it was met.
pub fn safe_set_met(shot: &PlanShot) -> bool {
    shot.record.config.ignore_safe_set
        || shot.record.safe_set_prob >= shot.record.safe_set_threshold
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The view and the textures of the frames it shows.
pub struct PlanView {
    imagined: FrameTextures<(u64, usize)>,
    real: FrameTextures<(u64, usize, usize)>,
}

impl Default for PlanView {
    fn default() -> Self {
        Self {
            imagined: FrameTextures::new("plan/imagined"),
            real: FrameTextures::new("plan/real"),
        }
    }
}

impl PlanView {
    /// Draws the plan of the episode and step `selection` points at.
    pub fn ui(&mut self, ui: &mut Ui, state: &AppState, selection: &mut Selection) {
        selection.forget_missing(state);
        let Some((episode, frame)) = selection.resolve(state) else {
            ui.centered_and_justified(|ui| ui.label("Waiting for the first episode…"));
            return;
        };
        let Some(at) = plan_at(episode, frame) else {
            ui.centered_and_justified(|ui| ui.label("No step taken yet in this episode."));
            return;
        };
        header(ui, episode, at.position, selection.episode.is_none());
        ui.add_space(6.0);
        let Some(shot) = at.shot else {
            no_plan(ui, episode);
            return;
        };
        let horizon = shot.record.constraint_prob.len().max(shot.imagined.len());
        let avail = ui.available_width() - READOUT_WIDTH;
        let side = (avail / horizon.max(1) as f32 - 8.0).clamp(48.0, 128.0);
        let ctx = ui.ctx().clone();
        let imagined = self
            .imagined
            .get(&ctx, (episode.uid, at.position), &shot.imagined);
        let after = frames_after(episode, at.position, horizon);
        let real = self
            .real
            .get(&ctx, (episode.uid, at.position, after.len()), after);
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_max_width(avail.max(200.0));
                strips(ui, imagined, real, horizon, side);
                ui.add_space(10.0);
                probabilities(ui, shot);
                ui.add_space(6.0);
                spread(ui, shot);
            });
            ui.add_space(16.0);
            ui.vertical(|ui| {
                ui.set_max_width(READOUT_WIDTH - 24.0);
                readout(ui, shot);
                ui.add_space(10.0);
                feasible(ui, &shot.record.feasible, shot.record.config.population);
                ui.add_space(10.0);
                settings(ui, &shot.record.config);
            });
        });
    }
}

fn header(ui: &mut Ui, episode: &EpisodeRecord, position: usize, live: bool) {
    ui.horizontal(|ui| {
        ui.heading(format!("Plan at step {position}"));
        let (text, color) = if live {
            (" LIVE ", GOAL)
        } else {
            (" REPLAY ", PATH)
        };
        ui.label(
            RichText::new(text)
                .color(Color32::BLACK)
                .background_color(color)
                .strong(),
        );
        ui.label(RichText::new(format!("episode {} · {}", episode.episode, episode.kind)).weak());
    });
    ui.label(
        RichText::new(
            "What the planner imagined after this many steps; its first action led to the next frame.",
        )
        .weak()
        .small(),
    );
}

fn no_plan(ui: &mut Ui, episode: &EpisodeRecord) {
    ui.add_space(40.0);
    ui.vertical_centered(|ui| {
        ui.heading("No plan: a demonstrator acts");
        ui.label(
            RichText::new(format!(
                "{} chooses the actions of this episode; plans appear when a trained agent acts.",
                episode.demonstrator
            ))
            .weak(),
        );
    });
}

/// The imagined frames above the real ones, one column per step.
fn strips(
    ui: &mut Ui,
    imagined: &[egui::TextureHandle],
    real: &[egui::TextureHandle],
    horizon: usize,
    side: f32,
) {
    egui::Grid::new("plan_strips")
        .spacing([6.0, 4.0])
        .show(ui, |ui| {
            ui.label("");
            for k in 1..=horizon {
                ui.label(RichText::new(format!("+{k}")).monospace().weak());
            }
            ui.end_row();
            ui.label("imagined");
            for k in 0..horizon {
                frame_square(ui, imagined.get(k), side)
                    .on_hover_text(format!("Decoded latent {} steps ahead", k + 1));
            }
            ui.end_row();
            ui.label("real");
            for k in 0..horizon {
                frame_square(ui, real.get(k), side).on_hover_text(if k < real.len() {
                    format!("What the camera saw {} steps later", k + 1)
                } else {
                    "Not reached (yet)".to_owned()
                });
            }
            ui.end_row();
        });
    if imagined.is_empty() {
        ui.label(
            RichText::new("The imagined latents were not decoded.")
                .weak()
                .small(),
        );
    }
}

/// Per-step values as plot points at steps ahead 1, 2, ….
fn series(p: &[f32]) -> Vec<[f64; 2]> {
    p.iter()
        .enumerate()
        .map(|(k, &v)| [(k + 1) as f64, v as f64])
        .collect()
}

/// Constraint and goal probability per imagined step, with the thresholds the planner applied.
fn probabilities(ui: &mut Ui, shot: &PlanShot) {
    let r = &shot.record;
    ui.label(RichText::new("Per imagined step").strong());
    Plot::new("plan_probabilities")
        .height(170.0)
        .legend(Legend::default())
        .include_y(0.0)
        .include_y(1.0)
        .include_x(0.5)
        .include_x(r.constraint_prob.len() as f64 + 0.5)
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .x_axis_label("step ahead")
        .show(ui, |plot| {
            let constraint = series(&r.constraint_prob);
            let goal = series(&r.goal_prob);
            if let Some(s) = band(r) {
                let xs: Vec<f64> = (1..=s.constraint_min.len()).map(|k| k as f64).collect();
                let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
                plot.add(
                    FilledArea::new(
                        "constraint, min–max over particles",
                        &xs,
                        &wide(&s.constraint_min),
                        &wide(&s.constraint_max),
                    )
                    .fill_color(VIOLATION.gamma_multiply(0.25)),
                );
            }
            plot.line(
                Line::new("constraint (max over particles)", constraint.clone()).color(VIOLATION),
            );
            plot.points(Points::new("", constraint).color(VIOLATION).radius(3.0));
            plot.line(Line::new("goal (sigmoid of the mean logit)", goal.clone()).color(GOAL));
            plot.points(Points::new("", goal).color(GOAL).radius(3.0));
            plot.hline(
                HLine::new("constraint threshold", r.config.constraint_threshold)
                    .color(VIOLATION.gamma_multiply(0.6))
                    .style(LineStyle::dashed_loose()),
            );
            plot.hline(
                HLine::new("goal threshold", sigmoid(r.config.goal_threshold))
                    .color(GOAL.gamma_multiply(0.6))
                    .style(LineStyle::dashed_loose()),
            );
        });
}

/// The record's spread when it covers every imagined step (older records have none).
fn band(r: &crate::planner::PlanRecord) -> Option<&crate::planner::PlanSpread> {
    r.spread.as_ref().filter(|s| {
        let h = r.constraint_prob.len();
        [
            &s.constraint_min,
            &s.constraint_max,
            &s.particle_std,
            &s.member_std,
        ]
        .iter()
        .all(|v| v.len() == h)
    })
}

/// How far the imagined latent spreads per step: over the plan's particles (the dynamics' own
/// noise) and over the dynamics members (their disagreement from the same particles).
fn spread(ui: &mut Ui, shot: &PlanShot) {
    let Some(s) = band(&shot.record) else {
        return;
    };
    ui.label(RichText::new("Spread of the imagined latent (std)").strong())
        .on_hover_text(
            "Particles: the std over the plan's particles, which share one dynamics member per \
             step. Members: the std over the dynamics ensemble's predictions from the same \
             particles, the models' disagreement. Both are root mean squares over the latent's \
             dimensions.",
        );
    let top = s
        .particle_std
        .iter()
        .chain(&s.member_std)
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f32, f32::max);
    Plot::new("plan_spread")
        .height(120.0)
        .legend(Legend::default())
        .include_y(0.0)
        // Head room for the legend above the lines.
        .include_y(top as f64 * 1.7)
        .include_x(0.5)
        .include_x(s.particle_std.len() as f64 + 0.5)
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .x_axis_label("step ahead")
        .show(ui, |plot| {
            for (name, v, color) in [
                ("particles", &s.particle_std, PATH),
                ("dynamics members", &s.member_std, HAZARD),
            ] {
                plot.line(Line::new(name, series(v)).color(color));
                plot.points(Points::new("", series(v)).color(color).radius(3.0));
            }
        });
}

fn readout(ui: &mut Ui, shot: &PlanShot) {
    let r = &shot.record;
    egui::Grid::new("plan_readout")
        .num_columns(2)
        .spacing([16.0, 5.0])
        .show(ui, |ui| {
            ui.label("action");
            ui.monospace(format!("{:+.2}, {:+.2}", r.action[0], r.action[1]));
            ui.end_row();
            ui.label("terminal safe set");
            let text = format!("{:.2}", r.safe_set_prob);
            let color = if safe_set_met(shot) { GOAL } else { HAZARD };
            ui.label(RichText::new(text).monospace().color(color))
                .on_hover_text("Mean safe-set probability of the particles at the plan's end");
            ui.end_row();
            ui.label("safe-set threshold");
            let used = if r.config.ignore_safe_set {
                "ignored (ablation)".to_owned()
            } else {
                format!(
                    "{:.2} (set {:.2})",
                    r.safe_set_threshold, r.config.safe_set_threshold
                )
            };
            ui.monospace(used)
                .on_hover_text("The threshold of the last scored iteration, after decays");
            ui.end_row();
            ui.label("decays");
            ui.monospace(format!("{} of {}", r.decays, r.config.max_decays));
            ui.end_row();
            ui.label("terminal value");
            ui.monospace(format!("{:.2}", r.value));
            ui.end_row();
            ui.label("score");
            ui.monospace(format!("{:.2}", r.score));
            ui.end_row();
            ui.label("fallback");
            if r.random_fallback {
                ui.label(RichText::new("RANDOM ACTION").strong().color(VIOLATION))
                    .on_hover_text("No candidate was feasible even after every decay");
            } else {
                ui.label("no");
            }
            ui.end_row();
        });
}

/// Feasible candidates per scored CEM iteration, as bars out of the population.
fn feasible(ui: &mut Ui, counts: &[usize], population: usize) {
    ui.label(RichText::new("Feasible candidates per iteration").strong());
    if counts.is_empty() {
        ui.label(RichText::new("no scored iteration").weak());
        return;
    }
    let (bar, gap, height) = (22.0, 6.0, 48.0);
    let width = counts.len() as f32 * (bar + gap);
    let (rect, _) = ui.allocate_exact_size(vec2(width, height), Sense::hover());
    let painter = ui.painter_at(rect);
    for (i, &n) in counts.iter().enumerate() {
        let share = n as f32 / population.max(1) as f32;
        let x = rect.left() + i as f32 * (bar + gap);
        let top = rect.bottom() - height * share.clamp(0.0, 1.0);
        painter.rect_filled(
            egui::Rect::from_min_max(pos2(x, rect.top()), pos2(x + bar, rect.bottom())),
            2.0,
            ui.visuals().extreme_bg_color,
        );
        let color = if n == 0 { VIOLATION } else { GOAL };
        painter.rect_filled(
            egui::Rect::from_min_max(pos2(x, top), pos2(x + bar, rect.bottom())),
            2.0,
            color,
        );
    }
    let numbers: Vec<String> = counts.iter().map(usize::to_string).collect();
    ui.label(
        RichText::new(format!("{} of {population}", numbers.join(" · ")))
            .monospace()
            .small(),
    );
}

fn settings(ui: &mut Ui, c: &PlannerConfig) {
    ui.label(RichText::new("Planner settings of this call").strong());
    egui::Grid::new("plan_settings")
        .num_columns(2)
        .spacing([16.0, 3.0])
        .show(ui, |ui| {
            let mut row = |name: &str, value: String| {
                ui.label(RichText::new(name).small());
                ui.label(RichText::new(value).monospace().small());
                ui.end_row();
            };
            row("population", c.population.to_string());
            row("elites", c.elites.to_string());
            row("iterations", c.iterations.to_string());
            row("particles", c.particles.to_string());
            row("horizon", c.horizon.to_string());
            row(
                "constraint threshold",
                format!("{:.2}", c.constraint_threshold),
            );
            row("goal threshold (logit)", format!("{:.2}", c.goal_threshold));
            row("threshold decay", format!("{:.2}", c.threshold_decay));
            row("random share", format!("{:.2}", c.random_percent));
            let members = if c.particle_members {
                "one per particle"
            } else {
                "one per step"
            };
            row("dynamics members", members.to_owned());
            row(
                "disagreement penalty",
                format!("{:.2}", c.disagreement_penalty),
            );
            let onoff = |ignored: bool| if ignored { "ignored" } else { "used" }.to_owned();
            row("safe set", onoff(c.ignore_safe_set));
            row("constraints", onoff(c.ignore_constraints));
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;

    #[test]
    fn the_plan_shown_is_the_one_made_at_the_position_or_the_newest() {
        let state = testing::populated();
        let done = &state.finished[0];
        assert_eq!(done.len(), 4);
        // Position 0: the plan that chose step 1; the end of the episode: the last plan.
        let first = plan_at(done, 0).expect("plan at the start");
        assert_eq!(first.position, 0);
        assert_eq!(first.shot.map(|s| s.record.start[0]), Some(0.0));
        let last = plan_at(done, 4).expect("plan at the end");
        assert_eq!(last.position, 3);
        assert_eq!(last.shot.map(|s| s.record.start[0]), Some(3.0));
        let live = state.live.as_ref().expect("live episode");
        assert_eq!(plan_at(live, live.len()).map(|p| p.position), Some(1));
    }

    #[test]
    fn no_plan_before_the_first_step_or_where_a_demonstrator_acted() {
        let mut state = testing::populated();
        let live = state.live.as_mut().expect("live");
        live.plans[0] = None;
        assert!(plan_at(live, 0).is_some_and(|p| p.shot.is_none()));
        live.steps.clear();
        live.plans.clear();
        assert!(plan_at(live, 0).is_none());
    }

    #[test]
    fn real_frames_after_a_plan_stop_at_the_horizon_or_the_episode_end() {
        let state = testing::populated();
        let done = &state.finished[0];
        assert_eq!(frames_after(done, 0, 3).len(), 3);
        assert_eq!(frames_after(done, 0, 3)[0], done.frames[1]);
        assert_eq!(frames_after(done, 2, 3).len(), 2);
        assert!(frames_after(done, 4, 3).is_empty());
    }

    #[test]
    fn the_spread_is_shown_only_when_it_covers_every_step() {
        let mut shot = testing::plan(0, 3, false);
        let s = band(&shot.record).expect("the fixture has a spread");
        assert_eq!(s.constraint_max, shot.record.constraint_prob);
        shot.record.spread.as_mut().unwrap().member_std.pop();
        assert!(band(&shot.record).is_none(), "a short series is not drawn");
        shot.record.spread = None;
        assert!(band(&shot.record).is_none());
    }

    #[test]
    fn the_plan_view_labels_its_spread_plot() {
        use egui_kittest::Harness;
        use egui_kittest::kittest::Queryable as _;
        for with_spread in [true, false] {
            let mut state = testing::populated();
            if !with_spread {
                for episode in state.finished.iter_mut().chain(state.live.as_mut()) {
                    for p in episode.plans.iter_mut().flatten() {
                        std::sync::Arc::make_mut(p).record.spread = None;
                    }
                }
            }
            let mut h = Harness::builder()
                .with_size([1100.0, 760.0])
                .with_context_setup(crate::app::app::install_symbol_fallback)
                .build_ui_state(
                    move |ui, (view, selection): &mut (PlanView, Selection)| {
                        view.ui(ui, &state, selection)
                    },
                    (PlanView::default(), Selection::default()),
                );
            h.run();
            let found = h
                .query_by_label_contains("Spread of the imagined latent")
                .is_some();
            assert_eq!(found, with_spread);
        }
    }

    #[test]
    fn the_safe_set_is_met_at_the_decayed_threshold_or_when_ignored() {
        let mut shot = testing::plan(0, 3, false);
        assert!(safe_set_met(&shot));
        shot.record.safe_set_prob = 0.5;
        assert!(!safe_set_met(&shot));
        shot.record.config.ignore_safe_set = true;
        assert!(safe_set_met(&shot));
    }
}
