use std::path::PathBuf;

use soci_format::Digest;

use crate::registry::ReferenceError;

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
    /// The registry rejected the request's credentials (HTTP 401 or 403).
    #[error(
        "authentication to {registry} failed: {reason}; log in with `docker login {registry}` or pass --user"
    )]
    Unauthorized {
        /// The registry (`host[:port]`).
        registry: String,
        /// What was refused and which credentials were tried.
        reason: String,
    },
    /// The registry could not be reached (connection refused, DNS, TLS, timeout).
    #[error(
        "cannot reach registry {registry} ({url}): {reason}; check the address and that the registry is running{hint}"
    )]
    Unreachable {
        /// The registry (`host[:port]`).
        registry: String,
        /// The URL that failed.
        url: String,
        /// The transport error.
        reason: String,
        /// A hint on `--plain-http` / `--skip-verify`, or empty.
        hint: String,
    },
    /// A manifest (by tag or digest) does not exist in the repository.
    #[error("manifest {reference} not found: check the repository name and the tag or digest")]
    ManifestNotFound {
        /// The full reference (`registry/repository:tag` or `@digest`).
        reference: String,
    },
    /// The registry answered an operation with an error.
    #[error(
        "registry {registry}: {operation} {object} in repository {repository} failed: {reason}"
    )]
    Registry {
        /// The registry (`host[:port]`).
        registry: String,
        /// The repository.
        repository: String,
        /// What was being done (`push blob`, `get manifest`, ...).
        operation: &'static str,
        /// The digest or tag concerned.
        object: String,
        /// The status and the registry's message.
        reason: String,
    },
    /// A byte-range read could not be served as asked.
    #[error("reading {ranges} of blob {digest} from {store} failed: {reason}")]
    BadRange {
        /// The blob.
        digest: Digest,
        /// Where it was read from.
        store: String,
        /// The ranges asked for, as text.
        ranges: String,
        /// What went wrong.
        reason: String,
    },
    /// Credentials could not be read from a docker config or credential helper.
    #[error("cannot get credentials for {registry} from {origin}: {reason}")]
    Credentials {
        /// The registry.
        registry: String,
        /// Where they were looked up (a config file, a helper, `--user`).
        origin: String,
        /// What went wrong.
        reason: String,
    },
    /// A manifest or index that does not parse.
    #[error("manifest {digest} is not valid: {reason}")]
    InvalidManifest {
        /// Digest of the manifest bytes.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// An image reference or location that does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The HTTP client could not be set up (TLS configuration).
    #[error("cannot set up the registry client: {reason}")]
    Setup {
        /// What failed.
        reason: String,
    },
    /// A blocking adapter was used where it cannot wait (e.g. on a
    /// single-threaded async runtime's thread).
    #[error("cannot wait for the registry here: {reason}")]
    Blocking {
        /// Why, and what to do instead.
        reason: String,
    },
}

impl ContentError {
    /// Turn an I/O error from a reader of this crate back into the
    /// [`ContentError`] it carries (a [`crate::VerifyingReader`] reports digest
    /// mismatches that way); any other I/O error becomes [`ContentError::Io`].
    pub fn from_io(e: std::io::Error, action: &'static str, path: impl Into<PathBuf>) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<ContentError>()) {
            match e.into_inner().map(|b| b.downcast::<ContentError>()) {
                Some(Ok(ce)) => return *ce,
                _ => unreachable!("checked above"),
            }
        }
        ContentError::io(action, path, e)
    }

    /// An I/O error while doing `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ContentError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
