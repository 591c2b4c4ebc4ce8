//! The upstream side: choose an instance, lend a pooled HTTP/2 connection, make the gRPC call, turn
//! the answer into a [`Response`].
//!
//! Load balancing is power-of-two-choices on the calls each instance has in flight from this shard
//! (no shared state, so it needs no coordination). A call that failed is sent again only when that
//! cannot make it happen twice (`after_failure`):
//! - the backend did not process it (safe for any method): its connection failed before the
//!   call's stream was opened, or the backend refused the stream (`REFUSED_STREAM`) or left it out
//!   of its GOAWAY. It goes to the same instance once more (a connection its backend ended or is
//!   draining is retired, so that is another one; one that refused the stream stays in the pool,
//!   and may take it again), as gRPC clients retry such calls transparently: a backend draining
//!   one connection (gRPC's `max_connection_age`, a process of several restarting) takes new
//!   ones, and the service may have no other instance; unless the instance was marked down
//!   before that connection ended (below). Not processed there either, it goes to another
//!   instance;
//! - the connection broke after the call was sent and before any answer arrived, and the method
//!   is idempotent (RFC 9110 §9.2.2: the backend may have processed it, and doing so twice must
//!   not matter), as nginx's default `proxy_next_upstream` does: to another instance.
//!
//! So a call is sent at most three times: twice to one instance, once to another. Once an answer
//! has begun, or for a POST or PATCH whose backend connection broke, the client gets the error
//! (502). A connection whose backend's GOAWAY has been read is never lent again (see [`pool`]).
//!
//! An instance that cannot be connected to is passed over for the next (each instance once per
//! call; these do not count as sends), as nginx's `proxy_next_upstream error timeout` does. When
//! no available instance is left, the instances marked down after a refused connection are tried
//! too, once each, before the call fails (`Upstream::refused_before`). When every instance of the
//! service refused a connection made for this call, the caller is told so it can have the service
//! removed from the registry (contract §6): evidence from this call, not a refusal remembered from
//! before an instance restarted. An instance registered by host name refused only when every
//! address the name resolved to did ([`pool`] tries them in turn).
//!
//! An instance that accepts connections but ends each before answering anything (a GOAWAY right
//! after its SETTINGS, a close) is marked down as one that cannot be connected to, with the same
//! growing pause, capped at a second ([`pool`] says when a connection counts as working): calls
//! made meanwhile go to another instance, or get 503 when none is left. It does not refuse
//! connections, so it never counts towards removing the service. The calls whose connection it
//! dropped follow the rules above, all alike: the mark that drop makes is judged when the last
//! of them gives its connection back, so it does not decide for them (each would otherwise be
//! sent to the instance again or not depending on the order in which they saw the drop: of five
//! calls a GOAWAY left out of a fresh connection, four were answered on a new one and the last
//! got 502). Those it did not process go to it once more, on a new connection (one attempt for
//! all of them, as for any calls that find the pool empty); a backend that ends that one too
//! has them sent elsewhere, and is marked down for longer.
//!
//! An answer is held to limits before it becomes a response: its size (`--max-grpc-message-bytes`,
//! in [`call`]), its HTTP/2 header block ([`pool::MAX_ANSWER_HEADER_LIST`]), and the headers of its
//! `ForwardingResp` ([`AnswerLimits`]: the client's own header limits). An HTTP/2 client's
//! answers wait while its connection holds its [`budget`] of answers not yet sent.

pub mod budget;
pub mod call;
pub mod codec;
pub mod down_marks;
pub mod pool;
pub mod reply;
pub mod waiters;

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rustc_hash::FxHashMap;

use crate::config::ServiceSettings;
use crate::error::{ErrorKind, GatewayError};
use crate::http::{Field, Response};
use crate::names::Address;
use crate::registry::view::ServiceEntry;
use budget::AnswerHold;
use call::Reached;
use codec::ForwardingParts;
use down_marks::MarkSlot;
use pool::{ConnectFailure, InstancePool};
use reply::{Reply, ReplyHeaders};

/// Longest wait for a TCP connection: a backend on the same network answers a SYN in well under a
/// millisecond, so a second means it is not there. Its SETTINGS then get [`HANDSHAKE_TIMEOUT`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait, once a TCP connection is open, for the backend's HTTP/2 SETTINGS (confirmed by a
/// PING's answer, see [`pool`]). A backend sends them as it accepts the connection; one whose
/// kernel completed the handshake for it from the listen backlog but which sends nothing within a
/// second is hung or stopped, and its connection counts as one that timed out.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// Least time given to a connection attempt (a zero timeout is refused by the socket layer); the
/// call's own deadline still bounds it.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_millis(1);

