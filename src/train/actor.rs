//! The agent in its environment: one episode at a time, one planner call per step. The session's
//! online rounds and `ls3 eval` both act through an [`Actor`].

use super::observer::AgentStep;
use crate::data::episode::{Episode, Transition, label};
use crate::env::{Env, EnvKind, Frame, FrameStack};
use crate::model::agent::Agent;
use crate::planner::{Planner, PlannerConfig};
use crate::seed::derive;
use crate::valid::Valid;
use anyhow::{Context, Result};
use candle_core::Tensor;

/// Runs planner episodes of one environment. Episode `i` is a pure function of the run seed, `i`
/// and the models: its environment and planner are seeded from `(seed, i)`.
pub struct Actor {
    kind: EnvKind,
    seed: u64,
    env: Box<dyn Env>,
    stack: FrameStack,
    planner: Planner,
    obs: Vec<u8>,
    episode: Episode,
    random_actions: usize,
}

impl Actor {
    /// An actor for `kind` whose episodes derive their seeds from `seed`.
    pub fn new(kind: EnvKind, seed: u64) -> Self {
        let mut actor = Self {
            kind,
            seed,
            env: kind.make(derive(seed, "agent-env", 0)),
            stack: FrameStack::new(kind.frame_stack()),
            planner: Planner::for_env(kind, derive(seed, "planner", 0)),
            obs: Vec::new(),
            episode: empty_episode(kind),
            random_actions: 0,
        };
        actor.begin(0);
        actor
    }

    /// Starts episode `index`: a freshly seeded environment and planner (no carried
    /// sampling distribution). Returns the start state and first frame.
    pub fn begin(&mut self, index: usize) -> (Vec<f64>, Frame) {
        self.env = self.kind.make(derive(self.seed, "agent-env", index as u64));
        self.planner = Planner::for_env(self.kind, derive(self.seed, "planner", index as u64));
        self.obs = self.stack.reset(self.env.as_mut());
        self.episode = empty_episode(self.kind);
        let state = self.env.state();
        self.episode.start_state = Some(state.clone());
        self.random_actions = 0;
        (state, self.env.render())
    }

    /// Steps taken in the current episode.
    pub fn t(&self) -> usize {
        self.episode.len()
    }

    /// The episode has run its fixed horizon.
    pub fn finished(&self) -> bool {
        self.t() >= self.kind.horizon()
    }

    /// The environment (for overlays and markers).
    pub fn env(&self) -> &dyn Env {
        self.env.as_ref()
    }

    /// Planner calls of this episode that fell back to a random action.
    pub fn random_actions(&self) -> usize {
        self.random_actions
    }

    /// Encodes the current observation, plans with `cfg`, and executes the chosen action.
    pub fn step(&mut self, agent: &Agent, cfg: &Valid<PlannerConfig>) -> Result<AgentStep> {
        let t = self.t();
        let (mean, _) = agent
            .encode_observations(&[&self.obs])
            .context("encoding the observation")?;
        let latent = mean.len();
        let z = Tensor::from_vec(mean, (1, latent), &agent.device)?;
        let (action, plan) = self
            .planner
            .plan(agent, &z, cfg)
            .with_context(|| format!("planning step {t}"))?;
        if plan.random_fallback {
            self.random_actions += 1;
        }
        let action = self.kind.clip_action(action);
        let (step, next) = self.stack.step(self.env.as_mut(), action);
        self.episode.obs.extend_from_slice(&self.obs);
        self.episode.next_obs.extend_from_slice(&next);
        self.episode.transitions.push(Transition {
            action,
            reward: step.reward,
            constraint: step.constraint,
            done: false,
            safe_set: false,
            on_policy: true,
            rtg: 0.0,
            state: Some(step.state.clone()),
        });
        self.obs = next;
        Ok(AgentStep {
            t,
            frame: step.frame,
            state: step.state,
            reward: step.reward,
            constraint: step.constraint,
            plan,
        })
    }

    /// Takes the episode so far, labelled (LS3_SPEC §1), and leaves an empty one.
    pub fn take_episode(&mut self) -> Episode {
        let mut ep = std::mem::replace(&mut self.episode, empty_episode(self.kind));
        label(&mut ep.transitions);
        ep
    }
}

fn empty_episode(kind: EnvKind) -> Episode {
    Episode {
        frame_stack: kind.frame_stack(),
        transitions: Vec::with_capacity(kind.horizon()),
        obs: Vec::new(),
        next_obs: Vec::new(),
        start_state: None,
    }
}
