//! What one rollout of a CEM population is asked and what it answers: the [`Rollout`] job
//! (start latent, candidate actions, particles, ensemble members, noise) and the per-candidate
//! [`RolloutStats`]. The tensor rollout (`models.rs`) and the fused CPU rollout (`fused.rs`)
//! both take and give these, so neither needs the other.

use crate::model::dynamics::Dynamics;
use candle_core::{Result, Tensor};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, StandardNormal};

/// One scoring of a CEM population: who to imagine, with which ensemble members and noise.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollout {
    /// The latent every particle starts from.
    pub start: Vec<f32>,
    /// Candidate action sequences, `[population][horizon][2]`.
    pub actions: Vec<f32>,
    pub population: usize,
    pub horizon: usize,
    pub particles: usize,
    /// The dynamics member used at each step (all particles of all candidates), `[horizon]`;
    /// ignored when [`Rollout::particle_members`] is set.
    pub members: Vec<usize>,
    /// Each particle keeps one dynamics member for the whole plan (particle `q` uses member
    /// `q mod M`), so the particles' spread shows the members' disagreement.
    pub particle_members: bool,
    /// Judge the safe set at every step: [`RolloutStats::safe_set`] is then the smallest over
    /// the steps of the particles' mean safe-set probability, not the final step's.
    pub safe_set_every_step: bool,
    /// Seeds the per-candidate noise streams of [`Rollout::noise`].
    pub noise_seed: u64,
}

impl Rollout {
    /// Size of a latent.
    pub fn latent(&self) -> usize {
        self.start.len()
    }

    /// Action `t` of candidate `c`.
    pub fn action(&self, c: usize, t: usize) -> [f32; 2] {
        let i = (c * self.horizon + t) * 2;
        [self.actions[i], self.actions[i + 1]]
    }

    /// The dynamics member that moves particle `q` at step `t`, out of `count`.
    pub fn member(&self, t: usize, q: usize, count: usize) -> usize {
        if self.particle_members {
            q % count
        } else {
            self.members[t]
        }
    }

    /// Floats of noise per candidate: horizon × particles × latent.
    pub fn noise_len(&self) -> usize {
        self.horizon * self.particles * self.latent()
    }

    /// Candidate `c`'s standard-normal noise ε, ordered `[step][particle][dim]`. Every candidate
    /// has its own stream, so any grouping of candidates (threads, chunks, devices) imagines the
    /// same particles.
    pub fn noise(&self, c: usize, out: &mut [f32]) {
        let seed = crate::seed::derive(self.noise_seed, "rollout-noise", c as u64);
        let mut rng = SmallRng::seed_from_u64(seed);
        for x in out.iter_mut() {
            *x = StandardNormal.sample(&mut rng);
        }
    }
}

/// Per-candidate summaries of a rollout (host memory; the planner scores them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RolloutStats {
    /// Mean over particles of the value at the final latent, `[population]`.
    pub value: Vec<f32>,
    /// Standard deviation over particles of the value at the final latent, `[population]`.
    pub value_std: Vec<f32>,
    /// Mean over particles of the safe-set probability at the final latent (with
    /// [`Rollout::safe_set_every_step`]: the smallest such mean over all steps), `[population]`.
    pub safe_set: Vec<f32>,
    /// Max over particles of the constraint probability, `[population][horizon]`.
    pub constraint: Vec<f32>,
    /// Mean over particles of the goal logit, `[population][horizon]`.
    pub goal_logit: Vec<f32>,
    /// Mean over particles of the latent after each step, `[population][horizon][latent]`.
    pub latents: Vec<f32>,
}

impl RolloutStats {
    /// Zeroed summaries of `population` candidates.
    pub fn zeros(population: usize, horizon: usize, latent: usize) -> Self {
        Self {
            value: vec![0.0; population],
            value_std: vec![0.0; population],
            safe_set: vec![0.0; population],
            constraint: vec![0.0; population * horizon],
            goal_logit: vec![0.0; population * horizon],
            latents: vec![0.0; population * horizon * latent],
        }
    }
}

/// The dynamics' delta statistics as (mean, std): the model predicts normalised deltas, so a
/// latent-space delta is `mean + std · prediction`. Without normalisation the statistics keep
/// their initial (0, 1) and this is the identity.
pub fn delta_scale(d: &Dynamics) -> Result<(Tensor, Tensor)> {
    Ok((d.delta_mean.clone(), (&d.delta_var + 1e-8)?.sqrt()?))
}
