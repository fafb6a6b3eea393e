//! Prometheus metrics of the snapshotter daemon, namespace `soci_fs`.
//!
//! One process-wide registry holds every metric; the crates on the data path
//! (`spans` for fetches, verification and caches, `layerfs` for FUSE
//! operations, `fs` for pull modes) record through the typed functions below,
//! so metric names and label sets live in this one file. The daemon renders the
//! registry with [`render`] on its `/metrics` endpoint.
//!
//! Names follow upstream's where upstream has the metric, so existing
//! dashboards keep working:
//!
//! * `soci_fs_operation_count{operation_type, layer}`: counts of operations
//!   (e.g. `synchronous_read_count`, `synchronous_read_remote_registry_fetch_count`,
//!   `background_span_fetch_count`, `background_span_fetch_failure_count`,
//!   `fuse_file_read_failure_count` and the other `fuse_*_failure_count`);
//! * `soci_fs_operation_duration_milliseconds{operation_type, layer}`: latency
//!   histograms (`remote_registry_get`, `background_fetch`, `mount`);
//! * `soci_fs_operation_duration_microseconds{operation_type, layer}`:
//!   (`synchronous_read`, `node_readdir`);
//! * `soci_fs_bytes_served{operation_type, layer}`: `synchronous_bytes_served`;
//! * `soci_fs_layer_fetched_size_bytes` and `soci_fs_layer_size_bytes`
//!   `{digest, mountpoint}` for each mounted layer, refreshed on every scrape.
//!
//! Added here (upstream has no equivalent): `soci_fs_fetched_bytes_total`,
//! `soci_fs_background_fetched_bytes_total`, `soci_fs_span_verification_failures_total`,
//! `soci_fs_span_cache_hits_total` / `soci_fs_span_cache_misses_total`,
//! `soci_fs_file_verification_failures_total`, `soci_fs_fuse_operation_count`
//! and `soci_fs_pull_mode_count`.
//!
//! Recording never fails and never blocks on I/O: a metric that cannot be
//! registered (a programming error caught by the tests) is simply not exported.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Prometheus namespace of every metric (`soci_fs_...`), as upstream.
pub const NAMESPACE: &str = "soci";
/// Prometheus subsystem of every metric.
pub const SUBSYSTEM: &str = "fs";

/// Upstream's `operation_type` label values used here.
pub mod op {
    /// One synchronous read of a lazily loaded file.
    pub const SYNCHRONOUS_READ_COUNT: &str = "synchronous_read_count";
    /// Latency of a synchronous read (microseconds).
    pub const SYNCHRONOUS_READ: &str = "synchronous_read";
    /// Bytes served by synchronous reads.
    pub const SYNCHRONOUS_BYTES_SERVED: &str = "synchronous_bytes_served";
    /// A blob read on behalf of a reader (not the background fetcher).
    pub const SYNCHRONOUS_READ_REGISTRY_FETCH_COUNT: &str =
        "synchronous_read_remote_registry_fetch_count";
    /// Latency of a blob read from the registry or a mirror (milliseconds).
    pub const REMOTE_REGISTRY_GET: &str = "remote_registry_get";
    /// A span fetched by the background fetcher.
    pub const BACKGROUND_SPAN_FETCH_COUNT: &str = "background_span_fetch_count";
    /// A failed background span fetch.
    pub const BACKGROUND_SPAN_FETCH_FAILURE_COUNT: &str = "background_span_fetch_failure_count";
    /// Latency of a background span fetch (milliseconds).
    pub const BACKGROUND_FETCH: &str = "background_fetch";
    /// Latency of mounting a layer (milliseconds).
    pub const MOUNT: &str = "mount";
    /// Latency of a directory listing (microseconds).
    pub const NODE_READDIR: &str = "node_readdir";
    /// A layer that could not be mounted lazily and was left to containerd.
    pub const FUSE_MOUNT_FAILURE_COUNT: &str = "fuse_mount_failure_count";
}

/// FUSE operations counted by `soci_fs_fuse_operation_count{operation}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FuseOp {
    /// `lookup`.
    Lookup,
    /// `getattr`.
    Getattr,
    /// `readlink`.
    Readlink,
    /// `open`.
    Open,
    /// `read`.
    Read,
    /// `opendir`.
    Opendir,
    /// `readdir`.
    Readdir,
    /// `statfs`.
    Statfs,
    /// `getxattr`.
    Getxattr,
    /// `listxattr`.
    Listxattr,
    /// `access`.
    Access,
}

