//! Hand-written forward and backward passes of an ensemble of equally shaped ReLU MLPs on the
//! CPU: a training step's loss and every weight's gradient without autograd. At the latent
//! modules' small shapes candle's per-op dispatch and allocations cost more than the arithmetic.
//!
//! Each member sees its own batch. The batch is cut into parts so that members × parts work
//! items spread evenly over the threads of `work_share` (5 members on 2 threads would leave one
//! idle a sixth of the time); the parts' weight gradients are summed afterwards. Products run on the
//! `gemm` crate, one thread per item; every buffer is kept between steps.
//!
//! The ReLU's gradient is passed where the layer's output is positive; candle passes it where
//! the pre-activation is ≥ 0, which differs only on exact zeros.
//!
//! [`mlp_step`] and [`mlp_forward`] run candle [`Mlp`]s this way, their weights read in place;
//! the forward pass alone serves target nets, whose outputs a loss needs without gradients.

use super::bf16_gemm::View;
use super::mlp::Mlp;
use super::work_share;
use candle_core::{CpuStorage, Layout, Result, Storage, Tensor, bail};
use std::ops::Range;
use std::sync::Mutex;

/// One member's weights: per layer, `W` `[out][in]` (candle's and PyTorch's layout) and `b`
/// `[out]`.
pub type MemberWeights<'a> = Vec<(&'a [f32], &'a [f32])>;

/// Buffers of the fused step of one ensemble shape, reused from step to step.
#[derive(Default)]
pub struct EnsembleBackprop {
    /// Layer widths, input first: `[in, hidden…, out]`.
    sizes: Vec<usize>,
    members: usize,
    batch: usize,
    items: Vec<Mutex<Item>>,
    /// Summed gradients, member after member, each laid out as [`Self::layer_range`] says.
    grads: Vec<f32>,
}

/// The rows of one member's batch that one work item runs, with its own buffers.
struct Item {
    member: usize,
    rows: Range<usize>,
    /// Per layer boundary: the input, each hidden layer's output after the ReLU, the output;
    /// `[rows, width]`.
    acts: Vec<Vec<f32>>,
    /// Gradients with respect to activations (two, used in turn): `[rows, widest layer]`.
    d: [Vec<f32>; 2],
    /// This item's share of its member's gradients.
    grads: Vec<f32>,
    /// This item's share of the loss.
    loss: f64,
}

impl EnsembleBackprop {
    /// Gradient elements of one member.
    fn params(&self) -> usize {
        self.sizes.windows(2).map(|w| (w[0] + 1) * w[1]).sum()
    }

    /// Where layer `l`'s gradients sit among one member's: `W` then `b`.
    fn layer_range(&self, l: usize) -> (Range<usize>, Range<usize>) {
        let start: usize = self.sizes[..l + 1]
            .windows(2)
            .map(|w| (w[0] + 1) * w[1])
            .sum();
        let (k, n) = (self.sizes[l], self.sizes[l + 1]);
        (start..start + n * k, start + n * k..start + (k + 1) * n)
    }

    /// Sets the buffers up for `members` MLPs of widths `sizes` on batches of `batch` rows;
    /// nothing is reallocated when the shape is the one of the last step.
    pub fn prepare(&mut self, sizes: &[usize], members: usize, batch: usize) {
        if self.sizes == sizes && self.members == members && self.batch == batch {
            return;
        }
        self.sizes = sizes.to_vec();
        self.members = members;
        self.batch = batch;
        let threads = work_share::threads();
        // members × parts a multiple of the threads, with parts of at least 16 rows
        let parts = if members.is_multiple_of(threads) {
            1
        } else {
            threads
        };
        let parts = parts.min(batch.div_ceil(16)).max(1);
        let widest = sizes[1..].iter().copied().max().unwrap_or(0);
        let params = self.params();
        self.items = (0..members * parts)
            .map(|i| {
                let (member, part) = (i / parts, i % parts);
                let rows = batch * part / parts..batch * (part + 1) / parts;
                let r = rows.len();
                Mutex::new(Item {
                    member,
                    rows,
                    acts: sizes.iter().map(|&w| vec![0.0; r * w]).collect(),
                    d: [vec![0.0; r * widest], vec![0.0; r * widest]],
                    grads: vec![0.0; params],
                    loss: 0.0,
                })
            })
            .collect();
        self.grads = vec![0.0; members * params];
    }

