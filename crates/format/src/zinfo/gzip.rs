//! Gzip checkpoints: the zran-style index of a gzip layer, its blob form, span
//! geometry and extraction of uncompressed bytes from the compressed bytes of spans.
//!
//! This module holds the only `unsafe` code of the project: [`Inflater`] owns a
//! zlib-rs (`libz_rs_sys`) inflate stream and exposes the handful of zlib calls
//! the checkpoint code needs (`inflate` with `Z_BLOCK` or `Z_NO_FLUSH`,
//! `data_type`, `inflatePrime`, `inflateSetDictionary`, `inflateReset2`) as safe
//! methods. Every other file of the crate is safe Rust.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{CStr, c_int, c_uint};
use std::fmt;

use libz_rs_sys::{
    Z_BUF_ERROR, Z_OK, Z_STREAM_END, crc32, inflate, inflateEnd, inflateInit2_, inflatePrime,
    inflateReset2, inflateSetDictionary, z_stream, zlibVersion,
};

use super::{SpanId, ZinfoError};

/// Size of a deflate window, and of every checkpoint's saved window.
pub const WINDOW_SIZE: usize = 32768;
/// Bytes of one serialized checkpoint: `in` (8), `out` (8), `bits` (1), window.
pub const PACKED_CHECKPOINT_SIZE: usize = 8 + 8 + 1 + WINDOW_SIZE;
/// Bytes of the blob header: checkpoint count (4) and span size (8).
pub const BLOB_HEADER_SIZE: usize = 4 + 8;
/// Size of the gzip member trailer (CRC-32 and ISIZE).
const GZIP_TRAILER_SIZE: usize = 8;
/// Window bits for automatic gzip/zlib header detection with a 32 KiB window.
pub(crate) const WBITS_AUTO: c_int = 47;
/// Window bits for raw deflate with a 32 KiB window.
const WBITS_RAW: c_int = -15;

/// Where a span starts: one zran access point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Offset in the compressed stream of the first full byte of the span (`in`).
    pub compressed_offset: u64,
    /// Offset in the uncompressed stream where the span starts (`out`).
    pub uncompressed_offset: u64,
    /// Number of bits (0..=7) of the byte at `compressed_offset - 1` that belong to the span.
    pub bits: u8,
}

/// Gzip checkpoints of a layer (upstream `GzipZinfo`).
///
/// Windows are kept in one contiguous buffer, 32 KiB per checkpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct GzipZinfo {
    span_size: u64,
    /// Parsed from a v1 blob (checkpoint 0 synthesized and not serialized).
    v1: bool,
    points: Vec<Checkpoint>,
    windows: Vec<u8>,
}

impl fmt::Debug for GzipZinfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GzipZinfo")
            .field("span_size", &self.span_size)
            .field("v1", &self.v1)
            .field("checkpoints", &self.points)
            .field("window_bytes", &self.windows.len())
            .finish()
    }
}

