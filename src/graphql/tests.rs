//! Tests of the whole engine through `handle`, with a mock backend that records its calls.

use std::cell::RefCell;
use std::collections::HashMap;
use std::task::Poll;

use bytes::Bytes;
use futures_lite::future::{block_on, poll_fn};
use serde_json::{json, Value as Json};

use super::*;

/// Canned answers per service; records calls and the start/end of each, and makes every call wait
/// for one poll so that concurrent calls interleave their events and sequential ones do not.
struct Mock {
    services: Vec<String>,
    answers: HashMap<String, Result<FieldAnswer, FieldError>>,
    calls: RefCell<Vec<FieldCall>>,
    events: RefCell<Vec<String>>,
}

impl Mock {
    fn new(services: &[&str]) -> Self {
        Mock {
            services: services.iter().map(|s| s.to_string()).collect(),
            answers: HashMap::new(),
            calls: RefCell::new(Vec::new()),
            events: RefCell::new(Vec::new()),
        }
    }

    fn answer(mut self, service: &str, status: u16, body: &str) -> Self {
        self.answers.insert(
            service.to_owned(),
            Ok(FieldAnswer {
                status,
                body: Bytes::from(body.to_owned()),
            }),
        );
        self
    }

    fn fail(mut self, service: &str, code: &str, status: u16) -> Self {
        self.answers.insert(
            service.to_owned(),
            Err(FieldError {
                code: code.to_owned(),
                status,
                message: format!("{service} failed"),
            }),
        );
        self
    }

    fn calls(&self) -> Vec<FieldCall> {
        self.calls.borrow().clone()
    }
}

impl Backend for Mock {
    fn services(&self) -> Vec<String> {
        self.services.clone()
    }

    async fn call(&self, call: FieldCall) -> Result<FieldAnswer, FieldError> {
        let key = call.graphql_field.clone();
        self.events.borrow_mut().push(format!("start {key}"));
        let answer = self
            .answers
            .get(&call.service)
            .cloned()
            .unwrap_or(Ok(FieldAnswer {
                status: 200,
                body: Bytes::from_static(b"{}"),
            }));
        self.calls.borrow_mut().push(call);
        let mut yielded = false;
        poll_fn(|cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
        self.events.borrow_mut().push(format!("end {key}"));
        answer
    }
}

/// A backend whose first call completes only after a second call has started; it gives up (and
/// fails the field) after a bounded number of polls, so a sequential executor cannot hang the test.
struct NeedsConcurrency {
    started: RefCell<Vec<String>>,
    finished: RefCell<Vec<String>>,
}

impl Backend for NeedsConcurrency {
    fn services(&self) -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    async fn call(&self, call: FieldCall) -> Result<FieldAnswer, FieldError> {
        let index = self.started.borrow().len();
        self.started.borrow_mut().push(call.service.clone());
        if index == 0 {
            let mut polls = 0;
            poll_fn(|cx| {
                polls += 1;
                if self.started.borrow().len() >= 2 || polls > 1000 {
                    Poll::Ready(())
                } else {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
            if self.started.borrow().len() < 2 {
                return Err(FieldError {
                    code: "NOT_CONCURRENT".into(),
                    status: 500,
                    message: "second call never started".into(),
                });
            }
        }
        self.finished.borrow_mut().push(call.service.clone());
        Ok(FieldAnswer {
            status: 200,
            body: Bytes::from(format!(r#"{{"from":"{}"}}"#, call.service)),
        })
    }
}

fn run<B: Backend>(
    backend: &B,
    request: HttpRequest<'_>,
    limits: &Limits,
) -> (u16, &'static str, Json) {
    let response = block_on(handle(backend, request, limits));
    let body: Json = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "response is not JSON ({e}): {}",
            String::from_utf8_lossy(&response.body)
        )
    });
    (response.status, response.content_type, body)
}

fn post_with<B: Backend>(
    backend: &B,
    body: &Json,
    accept: Option<&str>,
    limits: &Limits,
) -> (u16, Json) {
    let bytes = serde_json::to_vec(body).unwrap();
    let request = HttpRequest {
        method: HttpMethod::Post,
        query_string: "",
        content_type: Some("application/json"),
        accept,
        content_coding: None,
        body: &bytes,
    };
    let (status, _, json) = run(backend, request, limits);
    (status, json)
}

fn post<B: Backend>(backend: &B, query: &str) -> (u16, Json) {
    post_with(
        backend,
        &json!({ "query": query }),
        None,
        &Limits::default(),
    )
}

fn post_vars<B: Backend>(backend: &B, query: &str, variables: Json) -> (u16, Json) {
    post_with(
        backend,
        &json!({ "query": query, "variables": variables }),
        None,
        &Limits::default(),
    )
}

fn get<B: Backend>(backend: &B, query_string: &str) -> (u16, Json) {
    let request = HttpRequest {
        method: HttpMethod::Get,
        query_string,
        content_type: None,
        accept: None,
        content_coding: None,
        body: b"",
    };
    let (status, _, json) = run(backend, request, &Limits::default());
    (status, json)
}

/// The messages of a response's errors.
fn messages(body: &Json) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["message"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts a request error: no data, one error containing `needle` with the given code and location.
fn assert_request_error(body: &Json, code: &str, needle: &str, location: Option<(u64, u64)>) {
    assert!(
        body.get("data").is_none(),
        "request errors have no data: {body}"
    );
    let error = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["message"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no error containing {needle:?} in {body}"));
    assert_eq!(error["extensions"]["code"], code, "{error}");
    if let Some((line, column)) = location {
        assert_eq!(
            error["locations"][0],
            json!({"line": line, "column": column}),
            "{error}"
        );
    }
}

// ---- execution -------------------------------------------------------------------------------

#[test]
fn query_root_fields_run_concurrently() {
    let backend = NeedsConcurrency {
        started: RefCell::new(Vec::new()),
        finished: RefCell::new(Vec::new()),
    };
    let (status, body) = post(&backend, "{ a b }");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"data": {"a": {"from": "a"}, "b": {"from": "b"}}})
    );
    assert_eq!(
        *backend.finished.borrow(),
        ["b", "a"],
        "the first call finished after the second"
    );
}

#[test]
fn query_calls_interleave_and_mutation_calls_do_not() {
    let backend = Mock::new(&["a", "b"]);
    post(&backend, "{ x: a y: b z: a }");
    assert_eq!(
        *backend.events.borrow(),
        ["start x", "start y", "start z", "end x", "end y", "end z"]
    );

    let backend = Mock::new(&["a", "b"]);
    let (status, _) = post(
        &backend,
        "mutation { x: a(path: \"/1\") y: b z: a(path: \"/2\") }",
    );
    assert_eq!(status, 200);
    assert_eq!(
        *backend.events.borrow(),
        ["start x", "end x", "start y", "end y", "start z", "end z"]
    );
    let calls = backend.calls();
    let order: Vec<(&str, &str, &str)> = calls
        .iter()
        .map(|c| {
            (
                c.graphql_field.as_str(),
                c.service.as_str(),
                c.path.as_str(),
            )
        })
        .collect();
    assert_eq!(order, [("x", "a", "/1"), ("y", "b", "/"), ("z", "a", "/2")]);
    assert!(
        calls.iter().all(|c| c.method == "POST"),
        "POST is the mutation default"
    );
}

#[test]
fn call_carries_every_argument() {
    let backend = Mock::new(&["user-svc"]);
    let (status, body) = post(
        &backend,
        r#"{ u: user_svc(method: "patch", path: "/users/7", query: "a=1&b=2",
              headers: [{name: "X-Trace", value: "t1"}, {name: "Accept", value: "text/plain"}],
              body: {name: "ann", tags: ["x", 1, true, null], nested: {deep: ENUMISH}}) }"#,
    );
    assert_eq!(status, 200, "{body}");
    let call = &backend.calls()[0];
    assert_eq!(call.service, "user-svc");
    assert_eq!(call.method, "PATCH");
    assert_eq!(call.path, "/users/7");
    assert_eq!(call.query, "a=1&b=2");
    assert_eq!(
        call.headers,
        [
            ("content-type".into(), "application/json".into()),
            ("x-trace".into(), "t1".into()),
            ("accept".into(), "text/plain".into())
        ]
    );
    let sent: Json = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"name": "ann", "tags": ["x", 1, true, null], "nested": {"deep": "ENUMISH"}})
    );
    assert_eq!(call.graphql_field, "u");

    let backend = Mock::new(&["user-svc"]);
    post(&backend, "{ user_svc }");
    let call = &backend.calls()[0];
    assert_eq!(
        (
            call.method.as_str(),
            call.path.as_str(),
            call.query.as_str(),
            call.body.is_none()
        ),
        ("GET", "/", "", true)
    );
    assert_eq!(call.graphql_field, "user_svc");
    assert!(call.headers.is_empty());
}

