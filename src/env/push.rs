//! Sequential pushing (LS3_SPEC §2.3): a disc pusher moves three blocks, one after the other, out
//! of their row on a table into the bands |y| > 0.075, without pushing any block off the table.
//!
//! The scene is a 2-D top-down rigid-body simulation (rapier2d, no gravity in the plane). The
//! table is the floor, not a collider; its sliding friction is modelled as strong linear and
//! angular damping of the blocks, so a block stops within a few millimetres once the pusher lets
//! go. The pusher is a kinematic disc moved by the action over [`SUBSTEPS`] physics steps per env
//! step, so it cannot tunnel through a block. A block whose centre leaves the table has fallen:
//! it is taken out of the simulation, no longer drawn, and the constraint holds for the rest of
//! the episode.
//!
//! State layout (14 values, world units, +y up, angles in radians):
//! `[pusher_x, pusher_y, b0_x, b0_y, b0_angle, b1_x, b1_y, b1_angle, b2_x, b2_y, b2_angle,
//!   fallen0, fallen1, fallen2]` with `fallen_k` ∈ {0, 1}; a fallen block keeps the pose at
//! which it left the table.

use super::raster::{Frame, Painter, Shape, View};
use super::teacher::Teacher;
use super::{Env, EnvKind, Overlay, OverlayShape, Step};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rapier2d::prelude::{
    ColliderBuilder, IntegrationParameters, PhysicsWorld, RigidBodyBuilder, RigidBodyHandle, Vector,
};

/// Per-component action bound: the pusher moves at most this far along each axis per step.
pub const MAX_ACTION: f32 = 0.05;
/// Noise of the task teacher as a fraction of the action range (std 0.005 per component).
pub const TASK_NOISE: f32 = 0.05;

/// Half-extents of the table, centred at the origin.
pub const TABLE_HALF: [f64; 2] = [0.3, 0.2];
/// The pusher is clipped to `|x|, |y| ≤ WORKSPACE`, a little beyond the table edge.
pub const WORKSPACE: f64 = 0.35;
/// Half-side of the square blocks: 0.09 across, about 8 px and 68 visible pixels in a frame, like
/// the original's 0.08-wide boxes (LS3_SPEC §2.3 Amendments). The first version drew 0.04-wide
/// blocks of about 13 px that a VAE could leave out for 1.5e-3 of MSE.
pub const BLOCK_HALF: f64 = 0.045;
/// Block start positions: a row at y = −0.03, 0.02 apart (the spec's x ∈ {−0.05, 0, 0.05} would
/// overlap blocks of this size).
pub const BLOCK_START: [[f64; 2]; 3] = [[-0.11, -0.03], [0.0, -0.03], [0.11, -0.03]];
/// Radius of the pusher disc: about 27 visible pixels.
pub const PUSHER_RADIUS: f64 = 0.032;
/// Pusher start, behind the row of blocks.
pub const PUSHER_START: [f64; 2] = [0.0, 0.3];
/// A block is done when `|y| > DONE_Y` and `|x| < DONE_X`.
pub const DONE_Y: f64 = 0.075;
/// See [`DONE_Y`].
pub const DONE_X: f64 = 0.2;
/// Values in a state vector.
pub const STATE_LEN: usize = 14;
/// Physics steps per env step; the pusher advances at most 0.01 per axis in each.
pub const SUBSTEPS: usize = 5;

/// Simulated seconds per env step (the pusher's top speed is `MAX_ACTION / STEP_TIME`).
const STEP_TIME: f32 = 0.1;
/// Linear damping (1/s) standing in for table friction: once the pusher stops, a block pushed at
/// half speed slides on about 6 mm (about 1 cm at full speed).
const TABLE_LINEAR_DAMPING: f32 = 40.0;
/// Angular damping (1/s) from table friction.
const TABLE_ANGULAR_DAMPING: f32 = 40.0;
/// Contact friction between blocks and between the pusher and a block.
const CONTACT_FRICTION: f32 = 0.3;
/// Block density (mass per unit area); only ratios between dynamic bodies matter.
const BLOCK_DENSITY: f32 = 100.0;

