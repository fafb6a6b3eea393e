//! Test doubles (feature `testing`): a fault-injecting, counting
//! [`BlobRangeReader`] wrapper, an in-memory blob reader and an in-memory
//! [`SpanSource`].

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use soci_content::{BlobRangeReader, ContentError};
use soci_format::Digest;

use crate::{SpanError, SpanSource};

/// Blobs held in memory.
#[derive(Debug, Default)]
pub struct MemRangeReader {
    blobs: RwLock<HashMap<Digest, Arc<Vec<u8>>>>,
}

impl MemRangeReader {
    /// No blobs.
    pub fn new() -> MemRangeReader {
        MemRangeReader::default()
    }

    /// Add a blob under its own digest and return the digest.
    pub fn add(&self, bytes: Vec<u8>) -> Digest {
        let d = Digest::of(&bytes);
        self.add_as(d.clone(), bytes);
        d
    }

    /// Add a blob under any digest (to model a registry serving wrong bytes).
    pub fn add_as(&self, digest: Digest, bytes: Vec<u8>) {
        self.blobs
            .write()
            .expect("poisoned")
            .insert(digest, Arc::new(bytes));
    }

    fn blob(&self, digest: &Digest) -> Result<Arc<Vec<u8>>, ContentError> {
        self.blobs
            .read()
            .expect("poisoned")
            .get(digest)
            .cloned()
            .ok_or_else(|| ContentError::NotFound {
                digest: digest.clone(),
                store: "memory".into(),
            })
    }
}

impl BlobRangeReader for MemRangeReader {
    fn blob_size(&self, digest: &Digest) -> Result<u64, ContentError> {
        Ok(self.blob(digest)?.len() as u64)
    }

    fn read_ranges(
        &self,
        digest: &Digest,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Vec<u8>>, ContentError> {
        let blob = self.blob(digest)?;
        ranges
            .iter()
            .map(|r| {
                blob.get(r.start as usize..r.end as usize)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| injected(&format!("range {r:?} outside the blob")))
            })
            .collect()
    }
}

#[derive(Debug, Default)]
struct Faults {
    /// (blob offset, mask, calls left)
    flip: Option<(u64, u8, u64)>,
    truncate_calls: u64,
    error_calls: u64,
    blob_size_error_calls: u64,
    delay: Duration,
}

/// Wraps a [`BlobRangeReader`]; counts and records `read_ranges` calls and
/// injects faults into the next calls: flipped bits, truncated buffers, errors,
/// delays. Ranges are checked to be sorted, non-empty and non-overlapping as the
/// seam requires (a violation panics: it is a bug of the caller).
pub struct FaultyReader {
    inner: Arc<dyn BlobRangeReader>,
    faults: Mutex<Faults>,
    calls: AtomicU64,
    bytes: AtomicU64,
    log: Mutex<Vec<Vec<Range<u64>>>>,
}

impl std::fmt::Debug for FaultyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyReader")
            .field("faults", &self.faults)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

impl FaultyReader {
    /// A pass-through wrapper (no faults yet).
    pub fn new(inner: Arc<dyn BlobRangeReader>) -> FaultyReader {
        FaultyReader {
            inner,
            faults: Mutex::new(Faults::default()),
            calls: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        }
    }

    /// In the next `calls` reads whose ranges include blob byte `offset`, XOR
    /// that byte with `mask` (`u64::MAX` calls = forever).
    pub fn flip_bits(&self, offset: u64, mask: u8, calls: u64) {
        self.faults.lock().expect("poisoned").flip = Some((offset, mask, calls));
    }

    /// Cut one byte off the last buffer of the next `calls` reads.
    pub fn truncate_next(&self, calls: u64) {
        self.faults.lock().expect("poisoned").truncate_calls = calls;
    }

    /// Fail the next `calls` reads with an I/O error.
    pub fn fail_next(&self, calls: u64) {
        self.faults.lock().expect("poisoned").error_calls = calls;
    }

    /// Fail the next `calls` `blob_size` calls.
    pub fn fail_blob_size(&self, calls: u64) {
        self.faults.lock().expect("poisoned").blob_size_error_calls = calls;
    }

    /// Sleep this long in every read (to widen race windows).
    pub fn set_delay(&self, delay: Duration) {
        self.faults.lock().expect("poisoned").delay = delay;
    }

    /// `read_ranges` calls so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Bytes returned so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// The ranges of every call so far.
    pub fn requests(&self) -> Vec<Vec<Range<u64>>> {
        self.log.lock().expect("poisoned").clone()
    }

    /// Zero the counters and the request log.
    pub fn reset_counters(&self) {
        self.calls.store(0, Ordering::SeqCst);
        self.bytes.store(0, Ordering::SeqCst);
        self.log.lock().expect("poisoned").clear();
    }
}

fn injected(what: &str) -> ContentError {
    ContentError::Io {
        action: "read",
        path: PathBuf::from("<fault injection>"),
        source: io::Error::other(what.to_string()),
    }
}

impl BlobRangeReader for FaultyReader {
    fn blob_size(&self, digest: &Digest) -> Result<u64, ContentError> {
        {
            let mut f = self.faults.lock().expect("poisoned");
            if f.blob_size_error_calls > 0 {
                f.blob_size_error_calls -= 1;
                return Err(injected("injected blob size error"));
            }
        }
        self.inner.blob_size(digest)
    }

    fn read_ranges(
        &self,
        digest: &Digest,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Vec<u8>>, ContentError> {
        for w in ranges.windows(2) {
            assert!(
                w[0].end <= w[1].start,
                "ranges overlap or are unsorted: {ranges:?}"
            );
        }
        for r in ranges {
            assert!(r.start < r.end, "empty or reversed range {r:?}");
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.log.lock().expect("poisoned").push(ranges.to_vec());
        let delay = self.faults.lock().expect("poisoned").delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        {
            let mut f = self.faults.lock().expect("poisoned");
            if f.error_calls > 0 {
                f.error_calls -= 1;
                return Err(injected("injected read error"));
            }
        }
        let mut bufs = self.inner.read_ranges(digest, ranges)?;
        let mut f = self.faults.lock().expect("poisoned");
        if let Some((offset, mask, left)) = f.flip.as_mut()
            && *left > 0
        {
            let hit = ranges
                .iter()
                .zip(bufs.iter_mut())
                .find(|(r, _)| r.contains(offset));
            if let Some((r, b)) = hit {
                b[(*offset - r.start) as usize] ^= *mask;
                if *left != u64::MAX {
                    *left -= 1;
                }
            }
        }
        if f.truncate_calls > 0 {
            f.truncate_calls -= 1;
            if let Some(last) = bufs.last_mut() {
                last.pop();
            }
        }
        let n: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        self.bytes.fetch_add(n, Ordering::SeqCst);
        Ok(bufs)
    }
}

/// A [`SpanSource`] over bytes in memory, counting reads (for tests of code
/// that consumes a span source).
#[derive(Debug, Default)]
pub struct BytesSpanSource {
    bytes: Vec<u8>,
    reads: AtomicU64,
}

impl BytesSpanSource {
    /// Serve `bytes`.
    pub fn new(bytes: Vec<u8>) -> BytesSpanSource {
        BytesSpanSource {
            bytes,
            reads: AtomicU64::new(0),
        }
    }

    /// `read_at` calls so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }
}

impl SpanSource for BytesSpanSource {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, SpanError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let len = self.bytes.len() as u64;
        if offset >= len {
            return Ok(0);
        }
        let start = offset as usize;
        let n = buf.len().min(self.bytes.len() - start);
        buf[..n].copy_from_slice(&self.bytes[start..start + n]);
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}
