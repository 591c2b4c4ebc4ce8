//! HTTP/1.1 request heads: any bytes either parse, ask for more, or are refused — never a panic,
//! and a parsed head never claims more bytes than it was given.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard::http::h1::parse::{parse_head, HeadLimits};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let limits = HeadLimits {
        max_header_bytes: 8 << 10,
        max_headers: 64,
    };
    if let Ok(Some(head)) = parse_head(&mut buf, limits) {
        assert!(buf.len() < data.len());
        assert!(head.path.starts_with(b"/"));
    }
});
