//! The pure (socket-free) REST path shared by the `rest_path` and `alloc` benches: exactly the
//! functions the gateway calls for one HTTP/1.1 request and its answer, in order, with the
//! buffers the gateway reuses per connection (read buffer, output buffer, header list) and per
//! shard (encode buffer). Only the two sockets are missing.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use prost::Message;
use switchyard::http::h1::parse::{parse_head_into, Head, HeadLimits, Seen};
use switchyard::http::h1::write;
use switchyard::http::Field;
use switchyard::names::{Address, InstanceId, ServiceName};
use switchyard::proto::{ForwardingResp, Header};
use switchyard::registry::view::{RegistryView, ServiceEntry};
use switchyard::registry::{Change, InstanceRecord};
use switchyard::request_id::RequestId;
use switchyard::rest::{split_path, without_nominated_headers, RemoteAddr};
use switchyard::upstream::codec::{decode_framed, ForwardingParts};
use switchyard::upstream::{into_response, keep_header};

/// A typical small API request, as curl or a browser's fetch would send it.
pub const REQUEST: &[u8] = b"GET /users/42/orders?limit=20&cursor=abc HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n\
Accept: application/json\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl\r\n\
X-Request-Id: 0123456789abcdef0123456789abcdef\r\n\
Connection: keep-alive\r\n\r\n";

/// Limits as the gateway's defaults.
pub const LIMITS: HeadLimits = HeadLimits {
    max_header_bytes: 32 * 1024,
    max_headers: 100,
};

/// A backend answer (gRPC-framed `ForwardingResp`) like the echo's: two headers, a JSON body.
pub fn response_frame() -> Bytes {
    let resp = ForwardingResp {
        status_code: 200,
        headers: vec![
            Header {
                name: "content-type".into(),
                value: "application/json".into(),
            },
            Header {
                name: "x-echo-instance".into(),
                value: "echo-1".into(),
            },
        ],
        body: Bytes::from_static(
            br#"{"orders":[{"id":1,"total":1999},{"id":2,"total":500}],"next":null}"#,
        ),
    };
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(resp.encoded_len() as u32).to_be_bytes());
    resp.encode(&mut framed).expect("vec grows");
    Bytes::from(framed)
}

/// A registry copy with `instances` instances, ten per service (`svc-0` … ), plus `users`.
pub fn registry(instances: usize) -> RegistryView {
    let mut view = RegistryView::default();
    let mut add = |service: &str, i: usize| {
        view.apply(Change::Upsert(InstanceRecord {
            service: ServiceName::parse(service).expect("valid name"),
            instance: InstanceId::parse(&format!("i{i}")).expect("valid id"),
            address: Address::parse(&format!("10.0.{}.{}:50051", (i / 250) % 250, i % 250))
                .expect("valid address"),
        }));
    };
    add("users", 0);
    for i in 1..instances {
        add(&format!("svc-{}", i / 10), i);
    }
    view
}

/// An empty body, borrowed for as long as the benchmark runs.
static NO_BODY: Bytes = Bytes::new();

/// The `ForwardingReq` parts of a parsed REST request without a body, as `rest::forward` fills
/// them in; `headers` are the head's, less those its `Connection` header nominates
/// (`rest::without_nominated_headers`).
pub fn rest_parts<'a>(
    head: &'a Head,
    headers: &'a [Field],
    path: &'a [u8],
    service: &'a str,
    request_id: &'a str,
    remote: &'a RemoteAddr,
) -> ForwardingParts<'a> {
    ForwardingParts {
        method: head.method.as_str(),
        path,
        query: &head.query,
        headers,
        extra_headers: &[],
        body: &NO_BODY,
        service,
        request_id,
        remote_addr: remote.as_str(),
        graphql_field: "",
    }
}

/// The reused state of one connection and shard.
pub struct Pipeline {
    pub registry: RegistryView,
    pub read_buf: BytesMut,
    pub spare_fields: Vec<Field>,
    pub encode_buf: BytesMut,
    pub out: Vec<u8>,
    pub answer: Bytes,
    pub remote: SocketAddr,
    /// The shard's generator (unused while requests carry their own id).
    pub rng: Cell<u64>,
}

impl Pipeline {
    pub fn new() -> Pipeline {
        Pipeline {
            registry: registry(10),
            read_buf: BytesMut::with_capacity(16 * 1024),
            spare_fields: Vec::new(),
            encode_buf: BytesMut::with_capacity(16 * 1024),
            out: Vec::with_capacity(4096),
            answer: response_frame(),
            remote: "10.1.2.3:45678".parse().expect("valid address"),
            rng: Cell::new(1),
        }
    }

    /// One request through parse → route → encode → (backend) → decode → map → write; returns
    /// the bytes written to the client.
    pub fn one(&mut self, request: &[u8]) -> usize {
        self.one_staged(request, &mut |_| {})
    }

    /// [`Pipeline::one`], calling `mark` with each stage's name once it is done.
    pub fn one_staged(&mut self, request: &[u8], mark: &mut dyn FnMut(&'static str)) -> usize {
        self.read_buf.extend_from_slice(request);
        let head = parse_head_into(
            &mut self.read_buf,
            LIMITS,
            &mut self.spare_fields,
            &mut Seen::default(),
        )
        .expect("valid request")
        .expect("complete request");
        mark("parse head");
        let request_id = RequestId::for_request(&head.headers, &self.rng).id;
        assert!(!request_id.is_generated(), "the client's id");
        mark("request id");
        let (service, path) = split_path(&head.path);
        let name = std::str::from_utf8(service).expect("utf-8");
        let entry: Rc<ServiceEntry> = self.registry.get(name).cloned().expect("registered");
        mark("route + registry lookup");
        let remote = RemoteAddr::new(self.remote);
        let nominated = without_nominated_headers(&head.headers);
        let parts = rest_parts(
            &head,
            nominated.as_deref().unwrap_or(&head.headers),
            path,
            entry.name.as_str(),
            request_id.as_str(),
            &remote,
        );
        let frame = parts.encode_framed(&mut self.encode_buf, keep_header);
        drop(frame);
        mark("ForwardingReq build + encode");
        let resp = decode_framed(self.answer.clone()).expect("valid answer");
        mark("ForwardingResp decode");
        let mut response = into_response(resp).expect("valid answer");
        response.request_id = Some(request_id);
        mark("map to response");
        write::encode(&mut self.out, &response, false, false, false);
        mark("write response");
        let written = self.out.len();
        self.out.clear();
        self.spare_fields = head.headers;
        self.spare_fields.clear();
        written
    }
}
