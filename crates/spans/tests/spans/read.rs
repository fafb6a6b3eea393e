//! Every byte served equals the tar: files, random ranges, span boundaries,
//! ends, for gzip and uncompressed layers and several span sizes.

use std::sync::Arc;

use soci_format::testutil::{EndOfArchive, Rng};
use soci_spans::{MemSpanCache, SpanSource};

use crate::common::*;

fn check_layer(l: &Layer, seed: u64) {
    let mgr = l.simple_manager();
    let expected = l.expected();
    assert_eq!(mgr.size(), expected.len() as u64);

    // Every regular file, as the filesystem would read it.
    for (e, content) in l.tar.entries.iter().zip(&l.tar.contents) {
        if content.is_empty() {
            continue;
        }
        let got = read(&mgr, e.uncompressed_offset, content.len());
        assert!(got == *content, "file {:?} differs", e.name);
    }

    // Random ranges, including ones that cross span boundaries and the end.
    let mut rng = Rng::new(seed);
    let size = expected.len() as u64;
    for _ in 0..300 {
        let off = rng.below(size + 100);
        let len = match rng.below(4) {
            0 => rng.range(1, 16) as usize,
            1 => rng.range(1, 5000) as usize,
            2 => rng.range(1, 200_000) as usize,
            _ => 4096,
        };
        let got = read(&mgr, off, len);
        let want = if off >= size {
            &[][..]
        } else {
            &expected[off as usize..(off as usize + len).min(size as usize)]
        };
        assert!(got == want, "range {off}+{len} differs");
    }

    // Reads exactly around every span boundary.
    for s in 1..mgr.num_spans() {
        let b = mgr.span_geometry(s).unwrap().uncompressed.start;
        if b == 0 || b >= size {
            continue;
        }
        for (back, len) in [
            (1u64, 2usize),
            (1, 1),
            (0, 1),
            (100, 200),
            (b.min(7000), 9000),
        ] {
            let off = b.saturating_sub(back);
            let got = read(&mgr, off, len);
            let end = (off as usize + len).min(size as usize);
            assert!(
                got == expected[off as usize..end],
                "boundary {b}: {off}+{len}"
            );
        }
    }

    // The whole layer in one read and in odd-sized chunks.
    assert!(read(&mgr, 0, expected.len() + 10) == expected);
    assert!(read_all(&mgr, 131_072 + 17) == expected);
}

#[test]
fn gzip_layers_serve_the_tar_bytes() {
    let cases: &[(u64, Kind, u64)] = &[
        (1, Kind::Gzip(1, false), 65_536),
        (2, Kind::Gzip(1, true), 200_000),
        (3, Kind::Gzip(3, false), 32_768),
        (4, Kind::Gzip(4, true), 1 << 20),
        (5, Kind::Gzip(1, false), 1 << 22),
        (6, Kind::Gzip(2, false), 10_000),
    ];
    for &(seed, kind, span) in cases {
        let l = layer(seed, kind, span);
        check_layer(&l, seed);
    }
}

#[test]
fn uncompressed_layers_serve_the_tar_bytes() {
    for (seed, span, end) in [
        (11, 4096, EndOfArchive::TwoZeroBlocks),
        (12, 65_536, EndOfArchive::RecordPadded(10_240)),
        (13, 100_000, EndOfArchive::OneZeroBlock),
        (14, 1 << 22, EndOfArchive::Missing),
        (15, 777, EndOfArchive::RecordPadded(10_240)),
    ] {
        let l = layer_from(tar_fixture(seed, end), Kind::Tar, span);
        check_layer(&l, seed);
    }
}

#[test]
fn gzip_layer_with_record_padding_stops_at_the_archive_end() {
    // Bytes after the end-of-archive exist in the stream but are not served.
    let l = layer_from(
        tar_fixture(21, EndOfArchive::RecordPadded(10_240)),
        Kind::Gzip(1, false),
        16_384,
    );
    assert!(l.tar.bytes.len() as u64 > l.ztoc.uncompressed_archive_size);
    check_layer(&l, 21);
}

#[test]
fn reads_at_and_past_the_end() {
    let l = layer(31, Kind::Gzip(1, false), 65_536);
    let mgr = l.simple_manager();
    let size = mgr.size();
    let mut buf = vec![0u8; 100];
    assert_eq!(mgr.read_at(size, &mut buf).unwrap(), 0);
    assert_eq!(mgr.read_at(size + 1, &mut buf).unwrap(), 0);
    assert_eq!(mgr.read_at(u64::MAX, &mut buf).unwrap(), 0);
    assert_eq!(mgr.read_at(u64::MAX - 10, &mut buf).unwrap(), 0);
    assert_eq!(mgr.read_at(0, &mut []).unwrap(), 0);
    assert_eq!(mgr.read_at(size - 40, &mut buf).unwrap(), 40);
    assert_eq!(&buf[..40], &l.expected()[size as usize - 40..]);
    assert_eq!(mgr.span_ids_for_range(size, 10), None);
    assert_eq!(mgr.span_ids_for_range(0, 0), None);
    assert_eq!(
        mgr.span_ids_for_range(size - 1, 1000),
        Some(mgr.max_span_id()..=mgr.max_span_id())
    );
}

