//! Incremental `Transfer-Encoding: chunked` decoding (RFC 9112 §7.1).
//!
//! The decoder consumes whatever part of the input it can and keeps its state between reads, so the
//! connection loop can feed it socket reads of any size. It is strict where leniency enables request
//! smuggling: chunk sizes are hex digits only (no sign, no whitespace before them, no overflow), every
//! line ends in CRLF, and the trailer section is bounded like a header section.

use bytes::{Buf, BytesMut};

use crate::error::GatewayError;

/// Longest chunk-size line accepted, extensions included (nginx refuses far shorter ones).
const MAX_CHUNK_LINE: usize = 4096;
/// Largest chunk size accepted (2^60 - 1), far over any body limit: larger ones are refused as
/// malformed (400, as nginx refuses sizes near overflow) rather than over the limit, and adding one
/// to a body's length cannot overflow. A cap on the value, not on the digits: `0003` is 3 (nginx
/// accepts leading zeros, and RFC 9112 §7.1 allows any number of hex digits).
const MAX_CHUNK_SIZE: u64 = (1 << 60) - 1;

/// Where the decoder is in the chunked stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data; this many bytes remain.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: reading trailer lines; this many trailer bytes seen so far.
    Trailers(usize),
    /// The body is complete.
    Done,
}

/// Decodes as much of `input` as possible into `body`. Returns `Ok(true)` once the last chunk and the
/// trailer section are consumed; consumed bytes are removed from `input`.
pub fn decode(
    input: &mut BytesMut,
    state: &mut State,
    body: &mut BytesMut,
    max_body: usize,
    max_trailer_bytes: usize,
) -> Result<bool, GatewayError> {
    loop {
        match *state {
            State::Done => return Ok(true),
            State::Size => {
                let Some(line_len) = find_crlf(input, MAX_CHUNK_LINE, "chunk line too long")?
                else {
                    return Ok(false);
                };
                let size = parse_size(&input[..line_len])?;
                input.advance(line_len + 2);
                if body.len() as u64 + size > max_body as u64 {
                    return Err(GatewayError::body_too_large());
                }
                *state = if size == 0 {
                    State::Trailers(0)
                } else {
                    State::Data(size)
                };
            }
            State::Data(remaining) => {
                if input.is_empty() {
                    return Ok(false);
                }
                let n = (remaining as usize).min(input.len());
                body.extend_from_slice(&input[..n]);
                input.advance(n);
                *state = if n as u64 == remaining {
                    State::DataEnd
                } else {
                    State::Data(remaining - n as u64)
                };
            }
            State::DataEnd => {
                if input.len() < 2 {
                    return Ok(false);
                }
                if &input[..2] != b"\r\n" {
                    return Err(GatewayError::bad_request("chunk data not followed by CRLF"));
                }
                input.advance(2);
                *state = State::Size;
            }
            State::Trailers(seen) => {
                let left = max_trailer_bytes.saturating_sub(seen);
                let Some(line_len) = find_crlf(input, left, "trailer section over the limit")?
                else {
                    return Ok(false);
                };
                // Trailer fields are read and dropped: ForwardingReq has no place for them.
                input.advance(line_len + 2);
                *state = if line_len == 0 {
                    State::Done
                } else {
                    State::Trailers(seen + line_len + 2)
                };
            }
        }
    }
}

/// Position of the first CRLF, refusing bare LFs and lines longer than `max` (saying `too_long`).
fn find_crlf(
    input: &[u8],
    max: usize,
    too_long: &'static str,
) -> Result<Option<usize>, GatewayError> {
    let window = &input[..input.len().min(max + 2)];
    match window.iter().position(|&c| c == b'\n') {
        Some(0) => Err(GatewayError::bad_request("bare LF in chunked body")),
        Some(i) if window[i - 1] == b'\r' => Ok(Some(i - 1)),
        Some(_) => Err(GatewayError::bad_request("bare LF in chunked body")),
        None if input.len() > max + 1 => Err(GatewayError::bad_request(too_long)),
        None => Ok(None),
    }
}

