//! Starts a real backend on 127.0.0.1:0 and calls it with an h2 client over glommio, the way the
//! gateway will: checks framing, trailers, trailers-only errors, resets and flow control.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::FutureExt;
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use h2::client::SendRequest;
use h2::Reason;
use http::{HeaderMap, Request, StatusCode};
use prost::Message;

use super::{grpc_frame, spawn, BackendConfig};
use crate::io::TokioIo;
use crate::proto::{ForwardingReq, ForwardingResp, Header, SEND_PATH};

/// Upper bound on the whole conversation, so a broken server fails the test instead of hanging it.
const TEST_DEADLINE: Duration = Duration::from_secs(20);

/// One gRPC answer as the client saw it.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    /// The framed body, `None` for a trailers-only answer.
    body: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Answer {
    fn grpc_status(&self) -> Option<&str> {
        let from = self.trailers.as_ref().unwrap_or(&self.headers);
        from.get("grpc-status").map(|v| v.to_str().unwrap())
    }

    fn message(&self) -> ForwardingResp {
        let body = self.body.as_ref().expect("a message body");
        let payload = grpc_frame::decode_unary(body, usize::MAX >> 1).expect("one gRPC message");
        ForwardingResp::decode(payload).expect("a ForwardingResp")
    }
}

fn request(path: &str, headers: &[(&str, &str)]) -> ForwardingReq {
    ForwardingReq {
        method: "POST".into(),
        path: path.into(),
        query: String::new(),
        headers: headers
            .iter()
            .map(|(n, v)| Header {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
        body: Bytes::from_static(b"ping"),
        service: "echo".into(),
        request_id: "rid-7".into(),
        remote_addr: "127.0.0.1:9".into(),
        graphql_field: String::new(),
    }
}

async fn call(
    client: &SendRequest<Bytes>,
    addr: SocketAddr,
    grpc_path: &str,
    req: &ForwardingReq,
) -> Result<Answer, h2::Error> {
    call_in_frames(client, addr, grpc_path, req, &[]).await
}

/// `call`, with the framed message cut at `cuts` (ascending offsets) into DATA frames.
async fn call_in_frames(
    client: &SendRequest<Bytes>,
    addr: SocketAddr,
    grpc_path: &str,
    req: &ForwardingReq,
    cuts: &[usize],
) -> Result<Answer, h2::Error> {
    let mut client = client.clone().ready().await?;
    let http_request = Request::post(format!("http://{addr}{grpc_path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(http_request, false)?;
    let mut message = grpc_frame::encode_message(req);
    let mut sent = 0;
    for &cut in cuts {
        send.send_data(message.split_to(cut - sent), false)?;
        sent = cut;
    }
    send.send_data(message, true)?;
    let (parts, mut body) = response.await?.into_parts();
    if body.is_end_stream() {
        return Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body: None,
            trailers: None,
        });
    }
    let mut received = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        received.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?;
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: Some(received.into()),
        trailers,
    })
}

#[test]
fn answers_over_h2c_as_the_spec_says() {
    let backend = spawn(BackendConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        instance: "e1".into(),
    })
    .expect("backend starts");
    let addr = backend.local_addr();
    assert_ne!(addr.port(), 0);

    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .name("echo-test-client")
        .io_memory(super::IO_MEMORY)
        .make()
        .expect("client executor");
    executor.run(async move {
        let conversation = async move {
            let stream = TcpStream::connect(addr).await.expect("connect");
            let (client, connection) = h2::client::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            glommio::spawn_local(connection).detach();
            check_calls(&client, addr).await;
            Ok(())
        };
        glommio::timer::timeout(TEST_DEADLINE, conversation)
            .await
            .expect("the conversation finished within the deadline");
    });
}

