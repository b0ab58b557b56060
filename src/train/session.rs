//! The whole LS3 procedure (LS3_SPEC §5) as a resumable state machine: collect demos → train the
//! VAE → encode the demos → initial-train the latent modules → rounds of planner episodes and
//! module updates. [`Session::step`] does one small piece of work (one demo episode, one chunk of
//! training iterations, one environment step), so a front end can pause, step, reconfigure or
//! stop between calls; every call leaves the run folder consistent.

use super::actor::Actor;
use super::metrics::{EpisodeSummary, MetricsLog, RoundMetrics};
use super::observer::{Event, Observer};
use super::phases::{GRID_FRAMES, PhaseProgress, load_demos, reconstructions, write_vae_grids};
use super::run_state::{Layout, RunConfig, RunState, read_json};
use super::{ChunkReport, Trainer};
use crate::config::{Config, Preset, Valid, Validate};
use crate::data::collect::demo_episode;
use crate::data::dataset::{count_episodes, read_episode, write_episode};
use crate::data::episode::Episode;
use crate::data::images::ImagePool;
use crate::data::replay::LatentReplay;
use crate::env::EnvKind;
use crate::model::agent::{Agent, ModuleKind};
use crate::model::checkpoint;
use crate::model::rng::TensorRng;
use crate::planner::PlannerConfig;
use crate::run::{CsvLog, RunDir, save_gif};
use crate::seed::derive;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The latent modules in training order.
const LATENT: [ModuleKind; 5] = [
    ModuleKind::Dyn,
    ModuleKind::Val,
    ModuleKind::Ss,
    ModuleKind::Constr,
    ModuleKind::Gi,
];
/// VAE iterations per [`Session::step`].
const VAE_CHUNK: usize = 25;
/// Latent-module iterations per [`Session::step`].
const MODULE_CHUNK: usize = 50;
/// VAE reconstruction grids every this many iterations.
const PNG_EVERY: usize = 500;

/// How to start a new run.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Checked where it entered (file, flags, app controls, preset).
    pub config: Valid<Config>,
    pub preset: Option<Preset>,
    pub seed: u64,
    /// Demo folder (`<data>/<env>/<Set>/` or `<data>/<Set>/`); `None` collects demos into the run.
    pub data: Option<PathBuf>,
    /// Start from the modules in this checkpoint folder; the missing ones are trained.
    pub checkpoint: Option<PathBuf>,
    /// The run folder: must not exist yet or be empty.
    pub run_dir: PathBuf,
    /// Cap on episodes per demo set (for small test runs).
    pub demo_limit: Option<usize>,
}

impl SessionOptions {
    /// Options for a new run of `config` in a fresh timestamped folder under `out`.
    pub fn new(config: Valid<Config>, seed: u64, out: &Path) -> Result<Self> {
        Ok(Self {
            config,
            preset: None,
            seed,
            data: None,
            checkpoint: None,
            run_dir: RunDir::create(out)?.path,
            demo_limit: None,
        })
    }
}

/// What the session is doing.
enum Stage {
    Collect {
        set: usize,
        i: usize,
    },
    LoadDemos,
    Vae {
        pool: ImagePool,
        done: usize,
        total: usize,
    },
    Encode {
        i: usize,
    },
    Init {
        module: usize,
        done: usize,
    },
    Act {
        started: bool,
    },
    Update {
        module: usize,
        done: usize,
    },
    Done,
}

/// One LS3 run: its agent, replay buffer, trainer and run folder.
pub struct Session {
    run: RunConfig,
    dir: PathBuf,
    agent: Agent,
    trainer: Trainer,
    demos: Vec<Episode>,
    /// Agent episodes to re-encode on resume (already stored).
    stored: Vec<Episode>,
    replay: LatentReplay,
    /// Latent modules the offline phase still has to train.
    to_train: Vec<ModuleKind>,
    stage: Stage,
    actor: Actor,
    state: RunState,
    round_episodes: Vec<EpisodeSummary>,
    violations: usize,
    metrics: MetricsLog,
    losses: CsvLog,
    vae_losses: Option<CsvLog>,
    grid_rng: TensorRng,
    log: std::fs::File,
    /// When the module in initial training started in this sitting, and its iterations then
    /// (for the log line that says how long each module took).
    init_clock: Option<(Instant, usize)>,
}

