//! The mounts handed to containerd (upstream SOCI's layout, spec 5.7) and the
//! few mount-table operations the snapshotter needs itself.

use std::path::{Path, PathBuf};

use crate::error::{Result, SnapshotError};
use crate::types::{Kind, Mount};

/// The mounts for a snapshot whose own directories are `fs` and `work`, with
/// the `fs` directories of its ancestors nearest first.
///
/// * no parents: a bind mount of its own `fs` (`rw`, or `ro` for a view);
/// * a view with one parent: a read-only bind mount of the parent's `fs`;
/// * otherwise overlay, with `workdir` and `upperdir` for an active snapshot,
///   and `lowerdir` listing the parents nearest first.
pub fn compute_mounts(kind: Kind, fs: &Path, work: &Path, parents: &[PathBuf]) -> Vec<Mount> {
    let bind = |source: &Path, ro: bool| Mount {
        kind: "bind".into(),
        source: source.display().to_string(),
        options: vec![if ro { "ro" } else { "rw" }.into(), "rbind".into()],
    };
    if parents.is_empty() {
        return vec![bind(fs, kind != Kind::Active)];
    }
    let mut options = Vec::new();
    if kind == Kind::Active {
        options.push(format!("workdir={}", work.display()));
        options.push(format!("upperdir={}", fs.display()));
    } else if parents.len() == 1 {
        return vec![bind(&parents[0], true)];
    }
    let lower: Vec<String> = parents.iter().map(|p| p.display().to_string()).collect();
    options.push(format!("lowerdir={}", lower.join(":")));
    vec![Mount {
        kind: "overlay".into(),
        source: "overlay".into(),
        options,
    }]
}

/// Mount points of this process's mount namespace (`/proc/self/mountinfo`).
pub fn mount_points() -> Result<Vec<PathBuf>> {
    let path = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(path).map_err(SnapshotError::io("reading", path))?;
    Ok(parse_mountinfo(&text))
}

/// The mount point column (the fifth) of each line of a mountinfo file, with
/// the kernel's octal escapes (`\040` for a space) undone.
pub fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(out)
        .to_string_lossy()
        .into_owned()
}

/// Mount points at or below `dir`, deepest first (the order to unmount them in).
pub fn mounts_under(points: &[PathBuf], dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = points
        .iter()
        .filter(|p| p.starts_with(dir))
        .cloned()
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Detach a mount (`umount2(MNT_DETACH)`, plus `MNT_FORCE` when `force`).
pub fn unmount(path: &Path, force: bool) -> Result<()> {
    use rustix::mount::UnmountFlags;
    let mut flags = UnmountFlags::DETACH;
    if force {
        flags |= UnmountFlags::FORCE;
    }
    rustix::mount::unmount(path, flags).map_err(|e| SnapshotError::Io {
        action: "unmounting",
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Check that overlayfs works under `dir` (upstream's startup check): mount a
/// one-layer overlay in a scratch directory and unmount it again.
pub fn check_overlay_supported(dir: &Path) -> Result<()> {
    let scratch = dir.join(format!("overlay-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = (|| {
        for d in ["lower", "upper", "work", "merged"] {
            let p = scratch.join(d);
            std::fs::create_dir_all(&p).map_err(SnapshotError::io("creating", &p))?;
        }
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            scratch.join("lower").display(),
            scratch.join("upper").display(),
            scratch.join("work").display()
        );
        let data = std::ffi::CString::new(data).map_err(|_| {
            SnapshotError::InvalidArgument(format!("path {} has a NUL byte", dir.display()))
        })?;
        let merged = scratch.join("merged");
        rustix::mount::mount(
            "overlay",
            &merged,
            "overlay",
            rustix::mount::MountFlags::empty(),
            data.as_c_str(),
        )
        .map_err(|e| {
            SnapshotError::Unsupported(format!(
                "overlayfs is not usable under {} (mounting a test overlay failed: {}); \
                     set skip_check_snapshotter_supported to start anyway",
                dir.display(),
                std::io::Error::from(e)
            ))
        })?;
        unmount(&merged, false)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn base_snapshots_are_bind_mounts() {
        let m = compute_mounts(Kind::Active, &p("/s/1/fs"), &p("/s/1/work"), &[]);
        assert_eq!(
            m,
            vec![Mount {
                kind: "bind".into(),
                source: "/s/1/fs".into(),
                options: vec!["rw".into(), "rbind".into()]
            }]
        );
        let m = compute_mounts(Kind::View, &p("/s/1/fs"), &p("/s/1/work"), &[]);
        assert_eq!(m[0].options, ["ro", "rbind"]);
    }

    #[test]
    fn view_of_one_parent_binds_the_parent_read_only() {
        let m = compute_mounts(Kind::View, &p("/s/2/fs"), &p("/s/2/work"), &[p("/s/1/fs")]);
        assert_eq!(
            m,
            vec![Mount {
                kind: "bind".into(),
                source: "/s/1/fs".into(),
                options: vec!["ro".into(), "rbind".into()]
            }]
        );
    }

    #[test]
    fn active_with_parents_is_overlay_nearest_first() {
        let m = compute_mounts(
            Kind::Active,
            &p("/s/3/fs"),
            &p("/s/3/work"),
            &[p("/s/2/fs"), p("/s/1/fs")],
        );
        assert_eq!(
            m,
            vec![Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    "workdir=/s/3/work".into(),
                    "upperdir=/s/3/fs".into(),
                    "lowerdir=/s/2/fs:/s/1/fs".into()
                ],
            }]
        );
        let m = compute_mounts(
            Kind::Active,
            &p("/s/3/fs"),
            &p("/s/3/work"),
            &[p("/s/1/fs")],
        );
        assert_eq!(
            m[0].options,
            ["workdir=/s/3/work", "upperdir=/s/3/fs", "lowerdir=/s/1/fs"]
        );
    }

    #[test]
    fn view_of_several_parents_is_a_lower_only_overlay() {
        let m = compute_mounts(
            Kind::View,
            &p("/s/3/fs"),
            &p("/s/3/work"),
            &[p("/s/2/fs"), p("/s/1/fs")],
        );
        assert_eq!(m[0].kind, "overlay");
        assert_eq!(m[0].options, ["lowerdir=/s/2/fs:/s/1/fs"]);
    }

    #[test]
    fn mountinfo_parsing_and_prefixes() {
        let text = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    30 22 0:40 / /var/lib/x/snapshots/7/fs rw - fuse.soci soci rw\n\
                    31 22 0:41 / /var/lib/x/snapshots/7/fs/sub rw - tmpfs t rw\n\
                    32 22 0:42 / /var/lib/x/snapshots/70/with\\040space rw - tmpfs t rw\n";
        let points = parse_mountinfo(text);
        assert_eq!(points[3], p("/var/lib/x/snapshots/70/with space"));
        let under = mounts_under(&points, Path::new("/var/lib/x/snapshots/7"));
        assert_eq!(
            under,
            [
                p("/var/lib/x/snapshots/7/fs/sub"),
                p("/var/lib/x/snapshots/7/fs")
            ]
        );
    }
}