/// How a call failed before reaching any instance.
#[derive(Debug)]
pub struct Unreachable {
    /// The error for the client.
    pub error: GatewayError,
    /// Every instance of the service refused a connection made for this call: the service should
    /// be removed.
    pub all_refused: bool,
}

impl From<GatewayError> for Unreachable {
    /// A failure that is not every instance refusing: the service stays.
    fn from(error: GatewayError) -> Self {
        Unreachable {
            error,
            all_refused: false,
        }
    }
}

/// Limits on the headers of a backend's answer (`ForwardingResp.headers`), past which the answer
/// is a 502: the limits a client's request headers have (`--max-headers`, `--max-header-bytes`),
/// so that the gateway hands no client a header section it would itself refuse, as Envoy holds
/// upstream responses to header limits (`max_headers_count`, `max_response_headers_kb`) and nginx
/// refuses an "upstream sent too big header".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerLimits {
    /// Most headers.
    pub max_headers: usize,
    /// Most bytes, as [`ReplyHeaders::size`] measures them.
    pub max_header_bytes: usize,
}

impl AnswerLimits {
    /// The limits `config` sets for client requests.
    pub fn of(config: &crate::config::Config) -> AnswerLimits {
        AnswerLimits {
            max_headers: config.max_headers,
            max_header_bytes: config.max_header_bytes,
        }
    }

    /// `Err` (a 502) when `headers` are over a limit.
    fn check(&self, headers: &ReplyHeaders) -> Result<(), GatewayError> {
        let over = if headers.len() > self.max_headers {
            format!("{} headers (at most {})", headers.len(), self.max_headers)
        } else if headers.size() > self.max_header_bytes {
            format!(
                "{} bytes (at most {})",
                headers.size(),
                self.max_header_bytes
            )
        } else {
            return Ok(());
        };
        Err(GatewayError::upstream_protocol(format!(
            "backend answer headers over the limit: {over}"
        )))
    }
}

/// One shard's upstream state: connection pools by instance address (as registered and resolved:
/// instances registered at one address share a pool), the encode buffer, and the limits on
/// answers.
pub struct Upstream {
    pools: RefCell<FxHashMap<Address, Rc<InstancePool>>>,
    encode_buf: RefCell<BytesMut>,
    limits: AnswerLimits,
    /// Where the pools publish their instances' down marks ([`down_marks`]).
    marks: MarkSlot,
}

impl Upstream {
    /// No pools yet; answers are held to `limits`, down marks published to `marks`.
    pub fn new(limits: AnswerLimits, marks: MarkSlot) -> Upstream {
        Upstream {
            pools: RefCell::default(),
            encode_buf: RefCell::new(codec::encode_buffer()),
            limits,
            marks,
        }
    }

    fn pool(&self, address: &Address) -> Rc<InstancePool> {
        if let Some(pool) = self.pools.borrow().get(address) {
            return pool.clone();
        }
        let pool = InstancePool::new(address.clone(), self.marks.clone());
        self.pools
            .borrow_mut()
            .insert(address.clone(), pool.clone());
        pool
    }

    /// Drops pools for addresses no longer registered.
    pub fn retain_pools(&self, keep: impl Fn(&Address) -> bool) {
        self.pools.borrow_mut().retain(|addr, _| keep(addr));
    }

    /// Calls `service` with `parts` and maps the answer. `start` is the clock as the call began
    /// (for REST, the router's reading as the request arrived): the deadline, the connection's
    /// health check and the backend's grpc-timeout all count from it, so the call reads the clock
    /// again only after something took time (a connect, a wait for a stream slot, a second
    /// attempt): the grpc-timeout a call carries is the deadline left when its head is sent.
    /// `hold`, for a call made for an HTTP/2 client, takes the answer's share of its
    /// connection's budget ([`budget`]).
    pub async fn forward(
        &self,
        service: &ServiceEntry,
        parts: &ForwardingParts<'_>,
        settings: &ServiceSettings,
        rng: &Cell<u64>,
        start: Instant,
        hold: Option<&AnswerHold>,
    ) -> Result<Response, Unreachable> {
        let frame = parts.encode_framed(&mut self.encode_buf.borrow_mut(), keep_header);
        // One timer bounds the whole call (connecting, retrying, waiting for the answer): a
        // timer per step would cost an io_uring timeout op each on every request.
        let idempotent = is_idempotent(parts.method);
        let mut sends = Sends::new(service, frame, idempotent, start, settings, hold);
        crate::timeout::until(start + settings.timeout, self.attempts(&mut sends, rng))
            .await
            .unwrap_or_else(|| Err(timed_out(settings, hold)))
    }

