//! The dynamic schema: one root field per registered service on both `Query` and `Mutation`, the five
//! optional root-field arguments, the `JSON` scalar and the `HeaderInput` input object.
//!
//! The schema is never built as a general type system: it is this small, fixed shape plus the list of
//! services, so validation, planning and introspection read it from here. Input-value checks (for
//! literals, variable values and defaults) live here too because they are defined by these types.

use async_graphql_parser::types::{BaseType, Type};
use async_graphql_value::{ConstValue, Value};
use serde_json::Value as Json;

/// Names of the types the schema itself defines (besides the introspection types).
pub(crate) const QUERY: &str = "Query";
pub(crate) const MUTATION: &str = "Mutation";
pub(crate) const JSON: &str = "JSON";
pub(crate) const HEADER_INPUT: &str = "HeaderInput";
pub(crate) const STRING: &str = "String";
pub(crate) const BOOLEAN: &str = "Boolean";

/// One argument of a service root field.
pub(crate) struct RootArgument {
    pub name: &'static str,
    pub ty: &'static str,
    pub description: &'static str,
}

/// The arguments every service root field takes, all optional.
pub(crate) const ROOT_ARGUMENTS: [RootArgument; 5] = [
    RootArgument {
        name: "path",
        ty: "String",
        description: "Path below the service, starting with '/'; default '/'.",
    },
    RootArgument {
        name: "method",
        ty: "String",
        description: "HTTP method; default GET in a query, POST in a mutation.",
    },
    RootArgument {
        name: "query",
        ty: "String",
        description: "Raw query string; a leading '?' is dropped.",
    },
    RootArgument {
        name: "body",
        ty: "JSON",
        description: "Request body, sent as JSON.",
    },
    RootArgument {
        name: "headers",
        ty: "[HeaderInput!]",
        description: "Headers added to the forwarded request.",
    },
];

/// The value of an argument left out, as sent to the backend and as introspection reports it.
/// Only `path` and `method` have one; `method`'s depends on the root type.
pub(crate) fn root_argument_default(argument: &str, root: &str) -> Option<&'static str> {
    match (argument, root) {
        ("path", _) => Some("/"),
        ("method", MUTATION) => Some("POST"),
        ("method", _) => Some("GET"),
        _ => None,
    }
}

/// The fields of `HeaderInput`.
pub(crate) const HEADER_INPUT_FIELDS: [(&str, &str); 2] =
    [("name", "String!"), ("value", "String!")];

/// The registered services as root fields.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    /// (field name, service name), sorted by field name.
    fields: Vec<(String, String)>,
}

impl Schema {
    /// Builds the root fields from service names (`user-svc` → `user_svc`, `9lives` → `_9lives`).
    pub fn new(services: Vec<String>) -> Self {
        let mut fields: Vec<(String, String)> = services
            .into_iter()
            .map(|service| (field_name(&service), service))
            .collect();
        fields.sort();
        fields.dedup_by(|a, b| a.0 == b.0);
        Schema { fields }
    }

    /// The service behind a root field name.
    pub fn service(&self, field: &str) -> Option<&str> {
        self.fields
            .binary_search_by(|(name, _)| name.as_str().cmp(field))
            .ok()
            .map(|i| self.fields[i].1.as_str())
    }

    /// (field name, service name) pairs, sorted by field name.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }
}

/// The root field name of a service. A GraphQL name is `[_A-Za-z][_0-9A-Za-z]*`, so `-` becomes `_`
/// and a name that starts with a digit gets a leading `_` (`9lives` → `_9lives`). Service names never
/// contain `_`, so no two services share a field.
pub(crate) fn field_name(service: &str) -> String {
    let prefix = if service.starts_with(|c: char| c.is_ascii_digit()) {
        "_"
    } else {
        ""
    };
    format!("{prefix}{}", service.replace('-', "_"))
}

