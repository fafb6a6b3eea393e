//! The inode table of one layer, built from its zTOC.
//!
//! Pure data: no FUSE, no I/O. Building applies the layer's tar semantics
//! (cleaned names, implicit parents, duplicate directories, hardlinks, overlay
//! whiteouts and opaque markers); the result is a compact, immutable table that
//! the filesystem serves concurrently without locks.
//!
//! Layout, chosen to keep a 200k-entry layer small:
//! * one fixed-size [`Node`] per inode (hardlinks share one);
//! * one flat, name-sorted array of directory entries, each directory owning a
//!   contiguous slice of it (lookup is a binary search, readdir a slice walk);
//! * one byte arena for every entry name and symlink target;
//! * extended attributes in a side table, referenced only by nodes that have any.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use soci_format::toc::parse_go_time;
use soci_format::ztoc::{FileMetadata, Ztoc, entry_type};

use crate::error::LayerFsError;

/// Name prefix of an overlay whiteout entry (`.wh.<name>` hides `<name>`).
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the overlay opaque-directory marker.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Block size reported in `st_blksize`.
pub const BLOCK_SIZE: u32 = 4096;

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFIFO: u32 = 0o010_000;
/// Permission bits plus set-uid, set-gid and sticky.
const PERM_MASK: u32 = 0o7777;

const FLAG_OPAQUE: u8 = 1;
const FLAG_WHITEOUT: u8 = 2;

/// Which xattr namespace overlayfs reads its opaque marker from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverlayXattrs {
    /// `trusted.overlay.opaque` (overlay mounted by root, the default).
    #[default]
    Trusted,
    /// `user.overlay.opaque` (overlay mounted with `userxattr`).
    User,
}

impl OverlayXattrs {
    /// Name of the xattr that marks a directory opaque.
    pub fn opaque_name(self) -> &'static str {
        match self {
            OverlayXattrs::Trusted => "trusted.overlay.opaque",
            OverlayXattrs::User => "user.overlay.opaque",
        }
    }
}

/// Options of the inode table.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeOptions {
    /// Drop every `SCHILY.xattr.*` record (the index annotation
    /// `disable-xattrs=true`); opaque directories still report their marker.
    pub disable_xattrs: bool,
    /// Namespace of the opaque marker xattr.
    pub overlay_xattrs: OverlayXattrs,
}

/// An inode of the table. [`NodeId::ROOT`] is the layer root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// The layer root directory.
    pub const ROOT: NodeId = NodeId(0);

    /// Index of the node in the table (0 = root).
    pub fn index(self) -> u32 {
        self.0
    }
}

/// File type of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Directory.
    Directory,
    /// Regular file.
    RegularFile,
    /// Symbolic link.
    Symlink,
    /// Character device (also whiteouts, as 0:0).
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    NamedPipe,
}

impl FileKind {
    pub(crate) fn from_mode(mode: u32) -> FileKind {
        match mode & S_IFMT {
            S_IFDIR => FileKind::Directory,
            S_IFLNK => FileKind::Symlink,
            S_IFCHR => FileKind::CharDevice,
            S_IFBLK => FileKind::BlockDevice,
            S_IFIFO => FileKind::NamedPipe,
            _ => FileKind::RegularFile,
        }
    }
}

/// Attributes of a node as `stat` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// File type.
    pub kind: FileKind,
    /// Full `st_mode`: type bits, permissions, set-uid/set-gid/sticky.
    pub mode: u32,
    /// Size in bytes (length of the target for symlinks).
    pub size: u64,
    /// Allocated 512-byte blocks (the size rounded up to [`BLOCK_SIZE`]).
    pub blocks: u64,
    /// Preferred I/O size, [`BLOCK_SIZE`].
    pub blksize: u32,
    /// Link count: names of the inode, or 2 + subdirectories for directories.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number (Linux `new_encode_dev` of major/minor) for devices.
    pub rdev: u32,
    /// Modification time from the entry's `mod_time` (epoch when unparsable).
    pub mtime: SystemTime,
}

impl Attr {
    /// Permission bits including set-uid, set-gid and sticky.
    pub fn perm(&self) -> u16 {
        (self.mode & PERM_MASK) as u16
    }
}

/// Where a regular file's bytes live in the uncompressed layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRange {
    /// Offset of the first byte in the uncompressed tar.
    pub offset: u64,
    /// File size.
    pub size: u64,
}

/// One inode. 56 bytes.
#[derive(Debug, Clone)]
struct Node {
    size: u64,
    /// Regular file: data offset in the layer; symlink: arena offset of the
    /// target (length = `size`); directory: index into `dirs`.
    data: u64,
    mtime_sec: i64,
    mtime_nsec: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    rdev: u32,
    /// 0 = none, otherwise index + 1 into `xattrs`.
    xattrs: u32,
    flags: u8,
}

impl Node {
    fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
}

/// A directory's slice of `entries`. 12 bytes.
#[derive(Debug, Clone, Copy)]
struct DirInfo {
    parent: u32,
    first: u32,
    len: u32,
}

/// One name in a directory. 12 bytes.
#[derive(Debug, Clone, Copy)]
struct DirEntry {
    name_off: u32,
    name_len: u32,
    node: u32,
}

#[derive(Debug, Clone)]
struct Xattr {
    name: Box<[u8]>,
    value: Box<[u8]>,
}

/// The immutable inode table of one layer.
#[derive(Debug)]
pub struct InodeTree {
    nodes: Box<[Node]>,
    dirs: Box<[DirInfo]>,
    entries: Box<[DirEntry]>,
    strings: Box<[u8]>,
    xattrs: Box<[Box<[Xattr]>]>,
    opaque_name: &'static str,
}

impl InodeTree {
    /// Build the table from a decoded zTOC.
    pub fn from_ztoc(ztoc: &Ztoc, options: &TreeOptions) -> Result<InodeTree, LayerFsError> {
        InodeTree::build(&ztoc.toc, options)
    }

