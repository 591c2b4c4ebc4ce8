//! The id every response carries in `x-request-id` and every error body in `request_id`: the
//! client's own id when it sent a usable one, otherwise one made up by the shard.
//!
//! Neither kind allocates: a client's id shares the request head's buffer, a generated one is 32
//! hex digits kept inline.

use std::cell::Cell;

use bytes::Bytes;

use crate::http::Field;

/// Longest client-supplied `x-request-id` kept; longer ones are replaced by a generated id.
pub const MAX_CLIENT_ID_LEN: usize = 128;

/// Hex digits in a generated id: 128 random bits, as many as a UUID.
const GENERATED_LEN: usize = 32;

/// A request id: always visible ASCII, which [`RequestId::as_str`] relies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Kind);

/// Private, so that every id is made by [`RequestId::from_client`] or [`RequestId::generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// The client's `x-request-id`, checked by [`RequestId::from_client`].
    Client(Bytes),
    /// Made up by the gateway: hex digits.
    Generated([u8; GENERATED_LEN]),
}

impl RequestId {
    /// The client's id if it is 1 to 128 visible ASCII characters (safe to echo in a header and a
    /// log line).
    pub fn from_client(value: &Bytes) -> Option<RequestId> {
        let usable = !value.is_empty()
            && value.len() <= MAX_CLIENT_ID_LEN
            && value.iter().all(|c| c.is_ascii_graphic());
        usable.then(|| RequestId(Kind::Client(value.clone())))
    }

    /// The id for a request with `headers`: its first `x-request-id` if usable, else a fresh one.
    pub fn for_request(headers: &[Field], rng: &Cell<u64>) -> RequestId {
        headers
            .iter()
            .find(|f| f.name.as_ref() == b"x-request-id")
            .and_then(|f| RequestId::from_client(&f.value))
            .unwrap_or_else(|| RequestId::generate(rng))
    }

    /// A fresh id from the shard's generator.
    pub fn generate(rng: &Cell<u64>) -> RequestId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = [0u8; GENERATED_LEN];
        for half in id.chunks_exact_mut(16) {
            let mut bits = crate::upstream::next_random(rng);
            for digit in half.iter_mut().rev() {
                *digit = HEX[(bits & 0xf) as usize];
                bits >>= 4;
            }
        }
        RequestId(Kind::Generated(id))
    }

    /// The id as text. Read twice per request (the response header and the call), so it is not
    /// validated again each time.
    pub fn as_str(&self) -> &str {
        let bytes = match &self.0 {
            Kind::Client(b) => &b[..],
            Kind::Generated(b) => &b[..],
        };
        // SAFETY: both kinds are ASCII, so UTF-8: `from_client` admits only visible ASCII and
        // `generate` writes hex digits, and `Kind` is private to this module.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// Whether the gateway made this id up (the client sent none, or none it could use).
    pub fn is_generated(&self) -> bool {
        matches!(self.0, Kind::Generated(_))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        let ok = |s: &'static str| RequestId::from_client(&Bytes::from_static(s.as_bytes()));
        assert_eq!(ok("abc-123").unwrap().as_str(), "abc-123");
        assert!(ok("").is_none());
        assert!(ok("a b").is_none());
        assert!(ok("é").is_none());
        let long = Bytes::from("x".repeat(MAX_CLIENT_ID_LEN + 1));
        assert!(RequestId::from_client(&long).is_none());
        assert!(RequestId::from_client(&long.slice(1..)).is_some());
    }

    #[test]
    fn a_request_keeps_its_first_usable_id() {
        let rng = Cell::new(3);
        let with =
            |v: &'static str| vec![Field::new("accept", "*/*"), Field::new("x-request-id", v)];
        assert_eq!(RequestId::for_request(&with("r-1"), &rng).as_str(), "r-1");
        let bad = RequestId::for_request(&with("has space"), &rng);
        assert!(bad.is_generated(), "{bad}");
        let none = RequestId::for_request(&[], &rng);
        assert!(none.is_generated(), "{none}");
    }

    #[test]
    fn generated_ids_are_32_hex_digits_and_differ() {
        let rng = Cell::new(0x1234_5678_9abc_def1);
        let a = RequestId::generate(&rng);
        let b = RequestId::generate(&rng);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
