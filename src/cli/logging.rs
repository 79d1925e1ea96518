//! Logs on standard error: the library's `tracing` events, and the `log` records of hf-hub, ureq
//! and tokenizers bridged into them (tracing-subscriber's `tracing-log` feature), filtered by
//! `-v` / `--quiet` and `RUST_LOG`. Standard output never carries a log line.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use super::progress::LogWriter;

/// The filter that `-v` (counted) and `--quiet` choose: warnings by default (what tolk printed
/// before it had logs), `-v` info for tolk, `-vv` debug for tolk and info for the rest, `-vvv`
/// everything; `--quiet` errors only.
fn level(verbose: u8, quiet: bool) -> &'static str {
    match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,tolk=info",
        (false, 2) => "info,tolk=debug",
        (false, _) => "trace",
    }
}

/// The filter's directives: [`level`], then `RUST_LOG`'s (standard `EnvFilter` syntax), which
/// win where they name the same target, so `RUST_LOG=hf_hub=debug` adds to `-v` and
/// `RUST_LOG=debug` alone means debug everywhere. `--quiet` ignores `RUST_LOG`.
fn directives(verbose: u8, quiet: bool, rust_log: Option<&str>) -> String {
    let base = level(verbose, quiet);
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        Some(env) if !quiet => format!("{base},{env}"),
        _ => base.to_string(),
    }
}

/// Installs the subscriber for the whole process. A `RUST_LOG` that does not parse is reported
/// and ignored, never fatal.
pub fn init(verbose: u8, quiet: bool) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = match EnvFilter::builder().parse(directives(verbose, quiet, rust_log.as_deref())) {
        Ok(filter) => filter,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "warning: RUST_LOG ignored: {e}");
            EnvFilter::new(level(verbose, quiet))
        }
    };
    let stderr = std::io::stderr();
    let color = stderr.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // Fails only if a subscriber is already installed, which nothing else does.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter)
        .with_ansi(color)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_choose_the_level_and_rust_log_adds_to_it() {
        assert_eq!(directives(0, false, None), "warn");
        assert_eq!(directives(1, false, None), "warn,tolk=info");
        assert_eq!(directives(2, false, Some(" ")), "info,tolk=debug");
        assert_eq!(directives(3, false, None), "trace");
        assert_eq!(directives(9, false, None), "trace");
        assert_eq!(directives(0, false, Some("tolk=debug")), "warn,tolk=debug");
        assert_eq!(
            directives(1, false, Some("hf_hub=trace")),
            "warn,tolk=info,hf_hub=trace"
        );
        assert_eq!(directives(0, true, Some("debug")), "error");
        for v in 0..4 {
            for env in [None, Some("tolk=debug,ureq=info")] {
                assert!(EnvFilter::builder()
                    .parse(directives(v, false, env))
                    .is_ok());
            }
        }
    }
}
