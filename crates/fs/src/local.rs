//! Local snapshots: layers the daemon downloads and unpacks itself.
//!
//! Used when an image has a SOCI index but a layer cannot be loaded lazily (no
//! zTOC for it, a failed mount, or `[snapshotter] min_layer_size`). The
//! compressed blob comes from the local soci store when present, else from the
//! registry; its digest is checked while it is written to a scratch file. The
//! uncompressed stream is hashed against the diffID of the image config while
//! the tar is applied onto the snapshot's empty `fs` directory as an overlay
//! upper directory: `.wh.<name>` becomes a 0:0 character device `<name>`,
//! `.wh..wh..opq` becomes `trusted.overlay.opaque=y` on its directory. A layer
//! that fails any check leaves the directory empty again.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};
use soci_artifacts::SociStore;
use soci_content::BlobSource;
use soci_content::registry::{RegistryClient, Repository};
use soci_format::Digest;
use soci_format::digest::Hasher;
use soci_format::json::Manifest;

/// Image manifests and configs are small.
const MAX_META_SIZE: u64 = 64 << 20;
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

/// Why a local snapshot could not be made (the layer is then deferred).
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocalError {
    /// The image manifest or config could not be read.
    #[error("image {what}: {reason}")]
    Image { what: String, reason: String },
    /// Downloading the layer failed (including a digest mismatch).
    #[error("downloading layer {layer}: {reason}")]
    Download { layer: Digest, reason: String },
    /// The layer's compression is not supported here.
    #[error(
        "layer {layer} is {kind}-compressed; local snapshots support gzip and uncompressed tar"
    )]
    Unsupported { layer: Digest, kind: &'static str },
    /// Applying the tar failed or was refused.
    #[error("applying layer {layer}: {reason}")]
    Apply { layer: Digest, reason: String },
    /// The uncompressed layer does not match the image config.
    #[error("layer {layer} uncompresses to {actual}, but the image config says {expected}")]
    DiffId {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
}

/// What the image manifest and config say about the layers.
#[derive(Debug)]
struct ImageLayers {
    /// Layer digest → (index, size).
    layers: HashMap<String, (usize, i64)>,
    diff_ids: Vec<Digest>,
}

#[derive(serde::Deserialize)]
struct ConfigRootfs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(serde::Deserialize)]
struct ImageConfig {
    rootfs: ConfigRootfs,
}

/// Downloads and applies layers; remembers each image's diffIDs.
pub(crate) struct LocalLayers {
    scratch: PathBuf,
    images: tokio::sync::Mutex<HashMap<String, Arc<ImageLayers>>>,
}

/// One layer to make into a local snapshot.
pub(crate) struct LocalRequest<'a> {
    pub client: &'a RegistryClient,
    pub store: &'a SociStore,
    pub repo: &'a Repository,
    pub manifest: &'a Digest,
    /// The image manifest when the caller already fetched it (index discovery).
    pub known_manifest: Option<&'a Manifest>,
    pub layer: &'a Digest,
    pub mountpoint: &'a Path,
    pub parent_dirs: &'a [PathBuf],
}

