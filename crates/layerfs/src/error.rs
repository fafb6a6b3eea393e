use std::path::PathBuf;

/// Why a layer's inode table could not be built, or its mount failed.
///
/// Every variant names the TOC entry or the path it is about.
#[derive(Debug, thiserror::Error)]
pub enum LayerFsError {
    /// An entry name (or a hardlink target) would land outside the layer root,
    /// or uses `.`/`..` components, which are rejected rather than resolved.
    #[error("toc entry {name:?}: path {path:?} is rejected: {reason}")]
    PathRejected {
        /// Name of the TOC entry as stored in the zTOC.
        name: String,
        /// The offending path (the entry name or its hardlink target).
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A hardlink names a target that no earlier entry created.
    #[error("toc entry {name:?}: hardlink target {target:?} does not exist")]
    HardlinkTargetMissing {
        /// Name of the hardlink entry.
        name: String,
        /// Cleaned target path.
        target: String,
    },
    /// A hardlink names a directory.
    #[error("toc entry {name:?}: hardlink target {target:?} is a directory")]
    HardlinkToDirectory {
        /// Name of the hardlink entry.
        name: String,
        /// Cleaned target path.
        target: String,
    },
    /// An entry sits below a path that an earlier entry made a non-directory.
    #[error("toc entry {name:?}: parent {parent:?} is not a directory")]
    ParentNotDirectory {
        /// Name of the entry.
        name: String,
        /// Cleaned path of the parent.
        parent: String,
    },
    /// The layer root (an entry named `.`, `./` or `/`) is not a directory.
    #[error("toc entry {name:?}: the layer root must be a directory, not {entry_type:?}")]
    RootNotDirectory {
        /// Name of the entry.
        name: String,
        /// Its type.
        entry_type: String,
    },
    /// An entry type this filesystem cannot present.
    #[error("toc entry {name:?}: unsupported entry type {entry_type:?}")]
    UnsupportedType {
        /// Name of the entry.
        name: String,
        /// Its type.
        entry_type: String,
    },
    /// The inode table uses 32-bit indexes; the layer exceeds them.
    #[error("layer is too large for the inode table: more than {limit} {what}")]
    TooLarge {
        /// What overflowed (entries, name bytes).
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// Mounting the filesystem failed.
    #[error("mount layer filesystem at {path}: {source}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Unmounting the filesystem failed.
    #[error("unmount layer filesystem at {path}: {source}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}
