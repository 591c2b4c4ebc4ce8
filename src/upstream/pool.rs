//! Per-shard, per-instance pools of HTTP/2 connections, with passive health.
//!
//! A pool multiplexes calls over at most [`MAX_CONNS_PER_INSTANCE`] connections. A call takes the
//! least-loaded connection that has a stream slot free (the backend's `SETTINGS_MAX_CONCURRENT_STREAMS`).
//! When every connection uses all the streams its backend allows, the call waits in the pool
//! ([`waiters`](super::waiters)) while, if there is room for one, a connection is opened in the
//! background: it gets the slot of the first call to end (handed over in arrival order), or a
//! slot on the new connection, whichever comes first. It does not queue inside h2, as it used to:
//! h2 would hold the call's HEADERS frame, built before the wait, so its `grpc-timeout` would
//! carry the deadline as it stood before the wait, not when the call is sent (contract §1). No call
//! waits for a handshake unless the pool is empty or full; concurrent callers of an empty pool
//! share one connection attempt.
//!
//! A connection whose backend sent GOAWAY is draining: its calls in flight go on, but h2 opens no
//! new stream on it. The pool asks h2 before lending a connection (`poll_ready`, which answers at
//! once: no system call, a look at the connection's state) and retires one that takes no streams,
//! so no call is lent a draining connection only to fail on it; its driver runs on until its last
//! call ends. A call that did fail on one (the GOAWAY arrived after the call was lent) is sent
//! again on another connection (see [`super`]).
//!
//! A connection whose backend went away is noticed by its h2 driver only once the executor reaps
//! the read completion that carries the end of stream, which may come after the next call was
//! written to the dead connection (a 502 for a call that another instance could have served). So
//! before lending a connection that has been idle for [`PROBE_IDLE`], the pool asks the kernel
//! whether the peer has closed it ([`crate::sys::peer_closed`], one non-blocking syscall). Backends
//! close connections when they have sat idle (an idle timeout) far more often than at any other
//! moment; a connection lent moments ago, or with calls in flight (its driver is reading it), is
//! lent without asking. Asking on every call cost a `recv` per request below saturation, where
//! calls rarely overlap.
//!
//! A failed connection attempt marks the instance down for an exponentially growing time
//! ([`Health`]); the first call after that time probes it again.
//!
//! An instance registered by host name may have several socket addresses ([`Address`]): ways to
//! reach the one instance (a dual-stack host's `[::1]` and 127.0.0.1), not instances of their
//! own. A connection attempt tries them in turn, the next one when one fails (refused, timed out,
//! or any other failure), as nginx, Envoy and gRPC's `pick_first` do, starting with the one the
//! last connection was made to: an address that refuses, or drops SYNs for the connect timeout,
//! is paid for once per pool rather than once per connection. The attempt fails when every
//! address has; it is a refusal (the evidence contract §6 asks before a service is removed) only
//! when every address refused, and otherwise counts as the last other failure met. Health is the
//! instance's: one pause for all its addresses.
//!
//! A connection is made once the backend's SETTINGS have arrived on it, not when TCP is: RFC
//! 9113 §3.4 has a server send its SETTINGS first, as it accepts, and a backend that is hung or
//! stopped (SIGSTOP) still has its kernel complete TCP handshakes from the listen backlog, then
//! sends nothing. Such a connection, lent at once, took every call sent to the instance for the
//! whole deadline (504), and the instance stayed in rotation. So the pool sends a PING with its
//! preface and lends the connection only once the PONG is back: the backend's SETTINGS came
//! before it (and h2 applies them before reading on, so the stream limit is the backend's by
//! then). No call is written to a connection before that. Not within
//! [`HANDSHAKE_TIMEOUT`](super::HANDSHAKE_TIMEOUT), the attempt has failed (`TimedOut`), as a
//! connect that timed out: the instance is marked down, never as refusing, and the calls waiting
//! for the connection go to another instance, safely whatever their method (none was sent). A
//! backend that ends the connection before its PONG has `Dropped` it. gRPC clients wait for the
//! server's preface the same way (grpc-go fails a connection whose preface did not come within
//! its connect deadline). The cost: the first call on a new connection waits for the PONG, a
//! round trip that the SETTINGS take anyway, where it used to go out with the preface.
//!
//! An open connection is not yet proof that the instance works: a backend that is shutting down,
//! overloaded or broken may accept connections and end each at once (GOAWAY right after its
//! SETTINGS, or a close), before it answers anything. Counting such a connection as a success
//! would reset the pause, and every call would open new connections to a backend that serves
//! none (a connection storm, and a connect's latency added to every call). So the pause is
//! reset only by a connection that *worked*:
//! - a connection works once the head of an answer (the HEADERS of any call's answer, a
//!   trailers-only one or an HTTP error included) has arrived on it: the backend processed a call
//!   there. That is when [`Health`] is reset, once per connection ([`Lease::answered`]);
//! - opening a connection ends a pause that failed attempts to connect caused (the instance
//!   listens: it is no longer "refused", and calls may go there), but not one that dropped
//!   connections caused (those opened too), and keeps the count of failures;
//! - a connection that the backend ends (its GOAWAY, a close, a reset, an I/O error) before any
//!   answer arrived on it counts as a failed attempt ([`ConnectFailure::Dropped`]): the count
//!   grows and the pause with it, 200 ms doubling to 1 s ([`DROP_BACKOFF_MAX`]). It is judged once no call on it can
//!   still be answered (none is in flight on it): a backend that drains a connection whose first
//!   call is still running, and answers that call, has not dropped it. One that sat idle for
//!   [`PROBE_IDLE`] with no call on it before its backend ended it is not counted either: that is
//!   a backend's idle timeout (or gRPC's `max_connection_idle`), not a sick backend.
//!
//! A connection that answered and is later drained (`max_connection_age`, a rolling restart) is
//! retired as before, with no effect on health. A stream the backend refuses (`REFUSED_STREAM`)
//! leaves its connection in the pool: the backend did not end it. A drop is never a
//! refusal: an instance that accepts connections is not gone, and the service is not removed for
//! it (contract §6).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use glommio::net::TcpStream;
use h2::client::RequestHead;
use h2::client::SendRequest;

