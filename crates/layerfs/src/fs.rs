//! Filesystem operations over an [`InodeTree`], independent of the FUSE library.
//!
//! Every method is `&self` and lock-free: the table is immutable and reads go
//! straight to the [`SpanSource`]. The `fuser` glue only converts types.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::source::SpanSource;
use crate::state::{STATE_DIR_NAME, StateFn};
use crate::tree::{Attr, BLOCK_SIZE, FileKind, InodeTree, NodeId};
use crate::verify::FileChecks;
use soci_format::ztoc::Ztoc;

/// Inode number of the layer root (FUSE's root id).
pub const ROOT_INO: u64 = 1;
/// Inode number of `/.soci-snapshotter`.
pub const STATE_DIR_INO: u64 = 2;
/// Inode number of `/.soci-snapshotter/<layer digest>.json`.
pub const STATE_FILE_INO: u64 = 3;
/// Tree node `i` (`i >= 1`) has inode number `i + NODE_INO_OFFSET`.
const NODE_INO_OFFSET: u64 = 3;

const STATE_DIR_MODE: u32 = 0o040_500;
const STATE_FILE_MODE: u32 = 0o100_400;

/// Kernel cache lifetimes of what the filesystem replies, and whether it
/// answers extended-attribute requests at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsOptions {
    /// How long the kernel may cache attributes.
    pub attr_timeout: Duration,
    /// How long the kernel may cache a name -> inode mapping.
    pub entry_timeout: Duration,
    /// How long the kernel may cache that a name does not exist (zero disables).
    pub negative_timeout: Duration,
    /// The layer's index says it has no extended attributes (the zTOC
    /// annotation `com.amazon.soci.disable-xattrs`): as upstream, xattr
    /// requests get `ENOSYS`, after which the kernel stops sending them and
    /// answers `EOPNOTSUPP` itself (overlayfs asks for its markers on every
    /// lookup, so this saves a round trip per file). Not applied when the
    /// tree has an opaque directory or any xattr after all.
    pub xattrs_disabled: bool,
}

impl Default for FsOptions {
    /// One second each, as upstream; xattrs answered.
    fn default() -> FsOptions {
        FsOptions {
            attr_timeout: Duration::from_secs(1),
            entry_timeout: Duration::from_secs(1),
            negative_timeout: Duration::from_secs(1),
            xattrs_disabled: false,
        }
    }
}

/// Why an operation failed; [`OpError::errno`] gives the value for the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// `ENOENT`.
    #[error("no such file or directory")]
    NotFound,
    /// `ENOTDIR`.
    #[error("not a directory")]
    NotDirectory,
    /// `EISDIR`.
    #[error("is a directory")]
    IsDirectory,
    /// `ENODATA`: no such extended attribute.
    #[error("no such extended attribute")]
    NoData,
    /// `ERANGE`: the caller's buffer is too small.
    #[error("buffer too small")]
    Range,
    /// `EIO`: the layer bytes could not be read.
    #[error("input/output error")]
    Io,
    /// `EROFS`: the filesystem is read-only.
    #[error("read-only filesystem")]
    ReadOnly,
    /// `EINVAL`.
    #[error("invalid argument")]
    Invalid,
    /// `EACCES`.
    #[error("permission denied")]
    Access,
    /// `ENOSYS`: the operation is not implemented (the kernel stops asking).
    #[error("function not implemented")]
    NotImplemented,
}

impl OpError {
    /// The errno value.
    pub fn errno(self) -> i32 {
        use rustix::io::Errno;
        match self {
            OpError::NotFound => Errno::NOENT,
            OpError::NotDirectory => Errno::NOTDIR,
            OpError::IsDirectory => Errno::ISDIR,
            OpError::NoData => Errno::NODATA,
            OpError::Range => Errno::RANGE,
            OpError::Io => Errno::IO,
            OpError::ReadOnly => Errno::ROFS,
            OpError::Invalid => Errno::INVAL,
            OpError::Access => Errno::ACCESS,
            OpError::NotImplemented => Errno::NOSYS,
        }
        .raw_os_error()
    }
}

