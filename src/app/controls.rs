//! The controls panel: every planner setting live, the training parameters (applied from the
//! next phase of a run), presets, and the file actions — configurations, agent checkpoints,
//! datasets, `.pth` imports — through native dialogs on a helper thread. It only edits a draft
//! and returns [`Command`]s; the worker does the file work and reports back.

use super::settings::Settings;
use super::state::AppState;
use super::worker::Command;
use crate::config::{Config, Preset};
use crate::model::agent::ModuleKind;
use crate::planner::{CandidateStats, Fallback, PlannerConfig};
use crossbeam_channel::{Receiver, Sender};
use egui::{RichText, Ui};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The panel's state: the configuration being edited and the dialogs in flight.
pub struct Controls {
    draft: Config,
    /// The [`AppState::config_version`] the draft was last taken from.
    synced: u64,
    dialogs: Dialogs,
}

impl Controls {
    /// Controls starting from the quick preset of `kind` (replaced by the worker's report).
    pub fn new(kind: crate::env::EnvKind) -> Self {
        Self {
            draft: Config::quick(kind),
            synced: 0,
            dialogs: Dialogs::new(),
        }
    }

    /// Paths chosen in dialogs since the last call, as commands.
    pub fn poll(&mut self) -> Vec<Command> {
        self.dialogs.results.try_iter().collect()
    }