impl FuseOp {
    /// The `operation` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FuseOp::Lookup => "lookup",
            FuseOp::Getattr => "getattr",
            FuseOp::Readlink => "readlink",
            FuseOp::Open => "open",
            FuseOp::Read => "read",
            FuseOp::Opendir => "opendir",
            FuseOp::Readdir => "readdir",
            FuseOp::Statfs => "statfs",
            FuseOp::Getxattr => "getxattr",
            FuseOp::Listxattr => "listxattr",
            FuseOp::Access => "access",
        }
    }

    /// Upstream's `operation_type` for a failure of this operation.
    pub fn failure_name(self) -> &'static str {
        match self {
            FuseOp::Lookup => "fuse_node_lookup_failure_count",
            FuseOp::Getattr => "fuse_node_getattr_failure_count",
            FuseOp::Open => "fuse_node_open_failure_count",
            FuseOp::Read => "fuse_file_read_failure_count",
            FuseOp::Readdir | FuseOp::Opendir => "fuse_node_readdir_failure_count",
            FuseOp::Listxattr => "fuse_node_listxattr_failure_count",
            _ => "fuse_unknown_operation_failure_count",
        }
    }
}

/// How the snapshotter provided a layer (`soci_fs_pull_mode_count{mode}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullMode {
    /// Mounted lazily on FUSE.
    Lazy,
    /// Downloaded and unpacked by the snapshotter.
    Local,
    /// Left to containerd.
    Deferred,
}

impl PullMode {
    /// The `mode` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PullMode::Lazy => "lazy",
            PullMode::Local => "local",
            PullMode::Deferred => "deferred",
        }
    }
}

/// Every metric, registered in one registry.
pub struct Metrics {
    registry: Registry,
    operation_count: IntCounterVec,
    duration_ms: HistogramVec,
    duration_us: HistogramVec,
    bytes_served: IntGaugeVec,
    fetched_bytes: IntCounterVec,
    background_fetched_bytes: IntCounterVec,
    span_verification_failures: IntCounterVec,
    file_verification_failures: IntCounterVec,
    cache_hits: IntCounterVec,
    cache_misses: IntCounterVec,
    fuse_ops: IntCounterVec,
    pull_mode: IntCounterVec,
    layer_fetched_size: IntGaugeVec,
    layer_size: IntGaugeVec,
    /// Serialises [`set_layer_sizes`] (reset, then set).
    layers_lock: std::sync::Mutex<()>,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
        .namespace(NAMESPACE)
        .subsystem(SUBSYSTEM)
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(opts(name, help), labels).expect("valid metric definition");
    let _ = registry.register(Box::new(c.clone()));
    c
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> HistogramVec {
    let o = HistogramOpts::new(name, help)
        .namespace(NAMESPACE)
        .subsystem(SUBSYSTEM)
        .buckets(buckets);
    let h = HistogramVec::new(o, &["operation_type", "layer"]).expect("valid metric definition");
    let _ = registry.register(Box::new(h.clone()));
    h
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let ms: Vec<f64> = (0..15).map(|i| f64::from(1u32 << i)).collect();
        let us: Vec<f64> = (0..11).map(|i| f64::from(1u32 << i)).collect();
        let bytes_served = IntGaugeVec::new(
            opts(
                "bytes_served",
                "The number of bytes served per soci snapshotter operation, by operation type and layer.",
            ),
            &["operation_type", "layer"],
        )
        .expect("valid metric definition");
        let _ = registry.register(Box::new(bytes_served.clone()));
        let layer_gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(opts(name, help), &["digest", "mountpoint"])
                .expect("valid metric definition");
            let _ = registry.register(Box::new(g.clone()));
            g
        };
        let layer_fetched_size = layer_gauge(
            "layer_fetched_size_bytes",
            "Total fetched size of the layer",
        );
        let layer_size = layer_gauge("layer_size_bytes", "Total size of the layer");
        Metrics {
            layer_fetched_size,
            layer_size,
            layers_lock: std::sync::Mutex::new(()),
            operation_count: counter(
                &registry,
                "operation_count",
                "The count of soci snapshotter operations, by operation type and layer.",
                &["operation_type", "layer"],
            ),
            duration_ms: histogram(
                &registry,
                "operation_duration_milliseconds",
                "Latency in milliseconds of soci snapshotter operations, by operation type and layer.",
                ms,
            ),
            duration_us: histogram(
                &registry,
                "operation_duration_microseconds",
                "Latency in microseconds of soci snapshotter operations, by operation type and layer.",
                us,
            ),
            bytes_served,
            fetched_bytes: counter(
                &registry,
                "fetched_bytes_total",
                "Compressed layer bytes read from the registry or a mirror (reads, background fetch, prefetch), by layer.",
                &["layer"],
            ),
            background_fetched_bytes: counter(
                &registry,
                "background_fetched_bytes_total",
                "Compressed layer bytes read by the background fetcher and prefetch, by layer.",
                &["layer"],
            ),
            span_verification_failures: counter(
                &registry,
                "span_verification_failures_total",
                "Fetched spans whose sha256 did not match the zTOC, by layer.",
                &["layer"],
            ),
            file_verification_failures: counter(
                &registry,
                "file_verification_failures_total",
                "Files whose tar header did not match their zTOC entry on first read, by layer.",
                &["layer"],
            ),
            cache_hits: counter(
                &registry,
                "span_cache_hits_total",
                "Spans served from the span cache, by layer.",
                &["layer"],
            ),
            cache_misses: counter(
                &registry,
                "span_cache_misses_total",
                "Spans not in the span cache that had to be fetched, by layer.",
                &["layer"],
            ),
            fuse_ops: counter(
                &registry,
                "fuse_operation_count",
                "FUSE operations served by lazily loaded layers, by operation.",
                &["operation"],
            ),
            pull_mode: counter(
                &registry,
                "pull_mode_count",
                "Layers prepared by the snapshotter, by how they were provided (lazy, local, deferred) and image manifest.",
                &["mode", "image"],
            ),
            registry,
        }
    }
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// One mounted layer, as reported by `soci_fs_layer_fetched_size_bytes` and
/// `soci_fs_layer_size_bytes` (labels `digest`, `mountpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSize {
    /// Layer digest.
    pub digest: String,
    /// Where the layer is mounted.
    pub mountpoint: String,
    /// Compressed bytes held locally.
    pub fetched: u64,
    /// Compressed layer size.
    pub size: u64,
}