/// How an opened file should be cached by the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFile {
    /// File handle to pass to [`LayerFs::read`] and [`LayerFs::release`].
    pub fh: u64,
    /// Keep the page cache across opens (layer files never change).
    pub keep_cache: bool,
    /// Bypass the page cache (the state file changes on every read).
    pub direct_io: bool,
}

/// One `readdir` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirItem<'a> {
    /// Inode number.
    pub ino: u64,
    /// Offset to pass back to continue after this item.
    pub next_offset: u64,
    /// File type.
    pub kind: FileKind,
    /// Name.
    pub name: Cow<'a, [u8]>,
}

/// Reply to a `getxattr`/`listxattr` request of a given buffer size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XattrReply<'a> {
    /// The caller asked for the size only (buffer size 0).
    Size(u32),
    /// The value (or the NUL-separated name list).
    Data(Cow<'a, [u8]>),
}

impl<'a> XattrReply<'a> {
    /// Size-query semantics: size 0 asks for the length, a smaller buffer is `ERANGE`.
    pub fn for_buffer(value: Cow<'a, [u8]>, size: u32) -> Result<XattrReply<'a>, OpError> {
        let len = u32::try_from(value.len()).map_err(|_| OpError::Range)?;
        if size == 0 {
            Ok(XattrReply::Size(len))
        } else if len > size {
            Err(OpError::Range)
        } else {
            Ok(XattrReply::Data(value))
        }
    }
}

/// `statfs` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Total blocks of `frsize` (the regular file bytes, rounded up).
    pub blocks: u64,
    /// Free blocks (0: read-only).
    pub bfree: u64,
    /// Available blocks (0).
    pub bavail: u64,
    /// Inodes.
    pub files: u64,
    /// Free inodes (0).
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
    /// Fragment size.
    pub frsize: u32,
}

/// A listing item before its offset is known: inode, type, name.
type Listed<'a> = (u64, FileKind, Cow<'a, [u8]>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inode {
    Tree(NodeId),
    StateDir,
    StateFile,
}

/// The read-only filesystem of one layer.
pub struct LayerFs {
    tree: InodeTree,
    source: Arc<dyn SpanSource>,
    state: StateFn,
    digest: String,
    state_file_name: Box<[u8]>,
    options: FsOptions,
    created: SystemTime,
    regular_bytes: u64,
    /// Where `.soci-snapshotter` sits among the root's entries, and whether it
    /// shadows a real entry of that name.
    state_slot: (usize, bool),
    /// Open handles of the state file and the document each one reads.
    state_handles: Mutex<HashMap<u64, Vec<u8>>>,
    next_fh: AtomicU64,
    /// File verification on first read, when enabled.
    verifier: Option<FileChecks>,
    /// Reply `ENOSYS` to xattr requests ([`FsOptions::xattrs_disabled`]).
    no_xattrs: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl std::fmt::Debug for LayerFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerFs")
            .field("digest", &self.digest)
            .field("nodes", &self.tree.node_count())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn ino_of(node: NodeId) -> u64 {
    if node == NodeId::ROOT {
        ROOT_INO
    } else {
        u64::from(node.index()) + NODE_INO_OFFSET
    }
}

impl LayerFs {
    /// Serve `tree`, reading file bytes from `source`. The state file is named
    /// `<layer_digest>.json` and its content comes from `state`.
    pub fn new(
        tree: InodeTree,
        source: Arc<dyn SpanSource>,
        layer_digest: &str,
        state: StateFn,
        options: FsOptions,
    ) -> LayerFs {
        let slot = {
            let root: Vec<&[u8]> = tree.children(NodeId::ROOT).map(|(n, _)| n).collect();
            match root.binary_search(&STATE_DIR_NAME.as_bytes()) {
                Ok(i) => {
                    tracing::warn!(
                        layer = layer_digest,
                        "layer has its own /{STATE_DIR_NAME}; the state directory hides it"
                    );
                    (i, true)
                }
                Err(i) => (i, false),
            }
        };
        let no_xattrs = options.xattrs_disabled && !tree.has_xattrs();
        if options.xattrs_disabled && !no_xattrs {
            tracing::warn!(
                layer = layer_digest,
                "the index says the layer has no xattrs, but it has xattrs or opaque directories; serving them"
            );
        }
        LayerFs {
            no_xattrs,
            regular_bytes: tree.regular_file_bytes(),
            tree,
            source,
            state,
            digest: layer_digest.to_string(),
            state_file_name: format!("{layer_digest}.json").into_bytes().into(),
            options,
            created: SystemTime::now(),
            state_slot: slot,
            state_handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            verifier: None,
        }
    }