use crate::io::TokioIo;
use crate::names::Address;
use crate::upstream::codec::RequestMessage;
use crate::upstream::down_marks::MarkSlot;
use crate::upstream::waiters::Waiters;
use crate::upstream::HANDSHAKE_TIMEOUT;

/// Connections per instance per shard: two keep a backend busy while one is being replaced, and
/// `shards × 2` connections per backend stays small for backends with per-connection cost.
pub const MAX_CONNS_PER_INSTANCE: usize = 2;
/// First down period after a failed connection attempt (or a connection dropped before it
/// answered, see the module docs).
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest down period: a recovered instance is found again within this time.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Longest down period after connections dropped before they answered: such an instance
/// listens (it is restarting, shedding load, or broken), and is found again within a second of
/// recovering, while a broken one costs a connection a second per shard, not one per call. A
/// service whose only instance it is answers 503 meanwhile, so the pause is kept short.
const DROP_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Per-stream receive window towards backends: 1 MiB answers arrive without window updates.
const STREAM_WINDOW: u32 = 1 << 20;
/// Connection receive window towards backends: 1 GiB, so that streams whose answers wait for
/// their client's answer budget (`budget`), each holding up to its stream window unread, do not
/// hold up the connection's other calls (it takes 1,024 of them). It bounds no memory the stream
/// windows do not: a stream gives back what it receives at once, unless its answer waits.
const CONNECTION_WINDOW: u32 = 1 << 30;
/// Calls cancelled on a backend connection (a client went away) whose streams h2 remembers, for a
/// second, so that the answer's frames still on their way are dropped quietly (h2 remembers 50):
/// a client connection closing with its 128 calls in flight, eight times within the second.
const REMEMBERED_RESETS: usize = 1024;
/// Largest header list (RFC 9113 §6.5.2: names, values and 32 bytes per field) of a backend's
/// answer, headers and trailers alike, advertised as `SETTINGS_MAX_HEADER_LIST_SIZE`. gRPC
/// metadata is a handful of fields (gRPC's C core refuses more than 16 KiB by default) and Envoy
/// caps a backend's response headers at 60 KiB; h2's default, 16 MiB, would let one answer make
/// the gateway hold that much. An answer head over it resets the call (a 502); h2 drops the
/// connection for a head over four times it.
pub const MAX_ANSWER_HEADER_LIST: u32 = 64 << 10;
/// Idle time after which a connection is probed before it is lent (see the module docs): well
/// below any backend's idle timeout (gRPC servers and proxies use seconds to hours), well above
/// the gap between calls of a busy service.
const PROBE_IDLE: Duration = Duration::from_millis(100);
/// How often a call waiting for a stream slot looks at its pool again. A slot freed or a
/// connection opened wakes it at once; a connection its backend drains (GOAWAY: it takes no new
/// stream, its calls go on) does not, and the call would otherwise wait for those calls to end
/// before a new connection is opened in its place. A few timer wake-ups per waiting call, paid
/// only while every connection is at its backend's stream limit.
const SLOT_RECHECK: Duration = Duration::from_millis(50);

/// Why a connection could not be established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The instance actively refused the connection (nothing listens there).
    Refused,
    /// No answer within the connect timeout, or no SETTINGS within the handshake timeout (see
    /// the module docs): nothing that works answers there, which is not a refusal either.
    TimedOut,
    /// Any other failure (unreachable, handshake error).
    Failed,
    /// The instance accepted the connection, then ended it (GOAWAY, close, reset) before any
    /// answer arrived on it, or before its SETTINGS (see the module docs). Not a refusal:
    /// something listens there.
    Dropped,
}

/// Passive health of one instance, as seen by one shard.
#[derive(Debug, Clone, Copy, Default)]
pub struct Health {
    failures: u32,
    down_until: Option<Instant>,
    last_failure: Option<ConnectFailure>,
}

impl Health {
    /// Whether a call may be sent to the instance now. The clock is read only for an instance
    /// marked down, so the usual pick of a healthy instance costs no clock read.
    pub fn available(&self, now: impl FnOnce() -> Instant) -> bool {
        self.down_until.is_none_or(|t| now() >= t)
    }

    /// Whether the last connection attempt was refused (and none succeeded since).
    pub fn refused(&self) -> bool {
        self.last_failure == Some(ConnectFailure::Refused)
    }

    /// A connection worked (an answer arrived on it): the instance is well.
    fn record_success(&mut self) {
        *self = Health::default();
    }

    /// A connection was opened. That ends a pause that failed connection attempts caused (the
    /// instance listens again: no longer refused), but not one that dropped connections caused:
    /// those opened too, and a connection opened to resend a call, or by a call that started
    /// before the drop was counted, would otherwise end the pause at once and let every call open
    /// more. The count of failures stays until a connection works (see the module docs).
    fn record_connected(&mut self) {
        if self.last_failure != Some(ConnectFailure::Dropped) {
            self.down_until = None;
            self.last_failure = None;
        }
    }

    fn record_failure(&mut self, failure: ConnectFailure, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let factor = 1u32 << (self.failures - 1).min(16);
        let max = match failure {
            ConnectFailure::Dropped => DROP_BACKOFF_MAX,
            _ => BACKOFF_MAX,
        };
        self.down_until = Some(now + BACKOFF_BASE.saturating_mul(factor).min(max));
        self.last_failure = Some(failure);
    }
}

#[derive(Debug)]
struct ConnState {
    in_flight: Cell<usize>,
    closed: Cell<bool>,
    /// When a call last took the connection (or it was opened).
    last_lent: Cell<Instant>,
    /// An answer's head has arrived on the connection: it works.
    answered: Cell<bool>,
    /// Its backend ended it while it was in use or fresh (not after sitting idle), and it has
    /// not been judged yet (see [`InstancePool::judge`]).
    dropped: Cell<bool>,
}

impl ConnState {
    fn new(now: Instant) -> ConnState {
        ConnState {
            in_flight: Cell::new(0),
            closed: Cell::new(false),
            last_lent: Cell::new(now),
            answered: Cell::new(false),
            dropped: Cell::new(false),
        }
    }

