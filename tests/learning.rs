//! Learning tests: on navigation demo data made in memory, every module's loss falls within a
//! small seeded budget, and the constraint estimator, goal indicator, safe set and value
//! generalise to held-out episodes.
//!
//! Latents: training a VAE is too slow for a test today, so the latent-module tests encode the
//! demo images with an *untrained*, seeded VAE encoder (random convolutional features). Its means
//! spread only ~1e-3 per dimension while its log-std is ≈ 0, so each mean dimension is
//! standardised over the images and the log-std is pinned at −2 (σ ≈ 0.14 in standardised units)
//! before the transitions enter the replay buffer.
//!
//! Budgets and thresholds were measured on two shared cores and hold with margin; each test
//! prints its numbers (`cargo test --test learning -- --nocapture`).

use candle_core::{Device, Tensor};
use ls3::config::Config;
use ls3::data::collect::demo_episode;
use ls3::data::episode::Episode;
use ls3::data::images::{ImagePool, distinct_observations};
use ls3::data::replay::{LatentReplay, Record, encode};
use ls3::env::EnvKind;
use ls3::model::agent::{Agent, AgentSpec, ModuleKind};
use ls3::train::Trainer;
use std::sync::OnceLock;

const ENV: EnvKind = EnvKind::Navigation;
const LOG_STD: f32 = -2.0;

/// Training and held-out transitions, already encoded.
struct Fixture {
    train: LatentReplay,
    held_out: LatentReplay,
}

fn episodes(set: usize, range: std::ops::Range<usize>) -> Vec<Episode> {
    range
        .map(|i| demo_episode(ENV, &ENV.demo_sets()[set], 0, i))
        .collect()
}

/// Training: 10 task + 20 constraint demos; held out: the next 5 task + 10 constraint demos.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let train = [episodes(0, 0..10), episodes(1, 0..20)].concat();
        let held_out = [episodes(0, 10..15), episodes(1, 20..30)].concat();
        let encoder = Agent::new(AgentSpec::for_env(ENV), &Device::Cpu, 0).unwrap();
        let encoded = |eps: &[Episode]| -> Vec<(Vec<f32>, Vec<[usize; 2]>)> {
            eps.iter()
                .map(|e| {
                    let (images, pairs) = distinct_observations(e);
                    (encode(&encoder, &images).unwrap().0, pairs)
                })
                .collect()
        };
        let (enc_train, enc_held) = (encoded(&train), encoded(&held_out));
        let l = encoder.spec.latent;
        let all: Vec<&[f32]> = enc_train
            .iter()
            .chain(&enc_held)
            .flat_map(|(m, _)| m.chunks(l))
            .collect();
        let n = all.len() as f32;
        let mean: Vec<f32> = (0..l)
            .map(|d| all.iter().map(|v| v[d]).sum::<f32>() / n)
            .collect();
        let std: Vec<f32> = (0..l)
            .map(|d| (all.iter().map(|v| (v[d] - mean[d]).powi(2)).sum::<f32>() / n).sqrt())
            .collect();
        let fill = |eps: &[Episode], enc: &[(Vec<f32>, Vec<[usize; 2]>)]| {
            let mut r = LatentReplay::new(35_000, l);
            let log_std = vec![LOG_STD; l];
            let z = |m: &[f32], i: usize| -> Vec<f32> {
                (0..l).map(|d| (m[i * l + d] - mean[d]) / std[d]).collect()
            };
            for (ep, (m, pairs)) in eps.iter().zip(enc) {
                for (t, &[o, nx]) in pairs.iter().enumerate() {
                    let rec = Record::from(&ep.transitions[t]);
                    r.insert((&z(m, o), &log_std), (&z(m, nx), &log_std), rec)
                        .unwrap();
                }
            }
            r
        };
        Fixture {
            train: fill(&train, &enc_train),
            held_out: fill(&held_out, &enc_held),
        }
    })
}

/// The quick preset: the budgets below are what it trains with, only shorter.
fn config() -> Config {
    Config::quick(ENV)
}

fn setup(seed: u64, edit: impl FnOnce(&mut Config)) -> (Agent, Trainer, LatentReplay) {
    let mut cfg = config();
    edit(&mut cfg);
    let agent = Agent::new(cfg.agent_spec(), &Device::Cpu, seed).unwrap();
    let trainer = Trainer::new(&agent, &cfg, seed).unwrap();
    (agent, trainer, fixture().train.clone())
}

