//! The live episode: who acts in it (the task demonstrator, or a trained agent planning every
//! step, its plans' imagined latents decoded into frames), how far it got, and the stream of
//! episodes it belongs to.

use super::{
    AGENT_NAME, EpisodeEnd, EpisodeStart, Event, LoadedAgent, StepEvent, Worker, WorkerState,
    panic_message,
};
use crate::app::data::PlanShot;
use crate::data::player::{DemoPolicy, Player};
use crate::model::agent::Agent;
use crate::model::frames::decode_frames;
use crate::planner::PlannerConfig;
use crate::seed::derive;
use crate::train::Actor;
use crate::valid::Valid;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Who acts in the live episode.
pub(super) enum Driver {
    /// The task demonstrator (its teacher, random stream and action noise) playing its episode.
    Teacher {
        player: Box<Player>,
        policy: Box<DemoPolicy>,
    },
    /// A trained agent planning every step; its actor owns the environment.
    Agent {
        actor: Box<Actor>,
        agent: Arc<Agent>,
        planner: Valid<PlannerConfig>,
    },
}

/// The live episode: who acts and how far it got.
pub(super) struct Live {
    episode: u64,
    driver: Driver,
    steps: usize,
    t: usize,
    cost: f32,
    success: bool,
    violated: bool,
}

impl Worker {
    /// Starts the stream over: episode 0 of the current environment, shown paused at its start.
    pub(super) fn restart(&mut self) {
        self.next_episode = 0;
        self.live = None;
        self.emit(Event::Restarted {
            kind: self.kind,
            seed: self.seed,
        });
        self.guarded(Self::start_episode);
        self.emit(Event::Config(Box::new(self.config_in_use().into_inner())));
    }

    /// One environment step (starting a fresh episode first when none is live). Always paced.
    pub(super) fn advance_episode(&mut self) -> bool {
        if self.live.is_some() || self.guarded(Self::start_episode) {
            self.guarded(Self::step);
        }
        true
    }