    /// Its backend ended the connection (GOAWAY, close, reset): retired. Noted as dropped for
    /// [`InstancePool::judge`] unless it had sat idle for [`PROBE_IDLE`] with no call on it
    /// (a backend's idle timeout). `now` is read only for a connection with no call on it.
    fn ended_by_backend(&self, now: impl FnOnce() -> Instant) {
        if self.closed.replace(true) {
            // Retired already, by the gateway or an earlier sign of the same end.
            return;
        }
        let idle = self.in_flight.get() == 0
            && now().saturating_duration_since(self.last_lent.get()) >= PROBE_IDLE;
        self.dropped.set(!idle && !self.answered.get());
    }
}

struct Conn {
    send: SendRequest<RequestMessage>,
    state: Rc<ConnState>,
    /// The socket, for the liveness probe. Valid while `state.closed` is false: the driver task
    /// owns the stream and sets `closed` in the same step that drops it, with no await between.
    fd: RawFd,
}

impl Conn {
    /// Whether the connection can take a call at `now`: not closed, not drained by its backend
    /// (see [`takes_streams`]), and when idle for [`PROBE_IDLE`], not closed by its peer without
    /// the driver having seen it yet. Marks it closed when it cannot.
    fn usable(&mut self, now: Instant) -> bool {
        if self.state.closed.get() {
            return false;
        }
        if !takes_streams(&mut self.send) {
            self.state.ended_by_backend(|| now);
            return false;
        }
        if self.state.in_flight.get() == 0
            && now.saturating_duration_since(self.state.last_lent.get()) >= PROBE_IDLE
            && crate::sys::peer_closed(self.fd)
        {
            self.state.ended_by_backend(|| now);
            return false;
        }
        true
    }
}

/// Whether h2 would open a stream on the connection of `send`: not once the backend's GOAWAY has
/// been read (the connection is draining: its calls in flight go on, no new one is sent), nor
/// after a connection error or once stream ids run out. `poll_ready` answers at once for a handle
/// with no stream of its own waiting to open (the pool's, and each lease's: a clone has none),
/// so a waker that does nothing will do.
fn takes_streams(send: &mut SendRequest<RequestMessage>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    !matches!(send.poll_ready(&mut cx), Poll::Ready(Err(_)))
}

type Connecting = Shared<LocalBoxFuture<'static, Result<(), ConnectFailure>>>;

/// The connections of one shard to one instance.
pub struct InstancePool {
    /// Where the instance listens: the socket addresses its host resolved to, tried in turn.
    address: Address,
    /// Which of them the last connection was made to: the next attempt starts there.
    preferred: Cell<usize>,
    uri: http::Uri,
    /// The request head of the last call to this instance from this shard, with the timeout it
    /// carries: calls of one service mostly carry the same timeout, and a head built once is
    /// sent without copying anything (`h2::client::RequestHead`).
    last_head: RefCell<Option<(Duration, RequestHead)>>,
    conns: RefCell<Vec<Conn>>,
    connecting: RefCell<Option<Connecting>>,
    health: Cell<Health>,
    /// Where the shard publishes the instance's down marks, for `/-/services`.
    marks: MarkSlot,
    /// Calls holding a stream slot.
    in_flight: Cell<usize>,
    /// Calls waiting for one.
    waiters: Waiters<Lease>,
}

/// What [`InstancePool::try_lend`] found.
enum Lend {
    /// A connection with a stream slot free.
    Lent(Lease),
    /// Connections are open, every one using all the streams its backend allows.
    Full,
    /// No connection is open.
    Empty,
}

/// A connection lent to one call; gives its stream slot back when dropped.
pub struct Lease {
    /// The connection's request handle.
    pub send: SendRequest<RequestMessage>,
    state: Rc<ConnState>,
    pool: Rc<InstancePool>,
}

impl Drop for InstancePool {
    /// A pool goes with its instance (deregistered, or moved to another address): its mark with
    /// it, so that an address registered again later is not shown down for a pause it never had.
    /// Only its own mark: a pool made since for the address (the pool outlives its place in
    /// the map while calls hold it) may have published one of its own.
    fn drop(&mut self) {
        if let Some(until) = self.health.get().down_until {
            self.marks.withdraw(&self.address, until);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let waiting = !self.pool.waiters.is_empty();
        if waiting && !self.state.closed.get() && !takes_streams(&mut self.send) {
            self.state.ended_by_backend(Instant::now);
        }
        // The slot goes to the call that has waited longest, when the connection can take it:
        // the counts stay as they are, the slot changes hands.
        if waiting
            && !self.state.closed.get()
            && self.pool.waiters.hand_over(|| Lease {
                send: self.send.clone(),
                state: self.state.clone(),
                pool: self.pool.clone(),
            })
        {
            return;
        }
        self.state.in_flight.set(self.state.in_flight.get() - 1);
        self.pool.in_flight.set(self.pool.in_flight.get() - 1);
        self.pool.judge(&self.state);
        if waiting && self.state.closed.get() {
            // No slot to hand over on a connection that is gone: a waiting call looks again
            // (another connection, or a new one).
            self.pool.waiters.wake_one();
        }
    }
}

impl Lease {
    /// The request head for a call carrying `timeout`: the last one built for this instance
    /// when it carried the same, else the one `build` makes from the URI of the Send method on
    /// this instance (`:scheme`/`:authority`/`:path`).
    pub fn request_head(
        &self,
        timeout: Duration,
        build: impl FnOnce(&http::Uri) -> RequestHead,
    ) -> RequestHead {
        let mut last = self.pool.last_head.borrow_mut();
        match &*last {
            Some((carried, head)) if *carried == timeout => head.clone(),
            _ => {
                let head = build(&self.pool.uri);
                *last = Some((timeout, head.clone()));
                head
            }
        }
    }

    /// The backend ended the connection (its GOAWAY, a reset, an I/O error) under this call:
    /// retired, and counted against the instance if no answer arrived on it (module docs).
    pub fn ended_by_backend(&self) {
        // The lease is a call on it: no clock needed.
        self.state.ended_by_backend(Instant::now);
    }

