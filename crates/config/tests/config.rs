//! Loading, defaults, validation and dumps of the daemon's config.toml.

use std::path::{Path, PathBuf};

use soci_config::{
    ChunkSize, Config, ConfigError, ConfigWarning, ContentStoreType, DEFAULT_CONFIG_PATH,
    DecompressStream, DropPolicy, LoadedConfig, MetadataStore, Millis, MirrorConfig, Seconds,
};

fn load(text: &str) -> LoadedConfig {
    Config::from_toml_str(text).unwrap_or_else(|e| panic!("{text:?} failed to load: {e}"))
}

fn load_err(text: &str) -> ConfigError {
    match Config::from_toml_str(text) {
        Ok(c) => panic!("{text:?} loaded: {:?}", c.config),
        Err(e) => e,
    }
}

fn warning_texts(loaded: &LoadedConfig) -> Vec<String> {
    loaded.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn seed_example_enables_soci_v1_and_keeps_every_other_default() {
    let loaded = load("[pull_modes.soci_v1]\nenable = true");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let mut want = Config::default();
    want.pull_modes.soci_v1.enable = true;
    assert_eq!(loaded.config, want);
    assert!(loaded.config.pull_modes.soci_v2.enable);
}

#[test]
fn empty_or_comment_only_file_equals_defaults() {
    for text in ["", "\n\n", "# nothing here\n  # still nothing\n"] {
        let loaded = load(text);
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.warnings.is_empty());
    }
}

/// Every key of spec section 5.10, with its effective default.
#[test]
fn every_default_matches_the_spec() {
    let c = Config::default();
    assert_eq!(c.http_cache_type, "");
    assert_eq!(c.filesystem_cache_type, "");
    assert_eq!(c.resolve_result_entry, 30);
    assert!(!c.debug);
    assert!(!c.disable_verification);
    assert_eq!(c.max_concurrency, 100);
    assert_eq!(c.max_concurrency_limit(), Some(100));
    assert_eq!(c.mount_timeout_sec, Seconds(30));
    assert_eq!(c.fuse_metrics_emit_wait_duration_sec, Seconds(60));
    assert_eq!(c.metrics_address, "");
    assert_eq!(c.metrics_network, "tcp");
    assert!(!c.no_prometheus);
    assert_eq!(c.debug_address, "");
    assert_eq!(c.metadata_store, MetadataStore::Db);
    assert!(!c.metadata_db_no_sync);
    assert_eq!(c.metadata_insertion_chunk_size, 5000);
    assert!(!c.skip_check_snapshotter_supported);

    assert_eq!(c.http.dial_timeout_msec, Millis(3000));
    assert_eq!(c.http.response_header_timeout_msec, Millis(3000));
    assert_eq!(c.http.request_timeout_msec, Millis(300_000));
    assert_eq!(c.http.max_retries, 8);
    assert_eq!(c.http.min_wait_msec, Millis(30));
    assert_eq!(c.http.max_wait_msec, Millis(300_000));

    assert_eq!(c.blob.valid_interval, Seconds(60));
    assert_eq!(c.blob.fetching_timeout_sec, Seconds(300));
    assert_eq!(c.blob.max_retries, 8);
    assert_eq!(c.blob.min_wait_msec, Millis(30));
    assert_eq!(c.blob.max_wait_msec, Millis(300_000));
    assert!(!c.blob.check_always);
    assert!(!c.blob.force_single_range_mode);
    assert_eq!(c.blob.max_span_verification_retries, 0);

    assert_eq!(c.directory_cache.max_lru_cache_entry, 10);
    assert_eq!(c.directory_cache.max_cache_fds, 10);
    assert!(!c.directory_cache.sync_add);
    assert!(c.directory_cache.direct);

    assert_eq!(c.fuse.attr_timeout, Seconds(1));
    assert_eq!(c.fuse.entry_timeout, Seconds(1));
    assert_eq!(c.fuse.negative_timeout, Seconds(1));
    assert!(!c.fuse.log_fuse_operations);

    assert!(!c.background_fetch.disable);
    assert_eq!(c.background_fetch.silence_period_msec, Millis(30_000));
    assert_eq!(c.background_fetch.fetch_period_msec, Millis(500));
    assert_eq!(c.background_fetch.max_queue_size, 300);
    assert_eq!(c.background_fetch.drop_policy, DropPolicy::Newest);
    assert_eq!(c.background_fetch.emit_metric_period_sec, Seconds(10));

    assert_eq!(c.content_store.store_type, ContentStoreType::Soci);
    assert_eq!(
        c.content_store.containerd_address,
        "/run/containerd/containerd.sock"
    );

    assert!(!c.prefetch.enable);
    assert_eq!(c.prefetch.max_concurrency, 0);

    assert!(!c.pull_modes.soci_v1.enable);
    assert!(c.pull_modes.soci_v2.enable);
    let p = &c.pull_modes.parallel_pull_unpack;
    assert!(!p.enable);
    assert!(!p.experimental_parallel_pull_as_fallback);
    assert_eq!(p.max_concurrent_downloads, -1);
    assert_eq!(p.max_concurrent_downloads_per_image, 3);
    assert_eq!(p.concurrent_download_chunk_size.as_str(), "");
    assert_eq!(p.concurrent_download_chunk_size.bytes(), None);
    assert_eq!(p.max_concurrent_unpacks, -1);
    assert_eq!(p.max_concurrent_unpacks_per_image, 1);
    assert!(!p.discard_unpacked_layers);
    assert!(p.decompress_streams.is_empty());

    assert!(!c.kubeconfig_keychain.enable_keychain);
    assert_eq!(c.kubeconfig_keychain.kubeconfig_path, "");
    assert!(!c.cri_keychain.enable_keychain);
    assert_eq!(
        c.cri_keychain.image_service_path,
        "/run/containerd/containerd.sock"
    );
    assert_eq!(c.resolver.auth_client_ttl_sec, Seconds(3600));
    assert!(!c.resolver.enable_auth_client_sharing);
    assert!(c.resolver.host.is_empty());
    assert_eq!(c.snapshotter.min_layer_size, 0);
    assert!(!c.snapshotter.allow_invalid_mounts_on_restart);
}

