//! `/graphql`: wires the GraphQL engine to the shard's registry and upstream.

use std::rc::Rc;

use crate::error::{ErrorKind, GatewayError};
use crate::http::{Request, Response};
use crate::shard::Shard;

/// Serves a `/graphql` request.
pub async fn handle(
    _shard: &Rc<Shard>,
    _request: &Request,
    _request_id: &str,
) -> Result<Response, GatewayError> {
    Err(GatewayError::new(
        ErrorKind::NotFound,
        "the GraphQL endpoint is not part of this build yet",
    ))
}
