//! Local snapshots and SOCI index v1, end to end: images in a real registry,
//! pulled with `soci image rpull` through real containerd onto
//! `soci-snapshotter-grpc`, run with runc, every file compared with the
//! original.

use std::path::Path;
use std::process::Command;

use soci_e2e::*;
use soci_format::Digest;
use soci_format::json::{self, Descriptor, IndexVersion, SociIndex};

const NO_BACKGROUND: &str = "[background_fetch]\ndisable = true\n";
const ACCEPT: &str =
    "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";

/// Incompressible bytes: the layer holding them stays above the
/// `--min-layer-size` the tests convert with, so it gets a zTOC.
fn big_layer(root: &Path, seed: u64) {
    let dir = root.join("app/big");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..4 {
        std::fs::write(
            dir.join(format!("b{i}.bin")),
            data(seed * 100 + i, 1536 << 10, false),
        )
        .unwrap();
    }
    std::fs::write(dir.join("note.txt"), data(seed, 200_000, true)).unwrap();
}

/// `soci convert --standalone` with a 3 MB minimum layer size: only the big
/// layer gets a zTOC.
fn convert(tarball: &Path, out: &Path) {
    run(Command::new(bin("soci"))
        .args(["convert", "--standalone", "--min-layer-size", "3000000"])
        .arg(tarball)
        .arg(out));
}

fn push(archive: &Path, dest: &str) {
    run(Command::new(tool("skopeo"))
        .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("docker://{dest}")));
}

/// The layer descriptors of the image manifest `tag` of `repo`.
fn manifest_layers(reg: &str, repo: &str, reference: &str) -> (String, Vec<serde_json::Value>) {
    let url = format!("http://{reg}/v2/{repo}/manifests/{reference}");
    let bytes = curl(&["-H", ACCEPT, &url]);
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    if let Some(ms) = v["manifests"].as_array() {
        let m = ms
            .iter()
            .find(|d| d["annotations"]["com.amazon.soci.index-digest"].is_string())
            .or_else(|| ms.first())
            .unwrap();
        return manifest_layers(reg, repo, m["digest"].as_str().unwrap());
    }
    (
        Digest::of(&bytes).to_string(),
        v["layers"].as_array().unwrap().clone(),
    )
}

fn write_blob(layout: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::of(bytes);
    std::fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
    d
}

/// Append a gzip layer replacing `/app/links/sub` with an opaque directory to
/// the single image of an OCI layout, then rewrite `tarball` from it.
fn append_opaque_layer(layout: &Path, tarball: &Path) {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("app/links/sub/", tar::EntryType::Directory, b"", 0o755);
    add(
        "app/links/sub/.wh..wh..opq",
        tar::EntryType::Regular,
        b"",
        0o644,
    );
    add(
        "app/links/sub/fresh.txt",
        tar::EntryType::Regular,
        b"fresh\n",
        0o644,
    );
    let plain = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    let gz = gz.finish().unwrap();
    let layer = write_blob(layout, &gz);
    let read = |d: &str| -> serde_json::Value {
        let p = layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
    let mut config = read(manifest["config"]["digest"].as_str().unwrap());
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(Digest::of(&plain).to_string().into());
    let config_bytes = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = write_blob(layout, &config_bytes).to_string().into();
    manifest["config"]["size"] = config_bytes.len().into();
    manifest["layers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": json::MEDIA_TYPE_OCI_LAYER_GZIP,
            "digest": layer.to_string(),
            "size": gz.len(),
        }));
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    index["manifests"][0]["digest"] = write_blob(layout, &manifest_bytes).to_string().into();
    index["manifests"][0]["size"] = manifest_bytes.len().into();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::remove_file(tarball).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(layout)
        .arg("-cf")
        .arg(tarball)
        .arg("."));
}

