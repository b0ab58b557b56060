//! Fast CPU 2-D convolution and transposed convolution (no padding, no dilation, square kernels)
//! as candle custom ops, with their backward passes.
//!
//! candle 0.11's CPU `conv_transpose2d` is a direct loop, and the backward pass of its `conv2d`
//! calls it for the input gradient and computes the kernel gradient as a convolution with a huge
//! kernel; together they made a VAE training step ≈ 13× slower than PyTorch's on the CPU. Here
//! everything is im2col / col2im plus matrix products (the `gemm` crate), parallel over batch
//! chunks on candle's own CPU worker pool (the one its element-wise ops use, so the two never
//! compete for the cores). The layers' bias and ReLU are fused into the ops: candle's broadcast
//! add, ReLU and their backward passes (a strided reduction for the bias gradient, a comparison,
//! a cast and a product for the ReLU mask, each with its own allocation) cost more than the
//! convolutions themselves once those are fast.
//!
//! Both ops are the same three primitives on a pair of activations: the *big* side `A`
//! (`[B, C, H, W]`: a convolution's input, a transposed convolution's output) and the *small* side
//! `Z` (`[B, O, Ho, Wo]`: a convolution's output, a transposed convolution's input), linked by a
//! kernel `W` read as an `O × (C·k·k)` matrix — which is both PyTorch's Conv2d layout
//! (out × in × k × k) and its ConvTranspose2d layout (in × out × k × k):
//! - **F**: `Z = W · im2col(A)` — convolution forward, transposed-convolution input gradient;
//! - **G**: `A = col2im(Wᵀ · Z)` — transposed-convolution forward, convolution input gradient;
//! - **K**: `dW = Σ_images Z · im2col(A)ᵀ` — the kernel gradient of both.
//!
//! Where the kernel covers the whole input image (the encoder's last layer, the decoder's first)
//! the three are plain matrix products over the batch (`run_dense`); elsewhere images are
//! processed in chunks, with AVX-512 im2col / col2im where the CPU has it. The first fast-path
//! call also tunes glibc's allocator ([`retain_freed_memory`]).
//!
//! On other devices (the `cuda` feature), other dtypes or other layer kinds the public functions
//! fall back to candle's own `conv2d` / `conv_transpose2d` (plus `broadcast_add` and `relu`).
//!
//! **Precision.** The products run in f32 (the `gemm` crate) or, with [`Precision::Bf16`], on
//! bf16 copies of their operands with f32 accumulation ([`super::bf16_gemm`]); im2col, col2im,
//! bias, ReLU and every tensor stay f32. The choice is one process-wide setting,
//! [`set_precision`], made once from `config.precision` when a trainer is built or reconfigured
//! (the tests and benches set it themselves); each op reads it when it is applied and keeps it
//! for its backward pass, so a step never mixes the two. On CPUs without AVX512-BF16, `Bf16`
//! silently runs in f32.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Module, Result, Shape};
use candle_core::{Storage, Tensor, bail};
use candle_nn::VarBuilder;
use std::cell::RefCell;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::bf16_gemm::{self, View};

/// Arithmetic of the convolutions' matrix products (see the module docs); the planner's dense
/// layers read it too.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 throughout (the reference; the PyTorch parity tests run in it).
    #[default]
    F32,
    /// bf16 operands, f32 accumulation, f32 results; f32 where the CPU lacks AVX512-BF16.
    Bf16,
}

static BF16: AtomicBool = AtomicBool::new(false);

/// Sets the precision of every convolution applied from now on, in this process.
pub fn set_precision(p: Precision) {
    BF16.store(p == Precision::Bf16, Ordering::Relaxed);
}

/// The precision set by [`set_precision`] (f32 until then).
pub fn precision() -> Precision {
    if BF16.load(Ordering::Relaxed) {
        Precision::Bf16
    } else {
        Precision::F32
    }
}

/// Geometry of one op: the big side `[b, c, h, w]`, the small side `[b, o, ho, wo]`, kernel `k`,
/// stride `s`, with `ho = (h − k) / s + 1` (rows of `A` past the last window are never read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geom {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    ho: usize,
    wo: usize,
    k: usize,
    s: usize,
}

impl Geom {
    /// Rows of the column matrix: `c·k·k`.
    fn ckk(&self) -> usize {
        self.c * self.k * self.k
    }
    /// Output positions per image (columns of the column matrix).
    fn p(&self) -> usize {
        self.ho * self.wo
    }
    /// Floats of one image on the big side.
    fn big(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Floats of one image on the small side.
    fn small(&self) -> usize {
        self.o * self.p()
    }
    /// Images per work item: one when an image's matrix is wide enough for its own products,
    /// else enough images to make the products worth it, but at least two items per thread.
    fn images_per_chunk(&self) -> usize {
        const DIRECT_P: usize = 128;
        const COL_FLOATS: usize = 1 << 17;
        let p = self.p();
        if p >= DIRECT_P {
            return 1;
        }
        let per_image = self.ckk().max(self.o) * p;
        let threads = pool_threads();
        let cap = self.b.div_ceil(2 * threads).max(1);
        (COL_FLOATS / per_image).clamp(1, cap)
    }
}

/// Unfolds one image of the big side into columns `off .. off + p` of `col` (row stride `ld`):
/// `col[(ci·k + ki)·k + kj][oy·wo + ox] = a[ci][oy·s + ki][ox·s + kj]`.
fn im2col(g: &Geom, a: &[f32], col: &mut [f32], ld: usize, off: usize) {
    assert!(a.len() >= g.big() && col.len() >= (g.ckk() - 1) * ld + off + g.p());
    #[cfg(target_arch = "x86_64")]
    if g.k <= avx512::MAX_K && crate::cpu::avx512() {
        // SAFETY: the CPU has AVX-512F; the slice lengths are checked above.
        return unsafe { avx512::im2col(g, a, col, ld, off) };
    }
    im2col_scalar(g, a, col, ld, off);
}

/// The adjoint of [`im2col`]: adds columns `off .. off + p` of `col` into one big-side image.
fn col2im(g: &Geom, col: &[f32], ld: usize, off: usize, a: &mut [f32]) {
    assert!(a.len() >= g.big() && col.len() >= (g.ckk() - 1) * ld + off + g.p());
    #[cfg(target_arch = "x86_64")]
    if g.k <= avx512::MAX_K && crate::cpu::avx512() {
        // SAFETY: the CPU has AVX-512F; the slice lengths are checked above.
        return unsafe { avx512::col2im(g, col, ld, off, a) };
    }
    col2im_scalar(g, col, ld, off, a);
}

/// [`im2col`] in plain Rust.
fn im2col_scalar(g: &Geom, a: &[f32], col: &mut [f32], ld: usize, off: usize) {
    let (k, s, w, wo) = (g.k, g.s, g.w, g.wo);
    let span = (wo - 1) * s + 1;
    for ci in 0..g.c {
        let plane = &a[ci * g.h * w..(ci + 1) * g.h * w];
        for ki in 0..k {
            for kj in 0..k {
                let row = (ci * k + ki) * k + kj;
                let dst = &mut col[row * ld + off..row * ld + off + g.p()];
                for (oy, d) in dst.chunks_exact_mut(wo).enumerate() {
                    let start = (oy * s + ki) * w + kj;
                    let src = &plane[start..start + span];
                    for (d, v) in d.iter_mut().zip(src.iter().step_by(s)) {
                        *d = *v;
                    }
                }
            }
        }
    }
}

/// [`col2im`] in plain Rust.
fn col2im_scalar(g: &Geom, col: &[f32], ld: usize, off: usize, a: &mut [f32]) {
    let (k, s, w, wo) = (g.k, g.s, g.w, g.wo);
    let span = (wo - 1) * s + 1;
    for ci in 0..g.c {
        let plane = &mut a[ci * g.h * w..(ci + 1) * g.h * w];
        for ki in 0..k {
            for kj in 0..k {
                let row = (ci * k + ki) * k + kj;
                let src = &col[row * ld + off..row * ld + off + g.p()];
                for (oy, v) in src.chunks_exact(wo).enumerate() {
                    let start = (oy * s + ki) * w + kj;
                    let dst = &mut plane[start..start + span];
                    for (d, v) in dst.iter_mut().step_by(s).zip(v) {
                        *d += *v;
                    }
                }
            }
        }
    }
}

/// AVX-512 [`im2col`] / [`col2im`]. The scalar loops spend most of their time on loop overhead:
/// rows are short (13 outputs in the widest decoder layer) and strided. Here one output row
/// segment of up to 16 positions is two masked 16-lane loads of the input row, and each of the
/// `k` kernel columns is one two-source permute of those registers (im2col), or one permute and
/// one masked add into them (col2im).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Geom;
    use std::arch::x86_64::*;

