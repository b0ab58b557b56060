//! Does the planner fool itself? From states along demo episodes, run the planner, then play its
//! best plan in the simulator and ask the models about the frames that really come out. The gap
//! between the imagined and the true terminal value (and safe-set probability) is what the
//! planner gained from dynamics error; the demonstrator's own next actions give the scale.
//! Holding still (zero actions) is checked too: demos rarely stand still, so it shows how far the
//! dynamics follows an action it has hardly seen, rather than the motion it usually saw there.

use crate::data::episode::Episode;
use crate::env::{Env, FRAME_LEN};
use crate::model::agent::Agent;
use crate::planner::{LatentModels, Planner, PlannerConfig, Rollout};
use crate::valid::Valid;
use anyhow::{Context, Result};
use candle_core::Tensor;

/// Imagined and true terminal value and safe-set probability of one action sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Outcome {
    pub imagined_value: f32,
    pub true_value: f32,
    pub imagined_safe_set: f32,
    pub true_safe_set: f32,
}

/// One checked state: the planner's best plan and the demonstrator's next actions from it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedState {
    /// Ground-truth state the plans start from.
    pub state: Vec<f64>,
    pub plan: Outcome,
    pub demo: Outcome,
    /// Zero actions for the whole horizon, imagined with each dynamics member in turn (mean).
    pub still: Outcome,
    /// The plan's first action, and the demonstrator's.
    pub plan_action: [f32; 2],
    pub demo_action: [f32; 2],
    /// Ground-truth states after playing the whole plan, and the demonstrator's actions.
    pub plan_end: Vec<f64>,
    pub demo_end: Vec<f64>,
    pub still_end: Vec<f64>,
}

/// Checks every `every`-th state of each episode that leaves at least `cfg.horizon` demo actions
/// after it.
pub fn check(
    agent: &Agent,
    env: &mut dyn Env,
    planner: &mut Planner,
    cfg: &Valid<PlannerConfig>,
    episodes: &[Episode],
    every: usize,
) -> Result<Vec<CheckedState>> {
    let h = cfg.horizon;
    let obs_len = env.kind().frame_stack() * FRAME_LEN;
    let mut out = Vec::new();
    for ep in episodes {
        for t in (1..ep.len().saturating_sub(h)).step_by(every.max(1)) {
            let Some(state) = ep.transitions[t - 1].state.clone() else {
                continue;
            };
            let obs = &ep.obs[t * obs_len..(t + 1) * obs_len];
            let z0 = latent_of(agent, obs)?;
            planner.reset();
            let (action, record) = planner.plan(agent, &z0, cfg).context("planning")?;
            let demo_actions: Vec<[f32; 2]> =
                (t..t + h).map(|i| ep.transitions[i].action).collect();
            let (plan_truth, plan_end) = truth(agent, env, &state, obs, &record.actions)?;
            let plan = Outcome {
                imagined_value: record.value,
                imagined_safe_set: record.safe_set_prob,
                ..plan_truth
            };
            let (demo_truth, demo_end) = truth(agent, env, &state, obs, &demo_actions)?;
            let demo = Outcome {
                true_value: demo_truth.true_value,
                true_safe_set: demo_truth.true_safe_set,
                ..imagined(agent, &z0, &demo_actions, cfg)?
            };
            let zero = vec![[0f32; 2]; h];
            let (still_truth, still_end) = truth(agent, env, &state, obs, &zero)?;
            let members = agent.dynamics_members();
            let mut still = still_truth;
            for m in 0..members {
                let o = imagined_with(agent, &z0, &zero, cfg, vec![m; h])?;
                still.imagined_value += o.imagined_value / members as f32;
                still.imagined_safe_set += o.imagined_safe_set / members as f32;
            }
            out.push(CheckedState {
                state,
                plan,
                demo,
                still,
                plan_action: action,
                demo_action: demo_actions[0],
                plan_end,
                demo_end,
                still_end,
            });
        }
    }
    Ok(out)
}

/// The encoder's mean latent of one observation, `[latent]`.
pub fn latent_of(agent: &Agent, obs: &[u8]) -> Result<Tensor> {
    let (mean, _) = agent
        .encode_observations(&[obs])
        .context("encoding an observation")?;
    Ok(Tensor::from_vec(mean, agent.spec.latent, &agent.device)?)
}