/// Parses `1a;ext=v` into 26.
fn parse_size(line: &[u8]) -> Result<u64, GatewayError> {
    let bad = || GatewayError::bad_request("bad chunk size");
    let digits = line
        .iter()
        .position(|c| !c.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits == 0 {
        return Err(bad());
    }
    let mut size: u64 = 0;
    for &c in &line[..digits] {
        // Checked before the shift, so the value never overflows whatever the digit count;
        // leading zeros leave it 0.
        if size > MAX_CHUNK_SIZE >> 4 {
            return Err(bad());
        }
        size = size << 4 | u64::from(hex_value(c));
    }
    let rest = &line[digits..];
    // Only chunk extensions (`;name[=value]`, optionally after whitespace) may follow the size.
    let rest = rest.trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err(bad());
    }
    if rest.iter().any(|&c| c < 0x20 && c != b'\t') {
        return Err(bad());
    }
    Ok(size)
}

/// The value of hex digit `c` (one [`u8::is_ascii_hexdigit`] accepts).
fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => (c | 0x20) - b'a' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn run(parts: &[&[u8]]) -> Result<(bool, Vec<u8>, Vec<u8>), ErrorKind> {
        let mut state = State::Size;
        let mut body = BytesMut::new();
        let mut input = BytesMut::new();
        let mut done = false;
        for part in parts {
            input.extend_from_slice(part);
            done = decode(&mut input, &mut state, &mut body, 64, 128).map_err(|e| e.kind)?;
        }
        Ok((done, body.to_vec(), input.to_vec()))
    }

    #[test]
    fn decodes_across_arbitrary_splits() {
        let wire =
            b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 0..wire.len() {
            let (done, body, rest) = run(&[&wire[..split], &wire[split..]]).unwrap();
            assert!(done);
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(rest, b"NEXT");
        }
    }

    #[test]
    fn incomplete_is_not_done() {
        assert!(!run(&[b"4\r\nWi"]).unwrap().0);
        assert!(!run(&[b"0\r\n"]).unwrap().0);
    }

    #[test]
    fn malformed_sizes_and_lines_are_400() {
        let cases: &[&[u8]] = &[
            b"zz\r\n",
            b"-1\r\n",
            b" 1\r\na\r\n",
            b"1 x\r\na\r\n",
            b"0x1\r\na\r\n",
            b"1\na\r\n",
            b"1\r\nab\r\n",
            b"1\r\naXY",
            b"ffffffffffffffff\r\n",
            // Over the value cap (2^60), however many leading zeros come first.
            b"1000000000000000\r\n",
            b"00000000000000000000001000000000000000\r\n",
            b"\r\n",
        ];
        for case in cases {
            assert_eq!(
                run(&[case]).unwrap_err(),
                ErrorKind::BadRequest,
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn sizes_are_capped_by_value_not_by_digits() {
        // Leading zeros count for nothing (nginx accepts them): 20 digits for a 3-byte chunk.
        let (done, body, _) =
            run(&[b"00000000000000000003\r\nabc\r\n0000000000000000000\r\n\r\n"]).unwrap();
        assert!(done);
        assert_eq!(body, b"abc");
        for (size, value) in [
            (&b"0"[..], 0),
            (b"00a", 10),
            (b"FfFf", 0xffff),
            (b"0fffffffffffffff", MAX_CHUNK_SIZE),
            (
                b"000000000000000000000000fffffffffffffff;x=y",
                MAX_CHUNK_SIZE,
            ),
        ] {
            assert_eq!(
                parse_size(size).unwrap(),
                value,
                "{}",
                String::from_utf8_lossy(size)
            );
        }
        assert!(parse_size(b"1000000000000000").is_err());
        // The largest size passes the cap and is over the body limit: 413, not 400.
        assert_eq!(
            run(&[b"fffffffffffffff\r\n"]).unwrap_err(),
            ErrorKind::BodyTooLarge
        );
    }

    #[test]
    fn body_and_trailer_limits() {
        assert_eq!(
            run(&[b"41\r\n"]).unwrap_err(),
            ErrorKind::BodyTooLarge,
            "65 bytes over a 64-byte limit"
        );
        assert_eq!(
            run(&[b"20\r\n", &[b'a'; 32], b"\r\n21\r\n"]).unwrap_err(),
            ErrorKind::BodyTooLarge
        );
        let trailer = [&b"0\r\nX: "[..], &[b'v'; 200], b"\r\n\r\n"].concat();
        assert_eq!(run(&[&trailer]).unwrap_err(), ErrorKind::BadRequest);
        // The message names the trailer section, not a chunk line.
        let (mut state, mut body) = (State::Size, BytesMut::new());
        let err = decode(&mut trailer[..].into(), &mut state, &mut body, 64, 128).unwrap_err();
        assert_eq!(err.message, "trailer section over the limit");
    }
}
