//! Parsing module.
//!
//! This module's structure mirrors `types`.

use std::collections::{HashMap, hash_map};

use pest::{
    Parser,
    iterators::{Pair, Pairs},
};
use utils::*;

use crate::{
    Error, Result,
    pos::{PositionCalculator, Positioned},
    types::*,
};

mod executable;
#[allow(clippy::redundant_static_lifetimes)]
#[rustfmt::skip]
#[allow(dead_code)]
mod generated;
mod service;
mod utils;

use async_graphql_value::{ConstValue, Name, Number, Value};
pub use executable::parse_query;
use generated::Rule;
pub use service::parse_schema;

struct GraphQLParser;

fn parse_operation_type(
    pair: Pair<Rule>,
    pc: &mut PositionCalculator,
) -> Result<Positioned<OperationType>> {
    debug_assert_eq!(pair.as_rule(), Rule::operation_type);

    let pos = pc.step(&pair);

    Ok(Positioned::new(
        match pair.as_str() {
            "query" => OperationType::Query,
            "mutation" => OperationType::Mutation,
            "subscription" => OperationType::Subscription,
            _ => unreachable!(),
        },
        pos,
    ))
}

fn parse_default_value(
    pair: Pair<Rule>,
    pc: &mut PositionCalculator,
) -> Result<Positioned<ConstValue>> {
    debug_assert_eq!(pair.as_rule(), Rule::default_value);

    parse_const_value(exactly_one(pair.into_inner()), pc)
}

fn parse_type(pair: Pair<Rule>, pc: &mut PositionCalculator) -> Result<Positioned<Type>> {
    debug_assert_eq!(pair.as_rule(), Rule::type_);

    Ok(Positioned::new(
        Type::new(pair.as_str()).unwrap(),
        pc.step(&pair),
    ))
}

fn parse_const_value(
    pair: Pair<Rule>,
    pc: &mut PositionCalculator,
) -> Result<Positioned<ConstValue>> {
    debug_assert_eq!(pair.as_rule(), Rule::const_value);

    let pos = pc.step(&pair);
    let pair = exactly_one(pair.into_inner());

    Ok(Positioned::new(
        match pair.as_rule() {
            Rule::number => ConstValue::Number(parse_number(pair, pc)?.node),
            Rule::string => ConstValue::String(parse_string(pair, pc)?.node),
            Rule::boolean => ConstValue::Boolean(parse_boolean(pair, pc)?.node),
            Rule::null => ConstValue::Null,
            Rule::enum_value => ConstValue::Enum(parse_enum_value(pair, pc)?.node),
            Rule::const_list => ConstValue::List(
                pair.into_inner()
                    .map(|pair| Ok(parse_const_value(pair, pc)?.node))
                    .collect::<Result<_>>()?,
            ),
            Rule::const_object => ConstValue::Object(
                pair.into_inner()
                    .map(|pair| {
                        debug_assert_eq!(pair.as_rule(), Rule::const_object_field);

                        let mut pairs = pair.into_inner();

                        let name = parse_name(pairs.next().unwrap(), pc)?;
                        let value = parse_const_value(pairs.next().unwrap(), pc)?;

                        debug_assert_eq!(pairs.next(), None);

                        Ok((name.node, value.node))
                    })
                    .collect::<Result<_>>()?,
            ),
            _ => unreachable!(),
        },
        pos,
    ))
}
fn parse_value(pair: Pair<Rule>, pc: &mut PositionCalculator) -> Result<Positioned<Value>> {
    debug_assert_eq!(pair.as_rule(), Rule::value);

    let pos = pc.step(&pair);
    let pair = exactly_one(pair.into_inner());

    Ok(Positioned::new(
        match pair.as_rule() {
            Rule::variable => Value::Variable(parse_variable(pair, pc)?.node),
            Rule::number => Value::Number(parse_number(pair, pc)?.node),
            Rule::string => Value::String(parse_string(pair, pc)?.node),
            Rule::boolean => Value::Boolean(parse_boolean(pair, pc)?.node),
            Rule::null => Value::Null,
            Rule::enum_value => Value::Enum(parse_enum_value(pair, pc)?.node),
            Rule::list => Value::List(
                pair.into_inner()
                    .map(|pair| Ok(parse_value(pair, pc)?.node))
                    .collect::<Result<_>>()?,
            ),
            Rule::object => Value::Object(
                pair.into_inner()
                    .map(|pair| {
                        debug_assert_eq!(pair.as_rule(), Rule::object_field);
                        let mut pairs = pair.into_inner();

                        let name = parse_name(pairs.next().unwrap(), pc)?;
                        let value = parse_value(pairs.next().unwrap(), pc)?;

                        debug_assert_eq!(pairs.next(), None);

                        Ok((name.node, value.node))
                    })
                    .collect::<Result<_>>()?,
            ),
            _ => unreachable!(),
        },
        pos,
    ))
}

