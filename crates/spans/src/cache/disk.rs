//! A span cache in files: `<dir>/<layer hex>/<span id>`.
//!
//! Each file is a 48-byte header followed by the span's uncompressed bytes:
//!
//! ```text
//! offset 0   8 bytes   magic "SOCISPN1"
//! offset 8   u64 LE    length of the data
//! offset 16  32 bytes  sha256 of the data
//! offset 48  data
//! ```
//!
//! Files are written under a temporary name in the layer's directory and renamed
//! into place, so a crash leaves either no entry or a whole one; temporary files
//! left by a crash are deleted when the cache is opened. A file whose size,
//! header or (on first use in this process) sha256 does not match is deleted and
//! reported as a miss, so a truncated or corrupted file is fetched again rather
//! than served.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use soci_format::Digest;
use soci_format::digest::Hasher;
use soci_format::zinfo::SpanId;

use super::{CachedSpan, SpanCache};
use crate::SpanError;

const MAGIC: &[u8; 8] = b"SOCISPN1";
/// Size of the header in front of each cached span.
pub const HEADER_SIZE: u64 = 48;
const TMP_PREFIX: &str = ".tmp-";
const HASH_CHUNK: usize = 1 << 20;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Spans in files under one directory. Survives restarts: a new instance on the
/// same directory serves what an earlier one stored.
#[derive(Debug)]
pub struct DiskSpanCache {
    dir: PathBuf,
    /// Bytes of all entry files; the lock also orders accounting with renames.
    used: Mutex<u64>,
    /// Entries whose sha256 was checked (or written) by this instance.
    verified: Mutex<HashSet<(Digest, SpanId)>>,
    verify_every_get: bool,
    sync: bool,
}

