//! `soci-snapshotter-grpc`: containerd's proxy snapshotter for SOCI.
//!
//! Flags, logging and signals only; everything else is `soci_snapshotter::serve`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use soci_snapshotter::config::{self, Config};
use soci_snapshotter::{DeferAll, Shutdown};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
    Panic,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error | LogLevel::Fatal | LogLevel::Panic => "error",
        }
    }
}

/// A containerd snapshotter that lazily loads SOCI-indexed images.
#[derive(Debug, Parser)]
#[command(name = "soci-snapshotter-grpc", version)]
struct Args {
    /// Unix socket to serve on (`unix://PATH` or `PATH`).
    #[arg(long, env = "SOCI_SNAPSHOTTER_ADDRESS", default_value = config::DEFAULT_ADDRESS)]
    address: String,
    /// Configuration file (a missing default file means defaults).
    #[arg(long, env = "SOCI_SNAPSHOTTER_CONFIG", default_value = config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Log level.
    #[arg(
        long,
        env = "SOCI_SNAPSHOTTER_LOG_LEVEL",
        value_enum,
        default_value = "info"
    )]
    log_level: LogLevel,
    /// State directory.
    #[arg(long, env = "SOCI_SNAPSHOTTER_ROOT", default_value = config::DEFAULT_ROOT)]
    root: PathBuf,
}

/// Go's flag package, which upstream uses, also takes `-flag`; accept it too.
fn go_style_args() -> Vec<String> {
    const LONG: [&str; 4] = ["address", "config", "log-level", "root"];
    std::env::args()
        .map(|a| match a.strip_prefix('-') {
            Some(rest)
                if !rest.starts_with('-')
                    && LONG
                        .iter()
                        .any(|l| rest == *l || rest.starts_with(&format!("{l}="))) =>
            {
                format!("-{a}")
            }
            _ => a,
        })
        .collect()
}

/// SEAM(soci-config): the file is not parsed yet; `soci-config` will fill the
/// rest of `Config` from it. Until then only the path is checked.
fn load_config(args: &Args) -> anyhow::Result<Config> {
    let path: &Path = &args.config;
    if !path.exists() {
        if path != Path::new(config::DEFAULT_CONFIG_PATH) {
            bail!("config file {} does not exist", path.display());
        }
    } else {
        warn!(path = %path.display(), "config file parsing is not implemented yet; using defaults");
    }
    let address = config::parse_address(&args.address).map_err(anyhow::Error::msg)?;
    Ok(Config {
        root: args.root.clone(),
        address,
        ..Config::default()
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse_from(go_style_args());
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "{},h2=info,hyper=info,hyper_util=info,tower=info,tonic=info",
            args.log_level.directive()
        )))
        .init();
    let config = load_config(&args)?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => Shutdown::Unmount,
            _ = terminate.recv() => Shutdown::LeaveMounts,
        }
    };
    let how = soci_snapshotter::serve(&config, DeferAll, shutdown)
        .await
        .with_context(|| format!("soci-snapshotter-grpc on {}", config.address.display()))?;
    info!(?how, "exited");
    Ok(())
}
