//! `/graphql`: wires the transport-independent [`crate::graphql`] engine to the shard — its registry
//! copy for the schema and its upstream for the calls, through the same call path as REST.
//!
//! Each root field's call carries the client's headers (hop-by-hop ones, and those its `Connection`
//! header nominates, dropped as for REST, and the headers that describe the GraphQL request's own
//! body dropped since the call has its own: `content-*` and the digests), then the headers the
//! engine adds: the body's `content-type` (the `headers` argument's, or `application/json`) and
//! the `headers` argument (whose hop-by-hop entries the engine has already dropped).
//!
//! A call is held to the limits a REST request is: its header count and head size (the client's
//! headers plus the call's, path and query as the request line) as `--max-headers` and
//! `--max-header-bytes` bound them, and its body as the service's body limit does; beyond them
//! the field fails with the error the REST request would get (431, 413).
//!
//! Only GET and POST are GraphQL requests; any other method, HEAD included, is answered 405 with
//! `allow: GET, POST` before anything is parsed or called.

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use crate::error::{ErrorKind, GatewayError};
use crate::graphql::{self, Backend, FieldAnswer, FieldCall, FieldError};
use crate::http::{Field, Request, Response};
use crate::request_id::Assigned;
use crate::rest::RemoteAddr;
use crate::shard::{InFlight, Shard};
use crate::upstream::budget::AnswerHold;
use crate::upstream::codec::ForwardingParts;

/// The shard, seen by the GraphQL engine, for one client request.
struct ShardBackend<'a> {
    shard: &'a Rc<Shard>,
    headers: Vec<Field>,
    request_id: &'a str,
    remote: RemoteAddr,
    /// Over HTTP/2, the stream's hold on its connection's answer budget: the answer takes a place
    /// to be built in once a call's answer is in memory (`upstream::budget`).
    hold: Option<&'a AnswerHold>,
}

impl Backend for ShardBackend<'_> {
    fn services(&self) -> Vec<String> {
        self.shard
            .registry
            .borrow()
            .services()
            .iter()
            .map(|s| s.name.as_str().to_string())
            .collect()
    }

    async fn call(&self, call: FieldCall) -> Result<FieldAnswer, FieldError> {
        let entry = self.shard.registry.borrow().get(&call.service).cloned();
        let Some(entry) = entry else {
            return Err(crate::rest::unknown_service(self.shard, &call.service).into());
        };
        check_header_limits(&self.shard.config, &call, &self.headers)?;
        let body = call.body.unwrap_or_default();
        // The service's own body limit holds for a call as for a REST request (the engine has
        // bounded all the calls' bodies together by `--max-body-bytes` already).
        let max_body = self.shard.config.service(&call.service).max_body_bytes;
        if body.len() > max_body {
            return Err(GatewayError::new(
                ErrorKind::BodyTooLarge,
                format!(
                    "the body for `{}` is {} bytes, more than its limit of {max_body} bytes",
                    call.service,
                    body.len()
                ),
            )
            .into());
        }
        let extra: Vec<Field> = call
            .headers
            .into_iter()
            .map(|(n, v)| Field::new(Bytes::from(n), Bytes::from(v)))
            .collect();

        let parts = ForwardingParts {
            method: &call.method,
            path: call.path.as_bytes(),
            query: call.query.as_bytes(),
            headers: &self.headers,
            extra_headers: &extra,
            body: &body,
            service: &call.service,
            request_id: self.request_id,
            remote_addr: self.remote.as_str(),
            graphql_field: &call.graphql_field,
        };
        let answer = crate::rest::call_service(self.shard, &entry, &parts, Instant::now(), None)
            .await
            .map_err(FieldError::from)?;
        if let Some(hold) = self.hold {
            hold.take_place().await;
        }
        Ok(FieldAnswer {
            status: answer.status,
            body: answer.body,
        })
    }
}

/// Whether a header of the GraphQL request describes its body (RFC 9110 §8: `content-type`,
/// `content-length`, `content-encoding`, `content-digest`, ... and the digests), which no call
/// carries: each call has a body of its own, and a backend checking such a header against it
/// would refuse the call.
fn describes_the_body(name: &[u8]) -> bool {
    name.starts_with(b"content-") || matches!(name, b"digest" | b"repr-digest")
}

