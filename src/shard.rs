//! A shard: one glommio executor pinned to one CPU, owning its listener, connections, upstream pools,
//! registry copy and counters. Nothing here is shared with another shard except through messages
//! (the registry mailbox) and the single-writer metrics the scraper reads.

use std::cell::{Cell, RefCell};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use futures_lite::AsyncReadExt;

use crate::config::Config;
use crate::drain::Drain;
use crate::error::GatewayError;
use crate::metrics::{RegistryMetrics, ShardMetrics};
use crate::registry::client::RegistryClient;
use crate::registry::view::RegistryView;
use crate::registry::{Change, ShardMailbox, ShardMsg};
use crate::request_id::RequestId;
use crate::upstream::down_marks::DownMarks;
use crate::upstream::{AnswerLimits, Upstream};

/// How often a draining shard checks whether its requests and HTTP/2 connections are done.
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);
/// How often a shard asks the allocator to return memory freed on its thread (see
/// [`return_freed_memory`]): mimalloc's own purge delay is one second.
const COLLECT_INTERVAL: Duration = Duration::from_secs(1);

/// State shared by the whole process, read-mostly and off the request path.
#[derive(Debug)]
pub struct Process {
    /// Every shard's metrics, for scraping.
    pub metrics: Vec<Arc<ShardMetrics>>,
    /// The registry owner's metrics (cluster log replication).
    pub registry_metrics: Arc<RegistryMetrics>,
    /// The registry has caught up with the cluster log.
    pub ready: AtomicBool,
    /// While draining: shards that still have requests in flight, being received, or HTTP/2
    /// connections open (as
    /// each last looked, every [`DRAIN_POLL`]). Every shard keeps its idle connections open, and
    /// answering, until this is zero (see [`crate::drain`]). Touched only while draining.
    pub busy_shards: AtomicUsize,
    /// The instances each shard has marked down, for `/-/services`.
    pub down_marks: Arc<DownMarks>,
}

impl Process {
    /// Process state for `shards` shards.
    pub fn new(shards: usize) -> Process {
        Process {
            metrics: (0..shards).map(|_| Arc::default()).collect(),
            registry_metrics: Arc::default(),
            ready: AtomicBool::new(false),
            busy_shards: AtomicUsize::new(shards),
            down_marks: Arc::new(DownMarks::new(shards)),
        }
    }
}

/// One shard's state; lives in an `Rc` on its executor.
pub struct Shard {
    /// Shard index.
    pub id: usize,
    /// Configuration.
    pub config: Arc<Config>,
    /// Process-wide state.
    pub process: Arc<Process>,
    /// This shard's metrics (written only here).
    pub metrics: Arc<ShardMetrics>,
    /// This shard's registry copy.
    pub registry: RefCell<RegistryView>,
    /// Writes to the registry owner.
    pub registry_client: RegistryClient,
    /// Backend pools.
    pub upstream: Upstream,
    /// Balancing and request-id randomness.
    pub rng: Cell<u64>,
    in_flight: Cell<usize>,
    /// Bytes of request bodies held ([`BodyHold`]).
    body_bytes: Cell<usize>,
    /// HTTP/1.1 connections between a request's first bytes and their return to idle: a drain
    /// waits for them, so a request still being sent when SIGTERM comes is answered, not cut off.
    receiving: Cell<usize>,
    /// HTTP/2 client connections still open (a drain waits for their GOAWAY to go out).
    h2_open: Cell<usize>,
    drain: Drain,
}

impl Shard {
    /// A shard with an empty registry copy.
    pub fn new(
        id: usize,
        config: Arc<Config>,
        process: Arc<Process>,
        registry_client: RegistryClient,
    ) -> Shard {
        let upstream = Upstream::new(AnswerLimits::of(&config), process.down_marks.slot(id));
        Shard {
            id,
            metrics: process.metrics[id].clone(),
            config,
            process,
            registry: RefCell::default(),
            registry_client,
            upstream,
            // xorshift must not start at zero.
            rng: Cell::new(crate::sys::random_u64() | 1),
            in_flight: Cell::new(0),
            body_bytes: Cell::new(0),
            receiving: Cell::new(0),
            h2_open: Cell::new(0),
            drain: Drain::default(),
        }
    }

