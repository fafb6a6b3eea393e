//! `soci convert` with registries and OCI layouts (docker://, oci:,
//! oci-archive:), against a real docker-registry on 127.0.0.1 and real skopeo;
//! `soci ztoc list | info | get-file` on the result.

mod common;
#[path = "common/registry_auth.rs"]
mod registry_auth;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use registry_auth::{StoredRegistry, docker_config, flip_byte};
use soci_format::Digest;

const V2: &str = "application/vnd.amazon.soci.index.v2+json";
const MANIFEST_DIGEST: &str = "com.amazon.soci.image-manifest-digest";
const INDEX_DIGEST: &str = "com.amazon.soci.index-digest";
const LAYER_DIGEST: &str = "com.amazon.soci.image-layer-digest";

fn soci_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_soci"));
    c.args(args).stdin(Stdio::null());
    // Never pick up the credentials of whoever runs the tests.
    c.env("DOCKER_CONFIG", "/nonexistent-docker-config");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run soci")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "soci failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn failed(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "soci should have failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The files of a synthetic image: layer digest -> (name -> bytes).
type Files = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// A three-layer image (two indexable, one small) in an OCI layout.
fn build_image(dir: &Path) -> (LayoutBuilder, Files) {
    let lb = LayoutBuilder::new(dir);
    let mut files = Files::new();
    let mut layers = Vec::new();
    for (seed, n, max) in [
        (11u64, 24usize, 300_000usize),
        (12, 30, 200_000),
        (13, 2, 100),
    ] {
        let items = layer_items(seed, n, max);
        let blob = gzip(&tar_of(&items), 6);
        let mut m = BTreeMap::new();
        for it in &items {
            match it {
                Item::File(name, bytes) => {
                    m.insert(name.clone(), bytes.clone());
                }
                Item::Hardlink(name, target) => {
                    let t = items
                        .iter()
                        .find_map(|i| match i {
                            Item::File(n, b) if n == target => Some(b.clone()),
                            _ => None,
                        })
                        .unwrap();
                    m.insert(name.clone(), t);
                }
                _ => {}
            }
        }
        files.insert(Digest::of(&blob).to_string(), m);
        layers.push((OCI_LAYER_GZIP, blob));
    }
    let m = lb.image("amd64", &layers);
    lb.finish(vec![m]);
    (lb, files)
}

fn push_layout(dir: &Path, dest: &str) {
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}", dir.display()),
        dest,
    ]);
}

fn raw(image: &str) -> serde_json::Value {
    json(&skopeo(&["inspect", "--raw", "--tls-verify=false", image]).stdout)
}

/// Checks a converted image in a registry: its image index holds the SOCI
/// index with both annotations; returns the zTOC descriptors.
fn check_converted(reg: &str, repo_tag: &str) -> Vec<serde_json::Value> {
    let (repo, _) = repo_tag.split_once(':').unwrap();
    let index = raw(&format!("docker://{reg}/{repo_tag}"));
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    let soci_entry = manifests
        .iter()
        .find(|m| annotations(m).contains_key(MANIFEST_DIGEST))
        .expect("a SOCI index entry");
    let image_entry = manifests
        .iter()
        .find(|m| !annotations(m).contains_key(MANIFEST_DIGEST))
        .unwrap();
    assert_eq!(
        annotations(soci_entry)[MANIFEST_DIGEST],
        image_entry["digest"].as_str().unwrap()
    );
    let image = raw(&format!(
        "docker://{reg}/{repo}@{}",
        image_entry["digest"].as_str().unwrap()
    ));
    assert_eq!(
        annotations(&image)[INDEX_DIGEST],
        soci_entry["digest"].as_str().unwrap()
    );
    let soci_index = raw(&format!(
        "docker://{reg}/{repo}@{}",
        soci_entry["digest"].as_str().unwrap()
    ));
    assert_eq!(soci_index["config"]["mediaType"], V2);
    soci_index["layers"].as_array().unwrap().clone()
}