    /// Largest kernel handled: a row segment of at least one position must fit in 32 lanes.
    pub const MAX_K: usize = 32;

    /// Positions per row segment: at most 16 (one register of outputs), and the input span
    /// `(n − 1)·s + k` within 32 lanes (two registers).
    fn block(g: &Geom) -> usize {
        ((32 - g.k) / g.s + 1).min(16)
    }

    /// Lanes `0 .. n` set (n ≤ 16).
    fn lanes(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as __mmask16
    }

    fn idx(v: [i32; 16]) -> __m512i {
        // SAFETY: an unaligned load of 16 i32 from a local array.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    }

    /// # Safety
    /// AVX-512F must be present, `g.k ≤ MAX_K`, `a` must hold one big-side image and `col`
    /// rows `0 .. ckk` of `p` columns from `off`, with row stride `ld`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn im2col(g: &Geom, a: &[f32], col: &mut [f32], ld: usize, off: usize) {
        let (k, s, w, wo) = (g.k, g.s, g.w, g.wo);
        let nb = block(g);
        // sel[kj] picks input lanes kj, kj + s, kj + 2s, … out of the 32 loaded
        let sel: Vec<__m512i> = (0..k)
            .map(|kj| idx(std::array::from_fn(|i| ((kj + s * i) as i32).min(31))))
            .collect();
        let (a, col) = (a.as_ptr(), col.as_mut_ptr());
        for ci in 0..g.c {
            for ki in 0..k {
                let rows = ((ci * k + ki) * k) * ld + off;
                for oy in 0..g.ho {
                    let src = ci * g.h * w + (oy * s + ki) * w;
                    let mut ox0 = 0;
                    while ox0 < wo {
                        let n = nb.min(wo - ox0);
                        let span = (n - 1) * s + k;
                        // SAFETY: the span lies within input row oy·s + ki (see the caller).
                        let (lo, hi) = unsafe {
                            let p = a.add(src + ox0 * s);
                            (
                                _mm512_maskz_loadu_ps(lanes(span), p),
                                _mm512_maskz_loadu_ps(lanes(span.saturating_sub(16)), p.add(16)),
                            )
                        };
                        let dst = rows + oy * wo + ox0;
                        for (kj, sel) in sel.iter().enumerate() {
                            let v = _mm512_permutex2var_ps(lo, *sel, hi);
                            // SAFETY: row (ci, ki, kj) of col, positions oy·wo + ox0 .. + n.
                            unsafe { _mm512_mask_storeu_ps(col.add(dst + kj * ld), lanes(n), v) };
                        }
                        ox0 += n;
                    }
                }
            }
        }
    }

    /// # Safety
    /// As [`im2col`], with `a` the image that the columns are added into.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn col2im(g: &Geom, col: &[f32], ld: usize, off: usize, a: &mut [f32]) {
        let (k, s, w, wo) = (g.k, g.s, g.w, g.wo);
        let nb = block(g);
        // kernel column kj adds output position i to input lane kj + s·i of the span: per
        // register half, the permute that brings position i to that lane, and the lanes hit
        let spread = |kj: usize, half: usize| {
            let mut perm = [0i32; 16];
            let mut hit: u32 = 0;
            for (l, p) in perm.iter_mut().enumerate() {
                let lane = half * 16 + l;
                if lane >= kj && (lane - kj).is_multiple_of(s) && (lane - kj) / s < 16 {
                    *p = ((lane - kj) / s) as i32;
                    hit |= 1 << l;
                }
            }
            (idx(perm), hit as __mmask16)
        };
        let lo_tab: Vec<(__m512i, __mmask16)> = (0..k).map(|kj| spread(kj, 0)).collect();
        let hi_tab: Vec<(__m512i, __mmask16)> = (0..k).map(|kj| spread(kj, 1)).collect();
        let (col, a) = (col.as_ptr(), a.as_mut_ptr());
        for ci in 0..g.c {
            for ki in 0..k {
                let rows = ((ci * k + ki) * k) * ld + off;
                for oy in 0..g.ho {
                    let dst = ci * g.h * w + (oy * s + ki) * w;
                    let mut ox0 = 0;
                    while ox0 < wo {
                        let n = nb.min(wo - ox0);
                        let span = (n - 1) * s + k;
                        let (m_lo, m_hi) = (lanes(span), lanes(span.saturating_sub(16)));
                        // SAFETY: the span lies within image row oy·s + ki (see the caller).
                        let p = unsafe { a.add(dst + ox0 * s) };
                        let (mut lo, mut hi) = unsafe {
                            (
                                _mm512_maskz_loadu_ps(m_lo, p),
                                _mm512_maskz_loadu_ps(m_hi, p.add(16)),
                            )
                        };
                        let src = rows + oy * wo + ox0;
                        for kj in 0..k {
                            // SAFETY: row (ci, ki, kj) of col, positions oy·wo + ox0 .. + n.
                            let v =
                                unsafe { _mm512_maskz_loadu_ps(lanes(n), col.add(src + kj * ld)) };
                            let (pl, ml) = lo_tab[kj];
                            lo = _mm512_mask_add_ps(lo, ml, lo, _mm512_permutexvar_ps(pl, v));
                            let (ph, mh) = hi_tab[kj];
                            hi = _mm512_mask_add_ps(hi, mh, hi, _mm512_permutexvar_ps(ph, v));
                        }
                        // SAFETY: as the loads above.
                        unsafe {
                            _mm512_mask_storeu_ps(p, m_lo, lo);
                            _mm512_mask_storeu_ps(p.add(16), m_hi, hi);
                        }
                        ox0 += n;
                    }
                }
            }
        }
    }
}

