//! Writing a converted image out: as an OCI image layout, or (through
//! [`GraphSink`]) anywhere else that takes blobs and manifests children-first.

use std::collections::BTreeSet;
use std::path::Path;

use soci_content::{BlobSource, LayoutWriter, MemStore, OutputFormat};
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index, Manifest};

use crate::IndexerError;
use crate::convert::{MAX_JSON_BLOB, digest_of};

/// Receives the parts of an image graph, children before their parents.
pub(crate) trait GraphSink {
    /// A blob that is not a manifest or index (config, layer, zTOC, `{}`).
    fn blob(&mut self, desc: &Descriptor, digest: &Digest) -> Result<(), IndexerError>;
    /// A manifest or index with its exact bytes; `depth` 0 is the root.
    fn manifest(
        &mut self,
        desc: &Descriptor,
        digest: &Digest,
        bytes: &[u8],
        depth: usize,
    ) -> Result<(), IndexerError>;
}

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
    write_layout_named(source, created, root, dest, format, None)
}

/// [`write_layout`], with `ref_name` (when given) as the
/// `org.opencontainers.image.ref.name` of the image in `index.json`
/// (the `TAG` of `oci:DIR:TAG`).
pub fn write_layout_named(
    source: &dyn BlobSource,
    created: &MemStore,
    root: &Descriptor,
    dest: &Path,
    format: OutputFormat,
    ref_name: Option<&str>,
) -> Result<(), IndexerError> {
    let mut sink = LayoutSink {
        source,
        created,
        w: LayoutWriter::new(dest, format)?,
    };
    walk_graph(source, created, root, &mut sink)?;
    let mut entry = root.clone();
    if let Some(name) = ref_name {
        entry
            .annotations
            .insert(json::ANNOTATION_OCI_REF_NAME.to_string(), name.to_string());
    }
    let index = Index {
        schema_version: 2,
        media_type: json::MEDIA_TYPE_OCI_INDEX.to_string(),
        manifests: Some(vec![entry]),
        ..Default::default()
    };
    sink.w.finish(&json::to_go_json(&index))?;
    Ok(())
}

struct LayoutSink<'a> {
    source: &'a dyn BlobSource,
    created: &'a MemStore,
    w: LayoutWriter,
}

impl GraphSink for LayoutSink<'_> {
    fn blob(&mut self, _desc: &Descriptor, d: &Digest) -> Result<(), IndexerError> {
        if let Some(b) = self.created.get(d) {
            self.w.add_blob_bytes(d, &b)?;
        } else {
            self.w.copy_blob(self.source, d)?;
        }
        Ok(())
    }
    fn manifest(
        &mut self,
        _desc: &Descriptor,
        d: &Digest,
        bytes: &[u8],
        _depth: usize,
    ) -> Result<(), IndexerError> {
        self.w.add_blob_bytes(d, bytes)?;
        Ok(())
    }
}

/// Visit every part of the image rooted at `root` once, children first.
pub(crate) fn walk_graph(
    source: &dyn BlobSource,
    created: &MemStore,
    root: &Descriptor,
    sink: &mut dyn GraphSink,
) -> Result<(), IndexerError> {
    let mut seen = BTreeSet::new();
    walk(source, created, root, sink, &mut seen, 0)
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

fn walk(
    source: &dyn BlobSource,
    created: &MemStore,
    desc: &Descriptor,
    sink: &mut dyn GraphSink,
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
    if json::is_index_type(&desc.media_type) {
        let bytes = read_small(source, created, &d, "image index")?;
        let idx = Index::from_json(&bytes).map_err(|e| IndexerError::BadJson {
            what: "image index",
            digest: desc.digest.clone(),
            reason: e.to_string(),
        })?;
        for child in idx.manifests.unwrap_or_default() {
            walk(source, created, &child, sink, seen, depth + 1)?;
        }
        sink.manifest(desc, &d, &bytes, depth)?;
    } else if json::is_manifest_type(&desc.media_type) {
        let available = created.has_blob(&d) || source.has_blob(&d);
        if !available && depth > 0 {
            return Ok(());
        }
        let bytes = read_small(source, created, &d, "image manifest")?;
        let m = Manifest::from_json(&bytes).map_err(|e| IndexerError::BadJson {
            what: "image manifest",
            digest: desc.digest.clone(),
            reason: e.to_string(),
        })?;
        let cd = digest_of(&m.config)?;
        if seen.insert(cd.clone()) {
            sink.blob(&m.config, &cd)?;
        }
        for l in m.layers.iter().flatten() {
            let ld = digest_of(l)?;
            if !l.urls.is_empty() && !created.has_blob(&ld) && !source.has_blob(&ld) {
                // Non-distributable layer: fetched from its URLs by whoever needs it.
                continue;
            }
            if seen.insert(ld.clone()) {
                sink.blob(l, &ld)?;
            }
        }
        sink.manifest(desc, &d, &bytes, depth)?;
    } else {
        sink.blob(desc, &d)?;
    }
    Ok(())
}
