//! The episode view: the 64×64 observation, upscaled without smoothing, with the ground truth
//! drawn over it (hazards, goal, the path so far, violations), a timeline to replay any stored
//! episode, a readout of the step shown and "Export GIF" of the episode.

use crate::app::data::SceneProbe;
use crate::app::gif_export::GifExport;
use crate::app::state::{AppState, EpisodeRecord};
use crate::env::{Frame, IMAGE_SIZE, OverlayShape};
use crate::planner::{CandidateStats, PlanRecord};
use egui::{
    Color32, ColorImage, Pos2, Rect, RichText, Sense, Stroke, StrokeKind, TextureHandle,
    TextureOptions, Ui, Vec2, pos2, vec2,
};

pub const HAZARD: Color32 = Color32::from_rgb(255, 150, 40);
pub const GOAL: Color32 = Color32::from_rgb(70, 230, 130);
pub const PATH: Color32 = Color32::from_rgb(255, 235, 90);
pub const VIOLATION: Color32 = Color32::from_rgb(255, 60, 200);
const STEP_PLAIN: Color32 = Color32::from_gray(70);
const FRAME_BORDER: Stroke = Stroke {
    width: 1.0,
    color: Color32::from_gray(110),
};

/// Width of the readout column beside the image.
const READOUT_WIDTH: f32 = 250.0;
/// Height of the header, timeline and their spacing around the image.
const CHROME_HEIGHT: f32 = 96.0;

/// Which episode is shown and where on its timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// `uid` of a stored episode; `None` follows the live episode.
    pub episode: Option<u64>,
    /// Position on the timeline (steps taken) when replaying.
    pub frame: usize,
}

impl Selection {
    /// The episode to show and the position on its timeline (the newest one when live).
    pub fn resolve<'a>(&self, state: &'a AppState) -> Option<(&'a EpisodeRecord, usize)> {
        match self.episode {
            Some(uid) => state.episode(uid).map(|e| (e, self.frame.min(e.len()))),
            None => state.live.as_ref().map(|e| (e, e.len())),
        }
    }

    /// Replays a stored episode from its start.
    pub fn replay(&mut self, uid: u64) {
        *self = Selection {
            episode: Some(uid),
            frame: 0,
        };
    }

    /// Follows the live episode again.
    pub fn follow_live(&mut self) {
        *self = Selection::default();
    }

    /// Moves the timeline of a replayed episode by `delta` steps.
    pub fn scrub(&mut self, state: &AppState, delta: isize) {
        if let Some((episode, frame)) = self.resolve(state).filter(|_| self.episode.is_some()) {
            self.frame = frame.saturating_add_signed(delta).min(episode.len());
        }
    }

    /// Falls back to the live episode when the replayed one was dropped.
    pub fn forget_missing(&mut self, state: &AppState) {
        if self.episode.is_some_and(|uid| state.episode(uid).is_none()) {
            self.follow_live();
        }
    }
}

/// The view, its GPU texture of the frame shown (re-uploaded only when that frame changes) and
/// its GIF export.
#[derive(Default)]
pub struct EpisodeView {
    texture: Option<TextureHandle>,
    uploaded: Option<(u64, usize)>,
    gif: GifExport,
    learning: super::learning::LearningView,
    /// What of the planner's search the last frame built drew over the frame.
    pub drawn: SearchDrawn,
}

/// What the episode view draws over the observation.
pub struct SceneToggles<'a> {
    /// Hazards, goal, path and violations from the ground truth.
    pub overlay: &'a mut bool,
    /// The planner's search at the live step, through the agent's scene probe.
    pub plans: &'a mut bool,
}

