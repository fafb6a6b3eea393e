//! One-pass layer indexing: inflate the layer blob for a consumer (the tar walker)
//! while recording checkpoints and span digests.
//!
//! Checkpoint selection follows upstream's zran loop exactly: after every
//! `inflate(Z_BLOCK)` call, a checkpoint is taken when the inflater stopped at a
//! block boundary (or right after a gzip header) that is not inside the final
//! block, and either nothing has been output yet or more than `span_size` bytes
//! were output since the previous checkpoint. Because `Z_BLOCK` makes the inflater
//! stop at every block boundary, the choice depends only on the deflate block
//! structure, not on how input and output are chunked. Boundaries before a
//! possible checkpoint are skipped with `Z_NO_FLUSH` (see `GzipState::flush_mode`),
//! which selects the same checkpoints while keeping zlib in its fast loop.
//!
//! A checkpoint's window is the last 32 KiB of output before it, across gzip
//! members, with zeros in front at the start of the stream: upstream keeps one
//! circular output buffer for the whole stream. The indexer keeps the same ring
//! (copying at most 32 KiB per inflate call) rather than asking zlib for its
//! dictionary, which is cleared by the reset between members and, like C
//! zlib's, misses the output of the call that reaches a member's trailer.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::sync::Arc;

use super::gzip::{Checkpoint, GzipZinfo, Inflater, WBITS_AUTO, WINDOW_SIZE};
use super::spanhash::{Chunk, SpanHashing};
use super::tar::TarZinfo;
use super::{SpanId, Zinfo, ZinfoError};
use crate::digest::{Digest, Hasher};
use crate::ztoc::CompressionAlgorithm;

/// Compressed input is read in chunks of this size.
const INPUT_CHUNK: usize = 256 * 1024;
/// Default for [`IndexerOptions::direct_read_min`].
const DIRECT_READ_MIN: usize = 64 * 1024;
/// Size of the internal buffer for small reads and for draining in `finish`.
const STAGING_SIZE: usize = 256 * 1024;
/// Input chunks that may be held by the hashing thread at once (8 MiB): enough
/// slack that a hashing thread descheduled for a while does not stall inflating.
const MAX_CHUNKS: usize = 32;

/// Tuning of a [`LayerIndexer`].
#[derive(Debug, Clone)]
pub struct IndexerOptions {
    /// Hash the spans of gzip layers on a helper thread (default: when the
    /// machine has more than one core). Results are identical either way.
    pub background_hashing: bool,
    /// Reads at least this large inflate straight into the caller's buffer;
    /// smaller ones (tar headers, `io::copy`'s 8 KiB) are served from an internal
    /// 256 KiB buffer, which costs a memcpy but saves many small inflate calls.
    /// Default 64 KiB. Checkpoints do not depend on it.
    pub direct_read_min: usize,
}

impl Default for IndexerOptions {
    fn default() -> Self {
        IndexerOptions {
            background_hashing: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
            direct_read_min: DIRECT_READ_MIN,
        }
    }
}

/// Result of indexing a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedLayer {
    /// The checkpoints.
    pub zinfo: Zinfo,
    /// sha256 of every span's compressed bytes `[start_i, end_i)`, in span order.
    pub span_digests: Vec<Digest>,
    /// Size of the layer blob.
    pub compressed_size: u64,
    /// Size of the whole uncompressed stream (for a tar this can exceed the
    /// zTOC's `uncompressed_archive_size`, which stops at the end-of-archive marker).
    pub uncompressed_size: u64,
}

/// One-pass indexer over a layer blob.
///
/// Its [`Read`] (and [`BufRead`]) implementation yields the uncompressed stream;
/// checkpoints and span digests are recorded on the way. Call
/// [`LayerIndexer::finish`] at the end: it inflates (and so validates) whatever the
/// consumer did not read. Read errors carry the [`ZinfoError`] inside the
/// `io::Error`; after an error every further call fails.
pub struct LayerIndexer<R: Read> {
    inner: R,
    kind: Kind,
    direct_read_min: usize,
    error: Option<ZinfoError>,
    staging: Vec<u8>,
    staged_pos: usize,
    staged_len: usize,
}

