//! Deterministic tar and gzip fixtures for tests (feature `testutil`).
//!
//! * [`TarEntry`] + [`TarWriter`] (or [`build_tar`]) write a tar byte for byte and
//!   record, for every entry, the [`FileMetadata`] Go's `archive/tar` reader (and
//!   therefore upstream SOCI) reports for it, plus the entry's content.
//! * [`RawHeader`] writes single header blocks with any field values, for tests of
//!   malformed or unusual archives; [`TarWriter::append_block`] and
//!   [`TarWriter::append_raw`] put them in a stream.
//! * [`random_tar`] makes a random archive from a seed, mixing every entry kind and
//!   encoding this module knows.
//! * [`gzip_members`] compresses a byte string as one or more concatenated gzip
//!   members, optionally with FNAME/COMMENT/EXTRA header fields.
//!
//! Everything is deterministic: the same input always gives the same bytes.

use std::collections::BTreeMap;
use std::io::Write;

use crate::toc::{Toc, format_go_time};
use crate::ztoc::{FileMetadata, entry_type};

/// Size of a tar block.
pub const BLOCK: usize = 512;
/// GNU tar's default record size (20 blocks).
pub const GNU_RECORD_SIZE: usize = 10240;
/// Modification time [`TarEntry`] uses unless told otherwise (2023-11-14T22:13:20Z).
pub const DEFAULT_MTIME: i64 = 1_700_000_000;

// ---------------------------------------------------------------------------------
// Raw header blocks
// ---------------------------------------------------------------------------------

/// Magic of a header block, which decides how readers interpret the upper fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderFormat {
    /// `ustar\0` `00`: uname/gname/devices and a 155-byte name prefix.
    #[default]
    Ustar,
    /// `ustar ` ` \0` (GNU tar): no prefix; atime/ctime where ustar has its prefix.
    Gnu,
    /// No magic (Unix V7): only name, mode, ids, size, mtime, type and link name.
    V7,
    /// `ustar\0` with a `tar\0` trailer (Schily star): 131-byte prefix.
    Star,
}

/// All fields of one header block, written verbatim by [`RawHeader::to_block`].
/// Numbers use octal when they fit and GNU base-256 otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// Name field (100 bytes, NUL-terminated when shorter).
    pub name: Vec<u8>,
    /// Mode field, written as given.
    pub mode: i64,
    /// Owner id.
    pub uid: i64,
    /// Group id.
    pub gid: i64,
    /// Size field.
    pub size: i64,
    /// Modification time in Unix seconds.
    pub mtime: i64,
    /// Type flag byte.
    pub typeflag: u8,
    /// Link name field (100 bytes).
    pub linkname: Vec<u8>,
    /// Magic and layout.
    pub format: HeaderFormat,
    /// User name (32 bytes; not written for V7).
    pub uname: Vec<u8>,
    /// Group name (32 bytes; not written for V7).
    pub gname: Vec<u8>,
    /// Device major (not written for V7).
    pub devmajor: i64,
    /// Device minor (not written for V7).
    pub devminor: i64,
    /// Name prefix: 155 bytes for ustar, 131 for star, ignored otherwise.
    pub prefix: Vec<u8>,
}

impl RawHeader {
    /// A ustar header with mode 0644, ids 0 and mtime [`DEFAULT_MTIME`].
    pub fn new(name: impl AsRef<[u8]>, typeflag: u8, size: i64) -> RawHeader {
        RawHeader {
            name: name.as_ref().to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime: DEFAULT_MTIME,
            typeflag,
            linkname: Vec::new(),
            format: HeaderFormat::Ustar,
            uname: Vec::new(),
            gname: Vec::new(),
            devmajor: 0,
            devminor: 0,
            prefix: Vec::new(),
        }
    }

