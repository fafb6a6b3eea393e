//! Property tests of the whole zTOC build: generated tars (every entry kind, long
//! and unicode names, PAX records, whiteouts, files from 0 bytes to several spans)
//! x span sizes x gzip variants (levels 1/6/9, concatenated members, header
//! extras) and uncompressed tar. Every regular file extracted through its spans
//! equals the tar's bytes, every TOC field equals what the tar says, span digests
//! cover exactly the span ranges, and the same input gives the same bytes twice.

use proptest::prelude::*;
use soci_format::Digest;
use soci_format::testutil::{EndOfArchive, Rng, TarEntry, build_tar, gzip_members, random_entries};
use soci_format::zinfo::Zinfo;
use soci_format::ztoc::{BuildOptions, CompressionAlgorithm, Ztoc, build_ztoc, entry_type};

const SPANS: [u64; 4] = [64 << 10, 256 << 10, 1 << 20, 4 << 20];

fn extract(z: &Ztoc, zinfo: &Zinfo, layer: &[u8], offset: u64, size: u64) -> Vec<u8> {
    if size == 0 {
        return Vec::new();
    }
    let first = zinfo.span_of(offset);
    let last = zinfo.span_of(offset + size - 1);
    let start = zinfo.start_compressed_offset(first) as usize;
    let end = zinfo.end_compressed_offset(last, z.compressed_archive_size) as usize;
    let mut out = vec![0u8; size as usize];
    let n = zinfo
        .extract(&layer[start..end], first, offset, &mut out)
        .unwrap_or_else(|e| panic!("extract {offset}+{size} from spans {first}..={last}: {e}"));
    assert_eq!(n as u64, size);
    out
}

fn check(seed: u64, span: u64, variant: usize) {
    let mut rng = Rng::new(seed);
    let mut entries = random_entries(&mut rng);
    // Files that cross span boundaries; random-ish content mixing text and noise.
    for i in 0..rng.range(1, 4) {
        let size = rng.below(span * 3) as usize;
        let mut content = Vec::with_capacity(size);
        while content.len() < size {
            if rng.chance(30) {
                content.extend(rng.bytes(64));
            } else {
                content.extend_from_slice(b"the quick brown fox jumps over the lazy span\n");
            }
        }
        content.truncate(size);
        entries.insert(
            rng.below(entries.len() as u64 + 1) as usize,
            TarEntry::file(format!("big/{i}.bin"), content),
        );
    }
    entries.push(TarEntry::file("empty", Vec::new()));
    let end = *rng.pick(&[
        EndOfArchive::TwoZeroBlocks,
        EndOfArchive::OneZeroBlock,
        EndOfArchive::Missing,
        EndOfArchive::RecordPadded(10240),
    ]);
    let fixture = build_tar(&entries, end);
    let (layer, alg) = match variant {
        0 => (
            gzip_members(&fixture.bytes, 1, 1, false),
            CompressionAlgorithm::Gzip,
        ),
        1 => (
            gzip_members(&fixture.bytes, 6, 1, false),
            CompressionAlgorithm::Gzip,
        ),
        2 => (
            gzip_members(&fixture.bytes, 9, 1, true),
            CompressionAlgorithm::Gzip,
        ),
        3 => (
            gzip_members(&fixture.bytes, 6, 3, true),
            CompressionAlgorithm::Gzip,
        ),
        _ => (fixture.bytes.clone(), CompressionAlgorithm::Uncompressed),
    };
    let opts = BuildOptions {
        span_size: span,
        ..BuildOptions::default()
    };
    let z = build_ztoc(&layer[..], alg, &opts).unwrap();
    let bytes = z.to_bytes();
    assert_eq!(
        build_ztoc(&layer[..], alg, &opts).unwrap().to_bytes(),
        bytes,
        "deterministic"
    );
    let decoded = Ztoc::from_bytes(&bytes).unwrap();
    assert_eq!(decoded, z, "decode(encode(z)) == z");

    assert_eq!(z.compressed_archive_size, layer.len() as u64);
    assert_eq!(
        z.uncompressed_archive_size,
        fixture.uncompressed_archive_size
    );
    assert_eq!(z.toc, fixture.entries, "TOC equals what the tar says");

    let zinfo = Zinfo::from_checkpoints(alg, &z.compression_info.checkpoints).unwrap();
    zinfo
        .validate(z.compressed_archive_size, z.uncompressed_archive_size)
        .unwrap();
    assert_eq!(zinfo.span_size(), span);
    assert_eq!(zinfo.max_span_id(), z.compression_info.max_span_id);
    assert_eq!(
        z.compression_info.span_digests.len() as u32,
        zinfo.max_span_id() + 1
    );
    for (i, d) in z.compression_info.span_digests.iter().enumerate() {
        let s = zinfo.start_compressed_offset(i as u32) as usize;
        let e = zinfo.end_compressed_offset(i as u32, z.compressed_archive_size) as usize;
        assert_eq!(
            d,
            &Digest::of(&layer[s..e]).to_string(),
            "digest of span {i}"
        );
    }
    for (e, content) in z.toc.iter().zip(&fixture.contents) {
        if e.entry_type == entry_type::REG {
            assert_eq!(
                &extract(
                    &z,
                    &zinfo,
                    &layer,
                    e.uncompressed_offset,
                    e.uncompressed_size
                ),
                content,
                "{}",
                e.name
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn every_file_extracts_through_its_spans(seed in any::<u64>(), span in 0usize..4, variant in 0usize..5) {
        // 4 MiB spans only with small layers' worth of big files would be slow
        // at level 9; the span index picks from all sizes uniformly.
        check(seed, SPANS[span], variant);
    }
}

#[test]
fn fixed_cases_cover_every_combination() {
    for (i, span) in SPANS.iter().enumerate() {
        for variant in 0..5 {
            check(1000 + i as u64 * 10 + variant as u64, *span, variant);
        }
    }
}

#[test]
fn corrupt_layers_are_errors() {
    let fixture = build_tar(
        &[TarEntry::file("a", vec![7u8; 300_000])],
        EndOfArchive::TwoZeroBlocks,
    );
    let gz = gzip_members(&fixture.bytes, 6, 1, false);
    let opts = BuildOptions {
        span_size: 65536,
        ..BuildOptions::default()
    };
    // Truncated gzip.
    assert!(build_ztoc(&gz[..gz.len() / 2], CompressionAlgorithm::Gzip, &opts).is_err());
    // Trailing garbage after the gzip member.
    let mut trailing = gz.clone();
    trailing.extend_from_slice(b"garbage");
    assert!(build_ztoc(&trailing[..], CompressionAlgorithm::Gzip, &opts).is_err());
    // A tar truncated inside file data.
    assert!(
        build_ztoc(
            &fixture.bytes[..100_000],
            CompressionAlgorithm::Uncompressed,
            &opts
        )
        .is_err()
    );
    // Not gzip at all.
    assert!(build_ztoc(&fixture.bytes[..], CompressionAlgorithm::Gzip, &opts).is_err());
    // Span size 0.
    let zero = BuildOptions {
        span_size: 0,
        ..BuildOptions::default()
    };
    assert!(build_ztoc(&gz[..], CompressionAlgorithm::Gzip, &zero).is_err());
}
