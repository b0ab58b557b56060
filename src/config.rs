//! Every training hyperparameter of LS3 (LS3_SPEC §3, §5) in one serde tree.
//!
//! Presets are values of [`Config`]: [`Config::paper`] holds the published numbers and
//! [`Config::quick`] a CPU budget that trains a usable navigation agent in minutes. Every struct
//! is `#[serde(default)]`, so a saved configuration that lacks newer fields still loads (missing
//! fields take the paper's navigation values).

use crate::env::EnvKind;
use crate::model::agent::{AgentSpec, ModuleKind};
use crate::model::checkpoint::AgentMeta;
pub use crate::model::conv::Precision;
use crate::model::dynamics::MEMBERS;
use crate::valid::{check, positive_count, positive_rate, unit_interval};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The named starting points of a configuration; `quick` is the default, what a newcomer should
/// run first.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The published hyperparameters (hours of training on a GPU).
    Paper,
    /// A small CPU budget: a usable navigation agent in minutes on two cores.
    #[default]
    Quick,
}

impl Preset {
    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Paper => "paper",
            Preset::Quick => "quick",
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The whole training configuration of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The task these numbers are for (the per-environment values below depend on it).
    pub env: EnvKind,
    pub vae: VaeConfig,
    pub dynamics: DynamicsConfig,
    pub safe_set: SafeSetConfig,
    pub value: ValueConfig,
    pub constraint: ClassifierConfig,
    pub goal: ClassifierConfig,
    pub online: OnlineConfig,
    pub replay: ReplayConfig,
    /// Planner settings (LS3_SPEC §4) — the place reserved for the planner's issue.
    pub planner: PlannerConfig,
    /// Arithmetic of the VAE's convolution products and of the planner's dense layers: `f32`, or
    /// `bf16` operands with f32 accumulation where the CPU has AVX512-BF16 (f32 elsewhere).
    /// Applied process-wide when a trainer is built ([`crate::model::conv::set_precision`]).
    pub precision: Precision,
}

/// The VAE (LS3_SPEC §3): trained once on demo images, then frozen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VaeConfig {
    pub lr: f64,
    pub batch: usize,
    /// Training iterations on the demo images (the VAE is not updated online).
    pub iterations: usize,
    /// Weight of the KL term added to the reconstruction MSE.
    pub kl_weight: f64,
    /// Random resized crops of the encoder's input (the decoder still reconstructs the original).
    pub augment: bool,
    /// Fraction of the image area a crop keeps, `[min, max]`.
    pub crop_scale: [f32; 2],
    /// The learning rate falls along a cosine from `lr` to `lr_final · lr` over the iterations
    /// (1 = constant, the original's).
    pub lr_final: f64,
    /// Initial bias of the encoder's log-std head (0 = PyTorch's default init, the original's).
    /// A negative bias starts the posterior narrow, so the decoder sees informative latents from
    /// the first iterations instead of noise.
    pub log_std_bias: f64,
    /// Extra weight of foreground pixels in the reconstruction error: pixels that differ from the
    /// per-pixel median of the demo images count `1 + foreground_weight` times, renormalised to a
    /// mean weight of 1 per batch (0 = plain MSE, the original's). Small moving objects then
    /// cannot be dropped for a sharper background.
    pub foreground_weight: f32,
}

impl VaeConfig {
    /// Reacher's CPU recipe: the arm is about 2 % of a frame, and at navigation's budget (1 000
    /// iterations at batch 32) the VAE stays on the plateau of the mean image, with the arm a
    /// blur. Measured with `ls3 train-vae` + `ls3 probe` (held-out R² of sin/cos shoulder,
    /// sin/cos wrist, finger x/y from latent samples; 1 500 iterations at batch 64, lr 1e-3):
    /// - plain MSE, constant lr (the original's loss): 0.16 / 0.26 / 0.04 / 0.30 / 0.28 / 0.12;
    /// - foreground weight 10, log-std bias −3, cosine decay to 0.1·lr: 0.98 / 0.96 / 0.76 /
    ///   0.94 / 0.93 / 0.88;
    /// - an untrained VAE: ≈ 0 everywhere.
    ///
    /// The quick preset trains the recipe for 3 000 iterations.
    pub fn quick_reacher() -> Self {
        Self {
            lr: 1e-3,
            batch: 64,
            iterations: 3_000,
            lr_final: 0.1,
            log_std_bias: -3.0,
            foreground_weight: 10.0,
            ..Config::paper(EnvKind::Reacher).vae
        }
    }

