//! GraphQL through real sockets (CONTRACT §5): the `switchyard` binary with `switchyard-echo`
//! backends (and, for call order and concurrency, the grpcio peer of `tests/peers/grpc_peer.py`),
//! spoken to with curl over HTTP/1.1 and HTTP/2 prior knowledge.
//!
//! One echo process is registered as three services, `echo`, `users` and `user-svc` (the root field
//! `user_svc`); the echo reports the service each call was routed to, so one process is enough.
//! Every test asserts exact statuses, content types and JSON; nothing is timed.

mod support;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use support::*;

const JSON_CT: &str = "application/json; charset=utf-8";
const GRAPHQL_CT: &str = "application/graphql-response+json; charset=utf-8";
const GRAPHQL_ACCEPT: &str = "application/graphql-response+json";

/// A gateway with one echo registered as `echo`, `users` and `user-svc`.
struct Setup {
    gw: Gateway,
    _echo: Echo,
}

fn setup() -> Setup {
    let gw = Gateway::start();
    let echo = Echo::start("e1");
    for service in ["echo", "users", "user-svc"] {
        register(&gw, service, "e1", &echo.addr);
    }
    Setup { gw, _echo: echo }
}

/// Options of one request to `/graphql`.
#[derive(Default, Clone, Copy)]
struct Opts<'a> {
    h2: bool,
    accept: Option<&'a str>,
}

const H1: Opts<'static> = Opts {
    h2: false,
    accept: None,
};
const H2: Opts<'static> = Opts {
    h2: true,
    accept: None,
};
const STRICT: Opts<'static> = Opts {
    h2: false,
    accept: Some(GRAPHQL_ACCEPT),
};

fn finish(mut req: Http, opts: Opts<'_>) -> Resp {
    if let Some(accept) = opts.accept {
        req = req.header("accept", accept);
    }
    if opts.h2 {
        req = req.h2();
    }
    let r = req.send();
    assert_eq!(r.version, if opts.h2 { "2" } else { "1.1" });
    r
}

/// `POST /graphql` with `content-type: application/json` and `body` as is.
fn post_raw(gw: &Gateway, body: &str, opts: Opts<'_>) -> Resp {
    let req = http("POST", gw.url("/graphql"))
        .header("content-type", "application/json")
        .body(body);
    finish(req, opts)
}

/// `POST /graphql` with a JSON request.
fn post(gw: &Gateway, request: &Value, opts: Opts<'_>) -> Resp {
    post_raw(gw, &request.to_string(), opts)
}

/// `POST /graphql` with `{"query": query}` over HTTP/1.1.
fn query(gw: &Gateway, query: &str) -> Resp {
    post(gw, &json!({ "query": query }), H1)
}

/// `POST /graphql` with `{"query": document, "variables": variables}`.
fn query_with(gw: &Gateway, document: &str, variables: Value, opts: Opts<'_>) -> Resp {
    post(
        gw,
        &json!({ "query": document, "variables": variables }),
        opts,
    )
}

