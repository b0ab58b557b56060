//! Training-step speed of the models, the same cases as `../shared/bench/torch_ref`: one Adam
//! step of the VAE at batch 64 and 256, of the dynamics ensemble at 5 × 256, and of a 200-wide
//! classifier at 256. Run with `cargo bench --bench model_step`; compare the medians with the
//! PyTorch script's run on the same machine.

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ls3::env::EnvKind;
use ls3::model::agent::{Agent, AgentSpec, ModuleKind};
use ls3::model::classifier::bce_with_logits;
use ls3::model::rng::TensorRng;
use std::time::Instant;

fn adam(agent: &Agent, m: ModuleKind, lr: f64) -> AdamW {
    let p = ParamsAdamW { lr, weight_decay: 0.0, ..Default::default() };
    AdamW::new(agent.trainable(m), p).expect("optimizer")
}

fn time(name: &str, runs: usize, mut f: impl FnMut()) {
    f();
    let mut ts: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("{name:<28} median {:.5} s  min {:.5} s  max {:.5} s  ({runs} runs)", ts[runs / 2], ts[0], ts[runs - 1]);
}

fn main() {
    let only: Option<String> = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let want = |n: &str| only.as_deref().is_none_or(|o| n.contains(o));
    let dev = Device::Cpu;
    let agent = Agent::new(AgentSpec::for_env(EnvKind::Navigation), &dev, 0).unwrap();
    let mut rng = TensorRng::new(0);

    for batch in [64, 256] {
        let name = format!("vae_step batch {batch}");
        if !want(&name) {
            continue;
        }
        let mut opt = adam(&agent, ModuleKind::Vae, 1e-4);
        let x = rng.uniform((batch, 3, 64, 64), 0.0, 1.0, &dev).unwrap();
        time(&name, if batch == 64 { 10 } else { 4 }, || {
            let eps = rng.normal((batch, 32), &dev).unwrap();
            let loss = agent.vae.loss(&x, &x, &eps).unwrap();
            opt.backward_step(&loss.total).unwrap();
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
    }

    if want("classifier_step") {
        let mut opt = adam(&agent, ModuleKind::Constr, 1e-4);
        let z = rng.normal((256, 32), &dev).unwrap();
        let y = Tensor::ones((256, 1), candle_core::DType::F32, &dev).unwrap();
        time("classifier_step 256", 50, || {
            let loss = bce_with_logits(&agent.constraint.logits(&z).unwrap(), &y).unwrap();
            opt.backward_step(&loss).unwrap();
        });
    }
}
