//! The latent replay buffer (LS3_SPEC §3): every transition's observations are encoded once,
//! when stored, and kept as the encoder's mean and log-std; each draw then samples a fresh latent
//! μ + σ·ε for z and z′, so the latent modules see the encoder's uncertainty as noise.
//!
//! A fixed-capacity ring: once full, each new transition overwrites the oldest.

use super::episode::{Episode, Transition};
use super::images::distinct_observations;
use candle_core::{Device, Tensor};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// What turns observations into latents when they are stored: the agent's encoder
/// (`model::agent::Agent` implements it).
pub trait ObservationEncoder {
    /// Bytes of one observation the encoder takes (`channels × 64 × 64`).
    fn observation_len(&self) -> usize;
    /// Encoder means and log-stds of `images`, each flattened `[n × latent]`.
    fn encode_observations(&self, images: &[&[u8]]) -> candle_core::Result<(Vec<f32>, Vec<f32>)>;
}

/// Which transitions a draw may return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Filter {
    All,
    /// Task demos and agent episodes (what the value function learns from).
    OnPolicy,
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Filter::All => "stored",
            Filter::OnPolicy => "on-policy",
        })
    }
}

/// Why the buffer could not store or draw.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the replay buffer holds no {0} transitions to sample from")]
    Empty(Filter),
    #[error("observations of {found} bytes do not fit the agent's encoder ({expected} bytes)")]
    ObservationSize { expected: usize, found: usize },
    #[error("latent sizes differ: buffer {expected}, given {found}")]
    LatentSize { expected: usize, found: usize },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The labels and action of one stored transition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    pub action: [f32; 2],
    pub reward: f32,
    pub done: bool,
    pub constraint: bool,
    pub safe_set: bool,
    pub on_policy: bool,
    pub rtg: f32,
}

impl From<&Transition> for Record {
    fn from(t: &Transition) -> Self {
        Self {
            action: t.action,
            reward: t.reward,
            done: t.done,
            constraint: t.constraint,
            safe_set: t.safe_set,
            on_policy: t.on_policy,
            rtg: t.rtg,
        }
    }
}

impl Record {
    fn passes(&self, filter: Filter) -> bool {
        match filter {
            Filter::All => true,
            Filter::OnPolicy => self.on_policy,
        }
    }
}

/// A drawn batch. Tensors are `[batch, …]` from [`LatentReplay::sample`] and
/// `[members, batch, …]` from [`LatentReplay::sample_members`]; labels are `f32` 0/1 with a
/// trailing dimension of 1.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Fresh latent sample of the observation, `[…, latent]`.
    pub z: Tensor,
    /// Fresh latent sample of the next observation, `[…, latent]`.
    pub z_next: Tensor,
    /// `[…, 2]`.
    pub action: Tensor,
    pub reward: Tensor,
    /// Reward == 0: the goal holds in the next observation.
    pub goal: Tensor,
    pub done: Tensor,
    pub constraint: Tensor,
    pub safe_set: Tensor,
    pub on_policy: Tensor,
    pub rtg: Tensor,
    /// The slots drawn, in the order of the flattened leading dimensions.
    pub slots: Vec<usize>,
}

/// Encoder means and log-stds of stored observations, plus their transitions' labels.
#[derive(Clone, Debug)]
pub struct LatentReplay {
    latent: usize,
    capacity: usize,
    /// Slot the next insert writes to.
    head: usize,
    inserted: u64,
    mean: Vec<f32>,
    log_std: Vec<f32>,
    next_mean: Vec<f32>,
    next_log_std: Vec<f32>,
    records: Vec<Record>,
    /// Slots of on-policy transitions; rebuilt on the first draw after an insert.
    on_policy: Option<Vec<usize>>,
    /// Per-dimension std of the stored means; rebuilt on the first use after an insert.
    spread: Option<Vec<f32>>,
}

impl LatentReplay {
    /// An empty buffer of `capacity` transitions over `latent`-dimensional latents.
    pub fn new(capacity: usize, latent: usize) -> Self {
        assert!(capacity > 0, "replay capacity must be positive");
        Self {
            latent,
            capacity,
            head: 0,
            inserted: 0,
            mean: Vec::new(),
            log_std: Vec::new(),
            next_mean: Vec::new(),
            next_log_std: Vec::new(),
            records: Vec::new(),
            on_policy: None,
            spread: None,
        }
    }

    /// Transitions held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Maximum transitions held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Latent size.
    pub fn latent(&self) -> usize {
        self.latent
    }

    /// Transitions inserted over the buffer's life (including overwritten ones).
    pub fn inserted(&self) -> u64 {
        self.inserted
    }

    /// Transitions held that pass `filter`.
    pub fn count(&self, filter: Filter) -> usize {
        self.records.iter().filter(|r| r.passes(filter)).count()
    }