impl EpisodeView {
    /// Draws the view of `state` at `selection`; the timeline edits `selection`.
    pub fn ui(
        &mut self,
        ui: &mut Ui,
        state: &AppState,
        selection: &mut Selection,
        toggles: SceneToggles<'_>,
    ) {
        self.drawn = SearchDrawn::default();
        selection.forget_missing(state);
        let Some((episode, frame)) = selection.resolve(state) else {
            if !self.learning.ui(ui, &state.analysis.training) {
                ui.centered_and_justified(|ui| ui.label("Waiting for the first episode…"));
            }
            return;
        };
        let live = selection.episode.is_none();
        let probe = state.scene_probes.get(&episode.kind);
        let mut toggles = toggles;
        header(
            ui,
            episode,
            live,
            &mut toggles,
            probe.map(|p| p.as_ref()),
            &mut self.gif,
        );
        ui.add_space(6.0);

        let avail = ui.available_size();
        let side = image_side(avail.x - READOUT_WIDTH, avail.y - CHROME_HEIGHT);
        let texture = self.texture_for(ui, episode, frame).clone();
        let mut drawn = SearchDrawn::default();
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                let (rect, _) = ui.allocate_exact_size(Vec2::splat(side), Sense::hover());
                let painter = ui.painter_at(rect);
                let uv = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
                painter.image(texture.id(), rect, uv, Color32::WHITE);
                if *toggles.overlay {
                    draw_overlay(&painter, rect, episode, frame);
                }
                // The search of the call that chose the live step, drawn from where it began.
                let search = (live && frame == episode.len())
                    .then(|| episode.plans.last().cloned().flatten())
                    .flatten();
                if *toggles.plans
                    && let (Some(probe), Some(shot), Some(c)) =
                        (probe, search, state.last_candidates.as_ref())
                {
                    drawn = draw_search(&painter, rect, probe, &shot.record, c);
                }
                ui.painter()
                    .rect_stroke(rect, 0.0, FRAME_BORDER, StrokeKind::Outside);
                ui.add_space(8.0);
                timeline(ui, side, episode, frame, live, selection);
            });
            ui.add_space(16.0);
            ui.vertical(|ui| {
                ui.set_max_width(READOUT_WIDTH - 24.0);
                readout(ui, episode, frame);
                ui.add_space(12.0);
                legend(ui);
            });
        });
        self.drawn = drawn;
    }

    fn texture_for(&mut self, ui: &Ui, episode: &EpisodeRecord, frame: usize) -> &TextureHandle {
        let key = (episode.uid, frame);
        let image = || to_color_image(&episode.frames[frame]);
        match &mut self.texture {
            Some(texture) if self.uploaded != Some(key) => {
                texture.set(image(), TextureOptions::NEAREST);
            }
            Some(_) => {}
            None => {
                self.texture = Some(ui.ctx().load_texture(
                    "observation",
                    image(),
                    TextureOptions::NEAREST,
                ));
            }
        }
        self.uploaded = Some(key);
        self.texture.as_ref().expect("texture was just created")
    }
}

/// Largest square that fits, snapped to a whole multiple of 64 pixels so every observation pixel
/// becomes an equal block.
fn image_side(width: f32, height: f32) -> f32 {
    let n = IMAGE_SIZE as f32;
    let fit = width.min(height).max(n);
    (fit / n).floor() * n
}

/// A frame as an egui image (for textures).
pub fn to_color_image(frame: &Frame) -> ColorImage {
    ColorImage::from_rgba_unmultiplied([IMAGE_SIZE, IMAGE_SIZE], &frame.to_rgba())
}

fn header(
    ui: &mut Ui,
    episode: &EpisodeRecord,
    live: bool,
    toggles: &mut SceneToggles<'_>,
    probe: Option<&SceneProbe>,
    gif: &mut GifExport,
) {
    ui.horizontal(|ui| {
        ui.heading(format!("Episode {}", episode.episode));
        let badge = if live {
            RichText::new(" LIVE ")
                .color(Color32::BLACK)
                .background_color(GOAL)
        } else {
            RichText::new(" REPLAY ")
                .color(Color32::BLACK)
                .background_color(PATH)
        };
        ui.label(badge.strong());
        ui.label(
            RichText::new(if crate::app::worker::is_agent(episode.demonstrator) {
                format!("{} · {}", episode.kind, episode.demonstrator)
            } else {
                format!("{} · demonstrator {}", episode.kind, episode.demonstrator)
            })
            .weak(),
        );
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            gif.ui(ui, episode);
        });
    });
    // What is drawn over the frame, on a row of its own so the header never crowds.
    ui.horizontal(|ui| {
        ui.checkbox(&mut *toggles.overlay, "Ground-truth overlay")
            .on_hover_text("Hazards, goal, path and violations drawn over the observation");
        if let Some(probe) = probe {
            let [rx, ry] = probe.r2;
            let objects = probe
                .objects_r2
                .iter()
                .flatten()
                .copied()
                .reduce(f64::min)
                .map(|r| format!("; blocks ≥ {r:.2}"))
                .unwrap_or_default();
            ui.checkbox(
                &mut *toggles.plans,
                format!("Plans (probe R² {rx:.2} / {ry:.2}{objects})"),
            )
            .on_hover_text(
                "The live step's planner search drawn in the scene: the best plan (white) with its \
                 particles fanned around it (faint white; push: white squares where it leaves the \
                 blocks), the last CEM iteration's elites (yellow = best … blue) and where the first \
                 iteration's candidates ended (grey dots). Latents are mapped to the image by a \
                 linear probe fitted on the agent's demo latents; R² (held out, x / y) says how \
                 far to trust it.",
            );
        }
    });
}

