//! `soci rebuild-db`: bring the artifacts database back in line with the store.

use std::time::{SystemTime, UNIX_EPOCH};

use std::collections::HashMap;

use soci_content::BlobSource;
use soci_format::Digest;
use soci_format::json::{self, IndexVersion, SociIndex};

use crate::{ArtifactEntry, ArtifactType, ArtifactsDb, DbError, SociStore, StoreError};

/// The content store [`rebuild`] brings the database in line with: the soci
/// store, or containerd's content store through its API.
pub trait RebuildSource {
    /// Every blob of the store with its size.
    fn blobs(&self) -> Result<Vec<(Digest, u64)>, RebuildError>;
    /// The bytes of blob `d`, failing when it is larger than `max`.
    fn read(&self, d: &Digest, max: u64) -> Result<Vec<u8>, RebuildError>;
}

impl RebuildSource for SociStore {
    fn blobs(&self) -> Result<Vec<(Digest, u64)>, RebuildError> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|d| Some((d.clone(), self.blob_size(&d)?)))
            .collect())
    }
    fn read(&self, d: &Digest, max: u64) -> Result<Vec<u8>, RebuildError> {
        self.read_blob(d, max, "SOCI index")
            .map_err(|e| RebuildError::Source {
                store: "soci content store".into(),
                reason: e.to_string(),
            })
    }
}

/// What [`rebuild`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Entries removed because their blob is gone.
    pub removed: Vec<String>,
    /// Entries added for indexes (and their zTOCs and prefetch artifacts) found in the store.
    pub added: Vec<String>,
}

/// Errors of [`rebuild`].
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another content store failed.
    #[error("{store}: {reason}")]
    Source {
        /// Which store (e.g. `containerd content store`).
        store: String,
        /// What went wrong.
        reason: String,
    },
}

/// Indexes are small; larger blobs are zTOCs or layers and are not read.
const MAX_INDEX_SIZE: u64 = 4 << 20;

/// Upstream skips blobs smaller than this (the `{}` config and the like).
const MIN_INDEX_SIZE: u64 = 10;

