//! Removing an image frees its lazily loaded layers: containerd's garbage
//! collector removes the snapshots, the daemon unmounts the FUSE layers and
//! deletes their span caches. Restarts (SIGTERM or SIGINT) keep the caches.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use soci_e2e::*;

/// Build, convert (only the big layer gets a zTOC) and push one image.
fn image(
    dir: &Path,
    reg: &str,
    name: &str,
    seed: u64,
) -> std::collections::BTreeMap<String, String> {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let b = ImageBuilder::new(&d);
    b.layer(|root| {
        let app = root.join("app");
        std::fs::create_dir_all(&app).unwrap();
        for i in 0..4 {
            std::fs::write(
                app.join(format!("b{i}.bin")),
                data(seed * 100 + i, 1536 << 10, false),
            )
            .unwrap();
        }
    });
    let (tarball, expected) = b.finish("img");
    let converted = d.join("img-soci.tar");
    run(Command::new(bin("soci"))
        .args(["convert", "--standalone", "--min-layer-size", "3000000"])
        .arg(&tarball)
        .arg(&converted));
    run(Command::new(tool("skopeo"))
        .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", converted.display()))
        .arg(format!("docker://{reg}/{name}:soci")));
    expected
}

/// The digest of the layer rpull reports as lazy.
fn lazy_layer(rpull_out: &str) -> String {
    let lazy: Vec<&str> = rpull_out
        .lines()
        .filter(|l| l.starts_with("layer ") && l.contains("lazy"))
        .collect();
    assert_eq!(lazy.len(), 1, "{rpull_out}");
    lazy[0]
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

fn cache_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn fuse_mounts(root: &Path) -> Vec<String> {
    mounts_under(root)
        .into_iter()
        .filter(|(_, t)| t.starts_with("fuse"))
        .map(|(m, _)| m)
        .collect()
}

/// Wait until a restarted daemon has mounted `n` layers again and answers.
fn wait_restored(daemon: &Daemon, ctd: &Containerd, n: usize) {
    wait_for("layers restored", Duration::from_secs(30), || {
        let restored = daemon
            .proc
            .log_text()
            .matches("restored remote snapshot")
            .count();
        restored == n
            && ctd
                .ctr_raw(&["snapshots", "--snapshotter", "soci", "ls"])
                .status
                .success()
    });
}

#[test]
fn image_removal_deletes_span_caches_and_restarts_keep_them() {
    let tmp = tempfile::Builder::new()
        .prefix("soci-e2e-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    let reg = Registry::start(&dir.join("registry"));
    let expected_a = image(dir, &reg.addr, "a", 11);
    let expected_b = image(dir, &reg.addr, "b", 12);
    let mut daemon = Daemon::start(&dir.join("daemon"), "[background_fetch]\ndisable = true\n");
    let ctd = Containerd::start(&dir.join("containerd"), &daemon.socket, "soci-e2e-removal");
    let (ref_a, ref_b) = (
        format!("{}/a:soci", reg.addr),
        format!("{}/b:soci", reg.addr),
    );
    let layer_a = lazy_layer(&rpull(&ctd, &ref_a));
    let layer_b = lazy_layer(&rpull(&ctd, &ref_b));
    assert_ne!(layer_a, layer_b);
    assert_eq!(container_app_sums(&ctd, &ref_a, "a1"), expected_a);
    assert_eq!(container_app_sums(&ctd, &ref_b, "b1"), expected_b);
    let cache = daemon.root.join("soci/spancache");
    let (cache_a, cache_b): (PathBuf, PathBuf) = (cache.join(&layer_a), cache.join(&layer_b));
    assert!(
        cache_files(&cache_a) > 0,
        "reading cached spans of {layer_a}"
    );
    assert!(
        cache_files(&cache_b) > 0,
        "reading cached spans of {layer_b}"
    );
    assert_eq!(fuse_mounts(&daemon.root).len(), 2);

    // SIGTERM: mounts are restored on start, caches stay.
    let before = (cache_files(&cache_a), cache_files(&cache_b));
    daemon.restart("TERM");
    wait_restored(&daemon, &ctd, 2);
    assert_eq!(fuse_mounts(&daemon.root).len(), 2);
    assert_eq!((cache_files(&cache_a), cache_files(&cache_b)), before);

    // SIGINT unmounts everything but is no removal: caches stay too.
    daemon.restart("INT");
    wait_restored(&daemon, &ctd, 2);
    assert_eq!(fuse_mounts(&daemon.root).len(), 2);
    assert_eq!((cache_files(&cache_a), cache_files(&cache_b)), before);

    // Removing image a: containerd's GC removes its snapshots, the daemon
    // unmounts its layer and deletes its cache; b is untouched.
    ctd.ctr(&["images", "rm", "--sync", &ref_a]);
    let root = daemon.root.clone();
    let gone = cache_a.clone();
    let log = daemon.proc.log.clone();
    wait_for(
        "the removed image's layer to be unmounted and its cache deleted",
        Duration::from_secs(60),
        || fuse_mounts(&root).len() == 1 && !gone.exists(),
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("removed a lazily loaded layer and its span cache"),
    );
    assert_eq!(cache_files(&cache_b), before.1);
    assert_eq!(container_app_sums(&ctd, &ref_b, "b2"), expected_b);
}
