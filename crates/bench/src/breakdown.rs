//! Where the daemon's time went in a lazy run, from its Prometheus endpoint
//! (`metrics_address`): blob reads from the registry, FUSE reads, mounts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Sums and counts of the daemon's latency histograms, over every layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// Blob reads from the registry or a mirror (`remote_registry_get`).
    pub fetch_count: u64,
    /// Their summed latency, s (overlapping reads add up).
    pub fetch_s: f64,
    /// FUSE file reads (`synchronous_read`).
    pub read_count: u64,
    /// Their summed latency, s: fetch, verify, inflate and copy on a miss.
    pub read_s: f64,
    /// Lazy layer mounts (`mount`).
    pub mount_count: u64,
    /// Their summed time, s (zTOC decode, TOC tree, FUSE mount).
    pub mount_s: f64,
    /// Compressed bytes received (`soci_fs_fetched_bytes_total`).
    pub fetched_bytes: u64,
}

impl Breakdown {
    /// Field by field medians of `runs`, or `None` when no run has one.
    pub fn median(runs: &[Breakdown]) -> Option<Breakdown> {
        if runs.is_empty() {
            return None;
        }
        let med = |f: &dyn Fn(&Breakdown) -> f64| {
            crate::report::Stat::of(&runs.iter().map(f).collect::<Vec<_>>()).median
        };
        Some(Breakdown {
            fetch_count: med(&|b| b.fetch_count as f64) as u64,
            fetch_s: med(&|b| b.fetch_s),
            read_count: med(&|b| b.read_count as f64) as u64,
            read_s: med(&|b| b.read_s),
            mount_count: med(&|b| b.mount_count as f64) as u64,
            mount_s: med(&|b| b.mount_s),
            fetched_bytes: med(&|b| b.fetched_bytes as f64) as u64,
        })
    }
}

/// `GET /metrics` from `addr` (host:port), bounded to 5 s.
pub fn scrape(addr: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    s.take(64 << 20).read_to_string(&mut body)?;
    Ok(body
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// The breakdown in a Prometheus text exposition.
pub fn parse(text: &str) -> Breakdown {
    let mut b = Breakdown::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let op = |o: &str| labels.contains(&format!("operation_type=\"{o}\""));
        match name {
            "soci_fs_operation_duration_milliseconds_sum" if op("remote_registry_get") => {
                b.fetch_s += v / 1e3
            }
            "soci_fs_operation_duration_milliseconds_count" if op("remote_registry_get") => {
                b.fetch_count += v as u64
            }
            "soci_fs_operation_duration_milliseconds_sum" if op("mount") => b.mount_s += v / 1e3,
            "soci_fs_operation_duration_milliseconds_count" if op("mount") => {
                b.mount_count += v as u64
            }
            "soci_fs_operation_duration_microseconds_sum" if op("synchronous_read") => {
                b.read_s += v / 1e6
            }
            "soci_fs_operation_duration_microseconds_count" if op("synchronous_read") => {
                b.read_count += v as u64
            }
            "soci_fs_fetched_bytes_total" => b.fetched_bytes += v as u64,
            _ => {}
        }
    }
    b
}

/// The daemon's FUSE request counters (`soci_fs_fuse_operation_count`) by
/// operation, in a Prometheus text exposition.
pub fn fuse_ops(text: &str) -> std::collections::BTreeMap<String, u64> {
    let mut ops = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("soci_fs_fuse_operation_count{operation=\"") else {
            continue;
        };
        let Some((op, value)) = rest.split_once("\"} ") else {
            continue;
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            *ops.entry(op.to_string()).or_default() += v as u64;
        }
    }
    ops
}

/// What `after` counts beyond `before`, operations that did not change left out.
pub fn ops_since(
    after: &std::collections::BTreeMap<String, u64>,
    before: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    after
        .iter()
        .map(|(op, &n)| (op.clone(), n.saturating_sub(*before.get(op).unwrap_or(&0))))
        .filter(|&(_, n)| n > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_requests_by_operation_and_since() {
        let before = fuse_ops(
            "# TYPE soci_fs_fuse_operation_count counter\n\
             soci_fs_fuse_operation_count{operation=\"lookup\"} 10\n\
             soci_fs_fuse_operation_count{operation=\"getxattr\"} 3\n",
        );
        let after = fuse_ops(
            "soci_fs_fuse_operation_count{operation=\"lookup\"} 10\n\
             soci_fs_fuse_operation_count{operation=\"getxattr\"} 1611\n\
             soci_fs_fuse_operation_count{operation=\"open\"} 2\n\
             soci_fs_fetched_bytes_total{layer=\"a\"} 5\n",
        );
        assert_eq!(after.len(), 3);
        let since = ops_since(&after, &before);
        assert_eq!(
            since.into_iter().collect::<Vec<_>>(),
            [("getxattr".to_string(), 1608), ("open".to_string(), 2)]
        );
    }

    #[test]
    fn sums_the_histograms_of_every_layer() {
        let text = r#"# HELP soci_fs_operation_duration_milliseconds x
soci_fs_operation_duration_milliseconds_sum{layer="a",operation_type="remote_registry_get"} 1500
soci_fs_operation_duration_milliseconds_count{layer="a",operation_type="remote_registry_get"} 3
soci_fs_operation_duration_milliseconds_sum{layer="b",operation_type="remote_registry_get"} 500
soci_fs_operation_duration_milliseconds_count{layer="b",operation_type="remote_registry_get"} 1
soci_fs_operation_duration_milliseconds_sum{layer="a",operation_type="mount"} 250
soci_fs_operation_duration_milliseconds_count{layer="a",operation_type="mount"} 1
soci_fs_operation_duration_milliseconds_bucket{layer="a",operation_type="mount",le="+Inf"} 1
soci_fs_operation_duration_microseconds_sum{layer="a",operation_type="synchronous_read"} 3000000
soci_fs_operation_duration_microseconds_count{layer="a",operation_type="synchronous_read"} 40
soci_fs_operation_duration_microseconds_sum{layer="a",operation_type="node_readdir"} 99
soci_fs_fetched_bytes_total{layer="a"} 1000
soci_fs_fetched_bytes_total{layer="b"} 24
"#;
        let b = parse(text);
        assert_eq!(b.fetch_count, 4);
        assert!((b.fetch_s - 2.0).abs() < 1e-9);
        assert_eq!(b.mount_count, 1);
        assert!((b.mount_s - 0.25).abs() < 1e-9);
        assert_eq!(b.read_count, 40);
        assert!((b.read_s - 3.0).abs() < 1e-9);
        assert_eq!(b.fetched_bytes, 1024);
    }
}
