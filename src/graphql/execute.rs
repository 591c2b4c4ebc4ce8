//! Execution of a plan: one backend call per service root field, then projection of each answer.
//!
//! What one request may cost is bounded here too: the request bodies its calls forward together
//! ([`check_forwarded`], before any call, as `--max-body-bytes` bounds a REST request's one body)
//! and the size of its response (each answer is projected within what the fields before it left of
//! the limit, so a request holds at most the limit plus the answer being projected; the field that
//! does not fit is a `RESPONSE_TOO_LARGE` error, the others are kept).
//!
//! Query root fields are polled together in one task (`join_all`): on a thread-per-core shard that is
//! all the concurrency needed, with nothing spawned and nothing `Send`. Mutation root fields run one
//! after another in document order, as GraphQL requires for side effects. A root field that fails
//! (gateway error, backend status ≥ 400, non-JSON body, bad arguments) becomes `null` plus one error;
//! the other fields are unaffected.
//!
//! Arguments are checked before the call so that a call carries nothing a REST request could not:
//! a `path` or `query` with control characters, white space or `#` (or `?` in the path) and a header
//! value with control characters are field errors (BAD_REQUEST, 400); a leading `?` of `query` is
//! dropped; entries of `headers` that are hop-by-hop (the REST rule,
//! [`crate::upstream::is_hop_by_hop`]) or `content-length` are dropped, as REST drops the client's.
//! A call with a `body` carries `content-type: application/json` unless `headers` names a
//! `content-type`, which then replaces it (so a call has one; `headers` naming two is a
//! BAD_REQUEST field error). `headers` naming `host` or `x-request-id` is a BAD_REQUEST field
//! error: the call carries its request's (one Host, as REST requires; one id, its `request_id`).

use std::cell::Cell;

use async_graphql_parser::types::OperationType;
use bytes::Bytes;
use futures_util::future::join_all;
use serde_json::value::RawValue;
use serde_json::Value as Json;

use super::error::{Code, GraphQLError};
use super::introspect::Introspection;
use super::plan::{Plan, RootField, RootKind};
use super::project::{project, write_json_str, write_key, ProjectError, MAX_PROJECTED_DEPTH};
use super::schema::{self, root_argument_default};
use super::{Backend, FieldAnswer, FieldCall, FieldError};
use crate::error::{ErrorKind, GatewayError};
use crate::upstream::{is_header_value, is_hop_by_hop, is_token};

/// Refuses a plan whose calls would forward more request body bytes, all together, than
/// `max_bytes`, before anything is called. The bodies are measured as they will be serialised,
/// without building them.
pub(crate) fn check_forwarded(plan: &Plan, max_bytes: usize) -> Result<(), GraphQLError> {
    let mut total = 0usize;
    for field in &plan.fields {
        if let RootKind::Service { arguments, .. } = &field.kind {
            if let Some((_, body)) = arguments.iter().find(|(n, _)| n == "body") {
                if !body.is_null() {
                    total = total.saturating_add(serialized_len(body));
                }
            }
        }
    }
    if total <= max_bytes {
        return Ok(());
    }
    let error = GatewayError::new(
        ErrorKind::BodyTooLarge,
        format!(
            "The operation's calls would forward {total} bytes of request bodies, more than the limit of {max_bytes} bytes."
        ),
    );
    Err(FieldError::from(error).into())
}

/// The length of `value` serialised as JSON, counted without keeping the bytes.
fn serialized_len(value: &Json) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).expect("a JSON value serialises");
    count.0
}

/// Runs `plan` and returns the `data` object's JSON text and the field errors, in root-field order.
/// The fields' values and error messages together stay within `max_response_bytes`: each field is
/// given what is left when its answer arrives (in document order for a mutation, in order of
/// arrival for a query), and one that does not fit is an error instead.
pub(crate) async fn execute<B: Backend>(
    backend: &B,
    plan: &Plan,
    max_response_bytes: usize,
    introspection: impl FnOnce() -> Introspection,
) -> (Vec<u8>, Vec<GraphQLError>) {
    let needs_introspection = plan
        .fields
        .iter()
        .any(|f| matches!(f.kind, RootKind::Schema | RootKind::Type(_)));
    let introspection = needs_introspection.then(introspection);
    let context = Context {
        backend,
        operation: plan.operation,
        introspection: introspection.as_ref(),
        max_response_bytes,
        used: Cell::new(0),
    };
    let results: Vec<Result<Vec<u8>, GraphQLError>> = match plan.operation {
        OperationType::Mutation => {
            let mut results = Vec::with_capacity(plan.fields.len());
            for field in &plan.fields {
                results.push(context.resolve(field).await);
            }
            results
        }
        _ => join_all(plan.fields.iter().map(|field| context.resolve(field))).await,
    };
    let mut data = Vec::with_capacity(
        results
            .iter()
            .map(|r| r.as_ref().map_or(4, Vec::len) + 8)
            .sum(),
    );
    let mut errors = Vec::new();
    data.push(b'{');
    // Each field's buffer is freed once copied.
    for (i, (field, result)) in plan.fields.iter().zip(results).enumerate() {
        if i > 0 {
            data.push(b',');
        }
        write_key(&mut data, &field.key);
        match result {
            Ok(value) => data.extend_from_slice(&value),
            Err(error) => {
                data.extend_from_slice(b"null");
                errors.push(error);
            }
        }
    }
    data.push(b'}');
    (data, errors)
}

