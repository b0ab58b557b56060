//! The trainer: optimisers, per-module iteration counts and random streams, and the chunked loop;
//! and saving them beside a checkpoint so a resumed run trains exactly as an uninterrupted one.

use super::adam::{Adam, AdamParams};
use super::{ChunkReport, TrainError, losses};
use crate::config::{Config, SafeSetLoss, Valid};
use crate::data::augment::random_resized_crops;
use crate::data::images::{ImagePool, image_tensor};
use crate::data::replay::{Filter, LatentReplay};
use crate::env::IMAGE_SIZE;
use crate::files::write_atomic;
use crate::model::agent::{Agent, ModuleKind};
use crate::model::checkpoint::CheckpointError;
use crate::model::ensemble_backprop::{EnsembleBackprop, mlp_grads};
use crate::model::rng::TensorRng;
use crate::seed::derive;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The trainer's bookkeeping in a checkpoint folder (beside each module's `<module>_adam` file).
pub const TRAINING_FILE: &str = "training.json";

/// Path of module `m`'s optimiser state in a checkpoint folder.
pub fn optimizer_path(dir: &Path, m: ModuleKind) -> PathBuf {
    dir.join(format!("{}_adam.safetensors", m.name()))
}

/// `training.json`: per module, its iteration count and how far its random stream was read.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TrainingFile {
    modules: BTreeMap<String, ModuleTraining>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ModuleTraining {
    iterations: u64,
    /// Position of the module's random stream, in 32-bit words.
    rng_position: u128,
}

/// What [`Trainer::load_state`] found: the modules it had to leave with fresh Adam moments or a
/// fresh random stream (an older checkpoint, or one not written by a session).
#[derive(Debug, Default, PartialEq)]
pub struct Restored {
    pub fresh_moments: Vec<ModuleKind>,
    pub fresh_streams: Vec<ModuleKind>,
}

/// Trains the six modules of one agent. Holds one Adam optimiser per module (its moments
/// persist across calls), the iteration count of each module, and one seeded random stream per
/// module for batches, latent noise and augmentation — so a module's training does not depend on
/// how the others were interleaved with it.
pub struct Trainer {
    config: Valid<Config>,
    optimizers: Vec<Adam>,
    iterations: [u64; 6],
    rngs: Vec<TensorRng>,
    /// Per module, the buffers of its hand-written backprop on the CPU (see
    /// [`Self::module_step`]).
    backprop: [EnsembleBackprop; 6],
    /// Whether the latent modules train by hand-written backprop where they can (off: always
    /// candle's autograd, for the tests comparing the two).
    by_hand: bool,
}

