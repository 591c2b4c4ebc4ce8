//! The entry point for every complete client request: picks the handler by path, and is the one
//! place where a handler's error becomes the response (with the request id every response carries).
//!
//! `/-/…` is the gateway's own namespace, `/graphql` the GraphQL endpoint, anything else REST.

use std::rc::Rc;
use std::time::Instant;

use crate::http::{Request, Response};
use crate::shard::Shard;

/// Longest client-supplied `x-request-id` kept; longer ones are replaced by a generated id.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Serves one request.
pub async fn handle(shard: &Rc<Shard>, request: Request) -> Response {
    let start = Instant::now();
    let request_id = match request.header("x-request-id") {
        Some(id) if is_valid_request_id(id) => id.to_string(),
        _ => shard.new_request_id(),
    };
    let path = request.path_str();
    let result = if path == "/-" || path.starts_with("/-/") {
        crate::admin::handle(shard, &request).await
    } else if path == "/graphql" {
        crate::graphql_endpoint::handle(shard, &request, &request_id).await
    } else {
        crate::rest::forward(shard, &request, &request_id).await
    };
    let mut response = result.unwrap_or_else(|error| {
        tracing::debug!(%request_id, %error, "request failed");
        error.into_response(crate::rest::service_of(path), &request_id)
    });
    response.push_header("x-request-id", request_id);
    shard.metrics.count_response(response.status);
    shard.metrics.observe_duration(start.elapsed());
    response
}

/// Visible ASCII, 1 to 128 characters: safe to echo in a header and a log line.
fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.bytes().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(is_valid_request_id("abc-123"));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id("a b"));
        assert!(!is_valid_request_id(&"x".repeat(129)));
    }
}
