//! From a validated operation to a plan: variables coerced, `@skip`/`@include` applied, fragments
//! flattened, fields under one response key merged, and one entry per root field saying what to call
//! (or to answer locally: `__typename`, introspection) and how to project the answer.
//!
//! Execution then needs neither the document nor the variables, and projection walks a plain tree of
//! response keys, which is what makes it cheap. Fragment expansion is bounded beforehand by the
//! limits pass (fields after expansion), so flattening here needs no memoisation; it follows
//! spreads without recursion ([`collect_fields`]) and recurses only per selection level, which the
//! depth limit bounds.

use std::collections::HashMap;

use async_graphql_parser::types::{
    Directive, ExecutableDocument, Field, OperationDefinition, OperationType, SelectionSet,
};
use async_graphql_parser::{Pos, Positioned};
use async_graphql_value::Value;
use serde_json::{Map, Value as Json};

use super::error::{Code, GraphQLError};
use super::fragments::collect_fields;
use super::schema::{check_json, const_to_json, value_to_json, Schema};

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

/// Builds the plan of a validated operation.
pub(crate) fn build(
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    schema: &Schema,
    variables: &Variables,
) -> Plan {
    let planner = Planner {
        document,
        variables,
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
                "__type" => RootKind::Type(
                    first
                        .get_argument("name")
                        .and_then(|v| value_to_json(&v.node, variables))
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                ),
                service => RootKind::Service {
                    service: schema.service(service).unwrap_or(service).to_owned(),
                    arguments: first
                        .arguments
                        .iter()
                        .filter_map(|(name, value)| {
                            value_to_json(&value.node, variables)
                                .map(|v| (name.node.to_string(), v))
                        })
                        .collect(),
                },
            };
            RootField {
                key,
                pos: fields[0].pos,
                kind,
                selection: planner.children(&fields),
            }
        })
        .collect();
    Plan {
        operation: operation.ty,
        fields,
    }
}

struct Planner<'d> {
    document: &'d ExecutableDocument,
    variables: &'d Variables,
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

    /// `@skip(if:)` / `@include(if:)`.
    fn included(&self, directives: &[Positioned<Directive>]) -> bool {
        included(directives, &|name| {
            self.variables.get(name).and_then(Json::as_bool)
        })
    }
}

/// Whether `@skip(if:)` / `@include(if:)` keep a selection; `variable` gives a variable's value.
/// (Shared with the root-field limit, which applies them before the plan is built.)
pub(crate) fn included(
    directives: &[Positioned<Directive>],
    variable: &dyn Fn(&str) -> Option<bool>,
) -> bool {
    directives.iter().all(|directive| {
        let condition = directive
            .node
            .get_argument("if")
            .and_then(|value| match &value.node {
                Value::Variable(name) => variable(name.as_str()),
                Value::Boolean(b) => Some(*b),
                _ => None,
            })
            .unwrap_or(false);
        match directive.node.name.node.as_str() {
            "skip" => !condition,
            "include" => condition,
            _ => true,
        }
    })
}
