//! Spans: the uncompressed bytes of a lazily loaded layer, served only after
//! they were verified.
//!
//! This crate owns the data path between the blob reader and the filesystem:
//!
//! * [`SpanManager`] (one per mounted layer): maps uncompressed reads to spans of
//!   the zTOC, fetches the compressed bytes of all missing spans of a read with a
//!   single [`BlobRangeReader::read_ranges`](soci_content::BlobRangeReader::read_ranges)
//!   call, lets concurrent readers of a span share one fetch, checks each span's
//!   sha256 against the zTOC *before* decompressing it, retries failed or
//!   corrupt fetches with backoff, decompresses whole spans from the gzip
//!   checkpoints (or slices uncompressed layers) and keeps them in a cache;
//! * [`SpanCache`] with [`DiskSpanCache`] (atomic files, checked on use) and
//!   [`MemSpanCache`];
//! * [`BackgroundFetcher`]: walks the not yet fetched spans of registered layers,
//!   one span at a time, paced and pausable;
//! * [`SpanSource`]: the one trait the filesystem depends on.
//!
//! It must not touch HTTP, registries or credentials (all blob access goes
//! through the `BlobRangeReader` seam of `soci-content`), nor inodes, FUSE or
//! tar metadata (that is `layerfs`): it knows byte offsets, spans and digests
//! only. The rule it exists to enforce is that no byte reaches a reader unless
//! the compressed span it came from matched its digest; on any doubt it
//! returns an error (the filesystem answers `EIO`), never other bytes.
//!
//! ```
//! use std::sync::Arc;
//! use soci_content::FileRangeReader;
//! use soci_format::Digest;
//! use soci_format::testutil::{EndOfArchive, TarEntry, build_tar, gzip_members};
//! use soci_format::ztoc::{BuildOptions, CompressionAlgorithm, build_ztoc};
//! use soci_spans::{MemSpanCache, SpanManager, SpanManagerConfig, SpanSource};
//!
//! // A gzip layer in a file, and its zTOC.
//! let tar = build_tar(&[TarEntry::file("hello.txt", b"hello, world\n".to_vec())], EndOfArchive::TwoZeroBlocks);
//! let blob = gzip_members(&tar.bytes, 6, 1, false);
//! let ztoc = build_ztoc(&blob[..], CompressionAlgorithm::Gzip, &BuildOptions::default()).unwrap();
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("layer");
//! std::fs::write(&path, &blob).unwrap();
//! let digest = Digest::of(&blob);
//! let reader = FileRangeReader::new();
//! reader.add(digest.clone(), path);
//!
//! let layer = SpanManager::new(
//!     &ztoc,
//!     digest,
//!     Arc::new(reader),
//!     Arc::new(MemSpanCache::new()),
//!     SpanManagerConfig::default(),
//! )
//! .unwrap();
//! let file = &tar.entries[0];
//! let mut buf = vec![0u8; file.uncompressed_size as usize];
//! layer.read_at(file.uncompressed_offset, &mut buf).unwrap();
//! assert_eq!(buf, b"hello, world\n");
//! assert_eq!(layer.fetched_percent(), 100.0);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod background;
mod cache;
mod config;
mod error;
mod manager;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use background::{BackgroundFetchConfig, BackgroundFetcher, BackgroundStats, DropPolicy};
pub use cache::{CachedSpan, DiskSpanCache, MemSpanCache, SpanCache};
pub use config::SpanManagerConfig;
pub use error::{FetchFailure, SpanError};
pub use manager::{LayerState, SpanGeometry, SpanManager, SpanStats};
pub use soci_format::zinfo::SpanId;

/// The uncompressed bytes of one layer (its tar stream), readable at any offset.
///
/// This is all the filesystem needs of a layer. Implementations block until the
/// bytes are available and never return bytes they have not verified.
pub trait SpanSource: Send + Sync {
    /// Read up to `buf.len()` bytes at `offset`. Returns the number of bytes
    /// read: `buf.len()` unless the range passes the end of the layer, 0 at or
    /// past the end. On error nothing in `buf` is meaningful.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, SpanError>;

    /// Size of the uncompressed layer (`uncompressed_archive_size`).
    fn size(&self) -> u64;
}

impl<T: SpanSource + ?Sized> SpanSource for std::sync::Arc<T> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, SpanError> {
        (**self).read_at(offset, buf)
    }

    fn size(&self) -> u64 {
        (**self).size()
    }
}
