//! `soci convert --standalone` end to end: generated multi-layer images in OCI
//! layouts, converted by the real binary, checked against spec sections 1-3.

mod common;

use std::path::Path;

use common::*;
use soci_format::Digest;
use soci_format::json::{self, Index, Manifest, SociIndex};
use soci_format::zinfo::Zinfo;
use soci_format::ztoc::{Ztoc, entry_type};

/// Layer blobs with the items they were made from.
type Layers = Vec<(Vec<u8>, Vec<Item>)>;

const V2: &str = "application/vnd.amazon.soci.index.v2+json";

/// Extract a file of a layer through the spans that cover it.
fn extract(z: &Ztoc, layer: &[u8], offset: u64, size: u64) -> Vec<u8> {
    let zinfo = Zinfo::from_checkpoints(
        z.compression_info.algorithm,
        &z.compression_info.checkpoints,
    )
    .unwrap();
    if size == 0 {
        return Vec::new();
    }
    let first = zinfo.span_of(offset);
    let last = zinfo.span_of(offset + size - 1);
    let start = zinfo.start_compressed_offset(first) as usize;
    let end = zinfo.end_compressed_offset(last, z.compressed_archive_size) as usize;
    let mut out = vec![0u8; size as usize];
    let n = zinfo
        .extract(&layer[start..end], first, offset, &mut out)
        .unwrap();
    assert_eq!(n as u64, size);
    out
}

struct Converted {
    dir: std::path::PathBuf,
    index: Index,
    image_manifest_desc: json::Descriptor,
    soci_descs: Vec<json::Descriptor>,
}

fn load_output(dir: &Path) -> Converted {
    let top: Index = Index::from_json(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let top = top.manifests.unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].media_type, OCI_INDEX);
    let raw = LayoutBuilder::read_blob(dir, &top[0].digest);
    assert_eq!(Digest::of(&raw).to_string(), top[0].digest);
    let index = Index::from_json(&raw).unwrap();
    // The image index is canonical Go JSON.
    assert_eq!(json::to_go_json(&index), raw);
    let manifests = index.manifests.clone().unwrap();
    let soci_descs: Vec<_> = manifests
        .iter()
        .filter(|d| d.artifact_type == V2)
        .cloned()
        .collect();
    let image_manifest_desc = manifests
        .iter()
        .find(|d| d.artifact_type != V2)
        .unwrap()
        .clone();
    Converted {
        dir: dir.to_path_buf(),
        index,
        image_manifest_desc,
        soci_descs,
    }
}

