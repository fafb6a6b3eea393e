//! `soci image rpull` against real parts: Debian's docker-registry and
//! containerd 1.6 with runc, and the `soci-snapshotter-grpc` daemon as
//! containerd's `soci` proxy snapshotter.
//!
//! The image has no SOCI index the daemon can use, so the daemon defers every
//! layer: rpull downloads each one, applies it with containerd's Diff
//! service and commits it; `ctr run --snapshotter soci` must then run the
//! image without pulling again. The lazy path is exercised by the daemon's
//! own end-to-end tests, which drive this command.
//!
//! Needs root and the Debian packages containerd, runc, docker-registry,
//! skopeo, umoci and busybox-static, and a built `soci-snapshotter-grpc`;
//! a missing part fails the test. Set `SOCI_SKIP_CONTAINERD_TESTS=1` to skip.

mod common;

use std::path::Path;
use std::process::Output;

use common::containerd::{
    Containerd, Daemon, busybox_layout, require_containerd_setup, skipped, tail,
};
use common::*;

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A containerd namespace no other test uses.
fn unique_namespace(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{test}-{}-{nanos}", std::process::id())
}

fn rpull(ctrd: &Containerd, daemon: &Daemon, args: &[&str]) -> String {
    let mut full = vec![
        "--address",
        ctrd.socket.to_str().unwrap(),
        "--namespace",
        &ctrd.namespace,
        "image",
        "rpull",
    ];
    full.extend_from_slice(args);
    let o = soci(&full);
    assert!(
        o.status.success(),
        "soci {full:?} failed:\n{}\ncontainerd log:\n{}\ndaemon log:\n{}",
        text(&o),
        tail(&ctrd.proc.log, 30),
        tail(&daemon.proc.log, 30)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The chain ID `rpull` reports as the image's top snapshot.
fn top_chain_id(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.starts_with("done:"))
        .and_then(|l| l.split(" as ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"))
        .to_string()
}

#[test]
fn rpull_without_index_pulls_every_layer_and_ctr_runs_it() {
    if skipped("rpull_without_index_pulls_every_layer_and_ctr_runs_it") {
        return;
    }
    require_containerd_setup();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let reg = Registry::start();
    let layout = busybox_layout(dir);
    let image = format!("{}/bb:latest", reg.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{image}"),
    ]);

    let daemon = Daemon::start(&dir.join("daemon"));
    let ctrd = Containerd::start(
        &dir.join("containerd"),
        &daemon.socket,
        &unique_namespace("rpull"),
    );

    let out = rpull(&ctrd, &daemon, &[&image]);
    let pulled: Vec<&str> = out.lines().filter(|l| l.starts_with("layer ")).collect();
    assert_eq!(pulled.len(), 3, "{out}");
    for l in &pulled {
        assert!(
            l.contains("pulled ("),
            "every layer is deferred and pulled: {out}"
        );
    }
    assert!(out.contains("3 pulled, 0 already present"), "{out}");
    let top = top_chain_id(&out);

    // containerd knows the image under the reference, and the snapshots under
    // their chain IDs, top last.
    let images = ctrd.ctr(&["images", "ls", "-q"]);
    assert_eq!(images.lines().collect::<Vec<_>>(), vec![image.as_str()]);
    let snaps = ctrd.soci_snapshots();
    assert_eq!(snaps.len(), 3, "{snaps:?}");
    assert!(
        snaps.iter().any(|(n, p)| *n == top && !p.is_empty()),
        "{snaps:?}"
    );
    let content = ctrd.ctr(&["content", "ls"]);
    assert!(
        content.contains(&format!("containerd.io/gc.ref.snapshot.soci={top}")),
        "the config marks the image unpacked on soci:\n{content}"
    );
    assert!(
        ctrd.ctr(&["leases", "ls", "-q"]).trim().is_empty(),
        "the pull lease is gone"
    );

    // Nothing the image needs is garbage once the lease is gone.
    ctrd.collect_garbage();
    assert_eq!(ctrd.soci_snapshots(), snaps, "GC kept the snapshots");

    // containerd sees the image as unpacked on soci and runs it.
    let id = format!("hello-{}", std::process::id());
    let hello = ctrd.ctr(&[
        "run",
        "--snapshotter",
        "soci",
        "--rm",
        &image,
        &id,
        "/bin/echo",
        "hello",
    ]);
    assert_eq!(hello.trim(), "hello");
    // All three layers are there, with whiteouts and the opaque directory
    // applied by containerd's applier.
    let id2 = format!("layers-{}", std::process::id());
    let listing = ctrd.ctr(&[
        "run",
        "--snapshotter",
        "soci",
        "--rm",
        &image,
        &id2,
        "/bin/sh",
        "-c",
        "cat /etc/greeting; test -e /etc/removed || echo removed-is-gone; ls /opq",
    ]);
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        vec!["hello-layer2", "removed-is-gone", "new"]
    );
    // `ctr run` did not unpack again: the same three committed snapshots.
    assert_eq!(ctrd.soci_snapshots(), snaps);

    // A second rpull finds everything in place.
    let again = rpull(&ctrd, &daemon, &[&image]);
    assert!(again.contains("0 pulled, 3 already present"), "{again}");
    assert_eq!(top_chain_id(&again), top);
}

#[test]
fn rpull_of_a_soci_converted_index_picks_the_image_manifest() {
    if skipped("rpull_of_a_soci_converted_index_picks_the_image_manifest") {
        return;
    }
    require_containerd_setup();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let reg = Registry::start();
    let layout = busybox_layout(dir);
    let archive = dir.join("img.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let converted = dir.join("img-soci.tar");
    let o = soci(&[
        "convert",
        "--standalone",
        "--min-layer-size",
        "0",
        archive.to_str().unwrap(),
        converted.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let image = format!("{}/bb:soci", reg.addr);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", converted.display()),
        &format!("docker://{image}"),
    ]);

    let daemon = Daemon::start(&dir.join("daemon"));
    let ctrd = Containerd::start(
        &dir.join("containerd"),
        &daemon.socket,
        &unique_namespace("rpull-index"),
    );
    let out = rpull(&ctrd, &daemon, &["--platform", "linux/amd64", &image]);
    assert!(out.contains("3 layer(s)"), "{out}");
    // The image record points at the index, as containerd would name it.
    let images = ctrd.ctr(&["images", "ls"]);
    assert!(
        images.contains(&image) && images.contains("application/vnd.oci.image.index.v1+json"),
        "{images}"
    );
    let hello = ctrd.ctr(&[
        "run",
        "--snapshotter",
        "soci",
        "--rm",
        &image,
        &format!("idx-{}", std::process::id()),
        "/bin/cat",
        "/etc/greeting",
    ]);
    assert_eq!(hello.trim(), "hello-layer2");

    // A platform the index lacks is refused with a pointer to --platform.
    let o = soci(&[
        "--address",
        ctrd.socket.to_str().unwrap(),
        "--namespace",
        &ctrd.namespace,
        "image",
        "rpull",
        "--platform",
        "linux/arm64",
        &image,
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("linux/arm64") && err.contains("--platform") && err.contains(&image),
        "{err}"
    );
}

#[test]
fn rpull_names_the_containerd_address_when_it_is_unreachable() {
    // No containerd needed: the socket does not exist.
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("containerd.sock");
    let o = soci(&[
        "--address",
        sock.to_str().unwrap(),
        "image",
        "rpull",
        "127.0.0.1:1/none:latest",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(sock.to_str().unwrap()), "{err}");
    assert!(err.contains("--address"), "{err}");
    assert!(!Path::new(&sock).exists());
}