    /// The head of this call's answer arrived: the connection works. The first answer on a
    /// connection resets the instance's health (module docs); later ones cost a flag's test.
    pub fn answered(&self) {
        if !self.state.answered.replace(true) {
            self.state.dropped.set(false);
            let mut health = self.pool.health.get();
            health.record_success();
            self.pool.set_health(health);
        }
    }
}

impl InstancePool {
    /// An empty pool for the instance at `address`, publishing its down marks to `marks`.
    pub fn new(address: Address, marks: MarkSlot) -> Rc<InstancePool> {
        // The address as registered, as a gRPC client sends its target: a name-based virtual
        // host in front of the backend routes on it (see `Address::as_str`).
        let uri = format!("http://{}{}", address.as_str(), crate::proto::SEND_PATH)
            .parse()
            .expect("a checked host:port makes a valid authority");
        Rc::new(InstancePool {
            address,
            preferred: Cell::new(0),
            uri,
            last_head: RefCell::default(),
            conns: RefCell::default(),
            connecting: RefCell::default(),
            health: Cell::default(),
            marks,
            in_flight: Cell::new(0),
            waiters: Waiters::default(),
        })
    }

    /// The instance's passive health.
    pub fn health(&self) -> Health {
        self.health.get()
    }

    /// Sets the instance's health, publishing its down mark when that changed (not on every
    /// answered connection of a well instance: only when it goes down or comes back).
    fn set_health(&self, health: Health) {
        if self.health.replace(health).down_until != health.down_until {
            self.marks.publish(&self.address, health.down_until);
        }
    }

    /// Counts a connection its backend dropped before it answered anything as a failed attempt,
    /// once no call on it can still be answered (see the module docs); once per connection.
    fn judge(&self, state: &ConnState) {
        if state.in_flight.get() == 0 && state.dropped.replace(false) {
            let mut health = self.health.get();
            health.record_failure(ConnectFailure::Dropped, Instant::now());
            self.set_health(health);
        }
    }

    /// Calls to this instance from this shard: in flight, and waiting for a stream slot.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get() + self.waiters.len()
    }

    /// Lends a connection with a stream slot free, waiting for one when every connection is at
    /// its backend's stream limit and connecting first when the pool is empty. `now` is the
    /// caller's reading of the clock (the pool reads none of its own); the caller reads it again
    /// after this, since the wait took time.
    pub async fn checkout(
        self: &Rc<Self>,
        connect_timeout: Duration,
        now: Instant,
    ) -> Result<Lease, ConnectFailure> {
        // Bounded: a connection that keeps closing as soon as it is open is not retried forever
        // (and the first one so dropped marks the instance down, which ends the loop below).
        // Waits for a slot are bounded by the call's deadline instead.
        const CONNECTS: usize = 3;
        let mut connects = 0;
        loop {
            // After a wait, `now` is early: a connection opened meanwhile is not probed, as it
            // should not be.
            match self.try_lend(connect_timeout, now) {
                Lend::Lent(lease) => return Ok(lease),
                Lend::Full => {
                    // Bounded, then the pool is looked at again: its connections may have been
                    // drained by their backend (GOAWAY) meanwhile, which wakes no one, and a
                    // drained one makes room for a new connection (see `SLOT_RECHECK`).
                    if let Some(Some(lease)) =
                        crate::timeout::within(SLOT_RECHECK, self.waiters.wait()).await
                    {
                        return Ok(lease);
                    }
                }
                Lend::Empty if connects == CONNECTS => return Err(ConnectFailure::Failed),
                // The connection just opened is gone already, and the instance is marked down
                // for dropping it: no other attempt now.
                Lend::Empty if connects > 0 && !self.health.get().available(Instant::now) => {
                    return Err(ConnectFailure::Dropped)
                }
                Lend::Empty => {
                    connects += 1;
                    self.connecting(connect_timeout).await?;
                }
            }
        }
    }

    /// Lends the least-loaded open connection that has a stream slot free; `None` when none has
    /// ([`InstancePool::checkout`] then waits for one).
    pub fn lend(self: &Rc<Self>, connect_timeout: Duration, now: Instant) -> Option<Lease> {
        match self.try_lend(connect_timeout, now) {
            Lend::Lent(lease) => Some(lease),
            Lend::Full | Lend::Empty => None,
        }
    }

    /// [`InstancePool::lend`], telling a full pool from an empty one. A full pool with room for
    /// another connection starts opening one in the background, unless the instance is marked
    /// down after a failed attempt.
    fn try_lend(self: &Rc<Self>, connect_timeout: Duration, now: Instant) -> Lend {
        let (send, state) = {
            let mut conns = self.conns.borrow_mut();
            conns.retain_mut(|c| {
                let usable = c.usable(now);
                if !usable {
                    self.judge(&c.state);
                }
                usable
            });
            let Some(best) = conns.iter().min_by_key(|c| c.state.in_flight.get()) else {
                return Lend::Empty;
            };
            if best.state.in_flight.get() >= best.send.current_max_send_streams() {
                let room = conns.len() < MAX_CONNS_PER_INSTANCE;
                drop(conns);
                // Not while the instance is marked down: waiting calls, woken when an attempt
                // fails, would otherwise start the next one at once, and again.
                if room && self.connecting.borrow().is_none() && self.health.get().available(|| now)
                {
                    // Runs on its own (see `connecting`).
                    drop(self.connecting(connect_timeout));
                }
                return Lend::Full;
            }
            (best.send.clone(), best.state.clone())
        };
        state.in_flight.set(state.in_flight.get() + 1);
        state.last_lent.set(state.last_lent.get().max(now));
        self.in_flight.set(self.in_flight.get() + 1);
        Lend::Lent(Lease {
            send,
            state,
            pool: self.clone(),
        })
    }

    /// The connection attempt in progress, or a new one. An attempt runs in a task of its own, to
    /// its end, whoever waits for it: the call that started it may be gone (its client hung up,
    /// its deadline passed), and an attempt nobody polled would otherwise stay here, to be joined
    /// by a later call and answer it with a connect timeout long expired, or a refusal from
    /// before the instance came back, as if they were fresh.
    fn connecting(self: &Rc<Self>, connect_timeout: Duration) -> Connecting {
        if let Some(attempt) = self.connecting.borrow().as_ref() {
            return attempt.clone();
        }
        let pool = self.clone();
        let attempt = async move { pool.connect(connect_timeout).await }
            .boxed_local()
            .shared();
        *self.connecting.borrow_mut() = Some(attempt.clone());
        let driven = attempt.clone();
        glommio::spawn_local(async move {
            let _ = driven.await;
        })
        .detach();
        attempt
    }

