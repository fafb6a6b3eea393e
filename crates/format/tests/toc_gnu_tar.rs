//! TOCs of archives made by the system's GNU tar from a real directory tree: every
//! entry's data must be at its offset, names, links and owners must match the
//! tree. Needs `/usr/bin/tar` (GNU); without it the tests print why they did nothing,
//! and `SOCI_REQUIRE_GNU_TAR=1` turns that into a failure.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use soci_format::testutil::{BLOCK, GNU_RECORD_SIZE, Rng};
use soci_format::toc::{Toc, TocError, build_toc, parse_go_time};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("soci-toc-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn gnu_tar_available() -> bool {
    let ok = Command::new("tar")
        .arg("--version")
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("GNU tar")
        });
    if !ok {
        assert!(
            std::env::var_os("SOCI_REQUIRE_GNU_TAR").is_none(),
            "SOCI_REQUIRE_GNU_TAR is set but GNU tar is not available"
        );
        eprintln!("toc_gnu_tar: NOT RUN: GNU tar not found");
    }
    ok
}

fn tar(root: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("tar")
        .args(args)
        .arg("-cf")
        .arg("-")
        .arg("-C")
        .arg(root)
        .arg(".")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Try to set a user xattr with Python (no xattr syscall in std).
fn set_xattr(path: &Path, name: &str, value: &str) -> bool {
    Command::new("python3")
        .arg("-c")
        .arg("import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())")
        .arg(path)
        .arg(name)
        .arg(value)
        .status()
        .is_ok_and(|s| s.success())
}

/// The sample tree; returns whether the xattr could be set.
fn make_tree(root: &Path, long_names: bool) -> bool {
    let mut rng = Rng::new(42);
    fs::create_dir_all(root.join("d/sub")).unwrap();
    fs::write(root.join("d/small.txt"), "hello\n").unwrap();
    fs::write(root.join("d/empty"), "").unwrap();
    fs::write(root.join("d/block-sized"), vec![b'b'; 1024]).unwrap();
    fs::write(root.join("d/sub/big.bin"), rng.bytes(300_000)).unwrap();
    fs::write(root.join("d/.wh.deleted"), "").unwrap();
    fs::write(root.join("d/sub/.wh..wh..opq"), "").unwrap();
    symlink("small.txt", root.join("d/link")).unwrap();
    fs::hard_link(root.join("d/small.txt"), root.join("d/hard")).unwrap();
    let fifo = Command::new("mkfifo").arg(root.join("d/fifo")).status();
    assert!(fifo.is_ok_and(|s| s.success()), "mkfifo failed");
    if long_names {
        let deep = "long-component-name-0123456789/".repeat(6);
        fs::create_dir_all(root.join(&deep)).unwrap();
        fs::write(
            root.join(format!("{deep}file-with-a-long-name.txt")),
            "deep",
        )
        .unwrap();
        fs::create_dir_all(root.join("ünïcødé")).unwrap();
        fs::write(root.join("ünïcødé/日本語.txt"), "unicode").unwrap();
        symlink("t".repeat(150), root.join("d/long-target")).unwrap();
    }
    set_xattr(&root.join("d/small.txt"), "user.soci", "xattr-value")
}

/// Check a TOC against the tree it was made from.
fn verify(toc: &Toc, archive: &[u8], root: &Path, what: &str, excluded: &[&str]) {
    // End of archive: two zero blocks, then only record padding.
    let size = toc.uncompressed_archive_size as usize;
    assert_eq!(size % BLOCK, 0, "{what}");
    assert!(
        archive[size - 2 * BLOCK..].iter().all(|&b| b == 0),
        "{what}"
    );
    assert_eq!(archive.len() % GNU_RECORD_SIZE, 0, "{what}");

    let mut names = BTreeSet::new();
    for e in &toc.entries {
        let rel = e.name.trim_start_matches("./").trim_end_matches('/');
        let path = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        names.insert(rel.to_string());
        let meta = fs::symlink_metadata(&path).unwrap_or_else(|_| panic!("{what}: {}", e.name));
        assert_eq!(
            (e.uid, e.gid),
            (meta.uid(), meta.gid()),
            "{what}: {}",
            e.name
        );
        assert_eq!(
            e.mode,
            i64::from(meta.mode() & 0o7777),
            "{what}: {}",
            e.name
        );
        assert_eq!(
            parse_go_time(&e.mod_time).unwrap().0,
            meta.mtime(),
            "{what}: {}",
            e.name
        );
        let data = &archive[e.uncompressed_offset as usize..][..e.uncompressed_size as usize];
        match e.entry_type.as_str() {
            "reg" => assert_eq!(data, fs::read(&path).unwrap(), "{what}: {}", e.name),
            "dir" => assert!(meta.is_dir(), "{what}: {}", e.name),
            "symlink" => {
                assert_eq!(
                    Path::new(&e.linkname),
                    fs::read_link(&path).unwrap(),
                    "{what}"
                );
            }
            "hardlink" => {
                let target = root.join(e.linkname.trim_start_matches("./"));
                assert_eq!(fs::metadata(target).unwrap().ino(), meta.ino(), "{what}");
            }
            "fifo" => assert!(meta.file_type().is_fifo(), "{what}: {}", e.name),
            other => panic!("{what}: unexpected type {other} for {}", e.name),
        }
    }
    // Every file of the tree is in the archive.
    let mut expected = BTreeSet::new();
    collect(root, root, &mut expected);
    for x in excluded {
        expected.remove(*x);
    }
    assert_eq!(names, expected, "{what}");
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    let rel = dir
        .strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    out.insert(rel);
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            collect(root, &p, out);
        } else {
            out.insert(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn gnu_tar_archives_in_every_format() {
    if !gnu_tar_available() {
        return;
    }
    let full = TempDir::new("gnu-full");
    let xattr_set = make_tree(&full.0, true);
    let short = TempDir::new("gnu-short");
    make_tree(&short.0, false);
    for (root, args) in [
        (&full.0, vec!["--format=gnu"]),
        (&full.0, vec!["--format=oldgnu"]),
        (&full.0, vec!["--format=posix"]),
        (&full.0, vec!["--format=posix", "--xattrs"]),
        (&short.0, vec!["--format=ustar"]),
        (&short.0, vec!["--format=v7", "--exclude=./d/fifo"]),
    ] {
        let archive = tar(root, &args);
        let what = format!("tar {args:?}");
        let toc = build_toc(&mut &archive[..]).unwrap_or_else(|e| panic!("{what}: {e}"));
        // V7 cannot hold the fifo, so it is excluded from the archive.
        let excluded: &[&str] = if args.contains(&"--format=v7") {
            &["d/fifo"]
        } else {
            &[]
        };
        verify(&toc, &archive, root, &what, excluded);
        if args.contains(&"--xattrs") {
            let small = toc
                .entries
                .iter()
                .find(|e| e.name == "./d/small.txt")
                .unwrap();
            if xattr_set {
                assert_eq!(small.pax_records["SCHILY.xattr.user.soci"], "xattr-value");
            } else {
                eprintln!("toc_gnu_tar: xattr part NOT RUN: could not set a user xattr here");
            }
        }
        if args.contains(&"--format=posix") {
            // GNU tar's PAX headers carry sub-second times; Go (and we) use them.
            assert!(
                toc.entries
                    .iter()
                    .any(|e| e.pax_records.contains_key("mtime"))
            );
        }
    }
}

fn make_sparse(root: &Path) -> u64 {
    let len: u64 = 4 << 20;
    let mut f = fs::File::create(root.join("sparse.bin")).unwrap();
    f.set_len(len).unwrap();
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    f.write_all(b"hello").unwrap();
    f.seek(SeekFrom::Start(len - 5)).unwrap();
    f.write_all(b"world").unwrap();
    len
}

#[test]
fn gnu_tar_sparse_files() {
    if !gnu_tar_available() {
        return;
    }
    let dir = TempDir::new("gnu-sparse");
    let len = make_sparse(&dir.0);
    for version in ["0.0", "0.1", "1.0"] {
        let archive = tar(
            &dir.0,
            &[
                "--format=posix",
                "--sparse",
                &format!("--sparse-version={version}"),
            ],
        );
        let toc = build_toc(&mut &archive[..]).unwrap_or_else(|e| panic!("sparse {version}: {e}"));
        let e = toc.entries.iter().find(|e| e.entry_type == "reg").unwrap();
        // Go reports the real name and size; the offset is where the stored
        // fragments begin (after the in-data map for 1.0).
        assert!(e.name.ends_with("sparse.bin"), "{version}: {}", e.name);
        if version != "0.0" {
            assert_eq!(e.name, "./sparse.bin", "{version}");
        }
        assert_eq!(e.uncompressed_size, len, "{version}");
        assert_eq!(
            &archive[e.uncompressed_offset as usize..][..5],
            b"hello",
            "{version}"
        );
        assert!(e.pax_records.keys().any(|k| k.starts_with("GNU.sparse.")));
    }
    // The old GNU sparse header type 'S' is rejected, as upstream does.
    let archive = tar(&dir.0, &["--format=gnu", "--sparse"]);
    match build_toc(&mut &archive[..]) {
        Err(TocError::UnsupportedType {
            typeflag: b'S',
            name,
            ..
        }) => {
            assert_eq!(name, "./sparse.bin");
        }
        other => panic!("expected an 'S' error, got {other:?}"),
    }
}

#[test]
fn gnu_tar_multi_volume_and_label_headers_are_rejected() {
    if !gnu_tar_available() {
        return;
    }
    let dir = TempDir::new("gnu-label");
    fs::write(dir.0.join("f"), "x").unwrap();
    let archive = tar(&dir.0, &["--format=gnu", "--label=my volume"]);
    let err = build_toc(&mut &archive[..]).unwrap_err();
    assert!(
        matches!(err, TocError::UnsupportedType { typeflag: b'V', .. }),
        "{err}"
    );
}
