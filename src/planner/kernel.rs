//! The arithmetic of the planner's CPU fast path: a dense layer (W·x + b, optional ReLU), a
//! one-output layer and the Gaussian latent step z + μ + e^{log σ}·ε.
//!
//! Activations are *feature-major*: feature `i` of row `r` sits at `x[i · ld + r]`, so one
//! vector holds one feature of 16 rows (particles). The dense kernel keeps an 8-output ×
//! 48-row block in registers, loads three row vectors per input feature and broadcasts the
//! matching 8 weights, packed per 8-output panel; any layer width and row count work without
//! padding (the last row vector is masked).
//!
//! Each operation has an AVX-512 version, picked at run time, and a portable one (the `gemm`
//! crate and plain loops). AVX-512 matters: the `gemm` crate as built here uses 256-bit vectors,
//! half of what the cores can multiply per cycle. A layer packed in [`Precision::Bf16`] runs
//! the bf16 variant of the dense kernel instead ([`super::bf16_dense`]).

use crate::cpu::avx512;
use crate::model::conv::Precision;

/// f32 lanes of one AVX-512 vector.
pub const LANES: usize = 16;
/// Outputs per packed weight panel (even: [`super::bf16_dense`] pairs outputs within a panel).
pub(super) const PANEL: usize = 8;

/// A dense layer `W·x + b` with `k` inputs and `n` outputs, its weights laid out for the kernel
/// that will run it.
#[derive(Clone, Debug)]
pub struct PackedLayer {
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) weights: Weights,
    pub(super) bias: Vec<f32>,
}

/// A layer's weights in the layout of the kernel that runs it.
#[derive(Clone, Debug)]
pub(super) enum Weights {
    /// `W` itself, `[n][k]`, for the portable path.
    Plain(Vec<f32>),
    /// Panels of 8 outputs (the last one narrower when 8 ∤ n), each `[k][width]`, for the
    /// AVX-512 kernel.
    Panels(Vec<f32>),
    /// The same panels in bf16 pairs, each `[⌈k/2⌉][width]`, for the AVX512-BF16 kernel (see
    /// [`super::bf16_dense`]).
    Bf16Panels(Vec<u32>),
}

impl PackedLayer {
    /// From `w` `[n][k]` (PyTorch's and candle's layout: one row per output) and `bias` `[n]`.
    pub fn new(k: usize, n: usize, w: &[f32], bias: &[f32]) -> Self {
        Self::with_layout(k, n, w, bias, avx512())
    }

    /// [`PackedLayer::new`], or with `Bf16` and a CPU with AVX512-BF16, bf16 weights for
    /// [`super::bf16_dense::dense_pairs`] (the bias stays f32).
    pub fn with_precision(k: usize, n: usize, w: &[f32], bias: &[f32], p: Precision) -> Self {
        if !bf16_runs(p) {
            return Self::new(k, n, w, bias);
        }
        assert_eq!(w.len(), k * n, "weights of a {k}→{n} layer");
        assert_eq!(bias.len(), n, "bias of a {k}→{n} layer");
        Self {
            k,
            n,
            weights: Weights::Bf16Panels(super::bf16_dense::pack(k, n, w)),
            bias: bias.to_vec(),
        }
    }

    fn with_layout(k: usize, n: usize, w: &[f32], bias: &[f32], panels: bool) -> Self {
        assert_eq!(w.len(), k * n, "weights of a {k}→{n} layer");
        assert_eq!(bias.len(), n, "bias of a {k}→{n} layer");
        let weights = if panels {
            let mut data = vec![0f32; k * n];
            for (c, row) in w.chunks_exact(k).enumerate() {
                let p0 = c / PANEL * PANEL;
                let width = PANEL.min(n - p0);
                for (kk, &v) in row.iter().enumerate() {
                    data[p0 * k + kk * width + c - p0] = v;
                }
            }
            Weights::Panels(data)
        } else {
            Weights::Plain(w.to_vec())
        };
        Self {
            k,
            n,
            weights,
            bias: bias.to_vec(),
        }
    }

    /// The arithmetic this layer runs in: `Bf16` only where it was asked for and the CPU has
    /// AVX512-BF16.
    pub fn precision(&self) -> Precision {
        match self.weights {
            Weights::Bf16Panels(_) => Precision::Bf16,
            _ => Precision::F32,
        }
    }

    /// Inputs.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Outputs.
    pub fn n(&self) -> usize {
        self.n
    }
}

/// Whether layers packed for precision `p` run in bf16: `p` is `Bf16` and the CPU has
/// AVX512-BF16.
pub fn bf16_runs(p: Precision) -> bool {
    p == Precision::Bf16 && crate::cpu::avx512_bf16()
}

