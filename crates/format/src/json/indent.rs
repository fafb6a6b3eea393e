//! Go's `json.Indent`, with its own validating scanner (Go's grammar and its
//! nesting limit of 10000, no recursion).

use std::fmt;

/// Go's `maxNestingDepth` of the JSON scanner.
const MAX_DEPTH: usize = 10_000;

/// Invalid input to [`go_json_indent`]; the message follows Go's `SyntaxError` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte offset {offset})")]
pub struct IndentError {
    /// Byte offset of the offending input byte (the input length at end of input).
    pub offset: usize,
    /// Go-style description, e.g. `invalid character 'x' looking for beginning of value`.
    pub message: String,
}

/// Re-indents a JSON document exactly like Go's `json.Indent(dst, src, "", indent)`:
/// every array element and object member on its own line, indented by `indent` per
/// level; `": "` after keys; empty objects and arrays stay `{}` and `[]`; strings,
/// numbers and literals are copied byte for byte (escapes untouched); whitespace
/// before the value and between tokens is dropped, whitespace after the top-level
/// value is kept. Invalid JSON (Go's grammar) is an error and produces no output.
pub fn go_json_indent(src: &[u8], indent: &str) -> Result<Vec<u8>, IndentError> {
    go_json_indent_with_prefix(src, "", indent)
}

/// [`go_json_indent`] with Go's `prefix` argument, written after every newline.
pub fn go_json_indent_with_prefix(
    src: &[u8],
    prefix: &str,
    indent: &str,
) -> Result<Vec<u8>, IndentError> {
    Indenter {
        src,
        pos: 0,
        out: Vec::with_capacity(src.len() * 2),
        prefix: prefix.as_bytes(),
        indent: indent.as_bytes(),
    }
    .run()
}

struct Indenter<'a> {
    src: &'a [u8],
    pos: usize,
    out: Vec<u8>,
    prefix: &'a [u8],
    indent: &'a [u8],
}

struct QuoteChar(u8);

impl fmt::Display for QuoteChar {
    /// Go's `quoteChar`: `'\''`, `'"'`, or the byte (as a rune) quoted like `strconv.Quote`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b'\'' => f.write_str("'\\''"),
            b'"' => f.write_str("'\"'"),
            0x07 => f.write_str("'\\a'"),
            0x08 => f.write_str("'\\b'"),
            0x0C => f.write_str("'\\f'"),
            b'\n' => f.write_str("'\\n'"),
            b'\r' => f.write_str("'\\r'"),
            b'\t' => f.write_str("'\\t'"),
            0x0B => f.write_str("'\\v'"),
            b'\\' => f.write_str("'\\\\'"),
            c if c < 0x20 || c == 0x7F => write!(f, "'\\x{c:02x}'"),
            0x80..=0x9F => write!(f, "'\\u{:04x}'", self.0),
            c => write!(f, "'{}'", c as char),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Indenter<'_> {
    fn error<T>(&self, context: &str) -> Result<T, IndentError> {
        Err(match self.src.get(self.pos) {
            None => IndentError {
                offset: self.src.len(),
                message: "unexpected end of JSON input".to_string(),
            },
            Some(&c) => IndentError {
                offset: self.pos,
                message: format!("invalid character {} {context}", QuoteChar(c)),
            },
        })
    }

    /// Errors inside a number or literal: at end of input Go's scanner feeds a
    /// space, so the message names `' '` rather than the end of input.
    fn token_error<T>(&self, context: &str) -> Result<T, IndentError> {
        if self.pos >= self.src.len() {
            return Err(IndentError {
                offset: self.src.len(),
                message: format!("invalid character ' ' {context}"),
            });
        }
        self.error(context)
    }

    fn skip_space(&mut self) {
        while self.pos < self.src.len() && is_space(self.src[self.pos]) {
            self.pos += 1;
        }
    }

    fn newline(&mut self, depth: usize) {
        self.out.push(b'\n');
        self.out.extend_from_slice(self.prefix);
        if self.indent.is_empty() {
            return;
        }
        for _ in 0..depth {
            self.out.extend_from_slice(self.indent);
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn run(mut self) -> Result<Vec<u8>, IndentError> {
        let mut stack: Vec<Container> = Vec::new();
        // Each iteration parses one value (after any key), then closes containers.
        'value: loop {
            self.skip_space();
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    self.out.push(open);
                    self.pos += 1;
                    if stack.len() + 1 > MAX_DEPTH {
                        self.pos -= 1;
                        return Err(IndentError {
                            offset: self.pos,
                            message: format!(
                                "invalid character {} exceeded max depth",
                                QuoteChar(open)
                            ),
                        });
                    }
                    self.skip_space();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.out.push(close);
                        self.pos += 1;
                    } else {
                        stack.push(if open == b'{' {
                            Container::Object
                        } else {
                            Container::Array
                        });
                        self.newline(stack.len());
                        if open == b'{' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => self.string()?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                _ => return self.error("looking for beginning of value"),
            }
            // A value is complete: handle separators and closers.
            loop {
                let Some(&top) = stack.last() else {
                    break 'value;
                };
                self.skip_space();
                let (close, context) = match top {
                    Container::Object => (b'}', "after object key:value pair"),
                    Container::Array => (b']', "after array element"),
                };
                match self.peek() {
                    Some(b',') => {
                        self.out.push(b',');
                        self.pos += 1;
                        self.newline(stack.len());
                        if top == Container::Object {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(c) if c == close => {
                        stack.pop();
                        self.newline(stack.len());
                        self.out.push(close);
                        self.pos += 1;
                    }
                    _ => return self.error(context),
                }
            }
        }
        // Trailing whitespace is copied; anything else is an error.
        while let Some(c) = self.peek() {
            if !is_space(c) {
                return self.error("after top-level value");
            }
            self.out.push(c);
            self.pos += 1;
        }
        Ok(self.out)
    }

    /// An object key and its colon, written as `"key": `.
    fn key(&mut self) -> Result<(), IndentError> {
        self.skip_space();
        if self.peek() != Some(b'"') {
            return self.error("looking for beginning of object key string");
        }
        self.string()?;
        self.skip_space();
        if self.peek() != Some(b':') {
            return self.error("after object key");
        }
        self.pos += 1;
        self.out.extend_from_slice(b": ");
        Ok(())
    }

    fn string(&mut self) -> Result<(), IndentError> {
        let start = self.pos;
        self.pos += 1; // opening quote
        loop {
            match self.peek() {
                None => return self.error("in string literal"),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            for _ in 0..4 {
                                match self.peek() {
                                    Some(c) if c.is_ascii_hexdigit() => self.pos += 1,
                                    _ => return self.error("in \\u hexadecimal character escape"),
                                }
                            }
                        }
                        _ => return self.error("in string escape code"),
                    }
                }
                Some(c) if c < 0x20 => return self.error("in string literal"),
                Some(_) => self.pos += 1,
            }
        }
        self.out.extend_from_slice(&self.src[start..self.pos]);
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), IndentError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.token_error("in numeric literal"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.token_error("after decimal point in numeric literal");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.token_error("in exponent of numeric literal");
            }
        }
        self.out.extend_from_slice(&self.src[start..self.pos]);
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), IndentError> {
        for &expected in word {
            if self.peek() != Some(expected) {
                let name = std::str::from_utf8(word).unwrap_or("");
                return self.token_error(&format!(
                    "in literal {name} (expecting {})",
                    QuoteChar(expected)
                ));
            }
            self.pos += 1;
        }
        self.out.extend_from_slice(word);
        Ok(())
    }
}
