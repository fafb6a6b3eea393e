//! [`SociFs`]: the snapshotter's remote-layer implementation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soci_artifacts::{ArtifactsDb, SociStore};
use soci_content::BlobSource;
use soci_content::registry::{
    BlockingRuntime, ImageReference, RegistryClient, RegistryOptions, RegistryRangeReader,
};
use soci_format::Digest;
use soci_format::json::PrefetchArtifact;
use soci_format::zinfo::SpanId;
use soci_layerfs::{LayerFs, MountHandle, MountOptions};
use soci_snapshotter::{RemoteError, RemoteLayers, RemoteOutcome, RemotePrepare, RemoteSnapshot};
use soci_spans::{
    BackgroundFetcher, DiskSpanCache, SpanCache as _, SpanManager, SpanManagerConfig,
    SpanSource as _,
};
use tracing::{info, warn};

use crate::checks::{self, LayerInput, OpenedLayer};
use crate::discovery::{Discovery, ImageArtifacts};
use crate::labels;
use crate::local::{LocalLayers, LocalRequest};
use crate::mirrors::Mirrors;
use crate::modes::{Mode, ModeLog};

/// Settings of [`SociFs`].
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// The daemon's root directory (`--root`).
    pub root: PathBuf,
    /// The parsed `config.toml`.
    pub config: soci_config::Config,
    /// How to reach registries.
    pub registry: RegistryOptions,
    /// FUSE worker threads per mounted layer.
    pub fuse_threads: usize,
}

struct Mounted {
    handle: MountHandle,
    spans: Arc<SpanManager>,
}

struct Inner {
    opts: FsOptions,
    store: SociStore,
    db: ArtifactsDb,
    /// Used on the daemon's runtime (discovery, artifact fetch).
    client: RegistryClient,
    /// Used only through `blocking` (span fetches from FUSE threads): a client's
    /// pooled connections belong to the runtime that opened them.
    span_client: RegistryClient,
    /// Mirrors of layer blob reads, per registry.
    mirrors: Mirrors,
    blocking: Arc<BlockingRuntime>,
    cache: Arc<DiskSpanCache>,
    images: tokio::sync::Mutex<HashMap<String, Arc<ImageArtifacts>>>,
    mounts: Mutex<HashMap<PathBuf, Mounted>>,
    background: Option<BackgroundFetcher>,
    local: LocalLayers,
    modes: ModeLog,
    /// Bounds the layers prefetching at once (`[prefetch] max_concurrency`;
    /// none when it is 0).
    prefetch_slots: Option<tokio::sync::Semaphore>,
}

/// Why a layer is not mounted lazily.
struct Decline {
    reason: String,
    /// The image has a SOCI index (or the layer is below `min_layer_size`):
    /// the daemon makes a local snapshot instead of deferring.
    local: bool,
}

impl Decline {
    fn defer(reason: String) -> Option<Decline> {
        Some(Decline {
            reason,
            local: false,
        })
    }
    fn local(reason: String) -> Option<Decline> {
        Some(Decline {
            reason,
            local: true,
        })
    }
}

/// Lazily loaded layers for the snapshotter (implements [`RemoteLayers`]).
#[derive(Clone)]
pub struct SociFs {
    inner: Arc<Inner>,
}

/// Errors of mounting a layer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct FsError(String);

fn err(msg: impl Into<String>) -> RemoteError {
    Box::new(FsError(msg.into()))
}

