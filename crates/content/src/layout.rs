//! OCI image layouts: directories and tar archives (`oci-archive`).

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use soci_format::Digest;

use crate::{BlobSource, ContentError};

const OCI_LAYOUT_FILE: &str = "oci-layout";
const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// index.json is small; refuse absurd ones instead of reading them into memory.
const MAX_INDEX_JSON: u64 = 16 << 20;

/// An OCI image layout that can be read.
pub trait Layout: BlobSource {
    /// The bytes of the layout's `index.json`.
    fn index_json(&self) -> Result<Vec<u8>, ContentError>;
}

/// Open a layout directory or a layout tar archive.
pub fn open_layout(path: &Path) -> Result<Box<dyn Layout>, ContentError> {
    let meta = fs::metadata(path).map_err(|e| ContentError::io("open image layout", path, e))?;
    if meta.is_dir() {
        Ok(Box::new(LayoutDir::open(path)?))
    } else {
        Ok(Box::new(LayoutArchive::open(path)?))
    }
}

fn blob_rel_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

/// An OCI image layout directory.
pub struct LayoutDir {
    path: PathBuf,
}

impl LayoutDir {
    /// Open an existing layout directory (it must have an `index.json`).
    pub fn open(path: &Path) -> Result<LayoutDir, ContentError> {
        if !path.join("index.json").is_file() {
            return Err(ContentError::InvalidLayout {
                path: path.to_path_buf(),
                reason: "it has no index.json".into(),
            });
        }
        Ok(LayoutDir {
            path: path.to_path_buf(),
        })
    }

    /// Path of a blob inside the layout (it may not exist).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.path.join(blob_rel_path(d))
    }
}

impl BlobSource for LayoutDir {
    fn describe(&self) -> String {
        format!("OCI layout {}", self.path.display())
    }
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ContentError> {
        let p = self.blob_path(digest);
        match File::open(&p) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound {
                digest: digest.clone(),
                store: self.describe(),
            }),
            Err(e) => Err(ContentError::io("open blob", p, e)),
        }
    }
    fn local_path(&self, digest: &Digest) -> Option<PathBuf> {
        let p = self.blob_path(digest);
        p.is_file().then_some(p)
    }
}

impl Layout for LayoutDir {
    fn index_json(&self) -> Result<Vec<u8>, ContentError> {
        read_limited_file(&self.path.join("index.json"))
    }
}

fn read_limited_file(p: &Path) -> Result<Vec<u8>, ContentError> {
    let f = File::open(p).map_err(|e| ContentError::io("open", p, e))?;
    let mut buf = Vec::new();
    f.take(MAX_INDEX_JSON + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ContentError::io("read", p, e))?;
    if buf.len() as u64 > MAX_INDEX_JSON {
        return Err(ContentError::InvalidLayout {
            path: p.to_path_buf(),
            reason: format!("index.json is larger than {MAX_INDEX_JSON} bytes"),
        });
    }
    Ok(buf)
}

/// An OCI image layout stored as a tar archive. The archive is scanned once for
/// its members; blobs are then read in place, without extracting anything.
pub struct LayoutArchive {
    path: PathBuf,
    members: HashMap<String, (u64, u64)>,
}

impl LayoutArchive {
    /// Scan a layout tar.
    pub fn open(path: &Path) -> Result<LayoutArchive, ContentError> {
        let file = File::open(path).map_err(|e| ContentError::io("open image archive", path, e))?;
        let invalid = |reason: String| ContentError::InvalidLayout {
            path: path.to_path_buf(),
            reason,
        };
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let entries = archive
            .entries_with_seek()
            .map_err(|e| invalid(format!("cannot read it as a tar archive: {e}")))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| invalid(format!("cannot read it as a tar archive: {e}")))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = name
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_string();
            members.insert(name, (entry.raw_file_position(), entry.size()));
        }
        if !members.contains_key("index.json") {
            return Err(invalid("the archive has no index.json (is it an OCI archive, e.g. from `skopeo copy ... oci-archive:FILE`?)".into()));
        }
        Ok(LayoutArchive {
            path: path.to_path_buf(),
            members,
        })
    }

    fn member(&self, name: &str) -> Result<Box<dyn Read + Send + '_>, ContentError> {
        let &(offset, size) =
            self.members
                .get(name)
                .ok_or_else(|| ContentError::InvalidLayout {
                    path: self.path.clone(),
                    reason: format!("missing member {name}"),
                })?;
        let mut f = File::open(&self.path)
            .map_err(|e| ContentError::io("open image archive", &self.path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| ContentError::io("seek in image archive", &self.path, e))?;
        Ok(Box::new(f.take(size)))
    }
}

