//! zTOC flatbuffer encoding and decoding: golden vectors, round trips, upstream's TOC
//! validation cases and robustness against corrupt input.

use std::collections::BTreeMap;

use flatbuffers::{FlatBufferBuilder, WIPOffset};
use proptest::prelude::*;
use soci_format::Digest;
use soci_format::ztoc::{
    CompressionAlgorithm, CompressionInfo, FileMetadata, Ztoc, ZtocError, entry_type,
};

// ---------------------------------------------------------------------------------------
// Fixed values
// ---------------------------------------------------------------------------------------

/// The value of upstream's `TestWriteZtoc`.
fn golden_ztoc() -> Ztoc {
    let file = FileMetadata {
        mod_time: "0001-01-01T00:00:00Z".into(),
        ..FileMetadata::default()
    };
    Ztoc {
        version: "0.9".into(),
        build_tool_identifier: "AWS SOCI CLI".into(),
        compressed_archive_size: 2_000_000,
        uncompressed_archive_size: 2_500_000,
        toc: vec![file.clone(), file],
        compression_info: CompressionInfo {
            algorithm: CompressionAlgorithm::Gzip,
            max_span_id: 3,
            span_digests: vec![],
            checkpoints: vec![0; 65536],
        },
    }
}

fn pax(records: &[(&str, &str)]) -> BTreeMap<String, String> {
    records
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The value of `tests/data/ztoc_rich_go.json`: every field set, PAX records, unicode,
/// the uncompressed algorithm and span digests. Entries are sorted and their
/// `tar_header_offset`s are what a reader computes, so it also equals its decoding.
fn rich_ztoc() -> Ztoc {
    Ztoc {
        version: "0.9".into(),
        build_tool_identifier: "AWS SOCI CLI v0.2".into(),
        compressed_archive_size: 123_456_789_012,
        uncompressed_archive_size: 9_876_543_210,
        toc: vec![
            FileMetadata {
                name: "etc/".into(),
                entry_type: entry_type::DIR.into(),
                uncompressed_offset: 512,
                uncompressed_size: 0,
                linkname: String::new(),
                mode: 0o40755,
                uid: 0,
                gid: 0,
                uname: "root".into(),
                gname: "root".into(),
                mod_time: "2023-05-01T12:00:00Z".into(),
                devmajor: 0,
                devminor: 0,
                pax_records: BTreeMap::new(),
                tar_header_offset: 0,
            },
            FileMetadata {
                name: "etc/ünïcødé/文件.txt".into(),
                entry_type: entry_type::REG.into(),
                uncompressed_offset: 2048,
                uncompressed_size: 1001,
                linkname: String::new(),
                mode: 0o100644,
                uid: 1000,
                gid: 1001,
                uname: "alice".into(),
                gname: "staff".into(),
                mod_time: "2023-05-01T12:00:00.5+02:00".into(),
                devmajor: 0,
                devminor: 0,
                pax_records: pax(&[
                    ("path", "etc/ünïcødé/文件.txt"),
                    ("mtime", "1682935200.5"),
                    ("SCHILY.xattr.user.comment", "héllo"),
                    ("SCHILY.xattr.security.capability", "\u{1}\u{0}\u{2}"),
                ]),
                tar_header_offset: 512,
            },
            FileMetadata {
                name: "dev/sda".into(),
                entry_type: entry_type::BLOCK.into(),
                uncompressed_offset: 3584,
                uncompressed_size: 0,
                linkname: String::new(),
                mode: 0o60660,
                uid: u32::MAX,
                gid: 6,
                uname: String::new(),
                gname: "disk".into(),
                mod_time: "0001-01-01T00:00:00Z".into(),
                devmajor: 8,
                devminor: -1,
                pax_records: BTreeMap::new(),
                tar_header_offset: 3072,
            },
            FileMetadata {
                name: "usr/bin/link".into(),
                entry_type: entry_type::SYMLINK.into(),
                uncompressed_offset: 4096,
                uncompressed_size: 0,
                linkname: "../../etc/ünïcødé/文件.txt".into(),
                mode: i64::MIN,
                uid: 1,
                gid: 0,
                uname: "daemon".into(),
                gname: String::new(),
                mod_time: "2024-02-29T23:59:59.999999999Z".into(),
                devmajor: i64::MAX,
                devminor: 0,
                pax_records: pax(&[("linkpath", "../../etc/ünïcødé/文件.txt")]),
                tar_header_offset: 3584,
            },
        ],
        compression_info: CompressionInfo {
            algorithm: CompressionAlgorithm::Uncompressed,
            max_span_id: 2,
            span_digests: vec![
                format!("sha256:{}", "0".repeat(64)),
                format!("sha256:{}", "ab".repeat(32)),
                format!("sha256:{}", "f".repeat(64)),
            ],
            checkpoints: (0..=255u8).chain(0..7).collect(),
        },
    }
}

#[test]
fn golden_vector_matches_upstream() {
    let bytes = golden_ztoc().to_bytes();
    assert_eq!(bytes.len(), 65928);
    assert_eq!(
        Digest::of(&bytes).to_string(),
        "sha256:eba28fdf50b1b57543f57dd051b2468c1d4f57b64d2006c75aa4de1d03e6c7ec"
    );
}

#[test]
fn golden_vector_decodes() {
    let mut expected = golden_ztoc();
    // Both entries are at offset 0 with size 0: header offsets 0 and align512(0) = 0.
    let decoded = Ztoc::from_bytes(&golden_ztoc().to_bytes()).unwrap();
    expected.toc[1].tar_header_offset = 0;
    assert_eq!(decoded, expected);
}

/// `tests/data/ztoc_rich_go.bin` was written by the Go flatbuffers runtime v25.12.19
/// with the builder calls of upstream's marshaler (generator: `ztoc_crosscheck.go`,
/// input: `ztoc_rich_go.json`).
#[test]
fn rich_vector_matches_go_builder() {
    let go = include_bytes!("data/ztoc_rich_go.bin");
    let z = rich_ztoc();
    let bytes = z.to_bytes();
    assert_eq!(bytes.len(), go.len());
    assert!(bytes == go, "encoding differs from the Go builder's");
    assert_eq!(Ztoc::from_bytes(go).unwrap(), z);
}

#[test]
fn encoding_is_deterministic() {
    for z in [golden_ztoc(), rich_ztoc(), Ztoc::default()] {
        assert_eq!(z.to_bytes(), z.clone().to_bytes());
    }
}

#[test]
fn default_ztoc_round_trips() {
    let z = Ztoc::default();
    assert_eq!(Ztoc::from_bytes(&z.to_bytes()).unwrap(), z);
}

#[test]
fn tar_header_offset_is_not_serialized() {
    let mut z = rich_ztoc();
    let bytes = z.to_bytes();
    for m in &mut z.toc {
        m.tar_header_offset = 77;
    }
    assert_eq!(z.to_bytes(), bytes);
}

// ---------------------------------------------------------------------------------------
// Upstream's TOC round trip cases (ztoc_marshaler_test.go)
// ---------------------------------------------------------------------------------------

fn entry(name: &str, offset: u64, size: u64) -> FileMetadata {
    FileMetadata {
        name: name.into(),
        uncompressed_offset: offset,
        uncompressed_size: size,
        ..FileMetadata::default()
    }
}

fn with_toc(toc: Vec<FileMetadata>) -> Ztoc {
    Ztoc {
        toc,
        ..Ztoc::default()
    }
}

#[test]
fn aligned_entries_round_trip() {
    let file1 = entry("file1", 1024, 500);
    let mut file2 = entry("file2", 2048, 1000);
    file2.tar_header_offset = 1536;
    let expected = with_toc(vec![file1.clone(), file2.clone()]);
    for toc in [vec![file1.clone(), file2.clone()], vec![file2, file1]] {
        let decoded = Ztoc::from_bytes(&with_toc(toc).to_bytes()).unwrap();
        assert_eq!(decoded, expected);
    }
}

#[test]
fn overlapping_entries_are_rejected() {
    let z = with_toc(vec![entry("a", 1024, 500), entry("b", 1024, 500)]);
    match Ztoc::from_bytes(&z.to_bytes()) {
        Err(ZtocError::InvalidTocEntry {
            name,
            offset,
            previous_end,
        }) => {
            assert_eq!(name, "b");
            assert_eq!(offset, 1024);
            assert_eq!(previous_end, 1536);
        }
        other => panic!("expected InvalidTocEntry, got {other:?}"),
    }
}

#[test]
fn entry_starting_inside_previous_block_is_rejected() {
    let z = with_toc(vec![entry("a", 0, 1), entry("b", 511, 1)]);
    assert!(matches!(
        Ztoc::from_bytes(&z.to_bytes()),
        Err(ZtocError::InvalidTocEntry { .. })
    ));
}

#[test]
fn equal_offsets_keep_their_order() {
    // Two empty entries at the same offset do not overlap under upstream's rule; the
    // sort is stable so the serialized order decides.
    let z = with_toc(vec![
        entry("x", 512, 0),
        entry("y", 512, 0),
        entry("a", 0, 0),
    ]);
    let decoded = Ztoc::from_bytes(&z.to_bytes()).unwrap();
    let names: Vec<_> = decoded.toc.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "x", "y"]);
    let headers: Vec<_> = decoded.toc.iter().map(|m| m.tar_header_offset).collect();
    assert_eq!(headers, [0, 0, 512]);
}

