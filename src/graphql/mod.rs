//! The GraphQL endpoint: one query fans out to many services (contract §5).
//!
//! Every registered service is a root field of both `Query` and `Mutation` (`user-svc` →
//! `user_svc`; a leading digit gets a `_`, `9lives` → `_9lives`, since GraphQL names cannot start with
//! one) whose value is the service's JSON answer. The engine is independent of the transport:
//! [`handle`] takes an already-read HTTP request and a [`Backend`] (the shard's registry view and a
//! way to call a service) and returns the HTTP response, so it is tested here with a mock backend and
//! wired to the listener elsewhere. A request goes through the files in this order:
//!
//! ```text
//! http (decode GET/POST, media type) → limits (size, tokens, nesting: before parsing)
//!   → parse (async-graphql-parser) → operation selection → fragments (the spread graph)
//!   → limits (every operation and fragment: depth, expanded fields; the selected operation:
//!     root fields, aliases) → validate (every rule, with locations)
//!   → plan (variables, fragments, skip/include, arguments with their values)
//!   → execute (the calls' bodies bounded together; queries concurrently, mutations in order)
//!   → project (each answer through its selection, within the response size limit)
//!   → http (status rules, encoding); introspect answers `__schema` / `__type` locally
//! ```
//!
//! # A deliberate extension: selections on `JSON`
//!
//! A service field's type is the scalar `JSON`, and standard GraphQL forbids selecting fields on a
//! scalar. Here a selection set on a service field (or anywhere inside its value) is a *projection*:
//! objects keep the selected keys, lists map over their elements, scalars are returned unchanged and
//! `__typename` is `"JSON"`. Without a selection set the whole value is returned. Clients that validate
//! against the introspected schema (graphql-js) will reject such selections; they can send the query
//! without client-side validation or select the whole value. Fragments inside a value are written
//! `... on JSON` (or without a type condition).
//!
//! # Why it is built this way
//!
//! - Each shard runs single-threaded, so concurrency is polling all query root fields in one task;
//!   nothing is spawned and futures need not be `Send` ([`Backend::call`] returns a plain future).
//! - Backend answers are projected from their raw text without building a `serde_json::Value`, in
//!   one pass per selection level with no recursion per array level: what is not selected is
//!   skipped and what is selected whole is copied byte for byte.
//! - Limits are checked before the work they bound: size, tokens and nesting before the parser
//!   allocates, depth and expansion of every definition before validation walks them, fan-out
//!   before anything is planned or called.
//! - What one request costs beyond parsing is bounded too: validation's work by the limits on
//!   every definition (and at most 100 errors), the calls by the root-field limit, what they
//!   forward by `--max-body-bytes` and the REST header limits, and the response by a size limit
//!   checked while each answer is projected.
//! - Nothing recurses along a chain of fragment spreads (the document decides how long it is):
//!   spreads are followed with explicit stacks (the `fragments` module); what recursion there is
//!   follows the syntax of one definition (the parser bounds it) or the selection depth (limited
//!   first).

mod error;
mod execute;
mod fragments;
mod http;
mod input_fields;
mod introspect;
mod limits;
mod plan;
mod project;
mod schema;
mod validate;

#[cfg(test)]
mod tests;

use std::future::Future;

use async_graphql_parser::types::OperationType;
use serde_json::{Map, Value as Json};

use crate::error::GatewayError;

pub use error::{Code, GraphQLError};
pub use http::{APPLICATION_JSON, GRAPHQL_RESPONSE_JSON};
pub use limits::{
    Limits, DEFAULT_MAX_ALIASES, DEFAULT_MAX_DEPTH, DEFAULT_MAX_DOCUMENT_BYTES,
    DEFAULT_MAX_FORWARDED_BODY_BYTES, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_ROOT_FIELDS,
    DEFAULT_MAX_TOKENS, RESPONSE_ANSWERS,
};
pub use plan::{Plan, Proj, RootField, RootKind};
pub use project::{project, ProjectError, MAX_PROJECTED_DEPTH};

