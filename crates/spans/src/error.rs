//! Errors of the span layer. Every variant names the layer and, where one is
//! involved, the span and the byte offsets, so that a log line is enough to find
//! the faulty zTOC, blob or cache file.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use soci_content::ContentError;
use soci_format::Digest;
use soci_format::zinfo::{SpanId, ZinfoError};

/// Why a span (or a layer) could not be served. The filesystem maps every
/// variant to `EIO`; no variant is ever returned together with data.
///
/// Errors are cheap to clone (sources are shared), so that every reader waiting
/// on a failed fetch gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpanError {
    /// The zTOC contradicts itself or the blob (span digest count, max span id,
    /// sizes, a span too large to hold in memory).
    #[error("invalid ztoc for layer {layer}: {reason}")]
    InvalidZtoc {
        /// The layer.
        layer: Digest,
        /// What is wrong.
        reason: String,
    },
    /// The zTOC's checkpoints cannot be parsed or do not fit the layer sizes.
    #[error("invalid checkpoints in the ztoc of layer {layer}: {source}")]
    Checkpoints {
        /// The layer.
        layer: Digest,
        /// What the checkpoint code reported.
        #[source]
        source: Arc<ZinfoError>,
    },
    /// The blob's size differs from the zTOC's `compressed_archive_size`.
    #[error("layer {layer} is {actual} bytes but its ztoc says {expected}")]
    BlobSize {
        /// The layer.
        layer: Digest,
        /// `compressed_archive_size` of the zTOC.
        expected: u64,
        /// What the blob reader reports.
        actual: u64,
    },
    /// The blob's size could not be read, also after all retries.
    #[error("reading the size of layer {layer} failed after {attempts} attempt(s): {source}")]
    BlobSizeUnavailable {
        /// The layer.
        layer: Digest,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: FetchFailure,
    },
    /// Bytes `[0, start of span 0)` of a gzip layer are not a gzip header.
    #[error("layer {layer}: bytes 0..{end} are not a gzip header: {source}")]
    GzipHeader {
        /// The layer.
        layer: Digest,
        /// End of the header bytes (start of span 0).
        end: u64,
        /// The header check's verdict.
        #[source]
        source: Arc<ZinfoError>,
    },
    /// Reading compressed bytes from the blob failed, also after all retries.
    #[error(
        "fetching spans {first_span}..={last_span} (compressed bytes {start}..{end}) of layer {layer} failed after {attempts} attempt(s): {source}"
    )]
    Fetch {
        /// The layer.
        layer: Digest,
        /// First span of the request.
        first_span: SpanId,
        /// Last span of the request.
        last_span: SpanId,
        /// First compressed byte requested.
        start: u64,
        /// End (exclusive) of the compressed bytes requested.
        end: u64,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: FetchFailure,
    },
    /// A span's compressed bytes do not hash to its digest in the zTOC, also
    /// after all verification retries. Nothing of the span was decompressed.
    #[error(
        "span {span} of layer {layer} (compressed bytes {start}..{end}) failed verification after {attempts} attempt(s): expected {expected}, got {actual}"
    )]
    Verification {
        /// The layer.
        layer: Digest,
        /// The span.
        span: SpanId,
        /// First compressed byte of the span.
        start: u64,
        /// End (exclusive) of the span's compressed bytes.
        end: u64,
        /// Digest from the zTOC.
        expected: Digest,
        /// Digest of the bytes fetched last.
        actual: Digest,
        /// Fetches of the span made.
        attempts: u32,
    },
    /// Verified compressed bytes could not be decompressed into the span's
    /// uncompressed range (the zTOC's checkpoints do not match the blob).
    #[error(
        "decompressing span {span} of layer {layer} (uncompressed {start}..{end}) failed: {source}"
    )]
    Decompress {
        /// The layer.
        layer: Digest,
        /// The span.
        span: SpanId,
        /// First uncompressed byte of the span.
        start: u64,
        /// End (exclusive) of the span's uncompressed bytes.
        end: u64,
        /// What the inflater reported.
        #[source]
        source: Arc<ZinfoError>,
    },
    /// Decompression produced fewer bytes than the span's uncompressed range.
    #[error(
        "span {span} of layer {layer} decompressed to {produced} bytes, expected {expected} (uncompressed {start}..)"
    )]
    ShortSpan {
        /// The layer.
        layer: Digest,
        /// The span.
        span: SpanId,
        /// First uncompressed byte of the span.
        start: u64,
        /// Bytes expected.
        expected: u64,
        /// Bytes produced.
        produced: u64,
    },
    /// The thread fetching the span stopped without finishing (it panicked).
    #[error("the fetch of span {span} of layer {layer} was abandoned")]
    Abandoned {
        /// The layer.
        layer: Digest,
        /// The span.
        span: SpanId,
    },
    /// A span id past the last span of the layer.
    #[error("span {span} of layer {layer} does not exist (max span id {max})")]
    SpanOutOfRange {
        /// The layer.
        layer: Digest,
        /// The requested span.
        span: SpanId,
        /// The last span id.
        max: SpanId,
    },
    /// A span cache could not store or remove data.
    #[error("span cache: {action} {path}: {source}")]
    Cache {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
}

impl SpanError {
    pub(crate) fn cache(action: &'static str, path: impl Into<PathBuf>, e: io::Error) -> Self {
        SpanError::Cache {
            action,
            path: path.into(),
            source: Arc::new(e),
        }
    }
}

/// Why one attempt to fetch compressed bytes failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchFailure {
    /// The blob reader returned an error.
    #[error("{0}")]
    Content(#[source] Arc<ContentError>),
    /// The blob reader returned a buffer of the wrong length for a range.
    #[error("range {start}..{end} returned {got} bytes")]
    WrongLength {
        /// First byte of the range.
        start: u64,
        /// End (exclusive) of the range.
        end: u64,
        /// Bytes returned.
        got: u64,
    },
}

impl From<SpanError> for io::Error {
    fn from(e: SpanError) -> io::Error {
        io::Error::other(e)
    }
}
