//! zTOC flatbuffer encoding and decoding: golden vectors, round trips, upstream's TOC
//! validation cases and robustness against corrupt input.

use std::collections::BTreeMap;

use proptest::prelude::*;
use soci_format::Digest;
use soci_format::ztoc::{
    CompressionAlgorithm, CompressionInfo, FileMetadata, Ztoc, ZtocError, entry_type,
};

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

#[test]
fn golden_vector_matches_upstream() {
    let bytes = golden_ztoc().to_bytes();
    assert_eq!(bytes.len(), 65928);
    assert_eq!(
        Digest::of(&bytes).to_string(),
        "sha256:eba28fdf50b1b57543f57dd051b2468c1d4f57b64d2006c75aa4de1d03e6c7ec"
    );
}
