//! Projection of a backend's JSON answer through a field's selection set.
//!
//! The answer is never turned into a `serde_json::Value` tree. An object is scanned once: the keys
//! that are selected are kept as borrowed raw JSON text (`&RawValue`, no allocation, no re-encoding),
//! the others are skipped (`IgnoredAny`, which still checks their syntax). Each selected value is then
//! copied through byte for byte when nothing below it is selected, or projected the same way one level
//! down. Output is written straight into the response buffer in selection order, so the response keys
//! follow the query, as GraphQL requires, whatever order the backend used.
//!
//! Rules (contract §5): an object keeps the selected keys (aliases applied, a missing key is `null`),
//! a list maps the projection over its elements, a scalar is returned as it is even when a selection
//! set was given, `__typename` inside a service value is `"JSON"`.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::plan::Proj;

/// The `__typename` of every value inside a service's answer.
const JSON_TYPENAME: &str = "JSON";

/// Writes `text` as a JSON string.
pub(crate) fn write_json_str(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}

/// Writes `"key":`.
pub(crate) fn write_key(out: &mut Vec<u8>, key: &str) {
    write_json_str(out, key);
    out.push(b':');
}

/// Writes `value` projected through `selection` (`None`: the whole value) into `out`.
/// `value` must be valid JSON (it is when it comes from `RawValue`); errors mean it was not.
pub fn project(
    value: &RawValue,
    selection: Option<&[Proj]>,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    let text = value.get();
    let Some(selection) = selection else {
        out.extend_from_slice(text.as_bytes());
        return Ok(());
    };
    match text.as_bytes().first() {
        Some(b'{') => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            let slots = SelectedKeys(selection).deserialize(&mut deserializer)?;
            out.push(b'{');
            for (i, (proj, slot)) in selection.iter().zip(slots).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_key(out, &proj.key);
                if proj.name == "__typename" {
                    write_json_str(out, JSON_TYPENAME);
                    continue;
                }
                match slot {
                    Some(raw) => project(raw, proj.children.as_deref(), out)?,
                    None => out.extend_from_slice(b"null"),
                }
            }
            out.push(b'}');
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            out.push(b'[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                project(item, Some(selection), out)?;
            }
            out.push(b']');
        }
        // A scalar (or null) has no keys to select: it is the answer as it is.
        _ => out.extend_from_slice(text.as_bytes()),
    }
    Ok(())
}

/// Deserializes an object into one slot per selected field: the raw value of its key, if present.
struct SelectedKeys<'s>(&'s [Proj]);

impl<'de, 's> DeserializeSeed<'de> for SelectedKeys<'s> {
    type Value = Vec<Option<&'de RawValue>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 's> Visitor<'de> for SelectedKeys<'s> {
    type Value = Vec<Option<&'de RawValue>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut slots = vec![None; self.0.len()];
        while let Some(first) = map.next_key_seed(KeyIndex(self.0))? {
            match first {
                Some(first) => {
                    let raw: &'de RawValue = map.next_value()?;
                    // Several aliases may select the same key: each gets the value.
                    for (proj, slot) in self.0[first..].iter().zip(&mut slots[first..]) {
                        if proj.name == self.0[first].name {
                            *slot = Some(raw);
                        }
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(slots)
    }
}

/// Reads an object key and returns the index of the first selected field with that name, without
/// allocating for keys that need no unescaping.
struct KeyIndex<'s>(&'s [Proj]);

impl<'de, 's> DeserializeSeed<'de> for KeyIndex<'s> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 's> Visitor<'de> for KeyIndex<'s> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|p| p.name == key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proj(key: &str, name: &str, children: Option<Vec<Proj>>) -> Proj {
        Proj {
            key: key.to_owned(),
            name: name.to_owned(),
            children,
        }
    }

    fn run(json: &str, selection: Option<Vec<Proj>>) -> String {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        let mut out = Vec::new();
        project(raw, selection.as_deref(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn no_selection_keeps_the_value_byte_for_byte() {
        assert_eq!(
            run(r#" {"b":1, "a":[1,2]} "#, None),
            r#"{"b":1, "a":[1,2]}"#
        );
    }

    #[test]
    fn object_keeps_selected_keys_in_selection_order_with_aliases_and_nulls() {
        let sel = vec![
            proj("name", "name", None),
            proj("ident", "id", None),
            proj("again", "id", None),
            proj("missing", "nope", None),
            proj("__typename", "__typename", None),
        ];
        assert_eq!(
            run(
                r#"{"id":7,"secret":{"x":[1,2,{"y":"z"}]},"name":"ann"}"#,
                Some(sel)
            ),
            r#"{"name":"ann","ident":7,"again":7,"missing":null,"__typename":"JSON"}"#
        );
    }

    #[test]
    fn lists_map_and_nesting_projects_each_level() {
        let sel = vec![proj(
            "users",
            "users",
            Some(vec![
                proj("id", "id", None),
                proj("tags", "tags", Some(vec![proj("n", "n", None)])),
            ]),
        )];
        assert_eq!(
            run(
                r#"{"users":[{"id":1,"pw":"x","tags":[{"n":"a","m":1}]},{"id":2,"tags":null},3]}"#,
                Some(sel)
            ),
            r#"{"users":[{"id":1,"tags":[{"n":"a"}]},{"id":2,"tags":null},3]}"#
        );
    }

    #[test]
    fn scalar_with_a_selection_is_returned_as_is() {
        assert_eq!(
            run(r#""text""#, Some(vec![proj("a", "a", None)])),
            r#""text""#
        );
        assert_eq!(run("null", Some(vec![proj("a", "a", None)])), "null");
    }

    #[test]
    fn escaped_keys_are_matched_and_values_copied_unchanged() {
        let sel = vec![proj("a", "a\"b", None)];
        assert_eq!(
            run(r#"{"a\"b":"\u00e9\n"}"#, Some(sel)),
            r#"{"a":"\u00e9\n"}"#
        );
    }
}