fn read_u64_le(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl GzipZinfo {
    /// Assemble checkpoints (v2). `windows` holds `WINDOW_SIZE` bytes per checkpoint, in order.
    pub fn new(
        span_size: u64,
        points: Vec<Checkpoint>,
        windows: Vec<u8>,
    ) -> Result<GzipZinfo, ZinfoError> {
        if points.len().checked_mul(WINDOW_SIZE) != Some(windows.len()) {
            return Err(ZinfoError::Inconsistent(format!(
                "{} checkpoints need {} window bytes, got {}",
                points.len(),
                points.len().saturating_mul(WINDOW_SIZE),
                windows.len()
            )));
        }
        if points.len() > i32::MAX as usize {
            return Err(ZinfoError::Inconsistent(format!(
                "{} checkpoints do not fit the blob's int32 count",
                points.len()
            )));
        }
        if span_size > i64::MAX as u64 {
            return Err(ZinfoError::Inconsistent(format!(
                "span size {span_size} does not fit the blob's int64"
            )));
        }
        if let Some((i, p)) = points.iter().enumerate().find(|(_, p)| {
            p.compressed_offset > i64::MAX as u64 || p.uncompressed_offset > i64::MAX as u64
        }) {
            return Err(ZinfoError::Inconsistent(format!(
                "checkpoint {i} offsets {p:?} do not fit the blob's int64"
            )));
        }
        Ok(GzipZinfo {
            span_size,
            v1: false,
            points,
            windows,
        })
    }

    /// Parse a `CompressionInfo.checkpoints` blob (v2, or v1 with checkpoint 0 implied).
    pub fn from_blob(blob: &[u8]) -> Result<GzipZinfo, ZinfoError> {
        let invalid = |reason: String| ZinfoError::InvalidBlob {
            len: blob.len(),
            reason,
        };
        if blob.len() < BLOB_HEADER_SIZE {
            return Err(invalid(format!(
                "shorter than the {BLOB_HEADER_SIZE}-byte header"
            )));
        }
        let count = i32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]);
        let span_size = read_u64_le(blob, 4);
        if count < 0 {
            return Err(invalid(format!("negative checkpoint count {count}")));
        }
        let body = blob.len() - BLOB_HEADER_SIZE;
        if !body.is_multiple_of(PACKED_CHECKPOINT_SIZE) {
            return Err(invalid(format!(
                "body of {body} bytes is not a whole number of {PACKED_CHECKPOINT_SIZE}-byte checkpoints"
            )));
        }
        // Only the blob length decides how much is allocated; the count must agree with it.
        let stored = body / PACKED_CHECKPOINT_SIZE;
        let count = count as usize;
        let v1 = if stored == count {
            false
        } else if stored + 1 == count {
            true
        } else {
            return Err(invalid(format!(
                "header claims {count} checkpoints but the blob holds {stored}"
            )));
        };
        if span_size > i64::MAX as u64 {
            return Err(invalid(format!("negative span size {}", span_size as i64)));
        }
        let mut points = Vec::with_capacity(count);
        let mut windows = Vec::with_capacity(count * WINDOW_SIZE);
        if v1 {
            points.push(Checkpoint {
                compressed_offset: 10,
                uncompressed_offset: 0,
                bits: 0,
            });
            windows.resize(WINDOW_SIZE, 0);
        }
        for (i, rec) in blob[BLOB_HEADER_SIZE..]
            .chunks_exact(PACKED_CHECKPOINT_SIZE)
            .enumerate()
        {
            let index = i + usize::from(v1);
            let cin = read_u64_le(rec, 0);
            let cout = read_u64_le(rec, 8);
            if cin > i64::MAX as u64 || cout > i64::MAX as u64 {
                return Err(invalid(format!(
                    "checkpoint {index} has a negative offset (in {}, out {})",
                    cin as i64, cout as i64
                )));
            }
            points.push(Checkpoint {
                compressed_offset: cin,
                uncompressed_offset: cout,
                bits: rec[16],
            });
            windows.extend_from_slice(&rec[17..]);
        }
        Ok(GzipZinfo {
            span_size,
            v1,
            points,
            windows,
        })
    }

    /// Serialize to the blob layout; v1 zinfos give back their v1 bytes.
    pub fn to_blob(&self) -> Vec<u8> {
        let skip = usize::from(self.v1 && !self.points.is_empty());
        let stored = self.points.len() - skip;
        let mut out = Vec::with_capacity(BLOB_HEADER_SIZE + stored * PACKED_CHECKPOINT_SIZE);
        // Constructors guarantee the count fits an int32.
        out.extend_from_slice(&(self.points.len() as i32).to_le_bytes());
        out.extend_from_slice(&self.span_size.to_le_bytes());
        for (i, p) in self.points.iter().enumerate().skip(skip) {
            out.extend_from_slice(&p.compressed_offset.to_le_bytes());
            out.extend_from_slice(&p.uncompressed_offset.to_le_bytes());
            out.push(p.bits);
            out.extend_from_slice(self.window(i));
        }
        out
    }

    /// Span size the checkpoints were generated with.
    pub fn span_size(&self) -> u64 {
        self.span_size
    }

    /// True if this zinfo was read from a v1 blob.
    pub fn is_v1(&self) -> bool {
        self.v1
    }

    /// All checkpoints, in order (one per span).
    pub fn checkpoints(&self) -> &[Checkpoint] {
        &self.points
    }

    /// The saved window (32 KiB of uncompressed data preceding the checkpoint, oldest first).
    ///
    /// Panics if `index` is out of range.
    pub fn window(&self, index: usize) -> &[u8] {
        &self.windows[index * WINDOW_SIZE..(index + 1) * WINDOW_SIZE]
    }

    /// Number of spans (= checkpoints).
    pub fn num_spans(&self) -> u64 {
        self.points.len() as u64
    }

    pub(crate) fn max_span_id(&self) -> SpanId {
        self.points.len().saturating_sub(1) as SpanId
    }

    pub(crate) fn span_of(&self, off: u64) -> SpanId {
        // Largest i with out_i <= off (0 if none).
        let n = self
            .points
            .partition_point(|p| p.uncompressed_offset <= off);
        n.saturating_sub(1) as SpanId
    }

    fn point(&self, span: SpanId) -> &Checkpoint {
        match self.points.get(span as usize) {
            Some(p) => p,
            None => panic!(
                "span {span} out of range (max span id {})",
                self.max_span_id()
            ),
        }
    }

    pub(crate) fn start_compressed_offset(&self, span: SpanId) -> u64 {
        let p = self.point(span);
        p.compressed_offset.saturating_sub(u64::from(p.bits != 0))
    }

    pub(crate) fn end_compressed_offset(&self, span: SpanId, compressed_size: u64) -> u64 {
        if span >= self.max_span_id() {
            compressed_size
        } else {
            self.points[span as usize + 1].compressed_offset
        }
    }

    pub(crate) fn start_uncompressed_offset(&self, span: SpanId) -> u64 {
        self.point(span).uncompressed_offset
    }

    pub(crate) fn end_uncompressed_offset(&self, span: SpanId, uncompressed_size: u64) -> u64 {
        if span >= self.max_span_id() {
            uncompressed_size.max(self.start_uncompressed_offset(span))
        } else {
            self.points[span as usize + 1].uncompressed_offset
        }
    }

    pub(crate) fn validate(
        &self,
        compressed_size: u64,
        _uncompressed_size: u64,
    ) -> Result<(), ZinfoError> {
        let bad = |span: usize, detail: String| {
            Err(ZinfoError::Inconsistent(format!(
                "checkpoint {span}: {detail}"
            )))
        };
        let Some(first) = self.points.first() else {
            return Err(ZinfoError::Inconsistent("no checkpoints".into()));
        };
        if first.uncompressed_offset != 0 {
            return bad(
                0,
                format!(
                    "first checkpoint starts at uncompressed offset {} instead of 0",
                    first.uncompressed_offset
                ),
            );
        }
        if compressed_size == 0 {
            return Err(ZinfoError::Inconsistent("compressed size is 0".to_string()));
        }
        let mut prev: Option<&Checkpoint> = None;
        for (i, p) in self.points.iter().enumerate() {
            if p.bits > 7 {
                return bad(i, format!("bits {} > 7", p.bits));
            }
            if p.bits != 0 && p.compressed_offset == 0 {
                return bad(i, "bits set at compressed offset 0".into());
            }
            if p.compressed_offset > compressed_size {
                return bad(
                    i,
                    format!(
                        "compressed offset {} beyond the compressed size {compressed_size}",
                        p.compressed_offset
                    ),
                );
            }
            if let Some(q) = prev {
                if p.compressed_offset < q.compressed_offset {
                    return bad(
                        i,
                        format!(
                            "compressed offset {} before the previous checkpoint's {}",
                            p.compressed_offset, q.compressed_offset
                        ),
                    );
                }
                // zran emits several checkpoints at uncompressed offset 0 when the
                // stream starts with empty blocks or empty members; otherwise `out`
                // strictly increases.
                let zero_run = p.uncompressed_offset == 0 && q.uncompressed_offset == 0;
                if p.uncompressed_offset <= q.uncompressed_offset && !zero_run {
                    return bad(
                        i,
                        format!(
                            "uncompressed offset {} not after the previous checkpoint's {}",
                            p.uncompressed_offset, q.uncompressed_offset
                        ),
                    );
                }
            }
            prev = Some(p);
        }
        Ok(())
    }

    pub(crate) fn extract(
        &self,
        compressed: &[u8],
        first_span: SpanId,
        offset: u64,
        out: &mut [u8],
    ) -> Result<usize, ZinfoError> {
        let Some(point) = self.points.get(first_span as usize) else {
            return Err(ZinfoError::SpanOutOfRange {
                span: first_span,
                max: self.max_span_id(),
                spans: self.num_spans(),
            });
        };
        if offset < point.uncompressed_offset {
            return Err(ZinfoError::OffsetBeforeSpan {
                span: first_span,
                offset,
                span_start: point.uncompressed_offset,
            });
        }
        if point.bits > 7 {
            return Err(ZinfoError::Inconsistent(format!(
                "checkpoint {first_span}: bits {} > 7",
                point.bits
            )));
        }
        if out.is_empty() {
            return Ok(0);
        }
        let fail = |consumed: usize, code: i32, msg: String| ZinfoError::Extract {
            span: first_span,
            input_offset: consumed as u64,
            code,
            msg,
        };

        let mut inf = Inflater::new(WBITS_RAW)?;
        let mut input = compressed;
        if point.bits != 0 {
            let Some((&byte, rest)) = input.split_first() else {
                return Err(fail(0, Z_BUF_ERROR, "no compressed input".into()));
            };
            let bits = c_int::from(point.bits);
            inf.prime(bits, c_int::from(byte) >> (8 - bits))?;
            input = rest;
        }
        inf.set_dictionary(self.window(first_span as usize))?;

        let mut skip = offset - point.uncompressed_offset;
        let mut discard = if skip > 0 {
            vec![0u8; skip.min(WINDOW_SIZE as u64) as usize]
        } else {
            Vec::new()
        };
        let mut produced = 0usize;
        let mut raw_mode = true;
        let mut stalled = false;
        loop {
            let target: &mut [u8] = if skip > 0 {
                let n = skip.min(discard.len() as u64) as usize;
                &mut discard[..n]
            } else {
                &mut out[produced..]
            };
            if target.is_empty() {
                break;
            }
            let step = inf.inflate(input, target, libz_rs_sys::Z_NO_FLUSH);
            input = &input[step.consumed..];
            if skip > 0 {
                skip -= step.produced as u64;
            } else {
                produced += step.produced;
            }
            let used = compressed.len() - input.len();
            let progressed = step.consumed > 0 || step.produced > 0;
            match step.code {
                Z_OK | Z_BUF_ERROR if progressed => stalled = false,
                Z_OK | Z_BUF_ERROR => {
                    if input.is_empty() {
                        // The compressed data given to us ends here.
                        break;
                    }
                    if stalled {
                        return Err(fail(used, step.code, "inflate made no progress".into()));
                    }
                    stalled = true;
                }
                Z_STREAM_END => {
                    if skip == 0 && produced == out.len() {
                        break;
                    }
                    if raw_mode {
                        // Raw inflate leaves the first member's trailer unread.
                        if input.len() < GZIP_TRAILER_SIZE {
                            return Err(fail(
                                used,
                                Z_BUF_ERROR,
                                "gzip member trailer is truncated".into(),
                            ));
                        }
                        input = &input[GZIP_TRAILER_SIZE..];
                        raw_mode = false;
                    }
                    if input.is_empty() {
                        break;
                    }
                    inf.reset2(WBITS_AUTO)?;
                }
                code => return Err(fail(used, code, inf.message(code))),
            }
        }
        Ok(if skip > 0 { 0 } else { produced })
    }
}

