//! `sweep.json`: the numbered runs of a sweep (environment × seed × ablation), each with its
//! full configuration, so every worker of a job array runs exactly what was planned.

use crate::config::{Config, Preset, Valid, Validate};
use crate::env::EnvKind;
use crate::planner::Ablation;
use crate::train::run_state::read_json;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The plan's file name inside a sweep folder.
pub const PLAN_FILE: &str = "sweep.json";

/// Every run of a sweep, in index order (environment, then seed, then ablation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPlan {
    pub runs: Vec<PlannedRun>,
}

/// One run of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    pub index: usize,
    pub env: EnvKind,
    pub seed: u64,
    pub ablation: Ablation,
    /// Folder under `runs/`: `<env>-<ablation>-s<seed>`.
    pub name: String,
    /// Folder under `shared/` holding the demos and initial agent this run starts from, shared
    /// by the runs of its environment and seed; `None`: the run trains its own.
    pub shared: Option<String>,
    /// The preset the configuration came from (`None`: a configuration file).
    pub preset: Option<Preset>,
    /// Episodes per demo set were capped at this (small test sweeps).
    pub demo_limit: Option<usize>,
    pub config: Valid<Config>,
}

/// Where a sweep's configurations come from.
#[derive(Clone, Debug)]
pub enum Base {
    Preset(Preset),
    /// One environment's configuration (e.g. from `--config FILE`).
    Config(Box<Valid<Config>>),
}

/// What to sweep over.
#[derive(Clone, Debug)]
pub struct SweepSpec {
    pub envs: Vec<EnvKind>,
    pub seeds: Vec<u64>,
    pub ablations: Vec<Ablation>,
    pub base: Base,
    /// Online rounds of every run (default: the configuration's).
    pub rounds: Option<usize>,
    pub demo_limit: Option<usize>,
}

impl SweepPlan {
    /// Numbers every combination of `spec`. Runs of one environment and seed share their demos
    /// and initial agent when their configurations differ only in the ablation switches.
    pub fn new(spec: &SweepSpec) -> Result<Self> {
        for (what, empty) in [
            ("environments", spec.envs.is_empty()),
            ("seeds", spec.seeds.is_empty()),
            ("ablations", spec.ablations.is_empty()),
        ] {
            if empty {
                bail!("a sweep needs at least one of the {what}");
            }
        }
        no_repeats("environment", &spec.envs)?;
        no_repeats("seed", &spec.seeds)?;
        no_repeats("ablation", &spec.ablations)?;
        let mut runs = Vec::new();
        for &env in &spec.envs {
            let (mut base, preset) = match &spec.base {
                Base::Preset(p) => (Config::preset(*p, env), Some(*p)),
                Base::Config(c) if c.env == env => ((**c).clone().into_inner(), None),
                Base::Config(c) => bail!(
                    "the configuration is for {}; --envs {env} needs a configuration of its own \
                     (plan one sweep per configuration)",
                    c.env
                ),
            };
            if let Some(r) = spec.rounds {
                base.online.num_updates = r;
            }
            for &seed in &spec.seeds {
                let group: Vec<Config> = spec
                    .ablations
                    .iter()
                    .map(|a| {
                        let mut c = base.clone();
                        a.apply(&mut c.planner);
                        c
                    })
                    .collect();
                let shareable = group
                    .iter()
                    .all(|c| shared_config(c) == shared_config(&group[0]));
                for (&ablation, config) in spec.ablations.iter().zip(group) {
                    runs.push(PlannedRun {
                        index: runs.len(),
                        env,
                        seed,
                        ablation,
                        name: format!("{env}-{ablation}-s{seed}", env = env.name()),
                        shared: shareable.then(|| format!("{}-s{seed}", env.name())),
                        preset,
                        demo_limit: spec.demo_limit,
                        config: config
                            .validated()
                            .with_context(|| format!("the {} configuration", env.name()))?,
                    });
                }
            }
        }
        Ok(Self { runs })
    }

    /// Reads `<dir>/sweep.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = plan_path(dir);
        if !path.is_file() {
            bail!(
                "{} is not a sweep folder (no {PLAN_FILE}; write one with `ls3 sweep plan`)",
                dir.display()
            );
        }
        let plan: Self = read_json(&path)?;
        for (i, run) in plan.runs.iter().enumerate() {
            if run.index != i {
                bail!("{}: run {i} has index {}", path.display(), run.index);
            }
        }
        Ok(plan)
    }

    /// Writes `<dir>/sweep.json`. An existing plan is kept if it is this one and refused if it
    /// differs, so runs already made never change meaning.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = plan_path(dir);
        if path.is_file() {
            let old = Self::read(dir)?;
            if old == *self {
                return Ok(path);
            }
            bail!(
                "{} already holds a different sweep ({} runs, this plan has {}); a sweep's plan \
                 is never overwritten: choose another --out",
                path.display(),
                old.runs.len(),
                self.runs.len()
            );
        }
        crate::run::RunDir::open(dir)?.write_json(PLAN_FILE, self)
    }

    /// Run `index`, or an error naming the valid range.
    pub fn run(&self, index: usize) -> Result<&PlannedRun> {
        self.runs.get(index).ok_or_else(|| match self.runs.len() {
            0 => anyhow::anyhow!("run index {index} is out of range: the sweep has no runs"),
            n => anyhow::anyhow!(
                "run index {index} is out of range: the sweep has runs 0-{} ({n} runs)",
                n - 1
            ),
        })
    }
}

