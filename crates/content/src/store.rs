//! The blob-source seam and an in-memory store.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::RwLock;

use soci_format::Digest;
use soci_format::digest::Hasher;

use crate::ContentError;

/// Somewhere blobs can be read from by digest.
pub trait BlobSource: Send + Sync {
    /// Human-readable name of the store, used in error messages.
    fn describe(&self) -> String;

    /// Size of a blob, or `None` when the store does not have it.
    fn blob_size(&self, digest: &Digest) -> Option<u64>;

    /// Open a blob for streaming. The bytes are not verified; wrap the reader
    /// in a [`VerifyingReader`] (or use [`BlobSource::read_blob`]) to check them.
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ContentError>;

    /// A file holding exactly the blob, when the store keeps blobs as files.
    fn local_path(&self, _digest: &Digest) -> Option<PathBuf> {
        None
    }

    /// Whether the store has the blob.
    fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_size(digest).is_some()
    }

    /// Read a whole blob of at most `limit` bytes and verify its digest.
    fn read_blob(
        &self,
        digest: &Digest,
        limit: u64,
        kind: &'static str,
    ) -> Result<Vec<u8>, ContentError> {
        let size = self
            .blob_size(digest)
            .ok_or_else(|| ContentError::NotFound {
                digest: digest.clone(),
                store: self.describe(),
            })?;
        if size > limit {
            return Err(ContentError::TooLarge {
                digest: digest.clone(),
                size,
                limit,
                kind,
            });
        }
        let mut reader = VerifyingReader::new(
            self.open_blob(digest)?,
            digest.clone(),
            size,
            self.describe(),
        );
        let mut buf = Vec::with_capacity(size as usize);
        reader.read_to_end(&mut buf).map_err(|e| {
            ContentError::from_io(e, "read blob", format!("{} in {}", digest, self.describe()))
        })?;
        Ok(buf)
    }
}

/// A reader that hashes what passes through it and fails at end of stream when
/// the digest or the size is not the expected one. A corrupt blob therefore
/// never reads to a clean EOF.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    expected_size: u64,
    read: u64,
    store: String,
}

impl<R: Read> VerifyingReader<R> {
    /// Verify `inner` against `expected` and `expected_size`.
    pub fn new(inner: R, expected: Digest, expected_size: u64, store: String) -> Self {
        VerifyingReader {
            inner,
            hasher: Some(Hasher::new()),
            expected,
            expected_size,
            read: 0,
            store,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.read += n as u64;
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf[..n]);
            }
            if self.read > self.expected_size {
                return Err(self.mismatch(Digest::of(b"")));
            }
            return Ok(n);
        }
        if let Some(h) = self.hasher.take() {
            let actual = h.finish();
            if actual != self.expected || self.read != self.expected_size {
                return Err(self.mismatch(actual));
            }
        }
        Ok(0)
    }
}

impl<R> VerifyingReader<R> {
    fn mismatch(&self, actual: Digest) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            ContentError::DigestMismatch {
                expected: self.expected.clone(),
                actual,
                expected_size: self.expected_size,
                size: self.read,
                store: self.store.clone(),
            },
        )
    }
}

/// Blobs held in memory (new artifacts before they are written out).
#[derive(Default)]
pub struct MemStore {
    blobs: RwLock<BTreeMap<Digest, Vec<u8>>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a blob; returns its digest.
    pub fn put(&self, bytes: Vec<u8>) -> Digest {
        let d = Digest::of(&bytes);
        self.blobs
            .write()
            .expect("poisoned")
            .insert(d.clone(), bytes);
        d
    }

    /// A copy of a blob.
    pub fn get(&self, d: &Digest) -> Option<Vec<u8>> {
        self.blobs.read().expect("poisoned").get(d).cloned()
    }

    /// Digests of all blobs.
    pub fn digests(&self) -> Vec<Digest> {
        self.blobs
            .read()
            .expect("poisoned")
            .keys()
            .cloned()
            .collect()
    }
}

impl BlobSource for MemStore {
    fn describe(&self) -> String {
        "memory store".to_string()
    }
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.blobs
            .read()
            .expect("poisoned")
            .get(digest)
            .map(|b| b.len() as u64)
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ContentError> {
        let bytes = self.get(digest).ok_or_else(|| ContentError::NotFound {
            digest: digest.clone(),
            store: self.describe(),
        })?;
        Ok(Box::new(io::Cursor::new(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifying_reader_accepts_good_and_rejects_bad() {
        let data = b"hello world".to_vec();
        let d = Digest::of(&data);
        let mut ok = Vec::new();
        VerifyingReader::new(&data[..], d.clone(), data.len() as u64, "t".into())
            .read_to_end(&mut ok)
            .unwrap();
        assert_eq!(ok, data);

        let bad = b"hello worle".to_vec();
        let err = VerifyingReader::new(&bad[..], d.clone(), data.len() as u64, "t".into())
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("is corrupt"), "{err}");

        let short = b"hello".to_vec();
        assert!(
            VerifyingReader::new(&short[..], d.clone(), data.len() as u64, "t".into())
                .read_to_end(&mut Vec::new())
                .is_err()
        );
        let long = b"hello world!".to_vec();
        assert!(
            VerifyingReader::new(&long[..], d, data.len() as u64, "t".into())
                .read_to_end(&mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn mem_store_read_blob_verifies() {
        let s = MemStore::new();
        let d = s.put(b"{}".to_vec());
        assert_eq!(s.read_blob(&d, 10, "manifest").unwrap(), b"{}");
        assert!(matches!(
            s.read_blob(&d, 1, "manifest"),
            Err(ContentError::TooLarge { .. })
        ));
        let missing = Digest::of(b"x");
        assert!(matches!(
            s.read_blob(&missing, 10, "manifest"),
            Err(ContentError::NotFound { .. })
        ));
    }
}
