//! `soci convert`: a SOCI-enabled copy of an image (SOCI index manifest v2).
//!
//! For each selected platform a v2 SOCI index is built; every image manifest of
//! the image index is re-serialized as an OCI manifest (annotated with its SOCI
//! index digest when it has one) and the SOCI index descriptors are added to a
//! new OCI image index. Converting a converted image again replaces its SOCI
//! index entries instead of adding more.

use soci_content::{BlobSource, MemStore};
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index, IndexVersion, Manifest, Platform, SociIndex};

use crate::IndexerError;
use crate::layers::{BuildConfig, Events, LayerBuilder, LayerOutcome};

/// Image manifests, indexes and configs are small; refuse absurd ones.
pub(crate) const MAX_JSON_BLOB: u64 = 8 << 20;

/// Which platforms of an image get a SOCI index.
#[derive(Debug, Clone, Default)]
pub enum PlatformSelection {
    /// The image's platform for single-manifest images, else the host's platform.
    #[default]
    Default,
    /// Every platform of the image (`--all-platforms`).
    All,
    /// These platforms (`--platform`).
    Only(Vec<Platform>),
}

/// Result of a conversion.
pub struct ConvertOutcome {
    /// Descriptor of the new OCI image index.
    pub index_descriptor: Descriptor,
    /// Every blob the conversion created (zTOCs, SOCI indexes, the empty config,
    /// re-serialized manifests and the image index).
    pub blobs: MemStore,
    /// The SOCI indexes built, with their platform.
    pub soci_indexes: Vec<Descriptor>,
    /// Layers that got a zTOC (counted once per platform).
    pub layers_indexed: usize,
    /// Layers skipped (too small or unsupported compression).
    pub layers_skipped: usize,
    /// Prefetch artifacts built (counted once per platform).
    pub prefetch_artifacts: usize,
    /// Prefetch paths found in no indexed layer, with the platform searched.
    pub prefetch_missing: Vec<(Platform, String)>,
}

struct Built {
    platform: Platform,
    manifest_digest: String,
    descriptor: Descriptor,
}

