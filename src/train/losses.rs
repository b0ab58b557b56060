//! The training losses of LS3_SPEC §3, as functions of a model and a drawn batch. Targets are
//! detached: gradients reach only the online net being trained. The latent modules' losses also
//! come by hand-written backprop on the CPU (`*_by_hand`, see [`crate::model::ensemble_backprop`]):
//! the same loss, with the gradients left in the workspace instead of candle's graph.

use crate::data::replay::Batch;
use crate::model::LATENT;
use crate::model::classifier::{Classifier, SafeSet, bce_with_logits, bce_with_logits_rows};
use crate::model::dynamics::{Dynamics, gaussian_nll};
use crate::model::ensemble_backprop::{EnsembleBackprop, member_rows, mlp_forward, mlp_step};
use crate::model::mlp::Mlp;
use crate::model::vae::Vae;
use crate::model::value::Value;
use candle_core::{Result, Tensor, bail};
use candle_nn::ops::sigmoid;
use std::ops::Range;

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

/// The Smooth-L1 sum of `pred` against `target` (as long); writes `scale` × its gradient with
/// respect to `pred`, the difference clamped to [−1, 1], into `d`.
fn smooth_l1_rows(pred: &[f32], target: &[f32], d: &mut [f32], scale: f32) -> f64 {
    let mut sum = 0.0f64;
    for ((&p, &t), d) in pred.iter().zip(target).zip(d) {
        let diff = p - t;
        let a = diff.abs();
        let q = a.min(1.0);
        sum += (q * q * 0.5 + (a - q)) as f64;
        *d = scale * diff.clamp(-1.0, 1.0);
    }
    sum
}

/// Rows `rows` of member `m`'s latents (`[members, batch, LATENT]`, the first data tensor).
fn latent_rows(batch: usize) -> impl Fn(&[&[f32]], usize, Range<usize>, &mut [f32]) + Sync {
    move |data, m, rows, x| member_rows(data[0], LATENT, batch, m, rows, x)
}

/// Members and rows of latents `z` (`[members, batch, LATENT]`, or `[batch, LATENT]` for one
/// member), after checking that each of `per_row` has one value per row.
fn batch_shape(z: &Tensor, members: usize, per_row: &[&Tensor]) -> Result<usize> {
    let batch = match *z.dims() {
        [m, b, LATENT] if m == members => b,
        [b, LATENT] if members == 1 => b,
        _ => bail!(
            "latents {:?} do not fit {members} members of {LATENT}",
            z.dims()
        ),
    };
    if let Some(t) = per_row.iter().find(|t| t.elem_count() != members * batch) {
        bail!("{:?} values for {members} members × {batch} rows", t.dims());
    }
    Ok(batch)
}

/// [`value`] by hand-written backprop on the CPU (the target nets' forward pass too): returns
/// the loss and leaves the online members' gradients in `ws`
/// ([`mlp_grads`](crate::model::ensemble_backprop::mlp_grads) of `value.online`).
pub fn value_by_hand(
    value: &Value,
    ws: &mut EnsembleBackprop,
    b: &Batch,
    td: Option<Td>,
) -> Result<f32> {
    let members = value.members();
    let per_row = [&b.rtg, &b.reward, &b.done, &b.goal];
    let batch = batch_shape(&b.z, members, &per_row)?;
    batch_shape(&b.z_next, members, &[])?;
    let target: Vec<f32> = match td {
        None => b.rtg.flatten_all()?.to_vec1()?,
        Some(td) => {
            let nets: Vec<&Mlp> = value.target.iter().collect();
            let next = mlp_forward(ws, &nets, batch, &[&b.z_next], latent_rows(batch))?;
            let host = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
            let (reward, done, goal) = (host(&b.reward)?, host(&b.done)?, host(&b.goal)?);
            let rows = next.iter().zip(reward).zip(done).zip(goal);
            rows.map(|(((&next, r), done), goal)| {
                let not_done = if td.bootstrap_timeouts {
                    1.0
                } else {
                    1.0 - done
                };
                (r + not_done * next * td.discount) * (1.0 - goal)
            })
            .collect()
        }
    };
    let n = (members * batch) as f64;
    let head = |_: &[&[f32]], m: usize, rows: Range<usize>, out: &[f32], d: &mut [f32]| {
        let start = m * batch + rows.start;
        let t = &target[start..start + rows.len()];
        smooth_l1_rows(out, t, d, (1.0 / n) as f32)
    };
    let nets: Vec<&Mlp> = value.online.iter().collect();
    let total = mlp_step(ws, &nets, batch, &[&b.z], latent_rows(batch), head)?;
    Ok((total / n) as f32)
}