    /// Verify each regular file on its first read: the tar header blocks in
    /// front of its data (read through the span source) must describe the
    /// file exactly as `ztoc`'s entry does (name, type, size, mtime, link
    /// name, mode, uid, gid, device numbers, xattrs); otherwise reads of the
    /// file fail with `EIO` and a warning names the layer and the file.
    /// `ztoc` must be the one the tree was built from; it is not kept (only
    /// each regular file's header position and a keyed digest of its entry).
    pub fn with_verification(self, ztoc: &Ztoc) -> LayerFs {
        let checks = FileChecks::new(ztoc, &self.tree);
        self.with_file_checks(checks)
    }

    /// [`LayerFs::with_verification`] with checks collected while the tree
    /// was built (see [`FileChecksBuilder`](crate::FileChecksBuilder)).
    pub fn with_file_checks(mut self, checks: FileChecks) -> LayerFs {
        self.verifier = Some(checks);
        self
    }

    /// The inode table.
    pub fn tree(&self) -> &InodeTree {
        &self.tree
    }

    /// The layer digest the filesystem serves.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Cache lifetimes.
    pub fn options(&self) -> &FsOptions {
        &self.options
    }

    /// Inode number of a tree node.
    pub fn ino(&self, node: NodeId) -> u64 {
        ino_of(node)
    }

    fn inode(&self, ino: u64) -> Result<Inode, OpError> {
        match ino {
            ROOT_INO => Ok(Inode::Tree(NodeId::ROOT)),
            STATE_DIR_INO => Ok(Inode::StateDir),
            STATE_FILE_INO => Ok(Inode::StateFile),
            0 => Err(OpError::NotFound),
            i => u32::try_from(i - NODE_INO_OFFSET)
                .ok()
                .filter(|&i| i >= 1)
                .and_then(|i| self.tree.node(i))
                .map(Inode::Tree)
                .ok_or(OpError::NotFound),
        }
    }

    fn state_json(&self) -> Vec<u8> {
        (self.state)().to_json()
    }

    fn state_attr(&self, mode: u32, size: u64) -> Attr {
        Attr {
            kind: FileKind::from_mode(mode),
            mode,
            size,
            blocks: 0,
            blksize: BLOCK_SIZE,
            nlink: if mode == STATE_DIR_MODE { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            mtime: self.created,
        }
    }

    fn attr_of(&self, inode: Inode) -> Attr {
        match inode {
            Inode::Tree(n) => self.tree.attr(n),
            Inode::StateDir => self.state_attr(STATE_DIR_MODE, 0),
            Inode::StateFile => self.state_attr(STATE_FILE_MODE, self.state_json().len() as u64),
        }
    }

    /// Look up `name` in directory `parent`; returns its inode number and attributes.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<(u64, Attr), OpError> {
        let found = match self.inode(parent)? {
            Inode::StateDir => match name {
                b"." => Inode::StateDir,
                b".." => Inode::Tree(NodeId::ROOT),
                n if n == &*self.state_file_name => Inode::StateFile,
                _ => return Err(OpError::NotFound),
            },
            Inode::StateFile => return Err(OpError::NotDirectory),
            Inode::Tree(dir) => {
                if self.tree.dir_len(dir).is_none() {
                    return Err(OpError::NotDirectory);
                }
                match name {
                    b"." => Inode::Tree(dir),
                    b".." => Inode::Tree(self.tree.parent(dir).unwrap_or(NodeId::ROOT)),
                    n if dir == NodeId::ROOT && n == STATE_DIR_NAME.as_bytes() => Inode::StateDir,
                    n => Inode::Tree(self.tree.lookup(dir, n).ok_or(OpError::NotFound)?),
                }
            }
        };
        Ok((self.ino_of_inode(found), self.attr_of(found)))
    }

