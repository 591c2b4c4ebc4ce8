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
//! Fragments are walked from the operations that spread them, once per parent type, and the variables
//! they use are remembered, so a document's cost is linear however often a fragment is spread.

use std::collections::{HashMap, HashSet};

use async_graphql_parser::types::{
    Directive, DocumentOperations, ExecutableDocument, Field, OperationDefinition, OperationType,
    Selection, SelectionSet, Type,
};
use async_graphql_parser::{Pos, Positioned};
use async_graphql_value::{Name, Value};

use super::error::{Code, GraphQLError};
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

/// Validates every operation and fragment of `document` (parsed from `text`); returns all errors,
/// ordered by location.
pub(crate) fn validate(
    text: &str,
    document: &ExecutableDocument,
    schema: &Schema,
) -> Vec<GraphQLError> {
    let mut validator = Validator {
        document,
        schema,
        errors: Vec::new(),
        fragment_uses: HashMap::new(),
        in_progress: HashSet::new(),
        used_fragments: HashSet::new(),
        conflicts_reported: HashSet::new(),
        merges_checked: HashSet::new(),
    };
    let mut operations: Vec<(Option<&Name>, &Positioned<OperationDefinition>)> =
        document.operations.iter().collect();
    operations.sort_by_key(|(_, op)| op.pos);
    for (name, operation) in operations {
        validator.operation(name.map(Name::as_str), operation);
    }
    validator.fragments();
    let mut errors = validator.errors;
    errors.extend(input_fields::check(text));
    errors.sort_by(|a, b| a.locations.first().cmp(&b.locations.first()));
    errors.dedup();
    errors
}

/// A variable used in the document, with the type its position expects (`None` inside `JSON`).
#[derive(Clone)]
struct Use<'d> {
    name: &'d str,
    expected: Option<Type>,
    pos: Pos,
}

