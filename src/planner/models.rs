//! The seam between the planner and the networks: [`LatentModels`] names the four things the
//! planner asks of the models, and [`LatentModels::rollout`] imagines and summarises a whole
//! population at once. The default rollout composes the primitives with batched tensor ops on
//! the models' device; the agent overrides it on the CPU with the fused path of [`super::fused`].

use super::fused::FusedModels;
use super::rollout::{Rollout, RolloutStats, delta_scale};
use crate::model::agent::Agent;
use crate::model::dynamics::MEMBERS;
use crate::model::mlp::Mlp;
use candle_core::{D, Device, IndexOp, Result, Tensor};
use candle_nn::ops::sigmoid;

/// The models the planner imagines with. Tensors are `[B, latent]` latents and `[B, 2]` actions on
/// [`LatentModels::device`].
pub trait LatentModels {
    /// Where the models' tensors live.
    fn device(&self) -> &Device;
    /// Members of the dynamics ensemble.
    fn dynamics_members(&self) -> usize;
    /// Member `member`'s Gaussian over the latent delta z′ − z: (mean, log-std), each `[B, latent]`.
    fn dynamics(&self, member: usize, z: &Tensor, a: &Tensor) -> Result<(Tensor, Tensor)>;
    /// Constraint and goal logits of every latent: `[B, 2]`.
    fn step_heads(&self, z: &Tensor) -> Result<Tensor>;
    /// Value (ensemble mean) and safe-set logit of final latents: `[B, 2]`.
    fn final_heads(&self, z: &Tensor) -> Result<Tensor>;
    /// Imagines every candidate of `job` and summarises it over its particles.
    fn rollout(&self, job: &Rollout) -> Result<RolloutStats> {
        tensor_rollout(self, job)
    }
    /// The models packed for the CPU fast path, if they have one: the planner takes this snapshot
    /// once per weights version ([`LatentModels::weights_version`]; once per call where that is
    /// unknown) and then rolls out through it instead of [`LatentModels::rollout`].
    fn packed(&self) -> Result<Option<FusedModels>> {
        Ok(None)
    }
    /// A number that changes whenever the weights do (`None`: unknown, so nothing derived from
    /// the weights is cached across calls).
    fn weights_version(&self) -> Option<u64> {
        None
    }
}