    fn ino_of_inode(&self, inode: Inode) -> u64 {
        match inode {
            Inode::Tree(n) => ino_of(n),
            Inode::StateDir => STATE_DIR_INO,
            Inode::StateFile => STATE_FILE_INO,
        }
    }

    /// Attributes of `ino`.
    pub fn getattr(&self, ino: u64) -> Result<Attr, OpError> {
        Ok(self.attr_of(self.inode(ino)?))
    }

    /// Open `ino`; `write` is any write intent (write access mode, truncate).
    pub fn open(&self, ino: u64, write: bool) -> Result<OpenFile, OpError> {
        let inode = self.inode(ino)?;
        if write {
            return Err(OpError::ReadOnly);
        }
        match inode {
            Inode::StateFile => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                lock(&self.state_handles).insert(fh, self.state_json());
                Ok(OpenFile {
                    fh,
                    keep_cache: false,
                    direct_io: true,
                })
            }
            Inode::StateDir => Err(OpError::IsDirectory),
            Inode::Tree(n) if self.tree.kind(n) == FileKind::Directory => Err(OpError::IsDirectory),
            Inode::Tree(_) => Ok(OpenFile {
                fh: 0,
                keep_cache: true,
                direct_io: false,
            }),
        }
    }

    /// Forget a handle returned by [`open`](Self::open).
    pub fn release(&self, ino: u64, fh: u64) {
        if ino == STATE_FILE_INO {
            lock(&self.state_handles).remove(&fh);
        }
    }

    /// Check that `ino` is a directory (for `opendir`).
    pub fn opendir(&self, ino: u64) -> Result<(), OpError> {
        match self.inode(ino)? {
            Inode::StateDir => Ok(()),
            Inode::Tree(n) if self.tree.kind(n) == FileKind::Directory => Ok(()),
            _ => Err(OpError::NotDirectory),
        }
    }

    /// Read up to `size` bytes of `ino` at `offset` (short only at end of file).
    ///
    /// The state file is produced on open and again on every read at offset 0,
    /// so a sequential reader of one handle sees one consistent document.
    pub fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, OpError> {
        let node = match self.inode(ino)? {
            Inode::StateFile => {
                let mut handles = lock(&self.state_handles);
                let json = match handles.get_mut(&fh) {
                    Some(json) => {
                        if offset == 0 {
                            *json = self.state_json();
                        }
                        Cow::Borrowed(&json[..])
                    }
                    None => Cow::Owned(self.state_json()),
                };
                let start = (offset.min(json.len() as u64)) as usize;
                let end = start.saturating_add(size as usize).min(json.len());
                return Ok(json[start..end].to_vec());
            }
            Inode::StateDir => return Err(OpError::IsDirectory),
            Inode::Tree(n) => n,
        };
        let Some(range) = self.tree.data_range(node) else {
            return Err(match self.tree.kind(node) {
                FileKind::Directory => OpError::IsDirectory,
                _ => OpError::Invalid,
            });
        };
        if let Some(v) = &self.verifier
            && let Err(reason) = v.verify(&self.tree, node, range.offset, &*self.source)
        {
            let file = self
                .tree
                .path_of(node)
                .unwrap_or_else(|| format!("<inode {}>", ino_of(node)));
            tracing::warn!(
                layer = %self.digest,
                file = %file,
                %reason,
                "file verification failed: the zTOC does not match the layer's tar header"
            );
            soci_metrics::file_verification_failure(&self.digest);
            return Err(OpError::Io);
        }
        if offset >= range.size {
            return Ok(Vec::new());
        }
        let started = std::time::Instant::now();
        let len = u64::from(size).min(range.size - offset) as usize;
        let mut buf = vec![0u8; len];
        let start = range.offset + offset;
        let mut done = 0;
        while done < len {
            match self.source.read_at(start + done as u64, &mut buf[done..]) {
                Ok(0) => {
                    self.warn_read(node, start + done as u64, &"layer ended early");
                    return Err(OpError::Io);
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.warn_read(node, start + done as u64, &e);
                    return Err(OpError::Io);
                }
            }
        }
        soci_metrics::synchronous_read(&self.digest, len as u64, started.elapsed());
        Ok(buf)
    }

