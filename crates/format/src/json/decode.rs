//! Go `json.Unmarshal` semantics on top of `serde_json`.
//!
//! Values are decoded *in place* ([`GoDecode`]): a repeated key decodes into what the
//! earlier occurrence produced, as Go does, and `null` is a no-op for strings and
//! numbers but resets pointers, slices and maps. Before parsing, [`go_sanitize`]
//! rewrites the few inputs Go accepts and `serde_json` rejects.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor,
};

use super::JsonError;

/// Parses `bytes` into `T` after Go-compatible input normalisation: invalid UTF-8
/// inside strings and unpaired UTF-16 surrogate escapes become U+FFFD (Go's
/// behaviour), and an integer literal `-0` is read as `0`. The whole input must be
/// one JSON value with optional surrounding whitespace.
///
/// Nesting: more than 10000 levels is rejected as Go does ("exceeded max depth").
/// Values skipped as unknown fields may nest up to that limit; values that `T`
/// actually decodes are also bound by `serde_json`'s recursion limit of 128 levels
/// (far beyond the 4 levels of the OCI types).
///
/// The types of this module deserialize with Go's struct-decoding rules (see the
/// [module docs](super)); other `T` use their own `Deserialize` impls.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let input = go_sanitize(bytes)?;
    serde_json::from_slice(&input).map_err(JsonError::Decode)
}

/// Go's `maxNestingDepth`.
const MAX_DEPTH: usize = 10_000;

/// Rewrites `input` so that `serde_json` accepts what Go's decoder accepts:
/// * in strings, each byte of an invalid UTF-8 sequence becomes U+FFFD (Go's
///   `utf8.DecodeRune` reports width 1 for every invalid position);
/// * a `\uXXXX` surrogate escape that is not a valid high+low pair becomes `\ufffd`;
/// * outside strings, a number `-0` (no fraction/exponent) becomes `0`.
///
/// Returns the input unchanged (borrowed) when nothing needs rewriting. Syntax errors
/// are left for the parser to report, except nesting beyond Go's limit of 10000.
pub(crate) fn go_sanitize(input: &[u8]) -> Result<Cow<'_, [u8]>, JsonError> {
    let mut depth = 0usize;
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0usize;
    let n = input.len();
    let replace =
        |out: &mut Option<Vec<u8>>, copied: &mut usize, from: usize, to: usize, with: &[u8]| {
            let buf = out.get_or_insert_with(|| Vec::with_capacity(n + 16));
            buf.extend_from_slice(&input[*copied..from]);
            buf.extend_from_slice(with);
            *copied = to;
        };
    let mut i = 0usize;
    while i < n {
        let c = input[i];
        if c == b'"' {
            i += 1;
            while i < n {
                let c = input[i];
                if c == b'"' {
                    i += 1;
                    break;
                }
                if c == b'\\' {
                    if input.get(i + 1) == Some(&b'u')
                        && let Some(u) = hex4(input, i + 2)
                    {
                        if (0xD800..0xE000).contains(&u) {
                            let paired = u < 0xDC00
                                && input.get(i + 6) == Some(&b'\\')
                                && input.get(i + 7) == Some(&b'u')
                                && hex4(input, i + 8)
                                    .is_some_and(|l| (0xDC00..0xE000).contains(&l));
                            if paired {
                                i += 12;
                            } else {
                                replace(&mut out, &mut copied, i, i + 6, b"\\ufffd");
                                i += 6;
                            }
                        } else {
                            i += 6;
                        }
                        continue;
                    }
                    i += 2;
                    continue;
                }
                if c < 0x80 {
                    i += 1;
                    continue;
                }
                let width = match c {
                    0xC2..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    0xF0..=0xF4 => 4,
                    _ => 0,
                };
                if width > 0 && i + width <= n && std::str::from_utf8(&input[i..i + width]).is_ok()
                {
                    i += width;
                } else {
                    replace(&mut out, &mut copied, i, i + 1, "\u{FFFD}".as_bytes());
                    i += 1;
                }
            }
        } else if c == b'{' || c == b'[' {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(JsonError::Decode(de::Error::custom(format!(
                    "invalid character '{}' exceeded max depth at byte offset {i}",
                    c as char
                ))));
            }
            i += 1;
        } else if c == b'}' || c == b']' {
            depth = depth.saturating_sub(1);
            i += 1;
        } else if c == b'-'
            && input.get(i + 1) == Some(&b'0')
            && !matches!(input.get(i + 2), Some(b'0'..=b'9' | b'.' | b'e' | b'E'))
            && !(i > 0 && matches!(input[i - 1], b'e' | b'E'))
        {
            replace(&mut out, &mut copied, i, i + 2, b"0");
            i += 2;
        } else {
            i += 1;
        }
    }
    Ok(match out {
        None => Cow::Borrowed(input),
        Some(mut buf) => {
            buf.extend_from_slice(&input[copied.min(n)..]);
            Cow::Owned(buf)
        }
    })
}