/// Convert the image rooted at `root` (an image manifest or an image index) read from `source`.
pub fn convert(
    source: &dyn BlobSource,
    root: &Descriptor,
    cfg: &BuildConfig,
    selection: &PlatformSelection,
    events: &dyn Events,
) -> Result<ConvertOutcome, IndexerError> {
    let blobs = MemStore::new();
    let mut root = root.clone();
    let all = image_platforms(source, &root)?;
    if all.is_empty() {
        return Err(IndexerError::InvalidImage(
            "image does not support any platforms".into(),
        ));
    }
    let mut default = Platform::host_default();
    if json::is_manifest_type(&root.media_type) {
        root.platform = Some(all[0].clone());
        default = all[0].clone();
    }
    let mut platforms: Vec<Platform> = match selection {
        PlatformSelection::Default => vec![default],
        PlatformSelection::All => all.clone(),
        PlatformSelection::Only(p) => p.clone(),
    };
    platforms = json::dedupe_platforms(&platforms);

    let mut oci_index = new_oci_index(source, &root)?;

    let layer_builder = LayerBuilder::new(source, &blobs, cfg, events);
    let mut built = Vec::new();
    let (mut indexed, mut skipped) = (0, 0);
    let (mut prefetch_artifacts, mut prefetch_missing) = (0, Vec::new());
    let mut skip_reasons = Vec::new();
    for p in &platforms {
        let manifest_desc = find_manifest(source, &root, p, &all)?;
        let manifest = read_manifest(source, &manifest_desc)?;
        let layers = manifest.layers.clone().unwrap_or_default();
        let outcomes = layer_builder.build_all(&manifest_desc.digest, &layers)?;
        let ztocs: Vec<Descriptor> = outcomes
            .iter()
            .filter_map(|o| match o {
                LayerOutcome::Ztoc(d) => Some((**d).clone()),
                LayerOutcome::Skipped => None,
            })
            .collect();
        indexed += ztocs.len();
        skipped += outcomes.len() - ztocs.len();
        if ztocs.is_empty() {
            skip_reasons.push(empty_hint(&layers, cfg));
            continue;
        }
        let (prefetch, missing) =
            crate::create::build_prefetch(&blobs, &layers, &ztocs, &cfg.prefetch_paths)?;
        prefetch_artifacts += prefetch.len();
        prefetch_missing.extend(missing.into_iter().map(|m| (p.clone(), m)));
        let mut index_blobs = ztocs;
        index_blobs.extend(prefetch);
        let index = SociIndex::new(
            IndexVersion::V2,
            index_blobs,
            None,
            json::build_tool_annotations(Some(&cfg.build_tool_identifier)),
        );
        let bytes = index.marshal();
        blobs.put(json::EMPTY_CONFIG_BYTES.to_vec());
        let size = bytes.len() as i64;
        let digest = blobs.put(bytes);
        built.push(Built {
            platform: p.clone(),
            manifest_digest: manifest_desc.digest.clone(),
            descriptor: Descriptor {
                media_type: json::MEDIA_TYPE_OCI_MANIFEST.to_string(),
                artifact_type: json::SOCI_INDEX_ARTIFACT_TYPE_V2.to_string(),
                digest: digest.to_string(),
                size,
                ..Default::default()
            },
        });
    }
    if built.is_empty() {
        let mut hint = String::new();
        for h in skip_reasons.into_iter().flatten() {
            if !hint.contains(&h) {
                hint.push_str(&h);
            }
        }
        return Err(IndexerError::EmptyIndex { hint });
    }

    annotate_images(source, &blobs, &mut oci_index, &mut built)?;
    add_soci_indexes(&mut oci_index, &built);

    let bytes = json::to_go_json(&oci_index);
    let size = bytes.len() as i64;
    let digest = blobs.put(bytes);
    Ok(ConvertOutcome {
        index_descriptor: Descriptor {
            media_type: json::MEDIA_TYPE_OCI_INDEX.to_string(),
            digest: digest.to_string(),
            size,
            ..Default::default()
        },
        blobs,
        soci_indexes: built.into_iter().map(|b| b.descriptor).collect(),
        layers_indexed: indexed,
        layers_skipped: skipped,
        prefetch_artifacts,
        prefetch_missing,
    })
}

/// `sha256:0123456789ab (1234 bytes), ...` for at most 8 layers.
fn layer_list(layers: &[&Descriptor]) -> String {
    let mut parts: Vec<String> = layers
        .iter()
        .take(8)
        .map(|l| {
            let short = l.digest.get(..19).unwrap_or(&l.digest);
            format!("{short} ({} bytes, {})", l.size, l.media_type)
        })
        .collect();
    if layers.len() > 8 {
        parts.push(format!("and {} more", layers.len() - 8));
    }
    parts.join(", ")
}

pub(crate) fn empty_hint(layers: &[Descriptor], cfg: &BuildConfig) -> Option<String> {
    let layers: Vec<&Descriptor> = layers
        .iter()
        .filter(|l| l.media_type != json::SOCI_PREFETCH_MEDIA_TYPE)
        .collect();
    if layers.is_empty() {
        return None;
    }
    let small: Vec<&Descriptor> = layers
        .iter()
        .copied()
        .filter(|l| (l.size.max(0) as u64) < cfg.min_layer_size)
        .collect();
    let zstd: Vec<&Descriptor> = layers
        .iter()
        .copied()
        .filter(|l| {
            matches!(
                json::layer_compression(&l.media_type),
                Ok(json::LayerCompression::Unsupported(_))
            )
        })
        .collect();
    let mut why = Vec::new();
    if !small.is_empty() {
        let largest = small.iter().map(|l| l.size).max().unwrap_or(0);
        why.push(format!(
            "{} layer(s) smaller than --min-layer-size {}: {}; lower it (e.g. --min-layer-size {}) to index them",
            small.len(),
            cfg.min_layer_size,
            layer_list(&small),
            largest.max(0)
        ));
    }
    let zstd_big: Vec<&Descriptor> = zstd
        .iter()
        .copied()
        .filter(|l| (l.size.max(0) as u64) >= cfg.min_layer_size)
        .collect();
    if !zstd_big.is_empty() {
        why.push(format!(
            "{} layer(s) compressed with zstd, which SOCI cannot index: {}; rebuild them with gzip or uncompressed",
            zstd_big.len(),
            layer_list(&zstd_big)
        ));
    }
    (!why.is_empty()).then(|| format!(": {}", why.join("; ")))
}

