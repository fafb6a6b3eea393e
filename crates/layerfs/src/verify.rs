//! File verification on first read: before the first bytes of a regular file
//! are served, the tar header blocks in front of its data are read through the
//! span source, parsed as a tar reader would, and compared with the zTOC entry
//! the filesystem was built from. A zTOC that describes a file differently
//! from the layer (size, time, mode, owner, link, device, xattrs or name) makes
//! reads of that file fail with `EIO` instead of serving metadata the layer
//! does not have.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use soci_format::toc::{parse_entry_headers, parse_go_time};
use soci_format::ztoc::{FileMetadata, Ztoc, entry_type};

use crate::source::SpanSource;
use crate::tree::NodeId;

/// Largest run of header blocks accepted in front of a file's data: PAX and
/// GNU long-name bodies are limited to 1 MiB each by the tar reader, plus a
/// PAX sparse map.
const MAX_HEADER_BYTES: u64 = 4 << 20;

/// The zTOC entries of a layer and which files already passed verification.
pub(crate) struct Verifier {
    ztoc: Arc<Ztoc>,
    /// One flag per tree node (indexed by node index).
    verified: Box<[AtomicBool]>,
}

impl Verifier {
    pub(crate) fn new(ztoc: Arc<Ztoc>, nodes: usize) -> Verifier {
        Verifier {
            ztoc,
            verified: (0..nodes).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Check the regular file `node` whose data starts at `data_offset` of the
    /// layer. `Ok` once it matched (remembered); `Err` with the reason otherwise.
    pub(crate) fn verify(
        &self,
        node: NodeId,
        data_offset: u64,
        source: &dyn SpanSource,
    ) -> Result<(), String> {
        let flag = self.verified.get(node.index() as usize);
        if flag.is_some_and(|f| f.load(Ordering::Acquire)) {
            return Ok(());
        }
        let entry = self.entry_at(data_offset)?;
        let start = entry.tar_header_offset;
        let len = data_offset
            .checked_sub(start)
            .filter(|&l| l > 0 && l <= MAX_HEADER_BYTES)
            .ok_or_else(|| {
                format!("tar header range {start}..{data_offset} of the zTOC entry is invalid")
            })?;
        let mut buf = vec![0u8; len as usize];
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
        compare(entry, &found)?;
        if let Some(f) = flag {
            f.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// The one regular-file entry whose data starts at `offset`.
    fn entry_at(&self, offset: u64) -> Result<&FileMetadata, String> {
        let toc = &self.ztoc.toc;
        let first = toc.partition_point(|e| e.uncompressed_offset < offset);
        let mut found = toc[first..]
            .iter()
            .take_while(|e| e.uncompressed_offset == offset)
            .filter(|e| e.entry_type == entry_type::REG);
        match (found.next(), found.next()) {
            (Some(e), None) => Ok(e),
            (None, _) => Err(format!(
                "no regular-file zTOC entry has its data at offset {offset}"
            )),
            (Some(_), Some(_)) => Err(format!(
                "several zTOC entries claim the data at offset {offset}"
            )),
        }
    }
}

/// Compare what the zTOC says with what the layer's tar header says.
fn compare(toc: &FileMetadata, tar: &FileMetadata) -> Result<(), String> {
    let differ = |field: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        Err(format!(
            "{field} is {a:?} in the zTOC but {b:?} in the tar header"
        ))
    };
    if toc.name != tar.name {
        return differ("name", &toc.name, &tar.name);
    }
    if toc.entry_type != tar.entry_type {
        return differ("type", &toc.entry_type, &tar.entry_type);
    }
    if toc.uncompressed_size != tar.uncompressed_size {
        return differ("size", &toc.uncompressed_size, &tar.uncompressed_size);
    }
    let time = |s: &str| parse_go_time(s);
    if time(&toc.mod_time).is_none() || time(&toc.mod_time) != time(&tar.mod_time) {
        return differ("mtime", &toc.mod_time, &tar.mod_time);
    }
    if toc.linkname != tar.linkname {
        return differ("link name", &toc.linkname, &tar.linkname);
    }
    if toc.mode != tar.mode {
        return differ(
            "mode",
            &format!("{:o}", toc.mode),
            &format!("{:o}", tar.mode),
        );
    }
    if toc.uid != tar.uid {
        return differ("uid", &toc.uid, &tar.uid);
    }
    if toc.gid != tar.gid {
        return differ("gid", &toc.gid, &tar.gid);
    }
    if (toc.devmajor, toc.devminor) != (tar.devmajor, tar.devminor) {
        return differ(
            "device",
            &(toc.devmajor, toc.devminor),
            &(tar.devmajor, tar.devminor),
        );
    }
    let (a, b): (Vec<_>, Vec<_>) = (toc.xattrs().collect(), tar.xattrs().collect());
    if a != b {
        return differ("xattrs", &a, &b);
    }
    Ok(())
}
