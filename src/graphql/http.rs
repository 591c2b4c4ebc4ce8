//! GraphQL over HTTP: decoding GET and POST requests into GraphQL requests, choosing the response
//! media type, and the status rules.
//!
//! Status rules (GraphQL-over-HTTP):
//! - not a GraphQL request at all (POST body not JSON or nested deeper than serde_json's limit (127), no
//!   `query` string, parameters of the wrong type; GET without `query`): 400 with `{"errors":[...]}`
//!   and no `data`, whatever the media type;
//! - POST with a `content-type` other than `application/json`: 400 as well, as Apollo Server answers
//!   (the contract's status for a POST that is not a GraphQL request; GraphQL-over-HTTP allows 415,
//!   which the contract does not list). Refused rather than parsed anyway: a form or `text/plain`
//!   POST is what a browser sends cross-site without a preflight;
//! - POST with a `content-encoding` (other than `identity`): 400 as well, for the same reason (RFC
//!   9110 would have 415); the body is read as it arrives, so an encoded one is refused rather than
//!   misread;
//! - GET of a mutation, or of a query that calls a service with a method that is not safe
//!   (`method: "DELETE"`): 405 (`crate::graphql_endpoint` adds `allow: POST` to the response);
//! - request errors (limits, parse, validation, variables): 200 with `application/json`, but 400 when
//!   the client accepts `application/graphql-response+json` (preferred over `application/json`),
//!   which is the point of that media type: the status then tells whether anything ran;
//! - executed: 200 with `data` (and `errors` for failed fields).
//!
//! Without an `Accept` header, or with one naming neither type (`*/*`, `text/html`), the answer is
//! `application/json`: the legacy behaviour every client understands.

use percent_encoding::percent_decode;
use serde_json::{Map, Value as Json};

use super::error::{Code, GraphQLError};
use super::{HttpMethod, HttpRequest, HttpResponse};

/// `content-type` of `application/json` answers.
pub const APPLICATION_JSON: &str = "application/json; charset=utf-8";
/// `content-type` of `application/graphql-response+json` answers.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json; charset=utf-8";

/// The response media type the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaType {
    Json,
    GraphQLResponseJson,
}

impl MediaType {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            MediaType::Json => APPLICATION_JSON,
            MediaType::GraphQLResponseJson => GRAPHQL_RESPONSE_JSON,
        }
    }
}

/// A decoded GraphQL request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GraphQLRequest {
    pub query: String,
    pub variables: Option<Map<String, Json>>,
    pub operation_name: Option<String>,
}

/// Picks the response media type from `Accept` (RFC 9110 §12.5.1): each supported type takes the
/// `q` of the most specific range that matches it (the type itself, then `application/*`, then
/// `*/*`), and the higher `q` wins. On a tie `application/graphql-response+json` wins only if it is
/// named, and before any `application/json`: a wildcard alone keeps the `application/json` that
/// clients written before GraphQL-over-HTTP expect, as does a header that accepts neither or is
/// absent.
pub(crate) fn negotiate(accept: Option<&str>) -> MediaType {
    let json = preference(accept, "application/json");
    let graphql = preference(accept, "application/graphql-response+json");
    let named_first = |(q, named_at): (f32, Option<usize>), other_named_at: Option<usize>| {
        q > 0.0 && named_at.is_some_and(|at| other_named_at.is_none_or(|other| at < other))
    };
    if graphql.0 > json.0 || (graphql.0 == json.0 && named_first(graphql, json.1)) {
        MediaType::GraphQLResponseJson
    } else {
        MediaType::Json
    }
}

/// How much `accept` wants `media` (lower-case `type/subtype`): the `q` of the most specific range
/// matching it (0 when none does), and where the header names it, if it does.
fn preference(accept: Option<&str>, media: &str) -> (f32, Option<usize>) {
    let family = media.split('/').next().unwrap_or_default();
    let mut best: Option<(u8, f32)> = None;
    let mut named_at = None;
    for (at, range) in accept.unwrap_or_default().split(',').enumerate() {
        let mut parts = range.split(';');
        let range = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let specificity = match range.split_once('/') {
            _ if range == media => 3,
            Some((f, "*")) if f == family => 2,
            Some(("*", "*")) => 1,
            _ => continue,
        };
        if specificity == 3 && named_at.is_none() {
            named_at = Some(at);
        }
        let q = parts
            .find_map(|p| {
                let (name, value) = p.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().ok())?
            })
            .unwrap_or(1.0);
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    (best.map_or(0.0, |(_, q)| q), named_at)
}

