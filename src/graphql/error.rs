//! GraphQL errors as they appear in a response's `errors` list.
//!
//! One type for every stage (request decoding, limits, parsing, validation, variable coercion, field
//! execution) so the encoder has one shape to write: `{message, locations?, path?, extensions:{code,
//! status}}`. Request-level errors have no `path`; field errors carry the root field's response key.
//! Codes are an enum, never matched as strings, and each knows the HTTP status it stands for
//! ([`Code::status`]), so no error names a status of its own; errors from the gateway or a backend
//! keep the code and status they came with (contract §3), which is why [`Code::Other`] exists. A
//! gateway error becomes a GraphQL one in one way: as a [`FieldError`] (`From<GatewayError>`),
//! which is a [`GraphQLError`] under [`Code::Other`] (`From<FieldError>`).

use async_graphql_parser::Pos;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::FieldError;

/// The `extensions.code` of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// The HTTP request is not a GraphQL request (bad JSON, no `query`, wrong parameter types).
    BadRequest,
    /// The document does not parse.
    ParseFailed,
    /// The document parses but breaks a validation rule, or names no executable operation.
    ValidationFailed,
    /// A variable's value does not coerce to its declared type (or a required one is missing).
    BadUserInput,
    /// Limit: document bytes.
    DocumentTooLarge,
    /// Limit: lexical tokens, or fields after fragment expansion.
    TooManyTokens,
    /// Limit: selection depth.
    QueryTooDeep,
    /// Limit: root fields.
    TooManyRootFields,
    /// Limit: aliases.
    TooManyAliases,
    /// A backend answered 2xx with a body that is not JSON (or nested too deeply to project).
    BadBackendResponse,
    /// A field's value would take the response over its size limit.
    ResponseTooLarge,
    /// A code given by the gateway or a backend (`SERVICE_NOT_FOUND`, `BACKEND_ERROR`, ...), with
    /// the HTTP status it came with.
    Other {
        /// The code.
        code: String,
        /// Its status: the gateway error's (contract §3), or the backend answer's.
        status: u16,
    },
}

impl Code {
    /// The code as written in `extensions.code`.
    pub fn as_str(&self) -> &str {
        match self {
            Code::BadRequest => "BAD_REQUEST",
            Code::ParseFailed => "GRAPHQL_PARSE_FAILED",
            Code::ValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::DocumentTooLarge => "DOCUMENT_TOO_LARGE",
            Code::TooManyTokens => "TOO_MANY_TOKENS",
            Code::QueryTooDeep => "QUERY_TOO_DEEP",
            Code::TooManyRootFields => "TOO_MANY_ROOT_FIELDS",
            Code::TooManyAliases => "TOO_MANY_ALIASES",
            Code::BadBackendResponse => "BAD_BACKEND_RESPONSE",
            Code::ResponseTooLarge => "RESPONSE_TOO_LARGE",
            Code::Other { code, .. } => code,
        }
    }

    /// The HTTP status an error with this code stands for (`extensions.status`): 400 for a
    /// request the engine refuses, 502 for a backend answer it cannot use, 500 for a response
    /// over its size limit (as Envoy answers one too large to buffer), and the given status for
    /// the gateway's and backends' codes.
    pub fn status(&self) -> u16 {
        match self {
            Code::BadRequest
            | Code::ParseFailed
            | Code::ValidationFailed
            | Code::BadUserInput
            | Code::DocumentTooLarge
            | Code::TooManyTokens
            | Code::QueryTooDeep
            | Code::TooManyRootFields
            | Code::TooManyAliases => 400,
            Code::BadBackendResponse => 502,
            Code::ResponseTooLarge => 500,
            Code::Other { status, .. } => *status,
        }
    }
}

/// One entry of a response's `errors` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphQLError {
    /// Human-readable description.
    pub message: String,
    /// Where in the document the error is (1-based line and column).
    pub locations: Vec<Pos>,
    /// Response path for field errors (the root field's response key); `None` for request errors.
    pub path: Option<Vec<String>>,
    /// `extensions.code`.
    pub code: Code,
    /// `extensions.status`: the HTTP status this error stands for, its code's unless the request
    /// says otherwise (405 for a mutation sent with GET).
    pub status: u16,
}