    /// Runs `f`, turning a panic into an [`Event::Error`] and a paused worker whose episode is
    /// dropped (the next step starts a fresh one). Returns whether `f` completed.
    pub(super) fn guarded(&mut self, f: fn(&mut Self)) -> bool {
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(()) => true,
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                self.live = None;
                self.emit(Event::Error(format!(
                    "{} episode {} failed: {message}",
                    self.kind, self.next_episode
                )));
                self.set_state(WorkerState::Paused);
                false
            }
        }
    }

    /// The agent for the current environment, loaded on first use.
    fn agent(&mut self) -> Option<LoadedAgent> {
        let kind = self.kind;
        if !self.agents.contains_key(&kind) {
            let loaded = self.agent_dirs.get(&kind).cloned().and_then(|dir| {
                let device = crate::model::default_device();
                match crate::model::checkpoint::load(&dir, Some(kind), &device) {
                    Ok((agent, meta)) => match crate::config::saved_planner(&meta) {
                        Ok(planner) => {
                            self.analyse_agent = true;
                            Some((Arc::new(agent), planner))
                        }
                        Err(e) => {
                            self.emit(Event::Error(format!(
                                "the {kind} agent's planner settings are invalid, the \
                                 demonstrator acts instead: {e}"
                            )));
                            None
                        }
                    },
                    Err(e) => {
                        self.emit(Event::Error(format!(
                            "the {kind} agent could not be loaded, the demonstrator acts \
                             instead: {e}"
                        )));
                        None
                    }
                }
            });
            self.agents.insert(kind, loaded);
        }
        self.agents[&kind].clone()
    }

    pub(super) fn start_episode(&mut self) {
        let kind = self.kind;
        let episode = self.next_episode;
        self.next_episode += 1;
        if let Some((agent, planner)) = self.agent() {
            // Keep the actor of the episode that just ended (same seeds); a new one otherwise.
            let mut actor = match self.live.take().map(|l| l.driver) {
                Some(Driver::Agent { actor, .. }) if actor.env().kind() == kind => actor,
                _ => Box::new(Actor::new(kind, derive(self.seed, "eval", 0))),
            };
            let (state, frame) = actor.begin(episode as usize);
            if std::mem::take(&mut self.analyse_agent) {
                self.analyse(agent.clone(), state.clone(), None);
            }
            let env = actor.env();
            let start = EpisodeStart {
                episode,
                kind,
                demonstrator: AGENT_NAME,
                steps: kind.horizon(),
                overlay: env.overlay(),
                frame,
                marker: env.marker(&state),
                state,
            };
            self.live = Some(Live {
                episode,
                driver: Driver::Agent {
                    actor,
                    agent,
                    planner,
                },
                steps: kind.horizon(),
                t: 0,
                cost: 0.0,
                success: false,
                violated: false,
            });
            self.emit(Event::EpisodeStarted(start));
            return;
        }
        let set = &kind.demo_sets()[0];
        // The same streams as episode `episode` of `ls3 collect` for this set.
        let env = (self.make_env)(kind, derive(self.seed, set.name, episode));
        let rng =
            StdRng::seed_from_u64(derive(self.seed, &format!("{}/teacher", set.name), episode));
        let mut policy = DemoPolicy::new(set, rng);
        let player = Player::start(env, &mut policy, set.steps, set.on_policy);
        let env = player.env();
        let state = env.state();
        let start = EpisodeStart {
            episode,
            kind,
            demonstrator: set.name,
            steps: set.steps,
            overlay: env.overlay(),
            frame: env.render(),
            marker: env.marker(&state),
            state,
        };
        self.live = Some(Live {
            episode,
            driver: Driver::Teacher {
                player: Box::new(player),
                policy: Box::new(policy),
            },
            steps: set.steps,
            t: 0,
            cost: 0.0,
            success: false,
            violated: false,
        });
        self.emit(Event::EpisodeStarted(start));
    }

    fn step(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let stepped = match &mut live.driver {
            Driver::Teacher { player, policy } => player
                .step(policy.as_mut())
                .map(|played| StepEvent {
                    episode: live.episode,
                    t: live.t + 1,
                    action: played.action,
                    marker: player.env().marker(&played.step.state),
                    frame: played.step.frame,
                    state: played.step.state,
                    reward: played.step.reward,
                    constraint: played.step.constraint,
                    plan: None,
                })
                .map_err(|e| format!("the demonstrator failed to act: {e:#}")),
            Driver::Agent {
                actor,
                agent,
                planner,
            } => actor
                .step(agent, self.planner.as_ref().unwrap_or(planner))
                .map(|s| StepEvent {
                    episode: live.episode,
                    t: live.t + 1,
                    action: actor.env().kind().clip_action(s.plan.action),
                    marker: actor.env().marker(&s.state),
                    frame: s.frame,
                    state: s.state,
                    reward: s.reward,
                    constraint: s.constraint,
                    plan: Some(Arc::new(PlanShot {
                        // A frame that cannot be decoded only leaves the plan view without it.
                        imagined: decode_frames(agent, &s.plan.latents).unwrap_or_default(),
                        record: s.plan,
                    })),
                })
                .map_err(|e| format!("the agent failed to act: {e:#}")),
        };
        let event = match stepped {
            Ok(event) => event,
            Err(message) => {
                self.live = None;
                self.emit(Event::Error(message));
                self.set_state(WorkerState::Paused);
                return;
            }
        };
        live.t += 1;
        live.cost -= event.reward;
        live.success |= event.reward == 0.0;
        live.violated |= event.constraint;
        let end = (live.t >= live.steps).then_some(EpisodeEnd {
            episode: live.episode,
            steps: live.t,
            cost: live.cost,
            success: live.success,
            violated: live.violated,
        });
        self.emit(Event::Step(event));
        if let Some(end) = end {
            self.emit(Event::EpisodeFinished(end));
            self.start_episode();
        }
    }
}
