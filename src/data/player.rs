//! The one episode player: a [`Policy`] acting in an environment step by step while the player
//! keeps the frame stack and records the episode (observations, transitions, start state),
//! labelled when taken. Demo collection ([`DemoPolicy`]: a demo set's teacher and its noise), the
//! planner agent (`train::Actor`) and the app's live episode all play through it.

use super::episode::{Episode, Transition, label};
use crate::env::demos::{DemoSet, Teacher};
use crate::env::{Env, FrameStack, Step};
use anyhow::Result;
use rand::rngs::StdRng;
use rand_distr::Normal;

/// An environment a [`Player`] owns (`Box<dyn Env>`) or borrows (`&mut dyn Env`).
pub trait EnvSlot {
    fn get(&self) -> &dyn Env;
    fn get_mut(&mut self) -> &mut dyn Env;
}

impl EnvSlot for Box<dyn Env> {
    fn get(&self) -> &dyn Env {
        self.as_ref()
    }
    fn get_mut(&mut self) -> &mut dyn Env {
        self.as_mut()
    }
}

impl<'a> EnvSlot for &'a mut (dyn Env + 'a) {
    fn get(&self) -> &dyn Env {
        &**self
    }
    fn get_mut(&mut self) -> &mut dyn Env {
        &mut **self
    }
}

/// Chooses actions for a [`Player`].
pub trait Policy {
    /// What the policy reports with an action (the planner: its plan record).
    type Info;
    /// Prepares an episode right after `env.reset()`; may move the env to another start.
    fn begin(&mut self, _env: &mut dyn Env) {}
    /// The action at step `t`, seeing the environment (ground truth, for scripted teachers) and
    /// the stacked observation (pixels, for learnt agents). The player clips it to the box.
    fn act(&mut self, t: usize, env: &dyn Env, obs: &[u8]) -> Result<([f32; 2], Self::Info)>;
}

/// One played step.
pub struct Played<I> {
    /// Index of the step within the episode (0 for the first).
    pub t: usize,
    /// The clipped action that was executed.
    pub action: [f32; 2],
    pub step: Step,
    pub info: I,
}

/// An episode in progress in an owned (`Box<dyn Env>`) or borrowed (`&mut dyn Env`) environment.
pub struct Player<E = Box<dyn Env>> {
    env: E,
    stack: FrameStack,
    obs: Vec<u8>,
    episode: Episode,
    steps: usize,
    on_policy: bool,
}

impl<E: EnvSlot> Player<E> {
    /// Resets `env`, lets `policy` prepare the episode, and records its start. The episode runs
    /// `steps` steps; its transitions are stored with `on_policy`.
    pub fn start<P: Policy + ?Sized>(
        env: E,
        policy: &mut P,
        steps: usize,
        on_policy: bool,
    ) -> Self {
        Self::start_with(env, steps, on_policy, |env| policy.begin(env))
    }

    /// [`Player::start`] with `prepare` in place of a policy's `begin`.
    pub fn start_with(
        mut env: E,
        steps: usize,
        on_policy: bool,
        prepare: impl FnOnce(&mut dyn Env),
    ) -> Self {
        let kind = env.get().kind();
        let mut stack = FrameStack::new(kind.frame_stack());
        env.get_mut().reset();
        prepare(env.get_mut());
        let obs = stack.restart(env.get().render());
        let episode = Episode {
            frame_stack: kind.frame_stack(),
            transitions: Vec::with_capacity(steps),
            obs: Vec::with_capacity(steps * obs.len()),
            next_obs: Vec::with_capacity(steps * obs.len()),
            start_state: Some(env.get().state()),
        };
        Self {
            env,
            stack,
            obs,
            episode,
            steps,
            on_policy,
        }
    }

    /// Asks `policy` for an action, executes it and records the transition.
    pub fn step<P: Policy + ?Sized>(&mut self, policy: &mut P) -> Result<Played<P::Info>> {
        let t = self.t();
        let kind = self.env.get().kind();
        let (action, info) = policy.act(t, self.env.get(), &self.obs)?;
        let action = kind.clip_action(action);
        let (step, next) = self.stack.step(self.env.get_mut(), action);
        self.episode.obs.extend_from_slice(&self.obs);
        self.episode.next_obs.extend_from_slice(&next);
        self.episode.transitions.push(Transition::unlabelled(
            action,
            step.reward,
            step.constraint,
            self.on_policy,
            Some(step.state.clone()),
        ));
        self.obs = next;
        Ok(Played {
            t,
            action,
            step,
            info,
        })
    }

    /// Steps taken so far.
    pub fn t(&self) -> usize {
        self.episode.transitions.len()
    }

    /// The episode has run its `steps`.
    pub fn finished(&self) -> bool {
        self.t() >= self.steps
    }

    /// The environment (for its state, overlays and markers).
    pub fn env(&self) -> &dyn Env {
        self.env.get()
    }

    /// The episode so far, labelled (LS3_SPEC §1); the player is spent.
    pub fn into_episode(mut self) -> Episode {
        self.take_episode()
    }

