//! `switchyard`: the gateway binary. See the README for options; `--help` lists them.

use switchyard::alloc_count::CountingAllocator;
use switchyard::config::{self, Args, Config};
use switchyard::names::one_line;

/// mimalloc, counting each shard's allocations for `/-/metrics` (see `alloc_count`).
#[global_allocator]
static GLOBAL: CountingAllocator<mimalloc::MiMalloc> = CountingAllocator(mimalloc::MiMalloc);

/// Exit status for bad options (contract §7).
const EXIT_USAGE: i32 = 2;
/// Exit status when the gateway cannot start.
const EXIT_START_FAILED: i32 = 1;

fn main() {
    let args = match Args::try_parse_noting_env() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            let argv: Vec<String> = std::env::args().collect();
            eprintln!("switchyard: {}", config::usage_error_line(&e, &argv));
            std::process::exit(EXIT_USAGE);
        }
    };
    switchyard::logging::init("info");
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("switchyard: {}", one_line(&e));
            std::process::exit(EXIT_USAGE);
        }
    };
    if let Err(e) = switchyard::runtime::run(config) {
        eprintln!("switchyard: {}", one_line(&e));
        std::process::exit(EXIT_START_FAILED);
    }
}
