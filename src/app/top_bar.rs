//! The top bar: environment, Play / Pause / Step / Reset, pace, Train from scratch / Stop, the
//! training job's phase, progress and time left, what the worker is doing, and how long the UI
//! takes per frame. It edits the persisted settings and returns the commands for the worker.

use super::data::JobProgress;
use super::frame_times::FrameTimes;
use super::settings::Settings;
use super::state::AppState;
use super::worker::{Command, WorkerState};
use crate::env::EnvKind;
use egui::{RichText, Ui};

/// Draws the bar; returns the commands the person asked for.
pub fn ui(
    ui: &mut Ui,
    state: &AppState,
    settings: &mut Settings,
    frame_times: &FrameTimes,
) -> Vec<Command> {
    let mut commands = Vec::new();
    ui.horizontal(|ui| {
        ui.add_space(2.0);
        ui.label(RichText::new("LS3 Studio").heading().strong());
        ui.separator();

        let label = ui.label("Environment");
        let before = settings.env;
        egui::ComboBox::from_id_salt("environment")
            .selected_text(settings.env.name())
            .show_ui(ui, |ui| {
                for kind in EnvKind::ALL {
                    ui.selectable_value(&mut settings.env, kind, kind.name());
                }
            })
            .response
            .labelled_by(label.id)
            .on_hover_text("Which task to show; switching restarts at episode 0");
        if settings.env != before {
            commands.push(Command::SetEnv(settings.env));
        }
        ui.separator();

        let playing = state.worker == WorkerState::Playing;
        let (label, command) = if playing {
            ("‖ Pause", Command::Pause)
        } else {
            ("▶ Play", Command::Play)
        };
        if ui
            .add(egui::Button::new(label).min_size(egui::vec2(78.0, 0.0)))
            .on_hover_text("Play / pause the task demonstrator (Space)")
            .clicked()
        {
            commands.push(command);
        }
        if ui
            .add_enabled(!playing, egui::Button::new("⇥ Step"))
            .on_hover_text("One environment step while paused (S or →)")
            .on_disabled_hover_text("Pause first (Space) to step one environment step at a time")
            .clicked()
        {
            commands.push(Command::Step);
        }
        if ui
            .button("↺ Reset")
            .on_hover_text("Restart this environment's demonstrations from episode 0 (paused)")
            .clicked()
        {
            commands.push(Command::Reset);
        }
        ui.separator();

        let response = ui
            .add(
                egui::Slider::new(&mut settings.speed, 1.0..=500.0)
                    .logarithmic(true)
                    .integer()
                    .suffix(" steps/s"),
            )
            .on_hover_text("Pace of play");
        if response.changed() {
            commands.push(Command::SetSpeed(settings.speed));
        }

        ui.separator();

        let training = state.analysis.training.progress.as_ref();
        if training.is_some() {
            if ui
                .button("■ Stop")
                .on_hover_text("Stop training between two steps; the run folder stays consistent")
                .clicked()
            {
                commands.push(Command::StopTraining);
            }
        } else if ui
            .button("Train from scratch")
            .on_hover_text(
                "Train a new agent for this environment with the configuration in the controls \
                 (collect demos, VAE, latent modules, rounds), shown live",
            )
            .clicked()
        {
            commands.push(Command::TrainFromScratch);
        }
        if let Some(p) = training {
            ui.label(job(p));
        }

        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if let Some((p50, p95)) = frame_times.p50_p95() {
                ui.label(
                    RichText::new(format!(
                        "{:.1} / {:.1} ms",
                        p50.as_secs_f64() * 1e3,
                        p95.as_secs_f64() * 1e3
                    ))
                    .weak()
                    .monospace(),
                )
                .on_hover_text(format!(
                    "Time to build a UI frame: median / 95th percentile of the last {} frames",
                    frame_times.len()
                ));
            }
            ui.label(status(state));
        });
    });
    commands
}

fn status(state: &AppState) -> RichText {
    let progress = state.live.as_ref().map_or(String::new(), |live| {
        format!(
            " · episode {} · step {}/{}",
            live.episode,
            live.len(),
            live.horizon
        )
    });
    match state.worker {
        WorkerState::Playing => {
            RichText::new(format!("● playing{progress}")).color(super::views::episode::GOAL)
        }
        WorkerState::Paused => RichText::new(format!("‖ paused{progress}")).weak(),
    }
}

/// "vae 1200/5000 · 0:42 left · loss 0.013".
fn job(p: &JobProgress) -> String {
    let mut s = format!("{} {}/{}", p.phase, p.done, p.total);
    if let Some(eta) = p.eta {
        let secs = eta.as_secs();
        s += &format!(" · {}:{:02} left", secs / 60, secs % 60);
    }
    if let Some(loss) = p.loss {
        s += &format!(" · loss {loss:.4}");
    }
    s
}
