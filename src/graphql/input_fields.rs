//! The GraphQL rule "input object field uniqueness": `{a: 1, a: 2}` is a validation error, in
//! arguments (`body`, `headers`) and in variable defaults alike.
//!
//! The parser stores an object value as a map, so by the time the document is validated a repeated
//! name has already been folded into one entry (the last value wins) and the rule cannot be checked
//! on it. The text still holds both, so this pass walks the tokens of the document, which has parsed
//! and is therefore well-formed, and tells object values from selection sets by what comes before
//! their `{`: an object value follows `:` (an argument or an object field) or `=` (a default) or sits
//! in a list; a selection set never does. Locations are counted as the parser counts them (in
//! characters; `\n` starts a line, `\r` returns to column 1), so they match the other errors'.
//! One linear pass, no allocation per token.

use async_graphql_parser::Pos;

use super::error::GraphQLError;

/// Every repeated field name in the object values of `document` (which must have parsed).
pub(crate) fn check(document: &str) -> Vec<GraphQLError> {
    let mut errors = Vec::new();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut after_colon_or_equals = false;
    let mut lexer = Lexer {
        text: document.as_bytes(),
        document,
        at: 0,
        pos: Pos { line: 1, column: 1 },
    };
    while let Some((token, pos)) = lexer.next() {
        let in_value_context = matches!(
            stack.last(),
            Some(Frame::Arguments) | Some(Frame::Object { .. })
        );
        match token {
            Token::Punct(b'{') => {
                let object = matches!(stack.last(), Some(Frame::List))
                    || (after_colon_or_equals && in_value_context);
                stack.push(if object {
                    Frame::Object {
                        expect_key: true,
                        keys: Vec::new(),
                    }
                } else {
                    Frame::Selection
                });
            }
            Token::Punct(b'[') => stack.push(Frame::List),
            Token::Punct(b'(') => stack.push(Frame::Arguments),
            Token::Punct(b'}' | b']' | b')') => {
                stack.pop();
                value_done(&mut stack);
            }
            Token::Name(name) => match stack.last_mut() {
                Some(Frame::Object { expect_key, keys }) if *expect_key => {
                    if let Some((_, first)) = keys.iter().find(|(key, _)| *key == name) {
                        errors.push(
                            GraphQLError::validation(
                                format!("There can be only one input field named \"{name}\"."),
                                *first,
                            )
                            .at(pos),
                        );
                    } else {
                        keys.push((name, pos));
                    }
                    *expect_key = false;
                }
                _ => value_done(&mut stack), // an enum value, `true`, `null`, ...
            },
            Token::Value => value_done(&mut stack),
            Token::Punct(_) => {}
        }
        after_colon_or_equals = matches!(token, Token::Punct(b':' | b'='));
    }
    errors
}

/// What an open bracket opened.
enum Frame<'d> {
    /// `(...)`: arguments, or variable definitions.
    Arguments,
    /// `[...]`: a list value (or a list type, which holds no `{`).
    List,
    /// `{...}` as a value: the names seen so far, and whether a name comes next.
    Object {
        expect_key: bool,
        keys: Vec<(&'d str, Pos)>,
    },
    /// `{...}` as a selection set.
    Selection,
}

/// A value ended: inside an object the next name is a field name again.
fn value_done(stack: &mut [Frame<'_>]) {
    if let Some(Frame::Object { expect_key, .. }) = stack.last_mut() {
        *expect_key = true;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'d> {
    /// One punctuator byte (`...` is reported as `.`).
    Punct(u8),
    Name(&'d str),
    /// A string, a number or a variable.
    Value,
}

struct Lexer<'d> {
    text: &'d [u8],
    document: &'d str,
    at: usize,
    pos: Pos,
}

impl<'d> Lexer<'d> {
    fn peek(&self, offset: usize) -> Option<u8> {
        self.text.get(self.at + offset).copied()
    }

    /// Moves over one byte, counting lines and characters as the parser does.
    fn bump(&mut self) {
        match self.text[self.at] {
            b'\r' => self.pos.column = 1,
            b'\n' => {
                self.pos.line += 1;
                self.pos.column = 1;
            }
            b if b & 0xC0 != 0x80 => self.pos.column += 1, // not a UTF-8 continuation byte
            _ => {}
        }
        self.at += 1;
    }

    fn bump_while(&mut self, mut keep: impl FnMut(u8) -> bool) {
        while self.peek(0).is_some_and(&mut keep) {
            self.bump();
        }
    }

    fn next(&mut self) -> Option<(Token<'d>, Pos)> {
        loop {
            let b = self.peek(0)?;
            match b {
                b' ' | b'\t' | b',' | b'\r' | b'\n' => self.bump(),
                0xEF if self.text[self.at..].starts_with("\u{feff}".as_bytes()) => {
                    (0..3).for_each(|_| self.bump())
                }
                b'#' => self.bump_while(|b| b != b'\r' && b != b'\n'),
                _ => break,
            }
        }
        let pos = self.pos;
        let b = self.peek(0)?;
        let token = match b {
            b'"' if self.text[self.at..].starts_with(b"\"\"\"") => {
                (0..3).for_each(|_| self.bump());
                while self.at < self.text.len() {
                    if self.text[self.at..].starts_with(b"\\\"\"\"") {
                        (0..4).for_each(|_| self.bump());
                    } else if self.text[self.at..].starts_with(b"\"\"\"") {
                        (0..3).for_each(|_| self.bump());
                        break;
                    } else {
                        self.bump();
                    }
                }
                Token::Value
            }
            b'"' => {
                self.bump();
                while let Some(b) = self.peek(0) {
                    self.bump();
                    match b {
                        b'\\' if self.at < self.text.len() => self.bump(),
                        b'"' => break,
                        _ => {}
                    }
                }
                Token::Value
            }
            b'$' => {
                self.bump();
                self.bump_while(is_name_byte);
                Token::Value
            }
            b'-' | b'0'..=b'9' => {
                self.bump();
                self.bump_while(|b| {
                    b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')
                });
                Token::Value
            }
            b if b == b'_' || b.is_ascii_alphabetic() => {
                let start = self.at;
                self.bump_while(is_name_byte);
                Token::Name(&self.document[start..self.at])
            }
            b'.' => {
                self.bump_while(|b| b == b'.');
                Token::Punct(b'.')
            }
            other => {
                self.bump();
                Token::Punct(other)
            }
        };
        Some((token, pos))
    }
}

fn is_name_byte(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}
