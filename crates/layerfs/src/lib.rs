//! A read-only filesystem view of one SOCI layer.
//!
//! This crate owns everything between a layer's zTOC and the kernel's FUSE
//! requests:
//!
//! * [`InodeTree`]: the inode table built from the zTOC's file list. Names are
//!   cleaned and hostile ones (`..`, `.` components) rejected, missing parents
//!   created, hardlinks share one inode, overlay whiteouts (`.wh.<name>`) are
//!   presented as 0:0 character devices and opaque markers (`.wh..wh..opq`) as
//!   the `trusted.overlay.opaque` xattr, so overlayfs can stack the mount as a
//!   lower layer. Pure data, testable without FUSE.
//! * [`LayerFs`]: the filesystem operations (lookup, getattr, readdir, read,
//!   readlink, xattrs, statfs) plus the `/.soci-snapshotter/<digest>.json`
//!   state file. File bytes are read through a [`SpanSource`].
//! * [`mount`]: the thin `fuser` glue ([`FuseLayer`]) and a [`MountHandle`]
//!   that unmounts on drop.
//!
//! It must not touch the network, registries or containerd: bytes come only
//! from the [`SpanSource`] it is given (the span manager, in production), and
//! state only from the [`StateFn`] callback. That keeps the filesystem testable
//! with an in-memory layer and keeps fetch policy (retries, prefetch, caches)
//! in one place.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod fs;
mod fuse;
mod source;
mod state;
mod tree;
mod verify;

pub use error::LayerFsError;
pub use fs::{
    DirItem, FsOptions, LayerFs, OpError, OpenFile, ROOT_INO, STATE_DIR_INO, STATE_FILE_INO,
    StatFs, XattrReply,
};
pub use fuse::{FuseLayer, MountHandle, MountOptions, mount};
pub use source::SpanSource;
#[cfg(any(test, feature = "testing"))]
pub use source::testing;
pub use state::{LayerState, STATE_DIR_NAME, StateFn};
pub use tree::{
    Attr, BLOCK_SIZE, DataRange, FileKind, InodeTree, NodeId, OPAQUE_MARKER, OverlayXattrs,
    TreeBuilder, TreeOptions, WHITEOUT_PREFIX, clean_path,
};
pub use verify::{FileChecks, FileChecksBuilder};
