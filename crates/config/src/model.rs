//! The configuration model: one struct per TOML table, with upstream's keys
//! and defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use toml::Spanned;
use toml::de::DeValue;

use crate::error::{ConfigError, ConfigWarning};
use crate::schema::{Cx, Field, KeyPath, section};
use crate::size::ChunkSize;
use crate::units::{Millis, Seconds};

/// Upstream's default containerd socket (content store and CRI image service).
pub const DEFAULT_CONTAINERD_ADDRESS: &str = "/run/containerd/containerd.sock";

/// The whole `config.toml` of `soci-snapshotter-grpc`, after defaults.
///
/// Field names are the TOML keys (snake_case for `[http]`'s CamelCase ones);
/// each field's documentation gives its TOML key where it differs, its
/// default and what zero or negative values mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `http_cache_type`: `"memory"` keeps fetched blob data in RAM; anything
    /// else uses the on-disk directory cache. Default `""`.
    pub http_cache_type: String,
    /// `filesystem_cache_type`: `"memory"` keeps the span cache in RAM;
    /// anything else uses the on-disk directory cache. Default `""`.
    pub filesystem_cache_type: String,
    /// Resolved-layer cache entries. `0` means the default, 30.
    pub resolve_result_entry: i64,
    /// go-fuse debug logging (may log sensitive data). Default `false`.
    pub debug: bool,
    /// Skip TOC verification. Default `false`.
    pub disable_verification: bool,
    /// Layers resolved concurrently before mounting. `0` means the default,
    /// 100; a negative value means unlimited and is stored as `-1`
    /// (see [`Config::max_concurrency_limit`]).
    pub max_concurrency: i64,
    /// Mount timeout. `0` means the default, 30 s.
    pub mount_timeout_sec: Seconds,
    /// Wait before FUSE operation counts are emitted for an image.
    /// `0` means the default, 60 s.
    pub fuse_metrics_emit_wait_duration_sec: Seconds,
    /// Prometheus listen address; empty disables metrics. Default `""`.
    pub metrics_address: String,
    /// Network of `metrics_address` (`tcp`, `unix`, ...). Default `"tcp"`.
    pub metrics_network: String,
    /// Disable Prometheus metrics. Default `false`.
    pub no_prometheus: bool,
    /// pprof debug server address; empty disables it. Default `""`.
    pub debug_address: String,
    /// FUSE metadata store. Default [`MetadataStore::Db`].
    pub metadata_store: MetadataStore,
    /// Skip fsync of the metadata DB (it is rebuilt on restart). Default `false`.
    pub metadata_db_no_sync: bool,
    /// Node insertions per metadata DB transaction. `0` or negative means
    /// the default, 5000.
    pub metadata_insertion_chunk_size: i64,
    /// Skip the startup check that overlayfs is supported. Default `false`.
    pub skip_check_snapshotter_supported: bool,
    /// `[http]`: registry HTTP client timeouts and retries.
    pub http: HttpConfig,
    /// `[blob]`: remote blob fetching.
    pub blob: BlobConfig,
    /// `[directory_cache]`: the on-disk span/blob cache.
    pub directory_cache: DirectoryCacheConfig,
    /// `[fuse]`: kernel cache timeouts and FUSE logging.
    pub fuse: FuseConfig,
    /// `[background_fetch]`: fetching the rest of lazily-loaded layers.
    pub background_fetch: BackgroundFetchConfig,
    /// `[content_store]`: where SOCI artifacts are stored.
    pub content_store: ContentStoreConfig,
    /// `[prefetch]`: prefetch artifacts.
    pub prefetch: PrefetchConfig,
    /// `[pull_modes]`: which pull modes are enabled.
    pub pull_modes: PullModes,
    /// `[kubeconfig_keychain]`: credentials from Kubernetes secrets.
    pub kubeconfig_keychain: KubeconfigKeychainConfig,
    /// `[cri_keychain]`: credentials from CRI image pulls.
    pub cri_keychain: CriKeychainConfig,
    /// `[resolver]`: registry mirrors and auth client caching.
    pub resolver: ResolverConfig,
    /// `[snapshotter]`: snapshotter behaviour.
    pub snapshotter: SnapshotterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_cache_type: String::new(),
            filesystem_cache_type: String::new(),
            resolve_result_entry: 30,
            debug: false,
            disable_verification: false,
            max_concurrency: 100,
            mount_timeout_sec: Seconds(30),
            fuse_metrics_emit_wait_duration_sec: Seconds(60),
            metrics_address: String::new(),
            metrics_network: "tcp".to_owned(),
            no_prometheus: false,
            debug_address: String::new(),
            metadata_store: MetadataStore::Db,
            metadata_db_no_sync: false,
            metadata_insertion_chunk_size: 5000,
            skip_check_snapshotter_supported: false,
            http: HttpConfig::default(),
            blob: BlobConfig::default(),
            directory_cache: DirectoryCacheConfig::default(),
            fuse: FuseConfig::default(),
            background_fetch: BackgroundFetchConfig::default(),
            content_store: ContentStoreConfig::default(),
            prefetch: PrefetchConfig::default(),
            pull_modes: PullModes::default(),
            kubeconfig_keychain: KubeconfigKeychainConfig::default(),
            cri_keychain: CriKeychainConfig::default(),
            resolver: ResolverConfig::default(),
            snapshotter: SnapshotterConfig::default(),
        }
    }
}

