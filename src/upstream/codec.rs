//! gRPC message framing and the `ForwardingReq` encoder.
//!
//! Requests are encoded by hand, straight from the borrowed pieces of the client request into one
//! reused buffer that already holds the 5-byte gRPC prefix: no intermediate `ForwardingReq` with
//! owned strings, one pass, one buffer. The body is not copied into that buffer: it is the last
//! field, and the message goes to h2 as the encoded head followed by the client's body as it was
//! read ([`RequestMessage`]; protobuf decoders take fields in any order). h2 copies both into its
//! write buffer, so a body is copied once in user space on its way to the backend, not twice.
//! Answers are read in place by [`Reply`]. Unit tests check both against prost.

use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};

use crate::http::Field;
use crate::upstream::reply::Reply;

/// Length of the gRPC message prefix: compressed flag (1) + big-endian length (4).
pub const GRPC_PREFIX_LEN: usize = 5;

/// Storage a shard's request encoder starts with: see [`encode_buffer`].
pub const ENCODE_CHUNK: usize = 64 << 10;

/// The buffer a shard encodes its requests into ([`ForwardingParts::encode_framed`]).
///
/// Each message's head goes to h2 as a slice of this buffer (no copy) and keeps its storage alive
/// until the call ends, so once the heads in flight hold the rest, the next one needs new
/// storage. `bytes` sizes new storage by the capacity the buffer started with: started empty, it
/// allocated exactly one head's worth for every call at saturation (callgrind: ~550
/// instructions per call). Started at 64 KiB (the most `bytes` remembers), a chunk holds the
/// heads of about 200 requests, whatever their bodies.
pub fn encode_buffer() -> BytesMut {
    BytesMut::with_capacity(ENCODE_CHUNK)
}

/// The parts of a `ForwardingReq`, borrowed from wherever they live.
#[derive(Debug, Clone, Copy)]
pub struct ForwardingParts<'a> {
    /// Upper-case method.
    pub method: &'a str,
    /// Path below the service prefix, starting with `/`.
    pub path: &'a [u8],
    /// Raw query without `?`.
    pub query: &'a [u8],
    /// Client headers, hop-by-hop ones already skipped by `keep_header`.
    pub headers: &'a [Field],
    /// Extra headers appended after the client's (GraphQL `headers` argument).
    pub extra_headers: &'a [Field],
    /// Request body: sent as it is, after the encoded fields (see the module docs).
    pub body: &'a Bytes,
    /// Service name.
    pub service: &'a str,
    /// Request id.
    pub request_id: &'a str,
    /// Client address.
    pub remote_addr: &'a str,
    /// GraphQL root field response key (empty for REST).
    pub graphql_field: &'a str,
}

fn bytes_field_len(tag: u32, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(len as u64) + len
    }
}

fn put_bytes_field(buf: &mut BytesMut, tag: u32, value: &[u8]) {
    if value.is_empty() {
        return;
    }
    put_field_head(buf, tag, value.len());
    buf.put_slice(value);
}

/// A length-delimited field's key and length, the `len` bytes of its value to follow.
fn put_field_head(buf: &mut BytesMut, tag: u32, len: usize) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn header_len(h: &Field) -> usize {
    bytes_field_len(1, h.name.len()) + bytes_field_len(2, h.value.len())
}

impl ForwardingParts<'_> {
    fn headers(&self, keep: fn(&Field) -> bool) -> impl Iterator<Item = &Field> {
        self.headers
            .iter()
            .filter(move |h| keep(h))
            .chain(self.extra_headers)
    }

    /// Encoded length of the `ForwardingReq` message (without the gRPC prefix).
    pub fn encoded_len(&self, keep: fn(&Field) -> bool) -> usize {
        let headers: usize = self
            .headers(keep)
            .map(|h| {
                let inner = header_len(h);
                key_len(4) + encoded_len_varint(inner as u64) + inner
            })
            .sum();
        bytes_field_len(1, self.method.len())
            + bytes_field_len(2, self.path.len())
            + bytes_field_len(3, self.query.len())
            + headers
            + bytes_field_len(5, self.body.len())
            + bytes_field_len(6, self.service.len())
            + bytes_field_len(7, self.request_id.len())
            + bytes_field_len(8, self.remote_addr.len())
            + bytes_field_len(9, self.graphql_field.len())
    }

    /// Encodes the gRPC-framed `ForwardingReq` into `buf` (reused across requests) but for the
    /// body's bytes, and returns the message: that head, then the body.
    pub fn encode_framed(&self, buf: &mut BytesMut, keep: fn(&Field) -> bool) -> RequestMessage {
        let len = self.encoded_len(keep);
        let head_len = GRPC_PREFIX_LEN + len - self.body.len();
        buf.reserve(head_len);
        buf.put_u8(0);
        buf.put_u32(len as u32);
        put_bytes_field(buf, 1, self.method.as_bytes());
        put_bytes_field(buf, 2, self.path);
        put_bytes_field(buf, 3, self.query);
        for h in self.headers(keep) {
            encode_key(4, WireType::LengthDelimited, buf);
            encode_varint(header_len(h) as u64, buf);
            put_bytes_field(buf, 1, &h.name);
            put_bytes_field(buf, 2, &h.value);
        }
        put_bytes_field(buf, 6, self.service.as_bytes());
        put_bytes_field(buf, 7, self.request_id.as_bytes());
        put_bytes_field(buf, 8, self.remote_addr.as_bytes());
        put_bytes_field(buf, 9, self.graphql_field.as_bytes());
        if !self.body.is_empty() {
            put_field_head(buf, 5, self.body.len());
        }
        debug_assert_eq!(buf.len(), head_len);
        RequestMessage {
            head: buf.split().freeze(),
            body: self.body.clone(),
        }
    }
}

