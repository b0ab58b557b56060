//! The agent's CPU rollout: the same computation as the portable tensor rollout of `models.rs`,
//! organised for the cache. Candidates are split into groups of about [`GROUP_ROWS`] particles;
//! one thread imagines a whole group (every step of the dynamics, then every head on every
//! latent) in buffers that stay in its L2 cache, and the threads of candle's CPU pool take groups
//! from a shared counter until none is left. Only the per-candidate summaries leave a group.
//!
//! Inside a group every activation is feature-major (see [`super::kernel`]): row `c·P + q` is
//! particle `q` of the group's candidate `c`.
//!
//! Models packed in [`Precision::Bf16`] run their dense layers in bf16 ([`super::bf16_dense`]):
//! each MLP converts its input to bf16 pairs, its layers hand pairs to each other, and its last
//! layer writes f32. Latents, noise, the Gaussian step, the heads' one-output layers and every
//! summary stay f32.

use super::bf16_dense::{Out, dense_pairs, to_pairs};
use super::kernel::{PackedLayer, dense, dot, gaussian_step};
use super::rollout::{Rollout, RolloutStats, delta_scale};
use crate::model::agent::{Agent, ModuleKind};
use crate::model::conv::Precision;
use crate::model::mlp::Mlp;
use candle_core::{Result, Tensor};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Particles per group of candidates (rounded down to whole candidates; 12 candidates of 20
/// particles at the paper setting): a group's activations stay in L2, and every weight panel is
/// reused over many rows.
pub const GROUP_ROWS: usize = 240;
/// Rows per pass through the heads.
const BLOCK_ROWS: usize = 240;

/// The agent's latent models with host-side weights packed for [`super::kernel`] — a snapshot,
/// taken once per planner call (under a millisecond) — and each thread's buffers, kept between
/// rollouts.
#[derive(Debug)]
pub struct FusedModels {
    latent: usize,
    /// Per member: the layers, the last predicting [mean | log-std] of the latent delta (the
    /// delta normalisation folded in).
    dynamics: Vec<Vec<PackedLayer>>,
    /// Constraint, goal.
    step: Vec<Head>,
    /// Value members…, safe set.
    terminal: Vec<Head>,
    /// Buffers per thread of candle's CPU pool (indexed by its thread id).
    scratch: Vec<Mutex<Option<Scratch>>>,
}

/// A one-output MLP: ReLU layers, then the output layer as a weight vector.
///
/// The heads reading the same latent are not fused into one wide first layer here: with
/// feature-major activations the wide layer's output is just the heads' outputs one after the
/// other, and computing them head by head keeps each head's activations and weights in L2.
#[derive(Clone, Debug)]
struct Head {
    hidden: Vec<PackedLayer>,
    out_w: Vec<f32>,
    out_b: f32,
}

/// A linear layer as host data: `w` `[out][in]` (as stored), `b` `[out]`.
struct HostLinear {
    k: usize,
    n: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

fn host_linear(w: &Tensor, b: Option<&Tensor>) -> Result<HostLinear> {
    let (n, k) = w.dims2()?;
    Ok(HostLinear {
        k,
        n,
        w: w.flatten_all()?.to_vec1::<f32>()?,
        b: match b {
            Some(b) => b.to_vec1::<f32>()?,
            None => vec![0.0; n],
        },
    })
}

impl Head {
    fn new(net: &Mlp, precision: Precision) -> Result<Self> {
        let layers: Vec<HostLinear> = net
            .layers()
            .iter()
            .map(|l| host_linear(l.weight(), l.bias()))
            .collect::<Result<_>>()?;
        let (last, hidden) = layers.split_last().expect("an MLP has layers");
        if last.n != 1 || hidden.is_empty() {
            return Err(candle_core::Error::Msg(
                "planner heads are MLPs with one output".into(),
            ));
        }
        Ok(Self {
            hidden: hidden
                .iter()
                .map(|h| PackedLayer::with_precision(h.k, h.n, &h.w, &h.b, precision))
                .collect(),
            out_w: last.w.clone(), // one output: its weight row
            out_b: last.b[0],
        })
    }

    /// Widest hidden layer.
    fn width(&self) -> usize {
        widest(&self.hidden)
    }
}

/// Logits of every head for `rows` latents (features `ldz` apart) into `out[head · ldo + row]`.
fn logits(
    heads: &[Head],
    z: &[f32],
    ldz: usize,
    rows: usize,
    bufs: &mut Buffers,
    out: &mut [f32],
    ldo: usize,
) {
    for r0 in (0..rows).step_by(BLOCK_ROWS) {
        let nb = BLOCK_ROWS.min(rows - r0);
        for (h, head) in heads.iter().enumerate() {
            let (x, ld) = forward(&head.hidden, &z[r0..], ldz, nb, bufs, true);
            dot(x, ld, nb, &head.out_w, head.out_b, &mut out[h * ldo + r0..]);
        }
    }
}

/// The widest input or output of `layers`.
fn widest(layers: &[PackedLayer]) -> usize {
    layers.iter().map(|l| l.k().max(l.n())).max().unwrap_or(0)
}

/// Activations between layers: f32 features, and the bf16 pairs of bf16 layers.
#[derive(Debug)]
struct Buffers {
    f32: [Vec<f32>; 2],
    pairs: [Vec<u32>; 2],
}

/// Runs `layers` on `rows` rows of `x` (features `ldx` apart), ReLU after each layer except the
/// last unless `relu_last`; returns the output and its feature stride (`rows`).
fn forward<'a>(
    layers: &[PackedLayer],
    x: &'a [f32],
    ldx: usize,
    rows: usize,
    bufs: &'a mut Buffers,
    relu_last: bool,
) -> (&'a [f32], usize) {
    if layers
        .first()
        .is_some_and(|l| l.precision() == Precision::Bf16)
    {
        return forward_bf16(layers, x, ldx, rows, bufs, relu_last);
    }
    let [a, b] = &mut bufs.f32;
    for (i, layer) in layers.iter().enumerate() {
        let relu = relu_last || i + 1 < layers.len();
        match i {
            0 => dense(x, ldx, rows, layer, a, rows, relu),
            _ if i % 2 == 1 => dense(a, rows, rows, layer, b, rows, relu),
            _ => dense(b, rows, rows, layer, a, rows, relu),
        }
    }
    match layers.len() {
        0 => (x, ldx),
        n if n % 2 == 1 => (&a[..], rows),
        _ => (&b[..], rows),
    }
}

/// [`forward`] for layers packed in bf16: `x` converted to pairs once, pairs between the
/// layers, the last layer's output in f32.
fn forward_bf16<'a>(
    layers: &[PackedLayer],
    x: &[f32],
    ldx: usize,
    rows: usize,
    bufs: &'a mut Buffers,
    relu_last: bool,
) -> (&'a [f32], usize) {
    let [a, b] = &mut bufs.pairs;
    to_pairs(x, ldx, rows, layers[0].k(), a, rows);
    for (i, layer) in layers.iter().enumerate() {
        let relu = relu_last || i + 1 < layers.len();
        let (input, next) = if i % 2 == 0 {
            (&*a, &mut *b)
        } else {
            (&*b, &mut *a)
        };
        let out = if i + 1 == layers.len() {
            Out::F32(&mut bufs.f32[0])
        } else {
            Out::Pairs(next)
        };
        dense_pairs(input, rows, rows, layer, out, rows, relu);
    }
    (&bufs.f32[0], rows)
}

