//! A linear probe of the latent space: how much of the ground-truth state a VAE's latents carry.
//! A ridge regression from latents to the state quantities of each environment is fitted on some
//! demo episodes and scored (R² per quantity) on the others.
//!
//! The latents are reparameterised samples μ + σ·ε (a fixed seed), the very latents the replay
//! feeds the latent modules, not the means alone: an untrained encoder's means already hold the
//! state in directions that vary by ~1e-3 under a posterior noise of σ ≈ 1. Regressed from the
//! standardised means, such a VAE scored R² > 0.9 on every reacher quantity; from samples, the
//! noise hides what the models could never use. It judges a VAE
//! before anything is trained on top of it (`ls3 probe`, and after every VAE phase of a run), and
//! maps imagined latents back into the scene.
//!
//! It sits in `model` rather than `analysis` because the training session runs it after the VAE
//! phase, and `train` may not import from above itself.

use super::LATENT;
use super::agent::Agent;
use super::rng::TensorRng;
use crate::data::episode::Episode;
use crate::data::images::{image_tensor, to_unit};
use crate::env::EnvKind;
use crate::env::{push, reacher};
use serde::{Deserialize, Serialize};

/// Every this many episodes one is held out for scoring (the 5th, 10th, …).
const HOLD_OUT_EVERY: usize = 5;
/// Ridge penalty per sample on the standardised latents.
const RIDGE: f64 = 1e-3;
/// Frames a probe fits and scores on at most, by default (spread evenly over the episodes).
pub const DEFAULT_FRAMES: usize = 6000;
/// Images encoded per forward pass.
const BATCH: usize = 256;
/// Seed of the probe's latent noise (the probe is deterministic).
const PROBE_SEED: u64 = 0x9b0be;

/// Names of the state quantities probed in `kind`.
pub fn quantity_names(kind: EnvKind) -> &'static [&'static str] {
    match kind {
        EnvKind::Navigation => &["x", "y"],
        EnvKind::Reacher => &[
            "sin shoulder",
            "cos shoulder",
            "sin wrist",
            "cos wrist",
            "finger x",
            "finger y",
        ],
        EnvKind::Push => &[
            "pusher x",
            "pusher y",
            "block 0 x",
            "block 0 y",
            "block 1 x",
            "block 1 y",
            "block 2 x",
            "block 2 y",
        ],
    }
}

/// The probed quantities of a ground-truth state of `kind` (order of [`quantity_names`]).
pub fn quantities(kind: EnvKind, state: &[f64]) -> Vec<f64> {
    match kind {
        EnvKind::Navigation => state[..2].to_vec(),
        EnvKind::Reacher => {
            let f = reacher::finger(state);
            vec![
                state[0].sin(),
                state[0].cos(),
                state[1].sin(),
                state[1].cos(),
                f[0],
                f[1],
            ]
        }
        EnvKind::Push => {
            let mut q = vec![state[0], state[1]];
            for k in 0..3 {
                q.extend(push::block_position(state, k));
            }
            q
        }
    }
}

/// Whether a frame in ground-truth `state` is probed: push frames with a fallen block are not,
/// since a fallen block is no longer drawn and its stored pose is where it left the table.
pub fn probed(kind: EnvKind, state: &[f64]) -> bool {
    kind != EnvKind::Push || !push::any_fallen(state)
}

/// An affine map from latents to state quantities, fitted by ridge regression on standardised
/// latents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearProbe {
    /// Per latent dimension: mean and std of the fitting data.
    pub shift: Vec<f64>,
    pub scale: Vec<f64>,
    /// `(LATENT + 1) × outputs`, row-major; the last row is the bias.
    pub weights: Vec<f64>,
    pub outputs: usize,
}

