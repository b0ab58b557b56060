//! What the CPU can do, detected at run time.

/// Whether this CPU has AVX-512F: the hand-written kernels of the convolutions
/// ([`crate::model::conv`]) and of the planner ([`crate::planner::kernel`]) run where it does,
/// portable code elsewhere. The detection is cached by the standard library, so this is cheap.
pub fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AVX-512 BF16 (with the F and BW it builds on): the bf16 matrix products
/// of the convolutions ([`crate::model::bf16_gemm`]) run where it does; elsewhere a `bf16`
/// precision falls back to f32. Cached by the standard library, like [`avx512`].
pub fn avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Makes the calling thread flush denormal results to zero and read denormal inputs as zero
/// (x86's FTZ and DAZ bits of MXCSR; nothing elsewhere). A classifier whose labels are almost all
/// one class, like the goal indicator, drives its logits' gradients and Adam's moments into the
/// denormal range, where every multiply takes a slow microcode path: on navigation the goal
/// classifier trained about 4× slower than the constraint classifier of the same shape. Values
/// below ≈ 1.2e-38 become 0, far below anything the losses resolve. Cheap; called at the start of
/// every training step, by every helper thread and by the planner, so that a thread computes the
/// same whatever ran on it before (a resumed run plans like an uninterrupted one).
pub fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    {
        const FTZ: u32 = 1 << 15;
        const DAZ: u32 = 1 << 6;
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr/ldmxcsr read and write this thread's SSE control register; setting FTZ
        // and DAZ changes only how denormal floats are treated.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
            if csr & (FTZ | DAZ) != FTZ | DAZ {
                csr |= FTZ | DAZ;
                std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushing_denormals_turns_tiny_products_into_zero_on_this_thread_only() {
        // black_box keeps the products from being folded at compile time
        let tiny = std::hint::black_box(1e-30f32);
        let scale = std::hint::black_box(1e-10f32);
        let other = std::thread::spawn(move || tiny * scale).join().unwrap();
        // checked first: with DAZ set, this thread would read `other` as zero too
        assert!(other > 0.0, "another thread keeps denormals: {other}");
        #[cfg(target_arch = "x86_64")]
        {
            flush_denormals();
            assert_eq!(tiny * scale, 0.0);
        }
        // normal values are untouched
        assert_eq!(
            std::hint::black_box(1.5f32) * std::hint::black_box(2.0f32),
            3.0
        );
    }
}
