//! File verification on first read: before the first bytes of a regular file
//! are served, the tar header blocks in front of its data are read through the
//! span source, parsed as a tar reader would, and compared with the zTOC entry
//! the filesystem was built from. A zTOC that describes a file differently
//! from the layer (size, time, mode, owner, link, device, xattrs or name) makes
//! reads of that file fail with `EIO` instead of serving metadata the layer
//! does not have.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};

use soci_format::toc::{parse_entry_headers, parse_go_time};
use soci_format::ztoc::{FileMetadata, Ztoc, entry_type};

use crate::source::SpanSource;
use crate::tree::{InodeTree, NodeId};

/// Largest run of header blocks accepted in front of a file's data: PAX and
/// GNU long-name bodies are limited to 1 MiB each by the tar reader, plus a
/// PAX sparse map.
const MAX_HEADER_BYTES: u64 = 4 << 20;

/// What the zTOC says about one node, kept instead of the decoded entries
/// (a few hundred bytes per file): where the entry's tar header starts, and a
/// keyed digest of every field the header check compares.
#[derive(Debug, Clone, Copy)]
enum Expected {
    /// Not a regular file, or no regular-file entry has its data here.
    Missing,
    /// Several regular-file entries claim the node's data offset.
    Ambiguous,
    /// The entry's modification time cannot be parsed.
    BadTime,
    /// The entry's headers start `header_len` bytes before its data.
    Entry { header_len: u32, fingerprint: u64 },
}

/// The zTOC's expectations for each regular file of a layer, and which files
/// already passed verification. About 17 bytes per node; built with
/// [`FileChecksBuilder`] and given to
/// [`LayerFs::with_file_checks`](crate::LayerFs::with_file_checks).
pub struct FileChecks {
    /// Keys the fingerprints; random per filesystem, so a zTOC cannot be made
    /// to collide with a header it does not match.
    key: RandomState,
    /// Indexed by node index.
    expected: Box<[Expected]>,
    /// One flag per tree node (indexed by node index).
    verified: Box<[AtomicBool]>,
}

impl std::fmt::Debug for FileChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileChecks")
            .field("nodes", &self.expected.len())
            .finish_non_exhaustive()
    }
}

/// Collects what [`FileChecks`] needs from the TOC entries, given one at a
/// time in read order (the order of `Ztoc::toc`).
pub struct FileChecksBuilder {
    key: RandomState,
    /// Regular-file entries by data offset: (offset, expectation).
    regular: Vec<(u64, Expected)>,
}

impl Default for FileChecksBuilder {
    fn default() -> FileChecksBuilder {
        FileChecksBuilder::new()
    }
}

impl FileChecksBuilder {
    /// An empty builder with a fresh random key.
    pub fn new() -> FileChecksBuilder {
        FileChecksBuilder {
            key: RandomState::new(),
            regular: Vec::new(),
        }
    }

    /// Note the next entry (only regular files are kept, about 24 bytes each).
    pub fn add(&mut self, e: &FileMetadata) {
        if e.entry_type != entry_type::REG {
            return;
        }
        let offset = e.uncompressed_offset;
        let header_len = offset
            .checked_sub(e.tar_header_offset)
            .filter(|&l| l > 0 && l <= MAX_HEADER_BYTES)
            .map_or(0, |l| l as u32);
        let expected = match fingerprint(&self.key, e) {
            Some(fingerprint) => Expected::Entry {
                header_len,
                fingerprint,
            },
            None => Expected::BadTime,
        };
        self.regular.push((offset, expected));
    }

    /// The checks of `tree`'s regular files; `tree` must be built from the
    /// same entries.
    pub fn finish(mut self, tree: &InodeTree) -> FileChecks {
        // Entries come sorted by offset; a stable sort keeps that cheap and
        // makes any other order work too.
        self.regular.sort_by_key(|&(offset, _)| offset);
        let regular = &self.regular;
        let expected = (0..tree.node_count() as u32)
            .map(|i| {
                let Some(range) = tree.node(i).and_then(|n| tree.data_range(n)) else {
                    return Expected::Missing;
                };
                let first = regular.partition_point(|&(o, _)| o < range.offset);
                let mut found = regular[first..]
                    .iter()
                    .take_while(|&&(o, _)| o == range.offset);
                match (found.next(), found.next()) {
                    (Some(&(_, e)), None) => e,
                    (None, _) => Expected::Missing,
                    (Some(_), Some(_)) => Expected::Ambiguous,
                }
            })
            .collect();
        FileChecks {
            key: self.key,
            expected,
            verified: (0..tree.node_count())
                .map(|_| AtomicBool::new(false))
                .collect(),
        }
    }
}