    /// Draws the panel; returns the commands the person asked for.
    pub fn ui(&mut self, ui: &mut Ui, state: &AppState, settings: &mut Settings) -> Vec<Command> {
        if state.config_version != self.synced {
            self.synced = state.config_version;
            if let Some(config) = &state.config {
                self.draft = config.clone();
                // A configuration file may have brought new planner settings: keep them.
                if settings.planner.is_some() {
                    settings.planner = Some(config.planner.clone());
                }
            }
        }
        let mut commands = Vec::new();
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::CollapsingHeader::new("Planner")
                .default_open(true)
                .show(ui, |ui| {
                    if planner_ui(ui, &mut self.draft.planner) {
                        settings.planner = Some(self.draft.planner.clone());
                        commands.push(Command::SetPlanner(self.draft.planner.clone()));
                    }
                    if let Some(text) = state
                        .last_candidates
                        .as_deref()
                        .map(|c| feasibility_preview(c, &self.draft.planner))
                    {
                        ui.label(RichText::new(text).small()).on_hover_text(
                            "The latest planner call's candidates re-scored at these \
                                 thresholds (no new planning); 'now': feasible at the \
                                 thresholds that call ended with",
                        );
                    }
                });
            egui::CollapsingHeader::new("Training")
                .default_open(true)
                .show(ui, |ui| {
                    commands.extend(self.training_ui(ui, state, settings));
                });
            egui::CollapsingHeader::new("Files")
                .default_open(true)
                .show(ui, |ui| self.files_ui(ui, ui.ctx().clone()));
            if let Some(notice) = &state.notice {
                ui.separator();
                ui.label(RichText::new(notice).weak());
            }
        });
        commands
    }

    fn training_ui(
        &mut self,
        ui: &mut Ui,
        state: &AppState,
        settings: &mut Settings,
    ) -> Vec<Command> {
        let mut commands = Vec::new();
        let kind = self.draft.env;
        ui.horizontal(|ui| {
            ui.label("Preset");
            for preset in [Preset::Quick, Preset::Paper] {
                let hover = match preset {
                    Preset::Quick => "A small CPU budget: a usable agent in minutes",
                    Preset::Paper => "The published hyperparameters (hours on a GPU)",
                };
                if ui.button(preset.name()).on_hover_text(hover).clicked() {
                    self.draft = Config::preset(preset, kind);
                    settings.planner = Some(self.draft.planner.clone());
                    commands.push(Command::SetPlanner(self.draft.planner.clone()));
                    commands.push(Command::SetConfig(Box::new(self.draft.clone())));
                }
            }
        });
        let mut changed = false;
        let c = &mut self.draft;
        egui::Grid::new("training_grid")
            .num_columns(2)
            .striped(true)
            .show(ui, |ui| {
                changed |= count(ui, "rounds", &mut c.online.num_updates, 1..=200);
                changed |= count(
                    ui,
                    "episodes per round",
                    &mut c.online.traj_per_update,
                    1..=100,
                );
                changed |= count(ui, "VAE iterations", &mut c.vae.iterations, 1..=1_000_000);
            });
        egui::Grid::new("module_grid")
            .num_columns(4)
            .striped(true)
            .show(ui, |ui| {
                ui.label("module");
                ui.label("initial");
                ui.label("per round");
                ui.label("learning rate");
                ui.end_row();
                for m in ModuleKind::LATENT {
                    let Some((init, update, lr)) = c.schedule_mut(m) else {
                        continue;
                    };
                    ui.label(m.name());
                    let name = m.name();
                    changed |= ui
                        .add(egui::DragValue::new(init).range(1..=1_000_000))
                        .accessible_name(format!("{name} initial iterations"))
                        .changed();
                    changed |= ui
                        .add(egui::DragValue::new(update).range(1..=1_000_000))
                        .accessible_name(format!("{name} iterations per round"))
                        .changed();
                    changed |= ui
                        .add(
                            egui::DragValue::new(lr)
                                .range(1e-6..=1.0)
                                .speed(1e-5)
                                .max_decimals(6),
                        )
                        .accessible_name(format!("{name} learning rate"))
                        .changed();
                    ui.end_row();
                }
            });
        if changed {
            commands.push(Command::SetConfig(Box::new(self.draft.clone())));
        }
        if let Some(dir) = &state.analysis.training.run_dir {
            ui.label(RichText::new(format!("run: {}", dir.display())).weak())
                .on_hover_text("The folder of the latest training run");
        }
        commands
    }

    fn files_ui(&mut self, ui: &mut Ui, ctx: egui::Context) {
        let busy = self.dialogs.busy();
        ui.add_enabled_ui(!busy, |ui| {
            ui.horizontal_wrapped(|ui| {
                let mut ask = |label: &str, hover: &str, dialog: Dialog| {
                    if ui.button(label).on_hover_text(hover).clicked() {
                        self.dialogs.open(dialog, ctx.clone());
                    }
                };
                ask(
                    "Load configuration…",
                    "Read training and planner settings from a JSON file",
                    Dialog::LoadConfig,
                );
                ask(
                    "Save configuration…",
                    "Write the settings in effect as JSON",
                    Dialog::SaveConfig,
                );
                ask(
                    "Load agent…",
                    "Let the agent of a checkpoint folder act",
                    Dialog::LoadAgent,
                );
                ask(
                    "Save agent…",
                    "Write the acting (or training) agent as a checkpoint folder",
                    Dialog::SaveAgent,
                );
                ask(
                    "Open dataset…",
                    "Demo sets (ls3 collect layout) for Train from scratch",
                    Dialog::OpenDataset,
                );
                ask(
                    "Open run…",
                    "Overlay a finished run's rounds on the curves (a run folder, an \
                     `ls3 results` folder for LS3 and both ablations, or an `ls3 sweep` folder \
                     for each variant's mean ± std over its finished seeds)",
                    Dialog::OpenRun,
                );
                ask(
                    "Import .pth…",
                    "The original implementation's vae.pth, dyn.pth, … (pick their folder)",
                    Dialog::ImportTorch,
                );
            });
        });
        if busy {
            ui.label(RichText::new("a file dialog is open…").weak());
        }
    }
}

/// Draws every planner setting; true when one changed.
/// "at 0.65 / 0.20: 212 of 500 feasible (now 31)": the last call's candidates re-scored at the
/// safe-set / constraint thresholds of `planner`.
pub fn feasibility_preview(c: &CandidateStats, planner: &PlannerConfig) -> String {
    format!(
        "at {:.2} / {:.2}: {} of {} feasible (now {})",
        planner.safe_set_threshold,
        planner.constraint_threshold,
        c.feasible_at(planner),
        c.len(),
        c.feasible_now
    )
}

