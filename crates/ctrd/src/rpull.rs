//! `rpull`: pull an image through containerd so that each layer is prepared
//! on a (remote) snapshotter with the labels it needs to load the layer
//! lazily — what the CRI plugin or `nerdctl --snapshotter soci` do, and plain
//! `ctr images pull` does not.
//!
//! Steps:
//!
//! 1. Resolve the reference in the registry, pick the platform's manifest,
//!    and store index, manifest and config in containerd's content store with
//!    the GC labels that tie them together. Layers are not fetched up front.
//!    Everything is written under a lease, so containerd's garbage collector
//!    leaves it alone until the image record holds it.
//! 2. For each layer, bottom up: `Prepare` a snapshot named after its chain ID
//!    with the image/manifest/layer labels. `AlreadyExists` means the
//!    snapshotter provided the layer (lazily or by downloading it itself).
//!    Mounts mean it deferred: the layer is downloaded into the content store,
//!    applied with containerd's Diff service and committed under its chain ID.
//! 3. Label the config with the top chain ID for the snapshotter (containerd's
//!    "unpacked on this snapshotter" mark, which also keeps the snapshots
//!    alive) and create or update the image record.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use soci_content::registry::{ImageReference, RegistryClient, Repository};
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index, Manifest, Platform};
use tracing::{debug, info, warn};

use crate::chain::chain_id;
use crate::client::{Containerd, Lease};
use crate::error::{CtrdError, Result};
use crate::image::{ImageConfig, image_name, offered_platforms, select_manifest};
use crate::labels::{
    self, ImageLabels, LayerRef, distribution_source_label, index_gc_labels, manifest_gc_labels,
    snapshot_gc_label,
};
use crate::snapshots::Prepared;

/// The snapshotter `rpull` prepares layers on unless told otherwise.
pub const DEFAULT_SNAPSHOTTER: &str = "soci";

/// How an interrupted pull's lease lives before containerd drops it.
pub const DEFAULT_LEASE_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// How many fresh keys to try when a `Prepare` collides with an existing key.
const PREPARE_ATTEMPTS: usize = 3;

/// What to pull and where to unpack it.
#[derive(Debug, Clone)]
pub struct RpullOptions {
    /// containerd snapshotter to prepare layers on.
    pub snapshotter: String,
    /// Platform whose manifest is pulled when the reference is an index.
    pub platform: Platform,
    /// A SOCI index to use, passed to the snapshotter as a label.
    pub soci_index_digest: Option<Digest>,
    /// Expiry of the lease that protects the pull while it runs.
    pub lease_expiry: Duration,
    /// Give up after this long; the lease is still released, so containerd
    /// collects what was written.
    pub timeout: Option<Duration>,
}

impl Default for RpullOptions {
    fn default() -> Self {
        RpullOptions {
            snapshotter: DEFAULT_SNAPSHOTTER.to_string(),
            platform: Platform::host_default(),
            soci_index_digest: None,
            lease_expiry: DEFAULT_LEASE_EXPIRY,
            timeout: None,
        }
    }
}

/// How a layer's snapshot came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerOutcome {
    /// The snapshot existed before this pull.
    Present,
    /// The snapshotter mounted the layer lazily (a remote snapshot).
    Lazy,
    /// The snapshotter provided the layer itself (it downloaded it).
    Snapshotter,
    /// The snapshotter deferred: the layer was applied through containerd.
    Pulled {
        /// Bytes downloaded from the registry (0 when containerd's content
        /// store already had the blob).
        downloaded: u64,
    },
}

impl LayerOutcome {
    /// A short word for summaries: `present`, `lazy`, `local`, `pulled`.
    pub fn word(self) -> &'static str {
        match self {
            LayerOutcome::Present => "present",
            LayerOutcome::Lazy => "lazy",
            LayerOutcome::Snapshotter => "local",
            LayerOutcome::Pulled { .. } => "pulled",
        }
    }
}