/// The service a root field name would stand for (the inverse of [`field_name`]), for messages
/// about unknown fields; `None` when no service name maps to `field`.
pub(crate) fn service_name(field: &str) -> Option<String> {
    let unprefixed = match field.strip_prefix('_') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
        Some(_) => return None,
        None => field,
    };
    let service = unprefixed.replace('_', "-");
    crate::names::is_service_name(&service).then_some(service)
}

/// Parses one of the fixed type strings above.
pub(crate) fn ty(text: &str) -> Type {
    Type::new(text).expect("fixed type strings are well-formed")
}

/// Whether `name` is an input type a variable may be declared with.
pub(crate) fn is_input_type(name: &str) -> bool {
    matches!(name, STRING | BOOLEAN | JSON | HEADER_INPUT)
}

/// The innermost named type of `ty`.
pub(crate) fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

/// Whether a variable of type `variable` may be used where `location` is expected
/// (GraphQL "AreTypesCompatible"; `has_default` relaxes a nullable variable into a non-null position).
pub(crate) fn variable_fits(variable: &Type, location: &Type, has_default: bool) -> bool {
    if !location.nullable && variable.nullable {
        if !has_default {
            return false;
        }
        let relaxed = Type {
            base: variable.base.clone(),
            nullable: false,
        };
        return types_compatible(&relaxed, location);
    }
    types_compatible(variable, location)
}

fn types_compatible(variable: &Type, location: &Type) -> bool {
    if !location.nullable {
        if variable.nullable {
            return false;
        }
        return base_compatible(&variable.base, &location.base);
    }
    base_compatible(&variable.base, &location.base)
}

fn base_compatible(variable: &BaseType, location: &BaseType) -> bool {
    match (variable, location) {
        (BaseType::List(v), BaseType::List(l)) => types_compatible(v, l),
        (BaseType::Named(v), BaseType::Named(l)) => v == l,
        _ => false,
    }
}

/// Checks a JSON value (a variable's value or a converted default) against an input type.
/// The error names the offending place relative to the value, e.g. `at [1].name`.
pub(crate) fn check_json(value: &Json, ty: &Type) -> Result<(), String> {
    check_json_at(value, ty, &mut String::new())
}

fn check_json_at(value: &Json, ty: &Type, at: &mut String) -> Result<(), String> {
    if value.is_null() {
        return if ty.nullable {
            Ok(())
        } else {
            Err(format!("expected a non-null {ty}{}", where_(at)))
        };
    }
    match &ty.base {
        BaseType::List(inner) => match value {
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = at.len();
                    at.push_str(&format!("[{i}]"));
                    check_json_at(item, inner, at)?;
                    at.truncate(len);
                }
                Ok(())
            }
            // Input coercion: a single value stands for a list of one.
            single => check_json_at(single, inner, at),
        },
        BaseType::Named(name) => match (name.as_str(), value) {
            (JSON, _) | (STRING, Json::String(_)) | (BOOLEAN, Json::Bool(_)) => Ok(()),
            (HEADER_INPUT, Json::Object(object)) => {
                for key in object.keys() {
                    if !HEADER_INPUT_FIELDS.iter().any(|(name, _)| name == key) {
                        return Err(format!("HeaderInput has no field '{key}'{}", where_(at)));
                    }
                }
                for (field, field_ty) in HEADER_INPUT_FIELDS {
                    let len = at.len();
                    at.push('.');
                    at.push_str(field);
                    check_json_at(
                        object.get(field).unwrap_or(&Json::Null),
                        &self::ty(field_ty),
                        at,
                    )?;
                    at.truncate(len);
                }
                Ok(())
            }
            (name, value) => Err(format!("expected {name}, found {value}{}", where_(at))),
        },
    }
}

fn where_(at: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!(" at {at}")
    }
}

/// A variable used inside a literal, with the type expected where it is used (`None` inside `JSON`,
/// where any variable fits).
pub(crate) struct VariableUse<'a> {
    pub name: &'a str,
    pub expected: Option<Type>,
}