#[test]
fn span_ids_for_range_matches_the_geometry() {
    let l = layer(32, Kind::Gzip(2, false), 40_000);
    let mgr = l.simple_manager();
    let size = mgr.size();
    let mut rng = Rng::new(5);
    for _ in 0..2000 {
        let off = rng.below(size);
        let len = rng.range(1, 300_000);
        let ids = mgr.span_ids_for_range(off, len).unwrap();
        let end = (off + len).min(size);
        let first = mgr.span_geometry(*ids.start()).unwrap().uncompressed;
        let last = mgr.span_geometry(*ids.end()).unwrap().uncompressed;
        assert!(
            first.start <= off && off < first.end,
            "{off} not in {first:?}"
        );
        assert!(last.start < end && end <= last.end, "{end} not in {last:?}");
    }
}

#[test]
fn one_blob_read_per_read_with_adjacent_spans_merged() {
    let l = layer(41, Kind::Gzip(1, false), 32_768);
    let reader = l.faulty_reader();
    let mgr = l.manager(reader.clone(), Arc::new(MemSpanCache::new()), fast_config());
    reader.reset_counters();
    assert!(mgr.num_spans() >= 8);

    // A read over spans 2..=5.
    let start = mgr.span_geometry(2).unwrap().uncompressed.start + 10;
    let end = mgr.span_geometry(5).unwrap().uncompressed.start + 10;
    let got = read(&mgr, start, (end - start) as usize);
    assert!(got == l.expected()[start as usize..end as usize]);
    assert_eq!(reader.calls(), 1);
    let requests = reader.requests();
    assert_eq!(
        requests[0],
        vec![
            mgr.span_geometry(2).unwrap().compressed.start
                ..mgr.span_geometry(5).unwrap().compressed.end
        ],
        "adjacent spans (which may share a byte) are one range"
    );
    let stats = mgr.stats();
    assert_eq!(stats.spans_fetched, 4);
    assert_eq!(stats.cache_hits, 0);

    // Spans 1..=7 now: 2..=5 come from the cache, 1 and 6..=7 in one call as
    // two ranges.
    let start = mgr.span_geometry(1).unwrap().uncompressed.start;
    let end = mgr.span_geometry(7).unwrap().uncompressed.end;
    let got = read(&mgr, start, (end - start) as usize);
    assert!(got == l.expected()[start as usize..end as usize]);
    assert_eq!(reader.calls(), 2);
    let requests = reader.requests();
    assert_eq!(requests[1].len(), 2, "{:?}", requests[1]);
    assert_eq!(mgr.stats().spans_fetched, 7);
    assert_eq!(mgr.stats().cache_hits, 4);

    // Everything local: no more blob reads.
    let got = read(&mgr, start, (end - start) as usize);
    assert!(got == l.expected()[start as usize..end as usize]);
    assert_eq!(reader.calls(), 2);
}

#[test]
fn fetched_percent_reaches_100() {
    for (kind, span) in [(Kind::Gzip(1, false), 50_000), (Kind::Tar, 30_000)] {
        let l = layer(51, kind, span);
        let mgr = l.simple_manager();
        let before = mgr.state();
        assert_eq!(before.digest, l.digest);
        assert_eq!(before.size, l.blob.len() as u64);
        assert!(before.fetched_percent < 5.0);
        read(&mgr, 0, 1);
        let one = mgr.fetched_size();
        assert!(one > 0 && one < l.blob.len() as u64);
        assert!(read_all(&mgr, 65_536) == l.expected());
        // Spans past the archive end are never read; fetch them too.
        mgr.fetch_spans(0..=mgr.max_span_id()).unwrap();
        assert_eq!(mgr.fetched_spans(), mgr.num_spans());
        assert_eq!(mgr.fetched_size(), l.blob.len() as u64);
        assert_eq!(mgr.fetched_percent(), 100.0);
        assert_eq!(mgr.state().fetched_percent, 100.0);
        assert_eq!(mgr.next_unfetched(0), None);
    }
}

#[test]
fn fetch_spans_batches_and_then_reads_are_local() {
    let l = layer(61, Kind::Gzip(1, false), 20_000);
    let reader = l.faulty_reader();
    let config = soci_spans::SpanManagerConfig {
        prefetch_batch_spans: 3,
        ..fast_config()
    };
    let mgr = l.manager(reader.clone(), Arc::new(MemSpanCache::new()), config);
    reader.reset_counters();
    let n = mgr.num_spans() as u64;
    mgr.fetch_spans(0..=mgr.max_span_id()).unwrap();
    assert_eq!(reader.calls(), n.div_ceil(3));
    assert!(read_all(&mgr, 100_000) == l.expected());
    assert_eq!(reader.calls(), n.div_ceil(3));
    assert!(mgr.fetch_spans(0..=mgr.num_spans()).is_err());
    let (from, to) = (3, 2);
    mgr.fetch_spans(from..=to).unwrap();
}
