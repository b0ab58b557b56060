//! The side panel: summary of the agent's or demonstrator's episodes so far and the list to pick one to
//! replay.

use super::episode::{GOAL, HAZARD, Selection, VIOLATION};
use crate::app::state::{AppState, EpisodeRecord};
use egui::{Color32, RichText, Ui};

/// Draws the summary and the episode list; clicking an entry edits `selection`.
pub fn ui(ui: &mut Ui, state: &AppState, selection: &mut Selection) {
    ui.add_space(4.0);
    // Who acts: a training run's agent (also before its first episode), else the live
    // episode's actor (a trained agent or the task demonstrator).
    use crate::app::worker::{AGENT_NAME, TRAINING_AGENT_NAME};
    let training = state.analysis.training.progress.is_some();
    let demonstrator = if training {
        TRAINING_AGENT_NAME
    } else {
        state
            .live
            .as_ref()
            .map(|l| l.demonstrator)
            .or_else(|| state.kind.demo_sets().first().map(|set| set.name))
            .unwrap_or("–")
    };
    ui.heading(match demonstrator {
        TRAINING_AGENT_NAME => "LS3 agent, training",
        AGENT_NAME => "Trained agent",
        _ => "Task demonstrator",
    });
    ui.label(
        RichText::new(format!(
            "{} · {demonstrator} · seed {}",
            state.kind, state.seed
        ))
        .weak(),
    );
    ui.add_space(6.0);
    summary(ui, state);
    ui.separator();
    ui.horizontal(|ui| {
        ui.strong("Episodes");
        ui.label(
            RichText::new(format!("(last {} kept)", state.capacity))
                .weak()
                .small(),
        );
    });
    ui.label(
        RichText::new("Click one to replay it; Esc follows live.")
            .weak()
            .small(),
    );
    ui.add_space(4.0);
    list(ui, state, selection);
}

fn summary(ui: &mut Ui, state: &AppState) {
    let t = &state.totals;
    let percent = |x: Option<f64>| x.map_or("–".to_string(), |x| format!("{:.0} %", 100.0 * x));
    egui::Grid::new("summary")
        .num_columns(2)
        .spacing([24.0, 4.0])
        .show(ui, |ui| {
            ui.label("episodes");
            ui.monospace(t.episodes.to_string());
            ui.end_row();
            ui.label("success");
            ui.monospace(percent(t.success_rate()))
                .on_hover_text("Episodes that reached the goal at least once");
            ui.end_row();
            ui.label("violations");
            ui.monospace(percent(t.violation_rate()))
                .on_hover_text("Episodes that violated the constraint at least once");
            ui.end_row();
            ui.label("mean cost");
            ui.monospace(t.mean_cost().map_or("–".into(), |c| format!("{c:.1}")))
                .on_hover_text("Mean number of steps spent outside the goal");
            ui.end_row();
        });
}

fn list(ui: &mut Ui, state: &AppState, selection: &mut Selection) {
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            if let Some(live) = &state.live {
                let text = RichText::new(format!(
                    "● live   #{:<4} step {}/{}",
                    live.episode,
                    live.len(),
                    live.horizon
                ))
                .monospace()
                .color(GOAL);
                if ui
                    .selectable_label(selection.episode.is_none(), text)
                    .on_hover_text("Follow the live episode (Esc)")
                    .clicked()
                {
                    selection.follow_live();
                }
            }
            for episode in state.newest_first() {
                let selected = selection.episode == Some(episode.uid);
                if ui
                    .selectable_label(selected, entry(episode))
                    .on_hover_text("Replay this episode (← / → to scrub)")
                    .clicked()
                {
                    selection.replay(episode.uid);
                }
            }
            if state.finished.is_empty() {
                ui.label(RichText::new("No finished episode yet — press Play.").weak());
            }
        });
}

fn entry(episode: &EpisodeRecord) -> egui::text::LayoutJob {
    let mut job = egui::text::LayoutJob::default();
    let font = egui::TextStyle::Monospace.resolve(&egui::Style::default());
    let mut add = |text: &str, color: Color32| {
        job.append(
            text,
            0.0,
            egui::TextFormat {
                font_id: font.clone(),
                color,
                ..Default::default()
            },
        );
    };
    let plain = Color32::from_gray(200);
    add(&format!("  #{:<4}", episode.episode), plain);
    if let Some(outcome) = &episode.outcome {
        if outcome.success {
            add(" √ goal ", GOAL);
        } else {
            add(" × miss ", HAZARD);
        }
        add(&format!(" cost {:>3.0}", outcome.cost), plain);
        if outcome.violated {
            let n = episode.violations_until(episode.len());
            add(&format!("  ▲ {n}"), VIOLATION);
        }
    }
    job
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::data::JobProgress;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;

    fn heading_of(state: AppState) -> Harness<'static, Selection> {
        let mut h = Harness::builder().with_size([300.0, 600.0]).build_ui_state(
            move |ui, selection| super::ui(ui, &state, selection),
            Selection::default(),
        );
        h.run();
        h
    }

    #[test]
    fn the_side_panel_names_who_acts_a_training_run_included() {
        let h = heading_of(AppState::default());
        h.get_by_label("Task demonstrator");

        let mut training = AppState::default();
        training.analysis.training.progress = Some(JobProgress {
            phase: "VAE".into(),
            done: 10,
            total: 1000,
            eta: None,
            loss: None,
        });
        let h = heading_of(training);
        h.get_by_label("LS3 agent, training");
        assert!(h.query_by_label("Task demonstrator").is_none());

        // A loaded agent's episodes.
        let h = heading_of(crate::app::testing::populated());
        h.get_by_label("Trained agent");
    }
}