/// Checks a literal argument value against `ty`, collecting the variables it uses.
pub(crate) fn check_literal<'a>(
    value: &'a Value,
    ty: &Type,
    uses: &mut Vec<VariableUse<'a>>,
) -> Result<(), String> {
    if let Value::Variable(name) = value {
        uses.push(VariableUse {
            name: name.as_str(),
            expected: Some(ty.clone()),
        });
        return Ok(());
    }
    if matches!(value, Value::Null) {
        return if ty.nullable {
            Ok(())
        } else {
            Err(format!("expected a non-null {ty}, found null"))
        };
    }
    match &ty.base {
        BaseType::List(inner) => match value {
            Value::List(items) => {
                for item in items {
                    check_literal(item, inner, uses)?;
                }
                Ok(())
            }
            single => check_literal(single, inner, uses),
        },
        BaseType::Named(name) => match (name.as_str(), value) {
            (JSON, value) => {
                collect_variables(value, uses);
                Ok(())
            }
            (STRING, Value::String(_)) | (BOOLEAN, Value::Boolean(_)) => Ok(()),
            (HEADER_INPUT, Value::Object(object)) => {
                for key in object.keys() {
                    if !HEADER_INPUT_FIELDS
                        .iter()
                        .any(|(name, _)| *name == key.as_str())
                    {
                        return Err(format!("HeaderInput has no field '{key}'"));
                    }
                }
                for (field, field_ty) in HEADER_INPUT_FIELDS {
                    match object.get(field) {
                        Some(value) => check_literal(value, &self::ty(field_ty), uses)
                            .map_err(|e| format!("{e} in HeaderInput.{field}"))?,
                        None => {
                            return Err(format!("HeaderInput.{field} of type String! is required"))
                        }
                    }
                }
                Ok(())
            }
            (name, value) => Err(format!("expected {name}, found {value}")),
        },
    }
}

fn collect_variables<'a>(value: &'a Value, uses: &mut Vec<VariableUse<'a>>) {
    match value {
        Value::Variable(name) => uses.push(VariableUse {
            name: name.as_str(),
            expected: None,
        }),
        Value::List(items) => items.iter().for_each(|v| collect_variables(v, uses)),
        Value::Object(object) => object.values().for_each(|v| collect_variables(v, uses)),
        _ => {}
    }
}

/// Converts a constant value to JSON. Enum literals (which `JSON` literals may contain) become strings.
pub(crate) fn const_to_json(value: &ConstValue) -> Json {
    match value {
        ConstValue::Null => Json::Null,
        ConstValue::Number(n) => Json::Number(n.clone()),
        ConstValue::String(s) => Json::String(s.clone()),
        ConstValue::Boolean(b) => Json::Bool(*b),
        ConstValue::Binary(bytes) => Json::Array(bytes.iter().map(|b| Json::from(*b)).collect()),
        ConstValue::Enum(name) => Json::String(name.to_string()),
        ConstValue::List(items) => Json::Array(items.iter().map(const_to_json).collect()),
        ConstValue::Object(object) => Json::Object(
            object
                .iter()
                .map(|(k, v)| (k.to_string(), const_to_json(v)))
                .collect(),
        ),
    }
}

/// Converts a literal to JSON, replacing variables by their coerced values; an unset variable is
/// `None` at the top level and `null` inside lists and objects.
pub(crate) fn value_to_json(
    value: &Value,
    variables: &serde_json::Map<String, Json>,
) -> Option<Json> {
    Some(match value {
        Value::Variable(name) => return variables.get(name.as_str()).cloned(),
        Value::Null => Json::Null,
        Value::Number(n) => Json::Number(n.clone()),
        Value::String(s) => Json::String(s.clone()),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Binary(bytes) => Json::Array(bytes.iter().map(|b| Json::from(*b)).collect()),
        Value::Enum(name) => Json::String(name.to_string()),
        Value::List(items) => Json::Array(
            items
                .iter()
                .map(|v| value_to_json(v, variables).unwrap_or(Json::Null))
                .collect(),
        ),
        Value::Object(object) => Json::Object(
            object
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        value_to_json(v, variables).unwrap_or(Json::Null),
                    )
                })
                .collect(),
        ),
    })
}