    /// One forward and backward pass of every member, after [`prepare`](Self::prepare).
    /// `input(member, rows, x)` fills `x` (`[rows, in]`) with those rows of the member's batch;
    /// `head(member, rows, out, d_out)` reads the outputs (`[rows, out]`), writes the loss's
    /// gradient with respect to them into `d_out` and returns their share of the loss. Returns
    /// the loss (the heads' sum); the gradients are then read with [`grad`](Self::grad).
    pub fn step(
        &mut self,
        weights: &[MemberWeights],
        input: impl Fn(usize, Range<usize>, &mut [f32]) + Sync,
        head: impl Fn(usize, Range<usize>, &[f32], &mut [f32]) -> f64 + Sync,
    ) -> Result<f64> {
        self.check(weights)?;
        let sizes = &self.sizes;
        let items = &self.items;
        work_share::run(items.len(), |i| {
            let mut item = items[i].lock().expect("work item lock");
            let member = &weights[item.member];
            forward_item(&mut item, sizes, member, &input);
            backward_item(&mut item, sizes, member, &head);
        });
        let params = self.params();
        self.grads.fill(0.0);
        let mut loss = 0.0;
        for item in &mut self.items {
            let item = item.get_mut().expect("work item lock");
            let sum = &mut self.grads[item.member * params..(item.member + 1) * params];
            sum.iter_mut().zip(&item.grads).for_each(|(s, g)| *s += g);
            loss += item.loss;
        }
        Ok(loss)
    }

    /// The forward pass alone, after [`prepare`](Self::prepare) (e.g. of target nets, whose
    /// outputs a loss needs without their gradients): `input` as for [`step`](Self::step);
    /// writes every member's outputs into `out` (`[members, batch, out]`).
    pub fn forward(
        &mut self,
        weights: &[MemberWeights],
        input: impl Fn(usize, Range<usize>, &mut [f32]) + Sync,
        out: &mut [f32],
    ) -> Result<()> {
        self.check(weights)?;
        let width = self.sizes[self.sizes.len() - 1];
        if out.len() != self.members * self.batch * width {
            bail!(
                "ensemble backprop: {} outputs for {} members × {} rows × {width}",
                out.len(),
                self.members,
                self.batch
            );
        }
        let sizes = &self.sizes;
        let items = &self.items;
        work_share::run(items.len(), |i| {
            let mut item = items[i].lock().expect("work item lock");
            let member = item.member;
            forward_item(&mut item, sizes, &weights[member], &input);
        });
        for item in &mut self.items {
            let item = item.get_mut().expect("work item lock");
            let start = (item.member * self.batch + item.rows.start) * width;
            let outputs = &item.acts[sizes.len() - 1];
            out[start..start + outputs.len()].copy_from_slice(outputs);
        }
        Ok(())
    }

    /// Refuses weights that do not fit the prepared shape.
    fn check(&self, weights: &[MemberWeights]) -> Result<()> {
        let layers = self.sizes.len().saturating_sub(1);
        if weights.len() != self.members || layers == 0 {
            bail!(
                "ensemble backprop: {} members' weights for a workspace prepared for {} members \
                 of {} layers",
                weights.len(),
                self.members,
                layers
            );
        }
        for (m, member) in weights.iter().enumerate() {
            if member.len() != layers {
                bail!(
                    "ensemble backprop: member {m} has {} layers, expected {layers}",
                    member.len()
                );
            }
            for (l, (w, b)) in member.iter().enumerate() {
                let (k, n) = (self.sizes[l], self.sizes[l + 1]);
                if w.len() != n * k || b.len() != n {
                    bail!(
                        "ensemble backprop: member {m} layer {l} has {} weights and {} biases, \
                         expected {n}×{k} and {n}",
                        w.len(),
                        b.len()
                    );
                }
            }
        }
        Ok(())
    }

    /// Gradients of member `m`'s layer `l` after a [`step`](Self::step): `W` (`[out][in]`) and
    /// `b`.
    pub fn grad(&self, m: usize, l: usize) -> (&[f32], &[f32]) {
        let base = m * self.params();
        let (w, b) = self.layer_range(l);
        (
            &self.grads[base + w.start..base + w.end],
            &self.grads[base + b.start..base + b.end],
        )
    }
}

