//! The bf16 variant of the planner's dense layer ([`super::kernel::dense`]): products of bf16
//! inputs and weights, accumulated in f32 by AVX512-BF16's `vdpbf16ps`; bias and ReLU in f32.
//!
//! `vdpbf16ps` multiplies two adjacent bf16 values per 32-bit lane, so a bf16 layer reads its
//! input as *pairs*: pair `p` of row `r` at `x[p · ld + r]`, a `u32` holding features `2p` (low
//! half) and `2p + 1` (high half; zero past the last feature) as bf16. Its weights are packed in
//! the f32 kernel's 8-output panels, each element the pair (w[c][2p], w[c][2p + 1]) that the
//! kernel broadcasts. A layer writes f32 features or, for the next bf16 layer, pairs made from
//! its registers after bias and ReLU, so a chain of layers converts only its input
//! ([`to_pairs`]). Rounding is to nearest even, as [`crate::model::bf16_gemm::bf16_bits`].

use super::kernel::{PANEL, PackedLayer, Weights};
use crate::model::bf16_gemm::bf16_bits;

/// Where a bf16 layer writes its `n` outputs, `ldo` apart.
pub enum Out<'a> {
    /// f32 features.
    F32(&'a mut [f32]),
    /// bf16 pairs, the input of the next bf16 layer.
    Pairs(&'a mut [u32]),
}

/// The bf16 panels of `w` `[n][k]`: per 8-output panel `[⌈k/2⌉][width]` pairs.
pub(super) fn pack(k: usize, n: usize, w: &[f32]) -> Vec<u32> {
    let kp = k.div_ceil(2);
    let mut data = vec![0u32; kp * n];
    for (c, row) in w.chunks_exact(k).enumerate() {
        let p0 = c / PANEL * PANEL;
        let width = PANEL.min(n - p0);
        for (p, pair) in row.chunks(2).enumerate() {
            let hi = pair.get(1).map_or(0, |&v| bf16_bits(v) as u32);
            data[p0 * kp + p * width + c - p0] = bf16_bits(pair[0]) as u32 | hi << 16;
        }
    }
    data
}

/// Converts `k` f32 features of `rows` rows (`ldx` apart) into `⌈k/2⌉` pairs (`ldo` apart).
/// Needs AVX512-BF16.
pub fn to_pairs(x: &[f32], ldx: usize, rows: usize, k: usize, out: &mut [u32], ldo: usize) {
    assert!(crate::cpu::avx512_bf16(), "to_pairs needs AVX512-BF16");
    if rows == 0 || k == 0 {
        return;
    }
    assert!(
        ldx >= rows && x.len() >= (k - 1) * ldx + rows,
        "to_pairs: input too short"
    );
    assert!(
        ldo >= rows && out.len() >= (k.div_ceil(2) - 1) * ldo + rows,
        "to_pairs: output too short"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX512-BF16 (asserted); the asserts above bound every access.
    unsafe {
        x86::to_pairs(x.as_ptr(), ldx, rows, k, out.as_mut_ptr(), ldo)
    };
}

/// `out = act(W·x + b)` for `rows` rows of pairs `x` (`⌈k/2⌉` of them, `ldx` apart), the layer
/// packed in bf16 ([`PackedLayer::with_precision`]).
pub fn dense_pairs(
    x: &[u32],
    ldx: usize,
    rows: usize,
    layer: &PackedLayer,
    out: Out<'_>,
    ldo: usize,
    relu: bool,
) {
    let Weights::Bf16Panels(w) = &layer.weights else {
        panic!("dense_pairs: the layer is not packed in bf16");
    };
    let (k, n) = (layer.k, layer.n);
    if rows == 0 || n == 0 {
        return;
    }
    assert!(
        k > 0 && ldx >= rows && x.len() >= (k.div_ceil(2) - 1) * ldx + rows,
        "dense_pairs: input too short"
    );
    let (features, len) = match &out {
        Out::F32(o) => (n, o.len()),
        Out::Pairs(o) => (n.div_ceil(2), o.len()),
    };
    assert!(
        ldo >= rows && len >= (features - 1) * ldo + rows,
        "dense_pairs: output too short"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let dst = match out {
            Out::F32(o) => x86::Dst::F32(o.as_mut_ptr()),
            Out::Pairs(o) => x86::Dst::Pairs(o.as_mut_ptr()),
        };
        // SAFETY: bf16 panels are only packed where AVX512-BF16 is present; the asserts above
        // bound every access.
        unsafe {
            x86::dense(
                x.as_ptr(),
                ldx,
                rows,
                k,
                n,
                w.as_ptr(),
                layer.bias.as_ptr(),
                dst,
                ldo,
                relu,
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (w, out, relu);
        unreachable!("bf16 panels are packed only on x86-64 with AVX512-BF16");
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::kernel::{LANES, PANEL};
    use std::arch::x86_64::*;
    use std::mem::transmute;

    /// Row vectors per register block, as in the f32 kernel (24 accumulators).
    const NV: usize = 3;

    /// The output of a layer: f32 features or pairs, at the first row and output of a block.
    #[derive(Clone, Copy)]
    pub enum Dst {
        F32(*mut f32),
        Pairs(*mut u32),
    }

    /// Lanes `0 .. n` set (all for n ≥ 16).
    fn lanes(n: usize) -> __mmask16 {
        if n >= LANES { 0xffff } else { (1u16 << n) - 1 }
    }

    /// Word order that interleaves a register's halves: word `2i` from word `i`, `2i + 1` from
    /// word `16 + i`.
    fn interleave() -> __m512i {
        let v: [i16; 32] =
            std::array::from_fn(|w| (if w % 2 == 0 { w / 2 } else { 16 + w / 2 }) as i16);
        // SAFETY: an unaligned load of 32 i16 from a local array.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    }

    /// 16 pairs (`lo[i]`, `hi[i]`) in bf16.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    fn pairs(lo: __m512, hi: __m512, order: __m512i) -> __m512i {
        // SAFETY: 32 bf16 words reinterpreted as an integer vector of the same size.
        let words: __m512i = unsafe { transmute(_mm512_cvtne2ps_pbh(hi, lo)) };
        _mm512_permutexvar_epi16(order, words)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn to_pairs(
        x: *const f32,
        ldx: usize,
        rows: usize,
        k: usize,
        out: *mut u32,
        ldo: usize,
    ) {
        let order = interleave();
        for p in 0..k.div_ceil(2) {
            for r in (0..rows).step_by(LANES) {
                let m = lanes(rows - r);
                // SAFETY: masked loads and stores of rows `r .. rows` of features 2p, 2p + 1
                // (below k) and of pair p.
                unsafe {
                    let lo = _mm512_maskz_loadu_ps(m, x.add(2 * p * ldx + r));
                    let hi = if 2 * p + 1 < k {
                        _mm512_maskz_loadu_ps(m, x.add((2 * p + 1) * ldx + r))
                    } else {
                        _mm512_setzero_ps()
                    };
                    _mm512_mask_storeu_epi32(out.add(p * ldo + r).cast(), m, pairs(lo, hi, order));
                }
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn dense(
        x: *const u32,
        ldx: usize,
        rows: usize,
        k: usize,
        n: usize,
        w: *const u32,
        bias: *const f32,
        out: Dst,
        ldo: usize,
        relu: bool,
    ) {
        let kp = k.div_ceil(2);
        for r0 in (0..rows).step_by(NV * LANES) {
            let nr = (rows - r0).min(NV * LANES);
            let mask = lanes(nr - (nr - 1) / LANES * LANES);
            for p0 in (0..n).step_by(PANEL) {
                // SAFETY: the caller bounds rows `r0..r0 + nr` of pairs `0..kp` and of outputs
                // `p0..p0 + PANEL` (pairs `p0/2..`; PANEL is even, so a pair never straddles
                // panels).
                unsafe {
                    let (x, w, b) = (x.add(r0), w.add(p0 * kp), bias.add(p0));
                    let o = match out {
                        Dst::F32(o) => Dst::F32(o.add(p0 * ldo + r0)),
                        Dst::Pairs(o) => Dst::Pairs(o.add(p0 / 2 * ldo + r0)),
                    };
                    let mc = (n - p0).min(PANEL);
                    match nr.div_ceil(LANES) {
                        3 => panel::<3>(mc, x, ldx, kp, w, b, o, ldo, relu, mask),
                        2 => panel::<2>(mc, x, ldx, kp, w, b, o, ldo, relu, mask),
                        _ => panel::<1>(mc, x, ldx, kp, w, b, o, ldo, relu, mask),
                    }
                }
            }
        }
    }

    /// One panel of `mc` (≤ 8) outputs over `V` row vectors.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn panel<const V: usize>(
        mc: usize,
        x: *const u32,
        ldx: usize,
        kp: usize,
        w: *const u32,
        b: *const f32,
        o: Dst,
        ldo: usize,
        relu: bool,
        mask: __mmask16,
    ) {
        // SAFETY: forwarded from `dense`.
        unsafe {
            match mc {
                8 => tile::<V, 8>(x, ldx, kp, w, b, o, ldo, relu, mask),
                7 => tile::<V, 7>(x, ldx, kp, w, b, o, ldo, relu, mask),
                6 => tile::<V, 6>(x, ldx, kp, w, b, o, ldo, relu, mask),
                5 => tile::<V, 5>(x, ldx, kp, w, b, o, ldo, relu, mask),
                4 => tile::<V, 4>(x, ldx, kp, w, b, o, ldo, relu, mask),
                3 => tile::<V, 3>(x, ldx, kp, w, b, o, ldo, relu, mask),
                2 => tile::<V, 2>(x, ldx, kp, w, b, o, ldo, relu, mask),
                _ => tile::<V, 1>(x, ldx, kp, w, b, o, ldo, relu, mask),
            }
        }
    }

    /// `MC` outputs × `V` row vectors, accumulated in registers over all `kp` input pairs; `w`
    /// is the panel (`[kp][MC]` pairs), `mask` selects the rows of the last vector.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const V: usize, const MC: usize>(
        x: *const u32,
        ldx: usize,
        kp: usize,
        w: *const u32,
        bias: *const f32,
        out: Dst,
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
            for _ in 0..kp {
                let xv: [__m512bh; V] = std::array::from_fn(|v| {
                    let at = xp.add(v * LANES);
                    transmute(if v + 1 == V {
                        _mm512_maskz_loadu_epi32(mask, at.cast())
                    } else {
                        _mm512_loadu_si512(at.cast())
                    })
                });
                for (c, row) in acc.iter_mut().enumerate() {
                    let wc: __m512bh = transmute(_mm512_set1_epi32(*wp.add(c) as i32));
                    for v in 0..V {
                        row[v] = _mm512_dpbf16_ps(row[v], wc, xv[v]);
                    }
                }
                xp = xp.add(ldx);
                wp = wp.add(MC);
            }
            if relu {
                let zero = _mm512_setzero_ps();
                for y in acc.iter_mut().flatten() {
                    *y = _mm512_max_ps(*y, zero);
                }
            }
            match out {
                Dst::F32(out) => {
                    for (c, row) in acc.iter().enumerate() {
                        for (v, &y) in row.iter().enumerate() {
                            let p = out.add(c * ldo + v * LANES);
                            if v + 1 == V {
                                _mm512_mask_storeu_ps(p, mask, y);
                            } else {
                                _mm512_storeu_ps(p, y);
                            }
                        }
                    }
                }
                Dst::Pairs(out) => {
                    let order = interleave();
                    for (c, lo) in acc.iter().enumerate().step_by(2) {
                        let hi = acc.get(c + 1);
                        for (v, &y) in lo.iter().enumerate() {
                            let hi = hi.map_or(_mm512_setzero_ps(), |h| h[v]);
                            let y = pairs(y, hi, order);
                            let p = out.add(c / 2 * ldo + v * LANES);
                            if v + 1 == V {
                                _mm512_mask_storeu_epi32(p.cast(), mask, y);
                            } else {
                                _mm512_storeu_si512(p.cast(), y);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conv::Precision;

    fn bf16(x: f32) -> f32 {
        f32::from_bits((bf16_bits(x) as u32) << 16)
    }

    /// `act(W·x + b)` with `x` and `w` rounded to bf16, summed in f32 (feature-major `x`
    /// `[k][rows]`, `w` `[n][k]`), and the sum of the products' magnitudes.
    fn reference(
        x: &[f32],
        k: usize,
        rows: usize,
        w: &[f32],
        b: &[f32],
        n: usize,
        relu: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let (mut out, mut mag) = (vec![0f32; n * rows], vec![0f32; n * rows]);
        for j in 0..n {
            for r in 0..rows {
                let (mut s, mut m) = (b[j], b[j].abs());
                for i in 0..k {
                    let p = bf16(x[i * rows + r]) * bf16(w[j * k + i]);
                    s += p;
                    m += p.abs();
                }
                out[j * rows + r] = if relu { s.max(0.0) } else { s };
                mag[j * rows + r] = m;
            }
        }
        (out, mag)
    }

    /// Values in [−1, 1] with some far larger and smaller (never subnormal).
    fn values(len: usize, salt: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                let v = ((i.wrapping_mul(2654435761) ^ salt) % 2001) as f32 / 1000.0 - 1.0;
                match i % 13 {
                    4 => v * 300.0,
                    9 => v * 1e-3,
                    _ => v,
                }
            })
            .collect()
    }

    #[test]
    fn bf16_dense_matches_a_bf16_rounded_reference_for_awkward_shapes() {
        if !crate::cpu::avx512_bf16() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        // k odd and even, n not a multiple of 8 (odd too), rows not a multiple of 16 or 48
        for &(rows, k, n) in &[
            (1, 1, 1),
            (13, 34, 128),
            (50, 201, 200),
            (48, 32, 16),
            (97, 5, 13),
            (240, 200, 64),
            (17, 7, 9),
        ] {
            let x = values(rows * k, 1);
            let (w, b) = (values(n * k, 2), values(n, 3));
            let layer = PackedLayer::with_precision(k, n, &w, &b, Precision::Bf16);
            assert_eq!(layer.precision(), Precision::Bf16);
            let (ldx, ldo) = (rows + 5, rows + 3);
            let mut xs = vec![f32::NAN; k * ldx];
            for i in 0..k {
                xs[i * ldx..i * ldx + rows].copy_from_slice(&x[i * rows..(i + 1) * rows]);
            }
            let mut px = vec![u32::MAX; k.div_ceil(2) * ldx];
            to_pairs(&xs, ldx, rows, k, &mut px, ldx);
            for relu in [false, true] {
                let (want, mag) = reference(&x, k, rows, &w, &b, n, relu);
                let mut out = vec![f32::NAN; n * ldo];
                dense_pairs(&px, ldx, rows, &layer, Out::F32(&mut out), ldo, relu);
                for j in 0..n {
                    for r in 0..rows {
                        let (g, e) = (out[j * ldo + r], want[j * rows + r]);
                        let tol = 1e-5 * mag[j * rows + r] + 1e-30;
                        assert!((g - e).abs() <= tol, "{rows}×{k}→{n} [{j},{r}]: {g} vs {e}");
                    }
                    let pad = &out[j * ldo + rows..(j + 1) * ldo];
                    assert!(pad.iter().all(|v| v.is_nan()), "padding written");
                }
                // pair output: the same sums, rounded, paired (zero past n), padding untouched
                let mut pairs = vec![u32::MAX; n.div_ceil(2) * ldo];
                dense_pairs(&px, ldx, rows, &layer, Out::Pairs(&mut pairs), ldo, relu);
                let mut again = vec![u32::MAX; n.div_ceil(2) * ldo];
                to_pairs(&out, ldo, rows, n, &mut again, ldo);
                for p in 0..n.div_ceil(2) {
                    let (got, want) = (&pairs[p * ldo..(p + 1) * ldo], &again[p * ldo..]);
                    assert_eq!(got[..rows], want[..rows], "{rows}×{k}→{n} pair {p}");
                    assert!(
                        got[rows..].iter().all(|&v| v == u32::MAX),
                        "padding written"
                    );
                }
            }
        }
    }

    #[test]
    fn pairs_hold_two_features_rounded_to_nearest_even_and_zero_past_the_last() {
        if !crate::cpu::avx512_bf16() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        let (rows, k, ld) = (21, 5, 24);
        let x = values(k * ld, 7);
        let mut out = vec![0u32; 3 * ld];
        to_pairs(&x, ld, rows, k, &mut out, ld);
        for p in 0..3 {
            for r in 0..rows {
                let lo = bf16_bits(x[2 * p * ld + r]) as u32;
                let hi = if 2 * p + 1 < k {
                    bf16_bits(x[(2 * p + 1) * ld + r]) as u32
                } else {
                    0
                };
                assert_eq!(out[p * ld + r], lo | hi << 16, "pair {p} row {r}");
            }
        }
    }
}