/// One unpacked layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerReport {
    /// Position in the manifest (0-based, bottom first).
    pub index: usize,
    /// The layer blob's digest.
    pub digest: String,
    /// The layer blob's size.
    pub size: i64,
    /// The snapshot it is committed as.
    pub chain_id: Digest,
    /// How it got there.
    pub outcome: LayerOutcome,
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpullReport {
    /// The image's name in containerd.
    pub name: String,
    /// What the reference resolved to (index or manifest): the image's target.
    pub target: Descriptor,
    /// The platform manifest.
    pub manifest: Descriptor,
    /// The image config.
    pub config: Descriptor,
    /// The snapshotter the layers are on.
    pub snapshotter: String,
    /// The top snapshot (the chain ID of all layers).
    pub chain_id: Digest,
    /// Every layer, bottom first.
    pub layers: Vec<LayerReport>,
}

impl RpullReport {
    /// How many layers ended with `word` ([`LayerOutcome::word`]).
    pub fn count(&self, word: &str) -> usize {
        self.layers
            .iter()
            .filter(|l| l.outcome.word() == word)
            .count()
    }

    /// Layer bytes downloaded through containerd.
    pub fn downloaded(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| match l.outcome {
                LayerOutcome::Pulled { downloaded } => downloaded,
                _ => 0,
            })
            .sum()
    }
}

/// Progress of a pull.
#[derive(Debug)]
pub enum RpullEvent<'a> {
    /// The manifest and config are stored; unpacking starts.
    Resolved {
        /// The image's name in containerd.
        name: &'a str,
        /// The platform manifest.
        manifest: &'a Descriptor,
        /// Number of layers.
        layers: usize,
    },
    /// A layer is done.
    Layer {
        /// The layer.
        layer: &'a LayerReport,
        /// Number of layers.
        of: usize,
    },
}

/// Receiver of [`RpullEvent`]s.
pub trait RpullEvents: Sync {
    /// Called as the pull progresses.
    fn event(&self, event: &RpullEvent<'_>);
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl RpullEvents for NoEvents {
    fn event(&self, _event: &RpullEvent<'_>) {}
}

/// Pull `reference` from the registry through `ctrd` (see the module docs).
pub async fn rpull(
    ctrd: &Containerd,
    registry: &RegistryClient,
    reference: &ImageReference,
    options: &RpullOptions,
    events: &dyn RpullEvents,
) -> Result<RpullReport> {
    let name = image_name(reference);
    let lease_id = format!("soci-rpull-{}", unique());
    let lease = ctrd
        .create_lease(&lease_id, options.lease_expiry, BTreeMap::new())
        .await?;
    debug!(lease = %lease.id, image = %name, "created pull lease");
    let pull = Pull {
        ctrd: ctrd.with_lease(&lease)?,
        registry,
        repo: reference.repository(),
        name: &name,
        options,
        events,
    };
    let pulled = match options.timeout {
        None => pull.run(reference).await,
        Some(limit) => tokio::time::timeout(limit, pull.run(reference))
            .await
            .unwrap_or_else(|_| {
                Err(CtrdError::Timeout {
                    image: name.clone(),
                    limit,
                })
            }),
    };
    release(ctrd, &lease).await;
    pulled
}

async fn release(ctrd: &Containerd, lease: &Lease) {
    if let Err(e) = ctrd.delete_lease(lease).await {
        warn!(lease = %lease.id, error = %e, "could not delete the pull lease; it expires on its own");
    }
}

struct Pull<'a> {
    ctrd: Containerd,
    registry: &'a RegistryClient,
    repo: &'a Repository,
    name: &'a str,
    options: &'a RpullOptions,
    events: &'a dyn RpullEvents,
}

impl Pull<'_> {
    fn image_error(&self, reason: impl Into<String>) -> CtrdError {
        CtrdError::Image {
            image: self.name.to_string(),
            reason: reason.into(),
        }
    }

    fn registry_error(&self, what: String) -> impl FnOnce(soci_content::ContentError) -> CtrdError {
        move |error| CtrdError::Registry {
            what,
            error: Box::new(error),
        }
    }

    fn source_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([distribution_source_label(
            self.repo.registry(),
            self.repo.name(),
        )])
    }