    /// The episode so far, labelled (LS3_SPEC §1), leaving an empty one in its place.
    pub fn take_episode(&mut self) -> Episode {
        let empty = Episode {
            frame_stack: self.episode.frame_stack,
            transitions: Vec::new(),
            obs: Vec::new(),
            next_obs: Vec::new(),
            start_state: None,
        };
        let mut ep = std::mem::replace(&mut self.episode, empty);
        label(&mut ep.transitions);
        ep
    }

    /// Plays `policy` from a reset of `env` for `steps` steps and returns the labelled episode.
    pub fn play<P: Policy + ?Sized>(
        env: E,
        policy: &mut P,
        steps: usize,
        on_policy: bool,
    ) -> Result<Episode> {
        let mut player = Self::start(env, policy, steps, on_policy);
        while !player.finished() {
            player.step(policy)?;
        }
        Ok(player.into_episode())
    }
}

/// A demo set's teacher as a [`Policy`]: the teacher's action plus the set's noise (or a uniform
/// first action), from its own random stream (LS3_SPEC §2).
pub struct DemoPolicy {
    set: DemoSet,
    teacher: Box<dyn Teacher>,
    rng: StdRng,
}

impl DemoPolicy {
    /// `set`'s own teacher.
    pub fn new(set: &DemoSet, rng: StdRng) -> Self {
        Self::with_teacher(set, set.teacher.build(), rng)
    }

    /// Another teacher than `set`'s own (e.g. one with other start rules), with `set`'s noise.
    pub fn with_teacher(set: &DemoSet, teacher: Box<dyn Teacher>, rng: StdRng) -> Self {
        Self {
            set: *set,
            teacher,
            rng,
        }
    }
}

impl Policy for DemoPolicy {
    type Info = ();

    fn begin(&mut self, env: &mut dyn Env) {
        self.teacher.begin(env, &mut self.rng);
    }

    fn act(&mut self, t: usize, env: &dyn Env, _obs: &[u8]) -> Result<([f32; 2], ())> {
        let kind = env.kind();
        // `noise` is a fraction of the action range.
        let std = self.set.noise * 2.0 * kind.action_bound();
        let noise = Normal::new(0.0f32, std.max(f32::MIN_POSITIVE)).expect("finite std");
        let state = env.state();
        let a = self.set.action(
            kind,
            self.teacher.as_mut(),
            t,
            &state,
            &noise,
            &mut self.rng,
        );
        Ok((a, ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::EnvKind;

    /// Moves the robot to a fixed start and then always asks for twice the largest action.
    struct Pushy {
        start: Vec<f64>,
        seen: Vec<usize>,
    }

    impl Policy for Pushy {
        type Info = usize;
        fn begin(&mut self, env: &mut dyn Env) {
            env.set_state(&self.start);
        }
        fn act(&mut self, t: usize, _env: &dyn Env, obs: &[u8]) -> Result<([f32; 2], usize)> {
            self.seen.push(t);
            Ok(([100.0, -100.0], obs.len()))
        }
    }

    #[test]
    fn the_player_records_what_a_policy_did_from_the_start_it_chose() {
        let kind = EnvKind::Navigation;
        let env = kind.make(3);
        let start = env.state().iter().map(|v| v + 5.0).collect::<Vec<_>>();
        let mut policy = Pushy {
            start: start.clone(),
            seen: vec![],
        };
        let mut player = Player::start(env, &mut policy, 4, true);
        assert_eq!(player.env().state(), start);
        let mut stacks = vec![];
        while !player.finished() {
            let played = player.step(&mut policy).unwrap();
            stacks.push(played.info);
            // clipped to the action box before it was executed
            assert_eq!(played.action, kind.clip_action([100.0, -100.0]));
        }
        assert_eq!(policy.seen, vec![0, 1, 2, 3]);
        let ep = player.into_episode();
        assert_eq!(ep.len(), 4);
        assert_eq!(ep.start_state.as_deref(), Some(&start[..]));
        let n = stacks[0];
        assert_eq!(ep.obs.len(), 4 * n);
        // each step's observation is the previous step's next observation
        assert_eq!(ep.obs[n..], ep.next_obs[..3 * n]);
        assert!(ep.transitions.iter().all(|t| t.on_policy));
        // labelled: the last transition ends the episode
        assert!(ep.transitions.last().unwrap().done);
    }

    #[test]
    fn a_demo_policy_played_twice_from_the_same_seeds_gives_the_same_episode() {
        use rand::SeedableRng;
        let kind = EnvKind::Reacher;
        let set = kind.demo_sets()[0];
        let play = || {
            let mut policy = DemoPolicy::new(&set, StdRng::seed_from_u64(7));
            Player::play(kind.make(7), &mut policy, 10, set.on_policy).unwrap()
        };
        let (a, b) = (play(), play());
        assert_eq!(a.obs, b.obs);
        assert_eq!(
            a.transitions.iter().map(|t| t.action).collect::<Vec<_>>(),
            b.transitions.iter().map(|t| t.action).collect::<Vec<_>>()
        );
    }
}