const VIEW: View = View {
    x: (-WORKSPACE, WORKSPACE),
    y: (WORKSPACE, -WORKSPACE),
};
const BACKGROUND: [u8; 3] = [20, 20, 25];
/// A dark neutral table, so that the saturated blocks and the white pusher stand out from it and
/// from each other (the first version's brown table was close to the blocks' colours).
const TABLE_COLOR: [u8; 3] = [70, 70, 80];
/// Block colours: red, green, blue.
pub const BLOCK_COLORS: [[u8; 3]; 3] = [[235, 50, 50], [60, 220, 80], [70, 120, 255]];
const PUSHER_COLOR: [u8; 3] = [250, 250, 250];

/// True when the point lies on the table (centre inside the table rectangle).
pub fn on_table(p: [f64; 2]) -> bool {
    p[0].abs() <= TABLE_HALF[0] && p[1].abs() <= TABLE_HALF[1]
}

/// True when a block centred at `p` is in a done band.
pub fn block_done(p: [f64; 2]) -> bool {
    p[1].abs() > DONE_Y && p[0].abs() < DONE_X
}

/// Centre of block `k` in `state`.
pub fn block_position(state: &[f64], k: usize) -> [f64; 2] {
    [state[2 + 3 * k], state[3 + 3 * k]]
}

/// Whether block `k` has fallen in `state`.
fn fallen(state: &[f64], k: usize) -> bool {
    state[11 + k] > 0.5
}

/// The goal: every block is done and none has fallen.
pub fn all_done(state: &[f64]) -> bool {
    (0..3).all(|k| !fallen(state, k) && block_done(block_position(state, k)))
}

/// The constraint: some block has left the table.
pub fn any_fallen(state: &[f64]) -> bool {
    (0..3).any(|k| fallen(state, k))
}

/// The start state: pusher behind the row, blocks square in their row.
pub fn start_state() -> Vec<f64> {
    let mut s = vec![0.0; STATE_LEN];
    s[..2].copy_from_slice(&PUSHER_START);
    for (k, p) in BLOCK_START.iter().enumerate() {
        s[2 + 3 * k] = p[0];
        s[3 + 3 * k] = p[1];
    }
    s
}

fn vec2(p: [f64; 2]) -> Vector {
    Vector::new(p[0] as f32, p[1] as f32)
}

/// The pushing simulator.
pub struct Push {
    world: PhysicsWorld,
    pusher: RigidBodyHandle,
    blocks: [RigidBodyHandle; 3],
    /// Commanded pusher position, kept exact (the physics runs in f32).
    pusher_pos: [f64; 2],
    fallen: [bool; 3],
    rng: StdRng,
}

