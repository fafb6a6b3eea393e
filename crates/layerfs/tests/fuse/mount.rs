//! One layer mounted on its own: contents, attributes, listings, xattrs,
//! whiteouts, the state file, errors.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use soci_format::testutil::{Rng, TarEntry, random_tar};
use soci_layerfs::testing::{FailingSpanSource, MemSpanSource};
use soci_layerfs::{LayerState, StateFn, TreeOptions};

use crate::oracle::{check_mount, expected, makedev};
use crate::util::{Layer, Mounted, Scratch, fuse_required, mountinfo_line};

const EROFS: i32 = 30;
const EIO: i32 = 5;
const ERANGE: i32 = 34;
const ENODATA: i32 = 61;
const EOPNOTSUPP: i32 = 95;
const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;

/// Every kind of entry the filesystem must present.
pub fn rich_entries() -> Vec<TarEntry> {
    let mut rng = Rng::new(7);
    vec![
        TarEntry::dir("./"),
        TarEntry::dir("./etc/").mtime(1_600_000_000, 0),
        TarEntry::file("./etc/hostname", "layer\n")
            .owner(1, 2)
            .mtime(1_600_000_000, 250_000_000),
        TarEntry::whiteout("./etc/removed"),
        TarEntry::dir("./bin/"),
        TarEntry::file("./bin/busybox", rng.bytes(300_000)).mode(0o4755),
        TarEntry::hardlink("./bin/sh", "./bin/busybox"),
        TarEntry::hardlink("./bin/ls", "./bin/busybox"),
        TarEntry::symlink("./lib64", "usr/lib"),
        TarEntry::symlink("./abs", "/etc/hostname"),
        TarEntry::char_device("./dev/null", 1, 3),
        TarEntry::block_device("./dev/sda1", 8, 1),
        TarEntry::char_device("./dev/bigminor", 4095, 0x12345),
        TarEntry::fifo("./run/fifo"),
        TarEntry::dir("./tmp/").mode(0o1777),
        TarEntry::file("./usr/bin/sg", "#!/bin/sh\n")
            .mode(0o2755)
            .owner(0, 50),
        TarEntry::file("./data/x", rng.bytes(70_000))
            .xattr("user.comment", "hello")
            .xattr("trusted.foo", "bar")
            .owner(1000, 1000),
        TarEntry::dir("./data/withxattr/").xattr("user.dir", "d"),
        TarEntry::file("./data/empty", Vec::new()),
        TarEntry::file("./data/block", rng.bytes(4096)),
        TarEntry::file("./data/odd", rng.bytes(513)),
        TarEntry::file("./data/ünïcødé 名前", "u"),
        TarEntry::dir("./var/cache/"),
        TarEntry::opaque("./var/cache"),
        TarEntry::file("./var/cache/kept", "k"),
        TarEntry::file(format!("./deep/{}/file", "d".repeat(120)), "long"),
        TarEntry::file("./old", "x").mtime(-1000, 500_000_000),
    ]
}

fn mem_fs(layer: &Layer, tree: TreeOptions) -> soci_layerfs::LayerFs {
    layer.fs(Arc::new(layer.mem_source()), tree, layer.state())
}

