//! Smoke test of the benchmark's generator and bound computation (no network,
//! no containerd): the image is deterministic, the workloads have the sizes
//! they are defined with, and the spans/bound come out of a real zTOC.

use std::collections::BTreeMap;

use soci_bench::analysis::{Analysis, LayerIndex, Profile, full_bound, lazy_bound, workload_spans};
use soci_bench::image::{self, Op, Size, blob_path};
use soci_format::ztoc::{BuildOptions, CompressionAlgorithm, build_ztoc};

#[test]
fn plan_is_deterministic_and_workloads_have_their_defined_sizes() {
    let a = image::plan_files(Size::S, 7);
    let b = image::plan_files(Size::S, 7);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    let c = image::plan_files(Size::S, 8);
    assert_ne!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&c).unwrap()
    );
    let total: u64 = a.iter().map(|f| f.size).sum();
    assert_eq!(total, Size::S.content_bytes());
    assert!(a.len() > 2000, "{} files", a.len());

    let ws = image::plan_workloads(&a, 7);
    let by = |n: &str| ws.iter().find(|w| w.name == n).unwrap();
    let clustered = by("clustered").touched_bytes();
    let scattered = by("scattered").touched_bytes();
    assert!(
        clustered >= total / 20 && clustered < total / 20 + total / 100,
        "{clustered}"
    );
    assert!(
        scattered >= clustered && scattered <= clustered + clustered / 10,
        "{scattered}"
    );
    assert_eq!(by("fullscan").touched_bytes(), total);
    let meta = &by("metadata").ops;
    assert!(meta.iter().any(|o| matches!(o, Op::Missing { .. })));
    assert!(meta.iter().all(|o| !matches!(o, Op::Read { .. })));
    assert!(
        by("headers")
            .ops
            .iter()
            .all(|o| matches!(o, Op::Read { offset: 0, len, .. } if *len <= 4096))
    );
}

#[test]
fn tiny_image_is_byte_identical_and_its_spans_come_from_the_ztoc() {
    let t = tempfile::tempdir().unwrap();
    let reader = t.path().join("reader");
    std::fs::write(&reader, b"#!/bin/sh\n").unwrap();
    let busybox = soci_e2e::tool("busybox");
    let one = image::generate(&t.path().join("a"), Size::Tiny, 3, &busybox, &reader).unwrap();
    let two = image::generate(&t.path().join("b"), Size::Tiny, 3, &busybox, &reader).unwrap();
    assert_eq!(one.manifest_digest, two.manifest_digest);
    assert_eq!(one.layers.len(), 5);
    assert!(
        one.layers[0].size < 10 << 20,
        "base layer stays below --min-layer-size"
    );
    // Compressibility: text ~3x, random ~1x.
    let (distro, assets) = (&one.layers[1], &one.layers[3]);
    assert!(distro.uncompressed_size > 2 * distro.size, "{distro:?}");
    assert!(
        assets.size * 100 > assets.uncompressed_size * 99,
        "{assets:?}"
    );

    // Index the content layers in-process, as `soci convert` does (1 MiB spans).
    let mut indexed = BTreeMap::new();
    let mut index_bytes = 0;
    for l in 1..=3 {
        let blob =
            std::fs::File::open(blob_path(&t.path().join("a"), &one.layers[l].digest)).unwrap();
        let opts = BuildOptions {
            span_size: 1 << 20,
            ..Default::default()
        };
        let z = build_ztoc(
            std::io::BufReader::new(blob),
            CompressionAlgorithm::Gzip,
            &opts,
        )
        .unwrap();
        index_bytes += z.to_bytes().len() as u64;
        indexed.insert(l, LayerIndex::from_ztoc(&z).unwrap());
    }
    let spans: BTreeMap<String, _> = one
        .workloads
        .iter()
        .map(|w| (w.name.clone(), workload_spans(w, &one, &indexed).unwrap()))
        .collect();
    let total_spans: u64 = indexed.values().map(|l| l.zinfo.num_spans()).sum();
    assert_eq!(spans["fullscan"].spans, total_spans);
    assert_eq!(spans["metadata"].spans, 0);
    let (c, s) = (&spans["clustered"], &spans["scattered"]);
    assert!(c.spans > 0 && c.span_uncompressed_bytes >= c.touched_bytes);
    assert!(
        s.spans > c.spans,
        "scattered {} spans vs clustered {}",
        s.spans,
        c.spans
    );

    let a = Analysis {
        index_bytes,
        ztocs: 3,
        span_size: 1 << 20,
        unindexed_bytes: one.layers[0].size + one.layers[4].size,
        unindexed_layers: 2,
        metadata_bytes: 1000,
        workloads: spans.values().cloned().collect(),
    };
    let p = Profile::parse("100mbit-20ms").unwrap();
    let bound = lazy_bound(&a, c, &p).unwrap();
    let bytes = 1000 + index_bytes + a.unindexed_bytes + c.span_compressed_bytes;
    let expect = bytes as f64 / 12.5e6 + (4 + 3 + 2 + c.spans) as f64 * 0.020;
    assert!((bound - expect).abs() < 1e-9, "{bound} vs {expect}");
    let full = full_bound(&one, &p).unwrap();
    assert!(full > bytes as f64 / 12.5e6);
    assert!(lazy_bound(&a, c, &Profile::parse("unshaped-0ms").unwrap()).is_none());
    assert_eq!(Profile::parse("1gbit-2ms").unwrap().mbit, 1000);
    assert!(Profile::parse("fast").is_err());
}

#[test]
fn proxy_parses_request_heads() {
    use soci_bench::proxy::{head_end, parse_head};
    let req = b"GET /v2/x/blobs/sha256:ab HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\n\r\nrest";
    let end = head_end(req).unwrap();
    assert_eq!(&req[end..], b"rest");
    assert_eq!(parse_head(&req[..end]), (true, 0));
    let put = b"PUT /v2/x HTTP/1.1\r\ncontent-length: 12\r\n\r\n";
    assert_eq!(parse_head(put), (false, 12));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
}
