//! Go `time.Time` text forms used by the zTOC `mod_time` field.
//!
//! Upstream stores `ModTime.MarshalText()` (RFC 3339 with nanoseconds, trailing zeros
//! trimmed) and ignores its error, so a year outside `0..=9999` becomes an empty
//! string. Reading uses `UnmarshalText` (strict RFC 3339, any offset).

/// Seconds from the Unix epoch to 0000-01-01T00:00:00Z.
const MIN_SECS: i64 = -62_167_219_200;
/// Seconds from the Unix epoch to 9999-12-31T23:59:59Z.
const MAX_SECS: i64 = 253_402_300_799;

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) to days since 1970-01-01, proleptic Gregorian.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Go `time.Unix(secs, nanos).UTC().MarshalText()`: `2023-05-01T12:00:00Z`,
/// `2023-05-01T12:00:00.5Z`; the zero `time.Time` gives `0001-01-01T00:00:00Z`.
///
/// `nanos` must be below 1e9. Years outside `0..=9999` make Go's `MarshalText` fail;
/// upstream ignores that error and stores an empty string, and so does this function.
pub fn format_go_time(secs: i64, nanos: u32) -> String {
    debug_assert!(nanos < 1_000_000_000);
    if !(MIN_SECS..=MAX_SECS).contains(&secs) {
        return String::new();
    }
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Go `time.Time.UnmarshalText` (strict RFC 3339): `YYYY-MM-DDTHH:MM:SS[.frac]`
/// followed by `Z` or `±HH:MM`. Returns Unix seconds and nanoseconds (fraction
/// digits beyond nine are ignored), or `None` when Go would return an error.
pub fn parse_go_time(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    fn num(b: &[u8], min: u32, max: u32) -> Option<u32> {
        let mut x: u32 = 0;
        for &c in b {
            if !c.is_ascii_digit() {
                return None;
            }
            x = x * 10 + u32::from(c - b'0');
        }
        (min..=max).contains(&x).then_some(x)
    }
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = i64::from(num(&b[0..4], 0, 9999)?);
    let month = num(&b[5..7], 1, 12)?;
    let day = num(&b[8..10], 1, days_in_month(year, month))?;
    let hour = num(&b[11..13], 0, 23)?;
    let minute = num(&b[14..16], 0, 59)?;
    let second = num(&b[17..19], 0, 59)?;
    let mut rest = &b[19..];
    let mut nanos: u32 = 0;
    if rest.len() >= 2 && rest[0] == b'.' && rest[1].is_ascii_digit() {
        let n = 1 + rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let digits = rest[1..n].iter().map(|&c| u32::from(c - b'0'));
        for digit in digits.chain(std::iter::repeat(0)).take(9) {
            nanos = nanos * 10 + digit;
        }
        rest = &rest[n..];
    }
    let offset: i64 = if rest == b"Z" {
        0
    } else {
        if rest.len() != 6 || rest[3] != b':' {
            return None;
        }
        let sign = match rest[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let h = num(&rest[1..3], 0, 23)?;
        let m = num(&rest[4..6], 0, 59)?;
        sign * i64::from(h * 3600 + m * 60)
    };
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset;
    Some((secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_vectors() {
        assert_eq!(format_go_time(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(format_go_time(1_682_942_400, 0), "2023-05-01T12:00:00Z");
        assert_eq!(
            format_go_time(1_682_942_400, 500_000_000),
            "2023-05-01T12:00:00.5Z"
        );
        assert_eq!(
            format_go_time(1_682_942_400, 1),
            "2023-05-01T12:00:00.000000001Z"
        );
        assert_eq!(
            format_go_time(1_682_942_400, 123_456_780),
            "2023-05-01T12:00:00.12345678Z"
        );
        assert_eq!(format_go_time(-62_135_596_800, 0), "0001-01-01T00:00:00Z");
        assert_eq!(
            format_go_time(-1, 999_999_999),
            "1969-12-31T23:59:59.999999999Z"
        );
        assert_eq!(format_go_time(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(format_go_time(MIN_SECS, 0), "0000-01-01T00:00:00Z");
        assert_eq!(format_go_time(MAX_SECS, 0), "9999-12-31T23:59:59Z");
        assert_eq!(format_go_time(MIN_SECS - 1, 0), "");
        assert_eq!(format_go_time(MAX_SECS + 1, 0), "");
        assert_eq!(format_go_time(i64::MAX, 0), "");
        assert_eq!(format_go_time(i64::MIN, 0), "");
        // 8^11 - 1: the largest ustar octal mtime.
        assert_eq!(format_go_time(8_589_934_591, 0), "2242-03-16T12:56:31Z");
    }

    #[test]
    fn parse_vectors() {
        assert_eq!(
            parse_go_time("2023-05-01T12:00:00Z"),
            Some((1_682_942_400, 0))
        );
        assert_eq!(
            parse_go_time("2023-05-01T12:00:00.5Z"),
            Some((1_682_942_400, 500_000_000))
        );
        assert_eq!(
            parse_go_time("2023-05-01T14:00:00+02:00"),
            Some((1_682_942_400, 0))
        );
        assert_eq!(
            parse_go_time("2023-05-01T04:30:00-07:30"),
            Some((1_682_942_400, 0))
        );
        assert_eq!(
            parse_go_time("0001-01-01T00:00:00Z"),
            Some((-62_135_596_800, 0))
        );
        assert_eq!(
            parse_go_time("2023-05-01T12:00:00.1234567891Z"),
            Some((1_682_942_400, 123_456_789))
        );
        for bad in [
            "",
            "2023-05-01 12:00:00Z",
            "2023-05-01T12:00:00",
            "2023-05-01t12:00:00Z",
            "2023-05-01T12:00:00z",
            "2023-02-29T12:00:00Z",
            "2023-13-01T12:00:00Z",
            "2023-05-01T24:00:00Z",
            "2023-05-01T12:60:00Z",
            "2023-05-01T12:00:60Z",
            "2023-05-01T12:00:00.Z",
            "2023-05-01T12:00:00+24:00",
            "2023-05-01T12:00:00+0200",
            "2023-05-01T12:00:00,5Z",
            "2023-05-01T12:00:00ZZ",
            "+2023-05-01T12:00:00Z",
        ] {
            assert_eq!(parse_go_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trip_over_the_whole_range() {
        let mut s = MIN_SECS;
        while s <= MAX_SECS {
            let text = format_go_time(s, 7);
            assert_eq!(parse_go_time(&text), Some((s, 7)), "{text}");
            s += 86_400 * 97 + 3_723;
        }
    }
}
