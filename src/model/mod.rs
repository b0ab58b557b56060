//! Models (LS3_SPEC §3) in candle: the convolutional VAE and the five latent modules.
//!
//! Parameter names follow the PyTorch state dicts of the original implementation
//! (`encoder.encoder.0.weight`, `models.3.delta_network.model.2.bias`, …), so importing a `.pth`
//! and loading our own `.safetensors` checkpoints are the same code path.

pub mod agent;
pub mod checkpoint;
pub mod classifier;
pub mod conv;
pub mod dynamics;
pub mod init;
pub mod mlp;
pub mod probe;
pub mod rng;
pub mod torch;
pub mod vae;
pub mod value;

/// Size of the latent space.
pub const LATENT: usize = 32;
/// Size of an action.
pub const ACTION: usize = 2;

pub use candle_core::{Device, Tensor};

/// The largest absolute element-wise difference of two tensors of one shape, as `f32`: what
/// the parity tests of the models compare against their tolerance.
#[doc(hidden)]
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> candle_core::Result<f32> {
    if a.dims() != b.dims() {
        candle_core::bail!("max_abs_diff: shapes {:?} and {:?}", a.dims(), b.dims())
    }
    (a - b)?
        .abs()?
        .max_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_scalar::<f32>()
}

/// The device every tensor lives on: the first CUDA GPU when built with the `cuda` feature and one
/// is present, else the CPU.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    Device::Cpu
}