    /// Sends the call to one instance, again to the same instance when it did not process it, and
    /// to another when the rules of the module docs allow; an instance that cannot be connected
    /// to is passed over for the next: chooses an instance, tries it ([`Upstream::send_to`]),
    /// and when none is left, decides the error ([`Sends::no_instance_error`]). `sends` lives in
    /// `forward`'s future, so this one holds only a reference to it.
    async fn attempts(
        &self,
        sends: &mut Sends<'_>,
        rng: &Cell<u64>,
    ) -> Result<Response, Unreachable> {
        let mut tried = Tried::default();
        while let Some(index) = self.next_instance(sends.service, &tried, rng) {
            tried.insert(index);
            if let ControlFlow::Break(outcome) = self.send_to(index, sends).await {
                return outcome;
            }
        }
        Err(sends.no_instance_error())
    }

    /// Sends the call to the service's instance number `index`, and once more when it did not
    /// process the call and is still available. `Break` holds the call's outcome: the client's
    /// response, or an error that ends the call. `Continue` passes the call on to the next
    /// instance: this one has no address, could not be connected to, was marked down, or failed
    /// the call in a way that lets another instance take it.
    async fn send_to(
        &self,
        index: usize,
        sends: &mut Sends<'_>,
    ) -> ControlFlow<Result<Response, Unreachable>> {
        let address = &sends.service.instances[index].address;
        if !address.is_resolved() {
            return ControlFlow::Continue(());
        }
        let pool = self.pool(address);
        let mut first_send = true;
        loop {
            let connect_timeout = CONNECT_TIMEOUT
                .min(sends.deadline.saturating_duration_since(sends.now))
                .max(MIN_CONNECT_TIMEOUT);
            // A connection with a free stream slot is lent at once; only a wait (for a slot,
            // or for a connection to open) moves the clock.
            let mut lease = match pool.lend(connect_timeout, sends.now) {
                Some(lease) => lease,
                None => {
                    let lease = pool.checkout(connect_timeout, sends.now).await;
                    sends.now = Instant::now();
                    match lease {
                        Ok(lease) => lease,
                        Err(failure) => {
                            sends.refused += usize::from(failure == ConnectFailure::Refused);
                            sends.last_failure = Some(failure);
                            return ControlFlow::Continue(());
                        }
                    }
                }
            };
            if first_send {
                first_send = false;
                sends.sent_to += 1;
            }
            let left = sends.deadline.saturating_duration_since(sends.now);
            let answer = call::unary(
                &mut lease,
                sends.frame.clone(),
                left,
                sends.settings.max_grpc_message_bytes,
                sends.hold,
            )
            .await;
            let failure = match answer {
                Ok(resp) => return ControlFlow::Break(self.answer(resp)),
                Err(failure) => failure,
            };
            sends.now = Instant::now();
            let next = after_failure(failure.reached, sends.idempotent, sends.resent_here);
            tracing::debug!(service = %sends.service.name, address = address.as_str(),
                error = %failure.error.message, ?next, "call failed");
            match next {
                Next::GiveUp => return ControlFlow::Break(Err(failure.error.into())),
                Next::SendHereAgain => {
                    sends.failed_call = Some(failure.error);
                    // Whether the instance takes the call again is decided before the lease is
                    // given back. A connection its backend ended is retired already, and is
                    // counted against the instance if nothing was answered on it (`pool`) when
                    // the last of its calls gives its lease back: had each call looked after
                    // giving its own back, the last one would have found the instance marked
                    // down and gone elsewhere (a 502 with no other instance), while the calls
                    // the same GOAWAY left out, woken before it, went to the instance again and
                    // were answered. So every call on it does what the ones before did: a mark
                    // its connection's end makes keeps later calls off the instance, not these.
                    // A connection that refused the stream stays: opening a new connection for
                    // every refusal made a backend that refuses every stream pay two
                    // connections a call.
                    let available = pool.health().available(|| sends.now);
                    drop(lease);
                    if !available {
                        return ControlFlow::Continue(());
                    }
                    sends.resent_here = true;
                }
                Next::SendElsewhere if sends.sent_to == MAX_INSTANCES_SENT_TO => {
                    return ControlFlow::Break(Err(failure.error.into()))
                }
                Next::SendElsewhere => {
                    sends.failed_call = Some(failure.error);
                    return ControlFlow::Continue(());
                }
            }
        }
    }

