//! Projection of a backend's JSON answer through a field's selection set.
//!
//! The answer is never turned into a `serde_json::Value` tree, nor parsed once per level. It has
//! been checked as JSON once already (`&RawValue`, whose parser is iterative), and is walked here
//! once more as text, byte by byte:
//! - a value with no selection below it is copied through byte for byte, at any depth, without
//!   being looked into;
//! - an array maps the projection over its elements; nested arrays are entered in a loop (a
//!   counter of open brackets), not by recursion, so `[[[[...]]]]` costs one pass;
//! - an object is scanned once for the selected keys, each remembered as the span of its value
//!   (the others are skipped), then written in selection order, so the response keys follow the
//!   query, as GraphQL requires, whatever order the backend used. A selected value with a
//!   selection below it is projected the same way: that is the only recursion, one call per
//!   selection level, which the depth limit bounds.
//!
//! Every byte is therefore read at most once per selection level above it. Arrays and objects that
//! a selection walks into may nest [`MAX_PROJECTED_DEPTH`] levels; deeper is a broken answer.
//!
//! Rules (contract §5): an object keeps the selected keys (aliases applied, a missing key is `null`),
//! a list maps the projection over its elements, a scalar is returned as it is even when a selection
//! set was given, `__typename` inside a service value is `"JSON"`.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::value::RawValue;

use super::plan::Proj;

/// Deepest nesting of arrays and objects a projection walks into: serde_json's own recursion
/// limit, which the gateway holds the JSON a client sends to as well. An answer that a selection
/// walks deeper than that is treated as broken (the field is a `BAD_BACKEND_RESPONSE` error); a
/// value returned whole, without a selection, is copied at any depth.
pub const MAX_PROJECTED_DEPTH: usize = super::limits::SERDE_JSON_RECURSION_LIMIT;

/// Longest selection whose fields are found by comparing each key of an object with each of them.
/// A longer one gets an index (name to positions) built once per projection: with a selection of
/// thousands of fields (within the limits) and an answer of hundreds of thousands of keys, the
/// comparisons took seconds of a shard's time.
const SCANNED_SELECTION: usize = 16;

/// Why a projection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectError {
    /// The selection walks into arrays and objects nested deeper than [`MAX_PROJECTED_DEPTH`].
    TooDeep,
    /// The output would be longer than the limit it was given.
    TooLarge,
    /// The text is not JSON. A `RawValue` always is; this keeps a walker bug a field error rather
    /// than a panic.
    Malformed,
}

/// Writes `text` as a JSON string.
pub(crate) fn write_json_str(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}

/// Writes `"key":`.
pub(crate) fn write_key(out: &mut Vec<u8>, key: &str) {
    write_json_str(out, key);
    out.push(b':');
}

/// Writes `value` projected through `selection` (`None`: the whole value) into `out`, which may
/// not grow beyond `max_len` bytes: the projection stops with [`ProjectError::TooLarge`] as soon
/// as it would (having written at most a key and some punctuation more), and what it wrote is to
/// be thrown away.
pub fn project(
    value: &RawValue,
    selection: Option<&[Proj]>,
    out: &mut Vec<u8>,
    max_len: usize,
) -> Result<(), ProjectError> {
    let text = value.get().as_bytes();
    let mut projector = Projector {
        text,
        out,
        max_len,
        indexes: HashMap::new(),
    };
    match selection {
        None => projector.copy(0, text.len()),
        Some(selection) => projector.value(0, selection, 0).map(drop),
    }
}

/// One projection: the answer's text, the output and its size limit.
struct Projector<'a, 's> {
    text: &'a [u8],
    out: &'a mut Vec<u8>,
    max_len: usize,
    /// For each selection longer than [`SCANNED_SELECTION`] (by address), the positions of each
    /// field name in it; built when the selection first meets an object.
    indexes: HashMap<*const Proj, HashMap<&'s str, Vec<usize>>>,
}