/// Whether an image-index entry is a SOCI index (v2). Besides the artifact type,
/// the `image-manifest-digest` annotation identifies it: copy tools that predate
/// OCI 1.1 (skopeo 1.9, for one) drop `artifactType` but keep annotations.
pub(crate) fn is_soci_index_entry(d: &Descriptor) -> bool {
    d.artifact_type == json::SOCI_INDEX_ARTIFACT_TYPE_V2
        || d.annotations
            .contains_key(json::ANNOTATION_IMAGE_MANIFEST_DIGEST)
}

pub(crate) fn digest_of(d: &Descriptor) -> Result<Digest, IndexerError> {
    d.parsed_digest()
        .map_err(|e| IndexerError::InvalidImage(format!("descriptor of {}: {e}", d.media_type)))
}

fn read_json_blob(
    source: &dyn BlobSource,
    d: &Descriptor,
    kind: &'static str,
) -> Result<Vec<u8>, IndexerError> {
    Ok(source.read_blob(&digest_of(d)?, MAX_JSON_BLOB, kind)?)
}

pub(crate) fn read_manifest(
    source: &dyn BlobSource,
    d: &Descriptor,
) -> Result<Manifest, IndexerError> {
    let bytes = read_json_blob(source, d, "image manifest")?;
    Manifest::from_json(&bytes).map_err(|e| IndexerError::BadJson {
        what: "image manifest",
        digest: d.digest.clone(),
        reason: e.to_string(),
    })
}

fn read_index(source: &dyn BlobSource, d: &Descriptor) -> Result<Index, IndexerError> {
    let bytes = read_json_blob(source, d, "image index")?;
    Index::from_json(&bytes).map_err(|e| IndexerError::BadJson {
        what: "image index",
        digest: d.digest.clone(),
        reason: e.to_string(),
    })
}

fn config_platform(
    source: &dyn BlobSource,
    manifest: &Descriptor,
) -> Result<Platform, IndexerError> {
    let m = read_manifest(source, manifest)?;
    let bytes = read_json_blob(source, &m.config, "image config")?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| IndexerError::BadJson {
            what: "image config",
            digest: m.config.digest.clone(),
            reason: e.to_string(),
        })?;
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let features: Vec<String> = v
        .get("os.features")
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Platform {
        architecture: s("architecture"),
        os: s("os"),
        os_version: s("os.version"),
        os_features: features,
        variant: s("variant"),
    }
    .normalize())
}

/// All platforms of an image, like containerd's `images.Platforms`.
pub(crate) fn image_platforms(
    source: &dyn BlobSource,
    root: &Descriptor,
) -> Result<Vec<Platform>, IndexerError> {
    let mut out = Vec::new();
    collect_platforms(source, root, &mut out, 0)?;
    Ok(out)
}

fn collect_platforms(
    source: &dyn BlobSource,
    d: &Descriptor,
    out: &mut Vec<Platform>,
    depth: usize,
) -> Result<(), IndexerError> {
    if depth > 8 {
        return Err(IndexerError::InvalidImage(
            "image indexes nested more than 8 deep".into(),
        ));
    }
    if let Some(p) = &d.platform {
        out.push(p.normalize());
        return Ok(());
    }
    if json::is_index_type(&d.media_type) {
        for child in read_index(source, d)?.manifests.unwrap_or_default() {
            if is_soci_index_entry(&child) {
                continue;
            }
            collect_platforms(source, &child, out, depth + 1)?;
        }
    } else if json::is_manifest_type(&d.media_type) && source.has_blob(&digest_of(d)?) {
        out.push(config_platform(source, d)?);
    }
    Ok(())
}

