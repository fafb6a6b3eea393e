//! `soci convert SRC DST` with plain image names: the image is read from
//! containerd's content store and the converted image, its SOCI indexes and
//! zTOCs are written back there (with GC labels), then image `DST` is created
//! or updated to point at the new image index.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use soci_containerd::labels::{GC_REF_CONFIG, GC_REF_LAYER_PREFIX, index_gc_labels};
use soci_containerd::{Containerd, ContentSource, image::image_name};
use soci_content::registry::ImageReference;
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index, Manifest};
use soci_indexer::ConvertOutcome;

use super::convert::{
    PrintEvents, ProgressSource, build_config, finish, platform_selection, record,
};
use crate::cli::{ConvertArgs, GlobalArgs};
use crate::progress::Progress;

/// GC label prefix for the zTOCs of a SOCI index.
const GC_REF_ZTOC_PREFIX: &str = "containerd.io/gc.ref.content.ztoc.";

fn name_of(input: &str, what: &str, need_tag: bool) -> anyhow::Result<String> {
    let r: ImageReference = input
        .parse()
        .with_context(|| format!("{what} {input:?} is not an image name"))?;
    if need_tag {
        r.require_tag(what)?;
    }
    Ok(image_name(&r))
}

/// The created blobs in the order containerd must get them (children
/// first), each with its GC labels.
fn ordered(
    outcome: &ConvertOutcome,
) -> anyhow::Result<Vec<(Descriptor, BTreeMap<String, String>)>> {
    let soci: Vec<&str> = outcome
        .soci_indexes
        .iter()
        .map(|d| d.digest.as_str())
        .collect();
    let (mut blobs, mut manifests) = (Vec::new(), Vec::new());
    let mut top = None;
    for d in outcome.blobs.digests() {
        let bytes = outcome.blobs.get(&d).expect("listed");
        let ds = d.to_string();
        let desc = |mt: &str| Descriptor {
            media_type: mt.to_string(),
            digest: ds.clone(),
            size: bytes.len() as i64,
            ..Default::default()
        };
        if ds == outcome.index_descriptor.digest {
            let idx = Index::from_json(&bytes)?;
            let labels = index_gc_labels(idx.manifests.iter().flatten().map(|m| m.digest.as_str()));
            top = Some((desc(json::MEDIA_TYPE_OCI_INDEX), labels));
            continue;
        }
        let manifest = Manifest::from_json(&bytes)
            .ok()
            .filter(|m| m.schema_version == 2 && !m.config.digest.is_empty());
        match manifest {
            Some(m) => {
                let mut labels = BTreeMap::new();
                labels.insert(GC_REF_CONFIG.to_string(), m.config.digest.clone());
                let prefix = if soci.contains(&ds.as_str()) {
                    GC_REF_ZTOC_PREFIX
                } else {
                    GC_REF_LAYER_PREFIX
                };
                for (i, l) in m.layers.iter().flatten().enumerate() {
                    labels.insert(format!("{prefix}{i}"), l.digest.clone());
                }
                manifests.push((desc(json::MEDIA_TYPE_OCI_MANIFEST), labels));
            }
            None => blobs.push((desc("application/octet-stream"), BTreeMap::new())),
        }
    }
    let top = top.context("the converted image index is missing")?;
    blobs.extend(manifests);
    blobs.push(top);
    Ok(blobs)
}

/// Connect to containerd and look up image `name`: the runtime, the client
/// and the image's target.
pub(crate) fn open_image(
    global: &GlobalArgs,
    name: &str,
) -> anyhow::Result<(tokio::runtime::Runtime, Containerd, Descriptor)> {
    let (rt, ctrd) = connect(global)?;
    let image = rt.block_on(ctrd.get_image(name))?.with_context(|| {
        format!(
            "image {name} is not in containerd (namespace {}); pull it first (e.g. `ctr -n {} images pull {name}`), \
             or name a registry image as docker://{name}",
            global.namespace, global.namespace
        )
    })?;
    let t = image
        .target
        .with_context(|| format!("image {name} has no target"))?;
    let root = Descriptor {
        media_type: t.media_type,
        digest: t.digest,
        size: t.size,
        annotations: t.annotations.into_iter().collect(),
        ..Default::default()
    };
    Ok((rt, ctrd, root))
}

/// A runtime and a containerd client on it (`--address`, `--namespace`).
pub(crate) fn connect(
    global: &GlobalArgs,
) -> anyhow::Result<(tokio::runtime::Runtime, Containerd)> {
    let rt = super::runtime()?;
    let ctrd = rt
        .block_on(Containerd::connect(&global.address, &global.namespace))
        .with_context(|| format!("cannot connect to containerd at {}", global.address))?;
    Ok((rt, ctrd))
}

/// The image name containerd records for a plain reference.
pub(crate) fn containerd_name(input: &str) -> anyhow::Result<String> {
    name_of(input, "image", false)
}

pub(crate) fn run(global: &GlobalArgs, args: &ConvertArgs) -> anyhow::Result<()> {
    let src = name_of(&args.source, "source", false)?;
    let dst = name_of(&args.dest, "destination", true)?;
    let cfg = build_config(&args.build)?;
    let selection = platform_selection(&args.build)?;
    let progress = Progress::new(args.quiet);
    let events = PrintEvents::new(progress.clone(), args.quiet);
    let (rt, ctrd, root) = open_image(global, &src)?;
    let source = ContentSource::new(ctrd.clone(), rt.handle().clone());
    let shown = ProgressSource {
        inner: &source,
        progress: &progress,
    };
    let outcome = soci_indexer::convert(&shown, &root, &cfg, &selection, &events)
        .with_context(|| format!("cannot convert {src}"))?;

    // Everything is written under a lease, so that a garbage collection in
    // the middle cannot take blobs not yet referenced; the image record
    // (written last) then holds them.
    let lease = rt.block_on(ctrd.create_lease(
        &format!("soci-convert-{}", std::process::id()),
        Duration::from_secs(3600),
        BTreeMap::new(),
    ))?;
    let leased = ctrd.with_lease(&lease)?;
    let written = (|| -> anyhow::Result<()> {
        for (desc, labels) in ordered(&outcome)? {
            let d: Digest = desc.digest.parse()?;
            let bytes = outcome.blobs.get(&d).expect("listed");
            rt.block_on(leased.write_content_bytes(&desc, &labels, &bytes))?;
        }
        rt.block_on(leased.put_image(&dst, &outcome.index_descriptor, &BTreeMap::new()))?;
        Ok(())
    })();
    let _ = rt.block_on(ctrd.delete_lease(&lease));
    written.with_context(|| format!("cannot store the converted image {dst} in containerd"))?;

    if let Err(e) = record(&global.root, &outcome, &root.digest) {
        eprintln!(
            "soci: warning: the zTOCs were not recorded in {} ({e:#}); `soci ztoc list` will not show them",
            global.root.display()
        );
    }
    finish(&progress, args, &outcome, None);
    Ok(())
}
