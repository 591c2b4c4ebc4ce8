//! From a validated operation to a plan: variables coerced, `@skip`/`@include` applied, fragments
//! flattened, fields under one response key merged, and one entry per root field saying what to call
//! (or to answer locally: `__typename`, introspection) and how to project the answer.
//!
//! Execution then needs neither the document nor the variables, and projection walks a plain tree of
//! response keys, which is what makes it cheap. Fragment expansion is bounded beforehand by the
//! limits pass (fields after expansion), so flattening here needs no memoisation; it follows
//! spreads without recursion ([`collect_fields`]) and recurses only per selection level, which the
//! depth limit bounds.

use std::cell::RefCell;
use std::collections::HashMap;

use async_graphql_parser::types::{
    Directive, ExecutableDocument, Field, OperationDefinition, OperationType, SelectionSet,
};
use async_graphql_parser::{Pos, Positioned};
use async_graphql_value::Value;
use serde_json::{Map, Value as Json};

use super::error::{Code, GraphQLError};
use super::fragments::collect_fields;
use super::schema::{self, check_json, const_to_json, value_to_json, Schema, ROOT_ARGUMENTS};

/// Coerced variable values of one request.
pub(crate) type Variables = Map<String, Json>;

/// A selected key inside a value (a projection step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proj {
    /// Response key (alias or name).
    pub key: String,
    /// Field name: the key looked up in the value.
    pub name: String,
    /// Sub-selection; `None` when the field has no selection set (the whole value is kept).
    pub children: Option<Vec<Proj>>,
}

impl Proj {
    /// The sub-selection, empty when there is none.
    pub fn sel(&self) -> &[Proj] {
        self.children.as_deref().unwrap_or(&[])
    }
}

/// What a root field does.
#[derive(Debug, Clone, PartialEq)]
pub enum RootKind {
    /// Call a service with these arguments (argument name → coerced JSON value; unset ones absent).
    Service {
        /// Registered service name.
        service: String,
        /// Arguments given (after variables), in document order.
        arguments: Vec<(String, Json)>,
    },
    /// `__typename` of the root type.
    Typename,
    /// `__schema`.
    Schema,
    /// `__type(name:)`.
    Type(String),
    /// A root field whose arguments, with the request's variables in them, do not fit their types
    /// (a variable that is explicitly `null` where a non-null value is required, which
    /// validation cannot see): the field is an error with this message, and nothing is called.
    BadArgument(String),
}

/// One root field of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct RootField {
    /// Response key.
    pub key: String,
    /// Location of the (first) field in the document, for errors.
    pub pos: Pos,
    /// What to do.
    pub kind: RootKind,
    /// Projection of the answer; `None` for the whole value.
    pub selection: Option<Vec<Proj>>,
}

/// The executable plan of one operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Query (concurrent) or mutation (sequential).
    pub operation: OperationType,
    /// Root fields in response order.
    pub fields: Vec<RootField>,
}

/// Coerces the request's variables against the operation's declarations (GraphQL
/// "CoerceVariableValues"): given values are checked, absent ones take their default, and a missing
/// non-null variable is an error. Every problem is reported.
pub(crate) fn coerce_variables(
    operation: &OperationDefinition,
    given: Option<&Map<String, Json>>,
) -> Result<Variables, Vec<GraphQLError>> {
    let mut coerced = Map::new();
    let mut errors = Vec::new();
    for definition in &operation.variable_definitions {
        let def = &definition.node;
        let name = def.name.node.as_str();
        let ty = &def.var_type.node;
        match given.and_then(|g| g.get(name)) {
            Some(value) => match check_json(value, ty) {
                Ok(()) => {
                    coerced.insert(name.to_owned(), value.clone());
                }
                Err(why) => errors.push(variable_error(
                    format!("Variable \"${name}\" got an invalid value {value}: {why}."),
                    definition.pos,
                )),
            },
            None => match &def.default_value {
                Some(default) => {
                    coerced.insert(name.to_owned(), const_to_json(&default.node));
                }
                None if !ty.nullable => errors.push(variable_error(
                    format!("Variable \"${name}\" of required type \"{ty}\" was not provided."),
                    definition.pos,
                )),
                None => {}
            },
        }
    }
    if errors.is_empty() {
        Ok(coerced)
    } else {
        Err(errors)
    }
}

fn variable_error(message: String, pos: Pos) -> GraphQLError {
    GraphQLError {
        locations: vec![pos],
        ..GraphQLError::request(Code::BadUserInput, message)
    }
}

/// Builds the plan of a validated operation. Fails when a `@skip`/`@include` condition is a
/// variable whose value is `null` (GraphQL: "Argument "if" of non-null type "Boolean!" must not be
/// null."), which makes the whole request fail, since the fields it selects are not known.
pub(crate) fn build(
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    schema: &Schema,
    variables: &Variables,
) -> Result<Plan, Vec<GraphQLError>> {
    let planner = Planner {
        document,
        variables,
        errors: RefCell::new(Vec::new()),
    };
    let groups = planner.group(&[&operation.selection_set.node]);
    let fields = groups
        .into_iter()
        .map(|(key, fields)| {
            let first = &fields[0].node;
            let name = first.name.node.as_str();
            let kind = match name {
                "__typename" => RootKind::Typename,
                "__schema" => RootKind::Schema,
                "__type" => match first
                    .get_argument("name")
                    .and_then(|v| value_to_json(&v.node, variables))
                {
                    Some(Json::String(name)) => RootKind::Type(name),
                    _ => RootKind::BadArgument(
                        "Argument \"name\" of non-null type \"String!\" must not be null."
                            .to_owned(),
                    ),
                },
                service => {
                    service_call(schema.service(service).unwrap_or(service), first, variables)
                }
            };
            RootField {
                key,
                pos: fields[0].pos,
                kind,
                selection: planner.children(&fields),
            }
        })
        .collect();
    let mut errors = planner.errors.into_inner();
    if !errors.is_empty() {
        errors.sort_by(|a, b| a.locations.first().cmp(&b.locations.first()));
        errors.dedup();
        return Err(errors);
    }
    Ok(Plan {
        operation: operation.ty,
        fields,
    })
}