section!(Config {
    http_cache_type => "http_cache_type",
    filesystem_cache_type => "filesystem_cache_type",
    resolve_result_entry => "resolve_result_entry",
    debug => "debug",
    disable_verification => "disable_verification",
    max_concurrency => "max_concurrency",
    mount_timeout_sec => "mount_timeout_sec",
    fuse_metrics_emit_wait_duration_sec => "fuse_metrics_emit_wait_duration_sec",
    metrics_address => "metrics_address",
    metrics_network => "metrics_network",
    no_prometheus => "no_prometheus",
    debug_address => "debug_address",
    metadata_store => "metadata_store",
    metadata_db_no_sync => "metadata_db_no_sync",
    metadata_insertion_chunk_size => "metadata_insertion_chunk_size",
    skip_check_snapshotter_supported => "skip_check_snapshotter_supported",
    http => "http",
    blob => "blob",
    directory_cache => "directory_cache",
    fuse => "fuse",
    background_fetch => "background_fetch",
    content_store => "content_store",
    prefetch => "prefetch",
    pull_modes => "pull_modes",
    kubeconfig_keychain => "kubeconfig_keychain",
    cri_keychain => "cri_keychain",
    resolver => "resolver",
    snapshotter => "snapshotter",
});

/// `[http]`: the registry HTTP client. The TOML keys are CamelCase, as
/// upstream's (`DialTimeoutMsec`, ...). Every `0` means the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `DialTimeoutMsec`: connection timeout. Default 3000 ms.
    pub dial_timeout_msec: Millis,
    /// `ResponseHeaderTimeoutMsec`: wait for response headers. Default 3000 ms.
    pub response_header_timeout_msec: Millis,
    /// `RequestTimeoutMsec`: whole-request timeout. Default 300000 ms.
    pub request_timeout_msec: Millis,
    /// `MaxRetries`: retries of a failed request. Default 8.
    pub max_retries: i64,
    /// `MinWaitMsec`: minimum back-off between retries. Default 30 ms.
    pub min_wait_msec: Millis,
    /// `MaxWaitMsec`: maximum back-off between retries. Default 300000 ms.
    pub max_wait_msec: Millis,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            dial_timeout_msec: Millis(3_000),
            response_header_timeout_msec: Millis(3_000),
            request_timeout_msec: Millis(300_000),
            max_retries: 8,
            min_wait_msec: Millis(30),
            max_wait_msec: Millis(300_000),
        }
    }
}

section!(HttpConfig {
    dial_timeout_msec => "DialTimeoutMsec",
    response_header_timeout_msec => "ResponseHeaderTimeoutMsec",
    request_timeout_msec => "RequestTimeoutMsec",
    max_retries => "MaxRetries",
    min_wait_msec => "MinWaitMsec",
    max_wait_msec => "MaxWaitMsec",
});

/// `[blob]`: fetching remote layer blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobConfig {
    /// Re-check a blob's availability at this interval. `0` means the
    /// default, 60 s; becomes `0` (always check) when `check_always` is set.
    pub valid_interval: Seconds,
    /// `fetching_timeout_sec`: timeout of a blob fetch. `0` means the default, 300 s.
    pub fetching_timeout_sec: Seconds,
    /// Retries of a blob fetch. `0` means `[http] MaxRetries`.
    pub max_retries: i64,
    /// Minimum back-off. `0` means `[http] MinWaitMsec`.
    pub min_wait_msec: Millis,
    /// Maximum back-off. `0` means `[http] MaxWaitMsec`.
    pub max_wait_msec: Millis,
    /// Always re-check blob availability. Default `false`.
    pub check_always: bool,
    /// Fetch one range per request. Default `false`.
    pub force_single_range_mode: bool,
    /// Re-fetches of a span whose digest does not verify. Default 0.
    pub max_span_verification_retries: i64,
}