    /// A fresh request id: 32 hex digits.
    pub fn new_request_id(&self) -> RequestId {
        RequestId::generate(&self.rng)
    }

    /// Whether the shard is draining.
    pub fn is_draining(&self) -> bool {
        self.drain.is_started()
    }

    /// Resolves once the shard starts draining (see [`crate::drain`]).
    pub fn drain_started(&self) -> crate::drain::Reached<'_> {
        self.drain.started()
    }

    /// Whether the shard is closing its idle connections: its drain, and every other shard's, is
    /// over.
    pub fn is_closing(&self) -> bool {
        self.drain.is_closing()
    }

    /// Resolves once the shard closes its idle connections (see [`crate::drain`]).
    pub fn drain_closing(&self) -> crate::drain::Reached<'_> {
        self.drain.closing()
    }

    /// Counts an open HTTP/2 client connection until the guard drops: a draining shard waits for
    /// them (up to the grace period) so that their GOAWAY and last responses go out.
    pub fn h2_connection(self: &Rc<Self>) -> H2Open {
        self.h2_open.set(self.h2_open.get() + 1);
        H2Open(self.clone())
    }

    /// Counts an HTTP/1.1 connection as busy with a request (from its first bytes until the
    /// connection is idle again) until the guard drops; see `receiving` on [`Shard`].
    pub fn receiving(self: &Rc<Self>) -> Receiving {
        self.receiving.set(self.receiving.get() + 1);
        Receiving(self.clone())
    }

    /// Whether `/-/ready` answers 200: the registry has caught up and this shard is not draining
    /// (the shard's own flag, so a 503 from it always comes with `connection: close`).
    pub fn is_ready(&self) -> bool {
        self.process.ready.load(Ordering::Relaxed) && !self.is_draining()
    }

    /// The body limit for a request to `path`: the gateway's own endpoints have their fixed one,
    /// everything else the service's (or `--max-body-bytes`).
    pub fn max_body_bytes(&self, path: &[u8]) -> usize {
        if crate::admin::is_admin_path(path) {
            return crate::admin::MAX_BODY_BYTES;
        }
        // The service segment exactly as the REST path will take it (paths start with `/`).
        let (service, _) = crate::rest::split_path(path);
        let name = crate::utf8::text(service).unwrap_or_default();
        self.config.service(name).max_body_bytes
    }

    /// Counts a request as in flight until the guard drops; `None` at the in-flight limit.
    pub fn enter(self: &Rc<Self>) -> Option<InFlight> {
        let n = self.in_flight.get();
        if n >= self.config.max_in_flight {
            self.metrics.overloaded.inc();
            return None;
        }
        self.in_flight.set(n + 1);
        self.metrics.in_flight.inc();
        Some(InFlight(self.clone()))
    }

    /// The share of `--max-body-memory-bytes` for the body of a request to `path`: `declared`
    /// bytes now (a declared length is held whole before any of it is read), more as it arrives
    /// ([`BodyHold::grow_to`]). `None` for the gateway's own endpoints, which are exempt, as from
    /// the in-flight limit; the overload error when the bodies held leave no room.
    pub fn hold_body(
        self: &Rc<Self>,
        path: &[u8],
        declared: usize,
    ) -> Result<Option<BodyHold>, GatewayError> {
        if crate::admin::is_admin_path(path) {
            return Ok(None);
        }
        let hold = BodyHold {
            shard: self.clone(),
            bytes: Cell::new(0),
        };
        hold.grow_to(declared)?;
        Ok(Some(hold))
    }

    fn apply_changes(&self, changes: Vec<Change>) {
        let mut view = self.registry.borrow_mut();
        let mut out_of_use = false;
        for change in changes {
            out_of_use |= view.apply(change);
        }
        // A pool (and its connections) for an address no instance uses is dropped: kept, a
        // backend an instance moved away from, still running (a blue-green switch), would keep
        // every shard's idle connections to it for as long as the gateway runs.
        if out_of_use {
            let services = view.services();
            let live: rustc_hash::FxHashSet<_> = services
                .iter()
                .flat_map(|s| s.instances.iter().map(|i| &i.address))
                .collect();
            self.upstream.retain_pools(|address| live.contains(address));
        }
        self.metrics
            .registry_instances
            .set(view.instance_count() as u64);
    }
}

