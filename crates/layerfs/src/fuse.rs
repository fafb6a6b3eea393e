//! The `fuser` glue: type conversions from [`LayerFs`] to the kernel protocol,
//! and mounting. No filesystem logic lives here.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem,
    FopenFlags, Generation, INodeNo, LockOwner, MountOption, OpenAccMode, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, SessionACL, TimeOrNow, WriteFlags,
};

use soci_metrics::FuseOp;

use crate::error::LayerFsError;
use crate::fs::{LayerFs, OpError, XattrReply};
use crate::tree::{Attr, FileKind};

fn errno(e: OpError) -> Errno {
    Errno::from_i32(e.errno())
}

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Directory => FileType::Directory,
        FileKind::RegularFile => FileType::RegularFile,
        FileKind::Symlink => FileType::Symlink,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
        FileKind::NamedPipe => FileType::NamedPipe,
    }
}

/// Upstream sets only the modification time; access and change times stay at the epoch.
fn file_attr(ino: u64, a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.blocks,
        atime: UNIX_EPOCH,
        mtime: a.mtime,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: file_type(a.kind),
        perm: a.perm(),
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

fn xattr_reply(r: Result<XattrReply<'_>, OpError>, reply: ReplyXattr) {
    match r {
        Ok(XattrReply::Size(n)) => reply.size(n),
        Ok(XattrReply::Data(d)) => reply.data(&d),
        Err(e) => reply.error(errno(e)),
    }
}

/// [`LayerFs`] as a `fuser` filesystem.
#[derive(Debug)]
pub struct FuseLayer(pub LayerFs);

impl FuseLayer {
    /// Count the operation, and an I/O failure of it, in the metrics.
    fn count<T>(&self, op: FuseOp, r: &Result<T, OpError>) {
        soci_metrics::fuse_op(op);
        if let Err(OpError::Io) = r {
            soci_metrics::fuse_failure(op, self.0.digest());
        }
    }
}

impl Filesystem for FuseLayer {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let o = self.0.options();
        let r = self.0.lookup(parent.0, name.as_bytes());
        self.count(FuseOp::Lookup, &r);
        match r {
            Ok((ino, attr)) => reply.entry_with_ttls(
                &o.attr_timeout,
                &o.entry_timeout,
                &file_attr(ino, &attr),
                Generation(0),
            ),
            Err(OpError::NotFound) if !o.negative_timeout.is_zero() => {
                // Node id 0 asks the kernel to cache the miss for the entry TTL.
                reply.entry_with_ttls(
                    &o.negative_timeout,
                    &o.negative_timeout,
                    &file_attr(0, &negative_attr()),
                    Generation(0),
                )
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self.0.getattr(ino.0);
        self.count(FuseOp::Getattr, &r);
        match r {
            Ok(attr) => reply.attr(&self.0.options().attr_timeout, &file_attr(ino.0, &attr)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = self.0.readlink(ino.0);
        self.count(FuseOp::Readlink, &r);
        match r {
            Ok(target) => reply.data(target),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY
            || flags.0 & rustix::fs::OFlags::TRUNC.bits() as i32 != 0;
        let r = self.0.open(ino.0, write);
        self.count(FuseOp::Open, &r);
        match r {
            Ok(o) => {
                let mut f = FopenFlags::empty();
                if o.keep_cache {
                    f |= FopenFlags::FOPEN_KEEP_CACHE;
                }
                if o.direct_io {
                    f |= FopenFlags::FOPEN_DIRECT_IO;
                }
                reply.opened(FileHandle(o.fh), f)
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = self.0.read(ino.0, fh.0, offset, size);
        self.count(FuseOp::Read, &r);
        match r {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.0.release(ino.0, fh.0);
        reply.ok()
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let r = self.0.opendir(ino.0);
        self.count(FuseOp::Opendir, &r);
        match r {
            // Listings never change and need no handle: `ENOSYS` makes the
            // kernel stop sending OPENDIR (and RELEASEDIR) for this mount and
            // open directories itself with FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR,
            // which saves a round trip per directory listed.
            Ok(()) => reply.error(errno(OpError::NotImplemented)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let started = std::time::Instant::now();
        let r = self.0.readdir(ino.0, offset, |item| {
            reply.add(
                INodeNo(item.ino),
                item.next_offset,
                file_type(item.kind),
                OsStr::from_bytes(&item.name),
            )
        });
        self.count(FuseOp::Readdir, &r);
        soci_metrics::readdir(self.0.digest(), started.elapsed());
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        soci_metrics::fuse_op(FuseOp::Statfs);
        let s = self.0.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
        )
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let r = self.0.getxattr(ino.0, name.as_bytes(), size);
        self.count(FuseOp::Getxattr, &r);
        xattr_reply(r, reply)
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let r = self.0.listxattr(ino.0, size);
        self.count(FuseOp::Listxattr, &r);
        xattr_reply(r, reply)
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self
            .0
            .access(ino.0, mask.bits() as u32, req.uid(), req.gid())
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    // Everything that would modify the layer is EROFS.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS)
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS)
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS)
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS)
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS)
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS)
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS)
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS)
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS)
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS)
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS)
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS)
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS)
    }
}

/// Attributes sent with a negative entry (node id 0); the kernel ignores them.
fn negative_attr() -> Attr {
    Attr {
        kind: FileKind::Directory,
        mode: 0o040_000,
        size: 0,
        blocks: 0,
        blksize: crate::tree::BLOCK_SIZE,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        mtime: UNIX_EPOCH,
    }
}

