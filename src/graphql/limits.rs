//! Limits that keep one GraphQL request from costing more than a shard can afford.
//!
//! Two passes, both cheaper than the work they protect:
//! - before parsing, the document's size, a lexical token count (the parser allocates a tree node
//!   per token, so a huge document is refused before it builds anything) and the nesting of its
//!   brackets (the parser and the walkers of argument values recurse once per level);
//! - after parsing, before validation, on every operation and fragment with fragments expanded:
//!   selection depth and the number of expanded fields (fragments spread twice per level would
//!   otherwise grow exponentially), which bound what validation and planning do; and on the
//!   selected operation also the number of root fields (each is a backend call) and of aliases
//!   (each can repeat a field). Fragments are measured once each, in an order where every fragment
//!   comes after those it spreads ([`Graph::dependency_order`]), so the pass is linear in the
//!   document even for a "fragment bomb" and never recurses along a chain of spreads.
//!
//! An operation is reported when it exceeds a limit, and so is a fragment that no operation
//! reaches and no other fragment spreads (any other fragment is inside the counts of an operation
//! or fragment that is reported). The root fields
//! are counted as the plan will call them: by response key (selections of one key merge into one
//! call), leaving out meta fields and what `@skip`/`@include` leave out, with the request's
//! variables (or their declared defaults) for the conditions. The other counts are of the document
//! as written, since parsing and validating it costs the same whatever it selects.

use std::collections::{HashMap, HashSet};

use async_graphql_parser::types::{
    ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql_parser::{Pos, Positioned};
use async_graphql_value::ConstValue;
use serde_json::{Map, Value as Json};

use super::error::{Code, GraphQLError};
use super::fragments::{collect_fields, spreads_in, Graph};
use super::validate::MAX_ERRORS;

/// 64 KiB: a hand-written or generated query is a few KiB; graphql-js' full introspection query is ~1.5 KiB.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// 16 levels: deep enough for the standard introspection query (about 14), shallow enough for the stack.
pub const DEFAULT_MAX_DEPTH: usize = 16;
/// 32 root fields: each root field is one backend call, so this bounds the fan-out of one request.
pub const DEFAULT_MAX_ROOT_FIELDS: usize = 32;
/// 64 aliases: aliases are the way to repeat work inside one request; real clients use a handful.
pub const DEFAULT_MAX_ALIASES: usize = 64;
/// 10 000 tokens: about 60 KiB of dense GraphQL, a bound on parser allocations and on fragment expansion.
pub const DEFAULT_MAX_TOKENS: usize = 10_000;
/// 16 MiB: four backend answers of the default 4 MiB answer limit. The gateway sets it to
/// [`RESPONSE_ANSWERS`] times `--max-grpc-message-bytes`, so a response holds a few whole answers
/// (or one projected through a few aliases) while one request's memory stays bounded.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize =
    RESPONSE_ANSWERS * crate::config::DEFAULT_MAX_GRPC_MESSAGE_BYTES;
/// How many backend answers of the largest accepted size one GraphQL response may hold.
pub const RESPONSE_ANSWERS: usize = 4;
/// The default `--max-body-bytes`, which the gateway sets it to, so all the calls of one GraphQL
/// request together forward no more request body than one REST request can.
pub const DEFAULT_MAX_FORWARDED_BODY_BYTES: usize = crate::config::DEFAULT_MAX_BODY_BYTES;
/// serde_json's recursion limit (`remaining_depth` in its deserializer): a parse that would open a
/// 128th level of arrays and objects fails. The gateway parses client JSON with serde_json, so the
/// nesting limits it sets elsewhere are counted from this one.
pub(crate) const SERDE_JSON_RECURSION_LIMIT: usize = 128;
/// Deepest nesting of brackets (`{`, `[` and `(` together) in a document, checked before parsing:
/// the parser, and the walkers of argument values after it, recurse once per level. 128 is
/// serde_json's recursion limit, which already bounds the JSON of variables; selection sets cannot
/// nest more than 64 levels anyway (the parser refuses them).
pub const MAX_NESTING: usize = SERDE_JSON_RECURSION_LIMIT;

/// Bounds on one GraphQL request. Every limit has its own error code so a client can tell which one hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted document (the `query` text), in bytes.
    pub max_document_bytes: usize,
    /// Deepest accepted selection nesting; a root field is depth 1.
    pub max_depth: usize,
    /// Most root fields that call a backend in the executed operation (after fragment expansion,
    /// `@skip`/`@include` and field merging).
    pub max_root_fields: usize,
    /// Most aliases in the executed operation (after fragment expansion).
    pub max_aliases: usize,
    /// Most lexical tokens in the document; also the most fields after fragment expansion.
    pub max_tokens: usize,
    /// Largest response: the fields' values and error messages together. A field whose value
    /// would cross it is an error instead (`RESPONSE_TOO_LARGE`), checked while it is projected.
    pub max_response_bytes: usize,
    /// Most request body bytes all the calls of one request forward together; more is refused
    /// before anything is called (`BODY_TOO_LARGE`).
    pub max_forwarded_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            max_root_fields: DEFAULT_MAX_ROOT_FIELDS,
            max_aliases: DEFAULT_MAX_ALIASES,
            max_tokens: DEFAULT_MAX_TOKENS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_forwarded_body_bytes: DEFAULT_MAX_FORWARDED_BODY_BYTES,
        }
    }
}

