//! Prefetch artifacts at run time: with `[prefetch] enable = true` the daemon
//! fetches the spans a layer's prefetch artifact lists before the layer is
//! mounted, so reading the prefetched file later crosses no network; without
//! it nothing is fetched ahead.

use std::process::Command;

use soci_e2e::*;

/// Fetched bytes of every lazily mounted layer, from their state files.
fn fetched_by_layers(daemon: &Daemon) -> u64 {
    let mut total = 0;
    for (m, t) in mounts_under(&daemon.root) {
        if !t.starts_with("fuse") {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(std::path::Path::new(&m).join(".soci-snapshotter"))
        else {
            continue;
        };
        for e in entries {
            let s = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            total += v["fetchedSize"].as_u64().unwrap();
        }
    }
    total
}

#[test]
fn prefetch_artifacts_are_fetched_before_the_mount_when_enabled() {
    let tmp = tempfile::Builder::new()
        .prefix("soci-e2e-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    let (tarball, expected) = build_image(dir, 40);
    // f3.bin is 5 MiB of incompressible bytes: at least two 4 MiB spans'
    // worth of compressed data that only a prefetch would fetch.
    let file = "/app/lib/f3.bin";
    let converted = dir.join("img-soci.tar");
    let out = run(Command::new(bin("soci"))
        .args(["convert", "--standalone", "--prefetch-file", file])
        .arg(&tarball)
        .arg(&converted));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 prefetch artifact(s)"), "{stderr}");
    let reg = Registry::start(&dir.join("registry"));
    run(Command::new(tool("skopeo"))
        .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", converted.display()))
        .arg(format!("docker://{}/app:soci", reg.addr)));

    for enabled in [true, false] {
        let proxy = CountingProxy::start(&reg.addr);
        let name = if enabled { "on" } else { "off" };
        let daemon = Daemon::start(
            &dir.join(format!("daemon-{name}")),
            &format!("[background_fetch]\ndisable = true\n[prefetch]\nenable = {enabled}\n"),
        );
        let ctd = Containerd::start(
            &dir.join(format!("containerd-{name}")),
            &daemon.socket,
            &format!("soci-e2e-prefetch-{name}"),
        );
        let reference = format!("{}/app:soci", proxy.addr);
        rpull(&ctd, &reference);
        let fetched_at_mount = fetched_by_layers(&daemon);
        let served_after_pull = proxy.served();
        let log = daemon.proc.log_text();
        if enabled {
            assert!(
                fetched_at_mount >= 5 << 20,
                "the prefetched spans ({fetched_at_mount} bytes) cover the 5 MiB file; daemon log:\n{}",
                tail(&log, 40)
            );
            assert!(
                log.contains("prefetched the spans of the layer's prefetch artifact"),
                "{}",
                tail(&log, 40)
            );
        } else {
            // Only the gzip header, which every mount checks.
            assert!(
                fetched_at_mount < 4096,
                "nothing is fetched ahead without [prefetch] ({fetched_at_mount} bytes)"
            );
        }

        let sums = ctd.ctr(&[
            "run",
            "--rm",
            "--snapshotter",
            "soci",
            &reference,
            &format!("prefetch-{name}"),
            "/bin/sha256sum",
            file,
        ]);
        let sum = String::from_utf8_lossy(&sums.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        assert_eq!(Some(&sum), expected.get(file), "{file} is exact");
        let read_later = proxy.served() - served_after_pull;
        if enabled {
            assert_eq!(
                read_later, 0,
                "reading the prefetched file crossed the network"
            );
        } else {
            assert!(
                read_later >= 5 << 20,
                "without prefetch the file is fetched when read ({read_later} bytes)"
            );
        }
    }
}