    /// The 512-byte block with a valid checksum.
    ///
    /// Panics when a string does not fit its field or a number does not fit base-256.
    pub fn to_block(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        put_str(&mut b[0..100], &self.name, "name");
        write_numeric(&mut b[100..108], self.mode);
        write_numeric(&mut b[108..116], self.uid);
        write_numeric(&mut b[116..124], self.gid);
        write_numeric(&mut b[124..136], self.size);
        write_numeric(&mut b[136..148], self.mtime);
        b[156] = self.typeflag;
        put_str(&mut b[157..257], &self.linkname, "linkname");
        match self.format {
            HeaderFormat::V7 => {}
            format => {
                let (magic, version): (&[u8], &[u8]) = match format {
                    HeaderFormat::Gnu => (b"ustar ", b" \0"),
                    _ => (b"ustar\0", b"00"),
                };
                b[257..263].copy_from_slice(magic);
                b[263..265].copy_from_slice(version);
                put_str(&mut b[265..297], &self.uname, "uname");
                put_str(&mut b[297..329], &self.gname, "gname");
                write_numeric(&mut b[329..337], self.devmajor);
                write_numeric(&mut b[337..345], self.devminor);
                match format {
                    HeaderFormat::Ustar => put_str(&mut b[345..500], &self.prefix, "prefix"),
                    HeaderFormat::Star => {
                        put_str(&mut b[345..476], &self.prefix, "prefix");
                        write_numeric(&mut b[476..488], 0);
                        write_numeric(&mut b[488..500], 0);
                        b[508..512].copy_from_slice(b"tar\0");
                    }
                    _ => {}
                }
            }
        }
        set_checksum(&mut b);
        b
    }
}

fn put_str(field: &mut [u8], value: &[u8], what: &str) {
    assert!(
        value.len() <= field.len(),
        "{what} {:?} does not fit its {}-byte field",
        String::from_utf8_lossy(value),
        field.len()
    );
    field[..value.len()].copy_from_slice(value);
}

/// Write `v` into a numeric header field: zero-padded octal with a NUL terminator
/// when it fits, GNU base-256 otherwise. Panics if neither fits.
pub fn write_numeric(field: &mut [u8], v: i64) {
    let n = field.len();
    let octal_bits = 3 * (n as u32 - 1);
    if v >= 0 && (octal_bits >= 63 || v < 1i64 << octal_bits) {
        let s = format!("{v:0width$o}", width = n - 1);
        field[..n - 1].copy_from_slice(s.as_bytes());
        field[n - 1] = 0;
        return;
    }
    let bits = 8 * (n as u32 - 1);
    assert!(
        n >= 9 || (v >= -(1i64 << bits) && v < 1i64 << bits),
        "{v} does not fit a {n}-byte numeric field"
    );
    let bytes = v.to_be_bytes();
    for (i, out) in field.iter_mut().rev().enumerate() {
        *out = if i < 8 {
            bytes[7 - i]
        } else if v < 0 {
            0xff
        } else {
            0
        };
    }
    field[0] |= 0x80;
}

/// Recompute the checksum field of a block (after editing it by hand).
pub fn set_checksum(block: &mut [u8; BLOCK]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&c| u32::from(c)).sum();
    let s = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(s.as_bytes());
}

/// One PAX record, `"<len> <key>=<value>\n"`, with the self-inclusive length.
pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + body.to_string().len();
    if len.to_string().len() + body != len {
        len = body + len.to_string().len();
    }
    let mut out = format!("{len} ").into_bytes();
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
    debug_assert_eq!(out.len(), len);
    out
}

/// The body of a PAX header holding `records` (in key order).
pub fn pax_body(records: &BTreeMap<String, String>) -> Vec<u8> {
    records
        .iter()
        .flat_map(|(k, v)| pax_record(k.as_bytes(), v.as_bytes()))
        .collect()
}

/// PAX `mtime` text for a time (Go `formatPAXTime`): `secs[.frac]`, negative times
/// as `-secs.frac` of the absolute value.
pub fn format_pax_time(secs: i64, nanos: u32) -> String {
    if nanos == 0 {
        return secs.to_string();
    }
    let (sign, secs, nanos) = if secs < 0 {
        ("-", -(secs + 1), 1_000_000_000 - nanos)
    } else {
        ("", secs, nanos)
    };
    let text = format!("{sign}{secs}.{nanos:09}");
    text.trim_end_matches('0').to_string()
}

