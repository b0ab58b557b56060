//! Branches off the demonstrations: from every state of a demo episode, one uniformly random
//! action played in the simulator. Demonstrators move the same way at the same places, so the
//! dynamics never sees what other actions do there; these transitions show it (an option beyond
//! the original, on in the quick preset for navigation only).

use super::episode::{Episode, Transition};
use crate::env::{Env, EnvKind, FRAME_LEN};
use crate::seed::derive;
use rand::{Rng, SeedableRng};

/// One branch episode per task demo (those whose first transition is on-policy) in `demos`, from
/// streams derived from `seed`, so the same demos and seed always give the same branches.
pub fn branch_task_demos(kind: EnvKind, demos: &[Episode], seed: u64) -> Vec<Episode> {
    let mut env = kind.make(derive(seed, "branch-demos/env", 0));
    let mut rng = rand::rngs::StdRng::seed_from_u64(derive(seed, "branch-demos", 0));
    demos
        .iter()
        .filter(|e| e.is_on_policy())
        .filter_map(|e| branch_episode(env.as_mut(), e, &mut rng))
        .collect()
}

/// The branches of agent episode `index`, from streams derived from `seed` and `index`; its start
/// state is ignored, as it is not stored on disk.
pub fn branch_agent_episode(
    kind: EnvKind,
    ep: &Episode,
    seed: u64,
    index: usize,
) -> Option<Episode> {
    let mut env = kind.make(derive(seed, "branch-agent/env", index as u64));
    let mut rng = rand::rngs::StdRng::seed_from_u64(derive(seed, "branch-agent", index as u64));
    branch_from(env.as_mut(), ep, &mut rng, false)
}

/// The branches of `ep`: transition `t` starts from the demo's observation `t`, takes a uniformly
/// random action and ends in what the simulator shows. The start state is in the safe set exactly
/// when the demo's is (`safe_set` is the origin's label), `on_policy` is false (the value never
/// trains on them), `rtg` is 0. Steps whose start state is unknown (the first, for episodes read
/// from disk) are left out; `None` when no state is known.
pub fn branch_episode(env: &mut dyn Env, ep: &Episode, rng: &mut impl Rng) -> Option<Episode> {
    branch_from(env, ep, rng, true)
}

/// [`branch_episode`], ignoring `ep`'s start state unless `use_start`.
fn branch_from(
    env: &mut dyn Env,
    ep: &Episode,
    rng: &mut impl Rng,
    use_start: bool,
) -> Option<Episode> {
    let bound = env.kind().action_bound();
    // The state before transition t: the start state (not stored on disk), then the states after.
    let origin = |t: usize| match t {
        0 => ep.start_state.clone().filter(|_| use_start),
        _ => ep.transitions[t - 1].state.clone(),
    };
    let steps: Vec<(usize, Vec<f64>)> = (0..ep.len())
        .filter_map(|t| origin(t).map(|s| (t, s)))
        .collect();
    if steps.is_empty() {
        return None;
    }
    let mut out = Episode {
        frame_stack: ep.frame_stack,
        transitions: Vec::with_capacity(steps.len()),
        obs: Vec::with_capacity(ep.obs.len()),
        next_obs: Vec::with_capacity(ep.next_obs.len()),
        start_state: None,
    };
    let last = steps.len() - 1;
    for (i, (t, state)) in steps.into_iter().enumerate() {
        env.set_state(&state);
        let action = [
            rng.random_range(-bound..=bound),
            rng.random_range(-bound..=bound),
        ];
        let step = env.step(action);
        let obs = ep.obs_at(t);
        out.obs.extend_from_slice(obs);
        // The newest frame is the last of the stack.
        out.next_obs.extend_from_slice(&obs[FRAME_LEN..]);
        out.next_obs.extend_from_slice(&step.frame.0);
        out.transitions.push(Transition {
            action,
            reward: step.reward,
            constraint: step.constraint,
            done: i == last,
            safe_set: ep.transitions[t].safe_set,
            on_policy: false,
            rtg: 0.0,
            state: Some(step.state),
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::collect::demo_episode;
    use crate::env::EnvKind;
    use rand::SeedableRng;

    #[test]
    fn every_branch_starts_at_the_demo_state_and_moves_by_its_own_action() {
        let kind = EnvKind::Navigation;
        let ep = demo_episode(kind, &kind.demo_sets()[0], 0, 0);
        let mut env = kind.make(1);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let b = branch_episode(env.as_mut(), &ep, &mut rng).expect("demo states are known");
        assert_eq!(b.len(), ep.len());
        assert_eq!(b.obs, ep.obs);
        // Read from disk, the start state is unknown: the first step is left out.
        let stored = Episode {
            start_state: None,
            ..ep.clone()
        };
        let b0 = branch_episode(env.as_mut(), &stored, &mut rng).unwrap();
        assert_eq!(b0.len(), ep.len() - 1);
        assert_eq!(b0.obs_at(0), ep.obs_at(1));
        assert_eq!(b.next_obs.len(), ep.next_obs.len());
        let mut differs = 0;
        for t in 1..ep.len() {
            let from = ep.transitions[t - 1].state.as_ref().unwrap();
            let to = b.transitions[t].state.as_ref().unwrap();
            let a = b.transitions[t].action;
            assert!(a.iter().all(|x| x.abs() <= 3.0), "{a:?}");
            // Navigation moves by the action plus small noise (unless inside the wall).
            let (dx, dy) = (to[0] - from[0], to[1] - from[1]);
            if !ep.transitions[t - 1].constraint {
                assert!((dx - a[0] as f64).abs() < 1.0 && (dy - a[1] as f64).abs() < 1.0);
            }
            differs += usize::from(b.next_obs_at(t) != ep.next_obs_at(t));
            assert!(!b.transitions[t].on_policy);
            assert_eq!(b.transitions[t].safe_set, ep.transitions[t].safe_set);
        }
        assert!(
            differs > ep.len() / 2,
            "only {differs} branches look different"
        );
    }
}
