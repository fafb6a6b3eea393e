//! An independent, deliberately naive model of what a mounted layer must show,
//! computed from the generated tar (not from the crate's inode table), and a
//! checker that compares a mount point against it with plain syscalls.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use soci_format::toc::parse_go_time;
use soci_format::ztoc::entry_type;

use crate::util::{Layer, rel};

#[derive(Debug, Clone)]
pub struct Inode {
    pub kind: &'static str,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    pub major: i64,
    pub minor: i64,
    pub content: Vec<u8>,
    pub target: String,
    pub xattrs: BTreeMap<String, String>,
    pub whiteout: bool,
}

impl Inode {
    fn implicit_dir() -> Inode {
        Inode {
            kind: entry_type::DIR,
            perm: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: (0, 0),
            major: 0,
            minor: 0,
            content: Vec::new(),
            target: String::new(),
            xattrs: BTreeMap::new(),
            whiteout: false,
        }
    }
}

/// Path (relative, "" = root) -> what must be there.
pub struct Expected {
    pub nodes: Vec<Inode>,
    /// Presented names -> node.
    pub paths: BTreeMap<String, usize>,
    pub nlink: HashMap<usize, u64>,
    pub opaque: Vec<String>,
}

fn parent_of(p: &str) -> &str {
    p.rsplit_once('/').map_or("", |(d, _)| d)
}

fn base_of(p: &str) -> &str {
    p.rsplit_once('/').map_or(p, |(_, b)| b)
}

pub fn expected(layer: &Layer) -> Expected {
    let mut nodes = vec![Inode::implicit_dir()];
    let mut map: BTreeMap<String, usize> = BTreeMap::new();
    map.insert(String::new(), 0);
    for (m, content) in layer.files() {
        let p = rel(&m.name);
        // Implicit parents.
        let mut prefix = String::new();
        for comp in parent_of(&p).split('/').filter(|c| !c.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            if !map.contains_key(&prefix) {
                nodes.push(Inode::implicit_dir());
                map.insert(prefix.clone(), nodes.len() - 1);
            }
        }
        if m.entry_type == entry_type::HARDLINK {
            let target = map[&rel(&m.linkname)];
            map.insert(p, target);
            continue;
        }
        let node = Inode {
            kind: match m.entry_type.as_str() {
                entry_type::REG => entry_type::REG,
                entry_type::DIR => entry_type::DIR,
                entry_type::SYMLINK => entry_type::SYMLINK,
                entry_type::CHAR => entry_type::CHAR,
                entry_type::BLOCK => entry_type::BLOCK,
                entry_type::FIFO => entry_type::FIFO,
                other => panic!("fixture has entry type {other}"),
            },
            perm: m.mode as u32 & 0o7777,
            uid: m.uid,
            gid: m.gid,
            size: match m.entry_type.as_str() {
                entry_type::SYMLINK => m.linkname.len() as u64,
                _ => content.len() as u64,
            },
            mtime: parse_go_time(&m.mod_time).map_or((0, 0), |(s, n)| (s, i64::from(n))),
            major: m.devmajor,
            minor: m.devminor,
            content: content.to_vec(),
            target: m.linkname.clone(),
            xattrs: m
                .xattrs()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            whiteout: false,
        };
        match map.get(&p) {
            Some(&existing)
                if m.entry_type == entry_type::DIR && nodes[existing].kind == entry_type::DIR =>
            {
                nodes[existing] = node;
            }
            _ => {
                nodes.push(node);
                map.insert(p, nodes.len() - 1);
            }
        }
    }

    let mut paths = BTreeMap::new();
    let mut opaque = Vec::new();
    for (p, &id) in &map {
        let base = base_of(p);
        if base == ".wh..wh..opq" {
            opaque.push(parent_of(p).to_string());
            continue;
        }
        match base.strip_prefix(".wh.") {
            None => {
                paths.insert(p.clone(), id);
            }
            Some(hidden) => {
                if hidden.is_empty() || hidden.starts_with(".wh.") {
                    continue;
                }
                let sibling = if parent_of(p).is_empty() {
                    hidden.to_string()
                } else {
                    format!("{}/{hidden}", parent_of(p))
                };
                if map.contains_key(&sibling) {
                    continue;
                }
                nodes.push(Inode {
                    kind: entry_type::CHAR,
                    perm: 0,
                    uid: 0,
                    gid: 0,
                    size: 0,
                    mtime: nodes[id].mtime,
                    major: 0,
                    minor: 0,
                    content: Vec::new(),
                    target: String::new(),
                    xattrs: BTreeMap::new(),
                    whiteout: true,
                });
                paths.insert(sibling, nodes.len() - 1);
            }
        }
    }
    let mut nlink: HashMap<usize, u64> = HashMap::new();
    for (p, &id) in &paths {
        if nodes[id].kind == entry_type::DIR {
            *nlink.entry(id).or_insert(2) += 0;
            if !p.is_empty() {
                let parent = paths[parent_of(p)];
                *nlink.entry(parent).or_insert(2) += 1;
            }
        } else {
            *nlink.entry(id).or_insert(0) += 1;
        }
    }
    Expected {
        nodes,
        paths,
        nlink,
        opaque,
    }
}

