//! The one seam between this crate and whatever produces layer bytes.

/// The uncompressed bytes of one layer (the tar stream the zTOC describes).
///
/// The span manager implements this by fetching, verifying and inflating spans;
/// the filesystem only ever asks for `[offset, offset + buf.len())` of the tar.
/// Reads may be short; the caller loops. An `Err` becomes `EIO` for the reader.
pub trait SpanSource: Send + Sync {
    /// Read up to `buf.len()` bytes at `offset`; returns how many were read
    /// (0 only at the end of the layer).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, std::io::Error>;
    /// Size of the uncompressed layer.
    fn size(&self) -> u64;
}

/// [`SpanSource`] fakes for tests (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use std::ops::Range;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::SpanSource;

    /// Serves a layer from memory; reads that touch a configured range fail.
    #[derive(Debug, Default)]
    pub struct MemSpanSource {
        data: Vec<u8>,
        failing: Vec<Range<u64>>,
        reads: AtomicU64,
    }

    impl MemSpanSource {
        /// Serve `data` (the uncompressed tar).
        pub fn new(data: impl Into<Vec<u8>>) -> MemSpanSource {
            MemSpanSource {
                data: data.into(),
                failing: Vec::new(),
                reads: AtomicU64::new(0),
            }
        }

        /// Make every read that overlaps `range` fail with an I/O error.
        pub fn fail_range(mut self, range: Range<u64>) -> MemSpanSource {
            self.failing.push(range);
            self
        }

        /// Number of `read_at` calls so far.
        pub fn reads(&self) -> u64 {
            self.reads.load(Ordering::Relaxed)
        }
    }

    impl SpanSource for MemSpanSource {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, std::io::Error> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let end = offset.saturating_add(buf.len() as u64);
            if let Some(r) = self
                .failing
                .iter()
                .find(|r| r.start < end && offset < r.end)
            {
                return Err(std::io::Error::other(format!(
                    "injected failure for layer bytes {}..{}",
                    r.start, r.end
                )));
            }
            let len = self.data.len() as u64;
            if offset >= len {
                return Ok(0);
            }
            let n = buf.len().min((len - offset) as usize);
            buf[..n].copy_from_slice(&self.data[offset as usize..offset as usize + n]);
            Ok(n)
        }

        fn size(&self) -> u64 {
            self.data.len() as u64
        }
    }

    /// Every read fails, as when the registry is unreachable.
    #[derive(Debug, Clone, Copy)]
    pub struct FailingSpanSource {
        size: u64,
    }

    impl FailingSpanSource {
        /// A source of `size` bytes that cannot be read.
        pub fn new(size: u64) -> FailingSpanSource {
            FailingSpanSource { size }
        }
    }

    impl SpanSource for FailingSpanSource {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, std::io::Error> {
            Err(std::io::Error::other(format!(
                "span fetch failed for layer bytes {offset}..{}",
                offset + buf.len() as u64
            )))
        }

        fn size(&self) -> u64 {
            self.size
        }
    }
}
