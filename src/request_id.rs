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

/// The id a request is served under, as [`RequestId::for_request`] chose it.
#[derive(Debug)]
pub struct Assigned {
    /// The id: the response's `x-request-id`, the call's `ForwardingReq.request_id`.
    pub id: RequestId,
    /// The request's own `x-request-id` fields are not that id alone (the client sent one the
    /// gateway could not use, or several): forwarded, they are replaced by it
    /// ([`with_request_id`]), so that the backend sees one id, the one the client is answered
    /// with, as Envoy overwrites the header with the id it uses.
    pub rewrite: bool,
}

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

    /// The id for a request with `headers`: its first `x-request-id` if usable, else a fresh one;
    /// and whether its `x-request-id` fields must be rewritten when forwarded. One walk over the
    /// headers, as far as finding the first id took, and past it only when there is one (to
    /// find a second).
    pub fn for_request(headers: &[Field], rng: &Cell<u64>) -> Assigned {
        let mut sent = headers
            .iter()
            .filter(|f| f.name.as_ref() == b"x-request-id");
        match sent
            .next()
            .map(|first| RequestId::from_client(&first.value))
        {
            None => Assigned {
                id: RequestId::generate(rng),
                rewrite: false,
            },
            Some(Some(id)) => Assigned {
                id,
                rewrite: sent.next().is_some(),
            },
            Some(None) => Assigned {
                id: RequestId::generate(rng),
                rewrite: true,
            },
        }
    }

    /// The client's id among `headers` (names lower-case): the first `x-request-id`, if usable.
    pub fn sent_in(headers: &[Field]) -> Option<RequestId> {
        headers
            .iter()
            .find(|f| f.name.as_ref() == b"x-request-id")
            .and_then(|f| RequestId::from_client(&f.value))
    }

    /// A fresh id from the shard's generator.
    pub fn generate(rng: &Cell<u64>) -> RequestId {
        let mut id = [0u8; GENERATED_LEN];
        for half in id.chunks_exact_mut(16) {
            let bits = crate::upstream::next_random(rng);
            half[..8].copy_from_slice(&hex_digits((bits >> 32) as u32));
            half[8..].copy_from_slice(&hex_digits(bits as u32));
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

    /// The id as a header value: the client's shares its buffer, a generated one is copied.
    fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Kind::Client(b) => b.clone(),
            Kind::Generated(b) => Bytes::copy_from_slice(b),
        }
    }
}

/// `headers` as a request served under `id` forwards them: its `x-request-id` fields replaced by
/// one carrying `id`, where the first of them was (see [`Assigned::rewrite`]). Allocates (a list,
/// and a generated id's bytes), which only such a request pays for.
pub fn with_request_id(headers: &[Field], id: &RequestId) -> Vec<Field> {
    let mut placed = false;
    headers
        .iter()
        .filter_map(|f| {
            if f.name.as_ref() != b"x-request-id" {
                return Some(f.clone());
            }
            (!std::mem::replace(&mut placed, true)).then(|| Field {
                name: f.name.clone(),
                value: id.to_bytes(),
            })
        })
        .collect()
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `n` as eight lower-case hex digits, most significant first, computed eight at a time in one
/// word: each nibble is spread into its own byte, then offset to its ASCII digit (a digit-at-a-time
/// loop cost ~200 instructions per generated id, which most requests need: clients rarely send one).
fn hex_digits(n: u32) -> [u8; 8] {
    const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut x = u64::from(n);
    // Halves, quarters, then nibbles move apart until nibble i is alone in byte i.
    x = (x | x << 16) & 0x0000_ffff_0000_ffff;
    x = (x | x << 8) & 0x00ff_00ff_00ff_00ff;
    x = (x | x << 4) & LOW_NIBBLES;
    // 1 in the bytes holding 10..=15: adding 6 carries them into bit 4.
    let letters = ((x + 6 * ONES) >> 4) & ONES;
    // '0' + v for a digit, 'a' + (v - 10) = '0' + v + 39 for a letter; no byte overflows.
    let ascii = x + u64::from(b'0') * ONES + letters * u64::from(b'a' - b'0' - 10);
    ascii.to_be_bytes()
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
        let kept = RequestId::for_request(&with("r-1"), &rng);
        assert_eq!((kept.id.as_str(), kept.rewrite), ("r-1", false));
        let bad = RequestId::for_request(&with("has space"), &rng);
        assert!(bad.id.is_generated() && bad.rewrite, "{bad:?}");
        let none = RequestId::for_request(&[], &rng);
        assert!(none.id.is_generated() && !none.rewrite, "{none:?}");
        // Several: the first is used if it can be, and the others must not reach the backend.
        let mut two = with("r-1");
        two.push(Field::new("x-request-id", "r-2"));
        let first = RequestId::for_request(&two, &rng);
        assert_eq!((first.id.as_str(), first.rewrite), ("r-1", true));
        two[1].value = Bytes::from_static(b"bad id");
        let second = RequestId::for_request(&two, &rng);
        assert!(second.id.is_generated() && second.rewrite, "{second:?}");
    }

    #[test]
    fn forwarded_headers_carry_the_id_in_use_once_where_the_first_was() {
        let rng = Cell::new(5);
        let headers = vec![
            Field::new("accept", "*/*"),
            Field::new("x-request-id", "bad id"),
            Field::new("x-other", "1"),
            Field::new("x-request-id", "r-2"),
        ];
        let assigned = RequestId::for_request(&headers, &rng);
        let forwarded = with_request_id(&headers, &assigned.id);
        let pairs: Vec<_> = forwarded
            .iter()
            .map(|f| (f.name_str(), f.value_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("accept", "*/*"),
                ("x-request-id", assigned.id.as_str()),
                ("x-other", "1"),
            ]
        );
    }

    #[test]
    fn hex_digits_match_format() {
        let mut n: u32 = 0x9e37_79b9;
        for edge in [
            0,
            9,
            10,
            15,
            16,
            0x0a0a_0a0a,
            0x9999_9999,
            0xdead_beef,
            u32::MAX,
        ] {
            assert_eq!(
                hex_digits(edge),
                format!("{edge:08x}").as_bytes(),
                "{edge:#x}"
            );
        }
        for _ in 0..10_000 {
            n = n.wrapping_mul(0x0019_660d).wrapping_add(0x3c6e_f35f);
            assert_eq!(hex_digits(n), format!("{n:08x}").as_bytes(), "{n:#x}");
        }
    }

    #[test]
    fn generated_ids_are_32_hex_digits_and_differ() {
        let rng = Cell::new(0x1234_5678_9abc_def1);
        let a = RequestId::generate(&rng);
        let b = RequestId::generate(&rng);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        // Each random word, most significant digit first.
        let rng = Cell::new(0x1234_5678_9abc_def1);
        let words = [0, 1].map(|_| crate::upstream::next_random(&rng));
        assert_eq!(a.as_str(), format!("{:016x}{:016x}", words[0], words[1]));
    }
}
