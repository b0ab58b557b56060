//! PyTorch's default initialisation, reproduced with our seeded generator: every weight and bias
//! uniform in ±1/√fan_in, where fan_in is the product of the weight's dimensions after the first
//! (that is PyTorch's rule for Linear, Conv2d and — with its known quirk — ConvTranspose2d).

use super::rng::TensorRng;
use candle_core::Result;
use candle_nn::VarMap;

/// Overwrites every variable of `vars` in name order, so the result depends only on the seed.
pub fn pytorch_default(vars: &VarMap, rng: &mut TensorRng) -> Result<()> {
    let data = vars.data().lock().expect("var map lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let weight_name = match name.strip_suffix(".bias") {
            Some(stem) => format!("{stem}.weight"),
            None => name.clone(),
        };
        let Some(weight) = data.get(&weight_name) else {
            continue;
        };
        let dims = weight.dims();
        if dims.len() < 2 {
            continue; // running statistics and other non-layer tensors keep their values
        }
        let fan_in: usize = dims[1..].iter().product();
        let bound = 1.0 / (fan_in as f32).sqrt();
        let value = rng.uniform(var.shape(), -bound, bound, var.device())?;
        var.set(&value)?;
    }
    Ok(())
}
