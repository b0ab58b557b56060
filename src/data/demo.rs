//! One labelled demo episode (LS3_SPEC §2): a demo set's teacher played by the episode player.

use super::episode::Episode;
use super::player::{DemoPolicy, Player};
use crate::env::Env;
use crate::env::demos::{DemoSet, Teacher};
use rand::rngs::StdRng;

/// Runs one demo episode of `set` in `env` and returns it labelled. Teacher randomness and action
/// noise come from `rng`; simulator noise from the env's own stream.
pub fn run_episode(env: &mut dyn Env, set: &DemoSet, rng: StdRng) -> Episode {
    play(env, DemoPolicy::new(set, rng), set)
}

/// [`run_episode`] with another teacher than the set's own (e.g. one with other start rules).
pub fn run_episode_with(
    env: &mut dyn Env,
    set: &DemoSet,
    teacher: Box<dyn Teacher>,
    rng: StdRng,
) -> Episode {
    play(env, DemoPolicy::with_teacher(set, teacher, rng), set)
}

fn play(env: &mut dyn Env, mut policy: DemoPolicy, set: &DemoSet) -> Episode {
    Player::play(env, &mut policy, set.steps, set.on_policy).expect("a teacher always acts")
}

#[cfg(test)]
mod tests {
    //! What each environment's demo sets look like when played: success and violation rates,
    //! determinism, and the teachers' start rules.

    mod navigation {
        use crate::data::collect::demo_episode;
        use crate::env::EnvKind;

        fn demo_rates(set: usize, episodes: usize) -> (f64, f64) {
            let set = &EnvKind::Navigation.demo_sets()[set];
            let (mut success, mut violated) = (0, 0);
            for i in 0..episodes {
                let ep = demo_episode(EnvKind::Navigation, set, 11, i);
                assert_eq!(ep.len(), 100);
                success += ep.success() as usize;
                violated += ep.violated() as usize;
            }
            (
                success as f64 / episodes as f64,
                violated as f64 / episodes as f64,
            )
        }

        #[test]
        fn task_demos_reach_the_goal_safely() {
            let (success, violated) = demo_rates(0, 50);
            assert!(success >= 0.9, "task demo success {success}");
            assert!(
                violated <= 0.1,
                "task demos violated in {violated} of episodes"
            );
        }

        #[test]
        fn constraint_demos_mostly_enter_the_wall() {
            let (_, violated) = demo_rates(1, 50);
            assert!(
                violated > 0.7,
                "constraint demos violated in only {violated} of episodes"
            );
        }
    }

    mod reacher {
        use super::super::{run_episode, run_episode_with};
        use crate::env::EnvKind;
        use crate::env::demos::Teacher;
        use crate::env::reacher::{
            ConstraintTeacher, InteractionTeacher, Reacher, START, StartRule,
        };
        use rand::SeedableRng;
        use rand::rngs::StdRng;
        use std::f64::consts::PI;

        #[test]
        fn same_seed_same_episode() {
            let set = EnvKind::Reacher.demo_sets()[2];
            let run = |seed| {
                let mut env = Reacher::new(seed);
                let rng = StdRng::seed_from_u64(seed);
                let ep = run_episode(&mut env, &set, rng);
                (
                    ep.start_state,
                    ep.obs,
                    ep.transitions.last().unwrap().state.clone(),
                )
            };
            assert_eq!(run(9), run(9));
            assert_ne!(run(9), run(10));
        }

        /// Runs `episodes` demos of set `index` (seeds 0..episodes) and returns the fraction that
        /// reached the goal and the fraction that violated the constraint.
        fn demo_rates(index: usize, episodes: u64) -> (f64, f64) {
            let set = EnvKind::Reacher.demo_sets()[index];
            let (mut success, mut violated) = (0, 0);
            for seed in 0..episodes {
                let mut env = Reacher::new(seed);
                let rng = StdRng::seed_from_u64(1000 + seed);
                let ep = run_episode(&mut env, &set, rng);
                success += ep.transitions.iter().any(|t| t.reward == 0.0) as usize;
                violated += ep.transitions.iter().any(|t| t.constraint) as usize;
            }
            let n = episodes as f64;
            (success as f64 / n, violated as f64 / n)
        }

        #[test]
        fn task_demos_mostly_reach_the_target() {
            let (success, violated) = demo_rates(0, 40);
            eprintln!("task demos: success {success}, violation {violated}");
            assert!(success >= 0.8, "success rate {success}");
        }

        #[test]
        fn constraint_demos_mostly_violate() {
            let (_, violated) = demo_rates(1, 40);
            eprintln!("constraint demos: violation {violated}");
            assert!(violated > 0.5, "violation rate {violated}");
        }