fn hex4(input: &[u8], at: usize) -> Option<u32> {
    let digits = input.get(at..at + 4)?;
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + (d as char).to_digit(16)?;
    }
    Some(v)
}

/// Go's case-insensitive field-name match (`encoding/json` `foldName`): ASCII
/// letters fold to upper case, U+017F (long s) folds to `S` and U+212A (Kelvin sign)
/// to `K`; any other non-ASCII character folds to a non-ASCII one and so cannot
/// match the ASCII field names used here.
pub(crate) fn go_key_matches(key: &str, field: &str) -> bool {
    if key == field {
        return true;
    }
    let mut fb = field.bytes();
    for ch in key.chars() {
        let folded = match ch {
            '\u{17F}' => b'S',
            '\u{212A}' => b'K',
            c if c.is_ascii() => (c as u8).to_ascii_uppercase(),
            _ => return false,
        };
        match fb.next() {
            Some(f) if f.to_ascii_uppercase() == folded => {}
            _ => return false,
        }
    }
    fb.next().is_none()
}

/// In-place decoding with Go `encoding/json` semantics.
pub(crate) trait GoDecode {
    /// Decodes the next value of `d` into `self`, keeping what Go would keep.
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error>;
}

/// Seed adapter: decodes into the referenced value.
pub(crate) struct InPlace<'a, T>(pub &'a mut T);

impl<'de, T: GoDecode> DeserializeSeed<'de> for InPlace<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.go_decode(d)
    }
}

/// Go `string` (and string kinds such as `digest.Digest`): `null` leaves it untouched.
impl GoDecode for String {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        struct V<'a>(&'a mut String);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
                self.0.clear();
                self.0.push_str(v);
                Ok(())
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
                *self.0 = v;
                Ok(())
            }
            fn visit_unit<E: de::Error>(self) -> Result<(), E> {
                Ok(())
            }
        }
        d.deserialize_any(V(self))
    }
}

macro_rules! go_int {
    ($ty:ty, $what:literal) => {
        /// Go integer kinds: only integer literals in range; `null` is a no-op.
        impl GoDecode for $ty {
            fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
                struct V<'a>(&'a mut $ty);
                impl<'de> Visitor<'de> for V<'_> {
                    type Value = ();
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
                        *self.0 = <$ty>::try_from(v)
                            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))?;
                        Ok(())
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
                        *self.0 = <$ty>::try_from(v)
                            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))?;
                        Ok(())
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
                        Ok(())
                    }
                }
                d.deserialize_any(V(self))
            }
        }
    };
}

go_int!(i64, "a Go int64 (integer literal)");
go_int!(i32, "a Go int32 (integer literal)");
go_int!(u8, "a Go uint8 (integer literal)");

/// Go slice decoding: `null` -> nil; an array decodes element `i` into the existing
/// element `i` when there is one, then the slice is cut to the array's length.
fn decode_seq_into<'de, A: SeqAccess<'de>, T: GoDecode + Default>(
    v: &mut Vec<T>,
    mut seq: A,
) -> Result<(), A::Error> {
    let mut i = 0;
    loop {
        if i < v.len() {
            if seq.next_element_seed(InPlace(&mut v[i]))?.is_none() {
                break;
            }
        } else {
            let mut item = T::default();
            if seq.next_element_seed(InPlace(&mut item))?.is_none() {
                break;
            }
            v.push(item);
        }
        i += 1;
    }
    v.truncate(i);
    Ok(())
}

/// A Go slice whose nil and empty states serialize alike (`omitempty` fields).
impl<T: GoDecode + Default> GoDecode for Vec<T> {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        struct V<'a, T>(&'a mut Vec<T>);
        impl<'de, T: GoDecode + Default> Visitor<'de> for V<'_, T> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_unit<E: de::Error>(self) -> Result<(), E> {
                self.0.clear();
                Ok(())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
                decode_seq_into(self.0, seq)
            }
        }
        d.deserialize_any(V(self))
    }
}

/// A Go slice whose nil state matters (`layers`, `manifests`: written as `null`).
pub(crate) struct NilableSlice<'a, T>(pub &'a mut Option<Vec<T>>);

impl<'de, T: GoDecode + Default> DeserializeSeed<'de> for NilableSlice<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        struct V<'a, T>(&'a mut Option<Vec<T>>);
        impl<'de, T: GoDecode + Default> Visitor<'de> for V<'_, T> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<(), E> {
                *self.0 = None;
                Ok(())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
                decode_seq_into(self.0.get_or_insert_with(Vec::new), seq)
            }
        }
        d.deserialize_any(V(self.0))
    }
}

/// Go pointer to struct: `null` -> nil; otherwise decode into the existing pointee
/// (allocating one if nil).
impl<T: GoDecode + Default> GoDecode for Option<T> {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        struct V<'a, T>(&'a mut Option<T>);
        impl<'de, T: GoDecode + Default> Visitor<'de> for V<'_, T> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or null")
            }
            fn visit_none<E: de::Error>(self) -> Result<(), E> {
                *self.0 = None;
                Ok(())
            }
            fn visit_unit<E: de::Error>(self) -> Result<(), E> {
                *self.0 = None;
                Ok(())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                self.0.get_or_insert_with(T::default).go_decode(d)
            }
        }
        d.deserialize_option(V(self))
    }
}

