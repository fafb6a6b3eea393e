//! Building a layer's file table (TOC) from its tar stream, with the semantics of
//! Go's `archive/tar` reader as used by upstream SOCI (`ztoc/toc_builder.go`).
//!
//! Upstream wraps the decompressed layer in a byte counter, calls `tar.Reader.Next()`
//! until `io.EOF`, and records for every header the counter value (the start of the
//! entry's data) and the header fields. The counter value after `io.EOF` is the
//! uncompressed archive size. Entry types other than regular files, directories,
//! links, devices and fifos abort the build.
//!
//! # Why a hand-written reader and not the `tar` crate
//!
//! The zTOC must contain exactly what Go reports, and the `tar` crate differs from
//! Go in ways that change the bytes of the zTOC:
//!
//! * the end of the archive: Go stops after two zero blocks, after one zero block
//!   followed by end of stream, or at a clean end of stream (even inside the padding
//!   of the last entry); `tar` has its own rules and does not report the position;
//! * typeflag `\0` becomes a directory when the name ends in `/`, and header-only
//!   types (links, devices, dirs, fifos) never have a data section whatever their
//!   size field says;
//! * a PAX `x` header replaces (does not merge with) an earlier one, empty PAX values
//!   keep the header value but stay in the record map, a GNU long name beats PAX
//!   `path`, GNU sparse 0.0 records are folded into `GNU.sparse.map`, and PAX sparse
//!   files (GNU 0.0/0.1/1.0) change the name, the size and the data offset;
//! * Go's number parsing (octal with space/NUL padding, base-256, `strconv` rules for
//!   PAX values and times), its checksum rule (signed or unsigned sum), its 1 MiB
//!   limit on PAX and GNU long-name bodies and its GNU/star prefix handling;
//! * a PAX global header (`g`) is returned to the caller as an entry, which upstream
//!   then rejects; `tar` either skips it or reports it differently.
//!
//! Reproducing all of this on top of `tar`'s API is not possible, so this module
//! follows Go's `reader.go` step by step (without sharing any code with it). Data is
//! never inspected: it is skipped with large buffered reads.
//!
//! `tar_header_offset` is not a property of the stream in upstream: the zTOC decoder
//! recomputes it as 0 for the first entry and `align512(prev.offset + prev.size)`
//! otherwise. [`build_toc`] fills it with that same formula, so that a TOC compares
//! equal to its own encode/decode round trip. For ordinary tars this is the offset of
//! the first block of the entry (its PAX/GNU extension headers included).

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};

use crate::ztoc::{FileMetadata, entry_type};

mod goparse;
mod gotime;
mod header;

pub use gotime::{format_go_time, parse_go_time};

use goparse::{MAX_SPECIAL_FILE_SIZE, PaxRecords, c_string, parse_int, parse_pax, parse_pax_time};
use header::{BLOCK, Header, is_zero_block, parse_header};

/// Read buffer used by [`build_toc`].
const READ_BUFFER: usize = 256 * 1024;

/// The file table of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Toc {
    /// One entry per tar header Go's reader returns, in stream order.
    pub entries: Vec<FileMetadata>,
    /// Stream position after the end of the archive, as Go's reader leaves it: after
    /// the two zero blocks (record padding not included), or the end of the stream
    /// when the end marker is missing or incomplete.
    pub uncompressed_archive_size: u64,
}