/// Go's `splitUSTARPath`: split a name longer than 100 bytes at a `/` so that it
/// fits the 155-byte prefix and the 100-byte name fields.
pub fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= 100 {
        return None;
    }
    if length > 156 {
        length = 156;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&c| c == b'/')?;
    let (prefix_len, name_len) = (i, name.len() - i - 1);
    if i == 0 || name_len > 100 || name_len == 0 || prefix_len > 155 {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

// ---------------------------------------------------------------------------------
// Entries
// ---------------------------------------------------------------------------------

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file with its content.
    File(Vec<u8>),
    /// Directory.
    Dir,
    /// Symbolic link to the target.
    Symlink(String),
    /// Hard link to an earlier entry's name.
    Hardlink(String),
    /// Character device.
    CharDevice {
        /// Major number.
        major: i64,
        /// Minor number.
        minor: i64,
    },
    /// Block device.
    BlockDevice {
        /// Major number.
        major: i64,
        /// Minor number.
        minor: i64,
    },
    /// Named pipe.
    Fifo,
}

/// How names and link names that do not fit the 100-byte fields are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameStyle {
    /// PAX `path`/`linkpath` records when longer than 100 bytes (Go, bsdtar).
    #[default]
    Pax,
    /// PAX `path` (and `linkpath` for links) for every entry, even short ones.
    PaxAlways,
    /// GNU `././@LongLink` blocks (`L` name, `K` link) in GNU-format headers (GNU tar).
    Gnu,
    /// The ustar prefix field when the name can be split at a `/`, PAX otherwise.
    UstarPrefix,
}

/// PAX keys [`TarEntry`] generates itself from its fields.
const RESERVED_PAX_KEYS: [&str; 10] = [
    "path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime", "ctime",
];

/// One entry to write, with everything Go reads from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// Full name, written exactly (no cleaning, `./` and trailing `/` kept).
    pub name: String,
    /// Kind and payload.
    pub kind: EntryKind,
    /// Raw mode field.
    pub mode: i64,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name (PAX `uname` when longer than 32 bytes).
    pub uname: String,
    /// Group name (PAX `gname` when longer than 32 bytes).
    pub gname: String,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Sub-second part of the modification time (PAX `mtime` when not zero).
    pub mtime_nanos: u32,
    /// Extra PAX records (xattrs, vendor keys). The keys [`TarEntry`] generates
    /// itself (`path`, `mtime`, ...) are not allowed here.
    pub pax_records: BTreeMap<String, String>,
    /// Encoding of long names.
    pub name_style: NameStyle,
    /// Write typeflag `\0` (pre-POSIX regular file) instead of `0`, or instead of `5`
    /// for a directory whose name ends in `/`.
    pub legacy_typeflag: bool,
}

impl TarEntry {
    fn new(name: impl Into<String>, kind: EntryKind, mode: i64) -> TarEntry {
        TarEntry {
            name: name.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            uname: String::new(),
            gname: String::new(),
            mtime: DEFAULT_MTIME,
            mtime_nanos: 0,
            pax_records: BTreeMap::new(),
            name_style: NameStyle::Pax,
            legacy_typeflag: false,
        }
    }

    /// Regular file, mode 0644.
    pub fn file(name: impl Into<String>, content: impl Into<Vec<u8>>) -> TarEntry {
        TarEntry::new(name, EntryKind::File(content.into()), 0o644)
    }

    /// Directory, mode 0755 (give the name a trailing `/` as tar tools do).
    pub fn dir(name: impl Into<String>) -> TarEntry {
        TarEntry::new(name, EntryKind::Dir, 0o755)
    }

    /// Symbolic link, mode 0777.
    pub fn symlink(name: impl Into<String>, target: impl Into<String>) -> TarEntry {
        TarEntry::new(name, EntryKind::Symlink(target.into()), 0o777)
    }

    /// Hard link to `target` (an earlier entry), mode 0644.
    pub fn hardlink(name: impl Into<String>, target: impl Into<String>) -> TarEntry {
        TarEntry::new(name, EntryKind::Hardlink(target.into()), 0o644)
    }