impl GraphQLError {
    /// A request error (no path) with its code's status.
    pub fn request(code: Code, message: impl Into<String>) -> Self {
        GraphQLError {
            message: message.into(),
            locations: Vec::new(),
            path: None,
            status: code.status(),
            code,
        }
    }

    /// A validation error at `pos`.
    pub fn validation(message: impl Into<String>, pos: Pos) -> Self {
        GraphQLError {
            locations: vec![pos],
            ..GraphQLError::request(Code::ValidationFailed, message)
        }
    }

    /// An error of the root field `key`, with its code's status.
    pub fn field(key: &str, pos: Pos, code: Code, message: impl Into<String>) -> Self {
        GraphQLError::request(code, message).in_field(key, pos)
    }

    /// This error as the root field `key`'s, at `pos`.
    pub fn in_field(self, key: &str, pos: Pos) -> Self {
        GraphQLError {
            locations: vec![pos],
            path: Some(vec![key.to_owned()]),
            ..self
        }
    }

    /// Adds a location.
    pub fn at(mut self, pos: Pos) -> Self {
        self.locations.push(pos);
        self
    }
}

impl From<FieldError> for GraphQLError {
    /// A gateway or backend error as a request error, under the code and status it came with
    /// ([`GraphQLError::in_field`] makes it a field's).
    fn from(error: FieldError) -> Self {
        let code = Code::Other {
            code: error.code,
            status: error.status,
        };
        GraphQLError::request(code, error.message)
    }
}

impl Serialize for GraphQLError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Location(Pos);
        impl Serialize for Location {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("line", &self.0.line)?;
                map.serialize_entry("column", &self.0.column)?;
                map.end()
            }
        }
        struct Extensions<'a>(&'a GraphQLError);
        impl Serialize for Extensions<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("code", self.0.code.as_str())?;
                map.serialize_entry("status", &self.0.status)?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("message", &self.message)?;
        if !self.locations.is_empty() {
            let locations: Vec<Location> = self.locations.iter().map(|p| Location(*p)).collect();
            map.serialize_entry("locations", &locations)?;
        }
        if let Some(path) = &self.path {
            map.serialize_entry("path", path)?;
        }
        map.serialize_entry("extensions", &Extensions(self))?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, GatewayError, GrpcCode};

    #[test]
    fn a_gateway_error_keeps_its_code_and_status() {
        let error = GatewayError::new(ErrorKind::Grpc(GrpcCode::PermissionDenied), "no");
        let field = GraphQLError::from(FieldError::from(error)).in_field("me", Pos::default());
        assert_eq!(
            serde_json::to_value(&field).unwrap(),
            serde_json::json!({"message": "no", "locations": [{"line": 0, "column": 0}],
                "path": ["me"], "extensions": {"code": "PERMISSION_DENIED", "status": 403}})
        );
        let request = GraphQLError::from(FieldError::from(GatewayError::body_too_large()));
        assert_eq!(
            (request.code.as_str(), request.status),
            ("BODY_TOO_LARGE", 413)
        );
        assert_eq!(request.path, None);
    }

    #[test]
    fn the_engines_codes_have_their_statuses() {
        let table = [
            (Code::BadRequest, 400),
            (Code::ParseFailed, 400),
            (Code::ValidationFailed, 400),
            (Code::BadUserInput, 400),
            (Code::DocumentTooLarge, 400),
            (Code::TooManyTokens, 400),
            (Code::QueryTooDeep, 400),
            (Code::TooManyRootFields, 400),
            (Code::TooManyAliases, 400),
            (Code::BadBackendResponse, 502),
            (Code::ResponseTooLarge, 500),
        ];
        for (code, status) in table {
            assert_eq!(
                GraphQLError::request(code.clone(), "x").status,
                status,
                "{code:?}"
            );
        }
    }
}
