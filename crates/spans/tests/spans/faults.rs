//! Faults between the blob and the span manager: flipped bits, truncated
//! ranges, read errors. A fault gives an error or (after retries) the right
//! bytes, never other bytes.

use std::sync::Arc;

use soci_spans::{FetchFailure, MemSpanCache, SpanError, SpanManagerConfig, SpanSource};

use crate::common::*;

fn config(verification_retries: u32, max_retries: u32) -> SpanManagerConfig {
    SpanManagerConfig {
        max_span_verification_retries: verification_retries,
        max_retries,
        ..fast_config()
    }
}

#[test]
fn flipped_bit_is_a_verification_error_and_never_data() {
    for kind in [Kind::Gzip(1, false), Kind::Tar] {
        let l = layer(101, kind, 32_768);
        let reader = l.faulty_reader();
        let mgr = l.manager(reader.clone(), Arc::new(MemSpanCache::new()), config(2, 3));
        let s = interior_span(&mgr);
        let at = middle_of_span(&mgr, s);
        reader.flip_bits(at, 0x01, u64::MAX);
        reader.reset_counters();

        let u = mgr.span_geometry(s).unwrap().uncompressed;
        let mut buf = vec![0xAAu8; 100];
        let err = mgr.read_at(u.start + 1, &mut buf).unwrap_err();
        match &err {
            SpanError::Verification {
                layer,
                span,
                expected,
                actual,
                attempts,
                ..
            } => {
                assert_eq!(layer, &l.digest);
                assert_eq!(*span, s);
                assert_eq!(
                    expected.to_string(),
                    l.ztoc.compression_info.span_digests[s as usize]
                );
                assert_ne!(expected, actual);
                assert_eq!(*attempts, 3, "first fetch + 2 verification retries");
            }
            other => panic!("expected a verification error, got {other}"),
        }
        assert_eq!(reader.calls(), 3);
        assert_eq!(mgr.stats().verification_failures, 3);
        assert_eq!(mgr.stats().spans_fetched, 0);
        assert!(!mgr.is_fetched(s));
        // Nothing was decompressed or cached, and the error repeats.
        assert!(mgr.read_at(u.start, &mut buf).is_err());
        // Other spans still read fine.
        let other = mgr.span_geometry(s + 1).unwrap().uncompressed;
        if other.start < mgr.size() {
            let got = read(&mgr, other.start, 10);
            assert!(got == l.expected()[other.start as usize..other.start as usize + got.len()]);
        }
        // The error converts to an io::Error for callers that need one.
        let io: std::io::Error = err.into();
        assert!(io.to_string().contains("verification"));
    }
}

#[test]
fn flipped_bit_recovers_if_it_stops_before_retries_run_out() {
    let l = layer(102, Kind::Gzip(1, true), 32_768);
    let reader = l.faulty_reader();
    let mgr = l.manager(reader.clone(), Arc::new(MemSpanCache::new()), config(2, 3));
    let s = interior_span(&mgr);
    reader.flip_bits(middle_of_span(&mgr, s), 0x80, 2);
    reader.reset_counters();
    let u = mgr.span_geometry(s).unwrap().uncompressed;
    let got = read(&mgr, u.start, (u.end - u.start) as usize);
    assert!(got == l.expected()[u.start as usize..u.end as usize]);
    assert_eq!(reader.calls(), 3);
    assert_eq!(mgr.stats().verification_failures, 2);
    assert!(mgr.is_fetched(s));
}

#[test]
fn default_config_does_not_retry_verification() {
    let l = layer(103, Kind::Gzip(1, false), 32_768);
    let reader = l.faulty_reader();
    let mgr = l.manager(reader.clone(), Arc::new(MemSpanCache::new()), fast_config());
    let s = interior_span(&mgr);
    reader.flip_bits(middle_of_span(&mgr, s), 0x04, 1);
    reader.reset_counters();
    let u = mgr.span_geometry(s).unwrap().uncompressed;
    let mut buf = vec![0u8; 10];
    assert!(matches!(
        mgr.read_at(u.start, &mut buf),
        Err(SpanError::Verification { attempts: 1, .. })
    ));
    // The fault is gone: the next read fetches again and succeeds.
    assert_eq!(mgr.read_at(u.start, &mut buf).unwrap(), 10);
    assert!(buf == l.expected()[u.start as usize..u.start as usize + 10]);
}

#[test]
fn only_the_corrupt_span_of_a_multi_span_read_is_refetched() {
    let l = layer(104, Kind::Gzip(1, false), 32_768);
    let reader = l.faulty_reader();
    let mgr = l.manager(reader.clone(), Arc::new(MemSpanCache::new()), config(1, 3));
    let s = interior_span(&mgr);
    reader.flip_bits(middle_of_span(&mgr, s), 0x10, 1);
    reader.reset_counters();
    let start = mgr.span_geometry(s - 1).unwrap().uncompressed.start;
    let end = mgr
        .span_geometry(s + 1)
        .unwrap()
        .uncompressed
        .end
        .min(mgr.size());
    let got = read(&mgr, start, (end - start) as usize);
    assert!(got == l.expected()[start as usize..end as usize]);
    let requests = reader.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1], vec![mgr.span_geometry(s).unwrap().compressed]);
}

