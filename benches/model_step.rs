//! Training-step speed of the models, the same cases as `../shared/bench/torch_ref`: one Adam
//! step of the VAE at batch 64 and 256 (in f32, then with bf16 convolution products where the CPU
//! has AVX512-BF16), of the dynamics ensemble at 5 × 256 (through candle's autograd, then by
//! hand-written backprop as the trainer runs it on the CPU), of the value ensemble at 5 × 64 (a
//! TD step: target nets forward, then the online members; autograd, then by hand) and of a
//! 200-wide classifier at 256 (autograd, then by hand).
//! Run with `cargo bench --bench model_step`; compare the medians with the PyTorch script's run
//! on the same machine. `adam_update vae` times the optimiser's update alone
//! (fixed gradients of all VAE weights): ours against candle-nn's `AdamW`.

mod common;

use candle_core::{Device, Tensor};
use candle_nn::Optimizer;
use common::time;
use ls3::data::replay::Batch;
use ls3::env::EnvKind;
use ls3::model::agent::{Agent, AgentSpec, ModuleKind};
use ls3::model::classifier::bce_with_logits;
use ls3::model::conv::{Precision, conv_transpose2d_bias, conv2d_bias, set_precision};
use ls3::model::ensemble_backprop::{EnsembleBackprop, mlp_grads};
use ls3::model::rng::TensorRng;
use ls3::train::adam::{Adam, AdamParams};
use ls3::train::losses;

/// The optimiser the trainer uses.
fn adam(agent: &Agent, m: ModuleKind, lr: f64) -> Adam {
    let p = AdamParams {
        lr,
        ..Default::default()
    };
    Adam::new(agent.trainable_named(m), p).expect("optimizer")
}

/// The VAE's convolution layers (LS3_SPEC §3, 3 channels): transposed?, input [C, H, W], kernel
/// dims, stride.
const VAE_LAYERS: [(bool, [usize; 3], [usize; 4], usize); 8] = [
    (false, [3, 64, 64], [32, 3, 4, 4], 2),
    (false, [32, 31, 31], [64, 32, 4, 4], 3),
    (false, [64, 10, 10], [128, 64, 4, 4], 2),
    (false, [128, 4, 4], [256, 128, 4, 4], 2),
    (true, [256, 1, 1], [256, 128, 5, 5], 2),
    (true, [128, 5, 5], [128, 64, 5, 5], 2),
    (true, [64, 13, 13], [64, 32, 6, 6], 2),
    (true, [32, 30, 30], [32, 3, 6, 6], 2),
];

/// Per-layer profile of the VAE's convolution layers (bias and ReLU included), ours (f32, and
/// bf16 products where the CPU has AVX512-BF16) against candle's built-in ops: forward alone, and
/// forward + backward (input gradient for all but the first layer, kernel and bias gradients).
/// Opt-in: `cargo bench --bench model_step vae_layers` (`vae_layers_candle` adds candle's ops).
fn vae_layers(rng: &mut TensorRng, with_candle: bool) {
    use candle_core::Var;
    let dev = Device::Cpu;
    for batch in [64, 256] {
        for (i, &(transpose, [c, h, w], kd, stride)) in VAE_LAYERS.iter().enumerate() {
            let x = rng.uniform((batch, c, h, w), 0.0, 1.0, &dev).unwrap();
            let x = if i == 0 {
                x
            } else {
                Var::from_tensor(&x).unwrap().as_tensor().clone()
            };
            let k = Var::from_tensor(&rng.uniform(&kd[..], -0.05, 0.05, &dev).unwrap()).unwrap();
            let out_c = kd[usize::from(transpose)];
            let b = Var::from_tensor(&rng.uniform(out_c, -0.05, 0.05, &dev).unwrap()).unwrap();
            let relu = i + 1 < VAE_LAYERS.len();
            let mut impls = vec!["ours"];
            if ls3::cpu::avx512_bf16() {
                impls.push("bf16");
            }
            if with_candle {
                impls.push("candle");
            }
            for &which in &impls {
                set_precision(if which == "bf16" {
                    Precision::Bf16
                } else {
                    Precision::F32
                });
                let op = |x: &Tensor| -> Tensor {
                    if which != "candle" {
                        return if transpose {
                            conv_transpose2d_bias(x, &k, &b, stride, relu).unwrap()
                        } else {
                            conv2d_bias(x, &k, &b, stride, relu).unwrap()
                        };
                    }
                    let y = if transpose {
                        x.conv_transpose2d(&k, 0, 0, stride, 1).unwrap()
                    } else {
                        x.conv2d(&k, 0, stride, 1, 1).unwrap()
                    };
                    let y = y.broadcast_add(&b.reshape((1, (), 1, 1)).unwrap()).unwrap();
                    if relu { y.relu().unwrap() } else { y }
                };
                let runs = if which == "candle" {
                    3
                } else if batch == 64 {
                    20
                } else {
                    7
                };
                let kind = if transpose { "convT" } else { "conv " };
                time(&format!("L{i} {kind} b{batch} {which} fwd"), runs, || {
                    op(&x);
                });
                time(
                    &format!("L{i} {kind} b{batch} {which} fwd+bwd"),
                    runs,
                    || {
                        op(&x).sum_all().unwrap().backward().unwrap();
                    },
                );
            }
        }
    }
}

/// The precision as in a configuration file.
fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "f32",
        Precision::Bf16 => "bf16",
    }
}