    /// The client's response for a backend's answer, or why there is none (a 502).
    fn answer(&self, reply: Reply) -> Result<Response, Unreachable> {
        self.limits.check(&reply.headers)?;
        Ok(into_response(reply)?)
    }

    /// The instance to try next: one of those available ([`Upstream::choose`]), or when none is,
    /// one marked down because it refused a connection (the last resort below), each once.
    fn next_instance(
        &self,
        service: &ServiceEntry,
        tried: &Tried,
        rng: &Cell<u64>,
    ) -> Option<usize> {
        self.choose(service, tried, rng)
            .or_else(|| self.refused_before(service, tried))
    }

    /// An instance not tried yet whose last connection attempt from this shard was refused,
    /// marked down since.
    ///
    /// Tried when no other instance can take the call, though its pause is not over: the call
    /// would fail otherwise, and a refusal costs a round trip. It may be back (a rolling
    /// restart: restarted while the others are stopped); and if it refuses again, that refusal,
    /// made for this call, is the evidence contract §6 asks for before the service is removed for
    /// every instance refusing, not one from before its restart.
    fn refused_before(&self, service: &ServiceEntry, tried: &Tried) -> Option<usize> {
        let pools = self.pools.borrow();
        (0..service.instances.len()).find(|&i| {
            !tried.contains(i)
                && pools
                    .get(&service.instances[i].address)
                    .is_some_and(|p| p.health().refused())
        })
    }

    /// Power of two choices among the available instances not tried yet.
    fn choose(&self, service: &ServiceEntry, tried: &Tried, rng: &Cell<u64>) -> Option<usize> {
        let pools = self.pools.borrow();
        // The clock is read once, and only if some instance is marked down (`state` runs several
        // times per instance).
        let now = std::cell::OnceCell::new();
        let now = || *now.get_or_init(Instant::now);
        // (available, in flight); an address that did not resolve is never available.
        let state = |i: usize| {
            let address = &service.instances[i].address;
            if !address.is_resolved() {
                return (false, 0);
            }
            pools
                .get(address)
                .map_or((true, 0), |p| (p.health().available(now), p.in_flight()))
        };
        let candidates =
            || (0..service.instances.len()).filter(|&i| !tried.contains(i) && state(i).0);
        // One pass counts them and keeps the first: a service of one instance looks it up once.
        let (count, first) =
            candidates().fold((0, None), |(n, first), i| (n + 1, first.or(Some(i))));
        match count {
            0 => None,
            1 => first,
            _ => {
                let a = (next_random(rng) % count as u64) as usize;
                let mut b = (next_random(rng) % (count as u64 - 1)) as usize;
                if b >= a {
                    b += 1;
                }
                let a = candidates().nth(a)?;
                let b = candidates().nth(b)?;
                Some(if state(b).1 < state(a).1 { b } else { a })
            }
        }
    }
}

/// Instances a call is sent to at most: the first, and another when the first failed it in a way
/// that allows (see the module docs). Instances it could not connect to do not count.
const MAX_INSTANCES_SENT_TO: usize = 2;

/// The instances a call has tried: a word for the first 64, a list past them (which only a
/// service with more instances allocates, and only for a call that gets that far).
#[derive(Debug, Default)]
struct Tried {
    first: u64,
    more: Vec<usize>,
}

impl Tried {
    fn insert(&mut self, index: usize) {
        match index {
            0..64 => self.first |= 1 << index,
            _ => self.more.push(index),
        }
    }

    fn contains(&self, index: usize) -> bool {
        match index {
            0..64 => self.first & (1 << index) != 0,
            _ => self.more.contains(&index),
        }
    }
}

