//! Walking a parsed TOML document against the config's shape, and back.
//!
//! Each config section lists its fields once (see [`section!`]); that list
//! drives both loading (type checks, unknown-key warnings, spans for error
//! positions) and dumping.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{ConfigError, ConfigWarning};
use crate::units::{Millis, Seconds};

/// A dotted key path for messages, e.g. `resolver.host."docker.io".mirrors[0]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyPath(String);

impl KeyPath {
    /// The document root (displays as nothing).
    pub(crate) fn root() -> Self {
        Self(String::new())
    }

    /// A key under this path, quoted when it is not a bare TOML key.
    pub(crate) fn key(&self, key: &str) -> Self {
        let bare = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let mut s = self.0.clone();
        if !s.is_empty() {
            s.push('.');
        }
        if bare {
            s.push_str(key);
        } else {
            s.push('"');
            for c in key.chars() {
                match c {
                    '"' => s.push_str("\\\""),
                    '\\' => s.push_str("\\\\"),
                    c if c.is_control() => s.push_str(&c.escape_unicode().to_string()),
                    c => s.push(c),
                }
            }
            s.push('"');
        }
        Self(s)
    }

    /// An element of an array under this path.
    pub(crate) fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// State shared while loading one document.
pub(crate) struct Cx<'s> {
    src: &'s str,
    pub(crate) warnings: Vec<ConfigWarning>,
}

impl<'s> Cx<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        Self {
            src,
            warnings: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        line_column(self.src, offset)
    }

    fn span_position(&self, span: &Range<usize>) -> (usize, usize) {
        self.position(span.start)
    }

    pub(crate) fn wrong_type(
        &self,
        path: &KeyPath,
        expected: &'static str,
        value: &Spanned<DeValue<'_>>,
    ) -> ConfigError {
        let (line, column) = self.span_position(&value.span());
        ConfigError::WrongType {
            file: None,
            key: path.to_string(),
            expected,
            found: article_type(value.get_ref()),
            line,
            column,
        }
    }

    pub(crate) fn invalid(
        &self,
        path: &KeyPath,
        message: impl Into<String>,
        value: &Spanned<DeValue<'_>>,
    ) -> ConfigError {
        let (line, column) = self.span_position(&value.span());
        ConfigError::Invalid {
            file: None,
            key: path.to_string(),
            message: message.into(),
            line,
            column,
        }
    }

    fn unknown_key(&mut self, path: KeyPath, key_span: &Range<usize>) {
        let (line, column) = self.span_position(key_span);
        self.warnings.push(ConfigWarning::UnknownKey {
            key: path.to_string(),
            line,
            column,
        });
    }
}

/// 1-based line and column (in characters) of a byte offset into `src`.
/// Offsets past the end or inside a character are clamped, never a panic.
pub(crate) fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// "a string", "an integer", ... for messages.
fn article_type(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A value that can be merged from TOML and written back.
pub(crate) trait Field {
    /// Replaces (scalars, arrays) or merges into (tables) `self`.
    fn load(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &KeyPath,
        cx: &mut Cx<'_>,
    ) -> Result<(), ConfigError>;

    /// The TOML form; `None` leaves the key out (empty maps, as upstream).
    fn dump(&self) -> Option<toml::Value>;
}

impl Field for bool {
    fn load(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &KeyPath,
        cx: &mut Cx<'_>,
    ) -> Result<(), ConfigError> {
        match value.get_ref() {
            DeValue::Boolean(b) => {
                *self = *b;
                Ok(())
            }
            _ => Err(cx.wrong_type(path, "a boolean", value)),
        }
    }

    fn dump(&self) -> Option<toml::Value> {
        Some(toml::Value::Boolean(*self))
    }
}

impl Field for i64 {
    fn load(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &KeyPath,
        cx: &mut Cx<'_>,
    ) -> Result<(), ConfigError> {
        match value.get_ref() {
            DeValue::Integer(i) => {
                *self = i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| {
                    cx.invalid(
                        path,
                        "integer out of range for a 64-bit signed integer",
                        value,
                    )
                })?;
                Ok(())
            }
            _ => Err(cx.wrong_type(path, "an integer", value)),
        }
    }

    fn dump(&self) -> Option<toml::Value> {
        Some(toml::Value::Integer(*self))
    }
}

impl Field for Seconds {
    fn load(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &KeyPath,
        cx: &mut Cx<'_>,
    ) -> Result<(), ConfigError> {
        self.0.load(value, path, cx)
    }

    fn dump(&self) -> Option<toml::Value> {
        self.0.dump()
    }
}

impl Field for Millis {
    fn load(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &KeyPath,
        cx: &mut Cx<'_>,
    ) -> Result<(), ConfigError> {
        self.0.load(value, path, cx)
    }

    fn dump(&self) -> Option<toml::Value> {
        self.0.dump()
    }
}

impl Field for String {
    fn load(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &KeyPath,
        cx: &mut Cx<'_>,
    ) -> Result<(), ConfigError> {
        match value.get_ref() {
            DeValue::String(s) => {
                *self = s.to_string();
                Ok(())
            }
            _ => Err(cx.wrong_type(path, "a string", value)),
        }
    }

    fn dump(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.clone()))
    }
}

/// Arrays are replaced as a whole, element by element from defaults.
impl<T: Field + Default> Field for Vec<T> {
    fn load(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &KeyPath,
        cx: &mut Cx<'_>,
    ) -> Result<(), ConfigError> {
        let DeValue::Array(items) = value.get_ref() else {
            return Err(cx.wrong_type(path, "an array", value));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let mut elem = T::default();
            elem.load(item, &path.index(i), cx)?;
            out.push(elem);
        }
        *self = out;
        Ok(())
    }

