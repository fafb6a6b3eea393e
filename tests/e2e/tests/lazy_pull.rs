//! Lazy loading end to end: a converted image in a real registry, pulled with
//! `soci image rpull` through real containerd onto `soci-snapshotter-grpc`, run
//! with runc, every file compared with the original.

use std::path::Path;
use std::process::Command;

use soci_e2e::*;

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
        let get = |path: &str| {
            run(Command::new(tool("curl")).args([
                "-fsS",
                "-H",
                "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
                &format!("http://{}/v2/app/manifests/{path}", reg.addr),
            ]))
            .stdout
        };
        let index: serde_json::Value = serde_json::from_slice(&get("soci")).unwrap();
        let m = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["annotations"]["com.amazon.soci.index-digest"].is_string())
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let manifest: serde_json::Value = serde_json::from_slice(&get(&m)).unwrap();
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 3, "busybox, the big layer and the top layer");
        layers.iter().map(|l| l["size"].as_u64().unwrap()).sum()
    };
    let served = proxy.served();
    eprintln!(
        "image layers {layers_total} bytes; registry served {pulled} bytes for the pull, {served} in all after the first run"
    );
    assert!(layers_total > 30 << 20, "{layers_total}");
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
        log.contains("local-snapshot-prepared"),
        "small layers without zTOC are downloaded by the daemon:\n{}",
        tail(&log, 60)
    );

    // Every file of /app read through the container equals the original.
    assert_eq!(container_app_sums(&ctd, &reference, "lazy2"), expected);

    // Writes go to the container's upper dir, not to the lazy layer.
    let w = run_sh(
        &ctd,
        &reference,
        "lazy3",
        "echo changed > /app/hello.txt && cat /app/hello.txt",
    );
    assert_eq!(w, "changed\n");
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
