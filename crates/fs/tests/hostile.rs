//! Hostile SOCI artifacts are refused, with a message naming the layer and the
//! reason, by the checks that run before a layer is mounted
//! (`soci_fs::checks`). Each case starts from a real gzip layer and its real
//! zTOC and breaks one thing.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;
use soci_format::Digest;
use soci_format::json::{self, Descriptor, IndexVersion, Manifest, SociIndex};
use soci_format::ztoc::{BuildOptions, CompressionAlgorithm, Ztoc, build_ztoc, entry_type};
use soci_fs::checks::{self, LayerInput, MAX_INDEX_SIZE, Refused};
use soci_spans::testing::MemRangeReader;
use soci_spans::{MemSpanCache, SpanManagerConfig, SpanSource as _};

struct Layer {
    blob: Vec<u8>,
    digest: Digest,
    ztoc: Ztoc,
    /// (name, content) of the regular files.
    files: Vec<(String, Vec<u8>)>,
}

fn layer() -> Layer {
    let mut files = Vec::new();
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "etc/", std::io::empty())
        .expect("append dir");
    for i in 0..6u32 {
        // Different sizes and incompressible content so that files cross spans.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(i);
        let content: Vec<u8> = (0..(40_000 + i * 7_919))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let name = format!("etc/file{i}");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        tar.append_data(&mut h, &name, content.as_slice())
            .expect("append file");
        files.push((name, content));
    }
    let raw = tar.into_inner().expect("tar");
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&raw).expect("gzip");
    let blob = gz.finish().expect("gzip");
    let ztoc = build_ztoc(
        blob.as_slice(),
        CompressionAlgorithm::Gzip,
        &BuildOptions {
            span_size: 64 << 10,
            ..BuildOptions::default()
        },
    )
    .expect("build zTOC");
    assert!(
        ztoc.compression_info.max_span_id >= 2,
        "the layer should have several spans"
    );
    Layer {
        digest: Digest::of(&blob),
        blob,
        ztoc,
        files,
    }
}

/// Opens `ztoc_bytes` as the zTOC of `layer`, reading from memory.
fn open(
    layer: &Layer,
    ztoc_bytes: &[u8],
    size: Option<u64>,
) -> Result<checks::OpenedLayer, Refused> {
    let reader = MemRangeReader::new();
    reader.add_as(layer.digest.clone(), layer.blob.clone());
    checks::open_layer(
        LayerInput {
            ztoc: ztoc_bytes.to_vec(),
            layer: &layer.digest,
            layer_size: size,
            disable_xattrs: false,
            verify: true,
        },
        Arc::new(reader),
        Arc::new(MemSpanCache::new()),
        SpanManagerConfig::default(),
    )
}

