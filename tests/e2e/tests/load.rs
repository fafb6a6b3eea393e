//! Load: concurrent `soci image rpull`s of one image, and of two images that
//! share layers (in another containerd namespace), all succeed and mount each
//! lazily loaded layer once; four readers reading for a bounded time leave the
//! daemon's resident memory within a bound.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use soci_e2e::direct::{fuse_mounts, push_converted, push_sharing_layers, rss_kib};
use soci_e2e::*;

const CONFIG: &str = "[background_fetch]\ndisable = true\n";

/// Runs `soci image rpull` of every reference at once in `namespace`; all must succeed.
fn rpull_all(ctd: &Containerd, namespace: &str, references: &[String]) {
    let children: Vec<_> = references
        .iter()
        .map(|r| {
            Command::new(bin("soci"))
                .arg("--address")
                .arg(&ctd.socket)
                .arg("--namespace")
                .arg(namespace)
                .args(["image", "rpull", "--plain-http", "--timeout", "5m"])
                .arg(r)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn soci image rpull")
        })
        .collect();
    for (child, r) in children.into_iter().zip(references) {
        let out = child.wait_with_output().expect("wait for rpull");
        assert!(
            out.status.success(),
            "rpull {r} in {namespace} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

fn ctr_in(ctd: &Containerd, namespace: &str, args: &[&str]) -> String {
    let out = run(Command::new(tool("ctr"))
        .arg("-a")
        .arg(&ctd.socket)
        .arg("-n")
        .arg(namespace)
        .args(args));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn concurrent_rpulls_and_sustained_reads() {
    let tmp = tempfile::Builder::new()
        .prefix("soci-e2e-load-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    let reg = Registry::start(&dir.join("registry"));
    let app = push_converted(dir, &reg, "app:soci", 16, 1 << 20);
    let app2 = push_sharing_layers(dir, &reg, &app, "app2:soci", 1 << 20);
    let daemon = Daemon::start(&dir.join("daemon"), CONFIG);
    let ctd = Containerd::start(&dir.join("containerd"), &daemon.socket, "load-one");
    let one = format!("{}/{}", reg.addr, app.name);
    let two = format!("{}/{}", reg.addr, app2.name);

    // Eight concurrent pulls of one image.
    rpull_all(&ctd, "load-one", &vec![one.clone(); 8]);
    let first: BTreeSet<PathBuf> = fuse_mounts(&daemon.root).into_iter().collect();
    assert!(!first.is_empty(), "{}", tail(&daemon.proc.log_text(), 40));
    assert!(
        first.len() <= app.layers.len(),
        "{} FUSE mounts for an image of {} layers: {first:?}",
        first.len(),
        app.layers.len()
    );
    let out = ctr_in(
        &ctd,
        "load-one",
        &[
            "run",
            "--rm",
            "--snapshotter",
            "soci",
            &one,
            "one",
            "/bin/cat",
            "/app/hello.txt",
        ],
    );
    assert_eq!(out, "hello from a lazily loaded layer\n");

    // Eight concurrent pulls of two images sharing their layers, in a fresh
    // namespace.
    let mixed: Vec<String> = (0..8)
        .map(|i| if i % 2 == 0 { one.clone() } else { two.clone() })
        .collect();
    rpull_all(&ctd, "load-two", &mixed);
    // A layer committed for one namespace serves every namespace (as
    // upstream, one snapshot per layer): no new mount.
    let all: BTreeSet<PathBuf> = fuse_mounts(&daemon.root).into_iter().collect();
    assert_eq!(all, first, "the second namespace mounted layers again");
    for (image, name) in [(&one, "two-a"), (&two, "two-b")] {
        let out = ctr_in(
            &ctd,
            "load-two",
            &[
                "run",
                "--rm",
                "--snapshotter",
                "soci",
                image,
                name,
                "/bin/cat",
                "/app/hello.txt",
            ],
        );
        assert_eq!(out, "hello from a lazily loaded layer\n");
    }

    // Sustained reads: four readers through the big layer's mount, 20 s.
    let big = first
        .iter()
        .find(|m| m.join("app/hello.txt").exists())
        .expect("a mount with the application layer")
        .clone();
    let pid = daemon.proc.pid();
    // Warm up: every file once, so that the span cache is filled.
    for (name, want) in &app.files {
        let got = std::fs::read(big.join(name)).unwrap();
        assert!(got == *want, "{name} differs");
    }
    let baseline = rss_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (stop, reads, mnt, files) =
                (stop.clone(), reads.clone(), big.clone(), app.files.clone());
            std::thread::spawn(move || {
                let names: Vec<_> = files.keys().cloned().collect();
                for i in 0..1_000_000usize {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let name = &names[(i * 7 + r) % names.len()];
                    let path = mnt.join(name);
                    let got = std::fs::read(&path).expect("read");
                    // Drop the file's page cache so that the next read reaches the daemon.
                    let f = std::fs::File::open(&path).expect("open");
                    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
                    assert!(got == files[name], "{name} differs");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let end = Instant::now() + Duration::from_secs(20);
    let mut peak = baseline;
    while Instant::now() < end {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader failed");
    }
    let after = rss_kib(pid);
    eprintln!(
        "{} reads; daemon RSS {baseline} KiB before, peak {peak} KiB, {after} KiB after",
        reads.load(Ordering::Relaxed)
    );
    assert!(reads.load(Ordering::Relaxed) > 40);
    // Spans are read from the disk cache; memory must not grow with the reads.
    assert!(
        peak <= baseline + 128 * 1024,
        "daemon RSS grew from {baseline} KiB to {peak} KiB under sustained reads"
    );
}