impl Default for BlobConfig {
    fn default() -> Self {
        Self {
            valid_interval: Seconds(60),
            fetching_timeout_sec: Seconds(300),
            max_retries: 8,
            min_wait_msec: Millis(30),
            max_wait_msec: Millis(300_000),
            check_always: false,
            force_single_range_mode: false,
            max_span_verification_retries: 0,
        }
    }
}

section!(BlobConfig {
    valid_interval => "valid_interval",
    fetching_timeout_sec => "fetching_timeout_sec",
    max_retries => "max_retries",
    min_wait_msec => "min_wait_msec",
    max_wait_msec => "max_wait_msec",
    check_always => "check_always",
    force_single_range_mode => "force_single_range_mode",
    max_span_verification_retries => "max_span_verification_retries",
});

/// `[directory_cache]`: the on-disk cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryCacheConfig {
    /// In-memory LRU entries. `0` means the default, 10.
    pub max_lru_cache_entry: i64,
    /// Cached open file descriptors. `0` means the default, 10.
    pub max_cache_fds: i64,
    /// Add to the cache synchronously. Default `false`.
    pub sync_add: bool,
    /// Use direct I/O-style access without the page cache. Default `true`.
    pub direct: bool,
}

impl Default for DirectoryCacheConfig {
    fn default() -> Self {
        Self {
            max_lru_cache_entry: 10,
            max_cache_fds: 10,
            sync_add: false,
            direct: true,
        }
    }
}

section!(DirectoryCacheConfig {
    max_lru_cache_entry => "max_lru_cache_entry",
    max_cache_fds => "max_cache_fds",
    sync_add => "sync_add",
    direct => "direct",
});

/// `[fuse]`: kernel cache timeouts (seconds) and logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseConfig {
    /// Attribute cache timeout. `0` means the default, 1 s.
    pub attr_timeout: Seconds,
    /// Directory entry cache timeout. `0` means the default, 1 s.
    pub entry_timeout: Seconds,
    /// Failed-lookup cache timeout. `0` means the default, 1 s.
    pub negative_timeout: Seconds,
    /// Log every FUSE operation (may log sensitive data). Default `false`.
    pub log_fuse_operations: bool,
}

impl Default for FuseConfig {
    fn default() -> Self {
        Self {
            attr_timeout: Seconds(1),
            entry_timeout: Seconds(1),
            negative_timeout: Seconds(1),
            log_fuse_operations: false,
        }
    }
}

section!(FuseConfig {
    attr_timeout => "attr_timeout",
    entry_timeout => "entry_timeout",
    negative_timeout => "negative_timeout",
    log_fuse_operations => "log_fuse_operations",
});

/// Which queued layer the background fetcher drops when its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DropPolicy {
    /// `"newest"`: drop the layer being added (the default).
    #[default]
    Newest,
    /// `"oldest"`: drop the layer queued longest.
    Oldest,
}

impl DropPolicy {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::Oldest => "oldest",
        }
    }
}

impl fmt::Display for DropPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[background_fetch]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackgroundFetchConfig {
    /// Disable the background fetcher. Default `false`.
    pub disable: bool,
    /// Pause after a new image is mounted. `0` means the default, 30000 ms.
    pub silence_period_msec: Millis,
    /// Interval between span fetches. `0` means the default, 500 ms.
    pub fetch_period_msec: Millis,
    /// Queue capacity. `0` means the default, 300; `-1` (any negative) is unlimited.
    pub max_queue_size: i64,
    /// What to drop when the queue is full. Default [`DropPolicy::Newest`];
    /// `""` means the default.
    pub drop_policy: DropPolicy,
    /// Metric emission interval. `0` means the default, 10 s.
    pub emit_metric_period_sec: Seconds,
}

impl Default for BackgroundFetchConfig {
    fn default() -> Self {
        Self {
            disable: false,
            silence_period_msec: Millis(30_000),
            fetch_period_msec: Millis(500),
            max_queue_size: 300,
            drop_policy: DropPolicy::Newest,
            emit_metric_period_sec: Seconds(10),
        }
    }
}

section!(BackgroundFetchConfig {
    disable => "disable",
    silence_period_msec => "silence_period_msec",
    fetch_period_msec => "fetch_period_msec",
    max_queue_size => "max_queue_size",
    drop_policy => "drop_policy",
    emit_metric_period_sec => "emit_metric_period_sec",
});