/// `dst (m × n) = [dst +] lhs (m × k) · rhs (k × n)`, single-threaded (the callers are parallel);
/// in bf16 with f32 accumulation where `bf16` (see the module docs).
///
/// # Safety
/// Every view must address valid memory for its shape, and `dst` must not overlap the inputs;
/// `bf16` only where [`bf16_gemm::available`].
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn mm(
    bf16: bool,
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    d_rs: usize,
    acc: bool,
    l: View,
    r: View,
) {
    if m == 0 || n == 0 {
        return;
    }
    if bf16 {
        // SAFETY: forwarded contract.
        return unsafe { bf16_gemm::gemm(m, n, k, dst, d_rs, acc, l, r) };
    }
    if k == 0 {
        if !acc {
            for i in 0..m {
                // SAFETY: rows of dst are valid for n elements, per the contract.
                unsafe { std::slice::from_raw_parts_mut(dst.add(i * d_rs), n).fill(0.0) };
            }
        }
        return;
    }
    // SAFETY: forwarded contract; gemm computes dst := 1·dst + 1·lhs·rhs (or lhs·rhs).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            d_rs as isize,
            acc,
            l.ptr,
            l.cs as isize,
            l.rs as isize,
            r.ptr,
            r.cs as isize,
            r.rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Threads of the worker pool (candle's CPU barrier pool: its workers plus the calling thread).
fn pool_threads() -> usize {
    candle_core::utils::barrier_pool().n_workers() + 1
}

/// Runs `f` over disjoint ranges covering `0..items` on all threads of the pool (ranges handed
/// out through a shared counter, so a thread slowed by other work takes fewer).
fn for_each_range(items: usize, f: impl Fn(Range<usize>) + Sync) {
    candle_core::utils::barrier_pool().execute_chunked(items, f);
}

/// A raw pointer that work items on other threads write disjoint parts of.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: every work item writes only its own images' ranges.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// The pointer (a method, so that closures capture the whole `SyncPtr`, not its field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Per-thread scratch buffers, kept between calls.
#[derive(Default)]
struct Scratch {
    /// Column matrix of a chunk, `ckk × (images · p)`.
    col: Vec<f32>,
    /// A chunk of the small side as one matrix, `o × (images · p)`.
    zt: Vec<f32>,
    /// One big-side image after the ReLU mask.
    img: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// `img += bias` per channel (planes of `plane` floats), then ReLU if asked.
fn bias_act(img: &mut [f32], plane: usize, bias: Option<&[f32]>, relu: bool) {
    if bias.is_none() && !relu {
        return;
    }
    for (ci, row) in img.chunks_exact_mut(plane).enumerate() {
        let b = bias.map_or(0.0, |b| b[ci]);
        if relu {
            row.iter_mut().for_each(|v| *v = (*v + b).max(0.0));
        } else {
            row.iter_mut().for_each(|v| *v += b);
        }
    }
}

/// `dst = src` where `mask > 0`, else 0 (the ReLU backward).
fn masked_copy(dst: &mut [f32], src: &[f32], mask: &[f32]) {
    for ((d, v), m) in dst.iter_mut().zip(src).zip(mask) {
        *d = if *m > 0.0 { *v } else { 0.0 };
    }
}

/// Which side a bias belongs to: a convolution's output is the small side, a transposed
/// convolution's the big side.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Big,
    Small,
}

/// What one pass computes (see the module docs), and from what.
struct Job<'a> {
    g: Geom,
    /// The kernel, `O × C·k·k`.
    w: &'a [f32],
    /// Big side input, for F and K.
    a: Option<&'a [f32]>,
    /// ReLU output on the big side: `a` counts only where it is positive (ReLU backward).
    a_mask: Option<&'a [f32]>,
    /// Small side input, for G and K.
    z: Option<&'a [f32]>,
    /// ReLU output on the small side, as `a_mask`.
    z_mask: Option<&'a [f32]>,
    /// Bias added to the output of F or G, before the optional ReLU.
    bias: Option<&'a [f32]>,
    relu: bool,
    f: bool,
    gk: bool,
    kk: bool,
    /// Bias gradient: per-channel sums of the (masked) input on this side.
    db: Option<Side>,
    /// Matrix products in bf16 ([`mm`]).
    bf16: bool,
}

/// Results of a [`Job`]: the small side (F), the big side (G), the kernel and bias gradients.
struct Out {
    z: Option<Vec<f32>>,
    a: Option<Vec<f32>>,
    dw: Option<Vec<f32>>,
    db: Option<Vec<f32>>,
}

fn run(job: &Job) -> Out {
    let g = job.g;
    if g.h == g.k && g.w == g.k {
        return run_dense(job);
    }
    let nb = g.images_per_chunk();
    let chunks = g.b.div_ceil(nb);
    let n_dw = if job.kk { g.o * g.ckk() } else { 0 };
    let n_db = match job.db {
        Some(Side::Big) => g.c,
        Some(Side::Small) => g.o,
        None => 0,
    };
    // outputs: allocated, not initialised; the chunks write every element (F: the products;
    // G: zeros, then the columns added in) and the lengths are set once they all have
    let (n_z, n_a) = (g.b * g.small(), g.b * g.big());
    let mut z_out = job.f.then(|| Vec::<f32>::with_capacity(n_z));
    let mut a_out = job.gk.then(|| Vec::<f32>::with_capacity(n_a));
    let zp = SyncPtr(
        z_out
            .as_mut()
            .map_or(std::ptr::null_mut(), |v| v.as_mut_ptr()),
    );
    let ap = SyncPtr(
        a_out
            .as_mut()
            .map_or(std::ptr::null_mut(), |v| v.as_mut_ptr()),
    );
    // gradient accumulators, one per range in flight, summed at the end
    let accs: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
    for_each_range(chunks, |range| {
        let mut acc = Vec::new();
        if n_dw + n_db > 0 {
            acc = accs.lock().expect("accumulators").pop().unwrap_or_default();
            acc.resize(n_dw + n_db, 0.0);
        }
        SCRATCH.with(|sc| {
            let sc = &mut *sc.borrow_mut();
            for chunk in range {
                let b0 = chunk * nb;
                let n = nb.min(g.b - b0);
                // SAFETY: each chunk writes only the output images b0 .. b0 + n.
                unsafe { run_chunk(job, b0, n, sc, &mut acc, n_dw, zp, ap) };
            }
        });
        if n_dw + n_db > 0 {
            accs.lock().expect("accumulators").push(acc);
        }
    });
    // SAFETY: every chunk ran, so every element of the outputs is written.
    unsafe {
        if let Some(v) = z_out.as_mut() {
            v.set_len(n_z);
        }
        if let Some(v) = a_out.as_mut() {
            v.set_len(n_a);
        }
    }
    let mut total = vec![0.0f32; n_dw + n_db];
    for acc in accs.into_inner().expect("accumulators") {
        total.iter_mut().zip(&acc).for_each(|(t, a)| *t += a);
    }
    let db = total.split_off(n_dw);
    Out {
        z: z_out,
        a: a_out,
        dw: job.kk.then_some(total),
        db: job.db.map(|_| db),
    }
}

/// Output columns per work item of [`run_dense`]: two items per thread, in multiples of 16.
fn dense_cols(cols: usize) -> usize {
    cols.div_ceil(2 * pool_threads()).div_ceil(16).max(1) * 16
}

/// `src` where `mask > 0`, else 0, computed in parallel (None when there is no mask).
fn par_masked(src: &[f32], mask: Option<&[f32]>) -> Option<Vec<f32>> {
    const BLOCK: usize = 1 << 14;
    let mask = mask?;
    let mut out = vec![0.0f32; src.len()];
    let dst = SyncPtr(out.as_mut_ptr());
    for_each_range(src.len().div_ceil(BLOCK), |range| {
        for blk in range {
            let (lo, hi) = (blk * BLOCK, src.len().min((blk + 1) * BLOCK));
            // SAFETY: block blk of the output is this item's alone.
            let d = unsafe { std::slice::from_raw_parts_mut(dst.get().add(lo), hi - lo) };
            masked_copy(d, &src[lo..hi], &mask[lo..]);
        }
    });
    Some(out)
}

/// A [`Job`] whose kernel covers the whole big-side image (one output position; im2col is the
/// identity), as plain matrix products over the batch: with `A` as `B × C·k·k`, `Z` as `B × O`,
/// F is `Z = A · Wᵀ`, G is `A = Z · W` and K is `dW = Zᵀ · A`. Chunking images would make each
/// thread accumulate its own copy of the (large) kernel gradient from very thin products; here
/// the threads split the output columns instead, so each reads only its share of the kernel.
fn run_dense(job: &Job) -> Out {
    let g = job.g;
    let (b, o, n, bf16) = (g.b, g.o, g.ckk(), job.bf16);
    let a_masked = par_masked(job.a.unwrap_or(&[]), job.a_mask);
    let z_masked = par_masked(job.z.unwrap_or(&[]), job.z_mask);
    let a = a_masked.as_deref().or(job.a);
    let z = z_masked.as_deref().or(job.z);
    // out (rows × cols) = lhs (rows × inner) · rhs (inner × cols), then the bias (of channel
    // j / plane for column j) and the ReLU, where asked
    let product = |rows: usize, cols: usize, inner: usize, lhs: View, rhs: View, epilogue| {
        let (bias, relu, plane): (Option<&[f32]>, bool, usize) = epilogue;
        let mut out = vec![0.0f32; rows * cols];
        let dst = SyncPtr(out.as_mut_ptr());
        let step = dense_cols(cols);
        for_each_range(cols.div_ceil(step), |range| {
            let (lhs, rhs) = (lhs, rhs);
            for item in range {
                let (c0, c1) = (item * step, cols.min((item + 1) * step));
                // SAFETY: columns c0 .. c1 of out are this item's alone; the views are in
                // bounds of their operands.
                unsafe {
                    let rhs = View::new(rhs.ptr.add(c0 * rhs.cs), rhs.rs, rhs.cs);
                    mm(
                        bf16,
                        rows,
                        c1 - c0,
                        inner,
                        dst.get().add(c0),
                        cols,
                        false,
                        lhs,
                        rhs,
                    );
                }
                if bias.is_none() && !relu {
                    continue;
                }
                for r in 0..rows {
                    // SAFETY: as above, written just now.
                    let row =
                        unsafe { std::slice::from_raw_parts_mut(dst.get().add(r * cols), cols) };
                    for (j, v) in row.iter_mut().enumerate().take(c1).skip(c0) {
                        let x = *v + bias.map_or(0.0, |bias| bias[j / plane]);
                        *v = if relu { x.max(0.0) } else { x };
                    }
                }
            }
        });
        out
    };
    let w = job.w.as_ptr();
    let z_out = job.f.then(|| {
        let a = a.expect("big side");
        let epilogue = (job.bias, job.relu, 1);
        product(
            b,
            o,
            n,
            View::new(a.as_ptr(), n, 1),
            View::new(w, 1, n),
            epilogue,
        )
    });
    let a_out = job.gk.then(|| {
        let z = z.expect("small side");
        let epilogue = (job.bias, job.relu, g.k * g.k);
        product(
            b,
            n,
            o,
            View::new(z.as_ptr(), o, 1),
            View::new(w, n, 1),
            epilogue,
        )
    });
    let dw = job.kk.then(|| {
        let (a, z) = (a.expect("big side"), z.expect("small side"));
        let zt = View::new(z.as_ptr(), 1, o);
        product(o, n, b, zt, View::new(a.as_ptr(), n, 1), (None, false, 1))
    });
    let db = job.db.map(|side| match side {
        Side::Small => {
            let mut db = vec![0.0f32; o];
            for row in z.expect("small side").chunks_exact(o) {
                db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
            }
            db
        }
        Side::Big => {
            let mut db = vec![0.0f32; g.c];
            for img in a.expect("big side").chunks_exact(n) {
                for (d, plane) in db.iter_mut().zip(img.chunks_exact(g.k * g.k)) {
                    *d += plane.iter().sum::<f32>();
                }
            }
            db
        }
    });
    Out {
        z: z_out,
        a: a_out,
        dw,
        db,
    }
}

/// One chunk of images `b0 .. b0 + n` of a [`Job`]; `acc` holds the kernel gradient (first
/// `n_dw` floats) and the bias gradient.
///
/// # Safety
/// `zp` / `ap` must point at the job's outputs (when F / G run), and no other thread may touch
/// images `b0 .. b0 + n` of them.
#[allow(clippy::too_many_arguments)]
unsafe fn run_chunk(
    job: &Job,
    b0: usize,
    n: usize,
    sc: &mut Scratch,
    acc: &mut [f32],
    n_dw: usize,
    zp: SyncPtr,
    ap: SyncPtr,
) {
    let g = job.g;
    let (ckk, p, o, big, small) = (g.ckk(), g.p(), g.o, g.big(), g.small());
    let np = n * p;
    let (dw, db) = acc.split_at_mut(n_dw);
    let Scratch {
        col,
        zt,
        img: masked,
    } = sc;
    grow(col, ckk * np);
    if job.f || job.kk {
        let a = job.a.expect("big side");
        for i in 0..n {
            let mut img = &a[(b0 + i) * big..(b0 + i + 1) * big];
            if let Some(mask) = job.a_mask {
                grow(masked, big);
                masked_copy(&mut masked[..big], img, &mask[(b0 + i) * big..]);
                img = &masked[..big];
            }
            if job.db == Some(Side::Big) {
                for (d, plane) in db.iter_mut().zip(img.chunks_exact(g.h * g.w)) {
                    *d += plane.iter().sum::<f32>();
                }
            }
            im2col(&g, img, col, np, i * p);
        }
    }
    let colm = View::new(col.as_ptr(), np, 1);
    if job.f {
        let wm = View::new(job.w.as_ptr(), ckk, 1);
        // images b0 .. b0 + n of the small-side output are this chunk's alone
        // SAFETY: in bounds of the output's allocation.
        let out = unsafe { zp.get().add(b0 * small) };
        if n == 1 {
            // SAFETY: out has room for o × p, col holds ckk × p.
            unsafe { mm(job.bf16, o, p, ckk, out, p, false, wm, colm) };
        } else {
            grow(zt, o * np);
            // SAFETY: zt is o × np, col is ckk × np.
            unsafe { mm(job.bf16, o, np, ckk, zt.as_mut_ptr(), np, false, wm, colm) };
            for i in 0..n {
                for oc in 0..o {
                    let src = &zt[oc * np + i * p..oc * np + (i + 1) * p];
                    // SAFETY: channel oc of image i of this chunk's output.
                    unsafe {
                        std::ptr::copy_nonoverlapping(src.as_ptr(), out.add(i * small + oc * p), p)
                    };
                }
            }
        }
        // SAFETY: written in full just above.
        let out = unsafe { std::slice::from_raw_parts_mut(out, n * small) };
        for img in out.chunks_exact_mut(small) {
            bias_act(img, p, job.bias, job.relu);
        }
    }
    if !(job.gk || job.kk || job.db == Some(Side::Small)) {
        return;
    }
    let z = job.z.expect("small side");
    let zc = if n == 1 && job.z_mask.is_none() {
        View::new(z[b0 * small..].as_ptr(), p, 1)
    } else {
        grow(zt, o * np);
        for i in 0..n {
            let img = &z[(b0 + i) * small..(b0 + i + 1) * small];
            for (oc, src) in img.chunks_exact(p).enumerate() {
                let dst = &mut zt[oc * np + i * p..oc * np + (i + 1) * p];
                match job.z_mask {
                    Some(mask) => {
                        let m = &mask[(b0 + i) * small + oc * p..];
                        masked_copy(dst, src, m);
                    }
                    None => dst.copy_from_slice(src),
                }
            }
        }
        View::new(zt.as_ptr(), np, 1)
    };
    if job.db == Some(Side::Small) {
        for (oc, d) in db.iter_mut().enumerate() {
            // SAFETY: row oc of zc holds np floats.
            let row = unsafe { std::slice::from_raw_parts(zc.ptr.add(oc * zc.rs), np) };
            *d += row.iter().sum::<f32>();
        }
    }
    if job.kk {
        // dW (o × ckk) += zc (o × np) · colᵀ (np × ckk)
        // SAFETY: dw is o × ckk; col and zc are as built above.
        unsafe {
            mm(
                job.bf16,
                o,
                ckk,
                np,
                dw.as_mut_ptr(),
                ckk,
                true,
                zc,
                View::new(col.as_ptr(), 1, np),
            )
        };
    }
    if job.gk {
        // col (ckk × np) = Wᵀ (ckk × o) · zc (o × np); K above is done with col.
        let wt = View::new(job.w.as_ptr(), 1, ckk);
        // SAFETY: col holds ckk × np and overlaps neither w nor zc.
        unsafe { mm(job.bf16, ckk, np, o, col.as_mut_ptr(), np, false, wt, zc) };
        for i in 0..n {
            // SAFETY: image b0 + i of the big-side output is this chunk's alone; zeroed first.
            let img = unsafe {
                let img = ap.get().add((b0 + i) * big);
                img.write_bytes(0, big);
                std::slice::from_raw_parts_mut(img, big)
            };
            col2im(&g, col, np, i * p, img);
            bias_act(img, g.h * g.w, job.bias, job.relu);
        }
    }
}

/// The contiguous f32 data of a CPU storage.
fn cpu_f32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("ls3 conv: non-contiguous operand"),
    }
}

