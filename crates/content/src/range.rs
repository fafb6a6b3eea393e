//! The range-reading seam: byte ranges of a blob, by digest.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::RwLock;

use soci_format::Digest;

use crate::ContentError;

/// Reads byte ranges of blobs. Implemented for registries, local files and
/// test fakes; the span manager depends on nothing else to fetch layer bytes.
///
/// Calls block; implementations are used from many threads at once.
pub trait BlobRangeReader: Send + Sync {
    /// Size of the blob in bytes.
    fn blob_size(&self, digest: &Digest) -> Result<u64, ContentError>;

    /// Read each of `ranges` (sorted, non-overlapping, within the blob) in as few
    /// requests as the implementation can. The result has one buffer per range,
    /// each exactly as long as its range. The bytes are not verified here.
    fn read_ranges(
        &self,
        digest: &Digest,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Vec<u8>>, ContentError>;
}

/// Blobs in local files (a layout directory, a cache, test fixtures).
#[derive(Default)]
pub struct FileRangeReader {
    files: RwLock<HashMap<Digest, PathBuf>>,
}

impl FileRangeReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serve `digest` from `path`.
    pub fn add(&self, digest: Digest, path: PathBuf) {
        self.files.write().expect("poisoned").insert(digest, path);
    }

    fn path(&self, digest: &Digest) -> Result<PathBuf, ContentError> {
        self.files
            .read()
            .expect("poisoned")
            .get(digest)
            .cloned()
            .ok_or_else(|| ContentError::NotFound {
                digest: digest.clone(),
                store: "local files".into(),
            })
    }
}

impl BlobRangeReader for FileRangeReader {
    fn blob_size(&self, digest: &Digest) -> Result<u64, ContentError> {
        let p = self.path(digest)?;
        Ok(std::fs::metadata(&p)
            .map_err(|e| ContentError::io("stat", p, e))?
            .len())
    }

    fn read_ranges(
        &self,
        digest: &Digest,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Vec<u8>>, ContentError> {
        let p = self.path(digest)?;
        let f = File::open(&p).map_err(|e| ContentError::io("open", &p, e))?;
        let size = f
            .metadata()
            .map_err(|e| ContentError::io("stat", &p, e))?
            .len();
        ranges
            .iter()
            .map(|r| {
                if r.start > r.end || r.end > size {
                    return Err(ContentError::io(
                        "read",
                        &p,
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            format!("range {}..{} outside blob of {size} bytes", r.start, r.end),
                        ),
                    ));
                }
                let mut buf = vec![0u8; (r.end - r.start) as usize];
                f.read_exact_at(&mut buf, r.start)
                    .map_err(|e| ContentError::io("read", &p, e))?;
                Ok(buf)
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn reads_ranges_and_rejects_out_of_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("blob");
        std::fs::write(&p, b"0123456789").unwrap();
        let d = Digest::of(b"0123456789");
        let r = FileRangeReader::new();
        r.add(d.clone(), p);
        assert_eq!(r.blob_size(&d).unwrap(), 10);
        assert_eq!(
            r.read_ranges(&d, &[0..2, 5..10]).unwrap(),
            vec![b"01".to_vec(), b"56789".to_vec()]
        );
        assert!(r.read_ranges(&d, &[5..11]).is_err());
        assert!(r.blob_size(&Digest::of(b"x")).is_err());
    }
}
