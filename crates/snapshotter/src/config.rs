//! What the daemon needs to know to start.
//!
//! SEAM(soci-config): parsing `config.toml` belongs to the `soci-config` crate
//! (another developer). Until it lands, the daemon fills this struct from its
//! flags and defaults; `soci-config` is expected to produce it (or a superset
//! convertible into it) from the file.

use std::path::PathBuf;

/// Default socket path (`--address`).
pub const DEFAULT_ADDRESS: &str = "/run/soci-snapshotter-grpc/soci-snapshotter-grpc.sock";
/// Default state directory (`--root`).
pub const DEFAULT_ROOT: &str = "/var/lib/soci-snapshotter-grpc";
/// Default configuration file (`--config`).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/soci-snapshotter-grpc/config.toml";

/// Settings of the daemon that the snapshotter core uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// State directory; the snapshotter keeps `<root>/snapshotter/`.
    pub root: PathBuf,
    /// Unix socket to serve containerd's Snapshots API on.
    pub address: PathBuf,
    /// `skip_check_snapshotter_supported`: do not test overlayfs at startup.
    pub skip_check_snapshotter_supported: bool,
    /// `[snapshotter] allow_invalid_mounts_on_restart`: start even if a
    /// remote snapshot cannot be mounted again.
    pub allow_invalid_mounts_on_restart: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from(DEFAULT_ROOT),
            address: PathBuf::from(DEFAULT_ADDRESS),
            skip_check_snapshotter_supported: false,
            allow_invalid_mounts_on_restart: false,
        }
    }
}

/// Turn an `--address` value into a socket path: `unix://PATH` or a bare
/// path. Socket activation (`fd://`) is not supported.
pub fn parse_address(address: &str) -> Result<PathBuf, String> {
    if address.starts_with("fd://") {
        return Err(format!(
            "address {address:?}: socket activation (fd://) is not supported"
        ));
    }
    let path = address.strip_prefix("unix://").unwrap_or(address);
    if path.is_empty() {
        return Err("address is empty".into());
    }
    if let Some((scheme, _)) = path.split_once("://") {
        return Err(format!(
            "address {address:?}: unsupported scheme {scheme:?}"
        ));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("unix:///run/x.sock").unwrap(),
            PathBuf::from("/run/x.sock")
        );
        assert_eq!(
            parse_address("/run/x.sock").unwrap(),
            PathBuf::from("/run/x.sock")
        );
        assert!(parse_address("fd://").is_err());
        assert!(parse_address("tcp://1.2.3.4:5").is_err());
        assert!(parse_address("unix://").is_err());
    }
}