/// Replace the per-layer size gauges with `layers` (the layers mounted now).
pub fn set_layer_sizes(layers: &[LayerSize]) {
    let m = global();
    let _guard = m
        .layers_lock
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    m.layer_fetched_size.reset();
    m.layer_size.reset();
    let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for l in layers {
        let labels = [l.digest.as_str(), l.mountpoint.as_str()];
        m.layer_fetched_size
            .with_label_values(&labels)
            .set(gauge(l.fetched));
        m.layer_size.with_label_values(&labels).set(gauge(l.size));
    }
}

/// The registry in Prometheus text format (what `/metrics` serves).
pub fn render() -> Vec<u8> {
    let mut out = Vec::new();
    let families = global().registry.gather();
    // Encoding into a Vec cannot fail for well-formed families.
    let _ = TextEncoder::new().encode(&families, &mut out);
    out
}

/// The `Content-Type` of [`render`]'s output.
pub fn content_type() -> &'static str {
    prometheus::TEXT_FORMAT
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Increment `soci_fs_operation_count{operation_type, layer}`.
pub fn inc_operation(operation: &str, layer: &str) {
    global()
        .operation_count
        .with_label_values(&[operation, layer])
        .inc();
}

/// Observe a millisecond latency of `operation` on `layer`.
pub fn observe_ms(operation: &str, layer: &str, elapsed: Duration) {
    global()
        .duration_ms
        .with_label_values(&[operation, layer])
        .observe(ms(elapsed));
}

/// One blob read (one or more byte ranges in one request, mirrors tried
/// included) of `bytes` compressed bytes; `background` when it was made for
/// the background fetcher or prefetch rather than a reader.
pub fn blob_read(layer: &str, background: bool, bytes: u64, elapsed: Duration) {
    let m = global();
    m.fetched_bytes.with_label_values(&[layer]).inc_by(bytes);
    if background {
        m.background_fetched_bytes
            .with_label_values(&[layer])
            .inc_by(bytes);
    } else {
        inc_operation(op::SYNCHRONOUS_READ_REGISTRY_FETCH_COUNT, layer);
    }
    observe_ms(op::REMOTE_REGISTRY_GET, layer, elapsed);
}

/// A fetched span did not match its digest.
pub fn span_verification_failure(layer: &str) {
    global()
        .span_verification_failures
        .with_label_values(&[layer])
        .inc();
}

/// A file's tar header did not match its zTOC entry.
pub fn file_verification_failure(layer: &str) {
    global()
        .file_verification_failures
        .with_label_values(&[layer])
        .inc();
}

/// A span lookup in the cache: hit or miss.
pub fn span_cache(layer: &str, hit: bool) {
    let m = global();
    if hit {
        m.cache_hits.with_label_values(&[layer]).inc();
    } else {
        m.cache_misses.with_label_values(&[layer]).inc();
    }
}