/// An open HTTP/2 client connection; see [`Shard::h2_connection`].
pub struct H2Open(Rc<Shard>);

impl Drop for H2Open {
    fn drop(&mut self) {
        self.0.h2_open.set(self.0.h2_open.get() - 1);
    }
}

/// An HTTP/1.1 connection busy with a request; see [`Shard::receiving`].
pub struct Receiving(Rc<Shard>);

impl Drop for Receiving {
    fn drop(&mut self) {
        self.0.receiving.set(self.0.receiving.get() - 1);
    }
}

/// An in-flight request; see [`Shard::enter`].
pub struct InFlight(Rc<Shard>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get() - 1);
        self.0.metrics.in_flight.dec();
    }
}

/// Request body bytes a shard holds for one request, given back when dropped (with the request).
pub struct BodyHold {
    shard: Rc<Shard>,
    bytes: Cell<usize>,
}

impl BodyHold {
    /// Holds `total` bytes for the body (it only grows); the overload error, holding what it
    /// held, when the shard's bodies would then go beyond `--max-body-memory-bytes` while others
    /// are held. A body alone may take more than the budget: its size is `--max-body-bytes`'s to
    /// judge, and one body must always be able to pass.
    pub fn grow_to(&self, total: usize) -> Result<(), GatewayError> {
        let held = self.bytes.get();
        let Some(more) = total.checked_sub(held).filter(|&more| more > 0) else {
            return Ok(());
        };
        let shard = &self.shard;
        let all = shard.body_bytes.get();
        let others = all - held;
        if others > 0 && all + more > shard.config.max_body_memory_bytes {
            shard.metrics.overloaded.inc();
            return Err(GatewayError::bodies_over_budget());
        }
        self.bytes.set(total);
        shard.body_bytes.set(all + more);
        shard.metrics.body_bytes.add(more as u64);
        Ok(())
    }
}

impl Drop for BodyHold {
    fn drop(&mut self) {
        let held = self.bytes.get();
        let shard = &self.shard;
        shard.body_bytes.set(shard.body_bytes.get() - held);
        shard
            .metrics
            .body_bytes
            .set(shard.metrics.body_bytes.get() - held as u64);
    }
}

/// Everything a shard thread needs to start.
pub struct ShardStart {
    /// Shard index.
    pub id: usize,
    /// Configuration.
    pub config: Arc<Config>,
    /// Process-wide state.
    pub process: Arc<Process>,
    /// Registry client.
    pub registry_client: RegistryClient,
    /// Registry mailbox.
    pub mailbox: ShardMailbox,
    /// Where to report that the listener is bound (or why not).
    pub started: std::sync::mpsc::Sender<Result<(), String>>,
}