/// Why a TOC could not be built. Every variant names the stream offset where the
/// problem was found.
#[derive(Debug, thiserror::Error)]
pub enum TocError {
    /// Reading the (decompressed) stream failed.
    #[error("read error at offset {offset} of the tar stream: {source}")]
    Io {
        /// Offset in the uncompressed stream.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The stream ends inside a header or inside an entry's data (Go `io.ErrUnexpectedEOF`).
    #[error("tar stream truncated at offset {offset}: {what}")]
    Truncated {
        /// Where the stream ended.
        offset: u64,
        /// What was being read.
        what: String,
    },
    /// A header block is not valid (Go `tar.ErrHeader`): bad checksum, bad numeric
    /// field, negative size, a zero block followed by a non-zero block, ...
    #[error("invalid tar header at offset {offset}: {reason}")]
    InvalidHeader {
        /// Offset of the header block.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A PAX extended header is malformed or one of its records has an invalid value
    /// (Go `tar.ErrHeader`).
    #[error("invalid PAX extended header at offset {offset}: {reason}")]
    InvalidPax {
        /// Offset of the `x`/`g` header block, or of the entry the records apply to.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A PAX header or GNU long name/link body is larger than Go's 1 MiB limit
    /// (Go `tar.ErrFieldTooLong`).
    #[error("{what} at offset {offset} is {size} bytes long, more than the 1 MiB limit")]
    FieldTooLong {
        /// Offset of its header block.
        offset: u64,
        /// Which kind of special header.
        what: &'static str,
        /// Its declared size.
        size: u64,
    },
    /// A PAX-format GNU sparse file has an invalid sparse map (Go `tar.ErrHeader`).
    #[error("invalid GNU sparse map for {name:?} at offset {offset}: {reason}")]
    InvalidSparse {
        /// Entry name.
        name: String,
        /// Offset of the entry's header block.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The entry type is not one SOCI can index; upstream aborts the zTOC build.
    #[error(
        "unsupported tar entry type {} ({}) for {name:?} at offset {offset}: SOCI cannot index this layer",
        show_typeflag(*.typeflag),
        describe_typeflag(*.typeflag)
    )]
    UnsupportedType {
        /// The raw typeflag byte.
        typeflag: u8,
        /// Entry name.
        name: String,
        /// Offset of the entry's first header block.
        offset: u64,
    },
    /// A string field (name, link name, user or group name, PAX record) is not UTF-8.
    #[error("tar entry at offset {offset} has a {field} that is not valid UTF-8: {lossy:?}")]
    NotUtf8 {
        /// Offset of the entry's first header block.
        offset: u64,
        /// Which field.
        field: &'static str,
        /// The value with invalid sequences replaced.
        lossy: String,
    },
    /// A header-only entry (link, device, dir, fifo) has a negative size, which a
    /// zTOC cannot hold (Go accepts it because it ignores the size of such entries).
    #[error("tar entry {name:?} at offset {offset} has a negative size ({size})")]
    NegativeSize {
        /// Entry name.
        name: String,
        /// Offset of the entry's first header block.
        offset: u64,
        /// The size.
        size: i64,
    },
}

fn show_typeflag(t: u8) -> String {
    if t.is_ascii_graphic() {
        format!("'{}'", t as char)
    } else {
        format!("'\\x{t:02x}'")
    }
}

fn describe_typeflag(t: u8) -> &'static str {
    match t {
        b'g' => "PAX global header",
        b'S' => "GNU sparse file",
        b'7' => "contiguous file",
        b'V' => "GNU volume header",
        b'M' => "GNU multi-volume continuation",
        b'N' => "GNU old long name",
        b'D' => "GNU dump directory",
        b'I' => "inode metadata",
        b'X' => "Solaris extended header",
        b'A'..=b'Z' => "vendor extension",
        _ => "unknown type",
    }
}

/// Walk a tar stream (already decompressed) and build the TOC.
///
/// The stream is read sequentially through an internal 256 KiB buffer, so `r` may
/// be non-seekable (a decompressor); file data is skipped without being looked at.
/// Because of the buffer, bytes after the end-of-archive marker may have been taken
/// from `r` when this returns; use [`build_toc_buffered`] to stop exactly there.
pub fn build_toc<R: Read + ?Sized>(r: &mut R) -> Result<Toc, TocError> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER, r);
    build_toc_buffered(&mut buffered)
}