/// Check one SOCI index against the image manifest it belongs to, and every file
/// of every indexed layer against the original tar.
fn check_soci_index(
    c: &Converted,
    soci: &json::Descriptor,
    layers: &[(Vec<u8>, Vec<Item>)],
    min_layer_size: usize,
) {
    let raw = LayoutBuilder::read_blob(&c.dir, &soci.digest);
    let idx = SociIndex::from_manifest_bytes(&raw).unwrap();
    assert_eq!(idx.marshal(), raw, "SOCI index bytes are canonical");
    assert!(idx.subject.is_none());
    assert_eq!(
        idx.annotations
            .get("com.amazon.soci.build-tool-identifier")
            .map(String::as_str),
        Some("AWS SOCI CLI v0.2")
    );
    // The empty config blob is present.
    assert_eq!(
        LayoutBuilder::read_blob(&c.dir, &Digest::of(b"{}").to_string()),
        b"{}"
    );

    let manifest_digest = soci
        .annotations
        .get("com.amazon.soci.image-manifest-digest")
        .unwrap();
    let mraw = LayoutBuilder::read_blob(&c.dir, manifest_digest);
    let manifest = Manifest::from_json(&mraw).unwrap();
    assert_eq!(json::to_go_json(&manifest), mraw);
    assert_eq!(
        manifest.annotations.get("com.amazon.soci.index-digest"),
        Some(&soci.digest)
    );
    assert_eq!(
        manifest
            .annotations
            .get("org.example.built-by")
            .map(String::as_str),
        Some("test")
    );
    assert_eq!(manifest.config.media_type, OCI_CONFIG);

    let mlayers = manifest.layers.unwrap();
    let expected: Vec<_> = mlayers
        .iter()
        .filter(|l| l.size as usize >= min_layer_size)
        .collect();
    assert_eq!(idx.blobs.len(), expected.len());
    for (ztoc_desc, layer_desc) in idx.blobs.iter().zip(expected) {
        assert_eq!(ztoc_desc.media_type, "application/octet-stream");
        assert_eq!(
            ztoc_desc.annotations["com.amazon.soci.image-layer-digest"],
            layer_desc.digest
        );
        assert_eq!(
            ztoc_desc.annotations["com.amazon.soci.image-layer-mediaType"],
            layer_desc.media_type
        );
        let zraw = LayoutBuilder::read_blob(&c.dir, &ztoc_desc.digest);
        assert_eq!(zraw.len() as i64, ztoc_desc.size);
        let z = Ztoc::from_bytes(&zraw).unwrap();
        assert_eq!(z.to_bytes(), zraw, "zTOC re-encodes to the same bytes");
        assert_eq!(z.version, "0.9");
        assert_eq!(z.build_tool_identifier, "AWS SOCI CLI v0.2");
        let span: u64 = ztoc_desc.annotations["com.amazon.soci.span-size"]
            .parse()
            .unwrap();
        let layer_bytes = LayoutBuilder::read_blob(&c.dir, &layer_desc.digest);
        assert_eq!(z.compressed_archive_size, layer_bytes.len() as u64);
        let zinfo = Zinfo::from_checkpoints(
            z.compression_info.algorithm,
            &z.compression_info.checkpoints,
        )
        .unwrap();
        assert_eq!(zinfo.span_size(), span);
        assert_eq!(
            z.compression_info.span_digests.len() as u32,
            z.compression_info.max_span_id + 1
        );
        let (_, items) = layers
            .iter()
            .find(|(b, _)| Digest::of(b).to_string() == layer_desc.digest)
            .expect("layer is one we made");
        let mut seen = 0;
        for it in items {
            if let Item::File(name, content) = it {
                let e = z
                    .toc
                    .iter()
                    .find(|e| &e.name == name)
                    .unwrap_or_else(|| panic!("{name} in toc"));
                assert_eq!(e.entry_type, entry_type::REG);
                assert_eq!(e.uncompressed_size, content.len() as u64);
                assert_eq!(
                    &extract(&z, &layer_bytes, e.uncompressed_offset, e.uncompressed_size),
                    content,
                    "{name}"
                );
                seen += 1;
            }
        }
        assert!(seen > 0);
        assert!(
            z.toc
                .iter()
                .any(|e| e.entry_type == entry_type::SYMLINK && e.linkname.starts_with("file-"))
        );
        assert!(z.toc.iter().any(|e| e.entry_type == entry_type::HARDLINK));
    }
}

fn three_layer_image(lb: &LayoutBuilder, arch: &str, seed: u64) -> (serde_json::Value, Layers) {
    let l1 = layer_items(seed, 40, 300_000);
    let l2 = layer_items(seed + 1, 5, 5_000_000);
    let l3 = vec![Item::File("etc/config".into(), b"small".to_vec())];
    let b1 = gzip(&tar_of(&l1), 6);
    let b2 = gzip(&tar_of(&l2), 1);
    let b3 = gzip(&tar_of(&l3), 9);
    let m = lb.image(
        arch,
        &[
            (OCI_LAYER_GZIP, b1.clone()),
            (OCI_LAYER_GZIP, b2.clone()),
            (OCI_LAYER_GZIP, b3.clone()),
        ],
    );
    (m, vec![(b1, l1), (b2, l2), (b3, l3)])
}

