//! Checkpoints (zinfo): how to read any byte range of a layer from a few spans of
//! the layer blob.
//!
//! * [`gzip`]: zran-style checkpoints of a gzip layer (`CompressionInfo.checkpoints`
//!   blob, v2 and v1), span geometry and extraction;
//! * [`tar`]: the `TarZinfo` flatbuffer of an uncompressed layer (fixed slices);
//! * [`LayerIndexer`]: one pass over a layer blob that yields the uncompressed
//!   stream (for the tar walker) while recording the checkpoints exactly as
//!   upstream's zran code selects them and hashing every span's compressed bytes.
//!
//! The zlib FFI is confined to [`gzip`]; everything else here is safe code.
#![deny(unsafe_code)]

use std::io;

use crate::ztoc::CompressionAlgorithm;

pub mod gzip;
mod indexer;
mod spanhash;
pub mod tar;

pub use gzip::{Checkpoint, GzipZinfo, check_gzip_header};
pub use indexer::{IndexedLayer, IndexerOptions, LayerIndexer};
pub use tar::TarZinfo;

/// Index of a span (0-based). Upstream uses int32; ids here are never negative.
pub type SpanId = u32;

/// Checkpoints of a layer, by compression algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zinfo {
    /// gzip layer: zran checkpoints.
    Gzip(GzipZinfo),
    /// Uncompressed tar layer: fixed-size spans.
    Tar(TarZinfo),
}

