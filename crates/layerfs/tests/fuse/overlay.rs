//! Two FUSE layers stacked by overlayfs, as the snapshotter mounts them.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use soci_format::testutil::TarEntry;
use soci_layerfs::TreeOptions;

use crate::util::{Layer, Mounted, Scratch, fuse_required};

/// An overlay mount, unmounted (lazily if busy) when dropped.
struct OverlayMount {
    path: PathBuf,
}

impl OverlayMount {
    fn new(lowers: &[&Path], upper: &Path, work: &Path, merged: &Path) -> OverlayMount {
        for d in [upper, work, merged] {
            fs::create_dir_all(d).unwrap();
        }
        let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowerdir.join(":"),
            upper.display(),
            work.display()
        );
        let data = std::ffi::CString::new(data).unwrap();
        rustix::mount::mount(
            "overlay",
            merged,
            "overlay",
            rustix::mount::MountFlags::empty(),
            data.as_c_str(),
        )
        .unwrap_or_else(|e| panic!("mount overlay at {}: {e}", merged.display()));
        OverlayMount {
            path: merged.to_path_buf(),
        }
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        if rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::empty()).is_err() {
            let _ = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".soci-snapshotter")
        .collect();
    v.sort();
    v
}

fn mount_layer(layer: &Layer, at: PathBuf) -> Mounted {
    Mounted::new(
        layer.fs(
            Arc::new(layer.mem_source()),
            TreeOptions::default(),
            layer.state(),
        ),
        at,
    )
}

#[test]
fn overlay_stacks_fuse_layers() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("overlay_stacks_fuse_layers");
    let base = Layer::new(&[
        TarEntry::file("a.txt", "lower a\n"),
        TarEntry::file("gone.txt", "hidden by a whiteout\n"),
        TarEntry::dir("gonedir/"),
        TarEntry::file("gonedir/f", "f"),
        TarEntry::dir("dir/"),
        TarEntry::file("dir/one", "1"),
        TarEntry::file("dir/two", "2"),
        TarEntry::dir("keep/"),
        TarEntry::file("keep/x", "x"),
    ]);
    let top = Layer::new(&[
        TarEntry::whiteout("gone.txt"),
        TarEntry::whiteout("gonedir"),
        TarEntry::dir("dir/"),
        TarEntry::opaque("dir"),
        TarEntry::file("dir/three", "3"),
        TarEntry::file("b.txt", "upper b\n"),
        TarEntry::dir("keep/"),
        TarEntry::file("keep/y", "y"),
    ]);
    let base_m = mount_layer(&base, scratch.path().join("l-base"));
    let top_m = mount_layer(&top, scratch.path().join("l-top"));
    let up = scratch.path().join("up");
    let merged = scratch.path().join("merged");
    // Nearest layer first, as containerd's lowerdir lists them.
    let ov = OverlayMount::new(
        &[&top_m.path, &base_m.path],
        &up,
        &scratch.path().join("work"),
        &merged,
    );

    // The FUSE whiteouts hide the lower file and directory.
    for hidden in ["gone.txt", "gonedir"] {
        let err = fs::symlink_metadata(merged.join(hidden)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{hidden}");
    }
    // The opaque directory shows only the top layer's entries.
    assert_eq!(names(&merged.join("dir")), ["three"]);
    // Ordinary directories merge.
    assert_eq!(names(&merged.join("keep")), ["x", "y"]);
    assert_eq!(names(&merged), ["a.txt", "b.txt", "dir", "keep"]);
    assert_eq!(fs::read(merged.join("a.txt")).unwrap(), b"lower a\n");
    assert_eq!(fs::read(merged.join("b.txt")).unwrap(), b"upper b\n");
    assert_eq!(fs::read(merged.join("keep/x")).unwrap(), b"x");

    // A write copies the file up; the FUSE layer is unchanged.
    let mut f = OpenOptions::new()
        .append(true)
        .open(merged.join("a.txt"))
        .unwrap();
    f.write_all(b"more\n").unwrap();
    drop(f);
    assert_eq!(fs::read(merged.join("a.txt")).unwrap(), b"lower a\nmore\n");
    assert_eq!(fs::read(up.join("a.txt")).unwrap(), b"lower a\nmore\n");
    assert_eq!(fs::read(base_m.join("a.txt")).unwrap(), b"lower a\n");
    fs::write(merged.join("new.txt"), "new").unwrap();
    assert_eq!(fs::read(up.join("new.txt")).unwrap(), b"new");

    // Deleting a lower file leaves an overlay whiteout in the upper dir.
    fs::remove_file(merged.join("keep/x")).unwrap();
    assert!(fs::symlink_metadata(merged.join("keep/x")).is_err());
    let wh = fs::symlink_metadata(up.join("keep/x")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert_eq!(fs::read(base_m.join("keep/x")).unwrap(), b"x");

    drop(ov);
    top_m.unmount();
    base_m.unmount();
}