/// Decodes the HTTP request into a GraphQL request, or the response refusing it.
pub(crate) fn decode(
    request: &HttpRequest<'_>,
    media: MediaType,
) -> Result<GraphQLRequest, HttpResponse> {
    match request.method {
        HttpMethod::Get => decode_get(request.query_string),
        HttpMethod::Post => {
            let content_type = request.content_type.unwrap_or_default();
            let essence = content_type.split(';').next().unwrap_or_default().trim();
            if let Some(coding) = request.content_coding {
                Err(format!("Unsupported content-encoding \"{coding}\": a POST to /graphql is read as sent, without a content coding."))
            } else if !essence.eq_ignore_ascii_case("application/json") {
                Err(if content_type.is_empty() {
                    "A POST to /graphql needs content-type: application/json.".to_owned()
                } else {
                    format!("Unsupported content-type \"{content_type}\": a POST to /graphql needs application/json.")
                })
            } else {
                decode_post(request.body)
            }
        }
    }
    .map_err(|message| {
        errors_response(media, 400, &[GraphQLError::request(Code::BadRequest, message)])
    })
}

fn decode_get(query_string: &str) -> Result<GraphQLRequest, String> {
    let mut query = None;
    let mut variables = None;
    let mut operation_name = None;
    for pair in query_string.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = form_decode(name)?;
        let slot = match name.as_str() {
            "query" => &mut query,
            "variables" => &mut variables,
            "operationName" => &mut operation_name,
            _ => continue, // `extensions` and anything else are not ours to refuse
        };
        if slot.is_some() {
            return Err(format!("The parameter \"{name}\" is given more than once."));
        }
        *slot = Some(form_decode(value)?);
    }
    let query = query.ok_or("A GraphQL GET request needs a \"query\" parameter.")?;
    let variables = match variables.as_deref().map(str::trim) {
        None | Some("") | Some("null") => None,
        Some(text) => {
            check_values(text.as_bytes(), "The \"variables\" parameter")?;
            match serde_json::from_str::<Json>(text) {
                Ok(Json::Object(map)) => Some(map),
                Err(e) if too_deep(&e, text.as_bytes()) => {
                    return Err(format!(
                        "The \"variables\" parameter is nested too deeply: JSON arrays and objects may be nested at most {JSON_MAX_DEPTH} levels."
                    ))
                }
                Ok(_) => {
                    return Err("The \"variables\" parameter must be a JSON object.".to_owned())
                }
                Err(e) => return Err(not_json("The \"variables\" parameter", &e)),
            }
        }
    };
    Ok(GraphQLRequest {
        query,
        variables,
        operation_name: operation_name.filter(|n| !n.is_empty()),
    })
}

/// Why JSON `what` did not parse, in serde_json's words (what it expected, with the line and
/// column), so that a client can find a stray comma or a lone UTF-16 surrogate escape.
fn not_json(what: &str, error: &serde_json::Error) -> String {
    format!("{what} is not valid JSON: {error}.")
}

/// The deepest nesting of arrays and objects serde_json accepts (its recursion limit, 128, counts
/// the level that fails); deeper JSON is refused with a syntax error.
pub(crate) const JSON_MAX_DEPTH: usize = super::limits::SERDE_JSON_RECURSION_LIMIT - 1;

/// Whether serde_json refused `text` for its nesting depth. That error has no category of its own
/// (it is a syntax error) and its message is not an interface, so the depth is measured instead;
/// this runs only on text that failed to parse.
fn too_deep(error: &serde_json::Error, text: &[u8]) -> bool {
    error.is_syntax() && nested_deeper_than(text, JSON_MAX_DEPTH)
}

/// Most JSON values (scalars, arrays and objects, counted as [`Shape::values`] counts them) a
/// GraphQL POST's body or a GET's `variables` may hold. The variables become a `serde_json` tree
/// that the request carries through the engine at ~170 bytes a value (2,000,000 zeros in a 4 MB
/// body held 350 MB until the request ended); 65,536 keeps that near 11 MiB, a few times the body
/// limit, and is far more than the variables of a GraphQL request hold. A JSON body for a backend
/// larger than that goes over REST, which forwards its bytes as they are.
pub(crate) const MAX_JSON_VALUES: usize = 65_536;

/// What JSON `text` holds outside its strings.
struct Shape {
    /// How deep its arrays and objects nest.
    depth: usize,
    /// An upper bound on its values: one, plus one per comma and per array or object opened.
    values: usize,
}