/// A gRPC-framed `ForwardingReq` as it goes to h2: the encoded head (prefix and every field, the
/// body's key and length last) followed by the body, which is not copied. Cloning it (for a
/// second attempt) shares both.
#[derive(Debug, Clone)]
pub struct RequestMessage {
    head: Bytes,
    body: Bytes,
}

impl RequestMessage {
    /// A message already framed in one piece.
    pub fn from_static(framed: &'static [u8]) -> RequestMessage {
        RequestMessage {
            head: Bytes::from_static(framed),
            body: Bytes::new(),
        }
    }
}

impl Buf for RequestMessage {
    fn remaining(&self) -> usize {
        self.head.len() + self.body.len()
    }

    fn chunk(&self) -> &[u8] {
        if self.head.is_empty() {
            &self.body
        } else {
            &self.head
        }
    }

    fn advance(&mut self, cnt: usize) {
        let from_head = cnt.min(self.head.len());
        self.head.advance(from_head);
        self.body.advance(cnt - from_head);
    }

    /// Both pieces, so that a write of a message h2 did not copy is one `writev`.
    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for piece in [&self.head, &self.body] {
            if n < dst.len() && !piece.is_empty() {
                dst[n] = IoSlice::new(piece);
                n += 1;
            }
        }
        n
    }
}

/// Why a gRPC answer body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than its prefix says, or extra bytes after the message.
    #[error("gRPC message framing is broken")]
    Framing,
    /// Compressed although no compression was negotiated.
    #[error("gRPC message is compressed but no compression was negotiated")]
    Compressed,
    /// Not a `ForwardingResp`.
    #[error("gRPC message is not a valid ForwardingResp")]
    Protobuf,
}

/// The message length a gRPC-framed body's prefix announces, once `received` holds the prefix.
pub fn announced_length(received: &[u8]) -> Option<usize> {
    let prefix = received.get(..GRPC_PREFIX_LEN)?;
    Some(u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize)
}

