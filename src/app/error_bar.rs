//! The worker's latest error, shown until dismissed (a newer error shows again).

use super::state::AppState;
use egui::{Color32, RichText, Ui};

/// True when there is an error the person has not dismissed.
pub fn pending(state: &AppState, dismissed: u64) -> bool {
    state.error_count > dismissed && !state.errors.is_empty()
}

/// Draws the latest error; the × button sets `dismissed` to the current error count.
pub fn ui(ui: &mut Ui, state: &AppState, dismissed: &mut u64) {
    let Some(message) = state.errors.back() else {
        return;
    };
    ui.horizontal(|ui| {
        let red = Color32::from_rgb(255, 110, 110);
        ui.label(RichText::new("▲ worker error").strong().color(red));
        let more = state.error_count - *dismissed;
        if more > 1 {
            ui.label(RichText::new(format!("({more} new)")).color(red));
        }
        ui.label(message);
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.small_button("×").on_hover_text("Dismiss").clicked() {
                *dismissed = state.error_count;
            }
        });
    });
}
