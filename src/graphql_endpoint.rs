//! `/graphql`: wires the transport-independent [`crate::graphql`] engine to the shard — its registry
//! copy for the schema and its upstream for the calls, through the same call path as REST.
//!
//! Each root field's call carries the client's headers (hop-by-hop ones, and those its `Connection`
//! header nominates, dropped as for REST, and the GraphQL request's own framing headers
//! `content-length`/`content-type` dropped since the call has its own body), then the field's
//! `headers` argument (whose hop-by-hop entries the engine has already dropped).
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
use crate::upstream::codec::ForwardingParts;

/// The shard, seen by the GraphQL engine, for one client request.
struct ShardBackend<'a> {
    shard: &'a Rc<Shard>,
    headers: Vec<Field>,
    request_id: &'a str,
    remote: RemoteAddr,
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
        let field_error = |e: GatewayError| FieldError {
            code: e.kind.code().to_string(),
            status: e.kind.status(),
            message: e.message.into_owned(),
        };
        let entry = self.shard.registry.borrow().get(&call.service).cloned();
        let Some(entry) = entry else {
            return Err(field_error(GatewayError::new(
                ErrorKind::ServiceNotFound,
                format!("no service named `{}`", call.service),
            )));
        };
        let mut extra: Vec<Field> = Vec::with_capacity(call.headers.len() + 1);
        let body = call.body.unwrap_or_default();
        if !body.is_empty() {
            extra.push(Field::new("content-type", "application/json"));
        }
        extra.extend(
            call.headers
                .into_iter()
                .map(|(n, v)| Field::new(Bytes::from(n), Bytes::from(v))),
        );
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
        crate::rest::call_service(self.shard, &entry, &parts, Instant::now())
            .await
            .map(|r| FieldAnswer {
                status: r.status,
                body: r.body,
            })
            .map_err(field_error)
    }
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

/// Serves a `/graphql` request, a GraphQL request by `method` ([`method`]), under the id
/// `assigned` to it, holding the in-flight slot the router took for it until the answer is in.
pub async fn handle(
    shard: &Rc<Shard>,
    request: &Request,
    method: graphql::HttpMethod,
    _in_flight: InFlight,
    assigned: &Assigned,
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
            .filter(|h| !matches!(h.name.as_ref(), b"content-length" | b"content-type"))
            .cloned()
            .collect(),
        request_id,
        remote: RemoteAddr::new(request.remote),
    };
    let answer = graphql::handle(
        &backend,
        graphql::HttpRequest {
            method,
            query_string: request.query_str(),
            content_type: request.header("content-type"),
            accept: request.header("accept"),
            body: &request.body,
        },
        &shard.config.graphql_limits,
    )
    .await;
    let mut response = Response::new(answer.status, answer.body);
    response.push_header("content-type", answer.content_type);
    if answer.status == 405 {
        response.push_header("allow", "POST");
    }
    Ok(response)
}