#[test]
fn registry_to_registry_then_skopeo_copy_and_get_file() {
    let reg = StoredRegistry::start_temp_with_auth(None);
    let tmp = tempfile::tempdir().unwrap();
    let (lb, files) = build_image(&tmp.path().join("src"));
    push_layout(&lb.dir, &format!("docker://{}/app:v1", reg.addr));
    let root = tmp.path().join("root");
    let root_s = root.to_str().unwrap();

    let src = format!("docker://{}/app:v1", reg.addr);
    let dst = format!("docker://{}/app:soci", reg.addr);
    let o = soci_env(
        &[
            "--root",
            root_s,
            "convert",
            "--span-size",
            "65536",
            "--min-layer-size",
            "20000",
            &src,
            &dst,
        ],
        &[],
    );
    let stdout = ok(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stdout.matches(" -> ztoc sha256:").count(), 2, "{stdout}");
    assert!(
        stdout.contains("is less than min-layer-size 20000"),
        "{stdout}"
    );
    assert!(stderr.contains("2 layer(s) indexed, 1 skipped"), "{stderr}");
    // Same repository: every source blob was already there; nothing re-sent
    // but the new zTOCs, the `{}` config, and the manifests.
    assert!(stderr.contains("3 blob(s)"), "{stderr}");
    assert!(reg.has_tag("app", "v1") && reg.has_tag("app", "soci"));

    let ztocs = check_converted(&reg.addr, "app:soci");
    assert_eq!(ztocs.len(), 2);

    // A copy by a multi-platform-aware tool keeps the SOCI index.
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &dst,
        &format!("docker://{}/copy:soci", reg.addr),
    ]);
    let copied = check_converted(&reg.addr, "copy:soci");
    assert_eq!(copied, ztocs);

    // Every file of every indexed layer, read from the copy through its zTOC.
    let out = tmp.path().join("out.bin");
    let image = format!("docker://{}/copy:soci", reg.addr);
    for z in &ztocs {
        let zd = z["digest"].as_str().unwrap();
        let layer = annotations(z)[LAYER_DIGEST].clone();
        for (name, want) in &files[&layer] {
            ok(&soci_env(
                &[
                    "--root",
                    root_s,
                    "ztoc",
                    "get-file",
                    "--image",
                    &image,
                    "-o",
                    out.to_str().unwrap(),
                    zd,
                    name,
                ],
                &[],
            ));
            assert!(
                std::fs::read(&out).unwrap() == *want,
                "{name} of {layer} differs"
            );
        }
        // stdout adds a newline, like upstream.
        let (name, want) = files[&layer].iter().next().unwrap();
        let o = soci_env(&["ztoc", "get-file", "--image", &image, zd, name], &[]);
        ok(&o);
        let mut expected = want.clone();
        expected.push(b'\n');
        assert!(o.stdout == expected);
        let e = failed(&soci_env(
            &["ztoc", "get-file", "--image", &image, zd, "no/such/file"],
            &[],
        ));
        assert!(e.contains("no/such/file does not exist"), "{e}");
    }

    // An empty store lists nothing (just the header).
    let empty = tmp.path().join("empty-root");
    let list = ok(&soci_env(
        &["--root", empty.to_str().unwrap(), "ztoc", "list"],
        &[],
    ));
    assert_eq!(list.lines().count(), 1, "{list}");

    // The conversion recorded its zTOCs locally.
    let list = ok(&soci_env(&["--root", root_s, "ztoc", "list"], &[]));
    let mut lines = list.lines();
    assert!(lines.next().unwrap().starts_with("DIGEST "), "{list}");
    for z in &ztocs {
        let line = list
            .lines()
            .find(|l| l.starts_with(z["digest"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{list}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], z["size"].to_string());
        assert_eq!(cols[2], annotations(z)[LAYER_DIGEST]);
    }
    let q = ok(&soci_env(
        &[
            "--root",
            root_s,
            "ztoc",
            "list",
            "-q",
            "--image-ref",
            &image,
        ],
        &[],
    ));
    let mut got: Vec<&str> = q.lines().collect();
    got.sort();
    let mut want: Vec<&str> = ztocs
        .iter()
        .map(|z| z["digest"].as_str().unwrap())
        .collect();
    want.sort();
    assert_eq!(got, want);

    // ztoc info, and get-file from the local store (which has no layers).
    let zd = ztocs[0]["digest"].as_str().unwrap();
    let info = json(ok(&soci_env(&["--root", root_s, "ztoc", "info", zd], &[])).as_bytes());
    let layer = annotations(&ztocs[0])[LAYER_DIGEST].clone();
    assert_eq!(info["version"], "0.9");
    assert_eq!(info["build_tool"], "AWS SOCI CLI v0.2");
    assert_eq!(info["size"], ztocs[0]["size"]);
    assert_eq!(info["span_size"], 65536);
    let n_files = info["files"].as_array().unwrap().len();
    assert_eq!(info["num_files"], n_files);
    assert!(info["num_spans"].as_u64().unwrap() > 1);
    for f in info["files"].as_array().unwrap() {
        if let Some(want) = files[&layer].get(f["filename"].as_str().unwrap())
            && f["type"] == "reg"
        {
            assert_eq!(f["size"], want.len());
        }
    }
    let e = failed(&soci_env(
        &["--root", root_s, "ztoc", "get-file", zd, "usr/lib/hard"],
        &[],
    ));
    assert!(e.contains("--image"), "{e}");
}

