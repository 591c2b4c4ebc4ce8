//! REST routing (contract §2): `ANY /{service}/{rest…}?{query}` becomes a `ForwardingReq` for one
//! instance of `{service}`, and its answer the response.

use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::error::GatewayError;
use crate::http::{Field, Request, Response};
use crate::names::is_service_name;
use crate::registry::view::ServiceEntry;
use crate::registry::WriteOp;
use crate::request_id::Assigned;
use crate::shard::{InFlight, Shard};
use crate::upstream::budget::AnswerHold;
use crate::upstream::codec::ForwardingParts;

/// Splits `/{service}/{rest}` into the service segment and the path below it (`/` when empty).
/// Borrowed: both parts are only read while the call is encoded (as `Bytes` slices they cost an
/// atomic reference count up and down each, three per request).
pub fn split_path(path: &[u8]) -> (&[u8], &[u8]) {
    let after = path.get(1..).unwrap_or_default();
    match after.iter().position(|&c| c == b'/') {
        Some(i) => after.split_at(i),
        None => (after, b"/"),
    }
}

/// The service a path names, when the first segment could be one (for error bodies): a DNS
/// label, but not the reserved `graphql`, which is the GraphQL endpoint's path and no service's.
pub fn service_of(path: &str) -> Option<&str> {
    let first = path.strip_prefix('/')?.split('/').next()?;
    (is_service_name(first) && first != "graphql").then_some(first)
}

/// The registered service named by `service`, the first segment of a REST path; 404 when there is
/// none ([`unknown_service`]).
pub fn lookup(shard: &Shard, service: &[u8]) -> Result<Rc<ServiceEntry>, GatewayError> {
    let name = crate::utf8::text(service).unwrap_or_default();
    shard
        .registry
        .borrow()
        .get(name)
        .cloned()
        .ok_or_else(|| unknown_service(shard, name))
}

/// The answer to a request for `name`, which the shard's registry copy does not hold: 404, or,
/// while the registry has not caught up with the cluster log (a cluster gateway starting, or one
/// that cannot reach its brokers), 503 `REGISTRY_UNAVAILABLE` with `retry-after`, since the service
/// may well be registered. Read only on a miss, so a routed request pays nothing for it.
pub fn unknown_service(shard: &Shard, name: &str) -> GatewayError {
    if shard.process.ready.load(Ordering::Relaxed) {
        GatewayError::service_not_found(name)
    } else {
        GatewayError::service_not_loaded(name)
    }
}

/// A client address as `ip:port` text, formatted on the stack: `SocketAddr::to_string` would
/// allocate a `String` for every request, and `write!` through `core::fmt` cost ~700 instructions
/// for an IPv4 address, so that common case is written digit by digit.
pub struct RemoteAddr {
    text: [u8; RemoteAddr::CAPACITY],
    len: usize,
}

impl RemoteAddr {
    /// Room for the longest `ip:port`: `[IPv6%scope]:port` is at most 58 characters.
    const CAPACITY: usize = 64;

    /// Formats `addr`.
    pub fn new(addr: std::net::SocketAddr) -> RemoteAddr {
        let mut remote = RemoteAddr {
            text: [0u8; Self::CAPACITY],
            len: 0,
        };
        match addr {
            std::net::SocketAddr::V4(v4) => {
                let [a, b, c, d] = v4.ip().octets();
                remote.push_octet(a);
                for octet in [b, c, d] {
                    remote.push_byte(b'.');
                    remote.push_octet(octet);
                }
                remote.push_byte(b':');
                remote.push_decimal(v4.port());
            }
            std::net::SocketAddr::V6(_) => {
                use std::io::Write;
                let mut cursor = std::io::Cursor::new(&mut remote.text[..]);
                // Cannot fail: the longest socket address fits the capacity.
                let _ = write!(cursor, "{addr}");
                remote.len = cursor.position() as usize;
            }
        }
        remote
    }

    // An IPv4 `ip:port` is at most 21 bytes, well within the capacity. Each byte is stored in
    // place: itoa's buffer and a `copy_from_slice` per number (a `memcpy` call each) cost ~280
    // instructions per request, formatted afresh for every request on the connection; a division
    // per digit still cost ~240, so an octet's digits come from a table (~60 with it).