/// How to mount a layer.
///
/// The mount is always `ro`, `allow_other`, `suid`, `dev`, with fsname `soci`
/// and without `default_permissions` (like upstream, the filesystem decides
/// access; it answers `access(2)` itself and never checks on open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Worker threads serving requests (each with its own cloned `/dev/fuse` fd).
    pub n_threads: usize,
}

impl Default for MountOptions {
    fn default() -> MountOptions {
        MountOptions { n_threads: 4 }
    }
}

/// A mounted layer; dropping it unmounts (lazily if the mount is busy).
#[derive(Debug)]
pub struct MountHandle {
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
    /// The FUSE connection (the minor device number of the mount), to abort
    /// it when the serving threads do not stop after the unmount.
    connection: Option<u32>,
}

/// How long an unmount waits for the serving threads, before and after
/// aborting the FUSE connection.
const UNMOUNT_WAIT: Duration = Duration::from_secs(5);

/// Where the kernel's FUSE control filesystem is (mounted on demand).
const FUSECTL: &str = "/sys/fs/fuse/connections";

/// The FUSE connection of the mount at `mountpoint`, from
/// `/proc/self/mountinfo` (field 3 is `major:minor`; for FUSE the minor is
/// the connection number).
fn connection_of(mountpoint: &Path) -> Option<u32> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = mountpoint.to_str()?;
    info.lines().rev().find_map(|l| {
        let mut f = l.split(' ');
        let dev = f.nth(2)?;
        let point = f.nth(1)?.replace("\\040", " ");
        (point == want).then(|| dev.split_once(':')?.1.parse().ok())?
    })
}

/// Abort FUSE connection `conn`: every pending and future request fails and
/// the serving threads' reads return, wherever the filesystem is still
/// mounted (another mount namespace may hold a copy of the mount).
fn abort_connection(conn: u32) -> std::io::Result<()> {
    let abort = Path::new(FUSECTL).join(conn.to_string()).join("abort");
    if !abort.exists() {
        // Not mounted yet on this machine; an error means it is not available.
        let _ = rustix::mount::mount(
            "fusectl",
            FUSECTL,
            "fusectl",
            rustix::mount::MountFlags::empty(),
            None,
        );
    }
    std::fs::write(&abort, b"1")
}

/// Mount `fs` at `mountpoint` and serve it from background threads.
pub fn mount(
    fs: LayerFs,
    mountpoint: impl AsRef<Path>,
    options: &MountOptions,
) -> Result<MountHandle, LayerFsError> {
    let mountpoint = mountpoint.as_ref().to_path_buf();
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("soci".to_string()),
        MountOption::RO,
        MountOption::Suid,
        MountOption::Dev,
    ];
    config.acl = SessionACL::All;
    config.n_threads = Some(options.n_threads.max(1));
    config.clone_fd = options.n_threads > 1;
    let session = fuser::spawn_mount(FuseLayer(fs), &mountpoint, &config).map_err(|source| {
        LayerFsError::Mount {
            path: mountpoint.clone(),
            source,
        }
    })?;
    let connection = connection_of(&mountpoint);
    Ok(MountHandle {
        session: Some(session),
        mountpoint,
        connection,
    })
}

impl MountHandle {
    /// Where the layer is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmount and wait for the serving threads; if the mount is busy, detach it
    /// lazily (it disappears when its last user goes) and report the error.
    pub fn unmount(mut self) -> Result<(), LayerFsError> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), LayerFsError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        // The serving threads end when the kernel closes the connection,
        // which a copy of the mount in another mount namespace (made by
        // `unshare`, `ip netns exec`, a container runtime...) keeps open: wait
        // a bounded time, then abort the connection, then give up waiting.
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("fuse-unmount".into())
            .spawn(move || {
                let _ = tx.send(session.umount_and_join());
            });
        if let Err(e) = spawned {
            return Err(LayerFsError::Unmount {
                path: self.mountpoint.clone(),
                source: e,
            });
        }
        let mut result = rx.recv_timeout(UNMOUNT_WAIT);
        if result.is_err() {
            let aborted = self.connection.map(abort_connection);
            tracing::warn!(
                mountpoint = %self.mountpoint.display(),
                connection = ?self.connection,
                aborted = ?aborted.as_ref().map(|r| r.as_ref().map_err(|e| e.to_string())),
                "the layer filesystem is still mounted elsewhere (another mount namespace); aborting its FUSE connection"
            );
            result = rx.recv_timeout(UNMOUNT_WAIT);
        }
        let Ok(result) = result else {
            tracing::error!(
                mountpoint = %self.mountpoint.display(),
                "the layer filesystem's threads did not stop; leaving them behind"
            );
            return Err(LayerFsError::Unmount {
                path: self.mountpoint.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the FUSE connection stayed open after the unmount and an abort",
                ),
            });
        };
        match result {
            Ok(()) => Ok(()),
            Err(source) => {
                let detached =
                    rustix::mount::unmount(&self.mountpoint, rustix::mount::UnmountFlags::DETACH);
                tracing::warn!(
                    mountpoint = %self.mountpoint.display(),
                    error = %source,
                    lazily_detached = detached.is_ok(),
                    "unmounting layer filesystem failed"
                );
                Err(LayerFsError::Unmount {
                    path: self.mountpoint.clone(),
                    source,
                })
            }
        }
    }
}

impl Drop for MountHandle {
    fn drop(&mut self) {
        let _ = self.unmount_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send + Sync>() {}

    #[test]
    fn handles_cross_threads() {
        shareable::<MountHandle>();
        shareable::<FuseLayer>();
        shareable::<LayerFs>();
    }
}