impl LocalLayers {
    /// Scratch files go under `scratch` (emptied now: leftovers of a crash).
    pub(crate) fn new(scratch: PathBuf) -> io::Result<LocalLayers> {
        if scratch.exists() {
            fs::remove_dir_all(&scratch)?;
        }
        fs::create_dir_all(&scratch)?;
        Ok(LocalLayers {
            scratch,
            images: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    async fn image(&self, req: &LocalRequest<'_>) -> Result<Arc<ImageLayers>, LocalError> {
        let key = req.manifest.to_string();
        let mut images = self.images.lock().await;
        if let Some(i) = images.get(&key) {
            return Ok(i.clone());
        }
        let fail = |what: &str, reason: String| LocalError::Image {
            what: what.to_string(),
            reason,
        };
        let manifest = match req.known_manifest {
            Some(m) => m.clone(),
            None => {
                let m = req
                    .client
                    .get_manifest(req.repo, &key)
                    .await
                    .map_err(|e| fail(&format!("manifest {key}"), e.to_string()))?;
                Manifest::from_json(&m.bytes)
                    .map_err(|e| fail(&format!("manifest {key}"), e.to_string()))?
            }
        };
        let config_digest: Digest = manifest
            .config
            .digest
            .parse()
            .map_err(|e| fail(&format!("manifest {key}"), format!("config digest: {e}")))?;
        if manifest.config.size < 0 || manifest.config.size as u64 > MAX_META_SIZE {
            return Err(fail(
                &format!("config {config_digest}"),
                format!("impossible size {}", manifest.config.size),
            ));
        }
        let config = req
            .client
            .get_blob(req.repo, &config_digest)
            .await
            .map_err(|e| fail(&format!("config {config_digest}"), e.to_string()))?;
        let config: ImageConfig = serde_json::from_slice(&config)
            .map_err(|e| fail(&format!("config {config_digest}"), e.to_string()))?;
        let diff_ids = config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| d.parse::<Digest>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(&format!("config {config_digest}"), format!("diff_ids: {e}")))?;
        let layers = manifest
            .layers
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, l)| (l.digest.clone(), (i, l.size)))
            .collect();
        let info = Arc::new(ImageLayers { layers, diff_ids });
        images.insert(key, info.clone());
        Ok(info)
    }