/// The portable rollout: every step of all `population × particles` particles as one batch on the
/// models' device, the heads on all steps at once, one upload of the noise and one download of
/// the summaries. Rows are candidate-major (`c · particles + p`).
pub fn tensor_rollout<M: LatentModels + ?Sized>(m: &M, job: &Rollout) -> Result<RolloutStats> {
    let dev = m.device();
    let (n, h, p, l) = (job.population, job.horizon, job.particles, job.latent());
    let rows = n * p;

    let mut noise = vec![0f32; h * rows * l];
    let mut own = vec![0f32; job.noise_len()];
    for c in 0..n {
        job.noise(c, &mut own);
        for t in 0..h {
            for q in 0..p {
                let src = (t * p + q) * l;
                let dst = (t * rows + c * p + q) * l;
                noise[dst..dst + l].copy_from_slice(&own[src..src + l]);
            }
        }
    }
    let noise = Tensor::from_vec(noise, (h, rows, l), dev)?;
    let actions = Tensor::from_slice(&job.actions, (n, h, 2), dev)?;
    let z0 = Tensor::from_slice(&job.start, (1, l), dev)?;
    let per_particle = |x: &Tensor| -> Result<Tensor> {
        let d = x.dim(1)?;
        x.unsqueeze(1)?.broadcast_as((n, p, d))?.reshape((rows, d))
    };

    let mut zs = Vec::with_capacity(h);
    let mut z = if job.particle_members {
        // Each particle its own member from the start: no shared step-0 prediction.
        let z = z0.broadcast_as((rows, l))?.contiguous()?;
        let a = per_particle(&actions.i((.., 0, ..))?.contiguous()?)?;
        let (mean, log_std) = particle_members_step(m, job, &z, &a)?;
        ((z + mean)? + (log_std.exp()? * noise.get(0)?)?)?
    } else {
        // Step 0 starts every particle of a candidate from the same (z0, a0): one prediction each.
        let a0 = actions.i((.., 0, ..))?.contiguous()?;
        let (mean, log_std) =
            m.dynamics(job.members[0], &z0.broadcast_as((n, l))?.contiguous()?, &a0)?;
        let delta = (per_particle(&mean)? + (per_particle(&log_std)?.exp()? * noise.get(0)?)?)?;
        delta.broadcast_add(&z0)?
    };
    zs.push(z.clone());
    for t in 1..h {
        let a = per_particle(&actions.i((.., t, ..))?.contiguous()?)?;
        let (mean, log_std) = if job.particle_members {
            particle_members_step(m, job, &z, &a)?
        } else {
            m.dynamics(job.members[t], &z, &a)?
        };
        z = ((z + mean)? + (log_std.exp()? * noise.get(t)?)?)?;
        zs.push(z.clone());
    }

    let all = Tensor::stack(&zs, 0)?; // [h, rows, l]
    let heads = m
        .step_heads(&all.reshape((h * rows, l))?)?
        .reshape((h, n, p, 2))?;
    let constraint = sigmoid(&heads.i((.., .., .., 0))?.max(2)?)?.t()?; // [n, h]
    let goal = heads.i((.., .., .., 1))?.mean(2)?.t()?;
    let last = m.final_heads(&zs[h - 1])?.reshape((n, p, 2))?;
    let values = last.i((.., .., 0))?.contiguous()?;
    let value = values.mean(1)?;
    let value_std = values
        .broadcast_sub(&value.unsqueeze(1)?)?
        .sqr()?
        .mean(1)?
        .sqrt()?;
    let mut safe = sigmoid(&last.i((.., .., 1))?.contiguous()?)?.mean(1)?;
    if job.safe_set_every_step && h > 1 {
        // The safe set on the earlier steps too (the value half of these heads is not used).
        let early = m
            .final_heads(&all.narrow(0, 0, h - 1)?.reshape(((h - 1) * rows, l))?)?
            .reshape((h - 1, n, p, 2))?;
        let early = sigmoid(&early.i((.., .., .., 1))?.contiguous()?)?
            .mean(2)?
            .min(0)?;
        safe = safe.minimum(&early)?;
    }
    let latents = all.reshape((h, n, p, l))?.mean(2)?.transpose(0, 1)?;

    let host = |x: Tensor| x.flatten_all()?.to_vec1::<f32>();
    Ok(RolloutStats {
        value: host(value)?,
        value_std: host(value_std)?,
        safe_set: host(safe)?,
        constraint: host(constraint)?,
        goal_logit: host(goal)?,
        latents: host(latents)?,
    })
}

/// One dynamics step of [`Rollout::particle_members`] on rows `c · particles + q`: every member
/// predicts every row, and each row keeps its particle's member's (mean, log-std).
pub(super) fn particle_members_step<M: LatentModels + ?Sized>(
    m: &M,
    job: &Rollout,
    z: &Tensor,
    a: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let predictions = (0..m.dynamics_members())
        .map(|i| m.dynamics(i, z, a))
        .collect::<Result<Vec<_>>>()?;
    keep_particle_members(job, &predictions)
}

/// From every member's (mean, log-std) of the same rows `c · particles + q`, each row's own
/// particle member's ([`Rollout::member`]).
pub(super) fn keep_particle_members(
    job: &Rollout,
    predictions: &[(Tensor, Tensor)],
) -> Result<(Tensor, Tensor)> {
    let (count, z) = (predictions.len(), &predictions[0].0);
    let rows = z.dim(0)?;
    let mut one_hot = vec![0f32; count * rows];
    for r in 0..rows {
        one_hot[job.member(0, r % job.particles, count) * rows + r] = 1.0;
    }
    let mask = Tensor::from_vec(one_hot, (count, rows, 1), z.device())?;
    let pick = |xs: Vec<Tensor>| Tensor::stack(&xs, 0)?.broadcast_mul(&mask)?.sum(0);
    let (means, log_stds): (Vec<_>, Vec<_>) = predictions.iter().cloned().unzip();
    Ok((pick(means)?, pick(log_stds)?))
}

