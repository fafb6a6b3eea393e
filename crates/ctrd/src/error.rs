//! Errors of this crate. Every variant names what it is about (the containerd
//! address, the image, the layer or the object of a call) and, where there is
//! one, what to do about it.

use soci_content::ContentError;
use tonic::Code;

/// Errors of talking to containerd and of [`rpull`](crate::rpull).
#[derive(Debug, thiserror::Error)]
pub enum CtrdError {
    /// The address is not a unix socket address this client understands.
    #[error(
        "invalid containerd address {address:?}: {reason}; pass the socket path with --address (e.g. /run/containerd/containerd.sock)"
    )]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The namespace cannot be sent as gRPC metadata.
    #[error(
        "invalid containerd namespace {namespace:?}: {reason}; pass another one with --namespace"
    )]
    InvalidNamespace {
        /// The namespace as given.
        namespace: String,
        /// What is wrong with it.
        reason: String,
    },
    /// containerd's socket could not be reached.
    #[error(
        "cannot reach containerd at {address}: {reason}; is containerd running? pass its socket with --address (or CONTAINERD_ADDRESS)"
    )]
    Unreachable {
        /// The socket path.
        address: String,
        /// The transport error.
        reason: String,
    },
    /// A containerd call failed.
    #[error("containerd: {operation} {object} failed: {message} ({code:?}){hint}")]
    Rpc {
        /// What was being done (`prepare snapshot`, `write content`, ...).
        operation: &'static str,
        /// The key, digest or name concerned.
        object: String,
        /// The gRPC status code.
        code: Code,
        /// containerd's message.
        message: String,
        /// A sentence on what to do, starting with `; `, or empty.
        hint: String,
    },
    /// A registry operation failed.
    #[error("{what}: {error}")]
    Registry {
        /// What was being fetched, naming the image or layer.
        what: String,
        /// The registry error (part of this error's message, so not also
        /// reported as its source).
        error: Box<ContentError>,
    },
    /// The image cannot be pulled as it is (no matching platform, a bad
    /// manifest or config, ...).
    #[error("image {image}: {reason}")]
    Image {
        /// The image reference.
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// The pull did not finish in time.
    #[error(
        "image {image}: the pull did not finish within {limit:?}; what it wrote is released for containerd to collect (raise --timeout to wait longer)"
    )]
    Timeout {
        /// The image reference.
        image: String,
        /// The time allowed.
        limit: std::time::Duration,
    },
    /// containerd answered a content read with something other than the blob.
    #[error("content {digest}: {reason}")]
    Content {
        /// The blob's digest.
        digest: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// A layer could not be unpacked.
    #[error("image {image}: layer {index} ({digest}): {reason}")]
    Layer {
        /// The image reference.
        image: String,
        /// Position of the layer in the manifest (1-based).
        index: usize,
        /// The layer's digest.
        digest: String,
        /// What went wrong.
        reason: String,
    },
}

impl CtrdError {
    /// The gRPC status code when this is a failed containerd call.
    pub fn code(&self) -> Option<Code> {
        match self {
            CtrdError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether this is a containerd call that failed with `AlreadyExists`.
    pub fn is_already_exists(&self) -> bool {
        self.code() == Some(Code::AlreadyExists)
    }

    /// Whether this is a containerd call that failed with `NotFound`.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(Code::NotFound)
    }

    /// A failed call: `operation` on `object`, with a hint chosen from the
    /// code and operation.
    pub(crate) fn rpc(
        operation: &'static str,
        object: impl Into<String>,
        status: &tonic::Status,
        address: &str,
    ) -> CtrdError {
        let code = status.code();
        let message = status.message().to_string();
        let hint = hint(operation, code, &message, address);
        CtrdError::Rpc {
            operation,
            object: object.into(),
            code,
            message,
            hint,
        }
    }
}

fn hint(operation: &str, code: Code, message: &str, address: &str) -> String {
    let snapshot_call = operation.contains("snapshot");
    match code {
        Code::Unavailable if snapshot_call => {
            "; containerd could not reach the snapshotter: is soci-snapshotter-grpc running on the \
             socket named in containerd's [proxy_plugins] section?"
                .into()
        }
        Code::Unavailable => format!(
            "; is containerd still running at {address}? pass its socket with --address"
        ),
        Code::InvalidArgument | Code::NotFound
            if snapshot_call && message.contains("snapshotter not loaded") =>
        {
            "; containerd has no such snapshotter: add it to containerd's config as \
             [proxy_plugins.<name>] (type = \"snapshot\") and restart containerd, or pass --snapshotter"
                .into()
        }
        Code::PermissionDenied => {
            format!("; run as a user allowed to use containerd's socket {address}")
        }
        _ => String::new(),
    }
}

/// `Result` with [`CtrdError`].
pub type Result<T, E = CtrdError> = std::result::Result<T, E>;