/// One call on its way through a service's instances ([`Upstream::attempts`]): what is sent and
/// until when, and what its sends so far have learnt, carried from one instance to the next.
struct Sends<'a> {
    service: &'a ServiceEntry,
    frame: codec::RequestMessage,
    idempotent: bool,
    settings: &'a ServiceSettings,
    hold: Option<&'a AnswerHold>,
    /// The clock as the call began, read again only after a step that took time (a connect, a
    /// wait for a slot, a failed send).
    now: Instant,
    /// `settings.timeout` from the call's start, as `forward`'s timer.
    deadline: Instant,
    /// Instances that refused a connection made for this call: the evidence for removing the
    /// service, fresh by construction.
    refused: usize,
    /// Why the last instance that could not be connected to could not be.
    last_failure: Option<ConnectFailure>,
    /// The error of a send that failed, for the client if no other instance takes the call.
    failed_call: Option<GatewayError>,
    /// The call was sent to an instance a second time: one that did not process it again goes
    /// elsewhere.
    resent_here: bool,
    /// Instances the call was sent to: one, and at most one more.
    sent_to: usize,
}

impl<'a> Sends<'a> {
    /// A call not sent yet, begun at `now`: its deadline is `settings.timeout` from then.
    fn new(
        service: &'a ServiceEntry,
        frame: codec::RequestMessage,
        idempotent: bool,
        now: Instant,
        settings: &'a ServiceSettings,
        hold: Option<&'a AnswerHold>,
    ) -> Sends<'a> {
        Sends {
            service,
            frame,
            idempotent,
            settings,
            hold,
            now,
            deadline: now + settings.timeout,
            refused: 0,
            last_failure: None,
            failed_call: None,
            resent_here: false,
            sent_to: 0,
        }
    }

    /// The client's error once no instance is left to try: that of the last send that failed, if
    /// an instance took the call; otherwise why none could be connected to. `all_refused` says
    /// whether every instance refused a connection made for this call.
    fn no_instance_error(&mut self) -> Unreachable {
        // Each instance is tried once at most, so this counts each that refused once.
        let all_refused = self.refused == self.service.instances.len();
        let service = &self.service.name;
        let error = match (self.failed_call.take(), all_refused, self.last_failure) {
            // An instance took the call and failed it; no other could be tried.
            (Some(error), _, _) => error,
            (None, true, _) => GatewayError::new(
                ErrorKind::NoHealthyInstance,
                format!("every instance of `{service}` refused the connection"),
            ),
            (None, false, Some(ConnectFailure::TimedOut)) => GatewayError::new(
                ErrorKind::NoHealthyInstance,
                format!("could not connect to an instance of `{service}` in time"),
            ),
            (None, false, _) => GatewayError::new(
                ErrorKind::NoHealthyInstance,
                format!("no healthy instance of `{service}`"),
            ),
        };
        Unreachable { error, all_refused }
    }
}

/// What follows a failed send (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// The client gets the call's error.
    GiveUp,
    /// The same instance again, on another connection: it did not process the call.
    SendHereAgain,
    /// Another instance, if one can be had.
    SendElsewhere,
}

/// What follows a send that got as far as `reached`, for a call whose method is `idempotent`,
/// when it has (`resent_here`) or has not been sent to the same instance again already.
fn after_failure(reached: Reached, idempotent: bool, resent_here: bool) -> Next {
    match reached {
        Reached::NotProcessed if !resent_here => Next::SendHereAgain,
        Reached::NotProcessed => Next::SendElsewhere,
        Reached::MaybeProcessed if idempotent => Next::SendElsewhere,
        Reached::MaybeProcessed | Reached::Answered => Next::GiveUp,
    }
}

fn timed_out(settings: &ServiceSettings, hold: Option<&AnswerHold>) -> Unreachable {
    let ms = settings.timeout.as_millis();
    let message = if hold.is_some_and(AnswerHold::waiting) {
        format!(
            "the backend answered, but its answer waited past the {ms} ms deadline for room in \
             this connection's answer budget, held by answers the client has not read"
        )
    } else {
        format!("backend did not answer within {ms} ms")
    };
    GatewayError::new(ErrorKind::UpstreamTimeout, message).into()
}

/// xorshift64*: the shard's generator for balancing choices and for the request ids it assigns
/// ([`crate::request_id::RequestId::generate`]); not for anything secret.
pub fn next_random(state: &Cell<u64>) -> u64 {
    let mut x = state.get();
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    state.set(x);
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Methods whose request may be sent twice with the effect of once (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// Client headers forwarded to a backend, in order: all but hop-by-hop ones (contract §1) and
/// `expect`, which asks this hop for `100 Continue` and is answered here (nginx drops it too).
pub fn keep_header(h: &Field) -> bool {
    !(is_hop_by_hop(&h.name) || h.name.as_ref() == b"expect")
}

/// Connection-specific headers (RFC 9110 §7.6.1), plus `proxy-*` and `host`'s HTTP/2 twins.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    matches!(
        name,
        b"connection" | b"keep-alive" | b"te" | b"trailer" | b"transfer-encoding" | b"upgrade"
    ) || name.starts_with(b"proxy-")
        || name.starts_with(b":")
}

