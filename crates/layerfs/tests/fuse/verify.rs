//! File verification on first read: a zTOC entry that disagrees with the
//! layer's tar header makes reads of that file fail with EIO, other files
//! still read, and a layer that matches its zTOC reads entirely.

use std::sync::Arc;

use soci_format::testutil::{Rng, TarEntry};
use soci_format::ztoc::{FileMetadata, Ztoc};
use soci_layerfs::{InodeTree, LayerFs, OpError, TreeOptions};

use crate::util::{Layer, Mounted, Scratch, fuse_required};

const EIO: i32 = 5;

fn entries() -> Vec<TarEntry> {
    let mut rng = Rng::new(11);
    vec![
        TarEntry::dir("./"),
        TarEntry::file("./a.txt", "alpha\n").owner(1000, 1000),
        TarEntry::file("./bin/tool", rng.bytes(100_000)).mode(0o755),
        TarEntry::file(format!("./long/{}", "n".repeat(150)), "pax name\n"),
        TarEntry::file("./x", "xattr\n").xattr("user.k", "v"),
        TarEntry::file("./t", "time\n").mtime(1_600_000_000, 5),
        TarEntry::hardlink("./a-link", "./a.txt"),
        TarEntry::file("./last", "last\n"),
    ]
}

/// `layer`'s filesystem built from `ztoc` (possibly altered), verifying reads.
fn fs_with(layer: &Layer, ztoc: Ztoc, verify: bool) -> LayerFs {
    let tree = InodeTree::from_ztoc(&ztoc, &TreeOptions::default()).unwrap();
    let fs = LayerFs::new(
        tree,
        Arc::new(layer.mem_source()),
        &layer.digest,
        layer.state(),
        Default::default(),
    );
    if verify {
        fs.with_verification(&ztoc)
    } else {
        fs
    }
}

/// Read a whole file of `fs` by path.
fn read(fs: &LayerFs, path: &str) -> Result<Vec<u8>, OpError> {
    let node = fs.tree().resolve(path).expect("path exists");
    let ino = fs.ino(node);
    let size = fs.getattr(ino)?.size;
    let open = fs.open(ino, false)?;
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let chunk = fs.read(ino, open.fh, out.len() as u64, 65536)?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn regular_files(ztoc: &Ztoc) -> Vec<String> {
    ztoc.toc
        .iter()
        .filter(|e| e.entry_type == "reg")
        .map(|e| e.name.trim_start_matches("./").to_string())
        .collect()
}

fn content(layer: &Layer, name: &str) -> Vec<u8> {
    layer
        .files()
        .find(|(m, _)| m.name.trim_start_matches("./") == name)
        .map(|(_, c)| c.to_vec())
        .unwrap()
}

#[test]
fn matching_ztoc_reads_every_file() {
    let layer = Layer::gzip(&entries());
    let fs = fs_with(&layer, layer.ztoc.clone(), true);
    for name in regular_files(&layer.ztoc) {
        assert_eq!(read(&fs, &name).unwrap(), content(&layer, &name), "{name}");
        // Verified files stay verified.
        assert_eq!(read(&fs, &name).unwrap(), content(&layer, &name), "{name}");
    }
    assert_eq!(read(&fs, "a-link").unwrap(), b"alpha\n");
}

/// Each alteration of one entry makes that file unreadable and only it.
#[test]
fn altered_entry_is_eio_and_other_files_read() {
    type Alter = fn(&mut FileMetadata);
    let cases: [(&str, &str, Alter); 8] = [
        ("mode", "bin/tool", |e| e.mode = 0o4755),
        ("uid", "a.txt", |e| e.uid = 0),
        ("gid", "a.txt", |e| e.gid = 7),
        ("mtime", "t", |e| {
            e.mod_time = soci_format::toc::format_go_time(1_600_000_001, 5)
        }),
        ("xattr", "x", |e| {
            e.pax_records
                .insert("SCHILY.xattr.user.k".into(), "forged".into());
        }),
        ("size", "last", |e| e.uncompressed_size -= 1),
        ("device", "a.txt", |e| e.devmajor = 3),
        ("name", "a.txt", |e| e.name = "./a.txt/".into()),
    ];
    let layer = Layer::new(&entries());
    for (what, victim, alter) in cases {
        let mut ztoc = layer.ztoc.clone();
        let entry = ztoc
            .toc
            .iter_mut()
            .find(|e| e.name.trim_start_matches("./") == victim)
            .unwrap();
        alter(entry);
        // As the daemon loads it: through the serialized form.
        let ztoc = Ztoc::from_bytes(&ztoc.to_bytes()).unwrap();
        let fs = fs_with(&layer, ztoc.clone(), true);
        let node = fs.tree().resolve(victim);
        if what == "name" {
            // A name the tree cleans to the same path: only the header check sees it.
            assert!(node.is_some());
        }
        assert_eq!(read(&fs, victim), Err(OpError::Io), "{what}");
        assert_eq!(read(&fs, victim), Err(OpError::Io), "{what}: fails again");
        for name in regular_files(&layer.ztoc) {
            if name != victim {
                assert_eq!(
                    read(&fs, &name).unwrap(),
                    content(&layer, &name),
                    "{what}: {name}"
                );
            }
        }
        // The same zTOC without verification serves the file.
        let unchecked = fs_with(&layer, ztoc, false);
        assert!(read(&unchecked, victim).is_ok(), "{what}");
    }
}

#[test]
fn altered_entry_is_eio_through_fuse() {
    if !fuse_required() {
        return;
    }
    let scratch = Scratch::new("altered_entry_is_eio_through_fuse");
    let layer = Layer::gzip(&entries());
    let mut ztoc = layer.ztoc.clone();
    ztoc.toc
        .iter_mut()
        .find(|e| e.name == "./bin/tool")
        .unwrap()
        .mode = 0o4777;
    let ztoc = Ztoc::from_bytes(&ztoc.to_bytes()).unwrap();
    let m = Mounted::new(fs_with(&layer, ztoc, true), scratch.path().join("mnt"));
    let err = std::fs::read(m.join("bin/tool")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(EIO), "{err}");
    assert_eq!(std::fs::read(m.join("a.txt")).unwrap(), b"alpha\n");
    assert_eq!(
        std::fs::read(m.join(&format!("long/{}", "n".repeat(150)))).unwrap(),
        b"pax name\n"
    );
    m.unmount();
}