    /// Build the table from TOC entries in tar order (later entries win).
    pub fn build(
        entries: &[FileMetadata],
        options: &TreeOptions,
    ) -> Result<InodeTree, LayerFsError> {
        let mut b = TreeBuilder::new(options, entries.len());
        for m in entries {
            b.add(m)?;
        }
        b.finish()
    }

    /// Number of inodes, the root included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node with `index`, if it exists.
    pub fn node(&self, index: u32) -> Option<NodeId> {
        ((index as usize) < self.nodes.len()).then_some(NodeId(index))
    }

    fn n(&self, node: NodeId) -> &Node {
        &self.nodes[node.0 as usize]
    }

    fn dir_info(&self, node: NodeId) -> Option<&DirInfo> {
        let n = self.n(node);
        n.is_dir().then(|| &self.dirs[n.data as usize])
    }

    fn entry_name(&self, e: &DirEntry) -> &[u8] {
        &self.strings[e.name_off as usize..(e.name_off + e.name_len) as usize]
    }

    fn dir_slice(&self, dir: NodeId) -> &[DirEntry] {
        match self.dir_info(dir) {
            Some(d) => &self.entries[d.first as usize..(d.first + d.len) as usize],
            None => &[],
        }
    }

    /// The child `name` of directory `dir`.
    pub fn lookup(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        let slice = self.dir_slice(dir);
        slice
            .binary_search_by(|e| self.entry_name(e).cmp(name))
            .ok()
            .map(|i| NodeId(slice[i].node))
    }

    /// The node at a `/`-separated path relative to the root (for tests and tools).
    pub fn resolve(&self, path: &str) -> Option<NodeId> {
        path.split('/')
            .filter(|c| !c.is_empty())
            .try_fold(NodeId::ROOT, |dir, c| self.lookup(dir, c.as_bytes()))
    }

    /// Number of entries of directory `dir` (without `.` and `..`); `None` for non-directories.
    pub fn dir_len(&self, dir: NodeId) -> Option<usize> {
        self.dir_info(dir).map(|d| d.len as usize)
    }

    /// The `index`-th entry of directory `dir`, in name order.
    pub fn dir_entry(&self, dir: NodeId, index: usize) -> Option<(&[u8], NodeId)> {
        self.dir_slice(dir)
            .get(index)
            .map(|e| (self.entry_name(e), NodeId(e.node)))
    }

    /// Entries of directory `dir` in name order (empty for non-directories).
    pub fn children(&self, dir: NodeId) -> impl Iterator<Item = (&[u8], NodeId)> + '_ {
        self.dir_slice(dir)
            .iter()
            .map(|e| (self.entry_name(e), NodeId(e.node)))
    }

    /// Parent of directory `dir` (the root is its own parent); `None` for non-directories.
    pub fn parent(&self, dir: NodeId) -> Option<NodeId> {
        self.dir_info(dir).map(|d| NodeId(d.parent))
    }

    /// File type of `node`.
    pub fn kind(&self, node: NodeId) -> FileKind {
        FileKind::from_mode(self.n(node).mode)
    }

    /// Attributes of `node`.
    pub fn attr(&self, node: NodeId) -> Attr {
        let n = self.n(node);
        let kind = FileKind::from_mode(n.mode);
        let nlink = if n.is_dir() { n.nlink } else { n.nlink.max(1) };
        Attr {
            kind,
            mode: n.mode,
            size: n.size,
            blocks: n.size.div_ceil(u64::from(BLOCK_SIZE)) * u64::from(BLOCK_SIZE / 512),
            blksize: BLOCK_SIZE,
            nlink,
            uid: n.uid,
            gid: n.gid,
            rdev: n.rdev,
            mtime: system_time(n.mtime_sec, n.mtime_nsec),
        }
    }

    /// Target of a symlink.
    pub fn symlink_target(&self, node: NodeId) -> Option<&[u8]> {
        let n = self.n(node);
        (n.mode & S_IFMT == S_IFLNK)
            .then(|| &self.strings[n.data as usize..(n.data + n.size) as usize])
    }

    /// Location of a regular file's bytes in the uncompressed layer.
    pub fn data_range(&self, node: NodeId) -> Option<DataRange> {
        let n = self.n(node);
        (n.mode & S_IFMT == S_IFREG).then_some(DataRange {
            offset: n.data,
            size: n.size,
        })
    }

    /// True for a directory that carried an opaque marker.
    pub fn is_opaque(&self, node: NodeId) -> bool {
        self.n(node).flags & FLAG_OPAQUE != 0
    }

    /// True for a node presented as a whiteout (char device 0:0).
    pub fn is_whiteout(&self, node: NodeId) -> bool {
        self.n(node).flags & FLAG_WHITEOUT != 0
    }

    /// Extended attributes of `node`, the opaque marker included.
    pub fn xattrs(&self, node: NodeId) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let n = self.n(node);
        let real: &[Xattr] = match n.xattrs {
            0 => &[],
            i => &self.xattrs[i as usize - 1],
        };
        let opaque_name = self.opaque_name.as_bytes();
        let opaque = (n.flags & FLAG_OPAQUE != 0 && !real.iter().any(|x| *x.name == *opaque_name))
            .then_some((opaque_name, &b"y"[..]));
        real.iter().map(|x| (&*x.name, &*x.value)).chain(opaque)
    }

    /// The value of xattr `name` of `node`.
    pub fn xattr(&self, node: NodeId, name: &[u8]) -> Option<&[u8]> {
        self.xattrs(node).find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Whether any node has an extended attribute or is an opaque directory
    /// (which reports the overlay opaque xattr).
    pub fn has_xattrs(&self) -> bool {
        !self.xattrs.is_empty() || self.nodes.iter().any(|n| n.flags & FLAG_OPAQUE != 0)
    }

    /// One path of `node` (for log messages). Scans the table: slow, use on error paths only.
    pub fn path_of(&self, node: NodeId) -> Option<String> {
        if node == NodeId::ROOT {
            return Some("/".to_string());
        }
        let (dir, name) = if self.n(node).is_dir() {
            let parent = self.parent(node)?;
            let e = self.dir_slice(parent).iter().find(|e| e.node == node.0)?;
            (parent, self.entry_name(e))
        } else {
            let i = self.entries.iter().position(|e| e.node == node.0)?;
            let dir = self
                .dirs
                .iter()
                .position(|d| (d.first as usize..(d.first + d.len) as usize).contains(&i))?;
            let dir_node = self
                .nodes
                .iter()
                .position(|n| n.is_dir() && n.data == dir as u64)?;
            (NodeId(dir_node as u32), self.entry_name(&self.entries[i]))
        };
        let mut path = self.path_of(dir)?;
        if !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(&String::from_utf8_lossy(name));
        Some(path)
    }

    /// Total size of all regular files.
    pub fn regular_file_bytes(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.mode & S_IFMT == S_IFREG)
            .map(|n| n.size)
            .sum()
    }

    /// Heap bytes held by the table (the struct itself excluded).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of_val;
        size_of_val(&*self.nodes)
            + size_of_val(&*self.dirs)
            + size_of_val(&*self.entries)
            + self.strings.len()
            + size_of_val(&*self.xattrs)
            + self
                .xattrs
                .iter()
                .map(|set| {
                    size_of_val(&**set)
                        + set
                            .iter()
                            .map(|x| x.name.len() + x.value.len())
                            .sum::<usize>()
                })
                .sum::<usize>()
    }

    /// Bytes of names and symlink targets in the arena (part of [`heap_bytes`](Self::heap_bytes)).
    pub fn name_bytes(&self) -> usize {
        self.strings.len()
    }
}

