//! Real containerd 1.6 and the `soci-snapshotter-grpc` daemon (from
//! `soci-testkit`) and a busybox image for the `soci image rpull` tests.
#![allow(unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use soci_testkit::{
    Containerd, Daemon, bin as workspace_bin, require_containerd_setup, skipped, tail,
    unmount_under, wait_for,
};

use super::require_tool;

/// Build a three-layer busybox image in an OCI layout `<dir>/img` with umoci:
/// 1. busybox (`/bin/sh`, `echo`, `cat`, `ls`, `test`), `/etc/removed`,
///    `/opq/old`;
/// 2. `/etc/greeting` = `hello-layer2`;
/// 3. deletes `/etc/removed` (a whiteout) and replaces `/opq` by a directory
///    holding only `new` (an opaque directory).
///
/// Returns the layout path; the image is tagged `latest`.
pub fn busybox_layout(dir: &Path) -> PathBuf {
    let umoci = require_tool("umoci");
    let layout = dir.join("img");
    let image = format!("{}:latest", layout.display());
    let run = |args: &[&str]| {
        let out = Command::new(&umoci)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run umoci");
        assert!(
            out.status.success(),
            "umoci {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["init", "--layout", layout.to_str().unwrap()]);
    run(&["new", "--image", &image]);
    let bundle = |n: u32| dir.join(format!("bundle{n}"));
    let rootfs = |n: u32| bundle(n).join("rootfs");

    run(&["unpack", "--image", &image, bundle(1).to_str().unwrap()]);
    std::fs::create_dir_all(rootfs(1).join("bin")).unwrap();
    std::fs::create_dir_all(rootfs(1).join("etc")).unwrap();
    std::fs::create_dir_all(rootfs(1).join("opq")).unwrap();
    std::fs::copy("/bin/busybox", rootfs(1).join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "ls", "test"] {
        std::os::unix::fs::symlink("busybox", rootfs(1).join("bin").join(applet)).unwrap();
    }
    std::fs::write(rootfs(1).join("etc/removed"), "doomed\n").unwrap();
    std::fs::write(rootfs(1).join("opq/old"), "old\n").unwrap();
    run(&["repack", "--image", &image, bundle(1).to_str().unwrap()]);

    run(&["unpack", "--image", &image, bundle(2).to_str().unwrap()]);
    std::fs::write(rootfs(2).join("etc/greeting"), "hello-layer2\n").unwrap();
    run(&["repack", "--image", &image, bundle(2).to_str().unwrap()]);

    run(&["unpack", "--image", &image, bundle(3).to_str().unwrap()]);
    std::fs::remove_file(rootfs(3).join("etc/removed")).unwrap();
    std::fs::remove_dir_all(rootfs(3).join("opq")).unwrap();
    std::fs::create_dir(rootfs(3).join("opq")).unwrap();
    std::fs::write(rootfs(3).join("opq/new"), "new\n").unwrap();
    run(&["repack", "--image", &image, bundle(3).to_str().unwrap()]);

    run(&[
        "config",
        "--image",
        &image,
        "--config.cmd",
        "/bin/sh",
        "--os",
        "linux",
        "--architecture",
        "amd64",
    ]);
    layout
}
