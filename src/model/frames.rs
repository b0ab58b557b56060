//! Latents back to pictures: the VAE decoder's output as displayable frames (the plan view's
//! imagined trajectory, the latent view's thumbnails, the VAE's reconstructions while it trains).

use crate::env::{Frame, IMAGE_SIZE};
use crate::model::agent::Agent;
use candle_core::{Result, Tensor};

/// Decodes `latents` (each of the agent's latent size) into one RGB frame each; for stacked
/// observations the newest frame of the stack.
pub fn decode_frames(agent: &Agent, latents: &[Vec<f32>]) -> Result<Vec<Frame>> {
    if latents.is_empty() {
        return Ok(Vec::new());
    }
    let flat: Vec<f32> = latents.iter().flatten().copied().collect();
    let z = Tensor::from_vec(flat, (latents.len(), agent.spec.latent), &agent.device)?;
    let images = agent.vae.decode(&z)?;
    let c = agent.spec.channels;
    let newest = images
        .narrow(1, c - 3, 3)?
        .flatten_from(1)?
        .to_vec2::<f32>()?;
    Ok(newest
        .into_iter()
        .map(|px| {
            debug_assert_eq!(px.len(), 3 * IMAGE_SIZE * IMAGE_SIZE);
            Frame(
                px.into_iter()
                    .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                    .collect(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{EnvKind, FRAME_LEN};
    use crate::model::agent::AgentSpec;

    #[test]
    fn every_latent_becomes_one_rgb_frame_also_for_stacked_observations() {
        let device = candle_core::Device::Cpu;
        for kind in [EnvKind::Navigation, EnvKind::Reacher] {
            let agent = Agent::new(AgentSpec::for_env(kind), &device, 1).unwrap();
            let l = agent.spec.latent;
            let frames = decode_frames(&agent, &[vec![0.0; l], vec![1.0; l]]).unwrap();
            assert_eq!(frames.len(), 2);
            assert!(frames.iter().all(|f| f.0.len() == FRAME_LEN));
        }
    }
}
