//! Episode and round metrics of LS3_SPEC §5, and the CSV files they are logged to.

use crate::data::episode::Episode;
use crate::run::CsvLog;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What one agent episode achieved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeSummary {
    /// Round the episode belongs to (0-based).
    pub round: usize,
    /// Agent episode index over the whole run (0-based); also its file number in `episodes/`.
    pub index: usize,
    pub steps: usize,
    /// Steps spent outside the goal.
    pub cost: f32,
    /// The goal held after at least one step.
    pub success: bool,
    /// The constraint was violated at least once.
    pub violation: bool,
    /// Planner calls that found no feasible plan and acted randomly.
    pub random_actions: usize,
}

impl EpisodeSummary {
    /// The summary of a finished episode.
    pub fn of(ep: &Episode, round: usize, index: usize, random_actions: usize) -> Self {
        Self {
            round,
            index,
            steps: ep.len(),
            cost: ep.cost(),
            success: ep.success(),
            violation: ep.violated(),
            random_actions,
        }
    }
}

/// The per-round numbers the paper plots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundMetrics {
    pub round: usize,
    pub episodes: usize,
    pub mean_cost: f32,
    pub std_cost: f32,
    pub success_rate: f32,
    pub violation_rate: f32,
    /// Mean cost of the round's successful episodes (NaN when none succeeded).
    pub mean_cost_successful: f32,
    /// Episodes with a violation over the whole run so far, this round included.
    pub cumulative_violations: usize,
}

impl RoundMetrics {
    /// Aggregates a round's episodes; `violations_before` counts violating episodes of earlier
    /// rounds.
    pub fn of(round: usize, episodes: &[EpisodeSummary], violations_before: usize) -> Self {
        let n = episodes.len();
        let costs: Vec<f32> = episodes.iter().map(|e| e.cost).collect();
        let (mean, std) = mean_std(&costs);
        let rate = |f: fn(&EpisodeSummary) -> bool| {
            if n == 0 {
                f32::NAN
            } else {
                episodes.iter().filter(|e| f(e)).count() as f32 / n as f32
            }
        };
        let successful: Vec<f32> = episodes
            .iter()
            .filter(|e| e.success)
            .map(|e| e.cost)
            .collect();
        let violations = episodes.iter().filter(|e| e.violation).count();
        Self {
            round,
            episodes: n,
            mean_cost: mean,
            std_cost: std,
            success_rate: rate(|e| e.success),
            violation_rate: rate(|e| e.violation),
            mean_cost_successful: mean_std(&successful).0,
            cumulative_violations: violations_before + violations,
        }
    }
}

/// Mean and population standard deviation (NaN, NaN for no values).
pub fn mean_std(xs: &[f32]) -> (f32, f32) {
    if xs.is_empty() {
        return (f32::NAN, f32::NAN);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, var.sqrt() as f32)
}

const EPISODE_COLUMNS: [&str; 7] = [
    "round",
    "episode",
    "steps",
    "cost",
    "success",
    "violation",
    "random_actions",
];

const ROUND_COLUMNS: [&str; 8] = [
    "round",
    "episodes",
    "mean_cost",
    "std_cost",
    "success_rate",
    "violation_rate",
    "mean_cost_successful",
    "cumulative_violations",
];

/// Reads the per-round metrics a run wrote to `<dir>/metrics.csv`.
pub fn read_rounds(dir: &Path) -> Result<Vec<RoundMetrics>> {
    let path = dir.join("metrics.csv");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (is {} a run folder?)",
            path.display(),
            dir.display()
        )
    })?;
    let mut lines = text.lines();
    if lines.next() != Some(ROUND_COLUMNS.join(",").as_str()) {
        bail!(
            "{}: the header is not {}",
            path.display(),
            ROUND_COLUMNS.join(",")
        );
    }
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let at = || format!("{}:{}", path.display(), i + 2);
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != ROUND_COLUMNS.len() {
                bail!("{}: expected {} fields", at(), ROUND_COLUMNS.len());
            }
            let num = |k: usize| -> Result<f32> {
                f[k].parse()
                    .with_context(|| format!("{}: {} is not a number", at(), ROUND_COLUMNS[k]))
            };
            let count = |k: usize| -> Result<usize> {
                f[k].parse()
                    .with_context(|| format!("{}: {} is not a count", at(), ROUND_COLUMNS[k]))
            };
            Ok(RoundMetrics {
                round: count(0)?,
                episodes: count(1)?,
                mean_cost: num(2)?,
                std_cost: num(3)?,
                success_rate: num(4)?,
                violation_rate: num(5)?,
                mean_cost_successful: num(6)?,
                cumulative_violations: count(7)?,
            })
        })
        .collect()
}

