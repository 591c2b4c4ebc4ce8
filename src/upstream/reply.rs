//! A backend's `ForwardingResp`, read in place.
//!
//! The answer arrives as one `Bytes` (the gRPC message). [`Reply::decode`] checks the whole
//! message once, as prost would (wire format, field types, UTF-8 of the `string` fields; unknown
//! fields are skipped, a repeated scalar field keeps its last value), and keeps it: the body is a
//! slice of the same buffer and [`ReplyHeaders`] walks the encoded headers again when the response
//! is written (only the stretch of the message they lie in: the body after them is not walked).
//! Nothing is copied and nothing is allocated per answer; prost's generated type allocated a `Vec`
//! and two `String`s per header.
//!
//! The walk itself is [`Fields`], a reader over one message's fields; the checked decode and the
//! later iteration share it, so they cannot disagree about the encoding.

use bytes::Bytes;

/// `ForwardingResp` field numbers (`proto/forwarding/v1/forwarding.proto`).
const RESP_STATUS_CODE: u32 = 1;
const RESP_HEADERS: u32 = 2;
const RESP_BODY: u32 = 3;
/// `Header` field numbers.
const HEADER_NAME: u32 = 1;
const HEADER_VALUE: u32 = 2;
/// Deepest group nesting skipped in an unknown field; prost's recursion limit is 100, and no
/// proto3 peer writes groups at all.
const MAX_GROUP_DEPTH: u32 = 32;
/// What a header costs in a response head beyond its name and value: `: ` and CRLF, as HTTP/1.1
/// writes it. The answer's headers are measured so (see [`ReplyHeaders::size`]).
const FIELD_OVERHEAD: usize = 4;

/// The message is not a valid `ForwardingResp` encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// One field's value, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// Fixed-width numbers and groups: nothing of ours, skipped.
    Other,
}

/// Reads the fields of one encoded message in order.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(message: &'a [u8]) -> Self {
        Fields { rest: message }
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        // Keys, lengths and small numbers are one byte: read those without the loop.
        if let Some((&b, rest)) = self.rest.split_first() {
            if b & 0x80 == 0 {
                self.rest = rest;
                return Ok(u64::from(b));
            }
        }
        let mut value = 0u64;
        for (i, &b) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                // The tenth byte may only carry the top bit of a u64.
                if i == 9 && b > 1 {
                    return Err(Malformed);
                }
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        Err(Malformed)
    }

    /// A field key: (field number, wire type). Keys must fit 32 bits and numbers start at 1.
    fn key(&mut self) -> Result<(u32, u32), Malformed> {
        let key = u32::try_from(self.varint()?).map_err(|_| Malformed)?;
        if key >> 3 == 0 {
            return Err(Malformed);
        }
        Ok((key >> 3, key & 7))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], Malformed> {
        let len = usize::try_from(len).map_err(|_| Malformed)?;
        if len > self.rest.len() {
            return Err(Malformed);
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// The next field as (number, value), `None` at the end of the message.
    // Inlined into its three loops: called ~30 times per answer, the call itself (a 32-byte
    // result through memory) cost more than reading a one-byte key and length.
    #[inline(always)]
    fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, Malformed> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (number, wire_type) = self.key()?;
        let value = match wire_type {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Other
            }
            2 => {
                let len = self.varint()?;
                Value::Bytes(self.take(len)?)
            }
            3 => {
                self.skip_group(number, 0)?;
                Value::Other
            }
            5 => {
                self.take(4)?;
                Value::Other
            }
            // 4 (an end-group with no start) and 6, 7 (undefined).
            _ => return Err(Malformed),
        };
        Ok(Some((number, value)))
    }

    /// Skips the rest of the group started by field `number`, through its end-group key.
    #[cold]
    fn skip_group(&mut self, number: u32, depth: u32) -> Result<(), Malformed> {
        if depth >= MAX_GROUP_DEPTH {
            return Err(Malformed);
        }
        loop {
            let (inner, wire_type) = self.key()?;
            match wire_type {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.take(8)?;
                }
                2 => {
                    let len = self.varint()?;
                    self.take(len)?;
                }
                3 => self.skip_group(inner, depth + 1)?,
                4 if inner == number => return Ok(()),
                5 => {
                    self.take(4)?;
                }
                _ => return Err(Malformed),
            }
        }
    }
}