    fn warn_read(&self, node: NodeId, layer_offset: u64, error: &dyn std::fmt::Display) {
        let file = self
            .tree
            .path_of(node)
            .unwrap_or_else(|| format!("<inode {}>", ino_of(node)));
        tracing::warn!(
            layer = %self.digest,
            file = %file,
            layer_offset,
            error = %error,
            "reading layer file failed"
        );
    }

    /// Target of symlink `ino`.
    pub fn readlink(&self, ino: u64) -> Result<&[u8], OpError> {
        match self.inode(ino)? {
            Inode::Tree(n) => self.tree.symlink_target(n).ok_or(OpError::Invalid),
            _ => Err(OpError::Invalid),
        }
    }

    /// List directory `ino` from `offset` (0 = start; otherwise a `next_offset`
    /// returned earlier). `add` returns true when the reply buffer is full.
    pub fn readdir(
        &self,
        ino: u64,
        offset: u64,
        mut add: impl FnMut(DirItem<'_>) -> bool,
    ) -> Result<(), OpError> {
        let inode = self.inode(ino)?;
        let mut i = usize::try_from(offset).map_err(|_| OpError::Invalid)?;
        while let Some((ino, kind, name)) = self.dir_item(inode, i)? {
            i += 1;
            let full = add(DirItem {
                ino,
                next_offset: i as u64,
                kind,
                name,
            });
            if full {
                break;
            }
        }
        Ok(())
    }

    /// The `i`-th item of a directory listing: `.`, `..`, then names in order.
    fn dir_item(&self, dir: Inode, i: usize) -> Result<Option<Listed<'_>>, OpError> {
        let dot = |ino| Some((ino, FileKind::Directory, Cow::Borrowed(&b"."[..])));
        let dotdot = |ino| Some((ino, FileKind::Directory, Cow::Borrowed(&b".."[..])));
        match dir {
            Inode::StateFile => Err(OpError::NotDirectory),
            Inode::StateDir => Ok(match i {
                0 => dot(STATE_DIR_INO),
                1 => dotdot(ROOT_INO),
                2 => Some((
                    STATE_FILE_INO,
                    FileKind::RegularFile,
                    Cow::Borrowed(&*self.state_file_name),
                )),
                _ => None,
            }),
            Inode::Tree(d) => {
                if self.tree.dir_len(d).is_none() {
                    return Err(OpError::NotDirectory);
                }
                let parent = self.tree.parent(d).unwrap_or(NodeId::ROOT);
                Ok(match i {
                    0 => dot(ino_of(d)),
                    1 => dotdot(ino_of(parent)),
                    _ => {
                        let mut j = i - 2;
                        if d == NodeId::ROOT {
                            let (slot, shadows) = self.state_slot;
                            if j == slot {
                                return Ok(Some((
                                    STATE_DIR_INO,
                                    FileKind::Directory,
                                    Cow::Borrowed(STATE_DIR_NAME.as_bytes()),
                                )));
                            }
                            if j > slot && !shadows {
                                j -= 1;
                            }
                        }
                        self.tree.dir_entry(d, j).map(|(name, node)| {
                            (ino_of(node), self.tree.kind(node), Cow::Borrowed(name))
                        })
                    }
                })
            }
        }
    }

