//! Finding an image's SOCI index and fetching its artifacts into the local store.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use soci_artifacts::{ArtifactEntry, ArtifactType, ArtifactsDb, SociStore};
use soci_content::BlobSource;
use soci_content::registry::{RegistryClient, Repository};
use soci_format::Digest;
use soci_format::json::{self, IndexVersion, Manifest, SociIndex};

use crate::checks::{self, MAX_INDEX_SIZE};

/// Why an image gets no lazy loading (it is then pulled by containerd).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct NoIndex(pub String);

/// The zTOC of one layer.
#[derive(Debug, Clone)]
pub struct ZtocRef {
    /// Digest of the zTOC blob in the soci store.
    pub digest: Digest,
    /// The `com.amazon.soci.disable-xattrs` annotation was set.
    pub disable_xattrs: bool,
}

/// The SOCI artifacts of one image manifest, present in the local store.
#[derive(Debug, Clone)]
pub struct ImageArtifacts {
    /// Digest of the SOCI index.
    pub index_digest: Digest,
    /// Index version.
    pub version: IndexVersion,
    /// How it was found (`label`, `v2 annotation`, `v1 referrers`).
    pub found_by: &'static str,
    /// zTOCs by layer digest.
    pub ztocs: HashMap<String, ZtocRef>,
    /// Layer sizes by layer digest, from the image manifest.
    pub layer_sizes: HashMap<String, u64>,
    /// Prefetch artifacts by layer digest (fetched only when prefetch is on).
    pub prefetch: HashMap<String, Digest>,
    /// The image manifest (fetched by digest, so verified).
    pub image: Manifest,
}