impl BlobSource for LayoutArchive {
    fn describe(&self) -> String {
        format!("OCI archive {}", self.path.display())
    }
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.members
            .get(&blob_rel_path(digest))
            .map(|&(_, size)| size)
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ContentError> {
        if !self.members.contains_key(&blob_rel_path(digest)) {
            return Err(ContentError::NotFound {
                digest: digest.clone(),
                store: self.describe(),
            });
        }
        self.member(&blob_rel_path(digest))
    }
}

impl Layout for LayoutArchive {
    fn index_json(&self) -> Result<Vec<u8>, ContentError> {
        let mut buf = Vec::new();
        self.member("index.json")?
            .take(MAX_INDEX_JSON + 1)
            .read_to_end(&mut buf)
            .map_err(|e| ContentError::io("read index.json of", &self.path, e))?;
        if buf.len() as u64 > MAX_INDEX_JSON {
            return Err(ContentError::InvalidLayout {
                path: self.path.clone(),
                reason: format!("index.json is larger than {MAX_INDEX_JSON} bytes"),
            });
        }
        Ok(buf)
    }
}

/// Output format of a written layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A tar archive of the layout.
    OciArchive,
    /// A layout directory.
    OciDir,
}

enum Sink {
    Archive {
        tmp: tempfile::NamedTempFile,
        builder: tar::Builder<io::BufWriter<File>>,
    },
    Dir {
        tmp: tempfile::TempDir,
    },
}

/// Writes a new OCI image layout. Nothing appears at the destination until
/// [`LayoutWriter::finish`] succeeds: the layout is written next to it and renamed into place.
pub struct LayoutWriter {
    dest: PathBuf,
    sink: Sink,
    written: BTreeSet<Digest>,
}