    /// Character device, mode 0666.
    pub fn char_device(name: impl Into<String>, major: i64, minor: i64) -> TarEntry {
        TarEntry::new(name, EntryKind::CharDevice { major, minor }, 0o666)
    }

    /// Block device, mode 0660.
    pub fn block_device(name: impl Into<String>, major: i64, minor: i64) -> TarEntry {
        TarEntry::new(name, EntryKind::BlockDevice { major, minor }, 0o660)
    }

    /// Named pipe, mode 0644.
    pub fn fifo(name: impl Into<String>) -> TarEntry {
        TarEntry::new(name, EntryKind::Fifo, 0o644)
    }

    /// Overlay whiteout for `path` (`a/b` gives the empty file `a/.wh.b`).
    pub fn whiteout(path: &str) -> TarEntry {
        let (dir, base) = match path.trim_end_matches('/').rsplit_once('/') {
            Some((d, b)) => (format!("{d}/"), b),
            None => (String::new(), path.trim_end_matches('/')),
        };
        TarEntry::file(format!("{dir}.wh.{base}"), Vec::new())
    }

    /// Opaque-directory marker `<dir>/.wh..wh..opq` (empty file).
    pub fn opaque(dir: &str) -> TarEntry {
        let dir = dir.trim_end_matches('/');
        let name = if dir.is_empty() {
            ".wh..wh..opq".to_string()
        } else {
            format!("{dir}/.wh..wh..opq")
        };
        TarEntry::file(name, Vec::new())
    }

    /// Set the raw mode field.
    pub fn mode(mut self, mode: i64) -> TarEntry {
        self.mode = mode;
        self
    }

    /// Set uid and gid.
    pub fn owner(mut self, uid: u32, gid: u32) -> TarEntry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Set user and group names.
    pub fn owner_names(mut self, uname: impl Into<String>, gname: impl Into<String>) -> TarEntry {
        self.uname = uname.into();
        self.gname = gname.into();
        self
    }

    /// Set the modification time (nanoseconds below 1e9).
    pub fn mtime(mut self, secs: i64, nanos: u32) -> TarEntry {
        assert!(nanos < 1_000_000_000);
        self.mtime = secs;
        self.mtime_nanos = nanos;
        self
    }

    /// Add an extended attribute (PAX `SCHILY.xattr.<name>`).
    pub fn xattr(self, name: &str, value: impl Into<String>) -> TarEntry {
        self.pax(format!("SCHILY.xattr.{name}"), value)
    }

    /// Add a PAX record (not one of the generated keys such as `path` or `mtime`).
    pub fn pax(mut self, key: impl Into<String>, value: impl Into<String>) -> TarEntry {
        let key = key.into();
        assert!(
            !RESERVED_PAX_KEYS.contains(&key.as_str()),
            "PAX key {key} is generated from the entry's fields"
        );
        self.pax_records.insert(key, value.into());
        self
    }

    /// Choose how long names are written.
    pub fn name_style(mut self, style: NameStyle) -> TarEntry {
        self.name_style = style;
        self
    }

    /// Use the legacy `\0` typeflag (regular files, and directories ending in `/`).
    pub fn legacy_typeflag(mut self) -> TarEntry {
        self.legacy_typeflag = true;
        self
    }
}

// ---------------------------------------------------------------------------------
// Archives
// ---------------------------------------------------------------------------------

/// How an archive ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndOfArchive {
    /// Two zero blocks (POSIX).
    #[default]
    TwoZeroBlocks,
    /// A single zero block, then end of stream.
    OneZeroBlock,
    /// No end marker: the stream ends after the last entry's padding.
    Missing,
    /// Two zero blocks, then zeros up to a multiple of the record size
    /// ([`GNU_RECORD_SIZE`] for GNU tar).
    RecordPadded(usize),
}

/// A generated archive and what a Go-compatible reader must report for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TarFixture {
    /// The tar stream.
    pub bytes: Vec<u8>,
    /// Expected TOC entries, in stream order.
    pub entries: Vec<FileMetadata>,
    /// Content of each entry (empty for everything but regular files).
    pub contents: Vec<Vec<u8>>,
    /// Expected uncompressed archive size (Go's position after the last `Next()`).
    pub uncompressed_archive_size: u64,
}