impl Trainer {
    /// A trainer for `agent` with the rates and batch sizes of `config`; its random streams are
    /// derived from the run's `seed`. Sets the process's convolution precision from `config`.
    pub fn new(agent: &Agent, config: &Valid<Config>, seed: u64) -> Result<Self, TrainError> {
        let members = config.value.members_in_use();
        if agent.value.members() != members {
            return Err(TrainError::ValueMembers {
                agent: agent.value.members(),
                config: members,
            });
        }
        let optimizers = ModuleKind::ALL
            .iter()
            .map(|&m| {
                let p = AdamParams {
                    lr: config.lr(m),
                    ..Default::default()
                };
                Adam::new(agent.trainable_named(m), p)
            })
            .collect::<candle_core::Result<_>>()?;
        let rngs = ModuleKind::ALL
            .iter()
            .map(|&m| TensorRng::new(derive(seed, "train", m as u64)))
            .collect();
        crate::model::conv::set_precision(config.precision);
        Ok(Self {
            config: config.clone(),
            optimizers,
            iterations: [0; 6],
            rngs,
            backprop: Default::default(),
            by_hand: true,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the configuration (e.g. edited in the app between phases). Learning rates change
    /// in place; optimiser moments and iteration counts are kept.
    pub fn set_config(&mut self, config: &Valid<Config>) -> Result<(), TrainError> {
        if config.value.members_in_use() != self.config.value.members_in_use() {
            return Err(TrainError::ValueMembers {
                agent: self.config.value.members_in_use(),
                config: config.value.members_in_use(),
            });
        }
        for m in ModuleKind::ALL {
            self.optimizers[m as usize].set_learning_rate(config.lr(m));
        }
        crate::model::conv::set_precision(config.precision);
        self.config = config.clone();
        Ok(())
    }

    /// Iterations module `m` has been trained for by this trainer (or since
    /// [`set_iterations`](Self::set_iterations)).
    pub fn iterations(&self, m: ModuleKind) -> u64 {
        self.iterations[m as usize]
    }

    /// Sets a module's iteration count, e.g. to continue from a checkpoint without repeating the
    /// value's reward-to-go phase.
    pub fn set_iterations(&mut self, m: ModuleKind, n: u64) {
        self.iterations[m as usize] = n;
    }

    /// Module `m`'s optimiser.
    pub fn optimizer(&self, m: ModuleKind) -> &Adam {
        &self.optimizers[m as usize]
    }

    /// Writes the training state of `modules` into checkpoint folder `dir` (created if needed):
    /// each one's Adam moments and step count (`<module>_adam.safetensors`) and, in
    /// `training.json`, its iteration count and random-stream position. Every file is written
    /// atomically.
    pub fn save_state(&self, dir: &Path, modules: &[ModuleKind]) -> Result<(), CheckpointError> {
        std::fs::create_dir_all(dir).map_err(|e| CheckpointError::Write {
            path: dir.into(),
            msg: e.to_string(),
        })?;
        let mut file = TrainingFile::default();
        for &m in modules {
            self.optimizers[m as usize].save(&optimizer_path(dir, m))?;
            file.modules.insert(
                m.name().into(),
                ModuleTraining {
                    iterations: self.iterations[m as usize],
                    rng_position: self.rngs[m as usize].position(),
                },
            );
        }
        let path = dir.join(TRAINING_FILE);
        let json = serde_json::to_vec_pretty(&file).expect("training state serialises");
        write_atomic(&path, &json).map_err(|e| CheckpointError::Write {
            path,
            msg: e.to_string(),
        })
    }

    /// Restores what [`save_state`](Self::save_state) wrote into `dir` for `modules`. A module
    /// without a state file keeps fresh moments, one missing from `training.json` its current
    /// iteration count and stream (both reported); a file that does not fit is an error naming it.
    pub fn load_state(
        &mut self,
        dir: &Path,
        modules: &[ModuleKind],
    ) -> Result<Restored, CheckpointError> {
        let path = dir.join(TRAINING_FILE);
        let file: TrainingFile = if path.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| CheckpointError::Unreadable {
                path: path.clone(),
                msg: e.to_string(),
            })?;
            serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Unreadable {
                path: path.clone(),
                msg: format!("malformed {TRAINING_FILE}: {e}"),
            })?
        } else {
            TrainingFile::default()
        };
        let mut restored = Restored::default();
        for &m in modules {
            let adam = optimizer_path(dir, m);
            if adam.is_file() {
                self.optimizers[m as usize].load(&adam)?;
            } else {
                restored.fresh_moments.push(m);
            }
            match file.modules.get(m.name()) {
                Some(t) => {
                    self.iterations[m as usize] = t.iterations;
                    self.rngs[m as usize].set_position(t.rng_position);
                }
                None => restored.fresh_streams.push(m),
            }
        }
        Ok(restored)
    }