    async fn run(&self, reference: &ImageReference) -> Result<RpullReport> {
        let target = self
            .registry
            .resolve(reference)
            .await
            .map_err(self.registry_error(format!("resolving {}", self.name)))?;
        let root = self
            .registry
            .get_manifest(self.repo, &target.digest)
            .await
            .map_err(self.registry_error(format!("fetching {} ({})", self.name, target.digest)))?;

        let (index, manifest_desc, manifest_bytes) = if json::is_index_type(&target.media_type) {
            let index = Index::from_json(&root.bytes).map_err(|e| {
                self.image_error(format!("index {} does not parse: {e}", target.digest))
            })?;
            let chosen = select_manifest(&index, &self.options.platform)
                .ok_or_else(|| {
                    self.image_error(format!(
                        "no image manifest for platform {} (the index offers: {}); pick one with --platform",
                        self.options.platform.format(),
                        offered_platforms(&index).join(", ")
                    ))
                })?
                .clone();
            let m = self
                .registry
                .get_manifest(self.repo, &chosen.digest)
                .await
                .map_err(self.registry_error(format!(
                    "fetching the {} manifest {} of {}",
                    self.options.platform.format(),
                    chosen.digest,
                    self.name
                )))?;
            (Some((index, root.bytes)), chosen, m.bytes)
        } else if json::is_manifest_type(&target.media_type) {
            (None, target.clone(), root.bytes)
        } else {
            return Err(self.image_error(format!(
                "{} has media type {}, which is neither an image manifest nor an index",
                target.digest, target.media_type
            )));
        };

        let manifest = Manifest::from_json(&manifest_bytes).map_err(|e| {
            self.image_error(format!(
                "manifest {} does not parse: {e}",
                manifest_desc.digest
            ))
        })?;
        let layers = manifest.layers().to_vec();
        if layers.is_empty() {
            return Err(self.image_error(format!(
                "manifest {} has no layers: there is nothing to unpack",
                manifest_desc.digest
            )));
        }
        if let Some(bad) = layers.iter().find(|l| !json::is_layer_type(&l.media_type)) {
            return Err(self.image_error(format!(
                "layer {} has media type {:?}, which containerd cannot unpack",
                bad.digest, bad.media_type
            )));
        }
        let config_desc = manifest.config.clone();
        let config_digest = config_desc.parsed_digest().map_err(|_| {
            self.image_error(format!(
                "config digest {:?} is not a sha256 digest",
                config_desc.digest
            ))
        })?;
        let config_bytes = self
            .registry
            .get_blob(self.repo, &config_digest)
            .await
            .map_err(self.registry_error(format!(
                "fetching the config {config_digest} of {}",
                self.name
            )))?;
        let config = ImageConfig::parse(&config_bytes).map_err(|e| self.image_error(e))?;
        if config.diff_ids.len() != layers.len() {
            return Err(self.image_error(format!(
                "the manifest has {} layers but the config lists {} diff IDs",
                layers.len(),
                config.diff_ids.len()
            )));
        }

        // Children first, each with the labels that reference its own children.
        let source = self.source_labels();
        let layer_refs: Vec<LayerRef> = layers
            .iter()
            .map(|l| LayerRef {
                digest: l.digest.clone(),
                size: l.size,
            })
            .collect();
        self.ctrd
            .write_content_bytes(&config_desc, &source, &config_bytes)
            .await?;
        let mut manifest_labels = manifest_gc_labels(&config_desc.digest, &layer_refs);
        manifest_labels.extend(source.clone());
        self.ctrd
            .write_content_bytes(&manifest_desc, &manifest_labels, &manifest_bytes)
            .await?;
        if let Some((index, bytes)) = &index {
            let mut index_labels =
                index_gc_labels(index.manifests().iter().map(|d| d.digest.as_str()));
            index_labels.extend(source.clone());
            self.ctrd
                .write_content_bytes(&target, &index_labels, bytes)
                .await?;
        }
        self.events.event(&RpullEvent::Resolved {
            name: self.name,
            manifest: &manifest_desc,
            layers: layers.len(),
        });

        let image_labels = ImageLabels {
            image_ref: self.name.to_string(),
            manifest_digest: manifest_desc.digest.clone(),
            layers: layer_refs,
            soci_index_digest: self
                .options
                .soci_index_digest
                .as_ref()
                .map(Digest::to_string),
        };
        let mut reports = Vec::with_capacity(layers.len());
        let mut parent: Option<Digest> = None;
        for (i, (layer, diff_id)) in layers.iter().zip(&config.diff_ids).enumerate() {
            let chain = chain_id(parent.as_ref(), diff_id);
            let outcome = self
                .unpack_layer(i, layer, diff_id, &chain, parent.as_ref(), &image_labels)
                .await?;
            let report = LayerReport {
                index: i,
                digest: layer.digest.clone(),
                size: layer.size,
                chain_id: chain.clone(),
                outcome,
            };
            self.events.event(&RpullEvent::Layer {
                layer: &report,
                of: layers.len(),
            });
            reports.push(report);
            parent = Some(chain);
        }
        let top = parent.expect("at least one layer");

        let mark = BTreeMap::from([snapshot_gc_label(
            &self.options.snapshotter,
            &top.to_string(),
        )]);
        self.ctrd
            .update_content_labels(&config_desc.digest, &mark)
            .await?;
        self.ctrd
            .put_image(self.name, &target, &BTreeMap::new())
            .await?;
        info!(image = %self.name, target = %target.digest, top = %top, "image unpacked");
        Ok(RpullReport {
            name: self.name.to_string(),
            target,
            manifest: manifest_desc,
            config: config_desc,
            snapshotter: self.options.snapshotter.clone(),
            chain_id: top,
            layers: reports,
        })
    }