/// Per-thread buffers of one group.
#[derive(Debug)]
struct Scratch {
    /// (candidates per group, horizon, particles) the buffers are sized for.
    shape: (usize, usize, usize),
    /// One candidate's noise as [`Rollout::noise`] draws it.
    own: Vec<f32>,
    /// The group's noise, `[step][dim][row]`.
    eps: Vec<f32>,
    /// Latent after each step, `[step][feature][row]`: `latent` dims, then the two action
    /// features the next step's dynamics reads.
    zs: Vec<f32>,
    /// Step 0's dynamics input, `[feature][candidate]`.
    first: Vec<f32>,
    /// One member's particles of a step, gathered (`[feature][row]`), under
    /// [`Rollout::particle_members`].
    gin: Vec<f32>,
    bufs: Buffers,
    logits: Vec<f32>,
    out: RolloutStats,
}

/// Step 0's dynamics input for candidates `c0..c0 + cands`: the start latent and each
/// candidate's first action, `[feature][candidate]` with stride `ldc`.
fn first_inputs(job: &Rollout, c0: usize, cands: usize, l: usize, ldc: usize, first: &mut [f32]) {
    for d in 0..l {
        first[d * ldc..d * ldc + cands].fill(job.start[d]);
    }
    for c in 0..cands {
        let a = job.action(c0 + c, 0);
        first[l * ldc + c] = a[0];
        first[(l + 1) * ldc + c] = a[1];
    }
}

