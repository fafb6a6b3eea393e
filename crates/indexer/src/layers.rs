//! Choosing layers and building their zTOCs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use soci_content::{BlobSource, ContentError, MemStore, VerifyingReader};
use soci_format::Digest;
use soci_format::json::{self, Descriptor, LayerCompression};
use soci_format::ztoc::{self, BuildOptions, CompressionAlgorithm, Ztoc};

use crate::IndexerError;

/// Settings of an index build (upstream's builder options).
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// Span size in uncompressed bytes (`--span-size`, default 4 MiB).
    pub span_size: u64,
    /// Layers smaller than this get no zTOC (`--min-layer-size`, default 10 MiB).
    pub min_layer_size: u64,
    /// `--optimizations xattr`: mark zTOCs of layers without xattrs.
    pub xattr_optimization: bool,
    /// Identifier written into zTOCs and indexes.
    pub build_tool_identifier: String,
    /// Layers indexed at the same time.
    pub jobs: usize,
    /// Files whose spans go into prefetch artifacts (`--prefetch-file`,
    /// `--prefetch-files-json`), as given.
    pub prefetch_paths: Vec<String>,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            span_size: 1 << 22,
            min_layer_size: 10 << 20,
            xattr_optimization: false,
            build_tool_identifier: ztoc::DEFAULT_BUILD_TOOL.to_string(),
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            prefetch_paths: Vec::new(),
        }
    }
}

/// Something that happened during a build, for progress output.
#[derive(Debug)]
pub enum Event<'a> {
    /// A layer's zTOC is being built.
    LayerStarted {
        /// Layer digest.
        layer: &'a str,
        /// Compressed size.
        size: u64,
    },
    /// A layer got a zTOC.
    ZtocBuilt {
        /// Layer digest.
        layer: &'a str,
        /// zTOC digest.
        ztoc: &'a Digest,
        /// The zTOC was built earlier in this run and reused.
        reused: bool,
    },
    /// A layer is smaller than the minimum layer size.
    SkippedSmall {
        /// Layer digest.
        layer: &'a str,
        /// Layer media type.
        media_type: &'a str,
        /// Layer size.
        size: u64,
        /// The minimum.
        min_layer_size: u64,
    },
    /// A layer's compression cannot be indexed (zstd).
    SkippedUnsupported {
        /// Layer digest.
        layer: &'a str,
        /// Layer media type.
        media_type: &'a str,
        /// The compression found.
        compression: &'a str,
    },
}