/// Check that `bytes` start with a gzip member header, as Go's `gzip.NewReader` does
/// (the snapshotter runs this on bytes `[0, start_0)` when a layer is opened).
///
/// Bytes after the header are not looked at.
pub fn check_gzip_header(bytes: &[u8]) -> Result<(), ZinfoError> {
    const FHCRC: u8 = 1 << 1;
    const FEXTRA: u8 = 1 << 2;
    const FNAME: u8 = 1 << 3;
    const FCOMMENT: u8 = 1 << 4;
    let err = |m: &str| Err(ZinfoError::InvalidGzipHeader(m.to_string()));
    if bytes.len() < 10 {
        return err("shorter than 10 bytes");
    }
    if bytes[0] != 0x1f || bytes[1] != 0x8b {
        return err("bad magic");
    }
    if bytes[2] != 8 {
        return err("compression method is not deflate");
    }
    let flags = bytes[3];
    let mut pos = 10usize;
    if flags & FEXTRA != 0 {
        let Some(len) = bytes.get(pos..pos + 2) else {
            return err("truncated extra field length");
        };
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        pos += 2;
        if bytes.len() - pos < len {
            return err("truncated extra field");
        }
        pos += len;
    }
    for (flag, what) in [(FNAME, "file name"), (FCOMMENT, "comment")] {
        if flags & flag == 0 {
            continue;
        }
        // Go reads at most 512 bytes including the terminating NUL.
        let rest = &bytes[pos..];
        match rest.iter().take(512).position(|&b| b == 0) {
            Some(n) => pos += n + 1,
            None if rest.len() >= 512 => {
                return Err(ZinfoError::InvalidGzipHeader(format!("{what} too long")));
            }
            None => {
                return Err(ZinfoError::InvalidGzipHeader(format!("truncated {what}")));
            }
        }
    }
    if flags & FHCRC != 0 {
        let Some(stored) = bytes.get(pos..pos + 2) else {
            return err("truncated header crc");
        };
        let stored = u16::from_le_bytes([stored[0], stored[1]]);
        if stored != crc32_of(&bytes[..pos]) as u16 {
            return err("header crc mismatch");
        }
    }
    Ok(())
}