/// Writes step `t`'s action of each candidate into the action features of its particles' rows
/// of `prev` (`(latent, stride, particles)` = `dims`).
fn step_actions(
    job: &Rollout,
    c0: usize,
    cands: usize,
    t: usize,
    dims: (usize, usize, usize),
    prev: &mut [f32],
) {
    let (l, ld, p) = dims;
    for c in 0..cands {
        let a = job.action(c0 + c, t);
        prev[l * ld + c * p..l * ld + (c + 1) * p].fill(a[0]);
        prev[(l + 1) * ld + c * p..(l + 1) * ld + (c + 1) * p].fill(a[1]);
    }
}

impl FusedModels {
    /// Packs the agent's latent modules (reads every weight once) for the process-wide precision
    /// ([`crate::model::conv::precision`]).
    pub fn from_agent(agent: &Agent) -> Result<Self> {
        Self::from_agent_with(agent, crate::model::conv::precision())
    }

    /// [`FusedModels::from_agent`] in precision `precision` (`Bf16` runs in f32 where the CPU
    /// lacks AVX512-BF16).
    pub fn from_agent_with(agent: &Agent, precision: Precision) -> Result<Self> {
        let (mu, std) = delta_scale(&agent.dynamics)?;
        let (mu, std) = (mu.to_vec1::<f32>()?, std.to_vec1::<f32>()?);
        let latent = mu.len();
        let dynamics = (0..crate::model::dynamics::MEMBERS)
            .map(|i| {
                let mut layers = dynamics_member(agent, i)?;
                let last = layers.last_mut().expect("dynamics MLP has layers");
                // delta = μ + std·(mean + σ·ε): scale the mean outputs, shift the log-stds.
                for d in 0..latent {
                    for w in &mut last.w[d * last.k..(d + 1) * last.k] {
                        *w *= std[d];
                    }
                    last.b[d] = last.b[d] * std[d] + mu[d];
                    last.b[latent + d] += std[d].ln();
                }
                Ok(layers
                    .iter()
                    .map(|l| PackedLayer::with_precision(l.k, l.n, &l.w, &l.b, precision))
                    .collect())
            })
            .collect::<Result<_>>()?;
        let mut terminal: Vec<Head> = agent
            .value
            .online
            .iter()
            .map(|net| Head::new(net, precision))
            .collect::<Result<_>>()?;
        terminal.push(Head::new(&agent.safe_set.online.net, precision)?);
        Ok(Self {
            latent,
            dynamics,
            step: vec![
                Head::new(&agent.constraint.net, precision)?,
                Head::new(&agent.goal.net, precision)?,
            ],
            terminal,
            scratch: (0..=candle_core::utils::barrier_pool().n_workers())
                .map(|_| Mutex::new(None))
                .collect(),
        })
    }

    /// The arithmetic of the dense layers: `Bf16` where it was asked for and the CPU has
    /// AVX512-BF16.
    pub fn precision(&self) -> Precision {
        self.dynamics[0][0].precision()
    }

    fn scratch(&self, job: &Rollout, group: usize) -> Scratch {
        let (h, l) = (job.horizon, self.latent);
        let rows = group * job.particles;
        let widest = self
            .dynamics
            .iter()
            .map(|d| widest(d))
            .chain(self.step.iter().chain(&self.terminal).map(Head::width))
            .max()
            .unwrap_or(0);
        let pairs = match self.precision() {
            Precision::Bf16 => widest.div_ceil(2) * rows,
            Precision::F32 => 0,
        };
        let heads = self.step.len().max(self.terminal.len());
        Scratch {
            shape: (group, h, job.particles),
            own: vec![0.0; job.noise_len()],
            eps: vec![0.0; h * l * rows],
            zs: vec![0.0; h * (l + 2) * rows],
            first: vec![0.0; (l + 2) * group],
            gin: vec![0.0; (l + 2) * rows],
            bufs: Buffers {
                f32: [vec![0.0; widest * rows], vec![0.0; widest * rows]],
                pairs: [vec![0; pairs], vec![0; pairs]],
            },
            logits: vec![0.0; heads * rows],
            out: RolloutStats::zeros(group, h, l),
        }
    }

