//! Limits that keep one GraphQL request from costing more than a shard can afford.
//!
//! Two passes, both cheaper than the work they protect:
//! - before parsing, the document's size and a lexical token count (the parser allocates a tree node per
//!   token, so a huge document is refused before it builds anything);
//! - after parsing, on the selected operation with fragments expanded: selection depth, number of root
//!   fields (each is a backend call), number of aliases (each can repeat a field), and the number of
//!   expanded fields (fragments spread twice per level would otherwise grow exponentially). The counts are
//!   memoised per fragment, so the pass is linear in the document even for a "fragment bomb".
//!
//! The root fields are counted as the plan will call them: by response key (selections of one key
//! merge into one call), leaving out meta fields and what `@skip`/`@include` leave out, with the
//! request's variables (or their declared defaults) for the conditions. The other counts are of the
//! document as written, since parsing and validating it costs the same whatever it selects.

use std::collections::{HashMap, HashSet};

use async_graphql_parser::types::{
    ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql_parser::Pos;
use async_graphql_value::ConstValue;
use serde_json::{Map, Value as Json};

use super::error::{Code, GraphQLError};

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            max_root_fields: DEFAULT_MAX_ROOT_FIELDS,
            max_aliases: DEFAULT_MAX_ALIASES,
            max_tokens: DEFAULT_MAX_TOKENS,
        }
    }
}

/// Checks the document text before it is parsed: size, then token count.
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
    if let Some(count) = count_tokens(document, limits.max_tokens) {
        return Err(GraphQLError::request(
            Code::TooManyTokens,
            format!(
                "The document has more than {} tokens (counted {} before stopping).",
                limits.max_tokens, count
            ),
        ));
    }
    Ok(())
}

/// Counts GraphQL tokens, lexed as the GraphQL spec lexes them so that spacing never changes the
/// count: punctuators (`...` is one), names (`[_A-Za-z][_0-9A-Za-z]*`), numbers (`-?` digits, an
/// optional `.` fraction and `e`/`E` exponent) and strings (block strings included), skipping
/// ignored tokens (white space, commas, comments, BOM). Returns `Some(count)` as soon as the count
/// exceeds `max`, `None` when the document stays within it. Malformed input is counted loosely (a
/// stray byte is one token): the parser reports it.
pub(crate) fn count_tokens(document: &str, max: usize) -> Option<usize> {
    let bytes = document.as_bytes();
    let digits = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = 0;
    let mut count = 0usize;
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
            // Every other punctuator (`! $ & ( ) : = @ [ ] { | }`) and any stray byte.
            _ => i += 1,
        }
        count += 1;
        if count > max {
            return Some(count);
        }
    }
    None
}

/// Sizes of an operation after fragment expansion.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Deepest field nesting (a root field is 1).
    pub depth: usize,
    /// Backend calls at the root: distinct response keys of the root fields (through fragments),
    /// meta fields (`__typename`, `__schema`, `__type`) and skipped selections left out.
    pub root_fields: usize,
    /// Aliased fields anywhere.
    pub aliases: usize,
    /// Fields anywhere.
    pub fields: usize,
}

/// Measures `operation`, expanding fragments with memoisation; `variables` are the request's.
pub(crate) fn measure(
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    variables: Option<&Map<String, Json>>,
) -> Shape {
    let mut measurer = Measurer {
        document,
        memo: HashMap::new(),
    };
    let mut shape = measurer.set(&operation.selection_set.node);
    shape.root_fields = root_calls(document, operation, variables);
    shape
}

/// The backend calls `operation`'s root makes (see the module docs).
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
    let mut walked = HashSet::new();
    root_keys(
        document,
        &operation.selection_set.node,
        &variable,
        &mut keys,
        &mut walked,
    );
    keys.len()
}

/// Adds the response keys of `set`'s backend-calling fields (through fragments, each walked once)
/// to `keys`. The planner's `collect` walks the same selections, but with a stack of the
/// fragments it is inside, so a fragment spread twice is walked twice; this runs before the
/// expanded-field limit has refused a fragment bomb, so each fragment is walked once.
fn root_keys<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    variable: &dyn Fn(&str) -> Option<bool>,
    keys: &mut HashSet<&'a str>,
    walked: &mut HashSet<&'a str>,
) {
    for selection in &set.items {
        if !super::plan::included(selection.node.directives(), variable) {
            continue;
        }
        match &selection.node {
            Selection::Field(field) => {
                if !field.node.name.node.starts_with("__") {
                    keys.insert(field.node.response_key().node.as_str());
                }
            }
            Selection::InlineFragment(fragment) => root_keys(
                document,
                &fragment.node.selection_set.node,
                variable,
                keys,
                walked,
            ),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if !walked.insert(name) {
                    continue;
                }
                if let Some(definition) = document.fragments.get(name) {
                    root_keys(
                        document,
                        &definition.node.selection_set.node,
                        variable,
                        keys,
                        walked,
                    );
                }
            }
        }
    }
}

/// Checks the post-parse limits; every exceeded limit is reported.
pub(crate) fn check_shape(shape: Shape, limits: &Limits, pos: Pos) -> Vec<GraphQLError> {
    let mut errors = Vec::new();
    if shape.depth > limits.max_depth {
        errors.push(GraphQLError::request(
            Code::QueryTooDeep,
            format!(
                "The operation is {} levels deep, more than the limit of {}.",
                shape.depth, limits.max_depth
            ),
        ));
    }
    if shape.root_fields > limits.max_root_fields {
        errors.push(GraphQLError::request(
            Code::TooManyRootFields,
            format!(
                "The operation has {} root fields, more than the limit of {}.",
                shape.root_fields, limits.max_root_fields
            ),
        ));
    }
    if shape.aliases > limits.max_aliases {
        errors.push(GraphQLError::request(
            Code::TooManyAliases,
            format!(
                "The operation uses {} aliases, more than the limit of {}.",
                shape.aliases, limits.max_aliases
            ),
        ));
    }
    if shape.fields > limits.max_tokens {
        errors.push(GraphQLError::request(
            Code::TooManyTokens,
            format!(
                "With fragments expanded the operation selects {} fields, more than the limit of {}.",
                shape.fields, limits.max_tokens
            ),
        ));
    }
    for error in &mut errors {
        error.locations.push(pos);
    }
    errors
}

struct Measurer<'a> {
    document: &'a ExecutableDocument,
    /// `None` while a fragment is being measured: a cycle (reported by validation) counts as empty.
    memo: HashMap<&'a str, Option<Shape>>,
}

impl<'a> Measurer<'a> {
    fn set(&mut self, set: &'a SelectionSet) -> Shape {
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

    fn fragment(&mut self, name: &'a str) -> Shape {
        if let Some(known) = self.memo.get(name) {
            return known.unwrap_or_default();
        }
        let Some(definition) = self.document.fragments.get(name) else {
            return Shape::default();
        };
        self.memo.insert(name, None);
        let shape = self.set(&definition.node.selection_set.node);
        self.memo.insert(name, Some(shape));
        shape
    }
}
