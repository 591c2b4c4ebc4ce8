//! gRPC message framing for one unary call: the 5-byte prefix (compressed flag, u32 big-endian
//! length) around a protobuf payload, plus the status codes and `grpc-message` encoding the echo uses.
//!
//! Kept free of I/O so the codec is tested on plain byte slices; the server only feeds it the
//! request body it has collected and sends what it returns.

use bytes::{BufMut, Bytes, BytesMut};

/// Length of the gRPC length prefix: one flag byte plus a big-endian `u32`.
pub const PREFIX_LEN: usize = 5;

/// gRPC status codes the echo answers with itself (the `/grpc-error/{code}` path sends any code).
pub mod code {
    /// The call succeeded.
    pub const OK: u32 = 0;
    /// The message was larger than the server accepts.
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    /// Unknown method, or a compressed message (the echo supports no compression).
    pub const UNIMPLEMENTED: u32 = 12;
    /// The request broke the unary framing or was not a valid `ForwardingReq`.
    pub const INTERNAL: u32 = 13;
}

/// Why a request body is not exactly one acceptable gRPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The body ended before a complete prefix and payload arrived (or was empty).
    #[error("request body holds no complete gRPC message")]
    Incomplete,
    /// The compressed flag was set; the echo negotiates no compression.
    #[error("compressed gRPC messages are not supported")]
    Compressed,
    /// The prefix announced a message larger than the limit.
    #[error("gRPC message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length announced by the prefix (or bytes received so far).
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// Bytes followed the one message a unary call may carry.
    #[error("unary call carries more than one gRPC message")]
    TrailingData,
}

impl FrameError {
    /// The gRPC status this error is answered with (the codes grpc-go uses for the same faults).
    pub fn grpc_code(&self) -> u32 {
        match self {
            FrameError::Compressed => code::UNIMPLEMENTED,
            FrameError::TooLarge { .. } => code::RESOURCE_EXHAUSTED,
            FrameError::Incomplete | FrameError::TrailingData => code::INTERNAL,
        }
    }
}

/// Frames `payload` as one uncompressed gRPC message.
pub fn encode(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(PREFIX_LEN + payload.len());
    out.put_u8(0);
    // Callers bound their payloads far below 4 GiB (see the limits in `routes`), so this cannot truncate.
    out.put_u32(u32::try_from(payload.len()).expect("gRPC payload under 4 GiB"));
    out.put_slice(payload);
    out.freeze()
}

/// Encodes `message` as one uncompressed gRPC message, straight into the framed buffer (one
/// allocation, no intermediate copy: `/bytes/{n}` answers can be tens of MiB).
pub fn encode_message(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut out = BytesMut::with_capacity(PREFIX_LEN + len);
    out.put_u8(0);
    out.put_u32(u32::try_from(len).expect("gRPC payload under 4 GiB"));
    message
        .encode(&mut out)
        .expect("buffer reserved for the whole message");
    out.freeze()
}

/// Checks the prefix of a body still arriving, so an oversized message is refused before it is
/// buffered. Returns `Ok(())` while nothing is wrong yet.
pub fn check_prefix(received: &[u8], max: usize) -> Result<(), FrameError> {
    if received.len() > PREFIX_LEN + max {
        return Err(FrameError::TooLarge {
            len: received.len() - PREFIX_LEN,
            max,
        });
    }
    let Some(prefix) = received.get(..PREFIX_LEN) else {
        return Ok(());
    };
    if prefix[0] != 0 {
        return Err(FrameError::Compressed);
    }
    let len = announced_len(prefix);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(())
}

/// Returns the payload of the single gRPC message that makes up a complete unary request body.
pub fn decode_unary(body: &[u8], max: usize) -> Result<&[u8], FrameError> {
    check_prefix(body, max)?;
    if body.len() < PREFIX_LEN {
        return Err(FrameError::Incomplete);
    }
    let len = announced_len(body);
    let rest = &body[PREFIX_LEN..];
    match rest.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(FrameError::Incomplete),
        std::cmp::Ordering::Greater => Err(FrameError::TrailingData),
        std::cmp::Ordering::Equal => Ok(rest),
    }
}

fn announced_len(prefix: &[u8]) -> usize {
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
    // usize is at least 32 bits on every target glommio supports (Linux, 64-bit).
    len as usize
}

/// Percent-encodes a `grpc-message` value as the gRPC HTTP/2 spec asks: every byte outside
/// printable ASCII (0x20..=0x7E), and `%` itself, becomes `%XX`.
pub fn encode_grpc_message(message: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_round_trips() {
        let framed = encode(b"hello");
        assert_eq!(&framed[..], b"\0\0\0\0\x05hello");
        assert_eq!(decode_unary(&framed, 16), Ok(&b"hello"[..]));
    }

    #[test]
    fn encode_message_matches_encode_of_the_protobuf_bytes() {
        use prost::Message;
        let resp = crate::proto::ForwardingResp {
            status_code: 200,
            headers: vec![],
            body: Bytes::from_static(b"{}"),
        };
        assert_eq!(encode_message(&resp), encode(&resp.encode_to_vec()));
    }

    #[test]
    fn empty_message_is_valid() {
        assert_eq!(decode_unary(&encode(b""), 16), Ok(&b""[..]));
    }

    #[test]
    fn short_bodies_are_incomplete() {
        assert_eq!(decode_unary(b"", 16), Err(FrameError::Incomplete));
        assert_eq!(decode_unary(b"\0\0\0", 16), Err(FrameError::Incomplete));
        assert_eq!(
            decode_unary(b"\0\0\0\0\x05hel", 16),
            Err(FrameError::Incomplete)
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        assert_eq!(
            decode_unary(b"\0\0\0\0\x01ab", 16),
            Err(FrameError::TrailingData)
        );
    }

    #[test]
    fn compressed_flag_is_refused() {
        assert_eq!(
            decode_unary(b"\x01\0\0\0\x01a", 16),
            Err(FrameError::Compressed)
        );
        assert_eq!(FrameError::Compressed.grpc_code(), code::UNIMPLEMENTED);
    }

    #[test]
    fn oversized_message_is_refused_from_its_prefix_alone() {
        let err = check_prefix(b"\0\0\0\x01\0", 16).unwrap_err();
        assert_eq!(err, FrameError::TooLarge { len: 256, max: 16 });
        assert_eq!(err.grpc_code(), code::RESOURCE_EXHAUSTED);
        assert_eq!(check_prefix(b"\0\0\0\0\x10", 16), Ok(()));
        assert_eq!(check_prefix(b"\0\0", 16), Ok(()));
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(encode_grpc_message("echo error 5"), "echo error 5");
        assert_eq!(encode_grpc_message("100% é\n"), "100%25 %C3%A9%0A");
    }
}
