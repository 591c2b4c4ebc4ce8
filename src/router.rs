//! The entry point for every complete client request: picks the handler by path, and is the one
//! place where a handler's error becomes the response (with the request id every response carries).
//!
//! `/-/…` is the gateway's own namespace, `/graphql` the GraphQL endpoint, anything else REST.

use std::rc::Rc;
use std::time::Instant;

use crate::http::{Request, Response};
use crate::request_id::RequestId;
use crate::shard::Shard;

/// Serves one request.
pub async fn handle(shard: &Rc<Shard>, request: &Request) -> Response {
    // One clock reading serves the latency histogram and, for REST, the backend call's deadline.
    let start = Instant::now();
    let assigned = RequestId::for_request(&request.headers, &shard.rng);
    let path = request.path_str();
    let result = if crate::admin::is_admin_path(&request.path) {
        crate::admin::handle(shard, request).await
    } else if path == "/graphql" {
        // Boxed: its state is the largest of the three (2.5 KB against REST's 1.5 KB) and would
        // otherwise size every connection's task. A GraphQL request allocates plenty anyway; the
        // REST branch stays inline and allocation-free.
        Box::pin(crate::graphql_endpoint::handle(shard, request, &assigned)).await
    } else {
        crate::rest::forward(shard, request, &assigned, start).await
    };
    let request_id = assigned.id;
    let mut response = result.unwrap_or_else(|error| {
        tracing::debug!(%request_id, %error, "request failed");
        error.into_response(crate::rest::service_of(path), request_id.as_str())
    });
    response.request_id = Some(request_id);
    shard.metrics.count_response(response.status);
    shard.metrics.observe_duration(start.elapsed());
    response
}