#[test]
fn rich_layer_matches_the_tar() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("rich_layer_matches_the_tar");
    let layer = Layer::new(&rich_entries());
    let m = Mounted::new(
        mem_fs(&layer, TreeOptions::default()),
        scratch.path().join("mnt"),
    );
    let checked = check_mount(&m.path, &expected(&layer), "trusted.overlay.opaque", true);
    assert!(checked >= 30, "{checked}");

    // Spot checks of what the model computed.
    let bb = fs::metadata(m.join("bin/busybox")).unwrap();
    assert_eq!(bb.mode(), 0o104755);
    assert_eq!(bb.nlink(), 3);
    assert_eq!(fs::metadata(m.join("bin/sh")).unwrap().ino(), bb.ino());
    let sg = fs::metadata(m.join("usr/bin/sg")).unwrap();
    assert_eq!((sg.mode(), sg.gid()), (0o102755, 50));
    assert_eq!(fs::metadata(m.join("tmp")).unwrap().mode(), 0o41777);
    let null = fs::symlink_metadata(m.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), makedev(1, 3));
    let sda = fs::symlink_metadata(m.join("dev/sda1")).unwrap();
    assert!(sda.file_type().is_block_device());
    assert_eq!(sda.rdev(), makedev(8, 1));
    assert!(
        fs::symlink_metadata(m.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let wh = fs::symlink_metadata(m.join("etc/removed")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!((wh.rdev(), wh.mode()), (0, 0o020000));
    assert!(fs::symlink_metadata(m.join("etc/.wh.removed")).is_err());
    assert!(fs::symlink_metadata(m.join("var/cache/.wh..wh..opq")).is_err());
    assert_eq!(
        fs::read_link(m.join("lib64")).unwrap().to_str(),
        Some("usr/lib")
    );
    assert_eq!(
        fs::read_link(m.join("abs")).unwrap().to_str(),
        Some("/etc/hostname")
    );
    let host = fs::metadata(m.join("etc/hostname")).unwrap();
    assert_eq!(
        (host.mtime(), host.mtime_nsec()),
        (1_600_000_000, 250_000_000)
    );
    assert_eq!((host.uid(), host.gid()), (1, 2));
    let old = fs::metadata(m.join("old")).unwrap();
    assert_eq!((old.mtime(), old.mtime_nsec()), (-1000, 500_000_000));
    // Root: 2 + bin, data, deep, dev, etc, run, tmp, usr, var (+ the state dir is not counted).
    assert_eq!(fs::metadata(&m.path).unwrap().nlink(), 11);
    m.unmount();
}

#[test]
fn gzip_layer_matches_the_tar() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("gzip_layer_matches_the_tar");
    let layer = Layer::gzip(&rich_entries());
    let m = Mounted::new(
        mem_fs(&layer, TreeOptions::default()),
        scratch.path().join("mnt"),
    );
    check_mount(&m.path, &expected(&layer), "trusted.overlay.opaque", true);
}

#[test]
fn random_layers_match_the_tar() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("random_layers_match_the_tar");
    let mut checked = 0;
    for seed in 1..=16u64 {
        let fixture = random_tar(seed);
        let entries = fixture.entries.clone();
        let layer = Layer::from_fixture(fixture);
        let m = Mounted::new(
            mem_fs(&layer, TreeOptions::default()),
            scratch.path().join(format!("mnt{seed}")),
        );
        checked += check_mount(&m.path, &expected(&layer), "trusted.overlay.opaque", true);
        m.unmount();
        assert!(!entries.is_empty());
    }
    assert!(checked > 100, "{checked}");
}

#[test]
fn xattr_size_queries_and_disable_xattrs() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("xattr_size_queries_and_disable_xattrs");
    let layer = Layer::new(&rich_entries());
    let m = Mounted::new(
        mem_fs(&layer, TreeOptions::default()),
        scratch.path().join("mnt"),
    );
    let x = m.join("data/x");
    assert_eq!(rustix::fs::lgetxattr_query(&x, "user.comment").unwrap(), 5);
    let mut small = [0u8; 4];
    let err = rustix::fs::lgetxattr(&x, "user.comment", &mut small[..]).unwrap_err();
    assert_eq!(err.raw_os_error(), ERANGE);
    let mut exact = [0u8; 5];
    assert_eq!(
        rustix::fs::lgetxattr(&x, "user.comment", &mut exact[..]).unwrap(),
        5
    );
    assert_eq!(&exact, b"hello");
    let err = rustix::fs::lgetxattr(&x, "user.missing", &mut exact[..]).unwrap_err();
    assert_eq!(err.raw_os_error(), ENODATA);
    let list_len = rustix::fs::llistxattr_query(&x).unwrap();
    assert_eq!(list_len, b"trusted.foo\0user.comment\0".len());
    let mut tiny = [0u8; 3];
    let err = rustix::fs::llistxattr(&x, &mut tiny[..]).unwrap_err();
    assert_eq!(err.raw_os_error(), ERANGE);
    drop(m);

    let m = Mounted::new(
        mem_fs(
            &layer,
            TreeOptions {
                disable_xattrs: true,
                ..TreeOptions::default()
            },
        ),
        scratch.path().join("mnt-noxattr"),
    );
    assert_eq!(rustix::fs::llistxattr_query(m.join("data/x")).unwrap(), 0);
    check_mount(&m.path, &expected(&layer), "trusted.overlay.opaque", false);
    let mut buf = [0u8; 8];
    let n =
        rustix::fs::lgetxattr(m.join("var/cache"), "trusted.overlay.opaque", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"y");
}