impl TarFixture {
    /// The expected [`Toc`].
    pub fn toc(&self) -> Toc {
        Toc {
            entries: self.entries.clone(),
            uncompressed_archive_size: self.uncompressed_archive_size,
        }
    }
}

/// Writes a tar stream entry by entry and records the expected TOC.
#[derive(Debug, Clone, Default)]
pub struct TarWriter {
    out: Vec<u8>,
    entries: Vec<FileMetadata>,
    contents: Vec<Vec<u8>>,
}

fn truncated(b: &[u8], n: usize) -> Vec<u8> {
    b[..b.len().min(n)].to_vec()
}

impl TarWriter {
    /// An empty archive.
    pub fn new() -> TarWriter {
        TarWriter::default()
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.out.len() as u64
    }

    /// Append raw bytes (no padding, no expectation recorded).
    pub fn append_raw(&mut self, bytes: &[u8]) -> &mut TarWriter {
        self.out.extend_from_slice(bytes);
        self
    }

    /// Append a header block followed by `data` padded to a block boundary. No
    /// expectation is recorded: use this for special or malformed entries.
    pub fn append_block(&mut self, header: &RawHeader, data: &[u8]) -> &mut TarWriter {
        self.out.extend_from_slice(&header.to_block());
        self.out.extend_from_slice(data);
        self.pad();
        self
    }

    /// Append a PAX header of type `typeflag` (`x` or `g`) holding `records`.
    pub fn append_pax_header(
        &mut self,
        typeflag: u8,
        records: &BTreeMap<String, String>,
    ) -> &mut TarWriter {
        let body = pax_body(records);
        let name = if typeflag == b'g' {
            "pax_global_header"
        } else {
            "PaxHeaders/entry"
        };
        self.append_block(&RawHeader::new(name, typeflag, body.len() as i64), &body)
    }

    fn pad(&mut self) {
        let rem = self.out.len() % BLOCK;
        if rem != 0 {
            self.out.resize(self.out.len() + BLOCK - rem, 0);
        }
    }

    fn gnu_long(&mut self, typeflag: u8, value: &[u8]) {
        let mut data = value.to_vec();
        data.push(0);
        let mut h = RawHeader::new("././@LongLink", typeflag, data.len() as i64);
        h.format = HeaderFormat::Gnu;
        h.mtime = 0;
        self.append_block(&h, &data);
    }