fn draw_overlay(painter: &egui::Painter, rect: Rect, episode: &EpisodeRecord, frame: usize) {
    let scale = rect.width() / IMAGE_SIZE as f32;
    let at = |p: [f32; 2]| rect.min + vec2(p[0], p[1]) * scale;
    let shape = |s: &OverlayShape, color: Color32| {
        let stroke = Stroke::new(2.0, color);
        match *s {
            OverlayShape::Rect { min, max } => {
                let r = Rect::from_two_pos(at(min), at(max));
                painter.rect_stroke(r, 0.0, stroke, StrokeKind::Middle);
            }
            OverlayShape::Circle { center, radius } => {
                painter.circle_stroke(at(center), (radius * scale).max(3.0), stroke);
            }
        }
    };
    for s in &episode.overlay.hazards {
        shape(s, HAZARD);
    }
    for s in &episode.overlay.goals {
        shape(s, GOAL);
    }
    let path: Vec<Pos2> = episode.markers[..=frame].iter().map(|&m| at(m)).collect();
    if path.len() > 1 {
        painter.line(path.clone(), Stroke::new(2.0, PATH.gamma_multiply(0.9)));
    }
    for (i, step) in episode.steps[..frame].iter().enumerate() {
        if step.constraint {
            cross(painter, path[i + 1], 4.0, Stroke::new(2.0, VIOLATION));
        }
    }
    if let Some(&now) = path.last() {
        painter.circle_stroke(now, 5.0, Stroke::new(2.0, Color32::WHITE));
    }
}

/// Half the side of the outline drawn where a plan leaves an object, in image pixels (push's
/// blocks are about 8 px across).
const OBJECT_HALF_PX: f32 = 4.0;

/// What the last frame drew of the planner's search.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchDrawn {
    /// Plan paths: the elites and the best plan.
    pub plans: usize,
    /// The best plan's particles.
    pub particles: usize,
    /// Objects where the best plan leaves them (push's blocks).
    pub objects: usize,
}

/// Draws one planner call's search over the frame in `rect`.
fn draw_search(
    painter: &egui::Painter,
    rect: Rect,
    probe: &SceneProbe,
    record: &PlanRecord,
    c: &CandidateStats,
) -> SearchDrawn {
    let scale = rect.width() / IMAGE_SIZE as f32;
    let at = |z: &[f32]| {
        let p = probe.pixel(z);
        rect.min + vec2(p[0], p[1]) * scale
    };
    let l = c.latent.max(1);
    for z in c.first_terminal.chunks_exact(l) {
        painter.circle_filled(at(z), 1.5, Color32::from_white_alpha(70));
    }
    let start = at(&record.start);
    let k = c.elite_scores.len();
    let mut drawn = 0;
    // Worst first, so the best elites end up on top.
    for e in (0..k).rev() {
        let steps = c.elite_latents[e * c.horizon * l..(e + 1) * c.horizon * l].chunks_exact(l);
        let path: Vec<Pos2> = std::iter::once(start).chain(steps.map(at)).collect();
        let rank = if k > 1 {
            1.0 - e as f32 / (k - 1) as f32
        } else {
            1.0
        };
        painter.line(path, Stroke::new(1.0, elite_color(rank)));
        drawn += 1;
    }
    // The chosen plan's particles, as a fan around it.
    let parts = &c.particles;
    for p in 0..parts.count {
        let path: Vec<Pos2> = std::iter::once(start)
            .chain((0..parts.horizon).map(|t| at(parts.at(p, t))))
            .collect();
        painter.line(path, Stroke::new(1.0, Color32::from_white_alpha(110)));
    }
    let best: Vec<Pos2> = std::iter::once(start)
        .chain(record.latents.iter().map(|z| at(z)))
        .collect();
    painter.line(best.clone(), Stroke::new(2.5, Color32::WHITE));
    if let Some(&end) = best.last() {
        painter.circle_filled(end, 3.0, Color32::WHITE);
    }
    let mut objects = 0;
    // Where the plan leaves the other objects (push's blocks), as outlines.
    if let Some(last) = record.latents.last() {
        let half = OBJECT_HALF_PX * scale;
        for p in probe.objects(last) {
            objects += 1;
            let centre = rect.min + vec2(p[0], p[1]) * scale;
            painter.rect_stroke(
                Rect::from_center_size(centre, Vec2::splat(2.0 * half)),
                1.0,
                Stroke::new(2.0, Color32::WHITE),
                StrokeKind::Middle,
            );
        }
    }
    SearchDrawn {
        plans: drawn + 1,
        particles: parts.count,
        objects,
    }
}

