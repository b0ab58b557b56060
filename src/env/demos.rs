//! Scripted demonstrators (LS3_SPEC §2): the demo sets of each environment, their teachers and
//! the noisy action a set stores. Playing a teacher for a labelled episode is
//! `data::demo::run_episode`.

use super::EnvKind;
pub use super::teacher::Teacher;
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

/// One published demonstration set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DemoSet {
    /// Folder name, as in the original code (e.g. `SimplePointBotConstraints`).
    pub name: &'static str,
    /// Published number of episodes.
    pub count: usize,
    /// Steps per episode (the env horizon unless the set says otherwise).
    pub steps: usize,
    /// Stored with `on_policy = 1` (task demos) or 0 (constraint / disturbance demos).
    pub on_policy: bool,
    /// Std of Gaussian action noise as a fraction of the action range (0.2 = "noisy teacher").
    pub noise: f32,
    /// Which teacher acts.
    pub teacher: TeacherKind,
    /// The first action of every episode is uniform in the action box (no teacher, no noise), as
    /// in the original's reacher collection. Navigation's task teacher draws its own.
    pub random_first: bool,
}

/// The teachers, one per demo set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeacherKind {
    NavigationTask,
    NavigationConstraint,
    ReacherTask,
    ReacherConstraint,
    ReacherInteraction,
    PushTask,
    PushOutburst,
}

impl TeacherKind {
    /// A fresh teacher of this kind.
    pub fn build(self) -> Box<dyn Teacher> {
        use super::{navigation as n, push as p, reacher as r};
        match self {
            TeacherKind::NavigationTask => Box::new(n::TaskTeacher),
            TeacherKind::NavigationConstraint => Box::new(n::ConstraintTeacher::default()),
            TeacherKind::ReacherTask => Box::new(r::TaskTeacher),
            TeacherKind::ReacherConstraint => Box::new(r::ConstraintTeacher::default()),
            TeacherKind::ReacherInteraction => Box::new(r::InteractionTeacher::default()),
            TeacherKind::PushTask => Box::new(p::TaskTeacher::default()),
            TeacherKind::PushOutburst => Box::new(p::OutburstTeacher::default()),
        }
    }
}

const fn set(
    name: &'static str,
    count: usize,
    steps: usize,
    on_policy: bool,
    noise: f32,
    teacher: TeacherKind,
) -> DemoSet {
    DemoSet {
        name,
        count,
        steps,
        on_policy,
        noise,
        teacher,
        random_first: false,
    }
}

/// A reacher set: the original starts every one with a uniformly random action.
const fn reacher_set(
    name: &'static str,
    count: usize,
    steps: usize,
    on_policy: bool,
    teacher: TeacherKind,
) -> DemoSet {
    DemoSet {
        random_first: true,
        ..set(name, count, steps, on_policy, 0.2, teacher)
    }
}

const NAVIGATION_SETS: [DemoSet; 2] = [
    set(
        "SimplePointBot",
        50,
        100,
        true,
        0.2,
        TeacherKind::NavigationTask,
    ),
    set(
        "SimplePointBotConstraints",
        50,
        100,
        false,
        0.2,
        TeacherKind::NavigationConstraint,
    ),
];
// the original collects every reacher set with the noisy teacher, the interactions too
const REACHER_SETS: [DemoSet; 3] = [
    reacher_set("Reacher", 50, 100, true, TeacherKind::ReacherTask),
    reacher_set(
        "ReacherConstraints",
        50,
        100,
        false,
        TeacherKind::ReacherConstraint,
    ),
    reacher_set(
        "ReacherInteractions",
        100,
        20,
        false,
        TeacherKind::ReacherInteraction,
    ),
];
const PUSH_SETS: [DemoSet; 2] = [
    set(
        "Push",
        500,
        150,
        true,
        super::push::TASK_NOISE,
        TeacherKind::PushTask,
    ),
    set(
        "PushOutbursts",
        300,
        150,
        false,
        0.0,
        TeacherKind::PushOutburst,
    ),
];

impl DemoSet {
    /// The action stored at step `t` of an episode of this set: the teacher's, plus noise of
    /// `noise` when the set is noisy, or a uniform one for a random first action; clipped.
    pub fn action(
        &self,
        kind: EnvKind,
        teacher: &mut dyn Teacher,
        t: usize,
        state: &[f64],
        noise: &Normal<f32>,
        rng: &mut StdRng,
    ) -> [f32; 2] {
        let mut a = teacher.act(t, state, rng);
        if t == 0 && self.random_first {
            let b = kind.action_bound();
            a = [rng.random_range(-b..=b), rng.random_range(-b..=b)];
        } else if self.noise > 0.0 {
            a = [a[0] + noise.sample(rng), a[1] + noise.sample(rng)];
        }
        kind.clip_action(a)
    }
}

impl EnvKind {
    /// The published demo sets of this environment.
    pub fn demo_sets(self) -> &'static [DemoSet] {
        match self {
            EnvKind::Navigation => &NAVIGATION_SETS,
            EnvKind::Reacher => &REACHER_SETS,
            EnvKind::Push => &PUSH_SETS,
        }
    }
}
