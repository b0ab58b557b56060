//! What the app remembers between launches (eframe storage): environment, pace, overlay, the
//! planner settings chosen in the controls and the view shown. The controls edit these; the
//! worker owns the configuration in effect and reports it.

use super::views::Tab;
use crate::env::EnvKind;
use crate::planner::PlannerConfig;
use serde::{Deserialize, Serialize};

/// What persists between launches (eframe storage). New fields need a default, so older saved
/// settings still load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub env: EnvKind,
    /// Pace of play, environment steps per second.
    pub speed: f32,
    pub show_overlay: bool,
    /// Draw the live step's planner search in the scene.
    pub show_plans: bool,
    /// Planner settings chosen in the controls (`None`: each agent's own).
    pub planner: Option<PlannerConfig>,
    /// The view shown in the central panel.
    pub tab: Tab,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            env: EnvKind::Navigation,
            speed: 25.0,
            show_overlay: true,
            show_plans: true,
            planner: None,
            tab: Tab::Episode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_load_from_older_or_partial_storage() {
        let s: Settings = serde_json::from_str(r#"{"env":"push"}"#).expect("partial settings");
        assert_eq!(s.env, EnvKind::Push);
        assert_eq!(s.speed, Settings::default().speed);
        let s: Settings = serde_json::from_str("{}").expect("empty settings");
        assert_eq!(s, Settings::default());
        let s: Settings = serde_json::from_str(r#"{"tab":"curves"}"#).expect("settings");
        assert_eq!(s.tab, Tab::Curves);
        let s: Settings = serde_json::from_str(r#"{"speed":5.0}"#).expect("older settings");
        assert_eq!(s.tab, Tab::Episode);
    }
}
