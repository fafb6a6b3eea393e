//! `soci create`: SOCI index manifests v1 into the local store.

use anyhow::Context;
use std::collections::BTreeMap;
use std::time::Duration;

use soci_artifacts::{ArtifactEntry, ArtifactType, ArtifactsDb};
use soci_format::Digest;
use soci_format::json;
use soci_indexer::ExistingZtocs;

use super::convert::{
    PrintEvents, ProgressSource, build_config, platform_selection, warn_prefetch_missing,
};
use super::local::{ArtifactStore, ImageArg, open_local, parse_image, with_image};
use crate::cli::{CreateArgs, GlobalArgs};
use crate::progress::{Progress, human_bytes};

/// zTOCs recorded in the artifacts database whose blobs are still stored.
struct StoredZtocs<'a> {
    store: &'a dyn ArtifactStore,
    db: &'a ArtifactsDb,
}

impl ExistingZtocs for StoredZtocs<'_> {
    fn existing(&self, layer: &str, span_size: u64) -> Option<Vec<u8>> {
        let e = self.db.ztoc_for_layer(layer, span_size).ok()??;
        let d: Digest = e.digest.parse().ok()?;
        self.store.read_blob(&d, e.size.max(1), "zTOC").ok()
    }
}

pub(crate) fn run(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
    let local = open_local(global)?;
    let image = parse_image(&args.image)?;
    let cfg = build_config(&args.build)?;
    let selection = platform_selection(&args.build)?;
    let stored = StoredZtocs {
        store: local.store.as_ref(),
        db: &local.db,
    };
    let existing: Option<&dyn ExistingZtocs> = (!args.build.force).then_some(&stored as _);
    let progress = Progress::new(false);
    let events = PrintEvents::new(progress.clone(), false);
    let (outcome, root_digest) = with_image(
        global,
        local.ctrd.as_ref(),
        &image,
        super::convert::registry_options(&args.registry)?,
        |source, root| {
            let counting = ProgressSource {
                inner: source,
                progress: &progress,
            };
            let o = soci_indexer::create(&counting, root, &cfg, &selection, existing, &events)
                .with_context(|| format!("cannot create a SOCI index for {}", args.image))?;
            Ok((o, root.digest.clone()))
        },
    )?;

    // Blobs first (inside a lease on containerd, so that nothing is collected
    // before the image label holds it), then the records naming them.
    let lease = match &local.ctrd {
        Some(c) => Some((
            c.clone(),
            c.rt.block_on(c.client.create_lease(
                &format!("soci-create-{}", std::process::id()),
                Duration::from_secs(3600),
                BTreeMap::new(),
            ))?,
        )),
        None => None,
    };
    let leased = match &lease {
        Some((c, l)) => Some(c.leased(l)?),
        None => None,
    };
    let store: &dyn ArtifactStore = match &leased {
        Some(c) => c,
        None => local.store.as_ref(),
    };
    let written = write_blobs(store, &outcome);
    if let Some(image_name) = match (&image, &local.ctrd) {
        (ImageArg::Containerd(name), Some(c)) if written.is_ok() => Some((name, c)),
        _ => None,
    } {
        // As upstream: the image record holds the newest index (and through
        // the index's labels, its zTOCs) for containerd's garbage collector.
        if let Some(last) = outcome.indexes.last() {
            image_name.1.label_image(
                image_name.0,
                &BTreeMap::from([(
                    "containerd.io/gc.ref.content.soci-index".to_string(),
                    last.descriptor.digest.clone(),
                )]),
            )?;
        }
    }
    if let Some((c, l)) = &lease {
        let _ = c.rt.block_on(c.client.delete_lease(l));
    }
    written?;
    let now = soci_artifacts::unix_now();
    for idx in &outcome.indexes {
        for z in &idx.ztocs {
            let layer = z
                .annotations
                .get(json::ANNOTATION_IMAGE_LAYER_DIGEST)
                .cloned()
                .unwrap_or_default();
            let span_size = z
                .annotations
                .get(json::ANNOTATION_SPAN_SIZE)
                .and_then(|s| s.parse().ok())
                .unwrap_or(cfg.span_size);
            local
                .db
                .put(&entry(z, ArtifactType::Ztoc, &layer, span_size, now))?;
        }
        for p in &idx.prefetch {
            let layer = p
                .annotations
                .get(json::ANNOTATION_IMAGE_LAYER_DIGEST)
                .cloned()
                .unwrap_or_default();
            local
                .db
                .put(&entry(p, ArtifactType::Prefetch, &layer, 0, now))?;
        }
        let mut e = entry(
            &idx.descriptor,
            ArtifactType::Index,
            &idx.manifest.digest,
            0,
            now,
        );
        e.image_digest = root_digest.clone();
        e.platform = idx.platform.format();
        e.index_artifact_type = json::SOCI_INDEX_ARTIFACT_TYPE_V1.to_string();
        e.image_ref = match &image {
            ImageArg::Containerd(name) => name.clone(),
            ImageArg::Location(_) => args.image.clone(),
        };
        local.db.put(&e)?;
        warn_prefetch_missing(
            idx.prefetch_missing
                .iter()
                .map(|m| (m.as_str(), idx.platform.format())),
        );
    }
    for idx in &outcome.indexes {
        progress.finish_summary(format!(
            "soci index {} for {} (image manifest {}): {} zTOC(s), {} prefetch artifact(s)",
            idx.descriptor.digest,
            idx.platform.format(),
            idx.manifest.digest,
            idx.ztocs.len(),
            idx.prefetch.len(),
        ));
    }
    progress.finish_summary(format!(
        "{} layer(s) indexed ({}), {} skipped",
        outcome.layers_indexed,
        human_bytes(outcome.bytes_indexed),
        outcome.layers_skipped
    ));
    Ok(())
}