fn shape(text: &[u8]) -> Shape {
    let mut shape = Shape {
        depth: 0,
        values: 1,
    };
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                shape.depth = shape.depth.max(depth);
                shape.values += 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' => shape.values += 1,
            _ => {}
        }
    }
    shape
}

/// Whether arrays and objects in JSON `text` (strings skipped) nest deeper than `limit`.
pub(crate) fn nested_deeper_than(text: &[u8], limit: usize) -> bool {
    shape(text).depth > limit
}

/// [`Shape::values`] of JSON `text`.
pub(crate) fn json_values(text: &[u8]) -> usize {
    shape(text).values
}

/// Refuses JSON `text` (`what` names it) holding more than [`MAX_JSON_VALUES`] values, before it is
/// parsed into a tree.
fn check_values(text: &[u8], what: &str) -> Result<(), String> {
    if json_values(text) > MAX_JSON_VALUES {
        return Err(format!(
            "{what} holds too many JSON values: at most {MAX_JSON_VALUES} (arrays, objects and scalars) are accepted."
        ));
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` decoding of one name or value.
fn form_decode(text: &str) -> Result<String, String> {
    let plus_as_space = text.replace('+', " ");
    percent_decode(plus_as_space.as_bytes())
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "The query string is not valid UTF-8 once decoded.".to_owned())
}

fn decode_post(body: &[u8]) -> Result<GraphQLRequest, String> {
    check_values(body, "The body of a GraphQL POST")?;
    let mut object = match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(object)) => object,
        Err(e) if too_deep(&e, body) => {
            return Err(format!(
                "The body of a GraphQL POST is nested too deeply: JSON arrays and objects may be nested at most {JSON_MAX_DEPTH} levels."
            ))
        }
        Ok(_) => return Err("The body of a GraphQL POST must be a JSON object.".to_owned()),
        Err(e) => return Err(not_json("The body of a GraphQL POST", &e)),
    };
    let query = match object.remove("query") {
        Some(Json::String(query)) => query,
        _ => return Err("A GraphQL request needs a \"query\" string.".to_owned()),
    };
    let variables = match object.remove("variables") {
        None | Some(Json::Null) => None,
        Some(Json::Object(map)) => Some(map),
        Some(_) => return Err("\"variables\" must be a JSON object.".to_owned()),
    };
    // An empty name is no name, as in a GET's query string (where an HTML form sends one): no
    // operation can have it, and clients that send "" for an anonymous operation mean none.
    let operation_name = match object.remove("operationName") {
        None | Some(Json::Null) => None,
        Some(Json::String(name)) => Some(name).filter(|n| !n.is_empty()),
        Some(_) => return Err("\"operationName\" must be a string.".to_owned()),
    };
    match object.remove("extensions") {
        None | Some(Json::Null) | Some(Json::Object(_)) => {}
        Some(_) => return Err("\"extensions\" must be a JSON object.".to_owned()),
    }
    Ok(GraphQLRequest {
        query,
        variables,
        operation_name,
    })
}

/// The answer to a request that failed before execution: `{"errors":[...]}` and no `data`.
pub(crate) fn errors_response(
    media: MediaType,
    status: u16,
    errors: &[GraphQLError],
) -> HttpResponse {
    let mut body = br#"{"errors":"#.to_vec();
    serde_json::to_writer(&mut body, errors).expect("errors serialise");
    body.push(b'}');
    HttpResponse {
        status,
        content_type: media.content_type(),
        body,
    }
}

/// The answer to a request error (limits, parse, validation, variables): the status depends on the
/// media type.
pub(crate) fn request_errors(media: MediaType, errors: &[GraphQLError]) -> HttpResponse {
    let status = match media {
        MediaType::Json => 200,
        MediaType::GraphQLResponseJson => 400,
    };
    errors_response(media, status, errors)
}

/// The answer to an executed operation: 200, `errors` (if any) then `data`.
pub(crate) fn executed(media: MediaType, data: &[u8], errors: &[GraphQLError]) -> HttpResponse {
    // Sized exactly, so that a response near its size limit is not copied once more by growth.
    let errors = if errors.is_empty() {
        Vec::new()
    } else {
        serde_json::to_vec(errors).expect("errors serialise")
    };
    let mut body = Vec::with_capacity(data.len() + errors.len() + 20);
    body.push(b'{');
    if !errors.is_empty() {
        body.extend_from_slice(br#""errors":"#);
        body.extend_from_slice(&errors);
        body.push(b',');
    }
    body.extend_from_slice(br#""data":"#);
    body.extend_from_slice(data);
    body.push(b'}');
    HttpResponse {
        status: 200,
        content_type: media.content_type(),
        body,
    }
}
