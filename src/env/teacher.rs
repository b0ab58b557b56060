//! The scripted demonstrators' common interface; each environment implements its teachers, and
//! [`super::demos`] names which teacher plays which demo set.

use super::Env;
use rand::rngs::StdRng;

/// A scripted policy. `begin` runs after `env.reset()` and may move the env to another start.
pub trait Teacher {
    /// Prepares an episode; may call `env.set_state` for a random start.
    fn begin(&mut self, _env: &mut dyn Env, _rng: &mut StdRng) {}
    /// The action at step `t` in ground-truth `state` (before noise).
    fn act(&mut self, t: usize, state: &[f64], rng: &mut StdRng) -> [f32; 2];
}
