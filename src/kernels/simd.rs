//! Run-time selection of vector instruction sets for plain-Rust loops: a hot function is written
//! once (`#[inline(always)]`, with independent lane accumulators so that the compiler vectorises
//! it) and compiled again for AVX-512 and AVX2+FMA; the widest the CPU has is used.

/// The instruction set a multiversioned function runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// AVX-512F.
    Avx512,
    /// AVX2 and FMA.
    Avx2,
    /// The target's baseline.
    Base,
}

/// The widest level the running CPU supports (detected once).
pub(crate) fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Level::Avx2;
            }
        }
        Level::Base
    })
}

/// Defines `pub fn $name(args) -> ret` dispatching to copies of `$body` compiled for AVX-512,
/// AVX2+FMA and the baseline.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),*) -> $ret:ty $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body
            /// The body compiled for AVX-512.
            ///
            /// # Safety
            /// The CPU has AVX-512F, AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512($($arg: $ty),*) -> $ret { body($($arg),*) }
            /// The body compiled for AVX2.
            ///
            /// # Safety
            /// The CPU has AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) -> $ret { body($($arg),*) }
            match $crate::kernels::simd::level() {
                // SAFETY: the CPU was checked to have these features.
                #[cfg(target_arch = "x86_64")]
                $crate::kernels::simd::Level::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::kernels::simd::Level::Avx2 => unsafe { avx2($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}
pub(crate) use multiversion;
