//! Multi-layer perceptrons named like PyTorch's `nn.Sequential` (`model.0`, `model.2`, …, the odd
//! indices being the ReLUs), and ensembles of them evaluated as one batched matmul.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

/// `MLP(in, out, hidden h, n)`: Linear(in, h), ReLU, (n−1) × [Linear(h, h), ReLU], Linear(h, out).
#[derive(Clone, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// Builds the layers under `vb` as `model.{0,2,…}`.
    pub fn new(vb: VarBuilder, d_in: usize, d_out: usize, hidden: usize, n: usize) -> Result<Self> {
        let vb = vb.pp("model");
        let mut sizes = vec![d_in];
        sizes.extend(std::iter::repeat_n(hidden, n));
        sizes.push(d_out);
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| candle_nn::linear(w[0], w[1], vb.pp(2 * i)))
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    /// The linear layers in order.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h)?;
            if i + 1 < self.layers.len() {
                h = h.relu()?;
            }
        }
        Ok(h)
    }
}

/// The weights of an ensemble of equally shaped MLPs stacked for batched evaluation: per layer,
/// `W` as `[members, in, out]` and `b` as `[members, 1, out]`.
#[derive(Clone, Debug)]
pub struct Stacked {
    layers: Vec<(Tensor, Tensor)>,
}

impl Stacked {
    /// Stacks the members' weights (differentiable: gradients flow back to each member).
    pub fn new(members: &[&Mlp]) -> Result<Self> {
        let depth = members[0].layers.len();
        let layers = (0..depth)
            .map(|j| {
                let ws: Vec<Tensor> = members
                    .iter()
                    .map(|m| m.layers[j].weight().t())
                    .collect::<Result<_>>()?;
                let bs: Vec<Tensor> = members
                    .iter()
                    .map(|m| m.layers[j].bias().expect("layers have biases").unsqueeze(0))
                    .collect::<Result<_>>()?;
                Ok((Tensor::stack(&ws, 0)?.contiguous()?, Tensor::stack(&bs, 0)?))
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    /// Number of members.
    pub fn members(&self) -> usize {
        self.layers[0].0.dim(0).expect("stacked weights are 3-d")
    }

    /// Evaluates member `m` on `x[m]`: `[members, batch, in]` → `[members, batch, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.matmul(w)?.broadcast_add(b)?;
            if i + 1 < self.layers.len() {
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    /// Evaluates every member on the same `x` (`[batch, in]`) and averages: `[batch, out]`.
    pub fn forward_mean(&self, x: &Tensor) -> Result<Tensor> {
        let m = self.members();
        let xs = x
            .unsqueeze(0)?
            .broadcast_as((m, x.dim(0)?, x.dim(D::Minus1)?))?
            .contiguous()?;
        self.forward(&xs)?.mean(0)
    }
}
