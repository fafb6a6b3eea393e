//! The artifacts database.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const ARTIFACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("soci_artifacts");

/// What an artifact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArtifactType {
    /// A SOCI index manifest.
    #[serde(rename = "soci_index")]
    Index,
    /// A zTOC.
    #[serde(rename = "soci_layer")]
    Ztoc,
    /// A prefetch artifact.
    #[serde(rename = "soci_prefetch")]
    Prefetch,
}

impl ArtifactType {
    /// Upstream's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactType::Index => "soci_index",
            ArtifactType::Ztoc => "soci_layer",
            ArtifactType::Prefetch => "soci_prefetch",
        }
    }
}

/// One artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactEntry {
    /// Digest of the artifact blob.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// What it is.
    #[serde(rename = "type")]
    pub artifact_type: ArtifactType,
    /// For zTOCs, the layer digest; for indexes, the image manifest digest.
    pub original_digest: String,
    /// For indexes: digest of the image (manifest or image index) it was built from.
    #[serde(default)]
    pub image_digest: String,
    /// For indexes: the platform (`os/arch[/variant]`).
    #[serde(default)]
    pub platform: String,
    /// Where the artifact's subject lives (layer or manifest digest).
    #[serde(default)]
    pub location: String,
    /// Media type of the artifact blob.
    #[serde(default)]
    pub media_type: String,
    /// For indexes: the index's artifact type (v1 or v2).
    #[serde(default)]
    pub index_artifact_type: String,
    /// For zTOCs: the span size.
    #[serde(default)]
    pub span_size: u64,
    /// Unix time in seconds when the artifact was created.
    pub created_at: i64,
    /// For v2 indexes: digest of the image index that binds it (set by convert).
    #[serde(default)]
    pub image_index_digest: String,
    /// For indexes built by `soci create`: the image reference it was built
    /// from, as given (shown as `IMAGE REF` by `soci index list`).
    #[serde(default)]
    pub image_ref: String,
}

/// Errors of the artifacts database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be opened or written.
    #[error("artifacts database {path}: {message}")]
    Db {
        /// Path of the database.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A record could not be decoded.
    #[error("artifacts database {path}: record {key} is corrupt: {message}; run `soci rebuild-db`")]
    Corrupt {
        /// Path of the database.
        path: PathBuf,
        /// Key of the record.
        key: String,
        /// Decoder message.
        message: String,
    },
}

/// The artifacts database.
pub struct ArtifactsDb {
    db: Database,
    path: PathBuf,
}

impl ArtifactsDb {
    /// Open or create the database at `path` (its directory must exist).
    pub fn open(path: &Path) -> Result<ArtifactsDb, DbError> {
        let db = Database::create(path).map_err(|e| DbError::Db {
            path: path.to_path_buf(),
            message: format!("cannot open: {e}"),
        })?;
        let this = ArtifactsDb {
            db,
            path: path.to_path_buf(),
        };
        // Make sure the table exists so that readers never see "no such table".
        this.write(|t| {
            let _ = t;
            Ok(())
        })?;
        Ok(this)
    }

    fn err(&self, e: impl std::fmt::Display) -> DbError {
        DbError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn write(
        &self,
        f: impl FnOnce(&mut redb::Table<&str, &[u8]>) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(ARTIFACTS).map_err(|e| self.err(e))?;
            f(&mut t)?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Add or replace an entry.
    pub fn put(&self, entry: &ArtifactEntry) -> Result<(), DbError> {
        let bytes = serde_json::to_vec(entry).map_err(|e| self.err(e))?;
        self.write(|t| {
            t.insert(entry.digest.as_str(), bytes.as_slice())
                .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    /// Remove an entry; returns whether it existed.
    pub fn remove(&self, digest: &str) -> Result<bool, DbError> {
        let mut existed = false;
        self.write(|t| {
            existed = t.remove(digest).map_err(|e| self.err(e))?.is_some();
            Ok(())
        })?;
        Ok(existed)
    }

    /// One entry.
    pub fn get(&self, digest: &str) -> Result<Option<ArtifactEntry>, DbError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(ARTIFACTS).map_err(|e| self.err(e))?;
        match t.get(digest).map_err(|e| self.err(e))? {
            Some(v) => self.decode(digest, v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<ArtifactEntry, DbError> {
        serde_json::from_slice(bytes).map_err(|e| DbError::Corrupt {
            path: self.path.clone(),
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    /// Every entry, in digest order.
    pub fn list(&self) -> Result<Vec<ArtifactEntry>, DbError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(ARTIFACTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(self.decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// The zTOC already built for a layer with this span size, if any.
    pub fn ztoc_for_layer(
        &self,
        layer: &str,
        span_size: u64,
    ) -> Result<Option<ArtifactEntry>, DbError> {
        Ok(self.list()?.into_iter().find(|e| {
            e.artifact_type == ArtifactType::Ztoc
                && e.original_digest == layer
                && e.span_size == span_size
        }))
    }

    /// SOCI indexes built for an image manifest, newest first.
    pub fn indexes_for_manifest(&self, manifest: &str) -> Result<Vec<ArtifactEntry>, DbError> {
        let mut v: Vec<_> = self
            .list()?
            .into_iter()
            .filter(|e| e.artifact_type == ArtifactType::Index && e.original_digest == manifest)
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.created_at));
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(d: &str, t: ArtifactType, orig: &str) -> ArtifactEntry {
        ArtifactEntry {
            digest: d.into(),
            size: 10,
            artifact_type: t,
            original_digest: orig.into(),
            image_digest: String::new(),
            platform: "linux/amd64".into(),
            location: orig.into(),
            media_type: "application/octet-stream".into(),
            index_artifact_type: String::new(),
            span_size: 4194304,
            created_at: 1,
            image_index_digest: String::new(),
            image_ref: String::new(),
        }
    }

    #[test]
    fn put_get_list_remove_persist() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("artifacts.db");
        {
            let db = ArtifactsDb::open(&p).unwrap();
            db.put(&entry("sha256:a", ArtifactType::Ztoc, "sha256:l1"))
                .unwrap();
            db.put(&entry("sha256:b", ArtifactType::Index, "sha256:m1"))
                .unwrap();
            assert_eq!(db.list().unwrap().len(), 2);
        }
        let db = ArtifactsDb::open(&p).unwrap();
        assert_eq!(
            db.get("sha256:a").unwrap().unwrap().original_digest,
            "sha256:l1"
        );
        assert!(db.ztoc_for_layer("sha256:l1", 4194304).unwrap().is_some());
        assert!(db.ztoc_for_layer("sha256:l1", 1).unwrap().is_none());
        assert_eq!(db.indexes_for_manifest("sha256:m1").unwrap().len(), 1);
        assert!(db.remove("sha256:a").unwrap());
        assert!(!db.remove("sha256:a").unwrap());
        assert_eq!(db.list().unwrap().len(), 1);
    }
}
