//! The sample backend ("echo"): a `forwarding.v1.ForwardingService/Send` server that tests, the
//! demo and the load test route requests to.
//!
//! It answers according to `ForwardingReq.path` (see [`routes`]): an echo of the request as JSON
//! by default, and paths that produce every answer the gateway must cope with.

pub mod grpc_frame;
pub mod routes;
