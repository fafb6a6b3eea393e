//! `soci create` from OCI layouts into the soci content store, and the commands
//! that read that store: `index list|info|remove`, `prefetch list|info`,
//! `rebuild-db`; bad input fails with a clear message.

mod common;

use std::path::Path;

use common::*;

const TAG: &str = "org.opencontainers.image.ref.name";

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

fn fails(root: &Path, args: &[&str], needle: &str) {
    let o = run(root, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "soci {args:?} should fail");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains(needle),
        "soci {args:?}: {err:?} lacks {needle:?}"
    );
}

/// A tagged two-layer image: a larger gzip layer and a small uncompressed one
/// on top of it. Returns (manifest digest, lower layer, upper layer).
fn image(dir: &Path) -> (String, String, String) {
    let lb = LayoutBuilder::new(dir);
    let lower = gzip(&tar_of(&layer_items(3, 40, 300_000)), 6);
    let upper = tar_of(&[
        Item::Dir("etc/".into()),
        Item::File("etc/app.conf".into(), data(9, 5000)),
    ]);
    let (ld, ud) = (
        soci_format::Digest::of(&lower).to_string(),
        soci_format::Digest::of(&upper).to_string(),
    );
    let mut m = lb.image("amd64", &[(OCI_LAYER_GZIP, lower), (OCI_LAYER_TAR, upper)]);
    m["annotations"] = serde_json::json!({ TAG: "v1" });
    let digest = m["digest"].as_str().unwrap().to_string();
    lb.finish(vec![m]);
    (digest, ld, ud)
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn create_list_info_prefetch_rebuild_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let dir = tmp.path().join("layout");
    let (manifest, lower, upper) = image(&dir);
    let src = format!("oci:{}:v1", dir.display());

    let out = ok(
        &root,
        &[
            "create",
            "--min-layer-size",
            "20000",
            "--prefetch-file",
            "/usr/lib/file-3-5.bin",
            "--prefetch-file",
            "usr/lib/../lib/file-3-7.bin",
            &src,
        ],
    );
    assert!(
        out.contains(&format!("layer {lower} -> ztoc sha256:")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "ztoc skipped - layer {upper} (application/vnd.oci.image.layer.v1.tar) size "
        )) && out.contains("is less than min-layer-size 20000"),
        "{out}"
    );

    // index list: one v1 index for the manifest, upstream's columns.
    let q = ok(&root, &["index", "list", "-q"]);
    let ids = lines(&q);
    assert_eq!(ids.len(), 1, "{q}");
    let index = ids[0].to_string();
    let table = ok(&root, &["index", "ls"]);
    let rows = lines(&table);
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].starts_with("DIGEST"), "{table}");
    for col in [
        "SIZE",
        "IMAGE REF",
        "PLATFORM",
        "MEDIA TYPE",
        "MANIFEST VERSION",
        "CREATED",
    ] {
        assert!(rows[0].contains(col), "{table}");
    }
    let cells: Vec<&str> = rows[1]
        .split("    ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells[0], index);
    assert!(rows[1].contains("linux/amd64"), "{table}");
    assert!(rows[1].contains(&src), "{table}");
    assert!(
        rows[1].contains("application/vnd.oci.image.manifest.v1+json"),
        "{table}"
    );
    assert!(rows[1].contains(" v1 "), "{table}");
    assert!(rows[1].trim_end().ends_with("ago"), "{table}");
    // Header and rows line up as Go's tabwriter aligns them.
    let col = rows[0].find("SIZE").unwrap();
    assert_eq!(&rows[1][col - 4..col], "    ");
    assert!(ok(&root, &["index", "list", "-q", "--platform", "linux/arm64"]).is_empty());
    assert_eq!(
        ok(&root, &["index", "list", "-q", "--ref", &src]),
        format!("{index}\n")
    );

    // index info: the stored bytes, indented by two spaces.
    let info = ok(&root, &["index", "info", &index]);
    assert!(info.starts_with("{\n  \"schemaVersion\": 2,\n"), "{info}");
    let v = json(info.as_bytes());
    assert_eq!(
        v["config"]["mediaType"],
        "application/vnd.amazon.soci.index.v1+json"
    );
    assert_eq!(v["subject"]["digest"], manifest.as_str());
    assert!(v.get("artifactType").is_none());
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "one zTOC, one prefetch artifact: {info}");
    assert_eq!(layers[0]["mediaType"], "application/octet-stream");
    assert_eq!(
        annotations(&layers[0])["com.amazon.soci.image-layer-digest"],
        lower
    );
    assert_eq!(
        layers[1]["mediaType"],
        "application/vnd.amazon.soci.prefetch.v1+json"
    );
    let ztoc = layers[0]["digest"].as_str().unwrap().to_string();
    let prefetch = layers[1]["digest"].as_str().unwrap().to_string();
    // The stored index is canonical: its digest is that of the compact bytes.
    let stored = std::fs::read(
        root.join("content/blobs/sha256")
            .join(index.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();
    assert_eq!(soci_format::Digest::of(&stored).to_string(), index);
    assert!(!stored.contains(&b'\n'));

    // Wrong kinds of digests.
    fails(
        &root,
        &["index", "info", &ztoc],
        "is of ztoc not SOCI index",
    );
    fails(
        &root,
        &["index", "info", &format!("sha256:{}", "0".repeat(64))],
        "no artifact",
    );
    fails(&root, &["index", "info", "not-a-digest"], "is not a digest");
    fails(
        &root,
        &["prefetch", "info", &index],
        "is not a prefetch artifact",
    );

    // prefetch list / info.
    let pl = ok(&root, &["prefetch", "list"]);
    let prow = lines(&pl);
    assert_eq!(prow.len(), 2, "{pl}");
    for col in ["DIGEST", "LAYER DIGEST", "SPANS", "CREATED"] {
        assert!(prow[0].contains(col), "{pl}");
    }
    assert!(
        prow[1].starts_with(&prefetch) && prow[1].contains(&lower),
        "{pl}"
    );
    let pj = json(ok(&root, &["prefetch", "ls", "--json"]).as_bytes());
    let arr = pj.as_array().unwrap();
    assert_eq!(arr.len(), 1);
    assert_eq!(arr[0]["Digest"], prefetch.as_str());
    assert_eq!(arr[0]["LayerDigest"], lower.as_str());
    let spans = arr[0]["TotalSpans"].as_i64().unwrap();
    assert!(spans >= 1, "{pj}");
    assert!(arr[0]["CreatedAt"].as_str().unwrap().ends_with('Z'));
    let pi = ok(&root, &["prefetch", "info", &prefetch]);
    assert!(pi.contains(&format!("Digest:        {prefetch}\n")), "{pi}");
    assert!(pi.contains("Version:       1.0\n"), "{pi}");
    assert!(pi.contains(&format!("Layer Digest:  {lower}\n")), "{pi}");
    assert!(pi.contains("Prefetch Spans:\n  [0] StartSpan: "), "{pi}");
    assert!(
        pi.contains(&format!("Total spans to prefetch: {spans}\n")),
        "{pi}"
    );
    assert!(!pi.contains("Raw JSON:"));
    let pij = ok(&root, &["prefetch", "info", "--json", &prefetch]);
    assert!(
        pij.contains("Raw JSON:\n{\n  \"version\": \"1.0\",\n"),
        "{pij}"
    );

    // A second create reuses the zTOC; --force rebuilds it.
    let again = ok(&root, &["create", "--min-layer-size", "20000", &src]);
    assert!(
        again.contains(&format!("layer {lower} -> ztoc {ztoc} (already exists)")),
        "{again}"
    );
    let paths = tmp.path().join("prefetch.json");
    std::fs::write(
        &paths,
        br#"["/usr/lib/file-3-7.bin", "usr/lib/file-3-5.bin", "/not/there"]"#,
    )
    .unwrap();
    let o = run(
        &root,
        &[
            "create",
            "-f",
            "--min-layer-size",
            "20000",
            "--prefetch-files-json",
            paths.to_str().unwrap(),
            &src,
        ],
    );
    assert!(o.status.success());
    let forced = String::from_utf8_lossy(&o.stdout);
    assert!(
        forced.contains(&format!("layer {lower} -> ztoc {ztoc}\n")),
        "{forced}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("prefetch file /not/there not found"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let both = ok(&root, &["index", "list", "-q"]);
    assert_eq!(lines(&both).len(), 2);
    // The same files (in another order, from JSON) and the same zTOC give
    // byte-identical artifacts: the first index again, next to the one
    // without prefetch artifacts.
    assert!(lines(&both).contains(&index.as_str()), "{both}");
    let other = lines(&both).into_iter().find(|d| *d != index).unwrap();
    let other = json(ok(&root, &["index", "info", other]).as_bytes());
    assert_eq!(other["layers"].as_array().unwrap().len(), 1);
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, b"{\"not\": \"a list\"}").unwrap();
    fails(
        &root,
        &[
            "create",
            "--prefetch-files-json",
            bad.to_str().unwrap(),
            &src,
        ],
        "expected a JSON array of paths",
    );

    // rebuild-db after losing the database finds the indexes again.
    std::fs::remove_file(root.join("artifacts.db")).unwrap();
    assert!(ok(&root, &["index", "list", "-q"]).is_empty());
    ok(&root, &["rebuild-db"]);
    let back = ok(&root, &["index", "list", "-q"]);
    assert!(back.lines().any(|l| l == index), "{back}");
    fails(
        &root,
        &["index", "info", &ztoc],
        "is of ztoc not SOCI index",
    );
    assert!(ok(&root, &["prefetch", "list"]).contains(&prefetch));

    // index rm by digest, then by --ref.
    ok(&root, &["index", "rm", &index]);
    assert!(!ok(&root, &["index", "list", "-q"]).contains(&index));
    fails(&root, &["index", "rm", &index], "no SOCI index");
    fails(&root, &["index", "rm", &ztoc], "not a SOCI index");
    ok(&root, &["index", "remove", "--ref", &src]);
    assert!(ok(&root, &["index", "list", "-q"]).is_empty());
}

#[test]
fn create_explains_why_nothing_was_indexed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let dir = tmp.path().join("layout");
    image(&dir);
    let src = format!("oci:{}:v1", dir.display());
    fails(
        &root,
        &["create", &src],
        "2 layer(s) smaller than --min-layer-size 10485760",
    );
    fails(
        &root,
        &["create", "--platform", "linux/arm64", &src],
        "linux/arm64",
    );
    fails(
        &root,
        &["create", &format!("oci:{}:v2", dir.display())],
        "no image tagged \"v2\"",
    );
    fails(
        &root,
        &["create", "docker-archive:/tmp/x.tar"],
        "docker-archive",
    );
    fails(
        &root,
        &[
            "create",
            &format!("oci:{}", tmp.path().join("missing").display()),
        ],
        "cannot read the OCI layout",
    );
    // Nothing was recorded by the failures.
    assert!(ok(&root, &["index", "list", "-q"]).is_empty());

    // zstd layers cannot be indexed.
    let zdir = tmp.path().join("zstd");
    let lb = LayoutBuilder::new(&zdir);
    let m = lb.image("amd64", &[(OCI_LAYER_ZSTD, random(5, 30_000))]);
    lb.finish(vec![m]);
    let o = run(
        &root,
        &[
            "create",
            "--min-layer-size",
            "0",
            &format!("oci:{}", zdir.display()),
        ],
    );
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("but got \"zstd\""), "{out}");
    assert!(err.contains("zstd"), "{err}");

    // The default content store is containerd's: without containerd the
    // error says where it looked.
    let sock = tmp.path().join("no-containerd.sock");
    let o = soci(&[
        "--root",
        root.to_str().unwrap(),
        "--address",
        sock.to_str().unwrap(),
        "create",
        &src,
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot reach containerd"), "{err}");
    assert!(err.contains("no-containerd.sock"), "{err}");
}
