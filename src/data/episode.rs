//! Transitions, episodes, and the labels written after an episode ends (LS3_SPEC §1).

use serde::{Deserialize, Serialize};

/// One stored transition without its images (the fields of the per-trajectory JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The action executed (after clipping and teacher noise).
    pub action: [f32; 2],
    /// −1 outside the goal, 0 when the goal condition holds after this step.
    pub reward: f32,
    /// The next state violates the constraint.
    pub constraint: bool,
    /// Last transition of the stored episode.
    pub done: bool,
    /// The goal was reached at or after this transition in the same episode.
    pub safe_set: bool,
    /// Collected by the task teacher or the agent (not by a constraint/disturbance teacher).
    pub on_policy: bool,
    /// Sum of rewards strictly after this transition.
    pub rtg: f32,
    /// Ground-truth state after the step, when known (not part of the original format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Vec<f64>>,
}

impl Transition {
    /// A step as it happens, before the episode is over: `done`, `safe_set` and `rtg` are left
    /// false / 0 for [`label`] to fill in.
    pub fn unlabelled(
        action: [f32; 2],
        reward: f32,
        constraint: bool,
        on_policy: bool,
        state: Option<Vec<f64>>,
    ) -> Self {
        Self {
            action,
            reward,
            constraint,
            done: false,
            safe_set: false,
            on_policy,
            rtg: 0.0,
            state,
        }
    }
}

/// A finished episode: transitions plus their observations, each `stack×3×64×64` uint8,
/// concatenated in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// Frames per observation (1, or 3 for the reacher).
    pub frame_stack: usize,
    pub transitions: Vec<Transition>,
    /// Observation before each transition, `T × stack × 3×64×64` bytes.
    pub obs: Vec<u8>,
    /// Observation after each transition, same layout.
    pub next_obs: Vec<u8>,
    /// Ground-truth state at the start of the episode, when known.
    pub start_state: Option<Vec<f64>>,
}

impl Episode {
    /// Number of transitions.
    pub fn len(&self) -> usize {
        self.transitions.len()
    }

    /// True when the episode holds no transitions.
    pub fn is_empty(&self) -> bool {
        self.transitions.is_empty()
    }

    /// Bytes per observation.
    pub fn obs_len(&self) -> usize {
        self.frame_stack * crate::env::FRAME_LEN
    }

    /// The observation after transition `t`.
    pub fn next_obs_at(&self, t: usize) -> &[u8] {
        let n = self.obs_len();
        &self.next_obs[t * n..(t + 1) * n]
    }

    /// The observation before transition `t`.
    pub fn obs_at(&self, t: usize) -> &[u8] {
        let n = self.obs_len();
        &self.obs[t * n..(t + 1) * n]
    }

    /// Cost = number of steps spent outside the goal = −Σ reward.
    pub fn cost(&self) -> f32 {
        -self.transitions.iter().map(|t| t.reward).sum::<f32>()
    }

    /// Whether this episode is on-policy: a task demonstration or an agent episode (its
    /// first transition says so), as opposed to constraint or disturbance demos.
    pub fn is_on_policy(&self) -> bool {
        self.transitions.first().is_some_and(|t| t.on_policy)
    }

    /// The goal held after at least one step.
    pub fn success(&self) -> bool {
        self.transitions.iter().any(|t| t.reward == 0.0)
    }

    /// The constraint was violated at least once.
    pub fn violated(&self) -> bool {
        self.transitions.iter().any(|t| t.constraint)
    }
}

/// Writes `safe_set`, `rtg` and `done` from the rewards, walking backwards:
/// `safe_set` holds at and before the last zero-reward step, `rtg` sums the rewards strictly
/// after each transition, and only the last transition is `done`.
pub fn label(transitions: &mut [Transition]) {
    let last_goal = transitions.iter().rposition(|t| t.reward == 0.0);
    let mut after = 0.0f32;
    let n = transitions.len();
    for (i, t) in transitions.iter_mut().enumerate().rev() {
        t.rtg = after;
        after += t.reward;
        t.safe_set = last_goal.is_some_and(|g| i <= g);
        t.done = i + 1 == n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(rewards: &[f32]) -> Vec<Transition> {
        rewards
            .iter()
            .map(|&reward| Transition::unlabelled([0.0; 2], reward, false, true, None))
            .collect()
    }

    #[test]
    fn safe_set_covers_steps_up_to_last_goal_and_rtg_sums_later_rewards() {
        let mut ts = raw(&[-1.0, -1.0, 0.0, -1.0, 0.0, -1.0]);
        label(&mut ts);
        let ss: Vec<bool> = ts.iter().map(|t| t.safe_set).collect();
        assert_eq!(ss, [true, true, true, true, true, false]);
        let rtg: Vec<f32> = ts.iter().map(|t| t.rtg).collect();
        assert_eq!(rtg, [-3.0, -2.0, -2.0, -1.0, -1.0, 0.0]);
        let done: Vec<bool> = ts.iter().map(|t| t.done).collect();
        assert_eq!(done, [false, false, false, false, false, true]);
    }

    #[test]
    fn no_goal_means_no_safe_set() {
        let mut ts = raw(&[-1.0, -1.0, -1.0]);
        label(&mut ts);
        assert!(ts.iter().all(|t| !t.safe_set));
        assert_eq!(ts[0].rtg, -2.0);
        assert!(ts[2].done);
    }

    #[test]
    fn goal_on_last_step_marks_everything_safe() {
        let mut ts = raw(&[-1.0, 0.0]);
        label(&mut ts);
        assert!(ts.iter().all(|t| t.safe_set));
        assert_eq!(ts[0].rtg, 0.0);
    }
}