impl Session {
    /// Starts a new run in `opts.run_dir`, which must be new or empty (a run folder is never
    /// overwritten; use [`Session::resume`] to continue one).
    pub fn create(opts: SessionOptions) -> Result<Self> {
        let config = opts.config;
        let dir = opts.run_dir;
        if dir.exists() {
            let mut entries =
                std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
            if entries.next().is_some() {
                bail!(
                    "{} already holds files; a run folder is never overwritten (resume it with \
                     `ls3 run --resume {}` or choose another folder)",
                    dir.display(),
                    dir.display()
                );
            }
        }
        let env = config.env;
        // Refuse a checkpoint of another environment before anything is written.
        if let Some(ck) = &opts.checkpoint {
            let meta = checkpoint::read_meta(ck)?;
            if meta.spec.env != env {
                bail!(
                    "{} holds a {} agent; this run is {} (pick a {} checkpoint or --env {})",
                    ck.display(),
                    meta.spec.env,
                    env,
                    env,
                    meta.spec.env
                );
            }
        }
        let run_dir = RunDir::open(&dir)?;
        let run = RunConfig {
            seed: opts.seed,
            preset: opts.preset,
            data: opts.data,
            checkpoint: opts.checkpoint,
            demo_limit: opts.demo_limit,
            config,
        };
        run_dir.write_json("config.json", &run)?;
        let mut session = Self::build(run, dir, RunState::default())?;
        session.logln(&format!(
            "new {} run, seed {}, in {}",
            env,
            session.run.seed,
            session.dir.display()
        ))?;
        if let Some(ck) = session.run.checkpoint.clone() {
            session.load_modules(&ck, false)?;
        }
        session.write_state()?;
        Ok(session)
    }

    /// Continues the run in `dir` after an interruption: reloads its configuration, its newest
    /// checkpoint, the demos and every stored agent episode (none is lost; an episode stored
    /// after the last checkpoint counts toward the round in progress).
    pub fn resume(dir: &Path) -> Result<Self> {
        Self::resume_with_rounds(dir, None)
    }

    /// [`Session::resume`], first setting the run's online rounds to `rounds` (saved in its
    /// `config.json`): a finished run continues for the extra rounds. Fewer rounds than are
    /// already done is refused.
    pub fn resume_with_rounds(dir: &Path, rounds: Option<usize>) -> Result<Self> {
        let layout = Layout(dir);
        if !layout.config().is_file() {
            bail!("{} is not a run folder (no config.json)", dir.display());
        }
        let mut run: RunConfig = read_json(&layout.config())?;
        let mut state: RunState = if layout.state().is_file() {
            read_json(&layout.state())?
        } else {
            RunState::default()
        };
        let before = run.config.online.num_updates;
        if let Some(n) = rounds.filter(|&n| n != before) {
            if n < state.rounds_done {
                bail!(
                    "rounds {n}: {} has already finished {} rounds",
                    dir.display(),
                    state.rounds_done
                );
            }
            let mut config = run.config.clone().into_inner();
            config.online.num_updates = n;
            run.config = config.validated()?;
            RunDir::open(dir)?.write_json("config.json", &run)?;
            state.finished = state.rounds_done >= n;
        }
        // Episodes written after the last state update still count.
        let on_disk = match count_episodes(&layout.episodes()) {
            Ok(n) => n,
            Err(crate::data::dataset::DatasetError::Missing(_))
            | Err(crate::data::dataset::DatasetError::Empty(_)) => 0,
            Err(e) => return Err(e.into()),
        };
        let recorded = state.episodes;
        state.episodes = state.episodes.max(on_disk);
        // The run's own newest checkpoint carries the training state to continue from; the
        // checkpoint the run started from does not.
        let own = layout.latest_checkpoint(&state);
        let start = run.checkpoint.clone();
        let mut session = Self::build(run, dir.to_path_buf(), state)?;
        session.logln(&format!("resuming {}", dir.display()))?;
        if session.run.config.online.num_updates != before {
            session.logln(&format!(
                "online rounds: {before} -> {}",
                session.run.config.online.num_updates
            ))?;
        }
        match (own, start) {
            (Some(ck), _) => session.load_modules(&ck, true)?,
            (None, Some(ck)) => session.load_modules(&ck, false)?,
            (None, None) => {}
        }
        // Re-read the stored agent episodes for the replay buffer and the round in progress.
        let eps_dir = layout.episodes();
        let round = session.state.rounds_done;
        for i in 0..session.state.episodes {
            let ep = read_episode(&eps_dir, i)?;
            let summary = EpisodeSummary::of(&ep, round, i, 0);
            if i >= recorded {
                session.metrics.episode(&summary)?;
            }
            if i < session.state.round_start {
                session.violations += ep.violated() as usize;
            } else {
                session.round_episodes.push(summary);
            }
            session.stored.push(ep);
        }
        if session.state.finished {
            session.stage = Stage::Done;
        }
        Ok(session)
    }

