//! Binary classifiers over latents: the constraint estimator, the goal indicator and the safe set
//! (which also keeps a target copy for its Bellman loss). Each is MLP(32 → 1 logit, hidden 200,
//! 3 hidden layers) named `model.{0,2,4,6}`.

use super::LATENT;
use super::mlp::Mlp;
use super::value::HIDDEN;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A latent → logit classifier.
#[derive(Clone, Debug)]
pub struct Classifier {
    pub net: Mlp,
}

impl Classifier {
    /// Builds the net under `vb` (`model.*`).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            net: Mlp::new(vb, LATENT, 1, HIDDEN, 3)?,
        })
    }

    /// Logits `[B, 1]`.
    pub fn logits(&self, z: &Tensor) -> Result<Tensor> {
        self.net.forward(z)
    }

    /// Probabilities `[B, 1]`.
    pub fn prob(&self, z: &Tensor) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.logits(z)?)
    }
}

/// The safe set: a classifier plus a target copy (`target.model.*`, refreshed every 100 updates).
#[derive(Clone, Debug)]
pub struct SafeSet {
    pub online: Classifier,
    pub target: Classifier,
}

impl SafeSet {
    /// Builds the online net under `vb` and the target under `vb.pp("target")`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            online: Classifier::new(vb.clone())?,
            target: Classifier::new(vb.pp("target"))?,
        })
    }
}

/// Binary cross-entropy of `logits` against 0/1 `labels` (same shape), averaged; numerically
/// stable form max(x, 0) − x·y + log(1 + e^−|x|).
pub fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let pos = logits.relu()?;
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    ((pos - (logits * labels)?)? + softplus)?.mean_all()
}

/// The [`bce_with_logits`] sum of rows of `logits` against `labels` (as long); writes `scale` ×
/// its gradient with respect to the logits, σ(x) − y, into `d`. For hand-written backprop.
pub fn bce_with_logits_rows(logits: &[f32], labels: &[f32], d: &mut [f32], scale: f32) -> f64 {
    let mut sum = 0.0f64;
    for ((&x, &y), d) in logits.iter().zip(labels).zip(d) {
        let e = (-x.abs()).exp();
        sum += (x.max(0.0) - x * y + e.ln_1p()) as f64;
        let sigmoid = if x >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        };
        *d = scale * (sigmoid - y);
    }
    sum
}
