//! `CompressionInfo.checkpoints` parsing: upstream's header-only cases, v1 blobs,
//! hostile blobs (never a panic), the `TarZinfo` flatbuffer.

use proptest::prelude::*;
use soci_format::zinfo::{TarZinfo, Zinfo};
use soci_format::ztoc::CompressionAlgorithm;

use crate::common::*;
use crate::diff::index;

const CP: usize = 32785;

fn header(n: i32, span: i64) -> Vec<u8> {
    let mut b = n.to_le_bytes().to_vec();
    b.extend_from_slice(&span.to_le_bytes());
    b
}

fn record(cin: i64, cout: i64, bits: u8, fill: u8) -> Vec<u8> {
    let mut b = cin.to_le_bytes().to_vec();
    b.extend_from_slice(&cout.to_le_bytes());
    b.push(bits);
    b.resize(CP, fill);
    b
}

fn gz(b: &[u8]) -> Result<Zinfo, soci_format::zinfo::ZinfoError> {
    Zinfo::from_checkpoints(CompressionAlgorithm::Gzip, b)
}

#[test]
fn upstream_header_only_cases() {
    // N=0, span 0: valid v2 with no checkpoints.
    let z = gz(&header(0, 0)).unwrap();
    assert_eq!(z.num_spans(), 0);
    assert_eq!(z.to_checkpoints(), header(0, 0));
    assert!(z.validate(100, 100).is_err(), "no spans is not usable");
    assert_eq!(z.span_of(5), 0);
    // N=1 with 12 bytes: v1, checkpoint 0 synthesized.
    let z = gz(&header(1, 4 << 20)).unwrap();
    assert_eq!(z.max_span_id(), 0);
    assert_eq!(z.span_size(), 4 << 20);
    assert_eq!(z.start_compressed_offset(0), 10);
    assert_eq!(z.start_uncompressed_offset(0), 0);
    assert_eq!(z.to_checkpoints(), header(1, 4 << 20));
    // N=255 with 12 bytes: invalid.
    assert!(gz(&header(255, 0)).is_err());
    assert!(gz(&[]).is_err());
    assert!(gz(&[0]).is_err());
    assert!(gz(&header(-1, 0)).is_err());
    assert!(gz(&header(0, -5)).is_err());
}

#[test]
fn v1_round_trip_and_extraction() {
    let data = text(2 << 20, 31);
    let gzb = gzip(&data, 6);
    let l = index(&gzb, 64 << 10);
    let v2 = l.zinfo.to_checkpoints();
    let n = l.zinfo.num_spans() as usize;
    assert!(n > 3);
    // v1: same header, checkpoint 0 dropped (flate2 writes a 10-byte header).
    let mut v1 = v2[..12].to_vec();
    v1.extend_from_slice(&v2[12 + CP..]);
    let z1 = gz(&v1).unwrap();
    assert_eq!(
        z1.to_checkpoints(),
        v1,
        "v1 re-serializes to the same bytes"
    );
    assert_eq!(z1.num_spans() as usize, n);
    for i in 0..n as u32 {
        assert_eq!(
            z1.start_compressed_offset(i),
            l.zinfo.start_compressed_offset(i)
        );
        assert_eq!(
            z1.start_uncompressed_offset(i),
            l.zinfo.start_uncompressed_offset(i)
        );
    }
    let mut out = vec![0u8; 1000];
    let e = z1.end_compressed_offset(0, gzb.len() as u64) as usize;
    assert_eq!(z1.extract(&gzb[10..e], 0, 500, &mut out).unwrap(), 1000);
    assert!(out == data[500..1500]);
}