/// Where SOCI artifacts (indexes, zTOCs) are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ContentStoreType {
    /// `"soci"`: the snapshotter's own store under its root (the default).
    #[default]
    Soci,
    /// `"containerd"`: containerd's content store.
    Containerd,
}

impl ContentStoreType {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Soci => "soci",
            Self::Containerd => "containerd",
        }
    }
}

impl fmt::Display for ContentStoreType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[content_store]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentStoreConfig {
    /// TOML key `type`. Default [`ContentStoreType::Soci`]; `""` means the default.
    pub store_type: ContentStoreType,
    /// containerd socket; a `unix://` prefix is removed. `""` means the
    /// default, [`DEFAULT_CONTAINERD_ADDRESS`].
    pub containerd_address: String,
}

impl Default for ContentStoreConfig {
    fn default() -> Self {
        Self {
            store_type: ContentStoreType::Soci,
            containerd_address: DEFAULT_CONTAINERD_ADDRESS.to_owned(),
        }
    }
}

section!(ContentStoreConfig {
    store_type => "type",
    containerd_address => "containerd_address",
});

/// `[prefetch]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrefetchConfig {
    /// Prefetch files listed in prefetch artifacts before a layer is ready.
    /// Default `false`.
    pub enable: bool,
    /// Layers prefetching at once; `0` is no limit (negative becomes `0`). Default 0.
    pub max_concurrency: i64,
}

section!(PrefetchConfig {
    enable => "enable",
    max_concurrency => "max_concurrency",
});

/// `[pull_modes]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PullModes {
    /// `[pull_modes.soci_v1]`.
    pub soci_v1: SociV1,
    /// `[pull_modes.soci_v2]`.
    pub soci_v2: SociV2,
    /// `[pull_modes.parallel_pull_unpack]`.
    pub parallel_pull_unpack: ParallelPullUnpack,
}

section!(PullModes {
    soci_v1 => "soci_v1",
    soci_v2 => "soci_v2",
    parallel_pull_unpack => "parallel_pull_unpack",
});

/// `[pull_modes.soci_v1]`: index discovery through the Referrers API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SociV1 {
    /// Default `false`.
    pub enable: bool,
}

section!(SociV1 { enable => "enable" });

/// `[pull_modes.soci_v2]`: index discovery through manifest annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SociV2 {
    /// Default `true`.
    pub enable: bool,
}

impl Default for SociV2 {
    fn default() -> Self {
        Self { enable: true }
    }
}

section!(SociV2 { enable => "enable" });

/// An external decompressor for parallel pull/unpack, run directly (no shell)
/// with the compressed layer on stdin.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecompressStream {
    /// Absolute path of the executable.
    pub path: PathBuf,
    /// Arguments, e.g. `["-d", "-c"]`.
    pub args: Vec<String>,
}

impl Field for PathBuf {
    fn load(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &KeyPath,
        cx: &mut Cx<'_>,
    ) -> Result<(), ConfigError> {
        let mut s = String::new();
        s.load(value, path, cx)?;
        *self = PathBuf::from(s);
        Ok(())
    }

    fn dump(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.to_string_lossy().into_owned()))
    }
}

/// Characters upstream refuses in a decompressor path.
const FORBIDDEN_PATH_CHARS: &[char] = &['#', '%', '{', '}', '\\', '|', ';', '&', '$', '<', '>'];

fn check_decompress_stream(
    stream: &mut DecompressStream,
    value: &Spanned<DeValue<'_>>,
    path: &KeyPath,
    cx: &mut Cx<'_>,
) -> Result<(), ConfigError> {
    let text = stream.path.to_string_lossy();
    let at = |cx: &Cx<'_>, message: String| {
        // Point at the `path` value when there is one, else at the table.
        let spanned = match value.get_ref() {
            DeValue::Table(t) => t
                .iter()
                .find(|(k, _)| crate::schema::match_key(&["path"], k.get_ref()).is_some())
                .map(|(_, v)| v),
            _ => None,
        };
        cx.invalid(&path.key("path"), message, spanned.unwrap_or(value))
    };
    if text.is_empty() {
        return Err(at(
            cx,
            "an absolute path to the decompressor executable is required".to_owned(),
        ));
    }
    if !stream.path.is_absolute() {
        return Err(at(
            cx,
            format!("{text:?} is not an absolute path to an executable"),
        ));
    }
    if let Some(c) = text.chars().find(|c| FORBIDDEN_PATH_CHARS.contains(c)) {
        return Err(at(
            cx,
            format!("{text:?} contains the forbidden character {c:?}"),
        ));
    }
    Ok(())
}

