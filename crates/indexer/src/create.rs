//! `soci create`: SOCI index manifests v1, one per platform, each naming its
//! image manifest as `subject`, optionally with prefetch artifacts.

use std::collections::BTreeMap;

use soci_content::{BlobSource, MemStore};
use soci_format::json::{
    self, Descriptor, IndexVersion, Platform, PrefetchArtifact, PrefetchSpan, SociIndex,
};
use soci_format::zinfo::Zinfo;
use soci_format::ztoc::Ztoc;

use crate::IndexerError;
use crate::convert::{
    PlatformSelection, empty_hint, find_manifest, image_platforms, read_manifest,
};
use crate::layers::{BuildConfig, Events, ExistingZtocs, LayerBuilder, LayerOutcome};

/// One SOCI index built by [`create`].
#[derive(Debug, Clone)]
pub struct CreatedIndex {
    /// The index manifest: OCI manifest media type, digest, size and the v1
    /// artifact type.
    pub descriptor: Descriptor,
    /// The image manifest it indexes (its `subject`).
    pub manifest: Descriptor,
    /// The platform it was built for.
    pub platform: Platform,
    /// Its zTOC descriptors, in layer order.
    pub ztocs: Vec<Descriptor>,
    /// Its prefetch artifact descriptors, in layer order.
    pub prefetch: Vec<Descriptor>,
    /// Prefetch paths found in no indexed layer.
    pub prefetch_missing: Vec<String>,
}

/// Result of [`create`].
pub struct CreateOutcome {
    /// The indexes, one per platform.
    pub indexes: Vec<CreatedIndex>,
    /// Every blob built: zTOCs, prefetch artifacts, the `{}` config and the indexes.
    pub blobs: MemStore,
    /// Layers that got a zTOC (counted once per platform).
    pub layers_indexed: usize,
    /// Layers skipped (too small or unsupported compression).
    pub layers_skipped: usize,
    /// Compressed bytes of the layers that got a zTOC.
    pub bytes_indexed: u64,
}

/// Build a v1 SOCI index for each selected platform of the image rooted at
/// `root`. zTOCs known to `existing` are reused instead of rebuilt. A platform
/// whose layers all get skipped fails the build with
/// [`IndexerError::EmptyIndex`], explaining why.
pub fn create(
    source: &dyn BlobSource,
    root: &Descriptor,
    cfg: &BuildConfig,
    selection: &PlatformSelection,
    existing: Option<&dyn ExistingZtocs>,
    events: &dyn Events,
) -> Result<CreateOutcome, IndexerError> {
    let blobs = MemStore::new();
    let all = image_platforms(source, root)?;
    if all.is_empty() {
        return Err(IndexerError::InvalidImage(
            "image does not support any platforms".into(),
        ));
    }
    let single = json::is_manifest_type(&root.media_type);
    let platforms = match selection {
        PlatformSelection::Default => vec![Platform::host_default()],
        PlatformSelection::All => all.clone(),
        PlatformSelection::Only(p) => p.clone(),
    };
    let platforms = json::dedupe_platforms(&platforms);

    let mut builder = LayerBuilder::new(source, &blobs, cfg, events);
    builder.existing = existing;
    let mut out = Vec::new();
    let (mut indexed, mut skipped, mut bytes_indexed) = (0, 0, 0u64);
    for p in &platforms {
        let manifest_desc = find_manifest(source, root, p, &all)?;
        let manifest = read_manifest(source, &manifest_desc)?;
        let layers = manifest.layers.clone().unwrap_or_default();
        let outcomes = builder.build_all(&manifest_desc.digest, &layers)?;
        let mut ztocs = Vec::new();
        for (layer, o) in layers.iter().zip(&outcomes) {
            if let LayerOutcome::Ztoc(d) = o {
                ztocs.push((**d).clone());
                bytes_indexed += layer.size.max(0) as u64;
            }
        }
        indexed += ztocs.len();
        skipped += outcomes.len() - ztocs.len();
        if ztocs.is_empty() {
            let hint = empty_hint(&layers, cfg).unwrap_or_default();
            return Err(IndexerError::EmptyIndex {
                hint: format!(" (platform {}){hint}", p.format()),
            });
        }
        let (prefetch, prefetch_missing) =
            build_prefetch(&blobs, &layers, &ztocs, &cfg.prefetch_paths)?;
        let mut index_blobs = ztocs.clone();
        index_blobs.extend(prefetch.iter().cloned());
        let subject = Descriptor::new(
            manifest_desc.media_type.clone(),
            &manifest_desc.digest,
            manifest_desc.size,
        );
        let index = SociIndex::new(
            IndexVersion::V1,
            index_blobs,
            Some(subject.clone()),
            json::build_tool_annotations(Some(&cfg.build_tool_identifier)),
        );
        let (bytes, descriptor) = index.marshal_with_descriptor();
        blobs.put(json::EMPTY_CONFIG_BYTES.to_vec());
        blobs.put(bytes);
        let platform = if single { all[0].clone() } else { p.clone() };
        out.push(CreatedIndex {
            descriptor,
            manifest: subject,
            platform,
            ztocs,
            prefetch,
            prefetch_missing,
        });
    }
    Ok(CreateOutcome {
        indexes: out,
        blobs,
        layers_indexed: indexed,
        layers_skipped: skipped,
        bytes_indexed,
    })
}