    /// Append an entry; returns the metadata Go's reader will report for it.
    pub fn append(&mut self, e: &TarEntry) -> &FileMetadata {
        let first = self.position();
        let name = e.name.as_bytes();
        let (typeflag, kind, link, (devmajor, devminor), content): (u8, &str, &str, _, &[u8]) =
            match &e.kind {
                EntryKind::File(c) => (b'0', entry_type::REG, "", (0, 0), c),
                EntryKind::Dir => (b'5', entry_type::DIR, "", (0, 0), &[]),
                EntryKind::Symlink(t) => (b'2', entry_type::SYMLINK, t, (0, 0), &[]),
                EntryKind::Hardlink(t) => (b'1', entry_type::HARDLINK, t, (0, 0), &[]),
                EntryKind::CharDevice { major, minor } => {
                    (b'3', entry_type::CHAR, "", (*major, *minor), &[])
                }
                EntryKind::BlockDevice { major, minor } => {
                    (b'4', entry_type::BLOCK, "", (*major, *minor), &[])
                }
                EntryKind::Fifo => (b'6', entry_type::FIFO, "", (0, 0), &[]),
            };
        let typeflag = if e.legacy_typeflag {
            let slash = e.name.ends_with('/');
            assert!(
                (typeflag == b'0' && !slash) || (typeflag == b'5' && slash),
                "legacy typeflag only for files (no trailing '/') and directories ending in '/'"
            );
            0
        } else {
            typeflag
        };
        for key in RESERVED_PAX_KEYS {
            assert!(!e.pax_records.contains_key(key), "reserved PAX key {key}");
        }
        let mut pax = e.pax_records.clone();
        let mut h = RawHeader::new(name, typeflag, content.len() as i64);
        h.mode = e.mode;
        h.uid = i64::from(e.uid);
        h.gid = i64::from(e.gid);
        h.mtime = e.mtime;
        h.devmajor = devmajor;
        h.devminor = devminor;
        if e.name_style == NameStyle::Gnu {
            h.format = HeaderFormat::Gnu;
        }
        let (mut long_name, mut long_link) = (None, None);
        if name.len() > 100 || e.name_style == NameStyle::PaxAlways {
            h.name = truncated(name, 100);
            match e.name_style {
                NameStyle::Gnu => long_name = Some(name),
                NameStyle::UstarPrefix if split_ustar_path(name).is_some() => {
                    let (prefix, rest) = split_ustar_path(name).expect("checked");
                    h.prefix = prefix.to_vec();
                    h.name = rest.to_vec();
                }
                _ => {
                    pax.insert("path".into(), e.name.clone());
                }
            }
        }
        let link_bytes = link.as_bytes();
        h.linkname = truncated(link_bytes, 100);
        if link_bytes.len() > 100 {
            if e.name_style == NameStyle::Gnu {
                long_link = Some(link_bytes);
            } else {
                pax.insert("linkpath".into(), link.to_string());
            }
        } else if e.name_style == NameStyle::PaxAlways && !link.is_empty() {
            pax.insert("linkpath".into(), link.to_string());
        }
        for (key, value, field) in [
            ("uname", &e.uname, &mut h.uname),
            ("gname", &e.gname, &mut h.gname),
        ] {
            *field = truncated(value.as_bytes(), 32);
            if value.len() > 32 {
                pax.insert(key.into(), value.clone());
            }
        }
        if e.mtime_nanos != 0 {
            pax.insert("mtime".into(), format_pax_time(e.mtime, e.mtime_nanos));
        }

        if let Some(link) = long_link {
            self.gnu_long(b'K', link);
        }
        if let Some(name) = long_name {
            self.gnu_long(b'L', name);
        }
        if !pax.is_empty() {
            let body = pax_body(&pax);
            let base = e.name.trim_end_matches('/');
            let base = base.rsplit('/').next().unwrap_or(base);
            let pax_name = truncated(format!("PaxHeaders/{base}").as_bytes(), 100);
            self.append_block(&RawHeader::new(pax_name, b'x', body.len() as i64), &body);
        }
        self.out.extend_from_slice(&h.to_block());
        let offset = self.position();
        self.out.extend_from_slice(content);
        self.pad();

        let kind = if typeflag == 0 && !e.name.ends_with('/') {
            entry_type::REG
        } else {
            kind
        };
        self.entries.push(FileMetadata {
            name: e.name.clone(),
            entry_type: kind.to_string(),
            uncompressed_offset: offset,
            uncompressed_size: content.len() as u64,
            linkname: link.to_string(),
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            uname: e.uname.clone(),
            gname: e.gname.clone(),
            mod_time: format_go_time(e.mtime, e.mtime_nanos),
            devmajor,
            devminor,
            pax_records: pax,
            tar_header_offset: first,
        });
        self.contents.push(content.to_vec());
        self.entries.last().expect("just pushed")
    }

    /// Write the end of the archive and return the fixture.
    pub fn finish(mut self, end: EndOfArchive) -> TarFixture {
        let size = match end {
            EndOfArchive::Missing => self.out.len(),
            EndOfArchive::OneZeroBlock => {
                self.out.resize(self.out.len() + BLOCK, 0);
                self.out.len()
            }
            EndOfArchive::TwoZeroBlocks => {
                self.out.resize(self.out.len() + 2 * BLOCK, 0);
                self.out.len()
            }
            EndOfArchive::RecordPadded(record) => {
                assert!(record > 0 && record % BLOCK == 0, "record size {record}");
                self.out.resize(self.out.len() + 2 * BLOCK, 0);
                let size = self.out.len();
                self.out.resize(size.div_ceil(record) * record, 0);
                size
            }
        };
        TarFixture {
            bytes: self.out,
            entries: self.entries,
            contents: self.contents,
            uncompressed_archive_size: size as u64,
        }
    }
}

