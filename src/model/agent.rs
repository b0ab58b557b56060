//! All six modules of an LS3 agent, each with its own variables (one checkpoint file and one
//! optimiser per module).

use super::classifier::{Classifier, SafeSet};
use super::dynamics::Dynamics;
use super::init::pytorch_default;
use super::rng::TensorRng;
use super::vae::Vae;
use super::value::Value;
use crate::data::images::{image_tensor, to_unit};
use crate::data::replay::ObservationEncoder;
use crate::env::{EnvKind, IMAGE_SIZE};
use candle_core::{DType, Device, Result};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// The six modules, named by their checkpoint file stems.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleKind {
    Vae,
    Dyn,
    Val,
    Ss,
    Constr,
    Gi,
}

impl ModuleKind {
    /// All modules in pipeline order.
    pub const ALL: [ModuleKind; 6] = [
        ModuleKind::Vae,
        ModuleKind::Dyn,
        ModuleKind::Val,
        ModuleKind::Ss,
        ModuleKind::Constr,
        ModuleKind::Gi,
    ];
    /// The five modules that live on the latent space.
    pub const LATENT: [ModuleKind; 5] = [
        ModuleKind::Dyn,
        ModuleKind::Val,
        ModuleKind::Ss,
        ModuleKind::Constr,
        ModuleKind::Gi,
    ];

    /// File stem: `vae`, `dyn`, `val`, `ss`, `constr`, `gi`.
    pub fn name(self) -> &'static str {
        match self {
            ModuleKind::Vae => "vae",
            ModuleKind::Dyn => "dyn",
            ModuleKind::Val => "val",
            ModuleKind::Ss => "ss",
            ModuleKind::Constr => "constr",
            ModuleKind::Gi => "gi",
        }
    }

    /// Parses a file stem.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl std::fmt::Display for ModuleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What determines the shapes of an agent's tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    pub env: EnvKind,
    /// Encoder input channels: 3 × frames stacked.
    pub channels: usize,
    pub latent: usize,
    /// Value ensemble members (1 = single value net).
    pub value_members: usize,
}

impl AgentSpec {
    /// The spec of `env` (value ensemble on, as in every paper run).
    pub fn for_env(env: EnvKind) -> Self {
        Self {
            env,
            channels: 3 * env.frame_stack(),
            latent: super::LATENT,
            value_members: 5,
        }
    }
}

/// An LS3 agent: the VAE and the five latent modules on one device.
pub struct Agent {
    pub spec: AgentSpec,
    pub device: Device,
    pub vae: Vae,
    pub dynamics: Dynamics,
    pub value: Value,
    pub safe_set: SafeSet,
    pub constraint: Classifier,
    pub goal: Classifier,
    vars: [VarMap; 6],
    /// The version of the weights: see [`Agent::weights_version`].
    weights: AtomicU64,
}

/// Source of weights versions, shared by all agents so that a version names one set of weights.
static NEXT_WEIGHTS: AtomicU64 = AtomicU64::new(1);

fn next_weights_version() -> u64 {
    NEXT_WEIGHTS.fetch_add(1, Ordering::Relaxed)
}

/// Images per encoder call when encoding many observations.
const ENCODE_BATCH: usize = 256;

impl ObservationEncoder for Agent {
    fn observation_len(&self) -> usize {
        self.spec.channels * IMAGE_SIZE * IMAGE_SIZE
    }

    fn encode_observations(&self, images: &[&[u8]]) -> Result<(Vec<f32>, Vec<f32>)> {
        Agent::encode_observations(self, images)
    }
}

impl Agent {
    /// A freshly initialised agent (PyTorch's default init, from `seed`).
    pub fn new(spec: AgentSpec, device: &Device, seed: u64) -> Result<Self> {
        let vars: [VarMap; 6] = std::array::from_fn(|_| VarMap::new());
        let agent = Self::build(spec, device, vars)?;
        let mut rng = TensorRng::new(seed);
        for v in &agent.vars {
            pytorch_default(v, &mut rng)?;
        }
        agent.sync_targets()?;
        Ok(agent)
    }

