//! switchyard: a thread-per-core gateway that turns REST and GraphQL requests into calls of the
//! generic `forwarding.v1.ForwardingService/Send` gRPC method on registered backends.
//!
//! A request travels through the modules in this order:
//!
//! ```text
//! runtime (start-up, signals) → shard (pinned executor, listener) → http::{h1,h2} (client codecs)
//!   → router → rest | admin | graphql_endpoint → upstream (balancer, pool, gRPC over h2)
//!   → error (the one place errors become responses)
//! registry: owner thread ─crossbeam─▶ each shard's own read copy (registry::view)
//! ```
//!
//! [`sample_backend`] is not on that path: it is the echo backend the tests, `--demo` and the load
//! test send traffic to (also shipped as the `switchyard-echo` binary).

#![warn(missing_docs)]

pub mod admin;
pub mod alloc_count;
pub mod config;
pub mod drain;
pub mod error;
pub mod graphql;
pub mod graphql_endpoint;
pub mod http;
pub mod io;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod proto;
pub mod registry;
pub mod request_id;
pub mod rest;
pub mod router;
pub mod runtime;
pub mod sample_backend;
pub mod shard;
pub mod sys;
pub mod timeout;
pub mod upstream;
pub mod utf8;
