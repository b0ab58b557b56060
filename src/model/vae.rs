//! The convolutional VAE of LS3_SPEC §3: 64×64 images (3 channels, or 9 for a 3-frame stack)
//! ↔ 32-d latents.

use super::LATENT;
use super::conv::{Conv2d, ConvTranspose2d};
use candle_core::{CpuStorage, CustomOp2, D, DType, Device, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Linear, VarBuilder};

/// Encoder strides (kernel 4 everywhere): 64 → 31 → 10 → 4 → 1.
const ENC: [(usize, usize, usize); 4] = [(32, 4, 2), (64, 4, 3), (128, 4, 2), (256, 4, 2)];
/// Decoder layers (out channels, kernel, stride): 1 → 5 → 13 → 30 → 64.
const DEC: [(usize, usize); 4] = [(5, 2), (5, 2), (6, 2), (6, 2)];
const DEC_CH: [usize; 3] = [128, 64, 32];

/// The VAE. Images enter as `[B, C, 64, 64]` floats in 0..1.
#[derive(Clone, Debug)]
pub struct Vae {
    channels: usize,
    convs: Vec<Conv2d>,
    fc_mean: Linear,
    fc_log_std: Linear,
    fc_dec: Linear,
    deconvs: Vec<ConvTranspose2d>,
}

/// Losses of one VAE batch.
#[derive(Clone, Debug)]
pub struct VaeLoss {
    /// MSE + 1e-6 · KL: what is minimised.
    pub total: Tensor,
    pub mse: Tensor,
    pub kl: Tensor,
}

impl Vae {
    /// Builds the VAE for `channels` input channels under `vb`.
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        let enc = vb.pp("encoder");
        let mut convs = Vec::new();
        let mut c_in = channels;
        for (i, &(c_out, k, stride)) in ENC.iter().enumerate() {
            let vb = enc.pp("encoder").pp(2 * i);
            convs.push(Conv2d::new(c_in, c_out, k, stride, true, vb)?);
            c_in = c_out;
        }
        let fc_mean = candle_nn::linear(256, LATENT, enc.pp("fc1"))?;
        let fc_log_std = candle_nn::linear(256, LATENT, enc.pp("fc2"))?;
        let dec = vb.pp("decoder").pp("decoder");
        let fc_dec = candle_nn::linear(LATENT, 256, dec.pp(0))?;
        let mut deconvs = Vec::new();
        let mut c_in = 256;
        for (i, &(k, stride)) in DEC.iter().enumerate() {
            let c_out = DEC_CH.get(i).copied().unwrap_or(channels);
            let vb = dec.pp(2 * i + 2);
            let relu = i + 1 < DEC.len();
            deconvs.push(ConvTranspose2d::new(c_in, c_out, k, stride, relu, vb)?);
            c_in = c_out;
        }
        Ok(Self {
            channels,
            convs,
            fc_mean,
            fc_log_std,
            fc_dec,
            deconvs,
        })
    }

    /// Input channels (3, or 9 for stacked frames).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Encoder distribution: mean and log-std, each `[B, 32]`.
    pub fn encode_dist(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        for conv in &self.convs {
            h = conv.forward(&h)?; // ReLU included
        }
        let h = h.flatten_from(1)?;
        Ok((self.fc_mean.forward(&h)?, self.fc_log_std.forward(&h)?))
    }

    /// Reparameterised sample μ + σ·ε for the given standard-normal `eps` (`[B, 32]`).
    pub fn encode(&self, x: &Tensor, eps: &Tensor) -> Result<Tensor> {
        let (mean, log_std) = self.encode_dist(x)?;
        mean + log_std.exp()?.mul(eps)?
    }

    /// Decodes latents `[B, 32]` into images `[B, C, 64, 64]` (no output activation).
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let mut h = self.fc_dec.forward(z)?.reshape(((), 256, 1, 1))?;
        for deconv in &self.deconvs {
            h = deconv.forward(&h)?; // ReLU included, except after the last layer
        }
        Ok(h)
    }

    /// Training loss: the encoder sees `augmented`, the decoder reconstructs `target`.
    pub fn loss(&self, augmented: &Tensor, target: &Tensor, eps: &Tensor) -> Result<VaeLoss> {
        self.weighted_loss(augmented, target, eps, None)
    }

    /// [`loss`](Self::loss) with a per-element weighted squared error: `sqrt_weights` (shape of
    /// `target`) holds √w, so the error is mean(w·(rec − target)²).
    pub fn weighted_loss(
        &self,
        augmented: &Tensor,
        target: &Tensor,
        eps: &Tensor,
        sqrt_weights: Option<&Tensor>,
    ) -> Result<VaeLoss> {
        let (mean, log_std) = self.encode_dist(augmented)?;
        let std = log_std.exp()?;
        let z = (&mean + std.mul(eps)?)?;
        let rec = self.decode(&z)?;
        let mse = match sqrt_weights {
            Some(sw) => mse(&rec.mul(sw)?, &target.mul(sw)?)?,
            None => mse(&rec, target)?,
        };
        // 0.5·mean(μ² + σ² − log σ² − 1), with log σ² = 2·log-std
        let kl = ((mean.sqr()? + std.sqr()?)? - (log_std * 2.0)?)?
            .affine(1.0, -1.0)?
            .mean_all()?
            .affine(0.5, 0.0)?;
        let total = (&mse + kl.affine(1e-6, 0.0)?)?;
        Ok(VaeLoss { total, mse, kl })
    }
}

