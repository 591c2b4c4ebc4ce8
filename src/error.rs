//! The one error type of the request path and the one place it becomes a response.
//!
//! Every failure a client can see — its own bad request, a missing service, a backend that is down,
//! slow, broken or answering with a gRPC error — is a [`GatewayError`] with an [`ErrorKind`]. The
//! kind alone decides the HTTP status, the `code` in the JSON body and whether the client
//! connection must be closed ([`GatewayError::into_response`]); nothing matches on message text.
//! Every error answer a client gets is made by [`GatewayError::answer`], under its request id.
//! Texts more than one place reports (a body over its limit, say) have a constructor here.

use std::borrow::Cow;
use std::fmt;

use crate::http::Response;
use crate::request_id::RequestId;

/// The `retry-after` of a 503 that should pass within moments (the in-flight limit, a registry
/// still catching up with the cluster log): one second, the least the header can say.
const RETRY_AFTER_SECONDS: &str = "1";

/// gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The code for a `grpc-status` value; values outside the table are `UNKNOWN`, as gRPC says.
    pub fn from_status(value: u32) -> GrpcCode {
        use GrpcCode::*;
        const ALL: [GrpcCode; 17] = [
            Ok,
            Cancelled,
            Unknown,
            InvalidArgument,
            DeadlineExceeded,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            ResourceExhausted,
            FailedPrecondition,
            Aborted,
            OutOfRange,
            Unimplemented,
            Internal,
            Unavailable,
            DataLoss,
            Unauthenticated,
        ];
        ALL.get(value as usize).copied().unwrap_or(Unknown)
    }

    /// The code for an answer whose HTTP status is not 200 and that carries no `grpc-status`
    /// (one that does is read by its `grpc-status`, which that mapping says must be used):
    /// gRPC's mapping for answers from intermediaries that do not speak gRPC
    /// (`doc/http-grpc-status-mapping.md` in the gRPC repository; grpc-go and grpc-java apply
    /// it). A 503 from a proxy in front of the backend is a backend that is unavailable, not one
    /// that broke the protocol.
    pub fn from_http_status(status: u16) -> GrpcCode {
        use GrpcCode::*;
        match status {
            400 => Internal,
            401 => Unauthenticated,
            403 => PermissionDenied,
            404 => Unimplemented,
            429 | 502 | 503 | 504 => Unavailable,
            _ => Unknown,
        }
    }

    /// The canonical upper-case name.
    pub fn name(self) -> &'static str {
        use GrpcCode::*;
        match self {
            Ok => "OK",
            Cancelled => "CANCELLED",
            Unknown => "UNKNOWN",
            InvalidArgument => "INVALID_ARGUMENT",
            DeadlineExceeded => "DEADLINE_EXCEEDED",
            NotFound => "NOT_FOUND",
            AlreadyExists => "ALREADY_EXISTS",
            PermissionDenied => "PERMISSION_DENIED",
            ResourceExhausted => "RESOURCE_EXHAUSTED",
            FailedPrecondition => "FAILED_PRECONDITION",
            Aborted => "ABORTED",
            OutOfRange => "OUT_OF_RANGE",
            Unimplemented => "UNIMPLEMENTED",
            Internal => "INTERNAL",
            Unavailable => "UNAVAILABLE",
            DataLoss => "DATA_LOSS",
            Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The HTTP status grpc-gateway maps this code to (contract §3).
    pub fn http_status(self) -> u16 {
        use GrpcCode::*;
        match self {
            Ok => 200,
            InvalidArgument | FailedPrecondition | OutOfRange => 400,
            Unauthenticated => 401,
            PermissionDenied => 403,
            NotFound => 404,
            AlreadyExists | Aborted => 409,
            ResourceExhausted => 429,
            Cancelled => 499,
            Unimplemented => 501,
            Unavailable => 503,
            DeadlineExceeded => 504,
            Unknown | Internal | DataLoss => 500,
        }
    }
}

