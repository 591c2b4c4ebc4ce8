//! Introspection (`__schema`, `__type(name:)`) of the dynamic schema.
//!
//! The schema is small and fixed apart from the service list, so it is described by a table of
//! introspection fields (used by validation) and a few structs built per request from the services
//! (used here to answer). Answers are written straight into the response buffer in selection order,
//! like the projection of backend values. Every type a field refers to resolves to its full
//! definition, so nested selections such as `fields { type { fields { name } } }` work, and the
//! output is what graphql-js' `getIntrospectionQuery()` + `buildClientSchema` expect.

use async_graphql_parser::types::{BaseType, Type};

use super::plan::Proj;
use super::project::{write_json_str, write_key};
use super::schema::{self, root_argument_default, Schema, HEADER_INPUT_FIELDS, ROOT_ARGUMENTS};

/// One field of an introspection type: (parent type, field, field type, arguments as (name, type)).
type IntrospectionField = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const INCLUDE_DEPRECATED: &[(&str, &str)] = &[("includeDeprecated", "Boolean")];

/// The fields of the standard introspection types (GraphQL spec, October 2021, plus `isOneOf`).
const INTROSPECTION_FIELDS: &[IntrospectionField] = &[
    ("__Schema", "description", "String", &[]),
    ("__Schema", "types", "[__Type!]!", &[]),
    ("__Schema", "queryType", "__Type!", &[]),
    ("__Schema", "mutationType", "__Type", &[]),
    ("__Schema", "subscriptionType", "__Type", &[]),
    ("__Schema", "directives", "[__Directive!]!", &[]),
    ("__Type", "kind", "__TypeKind!", &[]),
    ("__Type", "name", "String", &[]),
    ("__Type", "description", "String", &[]),
    ("__Type", "specifiedByURL", "String", &[]),
    ("__Type", "fields", "[__Field!]", INCLUDE_DEPRECATED),
    ("__Type", "interfaces", "[__Type!]", &[]),
    ("__Type", "possibleTypes", "[__Type!]", &[]),
    ("__Type", "enumValues", "[__EnumValue!]", INCLUDE_DEPRECATED),
    (
        "__Type",
        "inputFields",
        "[__InputValue!]",
        INCLUDE_DEPRECATED,
    ),
    ("__Type", "ofType", "__Type", &[]),
    ("__Type", "isOneOf", "Boolean", &[]),
    ("__Field", "name", "String!", &[]),
    ("__Field", "description", "String", &[]),
    ("__Field", "args", "[__InputValue!]!", INCLUDE_DEPRECATED),
    ("__Field", "type", "__Type!", &[]),
    ("__Field", "isDeprecated", "Boolean!", &[]),
    ("__Field", "deprecationReason", "String", &[]),
    ("__InputValue", "name", "String!", &[]),
    ("__InputValue", "description", "String", &[]),
    ("__InputValue", "type", "__Type!", &[]),
    ("__InputValue", "defaultValue", "String", &[]),
    ("__InputValue", "isDeprecated", "Boolean!", &[]),
    ("__InputValue", "deprecationReason", "String", &[]),
    ("__EnumValue", "name", "String!", &[]),
    ("__EnumValue", "description", "String", &[]),
    ("__EnumValue", "isDeprecated", "Boolean!", &[]),
    ("__EnumValue", "deprecationReason", "String", &[]),
    ("__Directive", "name", "String!", &[]),
    ("__Directive", "description", "String", &[]),
    ("__Directive", "locations", "[__DirectiveLocation!]!", &[]),
    (
        "__Directive",
        "args",
        "[__InputValue!]!",
        INCLUDE_DEPRECATED,
    ),
    ("__Directive", "isRepeatable", "Boolean!", &[]),
];

const TYPE_KINDS: &[&str] = &[
    "SCALAR",
    "OBJECT",
    "INTERFACE",
    "UNION",
    "ENUM",
    "INPUT_OBJECT",
    "LIST",
    "NON_NULL",
];

