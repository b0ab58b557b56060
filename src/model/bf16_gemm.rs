//! A single-threaded matrix product in bf16 with f32 accumulation (AVX512-BF16 `vdpbf16ps`):
//! the convolutions' products ([`super::conv`]) when the precision is [`super::conv::Precision::Bf16`].
//!
//! Both operands are rounded to bf16 (round to nearest even, as `vcvtne2ps2bf16` does) while
//! they are packed into cache-sized panels, consecutive depth elements paired as `vdpbf16ps`
//! reads them; the products are summed in f32 registers and the result is f32. Each operand
//! keeps 8 significant bits, so an element of the result is off by at most ≈ 2⁻⁸ of the sum of
//! its products' magnitudes (f32: ≈ 2⁻²⁴ per addition). Only the packed copies are rounded: the
//! callers' weights and activations stay f32.
//!
//! Blocking after Goto and van de Geijn: the right operand in blocks of `KC × NC` (L2), split in
//! `NR`-column micro-panels (one stays in L1 while the rows pass over it), the left operand in
//! blocks of `MC × KC`; the micro-kernel keeps an `MR × NR` tile of the result in 24 registers.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of the micro-kernel's tile.
const MR: usize = 8;
/// 16-lane vectors per row of the tile.
const NV: usize = 3;
/// Columns of the micro-kernel's tile.
const NR: usize = 16 * NV;
/// Depth of a block (even, so that pairs never straddle blocks): a 128-pair × 48-column
/// micro-panel of the right operand is 24 KiB, within L1.
const KC: usize = 256;
/// Rows of a left block.
const MC: usize = 128;
/// Columns of a right block (a multiple of `NR`).
const NC: usize = 16 * NR;

/// A read-only f32 matrix: element (i, j) at `ptr + i·rs + j·cs` (the convolutions' operand
/// views too, in f32 and bf16 alike).
#[derive(Clone, Copy)]
pub(super) struct View {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

// SAFETY: a read-only view of data that outlives the parallel section using it.
unsafe impl Send for View {}
unsafe impl Sync for View {}

impl View {
    pub(super) const fn new(ptr: *const f32, rs: usize, cs: usize) -> Self {
        Self { ptr, rs, cs }
    }
}

/// Whether this CPU runs [`gemm`] (AVX-512 F, BW and BF16).
pub(super) fn available() -> bool {
    crate::cpu::avx512_bf16()
}

/// The bf16 bits of `x`, rounded to nearest even like `vcvtne2ps2bf16` (which also flushes
/// subnormal inputs to zero and quiets NaNs).
pub(crate) fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    if b & 0x7f80_0000 == 0 {
        return ((b >> 16) & 0x8000) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// Packed panels of one thread, kept between calls: (left, right), in bf16 pairs.
#[derive(Default)]
struct Panels {
    left: Vec<u32>,
    right: Vec<u32>,
}

thread_local! {
    static PANELS: RefCell<Panels> = RefCell::new(Panels::default());
}

/// `dst (m × n, row stride d_rs) = [dst +] l (m × k) · r (k × n)`, single-threaded, with bf16
/// operands and f32 accumulation; `acc` adds to `dst` instead of overwriting it.
///
/// # Safety
/// [`available`] must hold, every view must address valid memory for its shape, and `dst` must
/// not overlap the operands.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    d_rs: usize,
    acc: bool,
    l: View,
    r: View,
) {
    #[cfg(target_arch = "x86_64")]
    PANELS.with(|p| {
        let p = &mut *p.borrow_mut();
        // SAFETY: forwarded contract.
        unsafe { x86::gemm(m, n, k, dst, d_rs, acc, l, r, p) }
    });
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, n, k, dst, d_rs, acc, l, r);
        unreachable!("bf16 gemm needs x86-64 with AVX512-BF16")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::mem::transmute;

    /// Lanes `0 .. n` set (n ≤ 16).
    fn lanes(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as __mmask16
    }