    /// Push's CPU recipe: reacher's ([`VaeConfig::quick_reacher`]) trained for 10 000
    /// iterations, about 15 minutes on two cores (3-channel frames train ≈ 11 iterations/s at
    /// batch 64). Measured with `ls3 train-vae` + `ls3 probe --data` on the 800 demos of seed 0
    /// (held-out R² of pusher x / y, block 0 x / y, block 1 x / y, block 2 x / y):
    /// - 3 000 iterations: 0.84 / 0.79, 0.84 / 0.77, 0.58 / 0.77, 0.28 / 0.55 (fresh demos);
    /// - 10 000 iterations: 0.89 / 0.84, 0.74 / 0.96, 0.58 / 0.93, 0.57 / 0.95.
    ///
    /// The blocks' y (the direction the task pushes them) is encoded linearly; their x varies
    /// only in the disturbance demos and is not.
    pub fn quick_push() -> Self {
        Self {
            iterations: 10_000,
            ..Self::quick_reacher()
        }
    }
}

/// The dynamics ensemble.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DynamicsConfig {
    pub lr: f64,
    /// Transitions per member per iteration (each member draws its own batch).
    pub batch: usize,
    /// Ensemble size; the model is built with exactly [`MEMBERS`] members.
    pub members: usize,
    /// Train on deltas normalised by running mean/std (kept in the checkpoint's `delta_rms`).
    pub normalize_deltas: bool,
    pub init_iters: usize,
    pub update_iters: usize,
}

/// How the safe set is trained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SafeSetLoss {
    /// BCE against max(γ_s·σ(target(z′)), label): states one step before the safe set count too.
    #[default]
    Bellman,
    /// Plain classifier: BCE against the safe-set label alone.
    Bc,
}

/// The safe-set classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SafeSetConfig {
    pub lr: f64,
    pub batch: usize,
    pub variant: SafeSetLoss,
    /// γ_s of the Bellman target (navigation 0.3, reacher 0.3, push 0.8 in the paper).
    pub bellman_coef: f32,
    /// Online → target copy every this many updates.
    pub target_every: usize,
    pub init_iters: usize,
    pub update_iters: usize,
    /// Std of extra Gaussian noise added to the latent z the safe set is trained on, as a
    /// fraction of each latent dimension's spread over the buffer (0 = the original: only the
    /// encoder's own σ·ε). Widens the learnt set around the demonstrated paths where the VAE's
    /// σ is small.
    pub smoothing: f32,
}

/// The value function (ensemble) over on-policy transitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ValueConfig {
    pub lr: f64,
    /// Transitions per member per iteration.
    pub batch: usize,
    /// Use an ensemble of `members` nets (the paper does); off = a single net.
    pub ensemble: bool,
    pub members: usize,
    pub discount: f32,
    /// Bootstrap the TD target through the end of an episode that timed out (only goal states
    /// are terminal). The paper treats every episode end as terminal, which teaches the value
    /// that wherever a failed episode stopped is nearly worth 0 — off in the paper preset.
    pub bootstrap_timeouts: bool,
    /// Online → target copy every this many updates.
    pub target_every: usize,
    /// The first this many updates (counted over the trainer's life) regress onto reward-to-go
    /// with Smooth-L1; every later update is a TD update.
    pub val_init_iters: usize,
    /// Initial iterations; the reference runs 2 × `val_init_iters` (reward-to-go, then as many
    /// TD updates).
    pub init_iters: usize,
    pub update_iters: usize,
    /// Input smoothing as for the safe set ([`SafeSetConfig::smoothing`]), on the latent whose
    /// value is learned (not on the TD target's next latent). Off in the original.
    pub smoothing: f32,
}

/// The constraint estimator or the goal indicator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClassifierConfig {
    pub lr: f64,
    pub batch: usize,
    pub init_iters: usize,
    pub update_iters: usize,
    /// Input smoothing as for the safe set ([`SafeSetConfig::smoothing`]), on the next latent
    /// the classifier is trained on (0 = the original). For the constraint estimator it raises
    /// the output near a violation, a margin around what the demos showed.
    pub smoothing: f32,
}

/// The online phase (LS3_SPEC §5 step 4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OnlineConfig {
    /// Rounds of (collect episodes, update the latent modules).
    pub num_updates: usize,
    /// Planner episodes per round.
    pub traj_per_update: usize,
}

/// The latent replay buffer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplayConfig {
    /// Transitions kept (oldest overwritten first). The spec names only push's 300 000; the
    /// other tasks use 35 000, which holds all of their demos and 25 × 10 agent episodes.
    pub capacity: usize,
    /// Also store, from every state of every task demo, one uniformly random action played in
    /// the simulator (`data::branch`): the dynamics then sees what other actions do along the
    /// demonstrated path. Not in the original (it needs a simulator that can be set to a state);
    /// on in the quick preset for navigation, off otherwise.
    pub branch_demos: bool,
    /// Branch every agent episode the same way as it joins the replay (its first state left
    /// out, so a resumed run rebuilds exactly the same data). Not in the original; off in both
    /// presets.
    pub branch_agent: bool,
}

pub use crate::planner::PlannerConfig;

pub use crate::valid::{ConfigError, Valid, Validate};

