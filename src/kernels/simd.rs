//! The instruction sets the kernels use, detected once, and run-time selection of them for
//! plain-Rust loops.
//!
//! # Capabilities
//!
//! A kernel compiled with `#[target_feature(enable = ...)]` may only run on a CPU that has every
//! feature it enables (and every feature those imply: `avx512f` implies `avx2`, `fma` and
//! `f16c`). Each such set is a capability type here ([`Avx2`], [`Avx2Fma`], [`Avx512`],
//! [`Avx512Vnni`]): a zero-sized value that only [`caps`] creates, after checking every one of
//! its features at run time (`is_x86_feature_detected!`). The kernels for an instruction set
//! take its value as an argument, so that calling one needs the proof that the CPU has it; the
//! `unsafe` left at such a call is about lengths alone.
//!
//! A plain-Rust loop is written once (`#[inline(always)]`, with independent lane accumulators
//! so that the compiler vectorises it) and compiled again for AVX-512 and AVX2+FMA by
//! [`multiversion!`]; the widest the CPU has is used.

/// Defines a capability: a zero-sized value that only `Caps::detect` creates (the field is
/// private to this module), having checked every listed feature.
macro_rules! capability {
    ($(#[$m:meta])* $name:ident: $($feature:tt),+) => {
        $(#[$m])*
        #[cfg(target_arch = "x86_64")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) struct $name(());

        #[cfg(target_arch = "x86_64")]
        impl $name {
            /// The capability, if the running CPU has every one of its features.
            fn detect() -> Option<Self> {
                if $(std::is_x86_feature_detected!($feature))&&+ {
                    Some($name(()))
                } else {
                    None
                }
            }
        }
    };
}

capability! {
    /// Proof that the CPU has AVX2 (and, as `is_x86_feature_detected!` reports it, the AVX state
    /// the system saves): what the int8 AVX2 kernels enable (`avx2`).
    Avx2: "avx2"
}

capability! {
    /// Proof that the CPU has AVX2 and FMA: what the f32 AVX2 kernel and [`multiversion!`]'s
    /// AVX2 copies enable (`avx2,fma`).
    Avx2Fma: "avx2", "fma"
}

capability! {
    /// Proof that the CPU has AVX-512F and what enabling it implies (AVX2, FMA, F16C): what the
    /// f32 AVX-512 kernel (`avx512f`) and [`multiversion!`]'s AVX-512 copies
    /// (`avx512f,avx2,fma`) enable, and [`Level::Avx512`]'s users (up to `avx512f,avx2,fma,f16c`).
    Avx512: "avx512f", "avx2", "fma", "f16c"
}

capability! {
    /// Proof that the CPU has AVX-512F, AVX-512BW and AVX-512 VNNI, and what they imply (AVX2,
    /// FMA, F16C): what the int8 VNNI kernels enable (`avx512f,avx512bw,avx512vnni`).
    Avx512Vnni: "avx512f", "avx512bw", "avx512vnni", "avx2", "fma", "f16c"
}

/// The capabilities of the running CPU ([`caps`]): each present exactly when the CPU has every
/// feature of its type. (Off x86-64 there are none, and no kernel that needs one.)
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    avx2: Option<Avx2>,
    avx2_fma: Option<Avx2Fma>,
    avx512: Option<Avx512>,
    avx512_vnni: Option<Avx512Vnni>,
}

#[cfg(target_arch = "x86_64")]
impl Caps {
    /// Checks every capability's features on the running CPU.
    fn detect() -> Self {
        Caps {
            avx2: Avx2::detect(),
            avx2_fma: Avx2Fma::detect(),
            avx512: Avx512::detect(),
            avx512_vnni: Avx512Vnni::detect(),
        }
    }

    /// AVX2, if the CPU has it.
    pub(crate) fn avx2(&self) -> Option<Avx2> {
        self.avx2
    }

    /// AVX2 and FMA, if the CPU has them.
    pub(crate) fn avx2_fma(&self) -> Option<Avx2Fma> {
        self.avx2_fma
    }

    /// AVX-512F (with AVX2, FMA and F16C), if the CPU has it.
    pub(crate) fn avx512(&self) -> Option<Avx512> {
        self.avx512
    }

    /// AVX-512 VNNI (with AVX-512F and BW), if the CPU has it.
    pub(crate) fn avx512_vnni(&self) -> Option<Avx512Vnni> {
        self.avx512_vnni
    }
}

/// The running CPU's capabilities, detected once.
#[cfg(target_arch = "x86_64")]
pub(crate) fn caps() -> &'static Caps {
    static CAPS: std::sync::OnceLock<Caps> = std::sync::OnceLock::new();
    CAPS.get_or_init(Caps::detect)
}