/// The contiguous f32 data of a CPU tensor's storage (the guard keeps it locked).
fn storage_f32<'a>(guard: &'a Storage, l: &Layout) -> Result<&'a [f32]> {
    match guard {
        Storage::Cpu(s) => cpu_f32(s, l),
        _ => bail!("ls3 conv: tensor is not on the CPU"),
    }
}

/// Convolution geometry from an input `[b, c, h, w]`, a kernel `[o, c, k, k]` and a stride.
fn conv_geom(x: &[usize], w: &[usize], s: usize) -> Result<Geom> {
    let (&[b, c, h, wd], &[o, c2, k, k2]) = (x, w) else {
        bail!("ls3 conv2d: expected 4-d input and kernel, got {x:?} and {w:?}")
    };
    if c != c2 || k != k2 || k == 0 || s == 0 || h < k || wd < k {
        bail!("ls3 conv2d: bad shapes {x:?} * {w:?} (stride {s})")
    }
    let (ho, wo) = ((h - k) / s + 1, (wd - k) / s + 1);
    Ok(Geom {
        b,
        c,
        h,
        w: wd,
        o,
        ho,
        wo,
        k,
        s,
    })
}

/// Transposed-convolution geometry from an input `[b, ci, hi, wi]`, a kernel `[ci, co, k, k]`
/// and a stride: output `[b, co, (hi − 1)·s + k, (wi − 1)·s + k]`.
fn conv_t_geom(x: &[usize], w: &[usize], s: usize) -> Result<Geom> {
    let (&[b, ci, hi, wi], &[ci2, co, k, k2]) = (x, w) else {
        bail!("ls3 conv_transpose2d: expected 4-d input and kernel, got {x:?} and {w:?}")
    };
    if ci != ci2 || k != k2 || k == 0 || s == 0 || hi == 0 || wi == 0 {
        bail!("ls3 conv_transpose2d: bad shapes {x:?} * {w:?} (stride {s})")
    }
    Ok(Geom {
        b,
        c: co,
        h: (hi - 1) * s + k,
        w: (wi - 1) * s + k,
        o: ci,
        ho: hi,
        wo: wi,
        k,
        s,
    })
}