#[test]
fn cross_registry_convert_uploads_layers_once() {
    let src_reg = StoredRegistry::start_temp_with_auth(None);
    let dst_reg = StoredRegistry::start_temp_with_auth(None);
    let tmp = tempfile::tempdir().unwrap();
    let (lb, files) = build_image(&tmp.path().join("src"));
    push_layout(&lb.dir, &format!("docker://{}/app:v1", src_reg.addr));
    let root = tmp.path().join("root");
    let o = soci_env(
        &[
            "--root",
            root.to_str().unwrap(),
            "convert",
            "--min-layer-size",
            "20000",
            &format!("docker://{}/app:v1", src_reg.addr),
            &format!("docker://{}/team/app:soci", dst_reg.addr),
        ],
        &[],
    );
    ok(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    // 3 layers + config + 2 zTOCs + `{}`.
    assert!(stderr.contains("pushed 7 blob(s)"), "{stderr}");
    assert!(stderr.contains("0 already present, 0 mounted"), "{stderr}");
    // Each layer left the source registry once: the indexed ones were
    // uploaded while the indexer read them.
    for layer in files.keys() {
        let d: Digest = layer.parse().unwrap();
        assert_eq!(src_reg.blob_gets("app", &d), 1, "layer {layer}");
    }
    check_converted(&dst_reg.addr, "team/app:soci");
    // The pushed image is complete: skopeo can copy all of it.
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{}/team/app:soci", dst_reg.addr),
        &format!("oci:{}", tmp.path().join("back").display()),
    ]);
    // Converting again uploads nothing: the destination has every blob.
    let o = soci_env(
        &[
            "--root",
            root.to_str().unwrap(),
            "convert",
            "--min-layer-size",
            "20000",
            &format!("docker://{}/app:v1", src_reg.addr),
            &format!("docker://{}/team/app:soci2", dst_reg.addr),
        ],
        &[],
    );
    ok(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("pushed 0 blob(s)"), "{stderr}");
    assert!(stderr.contains("7 already present"), "{stderr}");
}

#[test]
fn oci_archive_to_registry_round_trips_through_skopeo() {
    let reg = StoredRegistry::start_temp_with_auth(None);
    let tmp = tempfile::tempdir().unwrap();
    let (lb, _) = build_image(&tmp.path().join("src"));
    let tar = tmp.path().join("image.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}", lb.dir.display()),
        &format!("oci-archive:{}", tar.display()),
    ]);
    let dst = format!("docker://{}/fromtar:soci", reg.addr);
    let root = tmp.path().join("root");
    let o = soci_env(
        &[
            "--root",
            root.to_str().unwrap(),
            "convert",
            "-q",
            "--min-layer-size",
            "20000",
            &format!("oci-archive:{}", tar.display()),
            &dst,
        ],
        &[],
    );
    let digest = ok(&o).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let pushed = skopeo(&["inspect", "--raw", "--tls-verify=false", &dst]).stdout;
    assert_eq!(Digest::of(&pushed).to_string(), digest);
    check_converted(&reg.addr, "fromtar:soci");

    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &dst,
        &format!("docker://{}/roundtrip:soci", reg.addr),
    ]);
    // skopeo 1.9 drops `artifactType` from the entries; all else survives.
    let strip = |v: serde_json::Value| {
        let mut v = v;
        for m in v["manifests"].as_array_mut().unwrap() {
            m.as_object_mut().unwrap().remove("artifactType");
        }
        v
    };
    assert_eq!(
        strip(raw(&format!("docker://{}/roundtrip:soci", reg.addr))),
        strip(json(&pushed))
    );
    check_converted(&reg.addr, "roundtrip:soci");

    // And to a tagged OCI layout directory.
    let out = tmp.path().join("outdir");
    ok(&soci_env(
        &[
            "--root",
            root.to_str().unwrap(),
            "convert",
            "--min-layer-size",
            "20000",
            &dst,
            &format!("oci:{}:v2", out.display()),
        ],
        &[],
    ));
    let index = json(&std::fs::read(out.join("index.json")).unwrap());
    assert_eq!(
        annotations(&index["manifests"][0])["org.opencontainers.image.ref.name"],
        "v2"
    );
    // The tag selects the image in the layout.
    let e = failed(&soci_env(
        &[
            "--root",
            root.to_str().unwrap(),
            "convert",
            &format!("oci:{}:nope", out.display()),
            &format!("oci-archive:{}", tmp.path().join("x.tar").display()),
        ],
        &[],
    ));
    assert!(e.contains("no image named \"nope\""), "{e}");
}