/// Go `map[string]string`: `null` -> nil; an object merges into the existing map,
/// a `null` value stores `""`.
impl GoDecode for BTreeMap<String, String> {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        struct V<'a>(&'a mut BTreeMap<String, String>);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with string values")
            }
            fn visit_unit<E: de::Error>(self) -> Result<(), E> {
                self.0.clear();
                Ok(())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                while let Some(key) = map.next_key::<String>()? {
                    let mut value = String::new();
                    map.next_value_seed(InPlace(&mut value))?;
                    self.0.insert(key, value);
                }
                Ok(())
            }
        }
        d.deserialize_any(V(self))
    }
}

/// Go `[]byte`: a base64 string (standard alphabet, padding required, `\r`/`\n`
/// ignored, non-zero trailing bits tolerated), `null`, or an array of bytes.
pub(crate) struct Base64Bytes<'a>(pub &'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Base64Bytes<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        struct V<'a>(&'a mut Vec<u8>);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
                *self.0 = go_base64_decode(v).ok_or_else(|| {
                    E::invalid_value(de::Unexpected::Str(v), &"standard padded base64")
                })?;
                Ok(())
            }
            fn visit_unit<E: de::Error>(self) -> Result<(), E> {
                self.0.clear();
                Ok(())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
                decode_seq_into(self.0, seq)
            }
        }
        d.deserialize_any(V(self.0))
    }
}

fn go_base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
    );
    let cleaned: Cow<'_, str> = if s.contains(['\r', '\n']) {
        Cow::Owned(s.chars().filter(|c| *c != '\r' && *c != '\n').collect())
    } else {
        Cow::Borrowed(s)
    };
    ENGINE.decode(cleaned.as_bytes()).ok()
}

/// A Go `json.RawMessage` field reduced to "was the key present" (any value,
/// including `null`, makes it non-empty).
#[derive(Default)]
pub(crate) struct Present(pub bool);

impl GoDecode for Present {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        <de::IgnoredAny as serde::Deserialize>::deserialize(d)?;
        self.0 = true;
        Ok(())
    }
}

/// Implements [`GoDecode`] (and optionally `serde::Deserialize`) for a struct with
/// Go struct-decoding rules: case-insensitive keys, unknown keys skipped, `null`
/// a no-op, repeated keys decoded into the same field.
macro_rules! go_struct {
    (@impl $ty:ty, $name:literal, { $($key:literal => $field:ident $(as $seed:ident)?),* $(,)? }) => {
        impl $crate::json::decode::GoDecode for $ty {
            fn go_decode<'de, D: ::serde::de::Deserializer<'de>>(
                &mut self,
                d: D,
            ) -> ::std::result::Result<(), D::Error> {
                struct V<'a>(&'a mut $ty);
                impl<'de> ::serde::de::Visitor<'de> for V<'_> {
                    type Value = ();
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str(concat!("a JSON object (", $name, ")"))
                    }
                    fn visit_unit<E: ::serde::de::Error>(self) -> ::std::result::Result<(), E> {
                        Ok(())
                    }
                    fn visit_map<A: ::serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> ::std::result::Result<(), A::Error> {
                        while let Some(key) = map.next_key::<String>()? {
                            $(
                                if $crate::json::decode::go_key_matches(&key, $key) {
                                    go_struct!(@field map, self.0.$field $(, $seed)?);
                                    continue;
                                }
                            )*
                            map.next_value::<::serde::de::IgnoredAny>()?;
                        }
                        Ok(())
                    }
                }
                d.deserialize_any(V(self))
            }
        }
    };
    (@field $map:ident, $place:expr) => {
        $map.next_value_seed($crate::json::decode::InPlace(&mut $place))?
    };
    (@field $map:ident, $place:expr, $seed:ident) => {
        $map.next_value_seed($crate::json::decode::$seed(&mut $place))?
    };
    (pub $ty:ty, $name:literal, { $($body:tt)* }) => {
        go_struct!(@impl $ty, $name, { $($body)* });
        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::de::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let mut v = <$ty>::default();
                $crate::json::decode::GoDecode::go_decode(&mut v, d)?;
                Ok(v)
            }
        }
    };
    ($ty:ty, $name:literal, { $($body:tt)* }) => {
        go_struct!(@impl $ty, $name, { $($body)* });
    };
}
pub(crate) use go_struct;

/// Decodes a top-level value with Go semantics into a fresh `T` (for private
/// helper structs without a `Deserialize` impl).
pub(crate) fn go_from_slice<T: GoDecode + Default>(bytes: &[u8]) -> Result<T, JsonError> {
    let input = go_sanitize(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(&input);
    let mut v = T::default();
    v.go_decode(&mut de).map_err(JsonError::Decode)?;
    de.end().map_err(JsonError::Decode)?;
    Ok(v)
}