/// The header limits of a REST request (`--max-headers`, `--max-header-bytes`) for one call: the
/// client's forwarded headers and the call's own (`headers` argument, body content-type) together,
/// measured as the HTTP/1.1 request head that would make the same call through REST would be
/// (request line `METHOD /service/path?query HTTP/1.1`, then one line per header). Beyond either
/// the field is a `HEADERS_TOO_LARGE` error (431), as the REST request would be.
fn check_header_limits(
    config: &crate::config::Config,
    call: &FieldCall,
    client: &[Field],
) -> Result<(), GatewayError> {
    let count = client.len() + call.headers.len();
    if count > config.max_headers {
        return Err(GatewayError::new(
            ErrorKind::HeadersTooLarge,
            format!(
                "the call to `{}` would carry {count} headers (the client's and the `headers` argument's), more than the limit of {}",
                call.service, config.max_headers
            ),
        ));
    }
    const REQUEST_LINE_FRAMING: usize = "  HTTP/1.1\r\n".len() + "/".len() + "?".len();
    const HEADER_LINE_FRAMING: usize = ": \r\n".len();
    let request_line = call.method.len()
        + call.service.len()
        + call.path.len()
        + call.query.len()
        + REQUEST_LINE_FRAMING;
    let size = client
        .iter()
        .map(|h| h.name.len() + h.value.len())
        .chain(call.headers.iter().map(|(n, v)| n.len() + v.len()))
        .map(|len| len + HEADER_LINE_FRAMING)
        .sum::<usize>()
        + request_line
        + "\r\n".len();
    if size > config.max_header_bytes {
        return Err(GatewayError::new(
            ErrorKind::HeadersTooLarge,
            format!(
                "the call to `{}` would have a {size}-byte request head (its request line, the client's headers and the `headers` argument's), more than the limit of {} bytes",
                call.service, config.max_header_bytes
            ),
        ));
    }
    Ok(())
}

/// The GraphQL request a method makes, or 405 for any other method, told from the head alone
/// ([`crate::router::route`]). HEAD is refused like any other method: it would run the query (and
/// its backend calls) only to throw the answer away.
pub fn method(method: &http::Method) -> Result<graphql::HttpMethod, GatewayError> {
    match *method {
        http::Method::GET => Ok(graphql::HttpMethod::Get),
        http::Method::POST => Ok(graphql::HttpMethod::Post),
        _ => Err(GatewayError::new(
            ErrorKind::MethodNotAllowed { allow: "GET, POST" },
            "the GraphQL endpoint accepts GET and POST",
        )),
    }
}

/// Refuses a GraphQL request, 503 `REGISTRY_UNAVAILABLE` with `retry-after`, while the registry
/// has not caught up with the cluster log ([`crate::router::route`] asks): the schema is the
/// registry, one root field per service, so until then a field whose service is registered
/// would fail validation as unknown, and introspection would describe too little. (A REST request
/// for an unknown service gets the same answer then.)
pub fn check_schema_loaded(shard: &Shard) -> Result<(), GatewayError> {
    if shard
        .process
        .ready
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        Ok(())
    } else {
        Err(GatewayError::registry_not_loaded("the GraphQL schema"))
    }
}

/// Serves a `/graphql` request, a GraphQL request by `method` ([`method`]), under the id
/// `assigned` to it, holding the in-flight slot the router took for it until the answer is in;
/// `hold`, over HTTP/2, gives the answer its place to be built in.
pub async fn handle(
    shard: &Rc<Shard>,
    request: &Request,
    method: graphql::HttpMethod,
    _in_flight: InFlight,
    assigned: &Assigned,
    hold: Option<&AnswerHold>,
) -> Result<Response, GatewayError> {
    let request_id = assigned.id.as_str();
    let nominated = crate::rest::without_nominated_headers(&request.headers);
    let headers = nominated.as_deref().unwrap_or(&request.headers);
    // The backend sees one `x-request-id`, the id in use, as for REST.
    let rewritten = assigned
        .rewrite
        .then(|| crate::request_id::with_request_id(headers, &assigned.id));
    let backend = ShardBackend {
        shard,
        headers: rewritten
            .as_deref()
            .unwrap_or(headers)
            .iter()
            .filter(|h| !describes_the_body(&h.name))
            .cloned()
            .collect(),
        request_id,
        remote: RemoteAddr::new(request.remote),
        hold,
    };
    // Repeated `Accept` lines are one list (RFC 9110 §5.3).
    let accept_lines: Vec<&str> = request
        .headers
        .iter()
        .filter(|f| f.name.as_ref() == b"accept")
        .map(Field::value_str)
        .collect();
    let accept = (!accept_lines.is_empty()).then(|| accept_lines.join(", "));
    let content_coding = request
        .headers
        .iter()
        .filter(|f| f.name.as_ref() == b"content-encoding")
        .flat_map(|f| f.value_str().split(','))
        .map(str::trim)
        .find(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
    let answer = graphql::handle(
        &backend,
        graphql::HttpRequest {
            method,
            query_string: request.query_str(),
            content_type: request.header("content-type"),
            accept: accept.as_deref(),
            content_coding,
            body: &request.body,
        },
        &shard.config.graphql_limits,
    )
    .await;
    let mut response = Response::new(answer.status, answer.body);
    response.push_header("content-type", answer.content_type);
    // The media type, and with it the status of a request error, follows `Accept`: a cache in
    // front must not hand one client's answer to another that asked differently (RFC 9110 §12.5.5).
    response.push_header("vary", "accept");
    if answer.status == 405 {
        response.push_header("allow", "POST");
    }
    Ok(response)
}