const DIRECTIVE_LOCATIONS: &[&str] = &[
    "QUERY",
    "MUTATION",
    "SUBSCRIPTION",
    "FIELD",
    "FRAGMENT_DEFINITION",
    "FRAGMENT_SPREAD",
    "INLINE_FRAGMENT",
    "VARIABLE_DEFINITION",
    "SCHEMA",
    "SCALAR",
    "OBJECT",
    "FIELD_DEFINITION",
    "ARGUMENT_DEFINITION",
    "INTERFACE",
    "UNION",
    "ENUM",
    "ENUM_VALUE",
    "INPUT_OBJECT",
    "INPUT_FIELD_DEFINITION",
];

/// The type and arguments of `field` on the introspection object type `parent`.
pub(crate) fn introspection_field(
    parent: &str,
    field: &str,
) -> Option<(&'static str, &'static [(&'static str, &'static str)])> {
    INTROSPECTION_FIELDS
        .iter()
        .find(|(p, f, _, _)| *p == parent && *f == field)
        .map(|(_, _, ty, args)| (*ty, *args))
}

/// Whether `name` is an introspection object type (fields must be selected on it).
pub(crate) fn is_introspection_object(name: &str) -> bool {
    INTROSPECTION_FIELDS.iter().any(|(p, _, _, _)| *p == name)
}

/// Whether `name` is a type of the schema (including introspection types).
pub(crate) fn is_known_type(name: &str) -> bool {
    matches!(
        name,
        schema::QUERY
            | schema::MUTATION
            | schema::JSON
            | schema::HEADER_INPUT
            | schema::STRING
            | schema::BOOLEAN
            | "__TypeKind"
            | "__DirectiveLocation"
    ) || is_introspection_object(name)
}

struct TypeDef {
    kind: &'static str,
    name: &'static str,
    description: Option<&'static str>,
    fields: Option<Vec<FieldDef>>,
    input_fields: Option<Vec<InputDef>>,
    enum_values: Option<&'static [&'static str]>,
}

struct FieldDef {
    name: String,
    description: Option<String>,
    args: Vec<InputDef>,
    ty: Type,
}

struct InputDef {
    name: &'static str,
    description: Option<&'static str>,
    ty: Type,
    /// `defaultValue`: the value in GraphQL syntax.
    default: Option<String>,
}

struct DirectiveDef {
    name: &'static str,
    description: &'static str,
}

/// The schema as introspection sees it, built per request from the registered services.
pub(crate) struct Introspection {
    types: Vec<TypeDef>,
    directives: Vec<DirectiveDef>,
}