#[test]
fn docker_config_credentials_and_clear_auth_errors() {
    let reg = StoredRegistry::start_temp_with_auth(Some(("alice", "s3cret")));
    let tmp = tempfile::tempdir().unwrap();
    let (lb, _) = build_image(&tmp.path().join("src"));
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:s3cret",
        &format!("oci:{}", lb.dir.display()),
        &format!("docker://{}/app:v1", reg.addr),
    ]);
    let root = tmp.path().join("root");
    let good = tmp.path().join("good");
    docker_config(&good, &reg.addr, "alice", "s3cret");
    let src = format!("docker://{}/app:v1", reg.addr);
    let args = |tag: &str| {
        vec![
            "--root".to_string(),
            root.to_str().unwrap().to_string(),
            "convert".into(),
            "--min-layer-size".into(),
            "20000".into(),
            src.clone(),
            format!("docker://{}/app:{tag}", reg.addr),
        ]
    };
    let v = args("soci");
    let v: Vec<&str> = v.iter().map(String::as_str).collect();
    ok(&soci_env(&v, &[("DOCKER_CONFIG", &good)]));
    assert!(reg.has_tag_as("app", "soci", "alice", "s3cret"));

    let bad = tmp.path().join("bad");
    docker_config(&bad, &reg.addr, "alice", "wrong");
    let v = args("bad");
    let v: Vec<&str> = v.iter().map(String::as_str).collect();
    let e = failed(&soci_env(&v, &[("DOCKER_CONFIG", &bad)]));
    assert!(
        e.contains(&format!("authentication to {} failed", reg.addr)),
        "{e}"
    );
    assert!(e.contains(&format!("docker login {}", reg.addr)), "{e}");
    assert!(!reg.has_tag_as("app", "bad", "alice", "s3cret"));

    // No credentials at all.
    let e = failed(&soci_env(&v, &[]));
    assert!(e.contains(&format!("docker login {}", reg.addr)), "{e}");

    // --user beats the docker config.
    let mut v = args("user");
    v.splice(3..3, ["--user".to_string(), "alice:s3cret".to_string()]);
    let v: Vec<&str> = v.iter().map(String::as_str).collect();
    ok(&soci_env(&v, &[("DOCKER_CONFIG", &bad)]));
    assert!(reg.has_tag_as("app", "user", "alice", "s3cret"));
}

