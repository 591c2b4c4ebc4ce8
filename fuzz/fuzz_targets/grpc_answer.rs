//! Backend answers: any bytes as a gRPC message either decode to a ForwardingResp that maps to a
//! response or are refused as a protocol error — never a panic, never an unsafe header — and the
//! in-place reader accepts exactly what prost accepts, with the same headers.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use switchyard::proto::ForwardingResp;
use switchyard::upstream::codec::decode_framed;
use switchyard::upstream::into_response;
use switchyard::upstream::reply::Reply;

fuzz_target!(|data: &[u8]| {
    let ours = Reply::decode(Bytes::copy_from_slice(data));
    match (&ours, ForwardingResp::decode(data)) {
        (Ok(ours), Ok(theirs)) => {
            assert_eq!(ours.status_code, theirs.status_code);
            assert_eq!(ours.body, theirs.body);
            let headers: Vec<(&str, &str)> = ours.headers.iter().collect();
            let expected: Vec<(&str, &str)> = theirs
                .headers
                .iter()
                .map(|h| (h.name.as_str(), h.value.as_str()))
                .collect();
            assert_eq!(headers, expected);
        }
        (Err(_), Err(_)) => {}
        (ours, theirs) => panic!("in-place reader {ours:?}, prost {theirs:?}"),
    }
    if let Ok(resp) = decode_framed(Bytes::copy_from_slice(data)) {
        if let Ok(response) = into_response(resp) {
            assert!((200..=599).contains(&response.status));
            for (name, value) in response.fields() {
                assert!(!name.contains(['\r', '\n']) && !value.contains(['\r', '\n']));
                assert!(!name.bytes().any(|b| b.is_ascii_uppercase()));
            }
        }
    }
});
