//! SOCI artifact formats, byte-compatible with upstream SOCI.
//!
//! This crate owns every on-the-wire and on-disk format of a SOCI index:
//!
//! * [`ztoc`]: the zTOC flatbuffer (file table + compression info), encoded with
//!   the same builder call order as upstream so that digests match byte for byte;
//! * [`toc`]: building the file table from a tar stream with Go `archive/tar` semantics;
//! * [`zinfo`]: gzip checkpoints (zran style) and the uncompressed-tar variant, span
//!   geometry, span digests and extraction of byte ranges from spans;
//! * [`json`]: OCI manifests, image indexes and SOCI indexes serialized exactly like
//!   Go's `encoding/json` of the image-spec v1.1.1 structs;
//! * [`digest`]: sha256 digests in OCI notation.
//!
//! It performs no I/O beyond the `Read`/`Write` values it is given: no network, no
//! paths, no async. All `unsafe` code of the project (the zlib FFI) lives in
//! [`zinfo::gzip`].
#![deny(missing_docs)]

pub mod digest;
pub mod json;
#[cfg(any(test, feature = "testutil"))]
pub mod testutil;
pub mod toc;
pub mod zinfo;
pub mod ztoc;

pub use digest::Digest;
