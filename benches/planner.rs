//! Planner speed: one `plan` call (one action selection) with a randomly initialised navigation
//! agent, at the three settings of `../shared/bench/torch_ref` (population × particles 1000×20 —
//! the paper's —, 500×5 and 200×2; horizon 5, 5 CEM iterations, 100 elites), then where the time
//! of the paper setting goes. Run with `cargo bench --bench planner`; compare the medians with
//! the PyTorch script's `plan_step` lines run on the same machine.
//!
//! Both ablation switches are on so that every call takes the usual path (4 scored iterations, no
//! threshold decays): random networks predict violations everywhere. The models compute the
//! same things either way; only the feasibility test differs.
//! `LS3_BENCH_TENSOR=1` also times the portable tensor rollout (what a GPU build runs);
//! `cargo bench --bench planner -- --plan-only` stops after the three `plan` timings.
//!
//! On the CPU each case of the fused path runs in f32 and, where the CPU has AVX512-BF16, with
//! bf16 dense layers (`bf16` in the case's name; the process-wide precision set as
//! `precision = "bf16"` does). The spread lines run the tensor path, f32 only.
//!
//! The agent lives on `ls3::model::default_device()`: a CUDA GPU when built with
//! `--features cuda` and one is present (the planner then takes the tensor rollout), else the
//! CPU; `LS3_BENCH_DEVICE=cpu` forces the CPU. Off the CPU only the three `plan` timings run, as
//! with `--plan-only` (the rest profiles the CPU fused path).

mod common;

use candle_core::{DType, Device, Tensor};
use common::time;
use ls3::env::EnvKind;
use ls3::model::agent::{Agent, AgentSpec};
use ls3::model::conv::{Precision, set_precision};
use ls3::planner::bf16_dense::{Out, dense_pairs, to_pairs};
use ls3::planner::fused::{FusedModels, Profile};
use ls3::planner::kernel::{PackedLayer, dense};
use ls3::planner::models::tensor_rollout;
use ls3::planner::{Planner, PlannerConfig, Rollout};
use ls3::valid::Validate;

fn job(cfg: &PlannerConfig, seed: u64) -> Rollout {
    let n = cfg.population * cfg.horizon * 2;
    Rollout {
        start: vec![0.1; 32],
        actions: (0..n)
            .map(|i| ((i * 7919) % 601) as f32 / 100.0 - 3.0)
            .collect(),
        population: cfg.population,
        horizon: cfg.horizon,
        particles: cfg.particles,
        members: (0..cfg.horizon).map(|t| t % 5).collect(),
        particle_members: cfg.particle_members,
        safe_set_every_step: cfg.safe_set_every_step,
        noise_seed: seed,
    }
}

/// Times `runs` fused rollouts of `job` under `name`, prints the thread-seconds per rollout of
/// each phase and returns the median wall time.
fn profiled_rollout(fused: &FusedModels, job: &Rollout, name: &str, runs: usize) -> f64 {
    let mut total = Profile::default();
    let wall = time(name, runs, || {
        let (_, prof) = fused.rollout_profiled(job).expect("rollout");
        total.add(&prof);
    });
    // `time` runs the closure once more to warm up
    let per = |x: f64| x / (runs + 1) as f64;
    println!(
        "  thread-seconds per rollout: noise {:.4}, dynamics {:.4}, step heads {:.4}, final heads {:.4} \
         (total {:.4} on {} threads; wall {wall:.4})",
        per(total.noise),
        per(total.dynamics),
        per(total.step_heads),
        per(total.final_heads),
        per(total.total()),
        total.threads
    );
    wall
}

/// The precision's name, as in a configuration file.
fn tag(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "f32",
        Precision::Bf16 => "bf16",
    }
}

