//! HTTP byte ranges: planning `Range` headers, parsing `Content-Range` and
//! `multipart/byteranges` bodies, and cutting the asked-for ranges out of
//! whatever the server sent (206 single, 206 multipart, or a plain 200).

use std::ops::Range;

/// Ranges closer than this are fetched as one (the gap is read and dropped).
pub(crate) const MERGE_GAP: u64 = 64 << 10;
/// At most this many ranges go into one `Range` header.
pub(crate) const MAX_RANGES_PER_REQUEST: usize = 32;

/// Sort and merge `ranges` (empty ones dropped) into fetch ranges, merging
/// neighbours whose gap is at most `gap`.
pub(crate) fn coalesce(ranges: &[Range<u64>], gap: u64) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| r.start < r.end).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(gap) => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

/// `bytes=a-b[,c-d...]` for non-empty ranges.
pub(crate) fn header_value(ranges: &[Range<u64>]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|r| format!("{}-{}", r.start, r.end - 1))
        .collect();
    format!("bytes={}", parts.join(","))
}

/// Ranges as text for error messages (`[0..10, 20..30]`, shortened when long).
pub(crate) fn describe(ranges: &[Range<u64>]) -> String {
    let mut parts: Vec<String> = ranges
        .iter()
        .take(4)
        .map(|r| format!("{}..{}", r.start, r.end))
        .collect();
    if ranges.len() > 4 {
        parts.push(format!("... ({} ranges)", ranges.len()));
    }
    format!("bytes [{}]", parts.join(", "))
}

/// A parsed `Content-Range: bytes a-b/total` (total may be `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentRange {
    pub range: Range<u64>,
    pub total: Option<u64>,
}

pub(crate) fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.trim().split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let last: u64 = b.trim().parse().ok()?;
    if last < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange {
        range: start..last + 1,
        total,
    })
}

/// The `boundary` of a `multipart/byteranges` content type, if it is one.
pub(crate) fn multipart_boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    let mime = parts.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/byteranges") {
        return None;
    }
    for p in parts {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("boundary")
        {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(v);
            if !v.is_empty() {
                return Some(v.to_string());
            }
        }
    }
    None
}

/// One part of a `multipart/byteranges` body: its range and bytes.
pub(crate) type Part<'a> = (Range<u64>, &'a [u8]);

/// Split a `multipart/byteranges` body into `(range, bytes)` parts. Each
/// part's length comes from its `Content-Range`, so binary data that happens
/// to contain the boundary is handled.
pub(crate) fn parse_multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let mut pos = find(body, delim, 0).ok_or("multipart body has no boundary")?;
    let mut parts = Vec::new();
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            return Ok(parts);
        }
        // Rest of the boundary line.
        let eol = find(body, b"\n", pos).ok_or("truncated multipart body")?;
        pos = eol + 1;
        // Part headers up to an empty line.
        let mut range = None;
        loop {
            let eol = find(body, b"\n", pos).ok_or("truncated multipart part headers")?;
            let line = String::from_utf8_lossy(&body[pos..eol]);
            let line = line.trim_end_matches('\r');
            pos = eol + 1;
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.trim().eq_ignore_ascii_case("content-range")
            {
                range = Some(
                    parse_content_range(v)
                        .ok_or_else(|| {
                            format!("bad Content-Range {:?} in multipart part", v.trim())
                        })?
                        .range,
                );
            }
        }
        let range = range.ok_or("multipart part without Content-Range")?;
        let len = usize::try_from(range.end - range.start).map_err(|_| "part too large")?;
        let data = body
            .get(pos..pos + len)
            .ok_or("multipart part shorter than its Content-Range")?;
        parts.push((range, data));
        pos += len;
        pos = find(body, delim, pos).ok_or("multipart body ends without closing boundary")?;
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() || needle.is_empty() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Collects the requested ranges from pieces of the blob fed in any order.
/// Bytes are only taken contiguously, so overlapping or repeated pieces are
/// harmless and a gap shows up as a missing tail.
pub(crate) struct Extractor {
    wanted: Vec<Range<u64>>,
    out: Vec<Vec<u8>>,
}

impl Extractor {
    pub fn new(wanted: &[Range<u64>]) -> Extractor {
        Extractor {
            wanted: wanted.to_vec(),
            out: wanted
                .iter()
                .map(|r| Vec::with_capacity((r.end.saturating_sub(r.start)) as usize))
                .collect(),
        }
    }