/// A checked header: whether it is plain (see [`ReplyHeaders::are_plain`]), and its size as
/// [`ReplyHeaders::size`] counts it.
struct Checked {
    plain: bool,
    size: usize,
}

/// Checks one `Header` message: well-formed, and every occurrence of its name and value UTF-8
/// (as prost requires), not only the one that wins. Only a header of the canonical shape can be
/// plain.
fn check_header(message: &[u8]) -> Result<Checked, Malformed> {
    let utf8 = |b: &[u8]| crate::utf8::text(b).map(|_| ()).ok_or(Malformed);
    // The usual shape: whichever of name and value is plain is ASCII, so UTF-8 already.
    if let Some((name, value)) = canonical_header(message) {
        let (plain_name, plain_value) = (is_plain_name(name), is_plain_value(value));
        if !plain_name {
            utf8(name)?;
        }
        if !plain_value {
            utf8(value)?;
        }
        return Ok(Checked {
            plain: plain_name && plain_value,
            size: name.len() + value.len() + FIELD_OVERHEAD,
        });
    }
    let (name, value) = header_bytes(message, utf8)?;
    Ok(Checked {
        plain: false,
        size: name.len() + value.len() + FIELD_OVERHEAD,
    })
}

/// A header name the client's response takes as it is: a lower-case token (so ASCII), and not
/// `connection`, which may name other headers to drop.
fn is_plain_name(name: &[u8]) -> bool {
    super::is_lower_case_token(name) && name != b"connection"
}

/// A header value the client's response takes as it is: printable ASCII and tabs (a field value
/// that is UTF-8 too; others, obs-text included, are looked at when mapped).
///
/// Eight bytes at a time (every answer's values are checked; a byte-by-byte walk was the answer
/// check's largest loop): a word with no byte below a space and none above `~` is plain; one
/// that may have one (a tab, or a false alarm of the borrow arithmetic) is walked byte by byte.
fn is_plain_value(value: &[u8]) -> bool {
    /// One in every byte: multiplied by `n`, `n` in every byte.
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    /// The top bit of every byte.
    const TOPS: u64 = u64::from_ne_bytes([0x80; 8]);
    let plain = |b: &u8| (b' '..=b'~').contains(b) || *b == b'\t';
    let mut words = value.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_ne_bytes(word.try_into().expect("eight bytes"));
        // A byte below 0x20 sets its top bit in `w - 0x20..`, unless that bit was set already;
        // a byte above 0x7e sets it in `w + 0x01..`, or had it set already.
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & TOPS;
        let above_tilde = (w.wrapping_add(ONES) | w) & TOPS;
        if below_space | above_tilde != 0 && !word.iter().all(plain) {
            return false;
        }
    }
    words.remainder().iter().all(plain)
}

/// One `Header` message's (name, value) bytes; `check` sees every occurrence of either.
fn header_bytes(
    message: &[u8],
    mut check: impl FnMut(&[u8]) -> Result<(), Malformed>,
) -> Result<(&[u8], &[u8]), Malformed> {
    let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
    let mut fields = Fields::new(message);
    while let Some((number, v)) = fields.next_field()? {
        match (number, v) {
            (HEADER_NAME, Value::Bytes(b)) => {
                check(b)?;
                name = b;
            }
            (HEADER_VALUE, Value::Bytes(b)) => {
                check(b)?;
                value = b;
            }
            (HEADER_NAME | HEADER_VALUE, _) => return Err(Malformed),
            _ => {}
        }
    }
    Ok((name, value))
}

/// One `Header` message's (name, value) bytes when it has the shape every protobuf encoder gives
/// a short header: the name field, then the value field, each with a one-byte length, nothing
/// else. Read without the general field walk (~130 instructions a header) by the check, which
/// also decides from it whether the header is plain, and by the iteration that writes the
/// headers (and, when they are not all plain, the one that maps them to the response). `None`
/// for any other shape, which the check walks in full.
#[inline(always)]
fn canonical_header(message: &[u8]) -> Option<(&[u8], &[u8])> {
    const NAME_KEY: u8 = (HEADER_NAME << 3 | 2) as u8;
    const VALUE_KEY: u8 = (HEADER_VALUE << 3 | 2) as u8;
    let [NAME_KEY, name_len @ 0..=0x7f, rest @ ..] = message else {
        return None;
    };
    let (name, rest) = rest.split_at_checked(usize::from(*name_len))?;
    match rest {
        [VALUE_KEY, value_len @ 0..=0x7f, value @ ..] if value.len() == usize::from(*value_len) => {
            Some((name, value))
        }
        _ => None,
    }
}