fn parse_variable(pair: Pair<Rule>, pc: &mut PositionCalculator) -> Result<Positioned<Name>> {
    debug_assert_eq!(pair.as_rule(), Rule::variable);
    parse_name(exactly_one(pair.into_inner()), pc)
}
fn parse_number(pair: Pair<Rule>, pc: &mut PositionCalculator) -> Result<Positioned<Number>> {
    debug_assert_eq!(pair.as_rule(), Rule::number);
    let pos = pc.step(&pair);
    Ok(Positioned::new(
        pair.as_str().parse().map_err(|err| Error::Syntax {
            message: format!("invalid number: {}", err),
            start: pos,
            end: None,
        })?,
        pos,
    ))
}
fn parse_string(pair: Pair<Rule>, pc: &mut PositionCalculator) -> Result<Positioned<String>> {
    debug_assert_eq!(pair.as_rule(), Rule::string);
    let pos = pc.step(&pair);
    let pair = exactly_one(pair.into_inner());
    Ok(Positioned::new(
        match pair.as_rule() {
            Rule::block_string_content => block_string_value(pair.as_str()),
            // switchyard patch: a lone surrogate's escape is a syntax error where it stands.
            Rule::string_content => string_value(pair.as_str()).map_err(|escape| {
                let span = pair.as_span();
                let at = pest::Position::new(span.get_input(), span.start() + escape.start);
                let message = format!(
                    "Invalid Unicode escape sequence: \"{}\"",
                    &pair.as_str()[escape]
                );
                pest::error::Error::<Rule>::new_from_pos(
                    pest::error::ErrorVariant::CustomError { message },
                    at.unwrap(),
                )
            })?,
            _ => unreachable!(),
        },
        pos,
    ))
}
fn parse_boolean(pair: Pair<Rule>, pc: &mut PositionCalculator) -> Result<Positioned<bool>> {
    debug_assert_eq!(pair.as_rule(), Rule::boolean);
    let pos = pc.step(&pair);
    Ok(Positioned::new(
        match pair.as_str() {
            "true" => true,
            "false" => false,
            _ => unreachable!(),
        },
        pos,
    ))
}
fn parse_enum_value(pair: Pair<Rule>, pc: &mut PositionCalculator) -> Result<Positioned<Name>> {
    debug_assert_eq!(pair.as_rule(), Rule::enum_value);
    parse_name(exactly_one(pair.into_inner()), pc)
}

fn parse_opt_const_directives(
    pairs: &mut Pairs<'_, Rule>,
    pc: &mut PositionCalculator,
) -> Result<Vec<Positioned<ConstDirective>>> {
    Ok(parse_if_rule(pairs, Rule::const_directives, |pair| {
        parse_const_directives(pair, pc)
    })?
    .unwrap_or_default())
}
fn parse_opt_directives(
    pairs: &mut Pairs<'_, Rule>,
    pc: &mut PositionCalculator,
) -> Result<Vec<Positioned<Directive>>> {
    Ok(
        parse_if_rule(pairs, Rule::directives, |pair| parse_directives(pair, pc))?
            .unwrap_or_default(),
    )
}
fn parse_const_directives(
    pair: Pair<Rule>,
    pc: &mut PositionCalculator,
) -> Result<Vec<Positioned<ConstDirective>>> {
    debug_assert_eq!(pair.as_rule(), Rule::const_directives);

    pair.into_inner()
        .map(|pair| parse_const_directive(pair, pc))
        .collect()
}
fn parse_directives(
    pair: Pair<Rule>,
    pc: &mut PositionCalculator,
) -> Result<Vec<Positioned<Directive>>> {
    debug_assert_eq!(pair.as_rule(), Rule::directives);

    pair.into_inner()
        .map(|pair| parse_directive(pair, pc))
        .collect()
}

