//! Seeded random tensors. candle's CPU generator cannot be seeded, so every random number the
//! models use (initial weights, reparameterisation noise, planner samples) is drawn here from a
//! `StdRng` derived from the run's seed, then uploaded.

use candle_core::{Device, Result, Shape, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// A seeded source of random tensors.
pub struct TensorRng {
    rng: StdRng,
}

impl TensorRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
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
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }
}