enum Kind {
    Gzip(Box<GzipState>),
    Tar(TarState),
}

impl<R: Read> LayerIndexer<R> {
    /// Index the blob read from `inner`, compressed with `alg`.
    ///
    /// `span_size` must be > 0 for uncompressed layers (spans are fixed slices).
    pub fn new(inner: R, alg: CompressionAlgorithm, span_size: u64) -> Result<Self, ZinfoError> {
        Self::with_options(inner, alg, span_size, IndexerOptions::default())
    }

    /// Like [`LayerIndexer::new`], with explicit options.
    pub fn with_options(
        inner: R,
        alg: CompressionAlgorithm,
        span_size: u64,
        options: IndexerOptions,
    ) -> Result<Self, ZinfoError> {
        let kind = match alg {
            CompressionAlgorithm::Gzip => {
                if span_size > i64::MAX as u64 {
                    return Err(ZinfoError::InvalidSpanSize(span_size, "gzip"));
                }
                Kind::Gzip(Box::new(GzipState::new(
                    span_size,
                    options.background_hashing,
                )?))
            }
            CompressionAlgorithm::Uncompressed => {
                if span_size == 0 || span_size > i64::MAX as u64 {
                    return Err(ZinfoError::InvalidSpanSize(span_size, "uncompressed"));
                }
                Kind::Tar(TarState::new(span_size))
            }
        };
        Ok(LayerIndexer {
            inner,
            kind,
            direct_read_min: options.direct_read_min,
            error: None,
            staging: Vec::new(),
            staged_pos: 0,
            staged_len: 0,
        })
    }

    /// Inflate (and check) the rest of the layer, then return checkpoints and digests.
    pub fn finish(mut self) -> Result<IndexedLayer, ZinfoError> {
        self.staged_pos = 0;
        self.staged_len = 0;
        let mut scratch = std::mem::take(&mut self.staging);
        scratch.resize(STAGING_SIZE.max(scratch.len()), 0);
        while self.read_direct(&mut scratch)? != 0 {}
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match self.kind {
            Kind::Gzip(g) => g.into_result(),
            Kind::Tar(t) => t.into_result(),
        }
    }

    /// Produce uncompressed bytes into `out` (non-empty).
    fn read_direct(&mut self, out: &mut [u8]) -> Result<usize, ZinfoError> {
        if let Some(e) = &self.error {
            return Err(e.duplicate());
        }
        let r = match &mut self.kind {
            Kind::Gzip(g) => g.read(&mut self.inner, out),
            Kind::Tar(t) => t.read(&mut self.inner, out),
        };
        if let Err(e) = &r {
            self.error = Some(e.duplicate());
        }
        r
    }

    fn fill_staging(&mut self) -> Result<(), ZinfoError> {
        let mut staging = std::mem::take(&mut self.staging);
        staging.resize(STAGING_SIZE, 0);
        let r = self.read_direct(&mut staging);
        self.staging = staging;
        self.staged_pos = 0;
        self.staged_len = r?;
        Ok(())
    }
}

impl<R: Read> Read for LayerIndexer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.staged_pos == self.staged_len {
            if buf.len() >= self.direct_read_min || matches!(self.kind, Kind::Tar(_)) {
                return Ok(self.read_direct(buf)?);
            }
            self.fill_staging()?;
        }
        let avail = &self.staging[self.staged_pos..self.staged_len];
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.staged_pos += n;
        Ok(n)
    }
}

impl<R: Read> BufRead for LayerIndexer<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.staged_pos == self.staged_len {
            self.fill_staging()?;
        }
        Ok(&self.staging[self.staged_pos..self.staged_len])
    }

    fn consume(&mut self, amt: usize) {
        self.staged_pos = (self.staged_pos + amt).min(self.staged_len);
    }
}

fn read_retrying<R: Read>(inner: &mut R, buf: &mut [u8], offset: u64) -> Result<usize, ZinfoError> {
    loop {
        match inner.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(ZinfoError::Io { offset, source }),
        }
    }
}