impl Push {
    /// A pushing env in the start state; `seed` feeds its random stream.
    pub fn new(seed: u64) -> Self {
        let start = start_state();
        let (world, pusher, blocks) = build_world(&start);
        Self {
            world,
            pusher,
            blocks,
            pusher_pos: PUSHER_START,
            fallen: [false; 3],
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Takes blocks whose centre left the table out of the simulation.
    fn drop_fallen_blocks(&mut self) {
        for k in 0..3 {
            let body = &mut self.world.bodies[self.blocks[k]];
            let t = body.translation();
            if !self.fallen[k] && !on_table([t.x as f64, t.y as f64]) {
                self.fallen[k] = true;
                body.set_linvel(Vector::ZERO, false);
                body.set_angvel(0.0, false);
                body.set_enabled(false);
            }
        }
    }
}

/// A fresh world in `state` with all velocities zero.
fn build_world(state: &[f64]) -> (PhysicsWorld, RigidBodyHandle, [RigidBodyHandle; 3]) {
    let mut world = PhysicsWorld {
        gravity: Vector::ZERO,
        integration_parameters: IntegrationParameters {
            dt: STEP_TIME / SUBSTEPS as f32,
            // the scene is a few centimetres across: scale rapier's tolerances accordingly
            length_unit: 0.05,
            ..IntegrationParameters::default()
        },
        ..PhysicsWorld::default()
    };
    let (pusher, _) = world.insert(
        RigidBodyBuilder::kinematic_position_based().translation(vec2([state[0], state[1]])),
        ColliderBuilder::ball(PUSHER_RADIUS as f32).friction(CONTACT_FRICTION),
    );
    let blocks = std::array::from_fn(|k| {
        let p = block_position(state, k);
        let (handle, _) = world.insert(
            RigidBodyBuilder::dynamic()
                .translation(vec2(p))
                .rotation(state[4 + 3 * k] as f32)
                .linear_damping(TABLE_LINEAR_DAMPING)
                .angular_damping(TABLE_ANGULAR_DAMPING)
                .can_sleep(false),
            ColliderBuilder::cuboid(BLOCK_HALF as f32, BLOCK_HALF as f32)
                .density(BLOCK_DENSITY)
                .friction(CONTACT_FRICTION),
        );
        if fallen(state, k) {
            world.bodies[handle].set_enabled(false);
        }
        handle
    });
    (world, pusher, blocks)
}

impl Env for Push {
    fn kind(&self) -> EnvKind {
        EnvKind::Push
    }

    fn reset(&mut self) -> Frame {
        self.set_state(&start_state());
        self.render()
    }

    fn step(&mut self, action: [f32; 2]) -> Step {
        let a = EnvKind::Push.clip_action(action);
        let from = self.pusher_pos;
        let to = [
            (from[0] + a[0] as f64).clamp(-WORKSPACE, WORKSPACE),
            (from[1] + a[1] as f64).clamp(-WORKSPACE, WORKSPACE),
        ];
        for i in 1..=SUBSTEPS {
            let f = i as f64 / SUBSTEPS as f64;
            let p = [
                from[0] + f * (to[0] - from[0]),
                from[1] + f * (to[1] - from[1]),
            ];
            self.world.bodies[self.pusher].set_next_kinematic_translation(vec2(p));
            self.world.step();
        }
        self.pusher_pos = to;
        self.drop_fallen_blocks();
        let state = self.state();
        Step {
            frame: self.render_state(&state),
            reward: if all_done(&state) { 0.0 } else { -1.0 },
            constraint: any_fallen(&state),
            state,
        }
    }

    fn state(&self) -> Vec<f64> {
        let mut s = Vec::with_capacity(STATE_LEN);
        s.extend_from_slice(&self.pusher_pos);
        for &h in &self.blocks {
            let body = &self.world.bodies[h];
            let t = body.translation();
            s.extend_from_slice(&[t.x as f64, t.y as f64, body.rotation().angle() as f64]);
        }
        s.extend(self.fallen.iter().map(|&f| if f { 1.0 } else { 0.0 }));
        s
    }

    fn set_state(&mut self, state: &[f64]) {
        assert_eq!(
            state.len(),
            STATE_LEN,
            "a push state has {STATE_LEN} values"
        );
        let (world, pusher, blocks) = build_world(state);
        self.world = world;
        self.pusher = pusher;
        self.blocks = blocks;
        self.pusher_pos = [state[0], state[1]];
        self.fallen = std::array::from_fn(|k| fallen(state, k));
    }

    fn render_state(&self, state: &[f64]) -> Frame {
        let mut p = Painter::new(VIEW, BACKGROUND);
        p.fill(
            &Shape::Rect {
                min: [-TABLE_HALF[0], -TABLE_HALF[1]],
                max: TABLE_HALF,
            },
            TABLE_COLOR,
        );
        for (k, color) in BLOCK_COLORS.iter().enumerate() {
            if !fallen(state, k) {
                p.fill(
                    &Shape::OrientedBox {
                        center: block_position(state, k),
                        half: [BLOCK_HALF, BLOCK_HALF],
                        angle: state[4 + 3 * k],
                    },
                    *color,
                );
            }
        }
        p.fill(
            &Shape::Circle {
                center: [state[0], state[1]],
                radius: PUSHER_RADIUS,
            },
            PUSHER_COLOR,
        );
        p.finish()
    }

    fn marker(&self, state: &[f64]) -> [f32; 2] {
        VIEW.to_image([state[0], state[1]])
    }

    /// The blocks' centres.
    fn objects(&self, state: &[f64]) -> Vec<[f32; 2]> {
        (0..3)
            .map(|k| VIEW.to_image(block_position(state, k)))
            .collect()
    }

    /// Hazards: four thin strips just outside the table edge (a block centre crossing one has
    /// fallen). Goals: the two done bands on the table.
    fn overlay(&self) -> Overlay {
        let [hx, hy] = TABLE_HALF;
        let w = 0.015;
        let rect = |min: [f64; 2], max: [f64; 2]| {
            let (a, b) = (VIEW.to_image(min), VIEW.to_image(max));
            OverlayShape::Rect {
                min: [a[0].min(b[0]), a[1].min(b[1])],
                max: [a[0].max(b[0]), a[1].max(b[1])],
            }
        };
        Overlay {
            hazards: vec![
                rect([-hx - w, hy], [hx + w, hy + w]),
                rect([-hx - w, -hy - w], [hx + w, -hy]),
                rect([-hx - w, -hy], [-hx, hy]),
                rect([hx, -hy], [hx + w, hy]),
            ],
            goals: vec![
                rect([-DONE_X, DONE_Y], [DONE_X, hy]),
                rect([-DONE_X, -hy], [DONE_X, -DONE_Y]),
            ],
        }
    }

    fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }
}

/// Moves toward `target`, each component clipped to the action bound.
fn toward(target: [f64; 2], s: &[f64]) -> [f32; 2] {
    let b = MAX_ACTION as f64;
    [
        (target[0] - s[0]).clamp(-b, b) as f32,
        (target[1] - s[1]).clamp(-b, b) as f32,
    ]
}

/// Height above a block's centre from which the pusher can line up without touching any block.
const CLEAR: f64 = BLOCK_HALF + PUSHER_RADIUS + 0.02;
/// A block counts as pushed out once `y ≤ −PUSHED_Y`.
const PUSHED_Y: f64 = 0.1;
/// Pusher speed while in contact with a block.
const PUSH_SPEED: f64 = 0.025;
/// Line-up tolerance per axis before pushing starts.
const ALIGN_TOL: f64 = 0.006;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// Go behind the block (larger y) and line up with it in x.
    #[default]
    LineUp,
    /// Push it in −y, keeping x on its centre.
    Push,
    /// Back up in +y until clear of the row.
    BackUp,
}

