//! Keyboard shortcuts. Keys are consumed before any widget sees them, so Space never also
//! presses a focused button.

use super::state::AppState;
use super::views::episode::Selection;
use super::worker::{Command, WorkerState};
use egui::{Key, Modifiers};

/// Space = play/pause; S = step while paused; ← / → scrub a replayed episode (→ steps while
/// paused and live); ↑ / ↓ pick a newer / older episode; Esc follows the live episode.
pub fn handle(ctx: &egui::Context, state: &AppState, selection: &mut Selection) -> Vec<Command> {
    let pressed = |key| ctx.input_mut(|i| i.consume_key(Modifiers::NONE, key));
    let paused = state.worker == WorkerState::Paused;
    let replaying = selection.episode.is_some();
    let mut commands = Vec::new();
    if pressed(Key::Space) {
        commands.push(if paused {
            Command::Play
        } else {
            Command::Pause
        });
    }
    if pressed(Key::S) && paused {
        commands.push(Command::Step);
    }
    if pressed(Key::ArrowRight) {
        if replaying {
            selection.scrub(state, 1);
        } else if paused {
            commands.push(Command::Step);
        }
    }
    if pressed(Key::ArrowLeft) {
        selection.scrub(state, -1);
    }
    if pressed(Key::ArrowUp) {
        pick(state, selection, true);
    }
    if pressed(Key::ArrowDown) {
        pick(state, selection, false);
    }
    if pressed(Key::Escape) {
        selection.follow_live();
    }
    commands
}

/// Moves the selection one entry up (newer) or down (older) the episode list; live is on top.
fn pick(state: &AppState, selection: &mut Selection, newer: bool) {
    let list: Vec<Option<u64>> = std::iter::once(None)
        .chain(state.newest_first().map(|e| Some(e.uid)))
        .collect();
    let at = list
        .iter()
        .position(|&uid| uid == selection.episode)
        .unwrap_or(0);
    let to = if newer {
        at.saturating_sub(1)
    } else {
        (at + 1).min(list.len() - 1)
    };
    match list[to] {
        Some(uid) if Some(uid) != selection.episode => selection.replay(uid),
        Some(_) => {}
        None => selection.follow_live(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::worker::{EpisodeEnd, EpisodeStart, Event, StepEvent};
    use crate::env::{EnvKind, Frame, Overlay};

    /// Runs one frame in which `keys` are pressed and returns the commands.
    fn press(state: &AppState, selection: &mut Selection, keys: &[Key]) -> Vec<Command> {
        let ctx = egui::Context::default();
        let events = keys
            .iter()
            .map(|&key| egui::Event::Key {
                key,
                physical_key: None,
                pressed: true,
                repeat: false,
                modifiers: Modifiers::NONE,
            })
            .collect();
        let input = egui::RawInput {
            events,
            ..Default::default()
        };
        let mut commands = Vec::new();
        ctx.run_ui(input, |ui| {
            commands = handle(ui.ctx(), state, selection);
        })
        .textures_delta
        .clear();
        commands
    }

    fn state() -> AppState {
        let mut state = AppState::default();
        for episode in 0..2 {
            state.apply(Event::EpisodeStarted(EpisodeStart {
                episode,
                kind: EnvKind::Navigation,
                demonstrator: "SimplePointBot",
                steps: 1,
                overlay: Overlay::default(),
                frame: Frame::black(),
                state: vec![],
                marker: [0.0; 2],
            }));
            state.apply(Event::Step(StepEvent {
                episode,
                t: 1,
                action: [0.0; 2],
                frame: Frame::black(),
                state: vec![],
                marker: [1.0; 2],
                reward: -1.0,
                constraint: false,
                plan: None,
            }));
            state.apply(Event::EpisodeFinished(EpisodeEnd {
                episode,
                steps: 1,
                cost: 1.0,
                success: false,
                violated: false,
            }));
        }
        state
    }

    #[test]
    fn space_toggles_play_and_s_or_right_steps_only_while_paused() {
        let mut state = state();
        let mut sel = Selection::default();
        assert_eq!(press(&state, &mut sel, &[Key::Space]), [Command::Play]);
        assert_eq!(press(&state, &mut sel, &[Key::S]), [Command::Step]);
        assert_eq!(press(&state, &mut sel, &[Key::ArrowRight]), [Command::Step]);
        state.apply(Event::State(WorkerState::Playing));
        assert_eq!(press(&state, &mut sel, &[Key::Space]), [Command::Pause]);
        assert!(press(&state, &mut sel, &[Key::S, Key::ArrowRight]).is_empty());
    }

    #[test]
    fn arrows_scrub_and_pick_replayed_episodes_and_escape_follows_live() {
        let state = state();
        let mut sel = Selection::default();
        assert!(press(&state, &mut sel, &[Key::ArrowDown]).is_empty());
        let newest = state.finished[1].uid;
        assert_eq!(
            sel,
            Selection {
                episode: Some(newest),
                frame: 0
            }
        );
        assert!(press(&state, &mut sel, &[Key::ArrowRight]).is_empty());
        assert_eq!(sel.frame, 1);
        press(&state, &mut sel, &[Key::ArrowLeft]);
        assert_eq!(sel.frame, 0);
        press(&state, &mut sel, &[Key::ArrowDown, Key::ArrowDown]);
        assert_eq!(sel.episode, Some(state.finished[0].uid));
        press(&state, &mut sel, &[Key::ArrowUp]);
        assert_eq!(sel.episode, Some(newest));
        press(&state, &mut sel, &[Key::Escape]);
        assert_eq!(sel, Selection::default());
    }
}
