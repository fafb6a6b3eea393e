//! The `soci-snapshotter-grpc` configuration file (`config.toml`).
//!
//! Every key, TOML name and default is upstream's, so an upstream config file
//! works unchanged. Loading differs from upstream only in being louder and
//! stricter where upstream would fail later anyway:
//!
//! * unknown keys are ignored, as upstream does, but reported as
//!   [`ConfigWarning`]s;
//! * a wrong value type names the key path, line and column;
//! * values the daemon cannot use (`drop_policy`, `content_store.type`,
//!   `metadata_store`, `concurrent_download_chunk_size`, decompressor paths)
//!   are rejected at load time rather than at first use.
//!
//! After loading, every "`0` means the default" key holds its effective
//! value, so [`Config::dump_toml`] shows what the daemon really uses.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod model;
mod schema;
mod size;
mod units;

use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use error::{ConfigError, ConfigWarning};
pub use model::{
    BackgroundFetchConfig, BlobConfig, Config, ContentStoreConfig, ContentStoreType,
    CriKeychainConfig, DEFAULT_CONTAINERD_ADDRESS, DecompressStream, DirectoryCacheConfig,
    DropPolicy, FuseConfig, HostConfig, HttpConfig, KubeconfigKeychainConfig, MetadataStore,
    MirrorConfig, ParallelPullUnpack, PrefetchConfig, PullModes, ResolverConfig, SnapshotterConfig,
    SociV1, SociV2,
};
pub use size::{ChunkSize, SizeError, parse_size};
pub use units::{Millis, Seconds};

use schema::{Cx, Field, KeyPath, line_column};

/// Default `--config` of `soci-snapshotter-grpc`. A missing file at this path
/// means "all defaults"; a missing file anywhere else is an error.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/soci-snapshotter-grpc/config.toml";

/// Default `--root` of `soci-snapshotter-grpc`.
pub const DEFAULT_ROOT_PATH: &str = "/var/lib/soci-snapshotter-grpc/";

/// A loaded configuration and what was ignored while loading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedConfig {
    /// The effective configuration.
    pub config: Config,
    /// Ignored keys and entries, in document order; log each one.
    pub warnings: Vec<ConfigWarning>,
    /// The file it came from; `None` when defaults were used because there
    /// was no file.
    pub source: Option<PathBuf>,
}