impl DiskSpanCache {
    /// Open (creating if needed) a cache in `dir`. Deletes temporary files left
    /// by an interrupted `put` and counts the bytes of the entries present.
    pub fn new(dir: impl Into<PathBuf>) -> Result<DiskSpanCache, SpanError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| SpanError::cache("create", &dir, e))?;
        let mut used = 0u64;
        for layer in fs::read_dir(&dir).map_err(|e| SpanError::cache("list", &dir, e))? {
            let layer = layer.map_err(|e| SpanError::cache("list", &dir, e))?;
            let path = layer.path();
            let is_layer = layer.file_name().to_str().is_some_and(is_hex_digest);
            if !is_layer || !path.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&path).map_err(|e| SpanError::cache("list", &path, e))? {
                let entry = entry.map_err(|e| SpanError::cache("list", &path, e))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(TMP_PREFIX) {
                    let p = entry.path();
                    fs::remove_file(&p).map_err(|e| SpanError::cache("remove", &p, e))?;
                } else if name.parse::<SpanId>().is_ok() {
                    used += entry.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
        Ok(DiskSpanCache {
            dir,
            used: Mutex::new(used),
            verified: Mutex::new(HashSet::new()),
            verify_every_get: false,
            sync: false,
        })
    }

    /// Check the sha256 of an entry on every `get`, not only on its first use by
    /// this instance (catches files corrupted while the process runs, at the
    /// cost of reading whole spans).
    pub fn with_verify_every_get(mut self, on: bool) -> DiskSpanCache {
        self.verify_every_get = on;
        self
    }

    /// `fsync` each entry before it is renamed into place.
    pub fn with_sync(mut self, on: bool) -> DiskSpanCache {
        self.sync = on;
        self
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the entry for `span` of `layer`.
    pub fn span_path(&self, layer: &Digest, span: SpanId) -> PathBuf {
        self.layer_dir(layer).join(span.to_string())
    }

    fn layer_dir(&self, layer: &Digest) -> PathBuf {
        self.dir.join(layer.hex())
    }

    /// Open and check an entry. `Ok(None)` = absent; `Err` = present but bad.
    fn open_checked(
        &self,
        path: &Path,
        key: &(Digest, SpanId),
        expected_len: u64,
    ) -> Result<Option<CachedSpan>, String> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("open: {e}")),
        };
        let size = file.metadata().map_err(|e| format!("stat: {e}"))?.len();
        if size != HEADER_SIZE + expected_len {
            return Err(format!(
                "file is {size} bytes, expected {}",
                HEADER_SIZE + expected_len
            ));
        }
        let mut header = [0u8; HEADER_SIZE as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| format!("read header: {e}"))?;
        if &header[..8] != MAGIC {
            return Err("bad magic".into());
        }
        let len = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        if len != expected_len {
            return Err(format!("header length {len}, expected {expected_len}"));
        }
        let known = !self.verify_every_get && self.verified.lock().expect("poisoned").contains(key);
        if !known {
            let mut hasher = Hasher::new();
            let mut buf = vec![0u8; HASH_CHUNK.min(len as usize)];
            let mut at = 0u64;
            while at < len {
                let n = (len - at).min(buf.len() as u64) as usize;
                file.read_exact_at(&mut buf[..n], HEADER_SIZE + at)
                    .map_err(|e| format!("read data at {at}: {e}"))?;
                hasher.update(&buf[..n]);
                at += n as u64;
            }
            let actual = hasher.finish();
            let stored = Digest::from_sha256(header[16..48].try_into().expect("32 bytes"));
            if actual != stored {
                return Err(format!("data hashes to {actual}, header says {stored}"));
            }
            self.verified.lock().expect("poisoned").insert(key.clone());
        }
        Ok(Some(CachedSpan::from_file(file, HEADER_SIZE, len)))
    }

    fn drop_entry(&self, path: &Path, key: &(Digest, SpanId)) {
        self.verified.lock().expect("poisoned").remove(key);
        let mut used = self.used.lock().expect("poisoned");
        if let Ok(m) = fs::metadata(path) {
            match fs::remove_file(path) {
                Ok(()) => *used = used.saturating_sub(m.len()),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a bad cached span")
                }
            }
        }
    }

    fn write_tmp(&self, tmp: &Path, data: &[u8]) -> io::Result<()> {
        let mut header = [0u8; HEADER_SIZE as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&(data.len() as u64).to_le_bytes());
        header[16..48].copy_from_slice(&hex_to_bytes(Digest::of(data).hex()));
        let mut f = File::create_new(tmp)?;
        f.write_all(&header)?;
        f.write_all(data)?;
        if self.sync {
            f.sync_data()?;
        }
        Ok(())
    }
}

impl SpanCache for DiskSpanCache {
    fn get(&self, layer: &Digest, span: SpanId, expected_len: u64) -> Option<CachedSpan> {
        let path = self.span_path(layer, span);
        let key = (layer.clone(), span);
        match self.open_checked(&path, &key, expected_len) {
            Ok(found) => found,
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "dropping a corrupt cached span");
                self.drop_entry(&path, &key);
                None
            }
        }
    }

    fn put(&self, layer: &Digest, span: SpanId, data: &[u8]) -> Result<(), SpanError> {
        let dir = self.layer_dir(layer);
        fs::create_dir_all(&dir).map_err(|e| SpanError::cache("create", &dir, e))?;
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{TMP_PREFIX}{span}-{}-{seq}", std::process::id()));
        if let Err(e) = self.write_tmp(&tmp, data) {
            let _ = fs::remove_file(&tmp);
            return Err(SpanError::cache("write", &tmp, e));
        }
        let path = self.span_path(layer, span);
        let mut used = self.used.lock().expect("poisoned");
        let old = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(SpanError::cache("rename into", &path, e));
        }
        *used = used.saturating_sub(old) + HEADER_SIZE + data.len() as u64;
        drop(used);
        self.verified
            .lock()
            .expect("poisoned")
            .insert((layer.clone(), span));
        Ok(())
    }

    fn remove_layer(&self, layer: &Digest) -> Result<(), SpanError> {
        let dir = self.layer_dir(layer);
        let mut used = self.used.lock().expect("poisoned");
        self.verified
            .lock()
            .expect("poisoned")
            .retain(|(l, _)| l != layer);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SpanError::cache("list", &dir, e)),
        };
        let mut freed = 0u64;
        for entry in entries.flatten() {
            let is_span = entry
                .file_name()
                .to_string_lossy()
                .parse::<SpanId>()
                .is_ok();
            if is_span {
                freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SpanError::cache("remove", &dir, e)),
        }
        *used = used.saturating_sub(freed);
        Ok(())
    }

    fn bytes_used(&self) -> u64 {
        *self.used.lock().expect("poisoned")
    }
}

