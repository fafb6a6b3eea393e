//! Seeded, deterministic synthetic image and its workloads.
//!
//! The image is an OCI layout directory with five gzip (level 2; zlib-rs level 1 writes few, very long deflate blocks, which leaves no place for checkpoints) layers, in
//! this order:
//!
//! 1. `base`: busybox-static and the workload program (small, below the
//!    default `--min-layer-size`, so it is pulled whole);
//! 2. `distro`: half of the bytes, many files of 1 KiB-256 KiB of text-like
//!    data in package directories;
//! 3. `libs`: a third of the bytes, files of 100 KiB-20 MiB of binary-like data
//!    (half incompressible, half structured);
//! 4. `assets`: the rest, four incompressible files;
//! 5. `config`: a few small files and the workload lists under `/bench`.
//!
//! The same seed and size give byte-identical layers. The workloads are chosen
//! from the file list before anything is measured (see [`Workload`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Version of the generator (and of the reader baked into the images); a
/// cached image made by another version is rebuilt.
pub const GENERATOR_VERSION: u32 = 4;

/// SplitMix64: small, fast and fully determined by its seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Log-uniform in `lo..=hi`.
    pub fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let v = ((lo as f64).ln() + u * ((hi as f64).ln() - (lo as f64).ln())).exp();
        (v as u64).clamp(lo, hi)
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Image size class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Size {
    /// ~40 MiB, for the smoke test only.
    Tiny,
    /// ~300 MiB of files (quick mode).
    S,
    /// ~1.6 GiB of files.
    M,
    /// 200,000 small files in a `node_modules`-like tree (see `many_files`).
    F200k,
    /// A Debian bookworm root filesystem with python3 (see `debian`).
    DebianPython,
}

impl Size {
    /// Uncompressed bytes of the distro, libs and assets layers together.
    pub fn content_bytes(self) -> u64 {
        match self {
            Size::Tiny => 40 << 20,
            Size::S => 300 << 20,
            Size::M => 1600 << 20,
            Size::F200k | Size::DebianPython => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Size::Tiny => "tiny",
            Size::S => "S",
            Size::M => "M",
            Size::F200k => "f200k",
            Size::DebianPython => "debian-python",
        }
    }
}

/// What a file holds, which decides how well it compresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Text,
    Binary,
    Random,
}

/// One regular file of the image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path in the tar, without a leading `/`.
    pub path: String,
    pub size: u64,
    pub kind: Kind,
    /// Index of the layer in the manifest.
    pub layer: usize,
    /// Seed of its content.
    pub seed: u64,
}

/// One layer as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerInfo {
    pub name: String,
    /// `sha256:...` of the compressed blob.
    pub digest: String,
    /// `sha256:...` of the tar.
    pub diff_id: String,
    pub size: u64,
    pub uncompressed_size: u64,
    pub files: usize,
}

/// One operation of a workload (a line of its list).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Op {
    /// Read `len` bytes at `offset` of the file.
    Read { path: String, offset: u64, len: u64 },
    /// `stat` an existing path.
    Stat { path: String },
    /// `stat` a path that does not exist.
    Missing { path: String },
    /// List a directory.
    Readdir { path: String },
    /// Run a program (which must exit with status 0); `reads` are the whole
    /// files it was traced to open, counted as its touched bytes.
    Exec {
        argv: Vec<String>,
        reads: Vec<(String, u64)>,
    },
}

impl Op {
    /// The line `soci-bench-reader` runs (paths absolute in the container).
    pub fn line(&self) -> String {
        match self {
            Op::Read { path, offset, len } => format!("r {offset} {len} /{path}"),
            Op::Stat { path } => format!("s /{path}"),
            Op::Missing { path } => format!("m /{path}"),
            Op::Readdir { path } => format!("d /{path}"),
            Op::Exec { argv, .. } => format!("x {}", argv.join("\t")),
        }
    }
}

/// A workload: a named list of operations, run by `soci-bench-reader` inside
/// the container from `/bench/<name>.txt`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workload {
    pub name: String,
    pub description: String,
    pub ops: Vec<Op>,
}