/// Breaks one thing in the layer's zTOC and expects a refusal containing `want`.
fn refused(layer: &Layer, want: &str, edit: impl FnOnce(&mut Ztoc)) -> String {
    let mut z = layer.ztoc.clone();
    edit(&mut z);
    let msg = match open(layer, &z.to_bytes(), Some(layer.blob.len() as u64)) {
        Ok(_) => panic!("a zTOC expected to fail with {want:?} was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(msg.contains(want), "refusal {msg:?} does not say {want:?}");
    assert!(
        msg.contains(&layer.digest.to_string()),
        "refusal {msg:?} does not name the layer"
    );
    msg
}

#[test]
fn an_honest_layer_opens_and_reads_back_every_file() {
    let l = layer();
    let opened = open(&l, &l.ztoc.to_bytes(), Some(l.blob.len() as u64)).expect("open");
    for (name, content) in &l.files {
        let node = opened.tree.resolve(name).expect("file in the tree");
        let range = opened.tree.data_range(node).expect("a regular file");
        assert_eq!(range.size, content.len() as u64);
        let mut buf = vec![0; content.len()];
        let n = opened.spans.read_at(range.offset, &mut buf).expect("read");
        assert_eq!(n, content.len());
        assert!(buf == *content, "{name} read back different bytes");
    }
}

#[test]
fn entries_escaping_the_layer_root_are_refused() {
    let l = layer();
    for bad in ["../evil", "etc/../../evil", "/../evil", "./../evil"] {
        refused(&l, "escapes the layer root", |z| z.toc[1].name = bad.into());
    }
    // A hardlink whose target climbs out of the layer.
    refused(&l, "escapes the layer root", |z| {
        z.toc[2].entry_type = entry_type::HARDLINK.into();
        z.toc[2].linkname = "../../etc/shadow".into();
    });
    // An absolute name means the layer root, as in a tar extraction: it stays inside.
    let mut z = l.ztoc.clone();
    let n = z.toc.len();
    z.toc[n - 1].name = "/etc/absolute".into();
    let opened = open(&l, &z.to_bytes(), None).expect("an absolute name is rooted in the layer");
    assert!(opened.tree.resolve("etc/absolute").is_some());
}

#[test]
fn data_beyond_the_layer_is_refused() {
    let l = layer();
    let n = l.ztoc.toc.len();
    refused(&l, "beyond the", |z| {
        z.toc[n - 1].uncompressed_size = z.uncompressed_archive_size;
    });
    refused(&l, "beyond the", |z| {
        z.toc[n - 1].uncompressed_size = i64::MAX as u64;
    });
    // Sizes a zTOC cannot hold are refused by the decoder.
    refused(&l, "negative uncompressed_size", |z| {
        z.toc[n - 1].uncompressed_size = u64::MAX - 10;
    });
    // The uncompressed size shrunk below the last file's end.
    refused(&l, "beyond the", |z| {
        z.uncompressed_archive_size = z.toc[n - 1].uncompressed_offset + 1;
    });
}

#[test]
fn a_ztoc_for_a_blob_of_another_size_is_refused() {
    let l = layer();
    let size = l.blob.len() as u64;
    refused(&l, "but the layer is", |z| {
        z.compressed_archive_size = size + 1
    });
    refused(&l, "but the layer is", |z| {
        z.compressed_archive_size = size * 1000
    });
    // Without a known descriptor size, a compressed size that the checkpoints
    // contradict is still refused (by the span geometry).
    let mut z = l.ztoc.clone();
    z.compressed_archive_size = 3;
    let e = open(&l, &z.to_bytes(), None).err().expect("refused");
    assert!(e.to_string().contains(&l.digest.to_string()), "{e}");
}

#[test]
fn overlapping_files_are_refused() {
    let l = layer();
    let mut z = l.ztoc.clone();
    z.toc[3].uncompressed_offset = z.toc[2].uncompressed_offset + 1;
    let e = open(&l, &z.to_bytes(), None).err().expect("refused");
    assert!(e.to_string().contains("overlaps"), "{e}");
}

#[test]
fn inconsistent_checkpoints_and_span_digests_are_refused() {
    let l = layer();
    // Checkpoint blob whose length disagrees with its count.
    refused(&l, "checkpoints", |z| {
        z.compression_info
            .checkpoints
            .truncate(z.compression_info.checkpoints.len() - 1);
    });
    refused(&l, "checkpoint", |z| {
        let c = &mut z.compression_info.checkpoints;
        let count = i32::from_le_bytes([c[0], c[1], c[2], c[3]]) + 5;
        c[..4].copy_from_slice(&count.to_le_bytes());
    });
    // A count in the billions over a few bytes is refused without allocating for it.
    refused(&l, "checkpoint", |z| {
        z.compression_info.checkpoints[..4].copy_from_slice(&i32::MAX.to_le_bytes());
    });
    // max_span_id disagreeing with the span digests.
    refused(&l, "max span id", |z| z.compression_info.max_span_id += 1);
    refused(&l, "span digests", |z| {
        z.compression_info.span_digests.pop();
        z.compression_info.max_span_id -= 1;
    });
    refused(&l, "span 1 digest", |z| {
        z.compression_info.span_digests[1] = "sha256:nothex".into();
    });
}

#[test]
fn garbage_and_oversized_ztocs_are_refused() {
    let l = layer();
    let e = open(&l, b"not a flatbuffer at all", None)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("zTOC of layer"), "{e}");
    let mut bytes = l.ztoc.to_bytes();
    bytes.truncate(bytes.len() / 2);
    assert!(open(&l, &bytes, None).is_err());
}

fn image(layers: &[(&Digest, u64)]) -> Manifest {
    Manifest {
        schema_version: 2,
        media_type: json::MEDIA_TYPE_OCI_MANIFEST.into(),
        layers: Some(
            layers
                .iter()
                .map(|(d, size)| Descriptor {
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    digest: d.to_string(),
                    size: *size as i64,
                    ..Descriptor::default()
                })
                .collect(),
        ),
        ..Manifest::default()
    }
}

fn ztoc_descriptor(layer: &Digest, ztoc: &[u8]) -> Descriptor {
    Descriptor {
        media_type: json::SOCI_LAYER_MEDIA_TYPE.into(),
        digest: Digest::of(ztoc).to_string(),
        size: ztoc.len() as i64,
        annotations: BTreeMap::from([(
            json::ANNOTATION_IMAGE_LAYER_DIGEST.to_string(),
            layer.to_string(),
        )]),
        ..Descriptor::default()
    }
}

fn check(index: &SociIndex, image_manifest: &Manifest) -> Result<SociIndex, Refused> {
    let bytes = index.marshal();
    checks::check_index(
        &Digest::of(&bytes),
        &bytes,
        &Digest::of(b"image"),
        image_manifest,
    )
}

#[test]
fn an_index_must_describe_the_image() {
    let l = layer();
    let other = Digest::of(b"another layer");
    let zb = l.ztoc.to_bytes();
    let img = image(&[(&l.digest, l.blob.len() as u64)]);
    let good = SociIndex::new(
        IndexVersion::V2,
        vec![ztoc_descriptor(&l.digest, &zb)],
        None,
        BTreeMap::new(),
    );
    let index = check(&good, &img).expect("an honest index");
    assert_eq!(index.blobs.len(), 1);
    assert_eq!(
        checks::layer_sizes(&img).get(&l.digest.to_string()),
        Some(&(l.blob.len() as u64))
    );

    // A zTOC for a layer the image does not have.
    let stray = SociIndex::new(
        IndexVersion::V2,
        vec![
            ztoc_descriptor(&l.digest, &zb),
            ztoc_descriptor(&other, &zb),
        ],
        None,
        BTreeMap::new(),
    );
    let e = check(&stray, &img).expect_err("refused").to_string();
    assert!(e.contains("not a layer of image manifest"), "{e}");
    assert!(e.contains(&other.to_string()), "{e}");

    // Two different zTOCs for one layer.
    let twice = SociIndex::new(
        IndexVersion::V2,
        vec![
            ztoc_descriptor(&l.digest, &zb),
            ztoc_descriptor(&l.digest, b"other ztoc"),
        ],
        None,
        BTreeMap::new(),
    );
    let e = check(&twice, &img).expect_err("refused").to_string();
    assert!(e.contains("two zTOCs"), "{e}");

    // zTOC sizes that cannot be right.
    for size in [0, -1, (checks::MAX_ZTOC_SIZE + 1) as i64] {
        let mut d = ztoc_descriptor(&l.digest, &zb);
        d.size = size;
        let bad = SociIndex::new(IndexVersion::V2, vec![d], None, BTreeMap::new());
        let e = check(&bad, &img).expect_err("refused").to_string();
        assert!(e.contains("impossible size"), "{e}");
    }
}

#[test]
fn absurd_index_json_is_refused() {
    let l = layer();
    let img = image(&[(&l.digest, l.blob.len() as u64)]);
    let check_bytes = |bytes: &[u8]| {
        checks::check_index(&Digest::of(bytes), bytes, &Digest::of(b"image"), &img)
            .expect_err("refused")
            .to_string()
    };
    // Nested absurdly deep, inside a field the decoder reads and inside one it skips.
    let deep = |n: usize| "[".repeat(n) + &"]".repeat(n);
    for doc in [
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","layers":{}}}"#,
            json::MEDIA_TYPE_OCI_MANIFEST,
            deep(100_000)
        ),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","unknown":{},"layers":[]}}"#,
            json::MEDIA_TYPE_OCI_MANIFEST,
            deep(20_000)
        ),
    ] {
        let e = check_bytes(doc.as_bytes());
        assert!(e.contains("is invalid"), "{e}");
    }
    // Megabytes of annotations: refused on size before parsing.
    let big = SociIndex::new(
        IndexVersion::V2,
        vec![ztoc_descriptor(&l.digest, &l.ztoc.to_bytes())],
        None,
        BTreeMap::from([("x".to_string(), "y".repeat(MAX_INDEX_SIZE as usize))]),
    );
    let e = check_bytes(&big.marshal());
    assert!(e.contains("more than the"), "{e}");
}
