//! The gateway's own endpoints below `/-/` (contract §4): liveness, readiness, metrics, and the
//! registry's read and write API.
//!
//! Registry writes need `authorization: Bearer <token>` when a token is configured; without one they
//! are accepted from loopback clients only. Authorisation is checked before the input is validated,
//! so an unauthorised client learns nothing about what would be accepted.
//!
//! [`route`] tells from a request's head which endpoint it is for, checking all that the head can
//! tell (the endpoint, its method, authorisation, the names in the path), so that the router can
//! refuse a request before its body is read; [`handle`] then serves it, body and all.
//!
//! Bodies below `/-/` have their own fixed limit, [`MAX_BODY_BYTES`], enforced by the HTTP codecs
//! (see [`crate::shard::Shard::max_body_bytes`]) while they read the body, before this module sees
//! the request: `--max-body-bytes` sizes REST and GraphQL bodies and must not break registration,
//! and no client, authorised or not, gets more than that buffered here. So a body over the limit is
//! a 413 before the token is looked at; that answer only tells the documented limit.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use crate::error::{ErrorKind, GatewayError};
use crate::http::{Request, RequestHead, Response};
use crate::names::{Address, InstanceId, ServiceName};
use crate::registry::{RegistryError, WriteOp, WriteOutcome};
use crate::shard::Shard;

/// Largest request body below `/-/` (a registration): `{"address": …}` with a 260-byte address
/// fits many times over.
pub const MAX_BODY_BYTES: usize = 4096;
/// The `allow` header of the read-only endpoints.
const ALLOW_READ: &str = "GET, HEAD";
/// The `allow` header of `/-/services/{service}/instances/{instance}`.
const ALLOW_WRITE: &str = "PUT, DELETE";

/// Whether a request for `path` is for the gateway's own endpoints (`/-` and below).
pub fn is_admin_path(path: &[u8]) -> bool {
    path == b"/-" || path.starts_with(b"/-/")
}

/// A `/-/` endpoint as [`route`] found a request's head asks for it: the method is one it takes,
/// a registry write is authorised and names a valid service and instance.
#[derive(Debug)]
pub enum Endpoint {
    /// `GET /-/health`.
    Health,
    /// `GET /-/ready`.
    Ready,
    /// `GET /-/metrics`.
    Metrics,
    /// `GET /-/services`.
    Services,
    /// `PUT /-/services/{service}/instances/{instance}`: its body is the address.
    Register(ServiceName, InstanceId),
    /// `DELETE /-/services/{service}/instances/{instance}`.
    Deregister(ServiceName, InstanceId),
}

/// The endpoint a `/-/…` request's head asks for, or what refuses it before its body is looked at:
/// an unknown endpoint (404), a method the endpoint does not take (405), a registry write that is
/// not authorised (401, 403) or names an invalid service or instance (400).
pub fn route(shard: &Shard, head: &RequestHead<'_>) -> Result<Endpoint, GatewayError> {
    let path = head.path_str();
    let read_only = |endpoint| match *head.method {
        http::Method::GET | http::Method::HEAD => Ok(endpoint),
        _ => Err(GatewayError::new(
            ErrorKind::MethodNotAllowed { allow: ALLOW_READ },
            "this endpoint accepts GET",
        )),
    };
    match path {
        "/-/health" => read_only(Endpoint::Health),
        "/-/ready" => read_only(Endpoint::Ready),
        "/-/metrics" => read_only(Endpoint::Metrics),
        "/-/services" => read_only(Endpoint::Services),
        _ => match instance_path(path) {
            Some((service, instance)) => instance_write(shard, head, service, instance),
            None => Err(GatewayError::new(
                ErrorKind::NotFound,
                format!("no gateway endpoint `{}`", path.escape_debug()),
            )),
        },
    }
}