/// One layer's op: a convolution (`x [B, C, H, W]`, kernel `[O, C, k, k]`) or a transposed
/// convolution (`x [B, Ci, H, W]`, kernel `[Ci, Co, k, k]`), stride `stride`, no padding, then
/// an optional bias (the op's third operand) and an optional ReLU.
#[derive(Clone, Copy, Debug)]
struct ConvOp {
    transpose: bool,
    stride: usize,
    relu: bool,
    /// Matrix products in bf16, forward and backward.
    bf16: bool,
}

impl ConvOp {
    /// The op in the process's [`precision`] (f32 where the CPU lacks AVX512-BF16).
    fn new(transpose: bool, stride: usize, relu: bool) -> Self {
        let bf16 = precision() == Precision::Bf16 && bf16_gemm::available();
        Self {
            transpose,
            stride,
            relu,
            bf16,
        }
    }

    fn geom(&self, x: &[usize], w: &[usize]) -> Result<Geom> {
        if self.transpose {
            conv_t_geom(x, w, self.stride)
        } else {
            conv_geom(x, w, self.stride)
        }
    }

    fn name(&self) -> &'static str {
        match (self.transpose, self.relu) {
            (false, false) => "ls3-conv2d",
            (false, true) => "ls3-conv2d-relu",
            (true, false) => "ls3-conv-transpose2d",
            (true, true) => "ls3-conv-transpose2d-relu",
        }
    }

    fn cpu_fwd(
        &self,
        (xs, xl): (&CpuStorage, &Layout),
        (ws, wl): (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geom(xl.dims(), wl.dims())?;
        let out_channels = if self.transpose { g.c } else { g.o };
        let bias = bias.map(|(s, l)| cpu_f32(s, l)).transpose()?;
        if bias.is_some_and(|b| b.len() != out_channels) {
            bail!("ls3 conv: bias length differs from the {out_channels} output channels")
        }
        let x = Some(cpu_f32(xs, xl)?);
        let job = Job {
            g,
            w: cpu_f32(ws, wl)?,
            a: if self.transpose { None } else { x },
            a_mask: None,
            z: if self.transpose { x } else { None },
            z_mask: None,
            bias,
            relu: self.relu,
            f: !self.transpose,
            gk: self.transpose,
            kk: false,
            db: None,
            bf16: self.bf16,
        };
        let out = run(&job);
        Ok(if self.transpose {
            let a = out.a.expect("big side output");
            (CpuStorage::F32(a), Shape::from((g.b, g.c, g.h, g.w)))
        } else {
            let z = out.z.expect("small side output");
            (CpuStorage::F32(z), Shape::from((g.b, g.o, g.ho, g.wo)))
        })
    }

    /// Gradients of the input, kernel and bias (those that autograd tracks).
    #[allow(clippy::type_complexity)]
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.geom(x.dims(), w.dims())?;
        let (grad, res) = (grad.contiguous()?, res.contiguous()?);
        let want_b = bias.is_some_and(|b| b.track_op());
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let (rs, rl) = res.storage_and_layout();
        let (x_f, g_f) = (Some(storage_f32(&xs, xl)?), Some(storage_f32(&gs, gl)?));
        let mask = if self.relu {
            Some(storage_f32(&rs, rl)?)
        } else {
            None
        };
        let t = self.transpose;
        let job = Job {
            g,
            w: storage_f32(&ws, wl)?,
            a: if t { g_f } else { x_f },
            a_mask: if t { mask } else { None },
            z: if t { x_f } else { g_f },
            z_mask: if t { None } else { mask },
            bias: None,
            relu: false,
            f: t && x.track_op(),
            gk: !t && x.track_op(),
            kk: w.track_op(),
            db: want_b.then_some(if t { Side::Big } else { Side::Small }),
            bf16: self.bf16,
        };
        let out = run(&job);
        let dx = if t { out.z } else { out.a };
        let cpu = |v: Vec<f32>, shape: &[usize]| Tensor::from_vec(v, shape, &Device::Cpu);
        let dx = dx.map(|d| cpu(d, x.dims())).transpose()?;
        let dw = out.dw.map(|d| cpu(d, w.dims())).transpose()?;
        let db = match (out.db, bias) {
            (Some(d), Some(b)) => Some(cpu(d, b.dims())?),
            _ => None,
        };
        Ok((dx, dw, db))
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        ConvOp::name(self)
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        ConvOp::cpu_fwd(self, (s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = ConvOp::bwd(self, x, w, None, res, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        ConvOp::name(self)
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        ConvOp::cpu_fwd(self, (s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        ConvOp::bwd(self, x, w, Some(b), res, grad)
    }
}

/// Whether the fast path applies: f32 tensors on the CPU and a square kernel.
fn fast_path(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> bool {
    let cpu_f32 = |t: &Tensor| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32;
    cpu_f32(x)
        && cpu_f32(w)
        && bias.is_none_or(|b| cpu_f32(b) && b.rank() == 1)
        && x.rank() == 4
        && w.rank() == 4
        && w.dims()[2] == w.dims()[3]
}

/// Makes glibc's allocator keep freed memory for reuse instead of handing it back to the kernel.
///
/// A training step allocates and frees a few hundred MB of tensors (candle allocates every
/// intermediate and every gradient afresh). With glibc's defaults most of those blocks are
/// mapped and unmapped per use, so every step pays for fresh zeroed pages (page faults) and for
/// TLB shoot-downs across the worker threads: on the 2-core machine this was a third of the VAE
/// step's time. Raising the mmap threshold to its maximum (32 MiB) and turning off heap trimming
/// lets freed blocks be reused; the process keeps its peak heap, which the next step needs
/// anyway. Called once by the first fast-path convolution; a no-op off glibc.
pub fn retain_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            unsafe extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            // SAFETY: mallopt only changes allocator parameters; both values are in range.
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 32 << 20);
                mallopt(M_TRIM_THRESHOLD, i32::MAX);
            }
        }
    });
}