/// The spec's key list as TOML, with the "0 means default" keys at their
/// effective values. `config default` must print exactly these keys.
const SPEC_DEFAULTS: &str = r#"
http_cache_type = ""
filesystem_cache_type = ""
resolve_result_entry = 30
debug = false
disable_verification = false
max_concurrency = 100
mount_timeout_sec = 30
fuse_metrics_emit_wait_duration_sec = 60
metrics_address = ""
metrics_network = "tcp"
no_prometheus = false
debug_address = ""
metadata_store = "db"
metadata_db_no_sync = false
metadata_insertion_chunk_size = 5000
skip_check_snapshotter_supported = false
[http]
DialTimeoutMsec = 3000
ResponseHeaderTimeoutMsec = 3000
RequestTimeoutMsec = 300000
MaxRetries = 8
MinWaitMsec = 30
MaxWaitMsec = 300000
[blob]
valid_interval = 60
fetching_timeout_sec = 300
max_retries = 8
min_wait_msec = 30
max_wait_msec = 300000
check_always = false
force_single_range_mode = false
max_span_verification_retries = 0
[directory_cache]
max_lru_cache_entry = 10
max_cache_fds = 10
sync_add = false
direct = true
[fuse]
attr_timeout = 1
entry_timeout = 1
negative_timeout = 1
log_fuse_operations = false
[background_fetch]
disable = false
silence_period_msec = 30000
fetch_period_msec = 500
max_queue_size = 300
drop_policy = "newest"
emit_metric_period_sec = 10
[content_store]
type = "soci"
containerd_address = "/run/containerd/containerd.sock"
[prefetch]
enable = false
max_concurrency = 0
[pull_modes.soci_v1]
enable = false
[pull_modes.soci_v2]
enable = true
[pull_modes.parallel_pull_unpack]
enable = false
experimental_parallel_pull_as_fallback = false
max_concurrent_downloads = -1
max_concurrent_downloads_per_image = 3
concurrent_download_chunk_size = ""
max_concurrent_unpacks = -1
max_concurrent_unpacks_per_image = 1
discard_unpacked_layers = false
[kubeconfig_keychain]
enable_keychain = false
kubeconfig_path = ""
[cri_keychain]
enable_keychain = false
image_service_path = "/run/containerd/containerd.sock"
[resolver]
auth_client_ttl_sec = 3600
enable_auth_client_sharing = false
[snapshotter]
min_layer_size = 0
allow_invalid_mounts_on_restart = false
"#;

#[test]
fn default_toml_has_exactly_the_spec_keys_and_values() {
    let ours: toml::Table = toml::from_str(&Config::default_toml()).unwrap();
    let spec: toml::Table = toml::from_str(SPEC_DEFAULTS).unwrap();
    assert_eq!(ours, spec);
}