/// Elite colours from the worst (`rank` 0, blue) to the best (1, yellow).
fn elite_color(rank: f32) -> Color32 {
    let lerp = |a: u8, b: u8| (a as f32 + (b as f32 - a as f32) * rank.clamp(0.0, 1.0)) as u8;
    Color32::from_rgba_unmultiplied(lerp(60, 250), lerp(90, 220), lerp(220, 60), 200)
}

fn cross(painter: &egui::Painter, c: Pos2, r: f32, stroke: Stroke) {
    painter.line_segment([c + vec2(-r, -r), c + vec2(r, r)], stroke);
    painter.line_segment([c + vec2(-r, r), c + vec2(r, -r)], stroke);
}

/// The slider plus a strip with one cell per step (violations and goal steps coloured); both
/// scrub a replayed episode, and show progress of the live one.
fn timeline(
    ui: &mut Ui,
    width: f32,
    episode: &EpisodeRecord,
    frame: usize,
    live: bool,
    selection: &mut Selection,
) {
    let hint = if live {
        "Progress of the live episode; pick a finished episode on the left to replay it"
    } else {
        "Scrub the replay (← / →)"
    };
    let mut position = frame;
    ui.scope(|ui| {
        ui.spacing_mut().slider_width = (width - 90.0).max(60.0);
        let slider = egui::Slider::new(&mut position, 0..=episode.len().max(1))
            .integer()
            .text("step");
        ui.add_enabled(!live && !episode.is_empty(), slider)
            .on_hover_text(hint)
            .on_disabled_hover_text(hint);
    });

    let (rect, response) = ui.allocate_exact_size(vec2(width, 12.0), Sense::click_and_drag());
    let painter = ui.painter_at(rect);
    let horizon = episode.horizon.max(episode.len()).max(1);
    let cell = rect.width() / horizon as f32;
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    for (i, step) in episode.steps.iter().enumerate() {
        let color = if step.constraint {
            VIOLATION
        } else if step.reward == 0.0 {
            GOAL
        } else {
            STEP_PLAIN
        };
        let x = rect.left() + i as f32 * cell;
        let r = Rect::from_min_max(pos2(x, rect.top()), pos2(x + cell.max(1.0), rect.bottom()));
        painter.rect_filled(r, 0.0, color);
    }
    let x = rect.left() + frame as f32 * cell;
    painter.line_segment(
        [pos2(x, rect.top() - 2.0), pos2(x, rect.bottom() + 2.0)],
        Stroke::new(2.0, Color32::WHITE),
    );
    let response = response.on_hover_text(
        "One cell per step: pink = constraint violated, green = in the goal. Click or drag to scrub.",
    );
    if !live
        && let Some(p) = response.interact_pointer_pos()
        && (response.clicked() || response.dragged())
    {
        position = (((p.x - rect.left()) / cell).round().max(0.0) as usize).min(episode.len());
    }
    if !live && position != frame {
        selection.frame = position;
    }
}