fn apply(op: ConvOp, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    if !fast_path(x, w, bias) {
        let y = if op.transpose {
            x.conv_transpose2d(w, 0, 0, op.stride, 1)?
        } else {
            x.conv2d(w, 0, op.stride, 1, 1)?
        };
        let y = match bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?)?,
            None => y,
        };
        return if op.relu { y.relu() } else { Ok(y) };
    }
    retain_freed_memory();
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
        None => x.apply_op2(&w, op),
    }
}

/// 2-D convolution (PyTorch `Conv2d` semantics, no padding, no dilation, no bias):
/// `x [B, C, H, W]`, `w [O, C, k, k]` → `[B, O, (H − k)/s + 1, (W − k)/s + 1]`.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize) -> Result<Tensor> {
    let op = ConvOp::new(false, stride, false);
    apply(op, x, w, None)
}

/// 2-D transposed convolution (PyTorch `ConvTranspose2d` semantics, no padding, no output
/// padding, no dilation, no bias): `x [B, Ci, H, W]`, `w [Ci, Co, k, k]` →
/// `[B, Co, (H − 1)·s + k, (W − 1)·s + k]`.
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, stride: usize) -> Result<Tensor> {
    let op = ConvOp::new(true, stride, false);
    apply(op, x, w, None)
}

/// [`conv2d`] plus a per-channel `bias [O]`, then ReLU if `relu`, as one op.
pub fn conv2d_bias(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    stride: usize,
    relu: bool,
) -> Result<Tensor> {
    let op = ConvOp::new(false, stride, relu);
    apply(op, x, w, Some(bias))
}

/// [`conv_transpose2d`] plus a per-channel `bias [Co]`, then ReLU if `relu`, as one op.
pub fn conv_transpose2d_bias(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    stride: usize,
    relu: bool,
) -> Result<Tensor> {
    let op = ConvOp::new(true, stride, relu);
    apply(op, x, w, Some(bias))
}

/// A `Conv2d` layer (weight `out × in × k × k`, bias `out`) on [`conv2d_bias`], with the
/// activation that follows it fused in.
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    relu: bool,
}

impl Conv2d {
    /// The layer under `vb` (`weight`, `bias`), initialised like `candle_nn::conv2d`; `relu`
    /// applies a ReLU to its output.
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        relu: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (c_out, c_in, k, k),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bound = 1. / (c_in as f64).sqrt();
        let init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let bias = vb.get_with_hints(c_out, "bias", init)?;
        Ok(Self {
            weight,
            bias,
            stride,
            relu,
        })
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d_bias(x, &self.weight, &self.bias, self.stride, self.relu)
    }
}