/// An RFC 9110 token: a method, or a field name `http::HeaderName` would accept, checked without
/// building one (building it copies every name that is not a standard header into a new
/// allocation).
pub fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| TOKEN[usize::from(b)])
}

/// A token without upper-case letters: a header name as the contract asks backends to send it.
pub fn is_lower_case_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| LOWER_CASE_TOKEN[usize::from(b)])
}

/// Which bytes an RFC 9110 token may hold, one lookup per byte (a backend's header names are
/// checked on every answer).
static TOKEN: [bool; 256] = token_bytes(true);

/// [`TOKEN`] without the upper-case letters.
static LOWER_CASE_TOKEN: [bool; 256] = token_bytes(false);

/// The token bytes, with the upper-case letters or without.
const fn token_bytes(upper_case: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || (upper_case && c.is_ascii_uppercase())
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
}

/// A field value `http::HeaderValue` would accept: no control characters but tab, so it cannot
/// split the response; checked without the copy `HeaderValue::from_str` makes.
pub fn is_header_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| (b >= b' ' && b != 0x7f) || b == b'\t')
}

/// Whether a backend's response header (lower-case name) reaches the client: hop-by-hop headers
/// do not, nor does framing (the codec writes its own) or `x-request-id` (the gateway's).
pub fn forwards_response_header(name: &str) -> bool {
    !(is_hop_by_hop(name.as_bytes()) || matches!(name, "content-length" | "x-request-id"))
}

/// Maps a backend's `ForwardingResp` to the client response, refusing anything that could not be
/// written back safely (invalid status, header names or values that would split the response).
///
/// The backend's headers stay in the answer's buffer. Two rare cases copy them into the gateway's
/// own list instead: a name with upper-case letters (the contract asks for lower-case; all names
/// are then lower-cased), and a `connection` header that names other headers, which are then
/// hop-by-hop for this answer (RFC 9110 §7.6.1) and are dropped with it.
pub fn into_response(reply: Reply) -> Result<Response, GatewayError> {
    let status = match reply.status_code {
        0 => 200,
        s @ 200..=599 => s as u16,
        s => {
            return Err(GatewayError::upstream_protocol(format!(
                "backend answered status_code {s}"
            )))
        }
    };
    let invalid = |name: &str| {
        GatewayError::upstream_protocol(format!(
            "backend sent an invalid response header `{}`",
            name.escape_default()
        ))
    };
    let mut response = Response::new(status, reply.body);
    if reply.headers.are_plain() {
        // Checked when the answer was: lower-case token names, none `connection`, printable
        // values. Nothing to copy, nothing to refuse.
        response.backend_headers = reply.headers;
        return Ok(response);
    }
    // One walk checks every header under its lower-case name; only a name with upper-case letters
    // is copied to get one.
    let mut upper_case = false;
    let mut connection = false;
    for (name, value) in reply.headers.iter() {
        let name: Cow<'_, str> = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            upper_case = true;
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        connection |= name == "connection" && nominated_names([value].into_iter()).next().is_some();
        if forwards_response_header(&name)
            && !(is_token(name.as_bytes()) && is_header_value(value.as_bytes()))
        {
            return Err(invalid(&name));
        }
    }
    if upper_case || connection {
        // Checked above; written from the gateway's own list under lower-case names.
        let listed = connection_options(&reply.headers);
        for (name, value) in reply.headers.iter() {
            let name = name.to_ascii_lowercase();
            if forwards_response_header(&name) && !listed.contains(&name) {
                // Trimmed as `Response::fields` trims the values it writes from the answer.
                response.push_header(name, value.trim_matches([' ', '\t']).to_owned());
            }
        }
    } else {
        response.backend_headers = reply.headers;
    }
    Ok(response)
}

/// The header names an answer's `connection` headers nominate. A set, because the backend
/// controls how many there are.
fn connection_options(headers: &ReplyHeaders) -> HashSet<String> {
    nominated_names(
        headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
            .map(|(_, value)| value),
    )
    .collect()
}

