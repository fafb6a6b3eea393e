//! Shared helpers of the CLI tests: synthetic images in OCI layouts and
//! running the `soci` binary; the real parts (`docker-registry` on
//! 127.0.0.1, containerd, the daemon) come from `soci-testkit`.
#![allow(dead_code, unused_imports)]

pub mod containerd;

pub use soci_testkit::{Registry, random, skopeo, tool as require_tool};

use std::collections::BTreeMap;
use std::io::Write;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use soci_format::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A file in a synthetic layer.
#[derive(Clone)]
pub enum Item {
    File(String, Vec<u8>),
    Dir(String),
    Symlink(String, String),
    Hardlink(String, String),
}

/// Deterministic pseudo-random bytes, part text-like and part incompressible.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let words = [
        &b"lorem "[..],
        b"ipsum ",
        b"dolor ",
        b"sit ",
        b"amet\n",
        b"soci ",
        b"span ",
    ];
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(4) {
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            out.extend_from_slice(words[(x % 7) as usize]);
        }
    }
    out.truncate(len);
    out
}

/// A tar of `items` (GNU long names, PAX where the tar crate needs it).
pub fn tar_of(items: &[Item]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    for it in items {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match it {
            Item::File(name, content) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(content.len() as u64);
                b.append_data(&mut h, name, &content[..]).unwrap();
            }
            Item::Dir(name) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, name, std::io::empty()).unwrap();
            }
            Item::Symlink(name, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap();
            }
            Item::Hardlink(name, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A typical layer: a directory tree with files of many sizes.
pub fn layer_items(seed: u64, files: usize, max_size: usize) -> Vec<Item> {
    let mut items = vec![Item::Dir("usr/".into()), Item::Dir("usr/lib/".into())];
    for i in 0..files {
        let size = (seed as usize * 7919 + i * 104_729) % max_size.max(1);
        let name = if i % 17 == 3 {
            format!(
                "usr/lib/{}/file-{seed}-{i}.bin",
                "long-directory-name-".repeat(6)
            )
        } else {
            format!("usr/lib/file-{seed}-{i}.bin")
        };
        items.push(Item::File(name, data(seed * 1000 + i as u64, size)));
    }
    items.push(Item::Symlink(
        "usr/lib/link".into(),
        format!("file-{seed}-0.bin"),
    ));
    items.push(Item::Hardlink(
        "usr/lib/hard".into(),
        format!("usr/lib/file-{seed}-1.bin"),
    ));
    items
}

/// A layout being assembled.
pub struct LayoutBuilder {
    pub dir: PathBuf,
}

impl LayoutBuilder {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        LayoutBuilder {
            dir: dir.to_path_buf(),
        }
    }

    pub fn blob(&self, bytes: &[u8]) -> (String, usize) {
        let d = Digest::of(bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        (d.to_string(), bytes.len())
    }

    pub fn desc(&self, media_type: &str, bytes: &[u8]) -> serde_json::Value {
        let (d, n) = self.blob(bytes);
        serde_json::json!({"mediaType": media_type, "digest": d, "size": n})
    }

    /// An image manifest with the given (media type, blob) layers; returns its descriptor.
    pub fn image(&self, arch: &str, layers: &[(&str, Vec<u8>)]) -> serde_json::Value {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|(_, b)| Digest::of(b).to_string())
            .collect();
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = self.desc(OCI_CONFIG, &serde_json::to_vec(&config).unwrap());
        let layers: Vec<_> = layers.iter().map(|(mt, b)| self.desc(mt, b)).collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers,
            "annotations": {"org.example.built-by": "test"},
        });
        self.desc(OCI_MANIFEST, &serde_json::to_vec_pretty(&manifest).unwrap())
    }

    pub fn finish(&self, manifests: Vec<serde_json::Value>) {
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    pub fn read_blob(dir: &Path, digest: &str) -> Vec<u8> {
        let d: Digest = digest.parse().unwrap();
        std::fs::read(dir.join("blobs/sha256").join(d.hex())).unwrap()
    }
}

pub fn soci(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_soci"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run soci")
}

pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

pub fn annotations(v: &serde_json::Value) -> BTreeMap<String, String> {
    serde_json::from_value(
        v.get("annotations")
            .cloned()
            .unwrap_or(serde_json::json!({})),
    )
    .unwrap()
}
