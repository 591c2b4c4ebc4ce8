//! Operation selection and validation of a parsed document against the dynamic schema.
//!
//! Validation reports every error it finds, each with locations, because a client fixing a query wants
//! the whole list at once. The rules are the GraphQL ones that can fail against this schema: unknown
//! root fields (an unknown service), unknown or duplicate arguments, argument and default values of
//! the wrong type, undefined, unused or misplaced variables, unknown, unused or inapplicable fragments,
//! fragment cycles, unknown or misplaced directives, conflicting fields under one response key (different
//! fields or arguments, or one with a selection set and one without, at any depth), leaf and object
//! selection rules for introspection fields. Inside a service's `JSON` value any field name is
//! allowed (it is a projection) but fields take no arguments. Input object field uniqueness is
//! checked on the text ([`super::input_fields`]), since the parsed document has lost repeated
//! names. Having more than one anonymous operation (or an anonymous one beside named ones) and
//! duplicate names are refused by the parser already.
//!
//! # Cost
//!
//! Each operation and each fragment definition is validated once, on its own: a fragment against
//! its type condition, as graphql-js does. The walk never follows a spread, so its recursion is the
//! syntax of one definition (which the parser bounds) whatever chain of fragments a document
//! builds. What a fragment contributes to the operations that reach it is its set of variable
//! uses, recorded while it is validated: each variable once per type its positions expect, so a
//! fragment used many times, or reaching many others, costs its distinct uses once per operation
//! (the fragments an operation reaches come from [`Graph`], walked without recursion). Whether
//! fields merge is checked from the top of each operation (and each unused fragment) down, with
//! fragments expanded: each group of same-key fields once, so the work is bounded by the expanded
//! fields the limits pass has counted, and the recursion by the depth it has limited. At most
//! [`MAX_ERRORS`] errors are reported, as graphql-js does.

use std::collections::{HashMap, HashSet};

use async_graphql_parser::types::{
    Directive, DocumentOperations, ExecutableDocument, Field, FragmentDefinition,
    OperationDefinition, OperationType, Selection, SelectionSet, Type,
};
use async_graphql_parser::{Pos, Positioned};
use async_graphql_value::{Name, Value};

use super::error::{Code, GraphQLError};
use super::fragments::{collect_fields, spreads_in, Graph};
use super::input_fields;
use super::introspect::{introspection_field, is_introspection_object, is_known_type};
use super::schema::{
    self, check_json, check_literal, const_to_json, is_input_type, named, variable_fits, Schema,
    ROOT_ARGUMENTS,
};

/// Picks the operation to run (GraphQL "GetOperation").
pub(crate) fn select_operation<'d>(
    document: &'d ExecutableDocument,
    operation_name: Option<&str>,
) -> Result<&'d Positioned<OperationDefinition>, GraphQLError> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), None) => Ok(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(name).ok_or_else(|| unknown_operation(name))
        }
        (DocumentOperations::Single(_), Some(name)) => Err(unknown_operation(name)),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            Ok(operations.values().next().expect("one operation"))
        }
        (DocumentOperations::Multiple(operations), None) => {
            let mut positions: Vec<Pos> = operations.values().map(|o| o.pos).collect();
            positions.sort();
            Err(GraphQLError {
                locations: positions,
                ..GraphQLError::request(
                    Code::ValidationFailed,
                    "Must provide operation name if query contains multiple operations.",
                )
            })
        }
    }
}

fn unknown_operation(name: &str) -> GraphQLError {
    GraphQLError::request(
        Code::ValidationFailed,
        format!("Unknown operation named \"{name}\"."),
    )
}

/// Most errors one validation reports. graphql-js stops at 100 as well ("Too many validation
/// errors, error limit reached. Validation aborted."): a client fixing a query reads the first
/// ones, and a document within the token limit could otherwise produce millions (one per undefined
/// variable per operation that reaches it).
pub(crate) const MAX_ERRORS: usize = 100;