    async fn connect(self: Rc<Self>, connect_timeout: Duration) -> Result<(), ConnectFailure> {
        let result = self.open_any(connect_timeout).await;
        self.connecting.borrow_mut().take();
        let mut health = self.health.get();
        let outcome = match result {
            Ok(send) => {
                health.record_connected();
                let state = Rc::new(ConnState::new(Instant::now()));
                let (send, driver, fd) = send;
                self.conns.borrow_mut().push(Conn {
                    send,
                    state: state.clone(),
                    fd,
                });
                // Weak: the pool holds the connection's request handle, and the connection runs
                // until every handle is gone.
                let pool = Rc::downgrade(&self);
                glommio::spawn_local(async move {
                    let _ = driver.await;
                    // Not retired by the pool first: its backend ended it.
                    state.ended_by_backend(Instant::now);
                    if let Some(pool) = Weak::upgrade(&pool) {
                        pool.judge(&state);
                        pool.waiters.wake_all();
                    }
                })
                .detach();
                Ok(())
            }
            Err(failure) => {
                health.record_failure(failure, Instant::now());
                Err(failure)
            }
        };
        self.set_health(health);
        // Calls waiting for a slot look again: at the new connection, or (after a failure) at
        // whatever is left.
        self.waiters.wake_all();
        outcome
    }

    /// Opens a connection to the first of the instance's socket addresses that takes one,
    /// starting with the one the last connection was made to (see the module docs). The instance
    /// refused only if every address did; otherwise the failure is the last one met at an
    /// address that did not refuse: something answers there.
    async fn open_any(&self, connect_timeout: Duration) -> Result<Opened, ConnectFailure> {
        let sockets = self.address.sockets();
        let first = self.preferred.get();
        let order = std::iter::once(first).chain((0..sockets.len()).filter(|&i| i != first));
        let mut failure = None;
        for i in order {
            let Some(&socket) = sockets.get(i) else {
                break;
            };
            match open(socket, connect_timeout).await {
                Ok(opened) => {
                    self.preferred.set(i);
                    return Ok(opened);
                }
                Err(e) => {
                    tracing::debug!(address = %self.address.as_str(), %socket, failure = ?e,
                        "connection attempt failed");
                    if e != ConnectFailure::Refused {
                        failure = Some(e);
                    }
                }
            }
        }
        // An address that did not resolve has no pool (see `Upstream::send_to`).
        let refused = if sockets.is_empty() {
            ConnectFailure::Failed
        } else {
            ConnectFailure::Refused
        };
        Err(failure.unwrap_or(refused))
    }
}

type Driver = h2::client::Connection<TokioIo<TcpStream>, RequestMessage>;
/// An open connection: its request handle, its driver, its socket.
type Opened = (SendRequest<RequestMessage>, Driver, RawFd);

/// Opens one h2c connection (prior knowledge) to `addr`; also returns its socket.
async fn open(addr: SocketAddr, connect_timeout: Duration) -> Result<Opened, ConnectFailure> {
    let stream = TcpStream::connect_timeout(addr, connect_timeout)
        .await
        .map_err(|e| match std::io::Error::from(e).kind() {
            std::io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
            std::io::ErrorKind::TimedOut => ConnectFailure::TimedOut,
            _ => ConnectFailure::Failed,
        })?;
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let handshake = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .enable_push(false)
        .max_header_list_size(MAX_ANSWER_HEADER_LIST)
        .max_concurrent_reset_streams(REMEMBERED_RESETS)
        // h2 ends a connection once it has had to reset 1,024 streams over its life (frames
        // for a stream it had forgotten, among others), a count that never goes down: clients
        // that went away, each cancelling calls whose answers were still arriving, made the
        // gateway end its own backend connection and fail the other clients' calls on it (502).
        // That bound guards a server against its clients; a backend is the operator's own.
        .max_local_error_reset_streams(None)
        .handshake::<_, RequestMessage>(TokioIo::new(stream));
    let settled = async {
        let (send, mut driver) = handshake.await.map_err(|_| ConnectFailure::Failed)?;
        settle(&mut driver).await?;
        Ok((send, driver, fd))
    };
    let handshake_timeout = HANDSHAKE_TIMEOUT.min(connect_timeout);
    crate::timeout::within(handshake_timeout, settled)
        .await
        .unwrap_or(Err(ConnectFailure::TimedOut))
}