/// The planner settings saved with an agent (its run's configuration in `agent.json`), or the
/// quick preset's where it has none: what `ls3 eval`, `ls3 plan-check` and the app plan with by
/// default. Checked, since the file may have been edited.
pub fn saved_planner(meta: &AgentMeta) -> Result<Valid<PlannerConfig>, ConfigError> {
    saved_config(meta)
        .map_or_else(|| Config::quick(meta.spec.env).planner, |c| c.planner)
        .validated()
}

/// The precision saved with an agent (f32 where it has no configuration).
pub fn saved_precision(meta: &AgentMeta) -> Precision {
    saved_config(meta).map_or(Precision::F32, |c| c.precision)
}

/// The run configuration saved in an agent's `agent.json`, if it has a readable one.
fn saved_config(meta: &AgentMeta) -> Option<Config> {
    meta.config
        .get("config")
        .and_then(|c| serde_json::from_value::<Config>(c.clone()).ok())
}

impl Config {
    /// The published hyperparameters for `env`.
    pub fn paper(env: EnvKind) -> Self {
        let init = 10_000;
        Self {
            env,
            vae: VaeConfig {
                lr: 1e-4,
                batch: 256,
                iterations: 100_000,
                kl_weight: 1e-6,
                augment: true,
                crop_scale: [0.8, 1.0],
                lr_final: 1.0,
                log_std_bias: 0.0,
                foreground_weight: 0.0,
            },
            dynamics: DynamicsConfig {
                lr: 1e-3,
                batch: 256,
                members: MEMBERS,
                normalize_deltas: false,
                init_iters: init,
                update_iters: 512,
            },
            safe_set: SafeSetConfig {
                lr: 1e-4,
                batch: 256,
                variant: SafeSetLoss::Bellman,
                bellman_coef: match env {
                    EnvKind::Navigation | EnvKind::Reacher => 0.3,
                    EnvKind::Push => 0.8,
                },
                target_every: 100,
                init_iters: init,
                update_iters: 512,
                smoothing: 0.0,
            },
            value: ValueConfig {
                lr: 1e-4,
                batch: 256,
                ensemble: true,
                members: 5,
                discount: 0.99,
                bootstrap_timeouts: false,
                target_every: 100,
                val_init_iters: init,
                init_iters: 2 * init,
                update_iters: 2000,
                smoothing: 0.0,
            },
            constraint: ClassifierConfig {
                lr: 1e-4,
                batch: 256,
                init_iters: init,
                update_iters: 512,
                smoothing: 0.0,
            },
            goal: ClassifierConfig {
                lr: 1e-4,
                batch: 256,
                init_iters: init,
                update_iters: 512,
                smoothing: 0.0,
            },
            online: OnlineConfig {
                num_updates: 25,
                traj_per_update: 10,
            },
            replay: ReplayConfig {
                capacity: match env {
                    EnvKind::Push => 300_000,
                    EnvKind::Navigation | EnvKind::Reacher => 35_000,
                },
                branch_demos: false,
                branch_agent: false,
            },
            planner: PlannerConfig::paper(env),
            precision: Precision::F32,
        }
    }