/// A checked `ForwardingResp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `status_code` as sent (0 means 200; the range is checked when mapping to a response).
    pub status_code: i32,
    /// The headers, in order.
    pub headers: ReplyHeaders,
    /// The body: a slice of the message.
    pub body: Bytes,
}

impl Reply {
    /// Checks `message` (one `ForwardingResp` encoding) and keeps it.
    pub fn decode(message: Bytes) -> Result<Reply, Malformed> {
        let mut status_code = 0;
        let mut body: &[u8] = b"";
        let mut headers = 0usize;
        let mut size = 0usize;
        // Where the header fields lie (from the first one's key to the last one's end): later
        // walks skip the status before them and the body after them.
        let mut span = 0..0;
        let mut plain = true;
        let mut fields = Fields::new(&message);
        let offset = |fields: &Fields<'_>| message.len() - fields.rest.len();
        loop {
            let start = offset(&fields);
            let Some((number, value)) = fields.next_field()? else {
                break;
            };
            match (number, value) {
                // int32 travels as a varint of its 64-bit sign extension: truncation is the decode.
                (RESP_STATUS_CODE, Value::Varint(v)) => status_code = v as i32,
                (RESP_HEADERS, Value::Bytes(h)) => {
                    let checked = check_header(h)?;
                    plain &= checked.plain;
                    size += checked.size;
                    if headers == 0 {
                        span.start = start;
                    }
                    span.end = offset(&fields);
                    headers += 1;
                }
                (RESP_BODY, Value::Bytes(b)) => body = b,
                (RESP_STATUS_CODE | RESP_HEADERS | RESP_BODY, _) => return Err(Malformed),
                _ => {}
            }
        }
        let body = message.slice_ref(body);
        Ok(Reply {
            status_code,
            headers: ReplyHeaders {
                message: if headers == 0 { Bytes::new() } else { message },
                span,
                len: headers,
                size,
                plain,
            },
            body,
        })
    }
}

/// The headers of a checked `ForwardingResp`, still in their encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyHeaders {
    /// The whole checked message (empty when it has no headers).
    message: Bytes,
    /// The part of `message` from the first header field to the end of the last.
    span: std::ops::Range<usize>,
    len: usize,
    /// See [`ReplyHeaders::size`].
    size: usize,
    /// Every header has a lower-case token for a name, other than `connection`, and a printable
    /// ASCII value: the response can take them without another look (`into_response`).
    plain: bool,
}

impl Default for ReplyHeaders {
    /// No headers (plain: there is nothing to look at).
    fn default() -> Self {
        ReplyHeaders {
            message: Bytes::new(),
            span: 0..0,
            len: 0,
            size: 0,
            plain: true,
        }
    }
}

impl ReplyHeaders {
    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Their size in a response head as HTTP/1.1 writes it, `name: value` and CRLF each: what
    /// the gateway's limits on answer headers are measured in (the size the headers a client
    /// sends are measured in, too, `--max-header-bytes`).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every header has a lower-case token for a name, other than `connection`, and a
    /// value of printable ASCII and tabs, as seen when the answer was checked.
    pub fn are_plain(&self) -> bool {
        self.plain
    }

    /// The headers as (name, value), in order.
    pub fn iter(&self) -> ReplyHeaderIter<'_> {
        ReplyHeaderIter {
            fields: Fields::new(&self.message[self.span.clone()]),
        }
    }
}

/// Iterator over [`ReplyHeaders`].
pub struct ReplyHeaderIter<'a> {
    fields: Fields<'a>,
}