impl Workload {
    /// Bytes the workload reads (the "touched" bytes).
    pub fn touched_bytes(&self) -> u64 {
        self.ops
            .iter()
            .map(|o| match o {
                Op::Read { len, .. } => *len,
                Op::Exec { reads, .. } => reads.iter().map(|r| r.1).sum(),
                _ => 0,
            })
            .sum()
    }

    pub fn list(&self) -> String {
        let mut s = String::new();
        for o in &self.ops {
            s.push_str(&o.line());
            s.push('\n');
        }
        s
    }
}

/// The names of the workloads, in report order.
pub const WORKLOADS: [&str; 6] = [
    "clustered",
    "scattered",
    "metadata",
    "headers",
    "fullscan",
    "python-import",
];

/// What the generator made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageInfo {
    pub generator_version: u32,
    pub size: Size,
    pub seed: u64,
    pub layers: Vec<LayerInfo>,
    pub files: Vec<FileEntry>,
    pub workloads: Vec<Workload>,
    /// Symlinks and hard links of the content layers.
    #[serde(default)]
    pub links: usize,
    /// `sha256:...` of the image manifest.
    pub manifest_digest: String,
    /// Bytes of manifest + config.
    pub metadata_bytes: u64,
}

impl ImageInfo {
    pub fn compressed_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
    pub fn uncompressed_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.uncompressed_size).sum()
    }
    pub fn workload(&self, name: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.name == name)
    }
}

/// Fill `out` with the content of a file.
pub fn content(kind: Kind, seed: u64, size: u64, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(size as usize);
    let mut r = Rng::new(seed);
    match kind {
        Kind::Random => {
            while (out.len() as u64) < size {
                out.extend_from_slice(&r.next_u64().to_le_bytes());
            }
        }
        Kind::Text => {
            // A fixed vocabulary with a skewed choice of words: about 3x with gzip -1.
            let mut words_in_line = 0;
            while (out.len() as u64) < size {
                let a = r.next_u64();
                let idx = ((a & 0xFFF) * ((a >> 12) & 0xFFF)) >> 12;
                out.extend_from_slice(word(idx));
                words_in_line += 1;
                if words_in_line == 11 {
                    out.push(b'\n');
                    words_in_line = 0;
                } else {
                    out.push(b' ');
                }
            }
        }
        Kind::Binary => {
            // 4 KiB blocks: half random, half structured (small increasing integers).
            while (out.len() as u64) < size {
                if r.next_u64() & 1 == 0 {
                    for _ in 0..512 {
                        out.extend_from_slice(&r.next_u64().to_le_bytes());
                    }
                } else {
                    let mut v = (r.next_u64() & 0xFFFF) as u32;
                    for _ in 0..1024 {
                        v = v.wrapping_add((r.next_u64() & 7) as u32);
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
    }
    out.truncate(size as usize);
}

/// Word `idx` (0..4096) of the fixed vocabulary.
fn word(idx: u64) -> &'static [u8] {
    static WORDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let w = WORDS.get_or_init(|| {
        let mut r = Rng::new(0xD1C7);
        (0..4096)
            .map(|_| {
                let n = 2 + r.below(9) as usize;
                (0..n).map(|_| b'a' + r.below(26) as u8).collect()
            })
            .collect()
    });
    &w[idx as usize % w.len()]
}

/// A writer that hashes and counts what goes through it.
struct HashCount<W> {
    inner: W,
    hash: Sha256,
    count: u64,
}

impl<W: Write> Write for HashCount<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A file or directory of a layer under construction.
enum Entry {
    Dir(String),
    File(FileEntry),
    Bytes {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    /// A directory with its mode.
    DirMode {
        path: String,
        mode: u32,
    },
    /// A regular file copied from the host when the layer is written.
    Host {
        path: String,
        src: PathBuf,
        mode: u32,
    },
}

const MTIME: u64 = 1_700_000_000;

/// Write one gzip layer into `blobs/sha256/` of the layout at `dir`.
fn write_layer(dir: &Path, name: &str, entries: &[Entry]) -> Result<LayerInfo> {
    let blobs = dir.join("blobs/sha256");
    let tmp = blobs.join(format!(".{name}.tmp"));
    let file = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let compressed = HashCount {
        inner: io::BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        count: 0,
    };
    let gz = flate2::write::GzEncoder::new(compressed, flate2::Compression::new(2));
    let tarred = HashCount {
        inner: gz,
        hash: Sha256::new(),
        count: 0,
    };
    let mut b = tar::Builder::new(tarred);
    let mut buf = Vec::new();
    let mut files = 0;
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, format!("{p}/"), io::empty())?;
            }
            Entry::File(f) => {
                content(f.kind, f.seed, f.size, &mut buf);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(f.size);
                b.append_data(&mut h, &f.path, &buf[..])?;
                files += 1;
            }
            Entry::Bytes { path, data, mode } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, &data[..])?;
                files += 1;
            }
            Entry::Symlink { path, target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target)?;
            }
            Entry::DirMode { path, mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, format!("{path}/"), io::empty())?;
            }
            Entry::Host { path, src, mode } => {
                let f =
                    std::fs::File::open(src).with_context(|| format!("open {}", src.display()))?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(f.metadata()?.len());
                b.append_data(&mut h, path, f)?;
                files += 1;
            }
            Entry::Hardlink { path, target } => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, path, target)?;
            }
        }
    }
    let tarred = b.into_inner()?;
    let diff_id = format!("sha256:{}", hex::encode(tarred.hash.finalize()));
    let uncompressed_size = tarred.count;
    let mut compressed = tarred.inner.finish()?;
    compressed.flush()?;
    let digest_hex = hex::encode(compressed.hash.finalize());
    let size = compressed.count;
    drop(compressed.inner);
    std::fs::rename(&tmp, blobs.join(&digest_hex))?;
    Ok(LayerInfo {
        name: name.to_string(),
        digest: format!("sha256:{digest_hex}"),
        diff_id,
        size,
        uncompressed_size,
        files,
    })
}