/// Noise-free held-out latents of the observation (`next = false`) or the next observation.
fn held_out_means(next: bool) -> (Tensor, Vec<Record>) {
    let r = &fixture().held_out;
    let rows: Vec<f32> = (0..r.len())
        .flat_map(|i| if next { r.next_mean(i) } else { r.mean(i) }.to_vec())
        .collect();
    let z = Tensor::from_vec(rows, (r.len(), r.latent()), &Device::Cpu).unwrap();
    (z, (0..r.len()).map(|i| *r.record(i)).collect())
}

fn column(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Mean of the true-positive and true-negative rates at threshold 0.5.
fn balanced_accuracy(prob: &[f32], label: &[bool]) -> f32 {
    let rate = |want: bool| {
        let hits = prob
            .iter()
            .zip(label)
            .filter(|(p, l)| **l == want && (**p > 0.5) == want)
            .count();
        hits as f32 / label.iter().filter(|l| **l == want).count().max(1) as f32
    };
    0.5 * (rate(true) + rate(false))
}

fn train(
    agent: &Agent,
    trainer: &mut Trainer,
    replay: &mut LatentReplay,
    m: ModuleKind,
    iters: usize,
) -> Vec<f32> {
    let means = trainer
        .train_module(agent, replay, m, iters, 50, |_| {})
        .unwrap();
    println!("{m}: chunk mean losses {means:?}");
    means
}

#[test]
fn constraint_estimator_learns_wall_entries_and_generalises_to_held_out_episodes() {
    let (agent, mut trainer, mut replay) = setup(1, |_| {});
    let loss = train(&agent, &mut trainer, &mut replay, ModuleKind::Constr, 400);
    let factor = loss[0] / loss[loss.len() - 1];
    let (z, records) = held_out_means(true);
    let prob = column(&agent.constraint.prob(&z).unwrap());
    let labels: Vec<bool> = records.iter().map(|r| r.constraint).collect();
    let acc = balanced_accuracy(&prob, &labels);
    println!("constraint: loss factor {factor:.1}, held-out balanced accuracy {acc:.3}");
    assert!(factor >= 10.0, "loss fell only {factor:.1}×");
    assert!(acc >= 0.70, "held-out balanced accuracy {acc:.3} < 0.70");
}

#[test]
fn goal_indicator_recognises_the_goal_in_held_out_episodes() {
    let (agent, mut trainer, mut replay) = setup(2, |_| {});
    let loss = train(&agent, &mut trainer, &mut replay, ModuleKind::Gi, 400);
    let factor = loss[0] / loss[loss.len() - 1];
    let (z, records) = held_out_means(true);
    let prob = column(&agent.goal.prob(&z).unwrap());
    let labels: Vec<bool> = records.iter().map(|r| r.reward == 0.0).collect();
    let acc = balanced_accuracy(&prob, &labels);
    println!("goal: loss factor {factor:.1}, held-out balanced accuracy {acc:.3}");
    assert!(factor >= 10.0, "loss fell only {factor:.1}×");
    assert!(acc >= 0.90, "held-out balanced accuracy {acc:.3} < 0.90");
}

#[test]
fn safe_set_bellman_loss_falls_and_ranks_held_out_safe_states_above_unsafe_ones() {
    let (agent, mut trainer, mut replay) = setup(3, |_| {});
    let loss = train(&agent, &mut trainer, &mut replay, ModuleKind::Ss, 400);
    let factor = loss[0] / loss[loss.len() - 1];
    let (z, records) = held_out_means(false);
    let prob = column(&agent.safe_set.online.prob(&z).unwrap());
    let mean_where = |want: bool| {
        let v: Vec<f32> = prob
            .iter()
            .zip(&records)
            .filter(|(_, r)| r.safe_set == want)
            .map(|(p, _)| *p)
            .collect();
        v.iter().sum::<f32>() / v.len() as f32
    };
    let (safe, unsafe_) = (mean_where(true), mean_where(false));
    println!("safe set: loss factor {factor:.1}, held-out P(safe) {safe:.3} vs {unsafe_:.3}");
    assert!(factor >= 3.0, "loss fell only {factor:.1}×");
    assert!(safe - unsafe_ >= 0.4, "P(safe) {safe:.3} vs {unsafe_:.3}");
}

/// NLL per dimension of the best single Gaussian over all training deltas z′ − z (latent noise
/// included): what a model that ignores z and the action could reach at best.
fn unconditional_delta_nll(r: &LatentReplay) -> f32 {
    let l = r.latent();
    let noise_var = 2.0 * (2.0 * LOG_STD).exp();
    let total: f32 = (0..l)
        .map(|d| {
            let v: Vec<f32> = (0..r.len())
                .map(|i| r.next_mean(i)[d] - r.mean(i)[d])
                .collect();
            let n = v.len() as f32;
            let m = v.iter().sum::<f32>() / n;
            let var = v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / n + noise_var;
            0.5 * (2.0 * std::f32::consts::PI * std::f32::consts::E * var).ln()
        })
        .sum();
    total / l as f32
}

#[test]
fn dynamics_nll_falls_below_the_best_action_blind_gaussian() {
    let (agent, mut trainer, mut replay) = setup(4, |_| {});
    let loss = train(&agent, &mut trainer, &mut replay, ModuleKind::Dyn, 400);
    let (first, last) = (loss[0], loss[loss.len() - 1]);
    let blind = unconditional_delta_nll(&replay);
    println!("dynamics: NLL {first:.3} → {last:.3} nats; best action-blind Gaussian {blind:.3}");
    assert!(
        first - last >= 0.25,
        "NLL fell by only {:.2} nats",
        first - last
    );
    assert!(
        last <= blind - 0.15,
        "NLL {last:.3} not below the action-blind {blind:.3} − 0.15"
    );
}

#[test]
fn value_regresses_reward_to_go_then_td_keeps_held_out_values_ordered_by_reward_to_go() {
    let (agent, mut trainer, mut replay) = setup(5, |c| c.value.val_init_iters = 300);
    let mc = train(&agent, &mut trainer, &mut replay, ModuleKind::Val, 300);
    let factor = mc[0] / mc[mc.len() - 1];
    // The counter carries over: the next call's iterations are TD updates.
    let td = train(&agent, &mut trainer, &mut replay, ModuleKind::Val, 100);
    let (z, records) = held_out_means(false);
    let v = column(&agent.value.forward(&z).unwrap());
    let on: Vec<(f32, f32)> = v
        .iter()
        .zip(&records)
        .filter(|(_, r)| r.on_policy)
        .map(|(v, r)| (*v, r.rtg))
        .collect();
    let corr = pearson(&on);
    println!(
        "value: rtg loss factor {factor:.1}, TD losses {td:?}, held-out corr(V, rtg) {corr:.3}"
    );
    assert!(factor >= 5.0, "reward-to-go loss fell only {factor:.1}×");
    assert!(td.iter().all(|l| l.is_finite()));
    assert!(
        corr >= 0.8,
        "held-out correlation of V with reward-to-go {corr:.3} < 0.8"
    );
}

fn pearson(xy: &[(f32, f32)]) -> f32 {
    let n = xy.len() as f32;
    let (mx, my) = (
        xy.iter().map(|p| p.0).sum::<f32>() / n,
        xy.iter().map(|p| p.1).sum::<f32>() / n,
    );
    let cov: f32 = xy.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let vx: f32 = xy.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    let vy: f32 = xy.iter().map(|(_, y)| (y - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

#[test]
fn vae_reconstruction_loss_falls_within_a_few_small_batches() {
    let eps = [episodes(0, 0..2), episodes(1, 0..2)].concat();
    let pool = ImagePool::from_episodes(3, &eps);
    let mut cfg = config();
    cfg.vae.batch = 8;
    let agent = Agent::new(cfg.agent_spec(), &Device::Cpu, 6).unwrap();
    let mut trainer = Trainer::new(&agent, &cfg, 6).unwrap();
    let loss = trainer
        .train_vae(&agent, &pool, 30, 5, |c| println!("vae {c:?}"))
        .unwrap();
    let factor = loss[0] / loss[loss.len() - 1];
    println!("vae: chunk mean losses {loss:?}, factor {factor:.1}");
    assert!(factor >= 2.0, "VAE loss fell only {factor:.1}×");
}