fn parse_const_directive(
    pair: Pair<Rule>,
    pc: &mut PositionCalculator,
) -> Result<Positioned<ConstDirective>> {
    debug_assert_eq!(pair.as_rule(), Rule::const_directive);

    let pos = pc.step(&pair);
    let mut pairs = pair.into_inner();

    let name = parse_name(pairs.next().unwrap(), pc)?;
    let arguments = parse_if_rule(&mut pairs, Rule::const_arguments, |pair| {
        parse_const_arguments(pair, pc)
    })?;

    debug_assert_eq!(pairs.next(), None);

    Ok(Positioned::new(
        ConstDirective {
            name,
            arguments: arguments.unwrap_or_default(),
        },
        pos,
    ))
}
fn parse_directive(pair: Pair<Rule>, pc: &mut PositionCalculator) -> Result<Positioned<Directive>> {
    debug_assert_eq!(pair.as_rule(), Rule::directive);

    let pos = pc.step(&pair);
    let mut pairs = pair.into_inner();

    let name = parse_name(pairs.next().unwrap(), pc)?;
    let arguments = parse_if_rule(&mut pairs, Rule::arguments, |pair| {
        parse_arguments(pair, pc)
    })?;

    debug_assert_eq!(pairs.next(), None);

    Ok(Positioned::new(
        Directive {
            name,
            arguments: arguments.unwrap_or_default(),
        },
        pos,
    ))
}

fn parse_const_arguments(
    pair: Pair<Rule>,
    pc: &mut PositionCalculator,
) -> Result<Vec<(Positioned<Name>, Positioned<ConstValue>)>> {
    debug_assert_eq!(pair.as_rule(), Rule::const_arguments);
    pair.into_inner()
        .map(|pair| {
            debug_assert_eq!(pair.as_rule(), Rule::const_argument);
            let mut pairs = pair.into_inner();

            let name = parse_name(pairs.next().unwrap(), pc)?;
            let value = parse_const_value(pairs.next().unwrap(), pc)?;

            debug_assert_eq!(pairs.next(), None);

            Ok((name, value))
        })
        .collect()
}
fn parse_arguments(
    pair: Pair<Rule>,
    pc: &mut PositionCalculator,
) -> Result<Vec<(Positioned<Name>, Positioned<Value>)>> {
    debug_assert_eq!(pair.as_rule(), Rule::arguments);
    pair.into_inner()
        .map(|pair| {
            debug_assert_eq!(pair.as_rule(), Rule::argument);
            let mut pairs = pair.into_inner();

            let name = parse_name(pairs.next().unwrap(), pc)?;
            let value = parse_value(pairs.next().unwrap(), pc)?;

            debug_assert_eq!(pairs.next(), None);

            Ok((name, value))
        })
        .collect()
}

