//! The Prometheus endpoint: `GET /metrics` on `metrics_address`
//! (`metrics_network` `tcp` or `unix`), unless `no_prometheus` is set.

use std::path::PathBuf;
use std::sync::Arc;

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

/// What the endpoint asks for on each scrape: the layers mounted now.
pub type LayerSizes = Arc<dyn Fn() -> Vec<soci_metrics::LayerSize> + Send + Sync>;

fn router(layers: LayerSizes) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let layers = layers.clone();
            async move {
                soci_metrics::set_layer_sizes(&layers());
                (
                    [(CONTENT_TYPE, soci_metrics::content_type())],
                    soci_metrics::render(),
                )
                    .into_response()
            }
        }),
    )
}

/// Start serving `/metrics` as `config` says, on the current tokio runtime.
/// Returns `false` when metrics are disabled (empty address or `no_prometheus`).
/// `layers` is called on every scrape for the per-layer size gauges.
pub async fn start(config: &soci_config::Config, layers: LayerSizes) -> Result<bool, MetricsError> {
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
                if let Err(e) = axum::serve(listener, router(layers)).await {
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
                if let Err(e) = axum::serve(listener, router(layers)).await {
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn config(toml: &str) -> soci_config::Config {
        soci_config::Config::from_toml_str(toml).unwrap().config
    }

    fn one_layer() -> LayerSizes {
        Arc::new(|| {
            vec![soci_metrics::LayerSize {
                digest: "sha256:feed".into(),
                mountpoint: "/mnt/l".into(),
                fetched: 5,
                size: 9,
            }]
        })
    }

    async fn get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) -> String {
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            s.read_to_string(&mut out),
        )
        .await
        .unwrap()
        .unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_on_a_unix_socket_and_tcp() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("sub/metrics.sock");
        let c = config(&format!(
            "metrics_address = \"{}\"\nmetrics_network = \"unix\"\n",
            sock.display()
        ));
        assert!(start(&c, one_layer()).await.unwrap());
        let reply = get(tokio::net::UnixStream::connect(&sock).await.unwrap()).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains("text/plain"), "{reply}");
        assert!(
            reply.contains(
                "soci_fs_layer_size_bytes{digest=\"sha256:feed\",mountpoint=\"/mnt/l\"} 9"
            ),
            "{reply}"
        );

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = config(&format!("metrics_address = \"127.0.0.1:{port}\"\n"));
        assert!(start(&c, one_layer()).await.unwrap());
        let reply = get(tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap())
        .await;
        assert!(
            reply.contains(
                "soci_fs_layer_fetched_size_bytes{digest=\"sha256:feed\",mountpoint=\"/mnt/l\"} 5"
            ),
            "{reply}"
        );
    }

    #[tokio::test]
    async fn disabled_or_unusable_settings() {
        assert!(!start(&config(""), one_layer()).await.unwrap());
        let off = config("metrics_address = \"127.0.0.1:1\"\nno_prometheus = true\n");
        assert!(!start(&off, one_layer()).await.unwrap());
        let bad = config("metrics_address = \"127.0.0.1:0\"\nmetrics_network = \"udp\"\n");
        let e = start(&bad, one_layer()).await.unwrap_err();
        assert!(e.to_string().contains("\"udp\""), "{e}");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let busy = config(&format!("metrics_address = \"{addr}\"\n"));
        let e = start(&busy, one_layer()).await.unwrap_err();
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }
}