/// Validates every operation and fragment of `document` (parsed from `text`); returns the errors,
/// ordered by location, at most [`MAX_ERRORS`] of them (then followed by one saying so).
pub(crate) fn validate(
    text: &str,
    document: &ExecutableDocument,
    graph: &Graph<'_>,
    schema: &Schema,
) -> Vec<GraphQLError> {
    validate_counting(text, document, graph, schema).0
}

/// Counts of what one validation did, so that tests can bound its cost without timing it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Work {
    /// Variable uses checked against an operation's declarations.
    pub variable_uses: usize,
    /// Fields collected by the merge check.
    pub merged_fields: usize,
}

/// [`validate`], also returning what the validation did.
pub(crate) fn validate_counting<'d>(
    text: &str,
    document: &'d ExecutableDocument,
    graph: &Graph<'d>,
    schema: &Schema,
) -> (Vec<GraphQLError>, Work) {
    let mut validator = Validator {
        document,
        schema,
        errors: Vec::new(),
        truncated: false,
        work: Work::default(),
        fragment_uses: HashMap::new(),
        reached: HashSet::new(),
        conflicts_reported: HashSet::new(),
        merges_checked: HashSet::new(),
    };
    // Fragments first: each records the variables it uses, which operations then check.
    validator.fragment_definitions();
    let mut operations: Vec<(Option<&Name>, &Positioned<OperationDefinition>)> =
        document.operations.iter().collect();
    operations.sort_by_key(|(_, op)| op.pos);
    for (name, operation) in operations {
        validator.operation(name.map(Name::as_str), operation, graph);
    }
    validator.fragment_use(graph);
    if graph.cycles().is_empty() {
        validator.merge_roots(graph);
    }
    let Validator {
        mut errors,
        mut truncated,
        work,
        ..
    } = validator;
    errors.extend(input_fields::check(text));
    errors.sort_by(|a, b| a.locations.first().cmp(&b.locations.first()));
    errors.dedup();
    if errors.len() > MAX_ERRORS {
        errors.truncate(MAX_ERRORS);
        truncated = true;
    }
    if truncated {
        errors.push(GraphQLError::request(
            Code::ValidationFailed,
            "Too many validation errors, error limit reached. Validation aborted.",
        ));
    }
    (errors, work)
}

/// A variable used in the document, with the type its position expects (`None` inside `JSON`).
#[derive(Clone)]
struct Use<'d> {
    name: &'d str,
    expected: Option<Type>,
    pos: Pos,
}

/// The variables one definition uses: each name once per type its positions expect, at the first
/// such position (enough for every error about it). A set, so that what a fragment adds to an
/// operation is bounded by its distinct variables, not by how it is written or spread.
#[derive(Default)]
struct Uses<'d> {
    list: Vec<Use<'d>>,
    by_name: HashMap<&'d str, Vec<usize>>,
}

impl<'d> Uses<'d> {
    fn add(&mut self, new: Use<'d>) {
        let same_name = self.by_name.entry(new.name).or_default();
        if same_name
            .iter()
            .any(|&i| self.list[i].expected == new.expected)
        {
            return;
        }
        same_name.push(self.list.len());
        self.list.push(new);
    }
}

struct Validator<'d> {
    document: &'d ExecutableDocument,
    schema: &'d Schema,
    errors: Vec<GraphQLError>,
    /// More than [`MAX_ERRORS`] errors were found; the rest are not kept.
    truncated: bool,
    work: Work,
    /// The variables each fragment definition uses (in its own selections, not those it spreads).
    fragment_uses: HashMap<&'d str, Uses<'d>>,
    /// Fragments some operation reaches.
    reached: HashSet<&'d str>,
    /// Conflicting field pairs already reported.
    conflicts_reported: HashSet<(Pos, Pos)>,
    /// Groups of same-key fields (by position) whose merged subfields were already checked.
    merges_checked: HashSet<Vec<Pos>>,
}