/// Mean squared error `mean((rec − target)²)` over all elements, a scalar.
///
/// On the CPU this is one op with a one-pass backward: candle's `sub`, `sqr`, `mean_all` and
/// their backward passes walk the image batch about ten times, ≈ 10 % of a VAE step at batch 64.
pub fn mse(rec: &Tensor, target: &Tensor) -> Result<Tensor> {
    let fast = |t: &Tensor| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32;
    if fast(rec) && fast(target) && rec.dims() == target.dims() {
        rec.contiguous()?.apply_op2(&target.contiguous()?, Mse)
    } else {
        (rec - target)?.sqr()?.mean_all()
    }
}

/// The op behind [`mse`]; operands are contiguous f32 CPU tensors of one shape.
struct Mse;

fn mse_operands<'a>(
    s1: &'a CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
) -> Result<(&'a [f32], &'a [f32])> {
    let slice = |s: &'a CpuStorage, l: &Layout| -> Result<&'a [f32]> {
        match l.contiguous_offsets() {
            Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
            None => candle_core::bail!("ls3 mse: non-contiguous operand"),
        }
    };
    let (a, b) = (slice(s1, l1)?, slice(s2, l2)?);
    if a.len() != b.len() || a.is_empty() {
        candle_core::bail!("ls3 mse: operands of {} and {} elements", a.len(), b.len())
    }
    Ok((a, b))
}

impl CustomOp2 for Mse {
    fn name(&self) -> &'static str {
        "ls3-mse"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = mse_operands(s1, l1, s2, l2)?;
        // f32 partial sums over short blocks (vectorised), added up in f64
        let sum: f64 = a
            .chunks(1024)
            .zip(b.chunks(1024))
            .map(|(a, b)| {
                let s: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
                f64::from(s)
            })
            .sum();
        let mean = (sum / a.len() as f64) as f32;
        Ok((CpuStorage::F32(vec![mean]), Shape::from(())))
    }

    fn bwd(
        &self,
        rec: &Tensor,
        target: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (want_rec, want_target) = (rec.track_op(), target.track_op());
        if !want_rec && !want_target {
            return Ok((None, None));
        }
        let scale = 2.0 * grad.to_scalar::<f32>()? / rec.elem_count() as f32;
        let diff = {
            let (rs, rl) = rec.storage_and_layout();
            let (ts, tl) = target.storage_and_layout();
            let (candle_core::Storage::Cpu(rs), candle_core::Storage::Cpu(ts)) = (&*rs, &*ts)
            else {
                candle_core::bail!("ls3 mse: operands are not on the CPU")
            };
            let (a, b) = mse_operands(rs, rl, ts, tl)?;
            let d: Vec<f32> = a.iter().zip(b).map(|(x, y)| scale * (x - y)).collect();
            Tensor::from_vec(d, rec.dims(), &Device::Cpu)?
        };
        let d_target = if want_target { Some(diff.neg()?) } else { None };
        Ok((want_rec.then_some(diff), d_target))
    }
}

/// Mean over all but the batch dimension, e.g. per-image reconstruction error.
pub fn per_sample_mean(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(1)?.mean(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::max_abs_diff;
    use candle_core::Var;

    /// The fused MSE and its gradients (both operands) against candle's own ops.
    #[test]
    fn mse_matches_candle() {
        let dev = Device::Cpu;
        let a = Var::from_tensor(&Tensor::rand(0f32, 1f32, (3, 3, 17, 19), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::rand(0f32, 1f32, (3, 3, 17, 19), &dev).unwrap()).unwrap();
        let ours = mse(&a, &b).unwrap();
        let reference = (a.as_tensor() - b.as_tensor())
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        let (o, r) = (
            ours.to_scalar::<f32>().unwrap(),
            reference.to_scalar::<f32>().unwrap(),
        );
        assert!((o - r).abs() <= 1e-6, "mse {o} vs {r}");
        // through a scale, so that the upstream gradient is not 1
        let g_ours = (ours * 3.0).unwrap().backward().unwrap();
        let g_ref = (reference * 3.0).unwrap().backward().unwrap();
        for v in [&a, &b] {
            let d = max_abs_diff(g_ours.get(v).unwrap(), g_ref.get(v).unwrap()).unwrap();
            assert!(d <= 1e-7, "mse gradient differs by {d}");
        }
        // a constant target gets no gradient
        let g = mse(&a, &b.as_tensor().detach())
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&a).is_some());
    }
}
