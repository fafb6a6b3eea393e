//! The `soci` content store: an OCI image layout under `<root>/content`.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use soci_content::{BlobSource, ContentError, LayoutDir, VerifyingReader};
use soci_format::Digest;

/// Errors of the soci store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Content access failed.
    #[error(transparent)]
    Content(#[from] ContentError),
}

/// An OCI layout directory holding SOCI artifacts.
pub struct SociStore {
    root: PathBuf,
    /// Reads go through the layout reader shared with `soci convert`.
    layout: LayoutDir,
}

impl SociStore {
    /// Open the store at `dir`, creating the layout if it does not exist.
    pub fn open(dir: &Path) -> Result<SociStore, StoreError> {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| ContentError::io("create", &blobs, e))?;
        let layout = dir.join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = dir.join("index.json");
        if !index.exists() {
            write_atomic(&index, br#"{"schemaVersion":2,"manifests":[]}"#)?;
        }
        Ok(SociStore {
            root: dir.to_path_buf(),
            layout: LayoutDir::open(dir)?,
        })
    }

    /// Path of a blob.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.layout.blob_path(d)
    }

    /// Store bytes; returns their digest. Existing blobs are left alone.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let d = Digest::of(bytes);
        let p = self.blob_path(&d);
        if !p.exists() {
            write_atomic(&p, bytes)?;
        }
        Ok(d)
    }

    /// Store bytes that must have digest `d` (verified).
    pub fn put_verified(&self, d: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let actual = Digest::of(bytes);
        if &actual != d {
            return Err(ContentError::DigestMismatch {
                expected: d.clone(),
                actual,
                expected_size: bytes.len() as u64,
                size: bytes.len() as u64,
                store: self.describe(),
            }
            .into());
        }
        let p = self.blob_path(d);
        if !p.exists() {
            write_atomic(&p, bytes)?;
        }
        Ok(())
    }

    /// Copy a blob in from a reader, verifying digest and size before it becomes visible.
    pub fn put_stream(&self, d: &Digest, size: u64, r: impl Read) -> Result<(), StoreError> {
        let p = self.blob_path(d);
        if p.exists() {
            return Ok(());
        }
        let dir = p.parent().expect("blob path has a parent");
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| ContentError::io("create temporary file in", dir, e))?;
        let mut vr = VerifyingReader::new(r, d.clone(), size, "incoming blob".into());
        io::copy(&mut vr, &mut tmp).map_err(|e| ContentError::from_io(e, "write", &p))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| ContentError::io("sync", &p, e))?;
        tmp.persist(&p)
            .map_err(|e| ContentError::io("store", &p, e.error))?;
        Ok(())
    }

    /// Delete a blob (no error when it is absent).
    pub fn delete(&self, d: &Digest) -> Result<(), StoreError> {
        let p = self.blob_path(d);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ContentError::io("delete", p, e).into()),
        }
    }

    /// Digests of every blob in the store.
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(|e| ContentError::io("list", &dir, e))? {
            let e = e.map_err(|e| ContentError::io("list", &dir, e))?;
            if let Some(name) = e.file_name().to_str()
                && let Ok(d) = format!("sha256:{name}").parse::<Digest>()
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }
}

fn write_atomic(p: &Path, bytes: &[u8]) -> Result<(), ContentError> {
    let dir = p.parent().expect("path has a parent");
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| ContentError::io("create temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| ContentError::io("write", p, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| ContentError::io("sync", p, e))?;
    tmp.persist(p)
        .map_err(|e| ContentError::io("store", p, e.error))?;
    Ok(())
}

impl BlobSource for SociStore {
    fn describe(&self) -> String {
        format!("soci content store {}", self.root.display())
    }
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.layout.blob_size(digest)
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ContentError> {
        self.layout.open_blob(digest).map_err(|e| match e {
            ContentError::NotFound { digest, .. } => ContentError::NotFound {
                digest,
                store: self.describe(),
            },
            other => other,
        })
    }
    fn local_path(&self, digest: &Digest) -> Option<PathBuf> {
        self.layout.local_path(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_read_verify_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = SociStore::open(&dir.path().join("content")).unwrap();
        let d = s.put(b"ztoc bytes").unwrap();
        assert_eq!(s.read_blob(&d, 100, "ztoc").unwrap(), b"ztoc bytes");
        assert!(
            s.put_verified(&Digest::of(b"other"), b"ztoc bytes")
                .is_err()
        );
        let d2 = Digest::of(b"streamed");
        s.put_stream(&d2, 8, &b"streamed"[..]).unwrap();
        assert_eq!(s.list().unwrap().len(), 2);
        let d3 = Digest::of(b"good");
        assert!(s.put_stream(&d3, 4, &b"evil"[..]).is_err());
        assert!(!s.has_blob(&d3), "a corrupt stream leaves nothing behind");
        s.delete(&d).unwrap();
        s.delete(&d).unwrap();
        assert!(!s.has_blob(&d));
        // The store is an OCI layout.
        assert!(soci_content::open_layout(&dir.path().join("content")).is_ok());
    }
}