struct Context<'a, B> {
    backend: &'a B,
    operation: OperationType,
    introspection: Option<&'a Introspection>,
    max_response_bytes: usize,
    /// Bytes of the response the fields resolved so far take (values and error messages).
    used: Cell<usize>,
}

impl<B: Backend> Context<'_, B> {
    /// Resolves one root field within what is left of the response size limit.
    async fn resolve(&self, field: &RootField) -> Result<Vec<u8>, GraphQLError> {
        let result = self.value(field).await;
        // Nothing awaits from here on, so no other field's count changes in between.
        let left = self.max_response_bytes.saturating_sub(self.used.get());
        let size = match &result {
            Ok(value) => value.len(),
            Err(error) if error.code == Code::ResponseTooLarge => 0,
            Err(error) => error.message.len(),
        };
        if size > left {
            return Err(self.too_large(field));
        }
        self.used.set(self.used.get() + size);
        result
    }

    fn too_large(&self, field: &RootField) -> GraphQLError {
        GraphQLError::field(
            &field.key,
            field.pos,
            Code::ResponseTooLarge,
            format!(
                "The value of \"{}\" would take the response over its limit of {} bytes.",
                field.key, self.max_response_bytes
            ),
        )
    }

    async fn value(&self, field: &RootField) -> Result<Vec<u8>, GraphQLError> {
        let mut out = Vec::new();
        match &field.kind {
            RootKind::Typename => write_json_str(
                &mut out,
                match self.operation {
                    OperationType::Mutation => "Mutation",
                    _ => "Query",
                },
            ),
            RootKind::Schema => {
                let introspection = self.introspection.expect("built when the plan needs it");
                introspection
                    .write_schema(field.selection.as_deref().unwrap_or_default(), &mut out);
            }
            RootKind::Type(name) => {
                let introspection = self.introspection.expect("built when the plan needs it");
                introspection.write_named(
                    name,
                    field.selection.as_deref().unwrap_or_default(),
                    &mut out,
                );
            }
            RootKind::BadArgument(message) => {
                return Err(GraphQLError::field(
                    &field.key,
                    field.pos,
                    Code::BadRequest,
                    message.clone(),
                ))
            }
            RootKind::Service { service, arguments } => {
                let call = call_for(field, service, arguments, self.operation)?;
                let answer = self
                    .backend
                    .call(call)
                    .await
                    .map_err(|e| GraphQLError::from(e).in_field(&field.key, field.pos))?;
                // Projected as soon as it arrives, within what the fields before it have left.
                let left = self.max_response_bytes.saturating_sub(self.used.get());
                answer_to_json(field, service, &answer, &mut out, left).map_err(|e| match e {
                    Refused::TooLarge => self.too_large(field),
                    Refused::Error(error) => error,
                })?;
            }
        }
        Ok(out)
    }
}

/// Refuses a plan, for a GET request, that would call a service with a method that is not safe
/// (RFC 9110 §9.2.1): GraphQL-over-HTTP keeps GET for operations without side effects, which the
/// 405 for a mutation enforces for the operation's type, and this for what its calls do (a query's
/// field may call with `method: "DELETE"`). A GET is what a browser sends cross-site without a
/// preflight (a link, an image), with the user's cookies, so the rule is a request error (405,
/// nothing called), not a field's. A `method` that is no HTTP method is left to [`call_for`].
pub(crate) fn check_safe_calls(plan: &Plan) -> Result<(), GraphQLError> {
    for field in &plan.fields {
        let RootKind::Service { arguments, .. } = &field.kind else {
            continue;
        };
        let Ok(method) = call_method(arguments, plan.operation) else {
            continue;
        };
        if !is_safe(&method) {
            let message = format!(
                "A GET request can only call services with a safe method (GET, HEAD, OPTIONS, TRACE), and \"{}\" calls with {method}; use POST.",
                field.key
            );
            return Err(GraphQLError {
                status: 405,
                locations: vec![field.pos],
                ..GraphQLError::request(Code::BadRequest, message)
            });
        }
    }
    Ok(())
}