#[test]
fn small_layers_become_local_snapshots_and_a_corrupt_one_is_deferred() {
    let tmp = tmpdir();
    let dir = tmp.path();
    let b = ImageBuilder::new(dir);
    b.layer(|root| big_layer(root, 1));
    b.layer(|root| {
        let l = root.join("app/links");
        std::fs::create_dir_all(l.join("dir")).unwrap();
        std::fs::create_dir_all(l.join("sub/deeper")).unwrap();
        std::fs::write(l.join("a.txt"), b"linked content\n").unwrap();
        std::fs::hard_link(l.join("a.txt"), l.join("hard.txt")).unwrap();
        std::os::unix::fs::symlink("a.txt", l.join("sym")).unwrap();
        std::fs::write(l.join("gone.txt"), b"deleted above\n").unwrap();
        std::fs::write(l.join("dir/old.txt"), b"hidden by a replaced dir\n").unwrap();
        std::fs::write(l.join("sub/deeper/x.txt"), b"x\n").unwrap();
    });
    b.layer(|root| std::fs::write(root.join("app/extra.txt"), data(7, 50_000, true)).unwrap());
    b.layer(|root| {
        let l = root.join("app/links");
        std::fs::remove_file(l.join("gone.txt")).unwrap();
        std::fs::remove_dir_all(l.join("dir")).unwrap();
        std::fs::create_dir_all(l.join("dir")).unwrap();
        std::fs::write(l.join("dir/new.txt"), b"new content\n").unwrap();
        std::fs::write(root.join("app/top.txt"), b"top layer\n").unwrap();
    });
    let (tarball, mut expected) = b.finish("img");
    // umoci writes per-file whiteouts only: add a layer with an opaque
    // directory by hand.
    append_opaque_layer(&dir.join("img"), &tarball);
    expected.remove("/app/links/sub/deeper/x.txt");
    expected.insert(
        "/app/links/sub/fresh.txt".into(),
        Digest::of(b"fresh\n").hex().to_string(),
    );
    let converted = dir.join("img-soci.tar");
    convert(&tarball, &converted);
    let reg = Registry::start(&dir.join("registry"));
    push(&converted, &format!("{}/app:soci", reg.addr));
    let (_, layers) = manifest_layers(&reg.addr, "app", "soci");
    assert_eq!(layers.len(), 6);
    let digest = |i: usize| layers[i]["digest"].as_str().unwrap().to_string();
    let extra = digest(3);

    // The top layer really has whiteouts.
    let top = std::fs::read(
        dir.join("img/blobs/sha256")
            .join(digest(4).trim_start_matches("sha256:")),
    )
    .unwrap();
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&top[..]));
    for e in ar.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().to_string());
    }
    eprintln!("top layer entries: {names:?}");
    assert!(
        names.iter().any(|n| n.ends_with("links/.wh.gone.txt")),
        "{names:?}"
    );

    let proxy = FlippingProxy::start(&reg.addr, extra.trim_start_matches("sha256:"), 1);
    let daemon = Daemon::start(&dir.join("daemon"), NO_BACKGROUND);
    let ctd = Containerd::start(&dir.join("containerd"), &daemon.socket, "soci-e2e-local");
    let reference = format!("{}/app:soci", proxy.addr);
    let out = rpull(&ctd, &reference);
    eprintln!("rpull:\n{out}");
    let log = daemon.proc.log_text();
    assert_eq!(proxy.flipped(), 1, "the corrupt layer was fetched");
    assert_eq!(
        rpull_counts(&out),
        (1, 4, 1),
        "big layer lazy; busybox, links, top and opaque local; the corrupt one pulled by containerd\n{}",
        tail(&log, 80)
    );
    for line in out.lines().filter(|l| l.starts_with("layer ")) {
        let expect = if line.contains(&digest(1)) {
            "lazy"
        } else if line.contains(&extra) {
            "pulled"
        } else {
            "local"
        };
        assert!(line.contains(expect), "{line}");
    }
    assert!(
        log.contains("local-snapshot-prepared"),
        "{}",
        tail(&log, 80)
    );
    assert!(
        log.contains("remote-snapshot-prepared"),
        "{}",
        tail(&log, 80)
    );
    let refused = log
        .lines()
        .find(|l| l.contains("defer-snapshot-runtime") && l.contains(&extra))
        .unwrap_or_else(|| panic!("no deferral of {extra}:\n{}", tail(&log, 80)));
    assert!(
        refused.contains("local snapshot failed") && refused.contains("sha256"),
        "{refused}"
    );
    let summary = log
        .lines()
        .find(|l| l.contains("image-snapshot-modes"))
        .unwrap_or_else(|| panic!("no per-image mode line:\n{}", tail(&log, 80)));
    assert!(summary.contains("mixed"), "{summary}");

    assert_eq!(container_app_sums(&ctd, &reference, "local1"), expected);
    let text = run_sh(
        &ctd,
        &reference,
        "local2",
        "ls -i /app/links/a.txt; ls -i /app/links/hard.txt; readlink /app/links/sym; \
         [ -e /app/links/gone.txt ] || echo gone-is-gone; [ -e /app/links/dir/old.txt ] || echo old-is-gone; \
         cat /app/links/sym; ls /app/links/sub",
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    let ino_a = lines[0].split_whitespace().next().unwrap();
    let ino_h = lines[1].split_whitespace().next().unwrap();
    assert_eq!(ino_a, ino_h, "hardlink kept: {text}");
    assert_eq!(
        &lines[2..],
        [
            "a.txt",
            "gone-is-gone",
            "old-is-gone",
            "linked content",
            "fresh.txt"
        ]
    );
}