/// What the gateway gives the engine: the registry view of this shard and a way to call a service.
pub trait Backend {
    /// Names of the registered services (e.g. "user-svc"), any order.
    fn services(&self) -> Vec<String>;
    /// Calls one service: returns the backend's HTTP-level answer or a gateway error.
    fn call(&self, call: FieldCall) -> impl Future<Output = Result<FieldAnswer, FieldError>>;
}

/// One backend call made for a service root field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCall {
    /// Registered service name (with '-', not '_').
    pub service: String,
    /// "GET" by default in a query, "POST" by default in a mutation, or the `method` argument upper-cased.
    pub method: String,
    /// The `path` argument, default "/" (always starts with '/').
    pub path: String,
    /// The `query` argument, or "".
    pub query: String,
    /// The headers the call adds to the client's: `content-type: application/json` when there is
    /// a body and the `headers` argument names no `content-type`, then the argument's entries
    /// {name, value}, names lower-cased, hop-by-hop ones and `content-length` left out.
    pub headers: Vec<(String, String)>,
    /// The `body` argument serialised as JSON (`None` when absent or null).
    pub body: Option<bytes::Bytes>,
    /// The root field's response key (its alias if it has one).
    pub graphql_field: String,
}

/// A backend's HTTP-level answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldAnswer {
    /// HTTP status.
    pub status: u16,
    /// Body; should be JSON.
    pub body: bytes::Bytes,
}

/// A gateway error for one call, e.g. SERVICE_NOT_FOUND/404, UPSTREAM_TIMEOUT/504, PERMISSION_DENIED/403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Error code as in contract §3.
    pub code: String,
    /// HTTP status as in contract §3.
    pub status: u16,
    /// Human-readable description.
    pub message: String,
}

impl From<GatewayError> for FieldError {
    /// The gateway's error as a field's: its code and status are those the REST answer would
    /// carry (contract §3).
    fn from(error: GatewayError) -> Self {
        FieldError {
            code: error.kind.code().to_owned(),
            status: error.kind.status(),
            message: error.message.into_owned(),
        }
    }
}

/// The HTTP method of a GraphQL request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// `GET /graphql?query=...`: queries only.
    Get,
    /// `POST /graphql` with a JSON body.
    Post,
}

/// An HTTP request to `/graphql`, already read from the connection.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// GET or POST.
    pub method: HttpMethod,
    /// Raw query string, without '?', percent-encoded.
    pub query_string: &'a str,
    /// `content-type` header.
    pub content_type: Option<&'a str>,
    /// `accept` header.
    pub accept: Option<&'a str>,
    /// The first content coding of the body other than `identity`, if any (`content-encoding`):
    /// a POST so encoded is refused, since its body is read as it arrives.
    pub content_coding: Option<&'a str>,
    /// Request body.
    pub body: &'a [u8],
}

/// The HTTP response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status (405 for a GET of a mutation: add `allow: POST`).
    pub status: u16,
    /// `content-type` header.
    pub content_type: &'static str,
    /// JSON body.
    pub body: Vec<u8>,
}

