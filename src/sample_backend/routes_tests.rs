//! Unit tests for the echo's routing and answers.

use super::*;

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> ForwardingReq {
    ForwardingReq {
        method: method.into(),
        path: path.into(),
        query: "x=1".into(),
        headers: headers.iter().map(|(n, v)| new_header(n, v)).collect(),
        body: Bytes::copy_from_slice(body),
        service: "echo".into(),
        request_id: "rid-1".into(),
        remote_addr: "127.0.0.1:4000".into(),
        graphql_field: String::new(),
    }
}

fn reply_of(action: Action) -> ForwardingResp {
    match action {
        Action::Reply(resp) => resp,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn headers_of(resp: &ForwardingResp) -> Vec<(&str, &str)> {
    resp.headers.iter().map(|h| (&*h.name, &*h.value)).collect()
}

fn json_of(resp: &ForwardingResp) -> serde_json::Value {
    serde_json::from_slice(&resp.body).expect("JSON body")
}

#[test]
fn routes_parse_their_parameters() {
    assert_eq!(parse_route("/"), Ok(Route::Default));
    assert_eq!(parse_route("/a/b"), Ok(Route::Default));
    assert_eq!(parse_route(""), Ok(Route::Default));
    assert_eq!(parse_route("/raw"), Ok(Route::Raw));
    assert_eq!(parse_route("/raw/more"), Ok(Route::Default));
    assert_eq!(parse_route("/status/201"), Ok(Route::Status(201)));
    assert_eq!(parse_route("/grpc-error/7"), Ok(Route::GrpcError(7)));
    assert_eq!(
        parse_route("/delay/250"),
        Ok(Route::Delay(Duration::from_millis(250)))
    );
    assert_eq!(parse_route("/bytes/10"), Ok(Route::Bytes(10)));
    assert_eq!(parse_route("/rst"), Ok(Route::Rst));
    assert_eq!(parse_route("/garbage"), Ok(Route::Garbage));
    assert_eq!(parse_route("/not-grpc"), Ok(Route::NotGrpc));
    assert_eq!(parse_route("/json/users"), Ok(Route::Users));
    assert_eq!(parse_route("/json/users/2"), Ok(Route::User("2")));
    assert_eq!(parse_route("/json/echo"), Ok(Route::JsonEcho));
    assert_eq!(parse_route("/json/nested/3"), Ok(Route::Nested(3)));
}

#[test]
fn out_of_bound_parameters_are_refused() {
    assert!(parse_route("/status/99").is_err());
    assert!(parse_route("/status/600").is_err());
    assert!(parse_route("/status/abc").is_err());
    assert!(parse_route("/grpc-error/-1").is_err());
    assert!(parse_route("/delay/60001").is_err());
    assert_eq!(parse_route("/delay/60000"), Ok(Route::Delay(MAX_DELAY)));
    assert!(parse_route("/bytes/67108865").is_err());
    assert_eq!(
        parse_route("/bytes/67108864"),
        Ok(Route::Bytes(MAX_BYTES_BODY))
    );

    let resp = reply_of(respond(&request("GET", "/delay/forever", &[], b""), "e1"));
    assert_eq!(resp.status_code, 400);
    assert!(json_of(&resp)["error"].is_string());
}

#[test]
fn default_answer_describes_the_request_in_spec_order() {
    let req = request(
        "POST",
        "/a/b",
        &[("accept", "*/*"), ("x-a", "1")],
        b"hi \xff",
    );
    let resp = reply_of(respond(&req, "e1"));
    assert_eq!(resp.status_code, 200);
    assert_eq!(
        headers_of(&resp),
        [
            ("content-type", "application/json"),
            ("x-echo-instance", "e1")
        ]
    );
    assert_eq!(
        std::str::from_utf8(&resp.body).unwrap(),
        concat!(
            r#"{"instance":"e1","service":"echo","method":"POST","path":"/a/b","query":"x=1","#,
            r#""headers":[["accept","*/*"],["x-a","1"]],"body":"hi "#,
            "\u{fffd}",
            r#"","body_len":4,"#,
            r#""request_id":"rid-1","remote_addr":"127.0.0.1:4000","graphql_field":""}"#
        )
    );
}

#[test]
fn status_and_delay_answer_as_default_with_their_status() {
    let resp = reply_of(respond(&request("GET", "/status/404", &[], b""), "e1"));
    assert_eq!(resp.status_code, 404);
    assert_eq!(json_of(&resp)["path"], "/status/404");

    match respond(&request("GET", "/delay/5", &[], b""), "e1") {
        Action::Delayed(wait, resp) => {
            assert_eq!(wait, Duration::from_millis(5));
            assert_eq!(resp.status_code, 200);
            assert_eq!(json_of(&resp)["path"], "/delay/5");
        }
        other => panic!("expected a delayed reply, got {other:?}"),
    }
}

#[test]
fn raw_returns_body_and_content_type_verbatim() {
    let req = request(
        "PUT",
        "/raw",
        &[("content-type", "text/plain")],
        b"\x00\x01abc",
    );
    let resp = reply_of(respond(&req, "e1"));
    assert_eq!(resp.status_code, 200);
    assert_eq!(&resp.body[..], b"\x00\x01abc");
    assert_eq!(
        headers_of(&resp),
        [("content-type", "text/plain"), ("x-echo-instance", "e1")]
    );

    let resp = reply_of(respond(&request("PUT", "/raw", &[], b"z"), "e1"));
    assert_eq!(headers_of(&resp), [("x-echo-instance", "e1")]);
}

#[test]
fn grpc_error_rst_and_garbage_are_actions_not_replies() {
    assert_eq!(
        respond(&request("GET", "/grpc-error/7", &[], b""), "e1"),
        Action::GrpcError {
            code: 7,
            message: "echo error 7".into()
        }
    );
    assert_eq!(
        respond(&request("GET", "/rst", &[], b""), "e1"),
        Action::Reset
    );
    assert_eq!(
        respond(&request("GET", "/garbage", &[], b""), "e1"),
        Action::Garbage
    );
}

#[test]
fn bytes_returns_that_many_x() {
    let resp = reply_of(respond(&request("GET", "/bytes/5", &[], b""), "e1"));
    assert_eq!(&resp.body[..], b"xxxxx");
    assert_eq!(resp.headers[0].value, "application/octet-stream");
    let resp = reply_of(respond(&request("GET", "/bytes/0", &[], b""), "e1"));
    assert!(resp.body.is_empty());
}

#[test]
fn json_users_serves_the_list_and_single_users() {
    let resp = reply_of(respond(&request("GET", "/json/users", &[], b""), "e1"));
    let users = json_of(&resp);
    assert_eq!(users.as_array().unwrap().len(), 2);
    assert_eq!(users[0]["name"], "Ada Lovelace");
    assert_eq!(users[1]["address"]["city"], "Wilmslow");

    let resp = reply_of(respond(&request("GET", "/json/users/2", &[], b""), "e1"));
    assert_eq!(resp.status_code, 200);
    assert_eq!(json_of(&resp)["tags"], serde_json::json!(["cs"]));

    for missing in ["/json/users/3", "/json/users/abc", "/json/users/"] {
        let resp = reply_of(respond(&request("GET", missing, &[], b""), "e1"));
        assert_eq!(resp.status_code, 404, "{missing}");
        assert_eq!(json_of(&resp), serde_json::json!({"error": "no such user"}));
    }
}

#[test]
fn json_nested_is_that_many_arrays_up_to_its_bound() {
    let resp = reply_of(respond(&request("GET", "/json/nested/3", &[], b""), "e1"));
    assert_eq!(&resp.body[..], b"[[[]]]");
    assert_eq!(resp.headers[0].value, "application/json");
    let resp = reply_of(respond(&request("GET", "/json/nested/0", &[], b""), "e1"));
    assert!(resp.body.is_empty());
    let deepest = format!("/json/nested/{MAX_NESTED_DEPTH}");
    let resp = reply_of(respond(&request("GET", &deepest, &[], b""), "e1"));
    assert_eq!(resp.body.len(), 2 * MAX_NESTED_DEPTH);
    for bad in ["/json/nested/1000001", "/json/nested/-1", "/json/nested/x"] {
        let resp = reply_of(respond(&request("GET", bad, &[], b""), "e1"));
        assert_eq!(resp.status_code, 400, "{bad}");
    }
}

#[test]
fn json_echo_returns_valid_json_verbatim_and_refuses_the_rest() {
    let body = br#"{"b":1, "a":[true,null]}"#;
    let resp = reply_of(respond(&request("POST", "/json/echo", &[], body), "e1"));
    assert_eq!(resp.status_code, 200);
    assert_eq!(&resp.body[..], body);
    assert_eq!(resp.headers[0].value, "application/json");

    let resp = reply_of(respond(&request("POST", "/json/echo", &[], b"{nope"), "e1"));
    assert_eq!(resp.status_code, 400);
}

#[test]
fn echo_set_headers_are_added_in_order_with_repeats() {
    let req = request(
        "GET",
        "/",
        &[
            ("x-echo-set", "X-One=1"),
            ("x-other", "a=b"),
            ("x-echo-set", "x-one=2"),
            ("x-echo-set", "cache-control = no-store "),
            ("x-echo-set", "x-eq=a=b"),
        ],
        b"",
    );
    let resp = reply_of(respond(&req, "e1"));
    assert_eq!(
        headers_of(&resp)[2..],
        [
            ("x-one", "1"),
            ("x-one", "2"),
            ("cache-control", "no-store"),
            ("x-eq", "a=b")
        ]
    );
}

#[test]
fn invalid_echo_set_values_are_ignored() {
    assert_eq!(parse_echo_set("no-equals"), None);
    assert_eq!(parse_echo_set("=value"), None);
    assert_eq!(parse_echo_set("bad name=v"), None);
    assert_eq!(parse_echo_set("x-split=a\r\nset-cookie: 1"), None);
    assert_eq!(parse_echo_set("x-empty="), Some(("x-empty".to_owned(), "")));
}

#[test]
fn garbage_payload_is_not_a_forwarding_resp() {
    use prost::Message;
    assert!(ForwardingResp::decode(GARBAGE_PAYLOAD).is_err());
}
