//! Reading the original implementation's PyTorch checkpoints (`torch.save(state_dict)` files).

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Reads every tensor of a `.pth` state dict, as f32 on `device`.
pub fn read_pth(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let tensors = candle_core::pickle::read_all(path)
        .with_context(|| format!("reading PyTorch checkpoint {}", path.display()))?;
    tensors
        .into_iter()
        .map(|(name, t)| {
            let t = t.to_dtype(DType::F32)?.to_device(device)?;
            Ok((name, t))
        })
        .collect::<candle_core::Result<_>>()
        .with_context(|| format!("converting tensors of {}", path.display()))
}
