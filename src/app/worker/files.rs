//! The file work the controls ask for — agent checkpoints, configurations, demo datasets and
//! imports of the original `.pth` files — done on the worker. Every failure becomes an
//! [`Event::Error`] naming the file and the problem; the app carries on as before.

use super::{Event, TrainingUpdate, Worker, WorkerState};
use crate::analysis::sweep::SweepReport;
use crate::config::{Preset, Valid};
use crate::files::write_atomic;
use crate::model::checkpoint;
use crate::train::metrics::read_rounds;
use crate::train::phases::load_demos;
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;

/// The runs of an `ls3 results` folder, by folder and name.
const RESULT_RUNS: [(&str, &str); 3] = [
    ("ls3", "LS3"),
    ("no-safe-set", "no safe set"),
    ("no-constraints", "no constraints"),
];

impl Worker {
    /// Reads the per-round metrics of a run folder — or of each run of an `ls3 results` folder —
    /// and overlays them on the curves.
    pub(super) fn open_run(&mut self, dir: &Path) {
        if dir.join("sweep.json").is_file() {
            return self.open_sweep(dir);
        }
        let mut runs: Vec<(String, std::path::PathBuf)> = RESULT_RUNS
            .iter()
            .map(|(folder, name)| (name.to_string(), dir.join(folder)))
            .filter(|(_, d)| d.join("metrics.csv").is_file())
            .collect();
        if runs.is_empty() {
            let name = dir.file_name().map_or_else(
                || dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            runs.push((name, dir.to_path_buf()));
        }
        for (name, run) in runs {
            match read_rounds(&run) {
                Ok(rounds) => {
                    self.emit(Event::Notice(format!(
                        "overlaid {} rounds of {name} ({})",
                        rounds.len(),
                        run.display()
                    )));
                    self.emit(Event::Training(TrainingUpdate::Overlay { name, rounds }));
                }
                Err(e) => self.emit(Event::Error(format!("could not open the run: {e:#}"))),
            }
        }
    }

    /// Reads a sweep folder and overlays each variant's mean ± std over its finished seeds.
    fn open_sweep(&mut self, dir: &Path) {
        let report = match SweepReport::read(dir, 3) {
            Ok(r) => r,
            Err(e) => {
                return self.emit(Event::Error(format!(
                    "could not open the sweep {}: {e:#}",
                    dir.display()
                )));
            }
        };
        let shown: Vec<_> = report.variants.into_iter().filter(|v| v.n > 0).collect();
        self.emit(Event::Notice(format!(
            "overlaid {} variants of the sweep {} ({} runs unfinished)",
            shown.len(),
            dir.display(),
            report.unfinished.len()
        )));
        for v in shown {
            let name = format!("{} {} (n = {})", v.env.name(), v.ablation.label(), v.n);
            self.emit(Event::Training(TrainingUpdate::SweepOverlay {
                name,
                rounds: v.rounds,
            }));
        }
    }

    /// Reads a checkpoint folder and lets its agent act in its environment (switching to it).
    pub(super) fn load_agent(&mut self, dir: &Path) {
        if self.refuse_while_training("load an agent") {
            return;
        }
        let device = crate::model::default_device();
        match checkpoint::load(dir, None, &device) {
            Ok((agent, meta)) => {
                let kind = meta.spec.env;
                let planner = match crate::config::saved_planner(&meta) {
                    Ok(planner) => planner,
                    Err(e) => {
                        self.emit(Event::Error(format!(
                            "could not load the agent of {}: {e}",
                            dir.display()
                        )));
                        return;
                    }
                };
                self.agents.insert(kind, Some((Arc::new(agent), planner)));
                self.agent_dirs.insert(kind, dir.to_path_buf());
                self.switch_to_new_agent(kind);
                self.emit(Event::Notice(format!(
                    "the {kind} agent of {} acts now",
                    dir.display()
                )));
            }
            Err(e) => self.emit(Event::Error(format!("could not load the agent: {e}"))),
        }
    }

    /// Writes the training agent, else the acting one, as a checkpoint folder.
    pub(super) fn save_agent(&mut self, dir: &Path) {
        let result = if let Some(training) = &self.training {
            let session = &training.session;
            let meta = serde_json::json!({ "config": session.config(), "seed": session.seed() });
            checkpoint::save(session.agent(), dir, meta).map_err(anyhow::Error::from)
        } else if let Some(Some((agent, _))) = self.agents.get(&self.kind) {
            let meta = serde_json::json!({ "config": self.config_in_use() });
            checkpoint::save(agent, dir, meta).map_err(anyhow::Error::from)
        } else {
            Err(anyhow::anyhow!(
                "no agent acts in {} (the demonstrator does); load or train one first",
                self.kind
            ))
        };
        match result {
            Ok(()) => self.emit(Event::Notice(format!(
                "saved the agent to {}",
                dir.display()
            ))),
            Err(e) => self.emit(Event::Error(format!(
                "could not save the agent to {}: {e:#}",
                dir.display()
            ))),
        }
    }

    /// Imports the original `.pth` files (`path` is their folder or one of them) as the current
    /// environment's agent.
    pub(super) fn import_torch(&mut self, path: &Path) {
        if self.refuse_while_training("import an agent") {
            return;
        }
        let dir = if path.is_file() {
            path.parent().unwrap_or(Path::new("."))
        } else {
            path
        };
        let kind = self.kind;
        let device = crate::model::default_device();
        match checkpoint::import_torch(dir, kind, &device) {
            Ok(agent) => {
                let planner = Valid::preset(Preset::Quick, kind).valid_planner();
                self.agents.insert(kind, Some((Arc::new(agent), planner)));
                self.switch_to_new_agent(kind);
                self.emit(Event::Notice(format!(
                    "imported the {kind} agent of {}",
                    dir.display()
                )));
            }
            Err(e) => self.emit(Event::Error(format!(
                "could not import a {kind} agent: {e}"
            ))),
        }
    }

    /// Checks that `dir` holds demo sets of the current environment and keeps it for the next
    /// training run.
    pub(super) fn open_dataset(&mut self, dir: &Path) {
        match load_demos(dir, self.kind) {
            Ok((_, sets)) => {
                self.dataset = Some((self.kind, dir.to_path_buf()));
                self.emit(Event::Notice(format!(
                    "Train from scratch will use {} ({})",
                    dir.display(),
                    sets.join(", ")
                )));
            }
            Err(e) => self.emit(Event::Error(format!("could not open the dataset: {e:#}"))),
        }
    }

    /// Reads a configuration and uses it (switching to its environment).
    pub(super) fn load_config(&mut self, path: &Path) {
        let config = match crate::config::read_file(path) {
            Ok(c) => c,
            Err(e) => {
                self.emit(Event::Error(format!("{e:#}")));
                return;
            }
        };
        if config.env != self.kind {
            self.stop_training(false);
            self.kind = config.env;
            self.set_state(WorkerState::Paused);
        }
        self.planner = Some(config.valid_planner());
        if let Some(training) = self.training.as_mut()
            && let Err(e) = training.session.set_config(config.clone())
        {
            self.emit(Event::Error(format!(
                "{}: not applied to the running training: {e:#}",
                path.display()
            )));
        }
        self.config = config;
        if self.training.is_none() {
            self.restart();
        } else {
            self.emit(Event::Config(Box::new(self.config_in_use().into_inner())));
        }
        self.emit(Event::Notice(format!(
            "configuration read from {}",
            path.display()
        )));
    }

    /// Writes the configuration in effect (with the planner in use).
    pub(super) fn save_config(&mut self, path: &Path) {
        let result = serde_json::to_vec_pretty(&self.config_in_use())
            .context("serialising the configuration")
            .and_then(|bytes| write_atomic(path, &bytes).map_err(anyhow::Error::from));
        match result {
            Ok(()) => self.emit(Event::Notice(format!(
                "configuration written to {}",
                path.display()
            ))),
            Err(e) => self.emit(Event::Error(format!(
                "could not write {}: {e:#}",
                path.display()
            ))),
        }
    }

    /// Shows the stream of `kind` from its start, with the agent just loaded acting and
    /// analysed.
    fn switch_to_new_agent(&mut self, kind: crate::env::EnvKind) {
        self.kind = kind;
        if self.config.env != kind {
            self.config = Valid::preset(Preset::Quick, kind);
        }
        self.analyse_agent = true;
        self.set_state(WorkerState::Paused);
        self.restart();
    }

    fn refuse_while_training(&self, what: &str) -> bool {
        if self.training.is_some() {
            self.emit(Event::Error(format!(
                "cannot {what} while training; stop the training first"
            )));
        }
        self.training.is_some()
    }
}