impl SociFs {
    /// Open the stores under `opts.root` and set up the registry client.
    pub fn new(opts: FsOptions) -> Result<SociFs, RemoteError> {
        std::fs::create_dir_all(&opts.root)
            .map_err(|e| err(format!("create {}: {e}", opts.root.display())))?;
        let store = SociStore::open(&soci_artifacts::content_store_path(&opts.root))?;
        let db = ArtifactsDb::open(&soci_artifacts::artifacts_db_path(&opts.root))?;
        let client = RegistryClient::new(opts.registry.clone())?;
        let span_client = RegistryClient::new(opts.registry.clone())?;
        let mirrors = Mirrors::new(&opts.config.resolver, &opts.registry)?;
        let blocking = Arc::new(BlockingRuntime::new()?);
        let cache = Arc::new(DiskSpanCache::new(
            opts.root.join("soci").join("spancache"),
        )?);
        let scratch = opts.root.join("soci").join("local-download");
        let local = LocalLayers::new(scratch.clone())
            .map_err(|e| err(format!("prepare {}: {e}", scratch.display())))?;
        let bg = &opts.config.background_fetch;
        let background = (!bg.disable).then(|| {
            BackgroundFetcher::new(soci_spans::BackgroundFetchConfig {
                fetch_period: bg
                    .fetch_period_msec
                    .duration()
                    .unwrap_or(Duration::from_millis(500)),
                silence_period: bg
                    .silence_period_msec
                    .duration()
                    .unwrap_or(Duration::from_secs(30)),
                max_queue_size: if bg.max_queue_size < 0 {
                    usize::MAX
                } else {
                    bg.max_queue_size as usize
                },
                drop_policy: match bg.drop_policy {
                    soci_config::DropPolicy::Oldest => soci_spans::DropPolicy::Oldest,
                    _ => soci_spans::DropPolicy::Newest,
                },
                workers: 1,
            })
        });
        let prefetch_slots = usize::try_from(opts.config.prefetch.max_concurrency)
            .ok()
            .filter(|&n| n > 0)
            .map(tokio::sync::Semaphore::new);
        Ok(SociFs {
            inner: Arc::new(Inner {
                prefetch_slots,
                opts,
                store,
                db,
                client,
                span_client,
                mirrors,
                blocking,
                cache,
                images: tokio::sync::Mutex::new(HashMap::new()),
                mounts: Mutex::new(HashMap::new()),
                background,
                local,
                modes: ModeLog::default(),
            }),
        })
    }

    /// Bytes fetched and total size of the layer mounted at `mountpoint`.
    pub fn layer_progress(&self, mountpoint: &Path) -> Option<(u64, u64)> {
        let mounts = self.inner.mounts.lock().expect("poisoned");
        mounts
            .get(mountpoint)
            .map(|m| (m.spans.fetched_size(), m.spans.state().size))
    }

    /// Fetched and total compressed size of every mounted layer (for metrics).
    pub fn layer_sizes(&self) -> Vec<soci_metrics::LayerSize> {
        let mounts = self.inner.mounts.lock().expect("poisoned");
        mounts
            .iter()
            .map(|(mountpoint, m)| {
                let s = m.spans.state();
                soci_metrics::LayerSize {
                    digest: s.digest.to_string(),
                    mountpoint: mountpoint.display().to_string(),
                    fetched: s.fetched_size,
                    size: s.size,
                }
            })
            .collect()
    }

    fn span_config(&self) -> SpanManagerConfig {
        let blob = &self.inner.opts.config.blob;
        SpanManagerConfig {
            max_retries: blob.max_retries.clamp(0, 100) as u32,
            min_wait: blob
                .min_wait_msec
                .duration()
                .unwrap_or(Duration::from_millis(30)),
            max_wait: blob
                .max_wait_msec
                .duration()
                .unwrap_or(Duration::from_secs(300)),
            max_span_verification_retries: blob.max_span_verification_retries.clamp(0, 100) as u32,
            ..SpanManagerConfig::default()
        }
    }

    async fn artifacts(
        &self,
        image_ref: &ImageReference,
        manifest: &Digest,
        explicit: Option<Digest>,
    ) -> Result<Arc<ImageArtifacts>, String> {
        let key = manifest.to_string();
        let mut images = self.inner.images.lock().await;
        if let Some(a) = images.get(&key) {
            return Ok(a.clone());
        }
        let modes = &self.inner.opts.config.pull_modes;
        let found = Discovery {
            client: &self.inner.client,
            repo: image_ref.repository(),
            manifest,
            explicit,
            v1: modes.soci_v1.enable,
            v2: modes.soci_v2.enable,
            prefetch: self.inner.opts.config.prefetch.enable,
            store: &self.inner.store,
            db: &self.inner.db,
        }
        .run()
        .await
        .map_err(|e| e.0)?;
        let found = Arc::new(found);
        images.insert(key, found.clone());
        Ok(found)
    }