/// Store every blob of the outcome: zTOCs, prefetch artifacts and the `{}`
/// config first, then each index with the containerd GC labels that keep
/// them (`containerd.io/gc.ref.content.config`, `….ztoc.<i>`).
fn write_blobs(
    store: &dyn ArtifactStore,
    outcome: &soci_indexer::CreateOutcome,
) -> anyhow::Result<()> {
    let none = BTreeMap::new();
    let empty = Digest::of(json::EMPTY_CONFIG_BYTES);
    store.put(
        &empty,
        json::SOCI_INDEX_ARTIFACT_TYPE_V1,
        json::EMPTY_CONFIG_BYTES,
        &none,
    )?;
    for idx in &outcome.indexes {
        let mut labels = BTreeMap::from([(
            "containerd.io/gc.ref.content.config".to_string(),
            empty.to_string(),
        )]);
        for (i, b) in idx.ztocs.iter().chain(&idx.prefetch).enumerate() {
            let d = b.parsed_digest()?;
            let bytes = outcome.blobs.get(&d).context("built blob went missing")?;
            store.put(&d, &b.media_type, &bytes, &none)?;
            labels.insert(
                format!("containerd.io/gc.ref.content.ztoc.{i}"),
                d.to_string(),
            );
        }
        let d = idx.descriptor.parsed_digest()?;
        let bytes = outcome.blobs.get(&d).context("built index went missing")?;
        store.put(&d, &idx.descriptor.media_type, &bytes, &labels)?;
    }
    Ok(())
}

fn entry(
    d: &json::Descriptor,
    artifact_type: ArtifactType,
    original: &str,
    span_size: u64,
    now: i64,
) -> ArtifactEntry {
    ArtifactEntry {
        digest: d.digest.clone(),
        size: d.size.max(0) as u64,
        artifact_type,
        original_digest: original.to_string(),
        image_digest: String::new(),
        platform: String::new(),
        location: original.to_string(),
        media_type: d.media_type.clone(),
        index_artifact_type: String::new(),
        span_size,
        created_at: now,
        image_index_digest: String::new(),
        image_ref: String::new(),
    }
}
