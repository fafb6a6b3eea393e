//! Writes the seed corpora of the fuzz targets under `fuzz/corpus/<target>/`.
//!
//! `cargo run -p soci-format --features testutil --example fuzz_seeds`
//! The seeds are committed; rerun this only when the formats change.

use std::fs;
use std::path::Path;

use soci_format::json::{Descriptor, Index, IndexVersion, Manifest, SociIndex, to_go_json};
use soci_format::testutil::{EndOfArchive, TarEntry, build_tar, gzip_members, random_tar};
use soci_format::ztoc::{BuildOptions, CompressionAlgorithm, build_ztoc};

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let small = build_tar(
        &[
            TarEntry::dir("etc/"),
            TarEntry::file("etc/hostname", b"soci\n".to_vec()),
            TarEntry::symlink("etc/link", "hostname"),
            TarEntry::file("usr/lib/data.bin", vec![42u8; 70_000]).xattr("user.k", "v"),
            TarEntry::whiteout("var/old"),
        ],
        EndOfArchive::TwoZeroBlocks,
    );
    let gz = gzip_members(&small.bytes, 6, 2, true);
    let opts = BuildOptions {
        span_size: 16 << 10,
        ..BuildOptions::default()
    };
    let zg = build_ztoc(&gz[..], CompressionAlgorithm::Gzip, &opts).unwrap();
    let zt = build_ztoc(&small.bytes[..], CompressionAlgorithm::Uncompressed, &opts).unwrap();
    put("ztoc_decode", "gzip.ztoc", &zg.to_bytes());
    put("ztoc_decode", "tar.ztoc", &zt.to_bytes());

    put("checkpoints", "gzip-v2", &zg.compression_info.checkpoints);
    put("checkpoints", "tar-zinfo", &zt.compression_info.checkpoints);
    let mut header_only = Vec::new();
    header_only.extend_from_slice(&0i32.to_le_bytes());
    header_only.extend_from_slice(&0i64.to_le_bytes());
    put("checkpoints", "header-only", &header_only);

    // span_extract input: [bits, window byte, offset/7, len/33, deflate bytes...]
    let mut raw = vec![0u8, b'a', 3, 20];
    raw.extend_from_slice(&gz[10..gz.len().min(4000)]);
    put("span_extract", "deflate", &raw);

    let ztoc_desc = soci_format::json::ztoc_descriptor(
        soci_format::Digest::of(b"z"),
        65928,
        soci_format::Digest::of(b"l"),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        4194304,
        true,
    );
    let v2 = SociIndex::new(
        IndexVersion::V2,
        vec![ztoc_desc.clone()],
        None,
        Default::default(),
    );
    put("index_json", "soci-v2.json", &v2.marshal());
    let subject = Descriptor::for_bytes("application/vnd.oci.image.manifest.v1+json", b"m");
    let v1 = SociIndex::new(
        IndexVersion::V1,
        vec![ztoc_desc],
        Some(subject.clone()),
        Default::default(),
    );
    put("index_json", "soci-v1.json", &v1.marshal());
    let mut index = Index::single(subject);
    index.annotations.insert("a<b>&".into(), "\u{2028}".into());
    put("index_json", "image-index.json", &to_go_json(&index));
    let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":10,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}]}"#;
    put("index_json", "docker-manifest.json", docker);
    let m = Manifest::from_json(docker).unwrap();
    put("index_json", "oci-manifest.json", &m.to_json());

    put("tar_walk", "small.tar", &small.bytes);
    for seed in 0..4 {
        let t = random_tar(seed);
        if t.bytes.len() < 150_000 {
            put("tar_walk", &format!("random-{seed}.tar"), &t.bytes);
        }
    }
}
