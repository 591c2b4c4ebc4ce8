//! Log output for both binaries: `tracing` events as text lines on stderr, filtered by `RUST_LOG`
//! (default given by the caller), coloured only when stderr is a terminal, so that journald and
//! log files get plain text.
//!
//! Problems with `RUST_LOG` are logged as one plain line each once logging runs: a filter that
//! does not parse (the default is used instead), and `trace`, which release builds leave out
//! (`release_max_level_debug`): such a directive is read as `debug`, rather than have
//! `tracing-subscriber` print its own multi-line, coloured warning.

use std::io::IsTerminal;

use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};

/// Installs the process's log subscriber; `default` is the filter used when `RUST_LOG` is unset.
pub fn init(default: &str) {
    let given = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (wanted, lowered) = match &given {
        Some(filter) => within_static_max(filter),
        None => (default.to_owned(), false),
    };
    let (filter, refused) = match tracing_subscriber::EnvFilter::try_new(&wanted) {
        Ok(filter) => (filter, None),
        Err(e) => (tracing_subscriber::EnvFilter::new(default), Some(e)),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Some(e) = refused {
        tracing::warn!(
            "RUST_LOG {:?} is not a log filter ({e}); logging with {default:?}",
            given.unwrap_or_default()
        );
    } else if lowered {
        tracing::warn!(
            "RUST_LOG asks for trace, which release builds leave out; logging at debug there"
        );
    }
}

/// `filter` with each directive at `trace` lowered to the most detailed level this build keeps,
/// and whether one was.
fn within_static_max(filter: &str) -> (String, bool) {
    if STATIC_MAX_LEVEL >= LevelFilter::TRACE {
        return (filter.to_owned(), false);
    }
    let kept = STATIC_MAX_LEVEL.to_string().to_ascii_lowercase();
    let mut lowered = false;
    let directives: Vec<String> = filter
        .split(',')
        .map(|directive| {
            let (target, level) = match directive.rsplit_once('=') {
                Some((target, level)) => (Some(target), level),
                None => (None, directive),
            };
            if !level.trim().eq_ignore_ascii_case("trace") {
                return directive.to_owned();
            }
            lowered = true;
            match target {
                Some(target) => format!("{target}={kept}"),
                None => kept.clone(),
            }
        })
        .collect();
    (directives.join(","), lowered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_directives_are_lowered_to_what_the_build_keeps() {
        let (filter, lowered) = within_static_max("info,h2=trace,switchyard=TRACE,trace");
        if STATIC_MAX_LEVEL >= LevelFilter::TRACE {
            assert_eq!(
                (filter.as_str(), lowered),
                ("info,h2=trace,switchyard=TRACE,trace", false)
            );
        } else {
            assert_eq!(
                (filter.as_str(), lowered),
                ("info,h2=debug,switchyard=debug,debug", true)
            );
        }
        assert_eq!(
            within_static_max("info,h2=debug"),
            ("info,h2=debug".to_owned(), false)
        );
    }
}
