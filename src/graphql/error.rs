//! GraphQL errors as they appear in a response's `errors` list.
//!
//! One type for every stage (request decoding, limits, parsing, validation, variable coercion, field
//! execution) so the encoder has one shape to write: `{message, locations?, path?, extensions:{code,
//! status}}`. Request-level errors have no `path`; field errors carry the root field's response key.
//! Codes are an enum, never matched as strings; field errors from the gateway or a backend keep the
//! code they came with (contract §3), which is why [`Code::Other`] exists.

use async_graphql_parser::Pos;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

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
    /// A field's value would take the response over its size limit (status 500, as Envoy
    /// answers a response too large to buffer).
    ResponseTooLarge,
    /// A code given by the gateway or a backend (`SERVICE_NOT_FOUND`, `BACKEND_ERROR`, ...).
    Other(String),
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
            Code::Other(code) => code,
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
    /// `extensions.status`: the HTTP status this error stands for.
    pub status: u16,
}

impl GraphQLError {
    /// A request error (no path) with status 400.
    pub fn request(code: Code, message: impl Into<String>) -> Self {
        GraphQLError {
            message: message.into(),
            locations: Vec::new(),
            path: None,
            code,
            status: 400,
        }
    }

    /// A validation error at `pos`.
    pub fn validation(message: impl Into<String>, pos: Pos) -> Self {
        GraphQLError {
            locations: vec![pos],
            ..GraphQLError::request(Code::ValidationFailed, message)
        }
    }

    /// An error of the root field `key`.
    pub fn field(key: &str, pos: Pos, code: Code, status: u16, message: impl Into<String>) -> Self {
        GraphQLError {
            message: message.into(),
            locations: vec![pos],
            path: Some(vec![key.to_owned()]),
            code,
            status,
        }
    }

    /// Adds a location.
    pub fn at(mut self, pos: Pos) -> Self {
        self.locations.push(pos);
        self
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