/// CRC-32 (IEEE) of `data`.
fn crc32_of(data: &[u8]) -> u32 {
    let mut crc = 0;
    for chunk in data.chunks(1 << 30) {
        // SAFETY: `chunk` is a live slice; pointer and length (< 2^30, fits uInt)
        // describe readable memory for the duration of the call.
        crc = unsafe { crc32(crc, chunk.as_ptr(), chunk.len() as c_uint) };
    }
    crc as u32
}

/// Result of one [`Inflater::inflate`] call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    /// zlib return code.
    pub code: c_int,
    /// Input bytes consumed.
    pub consumed: usize,
    /// Output bytes written.
    pub produced: usize,
    /// `strm.data_type` after the call.
    pub data_type: c_int,
}

/// An owned zlib-rs inflate stream.
///
/// The `z_stream` is boxed because zlib's state keeps a pointer back to it and
/// checks it on every call, so it must not move after `inflateInit2_`. Input and
/// output pointers are only set for the duration of a call and cleared afterwards,
/// so the stream never holds pointers into memory it does not own between calls.
pub(crate) struct Inflater {
    strm: Box<z_stream>,
}

// SAFETY: the stream and its internal state are exclusively owned by this value
// (allocated through the Rust global allocator), hold no thread-local data, and
// no pointer to caller memory survives a method call, so moving the owner to
// another thread is sound.
unsafe impl Send for Inflater {}