    /// Value of xattr `name` of `ino`, for a caller buffer of `size` bytes.
    pub fn getxattr(&self, ino: u64, name: &[u8], size: u32) -> Result<XattrReply<'_>, OpError> {
        if self.no_xattrs {
            return Err(OpError::NotImplemented);
        }
        let value = match self.inode(ino)? {
            Inode::Tree(n) => self.tree.xattr(n, name).ok_or(OpError::NoData)?,
            _ => return Err(OpError::NoData),
        };
        XattrReply::for_buffer(Cow::Borrowed(value), size)
    }

    /// NUL-terminated xattr names of `ino`, for a caller buffer of `size` bytes.
    pub fn listxattr(&self, ino: u64, size: u32) -> Result<XattrReply<'_>, OpError> {
        if self.no_xattrs {
            return Err(OpError::NotImplemented);
        }
        let mut list = Vec::new();
        if let Inode::Tree(n) = self.inode(ino)? {
            for (name, _) in self.tree.xattrs(n) {
                list.extend_from_slice(name);
                list.push(0);
            }
        }
        XattrReply::for_buffer(Cow::Owned(list), size)
    }

    /// `access(2)` without `default_permissions`: writes are `EROFS`; otherwise
    /// the owner/group/other bits decide (root may do anything but execute a
    /// file that has no execute bit).
    pub fn access(&self, ino: u64, mask: u32, uid: u32, gid: u32) -> Result<(), OpError> {
        const R: u32 = 4;
        const W: u32 = 2;
        const X: u32 = 1;
        let attr = self.getattr(ino)?;
        if mask & W != 0 {
            return Err(OpError::ReadOnly);
        }
        let want = mask & (R | X);
        if uid == 0 {
            let exec_ok = attr.kind == FileKind::Directory || attr.mode & 0o111 != 0;
            return if want & X != 0 && !exec_ok {
                Err(OpError::Access)
            } else {
                Ok(())
            };
        }
        let bits = if uid == attr.uid {
            attr.mode >> 6
        } else if gid == attr.gid {
            attr.mode >> 3
        } else {
            attr.mode
        } & 0o7;
        if bits & want == want {
            Ok(())
        } else {
            Err(OpError::Access)
        }
    }

    /// Filesystem statistics.
    pub fn statfs(&self) -> StatFs {
        StatFs {
            blocks: self.regular_bytes.div_ceil(u64::from(BLOCK_SIZE)),
            bfree: 0,
            bavail: 0,
            files: self.tree.node_count() as u64 + 2,
            ffree: 0,
            bsize: BLOCK_SIZE,
            namelen: 255,
            frsize: BLOCK_SIZE,
        }
    }
}

#[cfg(test)]
mod tests {
    use soci_format::ztoc::{FileMetadata, entry_type};

    use super::*;
    use crate::source::testing::{FailingSpanSource, MemSpanSource};
    use crate::state::LayerState;
    use crate::tree::TreeOptions;

    fn meta(name: &str, kind: &str, offset: u64, size: u64) -> FileMetadata {
        FileMetadata {
            name: name.into(),
            entry_type: kind.into(),
            uncompressed_offset: offset,
            uncompressed_size: size,
            mode: 0o644,
            ..FileMetadata::default()
        }
    }

    fn layer(entries: &[FileMetadata], source: Arc<dyn SpanSource>) -> LayerFs {
        let tree = InodeTree::build(entries, &TreeOptions::default()).unwrap();
        let state: StateFn = Arc::new(|| LayerState {
            digest: "sha256:00".into(),
            size: 10,
            fetched_size: 5,
            fetched_percent: 50.0,
            error: None,
        });
        LayerFs::new(tree, source, "sha256:00", state, FsOptions::default())
    }

