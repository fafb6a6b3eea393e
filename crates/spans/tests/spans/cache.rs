//! Span caches under a manager: persistence across instances, corrupt files,
//! eviction while running.

use std::fs;
use std::sync::Arc;

use soci_spans::{DiskSpanCache, MemSpanCache, SpanCache, SpanSource};

use crate::common::*;

#[test]
fn disk_cache_persists_across_managers() {
    let l = layer(301, Kind::Gzip(1, false), 40_000);
    let dir = tempfile::tempdir().unwrap();

    let first = l.faulty_reader();
    {
        let cache = Arc::new(DiskSpanCache::new(dir.path()).unwrap());
        let mgr = l.manager(first.clone(), cache.clone(), fast_config());
        assert!(read_all(&mgr, 100_000) == l.expected());
        assert!(cache.bytes_used() >= l.expected().len() as u64);
        for s in 0..mgr.num_spans() {
            let u = mgr.span_geometry(s).unwrap().uncompressed;
            if u.start < mgr.size() {
                assert!(cache.span_path(&l.digest, s).exists());
            }
        }
    }

    // A new process: new cache instance, new manager, new reader.
    let second = l.faulty_reader();
    let cache = Arc::new(DiskSpanCache::new(dir.path()).unwrap());
    let mgr = l.manager(second.clone(), cache, fast_config());
    second.reset_counters();
    assert!(read_all(&mgr, 77_777) == l.expected());
    assert_eq!(second.calls(), 0, "everything came from the disk cache");
    assert_eq!(mgr.stats().spans_fetched, 0);
    assert!(mgr.stats().cache_hits > 0);
    // fetch_spans finds them in the cache too.
    mgr.fetch_spans(0..=mgr.max_span_id()).unwrap();
    assert_eq!(second.calls(), 0);
}

#[test]
fn corrupt_truncated_and_missing_cache_files_are_fetched_again() {
    let l = layer(302, Kind::Gzip(1, true), 40_000);
    let dir = tempfile::tempdir().unwrap();
    let (flipped, truncated, missing, garbage) = {
        let cache = Arc::new(DiskSpanCache::new(dir.path()).unwrap());
        let mgr = l.manager(l.file_reader(), cache.clone(), fast_config());
        assert!(read_all(&mgr, 100_000) == l.expected());
        let s = interior_span(&mgr);
        let (a, b, c, d) = (s, s + 1, s + 2, s + 3);
        assert!(d < mgr.max_span_id());

        let pa = cache.span_path(&l.digest, a);
        let mut bytes = fs::read(&pa).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&pa, bytes).unwrap();

        let pb = cache.span_path(&l.digest, b);
        let len = fs::metadata(&pb).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&pb)
            .unwrap()
            .set_len(len / 2)
            .unwrap();

        fs::remove_file(cache.span_path(&l.digest, c)).unwrap();
        fs::write(cache.span_path(&l.digest, d), b"not a span").unwrap();
        (a, b, c, d)
    };

    let reader = l.faulty_reader();
    let cache = Arc::new(DiskSpanCache::new(dir.path()).unwrap());
    let mgr = l.manager(reader.clone(), cache.clone(), fast_config());
    reader.reset_counters();
    assert!(read_all(&mgr, 100_000) == l.expected());
    assert_eq!(mgr.stats().spans_fetched, 4);
    let fetched: Vec<_> = reader.requests().concat();
    for s in [flipped, truncated, missing, garbage] {
        let c = mgr.span_geometry(s).unwrap().compressed;
        assert!(
            fetched.iter().any(|r| r.start <= c.start && c.end <= r.end),
            "span {s} was fetched again"
        );
    }
    // And they are good on disk again.
    let cache = DiskSpanCache::new(dir.path()).unwrap();
    for s in [flipped, truncated, missing, garbage] {
        let u = mgr.span_geometry(s).unwrap().uncompressed;
        let got = cache.get(&l.digest, s, u.end - u.start).unwrap();
        assert!(got.to_vec().unwrap() == l.expected()[u.start as usize..u.end as usize]);
    }
}

#[test]
fn evicted_spans_are_fetched_again() {
    let l = layer(303, Kind::Tar, 50_000);
    let cache = Arc::new(MemSpanCache::new());
    let reader = l.faulty_reader();
    let mgr = l.manager(reader.clone(), cache.clone(), fast_config());
    reader.reset_counters();
    assert!(read(&mgr, 10, 1000) == l.expected()[10..1010]);
    assert!(mgr.is_fetched(0));
    assert!(cache.bytes_used() > 0);
    cache.remove_layer(&l.digest).unwrap();
    assert_eq!(cache.bytes_used(), 0);
    assert!(read(&mgr, 10, 1000) == l.expected()[10..1010]);
    assert_eq!(reader.calls(), 2);
    assert_eq!(mgr.stats().spans_fetched, 2);
    assert!(mgr.is_fetched(0));
}

#[test]
fn a_memory_cache_is_shared_between_managers_of_a_layer() {
    let l = layer(304, Kind::Gzip(1, false), 60_000);
    let cache = Arc::new(MemSpanCache::new());
    let a = l.manager(l.file_reader(), cache.clone(), fast_config());
    assert!(read_all(&a, 1 << 20) == l.expected());
    let reader = l.faulty_reader();
    let b = l.manager(reader.clone(), cache.clone(), fast_config());
    reader.reset_counters();
    assert!(read_all(&b, 1 << 20) == l.expected());
    assert_eq!(reader.calls(), 0);
    assert_eq!(b.size(), a.size());
}

#[test]
fn an_unwritable_disk_cache_does_not_stop_reads() {
    let l = layer(305, Kind::Gzip(1, false), 60_000);
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(DiskSpanCache::new(dir.path()).unwrap());
    // A file where the layer's directory should be: every put fails.
    fs::write(dir.path().join(l.digest.hex()), b"in the way").unwrap();
    let reader = l.faulty_reader();
    let mgr = l.manager(reader.clone(), cache, fast_config());
    assert!(read(&mgr, 0, 5000) == l.expected()[..5000]);
    assert!(!mgr.is_fetched(0));
    assert!(read(&mgr, 0, 5000) == l.expected()[..5000]);
    assert_eq!(mgr.stats().spans_fetched, 2);
}