/// Methods that ask for nothing to change on the server (RFC 9110 §9.2.1).
fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

fn root_type(operation: OperationType) -> &'static str {
    match operation {
        OperationType::Mutation => schema::MUTATION,
        _ => schema::QUERY,
    }
}

/// The method a service root field calls with: its `method` argument upper-cased, or the root
/// type's default; `Err` with the message for an argument that is no HTTP method.
fn call_method(arguments: &[(String, Json)], operation: OperationType) -> Result<String, String> {
    let given = arguments
        .iter()
        .find(|(n, _)| n == "method")
        .and_then(|(_, v)| v.as_str());
    match given {
        Some(method) if is_token(method.as_bytes()) => Ok(method.to_ascii_uppercase()),
        Some(method) => Err(format!("\"{method}\" is not an HTTP method.")),
        None => Ok(root_argument_default("method", root_type(operation))
            .unwrap_or_default()
            .to_owned()),
    }
}

/// Builds the backend call of a service root field from its (validated, coerced) arguments.
pub(crate) fn call_for(
    field: &RootField,
    service: &str,
    arguments: &[(String, Json)],
    operation: OperationType,
) -> Result<FieldCall, GraphQLError> {
    let bad =
        |message: String| GraphQLError::field(&field.key, field.pos, Code::BadRequest, message);
    let string = |name: &str| -> Option<&str> {
        arguments
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_str())
    };
    let default =
        |name: &str| root_argument_default(name, root_type(operation)).unwrap_or_default();
    let method = call_method(arguments, operation).map_err(bad)?;
    let path = string("path").unwrap_or_else(|| default("path"));
    if !path.starts_with('/') {
        return Err(bad(format!("The path {path:?} must start with '/'.")));
    }
    if let Some(c) = unsendable(path, true) {
        let hint = if c == '?' {
            " (give the query string in the `query` argument)"
        } else {
            ""
        };
        return Err(bad(format!(
            "The path {path:?} contains {}{hint}.",
            describe(c)
        )));
    }
    let query = string("query").unwrap_or_default();
    let query = query.strip_prefix('?').unwrap_or(query);
    if let Some(c) = unsendable(query, false) {
        return Err(bad(format!(
            "The query string {query:?} contains {}.",
            describe(c)
        )));
    }
    let mut headers = Vec::new();
    if let Some((_, value)) = arguments.iter().find(|(n, _)| n == "headers") {
        let entries = match value {
            Json::Array(items) => items.iter().collect(),
            Json::Null => Vec::new(),
            single => vec![single],
        };
        for entry in entries {
            // The plan has checked both against `String!`: nothing here stands in for a value.
            let text = |field: &str| entry.get(field).and_then(Json::as_str);
            let (Some(name), Some(value)) = (text("name"), text("value")) else {
                return Err(bad(format!(
                    "Argument \"headers\" has an entry without a name or value: {entry}."
                )));
            };
            if !is_token(name.as_bytes()) {
                return Err(bad(format!("\"{name}\" is not a header name.")));
            }
            if !is_header_value(value.as_bytes()) {
                let c = value.chars().find(|c| c.is_ascii_control() && *c != '\t');
                return Err(bad(format!(
                    "The value of header \"{name}\" contains {}.",
                    c.map_or_else(|| "a control character".to_owned(), describe)
                )));
            }
            let name = name.to_ascii_lowercase();
            if let Some(why) = own_header(&name) {
                return Err(bad(format!(
                    "The header \"{name}\" cannot be given in \"headers\": {why}."
                )));
            }
            if forwarded_header(&name) {
                headers.push((name, value.to_owned()));
            }
        }
    }
    let body = arguments
        .iter()
        .find(|(n, _)| n == "body")
        .filter(|(_, v)| !v.is_null())
        .map(|(_, v)| Bytes::from(serde_json::to_vec(v).expect("a JSON value serialises")));
    // One content-type: the argument's replaces the one the body brings.
    match headers.iter().filter(|(n, _)| n == "content-type").count() {
        0 if body.is_some() => {
            headers.insert(0, ("content-type".to_owned(), BODY_CONTENT_TYPE.to_owned()))
        }
        0 | 1 => {}
        _ => {
            return Err(bad(
                "The header \"content-type\" is given more than once in \"headers\".".to_owned(),
            ))
        }
    }
    Ok(FieldCall {
        service: service.to_owned(),
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body,
        graphql_field: field.key.clone(),
    })
}