    /// Imagines every candidate of `job` on all threads of candle's CPU pool.
    pub fn rollout(&self, job: &Rollout) -> Result<RolloutStats> {
        Ok(self.rollout_profiled(job)?.0)
    }

    /// [`FusedModels::rollout`], also reporting where the threads spent their time.
    pub fn rollout_profiled(&self, job: &Rollout) -> Result<(RolloutStats, Profile)> {
        self.check(job)?;
        let n = job.population;
        // Groups of about GROUP_ROWS particles, but at least 4 per thread to share the work out.
        let group = (GROUP_ROWS / job.particles)
            .min(n.div_ceil(4 * self.scratch.len()))
            .max(1);
        let groups = n.div_ceil(group);
        let next = AtomicUsize::new(0);
        let result = Mutex::new(RolloutStats::zeros(n, job.horizon, self.latent));
        let profile = Mutex::new(Profile::default());
        let threads = AtomicUsize::new(0);
        candle_core::utils::barrier_pool().execute(|tid| {
            // as in training (`cpu::flush_denormals`): the same arithmetic on every thread, whatever
            // ran on it before
            crate::cpu::flush_denormals();
            let mut slot = self.scratch[tid].lock().expect("scratch lock");
            let mut mine = Profile::default();
            let mut worked = false;
            loop {
                let g = next.fetch_add(1, Ordering::Relaxed);
                if g >= groups {
                    break;
                }
                if slot
                    .as_ref()
                    .is_none_or(|s| s.shape != (group, job.horizon, job.particles))
                {
                    *slot = Some(self.scratch(job, group));
                }
                let s = slot.as_mut().expect("scratch just made");
                let (c0, c1) = (g * group, (g * group + group).min(n));
                self.group(job, c0, c1, s, &mut mine);
                let mut all = result.lock().expect("rollout result lock");
                copy_group(&s.out, &mut all, c0, c1, job.horizon, self.latent);
                worked = true;
            }
            if worked {
                threads.fetch_add(1, Ordering::Relaxed);
            }
            profile.lock().expect("profile lock").add(&mine);
        });
        let mut profile = profile.into_inner().expect("profile lock");
        profile.threads = threads.into_inner();
        Ok((result.into_inner().expect("rollout result lock"), profile))
    }

    /// Rejects a job these models cannot imagine.
    fn check(&self, job: &Rollout) -> Result<()> {
        let fail = |what: String| Err(candle_core::Error::Msg(format!("rollout: {what}")));
        if job.latent() != self.latent {
            return fail(format!(
                "start latent has {} values, the models use {}",
                job.latent(),
                self.latent
            ));
        }
        if job.population == 0 || job.horizon == 0 || job.particles == 0 {
            return fail("population, horizon and particles must be at least 1".into());
        }
        if job.actions.len() != job.population * job.horizon * 2 {
            return fail(format!(
                "{} action values for {} × {} actions",
                job.actions.len(),
                job.population,
                job.horizon
            ));
        }
        if !job.particle_members
            && (job.members.len() != job.horizon
                || job.members.iter().any(|&m| m >= self.dynamics.len()))
        {
            return fail(format!(
                "members {:?} for a horizon of {} and {} members",
                job.members,
                job.horizon,
                self.dynamics.len()
            ));
        }
        Ok(())
    }

