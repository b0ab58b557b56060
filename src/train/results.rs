//! Results of finished runs: the numbers of the paper's comparison (success, violations, cost
//! over the last rounds) read back from a run folder, and the table they are reported in.

use super::run_state::{Layout, RunState, read_json};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::Path;

/// One run summarised over its last rounds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult {
    /// What the run was (e.g. "LS3", "no safe set").
    pub name: String,
    /// Rounds the run finished.
    pub rounds: usize,
    /// Rounds summarised (the last ones).
    pub last_rounds: usize,
    /// Agent episodes in those rounds.
    pub episodes: usize,
    pub success_rate: f32,
    pub violation_rate: f32,
    pub mean_cost: f32,
    /// Mean cost of the successful episodes among them (NaN when none).
    pub mean_cost_successful: f32,
    /// Episodes with a violation over the whole run.
    pub total_violations: usize,
    /// Mean cost of the task demonstrations the run learnt from.
    pub demo_mean_cost: Option<f32>,
}

/// Reads `episodes.csv` and `state.json` of the run in `dir` and summarises its last
/// `last_rounds` finished rounds.
pub fn summarize(dir: &Path, name: &str, last_rounds: usize) -> Result<RunResult> {
    let layout = Layout(dir);
    let state: RunState = read_json(&layout.state())?;
    let path = dir.join("episodes.csv");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let first = state.rounds_done.saturating_sub(last_rounds);
    let mut rows = Vec::new();
    let mut total_violations = 0;
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 6 {
            bail!("{}:{}: expected 7 fields", path.display(), n + 1);
        }
        let num = |i: usize| -> Result<f32> {
            f[i].parse().with_context(|| {
                format!(
                    "{}:{}: field {} is not a number",
                    path.display(),
                    n + 1,
                    i + 1
                )
            })
        };
        let (round, cost, success, violation) =
            (num(0)? as usize, num(3)?, num(4)? > 0.5, num(5)? > 0.5);
        total_violations += violation as usize;
        if round >= first && round < state.rounds_done {
            rows.push((cost, success, violation));
        }
    }
    let n = rows.len();
    let share = |f: fn(&(f32, bool, bool)) -> bool| {
        if n == 0 {
            f32::NAN
        } else {
            rows.iter().filter(|r| f(r)).count() as f32 / n as f32
        }
    };
    let costs: Vec<f32> = rows.iter().map(|r| r.0).collect();
    let successful: Vec<f32> = rows.iter().filter(|r| r.1).map(|r| r.0).collect();
    Ok(RunResult {
        name: name.into(),
        rounds: state.rounds_done,
        last_rounds: state.rounds_done - first,
        episodes: n,
        success_rate: share(|r| r.1),
        violation_rate: share(|r| r.2),
        mean_cost: super::metrics::mean_std(&costs).0,
        mean_cost_successful: super::metrics::mean_std(&successful).0,
        total_violations,
        demo_mean_cost: state.demo_mean_cost,
    })
}

/// A Markdown table of `results`.
pub fn markdown_table(results: &[RunResult]) -> String {
    let mut out = String::from(
        "| run | rounds (last) | episodes | success | violations | mean cost | cost of successes | \
         violating episodes (whole run) | demonstrators' mean cost |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let demo = r
            .demo_mean_cost
            .map_or_else(|| "–".to_string(), |c| format!("{c:.1}"));
        let successes = if r.mean_cost_successful.is_nan() {
            "–".to_string()
        } else {
            format!("{:.1}", r.mean_cost_successful)
        };
        out += &format!(
            "| {} | {} ({}) | {} | {:.0} % | {:.0} % | {:.1} | {} | {} | {} |\n",
            r.name,
            r.rounds,
            r.last_rounds,
            r.episodes,
            r.success_rate * 100.0,
            r.violation_rate * 100.0,
            r.mean_cost,
            successes,
            r.total_violations,
            demo
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_only_the_last_finished_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let state = RunState {
            rounds_done: 3,
            episodes: 7,
            demo_mean_cost: Some(30.0),
            ..Default::default()
        };
        std::fs::write(
            dir.path().join("state.json"),
            serde_json::to_vec(&state).unwrap(),
        )
        .unwrap();
        // Round 0 is outside the last two; round 3 is unfinished.
        let csv = "round,episode,steps,cost,success,violation,random_actions\n\
                   0,0,100,100,0,1,0\n0,1,100,100,0,0,0\n\
                   1,2,100,20,1,0,0\n1,3,100,40,1,1,0\n\
                   2,4,100,100,0,0,0\n2,5,100,30,1,0,0\n\
                   3,6,100,10,1,0,0\n";
        std::fs::write(dir.path().join("episodes.csv"), csv).unwrap();
        let r = summarize(dir.path(), "LS3", 2).unwrap();
        assert_eq!((r.rounds, r.last_rounds, r.episodes), (3, 2, 4));
        assert_eq!(r.success_rate, 0.75);
        assert_eq!(r.violation_rate, 0.25);
        assert_eq!(r.mean_cost, 47.5);
        assert_eq!(r.mean_cost_successful, 30.0);
        assert_eq!(r.total_violations, 2);
        let table = markdown_table(&[r]);
        assert!(
            table.contains("| LS3 | 3 (2) | 4 | 75 % | 25 % | 47.5 | 30.0 | 2 | 30.0 |"),
            "{table}"
        );
    }
}