async fn check_calls(client: &SendRequest<Bytes>, addr: SocketAddr) {
    // Default echo: headers, one message, then grpc-status 0 trailers.
    let set = [("x-echo-set", "x-one=1"), ("x-echo-set", "x-one=2")];
    let answer = call(client, addr, SEND_PATH, &request("/a/b", &set))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/grpc");
    assert_eq!(answer.grpc_status(), Some("0"));
    let resp = answer.message();
    assert_eq!(resp.status_code, 200);
    let headers: Vec<_> = resp.headers.iter().map(|h| (&*h.name, &*h.value)).collect();
    assert_eq!(
        headers,
        [
            ("content-type", "application/json"),
            ("x-echo-instance", "e1"),
            ("x-one", "1"),
            ("x-one", "2")
        ]
    );
    let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(json["instance"], "e1");
    assert_eq!(json["path"], "/a/b");
    assert_eq!(json["body"], "ping");
    assert_eq!(json["request_id"], "rid-7");

    // A message split over DATA frames (inside the 5-byte prefix, then inside the message) is
    // gathered and answered as one sent whole.
    let answer = call_in_frames(client, addr, SEND_PATH, &request("/a/b", &[]), &[3, 20])
        .await
        .unwrap();
    assert_eq!(answer.grpc_status(), Some("0"));
    let json: serde_json::Value = serde_json::from_slice(&answer.message().body).unwrap();
    assert_eq!(
        (&json["path"], &json["body"]),
        (&"/a/b".into(), &"ping".into())
    );

    // gRPC error: trailers-only, status and message in the one HEADERS frame.
    let answer = call(client, addr, SEND_PATH, &request("/grpc-error/7", &[]))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_none(), "trailers-only answer");
    assert_eq!(answer.headers["content-type"], "application/grpc");
    assert_eq!(answer.grpc_status(), Some("7"));
    assert_eq!(answer.headers["grpc-message"], "echo error 7");

    // Unknown gRPC method.
    let answer = call(client, addr, "/other.Service/Call", &request("/", &[]))
        .await
        .unwrap();
    assert_eq!(answer.grpc_status(), Some("12"));

    // /rst resets the stream.
    let error = call(client, addr, SEND_PATH, &request("/rst", &[]))
        .await
        .err()
        .expect("a reset");
    assert_eq!(error.reason(), Some(Reason::INTERNAL_ERROR));

    // /garbage is framed correctly but does not decode.
    let answer = call(client, addr, SEND_PATH, &request("/garbage", &[]))
        .await
        .unwrap();
    assert_eq!(answer.grpc_status(), Some("0"));
    let body = answer.body.unwrap();
    let payload = grpc_frame::decode_unary(&body, 1024).unwrap();
    assert!(ForwardingResp::decode(payload).is_err());

    // A body far over the default 64 KiB window arrives whole through flow control.
    let answer = call(client, addr, SEND_PATH, &request("/bytes/3000000", &[]))
        .await
        .unwrap();
    let resp = answer.message();
    assert_eq!(resp.body.len(), 3_000_000);
    assert!(resp.body.iter().all(|&b| b == b'x'));

    // Many calls in flight at once on one connection all get their own answer.
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            glommio::spawn_local(async move {
                let path = format!("/status/{}", 200 + i % 3);
                let answer = call(&client, addr, SEND_PATH, &request(&path, &[]))
                    .await
                    .unwrap();
                answer.message().status_code
            })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await, 200 + i32::try_from(i % 3).unwrap());
    }

    // Streams are served concurrently: a quick call overtakes a long delay on the same
    // connection (the losing delay call is dropped, which resets its stream).
    let slow = async {
        call(client, addr, SEND_PATH, &request("/delay/60000", &[]))
            .await
            .unwrap();
        "delay"
    };
    let quick = async {
        call(client, addr, SEND_PATH, &request("/delay/1", &[]))
            .await
            .unwrap();
        "quick"
    };
    assert_eq!(quick.or(slow).await, "quick");
}

#[test]
fn reports_an_address_it_cannot_bind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let error = spawn(BackendConfig {
        listen: taken.local_addr().unwrap(),
        instance: "e1".into(),
    })
    .expect_err("the address is taken");
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
}
