//! The PETS-style dynamics ensemble: 5 members, each MLP(32+2 → 64, hidden 128, 2 hidden layers)
//! predicting a Gaussian (mean, log-std) over the latent *delta* z′ − z.

use super::mlp::{Mlp, Stacked};
use super::{ACTION, LATENT};
use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Ensemble size.
pub const MEMBERS: usize = 5;
const HIDDEN: usize = 128;

/// The dynamics ensemble, plus the running delta statistics of the optional normalisation.
#[derive(Clone, Debug)]
pub struct Dynamics {
    members: Vec<Mlp>,
    /// Running mean and variance of deltas (`delta_rms.{mean,var}`), used when normalising.
    pub delta_mean: Tensor,
    pub delta_var: Tensor,
    pub delta_count: Tensor,
}

/// A predicted Gaussian over latent deltas; tensors shaped `[members, batch, 32]` or `[batch, 32]`.
#[derive(Clone, Debug)]
pub struct DeltaPrediction {
    pub mean: Tensor,
    pub log_std: Tensor,
}

impl Dynamics {
    /// Builds the members under `models.{i}.delta_network` and the statistics under `delta_rms`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let members = (0..MEMBERS)
            .map(|i| {
                Mlp::new(
                    vb.pp("models").pp(i).pp("delta_network"),
                    LATENT + ACTION,
                    2 * LATENT,
                    HIDDEN,
                    2,
                )
            })
            .collect::<Result<_>>()?;
        let rms = vb.pp("delta_rms");
        let ones = candle_nn::Init::Const(1.0);
        let delta_mean = rms.get_with_hints(LATENT, "mean", candle_nn::Init::Const(0.0))?;
        let delta_var = rms.get_with_hints(LATENT, "var", ones)?;
        let delta_count = rms.get_with_hints((), "count", candle_nn::Init::Const(1e-4))?;
        Ok(Self {
            members,
            delta_mean,
            delta_var,
            delta_count,
        })
    }

    /// Member `i` alone: `z` `[B, 32]`, `a` `[B, 2]`.
    pub fn member(&self, i: usize, z: &Tensor, a: &Tensor) -> Result<DeltaPrediction> {
        let out = self.members[i].forward(&Tensor::cat(&[z, a], D::Minus1)?)?;
        split(&out)
    }

    /// The members' weights stacked for batched evaluation.
    pub fn stacked(&self) -> Result<Stacked> {
        Stacked::new(&self.members.iter().collect::<Vec<_>>())
    }

    /// Every member on its own batch: `z` `[M, B, 32]`, `a` `[M, B, 2]` → `[M, B, 32]` each.
    pub fn forward_all(&self, z: &Tensor, a: &Tensor) -> Result<DeltaPrediction> {
        split(&self.stacked()?.forward(&Tensor::cat(&[z, a], D::Minus1)?)?)
    }

    /// Gaussian negative log-likelihood of observed `delta` (`[M, B, 32]`), averaged over members,
    /// batch and dimensions (the constant ½·log 2π is included).
    pub fn nll(&self, z: &Tensor, a: &Tensor, delta: &Tensor) -> Result<Tensor> {
        let p = self.forward_all(z, a)?;
        gaussian_nll(&p.mean, &p.log_std, delta)
    }

    /// Standard deviation of the delta statistics (√var), for the optional normalisation.
    pub fn delta_std(&self) -> Result<Tensor> {
        self.delta_var.sqrt()
    }

    /// Folds a batch of observed deltas `[N, 32]` into the running mean/variance (parallel
    /// variance update), for the optional normalisation.
    pub fn update_delta_stats(&mut self, deltas: &Tensor) -> Result<()> {
        let n = deltas.dim(0)? as f64;
        let bm = deltas.mean(0)?;
        let bv = deltas.broadcast_sub(&bm)?.sqr()?.mean(0)?;
        let count = self.delta_count.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let total = count + n;
        let d = (&bm - &self.delta_mean)?;
        let mean = (&self.delta_mean + d.affine(n / total, 0.0)?)?;
        let m2 = ((self.delta_var.affine(count, 0.0)? + bv.affine(n, 0.0)?)?
            + d.sqr()?.affine(count * n / total, 0.0)?)?;
        self.delta_mean = mean;
        self.delta_var = m2.affine(1.0 / total, 0.0)?;
        self.delta_count = Tensor::new(total as f32, deltas.device())?;
        Ok(())
    }
}

fn split(out: &Tensor) -> Result<DeltaPrediction> {
    let last = out.rank() - 1;
    Ok(DeltaPrediction {
        mean: out.narrow(last, 0, LATENT)?,
        log_std: out.narrow(last, LATENT, LATENT)?,
    })
}

/// Mean Gaussian NLL of `x` under N(mean, exp(log_std)²).
pub fn gaussian_nll(mean: &Tensor, log_std: &Tensor, x: &Tensor) -> Result<Tensor> {
    let z = ((x - mean)? * log_std.neg()?.exp()?)?;
    let per = ((z.sqr()? * 0.5)? + log_std)?;
    per.mean_all()?
        .affine(1.0, 0.5 * (2.0 * std::f64::consts::PI).ln())
}
