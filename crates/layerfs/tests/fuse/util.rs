//! Fixtures: layers built from generated tars, mounts that always unmount, and a
//! watchdog that keeps a wedged FUSE test from hanging the run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use soci_format::Digest;
use soci_format::testutil::{EndOfArchive, TarEntry, TarFixture, build_tar, gzip_members};
use soci_format::ztoc::{BuildOptions, CompressionAlgorithm, FileMetadata, Ztoc, build_ztoc};
use soci_layerfs::testing::MemSpanSource;
use soci_layerfs::{
    FsOptions, InodeTree, LayerFs, LayerState, MountHandle, MountOptions, SpanSource, StateFn,
    TreeOptions,
};
use tempfile::TempDir;

/// True when FUSE tests should run. Missing `/dev/fuse` or not being root is a
/// test failure, not a skip, unless `SOCI_SKIP_FUSE_TESTS=1` opts out.
pub fn fuse_required() -> bool {
    if std::env::var("SOCI_SKIP_FUSE_TESTS").as_deref() == Ok("1") {
        eprintln!("SOCI_SKIP_FUSE_TESTS=1: skipping a FUSE test");
        return false;
    }
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: the FUSE tests need it (set SOCI_SKIP_FUSE_TESTS=1 to skip them explicitly)"
    );
    assert!(
        rustix::process::geteuid().is_root(),
        "the FUSE tests must run as root (set SOCI_SKIP_FUSE_TESTS=1 to skip them explicitly)"
    );
    true
}

/// A generated layer: its tar, the zTOC as the snapshotter would load it, and a digest.
pub struct Layer {
    pub fixture: TarFixture,
    pub ztoc: Ztoc,
    pub digest: String,
}

impl Layer {
    /// An uncompressed layer; the zTOC goes through its serialized form.
    pub fn new(entries: &[TarEntry]) -> Layer {
        Layer::from_fixture(build_tar(entries, EndOfArchive::TwoZeroBlocks))
    }

    /// An uncompressed layer from a generated archive.
    pub fn from_fixture(fixture: TarFixture) -> Layer {
        let opts = BuildOptions {
            span_size: 64 << 10,
            ..BuildOptions::default()
        };
        let built = build_ztoc(
            &fixture.bytes[..],
            CompressionAlgorithm::Uncompressed,
            &opts,
        )
        .expect("zTOC of the fixture builds");
        let ztoc = Ztoc::from_bytes(&built.to_bytes()).expect("zTOC decodes");
        let digest = Digest::of(&fixture.bytes).to_string();
        Layer {
            fixture,
            ztoc,
            digest,
        }
    }

    /// A gzip layer (two members); reads still see the uncompressed tar.
    pub fn gzip(entries: &[TarEntry]) -> Layer {
        let fixture = build_tar(entries, EndOfArchive::RecordPadded(10240));
        let blob = gzip_members(&fixture.bytes, 6, 2, true);
        let opts = BuildOptions {
            span_size: 32 << 10,
            ..BuildOptions::default()
        };
        let built = build_ztoc(&blob[..], CompressionAlgorithm::Gzip, &opts)
            .expect("zTOC of the gzip fixture builds");
        let ztoc = Ztoc::from_bytes(&built.to_bytes()).expect("zTOC decodes");
        let digest = Digest::of(&blob).to_string();
        Layer {
            fixture,
            ztoc,
            digest,
        }
    }

    /// Source serving the uncompressed tar from memory.
    pub fn mem_source(&self) -> MemSpanSource {
        MemSpanSource::new(self.fixture.bytes.clone())
    }

    /// A state callback reporting a fixed 50% fetch.
    pub fn state(&self) -> StateFn {
        let digest = self.digest.clone();
        let size = self.fixture.bytes.len() as u64;
        Arc::new(move || LayerState {
            error: None,
            digest: digest.clone(),
            size,
            fetched_size: size / 2,
            fetched_percent: 50.0,
        })
    }

    pub fn fs(&self, source: Arc<dyn SpanSource>, tree: TreeOptions, state: StateFn) -> LayerFs {
        self.fs_with(source, tree, state, FsOptions::default())
    }

    /// [`Layer::fs`] with other filesystem options.
    pub fn fs_with(
        &self,
        source: Arc<dyn SpanSource>,
        tree: TreeOptions,
        state: StateFn,
        options: FsOptions,
    ) -> LayerFs {
        let tree = InodeTree::from_ztoc(&self.ztoc, &tree).expect("inode tree builds");
        LayerFs::new(tree, source, &self.digest, state, options)
    }

    /// Entries and contents in tar order.
    pub fn files(&self) -> impl Iterator<Item = (&FileMetadata, &[u8])> {
        self.fixture
            .entries
            .iter()
            .zip(self.fixture.contents.iter().map(|c| &c[..]))
    }
}

/// The cleaned path of a TOC entry name, relative to the mount.
pub fn rel(name: &str) -> String {
    soci_layerfs::clean_path(name).expect("fixture names are clean")
}

/// A mounted layer; unmounted when dropped (declare it after its `TempDir`).
pub struct Mounted {
    handle: Option<MountHandle>,
    pub path: PathBuf,
}

impl Mounted {
    pub fn new(fs: LayerFs, path: PathBuf) -> Mounted {
        std::fs::create_dir_all(&path).expect("create mount point");
        let handle = soci_layerfs::mount(fs, &path, &MountOptions { n_threads: 2 })
            .unwrap_or_else(|e| panic!("{e}"));
        Mounted {
            handle: Some(handle),
            path,
        }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Unmount now and report errors (dropping also unmounts, silently).
    pub fn unmount(mut self) {
        if let Some(h) = self.handle.take() {
            h.unmount().expect("unmount");
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        drop(self.handle.take());
    }
}

/// Mount points below `root`, deepest first, from /proc/self/mountinfo.
pub fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(root))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}

/// The mountinfo line of `path`.
pub fn mountinfo_line(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let path = path.to_str()?;
    info.lines()
        .find(|l| l.split(' ').nth(4) == Some(path))
        .map(str::to_string)
}

/// Aborts the test process if a test runs longer than `limit`, after lazily
/// detaching every mount under the test's scratch directory.
pub struct Watchdog {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn new(name: &'static str, root: &Path, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let root = root.to_path_buf();
        let thread = std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("test {name} exceeded {limit:?}: detaching its mounts and aborting");
                for m in mounts_under(&root) {
                    let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
                }
                std::process::abort();
            }
        });
        Watchdog {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A scratch directory plus its watchdog.
pub struct Scratch {
    pub dir: TempDir,
    _watchdog: Watchdog,
}

impl Scratch {
    pub fn new(name: &'static str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("soci-layerfs-")
            .tempdir()
            .expect("temp dir");
        let watchdog = Watchdog::new(name, dir.path(), Duration::from_secs(60));
        Scratch {
            dir,
            _watchdog: watchdog,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Anything a failed test left mounted goes before the directory is removed.
        for m in mounts_under(self.dir.path()) {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
        }
    }
}
