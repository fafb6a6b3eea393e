//! `soci-snapshotter-grpc`: containerd's proxy snapshotter for SOCI.
//!
//! Flags, logging and the `config` subcommands only; the daemon itself is
//! `soci_fs::daemon::run`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use soci_snapshotter::config;

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
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print configuration.
    Config {
        #[command(subcommand)]
        what: ConfigCmd,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// The effective configuration (defaults plus the file given with --config).
    Dump,
    /// The default configuration.
    Default,
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
    let is_default = args.config == std::path::Path::new(config::DEFAULT_CONFIG_PATH);
    match args.command {
        Some(Cmd::Config {
            what: ConfigCmd::Default,
        }) => {
            print!("{}", soci_config::Config::default_toml());
            Ok(())
        }
        Some(Cmd::Config {
            what: ConfigCmd::Dump,
        }) => {
            let c = soci_fs::daemon::load_config(&args.config, is_default)?;
            print!("{}", c.dump_toml());
            Ok(())
        }
        None => {
            soci_fs::daemon::run(soci_fs::daemon::DaemonArgs {
                address: args.address,
                config: args.config,
                config_is_default: is_default,
                root: args.root,
            })
            .await
            .context("soci-snapshotter-grpc")?;
            Ok(())
        }
    }
}