/// Why checkpoints could not be parsed, validated, built or used.
#[derive(Debug, thiserror::Error)]
pub enum ZinfoError {
    /// The gzip checkpoints blob has an impossible length or content.
    #[error("invalid gzip checkpoints blob ({len} bytes): {reason}")]
    InvalidBlob {
        /// Length of the blob.
        len: usize,
        /// What is wrong.
        reason: String,
    },
    /// The `TarZinfo` flatbuffer cannot be decoded.
    #[error("invalid tar zinfo ({len} bytes): {reason}")]
    InvalidTarZinfo {
        /// Length of the buffer.
        len: usize,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoints contradict each other or the layer sizes.
    #[error("inconsistent checkpoints: {0}")]
    Inconsistent(String),
    /// A span id past the last span.
    #[error("span {span} out of range ({spans} spans, max span id {max})")]
    SpanOutOfRange {
        /// Requested span.
        span: SpanId,
        /// Last valid span id.
        max: SpanId,
        /// Number of spans.
        spans: u64,
    },
    /// Extraction asked for an offset before the first span given.
    #[error("uncompressed offset {offset} is before the start {span_start} of span {span}")]
    OffsetBeforeSpan {
        /// First span given.
        span: SpanId,
        /// Requested offset.
        offset: u64,
        /// Where that span starts.
        span_start: u64,
    },
    /// Inflating the compressed bytes of spans failed.
    #[error(
        "decompressing from span {span}: {msg} (zlib code {code}) after {input_offset} bytes of span input"
    )]
    Extract {
        /// First span given.
        span: SpanId,
        /// Bytes of the given compressed input used when it failed.
        input_offset: u64,
        /// zlib return code.
        code: i32,
        /// zlib's message.
        msg: String,
    },
    /// The layer blob is not valid gzip (bad header, corrupt data, bad checksum, trailing garbage).
    #[error(
        "corrupt gzip layer at compressed offset {compressed_offset} (uncompressed {uncompressed_offset}): {msg} (zlib code {code})"
    )]
    CorruptGzip {
        /// Compressed bytes consumed before the failure.
        compressed_offset: u64,
        /// Uncompressed bytes produced before the failure.
        uncompressed_offset: u64,
        /// zlib return code.
        code: i32,
        /// zlib's message.
        msg: String,
    },
    /// The layer blob ends inside a gzip member (or is empty).
    #[error(
        "truncated gzip layer: input ends at compressed offset {compressed_size} (uncompressed {uncompressed_offset}) inside a gzip member"
    )]
    TruncatedGzip {
        /// Bytes of input seen.
        compressed_size: u64,
        /// Uncompressed bytes produced.
        uncompressed_offset: u64,
    },
    /// A zlib call other than inflating data failed.
    #[error("zlib {op} failed: {msg} (code {code})")]
    Zlib {
        /// The zlib function.
        op: &'static str,
        /// Its return code.
        code: i32,
        /// Its message.
        msg: String,
    },
    /// Bytes `[0, start_0)` are not a gzip header.
    #[error("invalid gzip header: {0}")]
    InvalidGzipHeader(String),
    /// Reading the layer blob failed.
    #[error("reading the layer at compressed offset {offset}: {source}")]
    Io {
        /// Bytes read before the failure.
        offset: u64,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A span size the algorithm cannot work with.
    #[error("invalid span size {0} for {1} layers")]
    InvalidSpanSize(u64, &'static str),
}

impl ZinfoError {
    /// A copy of this error (an `Io` source is copied by kind and message).
    pub(crate) fn duplicate(&self) -> ZinfoError {
        use ZinfoError::*;
        match self {
            InvalidBlob { len, reason } => InvalidBlob {
                len: *len,
                reason: reason.clone(),
            },
            InvalidTarZinfo { len, reason } => InvalidTarZinfo {
                len: *len,
                reason: reason.clone(),
            },
            Inconsistent(m) => Inconsistent(m.clone()),
            SpanOutOfRange { span, max, spans } => SpanOutOfRange {
                span: *span,
                max: *max,
                spans: *spans,
            },
            OffsetBeforeSpan {
                span,
                offset,
                span_start,
            } => OffsetBeforeSpan {
                span: *span,
                offset: *offset,
                span_start: *span_start,
            },
            Extract {
                span,
                input_offset,
                code,
                msg,
            } => Extract {
                span: *span,
                input_offset: *input_offset,
                code: *code,
                msg: msg.clone(),
            },
            CorruptGzip {
                compressed_offset,
                uncompressed_offset,
                code,
                msg,
            } => CorruptGzip {
                compressed_offset: *compressed_offset,
                uncompressed_offset: *uncompressed_offset,
                code: *code,
                msg: msg.clone(),
            },
            TruncatedGzip {
                compressed_size,
                uncompressed_offset,
            } => TruncatedGzip {
                compressed_size: *compressed_size,
                uncompressed_offset: *uncompressed_offset,
            },
            Zlib { op, code, msg } => Zlib {
                op,
                code: *code,
                msg: msg.clone(),
            },
            InvalidGzipHeader(m) => InvalidGzipHeader(m.clone()),
            Io { offset, source } => Io {
                offset: *offset,
                source: io::Error::new(source.kind(), source.to_string()),
            },
            InvalidSpanSize(s, a) => InvalidSpanSize(*s, a),
        }
    }
}

impl From<ZinfoError> for io::Error {
    fn from(e: ZinfoError) -> io::Error {
        let kind = match &e {
            ZinfoError::TruncatedGzip { .. } => io::ErrorKind::UnexpectedEof,
            ZinfoError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

impl Zinfo {
    /// Parse `CompressionInfo.checkpoints` for the algorithm: the gzip blob (v2 or
    /// v1) or the `TarZinfo` flatbuffer. Never allocates more than the input implies.
    pub fn from_checkpoints(alg: CompressionAlgorithm, blob: &[u8]) -> Result<Zinfo, ZinfoError> {
        match alg {
            CompressionAlgorithm::Gzip => GzipZinfo::from_blob(blob).map(Zinfo::Gzip),
            CompressionAlgorithm::Uncompressed => TarZinfo::from_bytes(blob).map(Zinfo::Tar),
        }
    }

    /// Serialize back to `CompressionInfo.checkpoints` (v1 gzip blobs give their v1 bytes).
    pub fn to_checkpoints(&self) -> Vec<u8> {
        match self {
            Zinfo::Gzip(z) => z.to_blob(),
            Zinfo::Tar(z) => z.to_bytes(),
        }
    }

    /// Compression algorithm of the layer.
    pub fn algorithm(&self) -> CompressionAlgorithm {
        match self {
            Zinfo::Gzip(_) => CompressionAlgorithm::Gzip,
            Zinfo::Tar(_) => CompressionAlgorithm::Uncompressed,
        }
    }

    /// Number of spans (0 only for degenerate zinfos that [`Zinfo::validate`] rejects).
    pub fn num_spans(&self) -> u64 {
        match self {
            Zinfo::Gzip(z) => z.num_spans(),
            Zinfo::Tar(z) => z.num_spans(),
        }
    }

    /// Id of the last span (`num_spans - 1`; 0 when there are no spans).
    pub fn max_span_id(&self) -> SpanId {
        match self {
            Zinfo::Gzip(z) => z.max_span_id(),
            Zinfo::Tar(z) => z.max_span_id(),
        }
    }

    /// Span size the checkpoints were built with.
    pub fn span_size(&self) -> u64 {
        match self {
            Zinfo::Gzip(z) => z.span_size(),
            Zinfo::Tar(z) => z.span_size(),
        }
    }

    /// Span holding this uncompressed offset (largest `i` with `out_i <= off`).
    pub fn span_of(&self, uncompressed_offset: u64) -> SpanId {
        match self {
            Zinfo::Gzip(z) => z.span_of(uncompressed_offset),
            Zinfo::Tar(z) => z.span_of(uncompressed_offset),
        }
    }

    /// First compressed byte of the span: `in_i - (bits_i != 0)` (gzip), `i * span` (tar).
    ///
    /// Panics for a gzip span id past the last span; call [`Zinfo::validate`] first
    /// and keep span ids `<= max_span_id()`.
    pub fn start_compressed_offset(&self, span: SpanId) -> u64 {
        match self {
            Zinfo::Gzip(z) => z.start_compressed_offset(span),
            Zinfo::Tar(z) => z.start_offset(span),
        }
    }

    /// End (exclusive) of the span's compressed bytes: the next span's `in` (not
    /// adjusted for bits), or `compressed_size` for the last span.
    pub fn end_compressed_offset(&self, span: SpanId, compressed_size: u64) -> u64 {
        match self {
            Zinfo::Gzip(z) => z.end_compressed_offset(span, compressed_size),
            Zinfo::Tar(z) => z.end_offset(span, compressed_size),
        }
    }

    /// First uncompressed byte of the span.
    ///
    /// Panics for a gzip span id past the last span (see [`Zinfo::start_compressed_offset`]).
    pub fn start_uncompressed_offset(&self, span: SpanId) -> u64 {
        match self {
            Zinfo::Gzip(z) => z.start_uncompressed_offset(span),
            Zinfo::Tar(z) => z.start_offset(span),
        }
    }

    /// End (exclusive) of the span's uncompressed bytes: the next span's start, or
    /// `uncompressed_size` for the last span. The last span's end is never before
    /// its start (a checkpoint may lie in data past the tar end-of-archive marker).
    pub fn end_uncompressed_offset(&self, span: SpanId, uncompressed_size: u64) -> u64 {
        match self {
            Zinfo::Gzip(z) => z.end_uncompressed_offset(span, uncompressed_size),
            Zinfo::Tar(z) => z.end_offset(span, uncompressed_size),
        }
    }

    /// Check the checkpoints against the layer sizes (for checkpoints from an
    /// untrusted zTOC).
    ///
    /// gzip: at least one checkpoint, the first at uncompressed offset 0; `in`
    /// non-decreasing and `<= compressed_size`; `out` strictly increasing (except a
    /// leading run at 0, which zran emits for empty leading blocks or members);
    /// `bits <= 7` and no bits at offset 0. `out` is not checked against
    /// `uncompressed_size`: that is the tar end-of-archive position, and data (and
    /// checkpoints) may follow it. The span size is not used by the geometry and
    /// is not checked for gzip.
    ///
    /// tar: span size > 0, size == `compressed_size` > 0, `uncompressed_size <= size`.
    pub fn validate(&self, compressed_size: u64, uncompressed_size: u64) -> Result<(), ZinfoError> {
        match self {
            Zinfo::Gzip(z) => z.validate(compressed_size, uncompressed_size),
            Zinfo::Tar(z) => z.validate(compressed_size, uncompressed_size),
        }
    }

    /// Decompress uncompressed bytes `[offset, offset + out.len())` into `out`.
    ///
    /// `compressed` holds the layer's compressed bytes starting at
    /// `start_compressed_offset(first_span)` and covering one or more consecutive
    /// spans. Returns the number of bytes produced, fewer than `out.len()` only if
    /// the given data (or the gzip stream) ends first.
    pub fn extract(
        &self,
        compressed: &[u8],
        first_span: SpanId,
        offset: u64,
        out: &mut [u8],
    ) -> Result<usize, ZinfoError> {
        match self {
            Zinfo::Gzip(z) => z.extract(compressed, first_span, offset, out),
            Zinfo::Tar(z) => z.extract(compressed, first_span, offset, out),
        }
    }
}