    fn dump(&self) -> Option<toml::Value> {
        Some(toml::Value::Array(
            self.iter().filter_map(Field::dump).collect(),
        ))
    }
}

/// Maps with user-chosen keys (registry hosts, compression algorithms):
/// entries are merged; each new entry starts from its defaults.
impl<T: Field + Default> Field for BTreeMap<String, T> {
    fn load(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &KeyPath,
        cx: &mut Cx<'_>,
    ) -> Result<(), ConfigError> {
        let table = expect_table(value, path, cx)?;
        for (key, item) in table.iter() {
            let name = key.get_ref();
            let entry = self.entry(name.to_string()).or_default();
            entry.load(item, &path.key(name), cx)?;
        }
        Ok(())
    }

    fn dump(&self) -> Option<toml::Value> {
        if self.is_empty() {
            return None;
        }
        let mut t = toml::Table::new();
        for (k, v) in self {
            if let Some(v) = v.dump() {
                t.insert(k.clone(), v);
            }
        }
        Some(toml::Value::Table(t))
    }
}

pub(crate) fn expect_table<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    path: &KeyPath,
    cx: &Cx<'_>,
) -> Result<&'a DeTable<'i>, ConfigError> {
    match value.get_ref() {
        DeValue::Table(t) => Ok(t),
        _ => Err(cx.wrong_type(path, "a table", value)),
    }
}

/// Finds which of a section's keys `key` names: the exact name first, then a
/// case-insensitive match, as upstream's TOML decoder does.
pub(crate) fn match_key(keys: &[&'static str], key: &str) -> Option<&'static str> {
    if let Some(k) = keys.iter().find(|k| **k == key) {
        return Some(k);
    }
    let lower = key.to_lowercase();
    keys.iter().find(|k| k.to_lowercase() == lower).copied()
}

/// Loads the keys of a table through `set`, which returns `false` for keys
/// the section does not have; those become warnings.
pub(crate) fn load_table(
    value: &Spanned<DeValue<'_>>,
    path: &KeyPath,
    cx: &mut Cx<'_>,
    keys: &[&'static str],
    mut set: impl FnMut(
        &'static str,
        &Spanned<DeValue<'_>>,
        &KeyPath,
        &mut Cx<'_>,
    ) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    let table = expect_table(value, path, cx)?;
    for (key, item) in table.iter() {
        let name = key.get_ref();
        let key_path = path.key(name);
        match match_key(keys, name) {
            Some(canonical) => set(canonical, item, &key_path, cx)?,
            None => cx.unknown_key(key_path, &key.span()),
        }
    }
    Ok(())
}

/// Implements [`Field`] for a config section from its list of
/// `field => "toml_key"` pairs (in dump order). An optional
/// `after = path::to::fn` runs once the section's keys are loaded, with the
/// section's value for error positions.
macro_rules! section {
    ($ty:ty { $($field:ident => $key:literal),* $(,)? } $(after = $after:path)?) => {
        impl $crate::schema::Field for $ty {
            fn load(
                &mut self,
                value: &::toml::Spanned<::toml::de::DeValue<'_>>,
                path: &$crate::schema::KeyPath,
                cx: &mut $crate::schema::Cx<'_>,
            ) -> Result<(), $crate::error::ConfigError> {
                const KEYS: &[&str] = &[$($key),*];
                $crate::schema::load_table(value, path, cx, KEYS, |key, item, key_path, cx| {
                    match key {
                        $($key => $crate::schema::Field::load(&mut self.$field, item, key_path, cx),)*
                        _ => Ok(()),
                    }
                })?;
                $($after(self, value, path, cx)?;)?
                Ok(())
            }

            fn dump(&self) -> Option<::toml::Value> {
                let mut table = ::toml::Table::new();
                $(
                    if let Some(v) = $crate::schema::Field::dump(&self.$field) {
                        table.insert($key.to_owned(), v);
                    }
                )*
                Some(::toml::Value::Table(table))
            }
        }
    };
}
pub(crate) use section;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_is_total() {
        let src = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 6), (2, 1));
        assert_eq!(line_column(src, 9), (2, 3)); // after "bé" (é is 2 bytes)
        assert_eq!(line_column(src, 8), (2, 2)); // inside é: clamped back
        assert_eq!(line_column(src, 10_000), (3, 1));
        assert_eq!(line_column("", 5), (1, 1));
    }

    #[test]
    fn key_paths_quote_non_bare_keys() {
        let p = KeyPath::root().key("resolver").key("host").key("docker.io");
        assert_eq!(p.to_string(), "resolver.host.\"docker.io\"");
        assert_eq!(
            p.key("mirrors").index(2).to_string(),
            "resolver.host.\"docker.io\".mirrors[2]"
        );
        assert_eq!(KeyPath::root().key("").to_string(), "\"\"");
        assert_eq!(KeyPath::root().key("a\"b").to_string(), "\"a\\\"b\"");
    }

    #[test]
    fn keys_match_case_insensitively_after_exact() {
        let keys = ["DialTimeoutMsec", "debug"];
        assert_eq!(match_key(&keys, "DialTimeoutMsec"), Some("DialTimeoutMsec"));
        assert_eq!(match_key(&keys, "dialtimeoutmsec"), Some("DialTimeoutMsec"));
        assert_eq!(match_key(&keys, "DEBUG"), Some("debug"));
        assert_eq!(match_key(&keys, "dial_timeout_msec"), None);
    }
}
