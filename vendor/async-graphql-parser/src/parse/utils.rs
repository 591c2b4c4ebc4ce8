use std::ops::Range;

use pest::iterators::{Pair, Pairs};

use super::Rule;
use crate::Result;

pub(super) fn next_if_rule<'a>(pairs: &mut Pairs<'a, Rule>, rule: Rule) -> Option<Pair<'a, Rule>> {
    if pairs.peek().is_some_and(|pair| pair.as_rule() == rule) {
        Some(pairs.next().unwrap())
    } else {
        None
    }
}
pub(super) fn parse_if_rule<T>(
    pairs: &mut Pairs<Rule>,
    rule: Rule,
    f: impl FnOnce(Pair<Rule>) -> Result<T>,
) -> Result<Option<T>> {
    next_if_rule(pairs, rule).map(f).transpose()
}

pub(super) fn exactly_one<T>(iter: impl IntoIterator<Item = T>) -> T {
    let mut iter = iter.into_iter();
    let res = iter.next().unwrap();
    debug_assert!(iter.next().is_none());
    res
}

pub(super) fn block_string_value(raw: &str) -> String {
    // Split the string by either \r\n, \r or \n
    let lines: Vec<_> = raw
        .split("\r\n")
        .flat_map(|s| s.split(['\r', '\n'].as_ref()))
        .collect();

    // Find the common indent
    let common_indent = lines
        .iter()
        .skip(1)
        .copied()
        .filter_map(|line| line.find(|c| c != '\t' && c != ' '))
        .min()
        .unwrap_or(0);

    let line_has_content = |line: &str| line.as_bytes().iter().any(|&c| c != b'\t' && c != b' ');

    let first_contentful_line = lines
        .iter()
        .copied()
        .position(line_has_content)
        .unwrap_or(lines.len());
    let ending_lines_start = lines
        .iter()
        .copied()
        .rposition(line_has_content)
        .map_or(0, |i| i + 1);

    lines
        .iter()
        .copied()
        .enumerate()
        .take(ending_lines_start)
        .skip(first_contentful_line)
        // Remove the common indent, but not on the first line
        .map(|(i, line)| {
            if i != 0 && line.len() >= common_indent {
                &line[common_indent..]
            } else {
                line
            }
        })
        // Put a newline between each line
        .enumerate()
        .flat_map(|(i, line)| {
            if i == 0 { [].as_ref() } else { ['\n'].as_ref() }
                .iter()
                .copied()
                .chain(line.chars())
        })
        .collect()
}

#[test]
fn test_block_string_value() {
    assert_eq!(block_string_value(""), "");
    assert_eq!(block_string_value("\r\n"), "");
    assert_eq!(block_string_value("\r\r\r\r\n\n\r\n\r\r"), "");
    assert_eq!(block_string_value("abc"), "abc");
    assert_eq!(
        block_string_value("line 1\r\n   line 2\n     line 3\r    line 4"),
        "line 1\nline 2\n  line 3\n line 4"
    );
    assert_eq!(
        block_string_value("\r\r  some text\r\n \n \n "),
        "some text"
    );
    assert_eq!(
        block_string_value(
            r#"
    a
    b

    c
"#
        ),
        "a\nb\n\nc"
    );
}