    fn list(fs: &LayerFs, ino: u64) -> Vec<String> {
        let mut out = Vec::new();
        fs.readdir(ino, 0, |item| {
            out.push(String::from_utf8(item.name.to_vec()).unwrap());
            false
        })
        .unwrap();
        out
    }

    #[test]
    fn read_clamps_and_maps_inodes() {
        let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let fs = layer(
            &[meta("a/f", entry_type::REG, 1000, 100)],
            Arc::new(MemSpanSource::new(data.clone())),
        );
        let (dir, _) = fs.lookup(ROOT_INO, b"a").unwrap();
        let (f, attr) = fs.lookup(dir, b"f").unwrap();
        assert_eq!(attr.size, 100);
        assert_eq!(fs.read(f, 0, 0, 4096).unwrap(), &data[1000..1100]);
        assert_eq!(fs.read(f, 0, 90, 50).unwrap(), &data[1090..1100]);
        assert!(fs.read(f, 0, 100, 10).unwrap().is_empty());
        assert_eq!(fs.read(dir, 0, 0, 1), Err(OpError::IsDirectory));
        assert_eq!(fs.getattr(999), Err(OpError::NotFound));
        assert_eq!(fs.getattr(0), Err(OpError::NotFound));
        assert_eq!(fs.lookup(f, b"x"), Err(OpError::NotDirectory));
        assert_eq!(fs.open(f, true), Err(OpError::ReadOnly));
        assert!(fs.open(f, false).unwrap().keep_cache);
        assert_eq!(fs.lookup(dir, b"..").unwrap().0, ROOT_INO);
    }