/// Write `entries` and the given end of archive.
pub fn build_tar(entries: &[TarEntry], end: EndOfArchive) -> TarFixture {
    let mut w = TarWriter::new();
    for e in entries {
        w.append(e);
    }
    w.finish(end)
}

// ---------------------------------------------------------------------------------
// Random archives
// ---------------------------------------------------------------------------------

/// Small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A random element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

const NAME_PARTS: [&str; 16] = [
    "etc",
    "usr",
    "lib",
    "bin",
    "a",
    "with space",
    "ünïcødé",
    "日本語のファイル",
    "emoji-🎉",
    "..dots",
    ".hidden",
    "UPPER",
    "x=y",
    "node_modules",
    "a-rather-long-directory-name-that-helps-overflow-the-ustar-name-field",
    "another_quite_long_component_name_0123456789_abcdefghijklmnopqrstuvwxyz",
];

fn random_content_len(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=19 => 0,
        20..=49 => rng.range(1, 600) as usize,
        50..=59 => 512 * rng.range(1, 8) as usize,
        60..=69 => (512 * rng.range(1, 8) as i64 + rng.range(0, 2) as i64 - 1) as usize,
        70..=94 => rng.range(1, 70_000) as usize,
        _ => rng.range(70_000, 300_000) as usize,
    }
}

fn random_name(rng: &mut Rng, serial: usize, dot_slash: bool) -> String {
    let depth = rng.range(1, 5);
    let mut parts: Vec<String> = (0..depth)
        .map(|_| rng.pick(&NAME_PARTS).to_string())
        .collect();
    if rng.chance(10) {
        // Push well past 100 bytes, sometimes past 256 (PAX/GNU only).
        let n = if rng.chance(50) { 2 } else { 5 };
        for _ in 0..n {
            parts.push(NAME_PARTS[14].to_string());
        }
    }
    let last = parts.last_mut().expect("depth >= 1");
    last.push_str(&format!("-{serial}"));
    let name = parts.join("/");
    if dot_slash { format!("./{name}") } else { name }
}