/// The value of a string's content (spec §2.9.4), or the byte range in `s` of a `\u` escape that
/// is no character.
///
/// switchyard patch: the escapes of a surrogate pair (`\ud83d\ude00`) are one character, as
/// graphql-js and graphql-core read them; a lone surrogate has no `char` and is an error, as is a
/// `\u{...}` of no scalar value.
pub(super) fn string_value(s: &str) -> std::result::Result<String, Range<usize>> {
    let mut value = String::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((start, c)) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        value.push(match chars.next().expect("backslash at end").1 {
            c @ '\"' | c @ '\\' | c @ '/' => c,
            'b' => '\x08',
            'f' => '\x0C',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            // switchyard patch: `\u{...}` (the spec draft; graphql-js 16, graphql-core 3.2), as
            // they read it: up to eight hex digits of a Unicode scalar value.
            'u' if s[start + 2..].starts_with('{') => {
                let end = start + s[start..].find('}').unwrap() + 1;
                chars.nth(end - start - 3);
                let digits = &s[start + 3..end - 1];
                (digits.len() <= 8)
                    .then(|| u32::from_str_radix(digits, 16).unwrap())
                    .and_then(char::from_u32)
                    .ok_or(start..end)?
            }
            'u' => {
                // The grammar's four hex digits.
                let code = hex4(&s[start + 2..start + 6]).unwrap();
                chars.nth(3);
                match char::from_u32(code) {
                    Some(c) => c,
                    None => {
                        let trailing = s
                            .get(start + 6..start + 12)
                            .filter(|escape| escape.starts_with("\\u"))
                            .and_then(|escape| hex4(&escape[2..]));
                        match trailing {
                            Some(low @ 0xDC00..=0xDFFF) if (0xD800..=0xDBFF).contains(&code) => {
                                chars.nth(5);
                                let pair = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                                char::from_u32(pair).unwrap()
                            }
                            _ => return Err(start..start + 6),
                        }
                    }
                }
            }
            _ => unreachable!(),
        });
    }
    Ok(value)
}

/// The value of four hex digits.
fn hex4(digits: &str) -> Option<u32> {
    (digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(digits, 16).unwrap())
}

#[test]
fn test_string_value() {
    assert_eq!(string_value("abc").unwrap(), "abc");
    assert_eq!(string_value("\\n\\b\\u2a1A").unwrap(), "\n\x08\u{2A1A}");
    assert_eq!(string_value("\\\"\\\\").unwrap(), "\"\\");
}

// switchyard patch
#[test]
fn switchyard_test_string_value_surrogates() {
    for pair in ["\\ud83d\\ude00", "\\uD83D\\uDE00", "\\uD83d\\udE00"] {
        assert_eq!(string_value(pair).unwrap(), "\u{1F600}", "{pair}");
    }
    assert_eq!(
        string_value("a\\udbff\\udfffb\\ud800\\udc00").unwrap(),
        "a\u{10FFFF}b\u{10000}"
    );
    assert_eq!(string_value("\\ud7ff\\ue000").unwrap(), "\u{D7FF}\u{E000}");
    for (lone, at) in [
        ("\\ud83d", 0..6),
        ("\\ude00", 0..6),
        ("x\\ud83dx", 1..7),
        ("\\ud83d\\u0041", 0..6),
        ("\\ud83d\\ud83d", 0..6),
        ("\\ude00\\ud83d", 0..6),
        ("é\\ud83d\\n", 2..8),
        ("\\u00e9\\udfff", 6..12),
    ] {
        assert_eq!(string_value(lone), Err(at), "{lone}");
    }
}

// switchyard patch
#[test]
fn switchyard_test_string_value_braced_escapes() {
    for (escape, value) in [
        ("\\u{1F600}", "\u{1F600}"),
        ("\\u{1f600}", "\u{1F600}"),
        ("\\u{0}", "\0"),
        ("\\u{41}\\u{00000042}", "AB"),
        ("\\u{10FFFF}", "\u{10FFFF}"),
        ("\\u{D7FF}\\u{E000}", "\u{D7FF}\u{E000}"),
        ("é\\u{e9}\\u00e9", "ééé"),
    ] {
        assert_eq!(string_value(escape).unwrap(), value, "{escape}");
    }
    for (bad, at) in [
        ("\\u{110000}", 0..10),
        ("\\u{D83D}", 0..8),
        ("x\\u{DE00}", 1..9),
        ("\\u{D83D}\\u{DE00}", 0..8),
        ("\\u{000000041}", 0..13),
        ("\\u{FFFFFFFF}", 0..12),
    ] {
        assert_eq!(string_value(bad), Err(at), "{bad}");
    }
}