impl<'a> Iterator for ReplyHeaderIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        // The message was checked by `Reply::decode`, so the errors below cannot happen; they end
        // the iteration rather than panic.
        while let Some((number, value)) = self.fields.next_field().ok()? {
            if let (RESP_HEADERS, Value::Bytes(h)) = (number, value) {
                let (name, value) =
                    canonical_header(h).or_else(|| header_bytes(h, |_| Ok(())).ok())?;
                // SAFETY: `ReplyHeaders` is only made by `Reply::decode`, which checked that
                // every name and value in this (immutable) message is UTF-8, so the walk is not
                // repeated each time the headers are read.
                return Some(unsafe {
                    (
                        std::str::from_utf8_unchecked(name),
                        std::str::from_utf8_unchecked(value),
                    )
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ForwardingResp, Header};
    use prost::Message;

    fn h(n: &str, v: &str) -> Header {
        Header {
            name: n.into(),
            value: v.into(),
        }
    }

    /// Checks that the reader and prost agree on `bytes`; true if both accepted it.
    fn same_as_prost(bytes: &[u8]) -> bool {
        let ours = Reply::decode(Bytes::copy_from_slice(bytes));
        let theirs = ForwardingResp::decode(bytes);
        let accepted = ours.is_ok();
        match (ours, theirs) {
            (Ok(ours), Ok(theirs)) => {
                assert_eq!(ours.status_code, theirs.status_code, "{bytes:?}");
                assert_eq!(ours.body, theirs.body, "{bytes:?}");
                let headers: Vec<Header> = ours.headers.iter().map(|(n, v)| h(n, v)).collect();
                assert_eq!(headers, theirs.headers, "{bytes:?}");
                assert_eq!(ours.headers.len(), theirs.headers.len());
            }
            (Err(Malformed), Err(_)) => {}
            (ours, theirs) => panic!("{bytes:?}: ours {ours:?}, prost {theirs:?}"),
        }
        accepted
    }

    #[test]
    fn reads_what_prost_writes() {
        let resp = ForwardingResp {
            status_code: 201,
            headers: vec![
                h("content-type", "application/json"),
                h("x-a", "é"),
                h("x-a", ""),
            ],
            body: Bytes::from_static(b"{\"ok\":true}"),
        };
        let bytes = resp.encode_to_vec();
        let reply = Reply::decode(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(reply.status_code, 201);
        assert_eq!(&reply.body[..], b"{\"ok\":true}");
        assert_eq!(
            reply.headers.iter().collect::<Vec<_>>(),
            [
                ("content-type", "application/json"),
                ("x-a", "é"),
                ("x-a", "")
            ]
        );
        same_as_prost(&bytes);
        // Negative int32s are ten-byte varints.
        same_as_prost(
            &ForwardingResp {
                status_code: -1,
                ..Default::default()
            }
            .encode_to_vec(),
        );
        same_as_prost(&[]);
    }

    #[test]
    fn plain_values_are_found_eight_bytes_at_a_time_as_byte_by_byte() {
        let bytewise = |v: &[u8]| v.iter().all(|&b| (b' '..=b'~').contains(&b) || b == b'\t');
        // Every byte value at every position of values of every length up to three words, in a
        // run of `a`s: the word check and its fallback must agree with the byte rule.
        for len in 1..=24 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut value = vec![b'a'; len];
                    value[at] = b;
                    assert_eq!(is_plain_value(&value), bytewise(&value), "{value:?}");
                }
            }
        }
        assert!(is_plain_value(b""));
        assert!(is_plain_value(b"application/json; charset=utf-8"));
        assert!(!is_plain_value("caf\u{e9} au lait, tr\u{e8}s".as_bytes()));
    }

    #[test]
    fn headers_are_plain_only_when_the_response_can_take_them_as_they_are() {
        let plain = |headers: &[(&str, &str)]| {
            let headers = headers.iter().map(|(n, v)| h(n, v)).collect();
            let resp = ForwardingResp {
                headers,
                ..Default::default()
            };
            let reply = Reply::decode(resp.encode_to_vec().into()).unwrap();
            reply.headers.are_plain()
        };
        assert!(plain(&[]));
        assert!(ReplyHeaders::default().are_plain());
        assert!(plain(&[
            ("content-type", "application/json"),
            ("x-a", "\t~ !")
        ]));
        for odd in [
            ("Content-Type", "x"),
            ("connection", "close"),
            ("x a", "1"),
            ("", "1"),
            ("x-a", "caf\u{e9}"),
            ("x-a", "a\r\nb"),
            ("x-a", "\u{7f}"),
        ] {
            assert!(!plain(&[("x-b", "1"), odd]), "{odd:?}");
        }
        // Another encoding of a header (value before name) is checked, and not plain.
        let reversed = [0x12, 1, b'v', 0x0a, 1, b'n'];
        let mut message = vec![0x12, reversed.len() as u8];
        message.extend_from_slice(&reversed);
        assert!(same_as_prost(&message));
        let reply = Reply::decode(message.into()).unwrap();
        assert_eq!(reply.headers.iter().collect::<Vec<_>>(), [("n", "v")]);
        assert!(!reply.headers.are_plain());
    }

    #[test]
    fn headers_are_measured_as_they_are_written() {
        let long = "v".repeat(300);
        let resp = ForwardingResp {
            headers: vec![
                h("x-a", "1"),
                h("content-type", "text/plain"),
                h("x-long", &long),
            ],
            ..Default::default()
        };
        // The long value takes a two-byte length: the general walk measures it.
        let reply = Reply::decode(resp.encode_to_vec().into()).unwrap();
        let written: usize = reply
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}\r\n").len())
            .sum();
        assert_eq!(reply.headers.size(), written);
        assert_eq!(written, 8 + 26 + 310);
        // Another encoding of one header (value before name) is measured by the header it gives.
        let reversed = [0x12, 6, 0x12, 1, b'v', 0x0a, 1, b'n'];
        assert_eq!(
            Reply::decode(Bytes::copy_from_slice(&reversed))
                .unwrap()
                .headers
                .size(),
            "n: v\r\n".len()
        );
        assert_eq!(ReplyHeaders::default().size(), 0);
    }

    #[test]
    fn body_and_headers_share_the_message() {
        let bytes = Bytes::from(
            ForwardingResp {
                status_code: 200,
                headers: vec![h("x", "y")],
                body: Bytes::from_static(b"body"),
            }
            .encode_to_vec(),
        );
        let reply = Reply::decode(bytes.clone()).unwrap();
        let inside = bytes.as_ptr_range();
        assert!(inside.contains(&reply.body.as_ptr()));
        let (name, _) = reply.headers.iter().next().unwrap();
        assert!(inside.contains(&name.as_ptr()));
    }

    #[test]
    fn unknown_fields_are_skipped_and_the_last_scalar_wins() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&[0x08, 0x90, 0x03]); // status_code 400
        bytes.extend_from_slice(&[0x1a, 0x01, b'a']); // body "a"
        bytes.extend_from_slice(&[0x20, 0x07]); // field 4, varint (unknown)
        bytes.extend_from_slice(&[0x29, 1, 2, 3, 4, 5, 6, 7, 8]); // field 5, fixed64
        bytes.extend_from_slice(&[0x35, 1, 2, 3, 4]); // field 6, fixed32
        bytes.extend_from_slice(&[0x3b, 0x08, 0x01, 0x43, 0x44, 0x3c]); // field 7, nested groups
        bytes.extend_from_slice(&[0x12, 0x07, 0x0a, 0x01, b'n', 0x12, 0x00, 0x18, 0x05]); // header + unknown
        bytes.extend_from_slice(&[0x08, 0xc8, 0x01]); // status_code 200
        bytes.extend_from_slice(&[0x1a, 0x01, b'b']); // body "b"
        let reply = Reply::decode(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(reply.status_code, 200);
        assert_eq!(&reply.body[..], b"b");
        assert_eq!(reply.headers.iter().collect::<Vec<_>>(), [("n", "")]);
        same_as_prost(&bytes);
    }

    #[test]
    fn malformed_messages_are_refused_like_prost_refuses_them() {
        let cases: &[&[u8]] = &[
            &[0x08], // varint cut short
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ], // varint overflow
            &[0x1a, 0x05, b'a'], // length past the end
            &[0x10, 0x01], // headers as a varint
            &[0x0a, 0x00], // status_code as bytes
            &[0x12, 0x03, 0x0a, 0x01, 0xff], // header name not UTF-8
            &[0x12, 0x06, 0x0a, 0x01, 0xff, 0x12, 0x01, b'v'], // the same, beside a value
            &[0x12, 0x06, 0x0a, 0x01, b'n', 0x12, 0x01, 0xff], // header value not UTF-8
            &[0x12, 0x02, 0x08, 0x01], // header name as a varint
            &[0x00, 0x01], // field number 0
            &[0x0c], // end group without a start
            &[0x0e], // wire type 6
            &[0x3b, 0x08, 0x01], // group never ends
            &[0x3b, 0x44], // group ended by another number
            b"\x0fnot a ForwardingResp",
        ];
        for case in cases {
            assert_eq!(
                Reply::decode(Bytes::from_static(case)),
                Err(Malformed),
                "{case:?}"
            );
            same_as_prost(case);
        }
    }

    #[test]
    fn agrees_with_prost_on_every_prefix_and_byte_flip() {
        let bytes = ForwardingResp {
            status_code: 404,
            headers: vec![h("content-type", "text/plain"), h("x-b", "2")],
            body: Bytes::from_static(b"missing"),
        }
        .encode_to_vec();
        for end in 0..=bytes.len() {
            same_as_prost(&bytes[..end]);
        }
        for i in 0..bytes.len() {
            for flip in [0x01, 0x08, 0x80, 0xff] {
                let mut changed = bytes.clone();
                changed[i] ^= flip;
                same_as_prost(&changed);
            }
        }
    }

    #[test]
    fn the_short_header_reader_agrees_with_the_field_walk() {
        let long = "n".repeat(200);
        let mut cases: Vec<Vec<u8>> = [
            h("content-type", "text/plain"),
            h("x-empty", ""),
            h("", "only a value"),
            h(&long, "v"),
            h("n", &long),
        ]
        .iter()
        .map(Message::encode_to_vec)
        .collect();
        // Value first; a repeated name; an unknown field after the value; a truncated value.
        cases.push(b"\x12\x01v\x0a\x01n".to_vec());
        cases.push(b"\x0a\x01a\x0a\x01b\x12\x01v".to_vec());
        cases.push(b"\x0a\x01n\x12\x01v\x18\x01".to_vec());
        cases.push(b"\x0a\x01n\x12\x02v".to_vec());
        for case in &cases {
            if let Some(short) = canonical_header(case) {
                assert_eq!(Ok(short), header_bytes(case, |_| Ok(())), "{case:?}");
            }
        }
        // The usual shape takes the short way.
        assert_eq!(
            canonical_header(&cases[0]),
            Some((&b"content-type"[..], &b"text/plain"[..]))
        );
        assert!(canonical_header(&cases[3]).is_none(), "two-byte length");
    }

    /// Random answers as other protobuf libraries could write them: fields in any order and
    /// repeated, unknown fields of every wire type, and random bytes spliced in. A fixed seed keeps
    /// the cases the same from run to run.
    #[test]
    fn agrees_with_prost_on_random_messages() {
        let rng = std::cell::Cell::new(0x9e37_79b9_7f4a_7c15_u64);
        let next = |bound: u64| crate::upstream::next_random(&rng) % bound;
        let varint = |out: &mut Vec<u8>, mut v: u64| loop {
            if v < 0x80 {
                out.push(v as u8);
                break;
            }
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        };
        let cases = 3_000;
        let mut accepted = 0;
        for _ in 0..cases {
            let mut bytes = Vec::new();
            for _ in 0..next(8) {
                let number = [1, 2, 3, 4, 15, 16, 2047][next(7) as usize];
                let wire = [0, 1, 2, 2, 2, 3, 5][next(7) as usize];
                varint(&mut bytes, (number << 3) | wire);
                match wire {
                    0 => varint(&mut bytes, next(u64::MAX)),
                    1 => bytes.extend_from_slice(&next(u64::MAX).to_le_bytes()),
                    5 => bytes.extend_from_slice(&(next(u64::MAX) as u32).to_le_bytes()),
                    3 => {
                        varint(&mut bytes, 7 << 3); // field 7, varint
                        varint(&mut bytes, next(300));
                        varint(&mut bytes, (number << 3) | 4);
                    }
                    _ => {
                        let mut inner = Vec::new();
                        for _ in 0..next(4) {
                            let field = 1 + next(3);
                            varint(&mut inner, (field << 3) | 2);
                            let text: &[u8] =
                                [&b"x-a"[..], b"", b"caf\xc3\xa9", b"\xff"][next(4) as usize];
                            varint(&mut inner, text.len() as u64);
                            inner.extend_from_slice(text);
                        }
                        varint(&mut bytes, inner.len() as u64);
                        bytes.extend_from_slice(&inner);
                    }
                }
            }
            if next(4) == 0 && !bytes.is_empty() {
                let at = next(bytes.len() as u64) as usize;
                bytes[at] = next(256) as u8;
            }
            if same_as_prost(&bytes) {
                accepted += 1;
            }
        }
        // Both outcomes must be exercised for the comparison to mean anything.
        assert!(
            (cases / 10..cases * 9 / 10).contains(&accepted),
            "{accepted} of {cases} accepted"
        );
    }
}