/// `<dir>/sweep.json`.
pub fn plan_path(dir: &Path) -> PathBuf {
    dir.join(PLAN_FILE)
}

/// `config` without the ablation switches and the online rounds: what the shared initial
/// training depends on.
pub fn shared_config(config: &Config) -> Config {
    let mut c = config.clone();
    c.planner.ignore_safe_set = false;
    c.planner.ignore_constraints = false;
    c.online.num_updates = 0;
    c
}

fn no_repeats<T: PartialEq + std::fmt::Debug>(what: &str, items: &[T]) -> Result<()> {
    for (i, x) in items.iter().enumerate() {
        if items[..i].contains(x) {
            bail!("{what} {x:?} is listed twice");
        }
    }
    Ok(())
}

/// Parses seeds given as ranges and lists: `0-4`, `1,3,5`, `0-2,7`.
pub fn parse_seeds(text: &str) -> Result<Vec<u64>> {
    let mut seeds = Vec::new();
    for part in text.split(',').map(str::trim) {
        let num = |s: &str| -> Result<u64> {
            s.trim()
                .parse()
                .with_context(|| format!("seeds {text:?}: {s:?} is not a seed (0, 1, 2, …)"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    bail!("seeds {text:?}: the range {part} runs backwards");
                }
                seeds.extend(a..=b);
            }
            None => seeds.push(num(part)?),
        }
    }
    no_repeats("seed", &seeds)?;
    Ok(seeds)
}

/// Parses a comma-separated list with `parse` (environments, ablations).
pub fn parse_list<T>(
    text: &str,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
    choices: &str,
) -> Result<Vec<T>> {
    text.split(',')
        .map(str::trim)
        .map(|s| parse(s).with_context(|| format!("{what} {s:?} is not one of {choices}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SweepSpec {
        SweepSpec {
            envs: vec![EnvKind::Navigation, EnvKind::Reacher],
            seeds: vec![0, 1],
            ablations: vec![Ablation::None, Ablation::NoSafeSet],
            base: Base::Preset(Preset::Quick),
            rounds: Some(2),
            demo_limit: None,
        }
    }

    #[test]
    fn sweep_seeds_accept_ranges_and_lists() {
        assert_eq!(parse_seeds("0-4").unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse_seeds("1,3,5").unwrap(), vec![1, 3, 5]);
        assert_eq!(parse_seeds("0-2, 7").unwrap(), vec![0, 1, 2, 7]);
        assert!(format!("{:#}", parse_seeds("3-1").unwrap_err()).contains("backwards"));
        assert!(format!("{:#}", parse_seeds("1,x").unwrap_err()).contains("\"x\""));
        assert!(format!("{:#}", parse_seeds("0-2,2").unwrap_err()).contains("twice"));
    }

    #[test]
    fn sweep_plan_numbers_env_seed_ablation_with_full_configs() {
        let plan = SweepPlan::new(&spec()).unwrap();
        let names: Vec<&str> = plan.runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "navigation-none-s0",
                "navigation-no-safe-set-s0",
                "navigation-none-s1",
                "navigation-no-safe-set-s1",
                "reacher-none-s0",
                "reacher-no-safe-set-s0",
                "reacher-none-s1",
                "reacher-no-safe-set-s1",
            ]
        );
        let r = &plan.runs[5];
        assert_eq!((r.index, r.env, r.seed), (5, EnvKind::Reacher, 0));
        assert!(r.config.planner.ignore_safe_set && !r.config.planner.ignore_constraints);
        assert_eq!(r.config.online.num_updates, 2);
        assert_eq!(r.shared.as_deref(), Some("reacher-s0"));
        assert_eq!(plan.run(7).unwrap().name, "reacher-no-safe-set-s1");
        let e = plan.run(8).unwrap_err().to_string();
        assert!(e.contains("0-7") && e.contains('8'), "{e}");
    }

    #[test]
    fn sweep_plan_is_written_once_and_a_different_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let plan = SweepPlan::new(&spec()).unwrap();
        plan.write(dir.path()).unwrap();
        plan.write(dir.path()).unwrap();
        assert_eq!(SweepPlan::read(dir.path()).unwrap(), plan);
        let mut other = spec();
        other.seeds = vec![0, 1, 2];
        let e = SweepPlan::new(&other)
            .unwrap()
            .write(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("different sweep") && e.contains("sweep.json"),
            "{e}"
        );
        assert_eq!(SweepPlan::read(dir.path()).unwrap(), plan);
    }

    #[test]
    fn sweep_config_file_must_match_the_envs() {
        let mut s = spec();
        s.base = Base::Config(Box::new(Valid::preset(Preset::Quick, EnvKind::Navigation)));
        let e = SweepPlan::new(&s).unwrap_err().to_string();
        assert!(e.contains("reacher") && e.contains("navigation"), "{e}");
        s.envs = vec![EnvKind::Navigation];
        let plan = SweepPlan::new(&s).unwrap();
        assert!(plan.runs.iter().all(|r| r.preset.is_none()));
    }
}