impl LinearProbe {
    /// Fits `y` (`n × outputs`, row-major) from `x` (`n × LATENT`) with a ridge penalty of
    /// `RIDGE · n` on the weights (not on the bias).
    pub fn fit(x: &[f32], y: &[f64], outputs: usize) -> Self {
        let n = x.len() / LATENT;
        assert!(
            n > 0 && y.len() == n * outputs,
            "probe data of mismatched size"
        );
        let mut shift = vec![0.0; LATENT];
        let mut scale = vec![0.0; LATENT];
        for j in 0..LATENT {
            let col = (0..n).map(|i| x[i * LATENT + j] as f64);
            shift[j] = col.clone().sum::<f64>() / n as f64;
            let var = col.map(|v| (v - shift[j]).powi(2)).sum::<f64>() / n as f64;
            scale[j] = var.sqrt().max(1e-8);
        }
        let d = LATENT + 1;
        let mut a = vec![0.0; d * d];
        let mut b = vec![0.0; d * outputs];
        let mut row = vec![0.0; d];
        for i in 0..n {
            for j in 0..LATENT {
                row[j] = (x[i * LATENT + j] as f64 - shift[j]) / scale[j];
            }
            row[LATENT] = 1.0;
            for p in 0..d {
                for q in 0..d {
                    a[p * d + q] += row[p] * row[q];
                }
                for o in 0..outputs {
                    b[p * outputs + o] += row[p] * y[i * outputs + o];
                }
            }
        }
        for p in 0..LATENT {
            a[p * d + p] += RIDGE * n as f64;
        }
        let weights = solve_spd(&mut a, &b, d, outputs);
        Self {
            shift,
            scale,
            weights,
            outputs,
        }
    }

    /// The quantities predicted for one latent.
    pub fn predict(&self, z: &[f32]) -> Vec<f64> {
        let mut out = self.weights[LATENT * self.outputs..].to_vec();
        for (j, &zj) in z.iter().enumerate().take(LATENT) {
            let v = (zj as f64 - self.shift[j]) / self.scale[j];
            for (o, out) in out.iter_mut().enumerate() {
                *out += v * self.weights[j * self.outputs + o];
            }
        }
        out
    }
}

/// Solves `A·X = B` for a symmetric positive definite `A` (`d × d`) by Cholesky; `B` is
/// `d × k`. `A` is overwritten.
fn solve_spd(a: &mut [f64], b: &[f64], d: usize, k: usize) -> Vec<f64> {
    for j in 0..d {
        let mut diag = a[j * d + j];
        for p in 0..j {
            diag -= a[j * d + p] * a[j * d + p];
        }
        let l = diag.max(1e-12).sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut v = a[i * d + j];
            for p in 0..j {
                v -= a[i * d + p] * a[j * d + p];
            }
            a[i * d + j] = v / l;
        }
    }
    let mut x = b.to_vec();
    for c in 0..k {
        for i in 0..d {
            let mut v = x[i * k + c];
            for p in 0..i {
                v -= a[i * d + p] * x[p * k + c];
            }
            x[i * k + c] = v / a[i * d + i];
        }
        for i in (0..d).rev() {
            let mut v = x[i * k + c];
            for p in i + 1..d {
                v -= a[p * d + i] * x[p * k + c];
            }
            x[i * k + c] = v / a[i * d + i];
        }
    }
    x
}

/// R² of `pred` against `truth` (both `n × outputs`), per output: 1 − SSE / SST about the
/// truth's mean. A constant truth scores 1 if predicted exactly, else −∞ is avoided by a floor
/// on SST.
pub fn r_squared(pred: &[f64], truth: &[f64], outputs: usize) -> Vec<f64> {
    let n = truth.len() / outputs;
    (0..outputs)
        .map(|o| {
            let col = |v: &[f64], i: usize| v[i * outputs + o];
            let mean = (0..n).map(|i| col(truth, i)).sum::<f64>() / n as f64;
            let sst: f64 = (0..n).map(|i| (col(truth, i) - mean).powi(2)).sum();
            let sse: f64 = (0..n).map(|i| (col(truth, i) - col(pred, i)).powi(2)).sum();
            1.0 - sse / sst.max(1e-12)
        })
        .collect()
}

/// The probe's verdict on one agent's VAE.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub env: EnvKind,
    /// Frames used to fit and to score.
    pub train_frames: usize,
    pub held_out_frames: usize,
    /// Held-out R² per quantity, in the order of [`quantity_names`].
    pub quantities: Vec<(String, f64)>,
    /// [`noise_share`] on the fitted frames (absent in reports written before it existed).
    #[serde(default)]
    pub noise_share: Option<f64>,
    /// The probe fitted on the training frames.
    #[serde(skip)]
    pub probe: Option<LinearProbe>,
}

