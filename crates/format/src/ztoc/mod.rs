//! The zTOC: a layer's file table plus the compression info needed to read any
//! byte range of the layer from a few spans of the compressed blob.
//!
//! The in-memory model mirrors upstream's Go `ztoc.Ztoc`. [`Ztoc::to_bytes`]
//! writes the raw finished flatbuffer (no identifier, no size prefix) with the
//! builder calls issued in upstream's order, so equal values give equal digests.
//! [`Ztoc::from_bytes`] verifies the buffer and applies upstream's read rules:
//! entries are re-sorted by offset, tar header offsets are recomputed and
//! overlapping entries are rejected.

use std::collections::BTreeMap;

mod build;
mod fbs;

pub use build::{BuildError, BuildOptions, build_ztoc};
pub use fbs::TocEntries;

/// The only zTOC version upstream defines.
pub const ZTOC_VERSION: &str = "0.9";
/// Build tool identifier written by the `soci` CLI.
pub const DEFAULT_BUILD_TOOL: &str = crate::json::DEFAULT_BUILD_TOOL_IDENTIFIER;

/// How the layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum CompressionAlgorithm {
    /// gzip (one or more concatenated members); checkpoints are zran style.
    #[default]
    Gzip,
    /// A plain tar; checkpoints are a `TarZinfo` flatbuffer and spans are fixed slices.
    Uncompressed,
}

impl CompressionAlgorithm {
    /// Lower-case name as upstream reports it (`gzip`, `uncompressed`).
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionAlgorithm::Gzip => "gzip",
            CompressionAlgorithm::Uncompressed => "uncompressed",
        }
    }
}

/// Entry type names stored in [`FileMetadata::entry_type`].
pub mod entry_type {
    /// Regular file.
    pub const REG: &str = "reg";
    /// Directory.
    pub const DIR: &str = "dir";
    /// Symbolic link.
    pub const SYMLINK: &str = "symlink";
    /// Hard link (linkname names the target).
    pub const HARDLINK: &str = "hardlink";
    /// Character device.
    pub const CHAR: &str = "char";
    /// Block device.
    pub const BLOCK: &str = "block";
    /// Named pipe.
    pub const FIFO: &str = "fifo";
}

/// One tar entry of the layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileMetadata {
    /// Name as Go `archive/tar` reports it (PAX `path` / GNU long name applied, not cleaned).
    pub name: String,
    /// One of the [`entry_type`] names (empty only in synthetic test data).
    pub entry_type: String,
    /// Offset of the entry's data in the uncompressed tar stream.
    pub uncompressed_offset: u64,
    /// Size of the entry's data.
    pub uncompressed_size: u64,
    /// Link target for symlinks and hardlinks.
    pub linkname: String,
    /// Raw mode field of the header.
    pub mode: i64,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Owner user name.
    pub uname: String,
    /// Owner group name.
    pub gname: String,
    /// Modification time in Go `time.MarshalText` form (RFC 3339, nanoseconds trimmed).
    pub mod_time: String,
    /// Device major number.
    pub devmajor: i64,
    /// Device minor number.
    pub devminor: i64,
    /// All raw PAX records of the entry (the `xattrs` field of the schema), sorted by key.
    pub pax_records: BTreeMap<String, String>,
    /// Offset of the entry's (first) tar header block. Not serialized; recomputed on read.
    pub tar_header_offset: u64,
}

impl FileMetadata {
    /// Extended attributes of the entry: the `SCHILY.xattr.*` PAX records with the prefix stripped.
    pub fn xattrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pax_records.iter().filter_map(|(k, v)| {
            k.strip_prefix("SCHILY.xattr.")
                .map(|name| (name, v.as_str()))
        })
    }
}

/// The compression part of a zTOC.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompressionInfo {
    /// Compression of the layer blob.
    pub algorithm: CompressionAlgorithm,
    /// Id of the last span (`number of spans - 1`).
    pub max_span_id: u32,
    /// `sha256:<hex>` of every span's compressed bytes, in span order.
    pub span_digests: Vec<String>,
    /// The serialized checkpoints (see [`crate::zinfo`]).
    pub checkpoints: Vec<u8>,
}

/// A decoded zTOC.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ztoc {
    /// Format version, [`ZTOC_VERSION`].
    pub version: String,
    /// Tool that built the zTOC.
    pub build_tool_identifier: String,
    /// Size of the compressed layer blob.
    pub compressed_archive_size: u64,
    /// Size of the uncompressed tar up to and including its end-of-archive blocks.
    pub uncompressed_archive_size: u64,
    /// Tar entries, sorted by `uncompressed_offset`.
    pub toc: Vec<FileMetadata>,
    /// Compression info.
    pub compression_info: CompressionInfo,
}

/// Why a zTOC could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ZtocError {
    /// The bytes are not a valid zTOC flatbuffer.
    #[error("invalid ztoc flatbuffer: {0}")]
    Flatbuffer(String),
    /// A field holds a value that cannot be right (negative size, unknown algorithm, ...).
    #[error("invalid ztoc: {0}")]
    Invalid(String),
    /// Two entries overlap, or an entry starts before the previous one ends.
    #[error(
        "invalid toc entry {name:?} at offset {offset}: overlaps the previous entry (ends at {previous_end})"
    )]
    InvalidTocEntry {
        /// Entry name.
        name: String,
        /// The entry's data offset.
        offset: u64,
        /// Where the previous entry's data ends, rounded to the next 512-byte block.
        previous_end: u64,
    },
}

impl Ztoc {
    /// Serialize to upstream's byte layout.
    pub fn to_bytes(&self) -> Vec<u8> {
        fbs::encode(self)
    }

    /// Decode and validate a zTOC blob.
    pub fn from_bytes(bytes: &[u8]) -> Result<Ztoc, ZtocError> {
        fbs::decode(bytes)
    }

    /// Decode and validate a zTOC blob but its TOC: the returned zTOC has an
    /// empty `toc`, and the iterator yields the entries one at a time, exactly
    /// as [`Ztoc::from_bytes`] would have listed them (the first error ends
    /// it). For a reader that consumes each entry once, so that the decoded
    /// entries of a large layer are never all in memory at the same time.
    pub fn from_bytes_streaming(bytes: &[u8]) -> Result<(Ztoc, TocEntries<'_>), ZtocError> {
        fbs::decode_streaming(bytes)
    }
}