/// The header names that `connection` header values nominate as hop-by-hop for their message
/// (RFC 9110 §7.6.1), lower-cased; `close` and `keep-alive` are options rather than names.
/// They are skipped before anything is lower-cased, so the common `Connection: keep-alive`
/// costs no allocation.
pub fn nominated_names<'a>(
    connection_values: impl Iterator<Item = &'a str> + 'a,
) -> impl Iterator<Item = String> + 'a {
    connection_values
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|option| {
            !option.is_empty()
                && !option.eq_ignore_ascii_case("close")
                && !option.eq_ignore_ascii_case("keep-alive")
        })
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ForwardingResp, Header};
    use prost::Message;

    #[test]
    fn answer_headers_are_held_to_the_limits() {
        let limits = AnswerLimits {
            max_headers: 2,
            max_header_bytes: 20,
        };
        let headers = |list: &[(&str, &str)]| {
            let resp = ForwardingResp {
                headers: list.iter().map(|(n, v)| header(n, v)).collect(),
                ..Default::default()
            };
            Reply::decode(resp.encode_to_vec().into()).unwrap().headers
        };
        // "x-a: 1234567890\r\n" is 17 bytes; "x-a: 1\r\n" 8 and "x-b: 12345\r\n" 12, exactly 20.
        assert!(limits.check(&headers(&[("x-a", "1234567890")])).is_ok());
        assert!(limits
            .check(&headers(&[("x-a", "1"), ("x-b", "12345")]))
            .is_ok());
        for over in [
            &[("x-a", "1"), ("x-b", "2"), ("x-c", "3")][..],
            &[("x-a", "1234567890"), ("x-b", "1")][..],
            &[("x-a", "12345678901234")][..],
        ] {
            let e = limits.check(&headers(over)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::UpstreamProtocol, "{over:?}");
            assert!(
                e.message
                    .starts_with("backend answer headers over the limit: "),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn a_failed_send_goes_once_more_to_its_instance_when_not_processed_then_elsewhere() {
        use Next::*;
        use Reached::*;
        // (how far it got, idempotent, already sent to this instance again) → next
        let table = [
            (NotProcessed, false, false, SendHereAgain),
            (NotProcessed, true, false, SendHereAgain),
            (NotProcessed, false, true, SendElsewhere),
            (MaybeProcessed, true, false, SendElsewhere),
            (MaybeProcessed, false, false, GiveUp),
            (Answered, true, false, GiveUp),
            (Answered, false, true, GiveUp),
        ];
        for (reached, idempotent, resent, next) in table {
            assert_eq!(
                after_failure(reached, idempotent, resent),
                next,
                "{reached:?} idempotent {idempotent} resent {resent}"
            );
        }
    }

    #[test]
    fn tried_instances_are_remembered_past_a_word() {
        let mut tried = Tried::default();
        for i in [0, 5, 63, 64, 1000] {
            assert!(!tried.contains(i), "{i}");
            tried.insert(i);
            assert!(tried.contains(i), "{i}");
        }
        assert!(!tried.contains(1) && !tried.contains(65));
        assert_eq!(tried.more, [64, 1000]);
    }

    #[test]
    fn idempotent_methods_are_rfc_9110s() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(is_idempotent(m), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "LOCK", "get"] {
            assert!(!is_idempotent(m), "{m}");
        }
    }

    fn header(n: &str, v: &str) -> Header {
        Header {
            name: n.into(),
            value: v.into(),
        }
    }

    /// What the backend's answer becomes: encoded by prost, read in place, mapped.
    fn into_response(resp: ForwardingResp) -> Result<Response, GatewayError> {
        let reply = Reply::decode(resp.encode_to_vec().into()).expect("prost's encoding");
        super::into_response(reply)
    }

    fn fields(r: &Response) -> Vec<(&str, &str)> {
        r.fields().collect()
    }

    #[test]
    fn answers_map_to_responses_in_place() {
        let r = into_response(ForwardingResp {
            status_code: 0,
            headers: vec![
                header("x-a", "1"),
                header("connection", "close"),
                header("content-length", "99"),
                header("x-a", "2"),
                header("x-request-id", "theirs"),
                header("proxy-authenticate", "x"),
            ],
            body: "hi".into(),
        })
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"hi");
        assert!(r.headers.is_empty(), "nothing copied: {:?}", r.headers);
        assert_eq!(fields(&r), [("x-a", "1"), ("x-a", "2")]);
    }

    #[test]
    fn upper_case_names_are_lowered_into_the_gateways_list() {
        let r = into_response(ForwardingResp {
            status_code: 201,
            headers: vec![
                header("X-A", "1"),
                header("Connection", "close"),
                header("x-b", "2"),
                header("X-Request-Id", "theirs"),
                header("x-s", "  v \t"),
            ],
            body: "hi".into(),
        })
        .unwrap();
        assert_eq!(r.status, 201);
        assert!(r.backend_headers.is_empty());
        // Values lose surrounding whitespace here too, as those written from the answer do.
        assert_eq!(fields(&r), [("x-a", "1"), ("x-b", "2"), ("x-s", "v")]);
    }

    #[test]
    fn dropped_headers_are_not_checked_and_the_request_id_comes_last() {
        // A hop-by-hop header is dropped before its value is looked at, as before.
        let mut r = into_response(ForwardingResp {
            status_code: 200,
            headers: vec![header("connection", "a\r\nb"), header("x-a", "1")],
            ..Default::default()
        })
        .unwrap();
        r.push_header("x-gw", "g");
        r.request_id = Some(crate::request_id::RequestId::generate(&Cell::new(7)));
        let id = r.request_id.as_ref().unwrap().as_str().to_string();
        assert_eq!(
            fields(&r),
            [("x-a", "1"), ("x-gw", "g"), ("x-request-id", id.as_str())]
        );
        assert_eq!(r.header("X-GW"), Some("g"));
    }

    #[test]
    fn headers_a_connection_header_names_are_dropped_with_it() {
        let r = into_response(ForwardingResp {
            status_code: 200,
            headers: vec![
                header("x-keep", "1"),
                header("connection", "X-Hop, close"),
                header("x-hop", "dropped"),
                header("Connection", " x-other ,"),
                header("x-other", "dropped"),
                header("x-keep", "2"),
            ],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(fields(&r), [("x-keep", "1"), ("x-keep", "2")]);
    }

    #[test]
    fn unsafe_answers_are_502() {
        for resp in [
            ForwardingResp {
                status_code: 99,
                ..Default::default()
            },
            ForwardingResp {
                status_code: 200,
                headers: vec![header("x", "a\r\nset-cookie: evil")],
                ..Default::default()
            },
            ForwardingResp {
                status_code: 200,
                headers: vec![header("bad name", "v")],
                ..Default::default()
            },
            ForwardingResp {
                status_code: 200,
                headers: vec![header("X-Upper", "a\nb")],
                ..Default::default()
            },
            ForwardingResp {
                status_code: 600,
                ..Default::default()
            },
        ] {
            assert_eq!(
                into_response(resp).unwrap_err().kind,
                ErrorKind::UpstreamProtocol
            );
        }
    }

    #[test]
    fn header_checks_agree_with_the_http_crate() {
        let names: &[&[u8]] = &[
            b"x-a",
            b"content-type",
            b"a b",
            b"",
            b"x\r\n",
            b"x:y",
            b"~!#$%&'*+-.^_`|",
            b"\xc3\xa9",
            b"a\"b",
            b"a(b",
        ];
        let every_byte: Vec<[u8; 1]> = (0..=255u8).map(|b| [b]).collect();
        for name in names
            .iter()
            .copied()
            .chain(every_byte.iter().map(|b| &b[..]))
        {
            assert_eq!(
                is_token(name),
                http::HeaderName::from_bytes(name).is_ok(),
                "{name:?}"
            );
        }
        for value in [
            "",
            "plain",
            "tab\there",
            "a\r\nb",
            "nul\0",
            "del\x7f",
            "café",
            " spaced ",
        ] {
            assert_eq!(
                is_header_value(value.as_bytes()),
                http::HeaderValue::from_str(value).is_ok(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn hop_by_hop() {
        for h in [
            "connection",
            "keep-alive",
            "te",
            "upgrade",
            "proxy-authorization",
            "transfer-encoding",
        ] {
            assert!(is_hop_by_hop(h.as_bytes()), "{h}");
        }
        for h in ["host", "accept", "content-length", "x-request-id"] {
            assert!(!is_hop_by_hop(h.as_bytes()), "{h}");
        }
    }

    #[test]
    fn client_headers_kept_for_the_backend() {
        for (name, kept) in [
            ("expect", false),
            ("connection", false),
            ("proxy-authorization", false),
            ("x-expect", true),
            ("accept", true),
            ("x-request-id", true),
        ] {
            assert_eq!(keep_header(&Field::new(name, "v")), kept, "{name}");
        }
    }
}
