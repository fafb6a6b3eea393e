//! What the span manager records in the process-wide metrics agrees with its
//! own counters: fetched bytes (reads vs background), cache hits and misses,
//! verification failures. Each test uses a layer no other test uses, since the
//! metrics registry is shared by the whole test binary.

use std::sync::Arc;

use soci_spans::{MemSpanCache, SpanManagerConfig, SpanSource};

use crate::common::*;

fn sample(name: &str, layer: &str) -> f64 {
    let text = String::from_utf8(soci_metrics::render()).unwrap();
    let prefix = format!("{name}{{layer=\"{layer}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn reads_and_background_fetches_are_counted_apart() {
    let l = layer(9001, Kind::Gzip(1, false), 32_768);
    let mgr = l.manager(
        l.faulty_reader(),
        Arc::new(MemSpanCache::new()),
        fast_config(),
    );
    let layer = l.digest.to_string();
    let header = mgr.stats().fetched_compressed_bytes;
    assert!(header > 0, "the gzip header is read at open");
    assert_eq!(sample("soci_fs_fetched_bytes_total", &layer), header as f64);

    // A reader's fetch.
    let s = interior_span(&mgr);
    let u = mgr.span_geometry(s).unwrap().uncompressed;
    read(&mgr, u.start, 10);
    let after_read = mgr.stats().fetched_compressed_bytes;
    assert!(after_read > header);
    assert_eq!(
        sample("soci_fs_fetched_bytes_total", &layer),
        after_read as f64
    );
    assert_eq!(
        sample("soci_fs_background_fetched_bytes_total", &layer),
        0.0
    );
    assert_eq!(sample("soci_fs_span_cache_misses_total", &layer), 1.0);

    // Read again: a cache hit, nothing fetched.
    read(&mgr, u.start + 5, 10);
    assert_eq!(sample("soci_fs_span_cache_hits_total", &layer), 1.0);
    assert_eq!(
        sample("soci_fs_fetched_bytes_total", &layer),
        after_read as f64
    );

    // Background fetch of everything else.
    mgr.fetch_spans(0..=mgr.max_span_id()).unwrap();
    let total = mgr.stats().fetched_compressed_bytes;
    assert_eq!(sample("soci_fs_fetched_bytes_total", &layer), total as f64);
    assert_eq!(
        sample("soci_fs_background_fetched_bytes_total", &layer),
        (total - after_read) as f64
    );
    assert_eq!(
        sample("soci_fs_span_cache_misses_total", &layer),
        f64::from(mgr.num_spans())
    );
    assert_eq!(mgr.read_at(0, &mut [0u8; 1]).unwrap(), 1);
}

#[test]
fn verification_failures_are_counted() {
    let l = layer(9002, Kind::Tar, 32_768);
    let reader = l.faulty_reader();
    let config = SpanManagerConfig {
        max_span_verification_retries: 1,
        ..fast_config()
    };
    let mgr = l.manager(reader.clone(), Arc::new(MemSpanCache::new()), config);
    let s = interior_span(&mgr);
    reader.flip_bits(middle_of_span(&mgr, s), 0x04, u64::MAX);
    let u = mgr.span_geometry(s).unwrap().uncompressed;
    assert!(mgr.read_at(u.start, &mut [0u8; 8]).is_err());
    assert_eq!(mgr.stats().verification_failures, 2);
    assert_eq!(
        sample(
            "soci_fs_span_verification_failures_total",
            &l.digest.to_string()
        ),
        2.0
    );
}