#[test]
fn bad_input_fails_clearly_and_creates_no_tag() {
    let reg = StoredRegistry::start_temp_with_auth(None);
    let tmp = tempfile::tempdir().unwrap();
    let (lb, files) = build_image(&tmp.path().join("src"));
    push_layout(&lb.dir, &format!("docker://{}/app:v1", reg.addr));
    let root = tmp.path().join("root");
    let r = root.to_str().unwrap();
    let src = format!("docker://{}/app:v1", reg.addr);

    let e = failed(&soci_env(
        &[
            "--root",
            r,
            "convert",
            "docker-archive:/tmp/x.tar",
            &format!("docker://{}/app:x", reg.addr),
        ],
        &[],
    ));
    assert!(e.contains("docker-archive"), "{e}");

    let e = failed(&soci_env(
        &[
            "--root",
            r,
            "convert",
            &src,
            &format!("docker://{}/app", reg.addr),
        ],
        &[],
    ));
    assert!(e.contains("tag"), "{e}");
    let e = failed(&soci_env(
        &[
            "--root",
            r,
            "convert",
            &src,
            &format!("docker://{}/app@sha256:{}", reg.addr, "a".repeat(64)),
        ],
        &[],
    ));
    assert!(e.contains("tag"), "{e}");

    // No manifest for the asked platform: said plainly, with what there is.
    let e = failed(&soci_env(
        &[
            "--root",
            r,
            "convert",
            "--platform",
            "linux/arm64",
            &src,
            &format!("docker://{}/arm:soci", reg.addr),
        ],
        &[],
    ));
    assert!(
        e.contains("linux/arm64") && e.contains("linux/amd64") && e.contains("--platform"),
        "{e}"
    );
    assert!(!reg.has_tag("arm", "soci"));

    // Nothing listens on a port we just closed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = failed(&soci_env(
        &[
            "--root",
            r,
            "convert",
            &format!("docker://127.0.0.1:{closed}/app:v1"),
            &format!("docker://{}/app:never", reg.addr),
        ],
        &[],
    ));
    assert!(
        e.contains(&format!("cannot reach registry 127.0.0.1:{closed}")),
        "{e}"
    );
    assert!(!reg.has_tag("app", "never"));

    // A corrupt layer in the registry: its bytes no longer match its digest.
    let big = files
        .iter()
        .max_by_key(|(_, f)| f.values().map(Vec::len).sum::<usize>())
        .unwrap()
        .0;
    let d: Digest = big.parse().unwrap();
    let layout_blob = lb.dir.join("blobs/sha256").join(d.hex());
    flip_byte(&reg.blob_file(&d));
    for dst in ["corrupt", "elsewhere"] {
        let e = failed(&soci_env(
            &[
                "--root",
                r,
                "convert",
                "--min-layer-size",
                "20000",
                &src,
                &format!("docker://{}/{dst}:soci", reg.addr),
            ],
            &[],
        ));
        assert!(
            e.contains(&format!("blob {big}")) && e.contains("is corrupt"),
            "{e}"
        );
        assert!(!reg.has_tag(dst, "soci"));
    }

    // A tampered OCI layout.
    flip_byte(&layout_blob);
    let e = failed(&soci_env(
        &[
            "--root",
            r,
            "convert",
            "--min-layer-size",
            "20000",
            &format!("oci:{}", lb.dir.display()),
            &format!("docker://{}/fromlayout:soci", reg.addr),
        ],
        &[],
    ));
    assert!(
        e.contains(&format!("blob {big}")) && e.contains("is corrupt"),
        "{e}"
    );
    assert!(!reg.has_tag("fromlayout", "soci"));

    // Every layer below --min-layer-size: said plainly, non-zero exit.
    let e = failed(&soci_env(
        &[
            "--root",
            r,
            "convert",
            "--min-layer-size",
            "100000000",
            &format!("docker://{}/app:v1", reg.addr),
            &format!("docker://{}/small:soci", reg.addr),
        ],
        &[],
    ));
    assert!(
        e.contains("3 layer(s) smaller than --min-layer-size 100000000"),
        "{e}"
    );
    for layer in files.keys() {
        assert!(e.contains(&layer[..19]), "{e}");
    }
    assert!(!reg.has_tag("small", "soci"));
}