/// Like [`build_toc`], reading through the caller's buffer: on success exactly
/// `uncompressed_archive_size` bytes have been consumed from `r`, and whatever
/// follows the archive (record padding, trailing data) is left in it.
pub fn build_toc_buffered<R: BufRead + ?Sized>(r: &mut R) -> Result<Toc, TocError> {
    let mut walker = Walker {
        input: Input { r, pos: 0 },
        pending_data: 0,
        pending_pad: 0,
        current: None,
        next_header_offset: 0,
    };
    let mut entries = Vec::new();
    while let Some(entry) = walker.next_entry()? {
        entries.push(entry);
    }
    Ok(Toc {
        entries,
        uncompressed_archive_size: walker.input.pos,
    })
}

/// Parse the header blocks of one entry, the bytes `[tar_header_offset,
/// uncompressed_offset)` of a layer (PAX and GNU extension headers, and for
/// PAX sparse 1.0 files the sparse map, included), exactly as [`build_toc`]
/// reads them. The result's `uncompressed_offset` is `tar_header_offset` plus
/// the bytes the entry's headers took; what follows them in `headers` (the
/// entry's data, if given) is not read. Used to check a zTOC entry against the
/// layer before serving a file.
pub fn parse_entry_headers(
    headers: &[u8],
    tar_header_offset: u64,
) -> Result<FileMetadata, TocError> {
    let mut r: &[u8] = headers;
    let mut walker = Walker {
        input: Input {
            r: &mut r,
            pos: tar_header_offset,
        },
        pending_data: 0,
        pending_pad: 0,
        current: None,
        next_header_offset: tar_header_offset,
    };
    walker.next_entry()?.ok_or_else(|| TocError::Truncated {
        offset: tar_header_offset,
        what: "no tar header (end of archive)".into(),
    })
}

/// Position-counting reader over a `BufRead`.
struct Input<'a, R: ?Sized> {
    r: &'a mut R,
    pos: u64,
}

impl<R: BufRead + ?Sized> Input<'_, R> {
    fn io_error(&self, source: io::Error) -> TocError {
        TocError::Io {
            offset: self.pos,
            source,
        }
    }

    /// Like Go's `io.ReadFull` without the error: the number of bytes read, short only at EOF.
    fn read_full(&mut self, out: &mut [u8]) -> Result<usize, TocError> {
        let mut n = 0;
        while n < out.len() {
            let available = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            };
            if available.is_empty() {
                break;
            }
            let k = available.len().min(out.len() - n);
            out[n..n + k].copy_from_slice(&available[..k]);
            self.r.consume(k);
            self.pos += k as u64;
            n += k;
        }
        Ok(n)
    }

    /// Skip up to `n` bytes; the number skipped, short only at EOF.
    fn skip(&mut self, n: u64) -> Result<u64, TocError> {
        let mut done = 0u64;
        while done < n {
            let available = match self.r.fill_buf() {
                Ok(b) => b.len(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            };
            if available == 0 {
                break;
            }
            let k = (available as u64).min(n - done);
            self.r.consume(k as usize);
            self.pos += k;
            done += k;
        }
        Ok(done)
    }
}

/// What a header block read found.
enum Block {
    /// Clean end of stream before the block.
    Eof,
    /// The stream ended inside the block.
    Partial,
    /// A full block.
    Full(Box<[u8; BLOCK]>),
}

/// Go's reader state between `Next()` calls.
struct Walker<'a, R: ?Sized> {
    input: Input<'a, R>,
    /// Unread data bytes of the current entry (Go's `physicalRemaining`).
    pending_data: u64,
    /// Padding after the current entry's data (Go's `pad`).
    pending_pad: u64,
    /// Name and data end of the current entry, for truncation messages.
    current: Option<(String, u64)>,
    /// `align512(prev.offset + prev.size)`: the decoder's tar header offset of the next entry.
    next_header_offset: u64,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn utf8(b: Vec<u8>, offset: u64, field: &'static str) -> Result<String, TocError> {
    String::from_utf8(b).map_err(|e| TocError::NotUtf8 {
        offset,
        field,
        lossy: lossy(e.as_bytes()),
    })
}