fn main() {
    let device = if std::env::var("LS3_BENCH_DEVICE").is_ok_and(|v| v == "cpu") {
        Device::Cpu
    } else {
        ls3::model::default_device()
    };
    println!("device: {:?}", device.location());
    let agent = Agent::new(AgentSpec::for_env(EnvKind::Navigation), &device, 0).expect("agent");
    let z0 = Tensor::full(0.1f32, (1, 32), &device)
        .and_then(|z| z.to_dtype(DType::F32))
        .expect("latent");
    println!(
        "threads: {} (candle CPU pool), AVX-512 kernels: {}, AVX512-BF16: {}",
        candle_core::utils::get_num_threads(),
        ls3::cpu::avx512(),
        ls3::cpu::avx512_bf16()
    );
    // bf16 only changes the fused CPU path
    let precisions: &[Precision] = if device.is_cpu() && ls3::cpu::avx512_bf16() {
        &[Precision::F32, Precision::Bf16]
    } else {
        &[Precision::F32]
    };

    // One planner for both precisions: it packs again when the precision changes.
    let mut planner = Planner::for_env(EnvKind::Navigation, 0);
    for (population, particles, runs) in [(1000, 20, 7), (500, 5, 15), (200, 2, 31)] {
        let cfg = PlannerConfig {
            population,
            particles,
            ignore_safe_set: true,
            ignore_constraints: true,
            ..PlannerConfig::default()
        }
        .validated()
        .expect("valid bench settings");
        for &p in precisions {
            set_precision(p);
            time(
                &format!("plan {population}×{particles} {}", tag(p)),
                runs,
                || {
                    let (_, rec) = planner.plan(&agent, &z0, &cfg).expect("plan");
                    assert_eq!(rec.decays, 0);
                },
            );
        }
    }

    // The quick navigation preset's planner (500 × 20, horizon 3, a dynamics member per
    // particle, the disagreement penalty): what `ls3 run --env navigation` calls every step.
    let quick = PlannerConfig {
        ignore_safe_set: true,
        ignore_constraints: true,
        ..ls3::config::Config::quick(EnvKind::Navigation).planner
    }
    .validated()
    .expect("valid quick settings");
    for &p in precisions {
        set_precision(p);
        time(&format!("plan quick navigation {}", tag(p)), 15, || {
            let (_, rec) = planner.plan(&agent, &z0, &quick).expect("plan");
            assert_eq!(rec.decays, 0);
        });
        if device.is_cpu() {
            let fused = FusedModels::from_agent_with(&agent, p).expect("pack");
            let name = format!("  fused rollout of quick navigation {}", tag(p));
            profiled_rollout(&fused, &job(&quick, 1), &name, 15);
        }
    }

    // A planner keeps the packed weights while their version is unchanged; a fresh planner per
    // call packs them every time, as every call did before the cache.
    let cfg = PlannerConfig {
        ignore_safe_set: true,
        ignore_constraints: true,
        ..PlannerConfig::default()
    }
    .validated()
    .expect("valid bench settings");
    for &p in precisions {
        set_precision(p);
        let name = format!("plan 1000×20, packing the weights every call {}", tag(p));
        time(&name, 7, || {
            let mut fresh = Planner::for_env(EnvKind::Navigation, 0);
            std::hint::black_box(fresh.plan(&agent, &z0, &cfg).expect("plan"));
        });
    }
    set_precision(Precision::F32);

    // The chosen plan's spread (part of every call above): its particles imagined again with
    // the search's members and noise, and every dynamics member's prediction from them.
    for (population, particles) in [(1000, 20), (500, 5)] {
        let cfg = PlannerConfig {
            population,
            particles,
            ..PlannerConfig::default()
        };
        let j = job(&cfg, 3);
        time(
            &format!("spread of one plan, {particles} particles"),
            31,
            || {
                std::hint::black_box(ls3::planner::spread::imagine(&agent, &j, 0).expect("spread"));
            },
        );
    }

    if !device.is_cpu() || std::env::args().any(|a| a == "--plan-only") {
        return;
    }

    // Where the paper setting's time goes.
    let cfg = PlannerConfig::default();
    println!("\nprofile of the paper setting (per plan call = 4 scored iterations):");
    for &p in precisions {
        let name = format!("pack weights (once per weights version) {}", tag(p));
        time(&name, 21, || {
            std::hint::black_box(FusedModels::from_agent_with(&agent, p).expect("pack"));
        });
    }
    for &p in precisions {
        let fused = FusedModels::from_agent_with(&agent, p).expect("pack");
        let name = format!("fused rollout 1000×20 (×4 per plan) {}", tag(p));
        let wall = profiled_rollout(&fused, &job(&cfg, 1), &name, 8);
        // multiply-adds: dynamics on 1 000 + 4 × 20 000 rows, heads on 2 × 100 000 + 6 × 20 000
        // rows
        let flops = 2.0 * (81_000.0 * 28_928.0 + 320_000.0 * 86_600.0);
        println!(
            "  {:.1} GFLOP per rollout: {:.0} GFLOP/s",
            flops / 1e9,
            flops / 1e9 / wall
        );
    }

    // One thread, one 200→200 layer on a block of 240 rows (the heads' inner loop; in bf16
    // from pairs to pairs, as between hidden layers).
    let (rows, k, n) = (240, 200, 200);
    let w: Vec<f32> = (0..k * n)
        .map(|i| ((i % 97) as f32 - 48.0) * 1e-3)
        .collect();
    let x: Vec<f32> = (0..k * rows).map(|i| (i % 13) as f32 * 0.1).collect();
    let reps = 1000;
    for &p in precisions {
        let layer = PackedLayer::with_precision(k, n, &w, &vec![0.01; n], p);
        let mut out = vec![0f32; n * rows];
        let mut pairs = vec![0u32; n.div_ceil(2) * rows];
        if p == Precision::Bf16 {
            to_pairs(&x, rows, rows, k, &mut pairs, rows);
        }
        let mut next = pairs.clone();
        let name = format!("dense 240×200→200 ×1000, 1 thread {}", tag(p));
        let t = time(&name, 5, || {
            for _ in 0..reps {
                match p {
                    Precision::F32 => dense(&x, rows, rows, &layer, &mut out, rows, true),
                    Precision::Bf16 => {
                        let out = Out::Pairs(&mut next);
                        dense_pairs(&pairs, rows, rows, &layer, out, rows, true)
                    }
                }
            }
            std::hint::black_box((&out, &next));
        });
        println!(
            "  {:.0} GFLOP/s",
            2.0 * (rows * k * n * reps) as f64 / t / 1e9
        );
    }

    if std::env::var("LS3_BENCH_TENSOR").is_ok_and(|v| v == "1") {
        time("tensor rollout 1000×20 (×4 per plan)", 3, || {
            std::hint::black_box(tensor_rollout(&agent, &job(&cfg, 2)).expect("rollout"));
        });
    }
}
