//! Go `encoding/json` compatible writer: a `serde_json` formatter with Go's string
//! escaping, float formatting and `[]byte` encoding.

use std::io;

use base64::Engine as _;
use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

use super::JsonError;

/// Serializes `value` exactly as Go's `json.Marshal` would (compact, no trailing
/// newline, Go escaping), provided the `Serialize` impl mirrors the Go struct
/// (field order, `omitempty` as `skip_serializing_if`).
///
/// # Panics
///
/// Panics if the `Serialize` impl fails, which the types of this module never do
/// (only foreign impls can, e.g. a map with non-string keys). Use
/// [`try_to_go_json`] for arbitrary values.
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    match try_to_go_json(value) {
        Ok(bytes) => bytes,
        Err(e) => panic!("to_go_json: {e}"),
    }
}

/// Fallible form of [`to_go_json`].
pub fn try_to_go_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser).map_err(JsonError::Encode)?;
    Ok(out)
}

/// Compact formatter reproducing Go's `encodeState.string` (with HTML escaping on,
/// as `json.Marshal` has it) and Go's float formatting.
pub(crate) struct GoFormatter;

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json has already split out '"', '\\' and bytes < 0x20 (they reach
        // write_char_escape); here only Go's extra escapes remain.
        let bytes = fragment.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let escape: Option<&[u8]> = match bytes[i] {
                b'<' => Some(b"\\u003c"),
                b'>' => Some(b"\\u003e"),
                b'&' => Some(b"\\u0026"),
                // U+2028 / U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA8) => {
                    Some(b"\\u2028")
                }
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA9) => {
                    Some(b"\\u2029")
                }
                _ => None,
            };
            match escape {
                Some(esc) => {
                    writer.write_all(&bytes[start..i])?;
                    writer.write_all(esc)?;
                    i += if bytes[i] == 0xE2 { 3 } else { 1 };
                    start = i;
                }
                None => i += 1,
            }
        }
        writer.write_all(&bytes[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        // Go >= 1.22: \b and \f have short forms too; other controls are \u00xx.
        let s: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(b) => {
                let buf = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 0xF) as usize],
                ];
                return writer.write_all(&buf);
            }
        };
        writer.write_all(s)
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let abs = value.abs();
        let exp = abs != 0.0 && !(1e-6..1e21).contains(&abs);
        write_go_float(writer, value, exp)
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        let abs = value.abs();
        let exp = abs != 0.0 && !(1e-6f32..1e21f32).contains(&abs);
        write_go_float(writer, value, exp)
    }

    fn write_byte_array<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        value: &[u8],
    ) -> io::Result<()> {
        // Go encodes []byte as a base64 (standard, padded) string.
        writer.write_all(b"\"")?;
        writer.write_all(
            base64::engine::general_purpose::STANDARD
                .encode(value)
                .as_bytes(),
        )?;
        writer.write_all(b"\"")
    }
}

/// Go's `strconv.AppendFloat(f, 'f' or 'e', -1, bits)` plus `encoding/json`'s
/// exponent cleanup (`e-07` -> `e-7`). Rust's `Display`/`LowerExp` print the same
/// shortest round-trip digits; only the layout differs.
fn write_go_float<W, F>(writer: &mut W, value: F, exp: bool) -> io::Result<()>
where
    W: ?Sized + io::Write,
    F: std::fmt::Display + std::fmt::LowerExp,
{
    if !exp {
        return write!(writer, "{value}");
    }
    let s = format!("{value:e}");
    let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
    match exponent.strip_prefix('-') {
        Some(digits) => write!(writer, "{mantissa}e-{digits}"),
        None => write!(writer, "{mantissa}e+{exponent:0>2}"),
    }
}

/// `serialize_with` helper for Go `[]byte` fields.
pub(crate) fn serialize_base64<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
}