struct Validator<'d> {
    document: &'d ExecutableDocument,
    schema: &'d Schema,
    errors: Vec<GraphQLError>,
    /// Variables used by a fragment (and what it spreads), per (fragment, parent type).
    fragment_uses: HashMap<(&'d str, &'static str), Vec<Use<'d>>>,
    in_progress: HashSet<&'d str>,
    used_fragments: HashSet<&'d str>,
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
        self.errors.push(GraphQLError::validation(message, pos));
    }

    fn operation(&mut self, name: Option<&'d str>, operation: &'d Positioned<OperationDefinition>) {
        let op = &operation.node;
        let (root, location) = match op.ty {
            OperationType::Query => (schema::QUERY, "QUERY"),
            OperationType::Mutation => (schema::MUTATION, "MUTATION"),
            OperationType::Subscription => {
                self.error("Subscriptions are not supported.", operation.pos);
                return;
            }
        };
        let mut uses = Vec::new();
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

        let op_name = name
            .map(|n| format!(" by operation \"{n}\""))
            .unwrap_or_default();
        let mut used = HashSet::new();
        for var in &uses {
            used.insert(var.name);
            match declared.get(var.name) {
                None => self.errors.push(
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

    fn selection_set(
        &mut self,
        set: &'d SelectionSet,
        parent: &'static str,
        uses: &mut Vec<Use<'d>>,
    ) {
        self.conflicts(set);
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
                    self.used_fragments.insert(name);
                    let on = definition.node.type_condition.node.on.node.as_str();
                    if !is_known_type(on) {
                        continue; // reported once, at the definition
                    }
                    if on != parent {
                        self.error(
                            format!("Fragment \"{name}\" cannot be spread here as objects of type \"{parent}\" can never be of type \"{on}\"."),
                            selection.pos,
                        );
                        continue;
                    }
                    if let Some(known) = self.fragment_uses.get(&(name, parent)) {
                        uses.extend(known.iter().cloned());
                        continue;
                    }
                    if !self.in_progress.insert(name) {
                        continue; // a cycle, reported by `fragments`
                    }
                    let mut inner = Vec::new();
                    self.selection_set(&definition.node.selection_set.node, parent, &mut inner);
                    self.in_progress.remove(name);
                    uses.extend(inner.iter().cloned());
                    self.fragment_uses.insert((name, parent), inner);
                }
            }
        }
    }

    fn field(
        &mut self,
        field: &'d Positioned<Field>,
        parent: &'static str,
        uses: &mut Vec<Use<'d>>,
    ) {
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
        uses: &mut Vec<Use<'d>>,
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
        uses: &mut Vec<Use<'d>>,
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
        uses: &mut Vec<Use<'d>>,
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
            uses.extend(found.into_iter().map(|u| Use {
                name: u.name,
                expected: u.expected,
                pos: value.pos,
            }));
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
        uses: &mut Vec<Use<'d>>,
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

    /// "Field selections must merge": fields under one response key must be the same field with
    /// the same arguments, and either all select subfields or none do (a projection and the whole
    /// value cannot share a key). The subfields of fields that share a key are merged and checked
    /// the same way, one level down, so conflicts between fragments and nested ones are found too.
    fn conflicts(&mut self, set: &'d SelectionSet) {
        self.conflicts_in(&[set]);
    }

    fn conflicts_in(&mut self, sets: &[&'d SelectionSet]) {
        let mut fields: Vec<&'d Positioned<Field>> = Vec::new();
        let mut seen = HashSet::new();
        for set in sets {
            self.collect_fields(set, &mut fields, &mut seen);
        }
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
            if group.len() < 2 {
                continue;
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
            match conflict {
                Some((field, why)) => {
                    // The same pair is met again when its own selection set is checked.
                    if self.conflicts_reported.insert((first.pos, field.pos)) {
                        self.errors.push(
                            GraphQLError::validation(
                                format!("Fields \"{key}\" conflict because {why}. Use different aliases on the fields to fetch both if this was intentional."),
                                first.pos,
                            )
                            .at(field.pos),
                        );
                    }
                }
                None => {
                    let subsets: Vec<&'d SelectionSet> = group
                        .iter()
                        .map(|f| &f.node.selection_set.node)
                        .filter(|s| !s.items.is_empty())
                        .collect();
                    // Each merge is checked once: that also ends the walk through fragment cycles.
                    let merged = group.iter().map(|f| f.pos).collect();
                    if subsets.len() > 1 && self.merges_checked.insert(merged) {
                        self.conflicts_in(&subsets);
                    }
                }
            }
        }
    }

    fn collect_fields(
        &self,
        set: &'d SelectionSet,
        out: &mut Vec<&'d Positioned<Field>>,
        seen: &mut HashSet<&'d str>,
    ) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => out.push(field),
                Selection::InlineFragment(f) => {
                    self.collect_fields(&f.node.selection_set.node, out, seen)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if seen.insert(name) {
                        if let Some(def) = self.document.fragments.get(name) {
                            self.collect_fields(&def.node.selection_set.node, out, seen);
                        }
                    }
                }
            }
        }
    }

    /// Fragment definitions: known composite type condition, used, no cycles.
    fn fragments(&mut self) {
        let mut names: Vec<(&'d str, Pos)> = self
            .document
            .fragments
            .iter()
            .map(|(name, def)| (name.as_str(), def.pos))
            .collect();
        names.sort_by_key(|(_, pos)| *pos);
        for (name, pos) in &names {
            let definition = &self.document.fragments[*name].node;
            let condition = &definition.type_condition;
            let on = condition.node.on.node.as_str();
            if !is_known_type(on) {
                self.error(format!("Unknown type \"{on}\"."), condition.pos);
            } else if parent_type(on).is_none() {
                self.error(
                    format!("Fragment \"{name}\" cannot condition on non composite type \"{on}\"."),
                    condition.pos,
                );
            }
            let mut uses = Vec::new();
            self.directives(&definition.directives, "FRAGMENT_DEFINITION", &mut uses);
            if !self.used_fragments.contains(name) {
                self.error(format!("Fragment \"{name}\" is never used."), *pos);
            }
        }
        // Cycles: depth-first over spreads, reporting each cycle where it closes.
        let mut visited = HashSet::new();
        for (name, _) in &names {
            let mut path = Vec::new();
            self.cycles(name, &mut visited, &mut path);
        }
    }

    fn cycles(
        &mut self,
        name: &'d str,
        visited: &mut HashSet<&'d str>,
        path: &mut Vec<(&'d str, Pos)>,
    ) {
        if !visited.insert(name) {
            return;
        }
        let mut spreads = Vec::new();
        spreads_in(
            &self.document.fragments[name].node.selection_set.node,
            &mut spreads,
        );
        for (target, pos) in spreads {
            let start = path
                .iter()
                .position(|(n, _)| *n == target)
                .or((target == name).then_some(path.len()));
            if let Some(start) = start {
                let mut cycle: Vec<(&str, Pos)> = path[start..].to_vec();
                cycle.push((name, pos));
                let via: Vec<String> = cycle[1..].iter().map(|(n, _)| format!("\"{n}\"")).collect();
                let message = if via.is_empty() {
                    format!("Cannot spread fragment \"{target}\" within itself.")
                } else {
                    format!(
                        "Cannot spread fragment \"{target}\" within itself via {}.",
                        via.join(", ")
                    )
                };
                let mut error = GraphQLError::validation(message, pos);
                error.locations = cycle.iter().map(|(_, p)| *p).collect();
                self.errors.push(error);
                continue;
            }
            if self.document.fragments.contains_key(target) && !visited.contains(target) {
                path.push((name, pos));
                self.cycles(target, visited, path);
                path.pop();
            }
        }
    }
}

/// The fragment spreads anywhere inside `set`, with positions.
fn spreads_in<'d>(set: &'d SelectionSet, out: &mut Vec<(&'d str, Pos)>) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => spreads_in(&field.node.selection_set.node, out),
            Selection::InlineFragment(f) => spreads_in(&f.node.selection_set.node, out),
            Selection::FragmentSpread(spread) => {
                out.push((spread.node.fragment_name.node.as_str(), selection.pos))
            }
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