/// The forward pass of one work item: its rows of the input, then every layer's output.
fn forward_item(
    item: &mut Item,
    sizes: &[usize],
    weights: &[(&[f32], &[f32])],
    input: &impl Fn(usize, Range<usize>, &mut [f32]),
) {
    let layers = weights.len();
    let r = item.rows.len();
    input(item.member, item.rows.clone(), &mut item.acts[0]);
    for (l, &(w, b)) in weights.iter().enumerate() {
        let (k, n) = (sizes[l], sizes[l + 1]);
        let (before, after) = item.acts.split_at_mut(l + 1);
        let (x, y) = (&before[l], &mut after[0]);
        // y = x · Wᵀ
        matmul(r, n, k, y, false, Mat::new(x, k, 1), Mat::new(w, 1, k));
        let relu = l + 1 < layers;
        for row in y.chunks_exact_mut(n) {
            for (v, &bias) in row.iter_mut().zip(b) {
                *v = if relu {
                    (*v + bias).max(0.0)
                } else {
                    *v + bias
                };
            }
        }
    }
}

/// The head and the backward pass of one work item, after its [`forward_item`].
fn backward_item(
    item: &mut Item,
    sizes: &[usize],
    weights: &[(&[f32], &[f32])],
    head: &impl Fn(usize, Range<usize>, &[f32], &mut [f32]) -> f64,
) {
    let layers = weights.len();
    let r = item.rows.len();
    let out = sizes[layers];
    let [d0, d1] = &mut item.d;
    let (mut g, mut next) = (d0, d1);
    item.loss = head(
        item.member,
        item.rows.clone(),
        &item.acts[layers],
        &mut g[..r * out],
    );
    let mut offset = item.grads.len();
    for l in (0..layers).rev() {
        let (k, n) = (sizes[l], sizes[l + 1]);
        offset -= (k + 1) * n;
        let (dw, db) = item.grads[offset..offset + (k + 1) * n].split_at_mut(n * k);
        let (gl, x) = (&g[..r * n], &item.acts[l]);
        // dW = gᵀ · x, db = Σ_rows g
        matmul(n, k, r, dw, false, Mat::new(gl, 1, n), Mat::new(x, k, 1));
        db.fill(0.0);
        for row in gl.chunks_exact(n) {
            db.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
        if l > 0 {
            // dx = g · W, through the previous layer's ReLU
            let dx = &mut next[..r * k];
            matmul(
                r,
                k,
                n,
                dx,
                false,
                Mat::new(gl, n, 1),
                Mat::new(weights[l].0, k, 1),
            );
            for (d, &a) in dx.iter_mut().zip(x) {
                if a <= 0.0 {
                    *d = 0.0;
                }
            }
            std::mem::swap(&mut g, &mut next);
        }
    }
}

/// A matrix operand: element (i, j) at `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    fn new(data: &'a [f32], rs: usize, cs: usize) -> Self {
        Self { data, rs, cs }
    }

    /// Whether an `rows × cols` matrix fits in the data.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (m × n, row-major) = [dst +] lhs (m × k) · rhs (k × n)`, on the calling thread: the
/// convolutions' f32 product ([`super::conv::mm`]) behind a bounds check.
fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], acc: bool, lhs: Mat, rhs: Mat) {
    assert!(
        dst.len() >= m * n && lhs.fits(m, k) && rhs.fits(k, n),
        "matmul operands too small for {m}×{k} · {k}×{n}"
    );
    let view = |a: Mat| View::new(a.data.as_ptr(), a.rs, a.cs);
    // SAFETY: every element the product reads or writes is in bounds (checked above), and
    // `dst` is borrowed mutably, so it overlaps neither operand; f32, so no CPU requirement.
    unsafe {
        super::conv::mm(
            false,
            m,
            n,
            k,
            dst.as_mut_ptr(),
            n,
            acc,
            view(lhs),
            view(rhs),
        )
    }
}

/// One [`EnsembleBackprop::step`] of `members` (equally shaped MLPs, f32 on the CPU) on batches
/// of `batch` rows each; `input` and `head` get the data of the `data` tensors first, as host
/// slices in their order. Returns the loss; the gradients are read with [`mlp_grads`].
pub fn mlp_step(
    ws: &mut EnsembleBackprop,
    members: &[&Mlp],
    batch: usize,
    data: &[&Tensor],
    input: impl Fn(&[&[f32]], usize, Range<usize>, &mut [f32]) + Sync,
    head: impl Fn(&[&[f32]], usize, Range<usize>, &[f32], &mut [f32]) -> f64 + Sync,
) -> Result<f64> {
    with_members(ws, members, batch, data, |ws, weights, data| {
        ws.step(
            weights,
            |m, rows, x| input(data, m, rows, x),
            |m, rows, out, d| head(data, m, rows, out, d),
        )
    })
}