/// Checks the document text before it is parsed: size, then tokens and bracket nesting.
pub(crate) fn check_text(document: &str, limits: &Limits) -> Result<(), GraphQLError> {
    if document.len() > limits.max_document_bytes {
        return Err(GraphQLError::request(
            Code::DocumentTooLarge,
            format!(
                "The document is {} bytes, more than the limit of {} bytes.",
                document.len(),
                limits.max_document_bytes
            ),
        ));
    }
    match scan(document, limits.max_tokens) {
        Scan::Within => Ok(()),
        Scan::TooManyTokens(count) => Err(GraphQLError::request(
            Code::TooManyTokens,
            format!(
                "The document has more than {} tokens (counted {} before stopping).",
                limits.max_tokens, count
            ),
        )),
        Scan::TooDeep => Err(GraphQLError::request(
            Code::QueryTooDeep,
            format!("The document nests brackets more than {MAX_NESTING} levels deep."),
        )),
    }
}

/// What [`scan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Within the token limit and [`MAX_NESTING`].
    Within,
    /// More tokens than the limit: the count when the scan stopped.
    TooManyTokens(usize),
    /// Brackets nested deeper than [`MAX_NESTING`].
    TooDeep,
}

/// The token count of [`scan`]: `Some(count)` as soon as it exceeds `max`, `None` within it.
#[cfg(test)]
pub(crate) fn count_tokens(document: &str, max: usize) -> Option<usize> {
    match scan(document, max) {
        Scan::TooManyTokens(count) => Some(count),
        _ => None,
    }
}

/// Counts GraphQL tokens, lexed as the GraphQL spec lexes them so that spacing never changes the
/// count: punctuators (`...` is one), names (`[_A-Za-z][_0-9A-Za-z]*`), numbers (`-?` digits, an
/// optional `.` fraction and `e`/`E` exponent) and strings (block strings included), skipping
/// ignored tokens (white space, commas, comments, BOM); and follows the nesting of brackets. Stops
/// as soon as the count exceeds `max` or the nesting [`MAX_NESTING`]. Malformed input is counted
/// loosely (a stray byte is one token, a stray closing bracket closes nothing): the parser
/// reports it.
pub(crate) fn scan(document: &str, max: usize) -> Scan {
    let bytes = document.as_bytes();
    let digits = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = 0;
    let mut count = 0usize;
    let mut nesting = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            0xEF if bytes[i..].starts_with("\u{feff}".as_bytes()) => {
                i += 3;
                continue;
            }
            b'"' => {
                if bytes[i..].starts_with(b"\"\"\"") {
                    i += 3;
                    while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                        i += if bytes[i..].starts_with(b"\\\"\"\"") {
                            4
                        } else {
                            1
                        };
                    }
                    i += 3;
                } else {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
            }
            b'.' if bytes[i..].starts_with(b"...") => i += 3,
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                i += 1;
                while bytes
                    .get(i)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    i += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                // IntValue / FloatValue: `-`? digits (`.` digits)? ([eE] [+-]? digits)?
                i = digits(i + 1);
                if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i = digits(i + 1);
                }
                if matches!(bytes.get(i), Some(b'e' | b'E')) {
                    let sign = usize::from(matches!(bytes.get(i + 1), Some(b'+' | b'-')));
                    if bytes.get(i + 1 + sign).is_some_and(u8::is_ascii_digit) {
                        i = digits(i + 1 + sign);
                    }
                }
            }
            b'{' | b'[' | b'(' => {
                nesting += 1;
                if nesting > MAX_NESTING {
                    return Scan::TooDeep;
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                nesting = nesting.saturating_sub(1);
                i += 1;
            }
            // Every other punctuator (`! $ & : = @ |`) and any stray byte.
            _ => i += 1,
        }
        count += 1;
        if count > max {
            return Scan::TooManyTokens(count);
        }
    }
    Scan::Within
}