    /// Appends `octet` in decimal.
    fn push_octet(&mut self, octet: u8) {
        let [digits @ .., count] = OCTET_TEXT[usize::from(octet)];
        self.text[self.len..self.len + 3].copy_from_slice(&digits);
        self.len += usize::from(count);
    }

    /// Appends `b`.
    fn push_byte(&mut self, b: u8) {
        self.text[self.len] = b;
        self.len += 1;
    }

    /// Appends `n` in decimal.
    fn push_decimal(&mut self, n: u16) {
        let digits = match n {
            0..=9 => 1,
            10..=99 => 2,
            100..=999 => 3,
            1000..=9999 => 4,
            _ => 5,
        };
        let end = self.len + digits;
        let mut n = n;
        for slot in self.text[self.len..end].iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.len = end;
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: `text[..len]` holds only what `new` wrote: digits, '.', ':' and the ASCII of a
        // `SocketAddrV6`'s `Display` (hex digits, ':', '[', ']', '%', '.'). Not re-checked per
        // request (~90 instructions).
        unsafe { std::str::from_utf8_unchecked(&self.text[..self.len]) }
    }
}

/// Each octet value's decimal digits (left-aligned in three bytes) and their count: an IPv4
/// address is written with a load and a store per octet.
static OCTET_TEXT: [[u8; 4]; 256] = octet_text();

const fn octet_text() -> [[u8; 4]; 256] {
    let mut table = [[0u8; 4]; 256];
    let mut n = 0;
    while n < 256 {
        let (hundreds, tens, ones) = ((n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8);
        table[n] = match n {
            0..=9 => [b'0' + ones, 0, 0, 1],
            10..=99 => [b'0' + tens, b'0' + ones, 0, 2],
            _ => [b'0' + hundreds, b'0' + tens, b'0' + ones, 3],
        };
        n += 1;
    }
    table
}

/// Where a REST request goes, as [`crate::router::route`] found it from the head. (Not the path
/// below the service prefix: [`forward`] splits it off again, a scan to the second `/`, since 16
/// bytes more in a call's state took the box a connection answers in past the allocator's 2 KiB
/// bin.)
pub struct Target {
    /// The service its path names.
    pub entry: Rc<ServiceEntry>,
    /// Its in-flight slot, taken once the service was found (404 before 503), held until the
    /// answer is in.
    pub in_flight: InFlight,
}

/// Forwards `request`, which arrived at `start`, to its `target` under the id `assigned` to it;
/// `hold` takes the answer's share of an HTTP/2 connection's budget.
/// (Not an `async fn`, which would hold each argument twice: the target moves in once.)
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn holds its arguments twice"
)]
pub fn forward<'a>(
    shard: &'a Rc<Shard>,
    request: &'a Request,
    target: Target,
    assigned: &'a Assigned,
    start: Instant,
    hold: Option<&'a AnswerHold>,
) -> impl Future<Output = Result<Response, GatewayError>> + 'a {
    async move {
        // The target's fields are used where they are (bound to locals, they were held twice).
        let remote = RemoteAddr::new(request.remote);
        let nominated = without_nominated_headers(&request.headers);
        let headers = nominated.as_deref().unwrap_or(&request.headers);
        // A client id the gateway could not use, or several, would reach the backend beside
        // the id in use: replaced (the only case that copies the list for it).
        let rewritten = assigned
            .rewrite
            .then(|| crate::request_id::with_request_id(headers, &assigned.id));
        let parts = ForwardingParts {
            method: request.method.as_str(),
            path: split_path(&request.path).1,
            query: &request.query,
            headers: rewritten.as_deref().unwrap_or(headers),
            extra_headers: &[],
            body: &request.body,
            service: target.entry.name.as_str(),
            request_id: assigned.id.as_str(),
            remote_addr: remote.as_str(),
            graphql_field: "",
        };
        let answer = call_service(shard, &target.entry, &parts, start, hold).await;
        // The slot is given back once the call is over. (The block captures only the fields it
        // names: a slot it did not name was freed as soon as the call was made.)
        drop(target.in_flight);
        answer
    }
}

