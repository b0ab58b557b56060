//! `report.md`: a sweep's tables, one section per environment.

use super::{Spread, SweepReport, VariantReport};
use crate::env::EnvKind;

/// A per-round table: title, value, scale, decimals, unit.
type Column = (
    &'static str,
    fn(&super::RoundSpread) -> Spread,
    f32,
    usize,
    &'static str,
);

/// `mean ± std` with `scale` (100 for percentages) and `digits` decimals; `–` without seeds.
fn cell(s: Spread, scale: f32, digits: usize, unit: &str) -> String {
    if s.mean.is_nan() {
        return "–".into();
    }
    format!(
        "{:.d$} ± {:.d$}{unit}",
        s.mean * scale,
        s.std * scale,
        d = digits
    )
}

/// The whole report.
pub fn render(report: &SweepReport) -> String {
    let mut out = String::from("# Sweep report\n\n");
    out += &format!(
        "Mean ± standard deviation over finished seeds (n); \"last {}\" is each seed's last {} \
         rounds. `report.png`: success rate and cumulative violations per round, mean line with \
         a ±1 std band (blue LS3, orange no safe set, green no constraints).\n",
        report.last_rounds, report.last_rounds
    );
    let mut envs: Vec<EnvKind> = Vec::new();
    for v in &report.variants {
        if !envs.contains(&v.env) {
            envs.push(v.env);
        }
    }
    for env in envs {
        let vs: Vec<&VariantReport> = report.variants.iter().filter(|v| v.env == env).collect();
        out += &format!("\n## {}\n\n", env.name());
        out += &format!(
            "| variant | n | success (last {k}) | violations (last {k}) | mean cost (last {k}) | \
             demonstrators' cost |\n|---|---|---|---|---|---|\n",
            k = report.last_rounds
        );
        for v in &vs {
            out += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                v.ablation.label(),
                v.n,
                cell(v.last_success_rate, 100.0, 0, " %"),
                cell(v.last_violation_rate, 100.0, 0, " %"),
                cell(v.last_mean_cost, 1.0, 1, ""),
                cell(v.demo_cost, 1.0, 1, ""),
            );
        }
        let rounds = vs.iter().map(|v| v.rounds.len()).max().unwrap_or(0);
        let metrics: [Column; 3] = [
            ("success rate", |r| r.success_rate, 100.0, 0, " %"),
            ("violation rate", |r| r.violation_rate, 100.0, 0, " %"),
            ("mean cost", |r| r.mean_cost, 1.0, 1, ""),
        ];
        for (title, get, scale, digits, unit) in metrics {
            out += &format!("\n{title} per round\n\n| round |");
            for v in &vs {
                out += &format!(" {} |", v.ablation.label());
            }
            out += &format!("\n|---|{}\n", "---|".repeat(vs.len()));
            for r in 0..rounds {
                out += &format!("| {} |", r + 1);
                for v in &vs {
                    let c = v
                        .rounds
                        .get(r)
                        .map_or_else(|| "–".into(), |x| cell(get(x), scale, digits, unit));
                    out += &format!(" {c} |");
                }
                out += "\n";
            }
        }
    }
    if !report.unfinished.is_empty() {
        out += "\n## Unfinished runs (not in the means above)\n\n";
        for u in &report.unfinished {
            let progress = match u.rounds_done {
                Some(done) => format!("{done} of {} rounds", u.rounds),
                None => "not started".into(),
            };
            out += &format!("- run {} `{}`: {progress}\n", u.index, u.name);
        }
    }
    out
}
