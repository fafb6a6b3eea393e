//! Human-readable sizes such as `"8mb"`, as accepted by
//! `pull_modes.parallel_pull_unpack.concurrent_download_chunk_size`.
//!
//! Semantics follow upstream: an optional decimal number followed by an
//! optional unit `b`, `kb`, `mb` or `gb` (any case, base 1024), with ASCII
//! whitespace allowed around the number and the unit. Fractions are
//! truncated to whole bytes. The empty string and anything that comes to
//! zero bytes mean "no chunking: fetch the whole layer at once".

use std::fmt;

/// Why a size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// The text is not a number optionally followed by a unit.
    #[error(
        "invalid size {0:?}: expected a number with an optional unit b, kb, mb or gb (e.g. \"8mb\")"
    )]
    Format(String),
    /// The number is too large to represent.
    #[error("invalid size {0:?}: too large")]
    TooLarge(String),
}

/// The whitespace class of upstream's pattern (`\s`: tab, newline, form feed,
/// carriage return, space).
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// Parses a size. `Ok(None)` means "whole layer" (empty text or zero bytes);
/// `Ok(Some(n))` is a chunk of `n` bytes.
pub fn parse_size(text: &str) -> Result<Option<u64>, SizeError> {
    if text.is_empty() {
        return Ok(None);
    }
    let format_err = || SizeError::Format(text.to_owned());
    let rest = text.trim_start_matches(is_space);
    let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if int_len == 0 {
        return Err(format_err());
    }
    let mut number_len = int_len;
    if rest[int_len..].starts_with('.') {
        let frac_len = rest[int_len + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if frac_len == 0 {
            return Err(format_err());
        }
        number_len += 1 + frac_len;
    }
    let (number, tail) = rest.split_at(number_len);
    // Case folding as upstream's (?i) does it, so e.g. U+212A KELVIN SIGN is a `k`.
    let unit = tail.trim_matches(is_space).to_lowercase();
    let multiplier: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "kb" => 1024.0,
        "mb" => 1024.0 * 1024.0,
        "gb" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format_err()),
    };
    let value: f64 = number.parse().map_err(|_| format_err())?;
    let bytes = value * multiplier;
    // 2^63: the first value a signed 64-bit byte count cannot hold.
    if !bytes.is_finite() || bytes >= 9_223_372_036_854_775_808.0 {
        return Err(SizeError::TooLarge(text.to_owned()));
    }
    // Truncation toward zero, as upstream's integer conversion does; the
    // value is finite, non-negative and below 2^63 here.
    let whole = bytes.trunc() as u64;
    Ok((whole != 0).then_some(whole))
}

/// A chunk size as written in the config file together with its parsed value.
///
/// The text is kept so that `config dump` shows what the user wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChunkSize {
    text: String,
    bytes: Option<u64>,
}

impl ChunkSize {
    /// Parses `text` with [`parse_size`].
    pub fn parse(text: &str) -> Result<Self, SizeError> {
        Ok(Self {
            text: text.to_owned(),
            bytes: parse_size(text)?,
        })
    }

    /// Fetch whole layers (the default, written as `""`).
    pub fn whole_layer() -> Self {
        Self::default()
    }

    /// The size in bytes of each chunk, or `None` for "whole layer".
    pub fn bytes(&self) -> Option<u64> {
        self.bytes
    }

    /// The text as written in the config file.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for ChunkSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KB: u64 = 1024;
    const MB: u64 = 1024 * KB;
    const GB: u64 = 1024 * MB;

    /// The cases of upstream's TestSizeParser plus the ones named in the spec.
    #[test]
    fn size_parser_cases() {
        let ok: &[(&str, Option<u64>)] = &[
            ("", None),
            ("100B", Some(100)),
            ("1024", Some(1024)),
            ("1KB", Some(KB)),
            ("1kb", Some(KB)),
            ("1Kb", Some(KB)),
            ("1MB", Some(MB)),
            ("8mb", Some(8 * MB)),
            ("16mb", Some(16 * MB)),
            ("1GB", Some(GB)),
            ("1gb", Some(GB)),
            ("1.5MB", Some(MB + MB / 2)),
            ("  1 MB  ", Some(MB)),
            ("0", None),
            ("0mb", None),
            ("0.1", None),
            ("1.9", Some(1)),
            ("\t2\nkb\r", Some(2 * KB)),
            ("1\u{212A}b", Some(KB)),
            ("8589934591gb", Some(8_589_934_591 * GB)),
        ];
        for (input, want) in ok {
            assert_eq!(parse_size(input), Ok(*want), "input {input:?}");
        }
        let bad = [
            "-100B",
            "invalid",
            "1000m",
            "1.",
            ".5",
            "1e3",
            "1 k b",
            "kb",
            " ",
            "1tb",
            "+1",
            "1_000",
            "１",
            "1\u{a0}kb",
        ];
        for input in bad {
            assert!(
                matches!(parse_size(input), Err(SizeError::Format(_))),
                "input {input:?} gave {:?}",
                parse_size(input)
            );
        }
        for input in ["8589934592gb", "99999999999999999999999", &"9".repeat(400)] {
            assert!(
                matches!(parse_size(input), Err(SizeError::TooLarge(_))),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn chunk_size_keeps_text() {
        let c = ChunkSize::parse(" 8MB").unwrap();
        assert_eq!(c.as_str(), " 8MB");
        assert_eq!(c.bytes(), Some(8 * MB));
        assert_eq!(ChunkSize::whole_layer().bytes(), None);
        assert_eq!(ChunkSize::whole_layer().as_str(), "");
    }
}
