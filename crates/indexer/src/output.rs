//! Writing a converted image as an OCI image layout.

use std::collections::BTreeSet;
use std::path::Path;

use soci_content::{BlobSource, LayoutWriter, MemStore, OutputFormat};
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index, Manifest};

use crate::IndexerError;
use crate::convert::{MAX_JSON_BLOB, digest_of};

/// Write the image rooted at `root` to a new layout at `dest`: every blob
/// reachable from `root`, taken from `created` (new blobs) or `source`, and an
/// `index.json` naming `root`. Image manifests missing from both (platforms the
/// source layout does not carry) are left out, as the source left them out.
pub fn write_layout(
    source: &dyn BlobSource,
    created: &MemStore,
    root: &Descriptor,
    dest: &Path,
    format: OutputFormat,
) -> Result<(), IndexerError> {
    let mut w = LayoutWriter::new(dest, format)?;
    let mut seen = BTreeSet::new();
    copy_graph(source, created, root, &mut w, &mut seen, 0)?;
    let index = Index {
        schema_version: 2,
        media_type: json::MEDIA_TYPE_OCI_INDEX.to_string(),
        manifests: Some(vec![root.clone()]),
        ..Default::default()
    };
    w.finish(&json::to_go_json(&index))?;
    Ok(())
}

fn read_small(
    source: &dyn BlobSource,
    created: &MemStore,
    d: &Digest,
    kind: &'static str,
) -> Result<Vec<u8>, IndexerError> {
    if let Some(b) = created.get(d) {
        return Ok(b);
    }
    Ok(source.read_blob(d, MAX_JSON_BLOB, kind)?)
}

fn copy_blob(
    source: &dyn BlobSource,
    created: &MemStore,
    d: &Digest,
    w: &mut LayoutWriter,
) -> Result<(), IndexerError> {
    if let Some(b) = created.get(d) {
        w.add_blob_bytes(d, &b)?;
    } else {
        w.copy_blob(source, d)?;
    }
    Ok(())
}

fn copy_graph(
    source: &dyn BlobSource,
    created: &MemStore,
    desc: &Descriptor,
    w: &mut LayoutWriter,
    seen: &mut BTreeSet<Digest>,
    depth: usize,
) -> Result<(), IndexerError> {
    if depth > 8 {
        return Err(IndexerError::InvalidImage(
            "image indexes nested more than 8 deep".into(),
        ));
    }
    let d = digest_of(desc)?;
    if !seen.insert(d.clone()) {
        return Ok(());
    }
    let available = created.has_blob(&d) || source.has_blob(&d);
    if json::is_index_type(&desc.media_type) {
        let bytes = read_small(source, created, &d, "image index")?;
        let idx = Index::from_json(&bytes).map_err(|e| IndexerError::BadJson {
            what: "image index",
            digest: desc.digest.clone(),
            reason: e.to_string(),
        })?;
        for child in idx.manifests.unwrap_or_default() {
            copy_graph(source, created, &child, w, seen, depth + 1)?;
        }
        w.add_blob_bytes(&d, &bytes)?;
    } else if json::is_manifest_type(&desc.media_type) {
        if !available && depth > 0 {
            return Ok(());
        }
        let bytes = read_small(source, created, &d, "image manifest")?;
        let m = Manifest::from_json(&bytes).map_err(|e| IndexerError::BadJson {
            what: "image manifest",
            digest: desc.digest.clone(),
            reason: e.to_string(),
        })?;
        copy_blob(source, created, &digest_of(&m.config)?, w)?;
        for l in m.layers.iter().flatten() {
            let ld = digest_of(l)?;
            if !created.has_blob(&ld) && !source.has_blob(&ld) && !l.urls.is_empty() {
                // Non-distributable layer: fetched from its URLs by whoever needs it.
                continue;
            }
            copy_blob(source, created, &ld, w)?;
        }
        w.add_blob_bytes(&d, &bytes)?;
    } else {
        copy_blob(source, created, &d, w)?;
    }
    Ok(())
}