/// MLPs of equal shape that read the same input, evaluated together: the first layers side by
/// side as one wide matmul, the deeper layers stacked per head for batched matmuls.
pub struct HeadStack {
    first_w: Tensor,
    first_b: Tensor,
    rest: Vec<(Tensor, Tensor)>,
    heads: usize,
}

impl HeadStack {
    /// Stacks the heads' weights (copies; build it once per batch of work).
    pub fn new(nets: &[&Mlp]) -> Result<Self> {
        let bias = |m: &Mlp, j: usize| -> Result<Tensor> {
            m.layers()[j]
                .bias()
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg("planner heads need biases".into()))
        };
        let first_w = Tensor::cat(
            &nets
                .iter()
                .map(|m| m.layers()[0].weight().t())
                .collect::<Result<Vec<_>>>()?,
            1,
        )?
        .contiguous()?;
        let first_b = Tensor::cat(
            &nets
                .iter()
                .map(|m| bias(m, 0))
                .collect::<Result<Vec<_>>>()?,
            0,
        )?;
        let depth = nets[0].layers().len();
        let rest = (1..depth)
            .map(|j| {
                let ws = nets
                    .iter()
                    .map(|m| m.layers()[j].weight().t())
                    .collect::<Result<Vec<_>>>()?;
                let bs = nets
                    .iter()
                    .map(|m| bias(m, j)?.unsqueeze(0))
                    .collect::<Result<Vec<_>>>()?;
                Ok((Tensor::stack(&ws, 0)?.contiguous()?, Tensor::stack(&bs, 0)?))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            first_w,
            first_b,
            rest,
            heads: nets.len(),
        })
    }

    /// `[B, in]` → `[B, heads]` (each head's single output).
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let b = z.dim(0)?;
        let mut x = z
            .matmul(&self.first_w)?
            .broadcast_add(&self.first_b)?
            .relu()?;
        let width = x.dim(1)? / self.heads;
        x = x
            .reshape((b, self.heads, width))?
            .transpose(0, 1)?
            .contiguous()?;
        for (i, (w, bias)) in self.rest.iter().enumerate() {
            x = x.matmul(w)?.broadcast_add(bias)?;
            if i + 1 < self.rest.len() {
                x = x.relu()?;
            }
        }
        x.squeeze(D::Minus1)?.t()
    }
}

impl LatentModels for Agent {
    fn device(&self) -> &Device {
        &self.device
    }

    fn dynamics_members(&self) -> usize {
        MEMBERS
    }

    fn dynamics(&self, member: usize, z: &Tensor, a: &Tensor) -> Result<(Tensor, Tensor)> {
        let p = self.dynamics.member(member, z, a)?;
        let (mu, std) = delta_scale(&self.dynamics)?;
        Ok((
            p.mean.broadcast_mul(&std)?.broadcast_add(&mu)?,
            p.log_std.broadcast_add(&std.log()?)?,
        ))
    }

    fn step_heads(&self, z: &Tensor) -> Result<Tensor> {
        HeadStack::new(&[&self.constraint.net, &self.goal.net])?.forward(z)
    }

    fn final_heads(&self, z: &Tensor) -> Result<Tensor> {
        let mut nets: Vec<&Mlp> = self.value.online.iter().collect();
        nets.push(&self.safe_set.online.net);
        let out = HeadStack::new(&nets)?.forward(z)?;
        let k = nets.len() - 1;
        Tensor::cat(
            &[out.narrow(1, 0, k)?.mean_keepdim(1)?, out.narrow(1, k, 1)?],
            1,
        )
    }

    /// On the CPU the fused path (all cores, everything in cache); elsewhere the tensor path.
    fn rollout(&self, job: &Rollout) -> Result<RolloutStats> {
        match self.packed()? {
            Some(fused) => fused.rollout(job),
            None => tensor_rollout(self, job),
        }
    }

