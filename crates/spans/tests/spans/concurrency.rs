//! Single flight: concurrent readers of a span cause one fetch, and share its
//! error when it fails.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use soci_format::Digest;
use soci_format::testutil::Rng;
use soci_spans::{
    CachedSpan, MemSpanCache, SpanCache, SpanError, SpanId, SpanManagerConfig, SpanSource,
};

use crate::common::*;

#[test]
fn concurrent_readers_of_one_span_share_one_fetch() {
    let l = layer(201, Kind::Gzip(1, false), 65_536);
    let reader = l.faulty_reader();
    let mgr = Arc::new(l.manager(reader.clone(), Arc::new(MemSpanCache::new()), fast_config()));
    let s = interior_span(&mgr);
    let u = mgr.span_geometry(s).unwrap().uncompressed;
    reader.reset_counters();
    reader.set_delay(Duration::from_millis(200));

    let threads = 16;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads as u64)
        .map(|i| {
            let mgr = mgr.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                // Different offsets inside the same span.
                let off = u.start + i * ((u.end - u.start) / 20);
                (off, read(&*mgr, off, 32))
            })
        })
        .collect();
    for h in handles {
        let (off, got) = h.join().unwrap();
        assert!(got == l.expected()[off as usize..off as usize + got.len()]);
        assert!(!got.is_empty());
    }
    assert_eq!(reader.calls(), 1, "one blob read for 16 readers");
    assert_eq!(mgr.stats().spans_fetched, 1);
}

#[test]
fn waiters_get_the_error_of_the_fetch_they_waited_for() {
    let l = layer(202, Kind::Gzip(1, false), 65_536);
    let reader = l.faulty_reader();
    let config = SpanManagerConfig {
        max_retries: 0,
        ..fast_config()
    };
    let mgr = Arc::new(l.manager(reader.clone(), Arc::new(MemSpanCache::new()), config));
    let s = interior_span(&mgr);
    let off = mgr.span_geometry(s).unwrap().uncompressed.start;
    reader.reset_counters();
    reader.set_delay(Duration::from_millis(300));
    reader.fail_next(1);

    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mgr = mgr.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut buf = [0u8; 8];
                mgr.read_at(off, &mut buf)
            })
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert!(matches!(r, Err(SpanError::Fetch { first_span, .. }) if first_span == s));
    }
    assert_eq!(reader.calls(), 1, "waiters do not retry on their own");
    reader.set_delay(Duration::ZERO);
    assert_eq!(
        read(&*mgr, off, 8),
        l.expected()[off as usize..off as usize + 8]
    );
}

#[test]
fn concurrent_random_reads_fetch_every_span_at_most_once() {
    for kind in [Kind::Gzip(2, false), Kind::Tar] {
        let l = Arc::new(layer(203, kind, 24_576));
        let reader = l.faulty_reader();
        let mgr = Arc::new(l.manager(reader.clone(), Arc::new(MemSpanCache::new()), fast_config()));
        reader.reset_counters();
        reader.set_delay(Duration::from_millis(2));
        let size = mgr.size();
        let handles: Vec<_> = (0..8u64)
            .map(|t| {
                let mgr = mgr.clone();
                let l = l.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng::new(t);
                    for _ in 0..150 {
                        let off = rng.below(size);
                        let len = rng.range(1, 150_000) as usize;
                        let got = read(&*mgr, off, len);
                        let end = (off as usize + len).min(size as usize);
                        assert!(got == l.expected()[off as usize..end], "{off}+{len}");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let stats = mgr.stats();
        assert!(stats.spans_fetched <= u64::from(mgr.num_spans()));
        assert_eq!(stats.spans_fetched, u64::from(mgr.fetched_spans()));
        assert!(
            reader.bytes() <= l.blob.len() as u64 + u64::from(mgr.num_spans()),
            "no compressed byte fetched twice (except shared ones): {} of {}",
            reader.bytes(),
            l.blob.len()
        );
    }
}

/// A cache whose `put` panics (a bug somewhere below the manager).
struct PanickingCache;

impl SpanCache for PanickingCache {
    fn get(&self, _: &Digest, _: SpanId, _: u64) -> Option<CachedSpan> {
        None
    }
    fn put(&self, _: &Digest, _: SpanId, _: &[u8]) -> Result<(), SpanError> {
        panic!("put failed hard");
    }
    fn remove_layer(&self, _: &Digest) -> Result<(), SpanError> {
        Ok(())
    }
    fn bytes_used(&self) -> u64 {
        0
    }
}

#[test]
fn a_panicking_fetcher_releases_its_waiters() {
    let l = layer(204, Kind::Tar, 65_536);
    let reader = l.faulty_reader();
    let mgr = Arc::new(l.manager(reader.clone(), Arc::new(PanickingCache), fast_config()));
    reader.set_delay(Duration::from_millis(300));
    let barrier = Arc::new(Barrier::new(2));
    let spawn = |delay: u64| {
        let mgr = mgr.clone();
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            barrier.wait();
            std::thread::sleep(Duration::from_millis(delay));
            let mut buf = [0u8; 8];
            mgr.read_at(100, &mut buf)
        })
    };
    let first = spawn(0);
    let second = spawn(100);
    assert!(first.join().is_err(), "the fetching thread panicked");
    let r = second.join().expect("the waiter does not panic");
    assert!(
        matches!(r, Err(SpanError::Abandoned { span: 0, .. })),
        "{r:?}"
    );
    assert_eq!(reader.calls(), 1);
}