    /// Labels of slot `i` (slot order is insertion order only until the ring wraps).
    pub fn record(&self, i: usize) -> &Record {
        &self.records[i]
    }

    /// Encoder mean of slot `i`'s observation.
    pub fn mean(&self, i: usize) -> &[f32] {
        &self.mean[i * self.latent..(i + 1) * self.latent]
    }

    /// Encoder mean of slot `i`'s next observation.
    pub fn next_mean(&self, i: usize) -> &[f32] {
        &self.next_mean[i * self.latent..(i + 1) * self.latent]
    }

    /// Stores one encoded transition, overwriting the oldest once full.
    pub fn insert(
        &mut self,
        (mean, log_std): (&[f32], &[f32]),
        (next_mean, next_log_std): (&[f32], &[f32]),
        record: Record,
    ) -> Result<(), ReplayError> {
        for s in [mean, log_std, next_mean, next_log_std] {
            if s.len() != self.latent {
                return Err(ReplayError::LatentSize {
                    expected: self.latent,
                    found: s.len(),
                });
            }
        }
        let l = self.latent;
        if self.records.len() < self.capacity {
            self.mean.extend_from_slice(mean);
            self.log_std.extend_from_slice(log_std);
            self.next_mean.extend_from_slice(next_mean);
            self.next_log_std.extend_from_slice(next_log_std);
            self.records.push(record);
        } else {
            let r = self.head * l..(self.head + 1) * l;
            self.mean[r.clone()].copy_from_slice(mean);
            self.log_std[r.clone()].copy_from_slice(log_std);
            self.next_mean[r.clone()].copy_from_slice(next_mean);
            self.next_log_std[r].copy_from_slice(next_log_std);
            self.records[self.head] = record;
        }
        self.head = (self.head + 1) % self.capacity;
        self.inserted += 1;
        self.on_policy = None;
        self.spread = None;
        Ok(())
    }

    /// Encodes the episode's observations (each distinct image once) and stores its transitions.
    pub fn add_episode(
        &mut self,
        encoder: &impl ObservationEncoder,
        ep: &Episode,
    ) -> Result<(), ReplayError> {
        let expected = encoder.observation_len();
        if ep.obs_len() != expected {
            return Err(ReplayError::ObservationSize {
                expected,
                found: ep.obs_len(),
            });
        }
        let (images, pairs) = distinct_observations(ep);
        let (mean, log_std) = encoder.encode_observations(&images)?;
        let l = self.latent;
        if mean.len() != images.len() * l {
            return Err(ReplayError::LatentSize {
                expected: l,
                found: mean.len() / images.len().max(1),
            });
        }
        let row = |i: usize| i * l..(i + 1) * l;
        for (t, [o, n]) in pairs.into_iter().enumerate() {
            self.insert(
                (&mean[row(o)], &log_std[row(o)]),
                (&mean[row(n)], &log_std[row(n)]),
                Record::from(&ep.transitions[t]),
            )?;
        }
        Ok(())
    }

    /// Standard deviation of each latent dimension of the stored observation means (zeros
    /// when empty; cached until the next insert).
    pub fn spread(&mut self) -> &[f32] {
        let (l, mean) = (self.latent, &self.mean);
        self.spread.get_or_insert_with(|| {
            let n = (mean.len() / l).max(1) as f64;
            let mut sum = vec![0f64; l];
            let mut sq = vec![0f64; l];
            for row in mean.chunks(l) {
                for (d, &v) in row.iter().enumerate() {
                    sum[d] += v as f64;
                    sq[d] += (v as f64) * (v as f64);
                }
            }
            (0..l)
                .map(|d| {
                    let m = sum[d] / n;
                    (sq[d] / n - m * m).max(0.0).sqrt() as f32
                })
                .collect()
        })
    }

    /// Slots of the on-policy transitions (cached until the next insert).
    fn on_policy_slots(&mut self) -> &[usize] {
        let records = &self.records;
        self.on_policy.get_or_insert_with(|| {
            (0..records.len())
                .filter(|&i| records[i].on_policy)
                .collect()
        })
    }

    fn draw(
        &mut self,
        n: usize,
        filter: Filter,
        rng: &mut impl Rng,
    ) -> Result<Vec<usize>, ReplayError> {
        let len = self.records.len();
        let slots = match filter {
            Filter::All => None,
            Filter::OnPolicy => Some(self.on_policy_slots()),
        };
        match slots {
            None if len == 0 => Err(ReplayError::Empty(filter)),
            None => Ok((0..n).map(|_| rng.random_range(0..len)).collect()),
            Some([]) => Err(ReplayError::Empty(filter)),
            Some(s) => Ok((0..n).map(|_| s[rng.random_range(0..s.len())]).collect()),
        }
    }