    /// Mount the layer described by `labels` at `mountpoint`, or say why not.
    async fn mount_layer(
        &self,
        labels: &soci_snapshotter::Labels,
        mountpoint: &Path,
    ) -> Result<Option<Decline>, RemoteError> {
        let get = |k: &str| labels.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let (Some(image_ref), Some(manifest), Some(layer)) = (
            get(labels::IMAGE_REF),
            get(labels::MANIFEST_DIGEST),
            get(labels::LAYER_DIGEST),
        ) else {
            return Ok(Decline::defer(format!(
                "the prepare request lacks the {}, {} or {} label",
                labels::IMAGE_REF,
                labels::MANIFEST_DIGEST,
                labels::LAYER_DIGEST
            )));
        };
        let min = self.inner.opts.config.snapshotter.min_layer_size;
        if min > 0
            && let Some(size) = get(labels::LAYER_SIZE).and_then(|s| s.parse::<i64>().ok())
            && size < min
        {
            return Ok(Decline::local(format!(
                "layer size {size} is below [snapshotter] min_layer_size {min}"
            )));
        }
        let image_ref: ImageReference = image_ref
            .parse()
            .map_err(|e| err(format!("invalid image reference {image_ref:?}: {e}")))?;
        let manifest: Digest = manifest
            .parse()
            .map_err(|e| err(format!("invalid manifest digest label: {e}")))?;
        let layer: Digest = layer
            .parse()
            .map_err(|e| err(format!("invalid layer digest label: {e}")))?;
        let explicit = match get(labels::INDEX_DIGEST) {
            Some(d) => Some(
                d.parse::<Digest>()
                    .map_err(|e| err(format!("invalid {} label: {e}", labels::INDEX_DIGEST)))?,
            ),
            None => None,
        };
        let artifacts = match self.artifacts(&image_ref, &manifest, explicit).await {
            Ok(a) => a,
            Err(reason) => return Ok(Decline::defer(reason)),
        };
        let Some(ztoc_ref) = artifacts.ztocs.get(&layer.to_string()).cloned() else {
            return Ok(Decline::local(format!(
                "SOCI index {} has no zTOC for layer {layer} (a small or unsupported layer)",
                artifacts.index_digest
            )));
        };
        let this = self.clone();
        let mountpoint = mountpoint.to_path_buf();
        // The image manifest's size wins over a label: the label comes from the caller.
        let layer_size = artifacts
            .layer_sizes
            .get(&layer.to_string())
            .copied()
            .or_else(|| get(labels::LAYER_SIZE).and_then(|s| s.parse::<u64>().ok()));
        let index_digest = artifacts.index_digest.clone();
        let prefetch = artifacts.prefetch.get(&layer.to_string()).cloned();
        // Held until the layer's prefetch is done.
        let _prefetch_slot = match (&prefetch, &self.inner.prefetch_slots) {
            (Some(_), Some(slots)) => Some(
                slots
                    .acquire()
                    .await
                    .map_err(|e| err(format!("prefetch slots closed: {e}")))?,
            ),
            _ => None,
        };
        tokio::task::spawn_blocking(move || -> Result<(), RemoteError> {
            let inner = &this.inner;
            let bytes = inner
                .store
                .read_blob(&ztoc_ref.digest, checks::MAX_ZTOC_SIZE, "zTOC")?;
            let reader = inner.mirrors.reader(
                image_ref.repository(),
                RegistryRangeReader::new(
                    inner.span_client.clone(),
                    image_ref.repository().clone(),
                    inner.blocking.clone(),
                ),
                &inner.blocking,
            );
            if let Some(size) = layer_size {
                reader.set_size(layer.clone(), size);
            }
            let OpenedLayer {
                spans,
                tree,
                checks,
            } = checks::open_layer(
                LayerInput {
                    ztoc: bytes,
                    layer: &layer,
                    layer_size,
                    disable_xattrs: ztoc_ref.disable_xattrs,
                    verify: !inner.opts.config.disable_verification,
                },
                Arc::new(reader),
                inner.cache.clone(),
                this.span_config(),
            )
            .map_err(|e| err(format!("zTOC {}: {e}", ztoc_ref.digest)))?;
            if let Some(artifact) = &prefetch {
                prefetch_layer(&inner.store, artifact, &spans);
            }
            let state_spans = spans.clone();
            let state: soci_layerfs::StateFn = Arc::new(move || {
                let s = state_spans.state();
                soci_layerfs::LayerState {
                    error: None,
                    digest: s.digest.to_string(),
                    size: s.size,
                    fetched_size: s.fetched_size,
                    fetched_percent: s.fetched_percent,
                }
            });
            let fuse = &inner.opts.config.fuse;
            let fs_opts = soci_layerfs::FsOptions {
                attr_timeout: fuse
                    .attr_timeout
                    .duration()
                    .unwrap_or(Duration::from_secs(1)),
                entry_timeout: fuse
                    .entry_timeout
                    .duration()
                    .unwrap_or(Duration::from_secs(1)),
                negative_timeout: fuse
                    .negative_timeout
                    .duration()
                    .unwrap_or(Duration::from_secs(1)),
                xattrs_disabled: ztoc_ref.disable_xattrs,
            };
            let mut fs = LayerFs::new(
                tree,
                Arc::new(SpansSource(spans.clone())),
                &layer.to_string(),
                state,
                fs_opts,
            );
            if let Some(checks) = checks {
                fs = fs.with_file_checks(checks);
            }
            let handle = soci_layerfs::mount(
                fs,
                &mountpoint,
                &MountOptions {
                    n_threads: inner.opts.fuse_threads,
                },
            )
            .map_err(|e| {
                err(format!(
                    "mount layer {layer} at {}: {e}",
                    mountpoint.display()
                ))
            })?;
            if let Some(bg) = &inner.background {
                bg.silence();
                bg.add(&spans);
            }
            inner
                .mounts
                .lock()
                .expect("poisoned")
                .insert(mountpoint, Mounted { handle, spans });
            Ok(())
        })
        .await
        .map_err(|e| err(format!("mount task failed: {e}")))??;
        info!(layer = %labels.get(labels::LAYER_DIGEST).cloned().unwrap_or_default(), index = %index_digest, "remote-snapshot-prepared: layer mounted lazily");
        Ok(None)
    }
}