/// Unix time now, in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Remove entries whose blob is no longer in `store`, then add an entry for
/// every SOCI index manifest v1 with a subject found in the store that the
/// database does not know, plus entries for the zTOCs and prefetch artifacts
/// it lists. Entries that exist are left as they are.
pub fn rebuild(store: &dyn RebuildSource, db: &ArtifactsDb) -> Result<RebuildReport, RebuildError> {
    let mut report = RebuildReport::default();
    let blobs: HashMap<Digest, u64> = store.blobs()?.into_iter().collect();
    for e in db.list()? {
        let present = e
            .digest
            .parse::<Digest>()
            .is_ok_and(|d| blobs.contains_key(&d));
        if !present {
            db.remove(&e.digest)?;
            report.removed.push(e.digest);
        }
    }
    let now = unix_now();
    let mut candidates: Vec<(&Digest, u64)> = blobs
        .iter()
        .map(|(d, size)| (d, *size))
        .filter(|(_, size)| (MIN_INDEX_SIZE..=MAX_INDEX_SIZE).contains(size))
        .collect();
    candidates.sort();
    for (d, size) in candidates {
        let Ok(bytes) = store.read(d, MAX_INDEX_SIZE) else {
            continue;
        };
        let Ok(index) = SociIndex::from_manifest_bytes(&bytes) else {
            continue;
        };
        if index.version != IndexVersion::V1 || index.media_type != json::MEDIA_TYPE_OCI_MANIFEST {
            continue;
        }
        let Some(subject) = &index.subject else {
            continue;
        };
        if db.get(&d.to_string())?.is_some() {
            continue;
        }
        db.put(&ArtifactEntry {
            digest: d.to_string(),
            size,
            artifact_type: ArtifactType::Index,
            original_digest: subject.digest.clone(),
            image_digest: subject.digest.clone(),
            platform: String::new(),
            location: subject.digest.clone(),
            media_type: index.media_type.clone(),
            index_artifact_type: index.config.media_type.clone(),
            span_size: 0,
            created_at: now,
            image_index_digest: String::new(),
            image_ref: String::new(),
        })?;
        report.added.push(d.to_string());
        for blob in &index.blobs {
            let layer = blob
                .annotations
                .get(json::ANNOTATION_IMAGE_LAYER_DIGEST)
                .cloned()
                .unwrap_or_default();
            let artifact_type = if blob.media_type == json::SOCI_PREFETCH_MEDIA_TYPE {
                ArtifactType::Prefetch
            } else {
                ArtifactType::Ztoc
            };
            let span_size = blob
                .annotations
                .get(json::ANNOTATION_SPAN_SIZE)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if db.get(&blob.digest)?.is_some() {
                continue;
            }
            db.put(&ArtifactEntry {
                digest: blob.digest.clone(),
                size: blob.size.max(0) as u64,
                artifact_type,
                original_digest: layer.clone(),
                image_digest: String::new(),
                platform: String::new(),
                location: layer,
                media_type: blob.media_type.clone(),
                index_artifact_type: String::new(),
                span_size,
                created_at: now,
                image_index_digest: String::new(),
                image_ref: String::new(),
            })?;
            report.added.push(blob.digest.clone());
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use soci_format::json::Descriptor;

    #[test]
    fn rebuild_drops_missing_and_finds_v1_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SociStore::open(&dir.path().join("content")).unwrap();
        let db = ArtifactsDb::open(&dir.path().join("artifacts.db")).unwrap();
        let ztoc = store.put(b"not really a ztoc but a blob").unwrap();
        let z = json::ztoc_descriptor(
            &ztoc,
            28,
            "sha256:1111",
            json::MEDIA_TYPE_OCI_LAYER_GZIP,
            4194304,
            false,
        );
        let subject = Descriptor::new(json::MEDIA_TYPE_OCI_MANIFEST, "sha256:2222", 100);
        let v1 = SociIndex::new(
            IndexVersion::V1,
            vec![z.clone()],
            Some(subject),
            json::build_tool_annotations(None),
        );
        let v1d = store.put(&v1.marshal()).unwrap();
        let v2 = SociIndex::new(
            IndexVersion::V2,
            vec![z],
            None,
            json::build_tool_annotations(None),
        );
        let v2d = store.put(&v2.marshal()).unwrap();
        store.put(json::EMPTY_CONFIG_BYTES).unwrap();
        let mut gone = db.list().unwrap();
        assert!(gone.is_empty());
        let stale = ArtifactEntry {
            digest: soci_format::Digest::of(b"gone").to_string(),
            size: 4,
            artifact_type: ArtifactType::Ztoc,
            original_digest: "sha256:3333".into(),
            image_digest: String::new(),
            platform: String::new(),
            location: String::new(),
            media_type: String::new(),
            index_artifact_type: String::new(),
            span_size: 1,
            created_at: 1,
            image_index_digest: String::new(),
            image_ref: String::new(),
        };
        db.put(&stale).unwrap();
        let r = rebuild(&store, &db).unwrap();
        assert_eq!(r.removed, vec![stale.digest.clone()]);
        assert_eq!(r.added, vec![v1d.to_string(), ztoc.to_string()]);
        let idx = db.get(&v1d.to_string()).unwrap().unwrap();
        assert_eq!(idx.artifact_type, ArtifactType::Index);
        assert_eq!(idx.original_digest, "sha256:2222");
        assert_eq!(idx.index_artifact_type, json::SOCI_INDEX_ARTIFACT_TYPE_V1);
        let z = db.get(&ztoc.to_string()).unwrap().unwrap();
        assert_eq!(
            (z.original_digest.as_str(), z.span_size),
            ("sha256:1111", 4194304)
        );
        assert!(
            db.get(&v2d.to_string()).unwrap().is_none(),
            "v2 indexes have no subject"
        );
        gone = db.list().unwrap();
        assert_eq!(gone.len(), 2);
        assert_eq!(rebuild(&store, &db).unwrap(), RebuildReport::default());
    }
}