/// Decodes a gRPC-framed unary `ForwardingResp` (in place: see [`Reply`]).
pub fn decode_framed(body: Bytes) -> Result<Reply, FrameError> {
    let len = announced_length(&body).ok_or(FrameError::Framing)?;
    if body.len() - GRPC_PREFIX_LEN != len {
        return Err(FrameError::Framing);
    }
    if body[0] != 0 {
        return Err(FrameError::Compressed);
    }
    Reply::decode(body.slice(GRPC_PREFIX_LEN..)).map_err(|_| FrameError::Protobuf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ForwardingReq, ForwardingResp, Header};
    use prost::Message;

    fn keep_all(_: &Field) -> bool {
        true
    }

    fn keep_not_te(h: &Field) -> bool {
        h.name.as_ref() != b"te"
    }

    /// The message's bytes in one piece, as they go on the wire.
    fn contiguous(mut message: RequestMessage) -> Bytes {
        message.copy_to_bytes(message.remaining())
    }

    /// A POST of `body` with no headers and one-letter names.
    fn bare_parts(body: &Bytes) -> ForwardingParts<'_> {
        ForwardingParts {
            method: "POST",
            path: b"/",
            query: b"",
            headers: &[],
            extra_headers: &[],
            body,
            service: "s",
            request_id: "r",
            remote_addr: "127.0.0.1:1",
            graphql_field: "",
        }
    }

    #[test]
    fn hand_encoding_decodes_with_prost() {
        let headers = vec![
            Field::new("accept", "*/*"),
            Field::new("te", "trailers"),
            Field::new("x-r", "1"),
            Field::new("x-r", ""),
        ];
        let extra = vec![Field::new("x-extra", "é")];
        let body = Bytes::from_static(&[0, 1, 2, 255]);
        let parts = ForwardingParts {
            method: "POST",
            path: b"/a/b%20c",
            query: b"x=1&y",
            headers: &headers,
            extra_headers: &extra,
            body: &body,
            service: "users",
            request_id: "rid",
            remote_addr: "127.0.0.1:5555",
            graphql_field: "",
        };
        let mut buf = BytesMut::new();
        let framed = contiguous(parts.encode_framed(&mut buf, keep_not_te));
        assert_eq!(framed[0], 0);
        let len = u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, framed.len() - 5);
        let req = ForwardingReq::decode(&framed[5..]).unwrap();
        let h = |n: &str, v: &str| Header {
            name: n.into(),
            value: v.into(),
        };
        assert_eq!(
            req,
            ForwardingReq {
                method: "POST".into(),
                path: "/a/b%20c".into(),
                query: "x=1&y".into(),
                headers: vec![
                    h("accept", "*/*"),
                    h("x-r", "1"),
                    h("x-r", ""),
                    h("x-extra", "é")
                ],
                body: Bytes::from_static(&[0, 1, 2, 255]),
                service: "users".into(),
                request_id: "rid".into(),
                remote_addr: "127.0.0.1:5555".into(),
                graphql_field: String::new(),
            }
        );
        // The buffer is reused: a second encode starts from an empty buffer.
        let again = parts.encode_framed(&mut buf, keep_all);
        assert!(again.remaining() > framed.len());
    }

    #[test]
    fn the_body_goes_to_h2_as_it_was_read() {
        let body = Bytes::from(vec![9u8; 300]);
        let parts = ForwardingParts {
            graphql_field: "g",
            ..bare_parts(&body)
        };
        let message = parts.encode_framed(&mut encode_buffer(), keep_all);
        assert_eq!(message.body.as_ptr(), body.as_ptr(), "the body was copied");
        // The head ends with the body's key (field 5, length-delimited) and its length.
        assert!(message.head.ends_with(&[5 << 3 | 2, 0xac, 0x02]));
        let mut slices = [IoSlice::new(&[]); 3];
        assert_eq!(message.chunks_vectored(&mut slices), 2);
        assert_eq!(slices[1].len(), 300);
        // Read across the seam, as h2 does when a frame is split by the flow-control window.
        let mut rest = message.clone();
        rest.advance(message.head.len() - 1);
        assert_eq!(rest.chunk(), &message.head[message.head.len() - 1..]);
        rest.advance(2);
        assert_eq!((rest.chunk().len(), rest.remaining()), (299, 299));
        assert_eq!(rest.chunks_vectored(&mut slices), 1);
        let req = ForwardingReq::decode(&contiguous(message)[GRPC_PREFIX_LEN..]).unwrap();
        assert_eq!((req.body, req.graphql_field.as_str()), (body, "g"));
    }

    #[test]
    fn frames_in_flight_share_the_encoder_s_storage() {
        let body = Bytes::from(vec![7u8; 4096]);
        let parts = bare_parts(&body);
        let mut buf = encode_buffer();
        let follows = |a: &RequestMessage, b: &RequestMessage| {
            b.head.as_ptr() == a.head.as_ptr().wrapping_add(a.head.len())
        };
        // Every frame stays alive, as frames in flight do.
        let mut frames = vec![parts.encode_framed(&mut buf, keep_all)];
        for _ in 0..2 * ENCODE_CHUNK / frames[0].head.len() {
            frames.push(parts.encode_framed(&mut buf, keep_all));
        }
        let adjacent = frames.windows(2).filter(|w| follows(&w[0], &w[1])).count();
        // New storage only when a chunk is full: two chunks' worth took two or three of them.
        assert!(
            adjacent >= frames.len() - 3,
            "{adjacent} of {}",
            frames.len() - 1
        );
    }

    #[test]
    fn response_frames() {
        let resp = ForwardingResp {
            status_code: 201,
            headers: vec![],
            body: Bytes::from_static(b"ok"),
        };
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(resp.encoded_len() as u32).to_be_bytes());
        framed.extend_from_slice(&resp.encode_to_vec());
        let reply = decode_framed(Bytes::from(framed.clone())).unwrap();
        assert_eq!(
            (reply.status_code, reply.body),
            (resp.status_code, resp.body)
        );
        let mut compressed = framed.clone();
        compressed[0] = 1;
        assert_eq!(
            decode_framed(compressed.into()),
            Err(FrameError::Compressed)
        );
        let short = Bytes::copy_from_slice(&framed[..framed.len() - 1]);
        assert_eq!(decode_framed(short), Err(FrameError::Framing));
        assert_eq!(
            decode_framed(Bytes::from_static(&[0, 0, 0, 0, 2, 0xff, 0xff])),
            Err(FrameError::Protobuf)
        );
    }
}
