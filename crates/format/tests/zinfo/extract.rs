//! Extraction of uncompressed ranges from the compressed bytes of covering spans.

use flate2::FlushCompress;
use soci_format::zinfo::{SpanId, Zinfo, ZinfoError};
use soci_format::ztoc::CompressionAlgorithm;

use crate::common::*;
use crate::diff::index;

/// Extract `[off, off + len)` the way the snapshotter does: fetch the spans
/// covering it, hand their compressed bytes to `extract`.
fn extract_range(z: &Zinfo, blob: &[u8], usize_: u64, off: u64, len: usize) -> Vec<u8> {
    let first = z.span_of(off);
    let last = z.span_of(off + len.max(1) as u64 - 1);
    let s = z.start_compressed_offset(first) as usize;
    let e = z.end_compressed_offset(last, blob.len() as u64) as usize;
    let mut out = vec![0u8; len];
    let n = z.extract(&blob[s..e], first, off, &mut out).unwrap();
    assert_eq!(
        n, len,
        "short extraction of [{off}, +{len}) from spans {first}..={last}"
    );
    assert!(z.end_uncompressed_offset(last, usize_) >= off + len as u64);
    out
}

fn check_ranges(name: &str, data: &[u8], blob: &[u8], z: &Zinfo, count: usize, seed: u64) {
    let mut r = Rng::new(seed);
    let total = data.len() as u64;
    for _ in 0..count {
        let off = r.below(total);
        let len = match r.below(3) {
            0 => r.below(100) + 1,
            1 => r.below(100_000) + 1,
            _ => r.below(3 << 20) + 1,
        }
        .min(total - off) as usize;
        let got = extract_range(z, blob, total, off, len);
        assert!(
            got == data[off as usize..off as usize + len],
            "{name}: range [{off}, +{len}) differs"
        );
    }
    // Every span on its own, whole, from exactly its bytes.
    for i in 0..=z.max_span_id() {
        let s = z.start_compressed_offset(i) as usize;
        let e = z.end_compressed_offset(i, blob.len() as u64) as usize;
        let us = z.start_uncompressed_offset(i);
        let ue = z.end_uncompressed_offset(i, total);
        let mut out = vec![0u8; (ue - us) as usize];
        let n = z.extract(&blob[s..e], i, us, &mut out).unwrap();
        assert_eq!(n, out.len(), "{name}: span {i}");
        assert!(
            out == data[us as usize..ue as usize],
            "{name}: span {i} differs"
        );
    }
}

#[test]
fn random_ranges_mixed() {
    let data = mixed(10 << 20, 21);
    let gz = gzip(&data, 6);
    for span in [64 << 10, 1 << 20] {
        let l = index(&gz, span);
        check_ranges("mixed", &data, &gz, &l.zinfo, 150, span);
    }
}

#[test]
fn first_span_with_bits() {
    let data = mixed(4 << 20, 22);
    let gz = gzip_member(
        &data,
        6,
        &Header::default(),
        Some(FlushPlan {
            every: 9_000,
            flush: FlushCompress::Partial,
        }),
    );
    let l = index(&gz, 64 << 10);
    let z = &l.zinfo;
    let with_bits: Vec<SpanId> = match z {
        Zinfo::Gzip(g) => g
            .checkpoints()
            .iter()
            .enumerate()
            .filter(|(_, p)| p.bits != 0)
            .map(|(i, _)| i as SpanId)
            .collect(),
        Zinfo::Tar(_) => unreachable!(),
    };
    assert!(with_bits.len() > 5, "want spans starting inside a byte");
    for &i in &with_bits {
        let us = z.start_uncompressed_offset(i);
        let got = extract_range(
            z,
            &gz,
            data.len() as u64,
            us + 17,
            200_000.min(data.len() - us as usize - 17),
        );
        assert!(got == data[us as usize + 17..us as usize + 17 + got.len()]);
        // The span's first compressed byte is shared with the previous span.
        assert_eq!(
            z.start_compressed_offset(i),
            z.end_compressed_offset(i - 1, gz.len() as u64) - 1
        );
    }
    check_ranges("bits", &data, &gz, z, 100, 5);
}

