//! Running the snapshotter as containerd's proxy plugin on a unix socket.

use std::future::Future;
use std::os::unix::fs::DirBuilderExt;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::info;

use crate::config::Config;
use crate::error::{Result, SnapshotError};
use crate::grpc::SnapshotService;
use crate::mounts::check_overlay_supported;
use crate::remote::RemoteLayers;
use crate::snapshotter::Snapshotter;

/// How long requests in flight may take to finish once a shutdown is asked for.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// How the daemon was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// `SIGINT`: unmount every layer this daemon mounted, then exit.
    Unmount,
    /// `SIGTERM`: exit and leave mounts in place (the next start replaces them).
    LeaveMounts,
}

/// Bind the socket: create its directory (0700) and remove a stale socket.
pub fn bind(config: &Config) -> Result<UnixListener> {
    let address = &config.address;
    if let Some(dir) = address.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(SnapshotError::io("creating socket directory", dir))?;
    }
    match std::fs::remove_file(address) {
        Ok(()) => info!(address = %address.display(), "removed stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SnapshotError::io("removing stale socket", address)(e)),
    }
    UnixListener::bind(address).map_err(SnapshotError::io("listening on", address))
}

/// Start the snapshotter from `config` and serve until `shutdown` resolves.
///
/// Startup checks overlayfs (unless skipped), opens the metadata, restores
/// remote snapshots and binds the socket; on the way out the socket is removed
/// and, for [`Shutdown::Unmount`], every layer is unmounted.
pub async fn serve<R, F>(config: &Config, remote: R, shutdown: F) -> Result<Shutdown>
where
    R: RemoteLayers,
    F: Future<Output = Shutdown> + Send,
{
    let base = config.root.join("snapshotter");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&base)
        .map_err(SnapshotError::io("creating", &base))?;
    if !config.skip_check_snapshotter_supported {
        check_overlay_supported(&base)?;
    }
    let snapshotter = Snapshotter::open(&config.root, remote)?;
    snapshotter
        .restore_remote(config.allow_invalid_mounts_on_restart)
        .await?;
    let listener = bind(config)?;
    info!(address = %config.address.display(), root = %config.root.display(), "serving containerd snapshots");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(SnapshotService::new(snapshotter.clone()).into_server())
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    tokio::pin!(server);
    tokio::pin!(shutdown);
    let serve_error = |source| SnapshotError::Serve {
        address: config.address.clone(),
        source,
    };
    let how = tokio::select! {
        served = &mut server => {
            let _ = std::fs::remove_file(&config.address);
            served.map_err(serve_error)?;
            // The server only stops on its own by failing.
            return Ok(Shutdown::LeaveMounts);
        }
        how = &mut shutdown => how,
    };
    let _ = stop_tx.send(());
    // containerd keeps its connection open: give requests in flight a moment,
    // then stop without waiting for clients to hang up.
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(served) => served.map_err(serve_error)?,
        Err(_) => info!(grace = ?SHUTDOWN_GRACE, "closing connections still open"),
    }
    let _ = std::fs::remove_file(&config.address);
    info!(?how, "shutting down");
    if how == Shutdown::Unmount {
        snapshotter.unmount_all().await?;
    }
    Ok(how)
}