    /// The paper's configuration cut to a CPU budget: a usable navigation agent in minutes on two
    /// cores. Costs per iteration were measured in a release build on two shared cores:
    /// - VAE: 1 000 iterations at batch 32, lr 1e-3 (paper: 100 000 at batch 256, lr 1e-4):
    ///   32 000 images seen, enough for the plain navigation scenes (held-out robot centroid
    ///   within ≈ 1.6 px, `tests/learning.rs`; 2 000 iterations gain little). About 40 ms per
    ///   iteration in a release build: under a minute.
    /// - Latent modules: 8 000 initial iterations each (value: 4 000 reward-to-go, then 4 000
    ///   TD), batch 128 for the classifiers and 64 per member for the two ensembles, 5× the
    ///   paper's learning rate for the safe set, value and classifiers (dynamics keeps 1e-3):
    ///   2–5 ms per iteration, about two minutes for all five. With 2 000 the value and safe set
    ///   were too coarse: the planner reached 90 % of the way to the goal and, never succeeding,
    ///   taught the value to stall ever earlier.
    /// - Online: 5 rounds of 4 episodes; each round trains 500 iterations per module and 1 000
    ///   for the value (~10 s), so the planner's episodes dominate.
    /// - Planner: population 500 with 50 elites (paper: 1000, 100), 20 particles as in the paper
    ///   (with 5 the particle mean is too noisy: on navigation the agent never reached the goal in
    ///   6 rounds), about half the paper's time per action; thresholds are the paper's. Plan
    ///   horizon 3 on every environment (the paper's for reacher and push; navigation's paper
    ///   horizon is 5): on navigation, from the same initial agent, horizon 5 reached the goal in
    ///   1 of 4 episodes and horizon 3 in 4 of 4 — with a 5-step plan the first action hardly
    ///   changes the plan's score, so the executed actions wander and the agent is too slow for
    ///   the 100-step episode (`ls3 plan-check` shows the imagined values are not the problem).
    ///
    /// Losses, targets, discount, γ_s, augmentation and replay size are the paper's.
    pub fn quick(env: EnvKind) -> Self {
        let mut c = Self::paper(env);
        let init = 8_000;
        let update = 500;
        c.vae.lr = 1e-3;
        c.vae.batch = 32;
        c.vae.iterations = 1_000;
        c.set_latent_iters(init, update);
        c.dynamics.batch = 64;
        c.safe_set.lr = 5e-4;
        c.safe_set.batch = 128;
        c.value.lr = 5e-4;
        c.value.batch = 64;
        c.value.update_iters = 2 * update;
        c.value.bootstrap_timeouts = true;
        for cl in [&mut c.constraint, &mut c.goal] {
            cl.lr = 5e-4;
            cl.batch = 128;
        }
        c.online.num_updates = 5;
        c.online.traj_per_update = 4;
        c.planner.population = 500;
        c.planner.elites = 50;
        c.planner.particles = 20;
        c.planner.horizon = 3;
        match env {
            EnvKind::Reacher => c.vae = VaeConfig::quick_reacher(),
            EnvKind::Push => c.vae = VaeConfig::quick_push(),
            EnvKind::Navigation => {}
        }
        // Measured on navigation (README, Results): without them the initial agent stalls on the
        // first leg on most seeds. On push (README, Push) the demos never push a block sideways,
        // so the dynamics imagined sweeping along the row as progress and the agent knocked
        // blocks off the side; with the branches, from the same VAE and demos, it pushed all three.
        c.replay.branch_demos = env != EnvKind::Reacher;
        if env == EnvKind::Navigation {
            // Measured on navigation only (README, Results): the stalls come from actions the
            // demos never take, which the dynamics members imagine differently; giving each
            // particle its own member and ranking such plans lower took a stalling initial agent
            // from 0 of 4 episodes to 3 of 4 (members alone: 0 of 4).
            c.planner.particle_members = true;
            c.planner.disagreement_penalty = 1.0;
            // Measured on navigation (README, Results): the value trained on noise-free latents
            // is far steeper across the latent directions the data never spans than along the
            // path, so the few-tenths error of an imagined latent outweighed three steps of
            // progress and the initial agents of seeds 1, 4 and 5 stalled on the first leg (0 of
            // 4 each); with its input smoothed, 4 of 4 each, faster than the demos.
            c.value.smoothing = 0.3;
        }
        if env != EnvKind::Navigation {
            // Measured on reacher (README, Results: runs 1–4 and seed 1): the safe set trained on
            // almost noise-free latents is a band as narrow as its episodes and the agent hovers
            // beside it; smoothing its input removed that, and steering back toward the safe set
            // instead of random torques, which cancel out, kept stalls short. Push's encoder noise
            // is as small (0.00 % of the latent variance), and its runs (README, Push) use both.
            c.safe_set.smoothing = 0.5;
            c.planner.fallback = crate::planner::Fallback::SafestPlan;
        }
        c
    }

    /// The configuration a preset names for `env`.
    pub fn preset(preset: Preset, env: EnvKind) -> Self {
        match preset {
            Preset::Paper => Self::paper(env),
            Preset::Quick => Self::quick(env),
        }
    }

    /// The agent shape this configuration trains (value ensemble size from [`ValueConfig`]).
    pub fn agent_spec(&self) -> AgentSpec {
        AgentSpec {
            value_members: self.value.members_in_use(),
            ..AgentSpec::for_env(self.env)
        }
    }

    /// Learning rate of a module's optimiser.
    pub fn lr(&self, m: ModuleKind) -> f64 {
        match m {
            ModuleKind::Vae => self.vae.lr,
            ModuleKind::Dyn => self.dynamics.lr,
            ModuleKind::Val => self.value.lr,
            ModuleKind::Ss => self.safe_set.lr,
            ModuleKind::Constr => self.constraint.lr,
            ModuleKind::Gi => self.goal.lr,
        }
    }

    /// Batch size of a module (per member for the ensembles).
    pub fn batch(&self, m: ModuleKind) -> usize {
        match m {
            ModuleKind::Vae => self.vae.batch,
            ModuleKind::Dyn => self.dynamics.batch,
            ModuleKind::Val => self.value.batch,
            ModuleKind::Ss => self.safe_set.batch,
            ModuleKind::Constr => self.constraint.batch,
            ModuleKind::Gi => self.goal.batch,
        }
    }

    /// A latent module's initial and per-round iterations and learning rate, to edit (`None`
    /// for the VAE, which has no per-round training).
    pub fn schedule_mut(&mut self, m: ModuleKind) -> Option<(&mut usize, &mut usize, &mut f64)> {
        Some(match m {
            ModuleKind::Vae => return None,
            ModuleKind::Dyn => (
                &mut self.dynamics.init_iters,
                &mut self.dynamics.update_iters,
                &mut self.dynamics.lr,
            ),
            ModuleKind::Val => (
                &mut self.value.init_iters,
                &mut self.value.update_iters,
                &mut self.value.lr,
            ),
            ModuleKind::Ss => (
                &mut self.safe_set.init_iters,
                &mut self.safe_set.update_iters,
                &mut self.safe_set.lr,
            ),
            ModuleKind::Constr => (
                &mut self.constraint.init_iters,
                &mut self.constraint.update_iters,
                &mut self.constraint.lr,
            ),
            ModuleKind::Gi => (
                &mut self.goal.init_iters,
                &mut self.goal.update_iters,
                &mut self.goal.lr,
            ),
        })
    }