#[test]
fn a_flipped_byte_shared_by_two_spans_fails_both() {
    // Adjacent gzip spans share a byte when the checkpoint is not byte aligned.
    let l = layer(105, Kind::Gzip(1, false), 16_384);
    let reader = l.faulty_reader();
    let mgr = l.manager(reader.clone(), Arc::new(MemSpanCache::new()), config(0, 3));
    let s = (1..mgr.num_spans())
        .find(|&s| {
            mgr.span_geometry(s).unwrap().compressed.start
                < mgr.span_geometry(s - 1).unwrap().compressed.end
        })
        .expect("some checkpoint with bits");
    let shared = mgr.span_geometry(s).unwrap().compressed.start;
    reader.flip_bits(shared, 0xff, 1);
    reader.reset_counters();
    let start = mgr.span_geometry(s - 1).unwrap().uncompressed.start;
    let end = mgr
        .span_geometry(s)
        .unwrap()
        .uncompressed
        .end
        .min(mgr.size());
    let mut buf = vec![0u8; (end - start) as usize];
    let err = mgr.read_at(start, &mut buf).unwrap_err();
    assert!(matches!(err, SpanError::Verification { span, .. } if span == s - 1 || span == s));
    assert_eq!(mgr.stats().verification_failures, 2);
    assert_eq!(reader.calls(), 1);
    // Fault over: both spans read correctly.
    let got = read(&mgr, start, (end - start) as usize);
    assert!(got == l.expected()[start as usize..end as usize]);
}

#[test]
fn truncated_ranges_are_retried_then_reported() {
    let l = layer(106, Kind::Gzip(1, false), 32_768);
    let reader = l.faulty_reader();
    let mgr = l.manager(reader.clone(), Arc::new(MemSpanCache::new()), config(0, 3));
    let s = interior_span(&mgr);
    let u = mgr.span_geometry(s).unwrap().uncompressed;

    reader.truncate_next(3);
    let got = read(&mgr, u.start, 100);
    assert!(got == l.expected()[u.start as usize..u.start as usize + 100]);
    assert_eq!(mgr.stats().fetch_failures, 3);

    let s2 = s + 1;
    let u2 = mgr.span_geometry(s2).unwrap().uncompressed;
    reader.truncate_next(4);
    let mut buf = vec![0u8; 1];
    match mgr.read_at(u2.start, &mut buf).unwrap_err() {
        SpanError::Fetch {
            layer,
            first_span,
            last_span,
            attempts,
            source: FetchFailure::WrongLength { got, start, end },
            ..
        } => {
            assert_eq!(layer, l.digest);
            assert_eq!((first_span, last_span), (s2, s2));
            assert_eq!(attempts, 4);
            assert_eq!(got, end - start - 1);
        }
        other => panic!("expected a fetch error, got {other}"),
    }
}

#[test]
fn read_errors_are_retried_then_reported_and_state_recovers() {
    let l = layer(107, Kind::Tar, 32_768);
    let reader = l.faulty_reader();
    let mgr = l.manager(reader.clone(), Arc::new(MemSpanCache::new()), config(0, 2));
    reader.reset_counters();

    reader.fail_next(2);
    let got = read(&mgr, 5000, 70_000);
    assert!(got == l.expected()[5000..75_000]);

    reader.fail_next(100);
    let mut buf = vec![0u8; 10];
    let off = mgr.span_geometry(5).unwrap().uncompressed.start;
    let calls = reader.calls();
    match mgr.read_at(off, &mut buf).unwrap_err() {
        SpanError::Fetch {
            attempts,
            source: FetchFailure::Content(_),
            first_span,
            ..
        } => {
            assert_eq!(attempts, 3);
            assert_eq!(first_span, 5);
        }
        other => panic!("expected a fetch error, got {other}"),
    }
    assert_eq!(reader.calls() - calls, 3);
    reader.fail_next(0);
    assert_eq!(mgr.read_at(off, &mut buf).unwrap(), 10);
    assert!(buf == l.expected()[off as usize..off as usize + 10]);
}

#[test]
fn open_retries_blob_size_and_header_reads() {
    let l = layer(108, Kind::Gzip(1, false), 65_536);
    let reader = l.faulty_reader();
    reader.fail_blob_size(2);
    reader.fail_next(2);
    let mgr = l.manager(reader.clone(), Arc::new(MemSpanCache::new()), config(0, 3));
    assert_eq!(reader.calls(), 3, "two failures and the header read");
    assert!(read_all(&mgr, 50_000) == l.expected());
}