    fn idx(v: [usize; 16]) -> __m512i {
        let v: [i32; 16] = v.map(|x| x as i32);
        // SAFETY: an unaligned load of 16 i32 from a local array.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    }

    fn grow(v: &mut Vec<u32>, n: usize) {
        if v.len() < n {
            v.resize(n, 0);
        }
    }

    /// See [`super::gemm`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn gemm(
        m: usize,
        n: usize,
        k: usize,
        dst: *mut f32,
        d_rs: usize,
        acc: bool,
        l: View,
        r: View,
        panels: &mut Panels,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        let kp_max = k.min(KC).div_ceil(2);
        grow(&mut panels.right, kp_max * n.min(NC).div_ceil(NR) * NR);
        grow(&mut panels.left, kp_max * m.min(MC).div_ceil(MR) * MR);
        let (pl, pr) = (panels.left.as_mut_ptr(), panels.right.as_mut_ptr());
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            // k = 0: one empty block, so that dst is still cleared (or kept)
            for pc in (0..k.max(1)).step_by(KC) {
                let kc = KC.min(k - pc);
                let kp = kc.div_ceil(2);
                for (q, j0) in (0..nc).step_by(NR).enumerate() {
                    // SAFETY: rows pc .. pc + kc, columns jc + j0 .. of r are in bounds; the
                    // panel holds kp × NR pairs.
                    unsafe {
                        let src = r.ptr.add(pc * r.rs + (jc + j0) * r.cs);
                        let out = pr.add(q * kp * NR);
                        pack(src, r.rs, r.cs, kc, NR.min(nc - j0), NR, out);
                    }
                }
                let add = acc || pc > 0;
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    for (q, i0) in (0..mc).step_by(MR).enumerate() {
                        // SAFETY: as above, for rows ic + i0 .. of l (depth runs along l.cs).
                        unsafe {
                            let src = l.ptr.add((ic + i0) * l.rs + pc * l.cs);
                            let out = pl.add(q * kp * MR);
                            pack(src, l.cs, l.rs, kc, MR.min(mc - i0), MR, out);
                        }
                    }
                    for (qn, j0) in (0..nc).step_by(NR).enumerate() {
                        for (qm, i0) in (0..mc).step_by(MR).enumerate() {
                            // SAFETY: the panels were packed just above; the tile lies in dst.
                            unsafe {
                                let c = dst.add((ic + i0) * d_rs + jc + j0);
                                let (a, b) = (pl.add(qm * kp * MR), pr.add(qn * kp * NR));
                                let (mr, nr) = (MR.min(mc - i0), NR.min(nc - j0));
                                kernel(kp, a, b, c, d_rs, mr, nr, add);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Packs `lanes` lanes (of a panel `width` wide, the rest zero) of `kc` depth elements, where
    /// element (depth d, lane j) is `src[d·ks + j·ls]`: `out[p·width + j]` holds depths `2p` (low
    /// half) and `2p + 1` (high half, zero past `kc`) of lane `j`, as bf16.
    ///
    /// # Safety
    /// AVX-512 F, BW and BF16; `src` valid for the `kc × lanes` elements, `out` for
    /// `kc.div_ceil(2) × width` pairs; `width` is `MR` or a multiple of 16.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn pack(
        src: *const f32,
        ks: usize,
        ls: usize,
        kc: usize,
        lanes_in: usize,
        width: usize,
        out: *mut u32,
    ) {
        let kp = kc.div_ceil(2);
        if ls == 1 {
            // lanes contiguous: two depth rows of 16 lanes → one register of 16 pairs
            let order = idx_words();
            for p in 0..kp {
                for g in (0..width).step_by(16) {
                    let n = lanes_in.saturating_sub(g).min(16);
                    let mask = lanes(n);
                    // SAFETY: masked loads of the lanes in bounds; nothing when n = 0.
                    let (lo, hi) = unsafe {
                        if n == 0 {
                            (_mm512_setzero_ps(), _mm512_setzero_ps())
                        } else {
                            let row = src.add(2 * p * ks + g);
                            let lo = _mm512_maskz_loadu_ps(mask, row);
                            let hi = if 2 * p + 1 < kc {
                                _mm512_maskz_loadu_ps(mask, row.add(ks))
                            } else {
                                _mm512_setzero_ps()
                            };
                            (lo, hi)
                        }
                    };
                    // SAFETY: 32 bf16 words reinterpreted as a vector of integers of the same size.
                    let words: __m512i = unsafe { transmute(_mm512_cvtne2ps_pbh(hi, lo)) };
                    let pairs = _mm512_permutexvar_epi16(order, words);
                    let store = lanes((width - g).min(16));
                    // SAFETY: pairs p·width + g .. of the panel.
                    unsafe {
                        _mm512_mask_storeu_epi32(out.add(p * width + g).cast(), store, pairs)
                    };
                }
            }
        } else if ks == 1 {
            // depth contiguous: 32 depths of a lane → 16 pairs; 16 lanes, transposed
            for g in (0..width).step_by(16) {
                let store = lanes((width - g).min(16));
                for p0 in (0..kp).step_by(16) {
                    let d = (kc - 2 * p0).min(32);
                    let (m_lo, m_hi) = (lanes(d), lanes(d.saturating_sub(16)));
                    let mut t: [__m512i; 16] = std::array::from_fn(|j| {
                        if g + j >= lanes_in {
                            return _mm512_setzero_si512();
                        }
                        // SAFETY: depths 2·p0 .. + d of lane g + j are in bounds.
                        unsafe {
                            let at = src.add((g + j) * ls + 2 * p0);
                            let lo = _mm512_maskz_loadu_ps(m_lo, at);
                            let hi = if m_hi == 0 {
                                _mm512_setzero_ps()
                            } else {
                                _mm512_maskz_loadu_ps(m_hi, at.add(16))
                            };
                            transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
                        }
                    });
                    transpose16(&mut t);
                    for (pp, v) in t.iter().enumerate().take((kp - p0).min(16)) {
                        // SAFETY: pairs (p0 + pp)·width + g .. of the panel.
                        unsafe {
                            _mm512_mask_storeu_epi32(
                                out.add((p0 + pp) * width + g).cast(),
                                store,
                                *v,
                            )
                        };
                    }
                }
            }
        } else {
            for p in 0..kp {
                for j in 0..width {
                    let v = if j < lanes_in {
                        // SAFETY: element (2p, j) and, below kc, (2p + 1, j) are in bounds.
                        unsafe {
                            let lo = bf16_bits(*src.add(2 * p * ks + j * ls)) as u32;
                            let hi = if 2 * p + 1 < kc {
                                bf16_bits(*src.add((2 * p + 1) * ks + j * ls)) as u32
                            } else {
                                0
                            };
                            lo | hi << 16
                        }
                    } else {
                        0
                    };
                    // SAFETY: pair p·width + j of the panel.
                    unsafe { *out.add(p * width + j) = v };
                }
            }
        }
    }

    /// [`pack`], for the tests.
    ///
    /// # Safety
    /// As [`pack`].
    #[cfg(test)]
    pub(super) unsafe fn pack_for_test(
        src: *const f32,
        ks: usize,
        ls: usize,
        kc: usize,
        lanes_in: usize,
        width: usize,
        out: *mut u32,
    ) {
        // SAFETY: forwarded contract.
        unsafe { pack(src, ks, ls, kc, lanes_in, width, out) }
    }

    /// The word permutation that interleaves the low and high halves of a register: word `2i`
    /// from word `i`, word `2i + 1` from word `16 + i`.
    fn idx_words() -> __m512i {
        let v: [i16; 32] =
            std::array::from_fn(|w| (if w % 2 == 0 { w / 2 } else { 16 + w / 2 }) as i16);
        // SAFETY: an unaligned load of 32 i16 from a local array.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    }

    /// Transposes a 16 × 16 matrix of 32-bit elements held one row per register, by swapping
    /// the off-diagonal blocks of every 2l × 2l block for l = 8, 4, 2, 1.
    #[target_feature(enable = "avx512f")]
    pub(super) fn transpose16(r: &mut [__m512i; 16]) {
        for l in [8, 4, 2, 1] {
            let lo = idx(std::array::from_fn(
                |j| if j & l == 0 { j } else { 16 + j - l },
            ));
            let hi = idx(std::array::from_fn(
                |j| if j & l == 0 { j + l } else { 16 + j },
            ));
            for i in (0..16).filter(|i| i & l == 0) {
                let (a, b) = (r[i], r[i + l]);
                r[i] = _mm512_permutex2var_epi32(a, lo, b);
                r[i + l] = _mm512_permutex2var_epi32(a, hi, b);
            }
        }
    }

    /// The `MR × NR` tile at `c` (row stride `c_rs`; only `mr × nr` of it is written) `= [c +]
    /// a · b` over `kp` depth pairs, `a` packed `kp × MR`, `b` packed `kp × NR`.
    ///
    /// # Safety
    /// AVX-512 F and BF16; the panels hold `kp` pairs per lane; the `mr × nr` tile is valid.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn kernel(
        kp: usize,
        a: *const u32,
        b: *const u32,
        c: *mut f32,
        c_rs: usize,
        mr: usize,
        nr: usize,
        add: bool,
    ) {
        let mut t = [[_mm512_setzero_ps(); NV]; MR];
        for p in 0..kp {
            // SAFETY: pair p of both panels.
            let bv: [__m512bh; NV] = std::array::from_fn(|v| unsafe {
                transmute(_mm512_loadu_si512(b.add(p * NR + 16 * v).cast()))
            });
            for (i, row) in t.iter_mut().enumerate() {
                // SAFETY: as above.
                let av: __m512bh =
                    unsafe { transmute(_mm512_set1_epi32(*a.add(p * MR + i) as i32)) };
                for (acc, bv) in row.iter_mut().zip(&bv) {
                    *acc = _mm512_dpbf16_ps(*acc, av, *bv);
                }
            }
        }
        for (i, row) in t.iter().enumerate().take(mr) {
            for (v, x) in row.iter().enumerate() {
                let j = 16 * v;
                if j >= nr {
                    break;
                }
                let mask = lanes(nr - j);
                // SAFETY: columns j .. nr of tile row i.
                unsafe {
                    let at = c.add(i * c_rs + j);
                    let x = if add {
                        _mm512_add_ps(*x, _mm512_maskz_loadu_ps(mask, at))
                    } else {
                        *x
                    };
                    _mm512_mask_storeu_ps(at, mask, x);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in `[-1, 1)`, some of them large or tiny.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let v = (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
                match i % 17 {
                    3 => v * 1e3,
                    11 => v * 1e-3,
                    _ => v,
                }
            })
            .collect()
    }

    fn bf16_value(x: f32) -> f64 {
        f32::from_bits((bf16_bits(x) as u32) << 16) as f64
    }

    #[test]
    fn bf16_rounding_is_to_nearest_even() {
        let one = 1.0f32.to_bits();
        let cases = [
            (1.0f32, 1.0f32),
            (f32::from_bits(one + 0x8000), 1.0), // tie, even below
            (
                f32::from_bits(one + 0x1_8000),
                f32::from_bits(one + 0x2_0000),
            ), // tie, even above
            (f32::from_bits(one + 0x8001), f32::from_bits(one + 0x1_0000)),
            (f32::from_bits(one + 0x7fff), 1.0),
            (-3.0, -3.0),
            (f32::MAX, f32::INFINITY),
            (1e-40, 0.0),
        ];
        for (x, want) in cases {
            assert_eq!(bf16_value(x), want as f64, "{x:e}");
        }
        assert!(bf16_value(f32::NAN).is_nan());
    }

    /// `m × n × k` through [`gemm`] with the given layouts against an f64 reference: exact up
    /// to f32 accumulation on the bf16-rounded operands, and within bf16 rounding (2⁻⁷ of the
    /// sum of |products|) of the unrounded ones.
    fn check(m: usize, n: usize, k: usize, l_t: bool, r_t: bool, acc: bool, seed: u64) {
        // stored with padding, so strides differ from the shapes
        let (l_ld, r_ld, d_ld) = (
            if l_t { m + 3 } else { k + 5 },
            if r_t { k + 2 } else { n + 7 },
            n + 1,
        );
        let lv = values(if l_t { k * l_ld } else { m * l_ld }, seed);
        let rv = values(if r_t { n * r_ld } else { k * r_ld }, seed + 1);
        let l = View {
            ptr: lv.as_ptr(),
            rs: if l_t { 1 } else { l_ld },
            cs: if l_t { l_ld } else { 1 },
        };
        let r = View {
            ptr: rv.as_ptr(),
            rs: if r_t { 1 } else { r_ld },
            cs: if r_t { r_ld } else { 1 },
        };
        let start = values(m * d_ld, seed + 2);
        let mut dst = start.clone();
        // SAFETY: the CPU has the features (checked by the callers); views are in bounds.
        unsafe { gemm(m, n, k, dst.as_mut_ptr(), d_ld, acc, l, r) };
        let at = |v: &[f32], x: View, i: usize, j: usize| v[i * x.rs + j * x.cs];
        let what = format!("{m}×{n}×{k} l_t {l_t} r_t {r_t} acc {acc}");
        for i in 0..m {
            for j in 0..n {
                let (mut exact, mut rounded, mut mag) = (0f64, 0f64, 0f64);
                for p in 0..k {
                    let (a, b) = (at(&lv, l, i, p), at(&rv, r, p, j));
                    exact += a as f64 * b as f64;
                    rounded += bf16_value(a) * bf16_value(b);
                    mag += (a as f64 * b as f64).abs();
                }
                let base = if acc { start[i * d_ld + j] as f64 } else { 0.0 };
                let got = dst[i * d_ld + j] as f64;
                let tight = 1e-5 * (mag + base.abs()) + 1e-30;
                assert!(
                    (got - base - rounded).abs() <= tight,
                    "{what} ({i}, {j}): {got} vs {} (bf16 operands)",
                    base + rounded
                );
                assert!(
                    (got - base - exact).abs() <= mag / 128.0 + tight,
                    "{what} ({i}, {j}): {got} vs {} (exact)",
                    base + exact
                );
            }
            // the padding between rows is untouched
            assert_eq!(dst[i * d_ld + n], start[i * d_ld + n], "{what}: padding");
        }
    }

    #[test]
    fn bf16_gemm_matches_f64_reference_on_odd_shapes_and_layouts() {
        if !available() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        let shapes = [
            (1, 1, 1),
            (7, 13, 5),
            (8, 48, 32),
            (9, 49, 33),
            (17, 100, 3),
            (3, 5, 0),
            (130, 70, 300), // more than one row block and depth block
            (20, 800, 37),  // more than one column block
        ];
        for (s, &(m, n, k)) in shapes.iter().enumerate() {
            for (l_t, r_t) in [(false, false), (true, false), (false, true), (true, true)] {
                for acc in [false, true] {
                    check(m, n, k, l_t, r_t, acc, 10 * s as u64);
                }
            }
        }
    }

    #[test]
    fn bf16_packing_paths_agree_with_scalar_rounding() {
        if !available() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        // one 37 × 21 matrix stored row-major and column-major: the vector paths (lanes or
        // depth contiguous) and the scalar one (neither, via a strided view) give equal panels
        let (kc, lanes) = (37, 21);
        let rm = values(kc * lanes, 3);
        let cm: Vec<f32> = (0..kc * lanes)
            .map(|x| rm[(x % kc) * lanes + x / kc])
            .collect();
        let spread: Vec<f32> = (0..2 * kc * lanes)
            .map(|x| if x % 2 == 0 { rm[x / 2] } else { 0.0 })
            .collect();
        let kp = kc.div_ceil(2);
        let width = NR;
        let mut panels = [
            vec![0u32; kp * width],
            vec![0u32; kp * width],
            vec![0u32; kp * width],
        ];
        // SAFETY: the CPU has the features; sources and panels have the sizes pack needs.
        unsafe {
            x86::pack_for_test(
                rm.as_ptr(),
                lanes,
                1,
                kc,
                lanes,
                width,
                panels[0].as_mut_ptr(),
            );
            x86::pack_for_test(cm.as_ptr(), 1, kc, kc, lanes, width, panels[1].as_mut_ptr());
            x86::pack_for_test(
                spread.as_ptr(),
                2 * lanes,
                2,
                kc,
                lanes,
                width,
                panels[2].as_mut_ptr(),
            );
        }
        for p in 0..kp {
            for j in 0..width {
                let want = if j < lanes {
                    let lo = bf16_bits(rm[2 * p * lanes + j]) as u32;
                    let hi = if 2 * p + 1 < kc {
                        bf16_bits(rm[(2 * p + 1) * lanes + j]) as u32
                    } else {
                        0
                    };
                    lo | hi << 16
                } else {
                    0
                };
                for (path, panel) in ["lanes", "depth", "scalar"].iter().zip(&panels) {
                    assert_eq!(panel[p * width + j], want, "{path} path, pair {p} lane {j}");
                }
            }
        }
    }
}