fn system_time(sec: i64, nsec: u32) -> SystemTime {
    let t = if sec >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(sec as u64, nsec))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(sec.unsigned_abs()))
            .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nsec))))
    };
    t.unwrap_or(UNIX_EPOCH)
}

/// Linux `new_encode_dev`: 12-bit major, 20-bit minor in 32 bits.
fn encode_dev(major: i64, minor: i64) -> u32 {
    let major = (major as u32) & 0xfff;
    let minor = (minor as u32) & 0xf_ffff;
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

fn implicit_dir() -> Node {
    Node {
        size: 0,
        data: 0,
        mtime_sec: 0,
        mtime_nsec: 0,
        mode: S_IFDIR | 0o755,
        uid: 0,
        gid: 0,
        nlink: 0,
        rdev: 0,
        xattrs: 0,
        flags: 0,
    }
}

/// Clean an entry name: drop leading `./` and `/`, trailing `/` and empty
/// components. `.`/`..` components are rejected (never resolved), so nothing
/// can name a place outside the root. The root itself is the empty string.
pub fn clean_path(raw: &str) -> Result<String, &'static str> {
    if raw.contains('\0') {
        return Err("contains a NUL byte");
    }
    let mut s = raw;
    loop {
        if let Some(rest) = s.strip_prefix("./") {
            s = rest;
        } else if let Some(rest) = s.strip_prefix('/') {
            s = rest;
        } else {
            break;
        }
    }
    if s == "." {
        return Ok(String::new());
    }
    let mut out = String::with_capacity(s.len());
    for c in s.split('/').filter(|c| !c.is_empty()) {
        match c {
            "." => return Err("contains a '.' component"),
            ".." => return Err("contains a '..' component (escapes the layer root)"),
            _ => {}
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(c);
    }
    Ok(out)
}

/// Builds an [`InodeTree`] from TOC entries given one at a time, in tar
/// order (later entries win), e.g. straight from
/// [`Ztoc::from_bytes_streaming`](soci_format::ztoc::Ztoc::from_bytes_streaming).
pub struct TreeBuilder {
    options: TreeOptions,
    nodes: Vec<Node>,
    strings: Vec<u8>,
    xattrs: Vec<Box<[Xattr]>>,
    /// Cleaned path (root excluded) -> node. Build-time only.
    paths: HashMap<Box<str>, u32>,
}

impl TreeBuilder {
    /// A builder expecting about `entries` entries.
    pub fn new(options: &TreeOptions, entries: usize) -> TreeBuilder {
        let mut b = TreeBuilder {
            options: *options,
            nodes: Vec::with_capacity(entries + 1),
            strings: Vec::new(),
            xattrs: Vec::new(),
            paths: HashMap::with_capacity(entries),
        };
        b.nodes.push(implicit_dir());
        b
    }

    fn is_dir(&self, node: u32) -> bool {
        self.nodes[node as usize].is_dir()
    }

    fn push(&mut self, node: Node) -> Result<u32, LayerFsError> {
        let id = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&i| i < u32::MAX)
            .ok_or(LayerFsError::TooLarge {
                what: "inodes",
                limit: u64::from(u32::MAX - 1),
            })?;
        self.nodes.push(node);
        Ok(id)
    }

    fn push_string(&mut self, s: &[u8]) -> Result<u64, LayerFsError> {
        let off = self.strings.len();
        if off + s.len() > u32::MAX as usize {
            return Err(LayerFsError::TooLarge {
                what: "bytes of names and symlink targets",
                limit: u64::from(u32::MAX),
            });
        }
        self.strings.extend_from_slice(s);
        Ok(off as u64)
    }

    fn intern_xattrs(&mut self, m: &FileMetadata) -> Result<u32, LayerFsError> {
        if self.options.disable_xattrs {
            return Ok(0);
        }
        let set: Box<[Xattr]> = m
            .xattrs()
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| Xattr {
                name: k.as_bytes().into(),
                value: v.as_bytes().into(),
            })
            .collect();
        if set.is_empty() {
            return Ok(0);
        }
        if self.xattrs.len() >= (u32::MAX - 1) as usize {
            return Err(LayerFsError::TooLarge {
                what: "xattr sets",
                limit: u64::from(u32::MAX - 1),
            });
        }
        self.xattrs.push(set);
        Ok(self.xattrs.len() as u32)
    }

    fn set_dir_attrs(&mut self, node: u32, m: &FileMetadata) -> Result<(), LayerFsError> {
        let xattrs = self.intern_xattrs(m)?;
        let (sec, nsec) = parse_go_time(&m.mod_time).unwrap_or((0, 0));
        let n = &mut self.nodes[node as usize];
        n.mode = S_IFDIR | (m.mode as u32 & PERM_MASK);
        n.uid = m.uid;
        n.gid = m.gid;
        n.size = m.uncompressed_size;
        n.mtime_sec = sec;
        n.mtime_nsec = nsec;
        n.xattrs = xattrs;
        Ok(())
    }

    fn new_node(&mut self, m: &FileMetadata, type_bits: u32) -> Result<u32, LayerFsError> {
        let (mtime_sec, mtime_nsec) = parse_go_time(&m.mod_time).unwrap_or((0, 0));
        let xattrs = self.intern_xattrs(m)?;
        let (size, data, rdev) = match type_bits {
            S_IFREG => (m.uncompressed_size, m.uncompressed_offset, 0),
            S_IFLNK => (
                m.linkname.len() as u64,
                self.push_string(m.linkname.as_bytes())?,
                0,
            ),
            S_IFCHR | S_IFBLK => (0, 0, encode_dev(m.devmajor, m.devminor)),
            S_IFDIR => (m.uncompressed_size, 0, 0),
            _ => (0, 0, 0),
        };
        self.push(Node {
            size,
            data,
            mtime_sec,
            mtime_nsec,
            mode: type_bits | (m.mode as u32 & PERM_MASK),
            uid: m.uid,
            gid: m.gid,
            nlink: 0,
            rdev,
            xattrs,
            flags: 0,
        })
    }

    /// The parent directory node of `path`, creating missing ancestors as 0755 dirs.
    fn ensure_parent(&mut self, path: &str, name: &str) -> Result<u32, LayerFsError> {
        let Some((parent, _)) = path.rsplit_once('/') else {
            return Ok(0);
        };
        if let Some(&n) = self.paths.get(parent) {
            if self.is_dir(n) {
                return Ok(n);
            }
            return Err(LayerFsError::ParentNotDirectory {
                name: name.to_string(),
                parent: parent.to_string(),
            });
        }
        let mut cur = 0;
        let ends = parent
            .match_indices('/')
            .map(|(i, _)| i)
            .chain(std::iter::once(parent.len()));
        for end in ends {
            let prefix = &parent[..end];
            cur = match self.paths.get(prefix) {
                Some(&n) if self.is_dir(n) => n,
                Some(_) => {
                    return Err(LayerFsError::ParentNotDirectory {
                        name: name.to_string(),
                        parent: prefix.to_string(),
                    });
                }
                None => {
                    let n = self.push(implicit_dir())?;
                    self.paths.insert(prefix.into(), n);
                    n
                }
            };
        }
        Ok(cur)
    }

    /// Apply the next entry.
    pub fn add(&mut self, m: &FileMetadata) -> Result<(), LayerFsError> {
        let path = clean_path(&m.name).map_err(|reason| LayerFsError::PathRejected {
            name: m.name.clone(),
            path: m.name.clone(),
            reason,
        })?;
        if path.is_empty() {
            if m.entry_type != entry_type::DIR {
                return Err(LayerFsError::RootNotDirectory {
                    name: m.name.clone(),
                    entry_type: m.entry_type.clone(),
                });
            }
            return self.set_dir_attrs(0, m);
        }
        let parent = self.ensure_parent(&path, &m.name)?;
        let base = path.rsplit_once('/').map_or(path.as_str(), |(_, b)| b);
        // Markers stay ordinary (hidden) entries so hardlinks to them resolve as
        // tar would; `finish` hides them and presents whiteouts under their target name.
        if base == OPAQUE_MARKER {
            self.nodes[parent as usize].flags |= FLAG_OPAQUE;
        }
        let type_bits = match m.entry_type.as_str() {
            entry_type::DIR => {
                if let Some(&n) = self.paths.get(path.as_str())
                    && self.is_dir(n)
                {
                    return self.set_dir_attrs(n, m);
                }
                S_IFDIR
            }
            entry_type::HARDLINK => {
                let target =
                    clean_path(&m.linkname).map_err(|reason| LayerFsError::PathRejected {
                        name: m.name.clone(),
                        path: m.linkname.clone(),
                        reason,
                    })?;
                let node = if target.is_empty() {
                    0
                } else {
                    *self.paths.get(target.as_str()).ok_or_else(|| {
                        LayerFsError::HardlinkTargetMissing {
                            name: m.name.clone(),
                            target: target.clone(),
                        }
                    })?
                };
                if self.is_dir(node) {
                    return Err(LayerFsError::HardlinkToDirectory {
                        name: m.name.clone(),
                        target,
                    });
                }
                self.paths.insert(path.into_boxed_str(), node);
                return Ok(());
            }
            entry_type::REG => S_IFREG,
            entry_type::SYMLINK => S_IFLNK,
            entry_type::CHAR => S_IFCHR,
            entry_type::BLOCK => S_IFBLK,
            entry_type::FIFO => S_IFIFO,
            other => {
                return Err(LayerFsError::UnsupportedType {
                    name: m.name.clone(),
                    entry_type: other.to_string(),
                });
            }
        };
        let node = self.new_node(m, type_bits)?;
        self.paths.insert(path.into_boxed_str(), node);
        Ok(())
    }

    /// The finished table.
    pub fn finish(self) -> Result<InodeTree, LayerFsError> {
        let TreeBuilder {
            options,
            mut nodes,
            mut strings,
            xattrs,
            paths,
        } = self;

        // Every bound path becomes (parent dir, presented name, node), unless its
        // parent was replaced by a non-directory or it is a shadowed whiteout.
        let mut raw: Vec<(u32, &str, u32)> = Vec::with_capacity(paths.len());
        let mut whiteouts: Vec<usize> = Vec::new();
        for (path, &node) in &paths {
            let (parent_path, base) = match path.rsplit_once('/') {
                Some((p, b)) => (Some(p), b),
                None => (None, &**path),
            };
            let parent = match parent_path {
                None => 0,
                Some(p) => match paths.get(p) {
                    Some(&n) if nodes[n as usize].is_dir() => n,
                    _ => continue,
                },
            };
            let name = match base.strip_prefix(WHITEOUT_PREFIX) {
                None => base,
                Some(hidden) if hidden.is_empty() || hidden == "." || hidden == ".." => continue,
                Some(hidden) if hidden.starts_with(WHITEOUT_PREFIX) => continue,
                Some(hidden) => {
                    let sibling = match parent_path {
                        Some(p) => format!("{p}/{hidden}"),
                        None => hidden.to_string(),
                    };
                    if paths.contains_key(sibling.as_str()) {
                        continue;
                    }
                    whiteouts.push(raw.len());
                    hidden
                }
            };
            raw.push((parent, name, node));
        }
        // A whiteout is presented by a node of its own (char device 0:0 with
        // the marker's mtime); the marker's node keeps serving hardlinks to it.
        for i in whiteouts {
            let marker = &nodes[raw[i].2 as usize];
            let whiteout = Node {
                size: 0,
                data: 0,
                mtime_sec: marker.mtime_sec,
                mtime_nsec: marker.mtime_nsec,
                mode: S_IFCHR,
                uid: 0,
                gid: 0,
                nlink: 0,
                rdev: 0,
                xattrs: 0,
                flags: FLAG_WHITEOUT,
            };
            if nodes.len() >= u32::MAX as usize {
                return Err(LayerFsError::TooLarge {
                    what: "inodes",
                    limit: u64::from(u32::MAX - 1),
                });
            }
            raw[i].2 = nodes.len() as u32;
            nodes.push(whiteout);
        }
        let count = nodes.len();

        raw.sort_unstable_by(|a, b| (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes())));
        raw.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);

        // Each directory's slice of `raw`.
        let mut range = vec![(0u32, 0u32); count];
        let mut i = 0;
        while i < raw.len() {
            let parent = raw[i].0;
            let start = i;
            while i < raw.len() && raw[i].0 == parent {
                i += 1;
            }
            range[parent as usize] = (start as u32, (i - start) as u32);
        }

        // Only what the root reaches is presented (a directory replaced by a
        // file leaves its old subtree behind, unreachable).
        let mut reachable = vec![false; count];
        let mut parent_of = vec![0u32; count];
        reachable[0] = true;
        let mut stack = vec![0u32];
        while let Some(d) = stack.pop() {
            let (start, len) = range[d as usize];
            for &(_, _, child) in &raw[start as usize..(start + len) as usize] {
                if nodes[child as usize].is_dir() && !reachable[child as usize] {
                    reachable[child as usize] = true;
                    parent_of[child as usize] = d;
                    stack.push(child);
                }
            }
        }

        let mut entries: Vec<DirEntry> = Vec::with_capacity(raw.len());
        let mut dirs: Vec<DirInfo> = Vec::new();
        let mut links = vec![0u32; count];
        for d in 0..count {
            if !nodes[d].is_dir() {
                continue;
            }
            let first = entries.len() as u32;
            if reachable[d] {
                let (start, len) = range[d];
                for &(_, name, child) in &raw[start as usize..(start + len) as usize] {
                    let name_off = strings.len();
                    if name_off + name.len() > u32::MAX as usize {
                        return Err(LayerFsError::TooLarge {
                            what: "bytes of names and symlink targets",
                            limit: u64::from(u32::MAX),
                        });
                    }
                    strings.extend_from_slice(name.as_bytes());
                    entries.push(DirEntry {
                        name_off: name_off as u32,
                        name_len: name.len() as u32,
                        node: child,
                    });
                    if nodes[child as usize].is_dir() {
                        links[d] += 1;
                    } else {
                        links[child as usize] += 1;
                    }
                }
            }
            nodes[d].data = dirs.len() as u64;
            dirs.push(DirInfo {
                parent: parent_of[d],
                first,
                len: entries.len() as u32 - first,
            });
        }
        for (n, links) in nodes.iter_mut().zip(links) {
            n.nlink = if n.is_dir() { 2 + links } else { links };
        }
        drop(raw);
        drop(paths);

        Ok(InodeTree {
            nodes: nodes.into_boxed_slice(),
            dirs: dirs.into_boxed_slice(),
            entries: entries.into_boxed_slice(),
            strings: strings.into_boxed_slice(),
            xattrs: xattrs.into_boxed_slice(),
            opaque_name: options.overlay_xattrs.opaque_name(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn entry(name: &str, kind: &str) -> FileMetadata {
        FileMetadata {
            name: name.to_string(),
            entry_type: kind.to_string(),
            mode: if kind == entry_type::DIR {
                0o755
            } else {
                0o644
            },
            mod_time: "2023-05-01T12:00:00Z".to_string(),
            ..FileMetadata::default()
        }
    }

    fn file(name: &str, offset: u64, size: u64) -> FileMetadata {
        FileMetadata {
            uncompressed_offset: offset,
            uncompressed_size: size,
            ..entry(name, entry_type::REG)
        }
    }

    fn dir(name: &str) -> FileMetadata {
        entry(name, entry_type::DIR)
    }

    fn link(name: &str, kind: &str, target: &str) -> FileMetadata {
        FileMetadata {
            linkname: target.to_string(),
            ..entry(name, kind)
        }
    }

    fn build(entries: &[FileMetadata]) -> InodeTree {
        InodeTree::build(entries, &TreeOptions::default()).expect("tree builds")
    }

    fn names(t: &InodeTree, path: &str) -> Vec<String> {
        let d = t.resolve(path).expect("dir exists");
        t.children(d)
            .map(|(n, _)| String::from_utf8(n.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn compact_structs() {
        assert_eq!(std::mem::size_of::<Node>(), 56);
        assert_eq!(std::mem::size_of::<DirEntry>(), 12);
        assert_eq!(std::mem::size_of::<DirInfo>(), 12);
    }

    /// Retained memory of a 200k-file layer (the brief's budget: well under 200
    /// bytes per entry beyond the names). Boxed slices have no slack, so the
    /// accounting is exact up to allocator headers.
    #[test]
    fn memory_per_entry_200k() {
        let files = 200_000;
        let mut entries = Vec::with_capacity(files + files / 100);
        for d in 0..files / 100 {
            entries.push(dir(&format!("usr/share/pkg{d:04}/")));
        }
        for i in 0..files {
            let name = format!("usr/share/pkg{:04}/file-{i:06}.txt", i / 100);
            entries.push(file(&name, 512 * (2 * i as u64 + 1), 100));
        }
        let started = std::time::Instant::now();
        let t = build(&entries);
        let elapsed = started.elapsed();
        let heap = t.heap_bytes() + std::mem::size_of::<InodeTree>();
        let names = t.name_bytes();
        let per_entry = (heap - names) as f64 / entries.len() as f64;
        eprintln!(
            "{} entries: {heap} heap bytes, {names} of them names; {per_entry:.1} bytes/entry beyond names; built in {elapsed:?}",
            entries.len()
        );
        assert_eq!(t.node_count(), entries.len() + 3);
        assert!(per_entry < 100.0, "{per_entry} bytes per entry");
        let f = t.resolve("usr/share/pkg1234/file-123456.txt").unwrap();
        assert_eq!(t.data_range(f).unwrap().offset, 512 * (2 * 123_456 + 1));
    }

    #[test]
    fn clean_path_rules() {
        assert_eq!(clean_path("./a/b/").unwrap(), "a/b");
        assert_eq!(clean_path("/a//b").unwrap(), "a/b");
        assert_eq!(clean_path("././a").unwrap(), "a");
        assert_eq!(clean_path("./").unwrap(), "");
        assert_eq!(clean_path(".").unwrap(), "");
        assert_eq!(clean_path("/").unwrap(), "");
        assert_eq!(clean_path("..dots/x").unwrap(), "..dots/x");
        assert!(clean_path("../etc/passwd").is_err());
        assert!(clean_path("a/../../b").is_err());
        assert!(clean_path("a/./b").is_err());
        assert!(clean_path("a/..").is_err());
        assert!(clean_path("a\0b").is_err());
    }

    #[test]
    fn escaping_paths_are_rejected_with_the_entry_name() {
        for bad in ["../evil", "a/../../evil", "a/./b", "/../x", "x/.."] {
            let err =
                InodeTree::build(&[file(bad, 512, 1)], &TreeOptions::default()).expect_err(bad);
            let msg = err.to_string();
            assert!(msg.contains(bad), "{msg}");
            assert!(matches!(err, LayerFsError::PathRejected { .. }), "{msg}");
        }
        let err = InodeTree::build(
            &[
                file("a", 512, 1),
                link("b", entry_type::HARDLINK, "../../etc/shadow"),
            ],
            &TreeOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("../../etc/shadow"), "{err}");
    }

    #[test]
    fn implicit_parents_and_attrs() {
        let t = build(&[file("./a/b/c.txt", 1024, 10)]);
        let a = t.resolve("a").unwrap();
        let attr = t.attr(a);
        assert_eq!(attr.kind, FileKind::Directory);
        assert_eq!(attr.mode, 0o40755);
        assert_eq!(attr.nlink, 3);
        assert_eq!(attr.mtime, UNIX_EPOCH);
        let b = t.resolve("a/b").unwrap();
        assert_eq!(t.attr(b).nlink, 2);
        assert_eq!(t.parent(b), Some(a));
        assert_eq!(t.parent(a), Some(NodeId::ROOT));
        assert_eq!(t.parent(NodeId::ROOT), Some(NodeId::ROOT));
        let c = t.resolve("a/b/c.txt").unwrap();
        assert_eq!(
            t.data_range(c),
            Some(DataRange {
                offset: 1024,
                size: 10
            })
        );
        let attr = t.attr(c);
        assert_eq!(attr.size, 10);
        assert_eq!(attr.blocks, 8);
        assert_eq!(attr.blksize, 4096);
        assert_eq!(attr.nlink, 1);
        assert_eq!(attr.mtime, UNIX_EPOCH + Duration::from_secs(1_682_942_400));
        assert_eq!(t.attr(NodeId::ROOT).nlink, 3);
        assert_eq!(t.path_of(c).as_deref(), Some("/a/b/c.txt"));
        assert_eq!(t.path_of(b).as_deref(), Some("/a/b"));
    }

    #[test]
    fn duplicate_dirs_overwrite_attrs_and_keep_children() {
        let mut d2 = dir("d/");
        d2.mode = 0o700;
        d2.uid = 7;
        d2.mod_time = "2020-01-01T00:00:00.5Z".into();
        let t = build(&[dir("d/"), file("d/x", 512, 1), d2]);
        let d = t.resolve("d").unwrap();
        let attr = t.attr(d);
        assert_eq!(attr.mode, 0o40700);
        assert_eq!(attr.uid, 7);
        assert_eq!(
            attr.mtime,
            UNIX_EPOCH + Duration::new(1_577_836_800, 500_000_000)
        );
        assert_eq!(names(&t, "d"), ["x"]);
        // Explicit dir after an implicit one also overwrites.
        let mut late = dir("p/");
        late.mode = 0o750;
        let t = build(&[file("p/q/f", 512, 0), late]);
        assert_eq!(t.attr(t.resolve("p").unwrap()).mode, 0o40750);
        assert_eq!(t.attr(t.resolve("p").unwrap()).nlink, 3);
    }

    #[test]
    fn root_entry_sets_root_attrs() {
        let mut root = dir("./");
        root.mode = 0o1777;
        let t = build(&[root, file("./f", 512, 3)]);
        assert_eq!(t.attr(NodeId::ROOT).mode, 0o41777);
        assert!(InodeTree::build(&[file("./", 512, 0)], &TreeOptions::default()).is_err());
    }

    #[test]
    fn hardlinks_share_the_inode() {
        let mut target = file("bin/busybox", 2048, 100);
        target.mode = 0o4755;
        let t = build(&[
            target,
            link("bin/sh", entry_type::HARDLINK, "bin/busybox"),
            link("./bin/ls", entry_type::HARDLINK, "./bin/busybox"),
            link("usr/bin/env", entry_type::HARDLINK, "/bin/busybox"),
        ]);
        let a = t.resolve("bin/busybox").unwrap();
        for p in ["bin/sh", "bin/ls", "usr/bin/env"] {
            assert_eq!(t.resolve(p), Some(a), "{p}");
        }
        let attr = t.attr(a);
        assert_eq!(attr.nlink, 4);
        assert_eq!(attr.mode, 0o104755);
        assert_eq!(attr.size, 100);
    }

    #[test]
    fn hardlink_errors() {
        let err = InodeTree::build(
            &[link("a", entry_type::HARDLINK, "missing")],
            &TreeOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, LayerFsError::HardlinkTargetMissing { ref name, .. } if name == "a"),
            "{err}"
        );
        let err = InodeTree::build(
            &[dir("d/"), link("a", entry_type::HARDLINK, "d")],
            &TreeOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, LayerFsError::HardlinkToDirectory { .. }),
            "{err}"
        );
    }

    #[test]
    fn replaced_file_drops_a_link() {
        let t = build(&[
            file("a", 512, 1),
            link("b", entry_type::HARDLINK, "a"),
            file("b", 1536, 2),
        ]);
        let a = t.resolve("a").unwrap();
        let b = t.resolve("b").unwrap();
        assert_ne!(a, b);
        assert_eq!(t.attr(a).nlink, 1);
        assert_eq!(t.attr(b).size, 2);
    }

    #[test]
    fn whiteouts_are_char_devices_unless_shadowed() {
        let t = build(&[
            dir("etc/"),
            file("etc/.wh.passwd", 512, 0),
            file("etc/.wh.hosts", 512, 0),
            file("etc/hosts", 1024, 5),
            file(".wh.var", 1536, 0),
            file("etc/.wh.", 1536, 0),
        ]);
        assert_eq!(names(&t, "etc"), ["hosts", "passwd"]);
        assert_eq!(names(&t, ""), ["etc", "var"]);
        let wh = t.resolve("etc/passwd").unwrap();
        assert!(t.is_whiteout(wh));
        let attr = t.attr(wh);
        assert_eq!(attr.kind, FileKind::CharDevice);
        assert_eq!(attr.mode, 0o020000);
        assert_eq!(attr.rdev, 0);
        assert_eq!(attr.size, 0);
        assert_eq!(attr.nlink, 1);
        let hosts = t.resolve("etc/hosts").unwrap();
        assert_eq!(t.attr(hosts).kind, FileKind::RegularFile);
        assert!(t.lookup(t.resolve("etc").unwrap(), b".wh.passwd").is_none());
    }

    #[test]
    fn hardlinks_to_markers_are_plain_files() {
        let mut wh = file("d/.wh.gone", 512, 0);
        wh.mod_time = "2021-01-01T00:00:00Z".into();
        let t = build(&[
            wh,
            file("d/.wh..wh..opq", 512, 0),
            link("d/a", entry_type::HARDLINK, "d/.wh.gone"),
            link("d/b", entry_type::HARDLINK, "d/.wh..wh..opq"),
            file("d/.wh..wh.plnk", 512, 0),
        ]);
        assert_eq!(names(&t, "d"), ["a", "b", "gone"]);
        let gone = t.resolve("d/gone").unwrap();
        assert!(t.is_whiteout(gone));
        assert_eq!(
            t.attr(gone).mtime,
            UNIX_EPOCH + Duration::from_secs(1_609_459_200)
        );
        let a = t.resolve("d/a").unwrap();
        assert!(!t.is_whiteout(a));
        assert_eq!(t.attr(a).kind, FileKind::RegularFile);
        assert_eq!(t.attr(a).nlink, 1);
        assert_eq!(t.kind(t.resolve("d/b").unwrap()), FileKind::RegularFile);
        assert!(t.is_opaque(t.resolve("d").unwrap()));
    }

    #[test]
    fn opaque_marker_sets_parent_xattr() {
        let t = build(&[
            dir("a/"),
            file("a/.wh..wh..opq", 512, 0),
            file("a/keep", 512, 0),
            file("b/.wh..wh..opq", 512, 0),
        ]);
        let a = t.resolve("a").unwrap();
        assert!(t.is_opaque(a));
        assert_eq!(names(&t, "a"), ["keep"]);
        assert_eq!(t.xattr(a, b"trusted.overlay.opaque"), Some(&b"y"[..]));
        let b = t.resolve("b").unwrap();
        assert!(t.is_opaque(b));
        assert_eq!(names(&t, "b"), Vec::<String>::new());
        assert!(!t.is_opaque(NodeId::ROOT));

        let user = InodeTree::build(
            &[file("a/.wh..wh..opq", 512, 0)],
            &TreeOptions {
                overlay_xattrs: OverlayXattrs::User,
                ..TreeOptions::default()
            },
        )
        .unwrap();
        let a = user.resolve("a").unwrap();
        let xs: Vec<_> = user.xattrs(a).collect();
        assert_eq!(xs, [(&b"user.overlay.opaque"[..], &b"y"[..])]);
    }

    #[test]
    fn xattrs_from_pax_and_disable() {
        let mut f = file("f", 512, 1);
        f.pax_records = BTreeMap::from([
            ("SCHILY.xattr.user.a".to_string(), "1".to_string()),
            (
                "SCHILY.xattr.security.capability".to_string(),
                "caps".to_string(),
            ),
            ("mtime".to_string(), "123".to_string()),
        ]);
        let mut d = dir("d/");
        d.pax_records = BTreeMap::from([("SCHILY.xattr.user.d".to_string(), "x".to_string())]);
        let entries = [f, d, file("d/.wh..wh..opq", 1024, 0)];
        let t = build(&entries);
        let node = t.resolve("f").unwrap();
        let xs: Vec<_> = t.xattrs(node).collect();
        assert_eq!(
            xs,
            [
                (&b"security.capability"[..], &b"caps"[..]),
                (&b"user.a"[..], &b"1"[..])
            ]
        );
        let d = t.resolve("d").unwrap();
        assert_eq!(t.xattrs(d).count(), 2);

        let t = InodeTree::build(
            &entries,
            &TreeOptions {
                disable_xattrs: true,
                ..TreeOptions::default()
            },
        )
        .unwrap();
        assert_eq!(t.xattrs(t.resolve("f").unwrap()).count(), 0);
        let d = t.resolve("d").unwrap();
        let xs: Vec<_> = t.xattrs(d).collect();
        assert_eq!(xs, [(&b"trusted.overlay.opaque"[..], &b"y"[..])]);
    }

    #[test]
    fn nlink_counts_subdirs() {
        let t = build(&[
            dir("a/"),
            dir("a/b/"),
            dir("a/c/"),
            file("a/f", 512, 0),
            dir("a/b/d/"),
        ]);
        assert_eq!(t.attr(NodeId::ROOT).nlink, 3);
        assert_eq!(t.attr(t.resolve("a").unwrap()).nlink, 4);
        assert_eq!(t.attr(t.resolve("a/b").unwrap()).nlink, 3);
        assert_eq!(t.attr(t.resolve("a/c").unwrap()).nlink, 2);
    }

    #[test]
    fn kinds_modes_devices_symlinks() {
        let mut ch = entry("dev/null", entry_type::CHAR);
        ch.devmajor = 1;
        ch.devminor = 3;
        ch.mode = 0o666;
        let mut blk = entry("dev/big", entry_type::BLOCK);
        blk.devmajor = 259;
        blk.devminor = 0x12345;
        let mut sticky = dir("tmp/");
        sticky.mode = 0o1777;
        let mut sgid = file("bin/x", 512, 0);
        sgid.mode = 0o2711;
        sgid.uid = 1000;
        sgid.gid = 2000;
        let t = build(&[
            ch,
            blk,
            entry("run/fifo", entry_type::FIFO),
            link("lib64", entry_type::SYMLINK, "usr/lib/x86_64-linux-gnu"),
            sticky,
            sgid,
        ]);
        let a = t.attr(t.resolve("dev/null").unwrap());
        assert_eq!(
            (a.kind, a.mode, a.rdev),
            (FileKind::CharDevice, 0o20666, 0x103)
        );
        let a = t.attr(t.resolve("dev/big").unwrap());
        assert_eq!(a.kind, FileKind::BlockDevice);
        assert_eq!(a.rdev, 0x45 | (259 << 8) | (0x12300 << 12));
        let a = t.attr(t.resolve("run/fifo").unwrap());
        assert_eq!((a.kind, a.mode), (FileKind::NamedPipe, 0o10644));
        let l = t.resolve("lib64").unwrap();
        assert_eq!(t.attr(l).size, 24);
        assert_eq!(t.attr(l).kind, FileKind::Symlink);
        assert_eq!(t.symlink_target(l), Some(&b"usr/lib/x86_64-linux-gnu"[..]));
        assert_eq!(t.data_range(l), None);
        assert_eq!(t.attr(t.resolve("tmp").unwrap()).perm(), 0o1777);
        let a = t.attr(t.resolve("bin/x").unwrap());
        assert_eq!((a.mode, a.uid, a.gid), (0o102711, 1000, 2000));
    }

    #[test]
    fn parent_must_be_a_directory() {
        let err = InodeTree::build(
            &[file("a", 512, 0), file("a/b", 512, 0)],
            &TreeOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, LayerFsError::ParentNotDirectory { .. }),
            "{err}"
        );
    }

    #[test]
    fn dir_replaced_by_file_hides_its_subtree() {
        let t = build(&[
            file("d/sub/f", 512, 0),
            file("d", 1024, 4),
            file("e", 1536, 0),
        ]);
        assert_eq!(names(&t, ""), ["d", "e"]);
        assert_eq!(t.kind(t.resolve("d").unwrap()), FileKind::RegularFile);
        assert_eq!(t.attr(NodeId::ROOT).nlink, 2);
    }

    #[test]
    fn unsupported_type_is_an_error() {
        let err = InodeTree::build(&[entry("x", "socket")], &TreeOptions::default()).unwrap_err();
        assert!(err.to_string().contains("socket"), "{err}");
    }

    #[test]
    fn children_sorted_and_lookup() {
        let t = build(&[
            file("z", 512, 0),
            file("a", 512, 0),
            file("M", 512, 0),
            file("é", 512, 0),
            file("a.b", 512, 0),
        ]);
        assert_eq!(names(&t, ""), ["M", "a", "a.b", "z", "é"]);
        for n in ["z", "a", "M", "é", "a.b"] {
            assert!(t.lookup(NodeId::ROOT, n.as_bytes()).is_some(), "{n}");
        }
        assert!(t.lookup(NodeId::ROOT, b"b").is_none());
        assert_eq!(t.dir_len(NodeId::ROOT), Some(5));
        assert_eq!(t.dir_entry(NodeId::ROOT, 0).unwrap().0, b"M");
        assert!(t.dir_entry(NodeId::ROOT, 5).is_none());
    }

    #[test]
    fn bad_mtime_is_epoch() {
        let mut f = file("f", 512, 0);
        f.mod_time = "garbage".into();
        let mut g = file("g", 512, 0);
        g.mod_time = "1960-01-01T00:00:00.25Z".into();
        let t = build(&[f, g]);
        assert_eq!(t.attr(t.resolve("f").unwrap()).mtime, UNIX_EPOCH);
        assert_eq!(
            t.attr(t.resolve("g").unwrap()).mtime,
            UNIX_EPOCH - Duration::from_secs(315_619_200) + Duration::from_millis(250)
        );
    }
}