/// [`safe_set`] by hand-written backprop on the CPU (the target net's forward pass too):
/// returns the loss and leaves the online net's gradients in `ws`.
pub fn safe_set_by_hand(
    ss: &SafeSet,
    ws: &mut EnsembleBackprop,
    b: &Batch,
    gamma: Option<f32>,
) -> Result<f32> {
    let batch = batch_shape(&b.z, 1, &[&b.safe_set])?;
    batch_shape(&b.z_next, 1, &[])?;
    let label: Vec<f32> = b.safe_set.flatten_all()?.to_vec1()?;
    let target = match gamma {
        Some(g) => {
            let next = mlp_forward(
                ws,
                &[&ss.target.net],
                batch,
                &[&b.z_next],
                latent_rows(batch),
            )?;
            let reach = next.iter().map(|&x| 1.0 / (1.0 + (-x).exp()) * g);
            reach.zip(&label).map(|(r, &y)| r.max(y)).collect()
        }
        None => label,
    };
    bce_by_hand(&ss.online, ws, &b.z, &target)
}

/// [`classifier`] by hand-written backprop on the CPU: returns the loss and leaves the net's
/// gradients in `ws`.
pub fn classifier_by_hand(
    cl: &Classifier,
    ws: &mut EnsembleBackprop,
    z_next: &Tensor,
    label: &Tensor,
) -> Result<f32> {
    batch_shape(z_next, 1, &[label])?;
    bce_by_hand(cl, ws, z_next, &label.flatten_all()?.to_vec1()?)
}