/// What went wrong, as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed request, bad header value, smuggling-shaped framing, invalid admin input.
    BadRequest,
    /// Registry write without the right bearer token.
    Unauthorized,
    /// Registry write from a non-loopback client when no token is configured.
    Forbidden,
    /// The first path segment names no registered service.
    ServiceNotFound,
    /// Unknown gateway endpoint below `/-/`.
    NotFound,
    /// Known endpoint, wrong method; `allow` lists the methods it accepts (the `allow` header
    /// RFC 9110 §15.5.6 requires on a 405).
    MethodNotAllowed {
        /// The `allow` header value, e.g. `GET, HEAD`.
        allow: &'static str,
    },
    /// The client was too slow sending its request.
    RequestTimeout,
    /// Request body over the limit.
    BodyTooLarge,
    /// Header section (or header count) over the limit.
    HeadersTooLarge,
    /// No instance could take the call.
    NoHealthyInstance,
    /// The shard's in-flight limit is reached.
    Overloaded,
    /// The registry could not take a write (its log cannot be written, or is not read up to its
    /// end yet), or, in a cluster, a request names a service the gateway does not know before its
    /// registry has caught up with the log (the service may be registered: it cannot tell yet).
    RegistryUnavailable,
    /// The backend did not answer within the deadline.
    UpstreamTimeout,
    /// The backend broke the protocol (bad frame, bad protobuf, reset, GOAWAY, oversize answer).
    UpstreamProtocol,
    /// The backend answered with a non-zero `grpc-status`.
    Grpc(GrpcCode),
}

impl ErrorKind {
    /// The HTTP status for this kind (contract §3).
    pub fn status(self) -> u16 {
        use ErrorKind::*;
        match self {
            BadRequest => 400,
            Unauthorized => 401,
            Forbidden => 403,
            ServiceNotFound | NotFound => 404,
            MethodNotAllowed { .. } => 405,
            RequestTimeout => 408,
            BodyTooLarge => 413,
            HeadersTooLarge => 431,
            NoHealthyInstance | Overloaded | RegistryUnavailable => 503,
            UpstreamTimeout => 504,
            UpstreamProtocol => 502,
            Grpc(code) => code.http_status(),
        }
    }

    /// The `error.code` in the JSON body: a gRPC code name for backend errors, a gateway code otherwise.
    pub fn code(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadRequest => "BAD_REQUEST",
            Unauthorized => "UNAUTHORIZED",
            Forbidden => "FORBIDDEN",
            ServiceNotFound => "SERVICE_NOT_FOUND",
            NotFound => "NOT_FOUND",
            MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            RequestTimeout => "REQUEST_TIMEOUT",
            BodyTooLarge => "BODY_TOO_LARGE",
            HeadersTooLarge => "HEADERS_TOO_LARGE",
            NoHealthyInstance => "NO_HEALTHY_INSTANCE",
            Overloaded => "OVERLOADED",
            RegistryUnavailable => "REGISTRY_UNAVAILABLE",
            UpstreamTimeout => "UPSTREAM_TIMEOUT",
            UpstreamProtocol => "UPSTREAM_PROTOCOL_ERROR",
            Grpc(code) => code.name(),
        }
    }

    /// Whether the client connection must be closed after the answer: framing errors leave the
    /// byte stream in an unknown state, and an unread body cannot be skipped safely.
    pub fn closes_connection(self) -> bool {
        use ErrorKind::*;
        matches!(
            self,
            BadRequest | RequestTimeout | BodyTooLarge | HeadersTooLarge
        )
    }
}

/// A request-path error: a kind plus a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Human-readable detail for the `message` field.
    pub message: Cow<'static, str>,
}

