//! `soci create` on an image in real containerd 1.6 (a plain reference), with
//! the artifacts in containerd's content store (the default) or the soci
//! store; `index info`, `push` and `index rm` reading containerd's store; the
//! GC labels keep the artifacts through a garbage collection.
//!
//! Needs root, containerd, runc, docker-registry, skopeo and a built
//! `soci-snapshotter-grpc`; set `SOCI_SKIP_CONTAINERD_TESTS=1` to skip.

mod common;

use std::path::Path;

use common::containerd::{Containerd, Daemon, require_containerd_setup, skipped};
use common::*;

fn soci_in(ctrd: &Containerd, root: &Path, store: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        "--address",
        ctrd.socket.to_str().unwrap(),
        "--namespace",
        &ctrd.namespace,
        "--root",
        root.to_str().unwrap(),
        "--content-store",
        store,
    ];
    all.extend_from_slice(args);
    soci(&all)
}

fn ok(ctrd: &Containerd, root: &Path, store: &str, args: &[&str]) -> String {
    let o = soci_in(ctrd, root, store, args);
    assert!(
        o.status.success(),
        "soci {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// An image manifest whose config lists the true diff IDs (containerd
/// unpacks it on pull); returns its descriptor.
fn unpackable_image(lb: &LayoutBuilder, layers: &[(Vec<u8>, Vec<u8>)]) -> serde_json::Value {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|(_, tar)| soci_format::Digest::of(tar).to_string())
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = lb.desc(OCI_CONFIG, &serde_json::to_vec(&config).unwrap());
    let layers: Vec<_> = layers
        .iter()
        .map(|(gz, _)| lb.desc(OCI_LAYER_GZIP, gz))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers,
    });
    lb.desc(OCI_MANIFEST, &serde_json::to_vec(&manifest).unwrap())
}