fn is_header_only(typeflag: u8) -> bool {
    matches!(typeflag, b'1'..=b'6')
}

fn align512(x: u64) -> u64 {
    x.saturating_add(511) & !511
}

impl<R: BufRead + ?Sized> Walker<'_, R> {
    fn read_block(&mut self) -> Result<Block, TocError> {
        let mut blk = Box::new([0u8; BLOCK]);
        Ok(match self.input.read_full(&mut blk[..])? {
            0 => Block::Eof,
            BLOCK => Block::Full(blk),
            _ => Block::Partial,
        })
    }

    fn truncated_header(&self) -> TocError {
        TocError::Truncated {
            offset: self.input.pos,
            what: format!(
                "incomplete 512-byte header block ({} bytes)",
                self.input.pos % BLOCK as u64
            ),
        }
    }

    /// Go's `handleRegularFile`: the data section length of a header.
    fn set_data(&mut self, typeflag: u8, size: i64, offset: u64) -> Result<(), TocError> {
        let nb = if is_header_only(typeflag) { 0 } else { size };
        if nb < 0 {
            return Err(TocError::InvalidHeader {
                offset,
                reason: format!("negative size {size}"),
            });
        }
        let nb = nb as u64;
        self.pending_data = nb;
        self.pending_pad = nb.wrapping_neg() % BLOCK as u64;
        Ok(())
    }

    /// Go's `readSpecialFile`: the whole data section of a PAX or GNU long-name header.
    fn read_special(&mut self, offset: u64, what: &'static str) -> Result<Vec<u8>, TocError> {
        let size = self.pending_data;
        if size > MAX_SPECIAL_FILE_SIZE {
            return Err(TocError::FieldTooLong { offset, what, size });
        }
        let mut data = vec![0u8; size as usize];
        let n = self.input.read_full(&mut data)?;
        if n < data.len() {
            return Err(TocError::Truncated {
                offset: self.input.pos,
                what: format!("{what} body ({n} of {size} bytes)"),
            });
        }
        self.pending_data = 0;
        Ok(data)
    }

    /// One `tar.Reader.Next()` call: `None` at the end of the archive.
    fn next_entry(&mut self) -> Result<Option<FileMetadata>, TocError> {
        let mut pax: Option<PaxRecords> = None;
        let mut long_name: Vec<u8> = Vec::new();
        let mut long_link: Vec<u8> = Vec::new();
        let mut first_offset: Option<u64> = None;
        loop {
            // Discard what is left of the previous entry's data: it must be there.
            let want = self.pending_data;
            let got = self.input.skip(want)?;
            if got < want {
                let (name, end) = self.current.clone().unwrap_or_default();
                return Err(TocError::Truncated {
                    offset: self.input.pos,
                    what: format!("data of {name:?} should end at offset {end}"),
                });
            }
            // The padding may be cut short: Go then reports a clean end of archive.
            let pad = self.pending_pad;
            self.pending_data = 0;
            self.pending_pad = 0;
            if self.input.skip(pad)? < pad {
                return Ok(None);
            }

            let offset = self.input.pos;
            let first = *first_offset.get_or_insert(offset);
            let blk = match self.read_block()? {
                Block::Eof => return Ok(None),
                Block::Partial => return Err(self.truncated_header()),
                Block::Full(b) => b,
            };
            if is_zero_block(&blk) {
                return match self.read_block()? {
                    Block::Eof => Ok(None),
                    Block::Partial => Err(self.truncated_header()),
                    Block::Full(b) if is_zero_block(&b) => Ok(None),
                    Block::Full(_) => Err(TocError::InvalidHeader {
                        offset: offset + BLOCK as u64,
                        reason: "a zero block is followed by a non-zero block".into(),
                    }),
                };
            }
            let hdr = parse_header(&blk).map_err(|e| TocError::InvalidHeader {
                offset,
                reason: e.to_string(),
            })?;
            self.set_data(hdr.typeflag, hdr.size, offset)?;

            match hdr.typeflag {
                b'x' | b'g' => {
                    let body = self.read_special(offset, "PAX extended header")?;
                    let records = parse_pax(&body)
                        .map_err(|reason| TocError::InvalidPax { offset, reason })?;
                    if hdr.typeflag == b'g' {
                        // Go returns the global header as an entry; upstream rejects its type.
                        return Err(TocError::UnsupportedType {
                            typeflag: b'g',
                            name: lossy(&hdr.name),
                            offset: first,
                        });
                    }
                    pax = Some(records);
                }
                b'L' => {
                    long_name = c_string(&self.read_special(offset, "GNU long name")?).to_vec();
                }
                b'K' => {
                    long_link =
                        c_string(&self.read_special(offset, "GNU long link name")?).to_vec();
                }
                _ => {
                    return self
                        .finish_entry(hdr, pax, long_name, long_link, first, offset)
                        .map(Some);
                }
            }
        }
    }

    /// The end of Go's `next()` for a real entry, then upstream's conversion.
    fn finish_entry(
        &mut self,
        hdr: Header,
        pax: Option<PaxRecords>,
        long_name: Vec<u8>,
        long_link: Vec<u8>,
        first: u64,
        offset: u64,
    ) -> Result<FileMetadata, TocError> {
        let Header {
            typeflag,
            mut name,
            mut linkname,
            mut size,
            mode,
            mut uid,
            mut gid,
            mtime,
            mut uname,
            mut gname,
            devmajor,
            devminor,
        } = hdr;
        let mut mod_time = (mtime, 0u32);
        let records = pax.unwrap_or_default();

        // Go's mergePAX: empty values keep the header value; bad numbers fail the entry.
        for (key, value) in &records {
            if value.is_empty() {
                continue;
            }
            let bad = |what: &str| TocError::InvalidPax {
                offset: first,
                reason: format!("invalid {what} record {:?}", lossy(value)),
            };
            match key.as_slice() {
                b"path" => name = value.clone(),
                b"linkpath" => linkname = value.clone(),
                b"uname" => uname = value.clone(),
                b"gname" => gname = value.clone(),
                b"uid" => uid = parse_int(value).ok_or_else(|| bad("uid"))?,
                b"gid" => gid = parse_int(value).ok_or_else(|| bad("gid"))?,
                b"size" => size = parse_int(value).ok_or_else(|| bad("size"))?,
                b"mtime" => mod_time = parse_pax_time(value).ok_or_else(|| bad("mtime"))?,
                b"atime" | b"ctime" => {
                    parse_pax_time(value).ok_or_else(|| bad(&lossy(key)))?;
                }
                _ => {}
            }
        }
        if !long_name.is_empty() {
            name = long_name;
        }
        if !long_link.is_empty() {
            linkname = long_link;
        }
        let typeflag = match typeflag {
            0 if name.ends_with(b"/") => b'5',
            0 => b'0',
            t => t,
        };
        self.set_data(typeflag, size, offset)?;
        if typeflag == b'S' {
            // Go would read the old GNU sparse map here; upstream rejects the type anyway.
            return Err(TocError::UnsupportedType {
                typeflag,
                name: lossy(&name),
                offset: first,
            });
        }
        self.pax_sparse(&records, typeflag, &mut name, &mut size, first)?;

        let kind = match typeflag {
            b'0' => entry_type::REG,
            b'1' => entry_type::HARDLINK,
            b'2' => entry_type::SYMLINK,
            b'3' => entry_type::CHAR,
            b'4' => entry_type::BLOCK,
            b'5' => entry_type::DIR,
            b'6' => entry_type::FIFO,
            _ => {
                return Err(TocError::UnsupportedType {
                    typeflag,
                    name: lossy(&name),
                    offset: first,
                });
            }
        };
        if size < 0 {
            return Err(TocError::NegativeSize {
                name: lossy(&name),
                offset: first,
                size,
            });
        }
        let size = size as u64;
        let mut pax_records = BTreeMap::new();
        for (key, value) in records {
            let key = utf8(key, first, "PAX record key")?;
            let value = utf8(value, first, "PAX record value")?;
            pax_records.insert(key, value);
        }
        let name = utf8(name, first, "name")?;
        let data_offset = self.input.pos;
        self.current = Some((name.clone(), data_offset.saturating_add(self.pending_data)));
        let tar_header_offset = self.next_header_offset;
        self.next_header_offset = align512(data_offset.saturating_add(size));
        Ok(FileMetadata {
            name,
            entry_type: kind.to_string(),
            uncompressed_offset: data_offset,
            uncompressed_size: size,
            linkname: utf8(linkname, first, "link name")?,
            mode,
            // Upstream stores Go's int uid/gid as uint32.
            uid: uid as u32,
            gid: gid as u32,
            uname: utf8(uname, first, "user name")?,
            gname: utf8(gname, first, "group name")?,
            mod_time: format_go_time(mod_time.0, mod_time.1),
            devmajor,
            devminor,
            pax_records,
            tar_header_offset,
        })
    }

    /// Go's PAX-format GNU sparse handling (`readGNUSparsePAXHeaders`): the entry
    /// keeps its type but takes the real name and size from the records, and for
    /// format 1.0 the sparse map at the start of the data is consumed, moving the
    /// data offset past it.
    fn pax_sparse(
        &mut self,
        records: &PaxRecords,
        typeflag: u8,
        name: &mut Vec<u8>,
        size: &mut i64,
        first: u64,
    ) -> Result<(), TocError> {
        let get = |k: &str| records.get(k.as_bytes()).map_or(&[][..], Vec::as_slice);
        let (major, minor) = (get("GNU.sparse.major"), get("GNU.sparse.minor"));
        let format_1_0 = match (major, minor) {
            (b"0", b"0" | b"1") => false,
            (b"1", b"0") => true,
            _ if !major.is_empty() || !minor.is_empty() => return Ok(()),
            _ if !get("GNU.sparse.map").is_empty() => false,
            _ => return Ok(()),
        };
        let invalid = |name: &[u8], reason: String| TocError::InvalidSparse {
            name: lossy(name),
            offset: first,
            reason,
        };
        if !get("GNU.sparse.name").is_empty() {
            *name = get("GNU.sparse.name").to_vec();
        }
        let real_size = match get("GNU.sparse.size") {
            b"" => get("GNU.sparse.realsize"),
            s => s,
        };
        if !real_size.is_empty() {
            *size = parse_int(real_size)
                .ok_or_else(|| invalid(name, format!("invalid size {:?}", lossy(real_size))))?;
        }
        let map = if format_1_0 {
            self.sparse_map_1_0(name, first)?
        } else {
            sparse_map_0_1(records).map_err(|r| invalid(name, r))?
        };
        if is_header_only(typeflag) {
            return Err(invalid(name, "sparse map on a header-only entry".into()));
        }
        if !valid_sparse_map(&map, *size) {
            return Err(invalid(
                name,
                format!("fragments do not fit a file of {size} bytes"),
            ));
        }
        Ok(())
    }

    /// GNU sparse 1.0: newline-separated decimal numbers in whole blocks at the start
    /// of the entry's data: count, then (offset, length) pairs.
    fn sparse_map_1_0(&mut self, name: &[u8], first: u64) -> Result<Vec<(i64, i64)>, TocError> {
        let invalid = |reason: String| TocError::InvalidSparse {
            name: lossy(name),
            offset: first,
            reason,
        };
        let mut buf: Vec<u8> = Vec::new();
        let mut cursor = 0usize;
        let mut newlines: i64 = 0;
        let mut total: u64 = 0;
        let mut feed = |walker: &mut Self, buf: &mut Vec<u8>, newlines: &mut i64, want: i64| {
            while *newlines < want {
                total += BLOCK as u64;
                if total > MAX_SPECIAL_FILE_SIZE {
                    return Err(invalid("sparse map longer than 1 MiB".into()));
                }
                let mut blk = [0u8; BLOCK];
                let n = if walker.pending_data >= BLOCK as u64 {
                    walker.input.read_full(&mut blk)?
                } else {
                    0
                };
                if n < BLOCK {
                    return Err(TocError::Truncated {
                        offset: walker.input.pos,
                        what: format!("GNU sparse map of {:?}", lossy(name)),
                    });
                }
                walker.pending_data -= BLOCK as u64;
                *newlines += blk.iter().filter(|&&c| c == b'\n').count() as i64;
                buf.extend_from_slice(&blk);
            }
            Ok(())
        };
        let mut token = |buf: &Vec<u8>, newlines: &mut i64| -> Vec<u8> {
            *newlines -= 1;
            let rest = &buf[cursor..];
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            cursor += (end + 1).min(rest.len());
            rest[..end].to_vec()
        };
        feed(self, &mut buf, &mut newlines, 1)?;
        let count = parse_int(&token(&buf, &mut newlines))
            .filter(|&n| n >= 0 && n.checked_mul(2).is_some())
            .ok_or_else(|| invalid("invalid fragment count".into()))?;
        feed(self, &mut buf, &mut newlines, 2 * count)?;
        let mut map = Vec::new();
        for _ in 0..count {
            let offset = parse_int(&token(&buf, &mut newlines));
            let length = parse_int(&token(&buf, &mut newlines));
            match (offset, length) {
                (Some(o), Some(l)) => map.push((o, l)),
                _ => return Err(invalid("invalid fragment offset or length".into())),
            }
        }
        Ok(map)
    }
}