    fn build(run: RunConfig, dir: PathBuf, state: RunState) -> Result<Self> {
        let config = &run.config;
        let env = config.env;
        let device = crate::model::default_device();
        let agent = Agent::new(config.agent_spec(), &device, derive(run.seed, "init", 0))?;
        let mut trainer = Trainer::new(&agent, config, run.seed)?;
        for m in ModuleKind::ALL {
            trainer.set_iterations(m, state.iterations_of(m));
        }
        let layout = Layout(&dir);
        std::fs::create_dir_all(layout.episodes())
            .with_context(|| format!("creating {}", layout.episodes().display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(layout.log())
            .with_context(|| format!("opening {}", layout.log().display()))?;
        let stage = if run.data.is_some() || layout.data().join(env.name()).is_dir() {
            Stage::LoadDemos
        } else {
            Stage::Collect { set: 0, i: 0 }
        };
        Ok(Self {
            metrics: MetricsLog::open(&dir)?,
            losses: CsvLog::open(
                &dir.join("module_loss.csv"),
                &["module", "iteration", "loss"],
            )?,
            vae_losses: None,
            grid_rng: TensorRng::new(derive(run.seed, "vae-grids", 0)),
            init_clock: None,
            actor: Actor::new(env, run.seed),
            replay: LatentReplay::new(config.replay.capacity, agent.spec.latent),
            to_train: vec![ModuleKind::Vae].into_iter().chain(LATENT).collect(),
            demos: Vec::new(),
            stored: Vec::new(),
            stage,
            round_episodes: Vec::new(),
            violations: 0,
            trainer,
            agent,
            state,
            log,
            dir,
            run,
        })
    }

    /// Loads every module `dir` holds (checked against this run's environment) and marks it
    /// trained. With `restore`, the latent modules' training state saved beside them (Adam
    /// moments, iteration counts, random streams) is restored too, and target nets are kept as
    /// saved, so training continues exactly; otherwise target nets start as copies of their
    /// online nets.
    fn load_modules(&mut self, dir: &Path, restore: bool) -> Result<()> {
        let meta = checkpoint::read_meta(dir)?;
        let env = self.run.config.env;
        if meta.spec.env != env {
            bail!(
                "{} holds a {} agent; this run is {}",
                dir.display(),
                meta.spec.env,
                env
            );
        }
        // Checkpoints written mid-pipeline list the modules that were trained; the others in them
        // hold initial weights and must still be trained.
        let listed: Option<Vec<ModuleKind>> = meta
            .config
            .get("trained")
            .and_then(|t| t.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().and_then(ModuleKind::parse))
                    .collect()
            });
        let mut loaded = Vec::new();
        for m in ModuleKind::ALL {
            let path = checkpoint::module_path(dir, m);
            let wanted = listed.as_ref().is_none_or(|l| l.contains(&m));
            if wanted && path.is_file() {
                checkpoint::load_module(&self.agent, m, &path)
                    .with_context(|| format!("loading {} from {}", m.name(), dir.display()))?;
                loaded.push(m);
                if self.trainer.iterations(m) == 0 {
                    // Continue as if trained here: no second reward-to-go phase for the value.
                    let n = self.run.config.init_iters(m) as u64;
                    self.trainer.set_iterations(m, n);
                }
            }
        }
        self.to_train.retain(|m| !loaded.contains(m));
        let names: Vec<_> = loaded.iter().map(|m| m.name()).collect();
        self.logln(&format!(
            "loaded {} from {}",
            names.join(", "),
            dir.display()
        ))?;
        if !restore {
            self.agent.sync_targets()?;
            return Ok(());
        }
        let latent: Vec<ModuleKind> = loaded
            .into_iter()
            .filter(|&m| m != ModuleKind::Vae)
            .collect();
        let restored = self
            .trainer
            .load_state(dir, &latent)
            .with_context(|| format!("restoring the training state from {}", dir.display()))?;
        let names = |ms: &[ModuleKind]| ms.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ");
        if !restored.fresh_moments.is_empty() {
            self.logln(&format!(
                "no optimiser state for {} in {} (an older checkpoint): Adam starts with fresh \
                 moments, so training does not continue exactly",
                names(&restored.fresh_moments),
                dir.display()
            ))?;
        }
        if !restored.fresh_streams.is_empty() {
            self.logln(&format!(
                "no {} entry for {} in {}: their batches are drawn from fresh random streams",
                super::TRAINING_FILE,
                names(&restored.fresh_streams),
                dir.display()
            ))?;
        }
        Ok(())
    }

