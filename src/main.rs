//! The `tolk` command line: a thin layer over the library (see `src/cli/`).

mod cli;

fn main() -> std::process::ExitCode {
    one_malloc_arena();
    cli::main()
}

/// glibc gives each thread that allocates a heap of its own (an "arena"), and memory freed into
/// one is not reused by the others: with the decoding threads' arenas, translating 135 sentences
/// in batches of 32 with 4 beams on the real-weights model peaked at 599-668 MB, with one arena
/// at 503 MB. Speed: within run-to-run noise on a 2-core machine (perhaps 6 % slower on batched
/// beam search; `perf` shows no time in malloc). One arena, unless `MALLOC_ARENA_MAX` says
/// otherwise.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}
