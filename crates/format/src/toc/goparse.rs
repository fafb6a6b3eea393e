//! Text and number parsing with the exact acceptance rules of Go's `strconv` and
//! `archive/tar` (PAX records, PAX times, octal and base-256 header fields).
//!
//! Everything works on bytes: Go strings may hold any bytes, and the UTF-8 check
//! happens only when a value ends up in the TOC.

use std::collections::BTreeMap;

/// PAX records of one extended header, raw bytes, last record of a key wins.
pub(crate) type PaxRecords = BTreeMap<Vec<u8>, Vec<u8>>;

/// Largest "special file" (PAX header body, GNU long name or link) Go accepts.
pub(crate) const MAX_SPECIAL_FILE_SIZE: u64 = 1 << 20;

/// `strconv.ParseInt(s, 10, 64)`: optional sign, at least one ASCII digit, no
/// underscores, no overflow.
pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut magnitude: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(c - b'0'))?;
    }
    if negative {
        if magnitude > 1 << 63 {
            None
        } else {
            Some((magnitude as i64).wrapping_neg())
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Bytes up to (not including) the first NUL, like Go's `parser.parseString`.
pub(crate) fn c_string(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// Go's `parser.parseOctal`: trim spaces and NULs on both sides, stop at the first
/// NUL, then `strconv.ParseUint(.., 8, 64)` reinterpreted as `int64`.
pub(crate) fn parse_octal(field: &[u8]) -> Option<i64> {
    let is_pad = |c: &u8| *c == b' ' || *c == 0;
    let start = field.iter().position(|c| !is_pad(c));
    let Some(start) = start else {
        return Some(0);
    };
    let end = field
        .iter()
        .rposition(|c| !is_pad(c))
        .map_or(start, |e| e + 1);
    let digits = c_string(&field[start..end]);
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &c in digits {
        if !(b'0'..=b'7').contains(&c) {
            return None;
        }
        value = value.checked_mul(8)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(value as i64)
}

/// Go's `parser.parseNumeric`: GNU base-256 (two's complement, big endian) when
/// the top bit of the first byte is set, octal otherwise.
pub(crate) fn parse_numeric(field: &[u8]) -> Option<i64> {
    match field.first() {
        Some(&first) if first & 0x80 != 0 => {
            let invert: u8 = if first & 0x40 != 0 { 0xff } else { 0 };
            let mut x: u64 = 0;
            for (i, &byte) in field.iter().enumerate() {
                let mut c = byte ^ invert;
                if i == 0 {
                    c &= 0x7f;
                }
                if x >> 56 > 0 {
                    return None;
                }
                x = (x << 8) | u64::from(c);
            }
            if x >> 63 > 0 {
                return None;
            }
            if invert == 0xff {
                Some(!(x as i64))
            } else {
                Some(x as i64)
            }
        }
        _ => parse_octal(field),
    }
}

/// Go's `time.Unix(sec, nsec)` normalisation (wrapping like Go's int64 arithmetic).
pub(crate) fn unix_normalize(mut sec: i64, mut nsec: i64) -> (i64, u32) {
    const NANOS: i64 = 1_000_000_000;
    if !(0..NANOS).contains(&nsec) {
        let n = nsec / NANOS;
        sec = sec.wrapping_add(n);
        nsec -= n * NANOS;
        if nsec < 0 {
            nsec += NANOS;
            sec = sec.wrapping_sub(1);
        }
    }
    (sec, nsec as u32)
}

/// Go's `parsePAXTime`: `[-+]secs[.digits]`, at most nine fractional digits are
/// used (more are checked, then dropped), a leading `-` also negates the fraction.
pub(crate) fn parse_pax_time(s: &[u8]) -> Option<(i64, u32)> {
    let (secs_part, frac) = match s.iter().position(|&c| c == b'.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &s[s.len()..]),
    };
    let secs = parse_int(secs_part)?;
    if frac.is_empty() {
        return Some((secs, 0));
    }
    let mut nanos: i64 = 0;
    for (i, &c) in frac.iter().enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        if i < 9 {
            nanos = nanos * 10 + i64::from(c - b'0');
        }
    }
    for _ in frac.len()..9 {
        nanos *= 10;
    }
    if secs_part.first() == Some(&b'-') {
        Some(unix_normalize(secs, -nanos))
    } else {
        Some(unix_normalize(secs, nanos))
    }
}

/// One parsed PAX record and the bytes after it.
struct PaxRecord<'a> {
    key: &'a [u8],
    value: &'a [u8],
    rest: &'a [u8],
}

/// One `"%d %s=%s\n"` record split off the front of `s`.
fn parse_pax_record(s: &[u8]) -> Result<PaxRecord<'_>, String> {
    let space = s
        .iter()
        .position(|&c| c == b' ')
        .ok_or("record has no length field")?;
    let len_field = &s[..space];
    let rest = &s[space + 1..];
    let n = parse_int(len_field).ok_or_else(|| {
        format!(
            "invalid record length {:?}",
            String::from_utf8_lossy(len_field)
        )
    })?;
    if n < 5 || n as u64 > s.len() as u64 {
        return Err(format!(
            "record length {n} is out of range ({} bytes left)",
            s.len()
        ));
    }
    let n = n - (len_field.len() as i64 + 1);
    if n <= 0 {
        return Err("record length shorter than its own length field".into());
    }
    let n = n as usize;
    let (record, newline, remainder) = (&rest[..n - 1], rest[n - 1], &rest[n..]);
    if newline != b'\n' {
        return Err("record does not end with a newline".into());
    }
    let eq = record
        .iter()
        .position(|&c| c == b'=')
        .ok_or("record has no '=' between key and value")?;
    let (key, value) = (&record[..eq], &record[eq + 1..]);
    if key.is_empty() {
        return Err("record has an empty key".into());
    }
    let nul_checked = match key {
        b"path" | b"linkpath" | b"uname" | b"gname" => value,
        _ => key,
    };
    if nul_checked.contains(&0) {
        return Err(format!(
            "record {:?} contains a NUL byte",
            String::from_utf8_lossy(key)
        ));
    }
    Ok(PaxRecord {
        key,
        value,
        rest: remainder,
    })
}

/// Go's `parsePAX` on the body of an `x` (or `g`) header. GNU sparse 0.0
/// `GNU.sparse.offset`/`GNU.sparse.numbytes` pairs are folded into one
/// `GNU.sparse.map` record, as Go does.
pub(crate) fn parse_pax(mut s: &[u8]) -> Result<PaxRecords, String> {
    let mut records = PaxRecords::new();
    let mut sparse_map: Vec<&[u8]> = Vec::new();
    while !s.is_empty() {
        let PaxRecord { key, value, rest } = parse_pax_record(s)?;
        s = rest;
        match key {
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                let want = if sparse_map.len().is_multiple_of(2) {
                    &b"GNU.sparse.offset"[..]
                } else {
                    &b"GNU.sparse.numbytes"[..]
                };
                if key != want || value.contains(&b',') {
                    return Err("GNU sparse 0.0 offset/numbytes records out of order".into());
                }
                sparse_map.push(value);
            }
            _ => {
                records.insert(key.to_vec(), value.to_vec());
            }
        }
    }
    if !sparse_map.is_empty() {
        records.insert(b"GNU.sparse.map".to_vec(), sparse_map.join(&b","[..]));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_int_matches_go() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"+12"), Some(12));
        assert_eq!(parse_int(b"-0"), Some(0));
        assert_eq!(parse_int(b"007"), Some(7));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b"-9223372036854775809"), None);
        for bad in [
            &b""[..],
            b"+",
            b"-",
            b"1_0",
            b" 1",
            b"1 ",
            b"0x1",
            b"1.0",
            b"++1",
        ] {
            assert_eq!(parse_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn parse_octal_matches_go() {
        assert_eq!(parse_octal(b"0000644\0"), Some(0o644));
        assert_eq!(parse_octal(b"  644  "), Some(0o644));
        assert_eq!(parse_octal(b"\0\0\0\0"), Some(0));
        assert_eq!(parse_octal(b"        "), Some(0));
        assert_eq!(parse_octal(b"12\0 34"), Some(0o12));
        assert_eq!(parse_octal(b"12 34"), None);
        assert_eq!(parse_octal(b"8"), None);
        assert_eq!(parse_octal(b"-1"), None);
        assert_eq!(parse_octal(b"1777777777777777777777"), Some(-1));
        assert_eq!(parse_octal(b"2777777777777777777777"), None);
    }

    #[test]
    fn parse_numeric_base256() {
        assert_eq!(
            parse_numeric(&[0x80, 0, 0, 0, 0, 0, 0x10, 0x00]),
            Some(4096)
        );
        assert_eq!(parse_numeric(&[0xff; 8]), Some(-1));
        assert_eq!(
            parse_numeric(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]),
            Some(-2)
        );
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4] = 0x7f;
        big[5..].fill(0xff);
        assert_eq!(parse_numeric(&big), Some(i64::MAX));
        big[4] = 0xff;
        assert_eq!(parse_numeric(&big), None);
        let mut over = [0u8; 12];
        over[0] = 0x80;
        over[3] = 1;
        assert_eq!(parse_numeric(&over), None);
    }

    #[test]
    fn pax_time_matches_go() {
        assert_eq!(
            parse_pax_time(b"1350244992.023960108"),
            Some((1350244992, 23960108))
        );
        assert_eq!(
            parse_pax_time(b"1350244992.02396010"),
            Some((1350244992, 23960100))
        );
        assert_eq!(
            parse_pax_time(b"1350244992.3"),
            Some((1350244992, 300000000))
        );
        assert_eq!(parse_pax_time(b"1350244992"), Some((1350244992, 0)));
        assert_eq!(parse_pax_time(b"1350244992."), Some((1350244992, 0)));
        assert_eq!(parse_pax_time(b"-1.000000001"), Some((-2, 999999999)));
        assert_eq!(parse_pax_time(b"-1.5"), Some((-2, 500000000)));
        assert_eq!(parse_pax_time(b"-0.5"), Some((-1, 500000000)));
        assert_eq!(parse_pax_time(b"0.1234567891"), Some((0, 123456789)));
        assert_eq!(parse_pax_time(b"0.123456789x"), None);
        assert_eq!(parse_pax_time(b".5"), None);
        assert_eq!(parse_pax_time(b"1.-5"), None);
        assert_eq!(parse_pax_time(b""), None);
    }

    #[test]
    fn pax_records() {
        let recs = parse_pax(b"30 mtime=1432668921.098285006\n11 foo=bar\n5 k=\n").unwrap();
        assert_eq!(recs[&b"mtime"[..]], b"1432668921.098285006");
        assert_eq!(recs[&b"foo"[..]], b"bar");
        assert_eq!(recs[&b"k"[..]], b"");
        let recs = parse_pax(b"11 foo=bar\n11 foo=baz\n").unwrap();
        assert_eq!(recs[&b"foo"[..]], b"baz");
        let recs = parse_pax(
            b"23 GNU.sparse.offset=1\n25 GNU.sparse.numbytes=2\n23 GNU.sparse.offset=3\n25 GNU.sparse.numbytes=4\n",
        )
        .unwrap();
        assert_eq!(recs[&b"GNU.sparse.map"[..]], b"1,2,3,4");
        assert_eq!(recs.len(), 1);
        for bad in [
            &b"11 foo=bar"[..],
            b"10 foo=bar\n",
            b"12 foo=bar\n",
            b"4 a=\n",
            b"9 foobar\n",
            b"5 =a\n",
            b"x foo=bar\n",
            b"foo=bar\n",
            b"100 foo=bar\n",
            b"11 foo=bar\nX",
            b"12 path=a\0b\n",
            b"9 a\0b=c\n",
            b"25 GNU.sparse.numbytes=2\n",
            b"25 GNU.sparse.offset=1,2\n",
            b"1 ",
            b"-1 a=b\n",
        ] {
            assert!(
                parse_pax(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // A NUL inside an ordinary value is fine (xattr values are binary).
        assert!(parse_pax(b"26 SCHILY.xattr.user.a=\0\x01\n").is_ok());
    }
}