impl Introspection {
    /// Describes the schema for `services`.
    pub fn new(services: &Schema) -> Self {
        let service_fields = |root: &str| -> Vec<FieldDef> {
            services
                .fields()
                .iter()
                .map(|(field, service)| FieldDef {
                    name: field.clone(),
                    description: Some(format!("Calls service '{service}'.")),
                    args: ROOT_ARGUMENTS
                        .iter()
                        .map(|a| InputDef {
                            name: a.name,
                            description: Some(a.description),
                            ty: schema::ty(a.ty),
                            // A default is reported in GraphQL syntax: a string is quoted.
                            default: root_argument_default(a.name, root).map(|value| {
                                serde_json::to_string(value).expect("a string serialises")
                            }),
                        })
                        .collect(),
                    ty: schema::ty(schema::JSON),
                })
                .collect()
        };
        let object =
            |name: &'static str, description: &'static str, fields: Vec<FieldDef>| TypeDef {
                kind: "OBJECT",
                name,
                description: Some(description),
                fields: Some(fields),
                input_fields: None,
                enum_values: None,
            };
        let scalar = |name: &'static str, description: &'static str| TypeDef {
            kind: "SCALAR",
            name,
            description: Some(description),
            fields: None,
            input_fields: None,
            enum_values: None,
        };
        let enumeration = |name: &'static str, values: &'static [&'static str]| TypeDef {
            kind: "ENUM",
            name,
            description: None,
            fields: None,
            input_fields: None,
            enum_values: Some(values),
        };
        let introspection_object = |name: &'static str| {
            let fields = INTROSPECTION_FIELDS
                .iter()
                .filter(|(parent, _, _, _)| *parent == name)
                .map(|(_, field, ty, args)| FieldDef {
                    name: (*field).to_owned(),
                    description: None,
                    args: args
                        .iter()
                        .map(|(arg, ty)| InputDef {
                            name: arg,
                            description: None,
                            ty: schema::ty(ty),
                            default: Some("false".to_owned()),
                        })
                        .collect(),
                    ty: schema::ty(ty),
                })
                .collect();
            TypeDef {
                kind: "OBJECT",
                name,
                description: None,
                fields: Some(fields),
                input_fields: None,
                enum_values: None,
            }
        };
        let types = vec![
            object(
                schema::QUERY,
                "Read from services: one field per registered service (GET by default).",
                service_fields(schema::QUERY),
            ),
            object(
                schema::MUTATION,
                "Write to services: one field per registered service (POST by default), run in order.",
                service_fields(schema::MUTATION),
            ),
            scalar(
                schema::JSON,
                "Any JSON value. Fields may be selected on it: the value is projected to those keys.",
            ),
            TypeDef {
                kind: "INPUT_OBJECT",
                name: schema::HEADER_INPUT,
                description: Some("A header added to the forwarded request."),
                fields: None,
                input_fields: Some(
                    HEADER_INPUT_FIELDS
                        .iter()
                        .map(|(name, ty)| InputDef {
                            name,
                            description: None,
                            ty: schema::ty(ty),
                            default: None,
                        })
                        .collect(),
                ),
                enum_values: None,
            },
            scalar(schema::STRING, "UTF-8 text."),
            scalar(schema::BOOLEAN, "true or false."),
            introspection_object("__Schema"),
            introspection_object("__Type"),
            enumeration("__TypeKind", TYPE_KINDS),
            introspection_object("__Field"),
            introspection_object("__InputValue"),
            introspection_object("__EnumValue"),
            introspection_object("__Directive"),
            enumeration("__DirectiveLocation", DIRECTIVE_LOCATIONS),
        ];
        Introspection {
            types,
            directives: vec![
                DirectiveDef {
                    name: "skip",
                    description: "Leaves this field or fragment out when `if` is true.",
                },
                DirectiveDef {
                    name: "include",
                    description: "Keeps this field or fragment only when `if` is true.",
                },
            ],
        }
    }

    fn find(&self, name: &str) -> Option<&TypeDef> {
        self.types.iter().find(|t| t.name == name)
    }

    /// Writes the answer to `__schema { ... }`.
    pub fn write_schema(&self, selection: &[Proj], out: &mut Vec<u8>) {
        write_object(out, selection, "__Schema", |proj, out| {
            match proj.name.as_str() {
                "types" => write_list(out, &self.types, |t, out| {
                    self.write_type(t, proj.sel(), out)
                }),
                "queryType" => self.write_named(schema::QUERY, proj.sel(), out),
                "mutationType" => self.write_named(schema::MUTATION, proj.sel(), out),
                "directives" => write_list(out, &self.directives, |d, out| {
                    self.write_directive(d, proj.sel(), out)
                }),
                _ => out.extend_from_slice(b"null"),
            }
        });
    }

    /// Writes the answer to `__type(name: ...) { ... }` (`null` for an unknown name).
    pub fn write_named(&self, name: &str, selection: &[Proj], out: &mut Vec<u8>) {
        match self.find(name) {
            Some(def) => self.write_type(def, selection, out),
            None => out.extend_from_slice(b"null"),
        }
    }

    fn write_type(&self, def: &TypeDef, selection: &[Proj], out: &mut Vec<u8>) {
        write_object(out, selection, "__Type", |proj, out| {
            match proj.name.as_str() {
                "kind" => write_json_str(out, def.kind),
                "name" => write_json_str(out, def.name),
                "description" => write_opt(out, def.description),
                "fields" => match &def.fields {
                    Some(fields) => {
                        write_list(out, fields, |f, out| self.write_field(f, proj.sel(), out))
                    }
                    None => out.extend_from_slice(b"null"),
                },
                "interfaces" if def.kind == "OBJECT" => out.extend_from_slice(b"[]"),
                "inputFields" => match &def.input_fields {
                    Some(fields) => {
                        write_list(out, fields, |f, out| self.write_input(f, proj.sel(), out))
                    }
                    None => out.extend_from_slice(b"null"),
                },
                "enumValues" => match def.enum_values {
                    Some(values) => write_list(out, values, |v, out| {
                        write_object(out, proj.sel(), "__EnumValue", |p, out| {
                            match p.name.as_str() {
                                "name" => write_json_str(out, v),
                                "isDeprecated" => out.extend_from_slice(b"false"),
                                _ => out.extend_from_slice(b"null"),
                            }
                        })
                    }),
                    None => out.extend_from_slice(b"null"),
                },
                "isOneOf" if def.kind == "INPUT_OBJECT" => out.extend_from_slice(b"false"),
                // specifiedByURL, possibleTypes, ofType of a named type, interfaces of a non-object.
                _ => out.extend_from_slice(b"null"),
            }
        });
    }

    /// Writes a type reference: wrappers as LIST / NON_NULL with `ofType`, named types in full.
    fn write_type_ref(&self, ty: &Type, selection: &[Proj], out: &mut Vec<u8>) {
        if !ty.nullable {
            let inner = Type {
                base: ty.base.clone(),
                nullable: true,
            };
            return self.write_wrapper("NON_NULL", &inner, selection, out);
        }
        match &ty.base {
            BaseType::List(inner) => self.write_wrapper("LIST", inner, selection, out),
            BaseType::Named(name) => self.write_named(name, selection, out),
        }
    }

    fn write_wrapper(&self, kind: &str, of: &Type, selection: &[Proj], out: &mut Vec<u8>) {
        write_object(out, selection, "__Type", |proj, out| {
            match proj.name.as_str() {
                "kind" => write_json_str(out, kind),
                "ofType" => self.write_type_ref(of, proj.sel(), out),
                _ => out.extend_from_slice(b"null"),
            }
        });
    }

    fn write_field(&self, def: &FieldDef, selection: &[Proj], out: &mut Vec<u8>) {
        write_object(out, selection, "__Field", |proj, out| {
            match proj.name.as_str() {
                "name" => write_json_str(out, &def.name),
                "description" => write_opt(out, def.description.as_deref()),
                "args" => write_list(out, &def.args, |a, out| {
                    self.write_input(a, proj.sel(), out)
                }),
                "type" => self.write_type_ref(&def.ty, proj.sel(), out),
                "isDeprecated" => out.extend_from_slice(b"false"),
                _ => out.extend_from_slice(b"null"),
            }
        });
    }

    fn write_input(&self, def: &InputDef, selection: &[Proj], out: &mut Vec<u8>) {
        write_object(out, selection, "__InputValue", |proj, out| {
            match proj.name.as_str() {
                "name" => write_json_str(out, def.name),
                "description" => write_opt(out, def.description),
                "type" => self.write_type_ref(&def.ty, proj.sel(), out),
                "defaultValue" => write_opt(out, def.default.as_deref()),
                "isDeprecated" => out.extend_from_slice(b"false"),
                _ => out.extend_from_slice(b"null"),
            }
        });
    }

    fn write_directive(&self, def: &DirectiveDef, selection: &[Proj], out: &mut Vec<u8>) {
        write_object(out, selection, "__Directive", |proj, out| {
            match proj.name.as_str() {
                "name" => write_json_str(out, def.name),
                "description" => write_json_str(out, def.description),
                "locations" => write_list(
                    out,
                    &["FIELD", "FRAGMENT_SPREAD", "INLINE_FRAGMENT"],
                    |l, out| write_json_str(out, l),
                ),
                "args" => {
                    let arg = InputDef {
                        name: "if",
                        description: Some("The condition."),
                        ty: schema::ty("Boolean!"),
                        default: None,
                    };
                    write_list(out, std::slice::from_ref(&arg), |a, out| {
                        self.write_input(a, proj.sel(), out)
                    })
                }
                "isRepeatable" => out.extend_from_slice(b"false"),
                _ => out.extend_from_slice(b"null"),
            }
        });
    }
}

/// Writes `{key: value, ...}` in selection order; `__typename` is answered here for every object.
fn write_object(
    out: &mut Vec<u8>,
    selection: &[Proj],
    typename: &str,
    mut value: impl FnMut(&Proj, &mut Vec<u8>),
) {
    out.push(b'{');
    for (i, proj) in selection.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, &proj.key);
        if proj.name == "__typename" {
            write_json_str(out, typename);
        } else {
            value(proj, out);
        }
    }
    out.push(b'}');
}

fn write_list<T>(out: &mut Vec<u8>, items: &[T], mut item: impl FnMut(&T, &mut Vec<u8>)) {
    out.push(b'[');
    for (i, value) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(value, out);
    }
    out.push(b']');
}

fn write_opt(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => write_json_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}
