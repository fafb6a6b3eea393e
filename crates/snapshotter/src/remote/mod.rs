//! The seam between the snapshotter and whatever provides layers without
//! containerd downloading them (lazy FUSE mounts, local download, parallel
//! unpack). The snapshotter owns metadata and directories; an implementation of
//! [`RemoteLayers`] only fills or mounts one directory it is handed.

use std::future::Future;
use std::path::{Path, PathBuf};

use crate::types::Labels;

#[cfg(any(test, feature = "testing"))]
pub mod fake;

/// Label containerd's unpacker sets on `Prepare` to the chain ID of the layer
/// it is about to unpack; its presence makes a prepare a candidate for a remote
/// snapshot.
pub const TARGET_SNAPSHOT_LABEL: &str = "containerd.io/snapshot.ref";
/// Label written on committed snapshots whose content is a remote mount.
pub const REMOTE_LABEL: &str = "containerd.io/snapshot/remote";
/// Value of [`REMOTE_LABEL`].
pub const REMOTE_LABEL_VALUE: &str = "remote snapshot";
/// Label recording the namespace a remote snapshot was prepared in.
pub const REMOTE_NAMESPACE_LABEL: &str = "containerd.io/snapshot/remote/namespace";

/// Errors an implementation reports; the snapshotter wraps them with the key.
pub type RemoteError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A `Prepare` that carries [`TARGET_SNAPSHOT_LABEL`].
#[derive(Debug, Clone)]
pub struct RemotePrepare {
    /// containerd namespace of the request.
    pub namespace: String,
    /// Key of the active snapshot being prepared.
    pub key: String,
    /// The chain ID the snapshot will be committed under on success.
    pub target: String,
    /// Parent snapshot name, if any.
    pub parent: Option<String>,
    /// All labels of the request (`containerd.io/snapshot/cri.*` and so on).
    pub labels: Labels,
    /// The snapshot's empty `fs` directory: mount the layer here, or unpack it
    /// here (as an overlay upper directory, with whiteouts converted).
    pub mountpoint: PathBuf,
    /// `fs` directories of the parents, nearest first (for applying a layer
    /// on top of them).
    pub parent_dirs: Vec<PathBuf>,
}

/// What [`RemoteLayers::prepare_remote`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteOutcome {
    /// The layer is mounted (lazily loaded) at the mountpoint. The snapshotter
    /// commits it under the target with [`REMOTE_LABEL`] and these extra labels,
    /// and tells containerd the target already exists.
    Mounted {
        /// Labels to add to the committed snapshot.
        labels: Labels,
    },
    /// The layer was downloaded and applied into the mountpoint. The snapshotter
    /// commits it under the target (without [`REMOTE_LABEL`]) and tells
    /// containerd the target already exists.
    LocalDone {
        /// Labels to add to the committed snapshot.
        labels: Labels,
    },
    /// Nothing was done: the snapshotter returns the ordinary mounts and
    /// containerd fetches and applies the layer itself.
    Defer,
}

/// A committed snapshot whose content is a remote mount.
#[derive(Debug, Clone)]
pub struct RemoteSnapshot {
    /// containerd namespace.
    pub namespace: String,
    /// Snapshot name (the chain ID).
    pub name: String,
    /// The labels stored with it (what [`RemoteLayers::restore`] mounts from).
    pub labels: Labels,
    /// Its `fs` directory.
    pub mountpoint: PathBuf,
}

/// Provider of layers that containerd need not download.
///
/// Implementations may write `async fn` for each method; the futures must be
/// `Send`. Errors are reported with the snapshot key by the snapshotter.
pub trait RemoteLayers: Send + Sync + 'static {
    /// Try to provide the layer of a prepare that names a target chain ID.
    /// Returning an error fails the `Prepare`; return
    /// [`RemoteOutcome::Defer`] to let containerd pull instead.
    fn prepare_remote(
        &self,
        request: &RemotePrepare,
    ) -> impl Future<Output = Result<RemoteOutcome, RemoteError>> + Send;

    /// Check that a remote snapshot's mount still works; called for each
    /// remote ancestor before mounts are handed out.
    fn check(
        &self,
        snapshot: &RemoteSnapshot,
    ) -> impl Future<Output = Result<(), RemoteError>> + Send;

    /// Mount a remote snapshot again after a daemon restart (its mountpoint was
    /// force-unmounted first).
    fn restore(
        &self,
        snapshot: &RemoteSnapshot,
    ) -> impl Future<Output = Result<(), RemoteError>> + Send;

    /// Release whatever is mounted at `mountpoint` on `SIGINT` shutdown: state
    /// kept for a later start (span caches) stays. Must succeed when nothing
    /// is mounted there.
    fn unmount(&self, mountpoint: &Path) -> impl Future<Output = Result<(), RemoteError>> + Send;

    /// Release whatever is mounted at `mountpoint` because its snapshot was
    /// removed (containerd `Remove` followed by cleanup, or a discarded
    /// prepare): besides unmounting, drop state kept only for this layer.
    /// Must succeed when nothing is mounted there. By default the same as
    /// [`RemoteLayers::unmount`].
    fn remove(&self, mountpoint: &Path) -> impl Future<Output = Result<(), RemoteError>> + Send {
        self.unmount(mountpoint)
    }
}

/// The implementation with no remote support: every layer is left to containerd.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeferAll;

impl RemoteLayers for DeferAll {
    async fn prepare_remote(&self, _request: &RemotePrepare) -> Result<RemoteOutcome, RemoteError> {
        Ok(RemoteOutcome::Defer)
    }

    async fn check(&self, _snapshot: &RemoteSnapshot) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn restore(&self, snapshot: &RemoteSnapshot) -> Result<(), RemoteError> {
        Err(format!(
            "remote snapshot {:?} cannot be restored: this daemon has no remote layer support",
            snapshot.name
        )
        .into())
    }

    async fn unmount(&self, _mountpoint: &Path) -> Result<(), RemoteError> {
        Ok(())
    }
}
