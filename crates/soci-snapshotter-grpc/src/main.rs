//! `soci-snapshotter-grpc`: containerd's proxy snapshotter for SOCI.
//!
//! PLACEHOLDER (branch `rpull`): a minimal daemon that serves the snapshotter
//! core with every layer deferred to containerd, so that `soci image rpull`
//! can be tested end to end before the lazy-loading daemon lands. The real
//! wiring (config file, soci-fs remote layers) replaces this file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use soci_snapshotter::config::{self, Config};
use soci_snapshotter::{DeferAll, Shutdown};
use tokio::signal::unix::{SignalKind, signal};

/// A containerd snapshotter for SOCI images (every layer deferred to containerd).
#[derive(Debug, Parser)]
#[command(name = "soci-snapshotter-grpc", version)]
struct Args {
    /// Unix socket to serve on (`unix://PATH` or `PATH`).
    #[arg(long, env = "SOCI_SNAPSHOTTER_ADDRESS", default_value = config::DEFAULT_ADDRESS)]
    address: String,
    /// Configuration file (not read by this placeholder).
    #[arg(long, env = "SOCI_SNAPSHOTTER_CONFIG", default_value = config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Log level (trace, debug, info, warn, error).
    #[arg(long, env = "SOCI_SNAPSHOTTER_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// State directory.
    #[arg(long, env = "SOCI_SNAPSHOTTER_ROOT", default_value = config::DEFAULT_ROOT)]
    root: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
        .init();
    let address = config::parse_address(&args.address).map_err(anyhow::Error::msg)?;
    let config = Config {
        root: args.root.clone(),
        address,
        ..Config::default()
    };
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => Shutdown::Unmount,
            _ = terminate.recv() => Shutdown::LeaveMounts,
        }
    };
    soci_snapshotter::serve(&config, DeferAll, shutdown)
        .await
        .with_context(|| format!("soci-snapshotter-grpc on {}", config.address.display()))?;
    Ok(())
}
