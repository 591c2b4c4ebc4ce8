//! switchyard: a thread-per-core gateway that turns REST and GraphQL requests into calls of the
//! generic `forwarding.v1.ForwardingService/Send` gRPC method on registered backends.
//!
//! A request travels through the modules in this order:
//!
//! ```text
//! shard (executor, listener) → http1 / http2 (client codec) → router (REST, admin, GraphQL)
//!       → upstream (balancer, pool, gRPC over h2) → error (the one place errors become responses)
//! registry: owner thread → crossbeam channel → each shard's own read copy (registry::view)
//! ```

#![warn(missing_docs)]

pub mod graphql;
pub mod io;
pub mod proto;