/// Sizes of a definition after fragment expansion.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Deepest field nesting (a root field is 1).
    pub depth: usize,
    /// Backend calls at the root: distinct response keys of the root fields (through fragments),
    /// meta fields (`__typename`, `__schema`, `__type`) and skipped selections left out. Counted
    /// for the selected operation only.
    pub root_fields: usize,
    /// Aliased fields anywhere.
    pub aliases: usize,
    /// Fields anywhere.
    pub fields: usize,
}

/// Checks the limits that apply after parsing, before validation: every limit on the `selected`
/// operation, and depth and expanded fields (which bound what validation does) on every other
/// operation and on every fragment that no operation reaches and no fragment spreads. Every exceeded limit is reported,
/// definitions in document order. `variables` are the request's.
pub(crate) fn check_document(
    document: &ExecutableDocument,
    graph: &Graph<'_>,
    selected: &Positioned<OperationDefinition>,
    variables: Option<&Map<String, Json>>,
    limits: &Limits,
) -> Vec<GraphQLError> {
    let measurer = Measurer::new(document, graph);
    let mut definitions: Vec<(Pos, Vec<GraphQLError>)> = Vec::new();
    let mut roots = Vec::new();
    for (name, operation) in document.operations.iter() {
        let set = &operation.node.selection_set.node;
        roots.extend(spreads_in(set).into_iter().map(|(name, _)| name));
        let mut shape = measurer.set(set);
        let errors = if std::ptr::eq(operation, selected) {
            shape.root_fields = root_calls(document, &operation.node, variables);
            exceeded(shape, limits, "operation", true)
        } else {
            let what = match name {
                Some(name) => format!("operation \"{name}\""),
                None => "operation".to_owned(),
            };
            exceeded(shape, limits, &what, false)
        };
        definitions.push((operation.pos, errors));
    }
    // A fragment that another one spreads is inside that one's counts: only the unused
    // fragments at the top of what spreads them are measured on their own.
    let reached: HashSet<&str> = graph.reachable(roots).into_iter().collect();
    let spread: HashSet<&str> = document
        .fragments
        .keys()
        .flat_map(|name| graph.spreads_of(name))
        .map(|(target, _)| *target)
        .collect();
    for (name, definition) in &document.fragments {
        if !reached.contains(name.as_str()) && !spread.contains(name.as_str()) {
            let shape = measurer.fragment(name);
            let errors = exceeded(shape, limits, &format!("fragment \"{name}\""), false);
            definitions.push((definition.pos, errors));
        }
    }
    definitions.sort_by_key(|(pos, _)| *pos);
    let mut errors: Vec<GraphQLError> = definitions
        .into_iter()
        .flat_map(|(pos, errors)| {
            errors.into_iter().map(move |mut error| {
                error.locations.push(pos);
                error
            })
        })
        .take(MAX_ERRORS + 1)
        .collect();
    // As many as validation reports: a document within the token limit holds thousands of
    // definitions, each able to exceed a limit.
    if errors.len() > MAX_ERRORS {
        errors.truncate(MAX_ERRORS);
        errors.push(GraphQLError::request(
            errors[0].code.clone(),
            format!("More than {MAX_ERRORS} exceeded limits; the first {MAX_ERRORS} are reported."),
        ));
    }
    errors
}