    /// Gives every latent module `init` initial and `update` per-round iterations; the value's
    /// first half of the initial training regresses onto reward-to-go.
    pub fn set_latent_iters(&mut self, init: usize, update: usize) {
        for m in ModuleKind::LATENT {
            if let Some((i, u, _)) = self.schedule_mut(m) {
                (*i, *u) = (init, update);
            }
        }
        self.value.val_init_iters = init / 2;
    }

    /// Iterations of a module's initial training (the VAE's whole training).
    pub fn init_iters(&self, m: ModuleKind) -> usize {
        match m {
            ModuleKind::Vae => self.vae.iterations,
            ModuleKind::Dyn => self.dynamics.init_iters,
            ModuleKind::Val => self.value.init_iters,
            ModuleKind::Ss => self.safe_set.init_iters,
            ModuleKind::Constr => self.constraint.init_iters,
            ModuleKind::Gi => self.goal.init_iters,
        }
    }

    /// Iterations of a module in each online round (0 for the frozen VAE).
    pub fn update_iters(&self, m: ModuleKind) -> usize {
        match m {
            ModuleKind::Vae => 0,
            ModuleKind::Dyn => self.dynamics.update_iters,
            ModuleKind::Val => self.value.update_iters,
            ModuleKind::Ss => self.safe_set.update_iters,
            ModuleKind::Constr => self.constraint.update_iters,
            ModuleKind::Gi => self.goal.update_iters,
        }
    }
}

impl Validate for Config {
    /// Everything the trainer and the planner rely on: positive finite learning rates, every
    /// batch, ensemble, copy interval, episode count and capacity at least 1, a crop range inside
    /// (0, 1], coefficients in [0, 1], the dynamics ensemble size the model is built with, and
    /// the planner's rules ([`PlannerConfig`]).
    fn validate(&self) -> Result<(), ConfigError> {
        for m in ModuleKind::ALL {
            positive_rate(lr_field(m), self.lr(m))?;
            positive_count(batch_field(m), self.batch(m))?;
        }
        let [lo, hi] = self.vae.crop_scale;
        check(
            lo > 0.0 && lo <= hi && hi <= 1.0,
            "vae.crop_scale",
            format_args!("[{lo}, {hi}]"),
            "must satisfy 0 < min ≤ max ≤ 1",
        )?;
        let kl = self.vae.kl_weight;
        check(
            kl.is_finite() && kl >= 0.0,
            "vae.kl_weight",
            kl,
            "must be a non-negative number",
        )?;
        let lr_final = self.vae.lr_final;
        check(
            lr_final.is_finite() && lr_final > 0.0 && lr_final <= 1.0,
            "vae.lr_final",
            lr_final,
            "must lie in (0, 1]",
        )?;
        check(
            self.vae.log_std_bias.is_finite(),
            "vae.log_std_bias",
            self.vae.log_std_bias,
            "must be a finite number",
        )?;
        let fg = self.vae.foreground_weight;
        check(
            fg.is_finite() && fg >= 0.0,
            "vae.foreground_weight",
            fg,
            "must be a non-negative number",
        )?;
        check(
            self.dynamics.members == MEMBERS,
            "dynamics.members",
            self.dynamics.members,
            format!("must be {MEMBERS} (the size the model is built with)"),
        )?;
        unit_interval("safe_set.bellman_coef", self.safe_set.bellman_coef)?;
        for (field, sm) in [
            ("safe_set.smoothing", self.safe_set.smoothing),
            ("constraint.smoothing", self.constraint.smoothing),
            ("goal.smoothing", self.goal.smoothing),
            ("value.smoothing", self.value.smoothing),
        ] {
            check(
                sm.is_finite() && sm >= 0.0,
                field,
                sm,
                "must be a non-negative number",
            )?;
        }
        unit_interval("value.discount", self.value.discount)?;
        if self.value.ensemble {
            positive_count("value.members", self.value.members)?;
        }
        positive_count("safe_set.target_every", self.safe_set.target_every)?;
        positive_count("value.target_every", self.value.target_every)?;
        positive_count("online.traj_per_update", self.online.traj_per_update)?;
        positive_count("replay.capacity", self.replay.capacity)?;
        self.planner.validate()
    }
}

impl Valid<Config> {
    /// A preset's configuration; every preset satisfies the rules (checked by this module's
    /// tests), so this cannot fail.
    pub fn preset(preset: Preset, env: EnvKind) -> Self {
        Config::preset(preset, env)
            .validated()
            .expect("every preset is valid")
    }