#[test]
fn truncated_and_padded_blobs() {
    let data = mixed(1 << 20, 32);
    let l = index(&gzip(&data, 6), 64 << 10);
    let blob = l.zinfo.to_checkpoints();
    let n = l.zinfo.num_spans() as usize;
    for cut in [
        1,
        11,
        12,
        13,
        12 + CP - 1,
        12 + CP,
        12 + CP + 1,
        blob.len() - 1,
    ] {
        let r = gz(&blob[..cut]);
        // Only a prefix that drops exactly one whole checkpoint is valid (as v1).
        let v1_len = 12 + CP * (n - 1);
        assert_eq!(r.is_ok(), cut == v1_len, "cut at {cut}");
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert!(gz(&longer).is_err());
    longer.resize(blob.len() + CP, 0);
    assert!(
        gz(&longer).is_err(),
        "one checkpoint more than the header says"
    );
}

#[test]
fn validate_rejects_inconsistent_checkpoints() {
    let ok = [
        record(10, 0, 0, 0),
        record(5000, 70_000, 3, 1),
        record(9000, 140_000, 0, 2),
    ];
    let build = |recs: &[Vec<u8>]| {
        let mut b = header(recs.len() as i32, 65536);
        for r in recs {
            b.extend_from_slice(r);
        }
        gz(&b).unwrap()
    };
    let z = build(&ok);
    z.validate(20_000, 200_000).unwrap();
    assert_eq!(z.start_compressed_offset(1), 4999);
    assert_eq!(z.end_compressed_offset(0, 20_000), 5000);
    assert_eq!(z.end_compressed_offset(2, 20_000), 20_000);
    assert_eq!(z.span_of(69_999), 0);
    assert_eq!(z.span_of(70_000), 1);
    assert_eq!(z.span_of(u64::MAX), 2);
    // The last span's end never precedes its start.
    assert_eq!(z.end_uncompressed_offset(2, 100_000), 140_000);
    let cases: Vec<(&str, Vec<Vec<u8>>, u64)> = vec![
        (
            "bits > 7",
            vec![ok[0].clone(), record(5000, 70_000, 8, 0)],
            20_000,
        ),
        (
            "in decreasing",
            vec![ok[0].clone(), record(5, 70_000, 0, 0)],
            20_000,
        ),
        (
            "out not increasing",
            vec![
                ok[0].clone(),
                record(5000, 70_000, 0, 0),
                record(6000, 70_000, 0, 0),
            ],
            20_000,
        ),
        (
            "out decreasing",
            vec![
                ok[0].clone(),
                record(5000, 70_000, 0, 0),
                record(6000, 60_000, 0, 0),
            ],
            20_000,
        ),
        ("in beyond size", ok.to_vec(), 8000),
        ("first out not 0", vec![record(10, 5, 0, 0)], 20_000),
        ("bits at offset 0", vec![record(0, 0, 1, 0)], 20_000),
        ("empty layer", ok.to_vec(), 0),
    ];
    for (what, recs, csize) in cases {
        assert!(build(&recs).validate(csize, 200_000).is_err(), "{what}");
    }
    // zran's leading checkpoints at out 0 (empty first blocks/members) are fine.
    build(&[
        record(10, 0, 0, 0),
        record(30, 0, 0, 0),
        record(900, 70_000, 2, 0),
    ])
    .validate(1000, 70_001)
    .unwrap();
}

#[test]
fn tar_zinfo_golden_and_geometry() {
    let golden = "140000000000000000000a001c0018000c0004000a000000002800000000000000004000000000000000000002000000";
    let z = TarZinfo::new(4194304, 10240);
    assert_eq!(hex::encode(z.to_bytes()), golden);
    let parsed = Zinfo::from_checkpoints(
        CompressionAlgorithm::Uncompressed,
        &hex::decode(golden).unwrap(),
    )
    .unwrap();
    assert_eq!(parsed, Zinfo::Tar(z.clone()));
    assert_eq!(parsed.to_checkpoints(), hex::decode(golden).unwrap());
    assert_eq!(parsed.max_span_id(), 0);
    assert_eq!(parsed.span_size(), 4194304);
    let z = Zinfo::Tar(TarZinfo::new(4096, 8192));
    assert_eq!(z.max_span_id(), 1);
    assert_eq!(z.span_of(4095), 0);
    assert_eq!(z.span_of(4096), 1);
    assert_eq!(z.end_compressed_offset(0, 8192), 4096);
    assert_eq!(z.end_compressed_offset(1, 8192), 8192);
    assert_eq!(z.end_uncompressed_offset(1, 7000), 7000);
    let z = Zinfo::Tar(TarZinfo::new(4096, 8193));
    assert_eq!(z.max_span_id(), 2);
    // Zero fields are omitted and read back as zero.
    let zero = TarZinfo::new(0, 0);
    let b = zero.to_bytes();
    let back = TarZinfo::from_bytes(&b).unwrap();
    assert_eq!((back.span_size(), back.size(), back.version()), (0, 0, 2));
    assert!(Zinfo::Tar(back).validate(0, 0).is_err());
    // Truncations of a valid buffer never panic; the full buffer is required.
    let full = hex::decode(golden).unwrap();
    for cut in 0..full.len() {
        let _ = TarZinfo::from_bytes(&full[..cut]);
    }
    assert!(TarZinfo::from_bytes(&full[..full.len() - 1]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_small_blobs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let r = gz(&bytes);
        if let Ok(z) = r {
            prop_assert!(bytes.len() == 12);
            prop_assert_eq!(z.to_checkpoints(), bytes.clone());
        }
        if let Ok(z) = Zinfo::from_checkpoints(CompressionAlgorithm::Uncompressed, &bytes) {
            let _ = z.validate(bytes.len() as u64, 0);
            let _ = z.max_span_id();
            let _ = z.span_of(12345);
            let _ = z.to_checkpoints();
        }
    }

    #[test]
    fn header_count_must_match_length(n in any::<i32>(), span in any::<i64>(), extra in 0usize..3) {
        let mut b = header(n, span);
        for i in 0..extra {
            b.extend_from_slice(&record(10 + i as i64, i as i64, 0, 0));
        }
        let ok = span >= 0 && (n as i64 == extra as i64 || n as i64 == extra as i64 + 1);
        prop_assert_eq!(gz(&b).is_ok(), ok);
    }

    #[test]
    fn hostile_checkpoints_never_panic(
        recs in proptest::collection::vec((any::<i64>(), any::<i64>(), any::<u8>()), 1..4),
        v1 in any::<bool>(),
        csize in any::<u64>(),
        usize_ in any::<u64>(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
        off in any::<u64>(),
    ) {
        let small = |v: i64| v.rem_euclid(4096) * if v % 7 == 0 { -1 } else { 1 };
        let n = recs.len() as i32 + i32::from(v1);
        let mut b = header(n, 65536);
        for &(i, o, bits) in &recs {
            b.extend_from_slice(&record(small(i), small(o), bits % 10, 0));
        }
        let csize = csize % 8192;
        let usize_ = usize_ % 8192;
        if let Ok(z) = gz(&b) {
            prop_assert_eq!(z.to_checkpoints(), b.clone());
            let valid = z.validate(csize, usize_).is_ok();
            let _ = z.span_of(off);
            for i in 0..=z.max_span_id() {
                let s = z.start_compressed_offset(i);
                let e = z.end_compressed_offset(i, csize);
                if valid {
                    prop_assert!(s <= e);
                    prop_assert!(z.start_uncompressed_offset(i) <= z.end_uncompressed_offset(i, usize_));
                }
                let mut out = vec![0u8; 300];
                let start = z.start_uncompressed_offset(i);
                let _ = z.extract(&data, i, start + off % 500, &mut out);
            }
        }
    }
}
