//! Opening a layer checks the zTOC against itself and the blob.

use std::sync::Arc;

use soci_format::Digest;
use soci_format::ztoc::Ztoc;
use soci_spans::testing::MemRangeReader;
use soci_spans::{MemSpanCache, SpanError, SpanManager};

use crate::common::*;

fn open(
    ztoc: Ztoc,
    digest: &Digest,
    reader: Arc<MemRangeReader>,
) -> Result<SpanManager, SpanError> {
    SpanManager::new(
        &ztoc,
        digest.clone(),
        reader,
        Arc::new(MemSpanCache::new()),
        fast_config(),
    )
}

#[test]
fn bad_ztocs_are_rejected() {
    let l = layer(401, Kind::Gzip(1, false), 50_000);
    let reader = Arc::new(MemRangeReader::new());
    let d = reader.add(l.blob.clone());
    assert!(open((*l.ztoc).clone(), &d, reader.clone()).is_ok());

    let mut z = (*l.ztoc).clone();
    z.compression_info.max_span_id += 1;
    let e = open(z, &d, reader.clone()).unwrap_err();
    assert!(matches!(e, SpanError::InvalidZtoc { .. }), "{e}");
    assert!(e.to_string().contains(&d.to_string()));

    let mut z = (*l.ztoc).clone();
    z.compression_info.span_digests.pop();
    assert!(matches!(
        open(z, &d, reader.clone()),
        Err(SpanError::InvalidZtoc { .. })
    ));

    let mut z = (*l.ztoc).clone();
    z.compression_info.span_digests.pop();
    z.compression_info.max_span_id -= 1;
    assert!(matches!(
        open(z, &d, reader.clone()),
        Err(SpanError::InvalidZtoc { .. })
    ));

    let mut z = (*l.ztoc).clone();
    z.compression_info.span_digests[1] = "sha256:nothex".into();
    assert!(matches!(
        open(z, &d, reader.clone()),
        Err(SpanError::InvalidZtoc { .. })
    ));

    let mut z = (*l.ztoc).clone();
    z.compressed_archive_size = 5;
    assert!(matches!(
        open(z, &d, reader.clone()),
        Err(SpanError::Checkpoints { .. })
    ));

    let mut z = (*l.ztoc).clone();
    z.compression_info.checkpoints.truncate(100);
    assert!(matches!(
        open(z, &d, reader.clone()),
        Err(SpanError::Checkpoints { .. })
    ));

    let mut z = (*l.ztoc).clone();
    z.compressed_archive_size += 1;
    assert!(matches!(
        open(z, &d, reader.clone()),
        Err(SpanError::BlobSize { .. })
    ));

    let small = SpanManager::new(
        &l.ztoc,
        d.clone(),
        reader.clone(),
        Arc::new(MemSpanCache::new()),
        soci_spans::SpanManagerConfig {
            max_span_bytes: 1000,
            ..fast_config()
        },
    );
    assert!(matches!(small, Err(SpanError::InvalidZtoc { .. })));
}

#[test]
fn a_blob_without_a_gzip_header_is_rejected() {
    let l = layer(402, Kind::Gzip(1, false), 50_000);
    let reader = Arc::new(MemRangeReader::new());
    let mut blob = l.blob.clone();
    blob[0] = 0x00;
    reader.add_as(l.digest.clone(), blob);
    let e = open((*l.ztoc).clone(), &l.digest, reader).unwrap_err();
    assert!(matches!(e, SpanError::GzipHeader { end: 10, .. }), "{e}");
}

#[test]
fn a_missing_blob_is_reported_after_retries() {
    let l = layer(403, Kind::Tar, 50_000);
    let reader = Arc::new(MemRangeReader::new());
    let e = open((*l.ztoc).clone(), &l.digest, reader).unwrap_err();
    assert!(
        matches!(e, SpanError::BlobSizeUnavailable { attempts: 4, .. }),
        "{e}"
    );
}

#[test]
fn the_wrong_blob_of_the_right_size_fails_verification() {
    let l = layer(404, Kind::Tar, 50_000);
    let reader = Arc::new(MemRangeReader::new());
    let mut blob = l.blob.clone();
    let n = blob.len();
    blob[n / 2] ^= 0x20;
    reader.add_as(l.digest.clone(), blob);
    let mgr = open((*l.ztoc).clone(), &l.digest, reader).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    let mut failed = false;
    while off < soci_spans::SpanSource::size(&mgr) {
        match soci_spans::SpanSource::read_at(&mgr, off, &mut buf[..4096]) {
            Ok(n) => {
                assert!(buf[..n] == l.expected()[off as usize..off as usize + n]);
                off += n as u64;
            }
            Err(SpanError::Verification { .. }) => {
                failed = true;
                off += 4096;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(failed);
}