/// What the models imagine for `actions` from `z0` (the planner's rollout, one candidate).
pub fn imagined(
    agent: &Agent,
    z0: &Tensor,
    actions: &[[f32; 2]],
    cfg: &PlannerConfig,
) -> Result<Outcome> {
    let members = (0..actions.len())
        .map(|t| t % agent.dynamics_members())
        .collect();
    imagined_with(agent, z0, actions, cfg, members)
}

/// [`imagined`] with the dynamics member of every step given.
fn imagined_with(
    agent: &Agent,
    z0: &Tensor,
    actions: &[[f32; 2]],
    cfg: &PlannerConfig,
    members: Vec<usize>,
) -> Result<Outcome> {
    let job = Rollout {
        start: z0.to_vec1::<f32>()?,
        actions: actions.iter().flatten().copied().collect(),
        population: 1,
        horizon: actions.len(),
        particles: cfg.particles,
        members,
        particle_members: cfg.particle_members,
        safe_set_every_step: cfg.safe_set_every_step,
        noise_seed: 0,
    };
    let stats = agent.rollout(&job)?;
    Ok(Outcome {
        imagined_value: stats.value[0],
        imagined_safe_set: stats.safe_set[0],
        ..Outcome::default()
    })
}

/// Plays `actions` from `state` in the simulator and evaluates the final observation's latent;
/// also returns the final state.
pub fn truth(
    agent: &Agent,
    env: &mut dyn Env,
    state: &[f64],
    obs: &[u8],
    actions: &[[f32; 2]],
) -> Result<(Outcome, Vec<f64>)> {
    env.set_state(state);
    let mut o = obs.to_vec();
    for &a in actions {
        let frame = env.step(a).frame;
        // Shift the frame stack: the newest frame is the last.
        o.drain(..FRAME_LEN);
        o.extend_from_slice(&frame.0);
    }
    let z = latent_of(agent, &o)?.unsqueeze(0)?;
    let heads = agent.final_heads(&z)?.to_vec2::<f32>()?;
    let outcome = Outcome {
        true_value: heads[0][0],
        true_safe_set: 1.0 / (1.0 + (-heads[0][1]).exp()),
        ..Outcome::default()
    };
    Ok((outcome, env.state()))
}

/// Means over checked states: (plan, demo, holding still) outcomes.
pub fn summarize(checked: &[CheckedState]) -> (Outcome, Outcome, Outcome) {
    let n = checked.len().max(1) as f32;
    let mean = |f: &dyn Fn(&CheckedState) -> Outcome| {
        let mut m = Outcome::default();
        for c in checked {
            let o = f(c);
            m.imagined_value += o.imagined_value / n;
            m.true_value += o.true_value / n;
            m.imagined_safe_set += o.imagined_safe_set / n;
            m.true_safe_set += o.true_safe_set / n;
        }
        m
    };
    (mean(&|c| c.plan), mean(&|c| c.demo), mean(&|c| c.still))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::collect::demo_episode;
    use crate::env::EnvKind;
    use crate::model::agent::AgentSpec;
    use crate::valid::Validate;

    #[test]
    fn checks_every_other_state_with_finite_outcomes() {
        let kind = EnvKind::Navigation;
        let agent = Agent::new(AgentSpec::for_env(kind), &candle_core::Device::Cpu, 1).unwrap();
        let ep = demo_episode(kind, &kind.demo_sets()[0], 0, 0);
        let mut env = kind.make(0);
        let mut planner = Planner::for_env(kind, 0);
        let cfg = PlannerConfig {
            population: 20,
            elites: 4,
            particles: 2,
            ..PlannerConfig::default()
        }
        .validated()
        .unwrap();
        let checked = check(
            &agent,
            env.as_mut(),
            &mut planner,
            &cfg,
            std::slice::from_ref(&ep),
            20,
        )
        .unwrap();
        assert_eq!(
            checked.len(),
            (1..ep.len() - cfg.horizon).step_by(20).count()
        );
        let (plan, demo, still) = summarize(&checked);
        for o in [plan, demo, still] {
            for x in [
                o.imagined_value,
                o.true_value,
                o.imagined_safe_set,
                o.true_safe_set,
            ] {
                assert!(x.is_finite(), "{o:?}");
            }
        }
        // The demo's first action is the episode's.
        assert_eq!(checked[0].demo_action, ep.transitions[1].action);
        // Holding still ends where it started, up to the simulator's small noise.
        for c in &checked {
            let moved = ((c.still_end[0] - c.state[0]).powi(2)
                + (c.still_end[1] - c.state[1]).powi(2))
            .sqrt();
            assert!(moved < 2.0, "moved {moved} from {:?}", c.state);
        }
    }
}
