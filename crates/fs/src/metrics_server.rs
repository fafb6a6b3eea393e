//! The Prometheus endpoint: `GET /metrics` on `metrics_address`
//! (`metrics_network` `tcp` or `unix`), unless `no_prometheus` is set.

use std::path::PathBuf;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use soci_snapshotter::{RemoteOutcome, RemotePrepare};
use tracing::{info, warn};

use crate::labels;

/// Why the metrics endpoint could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// `metrics_network` is neither `tcp` nor `unix`.
    #[error(
        "metrics_network {0:?} is not supported: use \"tcp\" (host:port) or \"unix\" (socket path)"
    )]
    Network(String),
    /// The address could not be bound.
    #[error("cannot listen for metrics on {network} {address}: {source}")]
    Bind {
        /// `metrics_network`.
        network: String,
        /// `metrics_address`.
        address: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

async fn metrics() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, soci_metrics::content_type())],
        soci_metrics::render(),
    )
}

fn router() -> Router {
    Router::new().route("/metrics", get(metrics))
}

/// Start serving `/metrics` as `config` says, on the current tokio runtime.
/// Returns `false` when metrics are disabled (empty address or `no_prometheus`).
pub async fn start(config: &soci_config::Config) -> Result<bool, MetricsError> {
    let address = config.metrics_address.trim();
    if address.is_empty() || config.no_prometheus {
        return Ok(false);
    }
    let network = config.metrics_network.as_str();
    let bind_err = |source| MetricsError::Bind {
        network: network.to_string(),
        address: address.to_string(),
        source,
    };
    match network {
        "" | "tcp" | "tcp4" | "tcp6" => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(bind_err)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router()).await {
                    warn!(error = %e, "metrics endpoint stopped");
                }
            });
        }
        "unix" => {
            let path = PathBuf::from(address);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(bind_err)?;
            }
            // A socket left by an earlier run.
            let _ = std::fs::remove_file(&path);
            let listener = tokio::net::UnixListener::bind(&path).map_err(bind_err)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router()).await {
                    warn!(error = %e, "metrics endpoint stopped");
                }
            });
        }
        other => return Err(MetricsError::Network(other.to_string())),
    }
    info!(network, address, "serving Prometheus metrics on /metrics");
    Ok(true)
}

/// Count how a prepare request was answered (`soci_fs_pull_mode_count`).
pub(crate) fn record_prepare(request: &RemotePrepare, outcome: &RemoteOutcome) {
    let mode = match outcome {
        RemoteOutcome::Mounted { .. } => soci_metrics::PullMode::Lazy,
        RemoteOutcome::LocalDone { .. } => soci_metrics::PullMode::Local,
        RemoteOutcome::Defer => soci_metrics::PullMode::Deferred,
    };
    let image = request
        .labels
        .get(labels::MANIFEST_DIGEST)
        .map(String::as_str)
        .unwrap_or_default();
    soci_metrics::pull_mode(mode, image);
}