    fn layer_error(&self, index: usize, layer: &Descriptor, reason: String) -> CtrdError {
        CtrdError::Layer {
            image: self.name.to_string(),
            index: index + 1,
            digest: layer.digest.clone(),
            reason,
        }
    }

    /// Give the snapshotter layer `i`; apply it through containerd when it
    /// defers.
    async fn unpack_layer(
        &self,
        i: usize,
        layer: &Descriptor,
        diff_id: &Digest,
        chain: &Digest,
        parent: Option<&Digest>,
        image_labels: &ImageLabels,
    ) -> Result<LayerOutcome> {
        let sn = self.options.snapshotter.as_str();
        let chain_s = chain.to_string();
        if self.ctrd.stat_snapshot(sn, &chain_s).await?.is_some() {
            debug!(layer = %layer.digest, chain = %chain_s, "snapshot already present");
            return Ok(LayerOutcome::Present);
        }
        let labels = image_labels.layer_labels(i, &chain_s);
        let parent_s = parent.map(Digest::to_string);
        let mut attempt = 0;
        let (key, mounts) = loop {
            attempt += 1;
            let key = format!("extract-{}-{chain_s}", unique());
            match self
                .ctrd
                .prepare_snapshot(sn, &key, parent_s.as_deref(), &labels)
                .await
                .map_err(|e| {
                    self.layer_error(i, layer, format!("preparing its snapshot failed: {e}"))
                })? {
                Prepared::Mounts(m) => break (key, m),
                Prepared::AlreadyExists => {
                    if let Some(info) = self.ctrd.stat_snapshot(sn, &chain_s).await? {
                        let remote = info.labels.contains_key(labels::SNAPSHOT_REMOTE);
                        debug!(layer = %layer.digest, chain = %chain_s, remote, "the snapshotter provided the layer");
                        return Ok(if remote {
                            LayerOutcome::Lazy
                        } else {
                            LayerOutcome::Snapshotter
                        });
                    }
                    if attempt >= PREPARE_ATTEMPTS {
                        return Err(self.layer_error(
                            i,
                            layer,
                            format!(
                                "snapshotter {sn} answered Prepare with \"already exists\" {attempt} times, \
                                 but there is no snapshot {chain_s}; check the snapshotter's log"
                            ),
                        ));
                    }
                    debug!(key, "extraction key exists; trying another");
                }
            }
        };
        match self
            .apply_deferred(i, layer, diff_id, chain, &key, mounts, &labels)
            .await
        {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                if let Err(r) = self.ctrd.remove_snapshot(sn, &key).await {
                    warn!(key, error = %r, "removing the extraction snapshot after a failure");
                }
                Err(e)
            }
        }
    }

    /// Download (if needed), apply and commit a layer the snapshotter deferred.
    #[allow(clippy::too_many_arguments)]
    async fn apply_deferred(
        &self,
        i: usize,
        layer: &Descriptor,
        diff_id: &Digest,
        chain: &Digest,
        key: &str,
        mounts: Vec<containerd_client::types::Mount>,
        labels: &BTreeMap<String, String>,
    ) -> Result<LayerOutcome> {
        let sn = self.options.snapshotter.as_str();
        let downloaded = self.fetch_layer(i, layer).await?;
        let applied = self
            .ctrd
            .apply_layer(layer, mounts)
            .await
            .map_err(|e| self.layer_error(i, layer, format!("applying it failed: {e}")))?;
        if applied.digest != diff_id.to_string() {
            return Err(self.layer_error(
                i,
                layer,
                format!(
                    "its uncompressed content has digest {} but the image config says {diff_id}; the image is corrupt",
                    applied.digest
                ),
            ));
        }
        match self
            .ctrd
            .commit_snapshot(sn, &chain.to_string(), key, labels)
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_already_exists() => {
                // Someone else committed the same chain meanwhile.
                debug!(chain = %chain, "snapshot committed concurrently");
                self.ctrd.remove_snapshot(sn, key).await?;
            }
            Err(e) => {
                return Err(self.layer_error(
                    i,
                    layer,
                    format!("committing its snapshot failed: {e}"),
                ));
            }
        }
        Ok(LayerOutcome::Pulled { downloaded })
    }

    /// Put the layer blob in containerd's content store; returns the bytes
    /// downloaded.
    async fn fetch_layer(&self, i: usize, layer: &Descriptor) -> Result<u64> {
        if self.ctrd.content_info(&layer.digest).await?.is_some() {
            return Ok(0);
        }
        let digest = layer
            .parsed_digest()
            .map_err(|_| self.layer_error(i, layer, "its digest is not a sha256 digest".into()))?;
        let what = format!(
            "downloading layer {} ({}) of {}",
            i + 1,
            layer.digest,
            self.name
        );
        let blob = self
            .registry
            .get_blob_stream(self.repo, &digest)
            .await
            .map_err(self.registry_error(what.clone()))?;
        let count = AtomicU64::new(0);
        let stream = blob.map(|chunk| match chunk {
            Ok(b) => {
                count.fetch_add(b.len() as u64, Ordering::Relaxed);
                Ok(b)
            }
            Err(error) => Err(CtrdError::Registry {
                what: what.clone(),
                error: Box::new(error),
            }),
        });
        self.ctrd
            .write_content(layer, &self.source_labels(), stream)
            .await?;
        Ok(count.load(Ordering::Relaxed))
    }
}

