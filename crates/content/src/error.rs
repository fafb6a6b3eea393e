use std::path::PathBuf;

use soci_format::Digest;

/// Errors of content access. Every variant names the object it is about.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// An I/O error on a path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A blob is not in the store.
    #[error("blob {digest} not found in {store}")]
    NotFound {
        /// The missing blob.
        digest: Digest,
        /// Which store was searched.
        store: String,
    },
    /// A blob's bytes do not hash to its digest, or its size differs.
    #[error(
        "blob {expected} in {store} is corrupt: read {size} bytes with digest {actual} (expected size {expected_size}); re-fetch or re-export the image"
    )]
    DigestMismatch {
        /// Digest the blob should have.
        expected: Digest,
        /// Digest of the bytes read.
        actual: Digest,
        /// Size expected.
        expected_size: u64,
        /// Size read.
        size: u64,
        /// Where the blob came from.
        store: String,
    },
    /// The layout is not a valid OCI image layout.
    #[error("{path} is not a valid OCI image layout: {reason}")]
    InvalidLayout {
        /// Path of the layout.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A blob is larger than allowed for its kind (manifests, indexes).
    #[error("blob {digest} is {size} bytes, more than the {limit} bytes allowed for a {kind}")]
    TooLarge {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
        /// What it was expected to be.
        kind: &'static str,
    },
}

impl ContentError {
    /// An I/O error while doing `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ContentError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