/// Mean BCE of `cl`'s logits of `z` (`[batch, LATENT]`) against `target` (one per row).
fn bce_by_hand(
    cl: &Classifier,
    ws: &mut EnsembleBackprop,
    z: &Tensor,
    target: &[f32],
) -> Result<f32> {
    let batch = target.len();
    let n = batch as f64;
    let head = |_: &[&[f32]], _: usize, rows: Range<usize>, out: &[f32], d: &mut [f32]| {
        bce_with_logits_rows(out, &target[rows], d, (1.0 / n) as f32)
    };
    let total = mlp_step(ws, &[&cl.net], batch, &[z], latent_rows(batch), head)?;
    Ok((total / n) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ensemble_backprop::mlp_grads;
    use crate::model::rng::TensorRng;
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

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

    /// The largest difference of two equally long slices relative to the largest magnitude of
    /// the second.
    fn rel_diff(ours: &[f32], theirs: &[f32]) -> f32 {
        assert_eq!(ours.len(), theirs.len());
        let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        let diff = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs());
        diff.fold(0f32, f32::max) / scale
    }

    /// A random batch with leading dimensions `lead` (`[members, rows]` or `[rows]`): latents and
    /// reward-to-go spread wide enough for both of Smooth-L1's pieces, 0/1 labels.
    fn random_batch(rng: &mut TensorRng, lead: &[usize]) -> Batch {
        let dev = Device::Cpu;
        let shape = |w: usize| [lead, &[w]].concat();
        let flag = |rng: &mut TensorRng, p: f64| {
            let u = rng.uniform(shape(1), 0.0, 1.0, &dev).unwrap();
            u.lt(p).unwrap().to_dtype(DType::F32).unwrap()
        };
        let goal = flag(rng, 0.2);
        Batch {
            z: (rng.normal(shape(LATENT), &dev).unwrap() * 2.0).unwrap(),
            z_next: (rng.normal(shape(LATENT), &dev).unwrap() * 2.0).unwrap(),
            action: rng.uniform(shape(2), -1.0, 1.0, &dev).unwrap(),
            reward: (&goal - 1.0).unwrap(),
            goal,
            done: flag(rng, 0.3),
            constraint: flag(rng, 0.3),
            safe_set: flag(rng, 0.5),
            on_policy: flag(rng, 2.0),
            rtg: (rng.normal(shape(1), &dev).unwrap() * 3.0).unwrap(),
            slots: Vec::new(),
        }
    }

    /// Checks a loss by hand (`got`, gradients `ours`) against candle's `loss` and its autograd.
    fn assert_matches_autograd(case: &str, got: f32, ours: Vec<(&Tensor, &[f32])>, loss: &Tensor) {
        let want = loss.to_scalar::<f32>().unwrap();
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1e-3),
            "{case}: loss {got} vs {want}"
        );
        let grads = loss.backward().unwrap();
        for (i, (t, g)) in ours.into_iter().enumerate() {
            let theirs = grads.get(t).expect("candle's gradient");
            let theirs = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let d = rel_diff(g, &theirs);
            assert!(d < 1e-5, "{case}, tensor {i}: relative difference {d}");
        }
    }

    fn module_vars() -> (VarMap, VarBuilder<'static>) {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        (vars, vb)
    }

    #[test]
    fn value_by_hand_gives_autograds_loss_and_gradients() {
        let (_vars, vb) = module_vars();
        let value = Value::new(vb, 5).unwrap();
        let mut rng = TensorRng::new(11);
        let mut ws = EnsembleBackprop::default();
        let tds = [
            None,
            Some(Td {
                discount: 0.99,
                bootstrap_timeouts: false,
            }),
            Some(Td {
                discount: 0.9,
                bootstrap_timeouts: true,
            }),
        ];
        // odd and even batches, each split over the worker threads, the buffers reused
        for (batch, td) in [37, 64, 37].into_iter().zip(tds) {
            let b = random_batch(&mut rng, &[5, batch]);
            let got = value_by_hand(&value, &mut ws, &b, td).unwrap();
            let nets: Vec<&Mlp> = value.online.iter().collect();
            let ours = mlp_grads(&nets, &ws);
            assert_eq!(ours.len(), 5 * 4 * 2);
            let loss = super::value(&value, &b, td).unwrap();
            assert_matches_autograd(&format!("batch {batch}, {td:?}"), got, ours, &loss);
        }
    }

    #[test]
    fn safe_set_by_hand_gives_autograds_loss_and_gradients() {
        let (_vars, vb) = module_vars();
        let ss = SafeSet::new(vb).unwrap();
        let mut rng = TensorRng::new(12);
        let mut ws = EnsembleBackprop::default();
        for (batch, gamma) in [(128, Some(0.3)), (37, None), (128, Some(0.8))] {
            let b = random_batch(&mut rng, &[batch]);
            let got = safe_set_by_hand(&ss, &mut ws, &b, gamma).unwrap();
            let ours = mlp_grads(&[&ss.online.net], &ws);
            assert_eq!(ours.len(), 4 * 2);
            let loss = safe_set(&ss, &b, gamma).unwrap();
            assert_matches_autograd(&format!("batch {batch}, γ {gamma:?}"), got, ours, &loss);
        }
    }

    #[test]
    fn classifier_by_hand_gives_autograds_loss_and_gradients() {
        let (_vars, vb) = module_vars();
        let cl = Classifier::new(vb).unwrap();
        let mut rng = TensorRng::new(13);
        let mut ws = EnsembleBackprop::default();
        for batch in [128, 37] {
            let b = random_batch(&mut rng, &[batch]);
            // larger latents push some logits far from 0, where BCE's two branches matter
            let z = (&b.z_next * 10.0).unwrap();
            let got = classifier_by_hand(&cl, &mut ws, &z, &b.constraint).unwrap();
            let ours = mlp_grads(&[&cl.net], &ws);
            let loss = classifier(&cl, &z, &b.constraint).unwrap();
            assert_matches_autograd(&format!("batch {batch}"), got, ours, &loss);
        }
    }
}