/// Everything GraphQL-over-HTTP: decode GET/POST, parse, validate, execute, encode.
pub async fn handle<B: Backend>(
    backend: &B,
    request: HttpRequest<'_>,
    limits: &Limits,
) -> HttpResponse {
    let media = http::negotiate(request.accept);
    let graphql = match http::decode(&request, media) {
        Ok(graphql) => graphql,
        Err(response) => return response,
    };
    let schema = schema::Schema::new(backend.services());
    let prepared = prepare(
        &schema,
        &graphql.query,
        graphql.variables.as_ref(),
        graphql.operation_name.as_deref(),
        limits,
    );
    let plan = match prepared {
        Ok(plan) => plan,
        Err(errors) => return http::request_errors(media, &errors),
    };
    if request.method == HttpMethod::Get && plan.operation == OperationType::Mutation {
        let error = GraphQLError {
            status: 405,
            ..GraphQLError::request(
                Code::BadRequest,
                "Mutations cannot be sent with GET; use POST.",
            )
        };
        return http::errors_response(media, 405, &[error]);
    }
    if request.method == HttpMethod::Get {
        if let Err(error) = execute::check_safe_calls(&plan) {
            return http::errors_response(media, 405, &[error]);
        }
    }
    if let Err(error) = execute::check_forwarded(&plan, limits.max_forwarded_body_bytes) {
        return http::request_errors(media, &[error]);
    }
    let (data, errors) = execute::execute(backend, &plan, limits.max_response_bytes, || {
        introspect::Introspection::new(&schema)
    })
    .await;
    http::executed(media, &data, &errors)
}

/// Parses, validates and plans a GraphQL request against the registered `services`, without
/// executing it. Errors are request errors (limits, parse, validation, variables), every one found.
pub fn plan(
    services: Vec<String>,
    query: &str,
    variables: Option<&Map<String, Json>>,
    operation_name: Option<&str>,
    limits: &Limits,
) -> Result<Plan, Vec<GraphQLError>> {
    prepare(
        &schema::Schema::new(services),
        query,
        variables,
        operation_name,
        limits,
    )
}

fn prepare(
    schema: &schema::Schema,
    query: &str,
    variables: Option<&Map<String, Json>>,
    operation_name: Option<&str>,
    limits: &Limits,
) -> Result<Plan, Vec<GraphQLError>> {
    limits::check_text(query, limits).map_err(|e| vec![e])?;
    let document = async_graphql_parser::parse_query(query).map_err(|e| vec![parse_error(e)])?;
    let operation = validate::select_operation(&document, operation_name).map_err(|e| vec![e])?;
    let graph = fragments::Graph::new(&document);
    let exceeded = limits::check_document(&document, &graph, operation, variables, limits);
    if !exceeded.is_empty() {
        return Err(exceeded);
    }
    let errors = validate::validate(query, &document, &graph, schema);
    if !errors.is_empty() {
        return Err(errors);
    }
    let variables = plan::coerce_variables(&operation.node, variables)?;
    plan::build(&document, &operation.node, schema, &variables)
}

/// Maps a parser error: syntax errors keep the parser's expectation, the document-level ones use the
/// wording of the GraphQL validation rules they stand for.
fn parse_error(error: async_graphql_parser::Error) -> GraphQLError {
    use async_graphql_parser::Error;
    let locations: Vec<_> = error.positions().collect();
    let (code, message) = match &error {
        Error::Syntax { message, .. } => {
            // pest's message is a multi-line picture; its last line ("= expected ...") is the point.
            let reason = message
                .lines()
                .last()
                .map(|l| l.trim().trim_start_matches("= ").to_owned())
                .unwrap_or_default();
            (Code::ParseFailed, format!("Syntax error: {reason}."))
        }
        Error::MultipleOperations { .. } => (
            Code::ValidationFailed,
            "This anonymous operation must be the only defined operation.".to_owned(),
        ),
        Error::OperationDuplicated { operation, .. } => (
            Code::ValidationFailed,
            format!("There can be only one operation named \"{operation}\"."),
        ),
        Error::FragmentDuplicated { fragment, .. } => (
            Code::ValidationFailed,
            format!("There can be only one fragment named \"{fragment}\"."),
        ),
        Error::MissingOperation => (
            Code::ValidationFailed,
            "The document does not contain an operation.".to_owned(),
        ),
        Error::RecursionLimitExceeded => (
            Code::QueryTooDeep,
            "The document is nested too deeply to parse.".to_owned(),
        ),
        other => (Code::ParseFailed, other.to_string()),
    };
    GraphQLError {
        locations,
        ..GraphQLError::request(code, message)
    }
}