/// Fetch the spans the layer's prefetch artifact lists (`[prefetch] enable`),
/// before the layer is mounted. A prefetch that fails is logged and skipped:
/// the spans are then fetched when they are read.
fn prefetch_layer(store: &SociStore, artifact: &Digest, spans: &SpanManager) {
    let started = std::time::Instant::now();
    let layer = spans.state().digest.to_string();
    let parsed = store
        .read_blob(artifact, checks::MAX_PREFETCH_SIZE, "prefetch artifact")
        .map_err(|e| e.to_string())
        .and_then(|b| PrefetchArtifact::unmarshal(&b).map_err(|e| e.to_string()));
    let ranges = match parsed {
        Ok(a) => a.prefetch_spans,
        Err(e) => {
            warn!(%layer, %artifact, error = %e, "prefetch artifact unusable; the layer is mounted without prefetch");
            return;
        }
    };
    let mut fetched = 0u64;
    for r in ranges {
        let (Ok(first), Ok(last)) = (SpanId::try_from(r.start_span), SpanId::try_from(r.end_span))
        else {
            warn!(%layer, %artifact, start = r.start_span, end = r.end_span, "prefetch range with a negative span id skipped");
            continue;
        };
        match spans.fetch_spans(first..=last) {
            Ok(()) => fetched += u64::from(last.saturating_sub(first)) + u64::from(first <= last),
            Err(e) => {
                warn!(%layer, %artifact, first, last, error = %e, "prefetching spans failed; they are fetched when read");
            }
        }
    }
    info!(%layer, %artifact, spans = fetched, elapsed_ms = started.elapsed().as_millis() as u64, "prefetched the spans of the layer's prefetch artifact");
}