    /// One VAE iteration on a batch from `pool`; returns its loss.
    pub fn vae_step(&mut self, agent: &Agent, pool: &ImagePool) -> Result<f32, TrainError> {
        crate::cpu::flush_denormals();
        if pool.is_empty() {
            return Err(TrainError::NoImages);
        }
        if pool.channels() != agent.spec.channels {
            return Err(TrainError::Channels {
                pool: pool.channels(),
                agent: agent.spec.channels,
            });
        }
        let cfg = &self.config.vae;
        let batch = cfg.batch;
        if self.iterations[ModuleKind::Vae as usize] == 0 && cfg.log_std_bias != 0.0 {
            // the configured init of the log-std head, before the first update
            agent.set_vae_log_std_bias(cfg.log_std_bias)?;
        }
        if cfg.lr_final < 1.0 {
            // cosine from lr to lr_final·lr over the configured iterations
            let t = self.iterations[ModuleKind::Vae as usize] as f64 / cfg.iterations.max(1) as f64;
            let f = cfg.lr_final
                + (1.0 - cfg.lr_final) * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos());
            self.optimizers[ModuleKind::Vae as usize].set_learning_rate(cfg.lr * f);
        }
        let rng = &mut self.rngs[ModuleKind::Vae as usize];
        let target = pool.sample(batch, rng.rng());
        let sqrt_weights = if cfg.foreground_weight > 0.0 {
            let w = pool.foreground_weights(&target, cfg.foreground_weight);
            let sw = w.into_iter().map(f32::sqrt).collect();
            Some(image_tensor(sw, pool.channels(), &agent.device)?)
        } else {
            None
        };
        let augmented = if cfg.augment {
            // one crop per RGB frame: the frames of a stack are cropped independently
            let crops = random_resized_crops(&target, 3, IMAGE_SIZE, cfg.crop_scale, rng.rng());
            Some(image_tensor(crops, pool.channels(), &agent.device)?)
        } else {
            None
        };
        let eps = rng.normal((batch, agent.spec.latent), &agent.device)?;
        let target = image_tensor(target, pool.channels(), &agent.device)?;
        let input = augmented.as_ref().unwrap_or(&target);
        let (loss, _, _) = losses::vae(
            &agent.vae,
            input,
            &target,
            &eps,
            cfg.kl_weight,
            sqrt_weights.as_ref(),
        )?;
        self.apply(agent, ModuleKind::Vae, &loss)
    }

    /// One iteration of latent module `m` on a batch from `replay`; returns its loss. On the CPU
    /// the loss and its gradients come by hand-written backprop (the same numbers without
    /// candle's per-op overhead), except for dynamics with `normalize_deltas`.
    pub fn module_step(
        &mut self,
        agent: &Agent,
        replay: &mut LatentReplay,
        m: ModuleKind,
    ) -> Result<f32, TrainError> {
        crate::cpu::flush_denormals();
        let device = agent.device.clone();
        let by_hand = self.by_hand && device.is_cpu();
        let cfg = &self.config;
        let rng = self.rngs[m as usize].rng();
        let ws = &mut self.backprop[m as usize];
        let data = |e| TrainError::Data {
            module: m,
            source: e,
        };
        let loss = match m {
            ModuleKind::Vae => return Err(TrainError::NotLatent(m)),
            ModuleKind::Dyn => {
                let b = replay
                    .sample_members(
                        cfg.dynamics.members,
                        cfg.dynamics.batch,
                        Filter::All,
                        rng,
                        &device,
                    )
                    .map_err(data)?;
                if cfg.dynamics.normalize_deltas {
                    let (mean, std) = update_delta_stats(agent, &(&b.z_next - &b.z)?)?;
                    losses::dynamics(&agent.dynamics, &b, Some((&mean, &std)))?
                } else if by_hand {
                    let delta = (&b.z_next - &b.z)?;
                    let value = agent.dynamics.nll_backprop(ws, &b.z, &b.action, &delta)?;
                    return self.apply_by_hand(agent, m, value);
                } else {
                    losses::dynamics(&agent.dynamics, &b, None)?
                }
            }
            ModuleKind::Val => {
                let members = cfg.value.members_in_use();
                let mut b = replay
                    .sample_members(members, cfg.value.batch, Filter::OnPolicy, rng, &device)
                    .map_err(data)?;
                if cfg.value.smoothing > 0.0 {
                    b.z = smoothed(&b.z, replay.spread(), cfg.value.smoothing, rng)?;
                }
                let td = (self.iterations[m as usize] >= cfg.value.val_init_iters as u64)
                    .then_some(losses::Td {
                        discount: cfg.value.discount,
                        bootstrap_timeouts: cfg.value.bootstrap_timeouts,
                    });
                if by_hand {
                    let value = losses::value_by_hand(&agent.value, ws, &b, td)?;
                    return self.apply_by_hand(agent, m, value);
                }
                losses::value(&agent.value, &b, td)?
            }
            ModuleKind::Ss => {
                let mut b = replay
                    .sample(cfg.safe_set.batch, Filter::All, rng, &device)
                    .map_err(data)?;
                if cfg.safe_set.smoothing > 0.0 {
                    b.z = smoothed(&b.z, replay.spread(), cfg.safe_set.smoothing, rng)?;
                }
                let gamma = (cfg.safe_set.variant == SafeSetLoss::Bellman)
                    .then_some(cfg.safe_set.bellman_coef);
                if by_hand {
                    let value = losses::safe_set_by_hand(&agent.safe_set, ws, &b, gamma)?;
                    return self.apply_by_hand(agent, m, value);
                }
                losses::safe_set(&agent.safe_set, &b, gamma)?
            }
            ModuleKind::Constr | ModuleKind::Gi => {
                let (head, c) = match m {
                    ModuleKind::Constr => (&agent.constraint, &cfg.constraint),
                    _ => (&agent.goal, &cfg.goal),
                };
                let mut b = replay
                    .sample(c.batch, Filter::All, rng, &device)
                    .map_err(data)?;
                if c.smoothing > 0.0 {
                    b.z_next = smoothed(&b.z_next, replay.spread(), c.smoothing, rng)?;
                }
                let label = match m {
                    ModuleKind::Constr => &b.constraint,
                    _ => &b.goal,
                };
                if by_hand {
                    let value = losses::classifier_by_hand(head, ws, &b.z_next, label)?;
                    return self.apply_by_hand(agent, m, value);
                }
                losses::classifier(head, &b.z_next, label)?
            }
        };
        self.apply(agent, m, &loss)
    }

    /// Checks the loss, takes the Adam step, counts the iteration and refreshes target nets when
    /// due. A non-finite loss is refused before any weight changes.
    fn apply(&mut self, agent: &Agent, m: ModuleKind, loss: &Tensor) -> Result<f32, TrainError> {
        let value = loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
        self.check_finite(m, value)?;
        self.optimizers[m as usize].backward_step(loss)?;
        self.stepped(agent, m, value)
    }

    /// [`apply`](Self::apply) for a loss by hand-written backprop: its gradients are in module
    /// `m`'s workspace.
    fn apply_by_hand(
        &mut self,
        agent: &Agent,
        m: ModuleKind,
        value: f32,
    ) -> Result<f32, TrainError> {
        self.check_finite(m, value)?;
        let ws = &self.backprop[m as usize];
        let grads = match m {
            ModuleKind::Vae => return Err(TrainError::NotLatent(m)),
            ModuleKind::Dyn => agent.dynamics.grads(ws),
            ModuleKind::Val => mlp_grads(&agent.value.online.iter().collect::<Vec<_>>(), ws),
            ModuleKind::Ss => mlp_grads(&[&agent.safe_set.online.net], ws),
            ModuleKind::Constr => mlp_grads(&[&agent.constraint.net], ws),
            ModuleKind::Gi => mlp_grads(&[&agent.goal.net], ws),
        };
        self.optimizers[m as usize].step_slices(&grads)?;
        self.stepped(agent, m, value)
    }

    /// Refuses a non-finite loss `value` of module `m`.
    fn check_finite(&self, m: ModuleKind, value: f32) -> Result<(), TrainError> {
        if value.is_finite() {
            return Ok(());
        }
        Err(TrainError::NonFinite {
            module: m,
            iteration: self.iterations[m as usize] + 1,
            value,
        })
    }

    /// After module `m`'s Adam step: counts the iteration and refreshes target nets when due.
    fn stepped(&mut self, agent: &Agent, m: ModuleKind, value: f32) -> Result<f32, TrainError> {
        let i = m as usize;
        agent.weights_changed();
        self.iterations[i] += 1;
        let every = match m {
            ModuleKind::Ss => self.config.safe_set.target_every,
            ModuleKind::Val => self.config.value.target_every,
            _ => 0,
        } as u64;
        if every > 0 && self.iterations[i].is_multiple_of(every) {
            agent.sync_targets_of(m)?;
        }
        Ok(value)
    }

    /// Runs `iters` VAE iterations, calling `on_chunk` after every `chunk` of them (and after the
    /// last) with the chunk's mean loss. Returns the mean loss of each chunk.
    pub fn train_vae(
        &mut self,
        agent: &Agent,
        pool: &ImagePool,
        iters: usize,
        chunk: usize,
        on_chunk: impl FnMut(&ChunkReport),
    ) -> Result<Vec<f32>, TrainError> {
        self.run(ModuleKind::Vae, iters, chunk, on_chunk, |t| {
            t.vae_step(agent, pool)
        })
    }

    /// Runs `iters` iterations of latent module `m`, reporting like
    /// [`train_vae`](Self::train_vae). Returns the mean loss of each chunk.
    pub fn train_module(
        &mut self,
        agent: &Agent,
        replay: &mut LatentReplay,
        m: ModuleKind,
        iters: usize,
        chunk: usize,
        on_chunk: impl FnMut(&ChunkReport),
    ) -> Result<Vec<f32>, TrainError> {
        if m == ModuleKind::Vae {
            return Err(TrainError::NotLatent(m));
        }
        self.run(m, iters, chunk, on_chunk, |t| {
            t.module_step(agent, replay, m)
        })
    }

    fn run(
        &mut self,
        m: ModuleKind,
        iters: usize,
        chunk: usize,
        mut on_chunk: impl FnMut(&ChunkReport),
        mut step: impl FnMut(&mut Self) -> Result<f32, TrainError>,
    ) -> Result<Vec<f32>, TrainError> {
        let chunk = if chunk == 0 { iters.max(1) } else { chunk };
        let mut means = Vec::with_capacity(iters.div_ceil(chunk));
        let mut done = 0;
        while done < iters {
            let n = chunk.min(iters - done);
            let mut sum = 0.0f64;
            for _ in 0..n {
                sum += step(self)? as f64;
            }
            done += n;
            let mean_loss = (sum / n as f64) as f32;
            means.push(mean_loss);
            on_chunk(&ChunkReport {
                module: m,
                done,
                total: iters,
                iteration: self.iterations(m),
                mean_loss,
            });
        }
        Ok(means)
    }
}