    /// Candidates `c0..c1`, summarised into `s.out` (indexed from 0).
    fn group(&self, job: &Rollout, c0: usize, c1: usize, s: &mut Scratch, prof: &mut Profile) {
        let mut clock = Instant::now();
        let mut lap = |slot: &mut f64| {
            let now = Instant::now();
            *slot += (now - clock).as_secs_f64();
            clock = now;
        };
        let (h, p, l) = (job.horizon, job.particles, self.latent);
        let (cands, rows) = (c1 - c0, (c1 - c0) * p);
        // strides of the buffers, sized for a full group
        let (ld, ldc) = (s.shape.0 * p, s.shape.0);
        let step = |t: usize| t * (l + 2) * ld;

        for c in 0..cands {
            job.noise(c0 + c, &mut s.own);
            for t in 0..h {
                for q in 0..p {
                    let src = &s.own[(t * p + q) * l..(t * p + q + 1) * l];
                    for (d, &e) in src.iter().enumerate() {
                        s.eps[(t * l + d) * ld + c * p + q] = e;
                    }
                }
            }
        }
        lap(&mut prof.noise);

        if job.particle_members {
            self.particle_member_steps(job, c0, cands, s);
            lap(&mut prof.dynamics);
            return self.heads(job, cands, s, prof, clock);
        }

        // Step 0: one prediction per candidate, then its particles' samples.
        first_inputs(job, c0, cands, l, ldc, &mut s.first);
        let dynamics = &self.dynamics[job.members[0]];
        let (pred, lp) = forward(dynamics, &s.first, ldc, cands, &mut s.bufs, false);
        for d in 0..l {
            for c in 0..cands {
                let (mean, std) = (pred[d * lp + c], pred[(l + d) * lp + c].exp());
                let base = job.start[d] + mean;
                let at = d * ld + c * p;
                for (z, e) in s.zs[at..at + p].iter_mut().zip(&s.eps[at..at + p]) {
                    *z = base + std * e;
                }
            }
        }

        for t in 1..h {
            let (done, rest) = s.zs.split_at_mut(step(t));
            let prev = &mut done[step(t - 1)..];
            step_actions(job, c0, cands, t, (l, ld, p), prev);
            let dynamics = &self.dynamics[job.members[t]];
            let (pred, lp) = forward(dynamics, prev, ld, rows, &mut s.bufs, false);
            for d in 0..l {
                let e = (t * l + d) * ld;
                gaussian_step(
                    &prev[d * ld..d * ld + rows],
                    &pred[d * lp..d * lp + rows],
                    &pred[(l + d) * lp..(l + d) * lp + rows],
                    &s.eps[e..e + rows],
                    &mut rest[d * ld..d * ld + rows],
                );
            }
        }
        lap(&mut prof.dynamics);
        self.heads(job, cands, s, prof, clock);
    }

    /// The dynamics of [`Rollout::particle_members`]: each member imagines its own particles
    /// (gathered into `s.gin`), step 0 from one prediction per candidate and member.
    fn particle_member_steps(&self, job: &Rollout, c0: usize, cands: usize, s: &mut Scratch) {
        let (h, p, l) = (job.horizon, job.particles, self.latent);
        let count = self.dynamics.len();
        let (ld, ldc) = (s.shape.0 * p, s.shape.0);
        let step = |t: usize| t * (l + 2) * ld;
        first_inputs(job, c0, cands, l, ldc, &mut s.first);
        for (m, dynamics) in self.dynamics.iter().enumerate() {
            let (pred, lp) = forward(dynamics, &s.first, ldc, cands, &mut s.bufs, false);
            for c in 0..cands {
                for q in (m..p).step_by(count) {
                    let r = c * p + q;
                    for d in 0..l {
                        let (mean, std) = (pred[d * lp + c], pred[(l + d) * lp + c].exp());
                        s.zs[d * ld + r] = job.start[d] + mean + std * s.eps[d * ld + r];
                    }
                }
            }
        }
        // Each member's rows, the same on every step.
        let member_rows: Vec<Vec<usize>> = (0..count)
            .map(|m| {
                (0..cands)
                    .flat_map(|c| (m..p).step_by(count).map(move |q| c * p + q))
                    .collect()
            })
            .collect();
        for t in 1..h {
            let (done, rest) = s.zs.split_at_mut(step(t));
            let prev = &mut done[step(t - 1)..];
            step_actions(job, c0, cands, t, (l, ld, p), prev);
            for (dynamics, rows) in self.dynamics.iter().zip(&member_rows) {
                let rm = rows.len();
                if rm == 0 {
                    continue;
                }
                for f in 0..l + 2 {
                    for (i, &r) in rows.iter().enumerate() {
                        s.gin[f * rm + i] = prev[f * ld + r];
                    }
                }
                let (pred, lp) = forward(dynamics, &s.gin, rm, rm, &mut s.bufs, false);
                for d in 0..l {
                    let e = (t * l + d) * ld;
                    for (i, &r) in rows.iter().enumerate() {
                        let std = pred[(l + d) * lp + i].exp();
                        rest[d * ld + r] = prev[d * ld + r] + pred[d * lp + i] + std * s.eps[e + r];
                    }
                }
            }
        }
    }