/// `out = act(W·x + b)` for `rows` rows: `x` has `k` features `ldx` apart, `out` gets `n`
/// features `ldo` apart (each `rows` long). The layer must be packed in f32.
pub fn dense(
    x: &[f32],
    ldx: usize,
    rows: usize,
    layer: &PackedLayer,
    out: &mut [f32],
    ldo: usize,
    relu: bool,
) {
    let (k, n) = (layer.k, layer.n);
    if rows == 0 || n == 0 {
        return;
    }
    assert!(
        k > 0 && ldx >= rows && x.len() >= (k - 1) * ldx + rows,
        "dense: input too short"
    );
    assert!(
        ldo >= rows && out.len() >= (n - 1) * ldo + rows,
        "dense: output too short"
    );
    #[cfg(target_arch = "x86_64")]
    if let Weights::Panels(panels) = &layer.weights {
        // SAFETY: panels are only laid out where AVX-512F is present; the asserts above bound
        // every access.
        unsafe {
            x86::dense(
                x.as_ptr(),
                ldx,
                rows,
                k,
                n,
                panels.as_ptr(),
                layer.bias.as_ptr(),
                out.as_mut_ptr(),
                ldo,
                relu,
            )
        };
        return;
    }
    // (panels exist only where the branch above takes them)
    let Weights::Plain(data) = &layer.weights else {
        panic!("dense: a bf16 layer runs in bf16_dense::dense_pairs");
    };
    for (j, &b) in layer.bias.iter().enumerate() {
        out[j * ldo..j * ldo + rows].fill(b);
    }
    // SAFETY: the asserts above bound the three strided matrices inside their slices.
    unsafe {
        gemm::gemm(
            n,
            rows,
            k,
            out.as_mut_ptr(),
            1,
            ldo as isize,
            true,
            data.as_ptr(),
            1,
            k as isize,
            x.as_ptr(),
            1,
            ldx as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    };
    if relu {
        for j in 0..n {
            for v in &mut out[j * ldo..j * ldo + rows] {
                *v = v.max(0.0);
            }
        }
    }
}

/// A one-output layer: `out[r] = b + Σ_i w[i] · x[i][r]` for `rows` rows (features `ldx` apart).
pub fn dot(x: &[f32], ldx: usize, rows: usize, w: &[f32], b: f32, out: &mut [f32]) {
    let k = w.len();
    if rows == 0 {
        return;
    }
    assert!(k > 0 && ldx >= rows && x.len() >= (k - 1) * ldx + rows && out.len() >= rows);
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: AVX-512F is present and the asserts above bound every access.
        unsafe { x86::dot(x.as_ptr(), ldx, rows, w.as_ptr(), k, b, out.as_mut_ptr()) };
        return;
    }
    out[..rows].fill(b);
    for (i, &wi) in w.iter().enumerate() {
        for (o, &v) in out[..rows].iter_mut().zip(&x[i * ldx..i * ldx + rows]) {
            *o += wi * v;
        }
    }
}