#[test]
fn converts_single_platform_layout_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = LayoutBuilder::new(&tmp.path().join("src"));
    let (m, layers) = three_layer_image(&lb, "amd64", 1);
    lb.finish(vec![m]);
    let min = 4096usize;
    let out = tmp.path().join("out");
    let o = soci(&[
        "convert",
        "--standalone",
        "--format",
        "oci-dir",
        "--span-size",
        "65536",
        "--min-layer-size",
        "4096",
        lb.dir.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(stdout.matches(" -> ztoc sha256:").count(), 2, "{stdout}");
    assert!(
        stdout.contains("is less than min-layer-size 4096"),
        "{stdout}"
    );

    let c = load_output(&out);
    assert_eq!(c.soci_descs.len(), 1);
    let soci_desc = &c.soci_descs[0];
    let p = soci_desc.platform.clone().unwrap();
    assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "amd64"));
    assert_eq!(soci_desc.media_type, OCI_MANIFEST);
    assert_eq!(c.index.manifests.as_ref().unwrap().len(), 2);
    assert_eq!(
        soci_desc.annotations["com.amazon.soci.image-manifest-digest"],
        c.image_manifest_desc.digest
    );
    // The image manifest descriptor carries the manifest's annotations (and its platform).
    assert_eq!(
        c.image_manifest_desc
            .annotations
            .get("com.amazon.soci.index-digest"),
        Some(&soci_desc.digest)
    );
    check_soci_index(&c, soci_desc, &layers, min);

    // Converting the converted image again replaces the SOCI index instead of adding one.
    let again = tmp.path().join("again");
    let o = soci(&[
        "convert",
        "--standalone",
        "--format",
        "oci-dir",
        "--span-size",
        "65536",
        "--min-layer-size",
        "4096",
        out.to_str().unwrap(),
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c2 = load_output(&again);
    assert_eq!(c2.soci_descs.len(), 1);
    assert_eq!(c2.index.manifests.as_ref().unwrap().len(), 2);
    assert_eq!(
        c2.soci_descs[0].digest, soci_desc.digest,
        "same layers give the same SOCI index"
    );
    assert_eq!(c2.image_manifest_desc.digest, c.image_manifest_desc.digest);
}

#[test]
fn archive_input_and_output_with_default_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = LayoutBuilder::new(&tmp.path().join("src"));
    // One layer above the default 10 MiB minimum, one below.
    let mut big = layer_items(7, 12, 3_000_000);
    big.push(Item::File(
        "usr/share/assets.bin".into(),
        random(7, 11 << 20),
    ));
    let big_blob = gzip(&tar_of(&big), 1);
    assert!(big_blob.len() > 10 << 20, "{}", big_blob.len());
    let small = layer_items(8, 3, 1000);
    let small_blob = gzip(&tar_of(&small), 6);
    let m = lb.image(
        "amd64",
        &[
            (OCI_LAYER_GZIP, big_blob.clone()),
            (OCI_LAYER_GZIP, small_blob.clone()),
        ],
    );
    lb.finish(vec![m]);
    let src_tar = tmp.path().join("src.tar");
    let status = std::process::Command::new("tar")
        .args([
            "-C",
            lb.dir.to_str().unwrap(),
            "-cf",
            src_tar.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let out_tar = tmp.path().join("out.tar");
    let o = soci(&[
        "convert",
        "--standalone",
        src_tar.to_str().unwrap(),
        out_tar.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out_dir = tmp.path().join("out-extracted");
    std::fs::create_dir(&out_dir).unwrap();
    let status = std::process::Command::new("tar")
        .args([
            "-C",
            out_dir.to_str().unwrap(),
            "-xf",
            out_tar.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(out_dir.join("oci-layout").is_file());
    let c = load_output(&out_dir);
    assert_eq!(c.soci_descs.len(), 1);
    check_soci_index(
        &c,
        &c.soci_descs[0],
        &[(big_blob, big), (small_blob, small)],
        10 << 20,
    );
}

#[test]
fn multi_platform_selection() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = LayoutBuilder::new(&tmp.path().join("src"));
    let (m1, l1) = three_layer_image(&lb, "amd64", 11);
    let (mut m2, l2) = three_layer_image(&lb, "arm64", 21);
    let mut m1 = m1;
    m1["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    m2["platform"] = serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
    lb.finish(vec![m1, m2]);
    let layers: Vec<_> = l1.into_iter().chain(l2).collect();

    let all = tmp.path().join("all");
    let o = soci(&[
        "convert",
        "--standalone",
        "--format",
        "oci-dir",
        "--min-layer-size",
        "4096",
        "--all-platforms",
        lb.dir.to_str().unwrap(),
        all.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = load_output(&all);
    assert_eq!(c.soci_descs.len(), 2);
    assert_eq!(c.index.manifests.as_ref().unwrap().len(), 4);
    for s in &c.soci_descs {
        check_soci_index(&c, s, &layers, 4096);
    }

    let one = tmp.path().join("one");
    let o = soci(&[
        "convert",
        "--standalone",
        "--format",
        "oci-dir",
        "--min-layer-size",
        "4096",
        "--platform",
        "linux/arm64",
        lb.dir.to_str().unwrap(),
        one.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = load_output(&one);
    assert_eq!(c.soci_descs.len(), 1);
    assert_eq!(
        c.soci_descs[0].platform.as_ref().unwrap().architecture,
        "arm64"
    );
    check_soci_index(&c, &c.soci_descs[0], &layers, 4096);

    let none = tmp.path().join("none");
    let o = soci(&[
        "convert",
        "--standalone",
        "--platform",
        "linux/s390x",
        lb.dir.to_str().unwrap(),
        none.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("linux/s390x") && err.contains("--platform"),
        "{err}"
    );
    assert!(!none.exists());
}

#[test]
fn explains_why_nothing_was_indexed() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = LayoutBuilder::new(&tmp.path().join("src"));
    let small = gzip(&tar_of(&layer_items(3, 3, 1000)), 6);
    let m = lb.image("amd64", &[(OCI_LAYER_GZIP, small)]);
    lb.finish(vec![m]);
    let out = tmp.path().join("out.tar");
    let o = soci(&[
        "convert",
        "--standalone",
        lb.dir.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("soci: "), "{err}");
    assert!(
        err.contains("no ztocs created") && err.contains("--min-layer-size"),
        "{err}"
    );
    assert!(!out.exists());

    let lb = LayoutBuilder::new(&tmp.path().join("zstd"));
    let m = lb.image(
        "amd64",
        &[(OCI_LAYER_ZSTD, vec![0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0])],
    );
    lb.finish(vec![m]);
    let o = soci(&[
        "convert",
        "--standalone",
        "--min-layer-size",
        "0",
        lb.dir.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(
            "is compressed in an unsupported format. expect: [tar, gzip, unknown] but got \"zstd\""
        ),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("zstd"));
}

#[test]
fn uncompressed_layers_get_tar_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = LayoutBuilder::new(&tmp.path().join("src"));
    let items = layer_items(5, 10, 200_000);
    let tarb = tar_of(&items);
    let m = lb.image("amd64", &[(OCI_LAYER_TAR, tarb.clone())]);
    lb.finish(vec![m]);
    let out = tmp.path().join("out");
    let o = soci(&[
        "convert",
        "--standalone",
        "--format",
        "oci-dir",
        "--min-layer-size",
        "0",
        "--span-size",
        "100000",
        lb.dir.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = load_output(&out);
    check_soci_index(&c, &c.soci_descs[0], &[(tarb, items)], 0);
}

#[test]
fn corrupt_layer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = LayoutBuilder::new(&tmp.path().join("src"));
    let blob = gzip(&tar_of(&layer_items(9, 10, 100_000)), 6);
    let m = lb.image("amd64", &[(OCI_LAYER_GZIP, blob.clone())]);
    lb.finish(vec![m]);
    // Flip one byte of the stored layer: its digest no longer matches.
    let path = lb.dir.join("blobs/sha256").join(Digest::of(&blob).hex());
    let mut bad = blob.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(&path, &bad).unwrap();
    let out = tmp.path().join("out.tar");
    let o = soci(&[
        "convert",
        "--standalone",
        "--min-layer-size",
        "0",
        lb.dir.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&Digest::of(&blob).to_string()), "{err}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn bad_arguments_fail_clearly() {
    let o = soci(&["convert", "--standalone", "--format", "zip", "a", "b"]);
    assert_eq!(o.status.code(), Some(2));
    let o = soci(&["convert", "--standalone", "--no-such-flag", "a", "b"]);
    assert_eq!(o.status.code(), Some(2));
    let o = soci(&[
        "convert",
        "--standalone",
        "/nonexistent/layout",
        "/tmp/x.tar",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/layout"));
}

#[test]
fn prefetch_files_become_prefetch_artifacts_of_the_v2_index() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = LayoutBuilder::new(&tmp.path().join("src"));
    let (m, layers) = three_layer_image(&lb, "amd64", 1);
    lb.finish(vec![m]);
    // One file of the second layer by flag (absolute, as users write it),
    // one of the first through the JSON list, and one that is nowhere.
    let list = tmp.path().join("prefetch.json");
    std::fs::write(&list, br#"["usr/lib/file-1-4.bin", "/not/there"]"#).unwrap();
    let out = tmp.path().join("out");
    let o = soci(&[
        "convert",
        "--standalone",
        "--format",
        "oci-dir",
        "--span-size",
        "65536",
        "--min-layer-size",
        "4096",
        "--prefetch-file",
        "/usr/lib/file-2-1.bin",
        "--prefetch-files-json",
        list.to_str().unwrap(),
        lb.dir.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("2 prefetch artifact(s)"), "{stderr}");
    assert!(
        stderr.contains("prefetch file /not/there not found in any indexed layer of linux/amd64"),
        "{stderr}"
    );

    let c = load_output(&out);
    let raw = LayoutBuilder::read_blob(&c.dir, &c.soci_descs[0].digest);
    let idx = SociIndex::from_manifest_bytes(&raw).unwrap();
    let media: Vec<&str> = idx.blobs.iter().map(|b| b.media_type.as_str()).collect();
    assert_eq!(
        media,
        [
            json::SOCI_LAYER_MEDIA_TYPE,
            json::SOCI_LAYER_MEDIA_TYPE,
            json::SOCI_PREFETCH_MEDIA_TYPE,
            json::SOCI_PREFETCH_MEDIA_TYPE
        ],
        "zTOCs first, then prefetch artifacts in layer order"
    );
    for (i, (path, layer)) in [("usr/lib/file-1-4.bin", 0), ("usr/lib/file-2-1.bin", 1)]
        .into_iter()
        .enumerate()
    {
        let (blob, _) = &layers[layer];
        let layer_digest = Digest::of(blob).to_string();
        let p = &idx.blobs[2 + i];
        assert_eq!(
            p.annotations[json::ANNOTATION_IMAGE_LAYER_DIGEST],
            layer_digest
        );
        // The spans are those covering the file in the layer's zTOC.
        let ztoc_desc = idx
            .blobs
            .iter()
            .find(|b| {
                b.media_type == json::SOCI_LAYER_MEDIA_TYPE
                    && b.annotations[json::ANNOTATION_IMAGE_LAYER_DIGEST] == layer_digest
            })
            .unwrap();
        let z = Ztoc::from_bytes(&LayoutBuilder::read_blob(&c.dir, &ztoc_desc.digest)).unwrap();
        let zinfo = Zinfo::from_checkpoints(
            z.compression_info.algorithm,
            &z.compression_info.checkpoints,
        )
        .unwrap();
        let f = z.toc.iter().find(|f| f.name == path).unwrap();
        let artifact =
            json::PrefetchArtifact::unmarshal(&LayoutBuilder::read_blob(&c.dir, &p.digest))
                .unwrap();
        assert_eq!(artifact.prefetch_spans.len(), 1, "{path}");
        let s = &artifact.prefetch_spans[0];
        assert_eq!(
            s.start_span as u64,
            zinfo.span_of(f.uncompressed_offset) as u64
        );
        assert_eq!(
            s.end_span as u64,
            zinfo.span_of(f.uncompressed_offset + f.uncompressed_size) as u64
        );
    }
}