    /// The planner settings, checked (they passed with the whole configuration).
    pub fn valid_planner(&self) -> Valid<PlannerConfig> {
        Valid::assume_valid(self.planner.clone())
    }

    /// Swaps in other checked planner settings: the planner's rules do not involve the other
    /// fields, so the result is valid too.
    pub fn set_planner(&mut self, planner: Valid<PlannerConfig>) {
        let config = Config {
            planner: planner.into_inner(),
            ..(**self).clone()
        };
        *self = Valid::assume_valid(config);
    }
}

/// Reads and checks a configuration file: a bare [`Config`] (as `ls3 config` and the app write
/// it) or a run's `config.json` (`{"config": …, "seed": …}`).
pub fn read_file(path: &Path) -> anyhow::Result<Valid<Config>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    let inner = value.get("config").cloned().unwrap_or(value);
    let config: Config = serde_json::from_value(inner)
        .with_context(|| format!("{} is not a configuration", path.display()))?;
    config
        .validated()
        .with_context(|| format!("checking {}", path.display()))
}

fn lr_field(m: ModuleKind) -> &'static str {
    match m {
        ModuleKind::Vae => "vae.lr",
        ModuleKind::Dyn => "dynamics.lr",
        ModuleKind::Val => "value.lr",
        ModuleKind::Ss => "safe_set.lr",
        ModuleKind::Constr => "constraint.lr",
        ModuleKind::Gi => "goal.lr",
    }
}

fn batch_field(m: ModuleKind) -> &'static str {
    match m {
        ModuleKind::Vae => "vae.batch",
        ModuleKind::Dyn => "dynamics.batch",
        ModuleKind::Val => "value.batch",
        ModuleKind::Ss => "safe_set.batch",
        ModuleKind::Constr => "constraint.batch",
        ModuleKind::Gi => "goal.batch",
    }
}

impl ValueConfig {
    /// Members actually built: `members` with the ensemble on, else 1.
    pub fn members_in_use(&self) -> usize {
        if self.ensemble { self.members } else { 1 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::paper(EnvKind::Navigation)
    }
}

macro_rules! default_from_paper {
    ($ty:ty, $field:ident) => {
        impl Default for $ty {
            fn default() -> Self {
                Config::default().$field
            }
        }
    };
}
default_from_paper!(VaeConfig, vae);
default_from_paper!(DynamicsConfig, dynamics);
default_from_paper!(SafeSetConfig, safe_set);
default_from_paper!(ValueConfig, value);
default_from_paper!(ClassifierConfig, constraint);
default_from_paper!(OnlineConfig, online);
default_from_paper!(ReplayConfig, replay);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_survives_a_json_round_trip() {
        for env in EnvKind::ALL {
            for preset in [Preset::Paper, Preset::Quick] {
                let c = Config::preset(preset, env);
                let text = serde_json::to_string_pretty(&c).unwrap();
                let back: Config = serde_json::from_str(&text).unwrap();
                assert_eq!(back, c, "{preset} {env}");
            }
        }
    }

    #[test]
    fn an_agents_saved_precision_and_planner_come_from_its_run_configuration() {
        let meta = |config: serde_json::Value| -> AgentMeta {
            let mut m = serde_json::to_value(AgentSpec::for_env(EnvKind::Reacher)).unwrap();
            m["format"] = "ls3-agent".into();
            m["version"] = 1.into();
            m["architecture"] = serde_json::json!({});
            m["config"] = config;
            serde_json::from_value(m).unwrap()
        };
        let mut c = Config::quick(EnvKind::Reacher);
        c.precision = Precision::Bf16;
        c.planner.horizon = 7;
        let saved = meta(serde_json::json!({ "config": c }));
        assert_eq!(saved_precision(&saved), Precision::Bf16);
        assert_eq!(saved_planner(&saved).unwrap().horizon, 7);
        let bare = meta(serde_json::Value::Null);
        assert_eq!(saved_precision(&bare), Precision::F32);
        let quick = Config::quick(EnvKind::Reacher).planner;
        assert_eq!(saved_planner(&bare).unwrap().into_inner(), quick);
    }

