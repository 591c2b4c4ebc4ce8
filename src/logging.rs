//! Log output for both binaries: `tracing` events as text lines on stderr, filtered by `RUST_LOG`
//! (default given by the caller), coloured only when stderr is a terminal, so that journald and
//! log files get plain text.

use std::io::IsTerminal;

/// Installs the process's log subscriber; `default` is the filter used when `RUST_LOG` is unset.
pub fn init(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
