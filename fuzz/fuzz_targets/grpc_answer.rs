//! Backend answers: any bytes as a gRPC message either decode to a ForwardingResp that maps to a
//! response or are refused as a protocol error — never a panic, never an unsafe header.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchyard::upstream::codec::decode_framed;
use switchyard::upstream::into_response;

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = decode_framed(Bytes::copy_from_slice(data)) {
        if let Ok(response) = into_response(resp) {
            assert!((200..=599).contains(&response.status));
            for (name, value) in &response.headers {
                assert!(!name.contains(['\r', '\n']) && !value.contains(['\r', '\n']));
            }
        }
    }
});