/// Receiver of [`Event`]s.
pub trait Events: Sync {
    /// Called for every event, possibly from several threads.
    fn event(&self, event: &Event<'_>);
}

/// zTOCs built earlier (the artifacts database of `soci create`): a layer
/// whose zTOC with the same span size is known is not read again.
pub trait ExistingZtocs: Sync {
    /// The bytes of the zTOC of `layer` built with `span_size`, if there is one
    /// and its blob is still stored.
    fn existing(&self, layer: &str, span_size: u64) -> Option<Vec<u8>>;
}

/// Ignores all events.
pub struct NoEvents;
impl Events for NoEvents {
    fn event(&self, _: &Event<'_>) {}
}

/// What became of one layer.
#[derive(Debug, Clone)]
pub enum LayerOutcome {
    /// It got a zTOC, described by this index entry.
    Ztoc(Box<Descriptor>),
    /// It was skipped (too small, unsupported compression, prefetch artifact).
    Skipped,
}

pub(crate) struct LayerBuilder<'a> {
    pub source: &'a dyn BlobSource,
    pub out: &'a MemStore,
    pub cfg: &'a BuildConfig,
    pub events: &'a dyn Events,
    pub existing: Option<&'a dyn ExistingZtocs>,
    cache: Mutex<HashMap<String, LayerOutcome>>,
}

impl<'a> LayerBuilder<'a> {
    pub fn new(
        source: &'a dyn BlobSource,
        out: &'a MemStore,
        cfg: &'a BuildConfig,
        events: &'a dyn Events,
    ) -> Self {
        LayerBuilder {
            source,
            out,
            cfg,
            events,
            existing: None,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Build the zTOCs of `layers` in parallel; the result is in layer order.
    pub fn build_all(
        &self,
        manifest: &str,
        layers: &[Descriptor],
    ) -> Result<Vec<LayerOutcome>, IndexerError> {
        // Classification errors (non-layer media types) fail before any work starts.
        for l in layers {
            if l.media_type != json::SOCI_PREFETCH_MEDIA_TYPE && !json::is_layer_type(&l.media_type)
            {
                return Err(IndexerError::NotLayer {
                    layer: l.digest.clone(),
                    manifest: manifest.to_string(),
                    media_type: l.media_type.clone(),
                });
            }
        }
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<LayerOutcome, IndexerError>>>> =
            Mutex::new((0..layers.len()).map(|_| None).collect());
        let workers = self.cfg.jobs.max(1).min(layers.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= layers.len() {
                            break;
                        }
                        let r = self.build_one(&layers[i]);
                        results.lock().expect("poisoned")[i] = Some(r);
                    }
                });
            }
        });
        let mut out = Vec::with_capacity(layers.len());
        let mut errors = Vec::new();
        for r in results.into_inner().expect("poisoned") {
            match r.expect("every layer is processed") {
                Ok(o) => out.push(o),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(if errors.len() == 1 {
                errors.pop().expect("one error")
            } else {
                IndexerError::Layers(errors)
            });
        }
        Ok(out)
    }

    fn build_one(&self, layer: &Descriptor) -> Result<LayerOutcome, IndexerError> {
        if layer.media_type == json::SOCI_PREFETCH_MEDIA_TYPE {
            return Ok(LayerOutcome::Skipped);
        }
        let size = u64::try_from(layer.size).unwrap_or(0);
        if size < self.cfg.min_layer_size {
            self.events.event(&Event::SkippedSmall {
                layer: &layer.digest,
                media_type: &layer.media_type,
                size,
                min_layer_size: self.cfg.min_layer_size,
            });
            return Ok(LayerOutcome::Skipped);
        }
        let compression =
            json::layer_compression(&layer.media_type).map_err(|e| IndexerError::Ztoc {
                layer: layer.digest.clone(),
                reason: format!("could not determine layer compression: {e}"),
            })?;
        let algorithm = match compression {
            LayerCompression::Gzip => CompressionAlgorithm::Gzip,
            LayerCompression::Uncompressed | LayerCompression::Unknown => {
                CompressionAlgorithm::Uncompressed
            }
            LayerCompression::Unsupported(other) => {
                self.events.event(&Event::SkippedUnsupported {
                    layer: &layer.digest,
                    media_type: &layer.media_type,
                    compression: other,
                });
                return Ok(LayerOutcome::Skipped);
            }
        };
        if let Some(done) = self
            .cache
            .lock()
            .expect("poisoned")
            .get(&layer.digest)
            .cloned()
        {
            if let LayerOutcome::Ztoc(d) = &done {
                let z: Digest = d.digest.parse().expect("digest we computed");
                self.events.event(&Event::ZtocBuilt {
                    layer: &layer.digest,
                    ztoc: &z,
                    reused: true,
                });
            }
            return Ok(done);
        }
        let digest: Digest = layer
            .digest
            .parse()
            .map_err(|e| IndexerError::InvalidImage(format!("layer: {e}")))?;
        if let Some(outcome) = self.reuse(layer) {
            return Ok(outcome);
        }
        self.events.event(&Event::LayerStarted {
            layer: &layer.digest,
            size,
        });
        let reader = self.source.open_blob(&digest)?;
        let mut reader = VerifyingReader::new(reader, digest.clone(), size, self.source.describe());
        let opts = BuildOptions {
            span_size: self.cfg.span_size,
            build_tool_identifier: self.cfg.build_tool_identifier.clone(),
        };
        let toc = match ztoc::build_ztoc(&mut reader, algorithm, &opts) {
            Ok(t) => t,
            Err(e) => {
                // A layer that does not parse is most often a corrupt blob:
                // read it to its end so that the digest check can say so.
                if let Err(io) = std::io::copy(&mut reader, &mut std::io::sink())
                    && let Some(ContentError::DigestMismatch { .. }) =
                        io.get_ref().and_then(|i| i.downcast_ref::<ContentError>())
                {
                    let inner = io.into_inner().expect("checked");
                    let ce = inner.downcast::<ContentError>().expect("checked");
                    return Err(IndexerError::Content(*ce));
                }
                return Err(IndexerError::Ztoc {
                    layer: layer.digest.clone(),
                    reason: e.to_string(),
                });
            }
        };
        let bytes = toc.to_bytes();
        let ztoc_size = bytes.len() as i64;
        let ztoc_digest = self.out.put(bytes);
        let desc = ztoc_descriptor(layer, &ztoc_digest, ztoc_size, self.cfg, &toc);
        self.events.event(&Event::ZtocBuilt {
            layer: &layer.digest,
            ztoc: &ztoc_digest,
            reused: false,
        });
        let outcome = LayerOutcome::Ztoc(Box::new(desc));
        self.cache
            .lock()
            .expect("poisoned")
            .insert(layer.digest.clone(), outcome.clone());
        Ok(outcome)
    }
}

impl LayerBuilder<'_> {
    /// A zTOC of this layer built by an earlier run, when it still parses.
    fn reuse(&self, layer: &Descriptor) -> Option<LayerOutcome> {
        let bytes = self.existing?.existing(&layer.digest, self.cfg.span_size)?;
        let toc = Ztoc::from_bytes(&bytes).ok()?;
        let size = bytes.len() as i64;
        let ztoc_digest = self.out.put(bytes);
        let desc = ztoc_descriptor(layer, &ztoc_digest, size, self.cfg, &toc);
        self.events.event(&Event::ZtocBuilt {
            layer: &layer.digest,
            ztoc: &ztoc_digest,
            reused: true,
        });
        let outcome = LayerOutcome::Ztoc(Box::new(desc));
        self.cache
            .lock()
            .expect("poisoned")
            .insert(layer.digest.clone(), outcome.clone());
        Some(outcome)
    }
}

/// Whether the xattr optimization may mark this zTOC: no entry has xattrs and
/// no directory is opaque.
pub(crate) fn should_disable_xattrs(toc: &Ztoc) -> bool {
    toc.toc
        .iter()
        .all(|f| f.xattrs().next().is_none() && !f.name.ends_with(".wh..wh..opq"))
}

fn ztoc_descriptor(
    layer: &Descriptor,
    ztoc: &Digest,
    size: i64,
    cfg: &BuildConfig,
    toc: &Ztoc,
) -> Descriptor {
    json::ztoc_descriptor(
        ztoc,
        size,
        &layer.digest,
        &layer.media_type,
        cfg.span_size as i64,
        cfg.xattr_optimization && should_disable_xattrs(toc),
    )
}