/// The span manager as the filesystem's byte source.
struct SpansSource(Arc<SpanManager>);

impl soci_layerfs::SpanSource for SpansSource {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, std::io::Error> {
        self.0.read_at(offset, buf).map_err(std::io::Error::from)
    }
    fn size(&self) -> u64 {
        self.0.size()
    }
}

impl SociFs {
    /// Labels stored on a snapshot this daemon provided.
    fn snapshot_labels(request: &RemotePrepare, lazy: bool) -> soci_snapshotter::Labels {
        let mut out = soci_snapshotter::Labels::new();
        if lazy {
            out.insert(labels::HAS_INDEX.to_string(), "true".to_string());
        }
        for k in [
            labels::IMAGE_REF,
            labels::MANIFEST_DIGEST,
            labels::LAYER_DIGEST,
            labels::INDEX_DIGEST,
            labels::LAYER_SIZE,
        ] {
            if let Some(v) = request.labels.get(k) {
                out.insert(k.to_string(), v.clone());
            }
        }
        out
    }

    /// Download and unpack the layer of `request` into its mountpoint.
    async fn local_snapshot(&self, request: &RemotePrepare) -> Result<(), String> {
        let get = |k: &str| {
            request
                .labels
                .get(k)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("the prepare request lacks the {k} label"))
        };
        let image_ref: ImageReference = get(labels::IMAGE_REF)?
            .parse()
            .map_err(|e| format!("invalid image reference: {e}"))?;
        let manifest: Digest = get(labels::MANIFEST_DIGEST)?
            .parse()
            .map_err(|e| format!("invalid manifest digest label: {e}"))?;
        let layer: Digest = get(labels::LAYER_DIGEST)?
            .parse()
            .map_err(|e| format!("invalid layer digest label: {e}"))?;
        let inner = &self.inner;
        // Index discovery fetched the image manifest already.
        let known = inner
            .images
            .lock()
            .await
            .get(&manifest.to_string())
            .cloned();
        inner
            .local
            .prepare(&LocalRequest {
                client: &inner.client,
                store: &inner.store,
                repo: image_ref.repository(),
                manifest: &manifest,
                known_manifest: known.as_ref().map(|a| &a.image),
                layer: &layer,
                mountpoint: &request.mountpoint,
                parent_dirs: &request.parent_dirs,
            })
            .await
            .map_err(|e| e.to_string())
    }

    /// Prepare a layer: mount it lazily, else unpack it locally, else defer it.
    async fn prepare_layer(&self, request: &RemotePrepare) -> Result<RemoteOutcome, RemoteError> {
        let get = |k: &str| request.labels.get(k).cloned().unwrap_or_default();
        let (image, layer) = (get(labels::IMAGE_REF), get(labels::LAYER_DIGEST));
        let decline = match self.mount_layer(&request.labels, &request.mountpoint).await {
            Ok(None) => {
                self.inner.modes.record(&request.labels, Mode::Lazy, "");
                return Ok(RemoteOutcome::Mounted {
                    labels: Self::snapshot_labels(request, true),
                });
            }
            Ok(Some(d)) => d,
            Err(e) => {
                soci_metrics::inc_operation(soci_metrics::op::FUSE_MOUNT_FAILURE_COUNT, "");
                Decline {
                    reason: format!("lazy mount failed: {e}"),
                    local: true,
                }
            }
        };
        let reason = decline.reason;
        if !decline.local {
            info!(key = %request.key, %image, %layer, %reason, "defer-snapshot-runtime: containerd pulls this layer");
            self.inner
                .modes
                .record(&request.labels, Mode::Deferred, &reason);
            return Ok(RemoteOutcome::Defer);
        }
        match self.local_snapshot(request).await {
            Ok(()) => {
                info!(key = %request.key, %image, %layer, %reason, "local-snapshot-prepared: the daemon downloaded and unpacked the layer");
                self.inner
                    .modes
                    .record(&request.labels, Mode::Local, &reason);
                Ok(RemoteOutcome::LocalDone {
                    labels: Self::snapshot_labels(request, false),
                })
            }
            Err(e) => {
                let reason = format!("{reason}; the local snapshot failed: {e}");
                warn!(key = %request.key, %image, %layer, %reason, "defer-snapshot-runtime: containerd pulls this layer");
                self.inner
                    .modes
                    .record(&request.labels, Mode::Deferred, &reason);
                Ok(RemoteOutcome::Defer)
            }
        }
    }
}