/// The call a service root field makes: its arguments with the variables' values in them, each
/// checked against its type as GraphQL's CoerceArgumentValues does. Validation has checked the
/// literals and that each variable's type fits; what is left is a variable that is explicitly
/// `null` inside a non-null position (`headers: [{name: "x", value: $v}]`, `$v: String = "a"`
/// given `null`), which must be an error rather than a silent default.
fn service_call(service: &str, field: &Field, variables: &Variables) -> RootKind {
    let mut arguments = Vec::with_capacity(field.arguments.len());
    for (name, value) in &field.arguments {
        let Some(resolved) = value_to_json(&value.node, variables) else {
            continue; // an unset nullable variable: the argument is left out
        };
        let declared = ROOT_ARGUMENTS.iter().find(|a| a.name == name.node.as_str());
        if let Some(declared) = declared {
            let ty = schema::ty(declared.ty);
            if check_json(&resolved, &ty).is_err() {
                return RootKind::BadArgument(if resolved.is_null() && !ty.nullable {
                    format!(
                        "Argument \"{}\" of non-null type \"{ty}\" must not be null.",
                        name.node
                    )
                } else {
                    format!(
                        "Argument \"{}\" has invalid value {}.",
                        name.node, value.node
                    )
                });
            }
        }
        arguments.push((name.node.to_string(), resolved));
    }
    RootKind::Service {
        service: service.to_owned(),
        arguments,
    }
}

struct Planner<'d> {
    document: &'d ExecutableDocument,
    variables: &'d Variables,
    /// `@skip`/`@include` conditions that could not be decided.
    errors: RefCell<Vec<GraphQLError>>,
}

impl<'d> Planner<'d> {
    /// The fields of `sets` grouped by response key, in order of first appearance, with fragments
    /// flattened and skipped selections left out (GraphQL "CollectFields").
    fn group(&self, sets: &[&'d SelectionSet]) -> Vec<(String, Vec<&'d Positioned<Field>>)> {
        let mut groups: Vec<(String, Vec<&'d Positioned<Field>>)> = Vec::new();
        let mut index: HashMap<&'d str, usize> = HashMap::new();
        collect_fields(
            self.document,
            sets,
            |selection| self.included(selection.node.directives()),
            |field| {
                let key = field.node.response_key().node.as_str();
                match index.get(key) {
                    Some(&i) => groups[i].1.push(field),
                    None => {
                        index.insert(key, groups.len());
                        groups.push((key.to_owned(), vec![field]));
                    }
                }
            },
        );
        groups
    }

    /// The merged sub-selection of fields sharing a response key; `None` if none has a selection set.
    fn children(&self, fields: &[&'d Positioned<Field>]) -> Option<Vec<Proj>> {
        let sets: Vec<&'d SelectionSet> = fields
            .iter()
            .map(|f| &f.node.selection_set.node)
            .filter(|s| !s.items.is_empty())
            .collect();
        if sets.is_empty() {
            return None;
        }
        Some(
            self.group(&sets)
                .into_iter()
                .map(|(key, fields)| Proj {
                    key,
                    name: fields[0].node.name.node.to_string(),
                    children: self.children(&fields),
                })
                .collect(),
        )
    }

    /// `@skip(if:)` / `@include(if:)`; a condition that is a variable without a boolean value is
    /// an error (and the selection is left out).
    fn included(&self, directives: &[Positioned<Directive>]) -> bool {
        let variable = |name: &str| self.variables.get(name).and_then(Json::as_bool);
        included(directives, &variable).unwrap_or_else(|pos| {
            self.errors.borrow_mut().push(GraphQLError {
                locations: vec![pos],
                ..GraphQLError::request(
                    Code::BadUserInput,
                    "Argument \"if\" of non-null type \"Boolean!\" must not be null.",
                )
            });
            false
        })
    }
}

/// Whether `@skip(if:)` / `@include(if:)` keep a selection; `variable` gives a variable's value.
/// `@skip` is looked at first, then `@include`, as graphql-js does. A condition given by a
/// variable that `variable` has no boolean for (explicitly `null`: validation lets a nullable
/// variable with a default into this non-null position) is `Err` with the condition's position.
/// (Shared with the root-field limit, which applies them before the plan is built.)
pub(crate) fn included(
    directives: &[Positioned<Directive>],
    variable: &dyn Fn(&str) -> Option<bool>,
) -> Result<bool, Pos> {
    let condition = |directive: &str| -> Result<Option<bool>, Pos> {
        let Some(found) = directives.iter().find(|d| d.node.name.node == directive) else {
            return Ok(None);
        };
        Ok(Some(match found.node.get_argument("if") {
            Some(value) => match &value.node {
                Value::Boolean(b) => *b,
                Value::Variable(name) => variable(name.as_str()).ok_or(value.pos)?,
                _ => false, // refused by validation
            },
            None => false, // refused by validation
        }))
    };
    if condition("skip")? == Some(true) {
        return Ok(false);
    }
    Ok(condition("include")? != Some(false))
}