/// Upstream's sample config (its `config default` output) writes the
/// "0 means default" keys as 0; it must load to the defaults, silently.
#[test]
fn upstream_style_default_file_loads_to_defaults() {
    let upstream = SPEC_DEFAULTS
        .replace("resolve_result_entry = 30", "resolve_result_entry = 0")
        .replace(
            "metadata_insertion_chunk_size = 5000",
            "metadata_insertion_chunk_size = 0",
        )
        .replace("max_lru_cache_entry = 10", "max_lru_cache_entry = 0")
        .replace("max_cache_fds = 10", "max_cache_fds = 0");
    let loaded = load(&upstream);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn default_toml_round_trips() {
    let loaded = load(&Config::default_toml());
    assert!(loaded.warnings.is_empty());
    assert_eq!(loaded.config, Config::default());
}

const CUSTOM: &str = r#"
debug = true
max_concurrency = -5
metadata_store = "db-multi"
metrics_address = "127.0.0.1:9999"
[http]
MaxRetries = 3
[blob]
check_always = true
max_wait_msec = 0
[background_fetch]
drop_policy = "oldest"
max_queue_size = -1
[content_store]
type = "containerd"
containerd_address = "unix:///run/k3s/containerd/containerd.sock"
[pull_modes.soci_v1]
enable = true
[pull_modes.parallel_pull_unpack]
enable = true
concurrent_download_chunk_size = "1.5 MB"
[pull_modes.parallel_pull_unpack.decompress_streams.gzip]
path = "/usr/bin/unpigz"
args = ["-d", "-c"]
[resolver.host."docker.io"]
mirrors = [{ host = "mirror.example.com:5000", insecure = true, request_timeout_sec = 7 }]
[resolver.host."ghcr.io"]
mirrors = [{ host = "a.example" }, { host = "b.example", insecure = false }]
[snapshotter]
min_layer_size = 10000000
"#;

#[test]
fn dump_round_trips_a_customized_config() {
    let first = load(CUSTOM);
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    let dumped = first.config.dump_toml();
    let second = load(&dumped);
    assert!(second.warnings.is_empty(), "{:?}", second.warnings);
    assert_eq!(second.config, first.config, "dump:\n{dumped}");
    assert_eq!(second.config.dump_toml(), dumped);

    let c = &first.config;
    assert_eq!(c.max_concurrency, -1);
    assert_eq!(c.max_concurrency_limit(), None);
    assert_eq!(c.metadata_store, MetadataStore::DbMulti);
    assert_eq!(c.http.max_retries, 3);
    // Set in the defaults before the file is read, as upstream: an [http]
    // change does not reach an unset blob.max_retries ...
    assert_eq!(c.blob.max_retries, 8);
    // ... but an explicit 0 inherits the http value.
    assert_eq!(c.blob.max_wait_msec, Millis(300_000));
    assert_eq!(c.blob.valid_interval, Seconds(0));
    assert_eq!(c.background_fetch.drop_policy, DropPolicy::Oldest);
    assert_eq!(c.background_fetch.max_queue_size, -1);
    assert_eq!(c.content_store.store_type, ContentStoreType::Containerd);
    assert_eq!(
        c.content_store.containerd_address,
        "/run/k3s/containerd/containerd.sock"
    );
    let p = &c.pull_modes.parallel_pull_unpack;
    assert_eq!(p.concurrent_download_chunk_size.as_str(), "1.5 MB");
    assert_eq!(
        p.concurrent_download_chunk_size.bytes(),
        Some(1024 * 1024 * 3 / 2)
    );
    assert_eq!(
        p.decompress_streams["gzip"],
        DecompressStream {
            path: "/usr/bin/unpigz".into(),
            args: vec!["-d".into(), "-c".into()],
        }
    );
    assert_eq!(c.snapshotter.min_layer_size, 10_000_000);
}

#[test]
fn wrong_types_name_the_key() {
    /// (document, key, expected, found, (line, column))
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        (usize, usize),
    );
    let cases: &[Case] = &[
        (
            "[background_fetch]\nfetch_period_msec = \"500\"",
            "background_fetch.fetch_period_msec",
            "an integer",
            "a string",
            (2, 21),
        ),
        ("debug = 1", "debug", "a boolean", "an integer", (1, 9)),
        (
            "metrics_address = 9000",
            "metrics_address",
            "a string",
            "an integer",
            (1, 19),
        ),
        (
            "[http]\nDialTimeoutMsec = 1.5",
            "http.DialTimeoutMsec",
            "an integer",
            "a float",
            (2, 19),
        ),
        ("fuse = 3", "fuse", "a table", "an integer", (1, 8)),
        (
            "[pull_modes.parallel_pull_unpack.decompress_streams.gzip]\npath = \"/bin/gzip\"\nargs = \"-d\"",
            "pull_modes.parallel_pull_unpack.decompress_streams.gzip.args",
            "an array",
            "a string",
            (3, 8),
        ),
        (
            "[pull_modes.parallel_pull_unpack.decompress_streams.gzip]\nargs = [\"-d\", 2]",
            "pull_modes.parallel_pull_unpack.decompress_streams.gzip.args[1]",
            "a string",
            "an integer",
            (2, 15),
        ),
        (
            "[resolver.host.\"docker.io\"]\nmirrors = [{ host = \"m\", insecure = \"yes\" }]",
            "resolver.host.\"docker.io\".mirrors[0].insecure",
            "a boolean",
            "a string",
            (2, 37),
        ),
        (
            "[resolver.host.\"docker.io\"]\nmirrors = \"m.example\"",
            "resolver.host.\"docker.io\".mirrors",
            "an array",
            "a string",
            (2, 11),
        ),
        (
            "[resolver]\nhost = [1]",
            "resolver.host",
            "a table",
            "an array",
            (2, 8),
        ),
        (
            "[snapshotter]\nmin_layer_size = 1979-05-27",
            "snapshotter.min_layer_size",
            "an integer",
            "a datetime",
            (2, 18),
        ),
    ];
    for (text, key, expected, found, pos) in cases {
        match load_err(text) {
            ConfigError::WrongType {
                key: k,
                expected: e,
                found: f,
                line,
                column,
                file,
            } => {
                assert_eq!(
                    (k.as_str(), e, f, (line, column)),
                    (*key, *expected, *found, *pos),
                    "{text}"
                );
                assert_eq!(file, None);
            }
            other => panic!("{text}: {other}"),
        }
    }
    let e = load_err("[background_fetch]\nfetch_period_msec = \"x\"");
    assert_eq!(e.key(), Some("background_fetch.fetch_period_msec"));
    assert_eq!(
        e.to_string(),
        "background_fetch.fetch_period_msec: expected an integer, found a string (line 2, column 21)"
    );
}

