use std::path::PathBuf;

/// Errors of the snapshotter. Each variant names what it is about (a snapshot
/// key, a path, a socket); [`crate::grpc`] maps them onto gRPC status codes the
/// way containerd's `errdefs` expects.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// No snapshot with this key (gRPC `NotFound`).
    #[error("snapshot {key:?}: not found")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// A snapshot with this key exists already (gRPC `AlreadyExists`).
    #[error("snapshot {key:?}: already exists")]
    AlreadyExists {
        /// The key that is taken.
        key: String,
    },
    /// A remote layer provided the snapshot: it was committed under `target`,
    /// so containerd must skip fetching the layer (gRPC `AlreadyExists`, with the
    /// message upstream SOCI uses).
    #[error("target snapshot {target:?}: already exists")]
    TargetExists {
        /// The `containerd.io/snapshot.ref` of the request (a chain ID).
        target: String,
    },
    /// The snapshot is in the wrong state for the request (gRPC `FailedPrecondition`).
    #[error("snapshot {key:?}: {reason}")]
    FailedPrecondition {
        /// The snapshot.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request itself is invalid (gRPC `InvalidArgument`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A remote snapshot's layer cannot be used (gRPC `Unavailable`).
    #[error("layer of snapshot {key:?} is unavailable: {source}")]
    Unavailable {
        /// The remote snapshot.
        key: String,
        /// Why the remote layer failed its check.
        source: crate::RemoteError,
    },
    /// The remote-layer implementation failed to prepare a snapshot (gRPC `Internal`).
    #[error("preparing remote snapshot {key:?}: {source}")]
    Remote {
        /// The snapshot being prepared.
        key: String,
        /// The implementation's error.
        source: crate::RemoteError,
    },
    /// The metadata database failed (gRPC `Internal`).
    #[error("metadata database {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        source: Box<redb::Error>,
    },
    /// A stored record cannot be decoded (gRPC `Internal`).
    #[error("metadata database {path}: corrupt record for {key:?}: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The record's key.
        key: String,
        /// What could not be decoded.
        reason: String,
    },
    /// An I/O error on a path (gRPC `Internal`).
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The kernel cannot do what the snapshotter needs (overlayfs).
    #[error("{0}")]
    Unsupported(String),
    /// The gRPC server failed.
    #[error("serving {address}: {source}")]
    Serve {
        /// The socket address.
        address: PathBuf,
        /// The transport error.
        source: tonic::transport::Error,
    },
}

/// Result of snapshotter operations.
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

impl SnapshotError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| SnapshotError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn precondition(key: &str, reason: impl Into<String>) -> Self {
        SnapshotError::FailedPrecondition {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}
