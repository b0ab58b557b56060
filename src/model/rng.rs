//! Seeded random tensors. candle's CPU generator cannot be seeded, so every random number the
//! models use (initial weights, reparameterisation noise, planner samples) is drawn here from a
//! ChaCha12 generator (rand's `StdRng`, named so its position can be saved and restored) derived
//! from the run's seed, then uploaded.

use candle_core::{Device, Result, Shape, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rand_distr::{Distribution, StandardNormal};

/// A seeded source of random tensors.
pub struct TensorRng {
    rng: ChaCha12Rng,
}

impl TensorRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha12Rng::seed_from_u64(seed),
        }
    }

    /// Standard-normal samples of `shape`.
    pub fn normal(&mut self, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let v: Vec<f32> = (0..shape.elem_count())
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect();
        Tensor::from_vec(v, shape, device)
    }

    /// Uniform samples in `[lo, hi)` of `shape`.
    pub fn uniform(
        &mut self,
        shape: impl Into<Shape>,
        lo: f32,
        hi: f32,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let v: Vec<f32> = (0..shape.elem_count())
            .map(|_| self.rng.random_range(lo..hi))
            .collect();
        Tensor::from_vec(v, shape, device)
    }

    /// The underlying generator (for index sampling and the like).
    pub fn rng(&mut self) -> &mut ChaCha12Rng {
        &mut self.rng
    }

    /// How far the stream has been read (in 32-bit words), for saving a run's training state.
    pub fn position(&self) -> u128 {
        self.rng.get_word_pos()
    }

    /// Moves the stream to `position` (from [`position`](Self::position)) on the same seed.
    pub fn set_position(&mut self, position: u128) {
        self.rng.set_word_pos(position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_std_rngs_and_a_restored_position_continues_it() {
        let mut ours = TensorRng::new(42);
        let mut std = rand::rngs::StdRng::seed_from_u64(42);
        let a: Vec<u32> = (0..11).map(|_| ours.rng().random()).collect();
        let b: Vec<u32> = (0..11).map(|_| std.random()).collect();
        assert_eq!(a, b, "runs seeded before keep their random numbers");
        ours.normal(7, &Device::Cpu).unwrap();
        let pos = ours.position();
        let next = |r: &mut TensorRng| -> Vec<f32> {
            let t = r.uniform(5, 0.0, 1.0, &Device::Cpu).unwrap();
            t.to_vec1().unwrap()
        };
        let want = next(&mut ours);
        let mut again = TensorRng::new(42);
        again.set_position(pos);
        assert_eq!(next(&mut again), want);
    }
}