    /// `batch` transitions drawn uniformly with replacement among those passing `filter`, with
    /// fresh latent samples; tensors `[batch, …]` on `device`.
    pub fn sample(
        &mut self,
        batch: usize,
        filter: Filter,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Batch, ReplayError> {
        let slots = self.draw(batch, filter, rng)?;
        self.gather(slots, &[batch], rng, device)
    }

    /// An independent batch per ensemble member: tensors `[members, batch, …]`.
    pub fn sample_members(
        &mut self,
        members: usize,
        batch: usize,
        filter: Filter,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Batch, ReplayError> {
        let slots = self.draw(members * batch, filter, rng)?;
        self.gather(slots, &[members, batch], rng, device)
    }

    fn gather(
        &self,
        slots: Vec<usize>,
        lead: &[usize],
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Batch, ReplayError> {
        let l = self.latent;
        let n = slots.len();
        let mut z = Vec::with_capacity(n * l);
        let mut z_next = Vec::with_capacity(n * l);
        for &s in &slots {
            let r = s * l..(s + 1) * l;
            for (m, ls) in self.mean[r.clone()].iter().zip(&self.log_std[r.clone()]) {
                let eps: f32 = StandardNormal.sample(rng);
                z.push(m + ls.exp() * eps);
            }
            for (m, ls) in self.next_mean[r.clone()].iter().zip(&self.next_log_std[r]) {
                let eps: f32 = StandardNormal.sample(rng);
                z_next.push(m + ls.exp() * eps);
            }
        }
        let shape = |last: usize| {
            let mut d = lead.to_vec();
            d.push(last);
            d
        };
        let column = |f: &dyn Fn(&Record) -> f32| -> candle_core::Result<Tensor> {
            let v: Vec<f32> = slots.iter().map(|&s| f(&self.records[s])).collect();
            Tensor::from_vec(v, shape(1), device)
        };
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let actions: Vec<f32> = slots.iter().flat_map(|&s| self.records[s].action).collect();
        Ok(Batch {
            z: Tensor::from_vec(z, shape(l), device)?,
            z_next: Tensor::from_vec(z_next, shape(l), device)?,
            action: Tensor::from_vec(actions, shape(2), device)?,
            reward: column(&|r| r.reward)?,
            goal: column(&|r| flag(r.reward == 0.0))?,
            done: column(&|r| flag(r.done))?,
            constraint: column(&|r| flag(r.constraint))?,
            safe_set: column(&|r| flag(r.safe_set))?,
            on_policy: column(&|r| flag(r.on_policy))?,
            rtg: column(&|r| r.rtg)?,
            slots,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::collect::demo_episode;
    use crate::env::EnvKind;
    use crate::model::agent::{Agent, AgentSpec};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const L: usize = 4;

    fn record(on_policy: bool, reward: f32) -> Record {
        Record {
            action: [reward, 1.0],
            reward,
            done: false,
            constraint: false,
            safe_set: false,
            on_policy,
            rtg: 0.0,
        }
    }

    #[test]
    fn spread_is_the_std_of_the_stored_means_and_follows_inserts() {
        let mut r = LatentReplay::new(8, L);
        assert_eq!(r.spread(), &[0.0; L]);
        put(&mut r, 1.0, record(true, -1.0));
        put(&mut r, 3.0, record(true, -1.0));
        assert!(r.spread().iter().all(|&s| (s - 1.0).abs() < 1e-6));
        put(&mut r, 2.0, record(true, -1.0));
        let want = (2.0f32 / 3.0).sqrt();
        assert!(r.spread().iter().all(|&s| (s - want).abs() < 1e-6));
    }

    /// Inserts a transition whose means are all `v` and whose std is tiny.
    fn put(r: &mut LatentReplay, v: f32, rec: Record) {
        let m = [v; L];
        let s = [-20.0; L];
        r.insert((&m, &s), (&m, &s), rec).unwrap();
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn a_full_ring_overwrites_the_oldest_transitions() {
        let mut r = LatentReplay::new(3, L);
        for v in 0..5 {
            put(&mut r, v as f32, record(true, -1.0));
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.inserted(), 5);
        let held: Vec<f32> = (0..3).map(|i| r.mean(i)[0]).collect();
        assert_eq!(held, [3.0, 4.0, 2.0]);
        let mut rng = StdRng::seed_from_u64(0);
        let b = r.sample(64, Filter::All, &mut rng, &Device::Cpu).unwrap();
        assert!(values(&b.z).iter().all(|&z| (1.99..4.01).contains(&z)));
    }

    #[test]
    fn filtered_draws_return_only_flagged_transitions() {
        let mut r = LatentReplay::new(10, L);
        for v in 0..10 {
            put(&mut r, v as f32, record(v % 3 == 0, -1.0));
        }
        let mut rng = StdRng::seed_from_u64(1);
        let b = r
            .sample_members(5, 40, Filter::OnPolicy, &mut rng, &Device::Cpu)
            .unwrap();
        assert!(b.slots.iter().all(|&s| r.record(s).on_policy));
        assert!(values(&b.on_policy).iter().all(|&f| f == 1.0));
        let mut seen: Vec<usize> = b.slots.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, [0, 3, 6, 9]);
        // Overwriting the on-policy transitions leaves none to draw.
        for v in 0..10 {
            put(&mut r, v as f32, record(false, -1.0));
        }
        let err = r.sample(8, Filter::OnPolicy, &mut rng, &Device::Cpu);
        assert!(matches!(err, Err(ReplayError::Empty(Filter::OnPolicy))));
        let empty = LatentReplay::new(4, L).sample(8, Filter::All, &mut rng, &Device::Cpu);
        assert!(matches!(empty, Err(ReplayError::Empty(Filter::All))));
    }

    #[test]
    fn member_draws_are_shaped_members_by_batch_with_independent_indices() {
        let mut r = LatentReplay::new(100, L);
        for v in 0..100 {
            put(
                &mut r,
                v as f32,
                record(true, if v == 7 { 0.0 } else { -1.0 }),
            );
        }
        let mut rng = StdRng::seed_from_u64(2);
        let b = r
            .sample_members(5, 16, Filter::All, &mut rng, &Device::Cpu)
            .unwrap();
        assert_eq!(b.z.dims(), [5, 16, L]);
        assert_eq!(b.z_next.dims(), [5, 16, L]);
        assert_eq!(b.action.dims(), [5, 16, 2]);
        for t in [
            &b.reward,
            &b.goal,
            &b.done,
            &b.constraint,
            &b.safe_set,
            &b.rtg,
        ] {
            assert_eq!(t.dims(), [5, 16, 1]);
        }
        assert_ne!(b.slots[..16], b.slots[16..32], "members share a batch");
        // Row k of every tensor belongs to slot k.
        let z = values(&b.z);
        let a = values(&b.action);
        let goal = values(&b.goal);
        for (k, &s) in b.slots.iter().enumerate() {
            assert!((z[k * L] - s as f32).abs() < 1e-3);
            assert_eq!(a[2 * k], if s == 7 { 0.0 } else { -1.0 });
            assert_eq!(goal[k], if s == 7 { 1.0 } else { 0.0 });
        }
        let single = r.sample(16, Filter::All, &mut rng, &Device::Cpu).unwrap();
        assert_eq!(single.z.dims(), [16, L]);
        assert_eq!(single.done.dims(), [16, 1]);
    }

    #[test]
    fn every_draw_samples_fresh_latent_noise() {
        let mut r = LatentReplay::new(1, L);
        let (m, s) = ([0.5; L], [0.0; L]);
        r.insert((&m, &s), (&m, &s), record(true, -1.0)).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let a = r.sample(2, Filter::All, &mut rng, &Device::Cpu).unwrap();
        let b = r.sample(2, Filter::All, &mut rng, &Device::Cpu).unwrap();
        let (za, zb) = (values(&a.z), values(&b.z));
        assert_eq!(a.slots, [0, 0]);
        assert_ne!(za[..L], za[L..], "two rows of one draw share noise");
        assert_ne!(za, zb, "two draws share noise");
        assert_ne!(za, values(&a.z_next), "z and z' share noise");
        // Same seed, same draws.
        let mut again = StdRng::seed_from_u64(3);
        let c = r.sample(2, Filter::All, &mut again, &Device::Cpu).unwrap();
        assert_eq!(values(&c.z), za);
    }

    #[test]
    fn stored_episodes_chain_next_obs_into_the_following_obs() {
        for (env, set) in [(EnvKind::Navigation, 0), (EnvKind::Reacher, 2)] {
            let agent = Agent::new(AgentSpec::for_env(env), &Device::Cpu, 0).unwrap();
            let ep = demo_episode(env, &env.demo_sets()[set], 0, 0);
            let mut r = LatentReplay::new(1000, agent.spec.latent);
            r.add_episode(&agent, &ep).unwrap();
            assert_eq!(r.len(), ep.len(), "{env}");
            for t in 0..ep.len() - 1 {
                assert_eq!(r.next_mean(t), r.mean(t + 1), "{env} step {t}");
            }
            assert!(r.record(ep.len() - 1).done);
            let (m, _) = agent.encode_observations(&[ep.next_obs_at(3)]).unwrap();
            let close = m
                .iter()
                .zip(r.next_mean(3))
                .all(|(a, b)| (a - b).abs() < 1e-4);
            assert!(
                close,
                "{env}: batched encoding differs from a single image's"
            );
        }
    }
}