/// One sampled latent step: `next = z + mean + exp(log_std) · eps`, elementwise over equal
/// lengths.
pub fn gaussian_step(z: &[f32], mean: &[f32], log_std: &[f32], eps: &[f32], next: &mut [f32]) {
    let n = z.len();
    assert!(mean.len() == n && log_std.len() == n && eps.len() == n && next.len() == n);
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: AVX-512F is present; all five slices hold `n` floats.
        unsafe {
            x86::gaussian_step(
                z.as_ptr(),
                mean.as_ptr(),
                log_std.as_ptr(),
                eps.as_ptr(),
                next.as_mut_ptr(),
                n,
            )
        };
        return;
    }
    for i in 0..n {
        next[i] = z[i] + mean[i] + log_std[i].exp() * eps[i];
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{LANES, PANEL};
    use std::arch::x86_64::*;

    /// Row vectors per register block (`3 × 8` accumulators, 3 input vectors: 27 of the 32
    /// registers).
    const NV: usize = 3;

    /// The mask of the last vector of `rows` rows.
    fn tail_mask(rows: usize) -> __mmask16 {
        match rows % LANES {
            0 => 0xffff,
            r => (1u16 << r) - 1,
        }
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn dense(
        x: *const f32,
        ldx: usize,
        rows: usize,
        k: usize,
        n: usize,
        w: *const f32,
        bias: *const f32,
        out: *mut f32,
        ldo: usize,
        relu: bool,
    ) {
        for r0 in (0..rows).step_by(NV * LANES) {
            let nr = (rows - r0).min(NV * LANES);
            let mask = tail_mask(nr);
            for p0 in (0..n).step_by(PANEL) {
                // SAFETY: the caller bounds rows `r0..r0 + nr` of features `0..k` / `p0..p0 + PANEL`.
                unsafe {
                    let (x, w, b, o) = (
                        x.add(r0),
                        w.add(p0 * k),
                        bias.add(p0),
                        out.add(p0 * ldo + r0),
                    );
                    let mc = (n - p0).min(PANEL);
                    match nr.div_ceil(LANES) {
                        3 => panel::<3>(mc, x, ldx, k, w, b, o, ldo, relu, mask),
                        2 => panel::<2>(mc, x, ldx, k, w, b, o, ldo, relu, mask),
                        _ => panel::<1>(mc, x, ldx, k, w, b, o, ldo, relu, mask),
                    }
                }
            }
        }
    }

    /// One panel of `mc` (≤ 8) outputs over `V` row vectors.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn panel<const V: usize>(
        mc: usize,
        x: *const f32,
        ldx: usize,
        k: usize,
        w: *const f32,
        b: *const f32,
        o: *mut f32,
        ldo: usize,
        relu: bool,
        mask: __mmask16,
    ) {
        // SAFETY: forwarded from `dense`.
        unsafe {
            match mc {
                8 => tile::<V, 8>(x, ldx, k, w, b, o, ldo, relu, mask),
                7 => tile::<V, 7>(x, ldx, k, w, b, o, ldo, relu, mask),
                6 => tile::<V, 6>(x, ldx, k, w, b, o, ldo, relu, mask),
                5 => tile::<V, 5>(x, ldx, k, w, b, o, ldo, relu, mask),
                4 => tile::<V, 4>(x, ldx, k, w, b, o, ldo, relu, mask),
                3 => tile::<V, 3>(x, ldx, k, w, b, o, ldo, relu, mask),
                2 => tile::<V, 2>(x, ldx, k, w, b, o, ldo, relu, mask),
                _ => tile::<V, 1>(x, ldx, k, w, b, o, ldo, relu, mask),
            }
        }
    }

    /// `MC` outputs × `V` row vectors, accumulated in registers over all `k` inputs; `w` is the
    /// panel (`[k][MC]`), `mask` selects the rows of the last vector.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const V: usize, const MC: usize>(
        x: *const f32,
        ldx: usize,
        k: usize,
        w: *const f32,
        bias: *const f32,
        out: *mut f32,
        ldo: usize,
        relu: bool,
        mask: __mmask16,
    ) {
        // SAFETY: forwarded from `dense`; the masked loads and stores touch only rows in range.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); V]; MC];
            for (c, row) in acc.iter_mut().enumerate() {
                *row = [_mm512_set1_ps(*bias.add(c)); V];
            }
            let (mut xp, mut wp) = (x, w);
            for _ in 0..k {
                let mut xv = [_mm512_setzero_ps(); V];
                for (v, xv) in xv.iter_mut().enumerate() {
                    *xv = if v + 1 == V {
                        _mm512_maskz_loadu_ps(mask, xp.add(v * LANES))
                    } else {
                        _mm512_loadu_ps(xp.add(v * LANES))
                    };
                }
                for (c, row) in acc.iter_mut().enumerate() {
                    let wc = _mm512_set1_ps(*wp.add(c));
                    for v in 0..V {
                        row[v] = _mm512_fmadd_ps(wc, xv[v], row[v]);
                    }
                }
                xp = xp.add(ldx);
                wp = wp.add(MC);
            }
            let zero = _mm512_setzero_ps();
            for (c, row) in acc.iter().enumerate() {
                for (v, &y) in row.iter().enumerate() {
                    let y = if relu { _mm512_max_ps(y, zero) } else { y };
                    let p = out.add(c * ldo + v * LANES);
                    if v + 1 == V {
                        _mm512_mask_storeu_ps(p, mask, y);
                    } else {
                        _mm512_storeu_ps(p, y);
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot(
        x: *const f32,
        ldx: usize,
        rows: usize,
        w: *const f32,
        k: usize,
        b: f32,
        out: *mut f32,
    ) {
        const DV: usize = 4;
        for r0 in (0..rows).step_by(DV * LANES) {
            let nr = (rows - r0).min(DV * LANES);
            let nv = nr.div_ceil(LANES);
            let masks: [__mmask16; DV] = std::array::from_fn(|v| match (v + 1).cmp(&nv) {
                std::cmp::Ordering::Less => 0xffff,
                std::cmp::Ordering::Equal => tail_mask(nr),
                std::cmp::Ordering::Greater => 0,
            });
            // SAFETY: masked loads and stores touch only rows `r0..r0 + nr` of features `0..k`.
            unsafe {
                let mut acc = [_mm512_set1_ps(b); DV];
                let mut xp = x.add(r0);
                for i in 0..k {
                    let wi = _mm512_set1_ps(*w.add(i));
                    for v in 0..DV {
                        let xv = _mm512_maskz_loadu_ps(masks[v], xp.add(v * LANES));
                        acc[v] = _mm512_fmadd_ps(wi, xv, acc[v]);
                    }
                    xp = xp.add(ldx);
                }
                for v in 0..nv {
                    _mm512_mask_storeu_ps(out.add(r0 + v * LANES), masks[v], acc[v]);
                }
            }
        }
    }

    /// e^x to about 1 ulp: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its degree-6 Taylor polynomial,
    /// scaled by 2^n.
    #[target_feature(enable = "avx512f")]
    fn exp(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(-87.0)),
            _mm512_set1_ps(88.0),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm512_set1_ps(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn gaussian_step(
        z: *const f32,
        mean: *const f32,
        log_std: *const f32,
        eps: *const f32,
        next: *mut f32,
        n: usize,
    ) {
        for i in (0..n).step_by(LANES) {
            let m = if n - i >= LANES {
                0xffff
            } else {
                tail_mask(n - i)
            };
            // SAFETY: masked loads and stores touch only elements `i..n`.
            unsafe {
                let s = exp(_mm512_maskz_loadu_ps(m, log_std.add(i)));
                let e = _mm512_maskz_loadu_ps(m, eps.add(i));
                let d = _mm512_fmadd_ps(s, e, _mm512_maskz_loadu_ps(m, mean.add(i)));
                let zn = _mm512_add_ps(_mm512_maskz_loadu_ps(m, z.add(i)), d);
                _mm512_mask_storeu_ps(next.add(i), m, zn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `act(W·x + b)` in f64, feature-major `x` `[k][rows]`, `w` `[n][k]`.
    fn reference(x: &[f32], k: usize, rows: usize, w: &[f32], b: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0f32; n * rows];
        for j in 0..n {
            for r in 0..rows {
                let s: f64 = (0..k)
                    .map(|i| x[i * rows + r] as f64 * w[j * k + i] as f64)
                    .sum();
                out[j * rows + r] = (s + b[j] as f64).max(0.0) as f32;
            }
        }
        out
    }

    fn values(len: usize, salt: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i.wrapping_mul(2654435761) ^ salt) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn dense_matches_a_plain_matmul_for_odd_sizes_and_strides() {
        for &(rows, k, n) in &[
            (1, 3, 5),
            (13, 34, 128),
            (50, 200, 200),
            (48, 32, 16),
            (97, 5, 13),
        ] {
            let x = values(rows * k, 1);
            let (w, b) = (values(n * k, 2), values(n, 3));
            let want = reference(&x, k, rows, &w, &b, n);
            let ldo = rows + 3;
            for layer in [
                PackedLayer::new(k, n, &w, &b),
                PackedLayer::with_layout(k, n, &w, &b, false),
            ] {
                let mut out = vec![f32::NAN; n * ldo];
                dense(&x, rows, rows, &layer, &mut out, ldo, true);
                for j in 0..n {
                    for r in 0..rows {
                        let (g, e) = (out[j * ldo + r], want[j * rows + r]);
                        let tol = 1e-4 * (1.0 + e.abs());
                        assert!((g - e).abs() < tol, "{rows}×{k}→{n} [{j},{r}]: {g} vs {e}");
                    }
                    assert!(
                        out[j * ldo + rows..(j + 1) * ldo]
                            .iter()
                            .all(|v| v.is_nan())
                    );
                }
            }
        }
    }

    #[test]
    fn dot_and_gaussian_step_match_scalar_arithmetic() {
        for rows in [1, 16, 37, 130] {
            let k = 21;
            let x = values(k * (rows + 2), 9);
            let w = values(k, 10);
            let mut out = vec![f32::NAN; rows + 1];
            dot(&x, rows + 2, rows, &w, 0.25, &mut out);
            for r in 0..rows {
                let e: f32 = (0..k).map(|i| x[i * (rows + 2) + r] * w[i]).sum::<f32>() + 0.25;
                assert!((out[r] - e).abs() < 1e-4, "{} vs {e}", out[r]);
            }
            assert!(out[rows].is_nan());
        }
        let n = 37;
        let (z, m, eps) = (values(n, 11), values(n, 12), values(n, 13));
        let ls: Vec<f32> = values(n, 14).iter().map(|v| v * 10.0).collect();
        let mut next = vec![0f32; n];
        gaussian_step(&z, &m, &ls, &eps, &mut next);
        for i in 0..n {
            let e = z[i] + m[i] + ls[i].exp() * eps[i];
            assert!(
                (next[i] - e).abs() <= 2e-6 * (1.0 + e.abs()),
                "{} vs {e}",
                next[i]
            );
        }
    }
}