/// A `ConvTranspose2d` layer (weight `in × out × k × k`, bias `out`) on
/// [`conv_transpose2d_bias`], with the activation that follows it fused in.
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    relu: bool,
}

impl ConvTranspose2d {
    /// The layer under `vb` (`weight`, `bias`), initialised like
    /// `candle_nn::conv_transpose2d`; `relu` applies a ReLU to its output.
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        relu: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let bound = 1. / (c_out as f64).sqrt() / k as f64;
        let init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints((c_in, c_out, k, k), "weight", init)?;
        let bias = vb.get_with_hints(c_out, "bias", init)?;
        Ok(Self {
            weight,
            bias,
            stride,
            relu,
        })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv_transpose2d_bias(x, &self.weight, &self.bias, self.stride, self.relu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// Deterministic pseudo-random values in `[lo, hi)`.
    fn rand(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn assert_close(what: &str, ours: &Tensor, reference: &Tensor) {
        let d = crate::model::max_abs_diff(ours, reference).unwrap();
        assert!(d <= 1e-4, "{what}: max abs difference {d} > 1e-4");
    }

    /// Forward output and all gradients of one op against candle's own (`conv2d` /
    /// `conv_transpose2d`, then `broadcast_add` and `relu`) with a random upstream gradient, in
    /// three variants: plain, with a bias, with a bias and a ReLU. `transpose` selects the
    /// transposed convolution.
    fn check(transpose: bool, x_shape: &[usize], w_shape: &[usize], stride: usize, seed: u64) {
        let fan: usize = w_shape[1..].iter().product();
        let scale = 1.0 / (fan as f32).sqrt();
        let out_channels = w_shape[if transpose { 1 } else { 0 }];
        let x = Var::from_tensor(&rand(x_shape, 0.0, 1.0, seed)).unwrap();
        let w = Var::from_tensor(&rand(w_shape, -scale, scale, seed + 1)).unwrap();
        let b = Var::from_tensor(&rand(&[out_channels], -0.5, 0.5, seed + 2)).unwrap();
        let kind = if transpose { "conv_t" } else { "conv" };
        for (with_bias, relu) in [(false, false), (true, false), (true, true)] {
            let reference = if transpose {
                x.conv_transpose2d(&w, 0, 0, stride, 1).unwrap()
            } else {
                x.conv2d(&w, 0, stride, 1, 1).unwrap()
            };
            let (ours, reference) = if with_bias {
                let r = reference
                    .broadcast_add(&b.reshape((1, (), 1, 1)).unwrap())
                    .unwrap();
                let r = if relu { r.relu().unwrap() } else { r };
                let ours = if transpose {
                    conv_transpose2d_bias(&x, &w, &b, stride, relu).unwrap()
                } else {
                    conv2d_bias(&x, &w, &b, stride, relu).unwrap()
                };
                (ours, r)
            } else if transpose {
                (conv_transpose2d(&x, &w, stride).unwrap(), reference)
            } else {
                (conv2d(&x, &w, stride).unwrap(), reference)
            };
            let what =
                format!("{kind} {x_shape:?} * {w_shape:?} s{stride} bias {with_bias} relu {relu}");
            assert_close(&format!("{what} forward"), &ours, &reference);
            let up = rand(reference.dims(), -0.1, 0.1, seed + 3);
            let g_ours = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let g_ref = (reference * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let mut vars = vec![("input", &x), ("kernel", &w)];
            if with_bias {
                vars.push(("bias", &b));
            }
            for (name, v) in vars {
                assert_close(
                    &format!("{what} {name} gradient"),
                    g_ours.get(v).unwrap(),
                    g_ref.get(v).unwrap(),
                );
            }
            assert!(with_bias || g_ours.get(&b).is_none());
        }
    }

    #[test]
    fn conv2d_matches_candle_on_vae_layers() {
        for (b, c) in [(2, 3), (3, 9)] {
            check(false, &[b, c, 64, 64], &[32, c, 4, 4], 2, 1);
        }
        check(false, &[3, 32, 31, 31], &[64, 32, 4, 4], 3, 2);
        check(false, &[3, 64, 10, 10], &[128, 64, 4, 4], 2, 3);
        check(false, &[5, 128, 4, 4], &[256, 128, 4, 4], 2, 4);
    }

    #[test]
    fn conv_transpose2d_matches_candle_on_vae_layers() {
        check(true, &[5, 256, 1, 1], &[256, 128, 5, 5], 2, 5);
        check(true, &[3, 128, 5, 5], &[128, 64, 5, 5], 2, 6);
        check(true, &[3, 64, 13, 13], &[64, 32, 6, 6], 2, 7);
        for c in [3, 9] {
            check(true, &[2, 32, 30, 30], &[32, c, 6, 6], 2, 8);
        }
    }

    #[test]
    fn conv2d_matches_candle_on_odd_shapes() {
        // rectangular images, stride 1, a stride that leaves rows unread, a 1×1 kernel
        check(false, &[3, 5, 9, 13], &[7, 5, 3, 3], 2, 10);
        check(false, &[2, 4, 8, 6], &[3, 4, 2, 2], 1, 11);
        check(false, &[4, 3, 10, 10], &[6, 3, 3, 3], 3, 12);
        check(false, &[7, 6, 5, 5], &[2, 6, 1, 1], 1, 13);
        // kernels covering the whole image (the dense path), a batch of one
        check(false, &[37, 5, 3, 3], &[9, 5, 3, 3], 2, 14);
        check(false, &[1, 4, 2, 2], &[3, 4, 2, 2], 1, 15);
    }

    #[test]
    fn conv_transpose2d_matches_candle_on_odd_shapes() {
        check(true, &[3, 5, 4, 7], &[5, 7, 3, 3], 2, 20);
        check(true, &[2, 4, 6, 5], &[4, 3, 2, 2], 1, 21);
        check(true, &[4, 6, 3, 3], &[6, 2, 3, 3], 3, 22);
        check(true, &[9, 8, 2, 2], &[8, 5, 4, 4], 3, 23);
        check(true, &[37, 6, 1, 1], &[6, 4, 3, 3], 2, 24);
        check(true, &[1, 3, 1, 1], &[3, 2, 2, 2], 1, 25);
    }

    /// The AVX-512 im2col / col2im against the plain loops (where the CPU has AVX-512).
    #[test]
    fn vector_im2col_col2im_match_scalar() {
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::avx512() {
            // (c, h, w, k, s): the VAE's layers (as convolutions) and odd ones
            let cases = [
                (3, 64, 64, 4, 2),
                (32, 31, 31, 4, 3),
                (64, 10, 10, 4, 2),
                (128, 4, 4, 4, 2),
                (128, 5, 5, 5, 2),
                (64, 13, 13, 5, 2),
                (32, 30, 30, 6, 2),
                (3, 64, 64, 6, 2),
                (2, 40, 37, 3, 1),
                (2, 50, 45, 7, 5),
                (1, 20, 20, 20, 1),
                (2, 33, 35, 2, 2),
            ];
            for (c, h, w, k, s) in cases {
                let (ho, wo) = ((h - k) / s + 1, (w - k) / s + 1);
                let g = Geom {
                    b: 1,
                    c,
                    h,
                    w,
                    o: 1,
                    ho,
                    wo,
                    k,
                    s,
                };
                let img = rand(&[g.big()], -1.0, 1.0, 50).to_vec1::<f32>().unwrap();
                // two images' columns side by side, this one second
                let (ld, off) = (2 * g.p() + 3, g.p() + 1);
                let mut fast = vec![7.0f32; g.ckk() * ld];
                let mut slow = fast.clone();
                // SAFETY: AVX-512F is present; the buffers have the sizes im2col checks.
                unsafe { avx512::im2col(&g, &img, &mut fast, ld, off) };
                im2col_scalar(&g, &img, &mut slow, ld, off);
                assert_eq!(fast, slow, "im2col {c}×{h}×{w} k{k} s{s}");
                let cols = rand(&[g.ckk() * ld], -1.0, 1.0, 51)
                    .to_vec1::<f32>()
                    .unwrap();
                let mut fast = rand(&[g.big()], -1.0, 1.0, 52).to_vec1::<f32>().unwrap();
                let mut slow = fast.clone();
                // SAFETY: as above.
                unsafe { avx512::col2im(&g, &cols, ld, off, &mut fast) };
                col2im_scalar(&g, &cols, ld, off, &mut slow);
                let diff = fast
                    .iter()
                    .zip(&slow)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(diff <= 1e-5, "col2im {c}×{h}×{w} k{k} s{s}: {diff}");
            }
        }
    }

    /// Forward output and input, kernel and bias gradients of one op with bf16 products against
    /// the same op in f32, element by element within 2⁻⁷ of the sum of the magnitudes of the
    /// products behind the element (the f32 op on |x|, |w| and |upstream|): bias without ReLU,
    /// then the forward alone with ReLU (a pre-activation near zero may switch its mask).
    fn check_bf16(transpose: bool, x_shape: &[usize], w_shape: &[usize], stride: usize, seed: u64) {
        let out_channels = w_shape[if transpose { 1 } else { 0 }];
        let x = Var::from_tensor(&rand(x_shape, -1.0, 1.0, seed)).unwrap();
        let w = Var::from_tensor(&rand(w_shape, -0.2, 0.2, seed + 1)).unwrap();
        let b = Var::from_tensor(&rand(&[out_channels], -0.5, 0.5, seed + 2)).unwrap();
        let op = |bf16: bool, relu: bool| ConvOp {
            transpose,
            stride,
            relu,
            bf16,
        };
        let what = format!(
            "bf16 {} {x_shape:?} * {w_shape:?} s{stride}",
            op(true, false).name()
        );
        let within = |name: &str, ours: &Tensor, f32: &Tensor, bound: &Tensor| {
            let excess = ((ours - f32).unwrap().abs().unwrap() - (bound / 128.0).unwrap())
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                excess <= 1e-6,
                "{what} {name}: exceeds the bf16 bound by {excess}"
            );
            let d = crate::model::max_abs_diff(ours, f32).unwrap();
            assert!(d > 0.0, "{what} {name}: bit-identical to f32, so not bf16");
        };
        let fwd = |bf16: bool, relu: bool| apply(op(bf16, relu), &x, &w, Some(&b)).unwrap();
        let (ours, f32) = (fwd(true, false), fwd(false, false));
        let up = rand(f32.dims(), -1.0, 1.0, seed + 3);
        // the magnitudes: forward of |x|, |w|; gradients of Σ |upstream| · op(|x|, |w|)
        let (xa, wa) = (
            Var::from_tensor(&x.abs().unwrap()).unwrap(),
            Var::from_tensor(&w.abs().unwrap()).unwrap(),
        );
        let mag = apply(op(false, false), &xa, &wa, None).unwrap();
        let g_mag = (&mag * up.abs().unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        within("forward", &ours, &f32, &mag);
        let grads = |y: Tensor| (y * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let (g_ours, g_f32) = (grads(ours), grads(f32));
        for (name, v, m) in [("input", &x, &xa), ("kernel", &w, &wa)] {
            let bound = g_mag.get(m).unwrap();
            within(
                &format!("{name} gradient"),
                g_ours.get(v).unwrap(),
                g_f32.get(v).unwrap(),
                bound,
            );
        }
        let d =
            crate::model::max_abs_diff(g_ours.get(&b).unwrap(), g_f32.get(&b).unwrap()).unwrap();
        assert!(d <= 1e-5, "{what} bias gradient: {d}");
        within(
            "forward with ReLU",
            &fwd(true, true),
            &fwd(false, true),
            &mag,
        );
    }

    #[test]
    fn bf16_conv2d_matches_f32_within_bf16_rounding() {
        if !bf16_gemm::available() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        check_bf16(false, &[3, 3, 64, 64], &[32, 3, 4, 4], 2, 60);
        check_bf16(false, &[3, 32, 31, 31], &[64, 32, 4, 4], 3, 61);
        check_bf16(false, &[5, 64, 10, 10], &[128, 64, 4, 4], 2, 62);
        check_bf16(false, &[5, 128, 4, 4], &[256, 128, 4, 4], 2, 63);
        check_bf16(false, &[3, 5, 9, 13], &[7, 5, 3, 3], 2, 64);
    }

    #[test]
    fn bf16_conv_transpose2d_matches_f32_within_bf16_rounding() {
        if !bf16_gemm::available() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        check_bf16(true, &[5, 256, 1, 1], &[256, 128, 5, 5], 2, 70);
        check_bf16(true, &[3, 128, 5, 5], &[128, 64, 5, 5], 2, 71);
        check_bf16(true, &[3, 64, 13, 13], &[64, 32, 6, 6], 2, 72);
        check_bf16(true, &[2, 32, 30, 30], &[32, 3, 6, 6], 2, 73);
        check_bf16(true, &[3, 5, 4, 7], &[5, 7, 3, 3], 2, 74);
    }

    #[test]
    fn no_input_gradient_for_constant_input() {
        let x = rand(&[2, 3, 16, 16], 0.0, 1.0, 30);
        let w = Var::from_tensor(&rand(&[4, 3, 4, 4], -0.1, 0.1, 31)).unwrap();
        let grads = conv2d(&x, &w, 2)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&x).is_none());
        assert!(grads.get(&w).is_some());
    }

    #[test]
    fn non_contiguous_input_is_accepted() {
        let x = rand(&[3, 2, 12, 12], 0.0, 1.0, 40).transpose(0, 1).unwrap();
        let w = rand(&[5, 3, 3, 3], -0.2, 0.2, 41);
        let ours = conv2d(&x, &w, 1).unwrap();
        let reference = x.contiguous().unwrap().conv2d(&w, 0, 1, 1, 1).unwrap();
        assert_close("transposed input", &ours, &reference);
    }
}