section!(DecompressStream {
    path => "path",
    args => "args",
} after = check_decompress_stream);

/// `[pull_modes.parallel_pull_unpack]`: download and unpack whole layers in
/// parallel instead of lazy loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParallelPullUnpack {
    /// Use parallel pull/unpack as the primary pull mode. Default `false`.
    pub enable: bool,
    /// Use it as a fallback for images without a SOCI index. Default `false`.
    pub experimental_parallel_pull_as_fallback: bool,
    /// Concurrent layer downloads across images; `-1` is unlimited. Default -1.
    pub max_concurrent_downloads: i64,
    /// Concurrent layer downloads per image. Default 3.
    pub max_concurrent_downloads_per_image: i64,
    /// Size of each ranged GET, e.g. `"8mb"`; `""` fetches whole layers.
    /// Default `""`.
    pub concurrent_download_chunk_size: ChunkSize,
    /// Concurrent unpacks across images; `-1` is unlimited. Default -1.
    pub max_concurrent_unpacks: i64,
    /// Concurrent unpacks per image. Default 1.
    pub max_concurrent_unpacks_per_image: i64,
    /// Do not keep layer blobs after unpacking. Default `false`.
    pub discard_unpacked_layers: bool,
    /// External decompressors by algorithm (`gzip`, `zstd`). Default none.
    pub decompress_streams: BTreeMap<String, DecompressStream>,
}

impl Default for ParallelPullUnpack {
    fn default() -> Self {
        Self {
            enable: false,
            experimental_parallel_pull_as_fallback: false,
            max_concurrent_downloads: -1,
            max_concurrent_downloads_per_image: 3,
            concurrent_download_chunk_size: ChunkSize::whole_layer(),
            max_concurrent_unpacks: -1,
            max_concurrent_unpacks_per_image: 1,
            discard_unpacked_layers: false,
            decompress_streams: BTreeMap::new(),
        }
    }
}

impl Field for ChunkSize {
    fn load(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &KeyPath,
        cx: &mut Cx<'_>,
    ) -> Result<(), ConfigError> {
        let mut text = String::new();
        text.load(value, path, cx)?;
        *self = ChunkSize::parse(&text).map_err(|e| cx.invalid(path, e.to_string(), value))?;
        Ok(())
    }

    fn dump(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.as_str().to_owned()))
    }
}

/// Algorithms upstream has external decompressors for.
pub(crate) const DECOMPRESSORS: &[&str] = &["gzip", "zstd"];

fn warn_unsupported_decompressors(
    section: &mut ParallelPullUnpack,
    _value: &Spanned<DeValue<'_>>,
    _path: &KeyPath,
    cx: &mut Cx<'_>,
) -> Result<(), ConfigError> {
    for algorithm in section.decompress_streams.keys() {
        if !DECOMPRESSORS.contains(&algorithm.as_str()) {
            let warning = ConfigWarning::UnsupportedDecompressor {
                algorithm: algorithm.clone(),
            };
            if !cx.warnings.contains(&warning) {
                cx.warnings.push(warning);
            }
        }
    }
    Ok(())
}

section!(ParallelPullUnpack {
    max_concurrent_downloads => "max_concurrent_downloads",
    max_concurrent_downloads_per_image => "max_concurrent_downloads_per_image",
    concurrent_download_chunk_size => "concurrent_download_chunk_size",
    max_concurrent_unpacks => "max_concurrent_unpacks",
    max_concurrent_unpacks_per_image => "max_concurrent_unpacks_per_image",
    decompress_streams => "decompress_streams",
    discard_unpacked_layers => "discard_unpacked_layers",
    enable => "enable",
    experimental_parallel_pull_as_fallback => "experimental_parallel_pull_as_fallback",
} after = warn_unsupported_decompressors);

/// `[kubeconfig_keychain]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KubeconfigKeychainConfig {
    /// Read registry credentials from Kubernetes secrets. Default `false`.
    pub enable_keychain: bool,
    /// kubeconfig to use; empty means in-cluster / default. Default `""`.
    pub kubeconfig_path: String,
}

section!(KubeconfigKeychainConfig {
    enable_keychain => "enable_keychain",
    kubeconfig_path => "kubeconfig_path",
});

