//! Run with: cargo bench --bench rest_path
//!
//! The REST hot path piece by piece: HTTP/1.1 request parse (into the header list the previous
//! request left, as a connection does), `ForwardingReq` build + encode, `ForwardingResp` decode +
//! mapping, HTTP/1.1 response write, registry lookup with 10, 10,000 and 100,000 instances (ten per
//! service; each iteration looks up the next of a fixed pseudo-random sequence of the registered
//! services, so a large registry is not all in cache), error mapping, and the whole socket-free
//! path end to end. Allocations per request are counted by the `alloc` bench.

#[path = "support/rest_pipeline.rs"]
mod pipeline;

use std::hint::black_box;

use bytes::{Buf, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use switchyard::error::{ErrorKind, GatewayError, GrpcCode};
use switchyard::http::h1::parse::{parse_head, parse_head_into, Seen};
use switchyard::http::h1::write;
use switchyard::rest::{split_path, RemoteAddr};
use switchyard::upstream::codec::decode_framed;
use switchyard::upstream::{into_response, keep_header};

use pipeline::{registry, response_frame, rest_parts, Pipeline, LIMITS, REQUEST};

/// Lookups in one cycle of the registry bench's key sequence: far more than the 1,000 and 10,000
/// services of the large registries, so their entries are met in no repeating cache-friendly order.
const LOOKUP_KEYS: usize = 1 << 16;

fn parse(c: &mut Criterion) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // As a connection does: each head takes the emptied header list its predecessor left.
    let mut spare = Vec::new();
    c.bench_function("h1/parse_head", |b| {
        b.iter(|| {
            buf.extend_from_slice(REQUEST);
            let head = parse_head_into(&mut buf, LIMITS, &mut spare, &mut Seen::default())
                .unwrap()
                .unwrap();
            let head = black_box(head);
            spare = head.headers;
            spare.clear();
        })
    });
}

fn encode(c: &mut Criterion) {
    let mut buf = BytesMut::from(REQUEST);
    let head = parse_head(&mut buf, LIMITS).unwrap().unwrap();
    let remote = "10.1.2.3:45678".parse().unwrap();
    let mut encode_buf = BytesMut::with_capacity(16 * 1024);
    c.bench_function("upstream/forwarding_req_build_encode", |b| {
        b.iter(|| {
            let (_, path) = split_path(&head.path);
            let remote = RemoteAddr::new(remote);
            let parts = rest_parts(
                &head,
                &head.headers,
                path,
                "users",
                "0123456789abcdef0123456789abcdef",
                &remote,
            );
            black_box(parts.encode_framed(&mut encode_buf, keep_header)).remaining()
        })
    });
}

fn decode(c: &mut Criterion) {
    let frame = response_frame();
    c.bench_function("upstream/forwarding_resp_decode_map", |b| {
        b.iter(|| into_response(decode_framed(black_box(frame.clone())).unwrap()).unwrap())
    });
    let response = into_response(decode_framed(frame.clone()).unwrap()).unwrap();
    let mut out = Vec::with_capacity(4096);
    c.bench_function("h1/response_write", |b| {
        b.iter(|| {
            write::encode(&mut out, black_box(&response), false, false, false);
            let n = out.len();
            out.clear();
            n
        })
    });
}

fn lookup(c: &mut Criterion) {
    for instances in [10, 10_000, 100_000] {
        let view = registry(instances);
        let names: Vec<String> = view
            .services()
            .iter()
            .map(|s| s.name.as_str().to_owned())
            .collect();
        let order = lookup_order(names.len());
        let mut next = 0;
        c.bench_function(&format!("registry/lookup_{instances}_instances"), |b| {
            b.iter(|| {
                let key = black_box(names[order[next] as usize].as_str());
                next = (next + 1) % order.len();
                black_box(view.get(key)).map(|e| e.instances.len())
            })
        });
    }
}

/// [`LOOKUP_KEYS`] indices below `services`, in a fixed pseudo-random order (xorshift64, so every
/// run looks up the same sequence).
fn lookup_order(services: usize) -> Vec<u32> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..LOOKUP_KEYS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % services as u64) as u32
        })
        .collect()
}

fn errors(c: &mut Criterion) {
    c.bench_function("error/grpc_permission_denied_to_response", |b| {
        b.iter_batched(
            || {
                GatewayError::new(
                    ErrorKind::Grpc(GrpcCode::from_status(7)),
                    "caller may not read this order",
                )
            },
            |e| e.into_response(Some("orders"), "0123456789abcdef0123456789abcdef"),
            BatchSize::SmallInput,
        )
    });
}

fn whole_path(c: &mut Criterion) {
    let mut p = Pipeline::new();
    c.bench_function("rest/whole_path_without_sockets", |b| {
        b.iter(|| p.one(black_box(REQUEST)))
    });
}

criterion_group!(benches, parse, encode, decode, lookup, errors, whole_path);
criterion_main!(benches);