/// The last 32 KiB of uncompressed output, as a ring.
struct History {
    buf: Box<[u8; WINDOW_SIZE]>,
    /// Next write position; the oldest byte is at `head`.
    head: usize,
}

impl History {
    fn new() -> History {
        History {
            buf: Box::new([0; WINDOW_SIZE]),
            head: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        if data.len() >= WINDOW_SIZE {
            self.buf.copy_from_slice(&data[data.len() - WINDOW_SIZE..]);
            self.head = 0;
            return;
        }
        let first = data.len().min(WINDOW_SIZE - self.head);
        self.buf[self.head..self.head + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
        self.head = (self.head + data.len()) % WINDOW_SIZE;
    }

    /// Append all 32 KiB, oldest first.
    fn append_to(&self, dst: &mut Vec<u8>) {
        dst.reserve(WINDOW_SIZE);
        dst.extend_from_slice(&self.buf[self.head..]);
        dst.extend_from_slice(&self.buf[..self.head]);
    }
}

struct GzipState {
    inflater: Inflater,
    span_size: u64,
    /// Current input chunk (shared with the hashing thread once handed to it).
    input: Chunk,
    /// Earlier chunks the hashing thread may still hold, oldest first.
    retired: VecDeque<Chunk>,
    in_pos: usize,
    in_len: usize,
    /// Compressed offset of `input[0]`.
    input_start: u64,
    /// Last byte of the previous input chunk.
    prev_byte: Option<u8>,
    eof: bool,
    totin: u64,
    totout: u64,
    /// `out` of the previous checkpoint.
    last: u64,
    points: Vec<Checkpoint>,
    windows: Vec<u8>,
    /// The last 32 KiB of output (all members), zeros before the start.
    history: History,
    /// The current member has ended (`Z_STREAM_END`); a new one starts if input follows.
    member_ended: bool,
    /// The previous inflate call made no progress.
    stalled: bool,
    done: bool,
    /// Span digests; the current span is hashed up to `hashed_to`.
    hashing: SpanHashing,
    hashed_to: u64,
}

impl GzipState {
    fn new(span_size: u64, background_hashing: bool) -> Result<GzipState, ZinfoError> {
        Ok(GzipState {
            inflater: Inflater::new(WBITS_AUTO)?,
            span_size,
            input: Arc::new(vec![0; INPUT_CHUNK]),
            retired: VecDeque::new(),
            in_pos: 0,
            in_len: 0,
            input_start: 0,
            prev_byte: None,
            eof: false,
            totin: 0,
            totout: 0,
            last: 0,
            points: Vec::new(),
            windows: Vec::new(),
            history: History::new(),
            member_ended: false,
            stalled: false,
            done: false,
            hashing: SpanHashing::new(background_hashing),
            hashed_to: 0,
        })
    }

    fn read<R: Read>(&mut self, inner: &mut R, out: &mut [u8]) -> Result<usize, ZinfoError> {
        loop {
            if self.done {
                return Ok(0);
            }
            if self.in_pos == self.in_len {
                if !self.eof {
                    self.refill(inner)?;
                    continue;
                }
                if self.member_ended {
                    self.complete()?;
                    return Ok(0);
                }
                return Err(ZinfoError::TruncatedGzip {
                    compressed_size: self.totin,
                    uncompressed_offset: self.totout,
                });
            }
            if self.member_ended {
                self.next_member()?;
            }
            let (flush, out) = self.flush_mode(out);
            let step = self
                .inflater
                .inflate(&self.input[self.in_pos..self.in_len], out, flush);
            self.in_pos += step.consumed;
            self.totin += step.consumed as u64;
            self.totout += step.produced as u64;
            self.history.push(&out[..step.produced]);
            match step.code {
                libz_rs_sys::Z_STREAM_END => self.member_ended = true,
                libz_rs_sys::Z_OK | libz_rs_sys::Z_BUF_ERROR => {
                    // Like upstream, look at data_type after every call, even one
                    // that only finished a block already buffered. With input and
                    // output available, two calls in a row without progress mean
                    // the inflater is stuck.
                    if step.consumed == 0 && step.produced == 0 {
                        if self.stalled {
                            return Err(self.corrupt(step.code, "inflate made no progress".into()));
                        }
                        self.stalled = true;
                    } else {
                        self.stalled = false;
                    }
                    self.maybe_checkpoint(step.data_type)?;
                }
                code => {
                    let msg = self.inflater.message(code);
                    return Err(self.corrupt(code, msg));
                }
            }
            if step.produced > 0 {
                return Ok(step.produced);
            }
        }
    }

    /// How to run the next inflate call, and into how much of `out`.
    ///
    /// A checkpoint can only be taken at a block boundary where nothing was
    /// output yet, or where more than `span_size` bytes were output since the
    /// previous checkpoint. Until then no block boundary matters, so inflate
    /// runs without stopping at them (`Z_NO_FLUSH`, zlib's fast path), with the
    /// output capped so that it cannot pass `last + span_size`. From there on it
    /// uses `Z_BLOCK`, which stops at the next boundary: the first one past the
    /// threshold, exactly where upstream's loop (`Z_BLOCK` throughout) takes it.
    fn flush_mode<'o>(&self, out: &'o mut [u8]) -> (i32, &'o mut [u8]) {
        let threshold = self.last.saturating_add(self.span_size);
        if self.totout == 0 || self.totout >= threshold {
            return (libz_rs_sys::Z_BLOCK, out);
        }
        let room = usize::try_from(threshold - self.totout).unwrap_or(usize::MAX);
        let n = out.len().min(room);
        (libz_rs_sys::Z_NO_FLUSH, &mut out[..n])
    }

    fn corrupt(&self, code: i32, msg: String) -> ZinfoError {
        ZinfoError::CorruptGzip {
            compressed_offset: self.totin,
            uncompressed_offset: self.totout,
            code,
            msg,
        }
    }

    /// Replace the (fully consumed) input chunk with the next one.
    fn refill<R: Read>(&mut self, inner: &mut R) -> Result<(), ZinfoError> {
        debug_assert_eq!(self.in_pos, self.in_len);
        let from = (self.hashed_to - self.input_start) as usize;
        self.hashing.update(&self.input, from..self.in_len)?;
        if self.in_len > 0 {
            self.prev_byte = Some(self.input[self.in_len - 1]);
        }
        self.input_start += self.in_len as u64;
        self.hashed_to = self.input_start;
        self.in_pos = 0;
        self.in_len = 0;
        self.next_chunk()?;
        let buf = Arc::get_mut(&mut self.input).ok_or_else(|| {
            ZinfoError::Inconsistent("input chunk still shared with the hashing thread".into())
        })?;
        let n = read_retrying(inner, buf, self.input_start)?;
        if n == 0 {
            self.eof = true;
        }
        self.in_len = n;
        Ok(())
    }

    /// Make `self.input` a chunk nobody else holds: reuse it, or the oldest
    /// retired chunk the hashing thread has released, or a new one.
    fn next_chunk(&mut self) -> Result<(), ZinfoError> {
        if Arc::get_mut(&mut self.input).is_some() {
            return Ok(());
        }
        let held = std::mem::replace(&mut self.input, Arc::new(Vec::new()));
        self.retired.push_back(held);
        self.hashing.drain_releases();
        loop {
            if let Some(front) = self.retired.front_mut()
                && Arc::get_mut(front).is_some()
            {
                self.input = self.retired.pop_front().unwrap_or_default();
                return Ok(());
            }
            if self.retired.len() < MAX_CHUNKS {
                self.input = Arc::new(vec![0; INPUT_CHUNK]);
                return Ok(());
            }
            self.hashing.wait_release()?;
        }
    }

    /// More input follows a finished member: start the next one.
    fn next_member(&mut self) -> Result<(), ZinfoError> {
        self.inflater.reset2(WBITS_AUTO)?;
        self.member_ended = false;
        Ok(())
    }

    fn maybe_checkpoint(&mut self, data_type: i32) -> Result<(), ZinfoError> {
        let at_boundary = data_type & 128 != 0 && data_type & 64 == 0;
        if !at_boundary || !(self.totout == 0 || self.totout - self.last > self.span_size) {
            return Ok(());
        }
        let bits = (data_type & 7) as u8;

        self.history.append_to(&mut self.windows);

        // The previous span ends at this `in`; the new one starts one byte
        // earlier when it begins inside a byte.
        let from = (self.hashed_to - self.input_start) as usize;
        self.hashing.update(&self.input, from..self.in_pos)?;
        let overlap = if bits == 0 {
            None
        } else if self.in_pos > 0 {
            Some(self.input[self.in_pos - 1])
        } else {
            Some(self.prev_byte.ok_or_else(|| {
                self.corrupt(0, "block boundary inside a byte before any input".into())
            })?)
        };
        self.hashing.begin_span(overlap)?;
        self.hashed_to = self.totin;

        self.points.push(Checkpoint {
            compressed_offset: self.totin,
            uncompressed_offset: self.totout,
            bits,
        });
        self.last = self.totout;
        Ok(())
    }

    /// The last member ended exactly at the end of input.
    fn complete(&mut self) -> Result<(), ZinfoError> {
        let from = (self.hashed_to - self.input_start) as usize;
        self.hashing.update(&self.input, from..self.in_len)?;
        self.hashed_to = self.input_start + self.in_len as u64;
        self.done = true;
        Ok(())
    }

    fn into_result(self) -> Result<IndexedLayer, ZinfoError> {
        debug_assert!(self.done);
        if self.points.is_empty() {
            return Err(ZinfoError::Inconsistent(
                "gzip stream produced no checkpoint".into(),
            ));
        }
        let digests = self.hashing.finish()?;
        if digests.len() != self.points.len() {
            return Err(ZinfoError::Inconsistent(format!(
                "{} span digests for {} checkpoints",
                digests.len(),
                self.points.len()
            )));
        }
        let compressed_size = self.input_start + self.in_len as u64;
        let zinfo = GzipZinfo::new(self.span_size, self.points, self.windows)?;
        Ok(IndexedLayer {
            zinfo: Zinfo::Gzip(zinfo),
            span_digests: digests,
            compressed_size,
            uncompressed_size: self.totout,
        })
    }
}

struct TarState {
    span_size: u64,
    pos: u64,
    /// Bytes of the current span hashed so far.
    in_span: u64,
    hasher: Hasher,
    digests: Vec<Digest>,
    done: bool,
}

impl TarState {
    fn new(span_size: u64) -> TarState {
        TarState {
            span_size,
            pos: 0,
            in_span: 0,
            hasher: Hasher::new(),
            digests: Vec::new(),
            done: false,
        }
    }