/// The shard's main future: bind, serve until drained, then wait for in-flight requests.
pub async fn run(start: ShardStart) {
    let listener = match crate::listener::bind(start.config.listen) {
        Ok(listener) => listener,
        Err(e) => {
            let _ = start.started.send(Err(format!(
                "shard {} cannot listen on {}: {e}",
                start.id, start.config.listen
            )));
            return;
        }
    };
    let shard = Rc::new(Shard::new(
        start.id,
        start.config,
        start.process,
        start.registry_client,
    ));
    let _counting = crate::alloc_count::count_into(shard.metrics.clone());
    let (drain_tx, drain_rx) = oneshot::channel();
    glommio::spawn_local(mailbox_loop(shard.clone(), start.mailbox, drain_tx)).detach();
    glommio::spawn_local(return_freed_memory()).detach();
    glommio::spawn_local(crate::http::date::keep_current()).detach();
    let _ = start.started.send(Ok(()));

    let accept = async {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    if shard.metrics.connections_open.get() >= shard.config.max_connections as u64 {
                        // Closed at once: the client sees a reset and HAProxy retries elsewhere.
                        shard.metrics.connections_refused.inc();
                        drop(stream);
                        continue;
                    }
                    let Ok(remote) = stream.peer_addr() else {
                        continue;
                    };
                    shard.metrics.connections_total.inc();
                    shard.metrics.connections_open.inc();
                    // Spawned as it is, not inside a wrapper that counts it closed: a wrapper
                    // holds the socket and address a second time (240 bytes per connection).
                    // `serve_connection` counts the connection closed however it ends.
                    glommio::spawn_local(crate::http::serve_connection(
                        shard.clone(),
                        stream,
                        remote,
                    ))
                    .detach();
                }
                Err(e) => {
                    tracing::warn!(shard = shard.id, "accept failed: {e}");
                    glommio::timer::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    };
    futures_lite::future::or(accept, async {
        let _ = drain_rx.await;
    })
    .await;
    // Stops listening now, not when the process's rings are torn down after it exits (see
    // `listener::Listener`): a gateway started in its place can bind at once.
    drop(listener);
    let deadline = Instant::now() + shard.config.grace_period;
    // Every shard counts itself busy until it first finds itself idle; the process is done when
    // none is busy. A shard that is idle goes on answering requests on its open connections (with
    // `connection: close`) until then, and becomes busy again if one arrives.
    let busy_shards = &shard.process.busy_shards;
    let mut counted_busy = true;
    loop {
        let busy =
            shard.in_flight.get() > 0 || shard.receiving.get() > 0 || shard.h2_open.get() > 0;
        if busy != counted_busy {
            if busy {
                busy_shards.fetch_add(1, Ordering::AcqRel);
            } else {
                busy_shards.fetch_sub(1, Ordering::AcqRel);
            }
            counted_busy = busy;
        }
        let all_idle = !busy && busy_shards.load(Ordering::Acquire) == 0;
        if all_idle || Instant::now() >= deadline {
            break;
        }
        glommio::timer::sleep(DRAIN_POLL).await;
    }
    // Idle keep-alive connections close now (FIN), rather than stay open unanswered until the
    // process exits; yielding once lets their tasks, woken by the close, run before this returns.
    shard.drain.close();
    futures_lite::future::yield_now().await;
    tracing::debug!(
        shard = shard.id,
        left = shard.in_flight.get(),
        h2_open = shard.h2_open.get(),
        "shard drained"
    );
}

/// Hands memory freed on this shard's thread back to the system once a second.
///
/// mimalloc returns the pages of freed blocks to the system only after a delay, and only when the
/// thread next allocates or frees; a shard whose ten thousand keep-alive clients went quiet frees
/// their buffers (after `BUFFER_HOLD`) and then does nothing, so the memory stayed resident for
/// as long as they idled: about 3 KiB of a connection's 7. `mi_collect(false)` carries out the
/// purges that are due (no forced purge, so a busy shard keeps its warm pages); it walks the
/// thread's pages, microseconds once a second.
async fn return_freed_memory() {
    loop {
        glommio::timer::sleep(COLLECT_INTERVAL).await;
        // SAFETY: no arguments to uphold; collects the calling thread's heap.
        unsafe { libmimalloc_sys::mi_collect(false) };
    }
}

/// Applies registry changes and replies as the owner sends them; starts the drain when asked.
async fn mailbox_loop(shard: Rc<Shard>, mailbox: ShardMailbox, drain: oneshot::Sender<()>) {
    // SAFETY: the fd is the shard end of a socketpair that this task now owns.
    let mut doorbell =
        unsafe { glommio::net::UnixStream::from_raw_fd(mailbox.doorbell.into_raw_fd()) };
    let mut drain = Some(drain);
    let mut rings = [0u8; 64];
    loop {
        while let Ok(msg) = mailbox.rx.try_recv() {
            match msg {
                ShardMsg::Changes { seq, changes } => {
                    shard.apply_changes(changes);
                    shard.registry_client.applied(seq);
                }
                ShardMsg::Reply { token, result } => shard.registry_client.resolve(token, result),
                ShardMsg::Drain => {
                    shard.drain.start();
                    if let Some(tx) = drain.take() {
                        let _ = tx.send(());
                    }
                }
            }
        }
        match doorbell.read(&mut rings).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