#[test]
fn containerd_image_converts_in_place_with_gc_labels() {
    use common::containerd::{Containerd, require_containerd_setup, skipped};
    if skipped("containerd_image_converts_in_place_with_gc_labels") {
        return;
    }
    require_containerd_setup();
    let reg = StoredRegistry::start_temp_with_auth(None);
    let tmp = tempfile::tempdir().unwrap();
    let (lb, files) = build_image(&tmp.path().join("src"));
    push_layout(&lb.dir, &format!("docker://{}/app:v1", reg.addr));
    let ctrd = Containerd::start(
        &tmp.path().join("ctrd"),
        &tmp.path().join("no-snapshotter.sock"),
        "soci-convert",
    );
    let src = format!("{}/app:v1", reg.addr);
    let dst = format!("{}/app:soci", reg.addr);
    // The synthetic layers have made-up diff ids: fetch, do not unpack.
    ctrd.ctr_stdout(&["content", "fetch", "--plain-http", &src]);
    let root = tmp.path().join("root");
    let sock = ctrd.socket.to_str().unwrap().to_string();
    let base = [
        "-a",
        sock.as_str(),
        "-n",
        "soci-convert",
        "--root",
        root.to_str().unwrap(),
        "convert",
        "-q",
        "--min-layer-size",
        "20000",
    ];
    let run = |extra: &[&str]| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        soci_env(&v, &[])
    };
    let digest = ok(&run(&[&src, &dst])).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let images = ctrd.ctr_stdout(&["images", "ls"]);
    let line = images
        .lines()
        .find(|l| l.starts_with(&dst))
        .unwrap_or_else(|| panic!("{images}"));
    assert!(line.contains(&digest), "{line}");

    // Garbage collection keeps every new blob: the image holds the index,
    // which holds the manifests and SOCI indexes, which hold the zTOCs.
    ctrd.collect_garbage();
    let index = json(ctrd.ctr_stdout(&["content", "get", &digest]).as_bytes());
    let soci_entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| annotations(m).contains_key(MANIFEST_DIGEST))
        .expect("a SOCI index entry")
        .clone();
    let soci_index = json(
        ctrd.ctr_stdout(&["content", "get", soci_entry["digest"].as_str().unwrap()])
            .as_bytes(),
    );
    assert_eq!(soci_index["config"]["mediaType"], V2);
    let ztocs = soci_index["layers"].as_array().unwrap();
    assert_eq!(ztocs.len(), 2);
    for z in ztocs {
        let out = ctrd.ctr_raw(&["content", "get", z["digest"].as_str().unwrap()]);
        assert!(out.status.success(), "zTOC {} was collected", z["digest"]);
        assert_eq!(out.stdout.len() as u64, z["size"].as_u64().unwrap());
    }
    let image_manifest = json(
        ctrd.ctr_stdout(&["content", "get", &annotations(&soci_entry)[MANIFEST_DIGEST]])
            .as_bytes(),
    );
    assert_eq!(
        annotations(&image_manifest)[INDEX_DIGEST],
        soci_entry["digest"].as_str().unwrap()
    );

    // The zTOCs of the image in containerd, and files read through them from
    // the layers in containerd's content store.
    let ztoc_cmd = |extra: &[&str]| {
        let mut v: Vec<&str> = vec![
            "-a",
            sock.as_str(),
            "-n",
            "soci-convert",
            "--root",
            root.to_str().unwrap(),
            "ztoc",
        ];
        v.extend_from_slice(extra);
        soci_env(&v, &[])
    };
    let q = ok(&ztoc_cmd(&["list", "-q", "--image-ref", &dst]));
    assert_eq!(q.lines().count(), 2, "{q}");
    let out = tmp.path().join("file.bin");
    for z in ztocs {
        let zd = z["digest"].as_str().unwrap();
        assert!(q.contains(zd), "{q}");
        let layer = annotations(z)[LAYER_DIGEST].clone();
        for (name, want) in files[&layer].iter().take(5) {
            ok(&ztoc_cmd(&[
                "get-file",
                "-o",
                out.to_str().unwrap(),
                zd,
                name,
            ]));
            assert!(std::fs::read(&out).unwrap() == *want, "{name}");
        }
    }

    // Converting the converted image again changes nothing.
    assert_eq!(ok(&run(&[&dst, &dst])).trim(), digest);

    let e = failed(&run(&[&format!("{}/missing:v1", reg.addr), &dst]));
    assert!(e.contains("pull it first"), "{e}");
    let e = failed(&run(&[
        &src,
        &format!("{}/app@sha256:{}", reg.addr, "b".repeat(64)),
    ]));
    assert!(e.contains("tag"), "{e}");
    let e = failed(&run(&[&src, &format!("docker://{}/app:mixed", reg.addr)]));
    assert!(e.contains("containerd"), "{e}");
}

/// A source registry that accepts connections and never answers: `--timeout`
/// ends the convert with a clear error and no output.
#[test]
fn convert_gives_up_at_the_timeout_when_the_registry_does_not_answer() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("out.tar");
    let started = std::time::Instant::now();
    let e = failed(&soci_env(
        &[
            "--timeout",
            "2s",
            "--root",
            tmp.path().join("root").to_str().unwrap(),
            "convert",
            &format!("docker://{addr}/app:v1"),
            &format!("oci-archive:{}:v1", dst.display()),
        ],
        &[],
    ));
    assert!(e.contains("did not finish within --timeout 2s"), "{e}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the timeout did not stop the convert"
    );
    assert!(
        !dst.exists(),
        "a partial output was left at {}",
        dst.display()
    );
    drop(silent);
}
