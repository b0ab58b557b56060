//! The paper's planner ablations, as one switch that the command line, sweeps and the app share.

use super::PlannerConfig;
use serde::{Deserialize, Serialize};

/// Planner ablations of the paper.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Ablation {
    /// Full LS3.
    #[default]
    None,
    /// Plans need not end in the learned safe set.
    NoSafeSet,
    /// Predicted constraint violations are not penalised.
    NoConstraints,
}

impl Ablation {
    /// All ablations, full LS3 first.
    pub const ALL: [Ablation; 3] = [Ablation::None, Ablation::NoSafeSet, Ablation::NoConstraints];

    /// Switches the ablation on in `planner`.
    pub fn apply(self, planner: &mut PlannerConfig) {
        match self {
            Ablation::None => {}
            Ablation::NoSafeSet => planner.ignore_safe_set = true,
            Ablation::NoConstraints => planner.ignore_constraints = true,
        }
    }

    /// Name on the command line and in folder names (`none`, `no-safe-set`, `no-constraints`).
    pub fn name(self) -> &'static str {
        match self {
            Ablation::None => "none",
            Ablation::NoSafeSet => "no-safe-set",
            Ablation::NoConstraints => "no-constraints",
        }
    }

    /// Name in tables and legends.
    pub fn label(self) -> &'static str {
        match self {
            Ablation::None => "LS3",
            Ablation::NoSafeSet => "no safe set",
            Ablation::NoConstraints => "no constraints",
        }
    }

    /// Parses [`Ablation::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl std::fmt::Display for Ablation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for a in Ablation::ALL {
            assert_eq!(Ablation::from_name(a.name()), Some(a));
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.name())
            );
        }
        assert_eq!(Ablation::from_name("no-safe"), None);
        let mut p = PlannerConfig::default();
        Ablation::NoConstraints.apply(&mut p);
        assert!(p.ignore_constraints && !p.ignore_safe_set);
    }
}