/// Random entries for `rng`: every kind, long and unicode names, all name styles,
/// owners (large ids, long names), raw modes, sub-second and negative times,
/// xattrs and other PAX records, whiteouts and opaque markers.
pub fn random_entries(rng: &mut Rng) -> Vec<TarEntry> {
    let count = rng.range(1, 40) as usize;
    let dot_slash = rng.chance(25);
    let mut entries: Vec<TarEntry> = Vec::with_capacity(count);
    let mut files: Vec<String> = Vec::new();
    for serial in 0..count {
        let name = random_name(rng, serial, dot_slash);
        let mut e = match rng.below(100) {
            0..=39 => {
                let len = random_content_len(rng);
                TarEntry::file(name.clone(), rng.bytes(len))
            }
            40..=54 => {
                let slash = if rng.chance(80) { "/" } else { "" };
                TarEntry::dir(format!("{name}{slash}"))
            }
            55..=66 => {
                let target = if rng.chance(15) {
                    random_name(rng, serial, false).repeat(2)
                } else {
                    format!("../{}", rng.pick(&NAME_PARTS))
                };
                TarEntry::symlink(name.clone(), target)
            }
            67..=74 if !files.is_empty() => {
                let target = rng.pick(&files).clone();
                TarEntry::hardlink(name.clone(), target)
            }
            67..=74 => TarEntry::file(name.clone(), Vec::new()),
            75..=79 => {
                let major = if rng.chance(20) {
                    1 << 30
                } else {
                    rng.below(300) as i64
                };
                TarEntry::char_device(name.clone(), major, rng.below(1 << 22) as i64)
            }
            80..=83 => {
                TarEntry::block_device(name.clone(), rng.below(300) as i64, rng.below(64) as i64)
            }
            84..=87 => TarEntry::fifo(name.clone()),
            88..=93 => TarEntry::whiteout(&name),
            _ => TarEntry::opaque(&name),
        };
        if matches!(e.kind, EntryKind::File(_)) && !e.name.ends_with('/') {
            files.push(e.name.clone());
        }
        e.name_style = *rng.pick(&[
            NameStyle::Pax,
            NameStyle::PaxAlways,
            NameStyle::Gnu,
            NameStyle::UstarPrefix,
        ]);
        let legacy_ok = match e.kind {
            EntryKind::File(_) => !e.name.ends_with('/'),
            EntryKind::Dir => e.name.ends_with('/'),
            _ => false,
        };
        e.legacy_typeflag = legacy_ok && rng.chance(15);
        if rng.chance(30) {
            e.mode = rng.below(0o10000) as i64;
        } else if rng.chance(10) {
            e.mode |= 0o100000;
        }
        if rng.chance(40) {
            let big = |rng: &mut Rng| {
                if rng.chance(25) {
                    rng.range(2_097_152, u64::from(u32::MAX)) as u32
                } else {
                    rng.below(70_000) as u32
                }
            };
            e.uid = big(rng);
            e.gid = big(rng);
        }
        if rng.chance(40) {
            let long = "a-user-name-longer-than-thirty-two-bytes";
            e.uname = if rng.chance(20) {
                long.to_string()
            } else {
                "user".to_string()
            };
            e.gname = if rng.chance(20) {
                format!("{long}-g")
            } else {
                "group".to_string()
            };
        }
        match rng.below(10) {
            0 => e.mtime = 0,
            1 => e.mtime = -(rng.range(1, 3_000_000_000) as i64),
            2 => e.mtime = rng.range(1 << 33, 1 << 37) as i64,
            _ => e.mtime = rng.range(1_000_000_000, 2_000_000_000) as i64,
        }
        if rng.chance(30) {
            e.mtime_nanos = if rng.chance(50) {
                rng.below(1_000_000_000) as u32
            } else {
                500_000_000
            };
        }
        if rng.chance(30) {
            for i in 0..rng.range(1, 3) {
                let value = if rng.chance(20) {
                    String::new()
                } else {
                    format!("value-{i}-ü-\u{0}-{}", rng.below(1000))
                };
                e = e.xattr(&format!("user.key{i}"), value);
            }
        }
        if rng.chance(10) {
            e = e.pax(
                "SOCIRS.test.comment",
                "free text = with equals\nand newline",
            );
        }
        entries.push(e);
    }
    entries
}

/// A random archive for `seed` (entries from [`random_entries`], a random end of
/// archive among all [`EndOfArchive`] variants).
pub fn random_tar(seed: u64) -> TarFixture {
    let mut rng = Rng::new(seed);
    let entries = random_entries(&mut rng);
    let end = match rng.below(4) {
        0 => EndOfArchive::TwoZeroBlocks,
        1 => EndOfArchive::OneZeroBlock,
        2 => EndOfArchive::Missing,
        _ => EndOfArchive::RecordPadded(GNU_RECORD_SIZE),
    };
    build_tar(&entries, end)
}

// ---------------------------------------------------------------------------------
// gzip
// ---------------------------------------------------------------------------------

/// Compress `data` at `level` (0-9) as `members` concatenated gzip members (like
/// pigz or `cat a.gz b.gz`), splitting it into nearly equal parts; empty parts give
/// empty members. With `header_extra`, every member header carries FNAME, FCOMMENT
/// and an FEXTRA subfield, so the header is longer than the minimal 10 bytes.
pub fn gzip_members(data: &[u8], level: u32, members: usize, header_extra: bool) -> Vec<u8> {
    let members = members.max(1);
    let part = data.len().div_ceil(members);
    let mut out = Vec::new();
    for i in 0..members {
        let start = (i * part).min(data.len());
        let end = ((i + 1) * part).min(data.len());
        let mut builder = flate2::GzBuilder::new().mtime(0);
        if header_extra {
            builder = builder
                .filename(format!("layer-part-{i}.tar"))
                .comment("soci-rs test fixture")
                .extra(vec![b'S', b'R', 4, 0, 1, 2, 3, 4]);
        }
        let mut encoder = builder.write(Vec::new(), flate2::Compression::new(level));
        encoder
            .write_all(&data[start..end])
            .expect("writing to a Vec cannot fail");
        out.extend_from_slice(&encoder.finish().expect("writing to a Vec cannot fail"));
    }
    out
}