/// Directory entries for every parent of `path` not yet in `seen`.
fn parents(path: &str, seen: &mut std::collections::BTreeSet<String>, out: &mut Vec<Entry>) {
    let mut acc = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for p in &parts[..parts.len() - 1] {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(p);
        if seen.insert(acc.clone()) {
            out.push(Entry::Dir(acc.clone()));
        }
    }
}

/// Choose the files of the three content layers (the plan, before any byte is written).
pub fn plan_files(size: Size, seed: u64) -> Vec<FileEntry> {
    let total = size.content_bytes();
    let mut r = Rng::new(seed);
    let mut files = Vec::new();
    // distro: packages of 10-60 files, 1 KiB-256 KiB each.
    let budget = total / 2;
    let (mut used, mut pkg, mut i) = (0u64, 0u64, 0u64);
    while used < budget {
        let n = 10 + r.below(51);
        for _ in 0..n {
            let sz = r.log_uniform(1 << 10, 256 << 10).min(budget - used).max(1);
            let ext = ["txt", "py", "h", "json", "xml"][r.below(5) as usize];
            files.push(FileEntry {
                path: format!("usr/share/pkg{pkg:05}/f{i:06}.{ext}"),
                size: sz,
                kind: Kind::Text,
                layer: 1,
                seed: r.next_u64(),
            });
            used += sz;
            i += 1;
            if used >= budget {
                break;
            }
        }
        pkg += 1;
    }
    // libs: 100 KiB-20 MiB of binary-like data.
    let budget = total / 3;
    let (mut used, mut i) = (0u64, 0u64);
    while used < budget {
        let sz = r.log_uniform(100 << 10, 20 << 20).min(budget - used).max(1);
        files.push(FileEntry {
            path: format!("usr/lib/lib{:03}/liblib{i:04}.so", i / 8),
            size: sz,
            kind: Kind::Binary,
            layer: 2,
            seed: r.next_u64(),
        });
        used += sz;
        i += 1;
    }
    // assets: four incompressible files.
    let budget = total - total / 2 - total / 3;
    for i in 0..4u64 {
        files.push(FileEntry {
            path: format!("opt/assets/model{i}.bin"),
            size: budget / 4,
            kind: Kind::Random,
            layer: 3,
            seed: r.next_u64(),
        });
    }
    files
}

