//! Lazy loading end to end: a converted image in a real registry, pulled with
//! `soci image rpull` through real containerd onto `soci-snapshotter-grpc`, run
//! with runc, every file compared with the original.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use soci_e2e::*;

/// Build an OCI image tar with umoci: busybox, a ~`big_mb` MB application layer,
/// and a small top layer that deletes and replaces files of the layers below.
/// Returns the tar and the expected final file tree (path -> sha256 hex).
fn build_image(dir: &Path, big_mb: usize) -> (std::path::PathBuf, BTreeMap<String, String>) {
    let umoci = tool("umoci");
    let layout = dir.join("img");
    let bundle = dir.join("bundle");
    run(Command::new(&umoci).args(["init", "--layout"]).arg(&layout));
    run(Command::new(&umoci)
        .args(["new", "--image"])
        .arg(format!("{}:latest", layout.display())));
    run(Command::new(&umoci)
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(tool("busybox"), rootfs.join("bin/busybox")).unwrap();
    for a in [
        "sh",
        "cat",
        "find",
        "sha256sum",
        "ls",
        "echo",
        "xargs",
        "sort",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    let image = format!("{}:latest", layout.display());
    run(Command::new(&umoci)
        .args(["repack", "--image"])
        .arg(&image)
        .arg(&bundle));
    // The big layer: many files, text-like and incompressible, plus links.
    let app = rootfs.join("app");
    std::fs::create_dir_all(app.join("lib")).unwrap();
    std::fs::create_dir_all(app.join("old")).unwrap();
    let mut total = 0;
    let mut i = 0u64;
    while total < big_mb << 20 {
        let size = [3000usize, 70_000, 1 << 20, 5 << 20][(i % 4) as usize];
        std::fs::write(
            app.join("lib").join(format!("f{i}.bin")),
            data(i, size, i % 3 != 0),
        )
        .unwrap();
        total += size;
        i += 1;
    }
    std::fs::write(app.join("hello.txt"), b"hello from a lazily loaded layer\n").unwrap();
    std::fs::write(app.join("old/gone.txt"), b"deleted above\n").unwrap();
    std::fs::write(app.join("old/also.txt"), b"hidden by an opaque dir\n").unwrap();
    std::os::unix::fs::symlink("hello.txt", app.join("link.txt")).unwrap();
    std::fs::hard_link(app.join("hello.txt"), app.join("hard.txt")).unwrap();
    run(Command::new(&umoci)
        .args(["repack", "--image"])
        .arg(&image)
        .arg(&bundle));
    // A small top layer with a whiteout and a replaced directory.
    std::fs::remove_file(app.join("lib/f1.bin")).unwrap();
    std::fs::remove_dir_all(app.join("old")).unwrap();
    std::fs::create_dir_all(app.join("old")).unwrap();
    std::fs::write(app.join("old/new.txt"), b"new content\n").unwrap();
    std::fs::write(app.join("top.txt"), b"top layer\n").unwrap();
    run(Command::new(&umoci)
        .args(["repack", "--image"])
        .arg(&image)
        .arg(&bundle));
    run(Command::new(&umoci)
        .args(["config", "--image"])
        .arg(&image)
        .args([
            "--config.cmd",
            "/bin/cat",
            "--config.cmd",
            "/app/hello.txt",
            "--os",
            "linux",
            "--architecture",
            "amd64",
        ]));
    let tarball = dir.join("img.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    let mut expected = BTreeMap::new();
    collect(&rootfs.join("app"), "/app", &mut expected);
    (tarball, expected)
}

fn collect(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let ft = std::fs::symlink_metadata(&p).unwrap().file_type();
        if ft.is_dir() {
            collect(&p, &name, out);
        } else if ft.is_file() {
            out.insert(
                name,
                soci_format::Digest::of(&std::fs::read(&p).unwrap())
                    .hex()
                    .to_string(),
            );
        }
    }
}

#[test]
fn lazy_pull_runs_a_container_and_serves_exact_bytes() {
    let tmp = tempfile::Builder::new()
        .prefix("soci-e2e-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    let (tarball, expected) = build_image(dir, 80);

    // Convert without containerd and push with skopeo.
    let soci = bin("soci");
    let converted = dir.join("img-soci.tar");
    run(Command::new(&soci)
        .args(["convert", "--standalone"])
        .arg(&tarball)
        .arg(&converted));
    let reg = Registry::start(&dir.join("registry"));
    run(Command::new(tool("skopeo"))
        .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", converted.display()))
        .arg(format!("docker://{}/app:soci", reg.addr)));

    let proxy = CountingProxy::start(&reg.addr);
    let daemon = Daemon::start(&dir.join("daemon"), "[background_fetch]\ndisable = true\n");
    let ctd = Containerd::start(&dir.join("containerd"), &daemon.socket, "soci-e2e-lazy");
    let reference = format!("{}/app:soci", proxy.addr);

    let out = run(Command::new(&soci)
        .arg("--address")
        .arg(&ctd.socket)
        .arg("--namespace")
        .arg(&ctd.namespace)
        .args(["image", "rpull", "--plain-http"])
        .arg(&reference));
    let pulled = proxy.served();
    eprintln!("rpull: {}", String::from_utf8_lossy(&out.stdout));

    let run_out = ctd.ctr(&[
        "run",
        "--rm",
        "--snapshotter",
        "soci",
        &reference,
        "lazy1",
        "/bin/cat",
        "/app/hello.txt",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&run_out.stdout),
        "hello from a lazily loaded layer\n"
    );

    // Only a fraction of the image crossed the network.
    let layers_total: u64 = {
        let raw = run(Command::new(tool("skopeo"))
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{}/app:soci", reg.addr)))
        .stdout;
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        v["LayersData"]
            .as_array()
            .map(|a| a.iter().map(|l| l["Size"].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0)
    };
    let served = proxy.served();
    eprintln!(
        "image layers {layers_total} bytes; registry served {pulled} bytes for the pull, {served} in all after the first run"
    );
    assert!(layers_total > 60 << 20, "{layers_total}");
    assert!(
        served * 4 < layers_total,
        "registry served {served} of {layers_total} bytes (>= 25%)"
    );

    // The big layer is a FUSE mount with a state file.
    let fuse: Vec<_> = mounts_under(&daemon.root)
        .into_iter()
        .filter(|(_, t)| t.starts_with("fuse"))
        .collect();
    assert!(
        !fuse.is_empty(),
        "no FUSE layer mounted; daemon log:\n{}",
        tail(&daemon.proc.log_text(), 60)
    );
    let mut saw_state = false;
    for (m, _) in &fuse {
        if let Ok(entries) = std::fs::read_dir(Path::new(m).join(".soci-snapshotter")) {
            for e in entries {
                let s = std::fs::read_to_string(e.unwrap().path()).unwrap();
                let v: serde_json::Value = serde_json::from_str(&s).unwrap();
                assert!(v["size"].as_u64().unwrap() > 0, "{s}");
                assert!(v["fetchedSize"].as_u64().is_some(), "{s}");
                saw_state = true;
            }
        }
    }
    assert!(saw_state);
    let log = daemon.proc.log_text();
    assert!(
        log.contains("remote-snapshot-prepared"),
        "{}",
        tail(&log, 60)
    );
    assert!(
        log.contains("defer-snapshot-runtime"),
        "small layers without zTOC are pulled by containerd:\n{}",
        tail(&log, 60)
    );

    // Every file of /app read through the container equals the original.
    let sums = ctd.ctr(&[
        "run",
        "--rm",
        "--snapshotter",
        "soci",
        &reference,
        "lazy2",
        "/bin/sh",
        "-c",
        "find /app -type f | sort | xargs sha256sum",
    ]);
    let mut got = BTreeMap::new();
    for line in String::from_utf8_lossy(&sums.stdout).lines() {
        let (sum, path) = line.split_once("  ").unwrap();
        got.insert(path.to_string(), sum.to_string());
    }
    assert_eq!(got, expected);

    // Writes go to the container's upper dir, not to the lazy layer.
    let w = ctd.ctr(&[
        "run",
        "--rm",
        "--snapshotter",
        "soci",
        &reference,
        "lazy3",
        "/bin/sh",
        "-c",
        "echo changed > /app/hello.txt && cat /app/hello.txt",
    ]);
    assert_eq!(String::from_utf8_lossy(&w.stdout), "changed\n");
    let again = ctd.ctr(&[
        "run",
        "--rm",
        "--snapshotter",
        "soci",
        &reference,
        "lazy4",
        "/bin/cat",
        "/app/hello.txt",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "hello from a lazily loaded layer\n"
    );
}