        #[test]
        fn interaction_demos_are_twenty_step_noisy_random_walks_from_random_starts() {
            let set = EnvKind::Reacher.demo_sets()[2];
            assert!(set.noise > 0.0 && set.random_first);
            let mut starts = vec![];
            for seed in 0..10 {
                let mut env = Reacher::new(seed);
                let rng = StdRng::seed_from_u64(2000 + seed);
                let ep = run_episode(&mut env, &set, rng);
                assert_eq!(ep.transitions.len(), 20);
                let start = ep.start_state.unwrap();
                assert!(start[0].abs() <= PI && start[1].abs() <= 0.85 * PI);
                starts.push(start);
            }
            starts.dedup();
            assert_eq!(starts.len(), 10);
            // the fixed rule starts every episode at the start pose
            let mut env = Reacher::new(0);
            let rng = StdRng::seed_from_u64(0);
            let teacher = Box::new(InteractionTeacher::new(StartRule::Fixed));
            let ep = run_episode_with(&mut env, &set, teacher, rng);
            assert_eq!(ep.start_state.unwrap(), vec![START[0], START[1], 0.0, 0.0]);
        }

        #[test]
        fn the_first_demo_action_is_uniformly_random() {
            // The task teacher's first action from the start would be clip((π, 0) − start) =
            // (1, −1); random first actions spread over the whole box instead.
            let set = EnvKind::Reacher.demo_sets()[0];
            let firsts: Vec<[f32; 2]> = (0..40)
                .map(|seed| {
                    let mut env = Reacher::new(seed);
                    let rng = StdRng::seed_from_u64(seed);
                    run_episode(&mut env, &set, rng).transitions[0].action
                })
                .collect();
            for j in 0..2 {
                let mean = firsts.iter().map(|a| a[j]).sum::<f32>() / 40.0;
                assert!(mean.abs() < 0.3, "action {j} mean {mean}");
                assert!(firsts.iter().any(|a| a[j] > 0.5) && firsts.iter().any(|a| a[j] < -0.5));
            }
        }

        /// Success, violation and constraint-positive share of transitions of a teacher's episodes
        /// under a start rule, for the README's comparison of the two rules.
        fn rates_with(set: usize, start: StartRule, episodes: u64) -> (f64, f64, f64) {
            let mut spec = EnvKind::Reacher.demo_sets()[set];
            spec.count = episodes as usize;
            let (mut success, mut violated, mut positive, mut steps) = (0, 0, 0, 0);
            for seed in 0..episodes {
                let mut env = Reacher::new(seed);
                let rng = StdRng::seed_from_u64(3000 + seed);
                let teacher: Box<dyn Teacher> = match set {
                    1 => Box::new(ConstraintTeacher { start }),
                    _ => Box::new(InteractionTeacher::new(start)),
                };
                let ep = run_episode_with(&mut env, &spec, teacher, rng);
                success += ep.transitions.iter().any(|t| t.reward == 0.0) as usize;
                violated += ep.transitions.iter().any(|t| t.constraint) as usize;
                positive += ep.transitions.iter().filter(|t| t.constraint).count();
                steps += ep.transitions.len();
            }
            let n = episodes as f64;
            (
                success as f64 / n,
                violated as f64 / n,
                positive as f64 / steps as f64,
            )
        }

        #[test]
        fn start_rules_compared() {
            for (set, name) in [(1, "constraint"), (2, "interaction")] {
                let fixed = rates_with(set, StartRule::Fixed, 40);
                let random = rates_with(set, StartRule::Random, 40);
                eprintln!(
                    "{name} demos (success, violating episodes, constraint-positive steps): \
                     fixed {fixed:.3?}, random {random:.3?}"
                );
                if set == 1 {
                    // from either start the constraint teacher reaches the obstacle
                    assert!(fixed.1 > 0.5 && random.1 > 0.5, "{fixed:?} {random:?}");
                }
            }
        }
    }

    mod push {
        use crate::data::collect::demo_episode;
        use crate::env::EnvKind;

        /// Fractions of `episodes` demos of `set` that reached the goal and that violated.
        fn demo_rates(set: usize, episodes: usize) -> (f64, f64) {
            let set = &EnvKind::Push.demo_sets()[set];
            let (mut success, mut violated) = (0, 0);
            for i in 0..episodes {
                let ep = demo_episode(EnvKind::Push, set, 11, i);
                assert_eq!(ep.len(), EnvKind::Push.horizon());
                success += ep.success() as usize;
                violated += ep.violated() as usize;
            }
            let n = episodes as f64;
            (success as f64 / n, violated as f64 / n)
        }

        #[test]
        fn task_demos_clear_all_three_blocks_safely() {
            let (success, violated) = demo_rates(0, 30);
            assert!(success >= 0.9, "task demo success {success}");
            assert!(
                violated <= 0.05,
                "task demos violated in {violated} of episodes"
            );
        }

        #[test]
        fn outburst_demos_often_push_blocks_off_the_table() {
            let (_, violated) = demo_rates(1, 30);
            assert!(
                violated >= 0.2,
                "outburst demos violated in {violated} of episodes"
            );
        }
    }
}
