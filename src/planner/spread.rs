//! How sure the models are along the chosen plan: its particles imagined again exactly as the
//! search imagined them (same members, same noise), kept one by one instead of summarised, and
//! the dynamics members' disagreement along the way. One candidate with a few dozen particles:
//! a small fraction of a planner call.

use super::models::{LatentModels, keep_particle_members};
use super::rollout::Rollout;
use candle_core::{Result, Tensor};
use candle_nn::ops::sigmoid;
use serde::{Deserialize, Serialize};

/// Per imagined step of one plan, over its particles and the dynamics members.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanSpread {
    /// Std over particles of the imagined latent, root mean square over the latent's dimensions.
    pub particle_std: Vec<f32>,
    /// Std over the dynamics members of the predicted mean latent from the same particles
    /// (root mean square over dimensions, averaged over particles): the models' disagreement,
    /// which the particles do not show because a step's particles share one member.
    pub member_std: Vec<f32>,
    /// Smallest constraint probability over particles.
    pub constraint_min: Vec<f32>,
    /// Largest constraint probability over particles (the number the planner tests).
    pub constraint_max: Vec<f32>,
}

/// One candidate's particles: `latents` is `[particle][step][latent]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Particles {
    pub count: usize,
    pub horizon: usize,
    pub latent: usize,
    pub latents: Vec<f32>,
}

impl Particles {
    /// Particle `p`'s latent after step `t` (0-based).
    pub fn at(&self, p: usize, t: usize) -> &[f32] {
        let i = (p * self.horizon + t) * self.latent;
        &self.latents[i..i + self.latent]
    }
}

/// Imagines candidate `c` of `job` particle by particle, with the noise and members the search
/// used, and measures its spread.
pub fn imagine<M: LatentModels + ?Sized>(
    m: &M,
    job: &Rollout,
    c: usize,
) -> Result<(PlanSpread, Particles)> {
    let dev = m.device();
    let (h, p, l) = (job.horizon, job.particles, job.latent());
    let mut noise = vec![0f32; job.noise_len()];
    job.noise(c, &mut noise);
    let noise = Tensor::from_vec(noise, (h, p, l), dev)?;
    let mut z = Tensor::from_slice(&job.start, (1, l), dev)?.broadcast_as((p, l))?;
    let mut zs = Vec::with_capacity(h);
    let mut member_std = Vec::with_capacity(h);
    for t in 0..h {
        let a = Tensor::new(&job.action(c, t), dev)?
            .unsqueeze(0)?
            .broadcast_as((p, 2))?
            .contiguous()?;
        let zc = z.contiguous()?;
        // Every member once: their disagreement, and the step the search itself took.
        let predictions = (0..m.dynamics_members())
            .map(|k| m.dynamics(k, &zc, &a))
            .collect::<Result<Vec<_>>>()?;
        let means: Vec<Tensor> = predictions.iter().map(|(mean, _)| mean.clone()).collect();
        member_std.push(members_disagreement(&means)?);
        let (mean, log_std) = if job.particle_members {
            keep_particle_members(job, &predictions)?
        } else {
            predictions[job.members[t]].clone()
        };
        z = ((zc + mean)? + (log_std.exp()? * noise.get(t)?)?)?;
        zs.push(z.clone());
    }
    let all = Tensor::stack(&zs, 1)?; // [p, h, l]
    let heads = m
        .step_heads(&all.reshape((p * h, l))?)?
        .reshape((p, h, 2))?;
    let constraint = sigmoid(&heads.narrow(2, 0, 1)?.squeeze(2)?.contiguous()?)?; // [p, h]
    let particle_std = all.var_keepdim(0)?.squeeze(0)?.mean(1)?.sqrt()?; // [h]
    let host = |x: Tensor| x.flatten_all()?.to_vec1::<f32>();
    let particle_std = if p > 1 {
        host(particle_std)?
    } else {
        vec![0.0; h]
    };
    let spread = PlanSpread {
        particle_std,
        member_std,
        constraint_min: host(constraint.min(0)?)?,
        constraint_max: host(constraint.max(0)?)?,
    };
    let particles = Particles {
        count: p,
        horizon: h,
        latent: l,
        latents: host(all)?,
    };
    Ok((spread, particles))
}