impl GatewayError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        GatewayError {
            kind,
            message: message.into(),
        }
    }

    /// A malformed-request error.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// A request whose `what` ("header count", "header section") is over its limit (431).
    pub fn headers_too_large(what: &str) -> Self {
        Self::new(
            ErrorKind::HeadersTooLarge,
            format!("request {what} is over the limit"),
        )
    }

    /// A request whose first path segment names no registered service (404); the name is
    /// escaped, since it is the client's text.
    pub fn service_not_found(name: &str) -> Self {
        Self::new(
            ErrorKind::ServiceNotFound,
            format!("no service named `{}`", name.escape_default()),
        )
    }

    /// A request for `what` (a service's name, escaped like [`service_not_found`]'s, or the
    /// registry as a whole) that this gateway cannot answer before its registry has caught up with
    /// the cluster log (503 with `retry-after`): a 404 would say no such service is registered,
    /// which it cannot know yet.
    ///
    /// [`service_not_found`]: GatewayError::service_not_found
    pub fn registry_not_loaded(what: &str) -> Self {
        Self::new(
            ErrorKind::RegistryUnavailable,
            format!(
                "{what} cannot be looked up yet: this gateway's registry has not caught up with \
                 the cluster log"
            ),
        )
    }

    /// A request for a service named `name` that this gateway does not know before its registry
    /// has caught up with the cluster log ([`registry_not_loaded`](Self::registry_not_loaded)).
    pub fn service_not_loaded(name: &str) -> Self {
        Self::registry_not_loaded(&format!("the service `{}`", name.escape_default()))
    }

    /// A request whose body is over its limit (413), declared or as received.
    pub fn body_too_large() -> Self {
        Self::new(ErrorKind::BodyTooLarge, "request body is over the limit")
    }

    /// A request whose body would take the shard's request bodies beyond
    /// `--max-body-memory-bytes` (503 with `retry-after`, as at the in-flight limit).
    pub fn bodies_over_budget() -> Self {
        Self::new(
            ErrorKind::Overloaded,
            "the gateway holds too many request bodies at once",
        )
    }

    /// A request whose header section did not arrive within the header timeout (408).
    pub fn head_timed_out() -> Self {
        Self::new(
            ErrorKind::RequestTimeout,
            "request header section not received in time",
        )
    }

    /// A request whose body did not arrive within the body timeout (408).
    pub fn body_timed_out() -> Self {
        Self::new(
            ErrorKind::RequestTimeout,
            "request body not received in time",
        )
    }

    /// A backend protocol error (502).
    pub fn upstream_protocol(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::UpstreamProtocol, message)
    }

    /// The answer a client gets for this error, as sent: [`GatewayError::into_response`] under
    /// `request_id`, which the response also carries as its `x-request-id`. Every error answer is
    /// made here (the router's for a handler's error, each codec's for a request refused while
    /// read); counting it is left to the caller, which counts every response it sends, error
    /// or not, once.
    pub fn answer(self, service: Option<&str>, request_id: RequestId) -> Response {
        let mut response = self.into_response(service, request_id.as_str());
        response.request_id = Some(request_id);
        response
    }

    /// The response the client gets: status, JSON body, and the headers this kind needs.
    pub fn into_response(self, service: Option<&str>, request_id: &str) -> Response {
        let body = serde_json::json!({
            "error": {
                "code": self.kind.code(),
                "message": self.message,
                "service": service,
                "request_id": request_id,
            }
        });
        let mut response = Response::json(self.kind.status(), body.to_string().into_bytes());
        match self.kind {
            ErrorKind::Overloaded | ErrorKind::RegistryUnavailable => {
                response.push_header("retry-after", RETRY_AFTER_SECONDS)
            }
            ErrorKind::Unauthorized => response.push_header("www-authenticate", "Bearer"),
            ErrorKind::MethodNotAllowed { allow } => response.push_header("allow", allow),
            _ => {}
        }
        response.close = self.kind.closes_connection();
        response
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_like_grpc_gateway() {
        let table = [
            (1, 499, "CANCELLED"),
            (2, 500, "UNKNOWN"),
            (3, 400, "INVALID_ARGUMENT"),
            (4, 504, "DEADLINE_EXCEEDED"),
            (5, 404, "NOT_FOUND"),
            (6, 409, "ALREADY_EXISTS"),
            (7, 403, "PERMISSION_DENIED"),
            (8, 429, "RESOURCE_EXHAUSTED"),
            (9, 400, "FAILED_PRECONDITION"),
            (10, 409, "ABORTED"),
            (11, 400, "OUT_OF_RANGE"),
            (12, 501, "UNIMPLEMENTED"),
            (13, 500, "INTERNAL"),
            (14, 503, "UNAVAILABLE"),
            (15, 500, "DATA_LOSS"),
            (16, 401, "UNAUTHENTICATED"),
            (99, 500, "UNKNOWN"),
        ];
        for (value, status, name) in table {
            let kind = ErrorKind::Grpc(GrpcCode::from_status(value));
            assert_eq!(
                (kind.status(), kind.code()),
                (status, name),
                "grpc-status {value}"
            );
        }
    }

    #[test]
    fn backend_http_statuses_map_like_grpc_then_like_grpc_gateway() {
        // (backend's HTTP status, gRPC code, the client's status through contract §3)
        let table = [
            (400, "INTERNAL", 500),
            (401, "UNAUTHENTICATED", 401),
            (403, "PERMISSION_DENIED", 403),
            (404, "UNIMPLEMENTED", 501),
            (429, "UNAVAILABLE", 503),
            (502, "UNAVAILABLE", 503),
            (503, "UNAVAILABLE", 503),
            (504, "UNAVAILABLE", 503),
            (201, "UNKNOWN", 500),
            (302, "UNKNOWN", 500),
            (405, "UNKNOWN", 500),
            (500, "UNKNOWN", 500),
        ];
        for (http, name, status) in table {
            let kind = ErrorKind::Grpc(GrpcCode::from_http_status(http));
            assert_eq!((kind.code(), kind.status()), (name, status), "HTTP {http}");
        }
    }

    #[test]
    fn gateway_kinds_have_contract_statuses() {
        use ErrorKind::*;
        let table = [
            (BadRequest, 400, true),
            (Unauthorized, 401, false),
            (Forbidden, 403, false),
            (ServiceNotFound, 404, false),
            (NotFound, 404, false),
            (MethodNotAllowed { allow: "GET" }, 405, false),
            (RequestTimeout, 408, true),
            (BodyTooLarge, 413, true),
            (HeadersTooLarge, 431, true),
            (NoHealthyInstance, 503, false),
            (Overloaded, 503, false),
            (RegistryUnavailable, 503, false),
            (UpstreamTimeout, 504, false),
            (UpstreamProtocol, 502, false),
        ];
        for (kind, status, closes) in table {
            assert_eq!(kind.status(), status, "{kind:?}");
            assert_eq!(kind.closes_connection(), closes, "{kind:?}");
        }
    }

    #[test]
    fn an_answer_carries_its_request_id_in_the_body_and_as_a_header() {
        let id = RequestId::from_client(&bytes::Bytes::from_static(b"client-id")).unwrap();
        let r = GatewayError::body_too_large().answer(Some("users"), id.clone());
        assert_eq!((r.status, r.close), (413, true));
        assert_eq!(r.request_id, Some(id));
        assert_eq!(
            r.fields().find(|(name, _)| *name == "x-request-id"),
            Some(("x-request-id", "client-id"))
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["request_id"], "client-id");
        assert_eq!(v["error"]["message"], "request body is over the limit");
    }

    #[test]
    fn a_missing_service_is_named_escaped() {
        let e = GatewayError::service_not_found("a\nb\"");
        assert_eq!(e.kind, ErrorKind::ServiceNotFound);
        assert_eq!(e.message, r#"no service named `a\nb\"`"#);
    }

    #[test]
    fn error_body_has_the_contract_shape() {
        let r = GatewayError::new(ErrorKind::Overloaded, "busy").into_response(Some("users"), "r1");
        assert_eq!(r.status, 503);
        assert!(r.header("retry-after").is_some());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":{"code":"OVERLOADED","message":"busy","service":"users","request_id":"r1"}})
        );
        let r = GatewayError::new(
            ErrorKind::MethodNotAllowed {
                allow: "PUT, DELETE",
            },
            "no",
        )
        .into_response(None, "r3");
        assert_eq!((r.status, r.header("allow")), (405, Some("PUT, DELETE")));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "METHOD_NOT_ALLOWED");
        let r = GatewayError::service_not_loaded("us\"ers").into_response(Some("users"), "r4");
        assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "REGISTRY_UNAVAILABLE");
        assert_eq!(
            v["error"]["message"],
            "the service `us\\\"ers` cannot be looked up yet: this gateway's registry has not \
             caught up with the cluster log"
        );
        let r = GatewayError::bad_request("x").into_response(None, "r2");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(v["error"]["service"].is_null());
        assert!(r.close);
    }
}