// ---------------------------------------------------------------------------------------
// Invalid values
// ---------------------------------------------------------------------------------------

fn assert_invalid(z: &Ztoc, needle: &str) {
    match Ztoc::from_bytes(&z.to_bytes()) {
        Err(ZtocError::Invalid(msg)) => {
            assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}")
        }
        other => panic!("expected Invalid({needle}), got {other:?}"),
    }
}

#[test]
fn negative_values_are_rejected() {
    // Values above the signed range are written as negative numbers, like Go's casts.
    let mut z = rich_ztoc();
    z.compressed_archive_size = u64::MAX;
    assert_invalid(&z, "compressed_archive_size");

    let mut z = rich_ztoc();
    z.uncompressed_archive_size = 1 << 63;
    assert_invalid(&z, "uncompressed_archive_size");

    let mut z = rich_ztoc();
    z.toc[1].uncompressed_offset = u64::MAX - 5;
    assert_invalid(&z, "uncompressed_offset");

    let mut z = rich_ztoc();
    z.toc[2].uncompressed_size = u64::MAX;
    assert_invalid(&z, "uncompressed_size");

    let mut z = rich_ztoc();
    z.compression_info.max_span_id = u32::MAX;
    assert_invalid(&z, "max_span_id");
}

#[test]
fn offset_plus_size_overflow_is_rejected() {
    let z = with_toc(vec![entry("a", i64::MAX as u64, i64::MAX as u64)]);
    assert!(matches!(
        Ztoc::from_bytes(&z.to_bytes()),
        Err(ZtocError::Invalid(_))
    ));
}