fn main() {
    let only: Option<String> = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let want = |n: &str| only.as_deref().is_none_or(|o| n.contains(o));
    let dev = Device::Cpu;
    if let Some(o) = only.as_deref().filter(|o| o.contains("vae_layers")) {
        vae_layers(&mut TensorRng::new(1), o.contains("candle"));
        return;
    }
    let agent = Agent::new(AgentSpec::for_env(EnvKind::Navigation), &dev, 0).unwrap();
    let mut rng = TensorRng::new(0);

    let precisions: &[Precision] = if ls3::cpu::avx512_bf16() {
        &[Precision::F32, Precision::Bf16]
    } else {
        &[Precision::F32]
    };
    for batch in [64, 256] {
        for &precision in precisions {
            let name = format!("vae_step batch {batch} {}", precision_name(precision));
            if !want(&name) {
                continue;
            }
            set_precision(precision);
            let mut opt = adam(&agent, ModuleKind::Vae, 1e-4);
            let x = rng.uniform((batch, 3, 64, 64), 0.0, 1.0, &dev).unwrap();
            time(&name, if batch == 64 { 10 } else { 4 }, || {
                let eps = rng.normal((batch, 32), &dev).unwrap();
                let loss = agent.vae.loss(&x, &x, &eps).unwrap();
                opt.backward_step(&loss.total).unwrap();
            });
        }
    }
    set_precision(Precision::F32);

    if want("adam_update vae") {
        let x = rng.uniform((8, 3, 64, 64), 0.0, 1.0, &dev).unwrap();
        let eps = rng.normal((8, 32), &dev).unwrap();
        let grads = agent
            .vae
            .loss(&x, &x, &eps)
            .unwrap()
            .total
            .backward()
            .unwrap();
        let mut ours = adam(&agent, ModuleKind::Vae, 1e-6);
        time("adam_update vae ours", 20, || ours.step(&grads).unwrap());
        let p = candle_nn::ParamsAdamW {
            lr: 1e-6,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut theirs = candle_nn::AdamW::new(agent.trainable(ModuleKind::Vae), p).unwrap();
        time("adam_update vae candle-nn", 20, || {
            theirs.step(&grads).unwrap()
        });
    }

    if want("dyn_ensemble_step") {
        let mut opt = adam(&agent, ModuleKind::Dyn, 1e-3);
        let z = rng.normal((5, 256, 32), &dev).unwrap();
        let a = rng.uniform((5, 256, 2), -1.0, 1.0, &dev).unwrap();
        let d = (rng.normal((5, 256, 32), &dev).unwrap() * 0.1).unwrap();
        time("dyn_ensemble_step 5x256", 50, || {
            let loss = agent.dynamics.nll(&z, &a, &d).unwrap();
            opt.backward_step(&loss).unwrap();
        });
        let mut ws = EnsembleBackprop::default();
        time("dyn_ensemble_step 5x256 by hand", 50, || {
            agent.dynamics.nll_backprop(&mut ws, &z, &a, &d).unwrap();
            opt.step_slices(&agent.dynamics.grads(&ws)).unwrap();
        });
    }

    if want("value_ensemble_step") {
        let mut opt = adam(&agent, ModuleKind::Val, 1e-4);
        let (m, b) = (agent.value.members(), 64);
        let scalar = |v: f32| Tensor::full(v, (m, b, 1), &dev).unwrap();
        let batch = Batch {
            z: rng.normal((m, b, 32), &dev).unwrap(),
            z_next: rng.normal((m, b, 32), &dev).unwrap(),
            action: rng.uniform((m, b, 2), -1.0, 1.0, &dev).unwrap(),
            reward: scalar(-1.0),
            goal: scalar(0.0),
            done: scalar(0.0),
            constraint: scalar(0.0),
            safe_set: scalar(0.0),
            on_policy: scalar(1.0),
            rtg: scalar(-10.0),
            slots: Vec::new(),
        };
        let td = Some(losses::Td {
            discount: 0.99,
            bootstrap_timeouts: true,
        });
        time(&format!("value_ensemble_step {m}x{b}"), 50, || {
            let loss = losses::value(&agent.value, &batch, td).unwrap();
            opt.backward_step(&loss).unwrap();
        });
        let mut ws = EnsembleBackprop::default();
        let online: Vec<_> = agent.value.online.iter().collect();
        time(&format!("value_ensemble_step {m}x{b} by hand"), 50, || {
            losses::value_by_hand(&agent.value, &mut ws, &batch, td).unwrap();
            opt.step_slices(&mlp_grads(&online, &ws)).unwrap();
        });
    }

    if want("classifier_step") {
        let mut opt = adam(&agent, ModuleKind::Constr, 1e-4);
        let z = rng.normal((256, 32), &dev).unwrap();
        let y = Tensor::ones((256, 1), candle_core::DType::F32, &dev).unwrap();
        time("classifier_step 256", 50, || {
            let loss = bce_with_logits(&agent.constraint.logits(&z).unwrap(), &y).unwrap();
            opt.backward_step(&loss).unwrap();
        });
        let mut ws = EnsembleBackprop::default();
        let net = [&agent.constraint.net];
        time("classifier_step 256 by hand", 50, || {
            losses::classifier_by_hand(&agent.constraint, &mut ws, &z, &y).unwrap();
            opt.step_slices(&mlp_grads(&net, &ws)).unwrap();
        });
    }
}
