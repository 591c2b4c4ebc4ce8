//! Chunked bodies fed in two arbitrary pieces: the decoder never panics and never exceeds its limit.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard::http::h1::chunked::{decode, State};

const MAX_BODY: usize = 4096;

fuzz_target!(|input: (usize, &[u8])| {
    let (split, data) = input;
    let split = split % (data.len() + 1);
    let mut state = State::Size;
    let mut body = BytesMut::new();
    let mut buf = BytesMut::new();
    for part in [&data[..split], &data[split..]] {
        buf.extend_from_slice(part);
        match decode(&mut buf, &mut state, &mut body, MAX_BODY, 1024) {
            Ok(_) => assert!(body.len() <= MAX_BODY),
            Err(_) => return,
        }
    }
});
