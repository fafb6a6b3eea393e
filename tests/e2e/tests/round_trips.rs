//! FUSE round trips of a metadata walk through real containerd, overlayfs and
//! the daemon: directories are opened by the kernel without asking the daemon,
//! and a layer whose index says it has no xattrs (`soci convert
//! --optimizations xattr`) is asked for xattrs once, not on every lookup. The
//! container still sees every file with its exact bytes.

use std::process::Command;

use soci_e2e::*;

/// Sum of the daemon's `soci_fs_fuse_operation_count{operation="<op>"}`.
fn fuse_ops(addr: &str, op: &str) -> f64 {
    let out = run(Command::new(tool("curl")).args(["-fsS", &format!("http://{addr}/metrics")]));
    let series = format!("soci_fs_fuse_operation_count{{operation=\"{op}\"}} ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(&series)?.trim().parse::<f64>().ok())
        .sum()
}

/// Walk `/app` in a new container: stat every entry, list every directory.
fn walk(ctd: &Containerd, reference: &str, name: &str) {
    let out = run_sh(
        ctd,
        reference,
        name,
        "find /app | xargs stat > /dev/null && ls -lR /app | wc -l",
    );
    let lines: usize = out.trim().parse().unwrap();
    assert!(lines > 600, "ls -lR /app printed {lines} lines");
}

#[test]
fn metadata_walks_skip_opendir_and_xattr_round_trips() {
    let tmp = tmpdir();
    let dir = tmp.path();
    let reg = Registry::start(&dir.join("registry"));
    let mut expected = Vec::new();
    for (tag, extra) in [
        ("plain", &[][..]),
        ("noxattr", &["--optimizations", "xattr"][..]),
    ] {
        // Two images with different app layers, so that each gets its own mount.
        let d = dir.join(tag);
        std::fs::create_dir_all(&d).unwrap();
        let b = ImageBuilder::new(&d);
        b.layer(|root| {
            let app = root.join("app");
            for d in 0..60 {
                let sub = app.join(format!("d{d}/e"));
                std::fs::create_dir_all(&sub).unwrap();
                for f in 0..8 {
                    std::fs::write(sub.join(format!("f{f}")), format!("{d}-{f}\n")).unwrap();
                }
            }
            std::fs::write(app.join("image.txt"), tag).unwrap();
            // Large enough to be mounted lazily rather than pulled whole.
            std::fs::write(app.join("big.bin"), data(7, 12 << 20, false)).unwrap();
        });
        let (tarball, sums) = b.finish("img");
        expected.push(sums);
        let converted = d.join("img-soci.tar");
        run(Command::new(bin("soci"))
            .args(["convert", "--standalone"])
            .args(extra)
            .arg(&tarball)
            .arg(&converted));
        run(Command::new(tool("skopeo"))
            .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci-archive:{}", converted.display()))
            .arg(format!("docker://{}/{tag}:soci", reg.addr)));
    }

    let metrics = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::start(
        &dir.join("daemon"),
        &format!("metrics_address = \"{metrics}\"\n[background_fetch]\ndisable = true\n"),
    );
    let ctd = Containerd::start(&dir.join("containerd"), &daemon.socket, "soci-e2e-trips");

    // Without the annotation xattrs are answered (ENODATA), so overlayfs asks
    // on every lookup; directories are still opened without the daemon.
    let plain = format!("{}/plain:soci", reg.addr);
    let (lazy, _, _) = rpull_counts(&rpull(&ctd, &plain));
    assert_eq!(lazy, 1);
    let (opendir0, xattr0) = (
        fuse_ops(&metrics, "opendir"),
        fuse_ops(&metrics, "getxattr"),
    );
    walk(&ctd, &plain, "plain1");
    walk(&ctd, &plain, "plain2");
    let opendir1 = fuse_ops(&metrics, "opendir");
    let xattr1 = fuse_ops(&metrics, "getxattr");
    assert!(
        opendir1 - opendir0 <= 1.0,
        "two walks of 121 directories sent {} OPENDIRs",
        opendir1 - opendir0
    );
    assert!(
        xattr1 - xattr0 > 100.0,
        "xattrs are answered without the annotation: {} GETXATTRs",
        xattr1 - xattr0
    );
    assert_eq!(container_app_sums(&ctd, &plain, "plain3"), expected[0]);

    // With it, the first request is answered ENOSYS and no other follows.
    let noxattr = format!("{}/noxattr:soci", reg.addr);
    let (lazy, _, _) = rpull_counts(&rpull(&ctd, &noxattr));
    assert_eq!(lazy, 1);
    let xattr2 = fuse_ops(&metrics, "getxattr");
    walk(&ctd, &noxattr, "noxattr1");
    walk(&ctd, &noxattr, "noxattr2");
    let xattr3 = fuse_ops(&metrics, "getxattr");
    assert!(
        xattr3 - xattr2 <= 1.0,
        "a layer without xattrs was asked {} times",
        xattr3 - xattr2
    );
    assert_eq!(container_app_sums(&ctd, &noxattr, "noxattr3"), expected[1]);
    let cat = run_sh(
        &ctd,
        &noxattr,
        "noxattr4",
        "cat /app/d3/e/f5 /app/image.txt",
    );
    assert_eq!(cat, "3-5\nnoxattr");
}