#[test]
fn services_starting_with_a_digit_are_fields_with_a_leading_underscore() {
    let backend = Mock::new(&["9lives", "123", "4-x", "echo"]);
    let (status, body) = post(&backend, "{ _9lives _123 four: _4_x echo }");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"data": {"_9lives": {}, "_123": {}, "four": {}, "echo": {}}})
    );
    let called: Vec<(String, String)> = backend
        .calls()
        .into_iter()
        .map(|c| (c.service, c.graphql_field))
        .collect();
    assert_eq!(
        called,
        [
            ("9lives".into(), "_9lives".into()),
            ("123".into(), "_123".into()),
            ("4-x".into(), "four".into()),
            ("echo".into(), "echo".into())
        ]
    );
    // Introspection names only valid GraphQL names, so introspection-driven clients accept it.
    let (_, body) = post(&backend, r#"{ __type(name: "Query") { fields { name } } }"#);
    let names: Vec<&str> = body["data"]["__type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["_123", "_4_x", "_9lives", "echo"]);
    // An unknown one names the service it stands for; a name no service maps to names none.
    let (_, body) = post(&backend, "{ _7up __nope }");
    assert_eq!(
        messages(&body),
        [
            "Cannot query field \"_7up\" on type \"Query\": no service \"7up\" is registered.",
            "Cannot query field \"__nope\" on type \"Query\"."
        ]
    );
    assert_eq!(backend.calls().len(), 4);
}

#[test]
fn field_names_map_back_to_service_names() {
    for (service, field) in [
        ("echo", "echo"),
        ("user-svc", "user_svc"),
        ("a--b", "a__b"),
        ("9lives", "_9lives"),
        ("123", "_123"),
        ("4-x", "_4_x"),
    ] {
        assert_eq!(schema::field_name(service), field);
        assert_eq!(schema::service_name(field).as_deref(), Some(service));
    }
    for field in ["__schema", "_x", "a_", "Upper", "_", "_9_"] {
        assert_eq!(schema::service_name(field), None, "{field}");
    }
}

#[test]
fn a_content_type_in_headers_replaces_the_one_the_body_brings() {
    let backend = Mock::new(&["a"]);
    let (_, body) = post(
        &backend,
        r#"mutation { x: a(body: {a: 1}, headers: [{name: "x-h", value: "1"}, {name: "Content-Type", value: "text/plain"}])
                      y: a(body: {a: 1})
                      z: a(headers: {name: "content-type", value: "text/csv"}) }"#,
    );
    assert_eq!(body["errors"], Json::Null, "{body}");
    let headers: Vec<Vec<(String, String)>> =
        backend.calls().into_iter().map(|c| c.headers).collect();
    let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    assert_eq!(
        headers,
        [
            vec![pair("x-h", "1"), pair("content-type", "text/plain")],
            vec![pair("content-type", "application/json")],
            vec![pair("content-type", "text/csv")],
        ]
    );
    // Two are one too many.
    let backend = Mock::new(&["a"]);
    let (_, body) = post(
        &backend,
        r#"{ a(headers: [{name: "content-type", value: "a/b"}, {name: "Content-Type", value: "c/d"}]) }"#,
    );
    assert_eq!(
        body["errors"][0]["message"],
        "The header \"content-type\" is given more than once in \"headers\"."
    );
    assert_eq!(body["errors"][0]["extensions"]["status"], 400);
    assert!(backend.calls().is_empty());
}

#[test]
fn the_headers_argument_may_not_give_a_call_a_second_host_or_request_id() {
    for (name, why) in [
        ("Host", "a call carries its request's Host"),
        ("x-request-id", "a call carries its request's id"),
    ] {
        let backend = Mock::new(&["a"]);
        let document =
            format!(r#"{{ a(headers: [{{name: "{name}", value: "evil.example"}}]) ok: a }}"#);
        let (_, body) = post(&backend, &document);
        let lower = name.to_ascii_lowercase();
        assert_eq!(
            body["errors"][0]["message"],
            format!("The header \"{lower}\" cannot be given in \"headers\": {why}."),
            "{body}"
        );
        assert_eq!(body["errors"][0]["extensions"]["status"], 400);
        assert_eq!(backend.calls().len(), 1, "only the other field is called");
    }
}

#[test]
fn hop_by_hop_and_framing_entries_of_the_headers_argument_are_dropped() {
    let backend = Mock::new(&["a"]);
    let (status, body) = post(
        &backend,
        r#"{ a(headers: [{name: "Connection", value: "x-kept"}, {name: "keep-alive", value: "1"},
              {name: "TE", value: "trailers"}, {name: "upgrade", value: "h2c"},
              {name: "Proxy-Authorization", value: "p"}, {name: "proxy-anything", value: "p"},
              {name: "transfer-encoding", value: "chunked"}, {name: "trailer", value: "t"},
              {name: "Content-Length", value: "5"}, {name: "x-kept", value: "1"},
              {name: "proxy", value: "not a prefix"}]) }"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        backend.calls()[0].headers,
        [
            ("x-kept".into(), "1".into()),
            ("proxy".into(), "not a prefix".into())
        ]
    );
}

#[test]
fn a_path_without_leading_slash_is_a_field_error_and_no_call() {
    let backend = Mock::new(&["a"]);
    let (status, body) = post(&backend, "{ ok: a  bad: a(path: \"users\") }");
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!({"ok": {}, "bad": null}));
    assert_eq!(
        body["errors"][0]["extensions"],
        json!({"code": "BAD_REQUEST", "status": 400})
    );
    assert_eq!(body["errors"][0]["path"], json!(["bad"]));
    assert_eq!(backend.calls().len(), 1);
}