/// The type a selection set is selected on. Introspection types are static names.
fn parent_type(name: &str) -> Option<&'static str> {
    const NAMES: [&str; 9] = [
        schema::QUERY,
        schema::MUTATION,
        schema::JSON,
        "__Schema",
        "__Type",
        "__Field",
        "__InputValue",
        "__EnumValue",
        "__Directive",
    ];
    NAMES.into_iter().find(|n| *n == name)
}

impl<'d> Validator<'d> {
    fn error(&mut self, message: impl Into<String>, pos: Pos) {
        self.push(GraphQLError::validation(message, pos));
    }

    fn push(&mut self, error: GraphQLError) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(error);
        } else {
            self.truncated = true;
        }
    }

    fn operation(
        &mut self,
        name: Option<&'d str>,
        operation: &'d Positioned<OperationDefinition>,
        graph: &Graph<'d>,
    ) {
        let op = &operation.node;
        let (root, location) = match op.ty {
            OperationType::Query => (schema::QUERY, "QUERY"),
            OperationType::Mutation => (schema::MUTATION, "MUTATION"),
            OperationType::Subscription => {
                self.error("Subscriptions are not supported.", operation.pos);
                return;
            }
        };
        let mut uses = Uses::default();
        self.directives(&op.directives, location, &mut uses);
        let mut declared: HashMap<&str, (&Type, bool)> = HashMap::new();
        for definition in &op.variable_definitions {
            let def = &definition.node;
            let var = def.name.node.as_str();
            if declared.contains_key(var) {
                self.error(
                    format!("There can be only one variable named \"${var}\"."),
                    def.name.pos,
                );
            }
            let ty = &def.var_type.node;
            let base = named(ty);
            let mut type_ok = true;
            if !is_input_type(base) {
                type_ok = false;
                if is_known_type(base) {
                    self.error(
                        format!("Variable \"${var}\" cannot be non-input type \"{ty}\"."),
                        def.var_type.pos,
                    );
                } else {
                    self.error(format!("Unknown type \"{base}\"."), def.var_type.pos);
                }
            }
            if let (true, Some(default)) = (type_ok, &def.default_value) {
                if let Err(why) = check_json(&const_to_json(&default.node), ty) {
                    self.error(
                        format!("Variable \"${var}\" has an invalid default value: {why}."),
                        default.pos,
                    );
                }
            }
            self.directives(&def.directives, "VARIABLE_DEFINITION", &mut uses);
            let has_default = def
                .default_value
                .as_ref()
                .is_some_and(|d| !matches!(d.node, async_graphql_value::ConstValue::Null));
            declared.insert(var, (ty, has_default));
        }
        self.selection_set(&op.selection_set.node, root, &mut uses);

        // The operation's own uses, then those of every fragment it reaches (each once).
        let spreads = spreads_in(&op.selection_set.node);
        let reached = graph.reachable(spreads.iter().map(|(name, _)| *name));
        self.reached.extend(reached.iter().copied());
        let fragment_uses = std::mem::take(&mut self.fragment_uses);
        let all_uses = uses.list.iter().chain(
            reached
                .iter()
                .filter_map(|name| fragment_uses.get(name))
                .flat_map(|uses| &uses.list),
        );
        let op_name = name
            .map(|n| format!(" by operation \"{n}\""))
            .unwrap_or_default();
        let mut used = HashSet::new();
        for var in all_uses {
            if self.truncated {
                break;
            }
            self.work.variable_uses += 1;
            used.insert(var.name);
            match declared.get(var.name) {
                None => self.push(
                    GraphQLError::validation(
                        format!("Variable \"${}\" is not defined{op_name}.", var.name),
                        var.pos,
                    )
                    .at(operation.pos),
                ),
                Some((ty, has_default)) => {
                    if let Some(expected) = &var.expected {
                        if !variable_fits(ty, expected, *has_default) {
                            self.error(
                                format!(
                                    "Variable \"${}\" of type \"{ty}\" used in position expecting type \"{expected}\".",
                                    var.name
                                ),
                                var.pos,
                            );
                        }
                    }
                }
            }
        }
        self.fragment_uses = fragment_uses;
        let in_op = name
            .map(|n| format!(" in operation \"{n}\""))
            .unwrap_or_default();
        for definition in &op.variable_definitions {
            let var = definition.node.name.node.as_str();
            if !used.contains(var) {
                self.error(
                    format!("Variable \"${var}\" is never used{in_op}."),
                    definition.pos,
                );
            }
        }
    }

    fn selection_set(&mut self, set: &'d SelectionSet, parent: &'static str, uses: &mut Uses<'d>) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    self.directives(&field.node.directives, "FIELD", uses);
                    self.field(field, parent, uses);
                }
                Selection::InlineFragment(fragment) => {
                    let fragment = &fragment.node;
                    self.directives(&fragment.directives, "INLINE_FRAGMENT", uses);
                    if let Some(condition) = &fragment.type_condition {
                        let on = condition.node.on.node.as_str();
                        if !is_known_type(on) {
                            self.error(format!("Unknown type \"{on}\"."), condition.pos);
                            continue;
                        }
                        if on != parent {
                            self.error(
                                format!("Fragment cannot be spread here as objects of type \"{parent}\" can never be of type \"{on}\"."),
                                selection.pos,
                            );
                            continue;
                        }
                    }
                    self.selection_set(&fragment.selection_set.node, parent, uses);
                }
                Selection::FragmentSpread(spread) => {
                    let spread = &spread.node;
                    self.directives(&spread.directives, "FRAGMENT_SPREAD", uses);
                    let name = spread.fragment_name.node.as_str();
                    let Some(definition) = self.document.fragments.get(name) else {
                        self.error(
                            format!("Unknown fragment \"{name}\"."),
                            spread.fragment_name.pos,
                        );
                        continue;
                    };
                    let on = definition.node.type_condition.node.on.node.as_str();
                    if is_known_type(on) && on != parent {
                        self.error(
                            format!("Fragment \"{name}\" cannot be spread here as objects of type \"{parent}\" can never be of type \"{on}\"."),
                            selection.pos,
                        );
                    }
                    // The fragment itself is validated once, on its own; what it uses is added
                    // by the operations that reach it.
                }
            }
        }
    }

    fn field(&mut self, field: &'d Positioned<Field>, parent: &'static str, uses: &mut Uses<'d>) {
        let node = &field.node;
        let name = node.name.node.as_str();
        let selection = &node.selection_set;
        let has_selection = !selection.node.items.is_empty();
        if name == "__typename" {
            self.arguments(node, &[], "__typename", uses);
            if has_selection {
                self.leaf_with_selection(name, "String!", selection.pos);
            }
            return;
        }
        match parent {
            schema::QUERY | schema::MUTATION => {
                if parent == schema::QUERY && (name == "__schema" || name == "__type") {
                    let (ty, args): (&'static str, &[(&str, &str)]) = if name == "__schema" {
                        ("__Schema", &[])
                    } else {
                        ("__Type", &[("name", "String!")])
                    };
                    self.arguments(node, args, &format!("{parent}.{name}"), uses);
                    self.object_selection(field, ty, uses);
                } else if name == "__schema" || name == "__type" {
                    self.error(
                        format!("Cannot query field \"{name}\" on type \"{parent}\": introspection is only available on the query root type \"Query\"."),
                        field.pos,
                    );
                } else if self.schema.service(name).is_some() {
                    let args: Vec<(&str, &str)> =
                        ROOT_ARGUMENTS.iter().map(|a| (a.name, a.ty)).collect();
                    self.arguments(node, &args, &format!("{parent}.{name}"), uses);
                    if has_selection {
                        self.selection_set(&selection.node, schema::JSON, uses);
                    }
                } else {
                    let why = match schema::service_name(name) {
                        Some(service) => format!(": no service \"{service}\" is registered"),
                        None => String::new(),
                    };
                    self.error(
                        format!("Cannot query field \"{name}\" on type \"{parent}\"{why}."),
                        field.pos,
                    );
                }
            }
            schema::JSON => {
                for (arg, _) in &node.arguments {
                    self.error(
                        format!("Unknown argument \"{}\" on field \"{name}\": fields selected inside a JSON value take no arguments.", arg.node),
                        arg.pos,
                    );
                }
                if has_selection {
                    self.selection_set(&selection.node, schema::JSON, uses);
                }
            }
            introspection => match introspection_field(introspection, name) {
                None => self.error(
                    format!("Cannot query field \"{name}\" on type \"{introspection}\"."),
                    field.pos,
                ),
                Some((ty, args)) => {
                    self.arguments(node, args, &format!("{introspection}.{name}"), uses);
                    let base = named(&schema::ty(ty)).to_owned();
                    match parent_type(&base).filter(|b| is_introspection_object(b)) {
                        Some(object) => self.object_selection(field, object, uses),
                        None if has_selection => self.leaf_with_selection(name, ty, selection.pos),
                        None => {}
                    }
                }
            },
        }
    }

    fn object_selection(
        &mut self,
        field: &'d Positioned<Field>,
        ty: &'static str,
        uses: &mut Uses<'d>,
    ) {
        let selection = &field.node.selection_set;
        if selection.node.items.is_empty() {
            self.error(
                format!(
                    "Field \"{}\" of type \"{ty}\" must have a selection of subfields.",
                    field.node.name.node
                ),
                field.pos,
            );
        } else {
            self.selection_set(&selection.node, ty, uses);
        }
    }

    fn leaf_with_selection(&mut self, name: &str, ty: &str, pos: Pos) {
        self.error(
            format!(
                "Field \"{name}\" must not have a selection since type \"{ty}\" has no subfields."
            ),
            pos,
        );
    }

    /// Checks a field's arguments against `definitions` (name, type).
    fn arguments(
        &mut self,
        field: &'d Field,
        definitions: &[(&str, &str)],
        field_desc: &str,
        uses: &mut Uses<'d>,
    ) {
        self.check_arguments(
            &field.arguments,
            definitions,
            &format!("field \"{field_desc}\""),
            field.name.pos,
            uses,
        );
    }

    fn check_arguments(
        &mut self,
        arguments: &'d [(Positioned<Name>, Positioned<Value>)],
        definitions: &[(&str, &str)],
        owner: &str,
        owner_pos: Pos,
        uses: &mut Uses<'d>,
    ) {
        let mut seen = HashSet::new();
        for (name, value) in arguments {
            let arg = name.node.as_str();
            if !seen.insert(arg) {
                self.error(
                    format!("There can be only one argument named \"{arg}\"."),
                    name.pos,
                );
                continue;
            }
            let Some((_, ty)) = definitions.iter().find(|(n, _)| *n == arg) else {
                self.error(format!("Unknown argument \"{arg}\" on {owner}."), name.pos);
                continue;
            };
            let ty = schema::ty(ty);
            let mut found = Vec::new();
            if let Err(why) = check_literal(&value.node, &ty, &mut found) {
                self.error(
                    format!(
                        "Argument \"{arg}\" has an invalid value {}: {why}.",
                        value.node
                    ),
                    value.pos,
                );
            }
            for found in found {
                uses.add(Use {
                    name: found.name,
                    expected: found.expected,
                    pos: value.pos,
                });
            }
        }
        for (arg, ty) in definitions {
            if ty.ends_with('!') && !seen.contains(arg) {
                self.error(
                    format!("Argument \"{arg}\" of type \"{ty}\" on {owner} is required, but it was not provided."),
                    owner_pos,
                );
            }
        }
    }

    fn directives(
        &mut self,
        directives: &'d [Positioned<Directive>],
        location: &str,
        uses: &mut Uses<'d>,
    ) {
        let mut seen = HashSet::new();
        for directive in directives {
            let name = directive.node.name.node.as_str();
            if name != "skip" && name != "include" {
                self.error(format!("Unknown directive \"@{name}\"."), directive.pos);
                continue;
            }
            if !matches!(location, "FIELD" | "FRAGMENT_SPREAD" | "INLINE_FRAGMENT") {
                self.error(
                    format!("Directive \"@{name}\" may not be used on {location}."),
                    directive.pos,
                );
                continue;
            }
            if !seen.insert(name) {
                self.error(
                    format!("The directive \"@{name}\" can only be used once at this location."),
                    directive.pos,
                );
            }
            self.check_arguments(
                &directive.node.arguments,
                &[("if", "Boolean!")],
                &format!("directive \"@{name}\""),
                directive.pos,
                uses,
            );
        }
    }

    /// "Field selections must merge", for the selections of `sets` taken together (an operation's
    /// or an unused fragment's own set to begin with): fields under one response key must be the
    /// same field with the same arguments, and either all select subfields or none do (a
    /// projection and the whole value cannot share a key). Then the subfields of each key's fields
    /// are checked together the same way, one level down, so conflicts between fragments and
    /// nested ones are found at any depth.
    ///
    /// Each group of fields is checked once (a fragment reached along two paths brings the same
    /// group twice), and fields are collected with each fragment entered once per level, so the
    /// work is at most the expanded fields the limits pass counted; the recursion is the selection
    /// depth it limited. Documents with fragment cycles are not checked (the cycle is the error).
    fn merges(&mut self, sets: &[&'d SelectionSet]) {
        let mut fields: Vec<&'d Positioned<Field>> = Vec::new();
        collect_fields(self.document, sets, |_| true, |field| fields.push(field));
        self.work.merged_fields += fields.len();
        let mut groups: Vec<(&'d str, Vec<&'d Positioned<Field>>)> = Vec::new();
        let mut index: HashMap<&'d str, usize> = HashMap::new();
        for field in fields {
            let key = field.node.response_key().node.as_str();
            match index.get(key) {
                Some(&i) => groups[i].1.push(field),
                None => {
                    index.insert(key, groups.len());
                    groups.push((key, vec![field]));
                }
            }
        }
        for (key, group) in groups {
            if self.truncated {
                return;
            }
            let first = group[0];
            let conflict = group[1..].iter().find_map(|field| {
                let (a, b) = (&first.node, &field.node);
                let why = if a.name.node != b.name.node {
                    format!(
                        "\"{}\" and \"{}\" are different fields",
                        a.name.node, b.name.node
                    )
                } else if !same_arguments(&a.arguments, &b.arguments) {
                    "they have differing arguments".to_owned()
                } else if has_selection(a) != has_selection(b) {
                    "one selects subfields and the other selects the whole value".to_owned()
                } else {
                    return None;
                };
                Some((*field, why))
            });
            if let Some((field, why)) = conflict {
                // Two operations spreading one fragment meet the same pair.
                if self.conflicts_reported.insert((first.pos, field.pos)) {
                    self.push(
                        GraphQLError::validation(
                            format!("Fields \"{key}\" conflict because {why}. Use different aliases on the fields to fetch both if this was intentional."),
                            first.pos,
                        )
                        .at(field.pos),
                    );
                }
                continue;
            }
            let subsets: Vec<&'d SelectionSet> = group
                .iter()
                .map(|f| &f.node.selection_set.node)
                .filter(|s| !s.items.is_empty())
                .collect();
            if !subsets.is_empty()
                && self
                    .merges_checked
                    .insert(group.iter().map(|f| f.pos).collect())
            {
                self.merges(&subsets);
            }
        }
    }

    /// Every fragment definition, once: a known composite type condition, no directives, the
    /// selections valid on that type (recording the variables they use), no cycles.
    fn fragment_definitions(&mut self) {
        let mut definitions: Vec<(&'d str, &'d Positioned<FragmentDefinition>)> = self
            .document
            .fragments
            .iter()
            .map(|(name, definition)| (name.as_str(), definition))
            .collect();
        definitions.sort_by_key(|(_, definition)| definition.pos);
        for (name, definition) in definitions {
            let definition = &definition.node;
            let condition = &definition.type_condition;
            let on = condition.node.on.node.as_str();
            let mut uses = Uses::default();
            self.directives(&definition.directives, "FRAGMENT_DEFINITION", &mut uses);
            match parent_type(on) {
                _ if !is_known_type(on) => {
                    self.error(format!("Unknown type \"{on}\"."), condition.pos)
                }
                None => self.error(
                    format!("Fragment \"{name}\" cannot condition on non composite type \"{on}\"."),
                    condition.pos,
                ),
                Some(parent) => {
                    self.selection_set(&definition.selection_set.node, parent, &mut uses)
                }
            }
            self.fragment_uses.insert(name, uses);
        }
    }

    /// The merge check from every operation, and from every fragment that no operation reaches
    /// and no fragment spreads (the others are inside one of those).
    fn merge_roots(&mut self, graph: &Graph<'d>) {
        let mut roots: Vec<(Pos, &'d SelectionSet)> = self
            .document
            .operations
            .iter()
            .map(|(_, operation)| (operation.pos, &operation.node.selection_set.node))
            .collect();
        let spread: HashSet<&str> = self
            .document
            .fragments
            .keys()
            .flat_map(|name| graph.spreads_of(name))
            .map(|(target, _)| *target)
            .collect();
        roots.extend(
            self.document
                .fragments
                .iter()
                .filter(|(name, _)| {
                    !self.reached.contains(name.as_str()) && !spread.contains(name.as_str())
                })
                .map(|(_, definition)| (definition.pos, &definition.node.selection_set.node)),
        );
        roots.sort_by_key(|(pos, _)| *pos);
        for (_, set) in roots {
            self.merges(&[set]);
        }
    }

    /// Fragments no operation reaches, and spreads that form cycles.
    fn fragment_use(&mut self, graph: &Graph<'d>) {
        let mut unused: Vec<(&'d str, Pos)> = self
            .document
            .fragments
            .iter()
            .filter(|(name, _)| !self.reached.contains(name.as_str()))
            .map(|(name, definition)| (name.as_str(), definition.pos))
            .collect();
        unused.sort_by_key(|(_, pos)| *pos);
        for (name, pos) in unused {
            self.error(format!("Fragment \"{name}\" is never used."), pos);
        }
        for cycle in graph.cycles() {
            let (target, _) = cycle[0];
            let via: Vec<String> = cycle[1..].iter().map(|(n, _)| format!("\"{n}\"")).collect();
            let message = if via.is_empty() {
                format!("Cannot spread fragment \"{target}\" within itself.")
            } else {
                format!(
                    "Cannot spread fragment \"{target}\" within itself via {}.",
                    via.join(", ")
                )
            };
            let (_, closing) = cycle[cycle.len() - 1];
            let mut error = GraphQLError::validation(message, closing);
            error.locations = cycle.iter().map(|(_, p)| *p).collect();
            self.push(error);
        }
    }
}

fn has_selection(field: &Field) -> bool {
    !field.selection_set.node.items.is_empty()
}

fn same_arguments(
    a: &[(Positioned<Name>, Positioned<Value>)],
    b: &[(Positioned<Name>, Positioned<Value>)],
) -> bool {
    a.len() == b.len()
        && a.iter().all(|(name, value)| {
            b.iter().any(|(other, other_value)| {
                other.node == name.node && other_value.node == value.node
            })
        })
}