impl Inflater {
    /// `inflateInit2(window_bits)`.
    pub(crate) fn new(window_bits: c_int) -> Result<Inflater, ZinfoError> {
        let mut strm = Box::new(z_stream::default());
        // SAFETY: `strm` is a valid, exclusively owned z_stream whose allocator
        // fields were set by `Default`; the version string comes from the library
        // itself (static, NUL terminated) and the size is that of the struct passed.
        let ret = unsafe {
            inflateInit2_(
                &mut *strm,
                window_bits,
                zlibVersion(),
                std::mem::size_of::<z_stream>() as c_int,
            )
        };
        if ret != Z_OK {
            // The state was not allocated; nothing to free.
            return Err(ZinfoError::Zlib {
                op: "inflateInit2",
                code: ret,
                msg: describe(ret),
            });
        }
        Ok(Inflater { strm })
    }

    /// One `inflate` call over `input` into `output` (each capped at 4 GiB - 1).
    pub(crate) fn inflate(&mut self, input: &[u8], output: &mut [u8], flush: c_int) -> Step {
        let avail_in = input.len().min(u32::MAX as usize) as c_uint;
        let avail_out = output.len().min(u32::MAX as usize) as c_uint;
        self.strm.next_in = input.as_ptr();
        self.strm.avail_in = avail_in;
        self.strm.next_out = output.as_mut_ptr();
        self.strm.avail_out = avail_out;
        // SAFETY: the stream was initialised by `new`; `next_in`/`avail_in` describe
        // the live `input` slice and `next_out`/`avail_out` the live, exclusively
        // borrowed `output` slice, both valid for the whole call.
        let code = unsafe { inflate(&mut *self.strm, flush) };
        let step = Step {
            code,
            consumed: (avail_in - self.strm.avail_in) as usize,
            produced: (avail_out - self.strm.avail_out) as usize,
            data_type: self.strm.data_type,
        };
        self.strm.next_in = std::ptr::null();
        self.strm.avail_in = 0;
        self.strm.next_out = std::ptr::null_mut();
        self.strm.avail_out = 0;
        step
    }