    /// Collects formatted log lines.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failing_source_is_eio() {
        let fs = layer(
            &[meta("sub/dir/f", entry_type::REG, 512, 10)],
            Arc::new(FailingSpanSource::new(2048)),
        );
        let f = fs.ino(fs.tree().resolve("sub/dir/f").unwrap());
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let logs = logs.clone();
                move || logs.clone()
            })
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(fs.read(f, 0, 0, 10), Err(OpError::Io));
        });
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("WARN"), "{text}");
        assert!(text.contains("file=/sub/dir/f"), "{text}");
        assert!(text.contains("layer_offset=512"), "{text}");
        assert!(text.contains("span fetch failed"), "{text}");
        let fs = layer(
            &[meta("f", entry_type::REG, 512, 10)],
            Arc::new(FailingSpanSource::new(2048)),
        );
        let (f, _) = fs.lookup(ROOT_INO, b"f").unwrap();
        assert_eq!(fs.read(f, 0, 0, 10), Err(OpError::Io));
        assert_eq!(OpError::Io.errno(), 5);
        // A source shorter than the TOC claims is EIO too.
        let fs = layer(
            &[meta("f", entry_type::REG, 512, 10)],
            Arc::new(MemSpanSource::new(vec![0; 515])),
        );
        assert_eq!(fs.read(f, 0, 0, 10), Err(OpError::Io));
    }

    #[test]
    fn root_listing_includes_state_dir_in_order() {
        let src: Arc<dyn SpanSource> = Arc::new(MemSpanSource::new(vec![0; 4096]));
        let fs = layer(
            &[
                meta("a", entry_type::REG, 512, 0),
                meta("zz", entry_type::REG, 512, 0),
                meta(".a", entry_type::REG, 512, 0),
            ],
            src.clone(),
        );
        assert_eq!(
            list(&fs, ROOT_INO),
            [".", "..", ".a", ".soci-snapshotter", "a", "zz"]
        );
        // Resume from every offset gives the tail.
        for start in 0..6u64 {
            let mut names = Vec::new();
            fs.readdir(ROOT_INO, start, |i| {
                names.push(i.name.to_vec());
                true
            })
            .unwrap();
            assert_eq!(names.len(), 1, "offset {start}");
        }
        assert_eq!(list(&fs, STATE_DIR_INO), [".", "..", "sha256:00.json"]);
        let (ino, attr) = fs.lookup(ROOT_INO, b".soci-snapshotter").unwrap();
        assert_eq!((ino, attr.mode), (STATE_DIR_INO, 0o40500));
        let (ino, attr) = fs.lookup(STATE_DIR_INO, b"sha256:00.json").unwrap();
        assert_eq!(ino, STATE_FILE_INO);
        let json = fs.read(ino, 0, 0, 4096).unwrap();
        assert_eq!(attr.size, json.len() as u64);
        assert!(json.ends_with(b"\"fetchedPercent\":50}\n"));
        let open = fs.open(ino, false).unwrap();
        assert!(open.direct_io && open.fh != 0);
        assert_eq!(fs.read(ino, open.fh, 10, 5).unwrap(), &json[10..15]);
        fs.release(ino, open.fh);

        // A real entry of that name is shadowed, not listed twice.
        let fs = layer(
            &[
                meta(".soci-snapshotter/x", entry_type::REG, 512, 0),
                meta("b", entry_type::REG, 512, 0),
            ],
            src,
        );
        assert_eq!(list(&fs, ROOT_INO), [".", "..", ".soci-snapshotter", "b"]);
        assert_eq!(
            fs.lookup(ROOT_INO, b".soci-snapshotter").unwrap().0,
            STATE_DIR_INO
        );
    }

    #[test]
    fn xattr_size_semantics() {
        let mut f = meta("f", entry_type::REG, 512, 0);
        f.pax_records
            .insert("SCHILY.xattr.user.k".into(), "value".into());
        let fs = layer(&[f], Arc::new(MemSpanSource::new(vec![0; 1024])));
        let (ino, _) = fs.lookup(ROOT_INO, b"f").unwrap();
        assert_eq!(fs.getxattr(ino, b"user.k", 0), Ok(XattrReply::Size(5)));
        assert_eq!(fs.getxattr(ino, b"user.k", 4), Err(OpError::Range));
        assert_eq!(
            fs.getxattr(ino, b"user.k", 5),
            Ok(XattrReply::Data(Cow::Borrowed(&b"value"[..])))
        );
        assert_eq!(fs.getxattr(ino, b"user.nope", 64), Err(OpError::NoData));
        assert_eq!(fs.listxattr(ino, 0), Ok(XattrReply::Size(7)));
        assert_eq!(fs.listxattr(ino, 6), Err(OpError::Range));
        assert_eq!(
            fs.listxattr(ino, 7),
            Ok(XattrReply::Data(Cow::Owned(b"user.k\0".to_vec())))
        );
        assert_eq!(fs.listxattr(ROOT_INO, 0), Ok(XattrReply::Size(0)));
    }

    #[test]
    fn access_checks() {
        let mut f = meta("f", entry_type::REG, 512, 0);
        f.mode = 0o640;
        f.uid = 1000;
        f.gid = 100;
        let fs = layer(&[f], Arc::new(MemSpanSource::new(vec![0; 1024])));
        let (ino, _) = fs.lookup(ROOT_INO, b"f").unwrap();
        assert_eq!(fs.access(ino, 2, 0, 0), Err(OpError::ReadOnly));
        assert_eq!(fs.access(ino, 4, 0, 0), Ok(()));
        assert_eq!(fs.access(ino, 1, 0, 0), Err(OpError::Access));
        assert_eq!(fs.access(ino, 4, 1000, 1), Ok(()));
        assert_eq!(fs.access(ino, 4, 5, 100), Ok(()));
        assert_eq!(fs.access(ino, 4, 5, 5), Err(OpError::Access));
        assert_eq!(fs.access(ROOT_INO, 1, 5, 5), Ok(()));
    }
}