impl<'s> Projector<'_, 's> {
    /// Copies `text[start..end]` to the output, if it fits.
    fn copy(&mut self, start: usize, end: usize) -> Result<(), ProjectError> {
        if self.out.len() + (end - start) > self.max_len {
            return Err(ProjectError::TooLarge);
        }
        self.out.extend_from_slice(&self.text[start..end]);
        Ok(())
    }

    /// Fails once the output has grown past its limit (keys and punctuation are written first
    /// and checked here, so it is never passed by more than one key).
    fn check_len(&self) -> Result<(), ProjectError> {
        if self.out.len() > self.max_len {
            Err(ProjectError::TooLarge)
        } else {
            Ok(())
        }
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.text.get(i).copied()
    }

    /// The first byte at or after `i` that is not JSON white space.
    fn skip_ws(&self, mut i: usize) -> usize {
        while matches!(self.at(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            i += 1;
        }
        i
    }

    /// The end of the string starting (with its `"`) at `i`.
    fn skip_string(&self, i: usize) -> Result<usize, ProjectError> {
        let mut j = i + 1;
        loop {
            match self.at(j) {
                Some(b'"') => return Ok(j + 1),
                Some(b'\\') => j += 2,
                Some(_) => j += 1,
                None => return Err(ProjectError::Malformed),
            }
        }
    }

    /// The end of the value starting at `i`, found without recursion.
    fn skip_value(&self, i: usize) -> Result<usize, ProjectError> {
        match self.at(i) {
            Some(b'"') => self.skip_string(i),
            Some(b'[' | b'{') => {
                let mut open = 0usize;
                let mut j = i;
                loop {
                    match self.at(j) {
                        Some(b'"') => {
                            j = self.skip_string(j)?;
                            continue;
                        }
                        Some(b'[' | b'{') => open += 1,
                        Some(b']' | b'}') => {
                            open -= 1;
                            if open == 0 {
                                return Ok(j + 1);
                            }
                        }
                        Some(_) => {}
                        None => return Err(ProjectError::Malformed),
                    }
                    j += 1;
                }
            }
            Some(_) => {
                let mut j = i;
                while !matches!(
                    self.at(j),
                    None | Some(b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t')
                ) {
                    j += 1;
                }
                Ok(j)
            }
            None => Err(ProjectError::Malformed),
        }
    }

    /// Writes the value at `i` projected through `selection` and returns its end; `depth` arrays
    /// and objects are open around it. Arrays (however nested) are walked in this loop; objects
    /// go to [`Self::object`].
    fn value(
        &mut self,
        mut i: usize,
        selection: &'s [Proj],
        depth: usize,
    ) -> Result<usize, ProjectError> {
        // Arrays opened by this call, innermost last: none here needs more than a count.
        let mut open = 0usize;
        loop {
            // At the start of a value (the whole one, or an element of the innermost array).
            self.check_len()?;
            i = self.skip_ws(i);
            match self.at(i) {
                Some(b'[') => {
                    if depth + open + 1 > MAX_PROJECTED_DEPTH {
                        return Err(ProjectError::TooDeep);
                    }
                    self.out.push(b'[');
                    i = self.skip_ws(i + 1);
                    if self.at(i) == Some(b']') {
                        self.out.push(b']');
                        i += 1;
                    } else {
                        open += 1;
                        continue;
                    }
                }
                Some(b'{') => {
                    if depth + open + 1 > MAX_PROJECTED_DEPTH {
                        return Err(ProjectError::TooDeep);
                    }
                    i = self.object(i, selection, depth + open + 1)?;
                }
                // A scalar (or null) has no keys to select: it is the answer as it is.
                Some(_) => {
                    let end = self.skip_value(i)?;
                    self.copy(i, end)?;
                    i = end;
                }
                None => return Err(ProjectError::Malformed),
            }
            // After a value: the next element, or close arrays until one has more.
            loop {
                if open == 0 {
                    return Ok(i);
                }
                i = self.skip_ws(i);
                match self.at(i) {
                    Some(b',') => {
                        self.out.push(b',');
                        i += 1;
                        break;
                    }
                    Some(b']') => {
                        self.out.push(b']');
                        open -= 1;
                        i += 1;
                    }
                    _ => return Err(ProjectError::Malformed),
                }
            }
        }
    }

    /// Writes the object at `i` (its `{`) with the selected keys, in selection order, and returns
    /// its end; the object is the `depth`th open array or object.
    fn object(
        &mut self,
        i: usize,
        selection: &'s [Proj],
        depth: usize,
    ) -> Result<usize, ProjectError> {
        // The span of each selected key's value (several aliases may select one key; a key the
        // object repeats keeps its last value, as a JSON parser would).
        let mut slots: Vec<Option<(usize, usize)>> = vec![None; selection.len()];
        let mut i = self.skip_ws(i + 1);
        if self.at(i) == Some(b'}') {
            i += 1;
        } else {
            loop {
                let key_end = self.skip_string(i)?;
                let key = unescaped(&self.text[i..key_end])?;
                i = self.skip_ws(key_end);
                if self.at(i) != Some(b':') {
                    return Err(ProjectError::Malformed);
                }
                let start = self.skip_ws(i + 1);
                let end = self.skip_value(start)?;
                self.select(selection, &key, &mut slots, (start, end));
                i = self.skip_ws(end);
                match self.at(i) {
                    Some(b',') => i = self.skip_ws(i + 1),
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    _ => return Err(ProjectError::Malformed),
                }
            }
        }
        self.out.push(b'{');
        for (n, (proj, slot)) in selection.iter().zip(slots).enumerate() {
            if n > 0 {
                self.out.push(b',');
            }
            write_key(self.out, &proj.key);
            self.check_len()?;
            if proj.name == "__typename" {
                // Every value inside a service's answer has the schema's `JSON` scalar type.
                write_json_str(self.out, super::schema::JSON);
                continue;
            }
            match (slot, proj.children.as_deref()) {
                (None, _) => self.out.extend_from_slice(b"null"),
                (Some((start, end)), None) => self.copy(start, end)?,
                (Some((start, _)), Some(children)) => {
                    self.value(start, children, depth)?;
                }
            }
        }
        self.out.push(b'}');
        self.check_len()?;
        Ok(i)
    }
}

impl<'s> Projector<'_, 's> {
    /// Gives `span` to the slot of every field of `selection` named `key`.
    fn select(
        &mut self,
        selection: &'s [Proj],
        key: &str,
        slots: &mut [Option<(usize, usize)>],
        span: (usize, usize),
    ) {
        if selection.len() <= SCANNED_SELECTION {
            for (proj, slot) in selection.iter().zip(slots) {
                if proj.name == key {
                    *slot = Some(span);
                }
            }
            return;
        }
        let index = self.indexes.entry(selection.as_ptr()).or_insert_with(|| {
            let mut index: HashMap<&'s str, Vec<usize>> = HashMap::new();
            for (n, proj) in selection.iter().enumerate() {
                index.entry(proj.name.as_str()).or_default().push(n);
            }
            index
        });
        for &n in index.get(key).map(Vec::as_slice).unwrap_or_default() {
            slots[n] = Some(span);
        }
    }
}