/// Headers a `Connection` header nominates as hop-by-hop (RFC 9110 §7.6.1) are not forwarded either.
/// Returns the headers without them, or `None` (no copy) in the usual case where none is nominated.
pub fn without_nominated_headers(headers: &[Field]) -> Option<Vec<Field>> {
    let nominated: Vec<String> = crate::upstream::nominated_names(
        headers
            .iter()
            .filter(|h| h.name.as_ref() == b"connection")
            .map(Field::value_str),
    )
    .collect();
    if nominated.is_empty() {
        return None;
    }
    Some(
        headers
            .iter()
            .filter(|h| !nominated.iter().any(|n| n.as_bytes() == h.name.as_ref()))
            .cloned()
            .collect(),
    )
}

/// Calls one service (REST and GraphQL alike): counts the call, and when every instance refused the
/// connection has the service removed from the registry. The call's deadline counts from `start`;
/// `hold` takes the answer's share of an HTTP/2 connection's budget.
pub async fn call_service(
    shard: &Rc<Shard>,
    entry: &ServiceEntry,
    parts: &ForwardingParts<'_>,
    start: Instant,
    hold: Option<&AnswerHold>,
) -> Result<Response, GatewayError> {
    let settings = shard.config.service(entry.name.as_str());
    shard.metrics.upstream_calls.inc();
    match shard
        .upstream
        .forward(entry, parts, settings, &shard.rng, start, hold)
        .await
    {
        Ok(response) => Ok(response),
        Err(unreachable) => {
            shard.metrics.upstream_failures.inc();
            if unreachable.all_refused {
                // The registry owner removes it once (and logs and counts that), however many
                // requests saw the refusals and ask at the same time.
                shard.registry_client.submit(WriteOp::RemoveRefused {
                    service: entry.name.clone(),
                    instances: entry
                        .instances
                        .iter()
                        .map(|i| (i.id.clone(), i.address.as_str().to_string()))
                        .collect(),
                });
            }
            Err(unreachable.error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_rest() {
        let split = |p: &'static str| {
            let (s, r) = split_path(p.as_bytes());
            (
                String::from_utf8(s.to_vec()).unwrap(),
                String::from_utf8(r.to_vec()).unwrap(),
            )
        };
        assert_eq!(split("/users"), ("users".into(), "/".into()));
        assert_eq!(split("/users/"), ("users".into(), "/".into()));
        assert_eq!(split("/users/a/b%20c"), ("users".into(), "/a/b%20c".into()));
        assert_eq!(split("/"), ("".into(), "/".into()));
        assert_eq!(service_of("/users/1"), Some("users"));
        assert_eq!(service_of("/Users/1"), None);
        // The GraphQL endpoint's path names no service: `graphql` is reserved.
        assert_eq!(service_of("/graphql"), None);
        assert_eq!(service_of("/graphqlx/1"), Some("graphqlx"));
    }

    #[test]
    fn connection_nominated_headers_are_dropped() {
        let headers = vec![
            Field::new("connection", "keep-alive, X-Private"),
            Field::new("x-private", "1"),
            Field::new("x-public", "2"),
        ];
        let kept = without_nominated_headers(&headers).unwrap();
        let names: Vec<_> = kept.iter().map(Field::name_str).collect();
        assert_eq!(names, ["connection", "x-public"]);
        assert!(without_nominated_headers(&headers[1..]).is_none());
    }

    #[test]
    fn connection_options_nominate_nothing_in_any_case() {
        let options = [Field::new("connection", " Keep-Alive ,CLOSE, , close")];
        assert!(without_nominated_headers(&options).is_none());
        let names: Vec<String> =
            crate::upstream::nominated_names(["Close, X-Private ,KEEP-ALIVE"].into_iter())
                .collect();
        assert_eq!(names, ["x-private"]);
    }

    #[test]
    fn remote_addresses_format_like_to_string() {
        for addr in [
            "127.0.0.1:5",
            "0.0.0.0:0",
            "10.200.3.40:8080",
            "255.255.255.255:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535",
            "[::1]:8080",
        ] {
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            assert_eq!(RemoteAddr::new(addr).as_str(), addr.to_string());
        }
        // Every octet value in every position, and ports of every width.
        for n in 0..=255u8 {
            for (i, port) in [0u16, 9, 10, 99, 100, 999, 1000, 9999, 10000, 65535]
                .into_iter()
                .enumerate()
            {
                let mut octets = [1, 22, 133, 4];
                octets[i % 4] = n;
                let addr = std::net::SocketAddr::from((octets, port));
                assert_eq!(RemoteAddr::new(addr).as_str(), addr.to_string());
            }
        }
    }
}