/// Where to look for an index, in upstream's order.
pub(crate) struct Discovery<'a> {
    pub client: &'a RegistryClient,
    pub repo: &'a Repository,
    pub manifest: &'a Digest,
    pub explicit: Option<Digest>,
    pub v1: bool,
    pub v2: bool,
    /// Fetch the index's prefetch artifacts too (`[prefetch] enable`).
    pub prefetch: bool,
    pub store: &'a SociStore,
    pub db: &'a ArtifactsDb,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Discovery<'_> {
    async fn image_manifest(&self) -> Result<Manifest, NoIndex> {
        let m = self
            .client
            .get_manifest(self.repo, &self.manifest.to_string())
            .await
            .map_err(|e| {
                NoIndex(format!(
                    "cannot fetch image manifest {}: {e}",
                    self.manifest
                ))
            })?;
        Manifest::from_json(&m.bytes).map_err(|e| {
            NoIndex(format!(
                "cannot parse image manifest {}: {e}",
                self.manifest
            ))
        })
    }

    async fn find_index(&self, manifest: &Manifest) -> Result<(Digest, &'static str), NoIndex> {
        if let Some(d) = &self.explicit {
            return Ok((d.clone(), "label"));
        }
        if self.v2
            && let Some(d) = manifest.annotations.get(json::ANNOTATION_SOCI_INDEX_DIGEST)
        {
            let d: Digest = d.parse().map_err(|e| {
                NoIndex(format!(
                    "image manifest {} has an invalid {} annotation: {e}",
                    self.manifest,
                    json::ANNOTATION_SOCI_INDEX_DIGEST
                ))
            })?;
            return Ok((d, "v2 annotation"));
        }
        if self.v1 {
            let r = self
                .client
                .referrers(
                    self.repo,
                    self.manifest,
                    Some(json::SOCI_INDEX_ARTIFACT_TYPE_V1),
                )
                .await
                .map_err(|e| NoIndex(format!("cannot list referrers of {}: {e}", self.manifest)))?;
            if let Some(first) = r.manifests.first() {
                let d: Digest = first
                    .digest
                    .parse()
                    .map_err(|e| NoIndex(format!("invalid referrer of {}: {e}", self.manifest)))?;
                return Ok((d, "v1 referrers"));
            }
        }
        let mut modes = Vec::new();
        if self.v2 {
            modes.push("no com.amazon.soci.index-digest annotation on the image manifest (convert the image with `soci convert`)");
        } else {
            modes.push("SOCI index manifest v2 discovery is disabled ([pull_modes.soci_v2] enable = false)");
        }
        if self.v1 {
            modes.push("no SOCI index v1 among the manifest's referrers");
        } else {
            modes.push(
                "v1 discovery is disabled (enable it with [pull_modes.soci_v1] enable = true)",
            );
        }
        Err(NoIndex(format!(
            "no SOCI index for image manifest {}: {}",
            self.manifest,
            modes.join("; ")
        )))
    }

    /// Find the index and make sure it and its zTOCs are in the local store.
    pub async fn run(&self) -> Result<ImageArtifacts, NoIndex> {
        let image = self.image_manifest().await?;
        let (index_digest, found_by) = self.find_index(&image).await?;
        let bytes = if self.store.has_blob(&index_digest) {
            self.store
                .read_blob(&index_digest, MAX_INDEX_SIZE, "SOCI index")
                .map_err(|e| NoIndex(format!("unable to fetch SOCI artifacts: {e}")))?
        } else {
            let m = self
                .client
                .get_manifest(self.repo, &index_digest.to_string())
                .await
                .map_err(|e| {
                    NoIndex(format!(
                        "unable to fetch SOCI artifacts: SOCI index {index_digest}: {e}"
                    ))
                })?;
            self.store
                .put_verified(&index_digest, &m.bytes)
                .map_err(|e| NoIndex(format!("unable to store SOCI index {index_digest}: {e}")))?;
            m.bytes
        };
        let index: SociIndex = checks::check_index(&index_digest, &bytes, self.manifest, &image)
            .map_err(|e| NoIndex(e.0))?;
        let mut ztocs = HashMap::new();
        let mut prefetch = HashMap::new();
        for blob in &index.blobs {
            if self.prefetch && blob.media_type == json::SOCI_PREFETCH_MEDIA_TYPE {
                if let Some((layer, digest)) = self.prefetch_artifact(&index_digest, blob).await? {
                    prefetch.insert(layer, digest);
                }
                continue;
            }
            if blob.media_type != json::SOCI_LAYER_MEDIA_TYPE {
                continue;
            }
            let Some(layer) = blob.annotations.get(json::ANNOTATION_IMAGE_LAYER_DIGEST) else {
                continue;
            };
            let digest: Digest = blob.digest.parse().map_err(|e| {
                NoIndex(format!(
                    "SOCI index {index_digest} names an invalid zTOC: {e}"
                ))
            })?;
            self.fetch_into_store("zTOC", &digest, blob.size as u64)
                .await?;
            let span_size = blob
                .annotations
                .get(json::ANNOTATION_SPAN_SIZE)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let _ = self.db.put(&ArtifactEntry {
                digest: digest.to_string(),
                size: blob.size as u64,
                artifact_type: ArtifactType::Ztoc,
                original_digest: layer.clone(),
                image_digest: String::new(),
                platform: String::new(),
                location: layer.clone(),
                media_type: blob.media_type.clone(),
                index_artifact_type: String::new(),
                span_size,
                created_at: now(),
                image_index_digest: String::new(),
                image_ref: String::new(),
            });
            ztocs.insert(
                layer.clone(),
                ZtocRef {
                    digest,
                    disable_xattrs: blob
                        .annotations
                        .get(json::ANNOTATION_DISABLE_XATTRS)
                        .is_some_and(|v| v == json::DISABLE_XATTRS_TRUE),
                },
            );
        }
        let _ = self.db.put(&ArtifactEntry {
            digest: index_digest.to_string(),
            size: bytes.len() as u64,
            artifact_type: ArtifactType::Index,
            original_digest: self.manifest.to_string(),
            image_digest: String::new(),
            platform: String::new(),
            location: self.manifest.to_string(),
            media_type: json::MEDIA_TYPE_OCI_MANIFEST.to_string(),
            index_artifact_type: index.artifact_type().to_string(),
            span_size: 0,
            created_at: now(),
            image_index_digest: String::new(),
            image_ref: String::new(),
        });
        Ok(ImageArtifacts {
            index_digest,
            version: index.version,
            found_by,
            ztocs,
            layer_sizes: checks::layer_sizes(&image),
            prefetch,
            image,
        })
    }

    /// Put the prefetch artifact `blob` of the index in the local store;
    /// returns its layer digest and digest. One that names no layer is skipped.
    async fn prefetch_artifact(
        &self,
        index_digest: &Digest,
        blob: &json::Descriptor,
    ) -> Result<Option<(String, Digest)>, NoIndex> {
        let Some(layer) = blob.annotations.get(json::ANNOTATION_IMAGE_LAYER_DIGEST) else {
            return Ok(None);
        };
        let digest: Digest = blob.digest.parse().map_err(|e| {
            NoIndex(format!(
                "SOCI index {index_digest} names an invalid prefetch artifact: {e}"
            ))
        })?;
        if blob.size <= 0 || blob.size as u64 > checks::MAX_PREFETCH_SIZE {
            return Err(NoIndex(format!(
                "SOCI index {index_digest} gives prefetch artifact {digest} an impossible size {} (allowed: 1 to {})",
                blob.size,
                checks::MAX_PREFETCH_SIZE
            )));
        }
        self.fetch_into_store("prefetch artifact", &digest, blob.size as u64)
            .await?;
        Ok(Some((layer.clone(), digest)))
    }

    /// Put blob `digest` (a `what` of `size` bytes by the index) in the local
    /// store unless it is there already.
    async fn fetch_into_store(
        &self,
        what: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), NoIndex> {
        if self.store.has_blob(digest) {
            return Ok(());
        }
        let b = self.get_bounded(what, digest, size).await?;
        self.store
            .put_verified(digest, &b)
            .map_err(|e| NoIndex(format!("unable to store {what} {digest}: {e}")))
    }

    /// Fetches a blob the index says is `size` bytes, reading no more than
    /// that: a registry that sends more is refused at the first extra byte.
    async fn get_bounded(
        &self,
        what: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<Vec<u8>, NoIndex> {
        use futures_util::StreamExt as _;
        let fail = |e: String| {
            NoIndex(format!(
                "unable to fetch SOCI artifacts: {what} {digest}: {e}"
            ))
        };
        let mut stream = self
            .client
            .get_blob_stream(self.repo, digest)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut out = Vec::with_capacity(size.min(64 << 20) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fail(e.to_string()))?;
            if out.len() as u64 + chunk.len() as u64 > size {
                return Err(NoIndex(format!(
                    "{what} {digest} is more than the {size} bytes the SOCI index says"
                )));
            }
            out.extend_from_slice(&chunk);
        }
        if out.len() as u64 != size {
            return Err(NoIndex(format!(
                "{what} {digest} is {} bytes, but the SOCI index says {size}",
                out.len()
            )));
        }
        Ok(out)
    }
}