fn is_hex_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex_to_bytes(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("digest hex is valid");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> Digest {
        Digest::of(b"layer")
    }

    #[test]
    fn round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskSpanCache::new(dir.path()).unwrap();
        c.put(&layer(), 3, b"span three").unwrap();
        assert_eq!(c.bytes_used(), HEADER_SIZE + 10);
        let got = c.get(&layer(), 3, 10).unwrap();
        let mut buf = [0u8; 5];
        got.read_exact_at(5, &mut buf).unwrap();
        assert_eq!(&buf, b"three");
        assert!(got.read_exact_at(6, &mut buf).is_err());
        assert!(c.get(&layer(), 4, 10).is_none());

        let c2 = DiskSpanCache::new(dir.path()).unwrap();
        assert_eq!(c2.bytes_used(), HEADER_SIZE + 10);
        assert_eq!(
            c2.get(&layer(), 3, 10).unwrap().to_vec().unwrap(),
            b"span three"
        );
        c2.remove_layer(&layer()).unwrap();
        assert_eq!(c2.bytes_used(), 0);
        assert!(c2.get(&layer(), 3, 10).is_none());
        c2.remove_layer(&layer()).unwrap();
    }

    #[test]
    fn empty_span() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskSpanCache::new(dir.path()).unwrap();
        c.put(&layer(), 0, b"").unwrap();
        assert!(c.get(&layer(), 0, 0).unwrap().is_empty());
    }

    #[test]
    fn leftover_temp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ldir = dir.path().join(layer().hex());
        fs::create_dir_all(&ldir).unwrap();
        fs::write(ldir.join(".tmp-0-1-2"), b"partial").unwrap();
        let c = DiskSpanCache::new(dir.path()).unwrap();
        assert_eq!(c.bytes_used(), 0);
        assert!(!ldir.join(".tmp-0-1-2").exists());
    }

    #[test]
    fn wrong_length_truncated_and_flipped_files_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskSpanCache::new(dir.path()).unwrap();
        let data = vec![7u8; 3000];
        let path = c.span_path(&layer(), 1);

        c.put(&layer(), 1, &data).unwrap();
        assert!(c.get(&layer(), 1, 2999).is_none(), "length mismatch");
        assert!(!path.exists());
        assert_eq!(c.bytes_used(), 0);

        c.put(&layer(), 1, &data).unwrap();
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(HEADER_SIZE + 100).unwrap();
        assert!(c.get(&layer(), 1, 3000).is_none(), "truncated");

        // A flipped data bit with the right length: caught by the sha256 on the
        // first use by a fresh instance.
        c.put(&layer(), 1, &data).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_SIZE as usize + 1234] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let fresh = DiskSpanCache::new(dir.path()).unwrap();
        assert!(fresh.get(&layer(), 1, 3000).is_none(), "flipped bit");
        assert!(!path.exists());

        // verify_every_get catches corruption after the first use too.
        let c = DiskSpanCache::new(dir.path())
            .unwrap()
            .with_verify_every_get(true);
        c.put(&layer(), 1, &data).unwrap();
        assert!(c.get(&layer(), 1, 3000).is_some());
        fs::write(&path, &bytes).unwrap();
        assert!(c.get(&layer(), 1, 3000).is_none());
    }
}
