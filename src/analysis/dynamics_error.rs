//! How well an agent's dynamics ensemble predicts one step, for the demonstrators' actions and for
//! uniformly random actions from the same states — the planner's first CEM iteration proposes
//! the latter, so a model that only knows the former can be exploited.

use crate::data::episode::Episode;
use crate::env::{Env, FRAME_LEN};
use crate::model::agent::Agent;
use crate::planner::LatentModels;
use anyhow::{Context, Result};
use candle_core::Tensor;
use rand::Rng;

/// Mean latent errors (L2 norm) of the ensemble's mean prediction, and the size of the true
/// latent change for scale (what predicting "no change" would err).
#[derive(Clone, Debug, PartialEq)]
pub struct OneStepError {
    pub transitions: usize,
    /// Error for the demonstrated action.
    pub demo: f32,
    /// Error for a uniformly random action from the same state.
    pub random: f32,
    /// True latent change under the demonstrated action.
    pub demo_change: f32,
    /// True latent change under the random action.
    pub random_change: f32,
}

/// Measures [`OneStepError`] on every transition of `episodes` that has a recorded state before
/// it (all but each episode's first). `env` simulates the random actions.
pub fn one_step_error(
    agent: &Agent,
    env: &mut dyn Env,
    episodes: &[Episode],
    rng: &mut impl Rng,
) -> Result<OneStepError> {
    let kind = env.kind();
    let bound = kind.action_bound();
    let obs_len = kind.frame_stack() * FRAME_LEN;
    let (mut obs, mut demo_next, mut random_next) = (Vec::new(), Vec::new(), Vec::new());
    let (mut demo_actions, mut random_actions) = (Vec::new(), Vec::new());
    for ep in episodes {
        for t in 1..ep.transitions.len() {
            let Some(before) = ep.transitions[t - 1].state.as_ref() else {
                continue;
            };
            let o = &ep.obs[t * obs_len..(t + 1) * obs_len];
            env.set_state(before);
            let a = [
                rng.random_range(-bound..=bound),
                rng.random_range(-bound..=bound),
            ];
            let frame = env.step(a).frame;
            // The newest frame is the last of the stack.
            let mut next = o[FRAME_LEN..].to_vec();
            next.extend_from_slice(&frame.0);
            obs.push(o.to_vec());
            demo_next.push(ep.next_obs[t * obs_len..(t + 1) * obs_len].to_vec());
            random_next.push(next);
            demo_actions.push(ep.transitions[t].action);
            random_actions.push(a);
        }
    }
    let n = obs.len();
    anyhow::ensure!(n > 0, "no transition with a recorded state to measure");
    let latents = |images: &[Vec<u8>]| -> Result<Tensor> {
        let refs: Vec<&[u8]> = images.iter().map(|v| v.as_slice()).collect();
        let (mean, _) = agent
            .encode_observations(&refs)
            .context("encoding observations")?;
        Ok(Tensor::from_vec(
            mean,
            (n, agent.spec.latent),
            &agent.device,
        )?)
    };
    let z = latents(&obs)?;
    let error = |next: &[Vec<u8>], actions: &[[f32; 2]]| -> Result<(f32, f32)> {
        let truth = latents(next)?;
        let a: Vec<f32> = actions.iter().flatten().copied().collect();
        let a = Tensor::from_vec(a, (n, 2), &agent.device)?;
        let mut delta = Tensor::zeros_like(&z)?;
        for m in 0..agent.dynamics_members() {
            delta = (delta + agent.dynamics(m, &z, &a)?.0)?;
        }
        let predicted = (&z + (delta / agent.dynamics_members() as f64)?)?;
        let norm = |x: Tensor| -> Result<f32> {
            Ok(x.sqr()?.sum(1)?.sqrt()?.mean_all()?.to_scalar::<f32>()?)
        };
        Ok((norm((&predicted - &truth)?)?, norm((&truth - &z)?)?))
    };
    let (demo, demo_change) = error(&demo_next, &demo_actions)?;
    let (random, random_change) = error(&random_next, &random_actions)?;
    Ok(OneStepError {
        transitions: n,
        demo,
        random,
        demo_change,
        random_change,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::collect::demo_episode;
    use crate::env::EnvKind;
    use crate::model::agent::AgentSpec;
    use rand::SeedableRng;

    #[test]
    fn measures_every_transition_after_the_first_with_finite_errors() {
        let kind = EnvKind::Navigation;
        let agent = Agent::new(AgentSpec::for_env(kind), &candle_core::Device::Cpu, 1).unwrap();
        let ep = demo_episode(kind, &kind.demo_sets()[0], 0, 0);
        let mut env = kind.make(0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let e = one_step_error(&agent, env.as_mut(), std::slice::from_ref(&ep), &mut rng).unwrap();
        assert_eq!(e.transitions, ep.transitions.len() - 1);
        for x in [e.demo, e.random, e.demo_change, e.random_change] {
            assert!(x.is_finite() && x >= 0.0, "{e:?}");
        }
    }
}
