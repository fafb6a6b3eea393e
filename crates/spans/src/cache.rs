//! The span cache seam: verified, uncompressed span bytes keyed by (layer, span).
//!
//! Only the span manager writes to a cache, and only bytes whose compressed form
//! matched the span digest of the zTOC. A cache must never hand back bytes that
//! differ from what was put: an entry it cannot vouch for (missing, short,
//! corrupt) is a miss, and the span manager fetches the span again.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use soci_format::Digest;
use soci_format::zinfo::SpanId;

use crate::SpanError;

mod disk;
mod mem;

pub use disk::DiskSpanCache;
pub use mem::MemSpanCache;

/// Verified uncompressed bytes of spans, by layer digest and span id.
///
/// Implementations are shared by all span managers of a process and called from
/// many threads at once.
pub trait SpanCache: Send + Sync {
    /// The bytes of `span` of `layer` if the cache holds them intact.
    ///
    /// `expected_len` is the span's uncompressed length from the zTOC; an entry
    /// of another length is corrupt and must be dropped and reported as a miss.
    /// I/O errors are misses too (the span is fetched again).
    fn get(&self, layer: &Digest, span: SpanId, expected_len: u64) -> Option<CachedSpan>;

    /// Store the (verified) bytes of `span` of `layer`, replacing any entry.
    /// Must never leave a partial entry that a later `get` could return.
    fn put(&self, layer: &Digest, span: SpanId, data: &[u8]) -> Result<(), SpanError>;

    /// Drop every span of `layer`.
    fn remove_layer(&self, layer: &Digest) -> Result<(), SpanError>;

    /// Bytes the cache holds (including per-entry overhead on disk).
    fn bytes_used(&self) -> u64;
}

/// One cached span, ready for positioned reads.
#[derive(Debug, Clone)]
pub struct CachedSpan {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Memory(Arc<[u8]>),
    File {
        file: Arc<File>,
        data_offset: u64,
        len: u64,
    },
}

impl CachedSpan {
    /// A span held in memory.
    pub fn from_bytes(bytes: Arc<[u8]>) -> CachedSpan {
        CachedSpan {
            inner: Inner::Memory(bytes),
        }
    }

    /// A span stored in `file` at `[data_offset, data_offset + len)`. The caller
    /// has checked that the file holds those bytes intact.
    pub fn from_file(file: File, data_offset: u64, len: u64) -> CachedSpan {
        CachedSpan {
            inner: Inner::File {
                file: Arc::new(file),
                data_offset,
                len,
            },
        }
    }

    /// Length of the span in bytes.
    pub fn len(&self) -> u64 {
        match &self.inner {
            Inner::Memory(b) => b.len() as u64,
            Inner::File { len, .. } => *len,
        }
    }

    /// True for an empty span.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill `buf` with the span's bytes starting at `offset` within the span.
    /// Fails if the range is not inside the span or the file cannot be read.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.len()) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "range {offset}+{} outside a cached span of {} bytes",
                    buf.len(),
                    self.len()
                ),
            ));
        }
        match &self.inner {
            Inner::Memory(b) => {
                let start = offset as usize;
                buf.copy_from_slice(&b[start..start + buf.len()]);
                Ok(())
            }
            Inner::File {
                file, data_offset, ..
            } => file.read_exact_at(buf, data_offset + offset),
        }
    }

    /// All bytes of the span.
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        let mut v = vec![0u8; self.len() as usize];
        self.read_exact_at(0, &mut v)?;
        Ok(v)
    }
}
