//! Fixtures: real tar layers (gzip and uncompressed), their zTOCs, and span
//! managers over a local file or a fault-injecting reader.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use soci_content::{BlobRangeReader, FileRangeReader};
use soci_format::Digest;
use soci_format::testutil::{
    EndOfArchive, Rng, TarEntry, TarFixture, build_tar, gzip_members, random_entries,
};
use soci_format::ztoc::{BuildOptions, CompressionAlgorithm, Ztoc, build_ztoc};
use soci_spans::testing::FaultyReader;
use soci_spans::{MemSpanCache, SpanCache, SpanManager, SpanManagerConfig, SpanSource};

/// How the layer blob is made from the tar.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// gzip with this many members; `true` = long member headers.
    Gzip(usize, bool),
    /// A plain tar.
    Tar,
}

/// A layer on disk with its zTOC and the expected uncompressed bytes.
pub struct Layer {
    pub tar: TarFixture,
    pub blob: Vec<u8>,
    pub digest: Digest,
    pub ztoc: Arc<Ztoc>,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Layer {
    /// The bytes a span source must serve: the tar up to its end-of-archive.
    pub fn expected(&self) -> &[u8] {
        &self.tar.bytes[..self.ztoc.uncompressed_archive_size as usize]
    }

    /// A reader serving this layer from its file.
    pub fn file_reader(&self) -> Arc<FileRangeReader> {
        let r = FileRangeReader::new();
        r.add(self.digest.clone(), self.path.clone());
        Arc::new(r)
    }

    /// A counting, fault-injecting reader over the file reader.
    pub fn faulty_reader(&self) -> Arc<FaultyReader> {
        Arc::new(FaultyReader::new(self.file_reader()))
    }

    /// A manager over `reader` and `cache`.
    pub fn manager(
        &self,
        reader: Arc<dyn BlobRangeReader>,
        cache: Arc<dyn SpanCache>,
        config: SpanManagerConfig,
    ) -> SpanManager {
        SpanManager::new(&self.ztoc, self.digest.clone(), reader, cache, config)
            .expect("opening the layer")
    }

    /// A manager over the file with a memory cache and fast retries.
    pub fn simple_manager(&self) -> SpanManager {
        self.manager(
            self.file_reader(),
            Arc::new(MemSpanCache::new()),
            fast_config(),
        )
    }
}

/// Retries that do not slow tests down.
pub fn fast_config() -> SpanManagerConfig {
    SpanManagerConfig {
        max_retries: 3,
        min_wait: Duration::from_millis(1),
        max_wait: Duration::from_millis(4),
        ..SpanManagerConfig::default()
    }
}

/// Text-like bytes (compress well, give many deflate blocks).
pub fn text(rng: &mut Rng, n: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "span",
        "layer",
        "gzip",
        "window",
        "checkpoint",
        "lazy",
        "fetch",
        "verify",
        "digest",
        "tar",
        "block",
        "inflate",
        "snapshot",
        "\n",
        "0123",
        "registry",
    ];
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(rng.pick(WORDS).as_bytes());
        out.push(b' ');
    }
    out.truncate(n);
    out
}

/// A tar of random entries plus some large files (about 1.5 MB), so that
/// small span sizes give dozens of spans.
pub fn tar_fixture(seed: u64, end: EndOfArchive) -> TarFixture {
    let mut rng = Rng::new(seed);
    let mut entries = random_entries(&mut rng);
    entries.push(TarEntry::file("big/text.txt", text(&mut rng, 700_000)));
    entries.push(TarEntry::file("big/random.bin", rng.bytes(300_000)));
    entries.push(TarEntry::file("big/mixed.bin", {
        let mut v = text(&mut rng, 200_000);
        v.extend(rng.bytes(100_000));
        v.extend(text(&mut rng, 250_000));
        v
    }));
    entries.push(TarEntry::file("small/tail.txt", b"the end\n".to_vec()));
    build_tar(&entries, end)
}

/// A layer from `tar`, compressed as `kind`, with its zTOC for `span_size`.
pub fn layer_from(tar: TarFixture, kind: Kind, span_size: u64) -> Layer {
    let (blob, alg) = match kind {
        Kind::Gzip(members, extra) => (
            gzip_members(&tar.bytes, 6, members, extra),
            CompressionAlgorithm::Gzip,
        ),
        Kind::Tar => (tar.bytes.clone(), CompressionAlgorithm::Uncompressed),
    };
    let opts = BuildOptions {
        span_size,
        ..BuildOptions::default()
    };
    let ztoc = build_ztoc(&blob[..], alg, &opts).expect("building the ztoc");
    assert_eq!(
        ztoc.uncompressed_archive_size,
        tar.uncompressed_archive_size
    );
    let digest = Digest::of(&blob);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer");
    std::fs::write(&path, &blob).unwrap();
    Layer {
        tar,
        blob,
        digest,
        ztoc: Arc::new(ztoc),
        path,
        _dir: dir,
    }
}

/// The standard layer for `seed`.
pub fn layer(seed: u64, kind: Kind, span_size: u64) -> Layer {
    layer_from(
        tar_fixture(seed, EndOfArchive::TwoZeroBlocks),
        kind,
        span_size,
    )
}

/// Read `len` bytes at `offset` through the source, asserting success.
pub fn read(src: &dyn SpanSource, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let n = src
        .read_at(offset, &mut buf)
        .unwrap_or_else(|e| panic!("read {offset}+{len}: {e}"));
    buf.truncate(n);
    buf
}

/// Read the whole layer in `chunk`-byte reads.
pub fn read_all(src: &dyn SpanSource, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let got = read(src, out.len() as u64, chunk);
        if got.is_empty() {
            return out;
        }
        out.extend(got);
    }
}

/// Compressed offset in the middle of span `s`, away from bytes shared with
/// neighbouring spans.
pub fn middle_of_span(mgr: &SpanManager, s: u32) -> u64 {
    let g = mgr.span_geometry(s).unwrap();
    let c = g.compressed;
    assert!(c.end - c.start >= 4, "span {s} too small: {c:?}");
    c.start + (c.end - c.start) / 2
}

/// A span whose compressed and uncompressed ranges are not tiny and that is not
/// the first or last.
pub fn interior_span(mgr: &SpanManager) -> u32 {
    assert!(
        mgr.num_spans() >= 4,
        "need at least 4 spans, have {}",
        mgr.num_spans()
    );
    (1..mgr.max_span_id())
        .find(|&s| {
            let g = mgr.span_geometry(s).unwrap();
            g.compressed.end - g.compressed.start >= 64
                && g.uncompressed.end - g.uncompressed.start >= 64
        })
        .expect("an interior span of some size")
}