/// Serves a `/-/…` request for `endpoint`, which [`route`] found its head asks for.
pub async fn handle(
    shard: &Rc<Shard>,
    request: &Request,
    endpoint: Endpoint,
) -> Result<Response, GatewayError> {
    match endpoint {
        Endpoint::Health => Ok(Response::json(200, &br#"{"status":"ok"}"#[..])),
        Endpoint::Ready => Ok(if shard.is_ready() {
            Response::json(200, &br#"{"ready":true}"#[..])
        } else {
            Response::json(503, &br#"{"ready":false}"#[..])
        }),
        Endpoint::Metrics => {
            let text =
                crate::metrics::render(&shard.process.metrics, &shard.process.registry_metrics);
            let mut r = Response::new(200, text);
            r.push_header("content-type", "text/plain; version=0.0.4; charset=utf-8");
            Ok(r)
        }
        // Until the registry has caught up with the cluster log the list is incomplete (empty,
        // at first), and a 200 would present it as the registry.
        Endpoint::Services if !shard.process.ready.load(Ordering::Relaxed) => {
            Err(GatewayError::registry_not_loaded("the registry"))
        }
        Endpoint::Services => Ok(services(shard)),
        Endpoint::Register(service, instance) => {
            // The body is at most MAX_BODY_BYTES: the codec refused anything longer.
            let body: Registration = serde_json::from_slice(&request.body).map_err(|e| {
                GatewayError::bad_request(format!(
                    "body must be {{\"address\":\"host:port\"}}: {e}"
                ))
            })?;
            Address::check(&body.address).map_err(bad_name)?;
            let address = body.address.clone();
            let op = WriteOp::Upsert {
                service: service.clone(),
                instance: instance.clone(),
                address: body.address,
            };
            write(shard, op, &service, &instance, Some(address)).await
        }
        Endpoint::Deregister(service, instance) => {
            let op = WriteOp::Remove {
                service: service.clone(),
                instance: instance.clone(),
            };
            write(shard, op, &service, &instance, None).await
        }
    }
}

/// `/-/services/{service}/instances/{instance}` → `(service, instance)`.
fn instance_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/-/services/")?;
    let (service, rest) = rest.split_once('/')?;
    let instance = rest.strip_prefix("instances/")?;
    (!instance.contains('/')).then_some((service, instance))
}

fn services(shard: &Shard) -> Response {
    let view = shard.registry.borrow();
    let now = Instant::now();
    // Healthy while no shard has it marked down: each shard's pools judge it by their own
    // connections, and this answer comes from whichever shard the connection landed on.
    let healthy = |address: &Address| {
        address.is_resolved() && shard.process.down_marks.down_on(address, now) == 0
    };
    let services: Vec<_> = view
        .services()
        .iter()
        .map(|s| {
            let instances: Vec<_> = s
                .instances
                .iter()
                .map(|i| {
                    json!({
                        "id": i.id.as_str(),
                        "address": i.address.as_str(),
                        "healthy": healthy(&i.address),
                    })
                })
                .collect();
            json!({"name": s.name.as_str(), "instances": instances})
        })
        .collect();
    Response::json(200, json!({ "services": services }).to_string())
}

/// Whether a request with `head` may write to the registry, `token` being the configured
/// registry token.
fn authorize(token: Option<&str>, head: &RequestHead<'_>) -> Result<(), GatewayError> {
    match token {
        Some(token) => {
            let given = head
                .header("authorization")
                .and_then(bearer_token)
                .unwrap_or_default();
            if constant_time_eq(given.as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err(GatewayError::new(
                    ErrorKind::Unauthorized,
                    "registry writes need `authorization: Bearer <token>`",
                ))
            }
        }
        None if is_loopback(head.remote) => Ok(()),
        None => Err(GatewayError::new(
            ErrorKind::Forbidden,
            "without a registry token, registry writes are accepted from loopback clients only",
        )),
    }
}

/// Whether a client connected from loopback, an IPv4 one on an IPv6 listener (`[::]`, where it
/// shows as `::ffff:127.0.0.1`) included.
fn is_loopback(remote: std::net::SocketAddr) -> bool {
    remote.ip().to_canonical().is_loopback()
}

/// The token of an `authorization: Bearer <token>` value. The scheme is case-insensitive and
/// followed by one or more spaces (RFC 9110 §11.4, §11.1); the token is taken as it is.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Compares secrets without an early exit that would leak the matching prefix's length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
struct Registration {
    address: String,
}

/// A registry write's endpoint: the method first, then authorisation (so that an unauthorised
/// client learns nothing about what would be accepted), then the names.
fn instance_write(
    shard: &Shard,
    head: &RequestHead<'_>,
    service: &str,
    instance: &str,
) -> Result<Endpoint, GatewayError> {
    let register = match *head.method {
        http::Method::PUT => true,
        http::Method::DELETE => false,
        _ => {
            return Err(GatewayError::new(
                ErrorKind::MethodNotAllowed { allow: ALLOW_WRITE },
                "this endpoint accepts PUT and DELETE",
            ))
        }
    };
    authorize(shard.config.registry_token.as_deref(), head)?;
    let service = ServiceName::parse(service).map_err(bad_name)?;
    let instance = InstanceId::parse(instance).map_err(bad_name)?;
    Ok(if register {
        Endpoint::Register(service, instance)
    } else {
        Endpoint::Deregister(service, instance)
    })
}

fn bad_name(e: crate::names::InvalidName) -> GatewayError {
    GatewayError::bad_request(e.0)
}

/// Applies a registry write and answers it: 201 or 200 with the instance, 204 for a removal.
async fn write(
    shard: &Rc<Shard>,
    op: WriteOp,
    service: &ServiceName,
    instance: &InstanceId,
    address: Option<String>,
) -> Result<Response, GatewayError> {
    let outcome = shard.registry_client.write(op).await.map_err(|e| match e {
        RegistryError::Invalid(m) => GatewayError::bad_request(m),
        RegistryError::Unavailable(m) | RegistryError::Unsent(m) => {
            GatewayError::new(ErrorKind::RegistryUnavailable, m)
        }
    })?;
    let status = match outcome {
        WriteOutcome::Created => 201,
        WriteOutcome::Updated | WriteOutcome::Unchanged => 200,
        WriteOutcome::Removed => return Ok(Response::new(204, bytes::Bytes::new())),
    };
    let body = json!({
        "service": service.as_str(),
        "instance": instance.as_str(),
        "address": address,
    });
    Ok(Response::json(status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_paths() {
        assert_eq!(
            instance_path("/-/services/users/instances/u1"),
            Some(("users", "u1"))
        );
        assert_eq!(instance_path("/-/services/users/instances/u1/x"), None);
        assert_eq!(instance_path("/-/services/users/u1"), None);
    }

    #[test]
    fn admin_paths() {
        for path in ["/-", "/-/", "/-/health", "/-/services/a/instances/b"] {
            assert!(is_admin_path(path.as_bytes()), "{path}");
        }
        for path in ["/", "/-x", "/--/health", "/users/-/x", "/graphql"] {
            assert!(!is_admin_path(path.as_bytes()), "{path}");
        }
    }

    /// A registry write from `remote` with the given `authorization` header.
    fn write_from(remote: &str, authorization: Option<&str>) -> Request {
        Request {
            method: http::Method::PUT,
            path: bytes::Bytes::from_static(b"/-/services/users/instances/u1"),
            query: bytes::Bytes::new(),
            headers: authorization
                .map(|v| crate::http::Field::new("authorization", v.to_owned()))
                .into_iter()
                .collect(),
            body: bytes::Bytes::from_static(br#"{"address":"127.0.0.1:1"}"#),
            remote: remote.parse().unwrap(),
        }
    }

    fn refusal(token: Option<&str>, request: &Request) -> Option<ErrorKind> {
        authorize(token, &request.head()).err().map(|e| e.kind)
    }

    /// The 403 the integration tests cannot provoke (they only talk from 127.0.0.1).
    #[test]
    fn without_a_token_only_loopback_clients_may_write() {
        for remote in ["127.0.0.1:5", "[::1]:5", "[::ffff:127.0.0.1]:5"] {
            assert_eq!(refusal(None, &write_from(remote, None)), None, "{remote}");
        }
        for remote in ["10.0.0.5:5", "[::ffff:10.0.0.5]:5", "[2001:db8::1]:5"] {
            let refused = refusal(None, &write_from(remote, None));
            assert_eq!(refused, Some(ErrorKind::Forbidden), "{remote}");
            // A bearer token means nothing when none is configured.
            let with_token = write_from(remote, Some("Bearer s3cret"));
            assert_eq!(refused, refusal(None, &with_token), "{remote}");
        }
        assert_eq!(ErrorKind::Forbidden.status(), 403);
    }

    #[test]
    fn with_a_token_every_client_needs_it_and_loopback_is_no_exception() {
        let token = Some("s3cret");
        for remote in ["127.0.0.1:5", "10.0.0.5:5", "[2001:db8::1]:5"] {
            for wrong in [
                None,
                Some("Bearer s3creT"),
                Some("Bearer"),
                Some("Basic s3cret"),
            ] {
                assert_eq!(
                    refusal(token, &write_from(remote, wrong)),
                    Some(ErrorKind::Unauthorized),
                    "{remote} {wrong:?}"
                );
            }
            let right = write_from(remote, Some("Bearer s3cret"));
            assert_eq!(refusal(token, &right), None, "{remote}");
        }
        assert_eq!(ErrorKind::Unauthorized.status(), 401);
    }

    #[test]
    fn loopback_clients_include_ipv4_ones_on_an_ipv6_listener() {
        for local in [
            "127.0.0.1:5",
            "127.9.9.9:5",
            "[::1]:5",
            "[::ffff:127.0.0.1]:5",
        ] {
            assert!(is_loopback(local.parse().unwrap()), "{local}");
        }
        for remote in ["10.0.0.5:5", "[::ffff:10.0.0.5]:5", "[2001:db8::1]:5"] {
            assert!(!is_loopback(remote.parse().unwrap()), "{remote}");
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_the_token_exact() {
        for value in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER s3cret",
            "bEaReR  s3cret",
        ] {
            assert_eq!(bearer_token(value), Some("s3cret"), "{value}");
        }
        assert_eq!(bearer_token("Bearer S3cret"), Some("S3cret"));
        assert_eq!(bearer_token("Bearer s3cret x"), Some("s3cret x"));
        for value in ["Basic s3cret", "Bearers3cret", "Bearer", "s3cret", ""] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
    }
}