    fn read<R: Read>(&mut self, inner: &mut R, out: &mut [u8]) -> Result<usize, ZinfoError> {
        if self.done {
            return Ok(0);
        }
        let n = read_retrying(inner, out, self.pos)?;
        if n == 0 {
            self.done = true;
            return Ok(0);
        }
        let mut rest = &out[..n];
        while !rest.is_empty() {
            if self.in_span == self.span_size {
                let h = std::mem::take(&mut self.hasher);
                self.digests.push(h.finish());
                self.in_span = 0;
            }
            let k = (rest.len() as u64).min(self.span_size - self.in_span) as usize;
            self.hasher.update(&rest[..k]);
            self.in_span += k as u64;
            rest = &rest[k..];
        }
        self.pos += n as u64;
        Ok(n)
    }

    fn into_result(mut self) -> Result<IndexedLayer, ZinfoError> {
        if self.in_span > 0 {
            self.digests.push(self.hasher.finish());
        }
        if self.digests.len() as u64 > u64::from(SpanId::MAX) + 1 {
            return Err(ZinfoError::Inconsistent(format!(
                "{} spans do not fit a span id",
                self.digests.len()
            )));
        }
        Ok(IndexedLayer {
            zinfo: Zinfo::Tar(TarZinfo::new(self.span_size, self.pos)),
            span_digests: self.digests,
            compressed_size: self.pos,
            uncompressed_size: self.pos,
        })
    }
}
