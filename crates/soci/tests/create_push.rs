//! `soci create` on an image in a real `docker-registry` and `soci push` back
//! to it. docker-registry 2.8 has no referrers API, so the index must be found
//! through the `sha256-<hex>` tag-schema fallback.

mod common;

use std::path::Path;

use common::*;

fn run(root: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--root", root.to_str().unwrap(), "--content-store", "soci"];
    all.extend_from_slice(args);
    soci(&all)
}

fn ok(root: &Path, args: &[&str]) -> String {
    let o = run(root, args);
    assert!(
        o.status.success(),
        "soci {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Push a two-platform image (each a big gzip layer and a small one) to the
/// registry as `app:v1`; returns the amd64 manifest digest and its big layer.
fn publish(reg: &Registry, dir: &Path) -> (String, String) {
    let lb = LayoutBuilder::new(dir);
    let big = gzip(&tar_of(&layer_items(11, 30, 300_000)), 6);
    let small = gzip(&tar_of(&[Item::File("etc/motd".into(), data(1, 100))]), 6);
    let big_digest = soci_format::Digest::of(&big).to_string();
    let mut amd = lb.image(
        "amd64",
        &[
            (OCI_LAYER_GZIP, big.clone()),
            (OCI_LAYER_GZIP, small.clone()),
        ],
    );
    amd["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    let big_arm = gzip(&tar_of(&layer_items(12, 30, 300_000)), 6);
    let mut arm = lb.image(
        "arm64",
        &[(OCI_LAYER_GZIP, big_arm), (OCI_LAYER_GZIP, small)],
    );
    arm["platform"] = serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
    let amd_digest = amd["digest"].as_str().unwrap().to_string();
    let index = lb.desc(
        OCI_INDEX,
        &serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [amd, arm],
        }))
        .unwrap(),
    );
    let mut top = index.clone();
    top["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "v1"});
    lb.finish(vec![top]);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", dir.display()),
        &format!("docker://{}/app:v1", reg.addr),
    ]);
    (amd_digest, big_digest)
}

fn referrers_tag_index(reg: &Registry, manifest: &str) -> serde_json::Value {
    let tag = manifest.replace(':', "-");
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/app:{tag}", reg.addr),
    ])
    .stdout;
    json(&raw)
}

#[test]
fn create_from_registry_then_push_uses_the_tag_fallback() {
    let reg = Registry::start_temp();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let (manifest, big) = publish(&reg, &tmp.path().join("layout"));
    let image = format!("{}/app:v1", reg.addr);

    let out = ok(
        &root,
        &[
            "create",
            "--min-layer-size",
            "10000",
            "--platform",
            "linux/amd64",
            &format!("docker://{image}"),
        ],
    );
    assert!(
        out.contains(&format!("layer {big} -> ztoc sha256:")),
        "{out}"
    );
    assert!(out.contains("ztoc skipped - layer sha256:"), "{out}");
    let index = ok(&root, &["index", "list", "-q"]).trim().to_string();
    assert!(
        index.starts_with("sha256:") && !index.contains('\n'),
        "{index}"
    );
    let info = json(ok(&root, &["index", "info", &index]).as_bytes());
    assert_eq!(info["subject"]["digest"], manifest.as_str());
    let ztoc = info["layers"][0]["digest"].as_str().unwrap().to_string();

    // Nothing of ours in the registry yet: push uploads config, zTOC and index.
    let out = ok(&root, &["push", "--platform", "linux/amd64", &image]);
    assert!(
        out.starts_with("checking if a soci index already exists in remote repository...\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("pushing soci index with digest: {index}\n")),
        "{out}"
    );
    for d in [
        &ztoc,
        &index,
        &"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".to_string(),
    ] {
        assert!(
            out.contains(&format!("pushing artifact with digest: {d}\n")),
            "{d}: {out}"
        );
        assert!(
            out.contains(&format!("successfully pushed artifact with digest: {d}\n")),
            "{d}: {out}"
        );
    }
    assert!(!out.contains("[WARN]"), "{out}");

    // The referrers tag lists the index with the v1 artifact type.
    let tagged = referrers_tag_index(&reg, &manifest);
    let entries = tagged["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{tagged}");
    assert_eq!(entries[0]["digest"], index.as_str());
    assert_eq!(
        entries[0]["artifactType"],
        "application/vnd.amazon.soci.index.v1+json"
    );
    // The pushed index is byte-identical to the local one.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/app@{index}", reg.addr),
    ])
    .stdout;
    assert_eq!(soci_format::Digest::of(&raw).to_string(), index);
    assert_eq!(json(&raw)["subject"]["digest"], manifest.as_str());

    // --existing-index skip: nothing pushed.
    let out = ok(
        &root,
        &[
            "push",
            "-p",
            "linux/amd64",
            "--existing-index",
            "skip",
            &format!("docker://{image}"),
        ],
    );
    assert!(
        out.contains(&format!(
            "soci index found in remote repository with digest: {index}: skipping pushing artifacts for image manifest: {manifest}\n"
        )),
        "{out}"
    );
    assert!(!out.contains("pushing soci index"), "{out}");

    // warn (the default): warns, pushes, and skips blobs the registry has.
    let out = ok(&root, &["push", "-p", "linux/amd64", &image]);
    assert!(
        out.contains(&format!(
            "[WARN] soci index found in remote repository with digest: {index}: pushing index anyway\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("skipped artifact with digest: {ztoc}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("skipped artifact with digest: {index}\n")),
        "{out}"
    );
    assert!(!out.contains("successfully pushed"), "{out}");
    assert_eq!(
        referrers_tag_index(&reg, &manifest)["manifests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // --quiet prints the index digest only.
    let out = ok(
        &root,
        &[
            "push",
            "-q",
            "-p",
            "linux/amd64",
            "--existing-index",
            "allow",
            &image,
        ],
    );
    assert_eq!(out, format!("{index}\n"));

    // No index for arm64 here: a clear error.
    let o = run(&root, &["push", "-p", "linux/arm64/v8", &image]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "could not find any soci index manifest v1 to push for platform linux/arm64/v8"
        ),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn push_and_create_reject_bad_references() {
    let reg = Registry::start_temp();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let o = run(&root, &["push", &format!("oci:{}", tmp.path().display())]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs the image in a registry"));
    let o = run(
        &root,
        &["create", &format!("docker://{}/nothing:here", reg.addr)],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nothing"), "{err}");
    let o = run(&root, &["push", "--existing-index", "sometimes", "x/y:z"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("sometimes"));
}

#[test]
fn push_gives_up_at_the_timeout_when_the_registry_does_not_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    // Connections are accepted by the kernel but never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let o = run(
        &root,
        &["--timeout", "2s", "push", &format!("{addr}/app:v1")],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("did not finish within --timeout 2s"), "{err}");
    drop(silent);
}
