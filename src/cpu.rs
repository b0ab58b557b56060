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