fn planner_ui(ui: &mut Ui, p: &mut PlannerConfig) -> bool {
    let mut changed = false;
    egui::Grid::new("planner_grid")
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            changed |= unit(ui, "safe-set threshold", &mut p.safe_set_threshold);
            changed |= unit(ui, "constraint threshold", &mut p.constraint_threshold);
            let l = ui
                .label("goal threshold")
                .on_hover_text("On the goal classifier's logit");
            changed |= ui
                .add(
                    egui::DragValue::new(&mut p.goal_threshold)
                        .range(-20.0..=20.0)
                        .speed(0.05),
                )
                .labelled_by(l.id)
                .changed();
            ui.end_row();
            changed |= count(ui, "horizon", &mut p.horizon, 1..=50);
            changed |= count(ui, "population", &mut p.population, 1..=100_000);
            let population = p.population;
            changed |= count(ui, "elites", &mut p.elites, 1..=population);
            changed |= count(ui, "particles", &mut p.particles, 1..=200);
            changed |= count(ui, "CEM iterations", &mut p.iterations, 1..=50);
            let l = ui.label("disagreement penalty").on_hover_text(
                "A plan's score loses this many standard deviations of its particles' terminal \
                 value (0: the paper's score)",
            );
            changed |= ui
                .add(
                    egui::DragValue::new(&mut p.disagreement_penalty)
                        .range(0.0..=10.0)
                        .speed(0.05),
                )
                .labelled_by(l.id)
                .changed();
            ui.end_row();
        });
    changed |= ui
        .checkbox(&mut p.ignore_safe_set, "ignore safe set")
        .on_hover_text("Ablation: plans need not end in the safe set")
        .changed();
    changed |= ui
        .checkbox(&mut p.ignore_constraints, "ignore constraints")
        .on_hover_text("Ablation: predicted constraint violations are not penalised")
        .changed();
    changed |= ui
        .checkbox(&mut p.particle_members, "a dynamics member per particle")
        .on_hover_text(
            "Each particle keeps one ensemble member for the whole plan, so the particles' spread \
             shows where the members disagree (the paper: one random member per step for all)",
        )
        .changed();
    changed |= ui
        .checkbox(&mut p.safe_set_every_step, "safe set at every step")
        .on_hover_text(
            "Every step of a plan must lie in the safe set, not only its end (the paper's), so a \
             plan cannot leave the safe set and imagine its way back",
        )
        .changed();
    changed |= ui
        .checkbox(&mut p.act_on_mean, "act on elite mean")
        .on_hover_text(
            "Execute the final elite mean's first action instead of the best candidate's",
        )
        .changed();
    ui.horizontal(|ui| {
        ui.label("no feasible plan:")
            .on_hover_text("What the planner does when no plan is feasible at any threshold");
        for (value, text, hover) in [
            (
                Fallback::Random,
                "random action",
                "A uniformly random action (the paper's)",
            ),
            (
                Fallback::SafestPlan,
                "safest plan",
                "The candidate with the fewest predicted violations, then the highest safe-set \
                 probability at its end",
            ),
        ] {
            changed |= ui
                .radio_value(&mut p.fallback, value, text)
                .on_hover_text(hover)
                .changed();
        }
    });
    changed
}

/// A labelled 0..1 slider row.
fn unit(ui: &mut Ui, label: &str, value: &mut f32) -> bool {
    let l = ui.label(label);
    let changed = ui
        .add(egui::Slider::new(value, 0.0..=1.0))
        .labelled_by(l.id)
        .changed();
    ui.end_row();
    changed
}

/// A labelled integer row.
fn count(
    ui: &mut Ui,
    label: &str,
    value: &mut usize,
    range: std::ops::RangeInclusive<usize>,
) -> bool {
    let l = ui.label(label);
    let changed = ui
        .add(egui::DragValue::new(value).range(range))
        .labelled_by(l.id)
        .changed();
    ui.end_row();
    changed
}

/// What a dialog asks for, and the command its answer becomes.
#[derive(Clone, Copy, Debug)]
enum Dialog {
    LoadConfig,
    SaveConfig,
    LoadAgent,
    SaveAgent,
    OpenDataset,
    OpenRun,
    ImportTorch,
}