fn kind_bits(kind: &str) -> u32 {
    match kind {
        entry_type::REG => 0o100000,
        entry_type::DIR => 0o040000,
        entry_type::SYMLINK => 0o120000,
        entry_type::CHAR => 0o020000,
        entry_type::BLOCK => 0o060000,
        entry_type::FIFO => 0o010000,
        other => panic!("{other}"),
    }
}

/// glibc `makedev`.
pub fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
}

fn list_xattrs(path: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 64 << 10];
    let n = rustix::fs::llistxattr(path, &mut buf[..])
        .unwrap_or_else(|e| panic!("llistxattr {}: {e}", path.display()));
    buf[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect()
}

fn get_xattr(path: &Path, name: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 64 << 10];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..])
        .unwrap_or_else(|e| panic!("lgetxattr {} {name}: {e}", path.display()));
    buf.truncate(n);
    buf
}

/// Compare everything under `mnt` with the model. Returns the number of paths checked.
pub fn check_mount(mnt: &Path, exp: &Expected, opaque_xattr: &str, with_xattrs: bool) -> usize {
    // Children of every presented directory, in byte order.
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in exp.paths.keys().filter(|p| !p.is_empty()) {
        children.entry(parent_of(p)).or_default().push(base_of(p));
    }
    let mut ino_of: HashMap<usize, u64> = HashMap::new();
    for (p, &id) in &exp.paths {
        let node = &exp.nodes[id];
        let path = if p.is_empty() {
            mnt.to_path_buf()
        } else {
            mnt.join(p)
        };
        let md = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        let what = format!("{p:?} ({})", node.kind);
        assert_eq!(
            md.mode(),
            kind_bits(node.kind) | node.perm,
            "mode of {what}"
        );
        if node.uid != u32::MAX {
            assert_eq!(md.uid(), node.uid, "uid of {what}");
        }
        if node.gid != u32::MAX {
            assert_eq!(md.gid(), node.gid, "gid of {what}");
        }
        if node.kind != entry_type::DIR {
            assert_eq!(md.size(), node.size, "size of {what}");
            assert_eq!(
                md.blocks(),
                node.size.div_ceil(4096) * 8,
                "blocks of {what}"
            );
        }
        assert_eq!(md.blksize(), 4096, "blksize of {what}");
        assert_eq!((md.mtime(), md.mtime_nsec()), node.mtime, "mtime of {what}");
        assert_eq!(md.nlink(), exp.nlink[&id], "nlink of {what}");
        if let Some(&ino) = ino_of.get(&id) {
            assert_eq!(md.ino(), ino, "hardlinks of {what} share the inode");
        } else {
            ino_of.insert(id, md.ino());
        }
        match node.kind {
            entry_type::REG => {
                let data =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                assert!(data == node.content, "content of {what}");
                if data.len() > 2 {
                    let f = std::fs::File::open(&path).unwrap();
                    let mid = data.len() / 2;
                    let mut buf = vec![0u8; data.len() - mid + 100];
                    let n = f.read_at(&mut buf, mid as u64).unwrap();
                    assert_eq!(&buf[..n], &data[mid..], "pread of {what}");
                    assert_eq!(f.read_at(&mut buf, data.len() as u64 + 5).unwrap(), 0);
                }
            }
            entry_type::SYMLINK => {
                let t = std::fs::read_link(&path).unwrap();
                assert_eq!(t.to_str().unwrap(), node.target, "target of {what}");
            }
            entry_type::CHAR | entry_type::BLOCK
                if (0..4096).contains(&node.major) && (0..1 << 20).contains(&node.minor) =>
            {
                assert_eq!(
                    md.rdev(),
                    makedev(node.major as u64, node.minor as u64),
                    "rdev of {what}"
                );
            }
            entry_type::DIR => {
                let mut got: Vec<String> = std::fs::read_dir(&path)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect();
                let mut want: Vec<String> = children
                    .get(p.as_str())
                    .map(|v| v.iter().map(|s| s.to_string()).collect())
                    .unwrap_or_default();
                if p.is_empty() {
                    want.push(".soci-snapshotter".to_string());
                }
                want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
                assert_eq!(
                    got, want,
                    "listing of {what} (kernel order = readdir order)"
                );
                got.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
                assert_eq!(got, want, "listing of {what} is sorted");
            }
            _ => {}
        }
        // user.* xattrs are only readable on files and directories (VFS rule).
        if matches!(node.kind, entry_type::REG | entry_type::DIR) {
            let mut want: BTreeMap<String, Vec<u8>> = if with_xattrs {
                node.xattrs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                    .collect()
            } else {
                BTreeMap::new()
            };
            if exp.opaque.contains(p) {
                want.entry(opaque_xattr.to_string())
                    .or_insert(b"y".to_vec());
            }
            let names = list_xattrs(&path);
            let got: BTreeMap<String, Vec<u8>> = names
                .iter()
                .map(|n| (n.clone(), get_xattr(&path, n)))
                .collect();
            assert_eq!(got, want, "xattrs of {what}");
        }
        if node.whiteout {
            assert_eq!(md.rdev(), 0, "whiteout {what} is 0:0");
        }
    }
    exp.paths.len()
}