    /// Download `req.layer`, verify it and apply it onto `req.mountpoint`.
    /// On error the mountpoint is left empty.
    pub(crate) async fn prepare(&self, req: &LocalRequest<'_>) -> Result<(), LocalError> {
        let image = self.image(req).await?;
        let layer = req.layer.clone();
        let Some(&(index, size)) = image.layers.get(&layer.to_string()) else {
            return Err(LocalError::Image {
                what: format!("manifest {}", req.manifest),
                reason: format!("it does not list layer {layer}"),
            });
        };
        let Some(diff_id) = image.diff_ids.get(index).cloned() else {
            return Err(LocalError::Image {
                what: format!("config of {}", req.manifest),
                reason: format!("no diffID for layer {index}"),
            });
        };
        let (file, scratch) = if req.store.has_blob(&layer) {
            let path = req.store.blob_path(&layer);
            (path, None)
        } else {
            let path = self.scratch.join(format!(
                "{}.{}.{}",
                layer.hex(),
                std::process::id(),
                SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            let got = download(req.client, req.repo, &layer, size, &path).await;
            if let Err(reason) = got {
                let _ = fs::remove_file(&path);
                return Err(LocalError::Download { layer, reason });
            }
            (path.clone(), Some(path))
        };
        let root = req.mountpoint.to_path_buf();
        let parents = req.parent_dirs.to_vec();
        let l = layer.clone();
        let applied = tokio::task::spawn_blocking(move || {
            let r = apply_file(&file, &l, &diff_id, &root, &parents);
            if r.is_err() {
                empty_dir(&root);
            }
            r
        })
        .await
        .unwrap_or_else(|e| {
            Err(LocalError::Apply {
                layer: layer.clone(),
                reason: format!("apply task failed: {e}"),
            })
        });
        if let Some(s) = scratch {
            let _ = fs::remove_file(s);
        }
        applied
    }
}

/// Stream a blob into `path`; the stream itself fails on a digest mismatch.
async fn download(
    client: &RegistryClient,
    repo: &Repository,
    layer: &Digest,
    size: i64,
    path: &Path,
) -> Result<(), String> {
    let mut stream = client
        .get_blob_stream(repo, layer)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = File::create_new(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        read += chunk.len() as u64;
        if size >= 0 && read > size as u64 {
            return Err(format!(
                "the registry sent more than the manifest's {size} bytes"
            ));
        }
        out.write_all(&chunk)
            .map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    if size >= 0 && read != size as u64 {
        return Err(format!(
            "the registry sent {read} bytes, the manifest says {size}"
        ));
    }
    Ok(())
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn apply_file(
    file: &Path,
    layer: &Digest,
    diff_id: &Digest,
    root: &Path,
    parents: &[PathBuf],
) -> Result<(), LocalError> {
    let apply_err = |reason: String| LocalError::Apply {
        layer: layer.clone(),
        reason,
    };
    let f = File::open(file).map_err(|e| apply_err(format!("open {}: {e}", file.display())))?;
    let mut magic = [0u8; 4];
    let n = f.read_at(&mut magic, 0).unwrap_or(0);
    let compressed = HashingReader {
        inner: BufReader::new(f),
        hasher: Hasher::new(),
    };
    let (compressed_digest, uncompressed_digest) = if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        let mut plain = HashingReader {
            inner: flate2::read::MultiGzDecoder::new(compressed),
            hasher: Hasher::new(),
        };
        apply_tar(&mut plain, root, parents).map_err(apply_err)?;
        io::copy(&mut plain, &mut io::sink())
            .map_err(|e| apply_err(format!("decompressing: {e}")))?;
        let mut compressed = plain.inner.into_inner();
        io::copy(&mut compressed, &mut io::sink())
            .map_err(|e| apply_err(format!("reading: {e}")))?;
        (compressed.hasher.finish(), plain.hasher.finish())
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        return Err(LocalError::Unsupported {
            layer: layer.clone(),
            kind: "zstd",
        });
    } else {
        let mut plain = compressed;
        apply_tar(&mut plain, root, parents).map_err(apply_err)?;
        io::copy(&mut plain, &mut io::sink()).map_err(|e| apply_err(format!("reading: {e}")))?;
        let d = plain.hasher.finish();
        (d.clone(), d)
    };
    if &compressed_digest != layer {
        return Err(apply_err(format!(
            "the blob hashes to {compressed_digest}, not to its digest"
        )));
    }
    if &uncompressed_digest != diff_id {
        return Err(LocalError::DiffId {
            layer: layer.clone(),
            expected: diff_id.clone(),
            actual: uncompressed_digest,
        });
    }
    Ok(())
}

/// Delete everything inside `dir` (not `dir` itself).
fn empty_dir(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let r = match e.file_type() {
                Ok(t) if t.is_dir() => fs::remove_dir_all(&p),
                _ => fs::remove_file(&p),
            };
            if let Err(err) = r {
                tracing::warn!(path = %p.display(), error = %err, "cannot clean a failed local snapshot");
            }
        }
    }
}

/// The path of a tar entry inside the layer, or `None` for the root itself.
/// Refuses `..` components.
fn clean(path: &Path) -> Result<Option<PathBuf>, String> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("{} escapes the layer", path.display()));
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Make sure every directory of `rel` exists under `root` as a real
/// directory (never through a symlink); missing ones copy the attributes of
/// the same directory in the nearest parent layer, else get 0755 root:root.
fn ensure_dirs(root: &Path, rel: &Path, parents: &[PathBuf]) -> Result<(), String> {
    let mut at = PathBuf::new();
    for c in rel.components() {
        at.push(c);
        let p = root.join(&at);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "{} is a symlink in the path of an entry",
                    at.display()
                ));
            }
            Ok(_) => {
                return Err(format!(
                    "{} is not a directory in the path of an entry",
                    at.display()
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&p).map_err(|e| format!("mkdir {}: {e}", at.display()))?;
                let lower = parents
                    .iter()
                    .map(|d| d.join(&at))
                    .find_map(|d| fs::symlink_metadata(d).ok().filter(|m| m.is_dir()));
                match lower {
                    Some(m) => {
                        use std::os::unix::fs::MetadataExt;
                        std::os::unix::fs::lchown(&p, Some(m.uid()), Some(m.gid()))
                            .map_err(|e| format!("chown {}: {e}", at.display()))?;
                        fs::set_permissions(&p, fs::Permissions::from_mode(m.mode() & 0o7777))
                            .map_err(|e| format!("chmod {}: {e}", at.display()))?;
                    }
                    None => fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                        .map_err(|e| format!("chmod {}: {e}", at.display()))?,
                }
            }
            Err(e) => return Err(format!("stat {}: {e}", at.display())),
        }
    }
    Ok(())
}