/// Choose the workloads from the file plan (seeded, independent of any measurement).
///
/// - `clustered`: whole files, 8 runs of consecutive files in tar order of the
///   distro and libs layers, together ~5% of the content bytes;
/// - `scattered`: whole files chosen uniformly at random from the same layers,
///   the same byte count;
/// - `metadata`: `stat` of every distro file (at most 20,000) plus 10% paths
///   that do not exist;
/// - `headers`: the first 4 KiB of each file of at least 1 MiB (at most 200);
/// - `fullscan`: every byte of every content file, in tar order.
pub fn plan_workloads(files: &[FileEntry], seed: u64) -> Vec<Workload> {
    let mut r = Rng::new(seed ^ 0x5CA7_7E2E_D000_0001);
    let total: u64 = files.iter().map(|f| f.size).sum();
    let target = total / 20;
    let pool: Vec<usize> = (0..files.len()).filter(|&i| files[i].layer <= 2).collect();
    let read = |f: &FileEntry| Op::Read {
        path: f.path.clone(),
        offset: 0,
        len: f.size,
    };

    let mut chosen = vec![false; files.len()];
    let mut clustered = Vec::new();
    let mut got = 0u64;
    let per_run = target / 8;
    let mut attempts = 0;
    while got < target && attempts < 1000 {
        attempts += 1;
        let mut k = r.below(pool.len() as u64) as usize;
        let mut run = 0u64;
        while run < per_run && k < pool.len() && got < target {
            let i = pool[k];
            if !chosen[i] && files[i].size <= per_run {
                chosen[i] = true;
                clustered.push(i);
                run += files[i].size;
                got += files[i].size;
            }
            k += 1;
        }
    }
    clustered.sort_unstable();

    let mut shuffled = pool.clone();
    r.shuffle(&mut shuffled);
    let mut scattered = Vec::new();
    let mut got2 = 0u64;
    for &i in &shuffled {
        if got2 >= got {
            break;
        }
        if got2 + files[i].size <= got + got / 10 {
            scattered.push(i);
            got2 += files[i].size;
        }
    }

    let mut meta = Vec::new();
    for f in files.iter().filter(|f| f.layer == 1).take(20_000) {
        meta.push(Op::Stat {
            path: f.path.clone(),
        });
        if r.below(10) == 0 {
            let dir = f.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            meta.push(Op::Missing {
                path: format!("{dir}/missing{}.so", r.below(1_000_000)),
            });
        }
    }

    let mut big: Vec<&FileEntry> = files.iter().filter(|f| f.size >= 1 << 20).collect();
    r.shuffle(&mut big);
    let headers: Vec<Op> = big
        .iter()
        .take(200)
        .map(|f| Op::Read {
            path: f.path.clone(),
            offset: 0,
            len: f.size.min(4096),
        })
        .collect();

    vec![
        Workload {
            name: "clustered".into(),
            description: "whole files, 8 runs of neighbours in tar order, ~5% of bytes".into(),
            ops: clustered.iter().map(|&i| read(&files[i])).collect(),
        },
        Workload {
            name: "scattered".into(),
            description: "whole files chosen at random, same bytes as clustered".into(),
            ops: scattered.iter().map(|&i| read(&files[i])).collect(),
        },
        Workload {
            name: "metadata".into(),
            description: "stat of up to 20k files + 10% missing paths".into(),
            ops: meta,
        },
        Workload {
            name: "headers".into(),
            description: "first 4 KiB of up to 200 files >= 1 MiB".into(),
            ops: headers,
        },
        Workload {
            name: "fullscan".into(),
            description: "every byte of every file, tar order".into(),
            ops: files.iter().map(read).collect(),
        },
    ]
}

