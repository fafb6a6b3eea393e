//! SOCI index manifest v1 end to end: `soci create` on an OCI archive, the
//! original image pushed with skopeo and the index with `soci push` to a real
//! docker-registry (no referrers API: tag-schema fallback); the snapshotter
//! with v1 discovery enabled finds the index through the referrers and mounts
//! the big layer lazily; a container reads the exact bytes.

use std::process::Command;

use soci_e2e::*;

#[test]
fn pushed_v1_index_is_discovered_through_referrers() {
    let tmp = tempfile::Builder::new()
        .prefix("soci-e2e-v1-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    let (tarball, expected) = build_image(dir, 40);
    let reg = Registry::start(&dir.join("registry"));
    run(Command::new(tool("skopeo"))
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", tarball.display()))
        .arg(format!("docker://{}/app:v1", reg.addr)));

    // Build and push the index from a separate root, as a CI machine would.
    let soci = bin("soci");
    let cli_root = dir.join("cli-root");
    let soci_cmd = || {
        let mut c = Command::new(&soci);
        c.arg("--root")
            .arg(&cli_root)
            .args(["--content-store", "soci"]);
        c
    };
    let created = run(soci_cmd()
        .arg("create")
        .arg(format!("oci-archive:{}", tarball.display())));
    let created = String::from_utf8_lossy(&created.stdout).to_string();
    assert!(created.contains("-> ztoc sha256:"), "{created}");
    let index = String::from_utf8(run(soci_cmd().args(["index", "list", "-q"])).stdout)
        .unwrap()
        .trim()
        .to_string();
    let pushed = run(soci_cmd()
        .args(["push", "--quiet"])
        .arg(format!("{}/app:v1", reg.addr)));
    assert_eq!(String::from_utf8_lossy(&pushed.stdout).trim(), index);

    let daemon = Daemon::start(
        &dir.join("daemon"),
        "[background_fetch]\ndisable = true\n[pull_modes.soci_v1]\nenable = true\n",
    );
    let ctd = Containerd::start(&dir.join("containerd"), &daemon.socket, "soci-e2e-v1");
    let reference = format!("{}/app:v1", reg.addr);
    run(Command::new(&soci)
        .arg("--address")
        .arg(&ctd.socket)
        .arg("--namespace")
        .arg(&ctd.namespace)
        .args(["image", "rpull", "--plain-http"])
        .arg(&reference));
    assert_eq!(container_app_sums(&ctd, &reference, "v1a"), expected);

    let log = daemon.proc.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("remote-snapshot-prepared") && l.contains(&index)),
        "the big layer was not mounted lazily with index {index}:\n{}",
        tail(&log, 60)
    );
    assert!(
        mounts_under(&daemon.root)
            .iter()
            .any(|(_, t)| t.starts_with("fuse")),
        "no FUSE layer mounted:\n{}",
        tail(&log, 60)
    );
}