#[test]
fn across_member_boundaries() {
    let data = mixed(6 << 20, 23);
    let cuts: Vec<usize> = vec![
        1000, 70_000, 300_000, 1_000_000, 1_000_100, 2_500_000, 4_000_000,
    ];
    let gz = multi_member(&data, &cuts, 6);
    for span in [16 << 10, 256 << 10, 1 << 20] {
        let l = index(&gz, span);
        check_ranges("members", &data, &gz, &l.zinfo, 120, span + 1);
        for &c in &cuts {
            let off = c.saturating_sub(40_000) as u64;
            let got = extract_range(&l.zinfo, &gz, data.len() as u64, off, 80_000);
            assert!(got == data[off as usize..off as usize + 80_000]);
        }
    }
}

#[test]
fn through_blob_round_trip() {
    let data = text(3 << 20, 24);
    let gz = gzip_member(
        &data,
        9,
        &Header {
            name: Some(b"x".to_vec()),
            ..Header::default()
        },
        None,
    );
    let l = index(&gz, 128 << 10);
    let blob = l.zinfo.to_checkpoints();
    let z = Zinfo::from_checkpoints(CompressionAlgorithm::Gzip, &blob).unwrap();
    z.validate(gz.len() as u64, data.len() as u64).unwrap();
    check_ranges("round trip", &data, &gz, &z, 60, 9);
}

#[test]
fn short_input_and_bad_arguments() {
    let data = text(1 << 20, 25);
    let gz = gzip(&data, 6);
    let l = index(&gz, 64 << 10);
    let z = &l.zinfo;
    let s = z.start_compressed_offset(1) as usize;
    let e = z.end_compressed_offset(1, gz.len() as u64) as usize;
    let start = z.start_uncompressed_offset(1);
    // Asking past the span's data with only its bytes: returns what the data holds.
    let mut out = vec![0u8; 10 << 20];
    let n = z.extract(&gz[s..e], 1, start, &mut out).unwrap();
    assert_eq!(n as u64, z.end_uncompressed_offset(1, 0) - start);
    // The stream's end: last span to EOF.
    let last = z.max_span_id();
    let s = z.start_compressed_offset(last) as usize;
    let ls = z.start_uncompressed_offset(last);
    let n = z.extract(&gz[s..], last, ls, &mut out).unwrap();
    assert_eq!(n as u64, data.len() as u64 - ls);
    // Empty request.
    assert_eq!(z.extract(&gz[s..], last, ls, &mut []).unwrap(), 0);
    assert!(matches!(
        z.extract(&gz[s..], last + 1, ls, &mut out),
        Err(ZinfoError::SpanOutOfRange { .. })
    ));
    assert!(matches!(
        z.extract(&gz[s..], last, ls - 1, &mut out),
        Err(ZinfoError::OffsetBeforeSpan { .. })
    ));
    // Garbage instead of the span's bytes: an error or short output, never a panic.
    let junk = random(100_000, 3);
    let _ = z.extract(&junk, 1, start, &mut out[..1 << 20]);
    let _ = z.extract(&junk[..0], 1, start, &mut out[..1 << 20]);
}

#[test]
fn tar_extraction() {
    let data = mixed(1 << 20, 26);
    let z = Zinfo::Tar(soci_format::zinfo::TarZinfo::new(
        100_000,
        data.len() as u64,
    ));
    z.validate(data.len() as u64, data.len() as u64 - 5)
        .unwrap();
    assert_eq!(z.max_span_id(), 10);
    let mut r = Rng::new(1);
    for _ in 0..200 {
        let off = r.below(data.len() as u64);
        let len = (r.below(300_000) + 1).min(data.len() as u64 - off) as usize;
        let got = extract_range(&z, &data, data.len() as u64, off, len);
        assert!(got == data[off as usize..off as usize + len]);
    }
}