fn new_oci_index(source: &dyn BlobSource, root: &Descriptor) -> Result<Index, IndexerError> {
    if json::is_index_type(&root.media_type) {
        let bytes = read_json_blob(source, root, "image index")?;
        json::convert_oci_index(&bytes).map_err(|e| IndexerError::BadJson {
            what: "image index",
            digest: root.digest.clone(),
            reason: e.to_string(),
        })
    } else {
        Ok(Index {
            schema_version: 2,
            media_type: json::MEDIA_TYPE_OCI_INDEX.to_string(),
            manifests: Some(vec![root.clone()]),
            ..Default::default()
        })
    }
}

/// The image manifest of `root` for platform `p` (upstream's GetImageManifestDescriptor).
pub(crate) fn find_manifest(
    source: &dyn BlobSource,
    root: &Descriptor,
    p: &Platform,
    all: &[Platform],
) -> Result<Descriptor, IndexerError> {
    let not_found = || IndexerError::NoPlatformMatch {
        platform: p.format(),
        available: all
            .iter()
            .map(Platform::format)
            .collect::<Vec<_>>()
            .join(", "),
    };
    if json::is_index_type(&root.media_type) {
        for child in read_index(source, root)?.manifests.unwrap_or_default() {
            let Some(cp) = &child.platform else {
                return Err(IndexerError::InvalidImage(format!(
                    "manifest {} in image index {} has no platform",
                    child.digest, root.digest
                )));
            };
            if is_soci_index_entry(&child) || !json::is_manifest_type(&child.media_type) {
                continue;
            }
            if p.matches_strict(cp) {
                return Ok(child);
            }
        }
        Err(not_found())
    } else if json::is_manifest_type(&root.media_type) {
        match &root.platform {
            Some(rp) if !p.matches_strict(rp) => Err(not_found()),
            _ => Ok(root.clone()),
        }
    } else {
        Err(IndexerError::InvalidImage(format!(
            "{} has media type {:?}, which is neither an image manifest nor an image index",
            root.digest, root.media_type
        )))
    }
}

fn annotate_images(
    source: &dyn BlobSource,
    blobs: &MemStore,
    oci_index: &mut Index,
    built: &mut [Built],
) -> Result<(), IndexerError> {
    let manifests = oci_index.manifests.get_or_insert_with(Vec::new);
    for desc in manifests.iter_mut() {
        if is_soci_index_entry(desc) {
            // An earlier conversion's SOCI index: kept, or replaced below.
            continue;
        }
        let idx = built.iter().position(|b| b.manifest_digest == desc.digest);
        if !json::is_manifest_type(&desc.media_type) {
            continue;
        }
        if !source.has_blob(&digest_of(desc)?) {
            if idx.is_none() {
                continue;
            }
            return Err(soci_content::ContentError::NotFound {
                digest: digest_of(desc)?,
                store: source.describe(),
            }
            .into());
        }
        let raw = read_json_blob(source, desc, "image manifest")?;
        let index_digest = idx.map(|i| built[i].descriptor.digest.clone());
        let (manifest, bytes) = json::convert_image_manifest(&raw, index_digest.as_deref())
            .map_err(|e| IndexerError::BadJson {
                what: "image manifest",
                digest: desc.digest.clone(),
                reason: e.to_string(),
            })?;
        desc.size = bytes.len() as i64;
        desc.digest = blobs.put(bytes).to_string();
        desc.media_type = json::MEDIA_TYPE_OCI_MANIFEST.to_string();
        desc.annotations = manifest.annotations;
        if let Some(i) = idx {
            built[i].descriptor.annotations.insert(
                json::ANNOTATION_IMAGE_MANIFEST_DIGEST.to_string(),
                desc.digest.clone(),
            );
        }
    }
    Ok(())
}

fn add_soci_indexes(oci_index: &mut Index, built: &[Built]) {
    let manifests = oci_index.manifests.get_or_insert_with(Vec::new);
    for b in built {
        let mut desc = b.descriptor.clone();
        desc.platform = Some(b.platform.clone());
        let existing = manifests.iter().position(|d| {
            is_soci_index_entry(d)
                && d.platform
                    .as_ref()
                    .is_some_and(|p| b.platform.matches_strict(p))
        });
        match existing {
            Some(i) => manifests[i] = desc,
            None => manifests.push(desc),
        }
    }
}