/// The forward pass alone of `members` as in [`mlp_step`] (e.g. target nets): their outputs,
/// `[members, batch, out]`.
pub fn mlp_forward(
    ws: &mut EnsembleBackprop,
    members: &[&Mlp],
    batch: usize,
    data: &[&Tensor],
    input: impl Fn(&[&[f32]], usize, Range<usize>, &mut [f32]) + Sync,
) -> Result<Vec<f32>> {
    with_members(ws, members, batch, data, |ws, weights, data| {
        let width = ws.sizes[ws.sizes.len() - 1];
        let mut out = vec![0.0; members.len() * batch * width];
        ws.forward(weights, |m, rows, x| input(data, m, rows, x), &mut out)?;
        Ok(out)
    })
}

/// Every member's weights and biases (the variables' tensors, as the optimiser knows them),
/// member by member, layer by layer, with their gradients from the last [`mlp_step`] on `ws`.
pub fn mlp_grads<'a>(
    members: &[&'a Mlp],
    ws: &'a EnsembleBackprop,
) -> Vec<(&'a Tensor, &'a [f32])> {
    let mut out = Vec::new();
    for (m, member) in members.iter().enumerate() {
        for (l, layer) in member.layers().iter().enumerate() {
            let (w, b) = ws.grad(m, l);
            out.push((layer.weight(), w));
            out.push((layer.bias().expect("layers have biases"), b));
        }
    }
    out
}

/// Copies rows `rows` of member `m`'s batch from `src` (`[members, batch, width]`) into `x`.
pub fn member_rows(
    src: &[f32],
    width: usize,
    batch: usize,
    m: usize,
    rows: Range<usize>,
    x: &mut [f32],
) {
    let start = (m * batch + rows.start) * width;
    x[..rows.len() * width].copy_from_slice(&src[start..start + rows.len() * width]);
}

/// Prepares `ws` for `members` on batches of `batch` rows and calls `f` with the workspace, the
/// members' weights and the data of `data`, all as host slices.
fn with_members<R>(
    ws: &mut EnsembleBackprop,
    members: &[&Mlp],
    batch: usize,
    data: &[&Tensor],
    f: impl FnOnce(&mut EnsembleBackprop, &[MemberWeights], &[&[f32]]) -> Result<R>,
) -> Result<R> {
    let Some(first) = members.first() else {
        bail!("ensemble backprop: no members")
    };
    let layers = first.layers();
    let mut sizes = vec![layers[0].weight().dim(1)?];
    for layer in layers {
        sizes.push(layer.weight().dim(0)?);
    }
    ws.prepare(&sizes, members.len(), batch);
    let mut tensors: Vec<&Tensor> = members
        .iter()
        .flat_map(|m| m.layers())
        .flat_map(|l| [l.weight(), l.bias().expect("layers have biases")])
        .collect();
    let params = tensors.len();
    tensors.extend_from_slice(data);
    with_host_slices(&tensors, |host| {
        let (weights, data) = host.split_at(params);
        let weights: Vec<MemberWeights> = weights
            .chunks_exact(2 * layers.len())
            .map(|m| m.chunks_exact(2).map(|wb| (wb[0], wb[1])).collect())
            .collect();
        f(ws, &weights, data)
    })?
}

/// Calls `f` with the data of CPU f32 tensors as slices (each tensor's storage read-locked
/// meanwhile).
pub fn with_host_slices<R>(ts: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> R) -> Result<R> {
    let held: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let slices = held
        .iter()
        .map(|(s, l)| host_f32(s, l))
        .collect::<Result<Vec<_>>>()?;
    Ok(f(&slices))
}

fn host_f32<'a>(s: &'a Storage, l: &Layout) -> Result<&'a [f32]> {
    let Storage::Cpu(CpuStorage::F32(data)) = s else {
        bail!("ensemble backprop: tensors must be f32 on the CPU")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("ensemble backprop: tensors must be contiguous"),
    }
}