    #[test]
    fn precision_reads_lowercase_names_defaults_to_f32_and_rejects_others() {
        assert_eq!(Config::default().precision, Precision::F32);
        let c: Config = serde_json::from_str(r#"{"precision": "bf16"}"#).unwrap();
        assert_eq!(c.precision, Precision::Bf16);
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains(r#""precision":"bf16""#), "{text}");
        assert!(serde_json::from_str::<Config>(r#"{"precision": "fp16"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"precision": "BF16"}"#).is_err());
    }

    #[test]
    fn missing_fields_take_the_paper_navigation_values() {
        let c: Config = serde_json::from_str(r#"{"value": {"lr": 0.5}}"#).unwrap();
        assert_eq!(c.value.lr, 0.5);
        assert_eq!(c.value.batch, 256);
        assert_eq!(c.vae, Config::paper(EnvKind::Navigation).vae);
        let c: Config = serde_json::from_str(r#"{"safe_set": {"variant": "bc"}}"#).unwrap();
        assert_eq!(c.safe_set.variant, SafeSetLoss::Bc);
    }

    #[test]
    fn paper_preset_has_the_published_numbers() {
        let c = Config::paper(EnvKind::Push);
        assert_eq!(c.safe_set.bellman_coef, 0.8);
        assert_eq!(c.replay.capacity, 300_000);
        assert_eq!(Config::paper(EnvKind::Reacher).safe_set.bellman_coef, 0.3);
        assert_eq!(c.vae.iterations, 100_000);
        assert_eq!(c.dynamics.lr, 1e-3);
        assert_eq!(c.value.update_iters, 2000);
        assert_eq!(c.value.init_iters, 2 * c.value.val_init_iters);
        assert_eq!(c.agent_spec().value_members, 5);
        for p in [Preset::Paper, Preset::Quick] {
            for env in EnvKind::ALL {
                Config::preset(p, env).validate().unwrap();
            }
        }
    }

    #[test]
    fn quick_vae_recipes_are_per_environment() {
        let q = |env| Config::quick(env).vae;
        assert_eq!(q(EnvKind::Navigation).foreground_weight, 0.0);
        assert_eq!(q(EnvKind::Reacher), VaeConfig::quick_reacher());
        let push = q(EnvKind::Push);
        assert_eq!(push.iterations, 10_000);
        assert_eq!((push.batch, push.foreground_weight), (64, 10.0));
    }

    #[test]
    fn reacher_and_push_quick_presets_smooth_the_safe_set_and_steer_back_when_stuck() {
        use crate::planner::Fallback;
        for env in EnvKind::ALL {
            let paper = Config::paper(env);
            assert_eq!(paper.safe_set.smoothing, 0.0, "{env}");
            assert_eq!(paper.planner.fallback, Fallback::Random, "{env}");
            assert!(!paper.replay.branch_demos, "{env}");
            let quick = Config::quick(env);
            let smoothed = env != EnvKind::Navigation;
            assert_eq!(quick.safe_set.smoothing, if smoothed { 0.5 } else { 0.0 });
            assert_eq!(quick.constraint.smoothing, 0.0);
            assert_eq!(quick.replay.branch_demos, env != EnvKind::Reacher, "{env}");
            let fallback = if smoothed {
                Fallback::SafestPlan
            } else {
                Fallback::Random
            };
            assert_eq!(quick.planner.fallback, fallback, "{env}");
        }
    }

    #[test]
    fn only_navigations_quick_preset_penalises_the_dynamics_members_disagreement() {
        for env in EnvKind::ALL {
            let paper = Config::paper(env).planner;
            assert!(
                !paper.particle_members && paper.disagreement_penalty == 0.0,
                "{env}"
            );
            let quick = Config::quick(env).planner;
            let nav = env == EnvKind::Navigation;
            assert_eq!(quick.particle_members, nav, "{env}");
            assert_eq!(
                quick.disagreement_penalty,
                if nav { 1.0 } else { 0.0 },
                "{env}"
            );
        }
    }

    #[test]
    fn only_navigations_quick_preset_smooths_the_values_input_and_no_preset_judges_every_step() {
        for env in EnvKind::ALL {
            let (paper, quick) = (Config::paper(env), Config::quick(env));
            assert_eq!(paper.value.smoothing, 0.0, "{env}");
            let nav = env == EnvKind::Navigation;
            assert_eq!(quick.value.smoothing, if nav { 0.3 } else { 0.0 }, "{env}");
            assert!(!paper.planner.safe_set_every_step && !quick.planner.safe_set_every_step);
        }
    }

    #[test]
    fn presets_plan_like_the_originals_readme_commands() {
        // (env, horizon, safe-set threshold, Bellman γ_s) of the original's README commands
        let paper = [
            (EnvKind::Navigation, 5, 0.8, 0.3),
            (EnvKind::Reacher, 3, 0.5, 0.3),
            (EnvKind::Push, 3, 0.8, 0.8),
        ];
        for (env, horizon, threshold, gamma) in paper {
            for preset in [Preset::Paper, Preset::Quick] {
                let c = Config::preset(preset, env);
                assert_eq!(c.safe_set.bellman_coef, gamma, "{preset} {env}");
                assert_eq!(c.planner.safe_set_threshold, threshold, "{preset} {env}");
                let h = if preset == Preset::Paper { horizon } else { 3 };
                assert_eq!(c.planner.horizon, h, "{preset} {env}");
            }
        }
    }

    /// A change to the configuration under test.
    type Edit = fn(&mut Config);

    /// The error of the quick navigation configuration changed by `edit`.
    fn rejected(edit: impl FnOnce(&mut Config)) -> ConfigError {
        let mut c = Config::quick(EnvKind::Navigation);
        edit(&mut c);
        c.validate().expect_err("rejected")
    }

    #[test]
    fn validation_names_the_offending_field_and_its_value() {
        let cases: Vec<(&str, &str, Edit)> = vec![
            ("vae.crop_scale", "[0.9, 0.5]", |c| {
                c.vae.crop_scale = [0.9, 0.5]
            }),
            ("vae.kl_weight", "-1", |c| c.vae.kl_weight = -1.0),
            ("vae.lr_final", "0", |c| c.vae.lr_final = 0.0),
            ("vae.log_std_bias", "NaN", |c| c.vae.log_std_bias = f64::NAN),
            ("vae.foreground_weight", "-2", |c| {
                c.vae.foreground_weight = -2.0
            }),
            ("dynamics.members", "3", |c| c.dynamics.members = 3),
            ("safe_set.bellman_coef", "1.5", |c| {
                c.safe_set.bellman_coef = 1.5
            }),
            ("safe_set.smoothing", "-0.1", |c| {
                c.safe_set.smoothing = -0.1
            }),
            ("value.discount", "NaN", |c| c.value.discount = f32::NAN),
            ("value.smoothing", "-1", |c| c.value.smoothing = -1.0),
            ("value.members", "0", |c| c.value.members = 0),
            ("safe_set.target_every", "0", |c| {
                c.safe_set.target_every = 0
            }),
            ("value.target_every", "0", |c| c.value.target_every = 0),
            ("online.traj_per_update", "0", |c| {
                c.online.traj_per_update = 0
            }),
            ("replay.capacity", "0", |c| c.replay.capacity = 0),
            ("planner.elites", "5000", |c| c.planner.elites = 5000),
            ("planner.random_percent", "2", |c| {
                c.planner.random_percent = 2.0
            }),
        ];
        for (field, value, edit) in cases {
            let e = rejected(edit);
            assert_eq!((e.field, e.value.as_str()), (field, value), "{e}");
            assert!(
                e.to_string().contains(&format!("{field} = {value} ")),
                "{e}"
            );
        }
        // A single value net ignores the ensemble size.
        let mut c = Config::quick(EnvKind::Navigation);
        (c.value.ensemble, c.value.members) = (false, 0);
        c.validate().unwrap();
    }

    #[test]
    fn every_learning_rate_must_be_positive_and_every_batch_at_least_one() {
        for m in ModuleKind::ALL {
            for bad in [0.0, -1e-3, f64::NAN, f64::INFINITY] {
                let mut c = Config::quick(EnvKind::Navigation);
                *lr_mut(&mut c, m) = bad;
                let e = c.validate().expect_err("rejected");
                assert_eq!(e.field, lr_field(m));
                assert_eq!(e.value, bad.to_string());
            }
            let e = rejected(|c| *batch_mut(c, m) = 0);
            assert_eq!((e.field, e.value.as_str()), (batch_field(m), "0"));
        }
    }

    fn lr_mut(c: &mut Config, m: ModuleKind) -> &mut f64 {
        match m {
            ModuleKind::Vae => &mut c.vae.lr,
            _ => c.schedule_mut(m).expect("a latent module").2,
        }
    }

    fn batch_mut(c: &mut Config, m: ModuleKind) -> &mut usize {
        match m {
            ModuleKind::Vae => &mut c.vae.batch,
            ModuleKind::Dyn => &mut c.dynamics.batch,
            ModuleKind::Val => &mut c.value.batch,
            ModuleKind::Ss => &mut c.safe_set.batch,
            ModuleKind::Constr => &mut c.constraint.batch,
            ModuleKind::Gi => &mut c.goal.batch,
        }
    }

    #[test]
    fn a_valid_configuration_takes_valid_planner_settings_and_stays_valid() {
        let mut c = Valid::preset(Preset::Quick, EnvKind::Reacher);
        let planner = PlannerConfig {
            elites: 7,
            ..PlannerConfig::default()
        };
        c.set_planner(planner.clone().validated().unwrap());
        assert_eq!(c.planner, planner);
        assert_eq!(*c.valid_planner(), planner);
        assert_eq!(c.env, EnvKind::Reacher);
        c.validate().unwrap();
    }

    #[test]
    fn reading_a_file_checks_it_and_names_the_file_the_field_and_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::quick(EnvKind::Navigation);
        (c.planner.population, c.planner.elites) = (500, 5000);
        let bare = dir.path().join("bare.json");
        std::fs::write(&bare, serde_json::to_vec(&c).unwrap()).unwrap();
        let e = format!("{:#}", read_file(&bare).unwrap_err());
        assert!(
            e.contains("bare.json")
                && e.contains("planner.elites = 5000 must be ≤ planner.population (500)"),
            "{e}"
        );
        c.planner.elites = 50;
        let run = dir.path().join("config.json");
        let saved = serde_json::json!({ "seed": 3, "config": &c });
        std::fs::write(&run, serde_json::to_vec(&saved).unwrap()).unwrap();
        assert_eq!(*read_file(&run).unwrap(), c);
    }
}