/// `[cri_keychain]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriKeychainConfig {
    /// Serve the CRI image service and keep credentials of pulls. Default `false`.
    pub enable_keychain: bool,
    /// The CRI image service pulls are forwarded to. `""` means the default,
    /// [`DEFAULT_CONTAINERD_ADDRESS`].
    pub image_service_path: String,
}

impl Default for CriKeychainConfig {
    fn default() -> Self {
        Self {
            enable_keychain: false,
            image_service_path: DEFAULT_CONTAINERD_ADDRESS.to_owned(),
        }
    }
}

section!(CriKeychainConfig {
    enable_keychain => "enable_keychain",
    image_service_path => "image_service_path",
});

/// `[resolver]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// `[resolver.host."<registry>"]`: per-registry settings.
    pub host: BTreeMap<String, HostConfig>,
    /// How long auth clients are reused. `0` means the default, 3600 s;
    /// negative means never expire.
    pub auth_client_ttl_sec: Seconds,
    /// Share auth clients per registry host and credential. Default `false`.
    pub enable_auth_client_sharing: bool,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            host: BTreeMap::new(),
            auth_client_ttl_sec: Seconds(3600),
            enable_auth_client_sharing: false,
        }
    }
}

section!(ResolverConfig {
    host => "host",
    auth_client_ttl_sec => "auth_client_ttl_sec",
    enable_auth_client_sharing => "enable_auth_client_sharing",
});

/// `[resolver.host."<registry>"]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostConfig {
    /// Mirrors tried in order before the registry itself.
    pub mirrors: Vec<MirrorConfig>,
}

section!(HostConfig { mirrors => "mirrors" });

/// One entry of `mirrors = [{host = "...", insecure = false, request_timeout_sec = 0}]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MirrorConfig {
    /// Mirror host (and optional port), e.g. `"mirror.example.com:5000"`.
    pub host: String,
    /// Use plain HTTP. Default `false`.
    pub insecure: bool,
    /// Timeout of each request to the mirror; `0` means none. Default 0.
    pub request_timeout_sec: Seconds,
}

section!(MirrorConfig {
    host => "host",
    insecure => "insecure",
    request_timeout_sec => "request_timeout_sec",
});

/// `[snapshotter]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotterConfig {
    /// Layers smaller than this many bytes are fetched whole instead of lazily;
    /// negative disables the option. Default 0.
    pub min_layer_size: i64,
    /// Start even if existing snapshots cannot reach their data. Default `false`.
    pub allow_invalid_mounts_on_restart: bool,
}

section!(SnapshotterConfig {
    min_layer_size => "min_layer_size",
    allow_invalid_mounts_on_restart => "allow_invalid_mounts_on_restart",
});

/// The FUSE metadata store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetadataStore {
    /// `"db"`: one bbolt database for all layers (the default).
    #[default]
    Db,
    /// `"db-multi"`: one bbolt database per layer.
    DbMulti,
}

impl MetadataStore {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Db => "db",
            Self::DbMulti => "db-multi",
        }
    }
}

impl fmt::Display for MetadataStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// String enums: `""` means the default; anything else must be a listed spelling.
macro_rules! string_enum_field {
    ($ty:ty, [$($variant:expr),+ $(,)?]) => {
        impl Field for $ty {
            fn load(
                &mut self,
                value: &Spanned<DeValue<'_>>,
                path: &KeyPath,
                cx: &mut Cx<'_>,
            ) -> Result<(), ConfigError> {
                let mut text = String::new();
                text.load(value, path, cx)?;
                if text.is_empty() {
                    *self = <$ty>::default();
                    return Ok(());
                }
                const ALL: &[$ty] = &[$($variant),+];
                match ALL.iter().find(|v| v.as_str() == text) {
                    Some(v) => {
                        *self = *v;
                        Ok(())
                    }
                    None => {
                        let allowed: Vec<String> =
                            ALL.iter().map(|v| format!("{:?}", v.as_str())).collect();
                        Err(cx.invalid(
                            path,
                            format!("must be {}, got {text:?}", allowed.join(" or ")),
                            value,
                        ))
                    }
                }
            }

            fn dump(&self) -> Option<toml::Value> {
                Some(toml::Value::String(self.as_str().to_owned()))
            }
        }
    };
}

string_enum_field!(DropPolicy, [DropPolicy::Oldest, DropPolicy::Newest]);
string_enum_field!(
    ContentStoreType,
    [ContentStoreType::Soci, ContentStoreType::Containerd]
);
string_enum_field!(MetadataStore, [MetadataStore::Db, MetadataStore::DbMulti]);
