//! Refusing hostile artifacts before anything is mounted.
//!
//! A SOCI index and its zTOCs come from a registry and are trusted no further
//! than their digests: a digest proves which bytes were published, not that
//! they describe the image. Before a layer is mounted, [`check_index`] checks
//! the index against the image manifest and [`open_layer`] decodes the zTOC
//! and runs every check that could otherwise surface later as a wrong byte, a
//! path outside the layer or an absurd allocation:
//!
//! * the index names only layers of the image, at most one zTOC each;
//! * the zTOC describes a blob of the layer descriptor's size;
//! * every file's data lies within the uncompressed layer, and entries do not
//!   overlap (the zTOC decoder);
//! * entry names and hardlink targets stay inside the layer root (the inode
//!   tree rejects `..` components; a leading `/` means the layer root);
//! * the checkpoint blob's length agrees with its count, `max_span_id` with
//!   the number of span digests, and every span lies within the blob (the span
//!   manager);
//! * artifacts are read only up to a size limit, and parsing allocates no
//!   more than the artifact's own size suggests.

use std::collections::HashMap;
use std::sync::Arc;

use soci_content::BlobRangeReader;
use soci_format::Digest;
use soci_format::json::{self, Manifest, SociIndex};
use soci_format::ztoc::{FileMetadata, Ztoc};
use soci_layerfs::{FileChecks, FileChecksBuilder, InodeTree, TreeBuilder, TreeOptions};
use soci_spans::{SpanCache, SpanManager, SpanManagerConfig};

/// The largest SOCI index manifest accepted (registries cap manifests at 4 MiB).
pub const MAX_INDEX_SIZE: u64 = 4 << 20;
/// The largest zTOC accepted. A zTOC holds one entry per file and one digest
/// and 32 KiB window per span: 256 MiB covers layers far beyond any image.
pub const MAX_ZTOC_SIZE: u64 = 256 << 20;

/// Largest prefetch artifact accepted (a JSON list of span ranges).
pub const MAX_PREFETCH_SIZE: u64 = 16 << 20;

/// An artifact refused before mounting; the message names it and the reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Parses a SOCI index manifest and checks it against the image manifest
/// `image`: it must be at most [`MAX_INDEX_SIZE`] bytes, and each zTOC must
/// name a layer of the image (at most one zTOC per layer) and have a size
/// between 1 byte and [`MAX_ZTOC_SIZE`].
pub fn check_index(
    index_digest: &Digest,
    bytes: &[u8],
    image_digest: &Digest,
    image: &Manifest,
) -> Result<SociIndex, Refused> {
    if bytes.len() as u64 > MAX_INDEX_SIZE {
        return Err(Refused(format!(
            "SOCI index {index_digest} is {} bytes, more than the {MAX_INDEX_SIZE} allowed",
            bytes.len()
        )));
    }
    let index = SociIndex::from_manifest_bytes(bytes)
        .map_err(|e| Refused(format!("SOCI index {index_digest} is invalid: {e}")))?;
    let layers: HashMap<&str, i64> = image
        .layers
        .iter()
        .flatten()
        .map(|l| (l.digest.as_str(), l.size))
        .collect();
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for blob in &index.blobs {
        if blob.media_type != json::SOCI_LAYER_MEDIA_TYPE {
            continue;
        }
        let Some(layer) = blob.annotations.get(json::ANNOTATION_IMAGE_LAYER_DIGEST) else {
            continue;
        };
        if !layers.contains_key(layer.as_str()) {
            return Err(Refused(format!(
                "SOCI index {index_digest} has zTOC {} for layer {layer}, which is not a layer of image manifest {image_digest}",
                blob.digest
            )));
        }
        if let Some(other) = seen.insert(layer.as_str(), blob.digest.as_str())
            && other != blob.digest
        {
            return Err(Refused(format!(
                "SOCI index {index_digest} has two zTOCs ({other} and {}) for layer {layer}",
                blob.digest
            )));
        }
        if blob.size <= 0 || blob.size as u64 > MAX_ZTOC_SIZE {
            return Err(Refused(format!(
                "SOCI index {index_digest} gives zTOC {} an impossible size {} (allowed: 1 to {MAX_ZTOC_SIZE})",
                blob.digest, blob.size
            )));
        }
    }
    Ok(index)
}

/// The sizes of the image's layers by digest, as its manifest gives them.
pub fn layer_sizes(image: &Manifest) -> HashMap<String, u64> {
    image
        .layers
        .iter()
        .flatten()
        .filter_map(|l| Some((l.digest.clone(), u64::try_from(l.size).ok()?)))
        .collect()
}