/// `episodes.csv` (one row per agent episode) and `metrics.csv` (one row per round) of a run.
pub struct MetricsLog {
    episodes: CsvLog,
    rounds: CsvLog,
}

impl MetricsLog {
    /// Opens (appending) both files in the run folder `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(Self {
            episodes: CsvLog::open(&dir.join("episodes.csv"), &EPISODE_COLUMNS)?,
            rounds: CsvLog::open(&dir.join("metrics.csv"), &ROUND_COLUMNS)?,
        })
    }

    /// Appends an episode row.
    pub fn episode(&mut self, e: &EpisodeSummary) -> Result<()> {
        self.episodes.row(&[
            e.round.to_string(),
            e.index.to_string(),
            e.steps.to_string(),
            e.cost.to_string(),
            (e.success as u8).to_string(),
            (e.violation as u8).to_string(),
            e.random_actions.to_string(),
        ])
    }

    /// Appends a round row.
    pub fn round(&mut self, r: &RoundMetrics) -> Result<()> {
        self.rounds.row(&[
            r.round.to_string(),
            r.episodes.to_string(),
            r.mean_cost.to_string(),
            r.std_cost.to_string(),
            r.success_rate.to_string(),
            r.violation_rate.to_string(),
            r.mean_cost_successful.to_string(),
            r.cumulative_violations.to_string(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(index: usize, cost: f32, success: bool, violation: bool) -> EpisodeSummary {
        EpisodeSummary {
            round: 0,
            index,
            steps: 100,
            cost,
            success,
            violation,
            random_actions: 0,
        }
    }

    #[test]
    fn round_metrics_aggregate_the_episodes() {
        let eps = [
            ep(0, 20.0, true, false),
            ep(1, 40.0, true, true),
            ep(2, 100.0, false, true),
            ep(3, 40.0, true, false),
        ];
        let r = RoundMetrics::of(2, &eps, 3);
        assert_eq!(r.episodes, 4);
        assert_eq!(r.mean_cost, 50.0);
        assert!((r.std_cost - 30.0).abs() < 1e-4, "{}", r.std_cost);
        assert_eq!(r.success_rate, 0.75);
        assert_eq!(r.violation_rate, 0.5);
        assert!((r.mean_cost_successful - 100.0 / 3.0).abs() < 1e-4);
        assert_eq!(r.cumulative_violations, 5);
    }

    #[test]
    fn written_rounds_read_back_and_bad_rows_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let eps = [ep(0, 50.0, true, false), ep(1, 100.0, false, true)];
        let rounds = [
            RoundMetrics::of(0, &eps, 0),
            RoundMetrics::of(1, &eps[1..], 1),
        ];
        {
            let mut log = MetricsLog::open(dir.path()).unwrap();
            for r in &rounds {
                log.round(r).unwrap();
            }
        }
        let back = read_rounds(dir.path()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], rounds[0]);
        assert!(back[1].mean_cost_successful.is_nan() && back[1].cumulative_violations == 2);

        let path = dir.path().join("metrics.csv");
        let text = std::fs::read_to_string(&path).unwrap() + "2,4,oops,0,0,0,0,0\n";
        std::fs::write(&path, text).unwrap();
        let e = format!("{:#}", read_rounds(dir.path()).unwrap_err());
        assert!(
            e.contains("metrics.csv:4") && e.contains("mean_cost"),
            "{e}"
        );
        let e = format!("{:#}", read_rounds(&dir.path().join("nope")).unwrap_err());
        assert!(e.contains("run folder"), "{e}");
    }

    #[test]
    fn an_empty_round_has_no_rates() {
        let r = RoundMetrics::of(0, &[], 0);
        assert!(r.mean_cost.is_nan() && r.success_rate.is_nan());
        assert_eq!(r.cumulative_violations, 0);
    }
}