/// The backend calls `operation`'s root makes (see the module docs): the distinct response keys
/// of its root fields, through fragments (each walked once), that are not meta fields and that
/// `@skip`/`@include` keep. A condition that cannot be decided yet (a variable without a value,
/// which coercion will report) keeps the field: the count is an upper bound.
fn root_calls(
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    variables: Option<&Map<String, Json>>,
) -> usize {
    // A variable's value as coercion will give it: the request's, or the declared default.
    let variable = |name: &str| -> Option<bool> {
        match variables.and_then(|v| v.get(name)) {
            Some(value) => value.as_bool(),
            None => operation
                .variable_definitions
                .iter()
                .find(|d| d.node.name.node == name)
                .and_then(|d| d.node.default_value.as_ref())
                .and_then(|v| match v.node {
                    ConstValue::Boolean(b) => Some(b),
                    _ => None,
                }),
        }
    };
    let mut keys = HashSet::new();
    collect_fields(
        document,
        &[&operation.selection_set.node],
        |selection| super::plan::included(selection.node.directives(), &variable).unwrap_or(true),
        |field| {
            if !field.node.name.node.starts_with("__") {
                keys.insert(field.node.response_key().node.as_str());
            }
        },
    );
    keys.len()
}

/// The limits `shape` exceeds; `what` names the definition ("operation", "fragment \"F\""). Root
/// fields and aliases are checked only when `all` (the selected operation).
fn exceeded(shape: Shape, limits: &Limits, what: &str, all: bool) -> Vec<GraphQLError> {
    let mut errors = Vec::new();
    if shape.depth > limits.max_depth {
        errors.push(GraphQLError::request(
            Code::QueryTooDeep,
            format!(
                "The {what} is {} levels deep, more than the limit of {}.",
                shape.depth, limits.max_depth
            ),
        ));
    }
    if all && shape.root_fields > limits.max_root_fields {
        errors.push(GraphQLError::request(
            Code::TooManyRootFields,
            format!(
                "The {what} has {} root fields, more than the limit of {}.",
                shape.root_fields, limits.max_root_fields
            ),
        ));
    }
    if all && shape.aliases > limits.max_aliases {
        errors.push(GraphQLError::request(
            Code::TooManyAliases,
            format!(
                "The {what} uses {} aliases, more than the limit of {}.",
                shape.aliases, limits.max_aliases
            ),
        ));
    }
    if shape.fields > limits.max_tokens {
        // The count saturates (fragments that double at every level): then it is a lower bound.
        let at_least = if shape.fields == usize::MAX {
            "at least "
        } else {
            ""
        };
        errors.push(GraphQLError::request(
            Code::TooManyTokens,
            format!(
                "With fragments expanded the {what} selects {at_least}{} fields, more than the limit of {}.",
                shape.fields, limits.max_tokens
            ),
        ));
    }
    errors
}

/// The shape of every fragment, computed once each in dependency order, and of any selection set
/// from them.
struct Measurer<'a> {
    /// A fragment spread along a cycle (reported by validation) is not in here when its spreader is
    /// measured, and counts as empty.
    fragments: HashMap<&'a str, Shape>,
}

impl<'a> Measurer<'a> {
    fn new(document: &'a ExecutableDocument, graph: &Graph<'a>) -> Self {
        let mut measurer = Measurer {
            fragments: HashMap::with_capacity(document.fragments.len()),
        };
        for &name in graph.dependency_order() {
            let shape = measurer.set(&document.fragments[name].node.selection_set.node);
            measurer.fragments.insert(name, shape);
        }
        measurer
    }

    fn fragment(&self, name: &str) -> Shape {
        self.fragments.get(name).copied().unwrap_or_default()
    }

    /// The shape of `set`, its fragment spreads taken from the memo. Recurses over the syntax of
    /// one definition only, which the parser bounds.
    fn set(&self, set: &'a SelectionSet) -> Shape {
        let mut shape = Shape::default();
        for selection in &set.items {
            let inner = match &selection.node {
                Selection::Field(field) => {
                    let children = self.set(&field.node.selection_set.node);
                    Shape {
                        depth: children.depth.saturating_add(1),
                        root_fields: 0, // counted by `root_calls`
                        aliases: children
                            .aliases
                            .saturating_add(usize::from(field.node.alias.is_some())),
                        fields: children.fields.saturating_add(1),
                    }
                }
                Selection::InlineFragment(fragment) => self.set(&fragment.node.selection_set.node),
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name.node),
            };
            shape.depth = shape.depth.max(inner.depth);
            shape.aliases = shape.aliases.saturating_add(inner.aliases);
            shape.fields = shape.fields.saturating_add(inner.fields);
        }
        shape
    }
}