impl RemoteLayers for SociFs {
    async fn prepare_remote(&self, request: &RemotePrepare) -> Result<RemoteOutcome, RemoteError> {
        let started = std::time::Instant::now();
        let outcome = self.prepare_layer(request).await;
        if let Ok(o) = &outcome {
            crate::metrics_server::record_prepare(request, o);
            if let RemoteOutcome::Mounted { .. } = o {
                let layer = request.labels.get(labels::LAYER_DIGEST);
                soci_metrics::observe_ms(
                    soci_metrics::op::MOUNT,
                    layer.map(String::as_str).unwrap_or_default(),
                    started.elapsed(),
                );
            }
        }
        outcome
    }

    async fn check(&self, snapshot: &RemoteSnapshot) -> Result<(), RemoteError> {
        if self
            .inner
            .mounts
            .lock()
            .expect("poisoned")
            .contains_key(&snapshot.mountpoint)
        {
            Ok(())
        } else {
            Err(err(format!(
                "layer of snapshot {} is not mounted at {}",
                snapshot.name,
                snapshot.mountpoint.display()
            )))
        }
    }

    async fn restore(&self, snapshot: &RemoteSnapshot) -> Result<(), RemoteError> {
        match self
            .mount_layer(&snapshot.labels, &snapshot.mountpoint)
            .await?
        {
            None => Ok(()),
            Some(d) => Err(err(format!(
                "cannot restore snapshot {}: {}",
                snapshot.name, d.reason
            ))),
        }
    }

    async fn unmount(&self, mountpoint: &Path) -> Result<(), RemoteError> {
        let m = self
            .inner
            .mounts
            .lock()
            .expect("poisoned")
            .remove(mountpoint);
        if let Some(m) = m {
            tokio::task::spawn_blocking(move || m.handle.unmount())
                .await
                .map_err(|e| err(format!("unmount task failed: {e}")))?
                .map_err(|e| err(format!("unmount {}: {e}", mountpoint.display())))?;
        }
        Ok(())
    }

    async fn remove(&self, mountpoint: &Path) -> Result<(), RemoteError> {
        let m = self
            .inner
            .mounts
            .lock()
            .expect("poisoned")
            .remove(mountpoint);
        let Some(m) = m else {
            return Ok(());
        };
        let layer = m.spans.layer().clone();
        let Mounted { handle, spans } = m;
        drop(spans);
        tokio::task::spawn_blocking(move || handle.unmount())
            .await
            .map_err(|e| err(format!("unmount task failed: {e}")))?
            .map_err(|e| err(format!("unmount {}: {e}", mountpoint.display())))?;
        let shared = self
            .inner
            .mounts
            .lock()
            .expect("poisoned")
            .values()
            .any(|o| o.spans.layer() == &layer);
        if shared {
            info!(%layer, path = %mountpoint.display(), "removed a lazily loaded layer; its span cache stays (another snapshot uses the layer)");
            return Ok(());
        }
        let cache = self.inner.cache.clone();
        let l = layer.clone();
        tokio::task::spawn_blocking(move || cache.remove_layer(&l))
            .await
            .map_err(|e| err(format!("cache removal task failed: {e}")))?
            .map_err(|e| err(format!("delete the span cache of layer {layer}: {e}")))?;
        info!(%layer, path = %mountpoint.display(), "removed a lazily loaded layer and its span cache");
        Ok(())
    }
}
