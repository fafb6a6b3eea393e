//! Disk usage of a snapshot directory, counted the way containerd does: each
//! inode once (hard links share one), bytes as allocated blocks.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, SnapshotError};
use crate::types::Usage;

/// Walk `dir` without following symlinks or crossing into other file systems.
pub fn disk_usage(dir: &Path) -> Result<Usage> {
    let root = std::fs::symlink_metadata(dir).map_err(SnapshotError::io("reading", dir))?;
    let dev = root.dev();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut usage = Usage::default();
    let mut stack: Vec<(PathBuf, std::fs::Metadata)> = vec![(dir.to_path_buf(), root)];
    while let Some((path, meta)) = stack.pop() {
        if seen.insert((meta.dev(), meta.ino())) {
            usage.inodes += 1;
            usage.size += (meta.blocks() * 512) as i64;
        }
        if !meta.is_dir() || meta.dev() != dev {
            continue;
        }
        let entries = std::fs::read_dir(&path).map_err(SnapshotError::io("listing", &path))?;
        for entry in entries {
            let entry = entry.map_err(SnapshotError::io("listing", &path))?;
            let child = entry.path();
            let meta =
                std::fs::symlink_metadata(&child).map_err(SnapshotError::io("reading", &child))?;
            stack.push((child, meta));
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_inodes_once_and_allocated_bytes() {
        let d = tempfile::tempdir().unwrap();
        let empty = disk_usage(d.path()).unwrap();
        assert_eq!(empty.inodes, 1);
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/a"), vec![7u8; 100_000]).unwrap();
        std::fs::hard_link(d.path().join("sub/a"), d.path().join("b")).unwrap();
        std::os::unix::fs::symlink("sub/a", d.path().join("c")).unwrap();
        let u = disk_usage(d.path()).unwrap();
        // root, sub, a (= b), c
        assert_eq!(u.inodes, 4);
        assert!(u.size >= 100_000 + empty.size, "{u:?}");
        assert!(u.size < 100_000 + 64 * 1024, "{u:?}");
    }

    #[test]
    fn missing_dir_names_the_path() {
        let err = disk_usage(Path::new("/nonexistent/soci-usage")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/soci-usage"));
    }
}