fn readout(ui: &mut Ui, episode: &EpisodeRecord, frame: usize) {
    let step = episode.step_at(frame);
    egui::Grid::new("readout")
        .num_columns(2)
        .spacing([16.0, 6.0])
        .show(ui, |ui| {
            ui.label("step");
            ui.monospace(format!("{frame} / {}", episode.horizon));
            ui.end_row();
            ui.label("reward");
            ui.monospace(step.map_or("–".into(), |s| format!("{:.0}", s.reward)));
            ui.end_row();
            ui.label("cost so far");
            ui.monospace(format!("{:.0}", episode.cost_until(frame)));
            ui.end_row();
            ui.label("constraint");
            match step {
                Some(s) if s.constraint => {
                    ui.label(RichText::new("VIOLATED").strong().color(VIOLATION))
                }
                _ => ui.label("ok"),
            };
            ui.end_row();
            ui.label("violations");
            ui.monospace(episode.violations_until(frame).to_string());
            ui.end_row();
            ui.label("action");
            ui.monospace(step.map_or("–".into(), |s| {
                format!("{:+.2}, {:+.2}", s.action[0], s.action[1])
            }));
            ui.end_row();
            ui.label("state");
            ui.monospace(format_state(&episode.states[frame]))
                .on_hover_text("Ground-truth state after this step (layout per environment)");
            ui.end_row();
            if let Some(outcome) = &episode.outcome {
                ui.label("outcome");
                let text = match (outcome.success, outcome.violated) {
                    (true, false) => RichText::new("goal reached").color(GOAL),
                    (true, true) => RichText::new("goal, with violations").color(HAZARD),
                    (false, true) => RichText::new("violated, no goal").color(VIOLATION),
                    (false, false) => RichText::new("goal not reached"),
                };
                ui.label(text);
                ui.end_row();
            }
        });
}