/// A string unique to this call: the time in nanoseconds and 64 random bits.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    // `RandomState` is seeded from the OS once per thread and then stepped,
    // so each one hashes differently.
    let mut h = RandomState::new().build_hasher();
    h.write_u128(nanos);
    format!("{nanos}-{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Callers may `tokio::spawn` a pull.
    #[allow(dead_code)]
    fn rpull_future_is_send(
        c: &Containerd,
        r: &RegistryClient,
        i: &ImageReference,
        o: &RpullOptions,
    ) {
        fn send<T: Send>(_: T) {}
        send(rpull(c, r, i, o, &NoEvents));
    }

    #[test]
    fn unique_strings_differ() {
        let a = unique();
        let b = unique();
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
    }

    #[test]
    fn report_counts() {
        let l = |outcome| LayerReport {
            index: 0,
            digest: String::new(),
            size: 1,
            chain_id: Digest::of(b""),
            outcome,
        };
        let r = RpullReport {
            name: "n".into(),
            target: Descriptor::default(),
            manifest: Descriptor::default(),
            config: Descriptor::default(),
            snapshotter: "soci".into(),
            chain_id: Digest::of(b""),
            layers: vec![
                l(LayerOutcome::Lazy),
                l(LayerOutcome::Pulled { downloaded: 10 }),
                l(LayerOutcome::Pulled { downloaded: 5 }),
                l(LayerOutcome::Present),
            ],
        };
        assert_eq!(r.count("lazy"), 1);
        assert_eq!(r.count("pulled"), 2);
        assert_eq!(r.count("present"), 1);
        assert_eq!(r.count("local"), 0);
        assert_eq!(r.downloaded(), 15);
    }
}
