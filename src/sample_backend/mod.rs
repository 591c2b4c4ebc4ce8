//! The sample backend ("echo"): a `forwarding.v1.ForwardingService/Send` server that tests, the
//! demo and the load test route requests to.
//!
//! It answers according to `ForwardingReq.path` (see [`routes`]): an echo of the request as JSON
//! by default, and paths that produce every answer the gateway must cope with (any status, gRPC
//! errors, delays, big bodies, stream resets, undecodable messages, JSON for GraphQL projection).
//!
//! It is built from the same pieces as the gateway (glommio, h2 over [`TokioIo`](crate::io::TokioIo),
//! prost) rather than on tonic, so it needs no tokio runtime and exercises the same h2 stack the
//! gateway's upstream client talks to. It runs on one unpinned glommio executor in a thread of its
//! own: [`spawn`] is all the `switchyard-echo` binary and the gateway's `--demo` mode need.

pub mod grpc_frame;
mod http1;
mod register;
pub mod routes;
mod server;

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;

use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

pub use register::register;
pub use server::{send_data, MAX_REQUEST_MESSAGE};

/// Name of the backend's thread and executor, so `top -H` shows it.
const EXECUTOR_NAME: &str = "echo";

/// Memory glommio locks for io_uring buffers: the echo does no file I/O, and a small amount keeps
/// it (together with the gateway's shards in `--demo`) inside a default 8 MiB `ulimit -l`.
const IO_MEMORY: usize = 512 * 1024;

/// Where and as whom a backend runs.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Address to listen on; port 0 picks a free port (see [`RunningBackend::local_addr`]).
    pub listen: SocketAddr,
    /// Instance id, reported in the `x-echo-instance` header of every answer.
    pub instance: String,
}

/// A backend serving on its own thread.
#[derive(Debug)]
pub struct RunningBackend {
    local_addr: SocketAddr,
    thread: thread::JoinHandle<()>,
}

impl RunningBackend {
    /// The address the backend actually listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Blocks while the backend serves, which is until the process exits; an error means its
    /// thread panicked.
    pub fn join(self) -> io::Result<()> {
        self.thread
            .join()
            .map_err(|_| io::Error::other("echo backend thread panicked"))
    }
}

/// The protocol a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `ForwardingService/Send` over h2c: what the gateway calls.
    Grpc,
    /// Plain HTTP/1.1 keep-alive with the same routes: what the load test's peers call.
    Http1,
}

/// Starts a gRPC backend on a new thread and returns once it listens.
///
/// Fails if the executor cannot be built (usually too low a locked-memory limit) or the address
/// cannot be bound.
pub fn spawn(config: BackendConfig) -> io::Result<RunningBackend> {
    spawn_with(config, Protocol::Grpc)
}

/// Starts a backend speaking `protocol` on a new thread and returns once it listens.
pub fn spawn_with(config: BackendConfig, protocol: Protocol) -> io::Result<RunningBackend> {
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let name = match protocol {
        Protocol::Grpc => EXECUTOR_NAME.to_owned(),
        Protocol::Http1 => format!("{EXECUTOR_NAME}-http1"),
    };
    let thread = thread::Builder::new()
        .name(name)
        .spawn(move || run(config, protocol, ready_tx))?;
    match ready_rx.recv() {
        Ok(Ok(local_addr)) => Ok(RunningBackend { local_addr, thread }),
        Ok(Err(error)) => {
            // The thread returns right after reporting a start-up error.
            let _ = thread.join();
            Err(error)
        }
        Err(mpsc::RecvError) => Err(io::Error::other(
            "echo backend thread exited before it started listening",
        )),
    }
}

/// The backend thread: builds the executor, binds, reports the address (or why it could not),
/// then serves.
fn run(config: BackendConfig, protocol: Protocol, ready: mpsc::SyncSender<io::Result<SocketAddr>>) {
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .name(EXECUTOR_NAME)
        .io_memory(IO_MEMORY)
        .make();
    let executor = match executor {
        Ok(executor) => executor,
        Err(error) => {
            let _ = ready.send(Err(io::Error::other(format!(
                "cannot start the echo backend's glommio executor: {error}; glommio locks \
                 memory for io_uring, raise the locked-memory limit (`ulimit -l`, or \
                 LimitMEMLOCK= under systemd)"
            ))));
            return;
        }
    };
    executor.run(async move {
        let listener = match bind(config.listen) {
            Ok(listener) => listener,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let local_addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(error) => {
                let _ = ready.send(Err(error.into()));
                return;
            }
        };
        tracing::info!(%local_addr, instance = %config.instance, ?protocol, "echo backend listening");
        let _ = ready.send(Ok(local_addr));
        let instance = Rc::new(server::Instance::new(config.instance));
        match protocol {
            Protocol::Grpc => {
                server::accept_loop(listener, instance, server::serve_connection).await
            }
            Protocol::Http1 => {
                server::accept_loop(listener, instance, http1::serve_connection).await
            }
        }
    });
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    crate::listener::bind_exclusive(addr)
        .map_err(|error| io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}")))
}

#[cfg(test)]
mod end_to_end_tests;