/// The `content-type` of a call with a `body` (which is sent as JSON), unless the `headers`
/// argument names one.
const BODY_CONTENT_TYPE: &str = "application/json";

/// Why a `headers` argument entry (lower-case name) may not be given at all: headers a call has
/// one of, taken from its request, that a second would contradict (REST refuses a second Host with
/// 400; a second `x-request-id` would name another id than the call's `request_id`).
fn own_header(name: &str) -> Option<&'static str> {
    match name {
        "host" => Some("a call carries its request's Host"),
        "x-request-id" => Some("a call carries its request's id"),
        _ => None,
    }
}

/// Whether a `headers` argument entry (lower-case name) is sent: hop-by-hop headers are dropped
/// with the same rule as REST's client headers (contract §1), and `content-length` because the
/// gateway frames the call's body itself.
fn forwarded_header(name: &str) -> bool {
    !(is_hop_by_hop(name.as_bytes()) || name == "content-length")
}

/// The first character of a path or query string that no REST request could put there: control
/// characters and white space (a request line cannot carry them) and `#` (a fragment is never sent);
/// in a path also `?`, which would start the query.
fn unsendable(text: &str, in_path: bool) -> Option<char> {
    text.chars()
        .find(|&c| c.is_control() || c.is_whitespace() || c == '#' || (in_path && c == '?'))
}

/// A refused character, as a message names it.
fn describe(c: char) -> String {
    match c {
        '\r' | '\n' => "a line break".to_owned(),
        '\0' => "a NUL character".to_owned(),
        '\t' => "a tab".to_owned(),
        ' ' => "a space".to_owned(),
        c if c.is_control() => format!("a control character (U+{:04X})", u32::from(c)),
        c if c.is_whitespace() => format!("white space (U+{:04X})", u32::from(c)),
        c => format!("'{c}'"),
    }
}

/// Why an answer did not become the field's value.
enum Refused {
    /// It would pass the response size limit.
    TooLarge,
    /// The field's error.
    Error(GraphQLError),
}

/// Turns a backend answer into the field's JSON text (at most `max_len` bytes), or a field error.
fn answer_to_json(
    field: &RootField,
    service: &str,
    answer: &FieldAnswer,
    out: &mut Vec<u8>,
    max_len: usize,
) -> Result<(), Refused> {
    if answer.status >= 400 {
        let error = backend_error(&answer.body);
        return Err(Refused::Error(GraphQLError::field(
            &field.key,
            field.pos,
            Code::Other {
                code: error.code,
                status: answer.status,
            },
            error.message.unwrap_or_else(|| {
                format!(
                    "Service \"{service}\" answered with status {}.",
                    answer.status
                )
            }),
        )));
    }
    // An empty body (204 No Content, say) is no value rather than a broken one.
    if answer.body.iter().all(u8::is_ascii_whitespace) {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    let bad_answer = |why: String| {
        Refused::Error(GraphQLError::field(
            &field.key,
            field.pos,
            Code::BadBackendResponse,
            format!("Service \"{service}\" answered with {why}."),
        ))
    };
    // serde_json checks a `RawValue` without recursion, however deep the answer nests.
    let raw: &RawValue = serde_json::from_slice(&answer.body)
        .map_err(|e| bad_answer(format!("a body that is not JSON: {e}")))?;
    project(raw, field.selection.as_deref(), out, max_len).map_err(|e| match e {
        ProjectError::TooLarge => Refused::TooLarge,
        ProjectError::TooDeep => bad_answer(format!(
            "JSON nested more than {MAX_PROJECTED_DEPTH} levels deep where the selection reads it"
        )),
        ProjectError::Malformed => bad_answer("a body that is not JSON".to_owned()),
    })
}

struct BackendError {
    code: String,
    message: Option<String>,
}

/// Reads `{"error":{"code":..., "message":...}}` (the gateway's own error shape, contract §3) from an
/// error answer; anything else is `BACKEND_ERROR` with no message of its own.
fn backend_error(body: &[u8]) -> BackendError {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: String,
        message: Option<String>,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { error }) => BackendError {
            code: error.code,
            message: error.message,
        },
        Err(_) => BackendError {
            code: "BACKEND_ERROR".to_owned(),
            message: None,
        },
    }
}