/// The text of a JSON string (with its quotes), unescaped; borrowed when it has no escapes.
fn unescaped(quoted: &[u8]) -> Result<Cow<'_, str>, ProjectError> {
    let inner = &quoted[1..quoted.len() - 1];
    if !inner.contains(&b'\\') {
        return std::str::from_utf8(inner)
            .map(Cow::Borrowed)
            .map_err(|_| ProjectError::Malformed);
    }
    serde_json::from_slice::<String>(quoted)
        .map(Cow::Owned)
        .map_err(|_| ProjectError::Malformed)
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
        project(raw, selection.as_deref(), &mut out, usize::MAX).unwrap();
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
    fn a_long_selection_finds_its_keys_by_index_as_a_short_one_by_scanning() {
        // Over SCANNED_SELECTION fields: aliases of one key, missing keys, nested selections and
        // a list of objects that all use the same index.
        let mut sel: Vec<Proj> = (0..40)
            .map(|n| proj(&format!("a{n}"), &format!("k{}", n % 25), None))
            .collect();
        sel.push(proj("inner", "o", Some(vec![proj("x", "x", None)])));
        assert!(sel.len() > SCANNED_SELECTION);
        let object: String = (0..20)
            .map(|n| format!(r#""k{n}":{n},"#))
            .chain(std::iter::once(r#""o":{"x":"y","z":1}"#.to_string()))
            .collect();
        let expected_one: String = (0..40)
            .map(|n| match n % 25 {
                k @ 0..=19 => format!(r#""a{n}":{k},"#),
                _ => format!(r#""a{n}":null,"#),
            })
            .chain(std::iter::once(r#""inner":{"x":"y"}"#.to_string()))
            .collect();
        assert_eq!(
            run(&format!("[{{{object}}},{{{object}}}]"), Some(sel)),
            format!("[{{{expected_one}}},{{{expected_one}}}]")
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
    fn nested_arrays_are_walked_in_one_pass_up_to_the_depth_limit() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let sel = || Some(vec![proj("x", "x", None)]);
        assert_eq!(
            run(&nested(MAX_PROJECTED_DEPTH), sel()),
            nested(MAX_PROJECTED_DEPTH)
        );
        assert_eq!(
            run(r#"[[{"x":1,"y":2}],[],[[{"x":[3]}]],4]"#, sel()),
            r#"[[{"x":1}],[],[[{"x":[3]}]],4]"#
        );
        // The reviewer's answers: 3,000 levels overflowed the stack, 100,000 levels cost 13 s of
        // re-parsing before that. Now both stop at the limit.
        for n in [MAX_PROJECTED_DEPTH + 1, 3_000, 100_000] {
            let text = nested(n);
            let raw: &RawValue = serde_json::from_str(&text).unwrap();
            let mut out = Vec::new();
            assert_eq!(
                project(raw, sel().as_deref(), &mut out, usize::MAX),
                Err(ProjectError::TooDeep)
            );
        }
        // Objects count as levels too, selected through one key per level.
        let mut sel = None;
        for _ in 0..MAX_PROJECTED_DEPTH {
            sel = Some(vec![proj("a", "a", sel)]);
        }
        let objects = |n: usize| format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
        assert_eq!(
            run(&objects(MAX_PROJECTED_DEPTH), sel.clone()),
            objects(MAX_PROJECTED_DEPTH)
        );
        let deeper = format!("[{}]", objects(MAX_PROJECTED_DEPTH));
        let raw: &RawValue = serde_json::from_str(&deeper).unwrap();
        assert_eq!(
            project(raw, sel.as_deref(), &mut Vec::new(), usize::MAX),
            Err(ProjectError::TooDeep)
        );
        // Without a selection a value is copied, not walked, at any depth.
        assert_eq!(run(&nested(100_000), None), nested(100_000));
    }

    #[test]
    fn output_stops_at_its_limit() {
        let text = format!(r#"{{"s":"{}","n":[1,2,3]}}"#, "x".repeat(1000));
        let raw: &RawValue = serde_json::from_str(&text).unwrap();
        // 8 aliases of a 1002-byte value: refused once the 5th would pass 5,000 bytes.
        let sel: Vec<Proj> = (0..8).map(|i| proj(&format!("a{i}"), "s", None)).collect();
        let mut out = Vec::new();
        assert_eq!(
            project(raw, Some(&sel), &mut out, 5_000),
            Err(ProjectError::TooLarge)
        );
        assert!(out.len() <= 5_000, "{}", out.len());
        // The whole value is refused before anything is copied; a fitting one passes.
        let mut out = Vec::new();
        assert_eq!(
            project(raw, None, &mut out, text.len() - 1),
            Err(ProjectError::TooLarge)
        );
        assert!(out.is_empty());
        let mut out = Vec::new();
        assert_eq!(project(raw, None, &mut out, text.len()), Ok(()));
        // Lists of small values are counted as they go.
        let list = format!("[{}]", vec![r#"{"n":[1,2,3]}"#; 1000].join(","));
        let raw: &RawValue = serde_json::from_str(&list).unwrap();
        let sel = vec![proj("n", "n", None)];
        let mut out = Vec::new();
        assert_eq!(
            project(raw, Some(&sel), &mut out, 1_000),
            Err(ProjectError::TooLarge)
        );
        assert!(out.len() <= 1_000 + 4, "{}", out.len());
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