/// Task teacher: for blocks 0, 1, 2 in turn, line up behind the block, push it in −y until
/// its y ≤ −0.1, back up clear of the row, go to the next. Decides from the ground-truth state.
#[derive(Default)]
pub struct TaskTeacher {
    block: usize,
    phase: Phase,
    /// Pusher x when the push started: the free column to back up through.
    lane_x: f64,
}

impl TaskTeacher {
    /// The action in state `s`, or `None` after a phase change (decide again from the same state).
    fn decide(&mut self, s: &[f64]) -> Option<[f32; 2]> {
        while self.block < 3 && fallen(s, self.block) {
            self.block += 1;
        }
        let clear_y = BLOCK_START[0][1] + CLEAR;
        if self.block >= 3 {
            // all pushed: wait behind where the row was
            return Some(toward([s[0], clear_y], s));
        }
        let b = block_position(s, self.block);
        match self.phase {
            Phase::LineUp if b[1] <= -PUSHED_Y => {
                // already out of the row (knocked there by an earlier push)
                self.phase = Phase::BackUp;
                self.lane_x = s[0];
                None
            }
            Phase::LineUp => {
                let target = [b[0], b[1] + CLEAR];
                let off_x = (target[0] - s[0]).abs() >= ALIGN_TOL;
                if !off_x && (target[1] - s[1]).abs() < ALIGN_TOL {
                    self.phase = Phase::Push;
                    self.lane_x = s[0];
                    return None;
                }
                // travel sideways only above the row
                let y = if off_x {
                    target[1].max(s[1]).max(clear_y)
                } else {
                    target[1]
                };
                Some(toward([target[0], y], s))
            }
            Phase::Push if b[1] <= -PUSHED_Y => {
                self.phase = Phase::BackUp;
                None
            }
            Phase::Push => {
                let dx = (b[0] - s[0]).clamp(-PUSH_SPEED, PUSH_SPEED);
                Some([dx as f32, -PUSH_SPEED as f32])
            }
            Phase::BackUp if s[1] >= clear_y - ALIGN_TOL => {
                self.block += 1;
                self.phase = Phase::LineUp;
                None
            }
            Phase::BackUp => {
                // back to the pushed block's lane first: beside it the other blocks still stand
                let x_done = (s[0] - self.lane_x).abs() < ALIGN_TOL;
                Some(toward(
                    [self.lane_x, if x_done { clear_y } else { s[1] }],
                    s,
                ))
            }
        }
    }
}