/// The zTOC describes a blob of the layer descriptor's size.
fn check_ztoc_size(ztoc: &Ztoc, layer: &Digest, layer_size: Option<u64>) -> Result<(), Refused> {
    if let Some(size) = layer_size
        && ztoc.compressed_archive_size != size
    {
        return Err(Refused(format!(
            "zTOC of layer {layer}: it describes a {}-byte blob, but the layer is {size} bytes",
            ztoc.compressed_archive_size
        )));
    }
    Ok(())
}

/// The entry's data lies within the uncompressed layer.
fn check_entry(ztoc: &Ztoc, m: &FileMetadata, layer: &Digest) -> Result<(), Refused> {
    let refuse = |reason: String| Refused(format!("zTOC of layer {layer}: {reason}"));
    let end = ztoc.uncompressed_archive_size;
    let Some(data_end) = m.uncompressed_offset.checked_add(m.uncompressed_size) else {
        return Err(refuse(format!(
            "entry {:?}: offset {} + size {} overflows",
            m.name, m.uncompressed_offset, m.uncompressed_size
        )));
    };
    if data_end > end {
        return Err(refuse(format!(
            "entry {:?}: data {}..{data_end} extends beyond the {end}-byte uncompressed layer",
            m.name, m.uncompressed_offset
        )));
    }
    Ok(())
}

/// A layer ready to mount: every check passed.
pub struct OpenedLayer {
    /// Span manager reading the layer through `reader`.
    pub spans: Arc<SpanManager>,
    /// The layer's inode table.
    pub tree: InodeTree,
    /// The first-read checks of its regular files, when asked for.
    pub checks: Option<FileChecks>,
}

/// What [`open_layer`] needs to know about the layer.
#[derive(Debug, Clone)]
pub struct LayerInput<'a> {
    /// The zTOC blob, exactly as stored; freed once the layer is open.
    pub ztoc: Vec<u8>,
    /// The layer's digest.
    pub layer: &'a Digest,
    /// The layer descriptor's size, when known.
    pub layer_size: Option<u64>,
    /// The `com.amazon.soci.disable-xattrs` annotation was set.
    pub disable_xattrs: bool,
    /// Collect the first-read tar header checks of the regular files.
    pub verify: bool,
}

/// Decodes and checks a layer's zTOC, and builds its span manager and inode
/// table; nothing is fetched or mounted. Any refusal names the layer.
///
/// The entries are decoded one at a time straight into the inode table (and
/// the file checks), so a layer's decoded entries are never all in memory.
pub fn open_layer(
    input: LayerInput<'_>,
    reader: Arc<dyn BlobRangeReader>,
    cache: Arc<dyn SpanCache>,
    config: SpanManagerConfig,
) -> Result<OpenedLayer, Refused> {
    let layer = input.layer;
    if input.ztoc.len() as u64 > MAX_ZTOC_SIZE {
        return Err(Refused(format!(
            "zTOC of layer {layer} is {} bytes, more than the {MAX_ZTOC_SIZE} allowed",
            input.ztoc.len()
        )));
    }
    let invalid = |e: &dyn std::fmt::Display| Refused(format!("zTOC of layer {layer}: {e}"));
    let (ztoc, entries) = Ztoc::from_bytes_streaming(&input.ztoc).map_err(|e| invalid(&e))?;
    check_ztoc_size(&ztoc, layer, input.layer_size)?;
    let options = TreeOptions {
        disable_xattrs: input.disable_xattrs,
        ..TreeOptions::default()
    };
    let mut tree = TreeBuilder::new(&options, entries.size_hint().1.unwrap_or(0));
    let mut checks = input.verify.then(FileChecksBuilder::new);
    for m in entries {
        let m = m.map_err(|e| invalid(&e))?;
        check_entry(&ztoc, &m, layer)?;
        tree.add(&m)
            .map_err(|e| Refused(format!("layer {layer}: {e}")))?;
        if let Some(c) = &mut checks {
            c.add(&m);
        }
    }
    drop(input.ztoc);
    let tree = tree
        .finish()
        .map_err(|e| Refused(format!("layer {layer}: {e}")))?;
    let checks = checks.map(|c| c.finish(&tree));
    let spans = Arc::new(
        SpanManager::new(&ztoc, layer.clone(), reader, cache, config)
            .map_err(|e| Refused(format!("layer {layer}: {e}")))?,
    );
    Ok(OpenedLayer {
        spans,
        tree,
        checks,
    })
}