#[test]
fn paths_queries_and_header_values_no_request_could_carry_are_field_errors() {
    let document = r#"query($p: String, $q: String, $v: String = "v") {
        a(path: $p, query: $q, headers: {name: "x-h", value: $v}) }"#;
    for (variables, message) in [
        (
            json!({"p": "/a\r\nb"}),
            r#"The path "/a\r\nb" contains a line break."#,
        ),
        (json!({"p": "/a b"}), r#"The path "/a b" contains a space."#),
        (json!({"p": "/a\tb"}), r#"The path "/a\tb" contains a tab."#),
        (
            json!({"p": "/a\u{0}b"}),
            r#"The path "/a\0b" contains a NUL character."#,
        ),
        (
            json!({"p": "/a\u{7f}"}),
            r#"The path "/a\u{7f}" contains a control character (U+007F)."#,
        ),
        (
            json!({"p": "/a\u{2028}"}),
            r#"The path "/a\u{2028}" contains white space (U+2028)."#,
        ),
        (json!({"p": "/a#top"}), r#"The path "/a#top" contains '#'."#),
        (
            json!({"p": "/a?b=1"}),
            "The path \"/a?b=1\" contains '?' (give the query string in the `query` argument).",
        ),
        (
            json!({"q": "?x=1 "}),
            r#"The query string "x=1 " contains a space."#,
        ),
        (
            json!({"q": "a=\u{0}\r\n"}),
            r#"The query string "a=\0\r\n" contains a NUL character."#,
        ),
        (
            json!({"q": "a=1#f"}),
            r#"The query string "a=1#f" contains '#'."#,
        ),
        (
            json!({"v": "a\u{0}b"}),
            r#"The value of header "x-h" contains a NUL character."#,
        ),
        (
            json!({"v": "a\nb"}),
            r#"The value of header "x-h" contains a line break."#,
        ),
        (
            json!({"v": "a\u{1}"}),
            r#"The value of header "x-h" contains a control character (U+0001)."#,
        ),
    ] {
        let backend = Mock::new(&["a"]);
        let (status, body) = post_vars(&backend, document, variables.clone());
        assert_eq!(status, 200, "{variables}");
        assert_eq!(
            body,
            json!({"errors": [{"message": message, "locations": [{"line": 2, "column": 9}],
                   "path": ["a"], "extensions": {"code": "BAD_REQUEST", "status": 400}}],
                   "data": {"a": null}}),
            "{variables}"
        );
        assert!(backend.calls().is_empty(), "{variables}");
    }
    // What a request line can carry passes: a leading '?' of the query string is dropped, `?`
    // may appear in a query string, percent-encoding is kept, a header value may hold a tab.
    let backend = Mock::new(&["a"]);
    let (_, body) = post_vars(
        &backend,
        document,
        json!({"p": "/caf%C3%A9/é", "q": "?a=1&b=?&c=%20", "v": "a\tb"}),
    );
    assert_eq!(body, json!({"data": {"a": {}}}));
    let call = &backend.calls()[0];
    assert_eq!(
        (call.path.as_str(), call.query.as_str()),
        ("/caf%C3%A9/é", "a=1&b=?&c=%20")
    );
    assert_eq!(call.headers, [("x-h".into(), "a\tb".into())]);
}

#[test]
fn failing_services_beside_a_healthy_one_keep_partial_data() {
    let backend = Mock::new(&["good", "down", "missing", "plain", "garbled"])
        .answer("good", 200, r#"{"id":1,"name":"ann"}"#)
        .fail("down", "UPSTREAM_TIMEOUT", 504)
        .answer(
            "missing",
            404,
            r#"{"error":{"code":"NOT_FOUND","message":"no such user","service":"missing","request_id":"r"}}"#,
        )
        .answer("plain", 500, "oops")
        .answer("garbled", 200, "<html>");
    let (status, body) = post(&backend, "{ good { name } down\n  missing plain garbled }");
    assert_eq!(status, 200);
    assert_eq!(
        body["data"],
        json!({"good": {"name": "ann"}, "down": null, "missing": null, "plain": null, "garbled": null})
    );
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 4);
    assert_eq!(
        errors[0],
        json!({"message": "down failed", "locations": [{"line": 1, "column": 17}], "path": ["down"],
               "extensions": {"code": "UPSTREAM_TIMEOUT", "status": 504}})
    );
    assert_eq!(errors[1]["message"], "no such user");
    assert_eq!(errors[1]["locations"], json!([{"line": 2, "column": 3}]));
    assert_eq!(
        errors[1]["extensions"],
        json!({"code": "NOT_FOUND", "status": 404})
    );
    assert_eq!(
        errors[2]["extensions"],
        json!({"code": "BACKEND_ERROR", "status": 500})
    );
    assert_eq!(errors[2]["path"], json!(["plain"]));
    assert_eq!(
        errors[3]["extensions"],
        json!({"code": "BAD_BACKEND_RESPONSE", "status": 502})
    );
    assert_eq!(errors[3]["path"], json!(["garbled"]));
}

#[test]
fn numbers_reach_the_backend_and_come_back_digit_for_digit() {
    // Beyond 2^64, beyond i64's low end, and more decimal digits than an f64 holds: none of them
    // may be rounded on the way to the backend (literal or variable) or back to the client.
    let exact = [
        "123456789012345678901",
        "-9223372036854775809",
        "0.10000000000000000001",
    ];
    let answer = format!(r#"{{"a":{},"b":{},"c":{}}}"#, exact[0], exact[1], exact[2]);
    let backend = Mock::new(&["ledger"]).answer("ledger", 200, &answer);
    let (status, body) = post_vars(
        &backend,
        &format!(
            "query($v: JSON) {{ x: ledger(body: {{a: {}, b: {}, c: {}}}) y: ledger(body: $v) }}",
            exact[0], exact[1], exact[2]
        ),
        serde_json::from_str(&format!(r#"{{"v": {answer}}}"#)).unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    for call in backend.calls() {
        let sent = std::str::from_utf8(call.body.as_ref().unwrap()).unwrap();
        for digits in exact {
            assert!(sent.contains(digits), "{digits} in {sent}");
        }
    }
    let answered = body.to_string();
    for digits in exact {
        assert_eq!(
            answered.matches(digits).count(),
            2,
            "{digits} in {answered}"
        );
    }
}

#[test]
fn projection_through_handle() {
    let backend = Mock::new(&["user-svc"]).answer(
        "user-svc",
        200,
        r#"{"users":[{"id":1,"name":"ann","address":{"city":"Oslo","zip":"0150"},"password":"x"},
                    {"id":2,"name":"bob","address":null}],"total":2,"next":"c2"}"#,
    );
    let (_, body) = post(
        &backend,
        "{ user_svc { total users { id who: name address { city country } __typename } absent } }",
    );
    assert_eq!(
        body,
        json!({"data": {"user_svc": {"total": 2, "users": [
            {"id": 1, "who": "ann", "address": {"city": "Oslo", "country": null}, "__typename": "JSON"},
            {"id": 2, "who": "bob", "address": null, "__typename": "JSON"}], "absent": null}}})
    );
    let (_, body) = post(&backend, "{ whole: user_svc  __typename }");
    assert_eq!(body["data"]["whole"]["next"], "c2");
    assert_eq!(body["data"]["whole"]["users"][0]["password"], "x");
    assert_eq!(body["data"]["__typename"], "Query");
    let (_, body) = post(&backend, "mutation { t: __typename }");
    assert_eq!(body["data"], json!({"t": "Mutation"}));
}

#[test]
fn variables_with_defaults_and_coercion() {
    let query = r#"query Q($path: String = "/default", $h: [HeaderInput!], $b: JSON, $m: String!) {
        a(path: $path, headers: $h, body: $b, method: $m) }"#;
    let backend = Mock::new(&["a"]);
    let (status, body) = post_vars(
        &backend,
        query,
        json!({"m": "put", "h": {"name": "X-One", "value": "1"}}),
    );
    assert_eq!(status, 200, "{body}");
    let call = &backend.calls()[0];
    assert_eq!(call.path, "/default");
    assert_eq!(call.method, "PUT");
    assert_eq!(
        call.headers,
        [("x-one".into(), "1".into())],
        "a single value coerces to a list"
    );
    assert!(call.body.is_none());

    let backend = Mock::new(&["a"]);
    post_vars(
        &backend,
        query,
        json!({"m": "get", "path": "/given", "b": {"k": [1]}}),
    );
    let call = &backend.calls()[0];
    assert_eq!(call.path, "/given");
    assert_eq!(call.body.as_deref(), Some(&br#"{"k":[1]}"#[..]));

    let backend = Mock::new(&["a"]);
    let (status, body) = post_vars(&backend, query, json!({"path": 3, "h": [{"name": "x"}]}));
    assert_eq!(status, 200);
    assert_request_error(
        &body,
        "BAD_USER_INPUT",
        "\"$path\" got an invalid value 3",
        Some((1, 9)),
    );
    assert_request_error(&body, "BAD_USER_INPUT", "[0].value", None);
    assert_request_error(
        &body,
        "BAD_USER_INPUT",
        "\"$m\" of required type \"String!\" was not provided",
        None,
    );
    assert!(backend.calls().is_empty());
}

#[test]
fn an_explicit_null_where_a_value_is_required_is_an_error_not_a_default() {
    // Validation lets a nullable variable with a default into a non-null position; an explicit
    // `null` then reaches it, which graphql-js refuses at execution.
    let if_null = |location: (u64, u64)| {
        json!({"errors": [{
            "message": "Argument \"if\" of non-null type \"Boolean!\" must not be null.",
            "locations": [{"line": location.0, "column": location.1}],
            "extensions": {"code": "BAD_USER_INPUT", "status": 400}}]})
    };
    for (document, location) in [
        (
            "query($s: Boolean = true) { echo @skip(if: $s) { path } }",
            (1, 44),
        ),
        (
            "query($s: Boolean = true) { echo @include(if: $s) { path } }",
            (1, 47),
        ),
        // Inside a value as well, and through a fragment.
        (
            "query($s: Boolean = true) { echo { ...F } } fragment F on JSON { a @include(if: $s) }",
            (1, 81),
        ),
        // `@skip(if: true)` decides first, as in graphql-js; otherwise `@include` is looked at.
        (
            "query($s: Boolean = true) { echo @include(if: $s) @skip(if: false) }",
            (1, 47),
        ),
    ] {
        let backend = Mock::new(&["echo"]);
        let (status, body) = post_vars(&backend, document, json!({"s": null}));
        assert_eq!((status, body), (200, if_null(location)), "{document}");
        assert!(backend.calls().is_empty());
    }
    let backend = Mock::new(&["echo"]);
    let (_, body) = post_vars(
        &backend,
        "query($s: Boolean = true) { echo @include(if: $s) @skip(if: true) }",
        json!({"s": null}),
    );
    assert_eq!(body, json!({"data": {}}));
    // Left out, the default applies.
    let (_, body) = post_vars(
        &backend,
        "query($s: Boolean = true) { echo @skip(if: $s) t: __typename }",
        json!({}),
    );
    assert_eq!(body, json!({"data": {"t": "Query"}}));

    // A field argument: a field error, and no call for that field.
    let backend = Mock::new(&["echo"]);
    let (_, body) = post_vars(
        &backend,
        r#"query($h: String = "v", $i: HeaderInput = {name: "a", value: "b"}) { echo(headers: [{name: "x-h", value: $h}]) two: echo(headers: [$i]) ok: echo(headers: {name: "x-h", value: "w"}) }"#,
        json!({"h": null, "i": null}),
    );
    let invalid = |message: &str, column: u64, key: &str| {
        json!({"message": message, "locations": [{"line": 1, "column": column}], "path": [key],
               "extensions": {"code": "BAD_REQUEST", "status": 400}})
    };
    assert_eq!(
        body,
        json!({
            "errors": [
                invalid("Argument \"headers\" has invalid value [{name: \"x-h\", value: $h}].", 70, "echo"),
                invalid("Argument \"headers\" has invalid value [$i].", 112, "two"),
            ],
            "data": {"echo": null, "two": null, "ok": {}}})
    );
    assert_eq!(backend.calls().len(), 1);
    assert_eq!(
        backend.calls()[0].headers,
        [("x-h".to_owned(), "w".to_owned())]
    );
    // And the root `__type(name:)`.
    let (_, body) = post_vars(
        &backend,
        r#"query($n: String = "Query") { __type(name: $n) { name } }"#,
        json!({"n": null}),
    );
    assert_eq!(
        body,
        json!({
            "errors": [invalid("Argument \"name\" of non-null type \"String!\" must not be null.", 31, "__type")],
            "data": {"__type": null}})
    );
}

#[test]
fn fragments_named_and_inline_with_skip_and_include() {
    let backend = Mock::new(&["a", "b"]).answer("a", 200, r#"{"x":1,"y":2,"z":3}"#);
    let (status, body) = post_vars(
        &backend,
        r#"query($yes: Boolean = true, $no: Boolean!) {
             ...Root
             ... on Query { b @include(if: $no) }
             skipped: a @skip(if: true)
           }
           fragment Root on Query { a { ...Xy ... @include(if: $yes) { z } y @skip(if: $yes) } }
           fragment Xy on JSON { x ... on JSON { y } }"#,
        json!({"no": false}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"data": {"a": {"x": 1, "y": 2, "z": 3}}}));
    assert_eq!(backend.calls().len(), 1);
}

#[test]
fn same_response_key_merges_into_one_call() {
    let backend = Mock::new(&["a"]).answer("a", 200, r#"{"x":1,"y":2}"#);
    let (_, body) = post(&backend, "{ a { x } ... on Query { a { y } } }");
    assert_eq!(body, json!({"data": {"a": {"x": 1, "y": 2}}}));
    assert_eq!(backend.calls().len(), 1);
}

// ---- parsing (spec §2, October 2021; the vendored async-graphql-parser) ------------------------

/// The body a `mutation { a(body: ...) }` with `value` sends to the backend.
fn body_sent_for(value: &str) -> Json {
    let backend = Mock::new(&["a"]);
    let (status, body) = post(&backend, &format!("mutation {{ a(body: {value}) }}"));
    assert_eq!(status, 200, "{value}: {body}");
    assert_eq!(body["errors"], Json::Null, "{value}: {body}");
    let calls = backend.calls();
    serde_json::from_slice(calls[0].body.as_ref().unwrap()).unwrap()
}

/// Asserts that `value` as a call's body is a syntax error at `column` and that nothing is called.
fn assert_body_syntax_error(value: &str, needle: &str, column: u64) {
    let backend = Mock::new(&["a"]);
    let document = format!("mutation {{ a(body: {value}) }}");
    let (status, body) = post(&backend, &document);
    assert_eq!(status, 200, "{value}: {body}");
    assert_request_error(&body, "GRAPHQL_PARSE_FAILED", needle, Some((1, column)));
    assert!(backend.calls().is_empty(), "{value} was called");
}

/// `true`, `false` and `null` are those exact names (§2.9.3, §2.9.5, §2.9.6) and a name takes every
/// name character that follows (§2.1.9): `trueish` is one enum value, which the JSON scalar sends as
/// a string, not `true` and `ish`. The backend got `[true,"ish",null,"able",false,"_alarm"]`.
#[test]
fn a_name_that_starts_like_true_false_or_null_is_an_enum_value() {
    let cases = [
        (
            "[trueish, nullable, false_alarm]",
            json!(["trueish", "nullable", "false_alarm"]),
        ),
        ("[truetrue, null_]", json!(["truetrue", "null_"])),
        ("[true1 false2 null3]", json!(["true1", "false2", "null3"])),
        ("trueish", json!("trueish")),
        ("{status: nullable}", json!({"status": "nullable"})),
        ("[true,false,null]", json!([true, false, null])),
        ("{a:true b:null}", json!({"a": true, "b": null})),
    ];
    for (value, sent) in cases {
        assert_eq!(body_sent_for(value), sent, "{value}");
    }
}

/// An IntValue has no leading zero and is not followed by a digit, `.` or a name (§2.9.1): `01`
/// is a syntax error, where the backend got `[0,1]` (and `[-01]` `[-0,1]`).
#[test]
fn a_number_followed_by_a_digit_or_a_dot_is_a_syntax_error() {
    for value in ["[01]", "[00]", "[-01]", "[1.]", "[1.5.3]"] {
        assert_body_syntax_error(value, "Syntax error", 21);
    }
    assert_body_syntax_error("[1, 2, 0123]", "Syntax error", 27);
    assert_eq!(
        body_sent_for("[0, -0, 10, 0.5, 1e3]"),
        serde_json::from_str::<Json>("[0, -0, 10, 0.5, 1e3]").unwrap()
    );
}

/// `\u` escapes take any four hex digits (§2.9.4), and those of a UTF-16 surrogate pair are one
/// character, as graphql-js 16 and graphql-core 3.2 read them: the backend gets 😀 (the document
/// was a syntax error). A lone surrogate is no character: a syntax error at its escape.
#[test]
fn a_surrogate_pair_escape_reaches_the_backend_as_one_character() {
    for value in [
        r#""\ud83d\ude00""#,
        r#""\uD83D\uDE00""#,
        r#"["\ud83d\ude00"]"#,
    ] {
        let sent = body_sent_for(value);
        assert!(
            sent == json!("😀") || sent == json!(["😀"]),
            "{value}: {sent}"
        );
    }
    let backend = Mock::new(&["a"]);
    post(&backend, r#"mutation { a(body: "x\uD83D\uDE00y") }"#);
    assert_eq!(
        backend.calls()[0].body.as_deref(),
        Some("\"x😀y\"".as_bytes()),
        "the JSON text has the character itself"
    );
    for (value, escape, column) in [
        (r#""\ud83d""#, r#"\ud83d"#, 21),
        (r#""x\ude00""#, r#"\ude00"#, 22),
        (r#""\ud83d\u0041""#, r#"\ud83d"#, 21),
        (r#"["\ude00\ud83d"]"#, r#"\ude00"#, 22),
    ] {
        let needle = format!("Syntax error: Invalid Unicode escape sequence: \"{escape}\".");
        assert_body_syntax_error(value, &needle, column);
    }
}

/// `\u{1F600}`, the spec draft's escape of any code point, as graphql-js 16 and graphql-core 3.2
/// read it (up to eight hex digits of a Unicode scalar value); it was a syntax error.
#[test]
fn a_braced_unicode_escape_reaches_the_backend_as_its_character() {
    assert_eq!(body_sent_for(r#""\u{1F600}\u{41}""#), json!("😀A"));
    for (value, escape) in [
        (r#""\u{D83D}""#, r#"\u{D83D}"#),
        (r#""\u{110000}""#, r#"\u{110000}"#),
    ] {
        let needle = format!("Syntax error: Invalid Unicode escape sequence: \"{escape}\".");
        assert_body_syntax_error(value, &needle, 21);
    }
}

/// A fragment's name is a name but not `on` (§2.8): `fragment on on Query` and `...on` are syntax
/// errors (the document ran, spreading a fragment named `on`); `...onX` spreads the fragment `onX`.
#[test]
fn a_fragment_named_on_is_a_syntax_error() {
    for (document, column) in [
        ("fragment on on Query { a } { ...on }", 10),
        ("{ ...on } fragment F on Query { a }", 9),
    ] {
        let backend = Mock::new(&["a"]);
        let (status, body) = post(&backend, document);
        assert_eq!(status, 200, "{body}");
        assert_request_error(
            &body,
            "GRAPHQL_PARSE_FAILED",
            "Syntax error",
            Some((1, column)),
        );
        assert!(backend.calls().is_empty(), "{document} was called");
    }
    let backend = Mock::new(&["a", "b"]);
    let (_, body) = post(
        &backend,
        "fragment onX on Query { a } { ...onX ...on Query { b } }",
    );
    assert_eq!(body, json!({"data": {"a": {}, "b": {}}}));
}

// ---- validation --------------------------------------------------------------------------------

#[test]
fn validation_reports_every_error_with_locations() {
    let backend = Mock::new(&["user-svc"]);
    let (status, body) = post(
        &backend,
        "query Q($unused: String) {\n  nope\n  user_svc(colour: \"red\", path: 3) { x(arg: 1) }\n  u2: user_svc(headers: [{name: \"a\"}], body: $undefined)\n  ...Missing\n}",
    );
    assert_eq!(status, 200);
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "\"$unused\" is never used",
        Some((1, 9)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Cannot query field \"nope\" on type \"Query\"",
        Some((2, 3)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Unknown argument \"colour\"",
        Some((3, 12)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Argument \"path\" has an invalid value 3",
        Some((3, 33)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Unknown argument \"arg\" on field \"x\"",
        Some((3, 40)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "HeaderInput.value of type String! is required",
        Some((4, 25)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "\"$undefined\" is not defined by operation \"Q\"",
        Some((4, 46)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Unknown fragment \"Missing\"",
        Some((5, 6)),
    );
    assert_eq!(messages(&body).len(), 8, "{body}");
    assert!(backend.calls().is_empty());
}

#[test]
fn variable_of_the_wrong_type_for_its_position() {
    let (_, body) = post(
        &Mock::new(&["a"]),
        "query($p: JSON, $b: Boolean) { a(path: $p) @skip(if: $b) }",
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "\"$p\" of type \"JSON\" used in position expecting type \"String\"",
        Some((1, 40)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "\"$b\" of type \"Boolean\" used in position expecting type \"Boolean!\"",
        None,
    );
}

#[test]
fn fragment_cycles_are_reported() {
    let (_, body) = post(
        &Mock::new(&["a"]),
        "{ a { ...A } }\nfragment A on JSON { x ...B }\nfragment B on JSON { ...A }\nfragment C on JSON { ...C }",
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Cannot spread fragment \"A\" within itself via \"B\"",
        Some((2, 24)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Cannot spread fragment \"C\" within itself.",
        Some((4, 22)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Fragment \"C\" is never used",
        Some((4, 1)),
    );
}

#[test]
fn operation_selection_rules() {
    let backend = Mock::new(&["a"]);
    let (status, body) = post(&backend, "{ a }\n{ a }");
    assert_eq!(status, 200);
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "anonymous operation must be the only",
        Some((2, 1)),
    );

    let two = "query One { a }\nquery Two { b: a }";
    let (_, body) = post(&backend, two);
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Must provide operation name",
        Some((1, 1)),
    );
    let (_, body) = post_with(
        &backend,
        &json!({"query": two, "operationName": "Three"}),
        None,
        &Limits::default(),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Unknown operation named \"Three\"",
        None,
    );
    let (_, body) = post_with(
        &backend,
        &json!({"query": two, "operationName": "Two"}),
        None,
        &Limits::default(),
    );
    assert_eq!(body, json!({"data": {"b": {}}}));

    let (_, body) = post(&backend, "{ a ");
    assert_request_error(&body, "GRAPHQL_PARSE_FAILED", "Syntax error", Some((1, 5)));
    let (_, body) = post(&backend, "subscription { a }");
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Subscriptions are not supported",
        Some((1, 1)),
    );
}

#[test]
fn directives_and_fragment_types_are_checked() {
    let (_, body) = post(
        &Mock::new(&["a"]),
        "query @skip(if: true) { a @deprecated ... on Mutation { a } ...F }\nfragment F on User { a }",
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "\"@skip\" may not be used on QUERY",
        Some((1, 7)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Unknown directive \"@deprecated\"",
        Some((1, 27)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "objects of type \"Query\" can never be of type \"Mutation\"",
        None,
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Unknown type \"User\"",
        Some((2, 12)),
    );
}

#[test]
fn conflicting_response_keys_are_refused() {
    let (_, body) = post(
        &Mock::new(&["a", "b"]),
        "{ x: a(path: \"/1\") x: a(path: \"/2\") y: a y: b }",
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "\"x\" conflict because they have differing arguments",
        Some((1, 3)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "\"y\" conflict because \"a\" and \"b\" are different fields",
        None,
    );
}

#[test]
fn a_key_with_and_without_a_selection_set_is_a_conflict() {
    let message = |key: &str| {
        format!("Fields \"{key}\" conflict because one selects subfields and the other selects the whole value. Use different aliases on the fields to fetch both if this was intentional.")
    };
    for (document, key, locations) in [
        (
            r#"{ users(path: "/1") users(path: "/1") { name } }"#,
            "users",
            json!([{"line": 1, "column": 3}, {"line": 1, "column": 21}]),
        ),
        (
            "{ a { x } ...F }\nfragment F on Query { a }",
            "a",
            json!([{"line": 1, "column": 3}, {"line": 2, "column": 23}]),
        ),
        (
            "{ ... on Query { a } ... { a { x } } }",
            "a",
            json!([{"line": 1, "column": 18}, {"line": 1, "column": 28}]),
        ),
        // Subfields of fields that merge are merged too, so the conflict may be one level down.
        (
            "{ a { x { y } } a { x } }",
            "x",
            json!([{"line": 1, "column": 7}, {"line": 1, "column": 21}]),
        ),
        (
            "{ a { ...F } a { x } }\nfragment F on JSON { x { y } }",
            "x",
            json!([{"line": 2, "column": 22}, {"line": 1, "column": 18}]),
        ),
    ] {
        let backend = Mock::new(&["users", "a"]);
        let (status, body) = post(&backend, document);
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"errors": [{"message": message(key), "locations": locations,
                   "extensions": {"code": "GRAPHQL_VALIDATION_FAILED", "status": 400}}]}),
            "{document}"
        );
        assert!(backend.calls().is_empty());
    }
    // Both with selection sets, or both without, still merge.
    let backend = Mock::new(&["a"]).answer("a", 200, r#"{"x":{"y":1,"z":2},"w":3}"#);
    let (_, body) = post(&backend, "{ a { x { y } } a { x { z } w } }");
    assert_eq!(
        body,
        json!({"data": {"a": {"x": {"y": 1, "z": 2}, "w": 3}}})
    );
    let (_, body) = post(&backend, "{ a a }");
    assert_eq!(body["data"]["a"]["w"], 3);
    // Merging through a fragment cycle ends (the cycle itself is reported).
    let (_, body) = post(
        &backend,
        "{ a { ...A } }\nfragment A on JSON { x { ...A } x { ...A } }",
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Cannot spread fragment \"A\" within itself",
        None,
    );
}

#[test]
fn repeated_input_object_fields_are_refused() {
    let error = |name: &str, first: (u64, u64), second: (u64, u64)| {
        json!({"message": format!("There can be only one input field named \"{name}\"."),
               "locations": [{"line": first.0, "column": first.1}, {"line": second.0, "column": second.1}],
               "extensions": {"code": "GRAPHQL_VALIDATION_FAILED", "status": 400}})
    };
    for (document, errors) in [
        (
            r#"{ a(headers: [{name: "a", name: "b", value: "c"}]) }"#,
            vec![error("name", (1, 16), (1, 27))],
        ),
        (
            "{ a(body: {a: 1, b: {a: [{a: 1}, {a: 2, a: 3}]}, a: 2}) }",
            vec![error("a", (1, 12), (1, 50)), error("a", (1, 35), (1, 41))],
        ),
        (
            "query($b: JSON = {k: 1, k: 2}) { a(body: $b) }",
            vec![error("k", (1, 19), (1, 25))],
        ),
        (
            "{\r\n  a(headers: {name: \"x\",\r\n    value: \"1\", value: \"2\"}) }",
            vec![error("value", (3, 5), (3, 17))],
        ),
    ] {
        let backend = Mock::new(&["a"]);
        let (status, body) = post(&backend, document);
        assert_eq!(status, 200);
        assert_eq!(body, json!({ "errors": errors }), "{document}");
        assert!(backend.calls().is_empty());
    }
    // Names repeated anywhere else are not input fields: selections, aliases, strings, comments.
    let backend = Mock::new(&["a"]);
    let (_, body) = post(
        &backend,
        "query Q($v: JSON = {a: 1}) {\n  # {a: 1, a: 2}\n  a(path: \"/{a:1,a:1}\", body: [{a: 1}, {a: \"\"\"{a: 1, a: 2}\"\"\"}, {a: {a: $v}}])\n    @include(if: true) { a b: a c { a a } }\n}",
    );
    assert_eq!(body["errors"], Json::Null, "{body}");
    let sent: Json = serde_json::from_slice(backend.calls()[0].body.as_ref().unwrap()).unwrap();
    assert_eq!(
        sent,
        json!([{"a": 1}, {"a": "{a: 1, a: 2}"}, {"a": {"a": {"a": 1}}}])
    );
}

// ---- HTTP --------------------------------------------------------------------------------------

#[test]
fn get_and_post_status_rules() {
    let backend = Mock::new(&["a"]).answer("a", 200, r#"{"k":"v"}"#);
    assert_eq!(
        get(&backend, "query=%7B+a+%7B+k+%7D+%7D"),
        (200, json!({"data": {"a": {"k": "v"}}}))
    );
    let (status, body) = get(
        &backend,
        "query=query+Q(%24p%3A+String)+%7B+a(path%3A+%24p)+%7D&variables=%7B%22p%22%3A%22%2Fv%22%7D&operationName=Q",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(backend.calls().last().unwrap().path, "/v");

    let (status, body) = get(&backend, "query=mutation+%7B+a+%7D");
    assert_eq!(status, 405);
    assert_request_error(
        &body,
        "BAD_REQUEST",
        "Mutations cannot be sent with GET",
        None,
    );
    let calls = backend.calls().len();
    let (status, body) = get(&backend, "variables=%7B%7D");
    assert_eq!(status, 400);
    assert_request_error(&body, "BAD_REQUEST", "needs a \"query\" parameter", None);
    let (status, _) = get(&backend, "query=%7Ba%7D&variables=%5B%5D");
    assert_eq!(status, 400);
    assert_eq!(
        backend.calls().len(),
        calls,
        "refused requests call nothing"
    );

    let mutation = post(&backend, "mutation { a }");
    assert_eq!(mutation.0, 200);
    for body in [
        &b"not json"[..],
        b"[]",
        b"{}",
        br#"{"query": 1}"#,
        br#"{"query": "{a}", "variables": []}"#,
        br#"{"query": "{a}", "operationName": 2}"#,
    ] {
        let request = HttpRequest {
            method: HttpMethod::Post,
            query_string: "",
            content_type: Some("application/json; charset=utf-8"),
            accept: None,
            content_coding: None,
            body,
        };
        let (status, content_type, json) = run(&backend, request, &Limits::default());
        assert_eq!(
            (status, content_type),
            (400, APPLICATION_JSON),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(
            json.get("data").is_none() && json["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        );
    }
    for content_type in [None, Some("text/plain"), Some("application/graphql")] {
        let request = HttpRequest {
            method: HttpMethod::Post,
            query_string: "",
            content_type,
            accept: None,
            content_coding: None,
            body: br#"{"query":"{a}"}"#,
        };
        assert_eq!(run(&backend, request, &Limits::default()).0, 400);
    }
}

#[test]
fn json_nested_beyond_serde_json_limit_is_named_as_such() {
    // The depth measure agrees with serde_json about where its limit lies.
    for depth in [1, 127, 128, 129, 200] {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(
            http::nested_deeper_than(text.as_bytes(), http::JSON_MAX_DEPTH),
            serde_json::from_str::<Json>(&text).is_err(),
            "depth {depth}"
        );
    }
    assert!(!http::nested_deeper_than(br#"["[[[[", "\"[[", {}]"#, 2));
    let deep = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let backend = Mock::new(&["a"]);
    let body = format!(
        r#"{{"query": "{{ a }}", "variables": {{"v": {}}}}}"#,
        deep(200)
    );
    let request = HttpRequest {
        method: HttpMethod::Post,
        query_string: "",
        content_type: Some("application/json"),
        accept: None,
        content_coding: None,
        body: body.as_bytes(),
    };
    let (status, _, json) = run(&backend, request, &Limits::default());
    assert_eq!(status, 400);
    assert_eq!(
        messages(&json),
        ["The body of a GraphQL POST is nested too deeply: JSON arrays and objects may be nested at most 127 levels."]
    );
    let query_string = format!("query=%7Ba%7D&variables=%7B%22v%22%3A{}", deep(200));
    let (status, json) = get(&backend, &query_string);
    assert_eq!(status, 400);
    assert_eq!(
        messages(&json),
        ["The \"variables\" parameter is nested too deeply: JSON arrays and objects may be nested at most 127 levels."]
    );
    // Deep but within the limit is fine; broken but shallow is still "not a JSON object".
    let body = format!(
        r#"{{"query": "{{ a }}", "variables": {{"v": {}}}}}"#,
        deep(100)
    );
    let (status, json) = post_with(
        &backend,
        &serde_json::from_str(&body).unwrap(),
        None,
        &Limits::default(),
    );
    assert_eq!((status, &json["data"]), (200, &json!({"a": {}})));
    assert!(backend.calls().len() == 1);
}

#[test]
fn json_values_are_counted_before_parsing_and_bounded() {
    // Exact when no array or object is empty (an empty one counts one more).
    for (text, values) in [
        ("0", 1),
        (r#"[0,[1,2],{"a":3,"b":[4]}]"#, 9),
        (r#"{"k,[{": "v,]}", "n": [1]}"#, 4),
    ] {
        assert_eq!(http::json_values(text.as_bytes()), values, "{text}");
    }
    // `{"b":[0,...]}` is n + 2 values: the GET `variables` at the limit pass, one more is refused.
    let backend = Mock::new(&["a"]);
    let variables = |zeros: usize| {
        let zeros = vec!["0"; zeros].join(",");
        format!("query=%7Ba%7D&variables=%7B%22b%22%3A%5B{zeros}%5D%7D")
    };
    let (status, json) = get(&backend, &variables(http::MAX_JSON_VALUES - 2));
    assert_eq!((status, &json["data"]), (200, &json!({"a": {}})));
    let (status, json) = get(&backend, &variables(http::MAX_JSON_VALUES - 1));
    assert_eq!(status, 400);
    assert_eq!(
        messages(&json),
        ["The \"variables\" parameter holds too many JSON values: at most 65536 (arrays, objects and scalars) are accepted."]
    );
}

#[test]
fn media_type_decides_the_status_of_request_errors() {
    let backend = Mock::new(&["a"]);
    let request = |accept| HttpRequest {
        method: HttpMethod::Post,
        query_string: "",
        content_type: Some("application/json"),
        accept,
        content_coding: None,
        body: br#"{"query":"{ nope }"}"#,
    };
    let (status, content_type, _) = run(&backend, request(None), &Limits::default());
    assert_eq!((status, content_type), (200, APPLICATION_JSON));
    let (status, content_type, _) = run(
        &backend,
        request(Some("application/graphql-response+json")),
        &Limits::default(),
    );
    assert_eq!((status, content_type), (400, GRAPHQL_RESPONSE_JSON));
    let (status, content_type, _) = run(
        &backend,
        request(Some(
            "application/json;q=0.9, application/graphql-response+json",
        )),
        &Limits::default(),
    );
    assert_eq!((status, content_type), (400, GRAPHQL_RESPONSE_JSON));
    let (status, content_type, _) = run(
        &backend,
        request(Some(
            "application/json, application/graphql-response+json;q=0.5",
        )),
        &Limits::default(),
    );
    assert_eq!((status, content_type), (200, APPLICATION_JSON));
    // RFC 9110 §12.5.1: a wildcard gives the types it matches its q unless a more specific range
    // names them; on a tie the first named wins, and a wildcard alone is application/json.
    for (accept, media) in [
        (
            "application/*;q=0.9, application/graphql-response+json;q=0.1",
            APPLICATION_JSON,
        ),
        (
            "*/*;q=0.5, application/graphql-response+json;q=0.4",
            APPLICATION_JSON,
        ),
        (
            "*/*;q=0.5, application/graphql-response+json;q=0.6",
            GRAPHQL_RESPONSE_JSON,
        ),
        ("application/json;q=0, */*", GRAPHQL_RESPONSE_JSON),
        ("*/*", APPLICATION_JSON),
        ("application/*", APPLICATION_JSON),
        (
            "application/graphql-response+json, application/json",
            GRAPHQL_RESPONSE_JSON,
        ),
        (
            "application/json, application/graphql-response+json",
            APPLICATION_JSON,
        ),
        (
            "application/graphql-response+json;q=0, application/json;q=0",
            APPLICATION_JSON,
        ),
        ("text/html", APPLICATION_JSON),
        (
            "Application/GraphQL-Response+JSON; Q=0.3",
            GRAPHQL_RESPONSE_JSON,
        ),
    ] {
        assert_eq!(
            super::http::negotiate(Some(accept)).content_type(),
            media,
            "{accept}"
        );
    }
    // Executed requests are 200 whatever the media type, even when a field failed.
    let failing = Mock::new(&["a"]).fail("a", "UNAVAILABLE", 503);
    let executed = HttpRequest {
        body: br#"{"query":"{ a }"}"#,
        ..request(Some("application/graphql-response+json"))
    };
    let (status, content_type, body) = run(&failing, executed, &Limits::default());
    assert_eq!((status, content_type), (200, GRAPHQL_RESPONSE_JSON));
    assert_eq!(body["data"], json!({"a": null}));
}

// ---- cost of validation ------------------------------------------------------------------------

/// Validates `document` against a schema with the service `echo`, returning the error messages
/// and what the validation did.
fn validation_work(document: &str) -> (Vec<String>, validate::Work) {
    let parsed = async_graphql_parser::parse_query(document).unwrap();
    let schema = schema::Schema::new(vec!["echo".to_owned()]);
    let graph = fragments::Graph::new(&parsed);
    let (errors, work) = validate::validate_counting(document, &parsed, &graph, &schema);
    (errors.into_iter().map(|e| e.message).collect(), work)
}

/// `fragment F0 on Query { <f0> }` and `k` fragments each spreading the previous one twice:
/// `F<k>` stands for 2^k copies of `F0`.
fn doubling_fragments(k: usize, f0: &str) -> String {
    let mut text = format!("fragment F0 on Query {{ {f0} }}");
    for i in 1..=k {
        text.push_str(&format!(
            " fragment F{i} on Query {{ ...F{j} ...F{j} }}",
            j = i - 1
        ));
    }
    text
}

#[test]
fn variable_uses_cost_what_is_written_not_what_fragments_expand_to() {
    // The reviewer's repro B (950 bytes): an operation that is not even selected reaches 2^22
    // spreads of a fragment using `$v`. Each fragment's uses are a set, checked once per
    // operation: one use, not four million.
    let document = format!(
        "query A {{ __typename }} query B($v: Boolean!) {{ ...F22 }} {}",
        doubling_fragments(22, "echo @skip(if: $v)")
    );
    let (errors, work) = validation_work(&document);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(work.variable_uses, 1);

    // Repro A (12.5 KB): 3000 uses of `$v` in one fragment, reached 2^12 times.
    let uses = vec!["$v"; 3000].join(", ");
    let document = format!(
        "query B($v: Boolean) {{ ...F12 }} {}",
        doubling_fragments(12, &format!("echo(body: [{uses}]) {{ path }}"))
    );
    let (errors, work) = validation_work(&document);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(work.variable_uses, 1);
    // And through the engine it is within every limit and plans.
    assert!(plan(
        vec!["echo".into()],
        &document,
        None,
        None,
        &Limits::default()
    )
    .is_ok());

    // A variable used in several positions is checked once per type expected there, and an
    // undefined one is reported once per operation that reaches it.
    let (errors, work) = validation_work(
        "query A($v: Boolean!) { ...F } query B { ...F } \
         fragment F on Query { echo @skip(if: $v) e: echo(body: [$v, $v]) @include(if: $v) }",
    );
    // `Boolean!` (both directives) and inside a `JSON` value (`[$v, $v]`).
    assert_eq!(work.variable_uses, 4);
    assert_eq!(
        errors,
        vec!["Variable \"$v\" is not defined by operation \"B\"."; 2]
    );
}

#[test]
fn merge_checking_costs_the_expanded_fields_once() {
    // The reviewer's case (36 KB): 800 fragments, each selecting `echo { a }` and spreading the
    // next, from two operations. Checking each selection set with every fragment it reaches
    // expanded cost 800 * 800 / 2 fields per operation; checking from the top down, each group of
    // same-key fields once, collects the 801 `echo`s of each operation and their 801 `a`s once.
    let n = 800;
    let mut fragments = String::new();
    for i in 0..n {
        fragments.push_str(&format!(
            " fragment F{i} on Query {{ echo {{ a }} ...F{} }}",
            i + 1
        ));
    }
    fragments.push_str(&format!(" fragment F{n} on Query {{ echo {{ a }} }}"));
    let document = format!("query A {{ ...F0 }} query B {{ ...F0 }}{fragments}");
    let (errors, work) = validation_work(&document);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(work.merged_fields, 3 * (n + 1));
    // Conflicts are still found however deep in the chain they are.
    let document = format!("{{ ...F0 echo(path: \"/x\") {{ a }} }}{fragments}");
    let (errors, _) = validation_work(&document);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("differing arguments"), "{errors:?}");
}

#[test]
fn validation_stops_at_the_error_limit() {
    // 1000 operations reaching one fragment that uses 1000 undefined variables would be a million
    // errors (about 100 MB of response).
    let ops: String = (0..1000)
        .map(|i| format!("query Q{i} {{ ...F }} "))
        .collect();
    let vars: Vec<String> = (0..1000).map(|i| format!("$v{i}")).collect();
    let document = format!(
        "{ops} fragment F on Query {{ echo(body: [{}]) }}",
        vars.join(" ")
    );
    let (errors, work) = validation_work(&document);
    assert_eq!(errors.len(), validate::MAX_ERRORS + 1);
    assert_eq!(
        errors.last().unwrap(),
        "Too many validation errors, error limit reached. Validation aborted."
    );
    assert!(work.variable_uses <= validate::MAX_ERRORS + 1, "{work:?}");
}

// ---- limits ------------------------------------------------------------------------------------

fn limited(query: &str, limits: Limits) -> (u16, Json) {
    let backend = Mock::new(&["a"]);
    let result = post_with(&backend, &json!({"query": query}), None, &limits);
    assert!(backend.calls().is_empty(), "nothing is called past a limit");
    result
}

#[test]
fn every_limit_has_its_own_error() {
    let (_, body) = limited(
        "{ a }",
        Limits {
            max_document_bytes: 4,
            ..Limits::default()
        },
    );
    assert_request_error(
        &body,
        "DOCUMENT_TOO_LARGE",
        "5 bytes, more than the limit of 4",
        None,
    );

    let (_, body) = limited(
        "{ a(path: \"/x\") }",
        Limits {
            max_tokens: 7,
            ..Limits::default()
        },
    );
    assert_request_error(&body, "TOO_MANY_TOKENS", "more than 7 tokens", None);
    let at_limit = Limits {
        max_tokens: 8,
        ..Limits::default()
    };
    let (_, body) = post_with(
        &Mock::new(&["a"]),
        &json!({"query": "{ a(path: \"/x\") }"}),
        None,
        &at_limit,
    );
    assert_eq!(body, json!({"data": {"a": {}}}));

    let (_, body) = limited(
        "{ a { b { c { d } } } }",
        Limits {
            max_depth: 3,
            ..Limits::default()
        },
    );
    assert_request_error(
        &body,
        "QUERY_TOO_DEEP",
        "4 levels deep, more than the limit of 3",
        Some((1, 1)),
    );
    let (_, body) = limited(
        "{ ...F }\nfragment F on Query { a { b { c { d } } } }",
        Limits {
            max_depth: 3,
            ..Limits::default()
        },
    );
    assert_request_error(&body, "QUERY_TOO_DEEP", "4 levels deep", None);

    let (_, body) = limited(
        "{ a b: a c: a }",
        Limits {
            max_root_fields: 2,
            ..Limits::default()
        },
    );
    assert_request_error(
        &body,
        "TOO_MANY_ROOT_FIELDS",
        "3 root fields, more than the limit of 2",
        None,
    );
    // Meta fields call no backend and do not count.
    let backend = Mock::new(&["a"]);
    let (status, body) = post_with(
        &backend,
        &json!({"query": "{ a b: a __typename t: __typename __type(name: \"JSON\") { name } }"}),
        None,
        &Limits {
            max_root_fields: 2,
            ..Limits::default()
        },
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(backend.calls().len(), 2);
    // Nor do fields `@skip`/`@include` leave out, literally or through a variable, nor a selection
    // merged into another of the same response key: the limit counts backend calls.
    let two = Limits {
        max_root_fields: 2,
        ..Limits::default()
    };
    let query = "query($s: Boolean!) { a b: a c: a @skip(if: $s) d: a @include(if: false) a }";
    for (skip, refused) in [(true, false), (false, true)] {
        let backend = Mock::new(&["a"]);
        let request = json!({"query": query, "variables": {"s": skip}});
        let (status, body) = post_with(&backend, &request, None, &two);
        if refused {
            assert_request_error(
                &body,
                "TOO_MANY_ROOT_FIELDS",
                "3 root fields, more than the limit of 2",
                None,
            );
            assert!(backend.calls().is_empty(), "nothing is called past a limit");
        } else {
            assert_eq!(status, 200, "{body}");
            assert!(body.get("errors").is_none(), "{body}");
            assert_eq!(backend.calls().len(), 2);
        }
    }
    // An absent variable takes its declared default, as coercion will give it.
    let backend = Mock::new(&["a"]);
    let defaulted = "query($s: Boolean = true) { a b: a c: a @skip(if: $s) }";
    let (status, body) = post_with(&backend, &json!({"query": defaulted}), None, &two);
    assert_eq!(status, 200, "{body}");
    assert_eq!(backend.calls().len(), 2);

    let (_, body) = limited(
        "{ x: a { y: b z: c } }",
        Limits {
            max_aliases: 2,
            ..Limits::default()
        },
    );
    assert_request_error(
        &body,
        "TOO_MANY_ALIASES",
        "3 aliases, more than the limit of 2",
        None,
    );

    // A fragment bomb: 2^20 fields from a small document, refused before anything is expanded.
    let mut bomb = String::from("{ a { ...F0 } }\n");
    for i in 0..20 {
        bomb.push_str(&format!(
            "fragment F{i} on JSON {{ x{i}: x ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    bomb.push_str("fragment F20 on JSON { x }\n");
    let (_, body) = limited(&bomb, Limits::default());
    assert_request_error(&body, "TOO_MANY_TOKENS", "With fragments expanded", None);
    assert_request_error(&body, "TOO_MANY_ALIASES", "aliases", None);
}

#[test]
fn depth_and_expansion_are_limited_in_every_operation_and_unused_fragment() {
    // The reviewer's repro (3.2 KB): 15 fragments of 60 nested fields each, chained, in an
    // operation that is not selected. Validation recursed through all 900 levels and overflowed
    // the stack; now the operation is measured (without recursion) and refused first.
    let mut document = String::from("query A { __typename } query B { echo { ...F0 } }");
    for i in 0..15 {
        document.push_str(&format!(
            " fragment F{i} on JSON {{ {}...F{} {} }}",
            "a{".repeat(60),
            i + 1,
            "}".repeat(60)
        ));
    }
    document.push_str(" fragment F15 on JSON { z }");
    let request = json!({"query": document, "operationName": "A"});
    let (_, body) = post_with(&Mock::new(&["echo"]), &request, None, &Limits::default());
    assert_eq!(
        body,
        json!({"errors": [{
            "message": "The operation \"B\" is 902 levels deep, more than the limit of 16.",
            "locations": [{"line": 1, "column": 24}],
            "extensions": {"code": "QUERY_TOO_DEEP", "status": 400}}]})
    );

    // 700 unused fragments, each nesting the next one level deeper: reported once, at the one
    // that nothing spreads.
    let mut document = String::from("{ __typename }");
    for i in 0..700 {
        document.push_str(&format!(
            " fragment F{i} on JSON {{ a {{ ...F{} }} }}",
            i + 1
        ));
    }
    document.push_str(" fragment F700 on JSON { z }");
    let (_, body) = post(&Mock::new(&["echo"]), &document);
    assert_eq!(
        body,
        json!({"errors": [{
            "message": "The fragment \"F0\" is 701 levels deep, more than the limit of 16.",
            "locations": [{"line": 1, "column": 16}],
            "extensions": {"code": "QUERY_TOO_DEEP", "status": 400}}]})
    );

    // A fragment bomb in an operation that is not selected.
    let document = format!(
        "query A {{ __typename }} query B {{ ...F20 }} {}",
        doubling_fragments(20, "echo")
    );
    let request = json!({"query": document, "operationName": "A"});
    let (_, body) = post_with(&Mock::new(&["echo"]), &request, None, &Limits::default());
    assert_request_error(
        &body,
        "TOO_MANY_TOKENS",
        "With fragments expanded the operation \"B\" selects 1048576 fields",
        Some((1, 24)),
    );
    // Past what a count holds, the count is a lower bound, and says so.
    let document = format!("{{ ...F70 }} {}", doubling_fragments(70, "echo"));
    let (_, body) = post(&Mock::new(&["echo"]), &document);
    assert_request_error(
        &body,
        "TOO_MANY_TOKENS",
        &format!(
            "With fragments expanded the operation selects at least {} fields",
            usize::MAX
        ),
        Some((1, 1)),
    );
}

#[test]
fn exceeded_limits_are_reported_up_to_the_error_limit() {
    // 1000 unused fragments, each too deep: 1000 errors (213 KB) before the cap, the same cap as
    // validation's.
    let deep = format!("{}x{}", "a { ".repeat(17), " }".repeat(17));
    let mut document = String::from("{ __typename }");
    for i in 0..1000 {
        document.push_str(&format!(" fragment F{i} on JSON {{ {deep} }}"));
    }
    let limits = Limits {
        max_tokens: 100_000,
        max_document_bytes: 1 << 20,
        ..Limits::default()
    };
    let request = json!({"query": document});
    let (_, body) = post_with(&Mock::new(&["echo"]), &request, None, &limits);
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), validate::MAX_ERRORS + 1);
    assert_eq!(
        errors[validate::MAX_ERRORS]["message"],
        "More than 100 exceeded limits; the first 100 are reported."
    );
    assert!(errors[..validate::MAX_ERRORS].iter().all(|e| e["message"]
        .as_str()
        .unwrap()
        .ends_with("levels deep, more than the limit of 16.")));
    assert!(errors
        .iter()
        .all(|e| e["extensions"]["code"] == "QUERY_TOO_DEEP"));
}

#[test]
fn a_long_chain_of_spreads_costs_no_stack() {
    // Far longer than the limits allow, and than a stack frame per spread would survive: nothing
    // (limits, validation, planning) recurses along spreads.
    let n = 20_000;
    let mut document = String::from("{ ...F0 }");
    for i in 0..n {
        document.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
    }
    document.push_str(&format!(" fragment F{n} on Query {{ echo {{ a }} }}"));
    let limits = Limits {
        max_document_bytes: usize::MAX,
        max_tokens: usize::MAX,
        ..Limits::default()
    };
    let plan = plan(vec!["echo".into()], &document, None, None, &limits).unwrap();
    assert_eq!(plan.fields.len(), 1);
    assert_eq!(plan.fields[0].key, "echo");
}

#[test]
fn brackets_are_nested_at_most_128_levels() {
    let document = |n: usize| format!("{{ echo(body: {}{}) }}", "[".repeat(n), "]".repeat(n));
    // `{` and `(` are two levels already.
    let backend = Mock::new(&["echo"]);
    let (_, body) = post(&backend, &document(126));
    assert_eq!(body["errors"], Json::Null, "{body}");
    let (_, body) = post(&backend, &document(127));
    assert_eq!(
        body,
        json!({"errors": [{
            "message": "The document nests brackets more than 128 levels deep.",
            "extensions": {"code": "QUERY_TOO_DEEP", "status": 400}}]})
    );
}

#[test]
fn the_response_stays_within_its_size_limit() {
    // Each answer is 1,008 bytes; projected through 8 aliases it would be 8 KB.
    let big = format!(r#"{{"s":"{}"}}"#, "x".repeat(1000));
    let limits = Limits {
        max_response_bytes: 5_000,
        ..Limits::default()
    };
    let aliases: String = (0..8).map(|i| format!(" a{i}: s")).collect();
    let too_large = |key: &str, line_column: (u64, u64)| {
        json!({"message": format!("The value of \"{key}\" would take the response over its limit of 5000 bytes."),
               "locations": [{"line": line_column.0, "column": line_column.1}], "path": [key],
               "extensions": {"code": "RESPONSE_TOO_LARGE", "status": 500}})
    };
    // The field that does not fit is an error; the others are kept.
    let backend = Mock::new(&["big", "small"])
        .answer("big", 200, &big)
        .answer("small", 200, r#"{"k":1}"#);
    let document = format!("{{ big {{{aliases} }} small {{ k }} }}");
    let (_, body) = post_with(&backend, &json!({"query": document}), None, &limits);
    assert_eq!(
        body,
        json!({"errors": [too_large("big", (1, 3))], "data": {"big": null, "small": {"k": 1}}})
    );
    // In a mutation fields are counted in document order: four whole answers fit, the fifth does
    // not, and a small one after it still does.
    let backend = Mock::new(&["big", "small"])
        .answer("big", 200, &big)
        .answer("small", 200, r#"{"k":1}"#);
    let document = "mutation { a: big b: big c: big d: big e: big small { k } }";
    let (_, body) = post_with(&backend, &json!({"query": document}), None, &limits);
    assert_eq!(body["errors"], json!([too_large("e", (1, 40))]));
    assert_eq!(body["data"]["d"]["s"].as_str().unwrap().len(), 1000);
    assert_eq!(body["data"]["e"], Json::Null);
    assert_eq!(body["data"]["small"], json!({"k": 1}));
}

#[test]
fn the_bodies_one_request_forwards_are_bounded_together() {
    let limits = Limits {
        max_forwarded_body_bytes: 5_000,
        ..Limits::default()
    };
    let body = json!({"s": "x".repeat(2000)});
    let document = "mutation($b: JSON) { a: echo(body: $b) b: echo(body: $b) c: echo(body: $b) }";
    // Three calls of 2,008 bytes each: refused before any of them is made.
    let backend = Mock::new(&["echo"]);
    let request = json!({"query": document, "variables": {"b": body}});
    let (status, response) = post_with(&backend, &request, None, &limits);
    assert_eq!(status, 200);
    assert_eq!(
        response,
        json!({"errors": [{
            "message": "The operation's calls would forward 6024 bytes of request bodies, more than the limit of 5000 bytes.",
            "extensions": {"code": "BODY_TOO_LARGE", "status": 413}}]})
    );
    assert!(backend.calls().is_empty());
    // Two are within the limit.
    let document = "mutation($b: JSON) { a: echo(body: $b) b: echo(body: $b) }";
    let request = json!({"query": document, "variables": {"b": body}});
    let (_, response) = post_with(&backend, &request, None, &limits);
    assert_eq!(response["errors"], Json::Null, "{response}");
    assert_eq!(backend.calls().len(), 2);
}

#[test]
fn defaults_are_the_documented_constants() {
    let limits = Limits::default();
    assert_eq!(limits.max_document_bytes, 64 * 1024);
    assert_eq!(
        (
            limits.max_depth,
            limits.max_root_fields,
            limits.max_aliases,
            limits.max_tokens
        ),
        (16, 32, 64, 10_000)
    );
    assert_eq!(
        (limits.max_response_bytes, limits.max_forwarded_body_bytes),
        (16 << 20, crate::config::DEFAULT_MAX_BODY_BYTES)
    );
}

#[test]
fn token_counting_skips_ignored_tokens() {
    assert_eq!(limits::count_tokens("{ a }", 3), None);
    assert_eq!(limits::count_tokens("{ a }", 2), Some(3));
    assert_eq!(
        limits::count_tokens("# comment { { {\n{ a, b, c }", 5),
        None
    );
    assert_eq!(
        limits::count_tokens(r#"{ a(s: "x y \" z", t: """ block "" """) ...F }"#, 13),
        None
    );
    assert_eq!(
        limits::count_tokens(r#"{ a(s: "x y \" z", t: """ block "" """) ...F }"#, 12),
        Some(13)
    );
}

#[test]
fn token_counting_does_not_depend_on_spacing() {
    let count = |document: &str| limits::count_tokens(document, 0).map(|_| ());
    let exact = |document: &str| {
        (1..100)
            .find(|max| limits::count_tokens(document, *max).is_none())
            .unwrap()
    };
    assert_eq!(count(""), None);
    // `...` is one token and a name stops at anything but `[_0-9A-Za-z]`.
    for (dense, spaced, tokens) in [
        ("...F...F", "... F ... F", 4),
        ("{a...on JSON{b}}", "{ a ... on JSON { b } }", 9),
        ("f(x:-1.5e+3,y:0.25E-1)", "f ( x : -1.5e+3 y : 0.25E-1 )", 9),
        ("a-b+c", "a -b + c", 5),
        ("$v:[String!]=[\"a\"]", "$ v : [ String ! ] = [ \"a\" ]", 11),
    ] {
        assert_eq!(exact(dense), tokens, "{dense}");
        assert_eq!(exact(spaced), tokens, "{spaced}");
    }
    // The reviewer's case: 6000 spreads written without spaces were one token each name run.
    let dense = format!(
        "{{ echo {{ {} }} }} fragment F on JSON {{ a }}",
        "...F".repeat(6000)
    );
    let spaced = dense.replace("...F", "...F ");
    assert_eq!(
        limits::count_tokens(&dense, 10_000),
        limits::count_tokens(&spaced, 10_000)
    );
    assert_eq!(limits::count_tokens(&dense, 10_000), Some(10_001));
}

// ---- introspection -----------------------------------------------------------------------------

/// graphql-js 16 `getIntrospectionQuery()` (descriptions on), which `buildClientSchema` consumes.
const INTROSPECTION_QUERY: &str = r#"
    query IntrospectionQuery {
      __schema {
        queryType { name }
        mutationType { name }
        subscriptionType { name }
        types { ...FullType }
        directives { name description locations args { ...InputValue } }
      }
    }
    fragment FullType on __Type {
      kind name description
      fields(includeDeprecated: true) {
        name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
      }
      inputFields { ...InputValue }
      interfaces { ...TypeRef }
      enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
      possibleTypes { ...TypeRef }
    }
    fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
    fragment TypeRef on __Type {
      kind name
      ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
        ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
    }"#;

#[test]
fn full_introspection_query_describes_the_dynamic_schema() {
    let backend = Mock::new(&["user-svc", "orders"]);
    let (status, body) = post(&backend, INTROSPECTION_QUERY);
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let schema = &body["data"]["__schema"];
    assert_eq!(schema["queryType"], json!({"name": "Query"}));
    assert_eq!(schema["mutationType"], json!({"name": "Mutation"}));
    assert_eq!(schema["subscriptionType"], Json::Null);
    let types = schema["types"].as_array().unwrap();
    let find = |name: &str| {
        types
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no type {name}"))
    };
    for name in ["Query", "Mutation"] {
        let ty = find(name);
        assert_eq!(ty["kind"], "OBJECT");
        assert_eq!(ty["interfaces"], json!([]));
        let fields: Vec<&str> = ty["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["orders", "user_svc"]);
        let field = &ty["fields"][1];
        assert_eq!(
            field["type"],
            json!({"kind": "SCALAR", "name": "JSON", "ofType": null})
        );
        let args: Vec<&str> = field["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(args, ["path", "method", "query", "body", "headers"]);
        assert_eq!(
            field["args"][4]["type"],
            json!({"kind": "LIST", "name": null, "ofType": {"kind": "NON_NULL", "name": null,
                   "ofType": {"kind": "INPUT_OBJECT", "name": "HeaderInput", "ofType": null}}})
        );
    }
    assert_eq!(find("JSON")["kind"], "SCALAR");
    let header = find("HeaderInput");
    assert_eq!(header["kind"], "INPUT_OBJECT");
    assert_eq!(header["fields"], Json::Null);
    assert_eq!(header["inputFields"][0]["name"], "name");
    assert_eq!(header["inputFields"][1]["type"]["kind"], "NON_NULL");
    assert_eq!(header["inputFields"][1]["type"]["ofType"]["name"], "String");
    for name in [
        "String",
        "Boolean",
        "__Schema",
        "__Type",
        "__Field",
        "__InputValue",
        "__EnumValue",
        "__Directive",
    ] {
        find(name);
    }
    let kinds: Vec<&str> = find("__TypeKind")["enumValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"INPUT_OBJECT") && kinds.len() == 8);
    assert_eq!(find("__DirectiveLocation")["kind"], "ENUM");
    // Every type a field or argument refers to is in the list (buildClientSchema needs that).
    let names: Vec<&str> = types.iter().map(|t| t["name"].as_str().unwrap()).collect();
    let text = serde_json::to_string(&body).unwrap();
    for referenced in text
        .split("\"name\":\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
    {
        if referenced.chars().next().is_some_and(char::is_uppercase) || referenced.starts_with("__")
        {
            assert!(
                names.contains(&referenced)
                    || ["QUERY", "FIELD", "INLINE_FRAGMENT", "FRAGMENT_SPREAD"]
                        .contains(&referenced)
                    || referenced
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c == '_'),
                "{referenced} is not in types"
            );
        }
    }
    let directives = schema["directives"].as_array().unwrap();
    assert_eq!(directives.len(), 2);
    assert_eq!(directives[0]["name"], "skip");
    assert_eq!(
        directives[0]["locations"],
        json!(["FIELD", "FRAGMENT_SPREAD", "INLINE_FRAGMENT"])
    );
    assert_eq!(
        directives[1]["args"][0]["type"]["ofType"]["name"],
        "Boolean"
    );
    assert!(backend.calls().is_empty());
}

#[test]
fn introspection_reports_argument_defaults_in_graphql_syntax() {
    let backend = Mock::new(&["a"]);
    let (_, body) = post(
        &backend,
        r#"{ q: __type(name: "Query") { fields { args { name defaultValue } } }
             m: __type(name: "Mutation") { fields { args { name defaultValue } } } }"#,
    );
    let args = |method: &str| {
        json!([{"args": [{"name": "path", "defaultValue": "\"/\""},
                         {"name": "method", "defaultValue": method},
                         {"name": "query", "defaultValue": null},
                         {"name": "body", "defaultValue": null},
                         {"name": "headers", "defaultValue": null}]}])
    };
    assert_eq!(body["data"]["q"]["fields"], args("\"GET\""), "{body}");
    assert_eq!(body["data"]["m"]["fields"], args("\"POST\""), "{body}");
}

#[test]
fn type_lookup_nested_types_and_typename() {
    let backend = Mock::new(&["a"]);
    let (_, body) = post(
        &backend,
        r#"{ __type(name: "Query") { __typename name fields { name type { name kind } args { name } } }
             none: __type(name: "Nope") { name } }"#,
    );
    assert_eq!(
        body["data"],
        json!({"__type": {"__typename": "__Type", "name": "Query", "fields": [{"name": "a",
               "type": {"name": "JSON", "kind": "SCALAR"},
               "args": [{"name": "path"}, {"name": "method"}, {"name": "query"}, {"name": "body"}, {"name": "headers"}]}]},
               "none": null})
    );
    let (_, body) = post(
        &backend,
        "{ __schema { queryType { fields { type { fields { name } } } } } }",
    );
    assert_eq!(
        body["data"]["__schema"]["queryType"]["fields"][0]["type"]["fields"],
        Json::Null
    );
    let (_, body) = post(&backend, "{ __schema { nope } __type { name } }");
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "Cannot query field \"nope\" on type \"__Schema\"",
        Some((1, 14)),
    );
    assert_request_error(
        &body,
        "GRAPHQL_VALIDATION_FAILED",
        "\"name\" of type \"String!\" on field \"Query.__type\" is required",
        None,
    );
    let (_, body) = post(
        &backend,
        "mutation { __schema { types { name } } __type(name: \"Query\") { name } }",
    );
    assert_eq!(
        messages(&body),
        [
            "Cannot query field \"__schema\" on type \"Mutation\": introspection is only available on the query root type \"Query\".",
            "Cannot query field \"__type\" on type \"Mutation\": introspection is only available on the query root type \"Query\"."
        ]
    );
}

// ---- plan (public, used by the bench) ------------------------------------------------------------

#[test]
fn plan_is_available_without_executing() {
    let plan = super::plan(
        vec!["user-svc".into()],
        "{ u: user_svc(path: \"/x\") { id } }",
        None,
        None,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(plan.fields.len(), 1);
    assert_eq!(plan.fields[0].key, "u");
    assert_eq!(
        plan.fields[0].kind,
        RootKind::Service {
            service: "user-svc".into(),
            arguments: vec![("path".into(), json!("/x"))]
        }
    );
    assert_eq!(
        plan.fields[0].selection,
        Some(vec![Proj {
            key: "id".into(),
            name: "id".into(),
            children: None
        }])
    );
}