    /// Encoder means and log-stds of observations (each `channels × 64 × 64` bytes), each
    /// flattened `[n × latent]`, computed in batches of [`ENCODE_BATCH`].
    pub fn encode_observations(&self, images: &[&[u8]]) -> Result<(Vec<f32>, Vec<f32>)> {
        let mut mean = Vec::new();
        let mut log_std = Vec::new();
        for chunk in images.chunks(ENCODE_BATCH) {
            let px: Vec<f32> = chunk.iter().flat_map(|b| to_unit(b)).collect();
            let x = image_tensor(px, self.spec.channels, &self.device)?;
            let (m, s) = self.vae.encode_dist(&x)?;
            mean.extend(m.flatten_all()?.to_vec1::<f32>()?);
            log_std.extend(s.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok((mean, log_std))
    }

    /// Builds the modules over the given variable maps (creating any missing variable).
    pub fn build(spec: AgentSpec, device: &Device, vars: [VarMap; 6]) -> Result<Self> {
        let vb = |m: ModuleKind| VarBuilder::from_varmap(&vars[m as usize], DType::F32, device);
        Ok(Self {
            vae: Vae::new(vb(ModuleKind::Vae), spec.channels)?,
            dynamics: Dynamics::new(vb(ModuleKind::Dyn))?,
            value: Value::new(vb(ModuleKind::Val), spec.value_members)?,
            safe_set: SafeSet::new(vb(ModuleKind::Ss))?,
            constraint: Classifier::new(vb(ModuleKind::Constr))?,
            goal: Classifier::new(vb(ModuleKind::Gi))?,
            spec,
            device: device.clone(),
            vars,
            weights: AtomicU64::new(next_weights_version()),
        })
    }

    /// A number that changes whenever the weights do and is never shared by two agents: what
    /// caches of derived data (the planner's packed weights) are keyed on. Training
    /// (`train::Trainer`), target syncs and checkpoint loads renew it; code that writes
    /// variables in place through [`Agent::vars`] must call [`Agent::weights_changed`].
    pub fn weights_version(&self) -> u64 {
        self.weights.load(Ordering::Acquire)
    }

    /// Marks the weights as changed (a new [`Agent::weights_version`]).
    pub fn weights_changed(&self) {
        self.weights
            .store(next_weights_version(), Ordering::Release);
    }

    /// An independent copy of every weight (for reading the models on another thread while
    /// these keep training).
    pub fn deep_copy(&self) -> Result<Self> {
        let vars: [VarMap; 6] = std::array::from_fn(|_| VarMap::new());
        for (from, to) in self.vars.iter().zip(&vars) {
            let src = from.data().lock().expect("var map lock");
            let mut dst = to.data().lock().expect("var map lock");
            for (name, var) in src.iter() {
                dst.insert(
                    name.clone(),
                    candle_core::Var::from_tensor(&var.as_tensor().copy()?)?,
                );
            }
        }
        Self::build(self.spec.clone(), &self.device, vars)
    }

    /// Sets every element of the VAE encoder's log-std bias (`encoder.fc2.bias`) to `value`.
    pub fn set_vae_log_std_bias(&self, value: f64) -> Result<()> {
        let data = self
            .vars(ModuleKind::Vae)
            .data()
            .lock()
            .expect("var map lock");
        let var = data
            .get("encoder.fc2.bias")
            .ok_or_else(|| candle_core::Error::Msg("the VAE has no encoder.fc2.bias".into()))?;
        var.set(&var.as_tensor().ones_like()?.affine(value, 0.0)?)?;
        self.weights_changed();
        Ok(())
    }

    /// The variables of one module (for its optimiser and its checkpoint file).
    pub fn vars(&self, m: ModuleKind) -> &VarMap {
        &self.vars[m as usize]
    }

    /// The trainable variables of one module: everything except target nets and running
    /// statistics, which are copied or accumulated, never optimised.
    pub fn trainable(&self, m: ModuleKind) -> Vec<candle_core::Var> {
        self.trainable_named(m)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// [`trainable`](Self::trainable) with each variable's checkpoint name, sorted by name.
    pub fn trainable_named(&self, m: ModuleKind) -> Vec<(String, candle_core::Var)> {
        let data = self.vars(m).data().lock().expect("var map lock");
        let mut named: Vec<_> = data
            .iter()
            .filter(|(n, _)| !n.contains("target") && !n.starts_with("delta_rms"))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// Copies every online net into its target net (value members and safe set).
    pub fn sync_targets(&self) -> Result<()> {
        self.sync_targets_of(ModuleKind::Val)?;
        self.sync_targets_of(ModuleKind::Ss)
    }

    /// Copies module `m`'s online nets into its target nets (a no-op for modules without any).
    pub fn sync_targets_of(&self, m: ModuleKind) -> Result<()> {
        let data = self.vars(m).data().lock().expect("var map lock");
        for (name, var) in data.iter() {
            if let Some(src) = target_source(name).and_then(|s| data.get(&s)) {
                var.set(src.as_tensor())?;
            }
        }
        self.weights_changed();
        Ok(())
    }
}

/// For a target-net variable name, the name of the online variable it copies.
pub fn target_source(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("target.") {
        Some(rest.to_string())
    } else if name.contains("value_net_target.") {
        Some(name.replace("value_net_target.", "value_net."))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deep_copy_has_the_same_weights_and_does_not_follow_later_changes() {
        let device = Device::Cpu;
        let agent = Agent::new(AgentSpec::for_env(EnvKind::Navigation), &device, 4).unwrap();
        let copy = agent.deep_copy().unwrap();
        let weight = |a: &Agent| -> Vec<f32> {
            let data = a.vars(ModuleKind::Gi).data().lock().unwrap();
            let mut names: Vec<_> = data.keys().cloned().collect();
            names.sort();
            data[&names[0]]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(weight(&agent), weight(&copy));
        {
            let data = agent.vars(ModuleKind::Gi).data().lock().unwrap();
            for var in data.values() {
                var.set(&var.as_tensor().zeros_like().unwrap()).unwrap();
            }
        }
        assert!(weight(&agent).iter().all(|&w| w == 0.0));
        assert!(weight(&copy).iter().any(|&w| w != 0.0));
    }
}