impl LayoutWriter {
    /// Start writing a layout that will end up at `dest`.
    pub fn new(dest: &Path, format: OutputFormat) -> Result<LayoutWriter, ContentError> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if dest.is_dir() && format == OutputFormat::OciArchive {
            return Err(ContentError::InvalidLayout {
                path: dest.to_path_buf(),
                reason: "the destination is a directory; use --format oci-dir or name a file"
                    .into(),
            });
        }
        if dest.exists() && format == OutputFormat::OciDir {
            let is_layout = dest.join(OCI_LAYOUT_FILE).is_file();
            let is_empty_dir = fs::read_dir(dest)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !is_layout && !is_empty_dir {
                return Err(ContentError::InvalidLayout {
                    path: dest.to_path_buf(),
                    reason: "the destination exists and is not an OCI layout directory; refusing to replace it".into(),
                });
            }
        }
        let sink = match format {
            OutputFormat::OciArchive => {
                let tmp = tempfile::Builder::new()
                    .prefix(".soci-convert-")
                    .tempfile_in(&parent)
                    .map_err(|e| ContentError::io("create temporary file in", &parent, e))?;
                let file = tmp
                    .reopen()
                    .map_err(|e| ContentError::io("open temporary file", tmp.path(), e))?;
                let mut builder = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, file));
                builder.mode(tar::HeaderMode::Deterministic);
                append_bytes(
                    &mut builder,
                    OCI_LAYOUT_FILE,
                    OCI_LAYOUT_CONTENT,
                    tmp.path(),
                )?;
                append_dir(&mut builder, "blobs/", tmp.path())?;
                append_dir(&mut builder, "blobs/sha256/", tmp.path())?;
                Sink::Archive { tmp, builder }
            }
            OutputFormat::OciDir => {
                let tmp = tempfile::Builder::new()
                    .prefix(".soci-convert-")
                    .tempdir_in(&parent)
                    .map_err(|e| ContentError::io("create temporary directory in", &parent, e))?;
                let blobs = tmp.path().join("blobs/sha256");
                fs::create_dir_all(&blobs).map_err(|e| ContentError::io("create", &blobs, e))?;
                let layout = tmp.path().join(OCI_LAYOUT_FILE);
                fs::write(&layout, OCI_LAYOUT_CONTENT)
                    .map_err(|e| ContentError::io("write", &layout, e))?;
                Sink::Dir { tmp }
            }
        };
        Ok(LayoutWriter {
            dest: dest.to_path_buf(),
            sink,
            written: BTreeSet::new(),
        })
    }

    /// Whether a blob was already written.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.written.contains(d)
    }

    /// Add a blob held in memory.
    pub fn add_blob_bytes(&mut self, d: &Digest, bytes: &[u8]) -> Result<(), ContentError> {
        if !self.written.insert(d.clone()) {
            return Ok(());
        }
        let rel = blob_rel_path(d);
        match &mut self.sink {
            Sink::Archive { tmp, builder } => append_bytes(builder, &rel, bytes, tmp.path()),
            Sink::Dir { tmp } => {
                let p = tmp.path().join(&rel);
                fs::write(&p, bytes).map_err(|e| ContentError::io("write", p, e))
            }
        }
    }

    /// Copy a blob from a source, verifying its digest on the way.
    pub fn copy_blob(&mut self, source: &dyn BlobSource, d: &Digest) -> Result<(), ContentError> {
        if self.written.contains(d) {
            return Ok(());
        }
        let size = source.blob_size(d).ok_or_else(|| ContentError::NotFound {
            digest: d.clone(),
            store: source.describe(),
        })?;
        let rel = blob_rel_path(d);
        let reader = source.open_blob(d)?;
        let mut reader = crate::VerifyingReader::new(reader, d.clone(), size, source.describe());
        match &mut self.sink {
            Sink::Archive { tmp, builder } => {
                let mut header = file_header(size);
                builder
                    .append_data(&mut header, &rel, &mut reader)
                    .map_err(|e| ContentError::from_io(e, "write", tmp.path()))?;
            }
            Sink::Dir { tmp } => {
                let p = tmp.path().join(&rel);
                // A hard link is free, but only safe once the source bytes are verified.
                let linked = source.local_path(d).is_some_and(|src| {
                    io::copy(&mut reader, &mut io::sink()).is_ok()
                        && fs::hard_link(&src, &p).is_ok()
                });
                if !linked {
                    if reader.bytes_read() > 0 {
                        reader = crate::VerifyingReader::new(
                            source.open_blob(d)?,
                            d.clone(),
                            size,
                            source.describe(),
                        );
                    }
                    let mut out =
                        File::create(&p).map_err(|e| ContentError::io("create", &p, e))?;
                    io::copy(&mut reader, &mut out)
                        .map_err(|e| ContentError::from_io(e, "write", &p))?;
                }
            }
        }
        self.written.insert(d.clone());
        Ok(())
    }

    /// Write `index.json` and move the layout into place.
    pub fn finish(self, index_json: &[u8]) -> Result<(), ContentError> {
        match self.sink {
            Sink::Archive { tmp, mut builder } => {
                append_bytes(&mut builder, "index.json", index_json, tmp.path())?;
                let mut w = builder
                    .into_inner()
                    .map_err(|e| ContentError::io("finish archive", tmp.path(), e))?;
                w.flush()
                    .map_err(|e| ContentError::io("write", tmp.path(), e))?;
                let f = w
                    .into_inner()
                    .map_err(|e| ContentError::io("write", tmp.path(), e.into_error()))?;
                f.sync_all()
                    .map_err(|e| ContentError::io("sync", tmp.path(), e))?;
                tmp.persist(&self.dest).map_err(|e| {
                    ContentError::io("move archive into place at", &self.dest, e.error)
                })?;
            }
            Sink::Dir { tmp } => {
                let p = tmp.path().join("index.json");
                fs::write(&p, index_json).map_err(|e| ContentError::io("write", &p, e))?;
                if self.dest.exists() {
                    fs::remove_dir_all(&self.dest)
                        .map_err(|e| ContentError::io("replace", &self.dest, e))?;
                }
                let tmp_path = tmp.keep();
                fs::rename(&tmp_path, &self.dest)
                    .map_err(|e| ContentError::io("move layout into place at", &self.dest, e))?;
                let mut perms = fs::metadata(&self.dest)
                    .map_err(|e| ContentError::io("stat", &self.dest, e))?
                    .permissions();
                std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
                fs::set_permissions(&self.dest, perms)
                    .map_err(|e| ContentError::io("chmod", &self.dest, e))?;
            }
        }
        Ok(())
    }
}

fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_bytes(
    b: &mut tar::Builder<io::BufWriter<File>>,
    name: &str,
    bytes: &[u8],
    tmp: &Path,
) -> Result<(), ContentError> {
    let mut h = file_header(bytes.len() as u64);
    b.append_data(&mut h, name, bytes)
        .map_err(|e| ContentError::io("write", tmp, e))
}

fn append_dir(
    b: &mut tar::Builder<io::BufWriter<File>>,
    name: &str,
    tmp: &Path,
) -> Result<(), ContentError> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    b.append_data(&mut h, name, io::empty())
        .map_err(|e| ContentError::io("write", tmp, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(format: OutputFormat) {
        let dir = tempfile::tempdir().unwrap();
        let src = crate::MemStore::new();
        let a = src.put(b"layer bytes".to_vec());
        let dest = dir.path().join("out");
        let mut w = LayoutWriter::new(&dest, format).unwrap();
        w.copy_blob(&src, &a).unwrap();
        let b = Digest::of(b"{}");
        w.add_blob_bytes(&b, b"{}").unwrap();
        assert!(!dest.exists(), "nothing visible before finish");
        w.finish(br#"{"schemaVersion":2}"#).unwrap();
        let layout = open_layout(&dest).unwrap();
        assert_eq!(layout.index_json().unwrap(), br#"{"schemaVersion":2}"#);
        assert_eq!(layout.read_blob(&a, 100, "blob").unwrap(), b"layer bytes");
        assert_eq!(layout.read_blob(&b, 100, "blob").unwrap(), b"{}");
        assert!(!layout.has_blob(&Digest::of(b"nope")));
        // No temporary files are left next to the destination.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out")]);
    }

    #[test]
    fn archive_roundtrip() {
        roundtrip(OutputFormat::OciArchive);
    }

    #[test]
    fn dir_roundtrip() {
        roundtrip(OutputFormat::OciDir);
    }

    #[test]
    fn corrupt_source_blob_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let src_dir = dir.path().join("src");
        fs::create_dir_all(src_dir.join("blobs/sha256")).unwrap();
        fs::write(src_dir.join("index.json"), b"{}").unwrap();
        let d = Digest::of(b"good");
        fs::write(src_dir.join(blob_rel_path(&d)), b"evil").unwrap();
        let src = LayoutDir::open(&src_dir).unwrap();
        for format in [OutputFormat::OciDir, OutputFormat::OciArchive] {
            let dest = dir.path().join(format!("out-{format:?}"));
            let mut w = LayoutWriter::new(&dest, format).unwrap();
            let err = w.copy_blob(&src, &d).unwrap_err();
            assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
            drop(w);
            assert!(!dest.exists());
        }
    }

    #[test]
    fn refuses_to_replace_a_non_layout_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("precious"), b"x").unwrap();
        assert!(LayoutWriter::new(dir.path(), OutputFormat::OciDir).is_err());
        assert!(dir.path().join("precious").exists());
    }

    #[test]
    fn not_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.tar");
        fs::write(&f, vec![7u8; 2048]).unwrap();
        assert!(open_layout(&f).is_err());
        assert!(open_layout(dir.path()).is_err());
    }
}
