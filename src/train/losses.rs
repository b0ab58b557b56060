//! The training losses of LS3_SPEC §3, as functions of a model and a drawn batch. Targets are
//! detached: gradients reach only the online net being trained.

use crate::data::replay::Batch;
use crate::model::classifier::{Classifier, SafeSet, bce_with_logits};
use crate::model::dynamics::{Dynamics, gaussian_nll};
use crate::model::vae::Vae;
use crate::model::value::Value;
use candle_core::{Result, Tensor};
use candle_nn::ops::sigmoid;

/// VAE loss: reconstruction MSE against the un-augmented `target` (weighted by the squares of
/// `sqrt_weights` when given) + `kl_weight`·KL, the encoder seeing `augmented`. Returns (total,
/// mse, kl).
pub fn vae(
    vae: &Vae,
    augmented: &Tensor,
    target: &Tensor,
    eps: &Tensor,
    kl_weight: f64,
    sqrt_weights: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let parts = vae.weighted_loss(augmented, target, eps, sqrt_weights)?;
    let total = (&parts.mse + parts.kl.affine(kl_weight, 0.0)?)?;
    Ok((total, parts.mse, parts.kl))
}

/// Dynamics: Gaussian NLL of the latent delta z′ − z, each member on its own batch
/// (`[members, batch, …]`). With `norm = Some((mean, std))` the delta is standardised first.
pub fn dynamics(
    dynamics: &Dynamics,
    b: &Batch,
    norm: Option<(&Tensor, &Tensor)>,
) -> Result<Tensor> {
    let mut delta = (&b.z_next - &b.z)?;
    if let Some((mean, std)) = norm {
        delta = delta.broadcast_sub(mean)?.broadcast_div(std)?;
    }
    let p = dynamics.forward_all(&b.z, &b.action)?;
    gaussian_nll(&p.mean, &p.log_std, &delta)
}

/// The safe set's Bellman target max(γ_s·σ(target logit of z′), label).
pub fn safe_set_target(gamma: f32, next_logits: &Tensor, label: &Tensor) -> Result<Tensor> {
    let reach = (sigmoid(next_logits)? * gamma as f64)?;
    Ok(reach.maximum(label)?.detach())
}

/// Safe set: BCE of the online logit of z against the Bellman target, or (with `gamma = None`,
/// the "bc" variant) against the label alone.
pub fn safe_set(ss: &SafeSet, b: &Batch, gamma: Option<f32>) -> Result<Tensor> {
    let target = match gamma {
        Some(g) => safe_set_target(g, &ss.target.logits(&b.z_next)?, &b.safe_set)?,
        None => b.safe_set.clone(),
    };
    bce_with_logits(&ss.online.logits(&b.z)?, &target)
}

/// The TD target (r + (1 − done)·γ·V′)·(1 − goal): goal states are worth 0.
pub fn td_target(
    reward: &Tensor,
    done: &Tensor,
    goal: &Tensor,
    next_value: &Tensor,
    discount: f32,
) -> Result<Tensor> {
    let not_done = done.affine(-1.0, 1.0)?;
    let not_goal = goal.affine(-1.0, 1.0)?;
    let bootstrap = (not_done * next_value)?.affine(discount as f64, 0.0)?;
    Ok(((reward + bootstrap)? * not_goal)?.detach())
}

/// Smooth-L1 (Huber, β = 1), averaged: ½d² where |d| < 1, |d| − ½ elsewhere.
pub fn smooth_l1(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    let a = (pred - target)?.abs()?;
    let q = a.clamp(0f32, 1f32)?;
    ((q.sqr()? * 0.5)? + (a - q)?)?.mean_all()
}

/// How the value's TD target is formed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Td {
    pub discount: f32,
    /// Bootstrap through the last transition of an episode (a timeout); goal states stay 0.
    pub bootstrap_timeouts: bool,
}

/// Value, members on their own batches (`[members, batch, …]`): Smooth-L1 onto reward-to-go
/// (`td = None`), or onto the TD target with the members' target nets.
pub fn value(value: &Value, b: &Batch, td: Option<Td>) -> Result<Tensor> {
    let target = match td {
        None => b.rtg.clone(),
        Some(td) => {
            let next = value.target_members(&b.z_next)?;
            let done = if td.bootstrap_timeouts {
                b.done.zeros_like()?
            } else {
                b.done.clone()
            };
            td_target(&b.reward, &done, &b.goal, &next, td.discount)?
        }
    };
    smooth_l1(&value.forward_members(&b.z)?, &target)
}

/// Constraint estimator or goal indicator: BCE of the logit of z′ (the labels describe the next
/// observation) against `label`.
pub fn classifier(cl: &Classifier, z_next: &Tensor, label: &Tensor) -> Result<Tensor> {
    bce_with_logits(&cl.logits(z_next)?, label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v, (v.len(), 1), &Device::Cpu).unwrap()
    }

    fn vals(x: &Tensor) -> Vec<f32> {
        x.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn bellman_target_is_the_larger_of_discounted_reach_and_label() {
        // σ(0) = 0.5 → 0.15 with γ_s = 0.3; σ(ln 3) = 0.75 → 0.225.
        let logits = t(&[0.0, 0.0, 3f32.ln(), 3f32.ln()]);
        let labels = t(&[0.0, 1.0, 0.0, 1.0]);
        let y = vals(&safe_set_target(0.3, &logits, &labels).unwrap());
        let want = [0.15, 1.0, 0.225, 1.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?} vs {want:?}");
        }
    }

    #[test]
    fn td_target_bootstraps_until_done_and_is_zero_at_the_goal() {
        let reward = t(&[-1.0, -1.0, 0.0, -1.0]);
        let done = t(&[0.0, 1.0, 0.0, 0.0]);
        let goal = t(&[0.0, 0.0, 1.0, 0.0]);
        let next = t(&[-10.0, -10.0, -10.0, 2.0]);
        let y = vals(&td_target(&reward, &done, &goal, &next, 0.99).unwrap());
        let want = [-1.0 - 9.9, -1.0, 0.0, -1.0 + 1.98];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{y:?} vs {want:?}");
        }
    }

    #[test]
    fn smooth_l1_is_quadratic_inside_one_and_linear_outside() {
        let pred = t(&[0.5, -3.0, 0.0]);
        let target = t(&[0.0, 0.0, 0.0]);
        let l: f32 = smooth_l1(&pred, &target).unwrap().to_scalar().unwrap();
        assert!((l - (0.125 + 2.5 + 0.0) / 3.0).abs() < 1e-6);
    }
}