/// The index's `disable-xattrs` annotation on a layer without xattrs: the
/// filesystem answers `ENOSYS`, the kernel stops asking and answers
/// `EOPNOTSUPP` itself; contents and listings are unchanged. A layer that has
/// an opaque directory after all keeps serving its marker.
#[test]
fn xattrs_disabled_by_the_index() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("xattrs_disabled_by_the_index");
    let options = soci_layerfs::FsOptions {
        xattrs_disabled: true,
        ..Default::default()
    };
    let plain = Layer::new(&[
        TarEntry::dir("./etc/"),
        TarEntry::file("./etc/a.conf", "a\n"),
        TarEntry::dir("./etc/sub/"),
        TarEntry::file("./etc/sub/b", "b\n"),
    ]);
    let fs = plain.fs_with(
        Arc::new(plain.mem_source()),
        TreeOptions::default(),
        plain.state(),
        options,
    );
    assert!(!fs.tree().has_xattrs());
    let m = Mounted::new(fs, scratch.path().join("mnt"));
    let mut buf = [0u8; 8];
    for _ in 0..2 {
        let err = rustix::fs::lgetxattr(m.join("etc/a.conf"), "user.x", &mut buf[..]).unwrap_err();
        assert_eq!(err.raw_os_error(), EOPNOTSUPP);
        let err = rustix::fs::llistxattr(m.join("etc"), &mut buf[..]).unwrap_err();
        assert_eq!(err.raw_os_error(), EOPNOTSUPP);
    }
    let mut names: Vec<String> = fs::read_dir(m.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.conf", "sub"]);
    assert_eq!(fs::read(m.join("etc/sub/b")).unwrap(), b"b\n");
    drop(m);

    let layer = Layer::new(&rich_entries());
    let fs = layer.fs_with(
        Arc::new(layer.mem_source()),
        TreeOptions {
            disable_xattrs: true,
            ..TreeOptions::default()
        },
        layer.state(),
        options,
    );
    assert!(
        fs.tree().has_xattrs(),
        "an opaque directory reports its marker"
    );
    let m = Mounted::new(fs, scratch.path().join("mnt-opaque"));
    let n =
        rustix::fs::lgetxattr(m.join("var/cache"), "trusted.overlay.opaque", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"y");
    check_mount(&m.path, &expected(&layer), "trusted.overlay.opaque", false);
}

#[test]
fn state_file_is_fresh_json() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("state_file_is_fresh_json");
    let layer = Layer::new(&rich_entries());
    let calls = Arc::new(AtomicU64::new(0));
    let digest = layer.digest.clone();
    let state: StateFn = {
        let calls = calls.clone();
        Arc::new(move || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            LayerState {
                error: (n > 1_000_000).then(|| "never".to_string()),
                digest: digest.clone(),
                size: 4000,
                fetched_size: n,
                fetched_percent: n as f64 * 100.0 / 4000.0,
            }
        })
    };
    let m = Mounted::new(
        layer.fs(Arc::new(layer.mem_source()), TreeOptions::default(), state),
        scratch.path().join("mnt"),
    );
    let dir = m.join(".soci-snapshotter");
    let md = fs::metadata(&dir).unwrap();
    assert_eq!(md.mode(), 0o40500);
    assert_eq!((md.uid(), md.gid()), (0, 0));
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let file_name = format!("{}.json", layer.digest);
    assert_eq!(names, std::slice::from_ref(&file_name));
    let file = dir.join(&file_name);
    assert_eq!(fs::metadata(&file).unwrap().mode(), 0o100400);

    let parse = |bytes: Vec<u8>| {
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.ends_with("}\n"), "{text:?}");
        assert!(text.starts_with("{\"digest\":"), "{text:?}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let first = parse(fs::read(&file).unwrap());
    let second = parse(fs::read(&file).unwrap());
    assert_eq!(first["digest"], layer.digest.as_str());
    assert_eq!(first["size"], 4000);
    let (a, b) = (
        first["fetchedSize"].as_u64().unwrap(),
        second["fetchedSize"].as_u64().unwrap(),
    );
    assert!(b > a, "content is produced on every read: {a} then {b}");
    let pct = second["fetchedPercent"].as_f64().unwrap();
    assert!((pct - b as f64 * 100.0 / 4000.0).abs() < 1e-9);
    assert!(first.get("error").is_none());
    assert!(calls.load(Ordering::SeqCst) >= 4);
}

