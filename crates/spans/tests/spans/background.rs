//! The background fetcher: fills the cache, paced, pausable, bounded, stoppable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use soci_spans::{BackgroundFetchConfig, BackgroundFetcher, DropPolicy, MemSpanCache};

use crate::common::*;

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn quick() -> BackgroundFetchConfig {
    BackgroundFetchConfig {
        fetch_period: Duration::from_millis(1),
        silence_period: Duration::from_millis(300),
        ..BackgroundFetchConfig::default()
    }
}

#[test]
fn background_fetch_makes_every_span_local() {
    let a = layer(501, Kind::Gzip(1, false), 30_000);
    let b = layer(502, Kind::Tar, 30_000);
    let ra = a.faulty_reader();
    let rb = b.faulty_reader();
    let ma = Arc::new(a.manager(ra.clone(), Arc::new(MemSpanCache::new()), fast_config()));
    let mb = Arc::new(b.manager(rb.clone(), Arc::new(MemSpanCache::new()), fast_config()));
    let mut bg = BackgroundFetcher::new(quick());
    assert!(bg.add(&ma));
    assert!(bg.add(&mb));
    assert!(bg.add(&ma), "adding twice is fine");
    wait_for("both layers", Duration::from_secs(60), || {
        ma.fetched_percent() == 100.0 && mb.fetched_percent() == 100.0
    });
    wait_for("the queue to drain", Duration::from_secs(10), || {
        bg.queued() == 0
    });
    let stats = bg.stats();
    assert_eq!(
        stats.spans_fetched,
        u64::from(ma.num_spans() + mb.num_spans())
    );
    assert_eq!(stats.completed_layers, 2);
    // One span per blob read.
    assert!(ra.requests().iter().skip(1).all(|r| r.len() == 1));
    ra.reset_counters();
    assert!(read_all(&*ma, 100_000) == a.expected());
    assert_eq!(ra.calls(), 0);
    bg.stop();
    bg.stop();
    assert!(!bg.add(&ma));
}

#[test]
fn silence_pauses_background_fetch() {
    let l = layer(503, Kind::Gzip(1, false), 30_000);
    let reader = l.faulty_reader();
    let mgr = Arc::new(l.manager(reader.clone(), Arc::new(MemSpanCache::new()), fast_config()));
    reader.reset_counters();
    let bg = BackgroundFetcher::new(quick());
    bg.silence();
    let start = Instant::now();
    assert!(bg.add(&mgr));
    std::thread::sleep(Duration::from_millis(150));
    if start.elapsed() < Duration::from_millis(280) {
        assert_eq!(reader.calls(), 0, "silenced");
    }
    wait_for("the layer", Duration::from_secs(60), || {
        mgr.fetched_percent() == 100.0
    });
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[test]
fn stop_does_not_wait_for_the_fetch_period() {
    let l = layer(504, Kind::Tar, 30_000);
    let mgr = Arc::new(l.simple_manager());
    let mut bg = BackgroundFetcher::new(BackgroundFetchConfig {
        fetch_period: Duration::from_secs(3600),
        ..quick()
    });
    bg.add(&mgr);
    wait_for("one span", Duration::from_secs(10), || {
        mgr.fetched_spans() == 1
    });
    let t = Instant::now();
    bg.stop();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(mgr.fetched_spans(), 1);
}

#[test]
fn the_queue_is_bounded() {
    let layers: Vec<_> = (0..3).map(|i| layer(510 + i, Kind::Tar, 100_000)).collect();
    let managers: Vec<_> = layers
        .iter()
        .map(|l| Arc::new(l.simple_manager()))
        .collect();
    for (policy, accepted) in [(DropPolicy::Newest, false), (DropPolicy::Oldest, true)] {
        let bg = BackgroundFetcher::new(BackgroundFetchConfig {
            max_queue_size: 2,
            drop_policy: policy,
            silence_period: Duration::from_secs(3600),
            ..quick()
        });
        bg.silence();
        assert!(bg.add(&managers[0]));
        assert!(bg.add(&managers[1]));
        assert_eq!(bg.add(&managers[2]), accepted);
        assert_eq!(bg.queued(), 2);
        assert_eq!(bg.stats().dropped_layers, 1);
    }
}

#[test]
fn dropping_a_layer_ends_its_background_fetch() {
    let l = layer(520, Kind::Tar, 10_000);
    let reader = l.faulty_reader();
    let mgr = Arc::new(l.manager(reader.clone(), Arc::new(MemSpanCache::new()), fast_config()));
    let bg = BackgroundFetcher::new(BackgroundFetchConfig {
        silence_period: Duration::from_millis(100),
        ..quick()
    });
    bg.silence();
    bg.add(&mgr);
    drop(mgr);
    wait_for("the queue to drain", Duration::from_secs(10), || {
        bg.queued() == 0
    });
    assert_eq!(bg.stats().spans_fetched, 0);
    assert_eq!(bg.stats().completed_layers, 0);
}

#[test]
fn background_errors_skip_the_span() {
    let l = layer(521, Kind::Tar, 30_000);
    let reader = l.faulty_reader();
    let config = soci_spans::SpanManagerConfig {
        max_retries: 0,
        ..fast_config()
    };
    let mgr = Arc::new(l.manager(reader.clone(), Arc::new(MemSpanCache::new()), config));
    reader.fail_next(1);
    let bg = BackgroundFetcher::new(quick());
    bg.add(&mgr);
    wait_for("the queue to drain", Duration::from_secs(30), || {
        bg.queued() == 0 && bg.stats().completed_layers == 1
    });
    assert_eq!(bg.stats().errors, 1);
    assert_eq!(mgr.fetched_spans(), mgr.num_spans() - 1);
    assert!(!mgr.is_fetched(0));
    // A foreground read still gets span 0.
    assert!(read(&*mgr, 0, 100) == l.expected()[..100]);
}
