//! Validated identities: a [`ServiceName`], an [`InstanceId`] or an [`Address`] that exists has
//! been checked once, at construction, against the contract's rules; after that the type is the proof.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why a name or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidName(pub String);

/// Characters of a refused name or address that its error quotes: twice the longest valid one,
/// enough to see what was meant. A name from a Kafka record can be as long as the record (a
/// megabyte), and its error goes to the log line by line.
const QUOTED_CHARS: usize = 2 * Address::MAX_LEN;

/// `text` as an error message quotes it: escaped, and cut after [`QUOTED_CHARS`] characters with
/// a note of how long it was.
pub fn quoted(text: &str) -> String {
    let mut escaped = text.escape_debug();
    let mut shown: String = escaped.by_ref().take(QUOTED_CHARS).collect();
    if escaped.next().is_some() {
        shown.push_str(&format!("… ({} bytes)", text.len()));
    }
    shown
}

/// `text` on one line: line breaks and other control characters escaped as Rust writes them, so
/// that a value quoted in a message (from an option, a file, a record) cannot split it.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A service name: a DNS label (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`), never `graphql`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(Arc<str>);

impl ServiceName {
    /// Longest DNS label.
    pub const MAX_LEN: usize = 63;

    /// Validates `name`.
    pub fn parse(name: &str) -> Result<ServiceName, InvalidName> {
        if !is_service_name(name) {
            return Err(InvalidName(format!(
                "service name `{}` is not a DNS label (lower-case letters, digits and inner '-', 1 to 63 characters)",
                quoted(name)
            )));
        }
        if name == "graphql" {
            return Err(InvalidName("service name `graphql` is reserved".into()));
        }
        Ok(ServiceName(name.into()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True when `name` is a DNS label (the reserved names are checked by [`ServiceName::parse`]).
pub fn is_service_name(name: &str) -> bool {
    let b = name.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= ServiceName::MAX_LEN
        && ok(&b[0])
        && ok(&b[b.len() - 1])
        && b.iter().all(|c| ok(c) || *c == b'-')
}

impl std::borrow::Borrow<str> for ServiceName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An instance name: `^[A-Za-z0-9._-]{1,128}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(Arc<str>);

impl InstanceId {
    /// Longest instance name.
    pub const MAX_LEN: usize = 128;

    /// Validates `id`.
    pub fn parse(id: &str) -> Result<InstanceId, InvalidName> {
        let ok = !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
        if !ok {
            return Err(InvalidName(format!(
                "instance name `{}` must be 1 to 128 characters of A-Z a-z 0-9 . _ -",
                quoted(id)
            )));
        }
        Ok(InstanceId(id.into()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A backend address as registered (`host:port`), with the socket addresses it resolved to.
///
/// Resolution happens once, when the registration is applied by the registry owner (off the request
/// path), so that a request never waits for DNS. A host name that does not resolve (yet) is still
/// accepted — every gateway of a cluster must accept the same events — and the instance counts as
/// unhealthy until it is registered again.
///
/// A name keeps every address it resolves to, in the resolver's order (glibc sorts them by RFC
/// 6724: `localhost` with the Debian, Docker and Kubernetes `/etc/hosts` is `[::1]` first, then
/// 127.0.0.1), at most [`MAX_SOCKETS`]. They are ways to reach one instance, not instances: the
/// pool connects to them in turn, the next one when a connection attempt fails, as nginx, Envoy
/// and gRPC's `pick_first` do ([`crate::upstream::pool`]). Keeping only the first made a backend
/// listening on 127.0.0.1 and registered as `localhost:PORT` unreachable where `::1` came first,
/// and the service was removed for refusing.
///
/// Two addresses are equal when their text and their socket addresses are. A shard looks up its
/// connection pool by address up to three times a call, with a clone of the registry's address as
/// the map's key, so both costs are paid once, not per lookup: the hash is the text's, computed
/// when the address is made (equal addresses have equal text), and a clone compares equal to its
/// original on its pointers, before any content is compared (`Arc`'s own equality compares the
/// contents of a `str` or a slice every time). Keyed by the text and the sockets as compared, the
/// saturated tiny GET cost ~240 instructions more than when pools were keyed by one socket address.
#[derive(Debug, Clone)]
pub struct Address {
    text: Arc<str>,
    sockets: Arc<[SocketAddr]>,
    /// `text`'s hash, computed once.
    text_hash: u64,
}

impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
            && (Arc::ptr_eq(&self.sockets, &other.sockets) || self.sockets == other.sockets)
    }
}

impl Eq for Address {}

impl std::hash::Hash for Address {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.text_hash);
    }
}

/// Most socket addresses kept for one host name. A name stands for one instance, and its
/// addresses are alternative ways to reach it (a dual-stack host's IPv6 and IPv4 addresses, a few
/// A records); each one that does not answer can cost a connect timeout before the next is tried,
/// so a long list would hold a call on dead addresses for seconds. glibc answers two for a
/// dual-stack `localhost`; eight leaves room for a host with several interfaces.
pub const MAX_SOCKETS: usize = 8;

impl Address {
    /// Longest `host:port` accepted: a DNS name (253) plus a port.
    pub const MAX_LEN: usize = 260;

    /// Checks the `host:port` syntax without resolving the host (cheap; safe on a shard).
    pub fn check(text: &str) -> Result<(&str, u16), InvalidName> {
        let bad = |why: &str| InvalidName(format!("address `{}` {why}", quoted(text)));
        if text.is_empty() || text.len() > Self::MAX_LEN {
            return Err(bad("must be host:port"));
        }
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| bad("must be host:port"))?;
        let port: u16 = match port.parse() {
            Ok(p) if p > 0 && port.bytes().all(|c| c.is_ascii_digit()) => p,
            _ => return Err(bad("has no valid port (1-65535)")),
        };
        let no_host = || bad("has no valid host (an IPv4 address, [IPv6 address] or DNS name)");
        let host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            v6.parse::<std::net::Ipv6Addr>().map_err(|_| no_host())?;
            v6
        } else if host.parse::<Ipv4Addr>().is_ok() || is_dns_name(host) {
            host
        } else {
            return Err(no_host());
        };
        Ok((host, port))
    }

    /// Validates `host:port` and resolves it (DNS for names: call off the request path). A name
    /// the resolver has not answered for within [`RESOLVE_WAIT`] counts as not resolving.
    pub fn parse(text: &str) -> Result<Address, InvalidName> {
        Self::parse_with(text, |host, port| {
            resolve_within(host, port, RESOLVE_WAIT, |host, port| {
                (host.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect)
                    .unwrap_or_default()
            })
        })
    }

    /// [`parse`](Self::parse) with the resolver given (tests resolve without DNS): it answers
    /// the host's socket addresses in the order to try them, none when it does not resolve.
    fn parse_with(
        text: &str,
        resolve: impl FnOnce(&str, u16) -> Vec<SocketAddr>,
    ) -> Result<Address, InvalidName> {
        use std::hash::BuildHasher;
        let (host, port) = Self::check(text)?;
        Ok(Address {
            text: text.into(),
            sockets: distinct_first(resolve(host, port), MAX_SOCKETS).into(),
            text_hash: rustc_hash::FxBuildHasher.hash_one(text),
        })
    }

    /// The address as registered: what the pool sends as `:authority`, as a gRPC client sends
    /// its target as given, so that name-based virtual hosts in front of a backend route it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The socket addresses it resolved to, in the order to try them (none when the host name
    /// did not resolve).
    pub fn sockets(&self) -> &[SocketAddr] {
        &self.sockets
    }

    /// Whether the host resolved to at least one socket address.
    pub fn is_resolved(&self) -> bool {
        !self.sockets.is_empty()
    }

    /// `text` as if its host had resolved to `sockets` (tests of what uses addresses).
    #[cfg(test)]
    pub(crate) fn resolved_as(text: &str, sockets: Vec<SocketAddr>) -> Address {
        Self::parse_with(text, |_, _| sockets).expect("a valid host:port")
    }
}

/// The first `max` distinct addresses of `addrs`, in their order: glibc answers a name listed
/// twice in `/etc/hosts` twice, and a repeat would only be tried again after it failed.
fn distinct_first(addrs: Vec<SocketAddr>, max: usize) -> Vec<SocketAddr> {
    let mut kept: Vec<SocketAddr> = Vec::with_capacity(addrs.len().min(max));
    for addr in addrs {
        if kept.len() == max {
            break;
        }
        if !kept.contains(&addr) {
            kept.push(addr);
        }
    }
    kept
}

/// Longest a registration waits for its host name to resolve. The registry applies writes one at
/// a time, so a resolver that does not answer would hold every other write behind it (for the
/// resolver's own timeout, 5 s per try by default); a name it has not resolved by then is taken
/// as not resolving (accepted, unhealthy until registered again), as one that does not exist.
pub const RESOLVE_WAIT: Duration = Duration::from_secs(1);
/// Look-ups still running at once, most of them ones whose wait ran out: beyond this many no new
/// one starts (the name counts as not resolving), so a dead resolver cannot pile up threads.
const MAX_LOOKUPS: usize = 4;
/// Look-ups running now.
static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

/// Resolves `host:port` with `lookup` on a thread of its own, waiting at most `wait` for it. An IP
/// address needs no look-up and no thread.
fn resolve_within(
    host: &str,
    port: u16,
    wait: Duration,
    lookup: impl FnOnce(String, u16) -> Vec<SocketAddr> + Send + 'static,
) -> Vec<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![SocketAddr::new(ip, port)];
    }
    if LOOKUPS.fetch_add(1, Ordering::AcqRel) >= MAX_LOOKUPS {
        LOOKUPS.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!(
            host,
            "too many host name look-ups outstanding; taken as not resolving"
        );
        return Vec::new();
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let host_owned = host.to_owned();
    let spawned = std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let found = lookup(host_owned, port);
            LOOKUPS.fetch_sub(1, Ordering::AcqRel);
            let _ = tx.send(found);
        });
    if spawned.is_err() {
        LOOKUPS.fetch_sub(1, Ordering::AcqRel);
        return Vec::new();
    }
    rx.recv_timeout(wait).unwrap_or_else(|_| {
        tracing::warn!(
            host,
            "host name did not resolve within {wait:?}; taken as not resolving"
        );
        Vec::new()
    })
}

/// Longest DNS name in text form, without the trailing dot (RFC 1035 §2.3.4: 255 octets on the wire).
const MAX_DNS_NAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_DNS_LABEL_LEN: usize = 63;

/// True when `host` is a DNS host name (RFC 1123 §2.1): dot-separated labels of 1 to 63 letters,
/// digits and inner hyphens, 253 characters at most, optionally with a trailing dot; and not one
/// whose last label is a number. Resolvers (`inet_aton`, URL parsers) read such a name as an IPv4
/// address in some legacy form (`1.2.3` is 1.2.0.3, `0x7f.1` is 127.0.0.1), and no top-level
/// domain is numeric, so only a real dotted quad (checked by the caller) may end in a number.
fn is_dns_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > MAX_DNS_NAME_LEN {
        return false;
    }
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= MAX_DNS_LABEL_LEN
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    let last = name.rsplit('.').next().unwrap_or_default();
    let numeric = last.bytes().all(|c| c.is_ascii_digit())
        || last
            .strip_prefix("0x")
            .or_else(|| last.strip_prefix("0X"))
            .is_some_and(|hex| hex.bytes().all(|c| c.is_ascii_hexdigit()));
    !numeric && name.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_follow_dns_labels() {
        for ok in ["a", "users", "user-svc", "a1", &"a".repeat(63)] {
            assert!(ServiceName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Users",
            "a_b",
            "a.b",
            &"a".repeat(64),
            "graphql",
            "ü",
        ] {
            assert!(ServiceName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_quote_the_name_as_written_but_for_control_characters() {
        let message = |r: Result<(&str, u16), InvalidName>| r.unwrap_err().0;
        assert_eq!(
            message(Address::check("é.com:80")),
            "address `é.com:80` has no valid host (an IPv4 address, [IPv6 address] or DNS name)"
        );
        assert!(message(Address::check("a\u{1b}[31m:80")).contains("a\\u{1b}[31m:80"));
        let service = ServiceName::parse("ü\n").unwrap_err().0;
        assert!(service.starts_with("service name `ü\\n`"), "{service}");
    }

    #[test]
    fn refusals_quote_a_long_name_cut_with_its_length() {
        // A Kafka record can carry a name as long as the record; its error goes to the log.
        let long = "X".repeat(1 << 20);
        for message in [
            ServiceName::parse(&long).unwrap_err().0,
            InstanceId::parse(&long).unwrap_err().0,
            Address::check(&long).unwrap_err().0,
        ] {
            assert!(message.len() < 2 * QUOTED_CHARS, "{} bytes", message.len());
            let shown = format!("`{}… (1048576 bytes)`", "X".repeat(QUOTED_CHARS));
            assert!(message.contains(&shown), "{}", &message[..100]);
        }
        // Escapes count as what they show; a name just within the cut is quoted whole.
        assert_eq!(
            quoted(&"\n".repeat(QUOTED_CHARS / 2)),
            "\\n".repeat(QUOTED_CHARS / 2)
        );
        assert_eq!(quoted("a\n"), "a\\n");
    }

    #[test]
    fn instance_names() {
        assert!(InstanceId::parse("u1.A_b-c").is_ok());
        assert!(InstanceId::parse(&"x".repeat(128)).is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(129)] {
            assert!(InstanceId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_look_up_that_does_not_answer_in_time_counts_as_not_resolving() {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let found = resolve_within(
            "slow.example",
            80,
            Duration::from_millis(50),
            move |_, _| {
                let _ = held.recv(); // a resolver that answers only when the test says so
                vec!["127.0.0.1:80".parse().unwrap()]
            },
        );
        assert_eq!(found, []);
        drop(release);
        let quick = resolve_within(
            "quick.example",
            81,
            Duration::from_secs(10),
            |host, port| {
                assert_eq!((host.as_str(), port), ("quick.example", 81));
                vec!["127.0.0.2:81".parse().unwrap()]
            },
        );
        assert_eq!(quick, ["127.0.0.2:81".parse().unwrap()]);
        // An address needs no look-up at all.
        let ip = resolve_within("::1", 82, Duration::ZERO, |_, _| unreachable!("no look-up"));
        assert_eq!(ip, ["[::1]:82".parse().unwrap()]);
    }

    #[test]
    fn addresses() {
        let a = Address::parse("127.0.0.1:50051").unwrap();
        assert_eq!(a.sockets(), ["127.0.0.1:50051".parse().unwrap()]);
        // A name that does not resolve is accepted, unresolved (resolved here without DNS: tests
        // send nothing beyond the loopback interface).
        let unresolved = Address::parse_with("no-such-host.invalid:80", |host, port| {
            assert_eq!((host, port), ("no-such-host.invalid", 80));
            Vec::new()
        })
        .unwrap();
        assert_eq!(unresolved.sockets(), []);
        assert!(!unresolved.is_resolved());
        assert_eq!(a.as_str(), "127.0.0.1:50051");
        assert!(Address::parse("localhost:80").unwrap().is_resolved());
        assert!(Address::parse("[::1]:80").is_ok());
        for bad in ["nohost", "h:99999", "h:0", ":80", "h:", "a b:80", "h:+80"] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_name_keeps_every_address_it_resolves_to_in_order() {
        // As glibc answers `localhost` with the Debian/Docker/Kubernetes /etc/hosts: [::1] first.
        let v6: SocketAddr = "[::1]:7000".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let a = Address::parse_with("localhost:7000", |_, _| vec![v6, v4, v6]).unwrap();
        assert_eq!(a.sockets(), [v6, v4], "in order, a repeat once");
        assert_eq!(a.as_str(), "localhost:7000");
        // A long answer is cut after `MAX_SOCKETS`, the first ones kept.
        let many: Vec<SocketAddr> = (1..=20)
            .map(|i| SocketAddr::new(Ipv4Addr::new(10, 0, 0, i).into(), 80))
            .collect();
        let a = Address::parse_with("many.example:80", |_, _| many.clone()).unwrap();
        assert_eq!(a.sockets(), &many[..MAX_SOCKETS]);
    }

    #[test]
    fn addresses_hash_by_their_text_and_differ_by_their_sockets() {
        use std::hash::{BuildHasher, RandomState};
        let v4: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let v6: SocketAddr = "[::1]:7000".parse().unwrap();
        let one = Address::parse_with("localhost:7000", |_, _| vec![v4]).unwrap();
        let both = Address::parse_with("localhost:7000", |_, _| vec![v6, v4]).unwrap();
        // Resolved differently (the name moved): another address, with the same hash.
        assert_ne!(one, both);
        let hasher = RandomState::new();
        assert_eq!(hasher.hash_one(&one), hasher.hash_one(&both));
        // Parsed twice (contents compared) or cloned (pointers compared): the same address.
        assert_eq!(
            one,
            Address::parse_with("localhost:7000", |_, _| vec![v4]).unwrap()
        );
        assert_eq!(one, one.clone());
        // Another text is another address, whatever it resolved to.
        let other = Address::parse_with("127.0.0.1:7000", |_, _| vec![v4]).unwrap();
        assert_ne!(one, other);
        assert_ne!(hasher.hash_one(&one), hasher.hash_one(&other));
    }

    #[test]
    fn address_hosts_are_ipv4_ipv6_or_dns_names() {
        let label = "l".repeat(MAX_DNS_LABEL_LEN);
        // 4 labels of 63 plus 3 dots: 255 characters, two over the limit; drop two from the last.
        let longest = format!("{label}.{label}.{label}.{}", &label[2..]);
        assert_eq!(longest.len(), MAX_DNS_NAME_LEN);
        let longest_dot = format!("{longest}.");
        for host in [
            "10.0.0.5",
            "255.255.255.255",
            "[::1]",
            "[fe80::1]",
            "localhost",
            "backend.internal",
            "Backend-1.EXAMPLE.com",
            "example.com.",
            "a1.b2",
            "1a",
            "123.example.com",
            "x.0x1g",
            label.as_str(),
            longest.as_str(),
            longest_dot.as_str(),
        ] {
            let text = format!("{host}:80");
            assert!(Address::check(&text).is_ok(), "{text}");
        }
        let too_long_label = "l".repeat(MAX_DNS_LABEL_LEN + 1);
        let too_long = format!("a{longest}");
        for host in [
            "a..b",
            "-bad-",
            "-a.b",
            "a-.b",
            "a.-b",
            ".a",
            ".",
            "..",
            "exa_mple.com",
            "host name",
            "::1",
            "",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.4.",
            "123",
            "0x7f000001",
            "0x7f.1",
            "a.1",
            "[1.2.3.4]",
            "[::1",
            "ü.example",
            too_long_label.as_str(),
            too_long.as_str(),
        ] {
            let text = format!("{host}:80");
            assert!(Address::check(&text).is_err(), "{text}");
        }
    }
}