#[test]
fn failing_reads_are_eio() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("failing_reads_are_eio");
    let layer = Layer::new(&rich_entries());
    let x = layer
        .fixture
        .entries
        .iter()
        .find(|e| e.name == "./data/x")
        .unwrap();
    let bad = x.uncompressed_offset + 40_000..x.uncompressed_offset + 40_001;
    let source = Arc::new(layer.mem_source().fail_range(bad));
    let m = Mounted::new(
        layer.fs(source, TreeOptions::default(), layer.state()),
        scratch.path().join("mnt"),
    );
    let err = fs::read(m.join("data/x")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(EIO), "{err}");
    assert_eq!(fs::read(m.join("etc/hostname")).unwrap(), b"layer\n");
    // Metadata comes from the zTOC and stays available.
    assert_eq!(fs::metadata(m.join("data/x")).unwrap().len(), 70_000);
    drop(m);

    let m = Mounted::new(
        layer.fs(
            Arc::new(FailingSpanSource::new(layer.fixture.bytes.len() as u64)),
            TreeOptions::default(),
            layer.state(),
        ),
        scratch.path().join("mnt-dead"),
    );
    for f in ["etc/hostname", "bin/busybox", "data/odd"] {
        let err = fs::read(m.join(f)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(EIO), "{f}: {err}");
    }
    assert!(fs::read(m.join("data/empty")).unwrap().is_empty());
    assert_eq!(
        fs::read_link(m.join("lib64")).unwrap().to_str(),
        Some("usr/lib")
    );
}

#[test]
fn writes_are_erofs() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("writes_are_erofs");
    let layer = Layer::new(&rich_entries());
    let m = Mounted::new(
        mem_fs(&layer, TreeOptions::default()),
        scratch.path().join("mnt"),
    );
    let rofs = |r: std::io::Result<()>, what: &str| {
        let err = r.expect_err(what);
        assert_eq!(err.raw_os_error(), Some(EROFS), "{what}: {err}");
    };
    rofs(fs::File::create(m.join("new")).map(drop), "create");
    rofs(
        OpenOptions::new()
            .write(true)
            .open(m.join("etc/hostname"))
            .map(drop),
        "open for write",
    );
    rofs(
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(m.join("etc/hostname"))
            .map(drop),
        "open read-write",
    );
    rofs(fs::create_dir(m.join("d")), "mkdir");
    rofs(fs::remove_file(m.join("etc/hostname")), "unlink");
    rofs(fs::remove_dir(m.join("tmp")), "rmdir");
    rofs(fs::rename(m.join("old"), m.join("older")), "rename");
    rofs(std::os::unix::fs::symlink("x", m.join("sym")), "symlink");
    rofs(fs::hard_link(m.join("old"), m.join("old2")), "link");
    rofs(
        fs::set_permissions(m.join("old"), fs::Permissions::from_mode(0o600)),
        "chmod",
    );
    rofs(
        rustix::fs::lsetxattr(
            m.join("old"),
            "user.x",
            b"1",
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(std::io::Error::from),
        "setxattr",
    );
    assert_eq!(fs::read(m.join("old")).unwrap(), b"x");
    assert_eq!(
        rustix::fs::access(m.join("old"), rustix::fs::Access::WRITE_OK)
            .unwrap_err()
            .raw_os_error(),
        EROFS
    );
    rustix::fs::access(m.join("old"), rustix::fs::Access::READ_OK).unwrap();
    assert!(matches!(
        fs::read(m.join("missing")).unwrap_err().kind(),
        ErrorKind::NotFound
    ));
}

#[test]
fn mount_options_and_statfs() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("mount_options_and_statfs");
    let layer = Layer::new(&rich_entries());
    let m = Mounted::new(
        mem_fs(&layer, TreeOptions::default()),
        scratch.path().join("mnt"),
    );
    let line = mountinfo_line(&m.path).expect("mount is listed in mountinfo");
    let (mount_part, super_part) = line.split_once(" - ").unwrap();
    let mount_opts = mount_part.split(' ').nth(5).unwrap();
    assert!(mount_opts.split(',').any(|o| o == "ro"), "{line}");
    assert!(!mount_opts.split(',').any(|o| o == "nosuid"), "{line}");
    assert!(!mount_opts.split(',').any(|o| o == "nodev"), "{line}");
    let mut sp = super_part.split(' ');
    assert_eq!(sp.next(), Some("fuse"), "{line}");
    assert_eq!(sp.next(), Some("soci"), "{line}");
    let super_opts = sp.next().unwrap();
    assert!(super_opts.contains("allow_other"), "{line}");
    assert!(!super_opts.contains("default_permissions"), "{line}");

    let st = rustix::fs::statfs(&m.path).unwrap();
    assert_eq!(st.f_type as u64, FUSE_SUPER_MAGIC);
    assert_eq!(st.f_bsize, 4096);
    assert!(st.f_blocks > 0);
    assert!(st.f_files > 30);
    assert_eq!(st.f_bfree, 0);
    m.unmount();
    assert!(mountinfo_line(&scratch.path().join("mnt")).is_none());
    // A source used by a mount of its own is released after unmount.
    let source = Arc::new(MemSpanSource::new(layer.fixture.bytes.clone()));
    let m = Mounted::new(
        layer.fs(source.clone(), TreeOptions::default(), layer.state()),
        scratch.path().join("mnt2"),
    );
    fs::read(m.join("bin/busybox")).unwrap();
    assert!(source.reads() > 0);
    m.unmount();
    assert_eq!(Arc::strong_count(&source), 1);
}