/// Remove whatever is at `p` (a file, link, device or whole directory).
fn remove_any(p: &Path) -> Result<(), String> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(|e| format!("remove {}: {e}", p.display()))
}

fn set_mtime(p: &Path, secs: u64) -> Result<(), String> {
    let t = Timespec {
        tv_sec: secs.min(i64::MAX as u64) as i64,
        tv_nsec: 0,
    };
    let ts = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, p, &ts, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| format!("set mtime of {}: {e}", p.display()))
}

/// A numeric header field: empty (all NUL or space) reads as 0, as Go's
/// `archive/tar` (which built most layers) reads it; anything else must parse.
fn numeric(raw: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if raw.iter().all(|b| *b == 0 || *b == b' ') {
        Ok(0)
    } else {
        parsed
    }
}

/// Apply a layer tar onto `root` (an overlay upper directory).
fn apply_tar(r: &mut impl Read, root: &Path, parents: &[PathBuf]) -> Result<(), String> {
    let mut archive = tar::Archive::new(r);
    let mut dirs: Vec<(PathBuf, u64)> = Vec::new();
    let entries = archive.entries().map_err(|e| format!("reading tar: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("reading tar: {e}"))?;
        let raw = entry
            .path()
            .map_err(|e| format!("entry name: {e}"))?
            .into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        let Some(rel) = clean(&raw)? else {
            continue;
        };
        let name = rel.file_name().unwrap_or_default().to_owned();
        let dir = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        ensure_dirs(root, &dir, parents)?;
        let name_s = name.to_string_lossy();
        if name_s == OPAQUE_WHITEOUT {
            rustix::fs::lsetxattr(root.join(&dir), OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(|e| format!("mark {} opaque: {e}", dir.display()))?;
            continue;
        }
        if let Some(hidden) = name_s.strip_prefix(WHITEOUT_PREFIX) {
            let target = root.join(&dir).join(hidden);
            remove_any(&target)?;
            rustix::fs::mknodat(
                CWD,
                &target,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .map_err(|e| format!("whiteout {}: {e}", dir.join(hidden).display()))?;
            continue;
        }
        let dst = root.join(&rel);
        let header = entry.header().clone();
        let old = header.as_old();
        let field = |raw: &[u8], parsed: io::Result<u64>, what: &str| {
            numeric(raw, parsed).map_err(|e| format!("{}: {what}: {e}", rel.display()))
        };
        let mode = field(&old.mode, header.mode().map(u64::from), "mode")? as u32 & 0o7777;
        let uid = field(&old.uid, header.uid(), "uid")?;
        let gid = field(&old.gid, header.gid(), "gid")?;
        let mtime = header.mtime().unwrap_or(0);
        let mut xattrs = Vec::new();
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                if let Some(k) = ext.key_bytes().strip_prefix(PAX_XATTR_PREFIX.as_bytes()) {
                    xattrs.push((k.to_vec(), ext.value_bytes().to_vec()));
                }
            }
        }
        let existing = fs::symlink_metadata(&dst).ok();
        if !(kind.is_dir() && existing.as_ref().is_some_and(|m| m.is_dir())) {
            remove_any(&dst)?;
        }
        let what = |op: &str, e: &dyn std::fmt::Display| format!("{op} {}: {e}", rel.display());
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut f = File::create_new(&dst).map_err(|e| what("create", &e))?;
                io::copy(&mut entry, &mut f).map_err(|e| what("write", &e))?;
            }
            tar::EntryType::Directory => {
                if existing.as_ref().is_none_or(|m| !m.is_dir()) {
                    fs::create_dir(&dst).map_err(|e| what("mkdir", &e))?;
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| what("link name of", &e))?
                    .ok_or_else(|| format!("symlink {} has no target", rel.display()))?;
                std::os::unix::fs::symlink(&target, &dst).map_err(|e| what("symlink", &e))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| what("link name of", &e))?
                    .ok_or_else(|| format!("hardlink {} has no target", rel.display()))?;
                let target = clean(&target)?
                    .ok_or_else(|| format!("hardlink {} points at the root", rel.display()))?;
                ensure_dirs(root, target.parent().unwrap_or(Path::new("")), parents)?;
                let src = root.join(&target);
                if fs::symlink_metadata(&src).is_err() {
                    return Err(format!(
                        "hardlink {} points at {}, which is not in this layer",
                        rel.display(),
                        target.display()
                    ));
                }
                fs::hard_link(&src, &dst).map_err(|e| what("hardlink", &e))?;
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = match kind {
                    tar::EntryType::Fifo => (FileType::Fifo, 0),
                    k => {
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if k == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                };
                rustix::fs::mknodat(CWD, &dst, ft, Mode::from_raw_mode(mode), dev)
                    .map_err(|e| what("mknod", &e))?;
            }
            other => {
                tracing::debug!(path = %rel.display(), kind = ?other, "skipping an unsupported tar entry");
                continue;
            }
        }
        std::os::unix::fs::lchown(&dst, Some(uid as u32), Some(gid as u32))
            .map_err(|e| what("chown", &e))?;
        for (k, v) in &xattrs {
            rustix::fs::lsetxattr(&dst, OsStr::from_bytes(k), v, XattrFlags::empty())
                .map_err(|e| what("set xattr on", &e))?;
        }
        if !kind.is_symlink() {
            fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
                .map_err(|e| what("chmod", &e))?;
        }
        if kind.is_dir() {
            dirs.push((dst, mtime));
        } else {
            set_mtime(&dst, mtime)?;
        }
    }
    // Directory times last: creating their entries changed them.
    for (d, mtime) in dirs.iter().rev() {
        set_mtime(d, *mtime)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn header(path: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        h
    }

    fn layer(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = header(path, *kind, data.len() as u64, 0o640);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
                h.set_cksum();
            }
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn applies_files_links_and_whiteouts() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("fs");
        let lower = tmp.path().join("lower");
        fs::create_dir_all(root.clone()).unwrap();
        fs::create_dir_all(lower.join("keep")).unwrap();
        fs::set_permissions(lower.join("keep"), fs::Permissions::from_mode(0o711)).unwrap();
        use tar::EntryType as T;
        let tar = layer(&[
            ("a/", T::Directory, b"", None),
            ("a/file.txt", T::Regular, b"hello", None),
            ("a/hard.txt", T::Link, b"", Some("a/file.txt")),
            ("a/sym", T::Symlink, b"", Some("file.txt")),
            ("a/.wh.gone", T::Regular, b"", None),
            ("b/.wh..wh..opq", T::Regular, b"", None),
            ("keep/new", T::Regular, b"x", None),
            ("fifo", T::Fifo, b"", None),
        ]);
        apply_tar(&mut &tar[..], &root, std::slice::from_ref(&lower)).unwrap();
        let f = root.join("a/file.txt");
        assert_eq!(fs::read(&f).unwrap(), b"hello");
        let m = fs::metadata(&f).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1001, 0o640));
        assert_eq!(m.mtime(), 1_600_000_000);
        assert_eq!(m.nlink(), 2);
        assert_eq!(
            fs::metadata(root.join("a/hard.txt")).unwrap().ino(),
            m.ino()
        );
        assert_eq!(
            fs::read_link(root.join("a/sym")).unwrap(),
            Path::new("file.txt")
        );
        let w = fs::symlink_metadata(root.join("a/gone")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &w.file_type()
        ));
        assert_eq!(w.rdev(), 0);
        assert!(!root.join("a/.wh.gone").exists());
        let opq = rustix::fs::lgetxattr(root.join("b"), OPAQUE_XATTR, &mut [0u8; 8]).unwrap();
        assert_eq!(opq, 1);
        assert!(!root.join("b/.wh..wh..opq").exists());
        assert_eq!(
            fs::metadata(root.join("keep")).unwrap().mode() & 0o7777,
            0o711,
            "a missing parent copies the lower layer's directory"
        );
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(
            &fs::symlink_metadata(root.join("fifo")).unwrap().file_type()
        ));
    }

    #[test]
    fn empty_numeric_fields_read_as_zero() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("fs");
        fs::create_dir_all(&root).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("f").unwrap();
        h.set_size(1);
        h.set_mode(0o600);
        h.set_mtime(5);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"z"[..]).unwrap();
        let t = b.into_inner().unwrap();
        apply_tar(&mut &t[..], &root, &[]).unwrap();
        let m = fs::metadata(root.join("f")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o600));

        let mut h = tar::Header::new_ustar();
        h.set_path("g").unwrap();
        h.set_size(0);
        h.as_old_mut().uid.copy_from_slice(b"zz\0\0\0\0\0\0");
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b""[..]).unwrap();
        let t = b.into_inner().unwrap();
        assert!(apply_tar(&mut &t[..], &root, &[]).is_err());
    }

    #[test]
    fn refuses_escapes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("fs");
        fs::create_dir_all(&root).unwrap();
        use tar::EntryType as T;
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        let through_symlink = layer(&[
            ("out", T::Symlink, b"", Some(outside.to_str().unwrap())),
            ("out/x", T::Regular, b"bad", None),
        ]);
        let e = apply_tar(&mut &through_symlink[..], &root, &[]).unwrap_err();
        assert!(e.contains("symlink"), "{e}");
        assert!(!outside.join("x").exists());

        let mut raw = header("x", T::Regular, 3, 0o644);
        raw.as_old_mut().name[..6].copy_from_slice(b"../esc");
        raw.as_old_mut().name[6] = 0;
        raw.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&raw, &b"bad"[..]).unwrap();
        let dotdot = b.into_inner().unwrap();
        let e = apply_tar(&mut &dotdot[..], &root, &[]).unwrap_err();
        assert!(e.contains("escapes"), "{e}");
        assert!(!tmp.path().join("esc").exists());

        let hard = layer(&[("h", T::Link, b"", Some("../../etc/passwd"))]);
        assert!(apply_tar(&mut &hard[..], &root, &[]).is_err());
        assert!(!root.join("h").exists());
    }

    #[test]
    fn checks_digests_and_empties_on_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("fs");
        fs::create_dir_all(&root).unwrap();
        use tar::EntryType as T;
        let tar = layer(&[("f", T::Regular, b"data", None)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let blob = tmp.path().join("blob");
        fs::write(&blob, &gz).unwrap();
        let (layer_d, diff) = (Digest::of(&gz), Digest::of(&tar));
        apply_file(&blob, &layer_d, &diff, &root, &[]).unwrap();
        assert_eq!(fs::read(root.join("f")).unwrap(), b"data");
        empty_dir(&root);
        let wrong = Digest::of(b"other");
        assert!(matches!(
            apply_file(&blob, &layer_d, &wrong, &root, &[]),
            Err(LocalError::DiffId { .. })
        ));
        assert!(apply_file(&blob, &wrong, &diff, &root, &[]).is_err());
        // Uncompressed tar: both digests are the tar's.
        let plain = tmp.path().join("plain");
        fs::write(&plain, &tar).unwrap();
        empty_dir(&root);
        apply_file(&plain, &diff, &diff, &root, &[]).unwrap();
        let zstd = tmp.path().join("zstd");
        fs::write(&zstd, [0x28, 0xb5, 0x2f, 0xfd, 0, 0]).unwrap();
        assert!(matches!(
            apply_file(&zstd, &diff, &diff, &root, &[]),
            Err(LocalError::Unsupported { .. })
        ));
    }
}