/// Std over members of their mean predictions `[B, latent]` each: RMS over dimensions, mean over
/// rows.
fn members_disagreement(means: &[Tensor]) -> Result<f32> {
    if means.len() < 2 {
        return Ok(0.0);
    }
    let stacked = Tensor::stack(means, 0)?; // [members, B, l]
    stacked
        .var_keepdim(0)?
        .squeeze(0)?
        .mean(1)?
        .sqrt()?
        .mean_all()?
        .to_scalar::<f32>()
}

#[cfg(test)]
mod tests {
    use super::super::models::tensor_rollout;
    use super::super::testing::{Toy, agent_with_delta_normalisation, rollout_job};
    use super::*;

    #[test]
    fn with_particle_members_each_particle_keeps_its_own_member() {
        let agent = agent_with_delta_normalisation();
        let own = Rollout {
            particle_members: true,
            ..rollout_job(3, 7, 3)
        };
        let (spread, parts) = imagine(&agent, &own, 2).unwrap();
        for q in 0..7 {
            // The same particle (same noise) imagined with member q mod 5 at every step.
            let fixed = Rollout {
                members: vec![q % 5; 3],
                ..rollout_job(3, 7, 3)
            };
            let (_, alone) = imagine(&agent, &fixed, 2).unwrap();
            for t in 0..3 {
                for (a, b) in parts.at(q, t).iter().zip(alone.at(q, t)) {
                    assert!((a - b).abs() < 1e-5, "particle {q} step {t}: {a} vs {b}");
                }
            }
        }
        // Members that disagree spread the particles more than one member's noise does.
        let (shared, _) = imagine(&agent, &rollout_job(3, 7, 3), 2).unwrap();
        assert!(spread.particle_std[2] > shared.particle_std[2]);
    }

    #[test]
    fn the_particles_are_the_ones_the_search_imagined() {
        let agent = agent_with_delta_normalisation();
        let job = rollout_job(6, 8, 3);
        let stats = tensor_rollout(&agent, &job).unwrap();
        for c in [0, 4] {
            let (spread, parts) = imagine(&agent, &job, c).unwrap();
            assert_eq!((parts.count, parts.horizon, parts.latent), (8, 3, 32));
            for t in 0..3 {
                // Their mean is the search's summary of candidate c.
                for d in 0..32 {
                    let mean = (0..8).map(|p| parts.at(p, t)[d]).sum::<f32>() / 8.0;
                    let want = stats.latents[(c * 3 + t) * 32 + d];
                    assert!(
                        (mean - want).abs() < 1e-4,
                        "c{c} t{t} d{d}: {mean} vs {want}"
                    );
                }
                // The largest constraint probability is the one the search tested.
                let want = stats.constraint[c * 3 + t];
                assert!((spread.constraint_max[t] - want).abs() < 1e-5);
                assert!(spread.constraint_min[t] <= spread.constraint_max[t]);
                assert!(spread.particle_std[t] > 0.0 && spread.member_std[t] > 0.0);
            }
        }
    }

    #[test]
    fn deterministic_models_have_no_spread() {
        // The toy moves z by exactly the action, with negligible noise, and all members agree.
        let job = Rollout {
            start: vec![0.0, 0.0],
            actions: vec![0.5, 0.0, 0.5, 0.0],
            population: 1,
            horizon: 2,
            particles: 4,
            members: vec![0, 3],
            particle_members: false,
            safe_set_every_step: false,
            noise_seed: 1,
        };
        let (spread, parts) = imagine(&Toy::new(), &job, 0).unwrap();
        assert!(spread.particle_std.iter().all(|&s| s < 1e-6), "{spread:?}");
        assert_eq!(spread.member_std, vec![0.0, 0.0]);
        assert!((parts.at(3, 1)[0] - 1.0).abs() < 1e-5);
    }
}