impl ProbeReport {
    /// One line: `R² held out: x 0.991, y 0.987`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .quantities
            .iter()
            .map(|(n, r)| format!("{n} {r:.3}"))
            .collect();
        let noise = match self.noise_share {
            Some(n) => format!("; encoder noise {:.2} % of the latent variance", 100.0 * n),
            None => String::new(),
        };
        format!(
            "probe R² (held out, {} frames): {}{noise}",
            self.held_out_frames,
            parts.join(", ")
        )
    }

    /// R² of a named quantity.
    pub fn r2(&self, name: &str) -> Option<f64> {
        self.quantities.iter().find(|(n, _)| n == name).map(|q| q.1)
    }
}

/// What the encoder makes of a set of images, each `n × LATENT`.
pub struct Encoded {
    /// Reparameterised samples μ + σ·ε (what the latent modules train on).
    pub z: Vec<f32>,
    pub mean: Vec<f32>,
    pub log_std: Vec<f32>,
}

/// Encodes images (each `channels × 64 × 64` bytes) once: means, log-stds and samples with ε
/// from `rng`.
pub fn encode_frames(
    agent: &Agent,
    images: &[&[u8]],
    rng: &mut TensorRng,
) -> candle_core::Result<Encoded> {
    let cap = images.len() * LATENT;
    let mut out = Encoded {
        z: Vec::with_capacity(cap),
        mean: Vec::with_capacity(cap),
        log_std: Vec::with_capacity(cap),
    };
    for chunk in images.chunks(BATCH) {
        let px: Vec<f32> = chunk.iter().flat_map(|b| to_unit(b)).collect();
        let x = image_tensor(px, agent.spec.channels, &agent.device)?;
        let eps = rng.normal((chunk.len(), LATENT), &agent.device)?;
        let (mean, log_std) = agent.vae.encode_dist(&x)?;
        let z = (&mean + log_std.exp()?.mul(&eps)?)?;
        out.z.extend(z.flatten_all()?.to_vec1::<f32>()?);
        out.mean.extend(mean.flatten_all()?.to_vec1::<f32>()?);
        out.log_std.extend(log_std.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

impl Encoded {
    /// The share of the samples' variance that is the encoder's own noise: per dimension mean
    /// σ² / (variance of μ + mean σ²), averaged over dimensions. Near 0 the samples are almost
    /// the means (the latent modules see little smoothing); near 1 they are mostly noise.
    pub fn noise_share(&self) -> f64 {
        let n = (self.mean.len() / LATENT).max(1) as f64;
        let col = |v: &[f32], d: usize| -> Vec<f64> {
            v.iter()
                .skip(d)
                .step_by(LATENT)
                .map(|&x| x as f64)
                .collect()
        };
        let share = (0..LATENT)
            .map(|d| {
                let mean = col(&self.mean, d);
                let m = mean.iter().sum::<f64>() / n;
                let spread = mean.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
                let noise = col(&self.log_std, d)
                    .iter()
                    .map(|ls| (2.0 * ls).exp())
                    .sum::<f64>()
                    / n;
                noise / (spread + noise).max(1e-12)
            })
            .sum::<f64>();
        share / LATENT as f64
    }
}

/// Errors of [`probe`].
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the probe needs episodes with ground-truth states: {0}")]
    Data(String),
    #[error(transparent)]
    Model(#[from] candle_core::Error),
}

/// Fits the probe on `episodes` (every [`HOLD_OUT_EVERY`]th held out) with latent samples of
/// their next observations and the states after each step; at most `max_frames` frames, spread
/// evenly over the episodes.
pub fn probe(
    agent: &Agent,
    episodes: &[Episode],
    max_frames: usize,
) -> Result<ProbeReport, ProbeError> {
    let kind = agent.spec.env;
    let outputs = quantity_names(kind).len();
    let total: usize = episodes.iter().map(|e| e.transitions.len()).sum();
    let stride = total.div_ceil(max_frames.max(1)).max(1);
    let mut split: [(Vec<&[u8]>, Vec<f64>); 2] = Default::default();
    let mut k = 0;
    for (e, ep) in episodes.iter().enumerate() {
        let len = ep.next_obs.len() / ep.transitions.len().max(1);
        for (t, tr) in ep.transitions.iter().enumerate() {
            k += 1;
            if k % stride != 0 {
                continue;
            }
            let Some(state) = &tr.state else {
                return Err(ProbeError::Data(format!("episode {e} has no states")));
            };
            if !probed(kind, state) {
                continue;
            }
            let side = &mut split[usize::from(e % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1)];
            side.0.push(&ep.next_obs[t * len..(t + 1) * len]);
            side.1.extend(quantities(kind, state));
        }
    }
    let [(train_img, train_y), (test_img, test_y)] = split;
    if train_img.len() < 2 * LATENT || test_img.is_empty() {
        return Err(ProbeError::Data(format!(
            "{} frames to fit and {} to score from {} episodes are too few",
            train_img.len(),
            test_img.len(),
            episodes.len()
        )));
    }
    let mut rng = TensorRng::new(PROBE_SEED);
    let train = encode_frames(agent, &train_img, &mut rng)?;
    let lin = LinearProbe::fit(&train.z, &train_y, outputs);
    let test_z = encode_frames(agent, &test_img, &mut rng)?.z;
    let pred: Vec<f64> = test_z.chunks(LATENT).flat_map(|z| lin.predict(z)).collect();
    let r2 = r_squared(&pred, &test_y, outputs);
    Ok(ProbeReport {
        env: kind,
        train_frames: train_img.len(),
        held_out_frames: test_img.len(),
        noise_share: Some(train.noise_share()),
        quantities: quantity_names(kind)
            .iter()
            .map(|n| n.to_string())
            .zip(r2)
            .collect(),
        probe: Some(lin),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn a_synthetic_linear_latent_is_recovered() {
        // y = W·z + b + small noise, with two outputs
        let mut rng = StdRng::seed_from_u64(0);
        let n = 600;
        let w: Vec<f64> = (0..LATENT * 2)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let mut x = vec![];
        let mut y = vec![];
        for _ in 0..n {
            let z: Vec<f32> = (0..LATENT).map(|_| rng.random_range(-2.0..2.0)).collect();
            for o in 0..2 {
                let v: f64 = (0..LATENT).map(|j| z[j] as f64 * w[j * 2 + o]).sum();
                y.push(v + 0.5 * o as f64 + rng.random_range(-0.01..0.01));
            }
            x.extend(z);
        }
        let p = LinearProbe::fit(&x[..500 * LATENT], &y[..1000], 2);
        let pred: Vec<f64> = x[500 * LATENT..]
            .chunks(LATENT)
            .flat_map(|z| p.predict(z))
            .collect();
        let r2 = r_squared(&pred, &y[1000..], 2);
        assert!(r2.iter().all(|&r| r > 0.999), "{r2:?}");
        // a target that ignores the latents is not predicted
        let noise: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let p = LinearProbe::fit(&x[..500 * LATENT], &noise[..500], 1);
        let pred: Vec<f64> = x[500 * LATENT..]
            .chunks(LATENT)
            .flat_map(|z| p.predict(z))
            .collect();
        assert!(r_squared(&pred, &noise[500..], 1)[0] < 0.2);
    }

    #[test]
    fn noise_share_follows_the_encoders_sigma() {
        use crate::model::agent::{Agent, AgentSpec};
        let agent = Agent::new(
            AgentSpec::for_env(EnvKind::Navigation),
            &candle_core::Device::Cpu,
            0,
        )
        .unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let images: Vec<Vec<u8>> = (0..40)
            .map(|_| (0..3 * 64 * 64).map(|_| rng.random()).collect())
            .collect();
        let refs: Vec<&[u8]> = images.iter().map(|v| v.as_slice()).collect();
        let noise_share = |agent: &Agent| {
            encode_frames(agent, &refs, &mut TensorRng::new(0))
                .unwrap()
                .noise_share()
        };
        agent.set_vae_log_std_bias(-20.0).unwrap();
        assert!(noise_share(&agent) < 1e-6);
        agent.set_vae_log_std_bias(20.0).unwrap();
        assert!(noise_share(&agent) > 1.0 - 1e-6);
    }

    #[test]
    fn push_frames_with_a_fallen_block_are_not_probed() {
        let mut s = push::start_state();
        assert!(probed(EnvKind::Push, &s));
        s[12] = 1.0;
        assert!(!probed(EnvKind::Push, &s));
        assert!(probed(EnvKind::Navigation, &[0.0, 0.0]));
    }

    #[test]
    fn quantities_follow_the_names() {
        for kind in EnvKind::ALL {
            let state = vec![0.1; 14];
            assert_eq!(quantities(kind, &state).len(), quantity_names(kind).len());
        }
        let q = quantities(
            EnvKind::Reacher,
            &[0.75 * std::f64::consts::PI, 0.0, 0.0, 0.0],
        );
        let t = reacher::target();
        assert!((q[4] - t[0]).abs() < 0.01 && (q[5] - t[1]).abs() < 0.01);
    }
}
