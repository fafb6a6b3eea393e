//! `soci image rpull`.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use soci_containerd::{Containerd, LayerOutcome, RpullEvent, RpullEvents, RpullOptions};
use soci_content::registry::{Credentials, ImageReference, RegistryClient};
use soci_format::Digest;
use soci_format::json::Platform;

use crate::cli::{GlobalArgs, RpullArgs};

/// Prints one line per layer as it is unpacked.
struct PrintEvents;

impl RpullEvents for PrintEvents {
    fn event(&self, e: &RpullEvent<'_>) {
        match e {
            RpullEvent::Resolved {
                name,
                manifest,
                layers,
            } => println!(
                "{name}: manifest {} with {layers} layer(s)",
                manifest.digest
            ),
            RpullEvent::Layer { layer, of } => {
                let how = match layer.outcome {
                    LayerOutcome::Present => "already present".to_string(),
                    LayerOutcome::Lazy => "lazy (mounted by the snapshotter)".to_string(),
                    LayerOutcome::Snapshotter => "local (fetched by the snapshotter)".to_string(),
                    LayerOutcome::Pulled { downloaded: 0 } => {
                        "pulled (blob already in containerd)".to_string()
                    }
                    LayerOutcome::Pulled { downloaded } => {
                        format!("pulled ({} downloaded)", human(downloaded))
                    }
                };
                println!(
                    "layer {}/{of} {} {:>10}  {how}",
                    layer.index + 1,
                    layer.digest,
                    human(layer.size.max(0) as u64)
                );
            }
        }
    }
}

/// `1.2 MiB`-style sizes.
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `--timeout`: `500ms`, `30s`, `5m`, `1h`, or plain seconds.
pub(crate) fn parse_timeout(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("--timeout {s:?}: expected e.g. 30s, 5m or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => bail!("--timeout {s:?}: unknown unit {unit:?} (use ms, s, m or h)"),
    };
    if d.is_zero() {
        bail!("--timeout must be more than zero");
    }
    Ok(d)
}

/// Terminal echo switched off until dropped.
struct NoEcho {
    saved: Option<rustix::termios::Termios>,
}

impl NoEcho {
    fn new() -> NoEcho {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
            let _ =
                rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
        }
        NoEcho { saved }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                t,
            );
        }
    }
}

/// `--user USER[:PASSWORD]`; a missing password is read from stdin (without
/// echo on a terminal).
pub(crate) fn credentials(user: &str) -> anyhow::Result<Credentials> {
    if user.contains(':') {
        return Ok(Credentials::from_user_flag(user)?);
    }
    if user.is_empty() {
        bail!("--user needs a user name: --user USER[:PASSWORD]");
    }
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        eprint!("Password for {user}: ");
        let _ = std::io::stderr().flush();
        let _quiet = NoEcho::new();
        stdin.lock().read_line(&mut line)?;
        eprintln!();
    } else {
        stdin.lock().read_line(&mut line)?;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("no password for {user}: give --user {user}:PASSWORD or type it when asked");
    }
    Ok(Credentials::Basic {
        username: user.to_string(),
        password: password.to_string(),
    })
}

pub(crate) fn rpull(global: &GlobalArgs, args: RpullArgs) -> anyhow::Result<()> {
    if global.debug {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .try_init();
    }
    let reference: ImageReference = args
        .reference
        .parse()
        .with_context(|| format!("cannot pull {:?}", args.reference))?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p).with_context(|| format!("could not parse platform {p}"))?,
        None => Platform::host_default(),
    };
    let soci_index_digest = args
        .soci_index_digest
        .as_deref()
        .map(|d| {
            d.parse::<Digest>().map_err(|_| {
                anyhow::anyhow!("--soci-index-digest {d:?} is not a sha256:<64 hex> digest")
            })
        })
        .transpose()?;
    let timeout = global.timeout.as_deref().map(parse_timeout).transpose()?;
    let registry = RegistryClient::new(super::convert::registry_options(&args.registry)?)?;
    let options = RpullOptions {
        snapshotter: args.snapshotter.clone(),
        platform,
        soci_index_digest,
        timeout,
        ..RpullOptions::default()
    };
    let rt = super::runtime()?;
    let started = Instant::now();
    let report = rt.block_on(async {
        let ctrd = Containerd::connect(&global.address, &global.namespace).await?;
        soci_containerd::rpull(&ctrd, &registry, &reference, &options, &PrintEvents).await
    })?;
    println!(
        "done: {} unpacked on snapshotter {} as {} in {:.1}s: {} layer(s), {} lazy, {} local, {} pulled, {} already present; {} downloaded",
        report.name,
        report.snapshotter,
        report.chain_id,
        started.elapsed().as_secs_f64(),
        report.layers.len(),
        report.count("lazy"),
        report.count("local"),
        report.count("pulled"),
        report.count("present"),
        human(report.downloaded()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_timeout("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_timeout("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_timeout("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_timeout("7").unwrap(), Duration::from_secs(7));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("5d").is_err());
        assert!(parse_timeout("s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }

    #[test]
    fn user_with_password() {
        assert_eq!(
            credentials("me:secret").unwrap(),
            Credentials::Basic {
                username: "me".into(),
                password: "secret".into()
            }
        );
        assert!(credentials(":x").is_err());
    }
}
