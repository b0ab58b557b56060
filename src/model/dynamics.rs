//! The PETS-style dynamics ensemble: 5 members, each MLP(32+2 → 64, hidden 128, 2 hidden layers)
//! predicting a Gaussian (mean, log-std) over the latent *delta* z′ − z.

use super::ensemble_backprop::{EnsembleBackprop, mlp_grads, mlp_step};
use super::mlp::{Mlp, Stacked};
use super::{ACTION, LATENT};
use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use std::ops::Range;

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

    /// [`nll`](Self::nll) by hand-written backprop on the CPU (f32 tensors there only): returns
    /// the loss and leaves every member weight's gradient in `ws`, for [`grads`](Self::grads).
    pub fn nll_backprop(
        &self,
        ws: &mut EnsembleBackprop,
        z: &Tensor,
        a: &Tensor,
        delta: &Tensor,
    ) -> Result<f32> {
        let (members, batch, _) = z.dims3()?;
        if members != self.members.len()
            || a.dims() != [members, batch, ACTION]
            || delta.dims() != [members, batch, LATENT]
            || z.dims() != [members, batch, LATENT]
        {
            candle_core::bail!(
                "dynamics nll: z {:?}, a {:?} and delta {:?} do not fit {} members",
                z.dims(),
                a.dims(),
                delta.dims(),
                self.members.len()
            );
        }
        // the mean over members, rows and dimensions, and the constant ½·log 2π
        let n = (members * batch * LATENT) as f64;
        let input = |data: &[&[f32]], m: usize, rows: Range<usize>, x: &mut [f32]| {
            let (z, a) = (data[0], data[1]);
            for (r, x) in rows.zip(x.chunks_exact_mut(LATENT + ACTION)) {
                let i = m * batch + r;
                x[..LATENT].copy_from_slice(&z[i * LATENT..(i + 1) * LATENT]);
                x[LATENT..].copy_from_slice(&a[i * ACTION..(i + 1) * ACTION]);
            }
        };
        let head = |data: &[&[f32]], m: usize, rows: Range<usize>, out: &[f32], d: &mut [f32]| {
            let start = (m * batch + rows.start) * LATENT;
            let x = &data[2][start..start + rows.len() * LATENT];
            gaussian_nll_rows(out, x, d, (1.0 / n) as f32)
        };
        let nets: Vec<&Mlp> = self.members.iter().collect();
        let total = mlp_step(ws, &nets, batch, &[z, a, delta], input, head)?;
        Ok((total / n + 0.5 * (2.0 * std::f64::consts::PI).ln()) as f32)
    }

    /// Each member weight (the variable's tensor, as the optimiser knows it) with its gradient
    /// from the last [`nll_backprop`](Self::nll_backprop) on `ws`.
    pub fn grads<'a>(&'a self, ws: &'a EnsembleBackprop) -> Vec<(&'a Tensor, &'a [f32])> {
        mlp_grads(&self.members.iter().collect::<Vec<_>>(), ws)
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

/// The NLL sum of rows `out` (`[mean | log-std]`, `2·LATENT` wide) against observed `x`
/// (`LATENT` wide), without the constant; writes `scale` × its gradient with respect to `out`
/// into `d` (the order of operations of [`gaussian_nll`]).
fn gaussian_nll_rows(out: &[f32], x: &[f32], d: &mut [f32], scale: f32) -> f64 {
    let mut sum = 0.0f64;
    let rows = out.chunks_exact(2 * LATENT).zip(x.chunks_exact(LATENT));
    for ((o, x), d) in rows.zip(d.chunks_exact_mut(2 * LATENT)) {
        let (mean, log_std) = o.split_at(LATENT);
        let (d_mean, d_log_std) = d.split_at_mut(LATENT);
        let mut row = 0.0f32;
        for j in 0..LATENT {
            let inv_std = (-log_std[j]).exp();
            let zj = (x[j] - mean[j]) * inv_std;
            row += zj * zj * 0.5 + log_std[j];
            d_mean[j] = -(scale * zj) * inv_std;
            d_log_std[j] = scale * (1.0 - zj * zj);
        }
        sum += row as f64;
    }
    sum
}

/// Mean Gaussian NLL of `x` under N(mean, exp(log_std)²).
pub fn gaussian_nll(mean: &Tensor, log_std: &Tensor, x: &Tensor) -> Result<Tensor> {
    let z = ((x - mean)? * log_std.neg()?.exp()?)?;
    let per = ((z.sqr()? * 0.5)? + log_std)?;
    per.mean_all()?
        .affine(1.0, 0.5 * (2.0 * std::f64::consts::PI).ln())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rng::TensorRng;
    use candle_core::Device;
    use candle_nn::VarMap;

    /// The largest difference of two equally long slices relative to the largest magnitude of
    /// the second.
    fn rel_diff(ours: &[f32], theirs: &[f32]) -> f32 {
        assert_eq!(ours.len(), theirs.len());
        let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        let diff = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs());
        diff.fold(0f32, f32::max) / scale
    }

    #[test]
    fn backprop_by_hand_gives_candle_autograds_loss_and_gradients() {
        let dev = Device::Cpu;
        let vars = VarMap::new();
        let dynamics = Dynamics::new(VarBuilder::from_varmap(&vars, DType::F32, &dev)).unwrap();
        let mut rng = TensorRng::new(7);
        let mut ws = EnsembleBackprop::default();
        // odd and even batches, each split over the worker threads, the buffers reused
        for batch in [37, 256, 37] {
            let z = rng.normal((MEMBERS, batch, LATENT), &dev).unwrap();
            let a = rng
                .uniform((MEMBERS, batch, ACTION), -1.0, 1.0, &dev)
                .unwrap();
            let delta = (rng.normal((MEMBERS, batch, LATENT), &dev).unwrap() * 0.3).unwrap();
            let loss = dynamics.nll(&z, &a, &delta).unwrap();
            let want = loss.to_scalar::<f32>().unwrap();
            let got = dynamics.nll_backprop(&mut ws, &z, &a, &delta).unwrap();
            assert!(
                (got - want).abs() <= 1e-5 * want.abs(),
                "loss {got} vs {want}"
            );
            let grads = loss.backward().unwrap();
            let ours = dynamics.grads(&ws);
            assert_eq!(ours.len(), MEMBERS * 3 * 2);
            for (i, (t, g)) in ours.into_iter().enumerate() {
                let theirs = grads.get(t).expect("candle's gradient");
                let theirs = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let d = rel_diff(g, &theirs);
                assert!(
                    d < 1e-5,
                    "batch {batch}, tensor {i}: relative difference {d}"
                );
            }
        }
    }
}