/// Write the image as an OCI layout in `dir` (which must not exist) and return what was made.
pub fn generate(
    dir: &Path,
    size: Size,
    seed: u64,
    busybox: &Path,
    reader: &Path,
) -> Result<ImageInfo> {
    if dir.exists() {
        bail!(
            "{} exists: remove it or choose another output directory",
            dir.display()
        );
    }
    new_layout(dir)?;
    let (files, links) = if size == Size::F200k {
        crate::many_files::plan(seed)
    } else {
        (plan_files(size, seed), Vec::new())
    };
    let workloads = if size == Size::F200k {
        crate::many_files::workloads(&files, &links, seed)
    } else {
        plan_workloads(&files, seed)
    };
    let content_layers: &[(usize, &str)] = if size == Size::F200k {
        &[(1, "tree1"), (2, "tree2")]
    } else {
        &[(1, "distro"), (2, "libs"), (3, "assets")]
    };

    let mut layers = Vec::new();
    // base
    let mut base = vec![Entry::Dir("bin".into()), Entry::Dir("bench".into())];
    base.push(Entry::Bytes {
        path: "bin/busybox".into(),
        data: std::fs::read(busybox).with_context(|| format!("read {}", busybox.display()))?,
        mode: 0o755,
    });
    for a in ["sh", "cat", "ls", "stat", "dd", "echo", "true"] {
        base.push(Entry::Symlink {
            path: format!("bin/{a}"),
            target: "busybox".into(),
        });
    }
    base.push(reader_entry(reader)?);
    layers.push(write_layer(dir, "base", &base)?);
    // content layers
    for &(layer, name) in content_layers {
        let mut seen = Default::default();
        let mut entries = Vec::new();
        for f in files.iter().filter(|f| f.layer == layer) {
            parents(&f.path, &mut seen, &mut entries);
            entries.push(Entry::File(f.clone()));
        }
        // Links after every file, so that a hard link's target comes first.
        for l in links.iter().filter(|l| l.layer == layer) {
            parents(&l.path, &mut seen, &mut entries);
            entries.push(if l.hard {
                Entry::Hardlink {
                    path: l.path.clone(),
                    target: l.target.clone(),
                }
            } else {
                Entry::Symlink {
                    path: l.path.clone(),
                    target: l.target.clone(),
                }
            });
        }
        layers.push(write_layer(dir, name, &entries)?);
    }
    // config + workload lists
    let mut cfg = vec![
        Entry::Dir("etc".into()),
        Entry::Dir("etc/app".into()),
        Entry::Dir("bench".into()),
    ];
    for i in 0..8 {
        let mut data = Vec::new();
        content(Kind::Text, seed ^ (i + 77), 2048, &mut data);
        cfg.push(Entry::Bytes {
            path: format!("etc/app/conf{i}.conf"),
            data,
            mode: 0o644,
        });
    }
    cfg.extend(workload_entries(&workloads));
    layers.push(write_layer(dir, "config", &cfg)?);

    let (manifest_digest, metadata_bytes) = write_manifest(
        dir,
        &layers,
        &["/bench/reader", "/bench/clustered.txt"],
        &["PATH=/bin"],
    )?;
    Ok(ImageInfo {
        generator_version: GENERATOR_VERSION,
        size,
        seed,
        layers,
        files,
        workloads,
        links: links.len(),
        manifest_digest,
        metadata_bytes,
    })
}

/// Write config, manifest and `index.json` (tag `latest`) of an image with
/// these layers; return the manifest digest and the bytes of manifest + config.
fn write_manifest(
    dir: &Path,
    layers: &[LayerInfo],
    cmd: &[&str],
    env: &[&str],
) -> Result<(String, u64)> {
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": env,
            "Cmd": cmd,
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
    });
    let config_bytes = serde_json::to_vec(&config)?;
    let config_digest = put_blob(dir, &config_bytes)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_bytes.len(),
        },
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": l.digest,
            "size": l.size,
        })).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let manifest_digest = put_blob(dir, &manifest_bytes)?;
    write_index(dir, &manifest_digest, manifest_bytes.len(), "latest")?;
    Ok((
        manifest_digest,
        (config_bytes.len() + manifest_bytes.len()) as u64,
    ))
}

