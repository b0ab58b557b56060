//! Models (LS3_SPEC §3) in candle: the convolutional VAE and the five latent modules.
//!
//! Parameter names follow the PyTorch state dicts of the original implementation
//! (`encoder.encoder.0.weight`, `models.3.delta_network.model.2.bias`, …), so importing a `.pth`
//! and loading our own `.safetensors` checkpoints are the same code path.

pub mod agent;
pub mod bf16_gemm;
pub mod checkpoint;
pub mod classifier;
pub mod conv;
pub mod dynamics;
pub mod ensemble_backprop;
pub mod frames;
pub mod init;
pub mod mlp;
pub mod probe;
pub mod rng;
pub mod torch;
pub mod vae;
pub mod value;
mod work_share;

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

/// Where the models run (`--device`): `auto` picks the first CUDA GPU when built with the `cuda`
/// feature and one is present, else the CPU; `cpu`; `cuda` or `cuda:N` (GPU N).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("device {s:?}: expected auto, cpu, cuda or cuda:N")),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceChoice {
    /// The device this choice names; an error when it names a GPU this build or machine lacks.
    pub fn device(self) -> candle_core::Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto => {
                #[cfg(feature = "cuda")]
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok(d);
                }
                Ok(Device::Cpu)
            }
            Self::Cuda(n) => {
                if cfg!(feature = "cuda") {
                    Device::new_cuda(n)
                } else {
                    Err(candle_core::Error::Msg(format!(
                        "device cuda:{n}: this ls3 was built without the `cuda` feature \
                         (cargo build --release --features cuda)"
                    )))
                }
            }
        }
    }
}

/// The process-wide choice behind [`default_device`], set once at startup (`--device`).
static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();

/// Makes `choice` the device of every later [`default_device`] call in this process (checked
/// now, so a missing GPU is an error at startup). Only the first call takes effect.
pub fn choose_device(choice: DeviceChoice) -> candle_core::Result<()> {
    let device = choice.device()?;
    let _ = DEVICE.set(device);
    Ok(())
}

/// The device every tensor lives on: the one chosen with [`choose_device`], else
/// [`DeviceChoice::Auto`]'s.
pub fn default_device() -> Device {
    DEVICE
        .get()
        .cloned()
        .unwrap_or_else(|| DeviceChoice::Auto.device().unwrap_or(Device::Cpu))
}

#[cfg(test)]
mod device_tests {
    use super::DeviceChoice;

    #[test]
    fn device_choices_parse_print_and_refuse_what_is_missing() {
        for (text, c) in [
            ("auto", DeviceChoice::Auto),
            ("cpu", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda(0)),
            ("cuda:2", DeviceChoice::Cuda(2)),
        ] {
            assert_eq!(text.parse::<DeviceChoice>(), Ok(c));
        }
        assert_eq!(DeviceChoice::Cuda(1).to_string(), "cuda:1");
        let err = "gpu".parse::<DeviceChoice>().unwrap_err();
        assert!(err.contains("gpu") && err.contains("cuda:N"), "{err}");
        assert!(DeviceChoice::Cpu.device().unwrap().is_cpu());
        if !cfg!(feature = "cuda") {
            let err = DeviceChoice::Cuda(0).device().unwrap_err().to_string();
            assert!(err.contains("`cuda` feature"), "{err}");
        }
    }
}