    /// Every head on the imagined latents of `cands` candidates, summarised into `s.out`.
    fn heads(
        &self,
        job: &Rollout,
        cands: usize,
        s: &mut Scratch,
        prof: &mut Profile,
        mut clock: Instant,
    ) {
        let mut lap = |slot: &mut f64| {
            let now = Instant::now();
            *slot += (now - clock).as_secs_f64();
            clock = now;
        };
        let (h, p, l) = (job.horizon, job.particles, self.latent);
        let (rows, ld) = (cands * p, s.shape.0 * p);
        let step = |t: usize| t * (l + 2) * ld;

        // Constraint and goal on every step; summaries per candidate.
        for t in 0..h {
            let z = &s.zs[step(t)..step(t + 1)];
            logits(&self.step, z, ld, rows, &mut s.bufs, &mut s.logits, ld);
            for c in 0..cands {
                let cons = &s.logits[c * p..(c + 1) * p];
                let goal = &s.logits[ld + c * p..ld + (c + 1) * p];
                let max = cons.iter().copied().fold(f32::NEG_INFINITY, nan_max);
                s.out.constraint[c * h + t] = sigmoid(max);
                s.out.goal_logit[c * h + t] = goal.iter().sum::<f32>() / p as f32;
                for d in 0..l {
                    let sum: f32 = z[d * ld + c * p..d * ld + (c + 1) * p].iter().sum();
                    s.out.latents[(c * h + t) * l + d] = sum / p as f32;
                }
            }
        }
        lap(&mut prof.step_heads);

        // With every step judged, the safe set on the earlier latents: the smallest mean so far,
        // kept in the output until the final step's joins it.
        let members = self.terminal.len() - 1;
        let every_step = job.safe_set_every_step;
        if every_step {
            let ss = &self.terminal[members..];
            s.out.safe_set[..cands].fill(f32::INFINITY);
            for t in 0..h - 1 {
                let z = &s.zs[step(t)..step(t + 1)];
                logits(ss, z, ld, rows, &mut s.bufs, &mut s.logits, ld);
                for (c, low) in s.out.safe_set[..cands].iter_mut().enumerate() {
                    let sum: f32 = s.logits[c * p..(c + 1) * p]
                        .iter()
                        .map(|&x| sigmoid(x))
                        .sum();
                    *low = nan_min(*low, sum / p as f32);
                }
            }
        }

        // Value members and safe set on the final latents.
        let z = &s.zs[step(h - 1)..step(h)];
        logits(&self.terminal, z, ld, rows, &mut s.bufs, &mut s.logits, ld);
        let particle_value =
            |r: usize| (0..members).map(|m| s.logits[m * ld + r]).sum::<f32>() / members as f32;
        for c in 0..cands {
            let (mut value, mut safe) = (0f32, 0f32);
            for q in 0..p {
                let r = c * p + q;
                value += particle_value(r);
                safe += sigmoid(s.logits[members * ld + r]);
            }
            let mean = value / p as f32;
            let var = (0..p)
                .map(|q| (particle_value(c * p + q) - mean).powi(2))
                .sum::<f32>()
                / p as f32;
            s.out.value[c] = mean;
            s.out.value_std[c] = var.sqrt();
            let end = safe / p as f32;
            s.out.safe_set[c] = if every_step {
                nan_min(end, s.out.safe_set[c])
            } else {
                end
            };
        }
        lap(&mut prof.final_heads);
    }
}

/// Thread-seconds of a fused rollout by phase, summed over the threads that took part.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Profile {
    /// Drawing the particles' Gaussian noise.
    pub noise: f64,
    /// The dynamics MLP and the sampled latent steps.
    pub dynamics: f64,
    /// Constraint and goal heads on every step, and the per-step summaries.
    pub step_heads: f64,
    /// Value members and safe set on the final latents.
    pub final_heads: f64,
    /// Threads that processed at least one group.
    pub threads: usize,
}

impl Profile {
    /// Sums another profile's phases into this one.
    pub fn add(&mut self, o: &Profile) {
        self.noise += o.noise;
        self.dynamics += o.dynamics;
        self.step_heads += o.step_heads;
        self.final_heads += o.final_heads;
        self.threads = self.threads.max(o.threads);
    }

    /// All phases.
    pub fn total(&self) -> f64 {
        self.noise + self.dynamics + self.step_heads + self.final_heads
    }
}