impl Teacher for TaskTeacher {
    fn act(&mut self, _t: usize, s: &[f64], _rng: &mut StdRng) -> [f32; 2] {
        // each phase change moves forward (or to the next block), so this ends
        loop {
            if let Some(a) = self.decide(s) {
                return a;
            }
        }
    }
}

/// Probability per step that a burst of random actions starts.
const BURST_START: f64 = 0.2;
/// Probability per step that a burst ends.
const BURST_END: f64 = 0.1;
/// The drift between bursts, per step: straight down the table, as in the original.
pub const DRIFT: [f32; 2] = [0.0, -0.02];

/// Disturbance teacher: between bursts the pusher drifts by the constant [`DRIFT`] (from its
/// start behind the middle block that runs into the row and, unless a burst moved it aside,
/// pushes a block off the near edge); bursts of uniform random actions start with p = 0.2 per
/// step and end with p = 0.1.
#[derive(Default)]
pub struct OutburstTeacher {
    bursting: bool,
}

impl Teacher for OutburstTeacher {
    fn begin(&mut self, _env: &mut dyn Env, _rng: &mut StdRng) {
        self.bursting = false;
    }

    fn act(&mut self, _t: usize, _s: &[f64], rng: &mut StdRng) -> [f32; 2] {
        self.bursting = if self.bursting {
            !rng.random_bool(BURST_END)
        } else {
            rng.random_bool(BURST_START)
        };
        if self.bursting {
            [
                rng.random_range(-MAX_ACTION..=MAX_ACTION),
                rng.random_range(-MAX_ACTION..=MAX_ACTION),
            ]
        } else {
            DRIFT
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_pusher_moves_block_zero_into_the_done_band() {
        let mut env = Push::new(0);
        env.reset();
        let mut teacher = TaskTeacher::default();
        let mut rng = StdRng::seed_from_u64(0);
        let mut s = env.state();
        for t in 0..60 {
            let a = teacher.act(t, &s, &mut rng);
            s = env.step(a).state;
        }
        assert!(
            block_done(block_position(&s, 0)),
            "block 0 at {:?}",
            block_position(&s, 0)
        );
        assert!(!any_fallen(&s));
    }

    #[test]
    fn block_pushed_over_the_edge_sets_the_constraint_for_good() {
        let mut env = Push::new(1);
        env.reset();
        let mut s = start_state();
        s[1] = BLOCK_START[1][1] + BLOCK_HALF + PUSHER_RADIUS + 0.005;
        env.set_state(&s);
        let mut fell_at = None;
        for t in 0..40 {
            let step = env.step([0.0, -0.02]);
            if step.constraint && fell_at.is_none() {
                fell_at = Some(t);
                assert!(fallen(&step.state, 1) && !fallen(&step.state, 0));
                assert!(!on_table(block_position(&step.state, 1)));
            }
            if fell_at.is_some() {
                assert!(step.constraint, "constraint cleared at step {t}");
                assert_eq!(step.reward, -1.0);
            }
        }
        assert!(fell_at.is_some(), "block 1 never left the table");
        // moving away does not undo it, and the fallen block is no longer drawn
        for _ in 0..10 {
            assert!(env.step([0.05, 0.05]).constraint);
        }
        let f = env.render();
        let [x, y] = VIEW.to_image(block_position(&env.state(), 1));
        let (x, y) = ((x as usize).min(63), (y as usize).min(63));
        assert_ne!(f.pixel(x, y), BLOCK_COLORS[1]);
    }

    /// Pixels of `with` that differ from `without` by more than half of `color`'s contrast with
    /// the table: what a VAE must draw to show the object.
    fn visible_pixels(with: &Frame, without: &Frame, color: [u8; 3]) -> usize {
        let full: i32 = (0..3)
            .map(|c| (color[c] as i32 - TABLE_COLOR[c] as i32).abs())
            .sum();
        (0..64 * 64)
            .filter(|&i| {
                let (a, b) = (with.pixel(i % 64, i / 64), without.pixel(i % 64, i / 64));
                let d: i32 = (0..3).map(|c| (a[c] as i32 - b[c] as i32).abs()).sum();
                2 * d > full
            })
            .count()
    }

    #[test]
    fn blocks_and_pusher_are_as_visible_as_in_the_original() {
        let env = Push::new(0);
        let start = start_state();
        // everything off the table's area and fallen: the bare table
        let mut bare = start.clone();
        bare[..2].copy_from_slice(&[-WORKSPACE, -WORKSPACE]);
        bare[11..].copy_from_slice(&[1.0; 3]);
        let bare = env.render_state(&bare);
        for (k, &color) in BLOCK_COLORS.iter().enumerate() {
            let mut one = start.clone();
            one[..2].copy_from_slice(&[-WORKSPACE, -WORKSPACE]);
            for j in (0..3).filter(|&j| j != k) {
                one[11 + j] = 1.0;
            }
            let n = visible_pixels(&env.render_state(&one), &bare, color);
            assert!(n >= 50, "block {k} shows {n} px");
        }
        let mut pusher = start.clone();
        pusher[11..].copy_from_slice(&[1.0; 3]);
        let n = visible_pixels(&env.render_state(&pusher), &bare, PUSHER_COLOR);
        assert!(n >= 20, "pusher shows {n} px");
    }

    #[test]
    fn object_colours_contrast_with_the_table_and_each_other() {
        // mean squared channel difference in [0, 1] units; the first version's red block on its
        // brown table scored 0.066
        let dist = |a: [u8; 3], b: [u8; 3]| {
            (0..3)
                .map(|c| ((a[c] as f64 - b[c] as f64) / 255.0).powi(2))
                .sum::<f64>()
                / 3.0
        };
        let objects = [
            BLOCK_COLORS[0],
            BLOCK_COLORS[1],
            BLOCK_COLORS[2],
            PUSHER_COLOR,
        ];
        for (i, &a) in objects.iter().enumerate() {
            assert!(dist(a, TABLE_COLOR) >= 0.1, "object {i} vs table");
            for (j, &b) in objects.iter().enumerate().skip(i + 1) {
                assert!(dist(a, b) >= 0.1, "object {i} vs object {j}");
            }
        }
    }

    #[test]
    fn the_row_starts_apart_on_the_table_and_not_done() {
        let s = start_state();
        for k in 0..3 {
            let p = block_position(&s, k);
            assert!(on_table(p) && !block_done(p));
            if k > 0 {
                let gap = p[0] - block_position(&s, k - 1)[0] - 2.0 * BLOCK_HALF;
                assert!(gap > 0.0, "blocks {} and {k} overlap", k - 1);
            }
            assert!(PUSHER_START[1] - PUSHER_RADIUS > p[1] + BLOCK_HALF);
        }
        assert!(!all_done(&s) && !any_fallen(&s));
    }

    #[test]
    fn outburst_teacher_drifts_straight_down_between_random_bursts() {
        let mut teacher = OutburstTeacher::default();
        let mut env = Push::new(4);
        let mut rng = StdRng::seed_from_u64(4);
        teacher.begin(&mut env, &mut rng);
        let s = start_state();
        let actions: Vec<_> = (0..3000).map(|t| teacher.act(t, &s, &mut rng)).collect();
        let drifting = actions.iter().filter(|&&a| a == DRIFT).count() as f64 / 3000.0;
        // bursts start with p 0.2 and end with p 0.1: a third of the steps drift
        assert!((0.25..0.42).contains(&drifting), "drift share {drifting}");
        let bursts: Vec<_> = actions.iter().filter(|&&a| a != DRIFT).collect();
        assert!(
            bursts
                .iter()
                .all(|a| a.iter().all(|v| v.abs() <= MAX_ACTION))
        );
        let mean_x = bursts.iter().map(|a| a[0] as f64).sum::<f64>() / bursts.len() as f64;
        assert!(mean_x.abs() < 0.005, "bursts are uniform, mean x {mean_x}");
    }

    #[test]
    fn pusher_moves_at_most_the_action_bound_and_stays_in_the_workspace() {
        let mut env = Push::new(2);
        env.reset();
        // actions are f32, so positions match to f32 precision
        let s = env.step([1.0, -1.0]).state;
        assert!(
            (s[0] - 0.05).abs() < 1e-6 && (s[1] - 0.25).abs() < 1e-6,
            "{s:?}"
        );
        let s = env.step([0.01, 0.02]).state;
        assert!(
            (s[0] - 0.06).abs() < 1e-6 && (s[1] - 0.27).abs() < 1e-6,
            "{s:?}"
        );
        for _ in 0..20 {
            env.step([0.05, 0.05]);
        }
        assert_eq!(&env.state()[..2], &[WORKSPACE, WORKSPACE]);
        for _ in 0..20 {
            env.step([-0.05, -0.05]);
        }
        assert_eq!(&env.state()[..2], &[-WORKSPACE, -WORKSPACE]);
    }

    #[test]
    fn same_seed_and_actions_give_identical_states() {
        let run = |seed: u64| {
            let mut env = Push::new(seed);
            env.reset();
            let mut rng = StdRng::seed_from_u64(seed);
            (0..150)
                .map(|_| {
                    let a = [
                        rng.random_range(-MAX_ACTION..=MAX_ACTION),
                        rng.random_range(-MAX_ACTION..=MAX_ACTION) - 0.01,
                    ];
                    env.step(a).state
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn set_state_round_trips_and_render_shows_blocks_where_they_are() {
        let mut env = Push::new(3);
        let s = vec![
            0.1, 0.15, -0.2, 0.1, 0.3, 0.0, -0.12, -0.5, 0.15, 0.0, 1.0, 0.0, 0.0, 0.0,
        ];
        env.set_state(&s);
        let back = env.state();
        for (a, b) in s.iter().zip(&back) {
            assert!((a - b).abs() < 1e-6, "{s:?} vs {back:?}");
        }
        let f = env.render();
        assert_eq!(f, env.render_state(&s));
        for (k, color) in BLOCK_COLORS.iter().enumerate() {
            let [x, y] = VIEW.to_image(block_position(&s, k));
            let near = (-1..=1)
                .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
                .any(|(dx, dy)| {
                    f.pixel((x as i32 + dx) as usize, (y as i32 + dy) as usize) == *color
                });
            assert!(near, "block {k} colour not found near ({x}, {y})");
        }
        let m = env.marker(&s);
        assert_eq!(f.pixel(m[0] as usize, m[1] as usize), PUSHER_COLOR);
        // a fallen flag survives the round trip and hides the block
        let mut s2 = s.clone();
        s2[12] = 1.0;
        env.set_state(&s2);
        assert_eq!(env.state()[12], 1.0);
        assert!(env.step([0.0, 0.0]).constraint);
    }
}
