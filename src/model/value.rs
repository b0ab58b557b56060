//! The value function: an ensemble of MLP(32 → 1, hidden 200, 3 hidden layers), each with a
//! target copy, or a single such net. The ensemble's output is the mean over members.

use super::LATENT;
use super::mlp::{Mlp, Stacked};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Hidden width of the value, safe-set and classifier nets.
pub const HIDDEN: usize = 200;

/// Value ensemble (`models.{i}.value_net`, `models.{i}.value_net_target`) or single value
/// (`value_net`, `value_net_target`).
#[derive(Clone, Debug)]
pub struct Value {
    pub online: Vec<Mlp>,
    pub target: Vec<Mlp>,
}

impl Value {
    /// `members` nets; 1 gives the single-value layout of the original.
    pub fn new(vb: VarBuilder, members: usize) -> Result<Self> {
        let build = |name: &str| -> Result<Vec<Mlp>> {
            (0..members)
                .map(|i| {
                    let vb = if members == 1 {
                        vb.clone()
                    } else {
                        vb.pp("models").pp(i)
                    };
                    Mlp::new(vb.pp(name), LATENT, 1, HIDDEN, 3)
                })
                .collect()
        };
        Ok(Self {
            online: build("value_net")?,
            target: build("value_net_target")?,
        })
    }

    /// Number of members.
    pub fn members(&self) -> usize {
        self.online.len()
    }

    /// Mean over members of the online nets: `[B, 32]` → `[B, 1]`.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        if self.online.len() == 1 {
            return self.online[0].forward(z);
        }
        Stacked::new(&self.online.iter().collect::<Vec<_>>())?.forward_mean(z)
    }

    /// Each online member on its own batch: `[M, B, 32]` → `[M, B, 1]`.
    pub fn forward_members(&self, z: &Tensor) -> Result<Tensor> {
        Stacked::new(&self.online.iter().collect::<Vec<_>>())?.forward(z)
    }

    /// Each target member on its own batch: `[M, B, 32]` → `[M, B, 1]`.
    pub fn target_members(&self, z: &Tensor) -> Result<Tensor> {
        Stacked::new(&self.target.iter().collect::<Vec<_>>())?.forward(z)
    }
}
