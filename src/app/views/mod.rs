//! The central panel: a tab bar (Episode | Plan | Latents | Heatmaps | Curves, keys 1–5) over the
//! selected view, and the episode list of the side panel. Each view is a function of the
//! [`AppState`]; this module only picks one.

pub mod curves;
pub mod episode;
pub mod episode_list;
mod heatmap_gpu;
pub mod heatmaps;
pub mod latents;
pub mod learning;
pub mod plan;

use crate::app::state::AppState;
use eframe::egui_wgpu::RenderState;
use egui::{Key, Modifiers, Ui};
use episode::{EpisodeView, SceneToggles, Selection};
use heatmaps::HeatmapView;
use latents::LatentView;
use plan::PlanView;
use serde::{Deserialize, Serialize};

/// The views of the central panel, in tab order.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Tab {
    #[default]
    Episode,
    Plan,
    Latents,
    Heatmaps,
    Curves,
}

impl Tab {
    pub const ALL: [Tab; 5] = [
        Tab::Episode,
        Tab::Plan,
        Tab::Latents,
        Tab::Heatmaps,
        Tab::Curves,
    ];

    /// The tab's label.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Episode => "Episode",
            Tab::Plan => "Plan",
            Tab::Latents => "Latents",
            Tab::Heatmaps => "Heatmaps",
            Tab::Curves => "Curves",
        }
    }

    /// The digit key that selects the tab (1 for the first).
    pub fn key(self) -> Key {
        [Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5][self as usize]
    }
}

/// The views and what each keeps between frames (textures, GPU resources, exports).
#[derive(Default)]
pub struct Views {
    episode: EpisodeView,
    plan: PlanView,
    latents: LatentView,
    heatmaps: HeatmapView,
}

impl Views {
    /// Draws the tab bar and the selected view. `render` is the wgpu renderer when the window has
    /// one (the heatmaps then draw on the GPU; without it they are coloured on the CPU).
    pub fn ui(
        &mut self,
        ui: &mut Ui,
        state: &AppState,
        selection: &mut Selection,
        tab: &mut Tab,
        toggles: SceneToggles<'_>,
        render: Option<&RenderState>,
    ) {
        select_by_key(ui.ctx(), tab);
        tab_bar(ui, tab);
        ui.separator();
        match *tab {
            Tab::Episode => self.episode.ui(ui, state, selection, toggles),
            Tab::Plan => self.plan.ui(ui, state, selection),
            Tab::Latents => self.latents.ui(ui, state, selection),
            Tab::Heatmaps => self.heatmaps.ui(ui, state, selection, render),
            Tab::Curves => curves::ui(ui, &state.analysis.training),
        }
    }
}

/// Keys 1–5 pick a tab, unless a text field has the keyboard.
fn select_by_key(ctx: &egui::Context, tab: &mut Tab) {
    if ctx.egui_wants_keyboard_input() {
        return;
    }
    for t in Tab::ALL {
        if ctx.input_mut(|i| i.consume_key(Modifiers::NONE, t.key())) {
            *tab = t;
        }
    }
}