impl Dialog {
    /// Shows the native dialog (blocking its thread) and returns the command for the answer.
    fn ask(self) -> Option<Command> {
        let d = rfd::FileDialog::new();
        let json = |d: rfd::FileDialog| d.add_filter("JSON", &["json"]);
        let path: Option<PathBuf> = match self {
            Dialog::LoadConfig => json(d.set_title("Load configuration")).pick_file(),
            Dialog::SaveConfig => json(d.set_title("Save configuration"))
                .set_file_name("ls3-config.json")
                .save_file(),
            Dialog::LoadAgent => d.set_title("Load agent checkpoint folder").pick_folder(),
            Dialog::SaveAgent => d
                .set_title("Save agent checkpoint folder")
                .set_file_name("agent")
                .save_file(),
            Dialog::OpenDataset => d.set_title("Open dataset folder").pick_folder(),
            Dialog::OpenRun => d
                .set_title("Open run, results or sweep folder")
                .pick_folder(),
            Dialog::ImportTorch => d
                .set_title("Import original .pth checkpoints (pick any of them)")
                .add_filter("PyTorch", &["pth"])
                .pick_file(),
        };
        let path = path?;
        Some(match self {
            Dialog::LoadConfig => Command::LoadConfig(path),
            Dialog::SaveConfig => Command::SaveConfig(path),
            Dialog::LoadAgent => Command::LoadAgent(path),
            Dialog::SaveAgent => Command::SaveAgent(path),
            Dialog::OpenDataset => Command::OpenDataset(path),
            Dialog::OpenRun => Command::OpenRun(path),
            Dialog::ImportTorch => Command::ImportTorch(path),
        })
    }
}

/// Native dialogs block their thread, so each runs on a helper thread; one at a time.
struct Dialogs {
    open: Arc<AtomicBool>,
    send: Sender<Command>,
    results: Receiver<Command>,
}

impl Dialogs {
    fn new() -> Self {
        let (send, results) = crossbeam_channel::unbounded();
        Self {
            open: Arc::new(AtomicBool::new(false)),
            send,
            results,
        }
    }

    fn busy(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    fn open(&mut self, dialog: Dialog, ctx: egui::Context) {
        if self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        let (open, send) = (self.open.clone(), self.send.clone());
        let spawned = std::thread::Builder::new()
            .name("ls3-file-dialog".into())
            .spawn(move || {
                if let Some(command) = dialog.ask() {
                    let _ = send.send(command);
                }
                open.store(false, Ordering::Release);
                ctx.request_repaint();
            });
        if spawned.is_err() {
            self.open.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;

    type Panel = (Controls, AppState, Settings, Vec<Command>);

    fn harness(state: AppState) -> Harness<'static, Panel> {
        let controls = Controls::new(crate::env::EnvKind::Navigation);
        Harness::builder().with_size([320.0, 900.0]).build_ui_state(
            |ui, (controls, state, settings, sent): &mut Panel| {
                sent.extend(controls.ui(ui, state, settings));
            },
            (controls, state, Settings::default(), Vec::new()),
        )
    }

    #[test]
    fn moving_the_safe_set_threshold_previews_the_feasible_count_without_planning() {
        // 500 candidates, safe-set probability i / 500, every second one violating (0.5 > 0.2).
        let mut state = AppState::default();
        state.last_candidates = Some(Arc::new(testing::candidates(500)));
        let mut h = harness(state);
        h.run();
        // Quick preset: 0.8 / 0.2 → i ≥ 400 and even: 50.
        h.get_by_label_contains("at 0.80 / 0.20: 50 of 500 feasible (now 50)");

        h.get_by_role_and_label(egui::accesskit::Role::Slider, "safe-set threshold")
            .set_value_accesskit(0.5);
        h.run();
        // i ≥ 250 and even: 125; the last call's own count is unchanged.
        h.get_by_label_contains("at 0.50 / 0.20: 125 of 500 feasible (now 50)");
        let (_, state, _, sent) = h.state();
        assert_eq!(
            state.last_candidates.as_ref().map(|c| c.feasible_now),
            Some(50),
            "the preview re-scored the stored candidates"
        );
        // The new threshold goes to the worker for the next step, and nothing else does.
        assert!(
            sent.iter()
                .all(|c| matches!(c, Command::SetPlanner(p) if p.safe_set_threshold == 0.5)),
            "{sent:?}"
        );
        assert!(!sent.is_empty());
    }

    #[test]
    fn the_member_per_particle_switch_goes_to_the_worker() {
        let mut h = harness(AppState::default());
        h.run();
        // Navigation's quick preset has it on; one click turns it off for the next step.
        h.get_by_label("a dynamics member per particle").click();
        h.run();
        let (_, _, _, sent) = h.state();
        assert!(
            sent.iter()
                .any(|c| matches!(c, Command::SetPlanner(p) if !p.particle_members)),
            "{sent:?}"
        );
    }

    #[test]
    fn no_preview_before_the_first_planner_call() {
        let mut h = harness(AppState::default());
        h.run();
        assert!(h.query_by_label_contains("feasible (now").is_none());
    }
}