    fn weights_version(&self) -> Option<u64> {
        Some(Agent::weights_version(self))
    }

    fn packed(&self) -> Result<Option<FusedModels>> {
        if self.device.is_cpu() {
            Ok(Some(FusedModels::from_agent(self)?))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::testing::{agent_with_delta_normalisation, rollout_job};

    fn assert_close(name: &str, fused: &[f32], tensor: &[f32]) {
        assert_eq!(fused.len(), tensor.len(), "{name} length");
        for (i, (a, b)) in fused.iter().zip(tensor).enumerate() {
            assert!(
                (a - b).abs() <= 2e-4 * (1.0 + b.abs()),
                "{name}[{i}]: fused {a}, tensor {b}"
            );
        }
    }

    #[test]
    fn fused_rollout_matches_the_tensor_rollout() {
        let agent = agent_with_delta_normalisation();
        let fused = FusedModels::from_agent(&agent).unwrap();
        // one group; groups with a partial last one; a candidate over two head blocks; …
        let shapes = [(7, 3, 3), (9, 50, 2), (2, 250, 3), (5, 1, 1), (40, 7, 2)];
        let switches = [(false, false), (true, false), (false, true), (true, true)];
        for ((n, p, h), (particle_members, safe_set_every_step)) in
            shapes.into_iter().flat_map(|s| switches.map(|w| (s, w)))
        {
            let job = Rollout {
                particle_members,
                safe_set_every_step,
                ..rollout_job(n, p, h)
            };
            let (f, t) = (
                fused.rollout(&job).unwrap(),
                tensor_rollout(&agent, &job).unwrap(),
            );
            assert_close("value", &f.value, &t.value);
            assert_close("value std", &f.value_std, &t.value_std);
            assert_close("safe set", &f.safe_set, &t.safe_set);
            assert_close("constraint", &f.constraint, &t.constraint);
            assert_close("goal", &f.goal_logit, &t.goal_logit);
            assert_close("latents", &f.latents, &t.latents);
        }
    }

    #[test]
    fn judged_at_every_step_the_safe_set_is_the_lowest_over_the_plans_prefixes() {
        let agent = agent_with_delta_normalisation();
        let fused = FusedModels::from_agent(&agent).unwrap();
        let (n, p, h) = (6, 4, 3);
        for particle_members in [false, true] {
            let job = |horizon: usize, safe_set_every_step: bool| {
                let full = rollout_job(n, p, h);
                // The first `horizon` actions of each candidate; the noise streams start alike.
                let actions = (0..n)
                    .flat_map(|c| full.actions[c * h * 2..(c * h + horizon) * 2].to_vec())
                    .collect();
                Rollout {
                    actions,
                    horizon,
                    members: full.members[..horizon].to_vec(),
                    particle_members,
                    safe_set_every_step,
                    ..full
                }
            };
            let every = fused.rollout(&job(h, true)).unwrap().safe_set;
            let prefixes: Vec<Vec<f32>> = (1..=h)
                .map(|t| fused.rollout(&job(t, false)).unwrap().safe_set)
                .collect();
            let mut lower_than_the_end = 0;
            for c in 0..n {
                let lowest = prefixes.iter().map(|s| s[c]).fold(f32::INFINITY, f32::min);
                assert!(
                    (every[c] - lowest).abs() < 1e-5,
                    "{c}: {} vs {lowest}",
                    every[c]
                );
                lower_than_the_end += usize::from(every[c] < prefixes[h - 1][c] - 1e-6);
            }
            // The test's plans do leave the safe set before their end now and then.
            assert!(lower_than_the_end > 0, "{every:?} vs {prefixes:?}");
        }
    }

    #[test]
    fn the_agent_uses_the_fused_rollout_on_the_cpu() {
        let agent = agent_with_delta_normalisation();
        let job = rollout_job(4, 2, 2);
        let via_trait = LatentModels::rollout(&agent, &job).unwrap();
        assert_eq!(
            via_trait,
            FusedModels::from_agent(&agent)
                .unwrap()
                .rollout(&job)
                .unwrap()
        );
    }
}
