//! The daemon's start-up: configuration, the lazy-layer implementation, signals.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use soci_config::Config as FileConfig;
use soci_content::registry::RegistryOptions;
use soci_snapshotter::Shutdown;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::{FsOptions, SociFs};

/// Everything the command line gives the daemon.
#[derive(Debug, Clone)]
pub struct DaemonArgs {
    /// `--address`, as given (`unix://PATH` or `PATH`).
    pub address: String,
    /// `--config`.
    pub config: PathBuf,
    /// Whether `--config` is the default path (a missing default file means defaults).
    pub config_is_default: bool,
    /// `--root`.
    pub root: PathBuf,
}

/// Errors of starting the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration file is unusable.
    #[error("{0}")]
    Config(#[from] soci_config::ConfigError),
    /// The socket address is unusable.
    #[error("invalid --address: {0}")]
    Address(String),
    /// Setting up the lazy-layer implementation failed.
    #[error("{0}")]
    Remote(soci_snapshotter::RemoteError),
    /// The snapshotter failed.
    #[error("{0}")]
    Snapshotter(#[from] soci_snapshotter::SnapshotError),
    /// The Prometheus endpoint could not be started.
    #[error("{0}")]
    Metrics(#[from] crate::metrics_server::MetricsError),
    /// A signal handler could not be installed.
    #[error("installing signal handlers: {0}")]
    Signal(std::io::Error),
}

/// Load the configuration file the way the daemon does, logging warnings.
pub fn load_config(path: &Path, is_default: bool) -> Result<FileConfig, DaemonError> {
    let loaded = FileConfig::load(Some(path), is_default)?;
    for w in &loaded.warnings {
        warn!(config = %path.display(), "{w}");
    }
    Ok(loaded.config)
}

/// Registry client settings from `[http]`: `DialTimeoutMsec` bounds
/// connecting and `ResponseHeaderTimeoutMsec` bounds every wait for bytes
/// (headers or body), so that a stalled registry fails a span fetch (which is
/// then retried) instead of hanging a read.
fn registry_options(file: &FileConfig) -> RegistryOptions {
    let d = RegistryOptions::default();
    RegistryOptions {
        connect_timeout: file.http.dial_timeout_msec.duration().or(d.connect_timeout),
        read_timeout: file
            .http
            .response_header_timeout_msec
            .duration()
            .or(d.read_timeout),
        ..d
    }
}

/// Run the daemon until SIGINT (unmount everything) or SIGTERM (leave mounts).
pub async fn run(args: DaemonArgs) -> Result<Shutdown, DaemonError> {
    if !crate::alloc::bound_retention() {
        tracing::warn!(
            "glibc refused the allocator settings; memory freed after span fetches may stay resident"
        );
    }
    let file = load_config(&args.config, args.config_is_default)?;
    file.check_startup()?;
    let address =
        soci_snapshotter::config::parse_address(&args.address).map_err(DaemonError::Address)?;
    let config = soci_snapshotter::Config {
        root: args.root.clone(),
        address,
        skip_check_snapshotter_supported: file.skip_check_snapshotter_supported,
        allow_invalid_mounts_on_restart: file.snapshotter.allow_invalid_mounts_on_restart,
    };
    let fs = SociFs::new(FsOptions {
        root: args.root.clone(),
        registry: registry_options(&file),
        config: file.clone(),
        fuse_threads: 4,
    })
    .map_err(DaemonError::Remote)?;
    let sizes = fs.clone();
    crate::metrics_server::start(&file, Arc::new(move || sizes.layer_sizes())).await?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => Shutdown::Unmount,
            _ = terminate.recv() => Shutdown::LeaveMounts,
        }
    };
    let how = soci_snapshotter::serve(&config, fs, shutdown).await?;
    info!(?how, "exited");
    Ok(how)
}