impl FileChecks {
    /// The checks of `tree`'s regular files from the `ztoc` it was built from.
    pub fn new(ztoc: &Ztoc, tree: &InodeTree) -> FileChecks {
        let mut b = FileChecksBuilder::new();
        for e in &ztoc.toc {
            b.add(e);
        }
        b.finish(tree)
    }

    /// Check the regular file `node` whose data starts at `data_offset` of the
    /// layer. `Ok` once it matched (remembered); `Err` with the reason otherwise.
    pub(crate) fn verify(
        &self,
        tree: &InodeTree,
        node: NodeId,
        data_offset: u64,
        source: &dyn SpanSource,
    ) -> Result<(), String> {
        let index = node.index() as usize;
        let flag = self.verified.get(index);
        if flag.is_some_and(|f| f.load(Ordering::Acquire)) {
            return Ok(());
        }
        let (header_len, expected) = match self.expected.get(index) {
            Some(Expected::Entry {
                header_len,
                fingerprint,
            }) => (u64::from(*header_len), *fingerprint),
            Some(Expected::Ambiguous) => {
                return Err(format!(
                    "several zTOC entries claim the data at offset {data_offset}"
                ));
            }
            Some(Expected::BadTime) => {
                return Err("the zTOC entry's modification time is not a valid time".into());
            }
            Some(Expected::Missing) | None => {
                return Err(format!(
                    "no regular-file zTOC entry has its data at offset {data_offset}"
                ));
            }
        };
        if header_len == 0 {
            return Err(format!(
                "the tar header range in front of offset {data_offset} of the zTOC entry is invalid"
            ));
        }
        let start = data_offset - header_len;
        let mut buf = vec![0u8; header_len as usize];
        let mut done = 0usize;
        while done < buf.len() {
            match source.read_at(start + done as u64, &mut buf[done..]) {
                Ok(0) => return Err(format!("layer ended inside the tar header at {start}")),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading the tar header at {start}: {e}")),
            }
        }
        let found = parse_entry_headers(&buf, start)
            .map_err(|e| format!("parsing the tar header at {start}: {e}"))?;
        if found.uncompressed_offset != data_offset {
            return Err(format!(
                "the tar header at {start} ends at {}, the zTOC says the data starts at {data_offset}",
                found.uncompressed_offset
            ));
        }
        if fingerprint(&self.key, &found) != Some(expected) {
            return Err(differing_field(tree, node, &found));
        }
        if let Some(f) = flag {
            f.store(true, Ordering::Release);
        }
        Ok(())
    }
}

/// Keyed digest of the fields of `e` the header check compares: name, type,
/// size, modification time (parsed), link name, mode, owner, device numbers
/// and xattrs. `None` when the time cannot be parsed.
fn fingerprint(key: &RandomState, e: &FileMetadata) -> Option<u64> {
    let time = parse_go_time(&e.mod_time)?;
    let mut h = key.build_hasher();
    (
        &e.name,
        &e.entry_type,
        e.uncompressed_size,
        time,
        &e.linkname,
        e.mode,
        e.uid,
        e.gid,
        e.devmajor,
        e.devminor,
    )
        .hash(&mut h);
    e.xattrs().collect::<Vec<_>>().hash(&mut h);
    Some(h.finish())
}

/// Which field of the tar header `tar` differs from what the tree (built from
/// the zTOC) serves for `node`; the fields the tree does not keep are named
/// together.
fn differing_field(tree: &InodeTree, node: NodeId, tar: &FileMetadata) -> String {
    let attr = tree.attr(node);
    let differ = |field: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        format!("{field} is {a:?} in the zTOC but {b:?} in the tar header")
    };
    let tar_time = parse_go_time(&tar.mod_time).map(|(s, n)| {
        std::time::UNIX_EPOCH
            .checked_add(std::time::Duration::new(s.max(0) as u64, n))
            .filter(|_| s >= 0)
    });
    if attr.size != tar.uncompressed_size {
        differ("size", &attr.size, &tar.uncompressed_size)
    } else if i64::from(attr.perm()) != tar.mode & 0o7777 {
        differ(
            "mode",
            &format!("{:o}", attr.perm()),
            &format!("{:o}", tar.mode & 0o7777),
        )
    } else if attr.uid != tar.uid {
        differ("uid", &attr.uid, &tar.uid)
    } else if attr.gid != tar.gid {
        differ("gid", &attr.gid, &tar.gid)
    } else if tar_time.is_some_and(|t| t != Some(attr.mtime)) {
        differ("mtime", &attr.mtime, &tar.mod_time)
    } else {
        format!(
            "the zTOC entry differs from the tar header (name {:?}, type, mode bits, mtime, link name, device numbers or xattrs)",
            tar.name
        )
    }
}