    /// Offer the bytes `data` found at blob offset `offset`.
    pub fn feed(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        for (r, buf) in self.wanted.iter().zip(self.out.iter_mut()) {
            let next = r.start + buf.len() as u64;
            if next >= r.end || next < offset || next >= end {
                continue;
            }
            let take_end = r.end.min(end);
            buf.extend_from_slice(&data[(next - offset) as usize..(take_end - offset) as usize]);
        }
    }

    /// The parts still missing.
    pub fn missing(&self) -> Vec<Range<u64>> {
        self.wanted
            .iter()
            .zip(&self.out)
            .filter_map(|(r, b)| {
                let next = r.start + b.len() as u64;
                (next < r.end).then_some(next..r.end)
            })
            .collect()
    }

    /// The buffers, one per requested range, in request order.
    pub fn finish(self) -> Vec<Vec<u8>> {
        self.out
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_and_formats() {
        assert_eq!(
            coalesce(&[10..20, 0..5, 5..5, 21..30], 0),
            vec![0..5, 10..20, 21..30]
        );
        assert_eq!(coalesce(&[10..20, 0..5, 21..30], 1), vec![0..5, 10..30]);
        assert_eq!(coalesce(&[0..10, 5..7], 0), vec![0..10]);
        assert_eq!(coalesce(&[], 10), Vec::<Range<u64>>::new());
        assert_eq!(header_value(&[0..5, 10..30]), "bytes=0-4,10-29");
        assert_eq!(describe(&[0..5]), "bytes [0..5]");
        assert!(describe(&[0..1, 1..2, 2..3, 3..4, 4..5]).contains("(5 ranges)"));
    }

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 0-99/1084132"),
            Some(ContentRange {
                range: 0..100,
                total: Some(1084132)
            })
        );
        assert_eq!(
            parse_content_range("bytes 5-5/*"),
            Some(ContentRange {
                range: 5..6,
                total: None
            })
        );
        assert_eq!(parse_content_range("bytes 5-4/10"), None);
        assert_eq!(parse_content_range("bytes 5-10/10"), None);
        assert_eq!(parse_content_range("bytes */10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn multipart() {
        assert_eq!(
            multipart_boundary("multipart/byteranges; boundary=abc"),
            Some("abc".into())
        );
        assert_eq!(
            multipart_boundary("Multipart/Byteranges;boundary=\"a b\""),
            Some("a b".into())
        );
        assert_eq!(multipart_boundary("application/octet-stream"), None);
        // Data containing the boundary marker itself.
        let body = b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-5/100\r\n\r\n--XX--\r\n--XX\r\nContent-Range: bytes 90-99/100\r\n\r\n0123456789\r\n--XX--\r\n";
        let parts = parse_multipart(body, "XX").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], (0..6, &b"--XX--"[..]));
        assert_eq!(parts[1], (90..100, &b"0123456789"[..]));
        assert!(parse_multipart(b"--XX\r\nContent-Range: bytes 0-5/100\r\n\r\nabc", "XX").is_err());
        assert!(parse_multipart(b"--XX\r\n\r\nabc\r\n--XX--", "XX").is_err());
        assert!(parse_multipart(b"nothing", "XX").is_err());
    }

    #[test]
    fn extractor() {
        let blob: Vec<u8> = (0..100u8).collect();
        let mut x = Extractor::new(&[2..5, 10..20, 95..100]);
        // Fed as a 200 stream in odd-sized chunks.
        for (i, c) in blob.chunks(7).enumerate() {
            x.feed(i as u64 * 7, c);
        }
        assert!(x.missing().is_empty());
        assert_eq!(
            x.finish(),
            vec![
                blob[2..5].to_vec(),
                blob[10..20].to_vec(),
                blob[95..100].to_vec()
            ]
        );

        let mut x = Extractor::new(&[2..5, 10..20]);
        x.feed(0, &blob[0..12]);
        x.feed(0, &blob[0..12]); // repeated piece: no double copy
        assert_eq!(x.missing(), vec![12..20]);
        x.feed(14, &blob[14..20]); // gap: not taken
        assert_eq!(x.missing(), vec![12..20]);
        x.feed(12, &blob[12..20]);
        assert!(x.missing().is_empty());
        assert_eq!(x.finish()[1], blob[10..20].to_vec());
    }
}
