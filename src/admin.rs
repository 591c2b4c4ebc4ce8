//! The gateway's own endpoints below `/-/` (contract §4): liveness, readiness, metrics, and the
//! registry's read and write API.
//!
//! Registry writes need `authorization: Bearer <token>` when a token is configured; without one they
//! are accepted from loopback clients only. Authorisation is checked before the input is validated,
//! so an unauthorised client learns nothing about what would be accepted.
//!
//! Bodies below `/-/` have their own fixed limit, [`MAX_BODY_BYTES`], enforced by the HTTP codecs
//! (see [`crate::shard::Shard::max_body_bytes`]) while they read the body, before this module sees
//! the request: `--max-body-bytes` sizes REST and GraphQL bodies and must not break registration,
//! and no client, authorised or not, gets more than that buffered here. So a body over the limit is
//! a 413 before the token is looked at; that answer only tells the documented limit.

use std::rc::Rc;

use serde::Deserialize;
use serde_json::json;

use crate::error::{ErrorKind, GatewayError};
use crate::http::{Request, Response};
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

/// Serves a `/-/…` request.
pub async fn handle(shard: &Rc<Shard>, request: &Request) -> Result<Response, GatewayError> {
    let path = request.path_str();
    match path {
        "/-/health" => read_only(request, || Response::json(200, &br#"{"status":"ok"}"#[..])),
        "/-/ready" => read_only(request, || {
            if shard.is_ready() {
                Response::json(200, &br#"{"ready":true}"#[..])
            } else {
                Response::json(503, &br#"{"ready":false}"#[..])
            }
        }),
        "/-/metrics" => read_only(request, || {
            let text =
                crate::metrics::render(&shard.process.metrics, &shard.process.registry_metrics);
            let mut r = Response::new(200, text);
            r.push_header("content-type", "text/plain; version=0.0.4; charset=utf-8");
            r
        }),
        "/-/services" => read_only(request, || services(shard)),
        _ => match instance_path(path) {
            Some((service, instance)) => instance_write(shard, request, service, instance).await,
            None => Err(GatewayError::new(
                ErrorKind::NotFound,
                format!("no gateway endpoint `{}`", path.escape_default()),
            )),
        },
    }
}

fn read_only(
    request: &Request,
    answer: impl FnOnce() -> Response,
) -> Result<Response, GatewayError> {
    match request.method {
        http::Method::GET | http::Method::HEAD => Ok(answer()),
        _ => Err(GatewayError::new(
            ErrorKind::MethodNotAllowed { allow: ALLOW_READ },
            "this endpoint accepts GET",
        )),
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
                        "healthy": i.address.socket().is_some_and(|a| shard.upstream.healthy(a)),
                    })
                })
                .collect();
            json!({"name": s.name.as_str(), "instances": instances})
        })
        .collect();
    Response::json(200, json!({ "services": services }).to_string())
}

/// Whether `request` may write to the registry, `token` being the configured registry token.
fn authorize(token: Option<&str>, request: &Request) -> Result<(), GatewayError> {
    match token {
        Some(token) => {
            let given = request
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
        None if is_loopback(request.remote) => Ok(()),
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

async fn instance_write(
    shard: &Rc<Shard>,
    request: &Request,
    service: &str,
    instance: &str,
) -> Result<Response, GatewayError> {
    if !matches!(request.method, http::Method::PUT | http::Method::DELETE) {
        return Err(GatewayError::new(
            ErrorKind::MethodNotAllowed { allow: ALLOW_WRITE },
            "this endpoint accepts PUT and DELETE",
        ));
    }
    authorize(shard.config.registry_token.as_deref(), request)?;
    let bad = |e: crate::names::InvalidName| GatewayError::bad_request(e.0);
    let service = ServiceName::parse(service).map_err(bad)?;
    let instance = InstanceId::parse(instance).map_err(bad)?;
    let op = if request.method == http::Method::PUT {
        // The body is at most MAX_BODY_BYTES: the codec refused anything longer.
        let body: Registration = serde_json::from_slice(&request.body).map_err(|e| {
            GatewayError::bad_request(format!("body must be {{\"address\":\"host:port\"}}: {e}"))
        })?;
        Address::check(&body.address).map_err(bad)?;
        WriteOp::Upsert {
            service: service.clone(),
            instance: instance.clone(),
            address: body.address,
        }
    } else {
        WriteOp::Remove {
            service: service.clone(),
            instance: instance.clone(),
        }
    };
    let address = match &op {
        WriteOp::Upsert { address, .. } => Some(address.clone()),
        _ => None,
    };
    let outcome = shard.registry_client.write(op).await.map_err(|e| match e {
        RegistryError::Invalid(m) => GatewayError::bad_request(m),
        RegistryError::Unavailable(m) => GatewayError::new(ErrorKind::RegistryUnavailable, m),
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
        authorize(token, request).err().map(|e| e.kind)
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