#[test]
fn parallel_reads_agree() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("parallel_reads_agree");
    let layer = Layer::new(&rich_entries());
    let m = Mounted::new(
        mem_fs(&layer, TreeOptions::default()),
        scratch.path().join("mnt"),
    );
    let files: Vec<(String, Vec<u8>)> = layer
        .files()
        .filter(|(e, _)| e.entry_type == "reg" && !e.name.contains(".wh."))
        .map(|(e, c)| (crate::util::rel(&e.name), c.to_vec()))
        .collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (files, m) = (&files, &m);
            s.spawn(move || {
                for round in 0..3 {
                    for (i, (path, content)) in files.iter().enumerate() {
                        if (i + t + round) % 2 == 0 {
                            assert!(fs::read(m.join(path)).unwrap() == *content, "{path}");
                        } else {
                            let f = fs::File::open(m.join(path)).unwrap();
                            let mut buf = vec![0u8; 1000];
                            let off = content.len() / 3;
                            let n = std::os::unix::fs::FileExt::read_at(&f, &mut buf, off as u64)
                                .unwrap();
                            assert_eq!(&buf[..n], &content[off..(off + 1000).min(content.len())]);
                        }
                    }
                }
            });
        }
    });
}

#[test]
fn busy_unmount_detaches_lazily() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("busy_unmount_detaches_lazily");
    let layer = Layer::new(&rich_entries());
    let path = scratch.path().join("mnt");
    fs::create_dir_all(&path).unwrap();
    let handle = soci_layerfs::mount(
        mem_fs(&layer, TreeOptions::default()),
        &path,
        &soci_layerfs::MountOptions::default(),
    )
    .unwrap();
    let open = fs::File::open(path.join("etc/hostname")).unwrap();
    let err = handle
        .unmount()
        .expect_err("an open file keeps the mount busy");
    assert!(
        err.to_string().contains("unmount layer filesystem at"),
        "{err}"
    );
    assert!(mountinfo_line(&path).is_none(), "busy mount is detached");
    // The open file still reads through the detached mount.
    let mut buf = [0u8; 6];
    let n = std::os::unix::fs::FileExt::read_at(&open, &mut buf, 0).unwrap();
    assert_eq!(&buf[..n], b"layer\n");
    drop(open);
}

/// A copy of the mount in another mount namespace keeps the FUSE connection
/// open after our unmount; the unmount must still return (it aborts the
/// connection), and the other namespace then sees a dead filesystem, never
/// stale or wrong bytes.
#[test]
fn unmount_returns_when_another_mount_namespace_holds_the_mount() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("unmount_returns_when_another_mount_namespace_holds_the_mount");
    let layer = Layer::new(&rich_entries());
    let mnt = scratch.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let handle = soci_layerfs::mount(
        mem_fs(&layer, TreeOptions::default()),
        &mnt,
        &soci_layerfs::MountOptions { n_threads: 2 },
    )
    .unwrap();
    // A process in a new mount namespace (private propagation, the default of
    // unshare(1)), which has read a file through its copy of the mount.
    let ready = scratch.path().join("ready");
    let mut holder = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg(format!(
            "cat {} > {} && sleep 120",
            mnt.join("etc/hostname").display(),
            ready.display()
        ))
        .spawn()
        .expect("run unshare (util-linux)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while fs::read(&ready).map(|b| b.is_empty()).unwrap_or(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "the holder never read the file"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(fs::read(&ready).unwrap(), b"layer\n");

    // Returns (bounded by the Scratch watchdog), whatever it reports.
    let _ = handle.unmount();
    assert!(
        mountinfo_line(&mnt).is_none(),
        "still mounted in this namespace"
    );
    // In the holder's namespace the filesystem is gone: reads fail.
    let seen = std::process::Command::new("nsenter")
        .args(["-t", &holder.id().to_string(), "-m", "cat"])
        .arg(mnt.join("etc/hostname"))
        .output()
        .expect("run nsenter");
    assert!(
        !seen.status.success(),
        "the copy of the mount still serves: {:?}",
        String::from_utf8_lossy(&seen.stdout)
    );
    let _ = holder.kill();
    let _ = holder.wait();
}
