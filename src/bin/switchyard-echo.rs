//! `switchyard-echo`: the sample gRPC backend as a process (its routes: `sample_backend::routes`).
//!
//! A thin shell around [`switchyard::sample_backend`]: parse options, start the backend, print the
//! listening line (tests start it with port 0 and read the port from stdout), optionally register
//! with a gateway, then serve until killed.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use switchyard::sample_backend::{self, BackendConfig, Protocol};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sample ForwardingService backend for switchyard: echoes requests and simulates failures.
#[derive(Debug, Parser)]
#[command(name = "switchyard-echo", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "SWITCHYARD_ECHO_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    listen: SocketAddr,

    /// Instance id, sent back in `x-echo-instance` and used when registering.
    #[arg(long, env = "SWITCHYARD_ECHO_INSTANCE", default_value = "echo-1")]
    instance: String,

    /// Also serve the same routes as plain HTTP/1.1 on this address (for proxies that do not speak
    /// gRPC, such as the load test's nginx and HAProxy); `/{service}/{rest}` routes like the gateway.
    #[arg(long, env = "SWITCHYARD_ECHO_HTTP1_LISTEN", value_name = "ADDR")]
    http1_listen: Option<SocketAddr>,

    /// Gateway base URL to register with, e.g. http://127.0.0.1:8080. A wildcard listen address
    /// is registered as loopback.
    #[arg(long, env = "SWITCHYARD_ECHO_REGISTER", value_name = "URL")]
    register: Option<String>,

    /// Service name to register under.
    #[arg(long, env = "SWITCHYARD_ECHO_SERVICE", default_value = "echo")]
    service: String,

    /// Bearer token for the gateway's registry API.
    #[arg(long, env = "SWITCHYARD_ECHO_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    switchyard::logging::init("warn");

    let backend = match sample_backend::spawn(BackendConfig {
        listen: args.listen,
        instance: args.instance.clone(),
    }) {
        Ok(backend) => backend,
        Err(error) => {
            eprintln!("switchyard-echo: {error}");
            return ExitCode::FAILURE;
        }
    };
    let addr = backend.local_addr();
    say(&format!("switchyard-echo listening on {addr}"));
    // Kept alive for the life of the process; its thread serves until exit.
    let _http1 = match args.http1_listen {
        None => None,
        Some(listen) => {
            let config = BackendConfig {
                listen,
                instance: args.instance.clone(),
            };
            match sample_backend::spawn_with(config, Protocol::Http1) {
                Ok(http1) => {
                    say(&format!(
                        "switchyard-echo listening on {} (HTTP/1.1)",
                        http1.local_addr()
                    ));
                    Some(http1)
                }
                Err(error) => {
                    eprintln!("switchyard-echo: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };

    if let Some(url) = &args.register {
        let address = registrable(addr).to_string();
        let outcome = sample_backend::register(
            url,
            &args.service,
            &args.instance,
            &address,
            args.token.as_deref(),
        );
        match outcome {
            Ok(200 | 201) => say(&format!(
                "registered {}/{} at {url}",
                args.service, args.instance
            )),
            Ok(status) => {
                eprintln!(
                    "switchyard-echo: registering {}/{} at {url} failed with status {status}",
                    args.service, args.instance
                );
                return ExitCode::FAILURE;
            }
            Err(error) => {
                eprintln!(
                    "switchyard-echo: registering {}/{} at {url} failed: {error}",
                    args.service, args.instance
                );
                return ExitCode::FAILURE;
            }
        }
    }

    match backend.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("switchyard-echo: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a line on stdout and flushes it at once: whoever started us may be waiting for it.
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // Nobody reading stdout is not a reason to stop serving.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// The address a gateway can reach us at: a wildcard listen address becomes loopback.
fn registrable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}
