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
    // The training job gets a row of its own, so it never runs into the status on the right.
    if let Some(p) = state.analysis.training.progress.as_ref() {
        ui.horizontal(|ui| {
            ui.add_space(2.0);
            let fraction = if p.total > 0 {
                p.done as f32 / p.total as f32
            } else {
                0.0
            };
            ui.add(
                egui::ProgressBar::new(fraction.clamp(0.0, 1.0))
                    .desired_width(160.0)
                    .desired_height(12.0),
            );
            ui.label(job(p));
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;

    #[test]
    fn training_progress_and_play_status_do_not_overlap_in_a_narrow_window() {
        let mut state = testing::populated();
        state.worker = WorkerState::Playing;
        state.analysis.training.progress = Some(JobProgress {
            phase: "round 1/5 episode 1/4".into(),
            done: 49,
            total: 100,
            eta: Some(std::time::Duration::from_secs(95)),
            loss: Some(0.0123),
        });
        let mut h = Harness::builder()
            .with_size([1000.0, 80.0])
            .with_context_setup(crate::app::app::install_symbol_fallback)
            .build_ui_state(
                move |ui, (settings, times): &mut (Settings, FrameTimes)| {
                    super::ui(ui, &state, settings, times);
                },
                (Settings::default(), FrameTimes::default()),
            );
        h.run();
        let job = h
            .get_by_label_contains("round 1/5 episode 1/4 49/100")
            .rect();
        let status = h.get_by_label_contains("● playing").rect();
        assert!(!job.intersects(status), "{job:?} overlaps {status:?}");
    }
}