/// `z` (`[…, latent]`) plus Gaussian noise of std `fraction × spread[d]` in each dimension
/// `d`: the input smoothing of the classifiers and the value (`safe_set.smoothing`,
/// `constraint.smoothing`, `goal.smoothing`, `value.smoothing`).
fn smoothed(
    z: &Tensor,
    spread: &[f32],
    fraction: f32,
    rng: &mut impl rand::Rng,
) -> candle_core::Result<Tensor> {
    use rand_distr::{Distribution, StandardNormal};
    let l = z.dim(candle_core::D::Minus1)?;
    let noise: Vec<f32> = (0..z.elem_count())
        .map(|i| {
            let eps: f32 = StandardNormal.sample(rng);
            eps * fraction * spread[i % l]
        })
        .collect();
    z + Tensor::from_vec(noise, z.shape(), z.device())?
}

/// Folds observed deltas (`[…, latent]`) into the dynamics' running mean and variance (stored in
/// its `delta_rms` variables, so checkpoints keep them) and returns (mean, std) for standardising.
fn update_delta_stats(agent: &Agent, deltas: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let deltas = deltas.flatten_to(deltas.rank() - 2)?.detach();
    let data = agent
        .vars(ModuleKind::Dyn)
        .data()
        .lock()
        .expect("var map lock");
    let get = |n: &str| -> candle_core::Result<&Var> {
        data.get(n)
            .ok_or_else(|| candle_core::Error::Msg(format!("dynamics variable {n} missing")))
    };
    let (mean_v, var_v, count_v) = (
        get("delta_rms.mean")?,
        get("delta_rms.var")?,
        get("delta_rms.count")?,
    );
    let n = deltas.dim(0)? as f64;
    let count = count_v.as_tensor().to_scalar::<f32>()? as f64;
    let total = count + n;
    let bm = deltas.mean(0)?;
    let bv = deltas.broadcast_sub(&bm)?.sqr()?.mean(0)?;
    let old_mean = mean_v.as_tensor().copy()?;
    let d = (&bm - &old_mean)?;
    let mean = (&old_mean + d.affine(n / total, 0.0)?)?;
    let m2 = ((var_v.as_tensor().affine(count, 0.0)? + bv.affine(n, 0.0)?)?
        + d.sqr()?.affine(count * n / total, 0.0)?)?;
    let var = m2.affine(1.0 / total, 0.0)?;
    mean_v.set(&mean)?;
    var_v.set(&var)?;
    count_v.set(&Tensor::new(total as f32, deltas.device())?)?;
    agent.weights_changed();
    Ok((mean, (var + 1e-8)?.sqrt()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::replay::Record;
    use crate::env::EnvKind;
    use candle_core::Device;

    fn record(reward: f32, done: bool, rtg: f32) -> Record {
        Record {
            action: [0.5, -0.5],
            reward,
            done,
            constraint: reward > 0.0,
            safe_set: true,
            on_policy: true,
            rtg,
        }
    }

    /// A buffer of `n` transitions with latents spread along one axis and almost no noise.
    fn replay(n: usize, rec: impl Fn(usize) -> Record, mean_shift: f32) -> LatentReplay {
        let mut r = LatentReplay::new(n, 32);
        for i in 0..n {
            let m: Vec<f32> = (0..32)
                .map(|d| (i as f32 / n as f32) * (d % 3) as f32)
                .collect();
            let next: Vec<f32> = m.iter().map(|v| v + mean_shift).collect();
            let s = [-4.0; 32];
            r.insert((&m, &s), (&next, &s), rec(i)).unwrap();
        }
        r
    }

    fn setup(f: impl FnOnce(&mut Config)) -> (Agent, Trainer) {
        let mut cfg = Config::quick(EnvKind::Navigation);
        cfg.value.members = 2;
        for m in ModuleKind::LATENT {
            match m {
                ModuleKind::Dyn => cfg.dynamics.batch = 16,
                ModuleKind::Val => cfg.value.batch = 16,
                ModuleKind::Ss => cfg.safe_set.batch = 16,
                _ => {}
            }
        }
        f(&mut cfg);
        let agent = Agent::new(cfg.agent_spec(), &Device::Cpu, 0).unwrap();
        let trainer = Trainer::new(&agent, &Valid::new(cfg).unwrap(), 0).unwrap();
        (agent, trainer)
    }

    fn var(agent: &Agent, m: ModuleKind, name: &str) -> Vec<f32> {
        let data = agent.vars(m).data().lock().unwrap();
        data[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// The jump of the value across a step of its target (0 below u = 0.5 on the data's line,
    /// −10 above), between u = 0.45 and 0.55, after training with `smoothing`.
    fn value_jump_across_a_step(smoothing: f32) -> f32 {
        let (agent, mut t) = setup(|c| {
            c.value.val_init_iters = 1_000;
            c.value.lr = 1e-3;
            c.value.smoothing = smoothing;
        });
        let n = 200;
        let target = |i: usize| if 2 * i < n { 0.0 } else { -10.0 };
        let mut r = replay(n, |i| record(-1.0, false, target(i)), 0.0);
        t.train_module(&agent, &mut r, ModuleKind::Val, 600, 0, |_| {})
            .unwrap();
        // The helper's latents: u·(d mod 3) in dimension d.
        let at = |u: f32| -> f32 {
            let z: Vec<f32> = (0..32).map(|d| u * (d % 3) as f32).collect();
            let z = Tensor::from_vec(z, (1, 32), &Device::Cpu).unwrap();
            agent
                .value
                .forward(&z)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()[0]
        };
        at(0.45) - at(0.55)
    }

    #[test]
    fn input_smoothing_blurs_what_the_value_learns_from_nearby_latents() {
        let (plain, smooth) = (value_jump_across_a_step(0.0), value_jump_across_a_step(1.0));
        println!("jump: plain {plain:.3}, smoothed {smooth:.3}");
        assert!(
            plain > 5.0,
            "without smoothing the step is learned: {plain}"
        );
        assert!(smooth < 0.7 * plain, "plain {plain}, smoothed {smooth}");
    }

    #[test]
    fn smoothing_noise_scales_with_each_dimensions_spread() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let n = 4000;
        let z = Tensor::ones((n, 2), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let out = smoothed(&z, &[2.0, 0.0], 0.5, &mut rng).unwrap();
        let v = out.to_vec2::<f32>().unwrap();
        let col = |d: usize| v.iter().map(move |r| r[d] as f64);
        let mean = col(0).sum::<f64>() / n as f64;
        let std = (col(0).map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
        assert!((std - 1.0).abs() < 0.05, "std {std}");
        assert!(
            col(1).all(|x| x == 1.0),
            "a dimension without spread gets no noise"
        );
    }

    #[test]
    fn safe_set_target_is_copied_every_target_every_updates() {
        let (agent, mut t) = setup(|c| c.safe_set.target_every = 3);
        let mut r = replay(50, |_| record(-1.0, false, 0.0), 0.0);
        let online = "model.6.weight";
        let target = "target.model.6.weight";
        let version = agent.weights_version();
        t.train_module(&agent, &mut r, ModuleKind::Ss, 2, 0, |_| {})
            .unwrap();
        assert_ne!(
            agent.weights_version(),
            version,
            "training renews the version"
        );
        assert_ne!(
            var(&agent, ModuleKind::Ss, online),
            var(&agent, ModuleKind::Ss, target)
        );
        // The third update, in a later call, triggers the copy.
        t.train_module(&agent, &mut r, ModuleKind::Ss, 1, 0, |_| {})
            .unwrap();
        assert_eq!(
            var(&agent, ModuleKind::Ss, online),
            var(&agent, ModuleKind::Ss, target)
        );
        t.train_module(&agent, &mut r, ModuleKind::Ss, 1, 0, |_| {})
            .unwrap();
        assert_ne!(
            var(&agent, ModuleKind::Ss, online),
            var(&agent, ModuleKind::Ss, target)
        );
        assert_eq!(t.iterations(ModuleKind::Ss), 4);
    }

    #[test]
    fn chunks_report_progress_and_counts_persist_across_calls() {
        let (agent, mut t) = setup(|_| {});
        let mut r = replay(
            50,
            |i| record(if i % 2 == 0 { 1.0 } else { -1.0 }, false, 0.0),
            0.0,
        );
        let mut reports = Vec::new();
        let means = t
            .train_module(&agent, &mut r, ModuleKind::Constr, 7, 3, |c| {
                reports.push(*c)
            })
            .unwrap();
        assert_eq!(means.len(), 3);
        let done: Vec<(usize, u64)> = reports.iter().map(|c| (c.done, c.iteration)).collect();
        assert_eq!(done, [(3, 3), (6, 6), (7, 7)]);
        assert!(
            reports
                .iter()
                .all(|c| c.total == 7 && c.module == ModuleKind::Constr)
        );
        assert_eq!(
            means,
            reports.iter().map(|c| c.mean_loss).collect::<Vec<_>>()
        );
        t.train_module(&agent, &mut r, ModuleKind::Constr, 2, 0, |_| {})
            .unwrap();
        assert_eq!(t.iterations(ModuleKind::Constr), 9);
        assert_eq!(t.iterations(ModuleKind::Gi), 0);
        assert!(matches!(
            t.train_module(&agent, &mut r, ModuleKind::Vae, 1, 0, |_| {}),
            Err(TrainError::NotLatent(ModuleKind::Vae))
        ));
    }

    #[test]
    fn a_non_finite_loss_stops_training_and_leaves_the_weights() {
        let (agent, mut t) = setup(|_| {});
        let mut good = replay(20, |_| record(-1.0, false, -5.0), 0.0);
        t.train_module(&agent, &mut good, ModuleKind::Val, 2, 0, |_| {})
            .unwrap();
        let weight = "models.0.value_net.model.0.weight";
        let before = var(&agent, ModuleKind::Val, weight);
        // A corrupt reward-to-go makes the regression loss NaN.
        let mut bad = replay(20, |_| record(-1.0, false, f32::NAN), 0.0);
        let err = t
            .train_module(&agent, &mut bad, ModuleKind::Val, 5, 0, |_| {})
            .unwrap_err();
        match &err {
            TrainError::NonFinite {
                module, iteration, ..
            } => assert_eq!((*module, *iteration), (ModuleKind::Val, 3)),
            e => panic!("unexpected error {e}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("val loss") && msg.contains("iteration 3"),
            "{msg}"
        );
        assert_eq!(var(&agent, ModuleKind::Val, weight), before);
        assert_eq!(t.iterations(ModuleKind::Val), 2);
    }

    #[test]
    fn value_regresses_onto_reward_to_go_then_switches_to_td_targets() {
        // rtg says +3 everywhere, TD says −1 (every transition is terminal with reward −1).
        let v = value_after_rtg_then_td(false);
        assert!((v + 1.0).abs() < 0.5, "after the TD phase V = {v}");
    }

    #[test]
    fn bootstrapping_through_timeouts_keeps_the_value_of_the_next_state() {
        // Same data, but an episode end is a timeout: the target is −1 + 0.99·V_target(z′), and
        // V_target starts at the reward-to-go fit (+3), so V stays well above −1.
        let v = value_after_rtg_then_td(true);
        assert!(v > 0.5, "after the TD phase V = {v}");
    }

    /// Mean value after 150 reward-to-go updates (+3) and 150 TD updates on terminal −1 steps.
    fn value_after_rtg_then_td(bootstrap_timeouts: bool) -> f32 {
        let (agent, mut t) = setup(|c| {
            c.value.val_init_iters = 150;
            c.value.lr = 1e-3;
            c.value.bootstrap_timeouts = bootstrap_timeouts;
        });
        let mut r = replay(40, |_| record(-1.0, true, 3.0), 0.0);
        let z = Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        let mean_value = |agent: &Agent| -> f32 {
            agent
                .value
                .forward(&z)
                .unwrap()
                .mean_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        t.train_module(&agent, &mut r, ModuleKind::Val, 150, 0, |_| {})
            .unwrap();
        let v = mean_value(&agent);
        assert!(
            (v - 3.0).abs() < 0.5,
            "after the reward-to-go phase V = {v}"
        );
        t.train_module(&agent, &mut r, ModuleKind::Val, 150, 0, |_| {})
            .unwrap();
        mean_value(&agent)
    }

    #[test]
    fn a_saved_training_state_continues_exactly() {
        let (agent_a, mut a) = setup(|_| {});
        let mut r = replay(50, |i| record(-1.0, i % 7 == 0, 0.0), 0.0);
        let ss = ModuleKind::Ss;
        a.train_module(&agent_a, &mut r, ss, 3, 0, |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        crate::model::checkpoint::save(&agent_a, dir.path(), serde_json::json!({})).unwrap();
        a.save_state(dir.path(), &[ss]).unwrap();
        assert!(optimizer_path(dir.path(), ss).is_file());

        // A fresh trainer (same seed) on the saved weights picks up where `a` stopped.
        let (agent_b, mut b) = setup(|_| {});
        let weights = crate::model::checkpoint::module_path(dir.path(), ss);
        crate::model::checkpoint::load_module(&agent_b, ss, &weights).unwrap();
        let restored = b.load_state(dir.path(), &[ss, ModuleKind::Gi]).unwrap();
        let gi = vec![ModuleKind::Gi];
        assert_eq!(
            restored,
            Restored {
                fresh_moments: gi.clone(),
                fresh_streams: gi
            }
        );
        assert_eq!((b.iterations(ss), b.optimizer(ss).step_count()), (3, 3));
        a.train_module(&agent_a, &mut r, ss, 2, 0, |_| {}).unwrap();
        b.train_module(&agent_b, &mut r, ss, 2, 0, |_| {}).unwrap();
        for name in ["model.0.weight", "model.6.bias", "target.model.6.weight"] {
            assert_eq!(var(&agent_a, ss, name), var(&agent_b, ss, name), "{name}");
        }
    }

    #[test]
    fn dynamics_by_hand_train_as_candles_autograd_does() {
        let batch = |c: &mut Config| c.dynamics.batch = 40;
        let (by_hand, mut a) = setup(batch);
        let (autograd, mut b) = setup(batch);
        b.by_hand = false;
        let mut r = replay(60, |_| record(-1.0, false, 0.0), 0.3);
        let dy = ModuleKind::Dyn;
        let start = by_hand.trainable_named(dy);
        let start: Vec<Vec<f32>> = start.iter().map(|(n, _)| var(&by_hand, dy, n)).collect();
        let la = a.train_module(&by_hand, &mut r, dy, 10, 1, |_| {}).unwrap();
        let lb = b
            .train_module(&autograd, &mut r, dy, 10, 1, |_| {})
            .unwrap();
        for (x, y) in la.iter().zip(&lb) {
            assert!((x - y).abs() < 1e-4 * y.abs(), "losses {la:?} vs {lb:?}");
        }
        assert_eq!(a.optimizer(dy).step_count(), 10);
        let mut moved = 0f32;
        for ((name, _), before) in by_hand.trainable_named(dy).iter().zip(&start) {
            let (x, y) = (var(&by_hand, dy, name), var(&autograd, dy, name));
            for ((x, y), s) in x.iter().zip(&y).zip(before) {
                assert!((x - y).abs() < 1e-5, "{name}: {x} vs {y}");
                moved = moved.max((x - s).abs());
            }
        }
        assert!(moved > 5e-3, "ten steps move the weights ({moved})");
    }

    #[test]
    fn value_and_classifiers_by_hand_train_as_candles_autograd_does() {
        let config = |c: &mut Config| {
            c.value.batch = 40;
            c.value.val_init_iters = 4; // four reward-to-go steps, then TD steps
            c.value.target_every = 3;
            c.safe_set.batch = 40;
            c.safe_set.target_every = 3;
            c.constraint.batch = 40;
            c.goal.batch = 40;
        };
        let (by_hand, mut a) = setup(config);
        let (autograd, mut b) = setup(config);
        b.by_hand = false;
        // goal, constraint and plain steps; some episode ends; reward-to-go on both sides of 1
        let rec = |i: usize| {
            let reward = [0.0, 1.0, -1.0][i % 3];
            record(reward, i.is_multiple_of(7), -((i % 5) as f32) * 0.8)
        };
        let mut r = replay(60, rec, 0.3);
        for m in [
            ModuleKind::Val,
            ModuleKind::Ss,
            ModuleKind::Constr,
            ModuleKind::Gi,
        ] {
            let start = by_hand.trainable_named(m);
            let start: Vec<Vec<f32>> = start.iter().map(|(n, _)| var(&by_hand, m, n)).collect();
            let la = a.train_module(&by_hand, &mut r, m, 8, 1, |_| {}).unwrap();
            let lb = b.train_module(&autograd, &mut r, m, 8, 1, |_| {}).unwrap();
            for (x, y) in la.iter().zip(&lb) {
                assert!(
                    (x - y).abs() < 1e-4 * y.abs().max(1e-2),
                    "{m:?} losses {la:?} vs {lb:?}"
                );
            }
            assert_eq!(a.optimizer(m).step_count(), 8);
            let mut moved = 0f32;
            for ((name, _), before) in by_hand.trainable_named(m).iter().zip(&start) {
                let (x, y) = (var(&by_hand, m, name), var(&autograd, m, name));
                for ((x, y), s) in x.iter().zip(&y).zip(before) {
                    assert!((x - y).abs() < 1e-5, "{m:?} {name}: {x} vs {y}");
                    moved = moved.max((x - s).abs());
                }
            }
            assert!(
                moved > 1e-3,
                "{m:?}: eight steps move the weights ({moved})"
            );
        }
    }

    #[test]
    fn normalised_dynamics_keep_running_delta_statistics() {
        let (agent, mut t) = setup(|c| c.dynamics.normalize_deltas = true);
        let mut r = replay(30, |_| record(-1.0, false, 0.0), 2.0);
        t.train_module(&agent, &mut r, ModuleKind::Dyn, 3, 0, |_| {})
            .unwrap();
        let mean = var(&agent, ModuleKind::Dyn, "delta_rms.mean");
        assert!(mean.iter().all(|&m| (m - 2.0).abs() < 0.05), "{mean:?}");
        let count = var(&agent, ModuleKind::Dyn, "delta_rms.count")[0];
        assert!((count - 3.0 * 5.0 * 16.0).abs() < 1.0, "{count}");
    }
}