/// Write the `debian-python` image (see `crate::debian`) as an OCI layout in
/// `dir` (which must not exist) from the root filesystem at `rootfs`.
pub fn generate_debian(dir: &Path, rootfs: &Path, reader: &Path, work: &Path) -> Result<ImageInfo> {
    use crate::debian;
    if dir.exists() {
        bail!(
            "{} exists: remove it or choose another output directory",
            dir.display()
        );
    }
    let opened = debian::trace_python_import(rootfs, work)?;
    let walked = debian::walk(rootfs)?;
    let files = debian::files(&walked);
    let workloads = debian::workloads(&files, &opened);
    new_layout(dir)?;
    let mut layers = Vec::new();
    for (python, name) in [(false, "base"), (true, "python3")] {
        let mut entries = Vec::new();
        for e in &walked {
            let (path, entry) = match e {
                debian::HostEntry::Dir { path, mode } => (
                    path,
                    Entry::DirMode {
                        path: path.clone(),
                        mode: *mode,
                    },
                ),
                debian::HostEntry::File { path, mode, .. } => (
                    path,
                    Entry::Host {
                        path: path.clone(),
                        src: rootfs.join(path),
                        mode: *mode,
                    },
                ),
                debian::HostEntry::Symlink { path, target } => (
                    path,
                    Entry::Symlink {
                        path: path.clone(),
                        target: target.clone(),
                    },
                ),
            };
            // Directories go in the base layer; files and links by path.
            let is_dir = matches!(e, debian::HostEntry::Dir { .. });
            if (is_dir && !python) || (!is_dir && debian::in_python_layer(path) == python) {
                entries.push(entry);
            }
        }
        layers.push(write_layer(dir, name, &entries)?);
    }
    let mut bench = vec![Entry::Dir("bench".into())];
    bench.push(reader_entry(reader)?);
    bench.extend(workload_entries(&workloads));
    layers.push(write_layer(dir, "bench", &bench)?);
    let (manifest_digest, metadata_bytes) = write_manifest(
        dir,
        &layers,
        &debian::PYTHON_IMPORT,
        &["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    )?;
    Ok(ImageInfo {
        generator_version: GENERATOR_VERSION,
        size: Size::DebianPython,
        seed: 0,
        layers,
        files,
        workloads,
        links: 0,
        manifest_digest,
        metadata_bytes,
    })
}

/// Start an OCI layout in `dir`: `oci-layout` and an empty blob store.
pub(crate) fn new_layout(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("blobs/sha256"))?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
}

/// Write the layout's `index.json`: one manifest, tagged `tag`.
pub(crate) fn write_index(dir: &Path, manifest_digest: &str, size: usize, tag: &str) -> Result<()> {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(())
}

/// Store `bytes` in the layout's blob store; their `sha256:...` digest.
pub(crate) fn put_blob(dir: &Path, bytes: &[u8]) -> Result<String> {
    let hex = hex::encode(Sha256::digest(bytes));
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes)?;
    Ok(format!("sha256:{hex}"))
}

/// Path of a blob in an OCI layout.
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs").join(digest.replacen(':', "/", 1))
}

/// `/bench/reader`: the static workload program copied into every image.
fn reader_entry(reader: &Path) -> Result<Entry> {
    Ok(Entry::Bytes {
        path: "bench/reader".into(),
        data: std::fs::read(reader).with_context(|| {
            format!(
                "read the workload program {} (build it with scripts/bench.sh)",
                reader.display()
            )
        })?,
        mode: 0o755,
    })
}

/// `/bench/<workload>.txt`: each workload's operation list.
fn workload_entries(workloads: &[Workload]) -> impl Iterator<Item = Entry> + '_ {
    workloads.iter().map(|w| Entry::Bytes {
        path: format!("bench/{}.txt", w.name),
        data: w.list().into_bytes(),
        mode: 0o644,
    })
}