    /// `inflatePrime(bits, value)`.
    pub(crate) fn prime(&mut self, bits: c_int, value: c_int) -> Result<(), ZinfoError> {
        // SAFETY: the stream was initialised by `new`; the call takes no pointers.
        let ret = unsafe { inflatePrime(&mut *self.strm, bits, value) };
        self.check("inflatePrime", ret)
    }

    /// `inflateSetDictionary(dict)`.
    pub(crate) fn set_dictionary(&mut self, dict: &[u8]) -> Result<(), ZinfoError> {
        debug_assert!(dict.len() <= WINDOW_SIZE);
        // SAFETY: the stream was initialised by `new`; `dict` is a live slice of
        // `dict.len()` (<= 32 KiB) readable bytes.
        let ret =
            unsafe { inflateSetDictionary(&mut *self.strm, dict.as_ptr(), dict.len() as c_uint) };
        self.check("inflateSetDictionary", ret)
    }

    /// `inflateReset2(window_bits)`.
    pub(crate) fn reset2(&mut self, window_bits: c_int) -> Result<(), ZinfoError> {
        // SAFETY: the stream was initialised by `new`; the call takes no pointers.
        let ret = unsafe { inflateReset2(&mut *self.strm, window_bits) };
        self.check("inflateReset2", ret)
    }

    /// zlib's message for the last error, or a description of `code`.
    pub(crate) fn message(&self, code: c_int) -> String {
        if self.strm.msg.is_null() {
            return describe(code);
        }
        // SAFETY: a non-null `msg` set by the library points to a static,
        // NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(self.strm.msg) };
        msg.to_string_lossy().into_owned()
    }

    fn check(&self, op: &'static str, ret: c_int) -> Result<(), ZinfoError> {
        if ret == Z_OK {
            Ok(())
        } else {
            Err(ZinfoError::Zlib {
                op,
                code: ret,
                msg: self.message(ret),
            })
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by `new` and is ended exactly once here.
        unsafe {
            inflateEnd(&mut *self.strm);
        }
    }
}

/// Human name of a zlib return code.
pub(crate) fn describe(code: c_int) -> String {
    match code {
        libz_rs_sys::Z_OK => "ok".into(),
        libz_rs_sys::Z_STREAM_END => "stream end".into(),
        libz_rs_sys::Z_NEED_DICT => "a preset dictionary is required".into(),
        libz_rs_sys::Z_ERRNO => "i/o error".into(),
        libz_rs_sys::Z_STREAM_ERROR => "stream error".into(),
        libz_rs_sys::Z_DATA_ERROR => "data error".into(),
        libz_rs_sys::Z_MEM_ERROR => "out of memory".into(),
        libz_rs_sys::Z_BUF_ERROR => "no progress possible".into(),
        libz_rs_sys::Z_VERSION_ERROR => "zlib version mismatch".into(),
        c => format!("zlib error {c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_only_blobs() {
        let mut b = vec![0u8; 12];
        let z = GzipZinfo::from_blob(&b).unwrap();
        assert!(!z.is_v1());
        assert_eq!(z.checkpoints().len(), 0);
        assert_eq!(z.to_blob(), b);

        b[0] = 1;
        let z = GzipZinfo::from_blob(&b).unwrap();
        assert!(z.is_v1());
        assert_eq!(z.checkpoints()[0].compressed_offset, 10);
        assert_eq!(z.to_blob(), b);

        b[0] = 255;
        assert!(GzipZinfo::from_blob(&b).is_err());
        assert!(GzipZinfo::from_blob(&[]).is_err());
        assert!(GzipZinfo::from_blob(&[0]).is_err());
    }

    #[test]
    fn header_check() {
        let mut h = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        assert!(check_gzip_header(&h).is_ok());
        assert!(check_gzip_header(&h[..9]).is_err());
        h[3] = 1 << 3;
        assert!(check_gzip_header(&h).is_err());
        h.extend_from_slice(b"name\0");
        assert!(check_gzip_header(&h).is_ok());
        h[3] |= 2;
        let crc = crc32_of(&h) as u16;
        h.extend_from_slice(&crc.to_le_bytes());
        assert!(check_gzip_header(&h).is_ok());
        let n = h.len();
        h[n - 1] ^= 1;
        assert!(check_gzip_header(&h).is_err());
    }
}