    /// The run folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The agent being trained.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The latent replay buffer (empty until the demos are encoded).
    pub fn replay(&self) -> &LatentReplay {
        &self.replay
    }

    /// The configuration in use.
    pub fn config(&self) -> &Valid<Config> {
        &self.run.config
    }

    /// How far the online phase got.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.run.seed
    }

    /// The environment the agent acts in (its overlay and markers, for views).
    pub fn env(&self) -> &dyn crate::env::Env {
        self.actor.env()
    }

    /// All phases are done.
    pub fn finished(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }

    /// Replaces the planner settings; the next environment step plans with them.
    pub fn set_planner(&mut self, planner: Valid<PlannerConfig>) {
        self.run.config.set_planner(planner);
    }

    /// Replaces the whole configuration: planner settings apply at the next step, learning rates
    /// at once, iteration counts and episodes per round at the next phase. The environment, the
    /// value ensemble size and the replay capacity are fixed for a run.
    pub fn set_config(&mut self, config: Valid<Config>) -> Result<()> {
        let old = &self.run.config;
        if config.env != old.env || config.replay.capacity != old.replay.capacity {
            bail!("the environment and the replay capacity cannot change during a run");
        }
        self.trainer.set_config(&config)?;
        self.run.config = config;
        Ok(())
    }

    /// What the session is doing now, as the top bar shows it.
    pub fn progress(&self) -> PhaseProgress {
        let c = &self.run.config;
        let p = |phase: String, done: usize, total: usize| PhaseProgress {
            phase,
            done,
            total,
            loss: None,
        };
        match &self.stage {
            Stage::Collect { set, i } => {
                let sets = c.env.demo_sets();
                let s = &sets[(*set).min(sets.len() - 1)];
                p(format!("collect {}", s.name), *i, self.set_count(s.count))
            }
            Stage::LoadDemos => p("load demos".into(), 0, 1),
            Stage::Vae { done, total, .. } => p("vae".into(), *done, *total),
            Stage::Encode { i } => p("encode".into(), *i, self.demos.len() + self.stored.len()),
            Stage::Init { module, done } => {
                let m = self.to_train[*module];
                p(format!("init {}", m.name()), *done, c.init_iters(m))
            }
            Stage::Act { .. } => p(
                format!("round {} episode", self.state.rounds_done + 1),
                self.state.episodes - self.state.round_start,
                c.online.traj_per_update,
            ),
            Stage::Update { module, done } => p(
                format!("update {}", LATENT[*module].name()),
                *done,
                c.update_iters(LATENT[*module]),
            ),
            Stage::Done => p("done".into(), 1, 1),
        }
    }

    fn set_count(&self, count: usize) -> usize {
        self.run.demo_limit.map_or(count, |l| l.min(count))
    }

    /// Runs every remaining phase.
    pub fn run_to_end(&mut self, observer: &mut dyn Observer) -> Result<()> {
        while !self.finished() {
            self.step(observer)?;
        }
        Ok(())
    }

    /// Does one small piece of work and reports it. Returns `false` once everything is done.
    pub fn step(&mut self, observer: &mut dyn Observer) -> Result<bool> {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        let result = self.advance(stage, observer);
        if let Err(e) = &result {
            let _ = self.logln(&format!("error: {e:#}"));
        }
        result.map(|()| !self.finished())
    }

    fn advance(&mut self, stage: Stage, obs: &mut dyn Observer) -> Result<()> {
        self.stage = match stage {
            Stage::Collect { set, i } => self.collect(set, i, obs)?,
            Stage::LoadDemos => {
                let data = self
                    .run
                    .data
                    .clone()
                    .unwrap_or_else(|| Layout(&self.dir).data());
                let (demos, sets) = load_demos(&data, self.run.config.env)?;
                self.logln(&format!("demos: {}", sets.join(", ")))?;
                self.demos = demos;
                self.after_demos()?
            }
            Stage::Vae { pool, done, total } => self.train_vae(pool, done, total, obs)?,
            Stage::Encode { i } => self.encode(i, obs)?,
            Stage::Init { module, done } => self.init(module, done, obs)?,
            Stage::Act { started } => self.act(started, obs)?,
            Stage::Update { module, done } => self.update(module, done, obs)?,
            Stage::Done => Stage::Done,
        };
        Ok(())
    }

    fn collect(&mut self, set: usize, i: usize, obs: &mut dyn Observer) -> Result<Stage> {
        let env = self.run.config.env;
        let sets = env.demo_sets();
        let Some(s) = sets.get(set) else {
            let data = Layout(&self.dir).data();
            let (demos, _) = load_demos(&data, env)?;
            self.demos = demos;
            return self.after_demos();
        };
        let total = self.set_count(s.count);
        let parent = Layout(&self.dir).data().join(env.name());
        let tmp = parent.join(format!(".{}.partial", s.name));
        if i == 0 {
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp)
                    .with_context(|| format!("removing stale {}", tmp.display()))?;
            }
            std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        }
        if i < total {
            let ep = demo_episode(env, s, self.run.seed, i);
            write_episode(&tmp, i, &ep)
                .with_context(|| format!("writing demo {i} into {}", tmp.display()))?;
        }
        let done = (i + 1).min(total);
        obs.event(Event::Progress(PhaseProgress {
            phase: format!("collect {}", s.name),
            done,
            total,
            loss: None,
        }));
        if done < total {
            return Ok(Stage::Collect { set, i: i + 1 });
        }
        let dir = parent.join(s.name);
        std::fs::rename(&tmp, &dir)
            .with_context(|| format!("moving {} into place", dir.display()))?;
        self.logln(&format!("collected {total} {} demos", s.name))?;
        Ok(Stage::Collect { set: set + 1, i: 0 })
    }

    /// After the demos are in memory: note the demonstrators' cost, then train the VAE if
    /// needed, else encode.
    fn after_demos(&mut self) -> Result<Stage> {
        let task: Vec<f32> = self
            .demos
            .iter()
            .filter(|e| e.is_on_policy())
            .map(|e| e.cost())
            .collect();
        let cost = super::metrics::mean_std(&task).0;
        if cost.is_finite() {
            self.state.demo_mean_cost = Some(cost);
            self.write_state()?;
            self.logln(&format!(
                "task demonstrations: {} episodes, mean cost {cost:.1}",
                task.len()
            ))?;
        }
        Ok(if self.to_train.contains(&ModuleKind::Vae) {
            let pool = ImagePool::from_episodes(self.agent.spec.channels, &self.demos);
            let total = self.run.config.vae.iterations;
            Stage::Vae {
                pool,
                done: 0,
                total,
            }
        } else {
            Stage::Encode { i: 0 }
        })
    }

    fn train_vae(
        &mut self,
        pool: ImagePool,
        done: usize,
        total: usize,
        obs: &mut dyn Observer,
    ) -> Result<Stage> {
        if self.vae_losses.is_none() {
            self.vae_losses = Some(CsvLog::open(
                &self.dir.join("vae_loss.csv"),
                &["iteration", "loss"],
            )?);
        }
        let n = VAE_CHUNK.min(total - done);
        let mut report = None;
        if n > 0 {
            self.trainer
                .train_vae(&self.agent, &pool, n, n, |r| report = Some(*r))
                .context("training the VAE")?;
        }
        let done = done + n;
        if let Some(r) = report {
            self.chunk_done(&r, done, total, obs)?;
            // The same frames feed watchers after every chunk and the PNG grids now and then.
            let shot = reconstructions(&self.agent, &pool, GRID_FRAMES, r.iteration)
                .context("reconstructing demo frames")?;
            if done == total || done.is_multiple_of(PNG_EVERY) {
                let run = self.run_dir();
                write_vae_grids(&self.agent, &shot, &run, &mut self.grid_rng)?;
            }
            obs.event(Event::VaeReconstructions(std::sync::Arc::new(shot)));
        }
        if done < total {
            return Ok(Stage::Vae { pool, done, total });
        }
        self.to_train.retain(|&m| m != ModuleKind::Vae);
        let path = Layout(&self.dir).vae_checkpoint();
        self.save_checkpoint(&path, obs)?;
        self.probe_vae(obs)?;
        Ok(Stage::Encode { i: 0 })
    }

    /// Scores the new VAE with the linear probe on the demos: `probe.json`, a log line and a
    /// [`Event::Probe`].
    fn probe_vae(&mut self, obs: &mut dyn Observer) -> Result<()> {
        use crate::model::probe::{ProbeError, probe};
        let line = match probe(
            &self.agent,
            &self.demos,
            crate::model::probe::DEFAULT_FRAMES,
        ) {
            Ok(report) => {
                self.run_dir().write_json("probe.json", &report)?;
                let line = format!("VAE {}", report.summary());
                obs.event(Event::Probe(Box::new(report)));
                line
            }
            // demos without ground-truth states (e.g. the original's) cannot be probed
            Err(ProbeError::Data(why)) => format!("VAE probe skipped: {why}"),
            Err(e) => return Err(e).context("probing the trained VAE"),
        };
        self.logln(&line)
    }

    fn chunk_done(
        &mut self,
        r: &ChunkReport,
        done: usize,
        total: usize,
        obs: &mut dyn Observer,
    ) -> Result<()> {
        let (iteration, loss) = (r.iteration.to_string(), r.mean_loss.to_string());
        match r.module {
            ModuleKind::Vae => self
                .vae_losses
                .as_mut()
                .expect("opened before training")
                .row(&[iteration, loss])?,
            m => self.losses.row(&[m.name().into(), iteration, loss])?,
        }
        self.state
            .iterations
            .insert(r.module.name().into(), r.iteration);
        obs.event(Event::Loss {
            module: r.module,
            iteration: r.iteration,
            loss: r.mean_loss,
        });
        let phase = match r.module {
            ModuleKind::Vae => "vae".to_string(),
            m if self.state.offline_done => format!("update {}", m.name()),
            m => format!("init {}", m.name()),
        };
        obs.event(Event::Progress(PhaseProgress {
            phase,
            done,
            total,
            loss: Some(r.mean_loss),
        }));
        Ok(())
    }

    fn encode(&mut self, i: usize, obs: &mut dyn Observer) -> Result<Stage> {
        if i == 0 && self.run.config.replay.branch_demos {
            self.add_branches()?;
        }
        let total = self.demos.len() + self.stored.len();
        if i < total {
            let ep = if i < self.demos.len() {
                &self.demos[i]
            } else {
                &self.stored[i - self.demos.len()]
            };
            self.replay
                .add_episode(&self.agent, ep)
                .with_context(|| format!("encoding episode {i} into the replay buffer"))?;
            if i >= self.demos.len() {
                add_agent_branch(
                    &mut self.replay,
                    &self.agent,
                    &self.run,
                    ep,
                    i - self.demos.len(),
                )?;
            }
            obs.event(Event::Progress(PhaseProgress {
                phase: "encode".into(),
                done: i + 1,
                total,
                loss: None,
            }));
        }
        if i + 1 < total {
            return Ok(Stage::Encode { i: i + 1 });
        }
        // The images are in the replay now.
        self.stored.clear();
        self.demos.clear();
        Ok(if self.to_train.is_empty() {
            self.finish_offline(obs)?
        } else {
            Stage::Init { module: 0, done: 0 }
        })
    }

    /// Appends one random-action branch episode per task demo (`replay.branch_demos`), from a
    /// stream seeded by the run's seed, so a resumed run rebuilds the same ones.
    fn add_branches(&mut self) -> Result<()> {
        let branches =
            crate::data::branch::branch_task_demos(self.run.config.env, &self.demos, self.run.seed);
        self.logln(&format!(
            "random-action branches off {} task demos added for the latent modules",
            branches.len()
        ))?;
        self.demos.extend(branches);
        Ok(())
    }

    fn init(&mut self, module: usize, done: usize, obs: &mut dyn Observer) -> Result<Stage> {
        let m = self.to_train[module];
        let total = self.run.config.init_iters(m);
        let (started, from) = *self.init_clock.get_or_insert((Instant::now(), done));
        let done = self.train_chunk(m, done, total, obs)?;
        if done < total {
            return Ok(Stage::Init { module, done });
        }
        self.init_clock = None;
        self.logln(&format!(
            "initial {}: {} iterations in {:.1} s",
            m.name(),
            total - from,
            started.elapsed().as_secs_f64()
        ))?;
        if module + 1 < self.to_train.len() {
            return Ok(Stage::Init {
                module: module + 1,
                done: 0,
            });
        }
        self.to_train.clear();
        self.finish_offline(obs)
    }

    fn train_chunk(
        &mut self,
        m: ModuleKind,
        done: usize,
        total: usize,
        obs: &mut dyn Observer,
    ) -> Result<usize> {
        let n = MODULE_CHUNK.min(total.saturating_sub(done));
        let mut report = None;
        if n > 0 {
            self.trainer
                .train_module(&self.agent, &mut self.replay, m, n, n, |r| {
                    report = Some(*r)
                })
                .with_context(|| format!("training {}", m.name()))?;
        }
        let done = done + n;
        if let Some(r) = report {
            self.chunk_done(&r, done, total, obs)?;
        }
        Ok(done)
    }

    fn finish_offline(&mut self, obs: &mut dyn Observer) -> Result<Stage> {
        if !self.state.offline_done {
            self.state.offline_done = true;
            let path = Layout(&self.dir).round_checkpoint(0);
            self.save_checkpoint(&path, obs)?;
            self.write_state()?;
        }
        Ok(self.next_online_stage())
    }

    fn next_online_stage(&self) -> Stage {
        let online = &self.run.config.online;
        if self.state.rounds_done >= online.num_updates {
            Stage::Done
        } else if self.state.episodes - self.state.round_start >= online.traj_per_update {
            Stage::Update { module: 0, done: 0 }
        } else {
            Stage::Act { started: false }
        }
    }

    fn act(&mut self, started: bool, obs: &mut dyn Observer) -> Result<Stage> {
        if !started {
            let index = self.state.episodes;
            let (start_state, frame) = self.actor.begin(index);
            obs.event(Event::EpisodeStarted {
                round: self.state.rounds_done,
                index,
                start_state,
                frame,
            });
        }
        let step = self
            .actor
            .step(&self.agent, &self.run.config.valid_planner())?;
        obs.event(Event::Step(Box::new(step)));
        if !self.actor.finished() {
            return Ok(Stage::Act { started: true });
        }
        let index = self.state.episodes;
        let random = self.actor.random_actions();
        let ep = self.actor.take_episode();
        let summary = EpisodeSummary::of(&ep, self.state.rounds_done, index, random);
        self.store_episode(index, &ep)?;
        self.replay
            .add_episode(&self.agent, &ep)
            .context("adding the episode to the replay buffer")?;
        add_agent_branch(&mut self.replay, &self.agent, &self.run, &ep, index)?;
        self.metrics.episode(&summary)?;
        self.state.episodes += 1;
        self.write_state()?;
        self.logln(&format!(
            "episode {index} (round {}): cost {}, {}{}",
            summary.round + 1,
            summary.cost,
            if summary.success {
                "success"
            } else {
                "no success"
            },
            if summary.violation {
                ", constraint violated"
            } else {
                ""
            }
        ))?;
        self.round_episodes.push(summary.clone());
        obs.event(Event::EpisodeFinished(summary));
        Ok(self.next_online_stage())
    }

    fn store_episode(&self, index: usize, ep: &Episode) -> Result<()> {
        let dir = Layout(&self.dir).episodes();
        // Images first, then the JSON that marks the episode complete.
        let skip = ep.obs_len() - crate::env::FRAME_LEN;
        let mut frames: Vec<&[u8]> = vec![&ep.obs_at(0)[skip..]];
        frames.extend((0..ep.len()).map(|t| &ep.next_obs_at(t)[skip..]));
        save_gif(&dir.join(format!("{index}.gif")), &frames, 2, 80)?;
        write_episode(&dir, index, ep)
            .with_context(|| format!("writing episode {index} into {}", dir.display()))
    }

    fn update(&mut self, module: usize, done: usize, obs: &mut dyn Observer) -> Result<Stage> {
        let m = LATENT[module];
        let total = self.run.config.update_iters(m);
        let done = self.train_chunk(m, done, total, obs)?;
        if done < total {
            return Ok(Stage::Update { module, done });
        }
        if module + 1 < LATENT.len() {
            return Ok(Stage::Update {
                module: module + 1,
                done: 0,
            });
        }
        let round = self.state.rounds_done;
        let metrics = RoundMetrics::of(round, &self.round_episodes, self.violations);
        self.violations = metrics.cumulative_violations;
        self.round_episodes.clear();
        self.state.rounds_done += 1;
        self.state.round_start = self.state.episodes;
        let path = Layout(&self.dir).round_checkpoint(round + 1);
        self.save_checkpoint(&path, obs)?;
        self.metrics.round(&metrics)?;
        self.state.finished = self.state.rounds_done >= self.run.config.online.num_updates;
        self.write_state()?;
        self.logln(&format!(
            "round {}: success {:.0} %, violations {:.0} %, mean cost {:.1}",
            round + 1,
            metrics.success_rate * 100.0,
            metrics.violation_rate * 100.0,
            metrics.mean_cost
        ))?;
        obs.event(Event::RoundFinished(metrics));
        Ok(self.next_online_stage())
    }

    fn save_checkpoint(&mut self, path: &Path, obs: &mut dyn Observer) -> Result<()> {
        let trained: Vec<&str> = ModuleKind::ALL
            .iter()
            .filter(|m| !self.to_train.contains(m))
            .map(|m| m.name())
            .collect();
        let meta = serde_json::json!({
            "seed": self.run.seed,
            "preset": self.run.preset,
            "config": &self.run.config,
            "rounds": self.state.rounds_done,
            "trained": trained,
        });
        // The latent modules' training state first: `agent.json`, written last, marks the folder
        // complete. The VAE is never trained after its checkpoint, so its moments are not kept.
        let training: Vec<ModuleKind> = LATENT
            .into_iter()
            .filter(|m| !self.to_train.contains(m))
            .collect();
        self.trainer.save_state(path, &training)?;
        checkpoint::save(&self.agent, path, meta)?;
        self.logln(&format!("checkpoint {}", path.display()))?;
        obs.event(Event::Checkpoint(path.to_path_buf()));
        Ok(())
    }

    fn run_dir(&self) -> RunDir {
        RunDir {
            path: self.dir.clone(),
        }
    }

    fn write_state(&self) -> Result<()> {
        self.run_dir()
            .write_json("state.json", &self.state)
            .map(drop)
    }

    fn logln(&mut self, line: &str) -> Result<()> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (date, time) = crate::run::utc_stamp(secs);
        writeln!(self.log, "{date} {time} {line}")
            .and_then(|_| self.log.flush())
            .with_context(|| format!("writing {}", Layout(&self.dir).log().display()))
    }
}

