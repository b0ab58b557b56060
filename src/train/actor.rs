//! The agent in its environment: one episode at a time, one planner call per step, played by the
//! episode player ([`Player`]) with the planner agent as its policy. The session's online rounds,
//! `ls3 eval` and the app's live agent all act through an [`Actor`].

use super::observer::AgentStep;
use crate::data::episode::Episode;
use crate::data::player::{Player, Policy};
use crate::env::{Env, EnvKind, Frame};
use crate::model::agent::Agent;
use crate::planner::{PlanRecord, Planner, PlannerConfig};
use crate::seed::derive;
use crate::valid::Valid;
use anyhow::{Context, Result};
use candle_core::Tensor;

/// The planner agent as a [`Policy`]: encodes the observation and plans from its latent.
pub struct PlannerPolicy<'a> {
    pub planner: &'a mut Planner,
    pub agent: &'a Agent,
    pub cfg: &'a Valid<PlannerConfig>,
}

impl Policy for PlannerPolicy<'_> {
    type Info = PlanRecord;

    fn act(&mut self, t: usize, _env: &dyn Env, obs: &[u8]) -> Result<([f32; 2], PlanRecord)> {
        let (mean, _) = self
            .agent
            .encode_observations(&[obs])
            .context("encoding the observation")?;
        let latent = mean.len();
        let z = Tensor::from_vec(mean, (1, latent), &self.agent.device)?;
        self.planner
            .plan(self.agent, &z, self.cfg)
            .with_context(|| format!("planning step {t}"))
    }
}

/// Runs planner episodes of one environment. Episode `i` is a pure function of the run seed, `i`
/// and the models: its environment and planner are seeded from `(seed, i)`.
pub struct Actor {
    kind: EnvKind,
    seed: u64,
    player: Player,
    planner: Planner,
    random_actions: usize,
}

impl Actor {
    /// An actor for `kind` whose episodes derive their seeds from `seed`.
    pub fn new(kind: EnvKind, seed: u64) -> Self {
        Self {
            kind,
            seed,
            player: Self::player(kind, seed, 0),
            planner: Planner::for_env(kind, derive(seed, "planner", 0)),
            random_actions: 0,
        }
    }

    fn player(kind: EnvKind, seed: u64, index: usize) -> Player {
        let env = kind.make(derive(seed, "agent-env", index as u64));
        Player::start_with(env, kind.horizon(), true, |_| {})
    }

    /// Starts episode `index`: a freshly seeded environment and planner (no carried
    /// sampling distribution). Returns the start state and first frame.
    pub fn begin(&mut self, index: usize) -> (Vec<f64>, Frame) {
        self.player = Self::player(self.kind, self.seed, index);
        self.planner = Planner::for_env(self.kind, derive(self.seed, "planner", index as u64));
        self.random_actions = 0;
        let env = self.player.env();
        (env.state(), env.render())
    }

    /// Steps taken in the current episode.
    pub fn t(&self) -> usize {
        self.player.t()
    }

    /// The episode has run its fixed horizon.
    pub fn finished(&self) -> bool {
        self.player.finished()
    }

    /// The environment (for overlays and markers).
    pub fn env(&self) -> &dyn Env {
        self.player.env()
    }

    /// Planner calls of this episode that fell back to a random action.
    pub fn random_actions(&self) -> usize {
        self.random_actions
    }

    /// Encodes the current observation, plans with `cfg`, and executes the chosen action.
    pub fn step(&mut self, agent: &Agent, cfg: &Valid<PlannerConfig>) -> Result<AgentStep> {
        let mut policy = PlannerPolicy {
            planner: &mut self.planner,
            agent,
            cfg,
        };
        let played = self.player.step(&mut policy)?;
        if played.info.random_fallback {
            self.random_actions += 1;
        }
        Ok(AgentStep {
            t: played.t,
            frame: played.step.frame,
            state: played.step.state,
            reward: played.step.reward,
            constraint: played.step.constraint,
            plan: played.info,
        })
    }

    /// Takes the episode so far, labelled (LS3_SPEC §1), and leaves an empty one.
    pub fn take_episode(&mut self) -> Episode {
        self.player.take_episode()
    }
}