/// A background span fetch ended.
pub fn background_span_fetch(layer: &str, ok: bool, elapsed: Duration) {
    if ok {
        inc_operation(op::BACKGROUND_SPAN_FETCH_COUNT, layer);
        observe_ms(op::BACKGROUND_FETCH, layer, elapsed);
    } else {
        inc_operation(op::BACKGROUND_SPAN_FETCH_FAILURE_COUNT, layer);
    }
}

/// A FUSE operation was served.
pub fn fuse_op(operation: FuseOp) {
    global()
        .fuse_ops
        .with_label_values(&[operation.as_str()])
        .inc();
}

/// A FUSE operation failed with an I/O error.
pub fn fuse_failure(operation: FuseOp, layer: &str) {
    inc_operation(operation.failure_name(), layer);
}

/// A synchronous read of a file served `bytes` bytes.
pub fn synchronous_read(layer: &str, bytes: u64, elapsed: Duration) {
    let m = global();
    inc_operation(op::SYNCHRONOUS_READ_COUNT, layer);
    m.duration_us
        .with_label_values(&[op::SYNCHRONOUS_READ, layer])
        .observe(us(elapsed));
    m.bytes_served
        .with_label_values(&[op::SYNCHRONOUS_BYTES_SERVED, layer])
        .add(i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// A directory listing took `elapsed`.
pub fn readdir(layer: &str, elapsed: Duration) {
    global()
        .duration_us
        .with_label_values(&[op::NODE_READDIR, layer])
        .observe(us(elapsed));
}

/// How a layer of image `image` (manifest digest) was provided.
pub fn pull_mode(mode: PullMode, image: &str) {
    global()
        .pull_mode
        .with_label_values(&[mode.as_str(), image])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn recorded_values_appear_under_upstream_names() {
        let layer = "sha256:aaaa";
        blob_read(layer, false, 100, Duration::from_millis(3));
        blob_read(layer, true, 50, Duration::from_millis(3));
        span_cache(layer, true);
        span_cache(layer, false);
        span_verification_failure(layer);
        fuse_op(FuseOp::Read);
        fuse_failure(FuseOp::Read, layer);
        synchronous_read(layer, 4096, Duration::from_micros(20));
        pull_mode(PullMode::Lazy, "sha256:bbbb");
        set_layer_sizes(&[LayerSize {
            digest: "sha256:cccc".into(),
            mountpoint: "/m/1".into(),
            fetched: 10,
            size: 30,
        }]);
        let text = String::from_utf8(render()).unwrap();
        let l = "layer=\"sha256:aaaa\"";
        assert_eq!(
            value(&text, &format!("soci_fs_fetched_bytes_total{{{l}}}")),
            Some(150.0)
        );
        assert_eq!(
            value(
                &text,
                &format!("soci_fs_background_fetched_bytes_total{{{l}}}")
            ),
            Some(50.0)
        );
        assert_eq!(
            value(
                &text,
                &format!(
                    "soci_fs_operation_count{{{l},operation_type=\"synchronous_read_remote_registry_fetch_count\"}}"
                )
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                &format!(
                    "soci_fs_operation_count{{{l},operation_type=\"fuse_file_read_failure_count\"}}"
                )
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                &format!(
                    "soci_fs_operation_duration_milliseconds_count{{{l},operation_type=\"remote_registry_get\"}}"
                )
            ),
            Some(2.0)
        );
        assert_eq!(
            value(&text, "soci_fs_fuse_operation_count{operation=\"read\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "soci_fs_pull_mode_count{image=\"sha256:bbbb\",mode=\"lazy\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&text, &format!("soci_fs_span_cache_hits_total{{{l}}}")),
            Some(1.0)
        );
        assert_eq!(
            value(&text, &format!("soci_fs_span_cache_misses_total{{{l}}}")),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                &format!("soci_fs_bytes_served{{{l},operation_type=\"synchronous_bytes_served\"}}")
            ),
            Some(4096.0)
        );
        assert_eq!(
            value(
                &text,
                "soci_fs_layer_fetched_size_bytes{digest=\"sha256:cccc\",mountpoint=\"/m/1\"}"
            ),
            Some(10.0)
        );
        assert_eq!(
            value(
                &text,
                "soci_fs_layer_size_bytes{digest=\"sha256:cccc\",mountpoint=\"/m/1\"}"
            ),
            Some(30.0)
        );
        // Unmounted layers disappear.
        set_layer_sizes(&[]);
        let text = String::from_utf8(render()).unwrap();
        assert!(!text.contains("sha256:cccc"), "{text}");
        assert!(content_type().starts_with("text/plain"));
    }
}
