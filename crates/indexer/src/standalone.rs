//! Reading the image out of an OCI image layout for `convert --standalone`.

use std::io::Read;

use soci_content::{BlobSource, ContentError, Layout, MemStore};
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index};

use crate::IndexerError;

/// A layout plus the few blobs needed to describe its image (a filtered image
/// index when some platforms' blobs are missing), readable as one [`BlobSource`].
pub struct LayoutSource<'a> {
    layout: &'a dyn Layout,
    extra: MemStore,
    root: Descriptor,
}

impl<'a> LayoutSource<'a> {
    /// Find the image of a layout. `index.json` may name a single image manifest,
    /// a single nested image index, or list per-platform manifests itself;
    /// entries whose blobs are missing are dropped.
    pub fn new(layout: &'a dyn Layout) -> Result<Self, IndexerError> {
        Self::from_index(layout, layout.index_json()?)
    }

    /// Like [`LayoutSource::new`], but with `ref_name` only the entry of
    /// `index.json` whose `org.opencontainers.image.ref.name` is `ref_name`
    /// (the `TAG` of `oci:DIR:TAG`) is the image.
    pub fn with_ref_name(
        layout: &'a dyn Layout,
        ref_name: Option<&str>,
    ) -> Result<Self, IndexerError> {
        let Some(name) = ref_name else {
            return Self::new(layout);
        };
        let top_bytes = layout.index_json()?;
        let mut top = Index::from_json(&top_bytes).map_err(|e| IndexerError::BadJson {
            what: "layout index",
            digest: "index.json".into(),
            reason: e.to_string(),
        })?;
        let all = top.manifests.take().unwrap_or_default();
        let names: Vec<String> = all
            .iter()
            .filter_map(|d| d.annotations.get(json::ANNOTATION_OCI_REF_NAME).cloned())
            .collect();
        let chosen: Vec<Descriptor> = all
            .into_iter()
            .filter(|d| {
                d.annotations
                    .get(json::ANNOTATION_OCI_REF_NAME)
                    .is_some_and(|n| n == name)
            })
            .collect();
        if chosen.is_empty() {
            return Err(IndexerError::InvalidImage(format!(
                "{} has no image named {name:?} (names in its index.json: {})",
                layout.describe(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
        top.manifests = Some(chosen);
        Self::from_index(layout, json::to_go_json(&top))
    }

    fn from_index(layout: &'a dyn Layout, top_bytes: Vec<u8>) -> Result<Self, IndexerError> {
        let extra = MemStore::new();
        let bad = |reason: String| IndexerError::BadJson {
            what: "layout index",
            digest: "index.json".into(),
            reason,
        };
        let top = Index::from_json(&top_bytes).map_err(|e| bad(e.to_string()))?;
        let top_manifests = top.manifests.clone().unwrap_or_default();
        if top_manifests.is_empty() {
            return Err(IndexerError::InvalidImage(
                "index.json contains no manifests".into(),
            ));
        }
        let root = if top_manifests.len() == 1 && !json::is_index_type(&top_manifests[0].media_type)
        {
            top_manifests[0].clone()
        } else {
            let (list_bytes, mut media_type) = if top_manifests.len() == 1 {
                let d: Digest = top_manifests[0]
                    .digest
                    .parse()
                    .map_err(|e| bad(format!("{e}")))?;
                (
                    layout.read_blob(&d, 8 << 20, "image index")?,
                    top_manifests[0].media_type.clone(),
                )
            } else {
                (top_bytes.clone(), top.media_type.clone())
            };
            if media_type.is_empty() {
                media_type = json::MEDIA_TYPE_OCI_INDEX.to_string();
            }
            let mut list = Index::from_json(&list_bytes).map_err(|e| bad(e.to_string()))?;
            let all = list.manifests.clone().unwrap_or_default();
            let available: Vec<Descriptor> = all
                .iter()
                .filter(|d| {
                    d.digest
                        .parse::<Digest>()
                        .is_ok_and(|dg| layout.has_blob(&dg))
                })
                .cloned()
                .collect();
            if available.is_empty() {
                return Err(IndexerError::InvalidImage(
                    "the image index lists no manifest whose blob is in the layout".into(),
                ));
            }
            if available.len() == 1 && json::is_manifest_type(&available[0].media_type) {
                available[0].clone()
            } else if top_manifests.len() == 1 && available.len() == all.len() {
                top_manifests[0].clone()
            } else {
                list.media_type = media_type.clone();
                list.manifests = Some(available);
                let bytes = json::to_go_json(&list);
                let size = bytes.len() as i64;
                let digest = extra.put(bytes);
                Descriptor {
                    media_type,
                    digest: digest.to_string(),
                    size,
                    ..Default::default()
                }
            }
        };
        Ok(LayoutSource {
            layout,
            extra,
            root,
        })
    }

    /// Descriptor of the image (a manifest or an image index).
    pub fn root(&self) -> &Descriptor {
        &self.root
    }
}

impl BlobSource for LayoutSource<'_> {
    fn describe(&self) -> String {
        self.layout.describe()
    }
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.extra
            .blob_size(digest)
            .or_else(|| self.layout.blob_size(digest))
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ContentError> {
        if self.extra.has_blob(digest) {
            return self.extra.open_blob(digest);
        }
        self.layout.open_blob(digest)
    }
    fn local_path(&self, digest: &Digest) -> Option<std::path::PathBuf> {
        self.layout.local_path(digest)
    }
}