impl Config {
    /// Loads the config file at `path`.
    ///
    /// `path: None` means no config file: all defaults. A missing file is
    /// all defaults when `is_default_path` is set (the daemon passes
    /// `path == DEFAULT_CONFIG_PATH`, as upstream compares the path), and an
    /// error naming the path otherwise.
    pub fn load(path: Option<&Path>, is_default_path: bool) -> Result<LoadedConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(LoadedConfig::defaults());
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return if is_default_path {
                    Ok(LoadedConfig::defaults())
                } else {
                    Err(ConfigError::NotFound {
                        path: path.to_owned(),
                    })
                };
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                // The prefix is valid UTF-8 by construction.
                let prefix = String::from_utf8_lossy(valid);
                let (line, column) = line_column(&prefix, prefix.len());
                return Err(ConfigError::Syntax {
                    file: Some(path.to_owned()),
                    line,
                    column,
                    message: "the file is not valid UTF-8".to_owned(),
                });
            }
        };
        let mut loaded = Self::from_toml_str(&text).map_err(|e| e.in_file(path))?;
        loaded.source = Some(path.to_owned());
        Ok(loaded)
    }

    /// Loads a config from TOML text: defaults, overlaid with the text, then
    /// upstream's "`0` means the default" rules.
    pub fn from_toml_str(text: &str) -> Result<LoadedConfig, ConfigError> {
        let document = DeTable::parse(text).map_err(|e| {
            let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
            ConfigError::Syntax {
                file: None,
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        let span = document.span();
        let root = Spanned::new(span, DeValue::Table(document.into_inner()));
        let mut cx = Cx::new(text);
        let mut config = Config::default();
        config.load(&root, &KeyPath::root(), &mut cx)?;
        config.apply_defaults();
        let mut warnings = cx.warnings;
        // Document order; those without a position last, in walk order.
        warnings.sort_by_key(|w| w.position().unwrap_or((usize::MAX, 0)));
        Ok(LoadedConfig {
            config,
            warnings,
            source: None,
        })
    }

    /// The effective configuration as TOML (`soci-snapshotter-grpc config dump`),
    /// with upstream's key names and order. For any `Config` returned by
    /// [`Config::load`], [`Config::from_toml_str`] or [`Config::default`],
    /// loading the text gives back an equal `Config`; its only warnings are
    /// for the unsupported `decompress_streams` entries it keeps. (A
    /// `Config` changed by hand may hold values that loading rewrites, such as
    /// a `0` that means "default", or that loading rejects.)
    pub fn dump_toml(&self) -> String {
        let table = match Field::dump(self) {
            Some(toml::Value::Table(table)) => table,
            _ => toml::Table::new(),
        };
        // A table of strings, integers, booleans, arrays and tables always
        // serializes; the fallback only keeps this function panic-free.
        toml::to_string(&table).unwrap_or_else(|e| format!("# cannot serialize: {e}\n"))
    }

    /// The default configuration as TOML (`soci-snapshotter-grpc config default`).
    pub fn default_toml() -> String {
        Config::default().dump_toml()
    }

    /// `max_concurrency` as a limit: `None` is unlimited.
    pub fn max_concurrency_limit(&self) -> Option<u64> {
        u64::try_from(self.max_concurrency).ok()
    }

    /// Upstream's "`0` (or empty) means the default" rules, in upstream's order.
    /// Idempotent; [`Config::default`] is a fixed point.
    fn apply_defaults(&mut self) {
        fn zero_to<T: PartialEq + Default>(value: &mut T, default: T) {
            if *value == T::default() {
                *value = default;
            }
        }
        let d = Config::default();

        if self.metrics_network.is_empty() {
            self.metrics_network = d.metrics_network.clone();
        }
        zero_to(&mut self.resolve_result_entry, d.resolve_result_entry);
        if self.metadata_insertion_chunk_size <= 0 {
            self.metadata_insertion_chunk_size = d.metadata_insertion_chunk_size;
        }

        if self.cri_keychain.image_service_path.is_empty() {
            self.cri_keychain.image_service_path = d.cri_keychain.image_service_path.clone();
        }
        zero_to(
            &mut self.resolver.auth_client_ttl_sec,
            d.resolver.auth_client_ttl_sec,
        );

        zero_to(&mut self.mount_timeout_sec, d.mount_timeout_sec);
        zero_to(
            &mut self.fuse_metrics_emit_wait_duration_sec,
            d.fuse_metrics_emit_wait_duration_sec,
        );
        zero_to(&mut self.max_concurrency, d.max_concurrency);
        if self.max_concurrency < 0 {
            // Upstream stores 0 for "unlimited", which its own dump would
            // turn back into the default; -1 keeps dumps faithful.
            self.max_concurrency = -1;
        }
        if self.prefetch.max_concurrency < 0 {
            self.prefetch.max_concurrency = 0;
        }

        let fuse = &mut self.fuse;
        zero_to(&mut fuse.attr_timeout, d.fuse.attr_timeout);
        zero_to(&mut fuse.entry_timeout, d.fuse.entry_timeout);
        zero_to(&mut fuse.negative_timeout, d.fuse.negative_timeout);

        let bg = &mut self.background_fetch;
        zero_to(
            &mut bg.fetch_period_msec,
            d.background_fetch.fetch_period_msec,
        );
        zero_to(
            &mut bg.silence_period_msec,
            d.background_fetch.silence_period_msec,
        );
        zero_to(&mut bg.max_queue_size, d.background_fetch.max_queue_size);
        zero_to(
            &mut bg.emit_metric_period_sec,
            d.background_fetch.emit_metric_period_sec,
        );

        let http = &mut self.http;
        zero_to(&mut http.dial_timeout_msec, d.http.dial_timeout_msec);
        zero_to(
            &mut http.response_header_timeout_msec,
            d.http.response_header_timeout_msec,
        );
        zero_to(&mut http.request_timeout_msec, d.http.request_timeout_msec);
        zero_to(&mut http.max_retries, d.http.max_retries);
        zero_to(&mut http.min_wait_msec, d.http.min_wait_msec);
        zero_to(&mut http.max_wait_msec, d.http.max_wait_msec);

        let blob = &mut self.blob;
        zero_to(&mut blob.valid_interval, d.blob.valid_interval);
        if blob.check_always {
            blob.valid_interval = Seconds(0);
        }
        zero_to(&mut blob.fetching_timeout_sec, d.blob.fetching_timeout_sec);
        zero_to(&mut blob.max_retries, self.http.max_retries);
        zero_to(&mut blob.min_wait_msec, self.http.min_wait_msec);
        zero_to(&mut blob.max_wait_msec, self.http.max_wait_msec);

        let store = &mut self.content_store;
        if store.containerd_address.is_empty() {
            store.containerd_address = d.content_store.containerd_address.clone();
        } else if let Some(rest) = store.containerd_address.strip_prefix("unix://") {
            store.containerd_address = rest.to_owned();
        }

        let cache = &mut self.directory_cache;
        zero_to(
            &mut cache.max_lru_cache_entry,
            d.directory_cache.max_lru_cache_entry,
        );
        zero_to(&mut cache.max_cache_fds, d.directory_cache.max_cache_fds);
    }

    /// Checks that the daemon can start with this configuration, as upstream
    /// does when it sets up the filesystem: parallel pull/unpack (primary or
    /// fallback) needs the containerd content store unless unpacked layers are
    /// discarded, and each external decompressor must be an existing,
    /// executable regular file. Not part of [`Config::load`], so that
    /// `config dump` works on any machine.
    pub fn check_startup(&self) -> Result<(), ConfigError> {
        let parallel = &self.pull_modes.parallel_pull_unpack;
        let needs_containerd = self.content_store.store_type != ContentStoreType::Containerd
            && !parallel.discard_unpacked_layers;
        for (enabled, key) in [
            (parallel.enable, "enable"),
            (
                parallel.experimental_parallel_pull_as_fallback,
                "experimental_parallel_pull_as_fallback",
            ),
        ] {
            if enabled && needs_containerd {
                return Err(ConfigError::Startup {
                    key: format!("pull_modes.parallel_pull_unpack.{key}"),
                    message: "parallel pull/unpack requires the containerd content store: \
                              set type = \"containerd\" under [content_store], or \
                              discard_unpacked_layers = true"
                        .to_owned(),
                });
            }
        }
        for (algorithm, stream) in &parallel.decompress_streams {
            if !model::DECOMPRESSORS.contains(&algorithm.as_str()) {
                continue;
            }
            let key = KeyPath::root()
                .key("pull_modes")
                .key("parallel_pull_unpack")
                .key("decompress_streams")
                .key(algorithm)
                .key("path")
                .to_string();
            check_executable(&stream.path).map_err(|message| ConfigError::Startup {
                key,
                message: format!("{}: {message}", stream.path.display()),
            })?;
        }
        Ok(())
    }
}

impl LoadedConfig {
    fn defaults() -> Self {
        Self {
            config: Config::default(),
            warnings: Vec::new(),
            source: None,
        }
    }
}

/// Whether `path` (after following symlinks) is an executable regular file.
fn check_executable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("is a directory, not an executable".to_owned());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err("is not executable".to_owned());
        }
    }
    Ok(())
}