/// GNU sparse 0.0/0.1: `GNU.sparse.numblocks` and a comma-separated `GNU.sparse.map`.
fn sparse_map_0_1(records: &PaxRecords) -> Result<Vec<(i64, i64)>, String> {
    let get = |k: &str| records.get(k.as_bytes()).map_or(&[][..], Vec::as_slice);
    let count = parse_int(get("GNU.sparse.numblocks"))
        .filter(|&n| n >= 0 && n.checked_mul(2).is_some())
        .ok_or("invalid GNU.sparse.numblocks")?;
    let map = get("GNU.sparse.map");
    let fields: Vec<&[u8]> = if map.is_empty() {
        Vec::new()
    } else {
        map.split(|&c| c == b',').collect()
    };
    if fields.len() as u64 != 2 * count as u64 {
        return Err(format!(
            "GNU.sparse.map has {} numbers, expected {}",
            fields.len(),
            2 * count
        ));
    }
    fields
        .chunks(2)
        .map(|pair| match (parse_int(pair[0]), parse_int(pair[1])) {
            (Some(o), Some(l)) => Ok((o, l)),
            _ => Err("invalid GNU.sparse.map number".to_string()),
        })
        .collect()
}

/// Go's `validateSparseEntries`.
fn valid_sparse_map(map: &[(i64, i64)], size: i64) -> bool {
    if size < 0 {
        return false;
    }
    let mut prev_end: i64 = 0;
    for &(offset, length) in map {
        if offset < 0 || length < 0 || offset > i64::MAX - length {
            return false;
        }
        let end = offset + length;
        if end > size || prev_end > offset {
            return false;
        }
        prev_end = end;
    }
    true
}
