//! Fixtures for the planner's tests: [`Toy`], hand-built latent models (a 2-d latent moved
//! exactly by the action, z′ = z + a, a linear value, and constraint, safe-set and goal logits
//! that are steep steps in x; every rollout is recorded so tests can count and inspect them),
//! a real agent with a rollout job for comparing the fused and tensor rollouts, and [`InBf16`],
//! an agent whose fast path runs in bf16.

use super::fused::FusedModels;
use super::models::{LatentModels, tensor_rollout};
use super::rollout::{Rollout, RolloutStats};
use crate::env::EnvKind;
use crate::model::agent::{Agent, AgentSpec, ModuleKind};
use crate::model::conv::Precision;
use candle_core::{DType, Device, Result, Tensor};
use std::cell::RefCell;

/// Steepness of the step-shaped logits.
const STEEP: f64 = 1000.0;

pub struct Toy {
    device: Device,
    value: [f32; 2],
    /// Constraint violated where x exceeds this.
    forbid_x: Option<f32>,
    /// Value is NaN where the final x exceeds this.
    nan_x: Option<f32>,
    safe_logit: f32,
    /// Added to the safe-set logit per unit of the final y.
    safe_slope_y: f32,
    jobs: RefCell<Vec<Rollout>>,
}

impl Toy {
    /// No constraint, P(safe set) = 0.99 everywhere, value 0.
    pub fn new() -> Self {
        Self {
            device: Device::Cpu,
            value: [0.0, 0.0],
            forbid_x: None,
            nan_x: None,
            safe_logit: (0.99f32 / 0.01).ln(),
            safe_slope_y: 0.0,
            jobs: RefCell::new(Vec::new()),
        }
    }

    /// Value = w · z at the final latent.
    pub fn value(mut self, w: [f32; 2]) -> Self {
        self.value = w;
        self
    }

    pub fn forbid_x_above(mut self, x: f32) -> Self {
        self.forbid_x = Some(x);
        self
    }

    pub fn nan_value_x_above(mut self, x: f32) -> Self {
        self.nan_x = Some(x);
        self
    }

    /// P(safe set) = `p` everywhere.
    pub fn safe_prob(mut self, p: f32) -> Self {
        self.safe_logit = (p / (1.0 - p)).ln();
        self
    }

    /// The safe-set logit grows by `k` per unit of the final y (from `safe_prob`'s at y = 0).
    pub fn safe_slope_y(mut self, k: f32) -> Self {
        self.safe_slope_y = k;
        self
    }

    /// The rollouts asked for so far.
    pub fn jobs(&self) -> Vec<Rollout> {
        self.jobs.borrow().clone()
    }

    fn x(z: &Tensor) -> Result<Tensor> {
        z.narrow(1, 0, 1)
    }
}

impl LatentModels for Toy {
    fn device(&self) -> &Device {
        &self.device
    }

    fn dynamics_members(&self) -> usize {
        5
    }

    fn dynamics(&self, _member: usize, _z: &Tensor, a: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((a.clone(), a.ones_like()?.affine(0.0, -30.0)?))
    }

    fn step_heads(&self, z: &Tensor) -> Result<Tensor> {
        let x = Self::x(z)?;
        let constraint = match self.forbid_x {
            Some(level) => x.affine(STEEP, -STEEP * level as f64)?,
            None => x.affine(0.0, -50.0)?,
        };
        Tensor::cat(&[constraint, x.affine(0.0, -10.0)?], 1)
    }

    fn final_heads(&self, z: &Tensor) -> Result<Tensor> {
        let w = Tensor::new(&[[self.value[0]], [self.value[1]]], &self.device)?;
        let mut value = z.matmul(&w)?;
        if let Some(level) = self.nan_x {
            let nan = Tensor::full(f32::NAN, value.shape(), &self.device)?;
            value = Self::x(z)?.gt(level as f64)?.where_cond(&nan, &value)?;
        }
        let y = z.narrow(1, 1, 1)?.to_dtype(DType::F32)?;
        let safe = y.affine(self.safe_slope_y as f64, self.safe_logit as f64)?;
        Tensor::cat(&[value, safe], 1)
    }

    fn rollout(&self, job: &Rollout) -> Result<RolloutStats> {
        self.jobs.borrow_mut().push(job.clone());
        tensor_rollout(self, job)
    }
}

/// A navigation agent whose dynamics have non-trivial delta statistics (mean, variance), so the
/// rollouts' de-normalisation is exercised.
pub fn agent_with_delta_normalisation() -> Agent {
    let agent = Agent::new(AgentSpec::for_env(EnvKind::Navigation), &Device::Cpu, 3).unwrap();
    let vars = agent.vars(ModuleKind::Dyn).data().lock().unwrap();
    let mean: Vec<f32> = (0..32).map(|d| 0.01 * d as f32 - 0.1).collect();
    let var: Vec<f32> = (0..32).map(|d| 0.2 + 0.05 * d as f32).collect();
    vars["delta_rms.mean"]
        .set(&Tensor::new(mean, &Device::Cpu).unwrap())
        .unwrap();
    vars["delta_rms.var"]
        .set(&Tensor::new(var, &Device::Cpu).unwrap())
        .unwrap();
    drop(vars);
    agent
}

/// A rollout job for a 32-d latent with varied actions and ensemble members.
pub fn rollout_job(population: usize, particles: usize, horizon: usize) -> Rollout {
    let actions = (0..population * horizon * 2)
        .map(|i| ((i * 7919) % 601) as f32 / 100.0 - 3.0)
        .collect();
    Rollout {
        start: (0..32).map(|d| (d as f32 * 0.37).sin()).collect(),
        actions,
        population,
        horizon,
        particles,
        members: (0..horizon).map(|t| (t * 3 + 1) % 5).collect(),
        particle_members: false,
        safe_set_every_step: false,
        noise_seed: 11,
    }
}

/// The agent with its fast path packed in bf16 whatever the process-wide precision (which tests
/// leave alone: other tests run beside them).
pub struct InBf16<'a>(pub &'a Agent);

impl LatentModels for InBf16<'_> {
    fn device(&self) -> &Device {
        LatentModels::device(self.0)
    }
    fn dynamics_members(&self) -> usize {
        self.0.dynamics_members()
    }
    fn dynamics(&self, m: usize, z: &Tensor, a: &Tensor) -> Result<(Tensor, Tensor)> {
        LatentModels::dynamics(self.0, m, z, a)
    }
    fn step_heads(&self, z: &Tensor) -> Result<Tensor> {
        self.0.step_heads(z)
    }
    fn final_heads(&self, z: &Tensor) -> Result<Tensor> {
        self.0.final_heads(z)
    }
    fn packed(&self) -> Result<Option<FusedModels>> {
        FusedModels::from_agent_with(self.0, Precision::Bf16).map(Some)
    }
    fn weights_version(&self) -> Option<u64> {
        Some(self.0.weights_version())
    }
}