/// The widest instruction set a multiversioned loop runs with, as a plain value (for code that
/// matches on it; the kernels here take the capabilities themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) enum Level {
    /// [`Avx512`] was detected: AVX-512F, AVX2, FMA and F16C.
    Avx512,
    /// [`Avx2Fma`] was detected (and not [`Avx512`]): AVX2 and FMA.
    Avx2,
    /// The target's baseline.
    Base,
}

/// The widest level the running CPU supports ([`caps`]): [`Level::Avx512`] only where the
/// [`Avx512`] capability exists, [`Level::Avx2`] only where [`Avx2Fma`] does.
pub(crate) fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        let caps = caps();
        if caps.avx512().is_some() {
            return Level::Avx512;
        }
        if caps.avx2_fma().is_some() {
            return Level::Avx2;
        }
    }
    Level::Base
}

/// Defines `$vis fn $name(args) -> ret` dispatching to copies of `$body` compiled for AVX-512
/// (given the [`Avx512`] capability), AVX2+FMA (given [`Avx2Fma`]) and the baseline.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),*) -> $ret:ty $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body
            /// The body compiled for AVX-512 (the capability proves the CPU has it).
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn avx512(_: $crate::kernels::simd::Avx512, $($arg: $ty),*) -> $ret {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn run($($arg: $ty),*) -> $ret { body($($arg),*) }
                // SAFETY: the `Avx512` capability exists only where the CPU has AVX-512F, AVX2
                // and FMA.
                unsafe { run($($arg),*) }
            }
            /// The body compiled for AVX2 (the capability proves the CPU has it).
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn avx2(_: $crate::kernels::simd::Avx2Fma, $($arg: $ty),*) -> $ret {
                #[target_feature(enable = "avx2,fma")]
                fn run($($arg: $ty),*) -> $ret { body($($arg),*) }
                // SAFETY: the `Avx2Fma` capability exists only where the CPU has AVX2 and FMA.
                unsafe { run($($arg),*) }
            }
            #[cfg(target_arch = "x86_64")]
            {
                let caps = $crate::kernels::simd::caps();
                if let Some(isa) = caps.avx512() {
                    return avx512(isa, $($arg),*);
                }
                if let Some(isa) = caps.avx2_fma() {
                    return avx2(isa, $($arg),*);
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_exist_exactly_where_their_features_do() {
        #[cfg(target_arch = "x86_64")]
        {
            use std::is_x86_feature_detected as has;
            let c = caps();
            assert_eq!(c.avx2().is_some(), has!("avx2"));
            assert_eq!(c.avx2_fma().is_some(), has!("avx2") && has!("fma"));
            let avx512 = has!("avx512f") && has!("avx2") && has!("fma") && has!("f16c");
            assert_eq!(c.avx512().is_some(), avx512);
            let vnni = avx512 && has!("avx512bw") && has!("avx512vnni");
            assert_eq!(c.avx512_vnni().is_some(), vnni);
            let want = if avx512 {
                Level::Avx512
            } else if c.avx2_fma().is_some() {
                Level::Avx2
            } else {
                Level::Base
            };
            assert_eq!(level(), want);
        }
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!(level(), Level::Base);
    }
}