/// Dynamics member `i`'s layers, read from the module's variables by their checkpoint names
/// (`models.{i}.delta_network.model.{0,2,…}`); the ensemble keeps its member nets private.
fn dynamics_member(agent: &Agent, i: usize) -> Result<Vec<HostLinear>> {
    let vars = agent
        .vars(ModuleKind::Dyn)
        .data()
        .lock()
        .expect("var map lock");
    let mut layers = Vec::new();
    loop {
        let stem = format!("models.{i}.delta_network.model.{}", 2 * layers.len());
        let (Some(w), Some(b)) = (
            vars.get(&format!("{stem}.weight")),
            vars.get(&format!("{stem}.bias")),
        ) else {
            break;
        };
        layers.push(host_linear(w.as_tensor(), Some(b.as_tensor()))?);
    }
    if layers.is_empty() {
        return Err(candle_core::Error::Msg(format!(
            "dynamics member {i} has no layers"
        )));
    }
    Ok(layers)
}

/// Max that lets a NaN through, so a NaN particle makes the candidate's constraint NaN.
fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// The smaller of `a` and `b`, NaN when either is.
fn nan_min(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn copy_group(g: &RolloutStats, all: &mut RolloutStats, c0: usize, c1: usize, h: usize, l: usize) {
    let n = c1 - c0;
    all.value[c0..c1].copy_from_slice(&g.value[..n]);
    all.value_std[c0..c1].copy_from_slice(&g.value_std[..n]);
    all.safe_set[c0..c1].copy_from_slice(&g.safe_set[..n]);
    all.constraint[c0 * h..c1 * h].copy_from_slice(&g.constraint[..n * h]);
    all.goal_logit[c0 * h..c1 * h].copy_from_slice(&g.goal_logit[..n * h]);
    all.latents[c0 * h * l..c1 * h * l].copy_from_slice(&g.latents[..n * h * l]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::testing::{agent_with_delta_normalisation, rollout_job};

    /// The largest `|a − b|` over `a`, `b`, against the spread of `b` (its largest minus its
    /// smallest value).
    fn error_and_spread(a: &[f32], b: &[f32]) -> (f32, f32) {
        let err = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        let hi = b.iter().copied().fold(f32::MIN, f32::max);
        let lo = b.iter().copied().fold(f32::MAX, f32::min);
        (err, hi - lo)
    }

    #[test]
    fn a_bf16_rollout_tracks_the_f32_rollout() {
        if !crate::cpu::avx512_bf16() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        let agent = agent_with_delta_normalisation();
        let f32s = FusedModels::from_agent_with(&agent, Precision::F32).unwrap();
        let bf16 = FusedModels::from_agent_with(&agent, Precision::Bf16).unwrap();
        assert_eq!(
            (f32s.precision(), bf16.precision()),
            (Precision::F32, Precision::Bf16)
        );
        for (n, p, h) in [(7, 3, 3), (9, 50, 2), (40, 7, 5), (5, 1, 1)] {
            let job = rollout_job(n, p, h);
            let (a, b) = (bf16.rollout(&job).unwrap(), f32s.rollout(&job).unwrap());
            for (name, a, b) in [
                ("value", &a.value, &b.value),
                ("safe set", &a.safe_set, &b.safe_set),
                ("constraint", &a.constraint, &b.constraint),
                ("goal", &a.goal_logit, &b.goal_logit),
                ("latents", &a.latents, &b.latents),
            ] {
                // (about 0.5 % of the spread here; 0.05 % for the latents)
                let (err, spread) = error_and_spread(a, b);
                assert!(a.iter().all(|v| v.is_finite()), "{name}: {a:?}");
                assert!(
                    err <= 0.02 * spread,
                    "{n}×{p}×{h} {name}: error {err} of {spread}"
                );
            }
        }
    }

    #[test]
    fn a_job_the_models_cannot_imagine_is_an_error_not_a_panic() {
        let fused = FusedModels::from_agent(&agent_with_delta_normalisation()).unwrap();
        let mut short = rollout_job(3, 2, 2);
        short.start.truncate(10);
        assert!(fused.rollout(&short).is_err());
        let mut member = rollout_job(3, 2, 2);
        member.members[1] = 5;
        assert!(fused.rollout(&member).is_err());
    }
}