/// Drives `driver`'s connection until the backend's SETTINGS have arrived (see the module docs):
/// a PING sent after the client's preface comes back only after them, and h2 applies a SETTINGS
/// frame before it reads the next one. `Dropped` when the backend ends the connection first.
async fn settle(driver: &mut Driver) -> Result<(), ConnectFailure> {
    let mut ping_pong = driver.ping_pong().ok_or(ConnectFailure::Failed)?;
    ping_pong
        .send_ping(h2::Ping::opaque())
        .map_err(|_| ConnectFailure::Failed)?;
    std::future::poll_fn(|cx| {
        // The driver reads the PONG (and before it the SETTINGS); done, the connection is.
        if Pin::new(&mut *driver).poll(cx).is_ready() {
            return Poll::Ready(Err(ConnectFailure::Dropped));
        }
        ping_pong
            .poll_pong(cx)
            .map(|pong| pong.map(drop).map_err(|_| ConnectFailure::Dropped))
    })
    .await
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::{ErrorKind, GrpcCode};
    use bytes::Bytes;
    use std::future::Future;
    use std::net::TcpListener;

    /// Generous: the listener is in this process, so connecting only fails if something is broken.
    const TEST_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// The address of an instance registered as `addr` (an IP address: nothing to resolve).
    pub(crate) fn at(addr: SocketAddr) -> Address {
        Address::parse(&addr.to_string()).expect("a socket address")
    }

    /// Blocks the thread (not the executor: no other task runs meanwhile) until the peer's close
    /// has reached `fd`. Bounded by the poll timeout.
    fn wait_for_hangup(fd: RawFd) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 5_000) };
        assert_eq!(ready, 1, "the peer's close reached the socket");
    }

    /// Runs `f` with a pool connected to a listener that has accepted its one connection and
    /// answered its preface ([`answer_preface`]).
    fn with_connected_pool(f: impl FnOnce(Rc<InstancePool>, std::net::TcpStream) + 'static) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || answer_preface(listener));
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let pool = InstancePool::new(at(addr), MarkSlot::detached());
                drop(
                    pool.checkout(TEST_CONNECT_TIMEOUT, Instant::now())
                        .await
                        .expect("connects"),
                );
                f(pool, server.join().expect("the preface answered"));
            });
    }

    /// Accepts one connection and answers its HTTP/2 preface as a server does: its SETTINGS
    /// (empty), then the acknowledgement of the client's first PING, which the pool waits for.
    /// Returns the connection once the PING is answered; each read is bounded by
    /// [`TEST_CONNECT_TIMEOUT`], and their number too (the preface is a few dozen bytes).
    fn answer_preface(listener: TcpListener) -> std::net::TcpStream {
        use std::io::{Read, Write};
        const MAX_READS: usize = 64;
        const PREFACE_LEN: usize = 24;
        const HEAD_LEN: usize = 9;
        const PING: u8 = 6;
        const PING_LEN: usize = 8;
        const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
        let (mut peer, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(TEST_CONNECT_TIMEOUT)).unwrap();
        peer.write_all(&SETTINGS).unwrap();
        let mut buf = Vec::new();
        let mut at = PREFACE_LEN;
        for _ in 0..MAX_READS {
            while buf.len() >= at + HEAD_LEN {
                let head = &buf[at..at + HEAD_LEN];
                let len =
                    usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
                if head[3] == PING && buf.len() >= at + HEAD_LEN + PING_LEN {
                    let mut pong = vec![0, 0, PING_LEN as u8, PING, 1, 0, 0, 0, 0];
                    pong.extend_from_slice(&buf[at + HEAD_LEN..at + HEAD_LEN + PING_LEN]);
                    peer.write_all(&pong).unwrap();
                    return peer;
                }
                if head[3] == PING {
                    break;
                }
                at += HEAD_LEN + len;
            }
            let mut chunk = [0u8; 1024];
            let n = peer.read(&mut chunk).expect("the client's preface");
            assert!(n > 0, "the client closed before its PING");
            buf.extend_from_slice(&chunk[..n]);
        }
        panic!("no PING in the client's first {MAX_READS} reads");
    }

    /// Runs `test` on an executor of its own, with a listener for its backend bound to a free
    /// loopback port (and that port's address). The upstream modules' tests share it.
    pub(crate) fn with_backend<F: Future<Output = ()>>(
        test: impl FnOnce(glommio::net::TcpListener, SocketAddr) -> F + 'static,
    ) {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                test(listener, addr).await;
            });
    }

    type ServerConn = h2::server::Connection<TokioIo<glommio::net::TcpStream>, Bytes>;

    /// Accepts one connection and the first call on it, then drains the connection (GOAWAY, sent
    /// as the connection is driven), the call left to answer.
    async fn first_call_then_drain(
        listener: glommio::net::TcpListener,
    ) -> (ServerConn, h2::server::SendResponse<Bytes>) {
        let stream = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(TokioIo::new(stream)).await.unwrap();
        let (_call, respond) = conn.accept().await.unwrap().unwrap();
        conn.graceful_shutdown();
        (conn, respond)
    }

    #[test]
    fn an_idle_connection_closed_by_its_peer_is_not_lent() {
        with_connected_pool(|pool, peer| {
            let fd = pool.conns.borrow()[0].fd;
            drop(peer);
            wait_for_hangup(fd);
            // The h2 driver has not run since the close (no await above), so only the probe
            // can know the connection is dead. Lent moments ago, it is not probed; idle for
            // `PROBE_IDLE`, it is, and is dropped.
            let soon = pool.conns.borrow()[0].state.last_lent.get();
            drop(pool.lend(TEST_CONNECT_TIMEOUT, soon).expect("not probed"));
            assert!(pool.lend(TEST_CONNECT_TIMEOUT, soon + PROBE_IDLE).is_none());
            assert!(pool.conns.borrow().is_empty());
        });
    }

    /// A backend drains a connection with a call in flight on it: once the gateway has read the
    /// GOAWAY (the answer's head, written after it, has arrived), the connection is not lent
    /// again, though it stays open for the call.
    #[test]
    fn a_connection_its_backend_drains_is_not_lent_again() {
        with_backend(|listener, addr| async move {
            let (done, end) = futures_channel::oneshot::channel::<()>();
            let server = glommio::spawn_local(async move {
                let (mut conn, mut respond) = first_call_then_drain(listener).await;
                let _answer = respond
                    .send_response(http::Response::new(()), false)
                    .unwrap();
                // Drives the connection (the GOAWAY, then the head) until the test ends.
                futures_lite::future::or(async { while conn.accept().await.is_some() {} }, async {
                    let _ = end.await;
                })
                .await;
            });
            let pool = InstancePool::new(at(addr), MarkSlot::detached());
            let mut lease = pool
                .checkout(TEST_CONNECT_TIMEOUT, Instant::now())
                .await
                .expect("connects");
            let head = lease.request_head(Duration::from_secs(1), |uri| {
                let request = http::Request::post(uri.clone()).body(()).unwrap();
                RequestHead::new(request).unwrap()
            });
            let (response, _body) = lease.send.send_request_head(&head, false).unwrap();
            let _head = response.await.expect("the head after the GOAWAY");
            assert!(!pool.conns.borrow()[0].state.closed.get(), "still open");
            assert!(pool.lend(TEST_CONNECT_TIMEOUT, Instant::now()).is_none());
            assert!(pool.conns.borrow().is_empty(), "retired from the pool");
            let _ = done.send(());
            server.await;
        });
    }

    /// A connection attempt whose call is gone (its client hung up, its deadline passed) still runs
    /// to its end and records what it found, instead of waiting, unpolled, for a later call to
    /// join it and take its stale outcome as fresh.
    #[test]
    fn an_attempt_runs_to_its_end_when_its_call_is_gone() {
        // A port nothing listens on: the connect is refused.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let pool = InstancePool::new(at(addr), MarkSlot::detached());
                // The call starts the attempt, then is dropped before it could see the end.
                let call = pool.checkout(TEST_CONNECT_TIMEOUT, Instant::now());
                assert!(futures_lite::future::poll_once(call).await.is_none());
                wait_until("the attempt ended", || pool.connecting.borrow().is_none()).await;
                assert!(pool.health().refused(), "and recorded the refusal");
            });
    }

    /// Waits (bounded, without blocking the executor) until `cond` holds.
    async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        for _ in 0..500 {
            if cond() {
                return;
            }
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}: not within 5 s");
    }

    /// A call through `lease` (a framed empty message, as `call`'s own test sends).
    async fn call(lease: &mut Lease) -> Result<crate::upstream::reply::Reply, ErrorKind> {
        crate::upstream::call::unary(
            lease,
            RequestMessage::from_static(b"\0\0\0\0\0"),
            Duration::from_secs(5),
            64,
            None,
        )
        .await
        .map_err(|failure| failure.error.kind)
    }

    #[test]
    fn a_connection_opened_ends_a_refusal_s_pause_but_not_a_drop_s() {
        let now = Instant::now();
        for (failure, ends) in [
            (ConnectFailure::Refused, true),
            (ConnectFailure::TimedOut, true),
            (ConnectFailure::Dropped, false),
        ] {
            let mut health = Health::default();
            health.record_failure(failure, now);
            health.record_connected();
            assert_eq!(health.available(|| now), ends, "{failure:?}");
            assert!(!health.refused(), "{failure:?}: it listens");
            assert_eq!(
                health.failures, 1,
                "{failure:?}: counted until a connection works"
            );
        }
    }

    #[test]
    fn pauses_for_drops_stop_growing_at_a_second() {
        let now = Instant::now();
        let longest = |failure| {
            let mut health = Health::default();
            for _ in 0..20 {
                health.record_failure(failure, now);
            }
            health.down_until.unwrap() - now
        };
        assert_eq!(longest(ConnectFailure::Dropped), DROP_BACKOFF_MAX);
        assert_eq!(longest(ConnectFailure::TimedOut), BACKOFF_MAX);
    }

    /// A backend that accepts connections and ends each right after the handshake (GOAWAY with
    /// no stream processed, then a close), answering nothing: each connection is a failed
    /// attempt, the count growing across connections that opened fine, and never a refusal.
    #[test]
    fn connections_dropped_before_any_answer_back_the_instance_off() {
        with_backend(|listener, addr| async move {
            let server = glommio::spawn_local(async move {
                loop {
                    let stream = listener.accept().await.unwrap();
                    glommio::spawn_local(async move {
                        let handshake = h2::server::handshake(TokioIo::new(stream));
                        let Ok(mut conn) = handshake.await else {
                            return;
                        };
                        conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                        let _ = std::future::poll_fn(|cx| conn.poll_closed(cx)).await;
                    })
                    .detach();
                }
            });
            let pool = InstancePool::new(at(addr), MarkSlot::detached());
            for failures in 1..=3u32 {
                let before = Instant::now();
                // Down after the last one, the instance is connected to again: a call sent
                // again to it does that, as does one trying it as a last resort.
                match pool.checkout(TEST_CONNECT_TIMEOUT, before).await {
                    Ok(mut lease) => {
                        let error = call(&mut lease).await.expect_err("nothing answers");
                        assert_eq!(error, ErrorKind::UpstreamProtocol);
                    }
                    // The GOAWAY was read before the connection could be lent.
                    Err(failure) => assert_eq!(failure, ConnectFailure::Dropped),
                }
                wait_until("the drop counted", || pool.health().failures == failures).await;
                let health = pool.health();
                assert_eq!(health.last_failure, Some(ConnectFailure::Dropped));
                assert!(!health.refused());
                let pause = BACKOFF_BASE * (1 << (failures - 1));
                assert!(health.down_until.unwrap() >= before + pause, "{failures}");
                assert!(!health.available(|| before + pause / 2));
            }
            drop(server);
        });
    }

    /// A backend drains a connection (GOAWAY) while the first call on it runs, then answers that
    /// call: the connection worked, and costs the instance nothing, though it was retired before
    /// anything was answered on it.
    #[test]
    fn a_connection_drained_before_its_first_answer_and_then_answering_is_no_failure() {
        with_backend(|listener, addr| async move {
            let (answer, answer_now) = futures_channel::oneshot::channel::<()>();
            let server = glommio::spawn_local(async move {
                let (mut conn, mut respond) = first_call_then_drain(listener).await;
                // Drives the connection (the GOAWAY) until the test asks for the answer.
                futures_lite::future::or(async { while conn.accept().await.is_some() {} }, async {
                    let _ = answer_now.await;
                })
                .await;
                let head = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "12")
                    .body(())
                    .unwrap();
                respond.send_response(head, true).unwrap();
                // Writes the answer; ends when the client closes the connection.
                while conn.accept().await.is_some() {}
            });
            let pool = InstancePool::new(at(addr), MarkSlot::detached());
            let mut lease = pool
                .checkout(TEST_CONNECT_TIMEOUT, Instant::now())
                .await
                .expect("connects");
            let drained = async {
                let mut send = pool.conns.borrow()[0].send.clone();
                wait_until("the GOAWAY read", || !takes_streams(&mut send)).await;
                // Retired, with its call in flight: not judged yet.
                assert!(pool.lend(TEST_CONNECT_TIMEOUT, Instant::now()).is_none());
                assert!(pool.conns.borrow().is_empty());
                assert_eq!(pool.health().failures, 0);
                answer.send(()).unwrap();
            };
            let (answered, ()) = futures_lite::future::zip(call(&mut lease), drained).await;
            assert_eq!(
                answered.expect_err("UNIMPLEMENTED"),
                ErrorKind::Grpc(GrpcCode::Unimplemented)
            );
            drop(lease);
            let health = pool.health();
            assert_eq!((health.failures, health.last_failure), (0, None));
            assert!(health.available(Instant::now));
            drop(pool);
            server.await;
        });
    }

    /// A socket address where nothing listens while the returned socket lives (bound, never
    /// listening): a connection attempt there is refused.
    fn refusing(ip: &str) -> (socket2::Socket, SocketAddr) {
        use socket2::{Domain, Socket, Type};
        let addr: SocketAddr = format!("{ip}:0").parse().unwrap();
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
        socket.bind(&addr.into()).unwrap();
        let bound = socket.local_addr().unwrap().as_socket().unwrap();
        (socket, bound)
    }

    /// Serves every connection `listener` accepts with h2, answering each call UNIMPLEMENTED.
    async fn serve_unimplemented(listener: glommio::net::TcpListener) {
        loop {
            let stream = listener.accept().await.unwrap();
            glommio::spawn_local(async move {
                let Ok(mut conn) = h2::server::handshake(TokioIo::new(stream)).await else {
                    return;
                };
                while let Some(Ok((_call, mut respond))) = conn.accept().await {
                    let head = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .header("grpc-status", "12")
                        .body(())
                        .unwrap();
                    let _ = respond.send_response(head, true);
                }
            })
            .detach();
        }
    }

    /// A host name that resolved to `[::1]` first and 127.0.0.1 second (glibc's order for
    /// `localhost` with the Debian and Docker `/etc/hosts`), the backend listening on 127.0.0.1
    /// only: the refused `[::1]` is passed over for 127.0.0.1, which the next connection tries
    /// first.
    #[test]
    fn a_name_s_next_address_is_tried_when_one_refuses() {
        with_backend(|listener, live| async move {
            let server = glommio::spawn_local(serve_unimplemented(listener));
            let (_held, refused) = refusing("[::1]");
            let address = Address::resolved_as("localhost:7000", vec![refused, live]);
            let pool = InstancePool::new(address, MarkSlot::detached());
            let mut lease = pool
                .checkout(TEST_CONNECT_TIMEOUT, Instant::now())
                .await
                .expect("connects to the second address");
            let answered = call(&mut lease).await.expect_err("UNIMPLEMENTED");
            assert_eq!(answered, ErrorKind::Grpc(GrpcCode::Unimplemented));
            drop(lease);
            assert_eq!(pool.preferred.get(), 1, "127.0.0.1 first from now on");
            let health = pool.health();
            assert!(health.available(Instant::now) && !health.refused());
            assert_eq!(health.failures, 0);
            drop(server);
        });
    }

    /// Every address refused: the instance refused (contract §6's evidence for removing the
    /// service).
    #[test]
    fn an_instance_refuses_only_when_every_address_does() {
        let (_v6, refused_v6) = refusing("[::1]");
        let (_v4, refused_v4) = refusing("127.0.0.1");
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let both = Address::resolved_as("localhost:7000", vec![refused_v6, refused_v4]);
                let pool = InstancePool::new(both, MarkSlot::detached());
                let failure = pool.checkout(TEST_CONNECT_TIMEOUT, Instant::now()).await;
                assert_eq!(failure.err(), Some(ConnectFailure::Refused));
                assert!(pool.health().refused());
            });
    }

    /// Calls carry the address as registered as their `:authority`; any address the registry
    /// accepts makes one (a pool that could not would stop its shard).
    #[test]
    fn calls_name_the_address_as_registered() {
        let label = "l".repeat(63);
        let longest = format!("{label}.{label}.{label}.{}.:65535", &label[3..]);
        for text in [
            "localhost:50051",
            "Backend-1.EXAMPLE.com:80",
            "example.com.:443",
            "10.0.0.5:1",
            "[::1]:8080",
            "[::ffff:10.0.0.1]:80",
            longest.as_str(),
        ] {
            crate::names::Address::check(text).expect(text);
            let pool = InstancePool::new(Address::resolved_as(text, vec![]), MarkSlot::detached());
            assert_eq!(pool.uri.authority().map(|a| a.as_str()), Some(text));
            assert_eq!(pool.uri.path(), crate::proto::SEND_PATH);
        }
    }

    /// Connection attempts given to a backend that never sends its SETTINGS: short, so that
    /// the test spends little time on each (the pool's own bound is `HANDSHAKE_TIMEOUT`).
    const SILENT_WAIT: Duration = Duration::from_millis(200);

    /// A backend whose kernel completes TCP handshakes from the listen backlog while the
    /// process sends nothing (hung, or stopped with SIGSTOP): a listener that is never accepted
    /// from. Its connections are open; no SETTINGS ever come.
    fn silent() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    /// A connection open at the TCP level, with no SETTINGS within the handshake timeout, is a
    /// failed attempt: the instance is marked down as for a connect that timed out, and not as
    /// refusing. It was never lent, so nothing was sent on it.
    #[test]
    fn a_connection_without_the_backend_s_settings_is_a_failed_attempt() {
        let (_listener, addr) = silent();
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let pool = InstancePool::new(at(addr), MarkSlot::detached());
                let before = Instant::now();
                let failure = pool.checkout(SILENT_WAIT, before).await;
                assert_eq!(failure.err(), Some(ConnectFailure::TimedOut));
                assert!(pool.conns.borrow().is_empty(), "never lent");
                let health = pool.health();
                assert_eq!(health.last_failure, Some(ConnectFailure::TimedOut));
                assert!(!health.refused());
                assert!(!health.available(|| before + SILENT_WAIT));
            });
    }

    /// An instance with an address that refuses and one that never sends its SETTINGS did not
    /// refuse (something listens); one with a silent address and a live one is connected at the
    /// live one.
    #[test]
    fn a_silent_address_is_passed_over_and_is_no_refusal() {
        with_backend(|listener, live| async move {
            let server = glommio::spawn_local(serve_unimplemented(listener));
            let (_listener, quiet) = silent();
            let (_held, refused) = refusing("[::1]");
            let pool = InstancePool::new(
                Address::resolved_as("localhost:7000", vec![refused, quiet]),
                MarkSlot::detached(),
            );
            let failure = pool.checkout(SILENT_WAIT, Instant::now()).await;
            assert_eq!(failure.err(), Some(ConnectFailure::TimedOut));
            assert!(!pool.health().refused());

            let pool = InstancePool::new(
                Address::resolved_as("localhost:7000", vec![quiet, live]),
                MarkSlot::detached(),
            );
            let mut lease = pool
                .checkout(SILENT_WAIT, Instant::now())
                .await
                .expect("connects to the live address");
            let answered = call(&mut lease).await.expect_err("UNIMPLEMENTED");
            assert_eq!(answered, ErrorKind::Grpc(GrpcCode::Unimplemented));
            assert_eq!(pool.preferred.get(), 1);
            drop(server);
        });
    }

    #[test]
    fn an_idle_open_connection_is_lent_again() {
        with_connected_pool(|pool, _peer| {
            let idle = Instant::now() + PROBE_IDLE;
            let lease = pool
                .lend(TEST_CONNECT_TIMEOUT, idle)
                .expect("the open connection, probed and found open");
            assert_eq!(pool.in_flight(), 1);
            drop(lease);
            assert_eq!(pool.conns.borrow().len(), 1);
        });
    }
}
