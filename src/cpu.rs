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