fn parse_name(pair: Pair<Rule>, pc: &mut PositionCalculator) -> Result<Positioned<Name>> {
    debug_assert_eq!(pair.as_rule(), Rule::name);
    Ok(Positioned::new(Name::new(pair.as_str()), pc.step(&pair)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_number_lookahead_restrictions() {
        GraphQLParser::parse(Rule::const_list, "[123 abc]").unwrap();
        GraphQLParser::parse(Rule::const_list, "[123.0123 abc]").unwrap();
        GraphQLParser::parse(Rule::const_list, "[123.0123e7 abc]").unwrap();
        GraphQLParser::parse(Rule::const_list, "[123.0123e77 abc]").unwrap();

        assert!(GraphQLParser::parse(Rule::const_list, "[123abc]").is_err());
        assert!(GraphQLParser::parse(Rule::const_list, "[123.0123abc]").is_err());
        assert!(GraphQLParser::parse(Rule::const_list, "[123.0123e7abc]").is_err());
        assert!(GraphQLParser::parse(Rule::const_list, "[123.0123e77abc]").is_err());
    }

    // switchyard patch: tests of the lookaheads of spec §2.1.9 and §2.9 (October 2021).

    /// The value of the first argument of the first field of `query`'s operation, and the default
    /// value of its first variable, if it has one.
    fn first_values(query: &str) -> Result<(Value, Option<ConstValue>)> {
        let document = parse_query(query)?;
        let (_, operation) = document.operations.iter().next().unwrap();
        let Selection::Field(field) = &operation.node.selection_set.node.items[0].node else {
            panic!("the first selection of {query:?} is not a field");
        };
        let default = operation
            .node
            .variable_definitions
            .first()
            .and_then(|v| v.node.default_value.clone())
            .map(|v| v.node);
        Ok((field.node.arguments[0].1.node.clone(), default))
    }

    fn enums(names: &[&str]) -> Vec<Value> {
        names.iter().map(|n| Value::Enum(Name::new(n))).collect()
    }

    #[test]
    fn switchyard_true_false_null_are_whole_names() {
        for (list, names) in [
            (
                "[trueish, nullable, false_alarm]",
                &["trueish", "nullable", "false_alarm"][..],
            ),
            ("[truetrue, null_]", &["truetrue", "null_"]),
            (
                "[true1 false_ nullnull TRUE Null]",
                &["true1", "false_", "nullnull", "TRUE", "Null"],
            ),
        ] {
            let (value, default) =
                first_values(&format!("query($v: [E] = {list}) {{ f(a: {list}) }}")).unwrap();
            assert_eq!(value, Value::List(enums(names)), "{list}");
            let constants = enums(names).into_iter().map(|v| v.into_const().unwrap());
            assert_eq!(
                default,
                Some(ConstValue::List(constants.collect())),
                "{list}"
            );
        }
        // Outside a list, and as an object field's value.
        let (value, _) = first_values("{ f(a: trueish) }").unwrap();
        assert_eq!(value, Value::Enum(Name::new("trueish")));
        let (value, _) = first_values("{ f(a: {status: nullable}) }").unwrap();
        let Value::Object(object) = value else {
            panic!("not an object: {value:?}");
        };
        assert_eq!(
            object[&Name::new("status")],
            Value::Enum(Name::new("nullable"))
        );
        // The literals themselves, next to each other or to punctuation.
        let (value, default) =
            first_values("query($v: [E] = [true,false,null]) { f(a: [true false null]) }").unwrap();
        let literals = vec![Value::Boolean(true), Value::Boolean(false), Value::Null];
        assert_eq!(value, Value::List(literals.clone()));
        let constants = literals.into_iter().map(|v| v.into_const().unwrap());
        assert_eq!(default, Some(ConstValue::List(constants.collect())));
        let (value, _) = first_values("{ f(a: {x:true}) }").unwrap();
        let Value::Object(object) = value else {
            panic!("not an object: {value:?}");
        };
        assert_eq!(object[&Name::new("x")], Value::Boolean(true));
    }

    #[test]
    fn switchyard_a_fragment_is_not_named_on() {
        for document in [
            "fragment on on Query { a } { ...on }",
            "fragment on on Query { a } { a }",
            "{ ...on }",
            "{ ...on @include(if: true) }",
        ] {
            let error = parse_query(document).unwrap_err();
            assert!(
                matches!(error, Error::Syntax { .. }),
                "{document}: {error:?}"
            );
        }
        // A longer name that starts with `on` is a fragment's; `on` and a type, an inline fragment.
        let document = parse_query(
            "fragment onX on Query { a } fragment on_ on Query { a }
             { ...onX ...on_ ... on Query { a } ...on Query { b } }",
        )
        .unwrap();
        let mut fragments: Vec<&str> = document.fragments.keys().map(|n| n.as_str()).collect();
        fragments.sort();
        assert_eq!(fragments, ["onX", "on_"]);
        let (_, operation) = document.operations.iter().next().unwrap();
        let selections: Vec<String> = operation
            .node
            .selection_set
            .node
            .items
            .iter()
            .map(|selection| match &selection.node {
                Selection::FragmentSpread(spread) => {
                    format!("...{}", spread.node.fragment_name.node)
                }
                Selection::InlineFragment(inline) => {
                    let condition = inline.node.type_condition.as_ref().unwrap();
                    format!("... on {}", condition.node.on.node)
                }
                Selection::Field(field) => field.node.name.node.to_string(),
            })
            .collect();
        assert_eq!(
            selections,
            ["...onX", "...on_", "... on Query", "... on Query"]
        );
    }

    #[test]
    fn switchyard_a_surrogate_pair_is_one_character() {
        for query in [
            r#"query($v: String = "\ud83d\ude00") { f(a: "\ud83d\ude00") }"#,
            r#"query($v: String = "\uD83D\uDE00") { f(a: "\uD83D\uDE00") }"#,
        ] {
            let (value, default) = first_values(query).unwrap();
            assert_eq!(value, Value::String("\u{1F600}".into()), "{query}");
            assert_eq!(
                default,
                Some(ConstValue::String("\u{1F600}".into())),
                "{query}"
            );
        }
        // A lone surrogate is a syntax error at its escape, in a value and in a default value.
        for (query, escape, column) in [
            (r#"{ f(a: "x\ud83d") }"#, r#""\ud83d""#, 10),
            (r#"{ f(a: "\ude00\ud83d") }"#, r#""\ude00""#, 9),
            (r#"{ f(a: "\ud83d\u0041") }"#, r#""\ud83d""#, 9),
            (r#"query($v: String = "\ud83d") { f }"#, r#""\ud83d""#, 21),
        ] {
            let Err(Error::Syntax { message, start, .. }) = first_values(query) else {
                panic!("{query} is not a syntax error");
            };
            let expected = format!("= Invalid Unicode escape sequence: {escape}");
            assert_eq!(message.lines().last().unwrap().trim(), expected, "{query}");
            assert_eq!(start, crate::Pos { line: 1, column }, "{query}");
        }
    }

    #[test]
    fn switchyard_a_braced_unicode_escape_is_any_scalar_value() {
        let (value, default) =
            first_values(r#"query($v: String = "\u{1F600}") { f(a: "x\u{1f600}\u{41}") }"#)
                .unwrap();
        assert_eq!(value, Value::String("x\u{1F600}A".into()));
        assert_eq!(default, Some(ConstValue::String("\u{1F600}".into())));
        for (query, escape, column) in [
            (r#"{ f(a: "\u{D83D}") }"#, r#""\u{D83D}""#, 9),
            (r#"{ f(a: "x\u{110000}") }"#, r#""\u{110000}""#, 10),
        ] {
            let Err(Error::Syntax { message, start, .. }) = first_values(query) else {
                panic!("{query} is not a syntax error");
            };
            let expected = format!("= Invalid Unicode escape sequence: {escape}");
            assert_eq!(message.lines().last().unwrap().trim(), expected, "{query}");
            assert_eq!(start, crate::Pos { line: 1, column }, "{query}");
        }
        for query in [
            r#"{ f(a: "\u{}") }"#,
            r#"{ f(a: "\u{1F60G}") }"#,
            r#"{ f(a: "\u{1F600") }"#,
            r#"{ f(a: "\u{ 41}") }"#,
        ] {
            let error = first_values(query).unwrap_err();
            assert!(matches!(error, Error::Syntax { .. }), "{query}: {error:?}");
        }
    }

    #[test]
    fn switchyard_a_number_is_not_followed_by_a_digit_or_a_dot() {
        for bad in [
            "01", "00", "-01", "-00", "0123", "01.5", "00e1", "1.", "1.5.3", "1e2.5", "1.5e",
        ] {
            assert!(
                first_values(&format!("{{ f(a: [{bad}]) }}")).is_err(),
                "{bad} is not a number"
            );
            assert!(
                first_values(&format!("query($v: [Int] = [{bad}]) {{ f(a: 1) }}")).is_err(),
                "{bad} is not a number in a default value"
            );
        }
        for (good, number) in [
            ("0", "0"),
            ("-0", "-0"),
            ("10", "10"),
            ("0.5", "0.5"),
            ("-0.0", "-0.0"),
            ("0e1", "0"),
            ("1.5e3", "1500"),
        ] {
            let (value, _) = first_values(&format!("{{ f(a: [{good}]) }}")).unwrap();
            let expected: Number = serde_json::from_str(number).unwrap();
            let Value::List(items) = &value else {
                panic!("not a list: {value:?}");
            };
            match &items[..] {
                [Value::Number(n)] => assert_eq!(n.as_f64(), expected.as_f64(), "{good}"),
                _ => panic!("{good} is not one number: {value:?}"),
            }
        }
    }
}