/// Runs `episodes` planner episodes with frozen models (seeds derived from `seed`), calling
/// `on_episode` after each; returns their summaries.
pub fn evaluate(
    agent: &Agent,
    env: EnvKind,
    planner: &Valid<PlannerConfig>,
    episodes: usize,
    seed: u64,
    mut on_episode: impl FnMut(&EpisodeSummary, &Episode),
) -> Result<Vec<EpisodeSummary>> {
    let mut actor = Actor::new(env, derive(seed, "eval", 0));
    let mut out = Vec::with_capacity(episodes);
    for i in 0..episodes {
        actor.begin(i);
        while !actor.finished() {
            actor.step(agent, planner)?;
        }
        let random = actor.random_actions();
        let ep = actor.take_episode();
        let s = EpisodeSummary::of(&ep, 0, i, random);
        on_episode(&s, &ep);
        out.push(s);
    }
    Ok(out)
}

/// With `replay.branch_agent`, adds the random-action branches of agent episode `index` to the
/// replay (`data::branch`).
fn add_agent_branch(
    replay: &mut LatentReplay,
    agent: &Agent,
    run: &RunConfig,
    ep: &Episode,
    index: usize,
) -> Result<()> {
    if !run.config.replay.branch_agent {
        return Ok(());
    }
    let kind = run.config.env;
    if let Some(b) = crate::data::branch::branch_agent_episode(kind, ep, run.seed, index) {
        replay
            .add_episode(agent, &b)
            .with_context(|| format!("adding the branches of episode {index} to the replay"))?;
    }
    Ok(())
}