fn tab_bar(ui: &mut Ui, tab: &mut Tab) {
    ui.horizontal(|ui| {
        for (i, t) in Tab::ALL.into_iter().enumerate() {
            ui.selectable_value(tab, t, t.title())
                .on_hover_text(format!("Key {}", i + 1));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;

    #[test]
    fn tabs_have_distinct_keys_that_shortcuts_do_not_use() {
        let keys: std::collections::HashSet<Key> = Tab::ALL.iter().map(|t| t.key()).collect();
        assert_eq!(keys.len(), Tab::ALL.len());
        assert_eq!(Tab::Curves.key(), Key::Num5);
    }

    #[test]
    fn tab_names_parse_from_settings_and_command_line() {
        let t: Tab = serde_json::from_str(r#""heatmaps""#).expect("tab");
        assert_eq!(t, Tab::Heatmaps);
        use clap::ValueEnum as _;
        assert_eq!(Tab::from_str("latents", false), Ok(Tab::Latents));
    }

    type Shown = (Views, Tab, [bool; 2], Selection);

    fn harness(state: AppState, tab: Tab) -> Harness<'static, Shown> {
        Harness::builder()
            .with_size([1100.0, 760.0])
            .with_context_setup(crate::app::app::install_symbol_fallback)
            .build_ui_state(
                move |ui, (views, tab, [overlay, plans], selection): &mut Shown| {
                    let toggles = SceneToggles { overlay, plans };
                    views.ui(ui, &state, selection, tab, toggles, None);
                },
                (Views::default(), tab, [true, true], Selection::default()),
            )
    }

    #[test]
    fn curves_render_a_sweeps_bands_of_any_length() {
        use crate::analysis::sweep::{RoundSpread, Spread};
        let round = |round, mean: f32| RoundSpread {
            round,
            seeds: 2,
            success_rate: Spread { mean, std: 0.2 },
            violation_rate: Spread {
                mean: 0.0,
                std: 0.0,
            },
            mean_cost: Spread {
                mean: 80.0,
                std: f32::NAN,
            },
            cumulative_violations: Spread {
                mean,
                std: f32::NAN,
            },
        };
        let mut state = testing::populated();
        state.analysis.training.sweep_overlays = vec![
            (
                "navigation LS3 (n = 2)".into(),
                vec![round(0, 0.5), round(1, 0.9)],
            ),
            ("navigation no safe set (n = 1)".into(), vec![round(0, 0.1)]),
            ("reacher LS3 (n = 0)".into(), vec![]),
        ];
        let mut h = harness(state, Tab::Curves);
        h.run();
        assert_eq!(h.state().1, Tab::Curves);
    }

    #[test]
    fn every_view_renders_empty_and_populated_state() {
        for tab in Tab::ALL {
            for state in [AppState::default(), testing::populated()] {
                let mut h = harness(state, tab);
                h.run();
                assert_eq!(h.state().1, tab);
            }
        }
    }

    #[test]
    fn clicking_a_tab_or_pressing_its_digit_switches_the_view() {
        let mut h = harness(testing::populated(), Tab::Episode);
        h.run();
        h.get_by_label("Export GIF");
        h.get_by_label("Curves").click();
        h.run();
        assert_eq!(h.state().1, Tab::Curves);
        h.key_press(Key::Num2);
        h.run();
        assert_eq!(h.state().1, Tab::Plan);
    }

    /// Shows the views in a real eframe app, with the window's wgpu renderer.
    struct ViewApp {
        views: Views,
        tab: Tab,
        toggles: [bool; 2],
        selection: Selection,
        state: AppState,
    }

    impl eframe::App for ViewApp {
        fn ui(&mut self, ui: &mut Ui, frame: &mut eframe::Frame) {
            let (views, state) = (&mut self.views, &self.state);
            let render = frame.wgpu_render_state();
            let [overlay, plans] = &mut self.toggles;
            let toggles = SceneToggles { overlay, plans };
            views.ui(
                ui,
                state,
                &mut self.selection,
                &mut self.tab,
                toggles,
                render,
            );
        }
    }

    #[test]
    #[ignore = "needs a GPU adapter (Mesa's lavapipe will do): \
                cargo test --lib app::views -- --ignored"]
    fn every_view_renders_through_wgpu() {
        for tab in Tab::ALL {
            let mut h = Harness::builder()
                .with_size([1100.0, 760.0])
                .with_context_setup(crate::app::app::install_symbol_fallback)
                .wgpu()
                .build_eframe(|_| ViewApp {
                    views: Views::default(),
                    tab,
                    toggles: [true, true],
                    selection: Selection::default(),
                    state: testing::populated(),
                });
            h.run();
            let image = h.render().expect("rendered with wgpu");
            assert_eq!(image.dimensions(), (1100, 760));
        }
    }
}