#[test]
fn v1_index_is_used_only_when_enabled_and_images_without_index_are_deferred() {
    let tmp = tmpdir();
    let dir = tmp.path();
    let b = ImageBuilder::new(dir);
    b.layer(|root| big_layer(root, 2));
    b.layer(|root| std::fs::write(root.join("app/top.txt"), b"top\n").unwrap());
    let (tarball, expected) = b.finish("img");
    let converted = dir.join("img-soci.tar");
    convert(&tarball, &converted);
    let reg = Registry::start(&dir.join("registry"));
    // zTOCs (and the v2 index) go into repository `app`; the original image
    // is pushed there as `v1` and alone into repository `plain`.
    push(&converted, &format!("{}/app:soci", reg.addr));
    push(&tarball, &format!("{}/app:v1", reg.addr));
    // An image with other layers and no index at all.
    let plain_dir = dir.join("plain");
    std::fs::create_dir_all(&plain_dir).unwrap();
    let pb = ImageBuilder::new(&plain_dir);
    pb.layer(|root| {
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(root.join("app/plain.txt"), b"no index\n").unwrap();
    });
    let (plain_tar, plain_expected) = pb.finish("plain");
    push(&plain_tar, &format!("{}/plain:latest", reg.addr));

    // A v1 index for the original manifest: the v2 index's zTOCs, a subject,
    // pushed by digest and listed under the referrers fallback tag.
    let url = |p: &str| format!("http://{}/v2/{p}", reg.addr);
    let soci_root: serde_json::Value =
        serde_json::from_slice(&curl(&["-H", ACCEPT, &url("app/manifests/soci")])).unwrap();
    let v2_digest = soci_root["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|d| d["annotations"]["com.amazon.soci.index-digest"].as_str())
        .unwrap()
        .to_string();
    let v2 = SociIndex::from_manifest_bytes(&curl(&[
        "-H",
        ACCEPT,
        &url(&format!("app/manifests/{v2_digest}")),
    ]))
    .unwrap();
    assert_eq!(v2.version, IndexVersion::V2);
    let original = curl(&["-H", ACCEPT, &url("app/manifests/v1")]);
    let original_digest = Digest::of(&original);
    let subject = Descriptor::for_bytes(json::MEDIA_TYPE_OCI_MANIFEST, &original);
    let v1 = SociIndex::new(
        IndexVersion::V1,
        v2.blobs.clone(),
        Some(subject),
        json::build_tool_annotations(None),
    );
    let (v1_bytes, v1_desc) = v1.marshal_with_descriptor();
    let put = |path: &str, media_type: &str, body: &Path| {
        curl(&[
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {media_type}"),
            "--data-binary",
            &format!("@{}", body.display()),
            &url(path),
        ]);
    };
    let v1_file = dir.join("v1-index.json");
    std::fs::write(&v1_file, &v1_bytes).unwrap();
    put(
        &format!("app/manifests/{}", v1_desc.digest),
        json::MEDIA_TYPE_OCI_MANIFEST,
        &v1_file,
    );
    let fallback = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": json::MEDIA_TYPE_OCI_INDEX,
        "manifests": [{
            "mediaType": json::MEDIA_TYPE_OCI_MANIFEST,
            "digest": v1_desc.digest,
            "size": v1_desc.size,
            "artifactType": json::SOCI_INDEX_ARTIFACT_TYPE_V1,
        }],
    });
    let fallback_file = dir.join("fallback.json");
    std::fs::write(&fallback_file, serde_json::to_vec(&fallback).unwrap()).unwrap();
    put(
        &format!("app/manifests/sha256-{}", original_digest.hex()),
        json::MEDIA_TYPE_OCI_INDEX,
        &fallback_file,
    );
    let v1_ref = format!("{}/app:v1", reg.addr);
    let plain_ref = format!("{}/plain:latest", reg.addr);

    // v1 discovery off (the default): the image is pulled by containerd.
    {
        let daemon = Daemon::start(&dir.join("daemon-off"), NO_BACKGROUND);
        let ctd = Containerd::start(&dir.join("ctd-off"), &daemon.socket, "soci-e2e-v1-off");
        let out = rpull(&ctd, &v1_ref);
        let log = daemon.proc.log_text();
        assert_eq!(rpull_counts(&out), (0, 0, 3), "{out}\n{}", tail(&log, 60));
        let summary = log
            .lines()
            .find(|l| l.contains("image-snapshot-modes"))
            .unwrap_or_else(|| panic!("no per-image mode line:\n{}", tail(&log, 60)));
        assert!(
            summary.contains("deferred") && summary.contains("[pull_modes.soci_v1] enable = true"),
            "{summary}"
        );
        assert_eq!(container_app_sums(&ctd, &v1_ref, "v1off"), expected);
    }

    // v1 discovery on: lazy through the v1 index; the unindexed image is deferred.
    let daemon = Daemon::start(
        &dir.join("daemon-on"),
        &format!("{NO_BACKGROUND}[pull_modes.soci_v1]\nenable = true\n"),
    );
    let ctd = Containerd::start(&dir.join("ctd-on"), &daemon.socket, "soci-e2e-v1-on");
    let out = rpull(&ctd, &v1_ref);
    let log = daemon.proc.log_text();
    assert_eq!(rpull_counts(&out), (1, 2, 0), "{out}\n{}", tail(&log, 60));
    assert!(
        log.lines()
            .any(|l| l.contains("remote-snapshot-prepared") && l.contains(&v1_desc.digest)),
        "the lazy layer was mounted through the v1 index {}:\n{}",
        v1_desc.digest,
        tail(&log, 60)
    );
    assert_eq!(container_app_sums(&ctd, &v1_ref, "v1on"), expected);
    let fuse = mounts_under(&daemon.root)
        .into_iter()
        .filter(|(_, t)| t.starts_with("fuse"))
        .count();
    assert_eq!(fuse, 1);

    let out = rpull(&ctd, &plain_ref);
    let log = daemon.proc.log_text();
    // The busybox base layer is byte-identical to the app image's when both
    // were built within the same second (tar keeps whole-second mtimes); it is
    // then already present. The plain layer itself is always pulled.
    let (lazy, local, pulled) = rpull_counts(&out);
    let present = out
        .lines()
        .filter(|l| l.starts_with("layer ") && l.ends_with("already present"))
        .count();
    assert_eq!(
        (lazy, local, pulled + present),
        (0, 0, 2),
        "{out}\n{}",
        tail(&log, 60)
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("layer 2/2") && l.contains("pulled")),
        "{out}"
    );
    let summary = log
        .lines()
        .filter(|l| l.contains("image-snapshot-modes"))
        .find(|l| l.contains("plain"))
        .unwrap_or_else(|| panic!("no mode line for the plain image:\n{}", tail(&log, 60)));
    assert!(
        summary.contains("deferred") && summary.contains("no SOCI index"),
        "{summary}"
    );
    assert_eq!(
        container_app_sums(&ctd, &plain_ref, "plain"),
        plain_expected
    );
}
