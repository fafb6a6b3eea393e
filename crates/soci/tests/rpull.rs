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
        tail(&ctrd.proc.log_text(), 30),
        tail(&daemon.proc.log_text(), 30)
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
    let reg = Registry::start_temp();
    let layout = busybox_layout(dir);
    let image = format!("{}/bb:latest", reg.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{image}"),
    ]);

    let daemon = Daemon::start(&dir.join("daemon"), "");
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
    let images = ctrd.ctr_stdout(&["images", "ls", "-q"]);
    assert_eq!(images.lines().collect::<Vec<_>>(), vec![image.as_str()]);
    let snaps = ctrd.soci_snapshots();
    assert_eq!(snaps.len(), 3, "{snaps:?}");
    assert!(
        snaps.iter().any(|(n, p)| *n == top && !p.is_empty()),
        "{snaps:?}"
    );
    let content = ctrd.ctr_stdout(&["content", "ls"]);
    assert!(
        content.contains(&format!("containerd.io/gc.ref.snapshot.soci={top}")),
        "the config marks the image unpacked on soci:\n{content}"
    );
    assert!(
        ctrd.ctr_stdout(&["leases", "ls", "-q"]).trim().is_empty(),
        "the pull lease is gone"
    );

    // Nothing the image needs is garbage once the lease is gone.
    ctrd.collect_garbage();
    assert_eq!(ctrd.soci_snapshots(), snaps, "GC kept the snapshots");

    // containerd sees the image as unpacked on soci and runs it.
    let id = format!("hello-{}", std::process::id());
    let hello = ctrd.ctr_stdout(&[
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
    let listing = ctrd.ctr_stdout(&[
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
    let reg = Registry::start_temp();
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

    let daemon = Daemon::start(&dir.join("daemon"), "");
    let ctrd = Containerd::start(
        &dir.join("containerd"),
        &daemon.socket,
        &unique_namespace("rpull-index"),
    );
    let out = rpull(&ctrd, &daemon, &["--platform", "linux/amd64", &image]);
    assert!(out.contains("3 layer(s)"), "{out}");
    // The image record points at the index, as containerd would name it.
    let images = ctrd.ctr_stdout(&["images", "ls"]);
    assert!(
        images.contains(&image) && images.contains("application/vnd.oci.image.index.v1+json"),
        "{images}"
    );
    let hello = ctrd.ctr_stdout(&[
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

    // A pull cut short by --timeout says so and leaves no lease behind.
    let o = soci(&[
        "--address",
        ctrd.socket.to_str().unwrap(),
        "--namespace",
        &ctrd.namespace,
        "--timeout",
        "1ms",
        "image",
        "rpull",
        &image,
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--timeout") && err.contains(&image), "{err}");
    assert!(ctrd.ctr_stdout(&["leases", "ls", "-q"]).trim().is_empty());
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

/// A remote-layer provider for the test below: it records the labels of
/// every remote `Prepare`, "mounts" the layer `lazy_digest` by extracting its
/// blob from the OCI layout into the snapshot directory (so the result is
/// runnable; no FUSE), and defers every other layer.
#[derive(Clone)]
struct ExtractOne {
    layout: std::path::PathBuf,
    lazy_digest: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<soci_snapshotter::Labels>>>,
}

impl soci_snapshotter::RemoteLayers for ExtractOne {
    async fn prepare_remote(
        &self,
        request: &soci_snapshotter::RemotePrepare,
    ) -> Result<soci_snapshotter::RemoteOutcome, soci_snapshotter::RemoteError> {
        self.seen.lock().unwrap().push(request.labels.clone());
        let layer = request
            .labels
            .get("containerd.io/snapshot/cri.layer-digest")
            .cloned()
            .unwrap_or_default();
        if layer != self.lazy_digest {
            return Ok(soci_snapshotter::RemoteOutcome::Defer);
        }
        let hex = layer.trim_start_matches("sha256:");
        let blob = self.layout.join("blobs/sha256").join(hex);
        let st = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(&blob)
            .arg("-C")
            .arg(&request.mountpoint)
            .status()?;
        if !st.success() {
            return Err(format!("extracting {} failed", blob.display()).into());
        }
        Ok(soci_snapshotter::RemoteOutcome::Mounted {
            labels: Default::default(),
        })
    }

    async fn check(
        &self,
        _snapshot: &soci_snapshotter::RemoteSnapshot,
    ) -> Result<(), soci_snapshotter::RemoteError> {
        Ok(())
    }

    async fn restore(
        &self,
        _snapshot: &soci_snapshotter::RemoteSnapshot,
    ) -> Result<(), soci_snapshotter::RemoteError> {
        Ok(())
    }

    async fn unmount(&self, _mountpoint: &Path) -> Result<(), soci_snapshotter::RemoteError> {
        Ok(())
    }
}

/// The snapshotter core served in this process on `<dir>/soci.sock` with a
/// custom remote-layer provider; stopped (SIGINT-style, unmounting) on drop.
struct InProcessSnapshotter {
    socket: std::path::PathBuf,
    root: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessSnapshotter {
    fn start<R: soci_snapshotter::RemoteLayers>(dir: &Path, remote: R) -> InProcessSnapshotter {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("soci.sock");
        let root = dir.join("root");
        let config = soci_snapshotter::Config {
            root: root.clone(),
            address: socket.clone(),
            ..soci_snapshotter::Config::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let shutdown = async move {
                let _ = rx.await;
                soci_snapshotter::Shutdown::Unmount
            };
            if let Err(e) = rt.block_on(soci_snapshotter::serve(&config, remote, shutdown)) {
                eprintln!("in-process snapshotter: {e}");
            }
        });
        common::containerd::wait_for(
            "the in-process snapshotter socket",
            std::time::Duration::from_secs(30),
            || socket.exists() || thread.is_finished(),
        );
        assert!(
            !thread.is_finished(),
            "the in-process snapshotter stopped at startup"
        );
        InProcessSnapshotter {
            socket,
            root,
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for InProcessSnapshotter {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                eprintln!("the in-process snapshotter did not stop within 20s");
            }
        }
        common::containerd::unmount_under(&self.root);
    }
}

#[test]
fn rpull_labels_reach_the_snapshotter_and_provided_layers_are_not_pulled() {
    if skipped("rpull_labels_reach_the_snapshotter_and_provided_layers_are_not_pulled") {
        return;
    }
    require_containerd_setup();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let reg = Registry::start_temp();
    let layout = busybox_layout(dir);
    let image = format!("{}/bb:lazy", reg.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{image}"),
    ]);
    // The layout's single manifest and its layers, bottom first.
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = json(&LayoutBuilder::read_blob(&layout, &manifest_digest));
    let layers: Vec<(String, u64)> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(layers.len(), 3);

    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let snapshotter = InProcessSnapshotter::start(
        &dir.join("snapshotter"),
        ExtractOne {
            layout: layout.clone(),
            lazy_digest: layers[0].0.clone(),
            seen: seen.clone(),
        },
    );
    let ctrd = Containerd::start(
        &dir.join("containerd"),
        &snapshotter.socket,
        &unique_namespace("rpull-labels"),
    );
    let soci_index = format!("sha256:{}", "5".repeat(64));
    let o = soci(&[
        "--address",
        ctrd.socket.to_str().unwrap(),
        "--namespace",
        &ctrd.namespace,
        "image",
        "rpull",
        "--soci-index-digest",
        &soci_index,
        &image,
    ]);
    assert!(
        o.status.success(),
        "{}\ncontainerd log:\n{}",
        text(&o),
        tail(&ctrd.proc.log_text(), 30)
    );
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("layer ")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("lazy"), "{out}");
    assert!(
        lines[1].contains("pulled (") && lines[2].contains("pulled ("),
        "{out}"
    );
    assert!(out.contains("1 lazy, 0 local, 2 pulled"), "{out}");
    // The lazily provided layer was never downloaded into containerd.
    let content = ctrd.ctr_stdout(&["content", "ls", "-q"]);
    assert!(!content.contains(&layers[0].0), "{content}");
    assert!(
        content.contains(&layers[1].0) && content.contains(&layers[2].0),
        "{content}"
    );

    // What the snapshotter got, through containerd, for each layer.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    let all: Vec<&str> = layers.iter().map(|(d, _)| d.as_str()).collect();
    let snaps = ctrd.soci_snapshots();
    for (i, labels) in seen.iter().enumerate() {
        let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("<missing>");
        assert_eq!(get("containerd.io/snapshot/cri.image-ref"), image);
        assert_eq!(
            get("containerd.io/snapshot/cri.manifest-digest"),
            manifest_digest
        );
        assert_eq!(get("containerd.io/snapshot/cri.layer-digest"), layers[i].0);
        assert_eq!(
            get("containerd.io/snapshot/cri.image-layers"),
            all[i..].join(",")
        );
        assert_eq!(
            get("containerd.io/snapshot/remote/soci.size"),
            layers[i].1.to_string()
        );
        let sizes: Vec<String> = layers[i..].iter().map(|(_, s)| s.to_string()).collect();
        assert_eq!(
            get("containerd.io/snapshot/remote/image.layers.size"),
            sizes.join(",")
        );
        assert_eq!(
            get("containerd.io/snapshot/remote/soci.index.digest"),
            soci_index
        );
        let target = get("containerd.io/snapshot.ref");
        assert!(
            snaps.iter().any(|(n, _)| n == target),
            "{target} in {snaps:?}"
        );
    }
    // The provided layer is committed as a remote snapshot.
    let bottom = snaps.iter().find(|(_, p)| p.is_empty()).unwrap().0.clone();
    let info = ctrd.ctr_stdout(&["snapshots", "--snapshotter", "soci", "info", &bottom]);
    assert!(
        info.contains("\"containerd.io/snapshot/remote\": \"remote snapshot\""),
        "{info}"
    );

    // And the image runs from the provided bottom layer plus the pulled ones.
    let run = ctrd.ctr_stdout(&[
        "run",
        "--snapshotter",
        "soci",
        "--rm",
        &image,
        &format!("lazy-{}", std::process::id()),
        "/bin/sh",
        "-c",
        "echo hello; cat /etc/greeting",
    ]);
    assert_eq!(
        run.lines().collect::<Vec<_>>(),
        vec!["hello", "hello-layer2"]
    );
    assert_eq!(ctrd.soci_snapshots().len(), 3);
    drop(ctrd);
}