/// A hand-built buffer: a `Ztoc` table whose `compression_info` has only the given
/// algorithm byte, and whose other fields are absent unless `version` is given.
fn ztoc_with_algorithm(algorithm: Option<i8>, version: Option<&[u8]>) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let version = version.map(|v| fbb.create_byte_string(v));
    let ci = algorithm.map(|a| {
        let start = fbb.start_table();
        fbb.push_slot_always::<i8>(4, a);
        fbb.end_table(start)
    });
    let start = fbb.start_table();
    if let Some(v) = version {
        fbb.push_slot_always(4, v);
    }
    if let Some(ci) = ci {
        fbb.push_slot_always(14, ci);
    }
    let root = fbb.end_table(start);
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

#[test]
fn compression_algorithm_values() {
    let z = Ztoc::from_bytes(&ztoc_with_algorithm(Some(1), None)).unwrap();
    assert_eq!(z.compression_info.algorithm, CompressionAlgorithm::Gzip);
    let z = Ztoc::from_bytes(&ztoc_with_algorithm(Some(2), None)).unwrap();
    assert_eq!(
        z.compression_info.algorithm,
        CompressionAlgorithm::Uncompressed
    );
    for bad in [0, 3, -1, i8::MAX] {
        match Ztoc::from_bytes(&ztoc_with_algorithm(Some(bad), None)) {
            Err(ZtocError::Invalid(msg)) => assert!(msg.contains("compression algorithm")),
            other => panic!("algorithm {bad}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn uncompressed_algorithm_is_written_gzip_is_not() {
    let mut z = Ztoc::default();
    let gzip = z.to_bytes();
    z.compression_info.algorithm = CompressionAlgorithm::Uncompressed;
    let uncompressed = z.to_bytes();
    assert!(uncompressed.len() > gzip.len());
    assert_eq!(
        Ztoc::from_bytes(&uncompressed)
            .unwrap()
            .compression_info
            .algorithm,
        CompressionAlgorithm::Uncompressed
    );
}

#[test]
fn missing_tables_read_as_defaults() {
    // No toc, no compression_info: an empty TOC and default compression info.
    let z = Ztoc::from_bytes(&ztoc_with_algorithm(None, Some(b"0.9"))).unwrap();
    assert_eq!(
        z,
        Ztoc {
            version: "0.9".into(),
            ..Ztoc::default()
        }
    );
    // Not even a version: everything default.
    let z = Ztoc::from_bytes(&ztoc_with_algorithm(None, None)).unwrap();
    assert_eq!(z, Ztoc::default());
}

#[test]
fn missing_file_fields_read_as_defaults() {
    let mut fbb = FlatBufferBuilder::new();
    let start = fbb.start_table();
    let empty_file = fbb.end_table(start);
    let metadata = fbb.create_vector(&[empty_file]);
    let start = fbb.start_table();
    fbb.push_slot_always(4, metadata);
    let toc = fbb.end_table(start);
    let start = fbb.start_table();
    fbb.push_slot_always(12, toc);
    let root = fbb.end_table(start);
    fbb.finish(root, None);
    let z = Ztoc::from_bytes(fbb.finished_data()).unwrap();
    assert_eq!(z.toc, vec![FileMetadata::default()]);
}

#[test]
fn invalid_utf8_is_rejected() {
    let bytes = ztoc_with_algorithm(None, Some(b"0.\xff"));
    assert!(matches!(
        Ztoc::from_bytes(&bytes),
        Err(ZtocError::Invalid(msg)) if msg.contains("UTF-8")
    ));
    // Same inside a file entry: patch a unique marker of an encoded zTOC.
    let mut z = rich_ztoc();
    z.toc[0].uname = "MARKER-é".into();
    let mut bytes = z.to_bytes();
    let at = bytes
        .windows(7)
        .position(|w| w == b"MARKER-")
        .expect("marker present");
    bytes[at + 7] = 0xff;
    assert!(matches!(
        Ztoc::from_bytes(&bytes),
        Err(ZtocError::Invalid(msg)) if msg.contains("UTF-8")
    ));
}

#[test]
fn string_without_nul_terminator_is_rejected() {
    let mut bytes = ztoc_with_algorithm(None, Some(b"0.9"));
    // "0.9" is the first object written, so it ends the buffer: "0.9\0".
    assert_eq!(&bytes[bytes.len() - 4..], b"0.9\0");
    let n = bytes.len();
    bytes[n - 1] = b'!';
    assert!(matches!(
        Ztoc::from_bytes(&bytes),
        Err(ZtocError::Flatbuffer(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Corrupt input
// ---------------------------------------------------------------------------------------

#[test]
fn empty_and_tiny_inputs_are_rejected() {
    for b in [
        &[][..],
        &[0],
        &[4, 0],
        &[0, 0, 4],
        &[4, 0, 0, 0],
        &[0xff; 8],
    ] {
        assert!(Ztoc::from_bytes(b).is_err(), "{b:?} accepted");
    }
    // The smallest well-formed flatbuffer: a root table at 0 whose vtable (also at 0)
    // is empty. Every field is absent, so this is the default zTOC.
    assert_eq!(Ztoc::from_bytes(&[0, 0, 0, 0]).unwrap(), Ztoc::default());
}

#[test]
fn every_truncation_of_a_small_ztoc_is_handled() {
    let bytes = rich_ztoc().to_bytes();
    assert!(bytes.len() < 4096);
    for n in 0..bytes.len() {
        let _ = Ztoc::from_bytes(&bytes[..n]);
    }
    assert!(Ztoc::from_bytes(&bytes[..bytes.len() / 2]).is_err());
}

#[test]
fn sampled_truncations_of_a_big_ztoc_are_handled() {
    let mut z = golden_ztoc();
    z.toc = (0..300u64)
        .map(|i| FileMetadata {
            name: format!("dir/file-{i}"),
            entry_type: entry_type::REG.into(),
            uncompressed_offset: 512 + i * 1024,
            uncompressed_size: 100,
            pax_records: pax(&[("k", "v")]),
            ..FileMetadata::default()
        })
        .collect();
    let bytes = z.to_bytes();
    assert!(Ztoc::from_bytes(&bytes).is_ok());
    let n = bytes.len();
    let lengths = (0..256)
        .chain((256..n).step_by(97))
        .chain(n.saturating_sub(256)..n);
    for len in lengths {
        let _ = Ztoc::from_bytes(&bytes[..len]);
    }
}

#[test]
fn trailing_bytes_are_ignored() {
    // Nothing in a flatbuffer refers past its objects, so appended bytes do not change
    // the value (upstream's newer writer can append prefetch metadata this way).
    let z = rich_ztoc();
    let mut bytes = z.to_bytes();
    bytes.extend_from_slice(b"---SOCI-PREFETCH---[]");
    assert_eq!(Ztoc::from_bytes(&bytes).unwrap(), z);
}

#[test]
fn shared_objects_cannot_amplify_the_value() {
    // 20,000 metadata offsets all pointing at one table whose name is 4 KiB: an 84 KB
    // buffer that would expand to 80 MB of names.
    let mut fbb = FlatBufferBuilder::new();
    let name = fbb.create_string(&"n".repeat(4096));
    let start = fbb.start_table();
    fbb.push_slot_always(4, name);
    let file = fbb.end_table(start);
    let files: Vec<WIPOffset<_>> = vec![file; 20_000];
    let metadata = fbb.create_vector(&files);
    let start = fbb.start_table();
    fbb.push_slot_always(4, metadata);
    let toc = fbb.end_table(start);
    let start = fbb.start_table();
    fbb.push_slot_always(12, toc);
    let root = fbb.end_table(start);
    fbb.finish(root, None);
    assert!(matches!(
        Ztoc::from_bytes(fbb.finished_data()),
        Err(ZtocError::Flatbuffer(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9_./-]{1,24}",
        "\\PC{0,16}",
        any::<String>(),
    ]
}

fn mostly_zero_i64() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), any::<i64>()]
}

fn mostly_zero_u32() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), any::<u32>()]
}

/// A file entry without its position (set by [`arb_ztoc`]).
fn arb_file() -> impl Strategy<Value = FileMetadata> {
    (
        (text(), text(), text(), text(), text(), text()),
        (
            mostly_zero_i64(),
            mostly_zero_u32(),
            mostly_zero_u32(),
            mostly_zero_i64(),
            mostly_zero_i64(),
        ),
        proptest::collection::btree_map(text(), text(), 0..5),
    )
        .prop_map(
            |(
                (name, entry_type, linkname, uname, gname, mod_time),
                (mode, uid, gid, devmajor, devminor),
                pax_records,
            )| FileMetadata {
                name,
                entry_type,
                linkname,
                mode,
                uid,
                gid,
                uname,
                gname,
                mod_time,
                devmajor,
                devminor,
                pax_records,
                ..FileMetadata::default()
            },
        )
}

/// A valid zTOC whose entries are laid out like a tar (sorted, non-overlapping) with
/// the `tar_header_offset`s a reader computes, so that it equals its own decoding.
fn arb_ztoc() -> impl Strategy<Value = Ztoc> {
    let files = proptest::collection::vec((arb_file(), 0u64..4, 0u64..5000), 0..24);
    let compression = (
        prop_oneof![
            Just(CompressionAlgorithm::Gzip),
            Just(CompressionAlgorithm::Uncompressed)
        ],
        prop_oneof![Just(0u32), 0..=i32::MAX as u32],
        proptest::collection::vec(text(), 0..6),
        proptest::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(
            |(algorithm, max_span_id, span_digests, checkpoints)| CompressionInfo {
                algorithm,
                max_span_id,
                span_digests,
                checkpoints,
            },
        );
    (
        text(),
        text(),
        prop_oneof![Just(0u64), 0..=i64::MAX as u64],
        prop_oneof![Just(0u64), 0..=i64::MAX as u64],
        files,
        compression,
    )
        .prop_map(
            |(version, build_tool_identifier, compressed, uncompressed, files, ci)| {
                let mut next_header = 0u64;
                let mut toc = Vec::with_capacity(files.len());
                for (i, (mut m, gap_blocks, size)) in files.into_iter().enumerate() {
                    // At least one header block between entries keeps offsets distinct.
                    let blocks = if i == 0 { gap_blocks } else { gap_blocks + 1 };
                    m.tar_header_offset = next_header;
                    m.uncompressed_offset = next_header + blocks * 512;
                    m.uncompressed_size = size;
                    next_header = (m.uncompressed_offset + size).next_multiple_of(512);
                    toc.push(m);
                }
                Ztoc {
                    version,
                    build_tool_identifier,
                    compressed_archive_size: compressed,
                    uncompressed_archive_size: uncompressed,
                    toc,
                    compression_info: ci,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip_preserves_value_and_bytes(z in arb_ztoc()) {
        let bytes = z.to_bytes();
        let decoded = Ztoc::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&decoded, &z);
        prop_assert_eq!(decoded.to_bytes(), bytes);
    }

    #[test]
    fn shuffled_entries_decode_sorted(
        z in arb_ztoc(),
        seed in any::<u64>(),
        header_noise in any::<u64>(),
    ) {
        let mut shuffled = z.clone();
        // A deterministic Fisher-Yates driven by a small LCG.
        let mut state = seed | 1;
        for i in (1..shuffled.toc.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = (state >> 33) as usize % (i + 1);
            shuffled.toc.swap(i, j);
        }
        for m in &mut shuffled.toc {
            m.tar_header_offset = header_noise;
        }
        let decoded = Ztoc::from_bytes(&shuffled.to_bytes()).unwrap();
        prop_assert_eq!(&decoded, &z);
        prop_assert_eq!(decoded.to_bytes(), z.to_bytes());
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Ztoc::from_bytes(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_plausible_root_never_panic(
        root in 4u32..64,
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut b = root.to_le_bytes().to_vec();
        b.extend_from_slice(&bytes);
        let _ = Ztoc::from_bytes(&b);
    }

    #[test]
    fn bit_flips_never_panic(
        z in arb_ztoc(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..8),
    ) {
        let mut bytes = z.to_bytes();
        for (at, bit) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        let _ = Ztoc::from_bytes(&bytes);
    }

    #[test]
    fn byte_overwrites_in_the_golden_vector_never_panic(
        writes in proptest::collection::vec((0usize..400, any::<u8>()), 1..6),
        tail in any::<bool>(),
    ) {
        // The tables and vtables live at both ends of this buffer, around the
        // checkpoints; hit one end or the other.
        let mut bytes = golden_ztoc().to_bytes();
        let n = bytes.len();
        for (at, value) in writes {
            let i = if tail { n - 1 - at } else { at };
            bytes[i] = value;
        }
        let _ = Ztoc::from_bytes(&bytes);
    }
}

#[test]
fn streamed_entries_match_and_stop_at_the_first_error() {
    let entry = |name: &str, offset: u64, size: u64| FileMetadata {
        name: name.into(),
        entry_type: "reg".into(),
        uncompressed_offset: offset,
        uncompressed_size: size,
        mod_time: "2024-01-01T00:00:00Z".into(),
        ..FileMetadata::default()
    };
    // Stored out of order; read order is by offset.
    let mut z = Ztoc {
        version: "0.9".into(),
        uncompressed_archive_size: 8192,
        toc: vec![
            entry("b", 1536, 10),
            entry("a", 512, 600),
            entry("c", 2560, 0),
        ],
        ..Ztoc::default()
    };
    let bytes = z.to_bytes();
    let whole = Ztoc::from_bytes(&bytes).unwrap();
    let (head, entries) = Ztoc::from_bytes_streaming(&bytes).unwrap();
    assert!(head.toc.is_empty());
    assert_eq!(entries.size_hint(), (0, Some(3)));
    let streamed: Vec<FileMetadata> = entries.map(Result::unwrap).collect();
    assert_eq!(streamed, whole.toc);
    assert_eq!(
        streamed.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(
        streamed
            .iter()
            .map(|m| m.tar_header_offset)
            .collect::<Vec<_>>(),
        [0, 1536, 2048]
    );
    assert_eq!(
        Ztoc {
            toc: Vec::new(),
            ..whole
        },
        head
    );

    // "b" now starts inside "a"'s data: "a" is read, "b" is the error, and
    // nothing follows it.
    z.toc[0].uncompressed_offset = 1024;
    let bytes = z.to_bytes();
    let (_, mut entries) = Ztoc::from_bytes_streaming(&bytes).unwrap();
    assert_eq!(entries.next().unwrap().unwrap().name, "a");
    let err = entries.next().unwrap().unwrap_err();
    assert!(
        matches!(err, ZtocError::InvalidTocEntry { ref name, .. } if name == "b"),
        "{err}"
    );
    assert!(entries.next().is_none());
    assert_eq!(entries.size_hint(), (0, Some(0)));
    assert!(Ztoc::from_bytes(&bytes).is_err());
}