#[test]
fn unknown_keys_warn_and_are_ignored() {
    let text = r#"
no_such_top = 1
[pull_modes.soci_v1]
enabled = true
[content_store]
namespace = "default"
[future_section]
a = 1
b = { c = 2 }
[resolver.host."docker.io"]
capabilities = ["pull"]
mirrors = [{ host = "m", weight = 3 }]
[pull_modes.parallel_pull_unpack.decompress_streams.zstd]
path = "/usr/bin/zstd"
flags = "x"
"#;
    let loaded = load(text);
    let mut want = Config::default();
    want.resolver
        .host
        .entry("docker.io".into())
        .or_default()
        .mirrors = vec![MirrorConfig {
        host: "m".into(),
        ..MirrorConfig::default()
    }];
    want.pull_modes
        .parallel_pull_unpack
        .decompress_streams
        .insert(
            "zstd".into(),
            DecompressStream {
                path: "/usr/bin/zstd".into(),
                args: vec![],
            },
        );
    assert_eq!(loaded.config, want);
    assert_eq!(
        warning_texts(&loaded),
        [
            "unknown configuration key no_such_top (ignored)",
            "unknown configuration key pull_modes.soci_v1.enabled (ignored)",
            "unknown configuration key content_store.namespace (ignored)",
            "unknown configuration key future_section (ignored)",
            "unknown configuration key resolver.host.\"docker.io\".capabilities (ignored)",
            "unknown configuration key resolver.host.\"docker.io\".mirrors[0].weight (ignored)",
            "unknown configuration key pull_modes.parallel_pull_unpack.decompress_streams.zstd.flags (ignored)",
        ]
    );
    match &loaded.warnings[1] {
        ConfigWarning::UnknownKey { key, line, column } => {
            assert_eq!(
                (key.as_str(), *line, *column),
                ("pull_modes.soci_v1.enabled", 4, 1)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsupported_decompressor_warns() {
    let loaded = load(
        "[pull_modes.parallel_pull_unpack.decompress_streams.bzip2]\npath = \"/usr/bin/bzip2\"",
    );
    assert_eq!(
        loaded.warnings,
        [ConfigWarning::UnsupportedDecompressor {
            algorithm: "bzip2".into()
        }]
    );
    assert_eq!(
        loaded.warnings[0].key(),
        "pull_modes.parallel_pull_unpack.decompress_streams.bzip2"
    );
    // Kept, so that the dump shows it.
    assert!(
        loaded
            .config
            .pull_modes
            .parallel_pull_unpack
            .decompress_streams
            .contains_key("bzip2")
    );
}

/// Upstream's decoder falls back to case-insensitive key matching.
#[test]
fn keys_match_case_insensitively_like_upstream() {
    let loaded =
        load("DEBUG = true\n[HTTP]\ndialtimeoutmsec = 5\n[Pull_Modes.SOCI_V1]\nEnable = true");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert!(loaded.config.debug);
    assert_eq!(loaded.config.http.dial_timeout_msec, Millis(5));
    assert!(loaded.config.pull_modes.soci_v1.enable);
    // Underscores are not folded away: this is a different key.
    let loaded = load("[http]\ndial_timeout_msec = 5");
    assert_eq!(
        warning_texts(&loaded),
        ["unknown configuration key http.dial_timeout_msec (ignored)"]
    );
}

#[test]
fn mirrors_parse_in_both_array_forms() {
    let text = r#"
[resolver.host."docker.io"]
mirrors = [
  { host = "mirror-a.example.com", insecure = true, request_timeout_sec = 10 },
  { host = "mirror-b.example.com:5000" },
]

[[resolver.host."localhost:5000".mirrors]]
host = "127.0.0.1:5001"
insecure = true

[[resolver.host."localhost:5000".mirrors]]
host = "127.0.0.1:5002"
request_timeout_sec = 3
"#;
    let loaded = load(text);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let hosts = &loaded.config.resolver.host;
    assert_eq!(hosts.len(), 2);
    assert_eq!(
        hosts["docker.io"].mirrors,
        [
            MirrorConfig {
                host: "mirror-a.example.com".into(),
                insecure: true,
                request_timeout_sec: Seconds(10),
            },
            MirrorConfig {
                host: "mirror-b.example.com:5000".into(),
                insecure: false,
                request_timeout_sec: Seconds(0),
            },
        ]
    );
    assert_eq!(
        hosts["localhost:5000"].mirrors,
        [
            MirrorConfig {
                host: "127.0.0.1:5001".into(),
                insecure: true,
                request_timeout_sec: Seconds(0),
            },
            MirrorConfig {
                host: "127.0.0.1:5002".into(),
                insecure: false,
                request_timeout_sec: Seconds(3),
            },
        ]
    );
    // Other resolver keys keep their defaults.
    assert_eq!(loaded.config.resolver.auth_client_ttl_sec, Seconds(3600));
    let again = load(&loaded.config.dump_toml());
    assert_eq!(again.config, loaded.config);
}

#[test]
fn zero_means_default_where_upstream_says_so() {
    let text = r#"
resolve_result_entry = 0
max_concurrency = 0
mount_timeout_sec = 0
fuse_metrics_emit_wait_duration_sec = 0
metrics_network = ""
metadata_store = ""
metadata_insertion_chunk_size = -3
[http]
DialTimeoutMsec = 0
ResponseHeaderTimeoutMsec = 0
RequestTimeoutMsec = 0
MaxRetries = 0
MinWaitMsec = 0
MaxWaitMsec = 0
[blob]
valid_interval = 0
fetching_timeout_sec = 0
max_retries = 0
min_wait_msec = 0
max_wait_msec = 0
[directory_cache]
max_lru_cache_entry = 0
max_cache_fds = 0
[fuse]
attr_timeout = 0
entry_timeout = 0
negative_timeout = 0
[background_fetch]
silence_period_msec = 0
fetch_period_msec = 0
max_queue_size = 0
drop_policy = ""
emit_metric_period_sec = 0
[content_store]
type = ""
containerd_address = ""
[prefetch]
max_concurrency = -4
[cri_keychain]
image_service_path = ""
[resolver]
auth_client_ttl_sec = 0
"#;
    let loaded = load(text);
    assert!(loaded.warnings.is_empty());
    assert_eq!(loaded.config, Config::default());

    // Zero stays zero where it is meaningful.
    let c = load(
        "[pull_modes.parallel_pull_unpack]\nmax_concurrent_downloads = 0\n[snapshotter]\nmin_layer_size = -1\n[resolver]\nauth_client_ttl_sec = -1",
    )
    .config;
    assert_eq!(
        c.pull_modes.parallel_pull_unpack.max_concurrent_downloads,
        0
    );
    assert_eq!(c.snapshotter.min_layer_size, -1);
    assert_eq!(c.resolver.auth_client_ttl_sec.duration(), None);

    // blob retry settings inherit [http] when explicitly 0.
    let c =
        load("[http]\nMaxRetries = 2\nMinWaitMsec = 7\n[blob]\nmax_retries = 0\nmin_wait_msec = 0")
            .config;
    assert_eq!(c.blob.max_retries, 2);
    assert_eq!(c.blob.min_wait_msec, Millis(7));
}

/// Upstream's TestNewConfigFromToml cases.
#[test]
fn upstream_toml_cases() {
    let c = load(
        "[pull_modes.parallel_pull_unpack.decompress_streams.\"gzip\"]\npath = \"/usr/bin/gzip\"\nargs = [\"-d\", \"-c\"]\n\n[pull_modes.parallel_pull_unpack.decompress_streams.\"zstd\"]\npath = \"/usr/bin/zstd\"\nargs = [\"-d\", \"-c\"]\n",
    )
    .config;
    let streams = &c.pull_modes.parallel_pull_unpack.decompress_streams;
    assert_eq!(streams.len(), 2);
    assert_eq!(streams["gzip"].path, Path::new("/usr/bin/gzip"));
    assert_eq!(streams["zstd"].path, Path::new("/usr/bin/zstd"));
    assert_eq!(streams["zstd"].args.len(), 2);

    let c =
        load("[pull_modes.parallel_pull_unpack]\nconcurrent_download_chunk_size = \"1MB\"").config;
    assert_eq!(
        c.pull_modes
            .parallel_pull_unpack
            .concurrent_download_chunk_size
            .bytes(),
        Some(1024 * 1024)
    );
    let e = load_err(
        "[pull_modes.parallel_pull_unpack]\nconcurrent_download_chunk_size = \"badchunksize\"",
    );
    assert_eq!(
        e.key(),
        Some("pull_modes.parallel_pull_unpack.concurrent_download_chunk_size")
    );

    for (queue, want) in [(-1, -1), (0, 300), (50, 50)] {
        let c = load(&format!("[background_fetch]\nmax_queue_size = {queue}")).config;
        assert_eq!(c.background_fetch.max_queue_size, want);
    }
    assert_eq!(
        load("[background_fetch]\ndrop_policy = \"newest\"")
            .config
            .background_fetch
            .drop_policy,
        DropPolicy::Newest
    );

    let c = load(
        "[pull_modes.soci_v2]\nenable = true\n\n[pull_modes.parallel_pull_unpack]\nenable = false\nexperimental_parallel_pull_as_fallback = true\nmax_concurrent_downloads_per_image = 10\nconcurrent_download_chunk_size = \"16mb\"\n",
    )
    .config;
    let p = &c.pull_modes.parallel_pull_unpack;
    assert!(c.pull_modes.soci_v2.enable);
    assert!(!p.enable);
    assert!(p.experimental_parallel_pull_as_fallback);
    assert_eq!(p.max_concurrent_downloads_per_image, 10);
    assert_eq!(
        p.concurrent_download_chunk_size.bytes(),
        Some(16 * 1024 * 1024)
    );
}

#[test]
fn impossible_values_are_rejected_with_key_and_position() {
    /// (document, key, part of the message, (line, column) if checked)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Option<(usize, usize)>,
    );
    let cases: &[Case] = &[
        (
            "[background_fetch]\ndrop_policy = \"random\"",
            "background_fetch.drop_policy",
            "must be \"oldest\" or \"newest\", got \"random\"",
            Some((2, 15)),
        ),
        (
            "[background_fetch]\ndrop_policy = \"Newest\"",
            "background_fetch.drop_policy",
            "got \"Newest\"",
            Some((2, 15)),
        ),
        (
            "[content_store]\ntype = \"local\"",
            "content_store.type",
            "must be \"soci\" or \"containerd\", got \"local\"",
            Some((2, 8)),
        ),
        (
            "metadata_store = \"sqlite\"",
            "metadata_store",
            "must be \"db\" or \"db-multi\"",
            Some((1, 18)),
        ),
        (
            "[pull_modes.parallel_pull_unpack]\nconcurrent_download_chunk_size = \"-100B\"",
            "pull_modes.parallel_pull_unpack.concurrent_download_chunk_size",
            "invalid size \"-100B\"",
            Some((2, 34)),
        ),
        (
            "[pull_modes.parallel_pull_unpack]\nconcurrent_download_chunk_size = \"9999999999gb\"",
            "pull_modes.parallel_pull_unpack.concurrent_download_chunk_size",
            "too large",
            Some((2, 34)),
        ),
        (
            "[pull_modes.parallel_pull_unpack.decompress_streams.gzip]\npath = \"unpigz\"",
            "pull_modes.parallel_pull_unpack.decompress_streams.gzip.path",
            "\"unpigz\" is not an absolute path",
            Some((2, 8)),
        ),
        (
            "[pull_modes.parallel_pull_unpack.decompress_streams.gzip]\nargs = [\"-d\"]",
            "pull_modes.parallel_pull_unpack.decompress_streams.gzip.path",
            "an absolute path to the decompressor executable is required",
            None,
        ),
        (
            "[pull_modes.parallel_pull_unpack.decompress_streams.zstd]\npath = \"/usr/bin/zstd;rm\"",
            "pull_modes.parallel_pull_unpack.decompress_streams.zstd.path",
            "forbidden character ';'",
            Some((2, 8)),
        ),
        (
            "max_concurrency = 0xffffffffffffffff",
            "max_concurrency",
            "integer out of range",
            Some((1, 19)),
        ),
        (
            "[blob]\nmax_retries = 9223372036854775808",
            "blob.max_retries",
            "integer out of range",
            Some((2, 15)),
        ),
    ];
    for (text, key, message_part, pos) in cases {
        match load_err(text) {
            ConfigError::Invalid {
                key: k,
                message,
                line,
                column,
                ..
            } => {
                assert_eq!(k, *key, "{text}");
                assert!(message.contains(message_part), "{text}: {message}");
                if let Some(pos) = pos {
                    assert_eq!((line, column), *pos, "{text}");
                }
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn integers_take_every_toml_spelling() {
    let c = load("max_concurrency = 0x10\nresolve_result_entry = 1_000\nmount_timeout_sec = 0o17\nfuse_metrics_emit_wait_duration_sec = 0b11\n[snapshotter]\nmin_layer_size = -9223372036854775808").config;
    assert_eq!(c.max_concurrency, 16);
    assert_eq!(c.resolve_result_entry, 1000);
    assert_eq!(c.mount_timeout_sec, Seconds(15));
    assert_eq!(c.fuse_metrics_emit_wait_duration_sec, Seconds(3));
    assert_eq!(c.snapshotter.min_layer_size, i64::MIN);
}

#[test]
fn syntax_errors_give_line_and_column() {
    match load_err("debug = true\n[fuse\nattr_timeout = 1\n") {
        ConfigError::Syntax { line, column, .. } => assert_eq!((line, column), (2, 6)),
        other => panic!("{other:?}"),
    }
    match load_err("debug = true\ndebug = false\n") {
        ConfigError::Syntax { line, .. } => assert_eq!(line, 2),
        other => panic!("{other:?}"),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn load_from_files() {
    let dir = tempfile::tempdir().unwrap();

    // No path at all: defaults.
    let loaded = Config::load(None, false).unwrap();
    assert_eq!(loaded.config, Config::default());
    assert_eq!(loaded.source, None);

    // Missing file at the default path: defaults.
    let missing = dir.path().join("missing.toml");
    let loaded = Config::load(Some(&missing), true).unwrap();
    assert_eq!(loaded.config, Config::default());
    assert_eq!(loaded.source, None);

    // Missing explicit path: an error naming it.
    let e = Config::load(Some(&missing), false).unwrap_err();
    assert!(matches!(&e, ConfigError::NotFound { path } if path == &missing));
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );

    // A directory is not a config file, even at the default path.
    assert!(matches!(
        Config::load(Some(dir.path()), true),
        Err(ConfigError::Read { .. })
    ));

    let good = write(
        dir.path(),
        "good.toml",
        b"[pull_modes.soci_v1]\nenable = true\nx = 1\n",
    );
    let loaded = Config::load(Some(&good), false).unwrap();
    assert!(loaded.config.pull_modes.soci_v1.enable);
    assert_eq!(loaded.source.as_deref(), Some(good.as_path()));
    assert_eq!(
        warning_texts(&loaded),
        ["unknown configuration key pull_modes.soci_v1.x (ignored)"]
    );

    let bad = write(dir.path(), "bad.toml", b"[fuse]\nattr_timeout = = 1\n");
    let e = Config::load(Some(&bad), true).unwrap_err();
    assert_eq!(e.position().map(|(l, _)| l), Some(2));
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "config file {}: invalid TOML at line 2",
            bad.display()
        )),
        "{text}"
    );

    let typed = write(
        dir.path(),
        "typed.toml",
        b"[background_fetch]\nfetch_period_msec = \"x\"\n",
    );
    let e = Config::load(Some(&typed), false).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "config file {}: background_fetch.fetch_period_msec: expected an integer, found a string (line 2, column 21)",
            typed.display()
        )
    );

    let binary = write(dir.path(), "binary.toml", b"debug = true\nx = \"\xff\"\n");
    match Config::load(Some(&binary), false).unwrap_err() {
        ConfigError::Syntax {
            line, column, file, ..
        } => {
            assert_eq!((line, column), (2, 6));
            assert_eq!(file.as_deref(), Some(binary.as_path()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        DEFAULT_CONFIG_PATH,
        "/etc/soci-snapshotter-grpc/config.toml"
    );
}

#[test]
fn startup_checks() {
    assert!(Config::default().check_startup().is_ok());

    let mut c = Config::default();
    c.pull_modes.parallel_pull_unpack.enable = true;
    let e = c.check_startup().unwrap_err();
    assert_eq!(e.key(), Some("pull_modes.parallel_pull_unpack.enable"));
    c.pull_modes.parallel_pull_unpack.discard_unpacked_layers = true;
    assert!(c.check_startup().is_ok());

    let mut c = Config::default();
    c.pull_modes
        .parallel_pull_unpack
        .experimental_parallel_pull_as_fallback = true;
    let e = c.check_startup().unwrap_err();
    assert_eq!(
        e.key(),
        Some("pull_modes.parallel_pull_unpack.experimental_parallel_pull_as_fallback")
    );
    c.content_store.store_type = ContentStoreType::Containerd;
    assert!(c.check_startup().is_ok());

    let dir = tempfile::tempdir().unwrap();
    let not_exec = write(dir.path(), "not-exec", b"#!/bin/sh\n");
    for (path, ok) in [
        (PathBuf::from("/bin/sh"), true),
        (dir.path().join("absent"), false),
        (dir.path().to_owned(), false),
        (not_exec, false),
    ] {
        let mut c = Config::default();
        c.pull_modes.parallel_pull_unpack.decompress_streams.insert(
            "gzip".into(),
            DecompressStream {
                path: path.clone(),
                args: vec![],
            },
        );
        let r = c.check_startup();
        assert_eq!(r.is_ok(), ok, "{path:?}: {r:?}");
        if let Err(e) = r {
            assert_eq!(
                e.key(),
                Some("pull_modes.parallel_pull_unpack.decompress_streams.gzip.path")
            );
        }
    }
}

#[test]
fn chunk_size_type() {
    assert_eq!(ChunkSize::parse("8mb").unwrap().bytes(), Some(8 << 20));
    assert_eq!(ChunkSize::parse("").unwrap(), ChunkSize::whole_layer());
    assert!(ChunkSize::parse("8 megabytes").is_err());
    assert_eq!(soci_config::parse_size("1gb"), Ok(Some(1 << 30)));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Known keys with a generator of valid values.
    fn scalar_key() -> impl Strategy<Value = (String, String, String)> {
        let int = || any::<i64>().prop_map(|i| i.to_string()).boxed();
        let small = || (-3i64..5).prop_map(|i| i.to_string()).boxed();
        let boolean = || any::<bool>().prop_map(|b| b.to_string()).boxed();
        let string = || "\\PC{0,12}".prop_map(|s| quote(&s)).boxed();
        let one_of = |v: &'static [&'static str]| {
            proptest::sample::select(v)
                .prop_map(|s| format!("{s:?}"))
                .boxed()
        };
        let keys: Vec<(&str, &str, BoxedStrategy<String>)> = vec![
            ("", "http_cache_type", string()),
            ("", "resolve_result_entry", small()),
            ("", "debug", boolean()),
            ("", "max_concurrency", small()),
            ("", "mount_timeout_sec", int()),
            ("", "metrics_network", string()),
            ("", "metadata_store", one_of(&["", "db", "db-multi"])),
            ("", "metadata_insertion_chunk_size", int()),
            ("http", "MaxRetries", small()),
            ("http", "MinWaitMsec", small()),
            ("http", "MaxWaitMsec", int()),
            ("blob", "valid_interval", small()),
            ("blob", "check_always", boolean()),
            ("blob", "max_retries", small()),
            ("blob", "max_wait_msec", small()),
            ("directory_cache", "max_cache_fds", small()),
            ("directory_cache", "direct", boolean()),
            ("fuse", "attr_timeout", small()),
            ("background_fetch", "max_queue_size", small()),
            (
                "background_fetch",
                "drop_policy",
                one_of(&["", "oldest", "newest"]),
            ),
            ("content_store", "type", one_of(&["", "soci", "containerd"])),
            ("content_store", "containerd_address", string()),
            ("prefetch", "max_concurrency", small()),
            ("pull_modes.soci_v1", "enable", boolean()),
            ("pull_modes.soci_v2", "enable", boolean()),
            (
                "pull_modes.parallel_pull_unpack",
                "concurrent_download_chunk_size",
                one_of(&["", "0", "1024", "1kb", " 8 MB ", "1.5gb", "0.1"]),
            ),
            (
                "pull_modes.parallel_pull_unpack",
                "max_concurrent_unpacks",
                int(),
            ),
            ("cri_keychain", "image_service_path", string()),
            ("resolver", "auth_client_ttl_sec", small()),
            ("snapshotter", "min_layer_size", int()),
        ];
        proptest::sample::select((0..keys.len()).collect::<Vec<_>>()).prop_flat_map(move |i| {
            let (table, key, value) = &keys[i];
            let (table, key) = (table.to_string(), key.to_string());
            value
                .clone()
                .prop_map(move |v| (table.clone(), key.clone(), v))
        })
    }

    /// A TOML basic string (printable ASCII input).
    fn quote(s: &str) -> String {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }

    /// A valid document: each table header once, keys unique within it.
    fn document() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(scalar_key(), 0..12),
            proptest::option::of(("\\PC{0,12}", "\\PC{0,10}", any::<bool>(), -2i64..100)),
        )
            .prop_map(|(entries, mirror)| {
                let mut tables: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> =
                    Default::default();
                for (table, key, value) in entries {
                    tables.entry(table).or_default().insert(key, value);
                }
                let mut out = String::new();
                if let Some(top) = tables.remove("") {
                    for (k, v) in top {
                        out.push_str(&format!("{k} = {v}\n"));
                    }
                }
                for (table, keys) in tables {
                    out.push_str(&format!("[{table}]\n"));
                    for (k, v) in keys {
                        out.push_str(&format!("{k} = {v}\n"));
                    }
                }
                if let Some((registry, host, insecure, timeout)) = mirror {
                    out.push_str(&format!(
                        "[[resolver.host.{}.mirrors]]\nhost = {}\ninsecure = {insecure}\nrequest_timeout_sec = {timeout}\n",
                        quote(&registry),
                        quote(&host),
                    ));
                }
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
            let _ = Config::from_toml_str(&text);
        }

        #[test]
        fn never_panics_on_toml_like_text(
            text in "(\\[[a-z_.\"]{0,24}\\]\n|[a-zA-Z_]{1,24} = (-?[0-9]{1,20}|\"[ -~]{0,8}\"|true|\\[\\]|\\{\\}|[0-9.e]{1,6})\n){0,12}"
        ) {
            let _ = Config::from_toml_str(&text);
        }

        #[test]
        fn never_panics_on_known_keys_with_random_values(
            entries in proptest::collection::vec(
                (scalar_key(), "(-?[0-9]{1,25}|\"[ -~]{0,8}\"|true|\\[1\\]|\\{a=1\\}|1\\.5|1979-05-27)"),
                0..8,
            )
        ) {
            let mut text = String::new();
            for ((table, key, _), value) in entries {
                if table.is_empty() {
                    text.push_str(&format!("{key} = {value}\n"));
                } else {
                    text.push_str(&format!("{table}.{key} = {value}\n"));
                }
            }
            let _ = Config::from_toml_str(&text);
        }

        #[test]
        fn valid_documents_round_trip_through_dump(text in document()) {
            let first = Config::from_toml_str(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert!(first.warnings.is_empty(), "{:?}", first.warnings);
            let dumped = first.config.dump_toml();
            let second = Config::from_toml_str(&dumped).map_err(|e| TestCaseError::fail(format!("{e}\n{dumped}")))?;
            prop_assert!(second.warnings.is_empty());
            prop_assert_eq!(&second.config, &first.config);
            prop_assert_eq!(second.config.dump_toml(), dumped);
        }

        #[test]
        fn size_parser_never_panics(text in "\\PC{0,30}") {
            let _ = soci_config::parse_size(&text);
        }

        #[test]
        fn size_parser_accepts_integers_with_units(n in 0u64..(1 << 32), unit in "(|b|B|kb|KB|Mb|mb|gB|GB)", pad in "[ \t]{0,2}") {
            let mult = match unit.to_lowercase().as_str() {
                "" | "b" => 1,
                "kb" => 1 << 10,
                "mb" => 1 << 20,
                _ => 1 << 30,
            };
            let want = n * mult;
            let got = soci_config::parse_size(&format!("{pad}{n}{pad}{unit}{pad}")).unwrap();
            prop_assert_eq!(got, (want != 0).then_some(want));
        }
    }
}

#[test]
fn dump_escapes_awkward_strings() {
    let mut c = Config {
        metrics_address: "a\"b\\c\nd\te\u{1}f'''g".into(),
        ..Config::default()
    };
    c.kubeconfig_keychain.kubeconfig_path = "/päth/with spaces/kube'config".into();
    c.pull_modes.parallel_pull_unpack.decompress_streams.insert(
        "gzip".into(),
        DecompressStream {
            path: "/opt/my tools/unpigz".into(),
            args: vec!["-d".into(), "\"quoted\"".into(), String::new()],
        },
    );
    c.resolver
        .host
        .entry("we\"ird.host:5000".into())
        .or_default()
        .mirrors
        .push(MirrorConfig {
            host: "[::1]:5000".into(),
            insecure: true,
            request_timeout_sec: Seconds(-1),
        });
    c.resolver.host.entry(String::new()).or_default();
    let loaded = load(&c.dump_toml());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config, c);
}