/// `GET /graphql?name=value&...`, each part form-encoded.
fn get(gw: &Gateway, params: &[(&str, &str)], opts: Opts<'_>) -> Resp {
    let qs: Vec<String> = params
        .iter()
        .map(|(n, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(n, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect();
    finish(
        http("GET", gw.url(&format!("/graphql?{}", qs.join("&")))),
        opts,
    )
}

/// Asserts status, content type and the whole JSON body.
fn assert_body(r: &Resp, status: u16, content_type: &str, body: &Value) {
    assert_eq!(
        (r.status, r.header("content-type")),
        (status, Some(content_type)),
        "body {}",
        r.text()
    );
    assert_eq!(&r.json(), body, "body {}", r.text());
}

/// Asserts a 200 `application/json` answer `{"data": data}` without errors.
fn assert_data(r: &Resp, data: &Value) {
    assert_body(r, 200, JSON_CT, &json!({ "data": data }));
}

/// Asserts an answer with no `data`: `{"errors": [...]}` only.
fn assert_errors(r: &Resp, status: u16, content_type: &str, errors: &Value) {
    assert_body(r, status, content_type, &json!({ "errors": errors }));
}

/// `{"line": 1, "column": N}` of the first `needle` in a one-line `document`.
fn at(document: &str, needle: &str) -> Value {
    let column = document
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {document:?}"))
        + 1;
    json!({ "line": 1, "column": column })
}

/// A field's error: `message`, `code` and `status`, for the root field whose response key is
/// `key`, located at the first `needle` in a one-line `document`.
fn field_error_at(
    document: &str,
    needle: &str,
    key: &str,
    message: &str,
    code: &str,
    status: u16,
) -> Value {
    json!({
        "message": message,
        "locations": [at(document, needle)],
        "path": [key],
        "extensions": { "code": code, "status": status } })
}

/// A request error: message and code, status 400, no path.
fn request_error(message: &str, code: &str) -> Value {
    json!({ "message": message, "extensions": { "code": code, "status": 400 } })
}

/// A limit measured on the parsed operation: a request error located at the operation (here
/// always an anonymous one at the start of the document).
fn shape_error(message: &str, code: &str) -> Value {
    json!({ "message": message, "locations": [{ "line": 1, "column": 1 }],
            "extensions": { "code": code, "status": 400 } })
}

// ----- GraphQL over HTTP ------------------------------------------------------------------------

#[test]
fn post_json_and_get_query_string_give_the_same_answer() {
    let s = setup();
    let document = "query Pick($p: String) { one: users(path: $p) { id name } } \
                    query Other { echo { path } }";
    let variables = json!({ "p": "/json/users/2" });
    let expected = json!({ "one": { "id": 2, "name": "Alan Turing" } });
    for opts in [H1, H2] {
        let r = post(
            &s.gw,
            &json!({ "query": document, "variables": variables, "operationName": "Pick" }),
            opts,
        );
        assert_data(&r, &expected);
        assert!(r.header("x-request-id").is_some(), "{:?}", r.headers);

        let variables = variables.to_string();
        let params = [
            ("query", document),
            ("variables", variables.as_str()),
            ("operationName", "Pick"),
        ];
        assert_data(&get(&s.gw, &params, opts), &expected);
        // The other operation through GET too.
        let params = [("query", document), ("operationName", "Other")];
        assert_data(
            &get(&s.gw, &params, opts),
            &json!({ "echo": { "path": "/" } }),
        );
    }
    // `+` is a space in a form-encoded query string; empty variables and operationName are absent.
    let r = finish(
        http(
            "GET",
            s.gw.url("/graphql?query=%7B+echo+%7B+method+%7D+%7D&variables=&operationName="),
        ),
        H1,
    );
    assert_data(&r, &json!({ "echo": { "method": "GET" } }));
    // So is an empty operationName in a POST body, and the one operation runs.
    let r = post(
        &s.gw,
        &json!({ "query": "query Only { echo { method } }", "operationName": "" }),
        H1,
    );
    assert_data(&r, &json!({ "echo": { "method": "GET" } }));
    // `extensions` in a POST body is allowed and ignored.
    let r = post(
        &s.gw,
        &json!({ "query": "{ echo { method } }", "variables": null, "operationName": null,
                 "extensions": { "persistedQuery": {} } }),
        H1,
    );
    assert_data(&r, &json!({ "echo": { "method": "GET" } }));
}

#[test]
fn get_of_a_mutation_is_405_and_calls_nothing() {
    let s = setup();
    let peer = GrpcPeer::start();
    register(&s.gw, "peer", "py1", &peer.addr);
    let message = "Mutations cannot be sent with GET; use POST.";
    let expected =
        json!([{ "message": message, "extensions": { "code": "BAD_REQUEST", "status": 405 } }]);
    for opts in [H1, H2, STRICT] {
        let r = get(
            &s.gw,
            &[("query", "mutation { peer(path: \"/record/by-get\") }")],
            opts,
        );
        let ct = if opts.accept.is_some() {
            GRAPHQL_CT
        } else {
            JSON_CT
        };
        assert_errors(&r, 405, ct, &expected);
        assert_eq!(r.header("allow"), Some("POST"));
    }
    // Chosen by operationName among a query and a mutation: the query runs, the mutation is 405.
    let document = "query Q { __typename } mutation M { peer(path: \"/record/by-get\") }";
    let r = get(&s.gw, &[("query", document), ("operationName", "Q")], H1);
    assert_data(&r, &json!({ "__typename": "Query" }));
    let r = get(&s.gw, &[("query", document), ("operationName", "M")], H1);
    assert_errors(&r, 405, JSON_CT, &expected);
    // The same mutation by POST runs; the peer's log holds that one call only: the GETs never
    // reached it.
    let r = post(
        &s.gw,
        &json!({ "query": document, "operationName": "M" }),
        H1,
    );
    assert_data(
        &r,
        &json!({ "peer": { "tag": "by-get", "field": "peer", "method": "POST", "in_flight": 1 } }),
    );
    let log = query(&s.gw, "{ peer(path: \"/log\") { tag method } }");
    assert_data(
        &log,
        &json!({ "peer": [{ "tag": "by-get", "method": "POST" }] }),
    );
}

#[test]
fn get_of_a_query_that_calls_with_an_unsafe_method_is_405_and_calls_nothing() {
    // A GET is what a browser sends cross-site without a preflight, cookies and all: a query's
    // field asking for DELETE (or POST, by a variable) must not run from one.
    let s = setup();
    let peer = GrpcPeer::start();
    register(&s.gw, "peer", "py1", &peer.addr);
    let deleting = "{ a: peer(path: \"/record/by-get\") b: peer(path: \"/record/by-get\", method: \"delete\") }";
    let by_variable = "query($m: String) { peer(path: \"/record/by-get\", method: $m) }";
    for opts in [H1, H2, STRICT] {
        let r = get(&s.gw, &[("query", deleting)], opts);
        assert_eq!(r.status, 405, "{}", r.text());
        assert_eq!(r.header("allow"), Some("POST"));
        let body = r.json();
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("\"b\" calls with DELETE; use POST"),
            "{body}"
        );
        assert_eq!(body["errors"][0]["extensions"]["status"], 405);
        assert!(body.get("data").is_none(), "{body}");
        let r = get(
            &s.gw,
            &[("query", by_variable), ("variables", r#"{"m":"POST"}"#)],
            opts,
        );
        assert_eq!(r.status, 405, "{}", r.text());
    }
    // Safe methods run by GET, named in any case.
    let r = get(
        &s.gw,
        &[("query", by_variable), ("variables", r#"{"m":"head"}"#)],
        H1,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The peer saw only the HEAD; by POST the DELETE runs (beside its GET, in either order).
    let r = post(&s.gw, &json!({ "query": deleting }), H1);
    assert_eq!(r.status, 200, "{}", r.text());
    let log = query(&s.gw, "{ peer(path: \"/log\") { method } }").json();
    let methods: Vec<&str> = log["data"]["peer"]
        .as_array()
        .map(|calls| calls.iter().filter_map(|c| c["method"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(methods.first(), Some(&"HEAD"), "{log}");
    let mut posted = methods[1..].to_vec();
    posted.sort_unstable();
    assert_eq!(posted, ["DELETE", "GET"], "{log}");
}

#[test]
fn answers_vary_by_accept_and_an_encoded_post_is_refused() {
    let s = setup();
    // The status and media type of a request error follow `Accept`, so every answer says so.
    for opts in [H1, STRICT] {
        let r = get(&s.gw, &[("query", "{ nope }")], opts);
        assert_eq!(r.header("vary"), Some("accept"), "{:?}", r.headers);
    }
    let r = query(&s.gw, "{ __typename }");
    assert_eq!(r.header("vary"), Some("accept"), "{:?}", r.headers);
    // A body in a content coding is refused, not read as if it were none.
    let request = |coding: &str| {
        http("POST", s.gw.url("/graphql"))
            .header("content-type", "application/json")
            .header("content-encoding", coding)
            .body(r#"{"query":"{ __typename }"}"#)
            .send()
    };
    for coding in ["gzip", "identity, br"] {
        let r = request(coding);
        assert_eq!(r.status, 400, "{}", r.text());
        let message = r.json()["errors"][0]["message"].to_string();
        assert!(
            message.contains("Unsupported content-encoding"),
            "{message}"
        );
    }
    let r = request("identity");
    assert_data(&r, &json!({ "__typename": "Query" }));
}

#[test]
fn other_http_methods_and_head_are_405_from_the_gateway() {
    let s = setup();
    let r = http("PUT", s.gw.url("/graphql"))
        .header("content-type", "application/json")
        .body(r#"{"query":"{ echo }"}"#)
        .send();
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.header("allow"), Some("GET, POST"));
    // HEAD too: it would run the query only to drop the answer. The peer's log shows that the
    // HEADs called nothing.
    let peer = GrpcPeer::start();
    register(&s.gw, "peer", "py1", &peer.addr);
    let document = utf8_percent_encode("{ peer(path: \"/record/by-head\") }", NON_ALPHANUMERIC);
    for opts in [H1, H2] {
        let r = finish(
            http("HEAD", s.gw.url(&format!("/graphql?query={document}"))),
            opts,
        );
        assert_eq!(r.status, 405, "{:?}", r.headers);
        assert_eq!(r.header("allow"), Some("GET, POST"));
        assert!(r.body.is_empty());
    }
    let log = query(&s.gw, "{ peer(path: \"/log\") }");
    assert_data(&log, &json!({ "peer": [] }));
}

#[test]
fn bodies_that_are_not_graphql_requests_are_400_without_data() {
    let s = setup();
    let not_object = "The body of a GraphQL POST must be a JSON object.";
    let no_query = "A GraphQL request needs a \"query\" string.";
    let cases = [
        (
            "not json",
            "The body of a GraphQL POST is not valid JSON: expected ident at line 1 column 2.",
        ),
        (
            "",
            "The body of a GraphQL POST is not valid JSON: EOF while parsing a value at line 1 column 0.",
        ),
        (
            r#"{"query": "{ echo }", "variables": {"v": "\ud800x"}}"#,
            "The body of a GraphQL POST is not valid JSON: unexpected end of hex escape at line 1 column 49.",
        ),
        (r#"["{ echo }"]"#, not_object),
        (r#""{ echo }""#, not_object),
        ("{}", no_query),
        (r#"{"query": 1}"#, no_query),
        (r#"{"query": null}"#, no_query),
        (
            r#"{"query": "{ echo }", "variables": [1]}"#,
            "\"variables\" must be a JSON object.",
        ),
        (
            r#"{"query": "{ echo }", "operationName": 7}"#,
            "\"operationName\" must be a string.",
        ),
        (
            r#"{"query": "{ echo }", "extensions": "x"}"#,
            "\"extensions\" must be a JSON object.",
        ),
    ];
    for (body, message) in cases {
        for opts in [H1, STRICT] {
            let ct = if opts.accept.is_some() {
                GRAPHQL_CT
            } else {
                JSON_CT
            };
            let r = post_raw(&s.gw, body, opts);
            assert_errors(&r, 400, ct, &json!([request_error(message, "BAD_REQUEST")]));
        }
    }
    let get_cases: [(&str, &str); 5] = [
        (
            "?query=%7B+echo+%7D&variables=%7B%22v%22%3A%7D",
            "The \"variables\" parameter is not valid JSON: expected value at line 1 column 6.",
        ),
        ("", "A GraphQL GET request needs a \"query\" parameter."),
        (
            "?variables=%7B%7D",
            "A GraphQL GET request needs a \"query\" parameter.",
        ),
        (
            "?query=%7B+echo+%7D&variables=%5B%5D",
            "The \"variables\" parameter must be a JSON object.",
        ),
        (
            "?query=a&query=b",
            "The parameter \"query\" is given more than once.",
        ),
    ];
    for (qs, message) in get_cases {
        for opts in [H1, H2] {
            let r = finish(http("GET", s.gw.url(&format!("/graphql{qs}"))), opts);
            assert_errors(
                &r,
                400,
                JSON_CT,
                &json!([request_error(message, "BAD_REQUEST")]),
            );
        }
    }
}

#[test]
fn a_body_over_the_json_value_limit_is_400_before_it_is_parsed() {
    // Each value of a request's variables costs the gateway ~170 bytes while the request runs:
    // 2,000,000 zeros in a 4 MB body held 350 MB. The body object, the variables object and the
    // array are three values and the query one more, so n zeros are n + 4.
    const LIMIT: usize = 65_536;
    let s = setup();
    let body = |zeros: usize| {
        format!(
            r#"{{"query":"query($b: JSON) {{ echo(body: $b) @skip(if: true) }}","variables":{{"b":[{}]}}}}"#,
            vec!["0"; zeros].join(",")
        )
    };
    let r = post_raw(&s.gw, &body(LIMIT - 4), H1);
    assert_body(&r, 200, JSON_CT, &json!({"data": {}}));
    for opts in [H1, H2] {
        let r = post_raw(&s.gw, &body(LIMIT - 3), opts);
        let message = "The body of a GraphQL POST holds too many JSON values: at most 65536 \
                       (arrays, objects and scalars) are accepted.";
        assert_errors(
            &r,
            400,
            JSON_CT,
            &json!([request_error(message, "BAD_REQUEST")]),
        );
    }
}

#[test]
fn parse_and_validation_errors_are_200_for_json_and_400_for_graphql_response_json() {
    let s = setup();
    let syntax = "{ echo ";
    let syntax_errors = json!([{
        "message": "Syntax error: expected selection_set, selection, directive, or arguments.",
        "locations": [{ "line": 1, "column": 8 }],
        "extensions": { "code": "GRAPHQL_PARSE_FAILED", "status": 400 }
    }]);
    let invalid = "{ echo(path: 1, nope: \"x\") { a } }";
    let invalid_errors = json!([
        {
            "message": "Argument \"path\" has an invalid value 1: expected String, found 1.",
            "locations": [at(invalid, "1")],
            "extensions": { "code": "GRAPHQL_VALIDATION_FAILED", "status": 400 }
        },
        {
            "message": "Unknown argument \"nope\" on field \"Query.echo\".",
            "locations": [at(invalid, "nope")],
            "extensions": { "code": "GRAPHQL_VALIDATION_FAILED", "status": 400 }
        }
    ]);
    for (document, errors) in [(syntax, &syntax_errors), (invalid, &invalid_errors)] {
        for h2 in [false, true] {
            let lax = Opts { h2, accept: None };
            assert_errors(
                &post(&s.gw, &json!({ "query": document }), lax),
                200,
                JSON_CT,
                errors,
            );
            assert_errors(
                &get(&s.gw, &[("query", document)], lax),
                200,
                JSON_CT,
                errors,
            );
            let strict = Opts {
                h2,
                accept: Some(GRAPHQL_ACCEPT),
            };
            assert_errors(
                &post(&s.gw, &json!({ "query": document }), strict),
                400,
                GRAPHQL_CT,
                errors,
            );
            assert_errors(
                &get(&s.gw, &[("query", document)], strict),
                400,
                GRAPHQL_CT,
                errors,
            );
        }
    }
    // Accept negotiation: the type with the higher q wins; neither named means application/json.
    for (accept, status, ct) in [
        (
            "application/json, application/graphql-response+json;q=0.5",
            200,
            JSON_CT,
        ),
        (
            "application/json;q=0.5, application/graphql-response+json",
            400,
            GRAPHQL_CT,
        ),
        ("*/*", 200, JSON_CT),
        ("text/html", 200, JSON_CT),
    ] {
        let opts = Opts {
            h2: false,
            accept: Some(accept),
        };
        let r = post(&s.gw, &json!({ "query": syntax }), opts);
        assert_errors(&r, status, ct, &syntax_errors);
    }
    // Repeated Accept lines are one list (RFC 9110 §5.3): the second line's type wins here.
    for h2 in [false, true] {
        let mut req = http("POST", s.gw.url("/graphql"))
            .header("content-type", "application/json")
            .header("accept", "application/json;q=0.2")
            .header("accept", "application/graphql-response+json;q=0.5")
            .body(json!({ "query": syntax }).to_string());
        if h2 {
            req = req.h2();
        }
        assert_errors(&req.send(), 400, GRAPHQL_CT, &syntax_errors);
    }
    // An executed request is 200 with either media type.
    let r = post(&s.gw, &json!({ "query": "{ __typename }" }), STRICT);
    assert_body(
        &r,
        200,
        GRAPHQL_CT,
        &json!({ "data": { "__typename": "Query" } }),
    );
}

#[test]
fn unsupported_content_type_is_400() {
    let s = setup();
    let body = r#"{"query":"{ __typename }"}"#;
    for (content_type, message) in [
        (
            Some("text/plain"),
            "Unsupported content-type \"text/plain\": a POST to /graphql needs application/json.",
        ),
        (
            Some("application/graphql"),
            "Unsupported content-type \"application/graphql\": a POST to /graphql needs application/json.",
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "Unsupported content-type \"application/x-www-form-urlencoded\": a POST to /graphql needs application/json.",
        ),
        (None, "A POST to /graphql needs content-type: application/json."),
    ] {
        for h2 in [false, true] {
            let mut req = http("POST", s.gw.url("/graphql")).body(body);
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let r = finish(req, Opts { h2, accept: None });
            assert_errors(
                &r,
                400,
                JSON_CT,
                &json!([{ "message": message, "extensions": { "code": "BAD_REQUEST", "status": 400 } }]),
            );
        }
    }
    // Parameters and case do not matter.
    let r = finish(
        http("POST", s.gw.url("/graphql"))
            .header("content-type", "Application/JSON; charset=utf-8")
            .body(body),
        H1,
    );
    assert_data(&r, &json!({ "__typename": "Query" }));
}

// ----- root fields and arguments ----------------------------------------------------------------

#[test]
fn every_service_is_a_root_field_with_dashes_as_underscores_and_digits_prefixed() {
    let s = setup();
    let r = query(
        &s.gw,
        "{ echo { service graphql_field } users { service graphql_field } user_svc { service graphql_field } }",
    );
    assert_data(
        &r,
        &json!({
            "echo": { "service": "echo", "graphql_field": "echo" },
            "users": { "service": "users", "graphql_field": "users" },
            "user_svc": { "service": "user-svc", "graphql_field": "user_svc" }
        }),
    );
    // The same in a mutation.
    let r = post(
        &s.gw,
        &json!({ "query": "mutation { user_svc { service method } }" }),
        H2,
    );
    assert_data(
        &r,
        &json!({ "user_svc": { "service": "user-svc", "method": "POST" } }),
    );
    // A service registered later is a field of the next request.
    register(&s.gw, "late-svc", "e1", &s._echo.addr);
    let r = query(&s.gw, "{ late_svc { service } }");
    assert_data(&r, &json!({ "late_svc": { "service": "late-svc" } }));
    // A service whose name starts with a digit is a field with a leading `_` (a GraphQL name
    // cannot start with a digit), in calls and in introspection alike.
    for service in ["9lives", "123"] {
        register(&s.gw, service, "e1", &s._echo.addr);
    }
    let r = query(
        &s.gw,
        "{ _9lives { service graphql_field } n: _123 { service graphql_field } }",
    );
    assert_data(
        &r,
        &json!({
            "_9lives": { "service": "9lives", "graphql_field": "_9lives" },
            "n": { "service": "123", "graphql_field": "n" }
        }),
    );
    let r = query(&s.gw, r#"{ __type(name: "Mutation") { fields { name } } }"#);
    assert_data(
        &r,
        &json!({ "__type": { "fields": [{ "name": "_123" }, { "name": "_9lives" },
                                         { "name": "echo" }, { "name": "late_svc" },
                                         { "name": "user_svc" }, { "name": "users" }] } }),
    );
}

#[test]
fn arguments_reach_the_backend() {
    let s = setup();
    let document = r#"mutation Args($body: JSON) {
        created: users(path: "/a/b%20c", method: "put", query: "x=1&y=%2F", body: $body,
                       headers: [{name: "X-Trace", value: "t1"}, {name: "x-trace", value: "t2"}]) {
            method path query body body_len headers graphql_field service
        }
    }"#;
    let body = json!({ "name": "Grace", "tags": ["navy", 1], "nested": { "ok": true } });
    let r = post_with_headers(
        &s.gw,
        &json!({ "query": document, "variables": { "body": body } }),
        &[("x-client", "c1")],
    );
    assert_eq!(r.status, 200, "body {}", r.text());
    let v = r.json();
    assert_eq!(v.get("errors"), None, "{v}");
    let created = &v["data"]["created"];
    assert_eq!(created["method"], "PUT");
    assert_eq!(created["path"], "/a/b%20c");
    assert_eq!(created["query"], "x=1&y=%2F");
    assert_eq!(created["graphql_field"], "created");
    assert_eq!(created["service"], "users");
    let sent = body.to_string();
    assert_eq!(created["body"], sent.as_str());
    assert_eq!(created["body_len"], sent.len());
    // The client's headers (but not its content-type/content-length, which describe the GraphQL
    // request), then the call's own content-type, then the `headers` argument in order.
    assert_eq!(
        forwarded_headers(created),
        pairs(&[
            ("x-client", "c1"),
            ("content-type", "application/json"),
            ("x-trace", "t1"),
            ("x-trace", "t2"),
        ])
    );

    // Literal arguments in a query; a body that is a JSON string or number is sent as JSON text.
    let r = query(
        &s.gw,
        r#"{ s: echo(method: "POST", body: "text") { method body } n: echo(method: "POST", body: 42) { body } o: echo(body: {a: [1, {b: null}]}) { method body } }"#,
    );
    assert_data(
        &r,
        &json!({
            "s": { "method": "POST", "body": "\"text\"" },
            "n": { "body": "42" },
            "o": { "method": "GET", "body": "{\"a\":[1,{\"b\":null}]}" }
        }),
    );
}

#[test]
fn a_content_type_in_headers_replaces_the_bodys() {
    let s = setup();
    // The reviewer's case: the backend saw application/json and text/plain.
    let r = query(
        &s.gw,
        r#"mutation { echo(body: {a: 1}, headers: [{name: "content-type", value: "text/plain"}]) { headers body } }"#,
    );
    assert_eq!(r.status, 200, "body {}", r.text());
    let echo = &r.json()["data"]["echo"];
    let content_types: Vec<(String, String)> = echoed_headers(echo)
        .into_iter()
        .filter(|(n, _)| n == "content-type")
        .collect();
    assert_eq!(
        content_types,
        [("content-type".to_owned(), "text/plain".to_owned())]
    );
    assert_eq!(echo["body"], r#"{"a":1}"#);
    // Naming it twice is refused.
    let document = r#"mutation { echo(body: {a: 1}, headers: [{name: "content-type", value: "a/b"}, {name: "Content-Type", value: "c/d"}]) { headers } }"#;
    assert_body(
        &query(&s.gw, document),
        200,
        JSON_CT,
        &json!({
            "errors": [field_error_at(document, "echo", "echo",
                "The header \"content-type\" is given more than once in \"headers\".",
                "BAD_REQUEST", 400)],
            "data": { "echo": null } }),
    );
}

#[test]
fn a_call_is_held_to_the_header_limits_of_a_rest_request() {
    let s = setup();
    let too_large = |document: &str, key: &str, message: String| {
        let needle = format!("{key}: echo");
        field_error_at(document, &needle, key, &message, "HEADERS_TOO_LARGE", 431)
    };
    // --max-headers (100): the client's forwarded headers (curl sends host, user-agent and
    // accept) and the argument's count together. The reviewer sent 30,000.
    let document =
        "query($h: [HeaderInput!]) { many: echo(headers: $h) { body_len } ok: echo { body_len } }";
    let headers = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({ "name": format!("x-h{i}"), "value": "v" }))
            .collect()
    };
    let r = query_with(&s.gw, document, json!({ "h": headers(97) }), H1);
    assert_data(
        &r,
        &json!({ "many": { "body_len": 0 }, "ok": { "body_len": 0 } }),
    );
    let r = query_with(&s.gw, document, json!({ "h": headers(98) }), H1);
    assert_body(
        &r,
        200,
        JSON_CT,
        &json!({
            "errors": [too_large(document, "many", "the call to `echo` would carry 101 headers (the client's and the `headers` argument's), more than the limit of 100".to_owned())],
            "data": { "many": null, "ok": { "body_len": 0 } } }),
    );
    // --max-header-bytes (32 KiB): one big value, or a long path, as REST would count them.
    let document = r#"query($v: String!, $p: String) { big: echo(path: $p, headers: {name: "x-big", value: $v}) { body_len } }"#;
    let r = query_with(&s.gw, document, json!({ "v": "v".repeat(40_000) }), H1);
    let error = r.json()["errors"][0].clone();
    assert_eq!(
        error["extensions"],
        json!({ "code": "HEADERS_TOO_LARGE", "status": 431 }),
        "{error}"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .ends_with("more than the limit of 32768 bytes"),
        "{error}"
    );
    let path = format!("/{}", "p".repeat(40_000));
    let r = query_with(&s.gw, document, json!({ "v": "v", "p": path }), H2);
    assert_eq!(
        r.json()["errors"][0]["extensions"]["status"],
        431,
        "{}",
        r.text()
    );
    assert_eq!(r.json()["data"], json!({ "big": null }));
    // Within the limits the same call goes through.
    let r = query_with(
        &s.gw,
        document,
        json!({ "v": "v".repeat(20_000), "p": "/x" }),
        H1,
    );
    assert_data(&r, &json!({ "big": { "body_len": 0 } }));
}

#[test]
fn hop_by_hop_headers_never_reach_the_backend() {
    let s = setup();
    // In the `headers` argument: hop-by-hop ones and content-length (the gateway frames the body).
    let document = r#"{ echo(body: {a: 1}, headers: [
        {name: "connection", value: "x-kept"}, {name: "Keep-Alive", value: "timeout=5"},
        {name: "te", value: "trailers"}, {name: "upgrade", value: "h2c"},
        {name: "proxy-authorization", value: "Basic eA=="}, {name: "proxy-x", value: "1"},
        {name: "transfer-encoding", value: "chunked"}, {name: "trailer", value: "x-t"},
        {name: "content-length", value: "0"}, {name: "x-kept", value: "1"}]) { headers body } }"#;
    // From the client: a header its `Connection` header nominates is hop-by-hop too (as for REST).
    let r = post_with_headers(
        &s.gw,
        &json!({ "query": document }),
        &[
            ("connection", "x-nominated"),
            ("x-nominated", "n"),
            ("x-client", "c"),
            // These describe the GraphQL request's own body, which no call carries.
            ("content-encoding", "identity"),
            ("content-digest", "sha-256=:abc=:"),
            ("content-language", "en"),
            ("repr-digest", "sha-256=:abc=:"),
        ],
    );
    assert_eq!(r.status, 200, "body {}", r.text());
    let echo = &r.json()["data"]["echo"];
    assert_eq!(echo["body"], r#"{"a":1}"#);
    assert_eq!(
        forwarded_headers(echo),
        pairs(&[
            ("x-client", "c"),
            ("content-type", "application/json"),
            ("x-kept", "1"),
        ])
    );
}

/// The headers an echoed call carried, without the three the test's HTTP client sends on its own.
fn forwarded_headers(echo: &Value) -> Vec<(String, String)> {
    echoed_headers(echo)
        .into_iter()
        .filter(|(n, _)| n != "host" && n != "user-agent" && n != "accept")
        .collect()
}

#[test]
fn a_call_carries_the_request_id_in_use_in_its_headers_too() {
    // A client id the gateway cannot use is replaced by a generated one in the call's headers
    // too, as for REST: the backend sees one id, the one the client is answered with.
    let s = setup();
    let r = post_with_headers(
        &s.gw,
        &json!({ "query": "{ echo { headers request_id } }" }),
        &[("x-request-id", "my id")],
    );
    assert_eq!(r.status, 200, "body {}", r.text());
    let in_use = r.header("x-request-id").expect("x-request-id");
    assert_ne!(in_use, "my id");
    let echo = &r.json()["data"]["echo"];
    assert_eq!(echo["request_id"], in_use);
    assert_eq!(echoed_values(echo, "x-request-id"), [in_use]);
}

fn post_with_headers(gw: &Gateway, request: &Value, headers: &[(&str, &str)]) -> Resp {
    let mut req = http("POST", gw.url("/graphql"))
        .header("content-type", "application/json")
        .body(request.to_string());
    for (n, v) in headers {
        req = req.header(n, v);
    }
    finish(req, H1)
}

#[test]
fn defaults_are_path_slash_get_in_query_post_in_mutation_and_no_body() {
    let s = setup();
    let fields = "method path query body body_len graphql_field";
    for (document, method) in [
        (format!("{{ echo {{ {fields} }} }}"), "GET"),
        (format!("query {{ echo {{ {fields} }} }}"), "GET"),
        (format!("mutation {{ echo {{ {fields} }} }}"), "POST"),
    ] {
        for opts in [H1, H2] {
            let r = post(&s.gw, &json!({ "query": document }), opts);
            assert_eq!(r.status, 200, "body {}", r.text());
            let echo = &r.json()["data"]["echo"];
            assert_eq!(
                echo,
                &json!({ "method": method, "path": "/", "query": "", "body": "", "body_len": 0,
                         "graphql_field": "echo" })
            );
        }
    }
    // Without a body argument no content-type is added to the call.
    let r = query(&s.gw, "{ echo { headers } }");
    let headers = echoed_headers(&r.json()["data"]["echo"]);
    assert!(
        headers.iter().all(|(n, _)| n != "content-type"),
        "{headers:?}"
    );
}

#[test]
fn bad_argument_values_fail_only_their_field() {
    let s = setup();
    let document = r#"{ ok: echo { path } p: echo(path: "relative") m: echo(method: "GE T") h: echo(headers: [{name: "bad name", value: "v"}]) }"#;
    let r = query(&s.gw, document);
    let field_error = |key: &str, message: &str| {
        let needle = format!("{key}: echo");
        field_error_at(document, &needle, key, message, "BAD_REQUEST", 400)
    };
    assert_body(
        &r,
        200,
        JSON_CT,
        &json!({
            "errors": [
                field_error("p", "The path \"relative\" must start with '/'."),
                field_error("m", "\"GE T\" is not an HTTP method."),
                field_error("h", "\"bad name\" is not a header name."),
            ],
            "data": { "ok": { "path": "/" }, "p": null, "m": null, "h": null }
        }),
    );
}

#[test]
fn header_input_variables_and_single_values() {
    let s = setup();
    let document = "query ($h: [HeaderInput!]) { echo(headers: $h) { headers } }";
    let ours = |r: &Resp| -> Vec<(String, String)> {
        assert_eq!(r.status, 200, "body {}", r.text());
        echoed_headers(&r.json()["data"]["echo"])
            .into_iter()
            .filter(|(n, _)| n.starts_with("x-v"))
            .collect()
    };
    let r = query_with(
        &s.gw,
        document,
        json!({ "h": [
            { "name": "X-V1", "value": "1" }, { "name": "x-v2", "value": "two words" }
        ] }),
        H1,
    );
    assert_eq!(
        ours(&r),
        vec![
            ("x-v1".to_string(), "1".to_string()),
            ("x-v2".to_string(), "two words".to_string())
        ]
    );
    // A single object where a list is expected is a list of one (input coercion).
    let r = query_with(
        &s.gw,
        document,
        json!({ "h": { "name": "x-v", "value": "v" } }),
        H2,
    );
    assert_eq!(ours(&r), vec![("x-v".to_string(), "v".to_string())]);
    // A HeaderInput without its required value is a variable error.
    let r = query_with(&s.gw, document, json!({ "h": [{ "name": "x-v" }] }), H1);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v.get("data"), None, "{v}");
    assert_eq!(
        v["errors"][0]["extensions"],
        json!({ "code": "BAD_USER_INPUT", "status": 400 })
    );
}

#[test]
fn same_response_key_merges_and_conflicting_arguments_are_refused() {
    let s = setup();
    // One key selected twice with the same arguments is one call with the selections merged.
    let r = query(&s.gw, "{ echo { path } echo { method graphql_field } }");
    assert_data(
        &r,
        &json!({ "echo": { "path": "/", "method": "GET", "graphql_field": "echo" } }),
    );
    let document = r#"{ echo(path: "/a") { path } echo(path: "/b") { method } }"#;
    assert_errors(
        &query(&s.gw, document),
        200,
        JSON_CT,
        &json!([{
            "message": "Fields \"echo\" conflict because they have differing arguments. Use different aliases on the fields to fetch both if this was intentional.",
            "locations": [at(document, "echo"), at(document, "echo(path: \"/b")],
            "extensions": { "code": "GRAPHQL_VALIDATION_FAILED", "status": 400 }
        }]),
    );
}

// ----- projection -------------------------------------------------------------------------------

#[test]
fn projection_keeps_selected_keys_maps_lists_and_nulls_missing_keys() {
    let s = setup();
    let document = r#"{ __typename all: users(path: "/json/users") { __typename id who: name address { city __typename } tags missing } one: users(path: "/json/users/1") { name address { zip nope } tags { x } } whole: users(path: "/json/users/2") }"#;
    for opts in [H1, H2] {
        let r = post(&s.gw, &json!({ "query": document }), opts);
        let expected = json!({
            "__typename": "Query",
            "all": [
                { "__typename": "JSON", "id": 1, "who": "Ada Lovelace",
                  "address": { "city": "London", "__typename": "JSON" }, "tags": ["math", "poet"], "missing": null },
                { "__typename": "JSON", "id": 2, "who": "Alan Turing",
                  "address": { "city": "Wilmslow", "__typename": "JSON" }, "tags": ["cs"], "missing": null }
            ],
            // A selection on a list of scalars leaves the scalars as they are.
            "one": { "name": "Ada Lovelace", "address": { "zip": "N1", "nope": null }, "tags": ["math", "poet"] },
            "whole": { "id": 2, "name": "Alan Turing", "email": "alan@example.com",
                       "address": { "city": "Wilmslow", "zip": "SK9" }, "tags": ["cs"] }
        });
        assert_data(&r, &expected);
        // Keys come in selection order (not the backend's), as GraphQL requires.
        assert!(
            r.text().starts_with(
                r#"{"data":{"__typename":"Query","all":[{"__typename":"JSON","id":1,"who":"Ada Lovelace","address":{"city":"London","__typename":"JSON"},"tags":["math","poet"],"missing":null}"#
            ),
            "{}",
            r.text()
        );
    }
    // No selection returns the whole value, exactly what REST returns.
    let rest = s.gw.get("/users/json/users");
    assert_eq!(rest.status, 200);
    let r = query(&s.gw, r#"{ users(path: "/json/users") }"#);
    assert_data(&r, &json!({ "users": rest.json() }));
    // __typename at the root of a mutation.
    let r = post(
        &s.gw,
        &json!({ "query": "mutation { __typename t: __typename }" }),
        H1,
    );
    assert_data(&r, &json!({ "__typename": "Mutation", "t": "Mutation" }));
    // /json/echo returns the body: projection of arbitrary nesting, scalars under a selection kept.
    let r = query(
        &s.gw,
        r#"{ echo(path: "/json/echo", method: "POST", body: {a: {b: [{c: 1, d: 2}, {c: 3}, 4, null]}, e: "x"}) { a { b { c } } e { f } g } }"#,
    );
    assert_data(
        &r,
        &json!({ "echo": { "a": { "b": [{ "c": 1 }, { "c": 3 }, 4, null] }, "e": "x", "g": null } }),
    );
}

// ----- variables, fragments, directives, operationName ------------------------------------------

#[test]
fn an_answer_nested_too_deep_for_its_selection_is_a_bad_backend_response() {
    let s = setup();
    // The reviewer's answers: `[[[...]]]` 3,000 levels deep aborted the process, 100,000 levels
    // cost 13 s of CPU first. The field fails; the others, and the gateway, carry on.
    for depth in [129, 3_000, 100_000] {
        let document = format!(
            r#"{{ deep: echo(path: "/json/nested/{depth}") {{ x }} ok: echo {{ path }} }}"#
        );
        let r = query(&s.gw, &document);
        assert_body(
            &r,
            200,
            JSON_CT,
            &json!({
                "errors": [field_error_at(&document, "deep:", "deep",
                    "Service \"echo\" answered with JSON nested more than 128 levels deep where the selection reads it.",
                    "BAD_BACKEND_RESPONSE", 502)],
                "data": { "deep": null, "ok": { "path": "/" } } }),
        );
    }
    // Up to the limit the arrays are mapped over; without a selection any depth passes through.
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let r = query(&s.gw, r#"{ echo(path: "/json/nested/128") { x } }"#);
    assert_eq!(
        r.text(),
        format!(r#"{{"data":{{"echo":{}}}}}"#, nested(128))
    );
    let r = query(&s.gw, r#"{ echo(path: "/json/nested/100000") }"#);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        format!(r#"{{"data":{{"echo":{}}}}}"#, nested(100_000))
    );
}

#[test]
fn variables_with_defaults_and_required_ones() {
    let s = setup();
    let document = r#"query ($path: String = "/json/users/1", $want: Boolean!, $m: String) { users(path: $path, method: $m) { name email @include(if: $want) } }"#;
    let cases = [
        (
            json!({ "want": true }),
            json!({ "users": { "name": "Ada Lovelace", "email": "ada@example.com" } }),
        ),
        (
            json!({ "want": false, "path": "/json/users/2" }),
            json!({ "users": { "name": "Alan Turing" } }),
        ),
        // Null for a nullable variable with a default is null, not the default (the default
        // applies when the variable is absent): the path is then "/" and the echo has no `name`.
        (
            json!({ "want": false, "path": null }),
            json!({ "users": { "name": null } }),
        ),
    ];
    for (variables, data) in cases {
        let r = query_with(&s.gw, document, variables.clone(), H1);
        assert_data(&r, &data);
        let vars = variables.to_string();
        assert_data(
            &get(&s.gw, &[("query", document), ("variables", &vars)], H2),
            &data,
        );
    }
    // A required variable missing, or of the wrong type: a request error, nothing is called.
    let r = post(&s.gw, &json!({ "query": document }), H1);
    assert_errors(
        &r,
        200,
        JSON_CT,
        &json!([{
            "message": "Variable \"$want\" of required type \"Boolean!\" was not provided.",
            "locations": [at(document, "$want")],
            "extensions": { "code": "BAD_USER_INPUT", "status": 400 }
        }]),
    );
    let r = query_with(&s.gw, document, json!({ "want": "yes" }), STRICT);
    assert_errors(
        &r,
        400,
        GRAPHQL_CT,
        &json!([{
            "message": "Variable \"$want\" got an invalid value \"yes\": expected Boolean, found \"yes\".",
            "locations": [at(document, "$want")],
            "extensions": { "code": "BAD_USER_INPUT", "status": 400 }
        }]),
    );
}

#[test]
fn fragments_and_skip_include() {
    let s = setup();
    let document = r#"query ($skip: Boolean!) { ...Root ... @skip(if: $skip) { skipped: echo { path } } ... on Query { inline: users(path: "/json/users/2") { ... on JSON { id } ...Name } } } fragment Root on Query { u: users(path: "/json/users") { ...Name address @include(if: $skip) { city } } } fragment Name on JSON { name __typename }"#;
    let r = query_with(&s.gw, document, json!({ "skip": true }), H1);
    assert_data(
        &r,
        &json!({
            "u": [
                { "name": "Ada Lovelace", "__typename": "JSON", "address": { "city": "London" } },
                { "name": "Alan Turing", "__typename": "JSON", "address": { "city": "Wilmslow" } }
            ],
            "inline": { "id": 2, "name": "Alan Turing", "__typename": "JSON" }
        }),
    );
    let r = query_with(&s.gw, document, json!({ "skip": false }), H2);
    assert_data(
        &r,
        &json!({
            "u": [
                { "name": "Ada Lovelace", "__typename": "JSON" },
                { "name": "Alan Turing", "__typename": "JSON" }
            ],
            "skipped": { "path": "/" },
            "inline": { "id": 2, "name": "Alan Turing", "__typename": "JSON" }
        }),
    );
    // Literal directives on root fields: a skipped root field is not in data (and not called).
    let calls = || support::cluster::metric(&s.gw, "switchyard_upstream_calls_total");
    let before = calls();
    let r = query(
        &s.gw,
        r#"{ a: echo @skip(if: true) b: echo(path: "/b") @include(if: true) { path } c: echo @include(if: false) d: echo(path: "/d") @skip(if: false) @include(if: true) { path } }"#,
    );
    assert_data(&r, &json!({ "b": { "path": "/b" }, "d": { "path": "/d" } }));
    assert_eq!(calls() - before, 2, "only b and d were called");
}

#[test]
fn operation_name_chooses_among_operations() {
    let s = setup();
    let document = r#"query A { echo(path: "/a") { path } } query B { echo(path: "/b") { path } } mutation C { echo(path: "/c") { path method } }"#;
    for (name, data) in [
        ("A", json!({ "echo": { "path": "/a" } })),
        ("B", json!({ "echo": { "path": "/b" } })),
        ("C", json!({ "echo": { "path": "/c", "method": "POST" } })),
    ] {
        let r = post(
            &s.gw,
            &json!({ "query": document, "operationName": name }),
            H1,
        );
        assert_data(&r, &data);
    }
    // Several operations and no name: the error points at every operation.
    let r = post(&s.gw, &json!({ "query": document }), H1);
    assert_errors(
        &r,
        200,
        JSON_CT,
        &json!([{
            "message": "Must provide operation name if query contains multiple operations.",
            "locations": [at(document, "query A"), at(document, "query B"), at(document, "mutation C")],
            "extensions": { "code": "GRAPHQL_VALIDATION_FAILED", "status": 400 }
        }]),
    );
    let r = post(
        &s.gw,
        &json!({ "query": document, "operationName": "Z" }),
        H1,
    );
    assert_errors(
        &r,
        200,
        JSON_CT,
        &json!([request_error(
            "Unknown operation named \"Z\".",
            "GRAPHQL_VALIDATION_FAILED"
        )]),
    );
    // One operation: operationName may be absent, but must match when given.
    let single = "query Only { __typename }";
    assert_data(
        &post(&s.gw, &json!({ "query": single }), H1),
        &json!({ "__typename": "Query" }),
    );
    assert_errors(
        &post(
            &s.gw,
            &json!({ "query": single, "operationName": "Other" }),
            H1,
        ),
        200,
        JSON_CT,
        &json!([request_error(
            "Unknown operation named \"Other\".",
            "GRAPHQL_VALIDATION_FAILED"
        )]),
    );
}

// ----- failures ---------------------------------------------------------------------------------

#[test]
fn a_failing_service_beside_healthy_ones() {
    let s = setup();
    let dead = DeadAddr::new();
    register(&s.gw, "down", "d1", &dead.addr);
    let document = r#"{ ok: users(path: "/json/users/1") { name } e500: echo(path: "/status/500") { path } denied: user_svc(path: "/grpc-error/7") { path } missing: users(path: "/json/users/99") { name } gone: down { path } ok2: user_svc { service } }"#;
    let r = query(&s.gw, document);
    let field_error = |key: &str, message: &str, code: &str, status: u16| {
        field_error_at(document, &format!("{key}:"), key, message, code, status)
    };
    assert_body(
        &r,
        200,
        JSON_CT,
        &json!({
            "errors": [
                field_error("e500", "Service \"echo\" answered with status 500.", "BACKEND_ERROR", 500),
                field_error("denied", "echo error 7", "PERMISSION_DENIED", 403),
                field_error("missing", "Service \"users\" answered with status 404.", "BACKEND_ERROR", 404),
                field_error(
                    "gone",
                    "every instance of `down` refused the connection",
                    "NO_HEALTHY_INSTANCE",
                    503
                ),
            ],
            "data": {
                "ok": { "name": "Ada Lovelace" },
                "e500": null,
                "denied": null,
                "missing": null,
                "gone": null,
                "ok2": { "service": "user-svc" }
            }
        }),
    );

    // Over HTTP/2 and in a mutation (run in order), with more gRPC codes.
    let document = r#"mutation { a: echo(path: "/grpc-error/5") b: echo(path: "/json/echo", body: {x: 1}) { x } c: echo(path: "/grpc-error/14") }"#;
    let r = post(&s.gw, &json!({ "query": document }), H2);
    assert_body(
        &r,
        200,
        JSON_CT,
        &json!({
            "errors": [
                field_error_at(document, "a:", "a", "echo error 5", "NOT_FOUND", 404),
                field_error_at(document, "c:", "c", "echo error 14", "UNAVAILABLE", 503)
            ],
            "data": { "a": null, "b": { "x": 1 }, "c": null }
        }),
    );
    // A backend that answers 2xx with a body that is not JSON.
    let document = r#"{ bytes: echo(path: "/bytes/3") ok: echo { path } }"#;
    let r = query(&s.gw, document);
    let v = r.json();
    assert_eq!(r.status, 200);
    assert_eq!(v["data"], json!({ "bytes": null, "ok": { "path": "/" } }));
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["errors"][0]["path"], json!(["bytes"]));
    assert_eq!(v["errors"][0]["locations"], json!([at(document, "bytes:")]));
    assert_eq!(
        v["errors"][0]["extensions"],
        json!({ "code": "BAD_BACKEND_RESPONSE", "status": 502 })
    );
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Service \"echo\" answered with a body that is not JSON: "),
        "{message}"
    );
}

#[test]
fn unknown_service_field_is_a_validation_error() {
    let s = setup();
    let document = "{ echo { path } nosuch { a } user_svc }";
    let expected = json!([{
        "message": "Cannot query field \"nosuch\" on type \"Query\": no service \"nosuch\" is registered.",
        "locations": [at(document, "nosuch")],
        "extensions": { "code": "GRAPHQL_VALIDATION_FAILED", "status": 400 }
    }]);
    assert_errors(&query(&s.gw, document), 200, JSON_CT, &expected);
    assert_errors(
        &post(&s.gw, &json!({ "query": document }), STRICT),
        400,
        GRAPHQL_CT,
        &expected,
    );
    // The dashed name itself is not a field name.
    let document = "mutation { user-svc }";
    let r = query(&s.gw, document);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v.get("data"), None, "{v}");
    assert_eq!(v["errors"][0]["extensions"]["code"], "GRAPHQL_PARSE_FAILED");
    // A deregistered service stops being a field.
    assert_eq!(deregister(&s.gw, "users", "e1", None).status, 204);
    let document = "{ users }";
    let gone = json!([{
        "message": "Cannot query field \"users\" on type \"Query\": no service \"users\" is registered.",
        "locations": [at(document, "users")],
        "extensions": { "code": "GRAPHQL_VALIDATION_FAILED", "status": 400 }
    }]);
    // Every shard applies the removal; a bounded poll covers requests landing on another shard.
    let mut last = None;
    let converged = poll_until(READY_TRIES, || {
        let r = query(&s.gw, document);
        let done = r.status == 200 && r.json() == json!({ "errors": gone });
        last = Some(r.text());
        done
    });
    assert!(converged, "last answer {last:?}");
}

// ----- execution order --------------------------------------------------------------------------

/// Query root fields are called concurrently. Proved without timing: each field calls a barrier on
/// the grpcio peer that answers only once all three calls have arrived, so sequential calls would
/// leave the first one waiting alone until the peer gives up (504 BARRIER_TIMEOUT, a bound on a
/// failing run, not a measurement).
#[test]
fn query_root_fields_are_called_concurrently() {
    let s = setup();
    let peer = GrpcPeer::start();
    register(&s.gw, "peer", "py1", &peer.addr);
    for (round, opts) in [(1, H1), (2, H2), (3, H1)] {
        let document = format!(
            r#"{{ a: peer(path: "/barrier/q{round}/3") b: peer(path: "/barrier/q{round}/3") {{ arrived }} c: peer(path: "/barrier/q{round}/3") {{ barrier }} ok: echo {{ path }} }}"#
        );
        let r = post(&s.gw, &json!({ "query": document }), opts);
        let name = format!("q{round}");
        assert_data(
            &r,
            &json!({
                "a": { "barrier": name, "arrived": 3 },
                "b": { "arrived": 3 },
                "c": { "barrier": name },
                "ok": { "path": "/" }
            }),
        );
    }
    // The echo's delays are answered too, next to each other (no time is measured).
    let r = query(
        &s.gw,
        r#"{ a: echo(path: "/delay/300") { path } b: user_svc(path: "/delay/300") { path } }"#,
    );
    assert_data(
        &r,
        &json!({ "a": { "path": "/delay/300" }, "b": { "path": "/delay/300" } }),
    );
}

/// Mutation root fields run one after another in document order: the peer logs every call as it
/// arrives, with the number of calls it was serving at that moment (always 1: each call started
/// after the previous one was answered). Aliases are reversed against the tags in some rounds, so
/// the order is the document's, not the alphabetical order of the response keys.
#[test]
fn mutation_root_fields_run_in_document_order() {
    let s = setup();
    let peer = GrpcPeer::start();
    register(&s.gw, "peer", "py1", &peer.addr);
    let rounds: [(&[&str], Opts<'_>); 4] = [
        (&["a", "b", "c"], H1),
        (&["z", "y", "x"], H1),
        (&["m", "a", "z", "b"], H2),
        (&["c", "b", "a"], H2),
    ];
    let mut expected_log = Vec::new();
    for (round, (aliases, opts)) in rounds.iter().enumerate() {
        let fields: Vec<String> = aliases
            .iter()
            .enumerate()
            .map(|(i, alias)| format!(r#"{alias}: peer(path: "/record/{round}-{i}")"#))
            .collect();
        let document = format!("mutation {{ {} }}", fields.join(" "));
        let r = post(&s.gw, &json!({ "query": document }), *opts);
        let mut data = serde_json::Map::new();
        for (i, alias) in aliases.iter().enumerate() {
            let entry = json!({ "tag": format!("{round}-{i}"), "field": alias, "method": "POST", "in_flight": 1 });
            data.insert(alias.to_string(), entry.clone());
            expected_log.push(entry);
        }
        assert_data(&r, &Value::Object(data));
        // The response keys follow the document too.
        let keys: Vec<String> = r.json()["data"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, aliases.to_vec());
    }
    let r = query(&s.gw, r#"{ peer(path: "/log") }"#);
    assert_data(&r, &json!({ "peer": expected_log }));
}

// ----- limits -----------------------------------------------------------------------------------

/// Asserts that `document` is refused with exactly `errors`, as 200 (application/json) and as 400
/// (application/graphql-response+json), by POST and by GET.
fn assert_refused(gw: &Gateway, document: &str, errors: &Value) {
    assert_errors(
        &post(gw, &json!({ "query": document }), H1),
        200,
        JSON_CT,
        errors,
    );
    assert_errors(
        &post(gw, &json!({ "query": document }), STRICT),
        400,
        GRAPHQL_CT,
        errors,
    );
    // A GET carries the document in the request line, which the header section limit (32 KiB)
    // bounds before GraphQL sees it (see `get_beyond_the_header_limit_is_431`).
    if utf8_percent_encode(document, NON_ALPHANUMERIC).count() < 16 * 1024 {
        assert_errors(&get(gw, &[("query", document)], H2), 200, JSON_CT, errors);
    }
}

#[test]
fn get_beyond_the_header_limit_is_431() {
    let s = setup();
    let document = format!("{{ echo {{ path }} }}{}", " ".repeat(40 * 1024));
    let r = get(&s.gw, &[("query", &document)], H1);
    let error = assert_error(&r, 431, "HEADERS_TOO_LARGE");
    assert_eq!(error["service"], Value::Null);
    // The same document by POST is fine.
    assert_data(
        &query(&s.gw, &document),
        &json!({ "echo": { "path": "/" } }),
    );
}

#[test]
fn limit_document_size() {
    let s = setup();
    // 65 536 bytes pass (padding is ignored white space), one more is refused before parsing.
    let document = "{ echo { path } }";
    let at_limit = format!("{document}{}", " ".repeat(65536 - document.len()));
    assert_eq!(at_limit.len(), 65536);
    assert_data(
        &query(&s.gw, &at_limit),
        &json!({ "echo": { "path": "/" } }),
    );
    let over = format!("{at_limit} ");
    assert_refused(
        &s.gw,
        &over,
        &json!([request_error(
            "The document is 65537 bytes, more than the limit of 65536 bytes.",
            "DOCUMENT_TOO_LARGE"
        )]),
    );
}

#[test]
fn limit_tokens() {
    let s = setup();
    // `{ echo { a a ... } }` is 5 tokens plus one per `a`.
    let document = |n: usize| format!("{{ echo {{{} }} }}", " a".repeat(n));
    assert_data(
        &query(&s.gw, &document(9995)),
        &json!({ "echo": { "a": null } }),
    );
    assert_refused(
        &s.gw,
        &document(9996),
        &json!([request_error(
            "The document has more than 10000 tokens (counted 10001 before stopping).",
            "TOO_MANY_TOKENS"
        )]),
    );
    // Fragments spread twice per level: a short document that would select 2^14 fields.
    let mut bomb = String::from("{ echo { ...F0 } }");
    for i in 0..14 {
        bomb.push_str(&format!(
            " fragment F{i} on JSON {{ ...F{n} ...F{n} }}",
            n = i + 1
        ));
    }
    bomb.push_str(" fragment F14 on JSON { a }");
    assert_refused(
        &s.gw,
        &bomb,
        &json!([shape_error(
            "With fragments expanded the operation selects 16385 fields, more than the limit of 10000.",
            "TOO_MANY_TOKENS"
        )]),
    );
}

#[test]
fn limit_depth() {
    let s = setup();
    // A root field is depth 1; `{ echo { a { a ... } } }` with n `a` levels is n + 1 deep.
    let document = |n: usize| format!("{{ echo {}{} }}", "{ a ".repeat(n), "}".repeat(n));
    let mut nested = Value::Null;
    for _ in 0..14 {
        nested = json!({ "a": nested });
    }
    // Depth 16: the echo's JSON has no `a`, so the first level is null.
    assert_data(
        &query(&s.gw, &document(15)),
        &json!({ "echo": { "a": null } }),
    );
    assert_refused(
        &s.gw,
        &document(16),
        &json!([shape_error(
            "The operation is 17 levels deep, more than the limit of 16.",
            "QUERY_TOO_DEEP"
        )]),
    );
    // Depth counts through fragments too; /json/echo returns the body, 14 levels of `a`, and the
    // fragment's n levels of `a` project it whole (the 15th level selects inside a null).
    let body = nested.to_string().replace('"', "");
    let through_fragment = |n: usize| {
        format!(
            r#"{{ echo(path: "/json/echo", method: "POST", body: {body}) {{ ...D }} }} fragment D on JSON {}{}"#,
            "{ a ".repeat(n),
            "}".repeat(n)
        )
    };
    assert_data(
        &query(&s.gw, &through_fragment(15)),
        &json!({ "echo": nested }),
    );
    assert_refused(
        &s.gw,
        &through_fragment(16),
        &json!([shape_error(
            "The operation is 17 levels deep, more than the limit of 16.",
            "QUERY_TOO_DEEP"
        )]),
    );
}

#[test]
fn limit_depth_applies_to_every_operation_and_unused_fragment() {
    let s = setup();
    // The reviewer's repro: 15 fragments of 60 nested fields each, chained, in an operation that is
    // not the one selected. It used to overflow a shard's stack and abort the process.
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
    let request = json!({ "query": document, "operationName": "A" });
    let error = json!({
        "message": "The operation \"B\" is 902 levels deep, more than the limit of 16.",
        "locations": [at(&document, "query B")],
        "extensions": { "code": "QUERY_TOO_DEEP", "status": 400 } });
    assert_errors(&post(&s.gw, &request, H1), 200, JSON_CT, &json!([error]));
    assert_errors(
        &post(&s.gw, &request, STRICT),
        400,
        GRAPHQL_CT,
        &json!([error]),
    );
    // Fragments that nothing uses are measured too, at the one nothing spreads.
    let mut unused = String::from("{ __typename }");
    for i in 0..700 {
        unused.push_str(&format!(
            " fragment F{i} on JSON {{ a {{ ...F{} }} }}",
            i + 1
        ));
    }
    unused.push_str(" fragment F700 on JSON { z }");
    let error = json!({
        "message": "The fragment \"F0\" is 701 levels deep, more than the limit of 16.",
        "locations": [at(&unused, "fragment F0 ")],
        "extensions": { "code": "QUERY_TOO_DEEP", "status": 400 } });
    assert_errors(&query(&s.gw, &unused), 200, JSON_CT, &json!([error]));
    // The gateway is still there.
    assert_data(
        &query(&s.gw, "{ __typename }"),
        &json!({ "__typename": "Query" }),
    );
}

#[test]
fn limit_root_fields() {
    let s = setup();
    let document = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!(r#"f{i}: echo(path: "/{i}") {{ path }}"#))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let data: serde_json::Map<String, Value> = (0..32)
        .map(|i| (format!("f{i}"), json!({ "path": format!("/{i}") })))
        .collect();
    assert_data(&query(&s.gw, &document(32)), &Value::Object(data));
    assert_refused(
        &s.gw,
        &document(33),
        &json!([shape_error(
            "The operation has 33 root fields, more than the limit of 32.",
            "TOO_MANY_ROOT_FIELDS"
        )]),
    );
    // Root fields brought in by fragments count as well (meta fields such as `__typename` call no
    // backend and do not).
    let fields: Vec<String> = (0..17).map(|i| format!("g{i}: echo")).collect();
    let spread = format!(
        "{{ ...R ... on Query {{ x: echo __typename }} }} fragment R on Query {{ {} ...S }} fragment S on Query {{ {} }}",
        fields.join(" "),
        fields.iter().map(|f| f.replacen('g', "h", 1)).collect::<Vec<_>>().join(" ")
    );
    assert_refused(
        &s.gw,
        &spread,
        &json!([shape_error(
            "The operation has 35 root fields, more than the limit of 32.",
            "TOO_MANY_ROOT_FIELDS"
        )]),
    );
    // A root field `@skip` leaves out calls no backend and does not count either.
    let skipped = document(33).replacen(
        r#"f0: echo(path: "/0")"#,
        r#"f0: echo(path: "/0") @skip(if: true)"#,
        1,
    );
    let data: serde_json::Map<String, Value> = (1..33)
        .map(|i| (format!("f{i}"), json!({ "path": format!("/{i}") })))
        .collect();
    assert_data(&query(&s.gw, &skipped), &Value::Object(data));
}

#[test]
fn limit_aliases() {
    let s = setup();
    let document = |n: usize| {
        let fields: Vec<String> = (0..n).map(|i| format!("k{i}: path")).collect();
        format!("{{ echo {{ {} }} }}", fields.join(" "))
    };
    let data: serde_json::Map<String, Value> =
        (0..64).map(|i| (format!("k{i}"), json!("/"))).collect();
    assert_data(
        &query(&s.gw, &document(64)),
        &json!({ "echo": Value::Object(data) }),
    );
    assert_refused(
        &s.gw,
        &document(65),
        &json!([shape_error(
            "The operation uses 65 aliases, more than the limit of 64.",
            "TOO_MANY_ALIASES"
        )]),
    );
}

/// A gateway whose answers may be 64 KiB (so responses 256 KiB) and request bodies 100,000 bytes,
/// with `users` allowed bodies of 1,000 bytes only; `echo` and `users` registered.
fn small_limits() -> Setup {
    let gw = Gateway::builder()
        .args(&[
            "--max-grpc-message-bytes",
            "65536",
            "--max-body-bytes",
            "100000",
        ])
        .config("[services.users]\nmax_body_bytes = 1000\n")
        .start();
    let echo = Echo::start("e1");
    for service in ["echo", "users"] {
        register(&gw, service, "e1", &echo.addr);
    }
    Setup { gw, _echo: echo }
}

#[test]
fn limit_response_size() {
    let s = small_limits();
    // The reviewer's amplification, scaled down: one 60 KB answer through 62 aliases would be
    // 3.7 MB; the response may hold 4 x 64 KiB. The field fails, the others are kept.
    let aliases: String = (0..62).map(|i| format!(" a{i}: s")).collect();
    let document = format!(
        r#"mutation($b: JSON) {{ big: echo(path: "/json/echo", body: $b) {{{aliases} }} small: echo {{ method }} }}"#
    );
    let request = json!({ "query": document, "variables": { "b": { "s": "x".repeat(60_000) } } });
    assert_body(
        &post(&s.gw, &request, H1),
        200,
        JSON_CT,
        &json!({
            "errors": [field_error_at(&document, "big:", "big",
                "The value of \"big\" would take the response over its limit of 262144 bytes.",
                "RESPONSE_TOO_LARGE", 500)],
            "data": { "big": null, "small": { "method": "POST" } } }),
    );
    // Four aliases fit.
    let document =
        r#"mutation($b: JSON) { echo(path: "/json/echo", body: $b) { a: s b: s c: s d: s } }"#;
    let request = json!({ "query": document, "variables": { "b": { "s": "x".repeat(60_000) } } });
    let r = post(&s.gw, &request, H2);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["data"]["echo"]["d"].as_str().map(str::len),
        Some(60_000)
    );
}

#[test]
fn limit_forwarded_bodies() {
    let s = small_limits();
    // Two calls of 60 KB each forward more than --max-body-bytes together: refused, nothing called.
    let document =
        "mutation($b: JSON) { a: echo(body: $b) { body_len } b: echo(body: $b) { body_len } }";
    let request = json!({ "query": document, "variables": { "b": "x".repeat(60_000) } });
    let error = json!({
        "message": "The operation's calls would forward 120004 bytes of request bodies, more than the limit of 100000 bytes.",
        "extensions": { "code": "BODY_TOO_LARGE", "status": 413 } });
    assert_errors(&post(&s.gw, &request, H1), 200, JSON_CT, &json!([error]));
    assert_errors(
        &post(&s.gw, &request, STRICT),
        400,
        GRAPHQL_CT,
        &json!([error]),
    );
    // One is fine.
    let document = "mutation($b: JSON) { a: echo(body: $b) { body_len } }";
    let request = json!({ "query": document, "variables": { "b": "x".repeat(60_000) } });
    assert_data(
        &post(&s.gw, &request, H1),
        &json!({ "a": { "body_len": 60_002 } }),
    );
    // A service's own body limit holds for its calls, as for REST.
    let document = r#"mutation { users(body: "0123456789012345678901234567890123456789") { body_len } echo(body: 1) { body_len } }"#;
    let long = document.replace(
        "0123456789012345678901234567890123456789",
        &"0123456789".repeat(100),
    );
    assert_body(
        &query(&s.gw, &long),
        200,
        JSON_CT,
        &json!({
            "errors": [field_error_at(&long, "users", "users",
                "the body for `users` is 1002 bytes, more than its limit of 1000 bytes",
                "BODY_TOO_LARGE", 413)],
            "data": { "users": null, "echo": { "body_len": 1 } } }),
    );
}

#[test]
fn several_limits_are_reported_together() {
    let s = setup();
    // 33 aliased root fields, each with 2 aliased keys: 99 aliases.
    let fields: Vec<String> = (0..33)
        .map(|i| format!("f{i}: echo {{ a{i}: path b{i}: method }}"))
        .collect();
    let document = format!("{{ {} }}", fields.join(" "));
    assert_refused(
        &s.gw,
        &document,
        &json!([
            shape_error(
                "The operation has 33 root fields, more than the limit of 32.",
                "TOO_MANY_ROOT_FIELDS"
            ),
            shape_error(
                "The operation uses 99 aliases, more than the limit of 64.",
                "TOO_MANY_ALIASES"
            )
        ]),
    );
}

// ----- introspection ----------------------------------------------------------------------------

#[test]
fn introspection_describes_one_field_per_service() {
    let s = setup();
    let document = r#"{ __schema { queryType { name } mutationType { name } subscriptionType { name } types { name kind } } q: __type(name: "Query") { name kind fields { name type { kind name } args { name } } } m: __type(name: "Mutation") { fields { name } } h: __type(name: "HeaderInput") { kind inputFields { name type { kind ofType { name } } } } none: __type(name: "Nope") { name } }"#;
    for opts in [H1, H2] {
        let r = post(&s.gw, &json!({ "query": document }), opts);
        assert_eq!(r.status, 200, "body {}", r.text());
        let v = r.json();
        assert_eq!(v.get("errors"), None, "{v}");
        let data = &v["data"];
        assert_eq!(data["__schema"]["queryType"], json!({ "name": "Query" }));
        assert_eq!(
            data["__schema"]["mutationType"],
            json!({ "name": "Mutation" })
        );
        assert_eq!(data["__schema"]["subscriptionType"], Value::Null);
        let types = data["__schema"]["types"].as_array().expect("types");
        for (name, kind) in [
            ("Query", "OBJECT"),
            ("Mutation", "OBJECT"),
            ("JSON", "SCALAR"),
            ("HeaderInput", "INPUT_OBJECT"),
            ("String", "SCALAR"),
            ("Boolean", "SCALAR"),
            ("__Schema", "OBJECT"),
        ] {
            assert!(
                types.contains(&json!({ "name": name, "kind": kind })),
                "{name} {kind} in {types:?}"
            );
        }
        let args = json!([{ "name": "path" }, { "name": "method" }, { "name": "query" },
                          { "name": "body" }, { "name": "headers" }]);
        let field = |name: &str| json!({ "name": name, "type": { "kind": "SCALAR", "name": "JSON" }, "args": args });
        assert_eq!(
            data["q"],
            json!({ "name": "Query", "kind": "OBJECT",
                    "fields": [field("echo"), field("user_svc"), field("users")] })
        );
        assert_eq!(
            data["m"],
            json!({ "fields": [{ "name": "echo" }, { "name": "user_svc" }, { "name": "users" }] })
        );
        assert_eq!(
            data["h"],
            json!({ "kind": "INPUT_OBJECT", "inputFields": [
                { "name": "name", "type": { "kind": "NON_NULL", "ofType": { "name": "String" } } },
                { "name": "value", "type": { "kind": "NON_NULL", "ofType": { "name": "String" } } }
            ] })
        );
        assert_eq!(data["none"], Value::Null);
    }
    // A new service shows up in the schema.
    register(&s.gw, "billing-v2", "e1", &s._echo.addr);
    let r = query(&s.gw, r#"{ __type(name: "Query") { fields { name } } }"#);
    assert_data(
        &r,
        &json!({ "__type": { "fields": [{ "name": "billing_v2" }, { "name": "echo" },
                                         { "name": "user_svc" }, { "name": "users" }] } }),
    );
    // Introspection is only a query root field.
    let r = post(
        &s.gw,
        &json!({ "query": "mutation { __schema { queryType { name } } }" }),
        H1,
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v.get("data"), None, "{v}");
    assert_eq!(
        v["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
}

// ----- a standard client ------------------------------------------------------------------------

/// Runs `node -e script` with `input` on stdin and `NODE_PATH` from `GRAPHQL_JS_NODE_PATH`;
/// returns stdout, panics with stderr on failure.
fn node(script: &str, input: &[u8]) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let node_path = std::env::var("GRAPHQL_JS_NODE_PATH").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/switchyard/graphql-js/node_modules")
    });
    assert!(
        std::path::Path::new(&node_path).join("graphql").is_dir(),
        "no `graphql` npm package in {node_path}: run .ci/install-deps"
    );
    let mut child = Command::new("node")
        .args(["-e", script])
        .env("NODE_PATH", node_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to node");
    let out = child.wait_with_output().expect("node output");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("node prints UTF-8")
}

/// graphql-js (the reference implementation) sends its standard introspection query and builds a
/// client schema from the answer, which proves the introspection is complete and consistent.
/// Needs node and the `graphql` npm package, which `.ci/install-deps` installs under
/// `~/.cache/switchyard/graphql-js` (or set `GRAPHQL_JS_NODE_PATH` to another `node_modules`).
#[test]
fn graphql_js_builds_a_client_schema_from_introspection() {
    let s = setup();
    let introspection_query = node(
        "process.stdout.write(require('graphql').getIntrospectionQuery())",
        b"",
    );
    let r = post(&s.gw, &json!({ "query": introspection_query }), H1);
    assert_eq!(r.status, 200, "body {}", r.text());
    assert_eq!(r.json().get("errors"), None, "{}", r.text());
    // The schema graphql-js built, summarised as field signatures.
    let summary = node(
        "const g = require('graphql'); let s = ''; process.stdin.on('data', d => s += d).on('end', () => { \
         const schema = g.buildClientSchema(JSON.parse(s).data); \
         const errors = g.validateSchema(schema); if (errors.length) throw errors[0]; \
         const arg = a => a.name + ': ' + a.type + (a.defaultValue === undefined ? '' : ' = ' + JSON.stringify(a.defaultValue)); \
         const sig = f => f.name + (f.args && f.args.length ? '(' + f.args.map(arg).join(', ') + ')' : '') + ': ' + f.type; \
         const fields = name => Object.values(schema.getType(name).getFields()).map(sig); \
         process.stdout.write(JSON.stringify({ query: schema.getQueryType().name, mutation: schema.getMutationType().name, \
           subscription: schema.getSubscriptionType() || null, Query: fields('Query'), Mutation: fields('Mutation'), \
           HeaderInput: fields('HeaderInput'), JSON: String(schema.getType('JSON')) })); })",
        &r.body,
    );
    let summary: Value = serde_json::from_str(&summary).expect("summary is JSON");
    // Argument defaults come back as values: introspection wrote them in GraphQL syntax.
    let root = |method: &str| -> Vec<String> {
        ["echo", "user_svc", "users"]
            .iter()
            .map(|f| {
                format!("{f}(path: String = \"/\", method: String = \"{method}\", query: String, body: JSON, headers: [HeaderInput!]): JSON")
            })
            .collect()
    };
    assert_eq!(
        summary,
        json!({
            "query": "Query", "mutation": "Mutation", "subscription": null,
            "Query": root("GET"), "Mutation": root("POST"),
            "HeaderInput": ["name: String!", "value: String!"],
            "JSON": "JSON"
        })
    );
}

/// The document is read as the spec tokenises it (October 2021, §2.1.9, §2.9; the vendored
/// async-graphql-parser): `trueish` is one enum value, which the JSON scalar sends as a string, not
/// `true` and then `ish` (the echo was sent `[true,"ish",null,"able",false,"_alarm"]`), and `01` is a
/// syntax error, not the two ints `0` and `1`.
#[test]
fn names_that_start_like_true_false_or_null_reach_the_backend_whole() {
    let s = setup();
    let document = r#"{ echo(method: "POST", body: [trueish, nullable, false_alarm]) { body } }"#;
    let r = query(&s.gw, document);
    assert_data(
        &r,
        &json!({ "echo": { "body": r#"["trueish","nullable","false_alarm"]"# } }),
    );
    let document = r#"{ echo(method: "POST", body: [1, 01]) { body } }"#;
    assert_errors(
        &query(&s.gw, document),
        200,
        JSON_CT,
        &json!([{
            "message": "Syntax error: expected value.",
            "locations": [at(document, "01]")],
            "extensions": { "code": "GRAPHQL_PARSE_FAILED", "status": 400 }
        }]),
    );
}