fn format_state(state: &[f64]) -> String {
    if state.is_empty() {
        return "–".into();
    }
    let shown: Vec<String> = state.iter().take(4).map(|v| format!("{v:.2}")).collect();
    let more = if state.len() > 4 { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

fn legend(ui: &mut Ui) {
    ui.label(RichText::new("Overlay").strong());
    for (color, text) in [
        (HAZARD, "hazard (entering it violates the constraint)"),
        (GOAL, "goal region"),
        (PATH, "path so far"),
        (VIOLATION, "step with a violation"),
    ] {
        ui.horizontal(|ui| {
            let (rect, _) = ui.allocate_exact_size(vec2(14.0, 14.0), Sense::hover());
            ui.painter().rect_stroke(
                rect.shrink(2.0),
                2.0,
                Stroke::new(2.0, color),
                StrokeKind::Inside,
            );
            ui.label(RichText::new(text).small());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::worker::{EpisodeEnd, EpisodeStart, Event, StepEvent};
    use crate::env::{EnvKind, Overlay};

    fn state_with_one_finished_episode() -> AppState {
        let mut state = AppState::default();
        let start = |episode| {
            Event::EpisodeStarted(EpisodeStart {
                episode,
                kind: EnvKind::Navigation,
                demonstrator: "SimplePointBot",
                steps: 2,
                overlay: Overlay {
                    hazards: vec![OverlayShape::Rect {
                        min: [10.0, 10.0],
                        max: [20.0, 30.0],
                    }],
                    goals: vec![OverlayShape::Circle {
                        center: [50.0, 32.0],
                        radius: 2.0,
                    }],
                },
                frame: Frame::black(),
                state: vec![1.0, 2.0],
                marker: [5.0, 5.0],
            })
        };
        state.apply(start(0));
        for t in 1..=2 {
            state.apply(Event::Step(StepEvent {
                episode: 0,
                t,
                action: [1.0, 0.0],
                frame: Frame::black(),
                state: vec![t as f64, 2.0],
                marker: [5.0 + t as f32, 5.0],
                reward: -1.0,
                constraint: t == 2,
                plan: None,
            }));
        }
        state.apply(Event::EpisodeFinished(EpisodeEnd {
            episode: 0,
            steps: 2,
            cost: 2.0,
            success: false,
            violated: true,
        }));
        state.apply(start(1));
        state
    }

    #[test]
    fn selection_scrubs_within_a_replay_and_follows_live_otherwise() {
        let state = state_with_one_finished_episode();
        let mut sel = Selection::default();
        assert_eq!(
            sel.resolve(&state).map(|(e, f)| (e.episode, f)),
            Some((1, 0))
        );
        sel.scrub(&state, 1);
        assert_eq!(sel, Selection::default());

        let uid = state.finished[0].uid;
        sel.replay(uid);
        sel.scrub(&state, 5);
        assert_eq!(sel.frame, 2);
        sel.scrub(&state, -1);
        assert_eq!(
            sel.resolve(&state).map(|(e, f)| (e.episode, f)),
            Some((0, 1))
        );
        sel.scrub(&state, -9);
        assert_eq!(sel.frame, 0);

        let mut restarted = state.clone();
        restarted.apply(Event::Restarted {
            kind: EnvKind::Push,
            seed: 0,
        });
        sel.forget_missing(&restarted);
        assert_eq!(sel, Selection::default());
    }

    type Shown = (EpisodeView, Selection, [bool; 2]);

    /// The episode view of `state`, live, with the overlay and the plans on.
    fn search_harness(state: AppState) -> egui_kittest::Harness<'static, Shown> {
        egui_kittest::Harness::builder()
            .with_size([1000.0, 700.0])
            .with_context_setup(crate::app::app::install_symbol_fallback)
            .build_ui_state(
                move |ui, (view, selection, [overlay, plans]): &mut Shown| {
                    let toggles = SceneToggles { overlay, plans };
                    view.ui(ui, &state, selection, toggles);
                },
                (EpisodeView::default(), Selection::default(), [true, true]),
            )
    }

    #[test]
    fn the_live_search_is_drawn_in_the_scene_only_with_the_toggle_on() {
        use egui_kittest::kittest::Queryable as _;
        let mut state = crate::app::testing::populated();
        state.last_candidates = Some(std::sync::Arc::new(crate::app::testing::search(5, 3)));
        let probe = std::sync::Arc::new(crate::app::testing::scene_probe());
        state.scene_probes.insert(EnvKind::Navigation, probe);
        let finished = state.finished[0].uid;
        let mut h = search_harness(state);
        h.run();
        // 5 elites and the best plan, with its 4 particles; navigation has no further objects.
        let drawn = SearchDrawn {
            plans: 6,
            particles: 4,
            objects: 0,
        };
        assert_eq!(h.state().0.drawn, drawn);
        h.get_by_label_contains("Plans (probe R² 1.00 / 1.00)")
            .click();
        h.run();
        assert!(!h.state().2[1], "the toggle turned off");
        assert_eq!(h.state().0.drawn, SearchDrawn::default());
        // Replaying a finished episode draws no search either (it belongs to the live step).
        h.state_mut().2[1] = true;
        h.state_mut().1.replay(finished);
        h.run();
        assert_eq!(h.state().0.drawn, SearchDrawn::default());
    }

    #[test]
    fn a_probe_with_objects_draws_them_where_the_plan_leaves_them() {
        use egui_kittest::kittest::Queryable as _;
        let mut state = crate::app::testing::populated();
        state.last_candidates = Some(std::sync::Arc::new(crate::app::testing::search(2, 3)));
        let probe = crate::app::testing::scene_probe_with_objects(3);
        state
            .scene_probes
            .insert(EnvKind::Navigation, std::sync::Arc::new(probe));
        let mut h = search_harness(state);
        h.run();
        assert_eq!(h.state().0.drawn.objects, 3);
        h.get_by_label_contains("blocks ≥ 1.00");
    }

    #[test]
    fn the_view_draws_live_and_replayed_episodes_headless() {
        let state = state_with_one_finished_episode();
        let ctx = egui::Context::default();
        let mut view = EpisodeView::default();
        let (mut overlay, mut plans) = (true, true);
        for selection in [
            Selection::default(),
            Selection {
                episode: Some(state.finished[0].uid),
                frame: 2,
            },
        ] {
            let mut sel = selection;
            let input = egui::RawInput {
                screen_rect: Some(Rect::from_min_size(Pos2::ZERO, vec2(1000.0, 700.0))),
                ..Default::default()
            };
            let mut out = ctx.run_ui(input, |ui| {
                egui::CentralPanel::default().show(ui, |ui| {
                    let toggles = SceneToggles {
                        overlay: &mut overlay,
                        plans: &mut plans,
                    };
                    view.ui(ui, &state, &mut sel, toggles);
                });
            });
            assert!(!out.shapes.is_empty());
            out.textures_delta.clear();
            assert_eq!(sel, selection);
        }
        assert_eq!(
            image_side(1000.0 - READOUT_WIDTH, 700.0 - CHROME_HEIGHT),
            576.0
        );
    }
}
