//! The convolutional VAE of LS3_SPEC §3: 64×64 images (3 channels, or 9 for a 3-frame stack)
//! ↔ 32-d latents.

use super::LATENT;
use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Linear, VarBuilder};

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
            let cfg = Conv2dConfig {
                stride,
                ..Default::default()
            };
            convs.push(candle_nn::conv2d(
                c_in,
                c_out,
                k,
                cfg,
                enc.pp("encoder").pp(2 * i),
            )?);
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
            let cfg = ConvTranspose2dConfig {
                stride,
                ..Default::default()
            };
            deconvs.push(candle_nn::conv_transpose2d(
                c_in,
                c_out,
                k,
                cfg,
                dec.pp(2 * i + 2),
            )?);
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
            h = conv.forward(&h)?.relu()?;
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
        for (i, deconv) in self.deconvs.iter().enumerate() {
            h = deconv.forward(&h)?;
            if i + 1 < self.deconvs.len() {
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    /// Training loss: the encoder sees `augmented`, the decoder reconstructs `target`.
    pub fn loss(&self, augmented: &Tensor, target: &Tensor, eps: &Tensor) -> Result<VaeLoss> {
        let (mean, log_std) = self.encode_dist(augmented)?;
        let std = log_std.exp()?;
        let z = (&mean + std.mul(eps)?)?;
        let rec = self.decode(&z)?;
        let mse = (rec - target)?.sqr()?.mean_all()?;
        // 0.5·mean(μ² + σ² − log σ² − 1), with log σ² = 2·log-std
        let kl = ((mean.sqr()? + std.sqr()?)? - (log_std * 2.0)?)?
            .affine(1.0, -1.0)?
            .mean_all()?
            .affine(0.5, 0.0)?;
        let total = (&mse + kl.affine(1e-6, 0.0)?)?;
        Ok(VaeLoss { total, mse, kl })
    }
}

/// Mean over all but the batch dimension, e.g. per-image reconstruction error.
pub fn per_sample_mean(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(1)?.mean(D::Minus1)
}