#[test]
fn create_on_a_containerd_image_into_either_store() {
    if skipped("create_on_a_containerd_image_into_either_store") {
        return;
    }
    require_containerd_setup();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let reg = Registry::start_temp();
    let lb = LayoutBuilder::new(&dir.join("layout"));
    let big_tar = tar_of(&layer_items(21, 30, 300_000));
    let small_tar = tar_of(&[Item::File("etc/motd".into(), data(2, 100))]);
    let big = gzip(&big_tar, 6);
    let big_digest = soci_format::Digest::of(&big).to_string();
    let small = gzip(&small_tar, 6);
    let mut m = unpackable_image(&lb, &[(big, big_tar), (small, small_tar)]);
    m["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "v1"});
    let manifest = m["digest"].as_str().unwrap().to_string();
    lb.finish(vec![m]);
    let image = format!("{}/app:v1", reg.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", lb.dir.display()),
        &format!("docker://{image}"),
    ]);
    let daemon = Daemon::start(&dir.join("daemon"), "");
    let ns = format!("create-{}", std::process::id());
    let ctrd = Containerd::start(&dir.join("containerd"), &daemon.socket, &ns);
    ctrd.ctr_stdout(&["images", "pull", "--plain-http", &image]);
    let root = dir.join("root");

    // A plain reference names the containerd image; artifacts go to
    // containerd's content store by default.
    let out = ok(
        &ctrd,
        &root,
        "containerd",
        &["create", "--min-layer-size", "10000", &image],
    );
    assert!(
        out.contains(&format!("layer {big_digest} -> ztoc sha256:")),
        "{out}"
    );
    let index = ok(&ctrd, &root, "containerd", &["index", "list", "-q"])
        .trim()
        .to_string();
    assert!(index.starts_with("sha256:"), "{index}");
    let table = ok(&ctrd, &root, "containerd", &["index", "ls"]);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .contains(&format!("    {image}    ")),
        "{table}"
    );
    assert_eq!(
        ok(
            &ctrd,
            &root,
            "containerd",
            &["index", "ls", "-q", "--ref", &image]
        )
        .trim(),
        index
    );
    let info = json(ok(&ctrd, &root, "containerd", &["index", "info", &index]).as_bytes());
    assert_eq!(info["subject"]["digest"], manifest.as_str());
    let ztoc = info["layers"][0]["digest"].as_str().unwrap().to_string();
    assert!(!root.join("content/blobs/sha256").join(&index[7..]).exists());
    // `ztoc info` reads the zTOC from containerd's content store.
    assert!(!root.join("content/blobs/sha256").join(&ztoc[7..]).exists());
    let zinfo = json(ok(&ctrd, &root, "containerd", &["ztoc", "info", &ztoc]).as_bytes());
    assert!(zinfo["num_files"].as_u64().unwrap() > 0, "{zinfo}");

    // Stored in containerd with the GC references upstream sets, and held by
    // the image label through a garbage collection.
    ctrd.collect_garbage();
    let raw = ctrd.ctr_stdout(&["content", "get", &index]);
    assert_eq!(soci_format::Digest::of(raw.as_bytes()).to_string(), index);
    let listing = ctrd.ctr_stdout(&["content", "ls"]);
    let line = listing
        .lines()
        .find(|l| l.starts_with(&index))
        .unwrap_or_else(|| panic!("{index} not listed:\n{listing}"));
    assert!(
        line.contains(&format!("containerd.io/gc.ref.content.ztoc.0={ztoc}")),
        "{line}"
    );
    assert!(
        line.contains("containerd.io/gc.ref.content.config=sha256:44136fa3"),
        "{line}"
    );
    let z = ctrd.ctr_raw(&["content", "get", &ztoc]);
    assert!(z.status.success());
    assert_eq!(soci_format::Digest::of(&z.stdout).to_string(), ztoc);
    let images = ctrd.ctr_stdout(&["images", "ls"]);
    assert!(
        images.contains(&format!("containerd.io/gc.ref.content.soci-index={index}")),
        "{images}"
    );

    // push reads the artifacts from containerd.
    let out = ok(&ctrd, &root, "containerd", &["push", &image]);
    assert!(
        out.contains(&format!("pushing soci index with digest: {index}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "successfully pushed artifact with digest: {ztoc}\n"
        )),
        "{out}"
    );

    // The same image into the soci store.
    let soci_root = dir.join("soci-root");
    let out = ok(
        &ctrd,
        &soci_root,
        "soci",
        &["create", "--min-layer-size", "10000", &image],
    );
    assert!(out.contains("-> ztoc"), "{out}");
    assert!(
        soci_root
            .join("content/blobs/sha256")
            .join(&index[7..])
            .exists()
    );

    // rebuild-db on containerd's store (through its API): a lost database
    // gets the index and its zTOC back.
    std::fs::remove_file(root.join("artifacts.db")).unwrap();
    assert!(ok(&ctrd, &root, "containerd", &["index", "list", "-q"]).is_empty());
    ok(&ctrd, &root, "containerd", &["rebuild-db"]);
    assert_eq!(
        ok(&ctrd, &root, "containerd", &["index", "list", "-q"]).trim(),
        index
    );
    assert!(
        ok(&ctrd, &root, "containerd", &["ztoc", "list", "-q"]).contains(&ztoc),
        "the zTOC is recorded again"
    );

    // index rm deletes the blob from containerd's store.
    ok(&ctrd, &root, "containerd", &["index", "rm", &index]);
    assert!(!ctrd.ctr_raw(&["content", "get", &index]).status.success());
    assert!(ok(&ctrd, &root, "containerd", &["index", "list", "-q"]).is_empty());
    // Once the zTOC is gone from containerd too, rebuild-db forgets it.
    ctrd.ctr_stdout(&["content", "rm", &ztoc]);
    ok(&ctrd, &root, "containerd", &["rebuild-db"]);
    assert!(
        !ok(&ctrd, &root, "containerd", &["ztoc", "list", "-q"]).contains(&ztoc),
        "rebuild-db drops the zTOC whose blob is gone"
    );

    // An image containerd does not have.
    let o = soci_in(
        &ctrd,
        &root,
        "containerd",
        &["create", &format!("{}/app:nope", reg.addr)],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is not in containerd"), "{err}");
}
