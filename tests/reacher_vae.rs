//! Learning test: a reacher VAE trained with the quick preset's recipe (batch, learning rate and
//! its decay, log-std bias, foreground weighting) on a small seeded budget encodes where the
//! finger is: the linear probe's held-out R² of the fingertip clears a bar. Without the recipe
//! the same budget leaves the VAE on the mean-image plateau, where the arm is a blur.
//!
//! The budget and bar were measured on two shared cores (`cargo test --release --test
//! reacher_vae -- --nocapture` prints the numbers).

use candle_core::Device;
use ls3::config::Config;
use ls3::data::collect::demo_episode;
use ls3::data::episode::Episode;
use ls3::data::images::ImagePool;
use ls3::env::EnvKind;
use ls3::model::agent::Agent;
use ls3::model::probe::probe;
use ls3::train::Trainer;

const ENV: EnvKind = EnvKind::Reacher;
/// VAE iterations of the test (the quick preset trains longer).
const ITERS: usize = 600;
/// Held-out R² both fingertip coordinates must reach.
const BAR: f64 = 0.8;

fn episodes() -> Vec<Episode> {
    let sets = ENV.demo_sets();
    let counts = [20, 10, 30];
    sets.iter()
        .zip(counts)
        .flat_map(|(set, n)| (0..n).map(move |i| demo_episode(ENV, set, 0, i)))
        .collect()
}

#[test]
fn quick_recipe_vae_encodes_the_reacher_fingertip() {
    let eps = episodes();
    let pool = ImagePool::from_episodes(9, &eps);
    let mut cfg = Config::quick(ENV);
    cfg.vae.iterations = ITERS;
    let agent = Agent::new(cfg.agent_spec(), &Device::Cpu, 11).unwrap();
    let mut trainer = Trainer::new(&agent, &cfg, 11).unwrap();
    let loss = trainer
        .train_vae(&agent, &pool, ITERS, ITERS / 4, |_| {})
        .unwrap();
    let report = probe(&agent, &eps, 4000).unwrap();
    println!(
        "reacher vae: {} images, {ITERS} iterations, chunk losses {loss:?}\n{}",
        pool.len(),
        report.summary()
    );
    for q in ["finger x", "finger y"] {
        let r2 = report.r2(q).unwrap();
        assert!(r2 >= BAR, "{q}: held-out R² {r2:.3} < {BAR}");
    }
}