/// `filepath.Clean("/" + p)` without the leading `/`.
pub fn clean_prefetch_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Prefetch artifacts: each path is looked up top-down in the layers that got
/// a zTOC; the first layer holding it gets the spans covering the file.
pub(crate) fn build_prefetch(
    blobs: &MemStore,
    layers: &[Descriptor],
    ztocs: &[Descriptor],
    paths: &[String],
) -> Result<(Vec<Descriptor>, Vec<String>), IndexerError> {
    if paths.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut by_layer: BTreeMap<&str, (Ztoc, Zinfo)> = BTreeMap::new();
    for z in ztocs {
        let Some(layer) = z.annotations.get(json::ANNOTATION_IMAGE_LAYER_DIGEST) else {
            continue;
        };
        let d = crate::convert::digest_of(z)?;
        let bytes = blobs.get(&d).ok_or_else(|| {
            IndexerError::InvalidImage(format!("zTOC {d} of layer {layer} went missing"))
        })?;
        let bad = |reason: String| IndexerError::Ztoc {
            layer: layer.clone(),
            reason,
        };
        let toc = Ztoc::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
        let zinfo = Zinfo::from_checkpoints(
            toc.compression_info.algorithm,
            &toc.compression_info.checkpoints,
        )
        .map_err(|e| bad(e.to_string()))?;
        by_layer.insert(layer.as_str(), (toc, zinfo));
    }
    let mut spans: BTreeMap<&str, Vec<PrefetchSpan>> = BTreeMap::new();
    let mut missing = Vec::new();
    for raw in paths {
        let path = clean_prefetch_path(raw);
        let found = layers.iter().rev().find_map(|l| {
            let (toc, zinfo) = by_layer.get(l.digest.as_str())?;
            let f = toc.toc.iter().find(|f| f.name == path)?;
            let start = zinfo.span_of(f.uncompressed_offset);
            let end = zinfo
                .span_of(f.uncompressed_offset + f.uncompressed_size)
                .max(start);
            Some((l.digest.as_str(), start, end))
        });
        match found {
            Some((layer, start, end)) => spans.entry(layer).or_default().push(PrefetchSpan {
                start_span: start as i32,
                end_span: end as i32,
                priority: 0,
            }),
            None => missing.push(raw.clone()),
        }
    }
    let mut descs = Vec::new();
    for l in layers {
        let Some(s) = spans.remove(l.digest.as_str()) else {
            continue;
        };
        let artifact = PrefetchArtifact::new(json::normalize_prefetch_spans(s));
        let bytes = artifact.marshal().map_err(|e| IndexerError::Ztoc {
            layer: l.digest.clone(),
            reason: format!("prefetch artifact: {e}"),
        })?;
        descs.push(json::prefetch_descriptor(&bytes, &l.digest));
        blobs.put(bytes);
    }
    Ok((descs, missing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoEvents;
    use soci_format::Digest;
    use soci_format::testutil::random_tar;

    /// An uncompressed tar layer: span `i` holds uncompressed bytes
    /// `[i * span, (i + 1) * span)`, so the expected spans follow from the
    /// tar offsets alone.
    #[test]
    fn v1_and_v2_indexes_carry_prefetch_spans_of_the_files() {
        // The first generated archive with two plainly named regular files.
        let plain = |f: &&soci_format::ztoc::FileMetadata| {
            f.entry_type == "reg"
                && f.uncompressed_size > 0
                && !f.name.is_empty()
                && !f.name.starts_with(['.', '/'])
                && !f.name.contains("..")
                && !f.name.contains("//")
                && !f.name.ends_with('/')
        };
        let fixture = (0..200)
            .map(random_tar)
            .find(|t| t.entries.iter().filter(plain).count() >= 2)
            .expect("a generated archive with two regular files");
        let store = MemStore::new();
        let layer_digest = store.put(fixture.bytes.clone());
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config_digest = store.put(config.to_vec());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{layer_digest}","size":{}}}]}}"#,
            json::MEDIA_TYPE_OCI_MANIFEST,
            json::MEDIA_TYPE_OCI_CONFIG,
            config.len(),
            json::MEDIA_TYPE_OCI_LAYER_TAR,
            fixture.bytes.len()
        );
        let root = Descriptor::for_bytes(json::MEDIA_TYPE_OCI_MANIFEST, manifest.as_bytes());
        store.put(manifest.into_bytes());

        let files: Vec<&soci_format::ztoc::FileMetadata> =
            fixture.entries.iter().filter(plain).collect();
        assert!(files.len() >= 2, "the fixture has regular files");
        let first = |name: &str| fixture.entries.iter().find(|f| f.name == name).unwrap();
        let (a, b) = (first(&files[0].name), first(&files[1].name));
        let span = 2048u64;
        let expected = |f: &soci_format::ztoc::FileMetadata| PrefetchSpan {
            start_span: (f.uncompressed_offset / span) as i32,
            end_span: ((f.uncompressed_offset + f.uncompressed_size) / span) as i32,
            priority: 0,
        };
        let cfg = BuildConfig {
            span_size: span,
            min_layer_size: 0,
            jobs: 1,
            prefetch_paths: vec![format!("/{}", b.name), a.name.clone(), "not/there".into()],
            ..BuildConfig::default()
        };
        let out = create(
            &store,
            &root,
            &cfg,
            &PlatformSelection::Only(vec![Platform::parse("linux/amd64").unwrap()]),
            None,
            &NoEvents,
        )
        .unwrap();
        assert_eq!(out.indexes.len(), 1);
        let idx = &out.indexes[0];
        assert_eq!(idx.manifest.digest, root.digest);
        assert_eq!(idx.prefetch_missing, vec!["not/there".to_string()]);
        assert_eq!(idx.prefetch.len(), 1);
        let p: Digest = idx.prefetch[0].digest.parse().unwrap();
        let artifact = PrefetchArtifact::unmarshal(&out.blobs.get(&p).unwrap()).unwrap();
        assert_eq!(
            artifact.prefetch_spans,
            json::normalize_prefetch_spans(vec![expected(a), expected(b)])
        );
        // The index: v1, subject = the manifest, zTOC then prefetch artifact.
        let d: Digest = idx.descriptor.digest.parse().unwrap();
        let bytes = out.blobs.get(&d).unwrap();
        let index = SociIndex::from_manifest_bytes(&bytes).unwrap();
        assert_eq!(index.version, IndexVersion::V1);
        assert_eq!(index.subject.as_ref().unwrap().digest, root.digest);
        assert_eq!(index.blobs.len(), 2);
        assert_eq!(index.blobs[0].media_type, json::SOCI_LAYER_MEDIA_TYPE);
        assert_eq!(index.blobs[1].media_type, json::SOCI_PREFETCH_MEDIA_TYPE);
        assert_eq!(
            idx.descriptor.artifact_type,
            json::SOCI_INDEX_ARTIFACT_TYPE_V1
        );
        assert!(
            out.blobs
                .get(&Digest::of(json::EMPTY_CONFIG_BYTES))
                .is_some()
        );

        // `convert` builds the same prefetch artifact into its v2 index.
        let conv = crate::convert(
            &store,
            &root,
            &cfg,
            &PlatformSelection::Only(vec![Platform::parse("linux/amd64").unwrap()]),
            &NoEvents,
        )
        .unwrap();
        assert_eq!(conv.prefetch_artifacts, 1);
        assert_eq!(
            conv.prefetch_missing,
            vec![(
                Platform::parse("linux/amd64").unwrap(),
                "not/there".to_string()
            )]
        );
        let d: Digest = conv.soci_indexes[0].digest.parse().unwrap();
        let v2 = SociIndex::from_manifest_bytes(&conv.blobs.get(&d).unwrap()).unwrap();
        assert_eq!(v2.version, IndexVersion::V2);
        assert!(v2.subject.is_none());
        assert_eq!(v2.blobs.len(), 2);
        assert_eq!(v2.blobs[0], index.blobs[0]);
        assert_eq!(v2.blobs[1], index.blobs[1]);
        assert!(
            conv.blobs.get(&p).is_some(),
            "the prefetch artifact is stored"
        );
    }

    #[test]
    fn prefetch_paths_are_cleaned_like_go() {
        assert_eq!(clean_prefetch_path("/usr/bin/app"), "usr/bin/app");
        assert_eq!(clean_prefetch_path("usr//bin/./app"), "usr/bin/app");
        assert_eq!(clean_prefetch_path("../../etc/x"), "etc/x");
        assert_eq!(clean_prefetch_path("a/b/../c/"), "a/c");
        assert_eq!(clean_prefetch_path("/"), "");
    }
}
