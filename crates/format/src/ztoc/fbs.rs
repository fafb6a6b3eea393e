//! Flatbuffer encoding and decoding of the zTOC (schema `ztoc/fbs/ztoc.fbs` upstream).
//!
//! # Writing
//!
//! [`encode`] drives a [`FlatBufferBuilder`] by hand. The flatbuffers format leaves the
//! layout to the writer, so two writers only agree byte for byte if they create the same
//! objects in the same order and make the same choices about defaults. The order used
//! here is the one of upstream's Go marshaler (spec §2.3):
//!
//! 1. the `version` and `build_tool_identifier` strings;
//! 2. the TOC: files from last to first, each one as its six strings (`name`, `type`,
//!    `linkname`, `uname`, `gname`, `mod_time`, created even when empty), then one
//!    `key`, `value`, `Xattr` triple per PAX record in key order, the `xattrs` vector
//!    (possibly empty) and the `FileMetadata` table with its slots set in id order;
//!    then the `metadata` vector (files in their original order) and the `TOC` table;
//! 3. the `checkpoints` byte vector, the span digest strings and their vector;
//! 4. the `CompressionInfo` table, slots 1, 2, 3, 0;
//! 5. the `Ztoc` table, slots 0, 1, 4, 2, 3, 5, and `finish` without identifier.
//!
//! Scalars equal to their schema default are left out of the table (the Go builder does
//! the same), offsets are always written. Both builders deduplicate vtables.
//!
//! # Reading
//!
//! [`decode`] first runs the flatbuffers [`Verifier`] over the whole buffer with
//! hand-written [`Verifiable`] descriptions of the schema's tables (bounds, alignment,
//! UTF-8 and NUL terminators of strings, limits against offset loops that would make a
//! small buffer expand into a huge value). It then reads the verified buffer with the
//! small bounds-checked reader [`TableRef`], which needs no `unsafe` and turns any
//! inconsistency into an error instead of a panic. Finally the read rules of spec §2.4
//! are applied while the entries are read (see [`set_tar_header_offset`]).
//!
//! Missing fields read as their defaults, as in upstream's generated Go accessors:
//! strings as `""`, numbers as `0`, vectors as empty, the algorithm as gzip. A missing
//! `toc` or `compression_info` table is read as an empty TOC and a default
//! [`CompressionInfo`]. (Upstream's Go reader fails on such buffers because it
//! dereferences the absent table; no writer produces them, and an empty TOC is a
//! harmless reading of "no entries". A zTOC read this way has no checkpoints, so any
//! attempt to read file data from it is still rejected by the checkpoint parser.)

use std::collections::BTreeMap;

use flatbuffers::{
    FlatBufferBuilder, ForwardsUOffset, InvalidFlatbuffer, Vector, Verifiable, Verifier,
    VerifierOptions, WIPOffset,
};

use super::{CompressionAlgorithm, CompressionInfo, FileMetadata, Ztoc, ZtocError};

/// Size of a tar block: every header and every data area starts on such a boundary.
pub(super) const TAR_BLOCK_SIZE: u64 = 512;

/// Vtable byte offsets of the fields (`4 + 2 * field id`).
mod slot {
    pub(super) mod xattr {
        pub const KEY: u16 = 4;
        pub const VALUE: u16 = 6;
    }
    pub(super) mod file_metadata {
        pub const NAME: u16 = 4;
        pub const TYPE: u16 = 6;
        pub const UNCOMPRESSED_OFFSET: u16 = 8;
        pub const UNCOMPRESSED_SIZE: u16 = 10;
        pub const LINKNAME: u16 = 12;
        pub const MODE: u16 = 14;
        pub const UID: u16 = 16;
        pub const GID: u16 = 18;
        pub const UNAME: u16 = 20;
        pub const GNAME: u16 = 22;
        pub const MOD_TIME: u16 = 24;
        pub const DEVMAJOR: u16 = 26;
        pub const DEVMINOR: u16 = 28;
        pub const XATTRS: u16 = 30;
    }
    pub(super) mod compression_info {
        pub const COMPRESSION_ALGORITHM: u16 = 4;
        pub const MAX_SPAN_ID: u16 = 6;
        pub const SPAN_DIGESTS: u16 = 8;
        pub const CHECKPOINTS: u16 = 10;
    }
    pub(super) mod toc {
        pub const METADATA: u16 = 4;
    }
    pub(super) mod ztoc {
        pub const VERSION: u16 = 4;
        pub const BUILD_TOOL_IDENTIFIER: u16 = 6;
        pub const COMPRESSED_ARCHIVE_SIZE: u16 = 8;
        pub const UNCOMPRESSED_ARCHIVE_SIZE: u16 = 10;
        pub const TOC: u16 = 12;
        pub const COMPRESSION_INFO: u16 = 14;
    }
}

/// Values of the schema's `CompressionAlgorithm : byte` enum.
const ALGORITHM_GZIP: i8 = 1;
const ALGORITHM_UNCOMPRESSED: i8 = 2;

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

/// Serialize `z` to upstream's byte layout (raw finished flatbuffer).
///
/// `tar_header_offset` is not part of the format and is ignored. Unsigned values are
/// stored in the schema's signed fields with a two's complement cast, as upstream's Go
/// conversions do; values above `i64::MAX` (or `i32::MAX` for `max_span_id`) therefore
/// come back as an error from [`decode`]. A zTOC larger than 2 GiB cannot be represented
/// in a flatbuffer; the builder panics on it.
pub(super) fn encode(z: &Ztoc) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(size_hint(z));

    let version = fbb.create_string(&z.version);
    let build_tool_identifier = fbb.create_string(&z.build_tool_identifier);
    let toc = encode_toc(&mut fbb, &z.toc);
    let compression_info = encode_compression_info(&mut fbb, &z.compression_info);

    let start = fbb.start_table();
    fbb.push_slot_always(slot::ztoc::VERSION, version);
    fbb.push_slot_always(slot::ztoc::BUILD_TOOL_IDENTIFIER, build_tool_identifier);
    fbb.push_slot_always(slot::ztoc::TOC, toc);
    fbb.push_slot::<i64>(
        slot::ztoc::COMPRESSED_ARCHIVE_SIZE,
        z.compressed_archive_size as i64,
        0,
    );
    fbb.push_slot::<i64>(
        slot::ztoc::UNCOMPRESSED_ARCHIVE_SIZE,
        z.uncompressed_archive_size as i64,
        0,
    );
    fbb.push_slot_always(slot::ztoc::COMPRESSION_INFO, compression_info);
    let root = fbb.end_table(start);
    fbb.finish(root, None);

    let (mut buf, head) = fbb.collapse();
    buf.drain(..head);
    buf
}

/// A generous estimate of the encoded size, so that big zTOCs are built without
/// repeatedly growing (and copying) the builder's buffer. Only a performance hint.
fn size_hint(z: &Ztoc) -> usize {
    let strings = |m: &FileMetadata| {
        m.name.len()
            + m.entry_type.len()
            + m.linkname.len()
            + m.uname.len()
            + m.gname.len()
            + m.mod_time.len()
            + m.pax_records
                .iter()
                .map(|(k, v)| k.len() + v.len() + 48)
                .sum::<usize>()
    };
    let toc: usize = z.toc.iter().map(|m| strings(m) + 160).sum();
    let digests: usize = z
        .compression_info
        .span_digests
        .iter()
        .map(|d| d.len() + 12)
        .sum();
    256 + z.version.len()
        + z.build_tool_identifier.len()
        + toc
        + digests
        + z.compression_info.checkpoints.len()
}

fn encode_toc<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    files: &[FileMetadata],
) -> WIPOffset<flatbuffers::TableFinishedWIPOffset> {
    // Built from the last file to the first, referenced in the original order.
    let mut tables = vec![WIPOffset::new(0); files.len()];
    for (i, m) in files.iter().enumerate().rev() {
        tables[i] = encode_file_metadata(fbb, m);
    }
    let metadata = fbb.create_vector(&tables);

    let start = fbb.start_table();
    fbb.push_slot_always(slot::toc::METADATA, metadata);
    fbb.end_table(start)
}

fn encode_file_metadata<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    m: &FileMetadata,
) -> WIPOffset<flatbuffers::TableFinishedWIPOffset> {
    use slot::file_metadata as s;

    let name = fbb.create_string(&m.name);
    let entry_type = fbb.create_string(&m.entry_type);
    let linkname = fbb.create_string(&m.linkname);
    let uname = fbb.create_string(&m.uname);
    let gname = fbb.create_string(&m.gname);
    let mod_time = fbb.create_string(&m.mod_time);

    // BTreeMap iterates in byte order of the keys, which is Go's `sort.Strings` order.
    let mut xattrs = Vec::with_capacity(m.pax_records.len());
    for (key, value) in &m.pax_records {
        let key = fbb.create_string(key);
        let value = fbb.create_string(value);
        let start = fbb.start_table();
        fbb.push_slot_always(slot::xattr::KEY, key);
        fbb.push_slot_always(slot::xattr::VALUE, value);
        xattrs.push(fbb.end_table(start));
    }
    let xattrs = fbb.create_vector(&xattrs);

    let start = fbb.start_table();
    fbb.push_slot_always(s::NAME, name);
    fbb.push_slot_always(s::TYPE, entry_type);
    fbb.push_slot::<i64>(s::UNCOMPRESSED_OFFSET, m.uncompressed_offset as i64, 0);
    fbb.push_slot::<i64>(s::UNCOMPRESSED_SIZE, m.uncompressed_size as i64, 0);
    fbb.push_slot_always(s::LINKNAME, linkname);
    fbb.push_slot::<i64>(s::MODE, m.mode, 0);
    fbb.push_slot::<u32>(s::UID, m.uid, 0);
    fbb.push_slot::<u32>(s::GID, m.gid, 0);
    fbb.push_slot_always(s::UNAME, uname);
    fbb.push_slot_always(s::GNAME, gname);
    fbb.push_slot_always(s::MOD_TIME, mod_time);
    fbb.push_slot::<i64>(s::DEVMAJOR, m.devmajor, 0);
    fbb.push_slot::<i64>(s::DEVMINOR, m.devminor, 0);
    fbb.push_slot_always(s::XATTRS, xattrs);
    fbb.end_table(start)
}

fn encode_compression_info<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    ci: &CompressionInfo,
) -> WIPOffset<flatbuffers::TableFinishedWIPOffset> {
    use slot::compression_info as s;

    let checkpoints = fbb.create_vector(ci.checkpoints.as_slice());
    let digests: Vec<_> = ci
        .span_digests
        .iter()
        .map(|d| fbb.create_string(d))
        .collect();
    let span_digests = fbb.create_vector(&digests);

    let start = fbb.start_table();
    fbb.push_slot::<i32>(s::MAX_SPAN_ID, ci.max_span_id as i32, 0);
    fbb.push_slot_always(s::SPAN_DIGESTS, span_digests);
    fbb.push_slot_always(s::CHECKPOINTS, checkpoints);
    let algorithm = match ci.algorithm {
        CompressionAlgorithm::Gzip => ALGORITHM_GZIP,
        CompressionAlgorithm::Uncompressed => ALGORITHM_UNCOMPRESSED,
    };
    // The schema default is gzip, so only "uncompressed" ends up in the buffer.
    fbb.push_slot::<i8>(s::COMPRESSION_ALGORITHM, algorithm, ALGORITHM_GZIP);
    fbb.end_table(start)
}

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

/// Schema of the `Ztoc` table for the verifier.
struct ZtocSchema;
/// Schema of the `TOC` table for the verifier.
struct TocSchema;
/// Schema of the `FileMetadata` table for the verifier.
struct FileMetadataSchema;
/// Schema of the `Xattr` table for the verifier.
struct XattrSchema;
/// Schema of the `CompressionInfo` table for the verifier.
struct CompressionInfoSchema;

type Str = ForwardsUOffset<&'static str>;
type TableVec<T> = ForwardsUOffset<Vector<'static, ForwardsUOffset<T>>>;

impl Verifiable for ZtocSchema {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        use slot::ztoc as s;
        v.visit_table(pos)?
            .visit_field::<Str>("version", s::VERSION, false)?
            .visit_field::<Str>("build_tool_identifier", s::BUILD_TOOL_IDENTIFIER, false)?
            .visit_field::<i64>("compressed_archive_size", s::COMPRESSED_ARCHIVE_SIZE, false)?
            .visit_field::<i64>(
                "uncompressed_archive_size",
                s::UNCOMPRESSED_ARCHIVE_SIZE,
                false,
            )?
            .visit_field::<ForwardsUOffset<TocSchema>>("toc", s::TOC, false)?
            .visit_field::<ForwardsUOffset<CompressionInfoSchema>>(
                "compression_info",
                s::COMPRESSION_INFO,
                false,
            )?
            .finish();
        Ok(())
    }
}

impl Verifiable for TocSchema {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<TableVec<FileMetadataSchema>>("metadata", slot::toc::METADATA, false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for FileMetadataSchema {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        use slot::file_metadata as s;
        v.visit_table(pos)?
            .visit_field::<Str>("name", s::NAME, false)?
            .visit_field::<Str>("type", s::TYPE, false)?
            .visit_field::<i64>("uncompressed_offset", s::UNCOMPRESSED_OFFSET, false)?
            .visit_field::<i64>("uncompressed_size", s::UNCOMPRESSED_SIZE, false)?
            .visit_field::<Str>("linkname", s::LINKNAME, false)?
            .visit_field::<i64>("mode", s::MODE, false)?
            .visit_field::<u32>("uid", s::UID, false)?
            .visit_field::<u32>("gid", s::GID, false)?
            .visit_field::<Str>("uname", s::UNAME, false)?
            .visit_field::<Str>("gname", s::GNAME, false)?
            .visit_field::<Str>("mod_time", s::MOD_TIME, false)?
            .visit_field::<i64>("devmajor", s::DEVMAJOR, false)?
            .visit_field::<i64>("devminor", s::DEVMINOR, false)?
            .visit_field::<TableVec<XattrSchema>>("xattrs", s::XATTRS, false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for XattrSchema {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<Str>("key", slot::xattr::KEY, false)?
            .visit_field::<Str>("value", slot::xattr::VALUE, false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for CompressionInfoSchema {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        use slot::compression_info as s;
        v.visit_table(pos)?
            .visit_field::<i8>("compression_algorithm", s::COMPRESSION_ALGORITHM, false)?
            .visit_field::<i32>("max_span_id", s::MAX_SPAN_ID, false)?
            .visit_field::<ForwardsUOffset<Vector<'static, Str>>>(
                "span_digests",
                s::SPAN_DIGESTS,
                false,
            )?
            .visit_field::<ForwardsUOffset<Vector<'static, u8>>>(
                "checkpoints",
                s::CHECKPOINTS,
                false,
            )?
            .finish();
        Ok(())
    }
}

/// Verifier limits for a buffer of `len` bytes.
///
/// Each table is at least 4 bytes, so a well-formed buffer never has more than
/// `len / 4` of them. The "apparent size" (bytes visited, counting shared objects once
/// per reference) of a buffer written by upstream or by [`encode`] is below twice its
/// length, since they share nothing but vtables; the limit leaves room for that while
/// stopping buffers whose offsets point many times at the same large object.
fn verifier_options(len: usize) -> VerifierOptions {
    VerifierOptions {
        max_depth: 16,
        max_tables: len / 4 + 1,
        max_apparent_size: len.saturating_mul(4).saturating_add(1 << 16),
        ignore_missing_null_terminator: false,
    }
}

fn verify(b: &[u8]) -> Result<(), ZtocError> {
    if b.len() < 4 {
        return Err(ZtocError::Flatbuffer(format!(
            "{} bytes is too short for a flatbuffer",
            b.len()
        )));
    }
    let opts = verifier_options(b.len());
    let mut v = Verifier::new(&opts, b);
    <ForwardsUOffset<ZtocSchema>>::run_verifier(&mut v, 0).map_err(|e| match e {
        InvalidFlatbuffer::Utf8Error { .. } => {
            ZtocError::Invalid(format!("string is not valid UTF-8: {}", one_line(&e)))
        }
        e => ZtocError::Flatbuffer(one_line(&e)),
    })
}

/// The verifier's message with its error trace joined on one line.
fn one_line(e: &InvalidFlatbuffer) -> String {
    e.to_string()
        .lines()
        .map(|l| l.trim().trim_end_matches('.'))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

fn out_of_bounds(what: &str, pos: usize) -> ZtocError {
    ZtocError::Flatbuffer(format!("{what} at byte {pos} is out of bounds"))
}

/// `N` little-endian bytes at `pos`.
fn bytes_at<const N: usize>(buf: &[u8], pos: usize) -> Result<[u8; N], ZtocError> {
    pos.checked_add(N)
        .and_then(|end| buf.get(pos..end))
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| out_of_bounds("scalar", pos))
}

/// Follow the forward offset stored at `pos`.
fn deref(buf: &[u8], pos: usize) -> Result<usize, ZtocError> {
    let off = u32::from_le_bytes(bytes_at(buf, pos)?) as usize;
    pos.checked_add(off)
        .filter(|&p| p < buf.len())
        .ok_or_else(|| out_of_bounds("offset target", pos))
}

/// The `(start, len)` of the vector whose length prefix is at `pos`, with `len`
/// elements of `elem_size` bytes checked to lie inside the buffer.
fn vector_at(buf: &[u8], pos: usize, elem_size: usize) -> Result<(usize, usize), ZtocError> {
    let len = u32::from_le_bytes(bytes_at(buf, pos)?) as usize;
    let start = pos + 4;
    let end = len
        .checked_mul(elem_size)
        .and_then(|n| n.checked_add(start))
        .ok_or_else(|| out_of_bounds("vector", pos))?;
    if end > buf.len() {
        return Err(out_of_bounds("vector", pos));
    }
    Ok((start, len))
}

fn str_at(buf: &[u8], pos: usize) -> Result<&str, ZtocError> {
    let (start, len) = vector_at(buf, pos, 1)?;
    std::str::from_utf8(&buf[start..start + len])
        .map_err(|e| ZtocError::Invalid(format!("string at byte {pos} is not valid UTF-8: {e}")))
}

/// A table of a buffer, read with bounds checks only (no `unsafe`).
#[derive(Clone, Copy)]
struct TableRef<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_len: usize,
}

impl<'a> TableRef<'a> {
    fn at(buf: &'a [u8], pos: usize) -> Result<Self, ZtocError> {
        let soffset = i32::from_le_bytes(bytes_at(buf, pos)?) as i64;
        let vtable =
            usize::try_from(pos as i64 - soffset).map_err(|_| out_of_bounds("vtable", pos))?;
        let vtable_len = u16::from_le_bytes(bytes_at(buf, vtable)?) as usize;
        if vtable.saturating_add(vtable_len) > buf.len() {
            return Err(out_of_bounds("vtable", vtable));
        }
        Ok(TableRef {
            buf,
            pos,
            vtable,
            vtable_len,
        })
    }

    /// Absolute position of the field in `slot`, `None` if it is absent.
    fn field(&self, slot: u16) -> Result<Option<usize>, ZtocError> {
        let slot = slot as usize;
        if slot + 2 > self.vtable_len {
            return Ok(None);
        }
        match u16::from_le_bytes(bytes_at(self.buf, self.vtable + slot)?) {
            0 => Ok(None),
            off => Ok(Some(self.pos + off as usize)),
        }
    }

    fn scalar<const N: usize>(&self, slot: u16) -> Result<Option<[u8; N]>, ZtocError> {
        self.field(slot)?.map(|p| bytes_at(self.buf, p)).transpose()
    }

    fn i64(&self, slot: u16) -> Result<i64, ZtocError> {
        Ok(self.scalar(slot)?.map_or(0, i64::from_le_bytes))
    }

    fn i32(&self, slot: u16) -> Result<i32, ZtocError> {
        Ok(self.scalar(slot)?.map_or(0, i32::from_le_bytes))
    }

    fn u32(&self, slot: u16) -> Result<u32, ZtocError> {
        Ok(self.scalar(slot)?.map_or(0, u32::from_le_bytes))
    }

    fn i8(&self, slot: u16, default: i8) -> Result<i8, ZtocError> {
        Ok(self.scalar(slot)?.map_or(default, i8::from_le_bytes))
    }

    /// Position of the object the offset field in `slot` points to.
    fn target(&self, slot: u16) -> Result<Option<usize>, ZtocError> {
        self.field(slot)?.map(|p| deref(self.buf, p)).transpose()
    }

    /// A string field; absent strings read as `""`.
    fn str(&self, slot: u16) -> Result<&'a str, ZtocError> {
        match self.target(slot)? {
            Some(p) => str_at(self.buf, p),
            None => Ok(""),
        }
    }

    fn table(&self, slot: u16) -> Result<Option<TableRef<'a>>, ZtocError> {
        self.target(slot)?
            .map(|p| TableRef::at(self.buf, p))
            .transpose()
    }

    fn bytes(&self, slot: u16) -> Result<&'a [u8], ZtocError> {
        match self.target(slot)? {
            Some(p) => {
                let (start, len) = vector_at(self.buf, p, 1)?;
                Ok(&self.buf[start..start + len])
            }
            None => Ok(&[]),
        }
    }

    /// Positions of the objects referenced by a vector of offsets (tables or strings);
    /// an absent vector is empty.
    fn offsets(
        &self,
        slot: u16,
    ) -> Result<impl Iterator<Item = Result<usize, ZtocError>> + 'a, ZtocError> {
        let (start, len) = match self.target(slot)? {
            Some(p) => vector_at(self.buf, p, 4)?,
            None => (0, 0),
        };
        let buf = self.buf;
        Ok((0..len).map(move |i| deref(buf, start + 4 * i)))
    }

    fn tables(
        &self,
        slot: u16,
    ) -> Result<impl Iterator<Item = Result<TableRef<'a>, ZtocError>> + 'a, ZtocError> {
        let buf = self.buf;
        Ok(self
            .offsets(slot)?
            .map(move |p| p.and_then(|p| TableRef::at(buf, p))))
    }

    fn strings(
        &self,
        slot: u16,
    ) -> Result<impl Iterator<Item = Result<&'a str, ZtocError>> + 'a, ZtocError> {
        let buf = self.buf;
        Ok(self
            .offsets(slot)?
            .map(move |p| p.and_then(|p| str_at(buf, p))))
    }

    /// Number of elements of a vector-of-offsets field (0 if absent), checked against
    /// the buffer size so that it can size an allocation.
    fn offsets_len(&self, slot: u16) -> Result<usize, ZtocError> {
        match self.target(slot)? {
            Some(p) => Ok(vector_at(self.buf, p, 4)?.1),
            None => Ok(0),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// Decode and validate a zTOC blob (spec §2.4).
pub(super) fn decode(b: &[u8]) -> Result<Ztoc, ZtocError> {
    let (mut ztoc, entries) = decode_streaming(b)?;
    ztoc.toc = entries.collect::<Result<_, _>>()?;
    Ok(ztoc)
}

/// Decode and validate everything but the TOC entries, which the returned
/// iterator decodes one at a time, in read order.
pub(super) fn decode_streaming(b: &[u8]) -> Result<(Ztoc, TocEntries<'_>), ZtocError> {
    verify(b)?;
    let root = TableRef::at(b, deref(b, 0)?)?;
    use slot::ztoc as s;

    let version = root.str(s::VERSION)?.to_owned();
    let build_tool_identifier = root.str(s::BUILD_TOOL_IDENTIFIER)?.to_owned();
    let compressed_archive_size = non_negative(
        "compressed_archive_size",
        root.i64(s::COMPRESSED_ARCHIVE_SIZE)?,
    )?;
    let uncompressed_archive_size = non_negative(
        "uncompressed_archive_size",
        root.i64(s::UNCOMPRESSED_ARCHIVE_SIZE)?,
    )?;

    // Read order: by data offset, stable (upstream sorts on read).
    let mut order = Vec::new();
    if let Some(t) = root.table(s::TOC)? {
        order.reserve_exact(t.offsets_len(slot::toc::METADATA)?);
        for (i, m) in t.tables(slot::toc::METADATA)?.enumerate() {
            let m = m?;
            order.push((m.i64(slot::file_metadata::UNCOMPRESSED_OFFSET)?, i, m.pos));
        }
    }
    order.sort_by_key(|&(offset, _, _)| offset);
    let compression_info = match root.table(s::COMPRESSION_INFO)? {
        Some(t) => decode_compression_info(t)?,
        None => CompressionInfo::default(),
    };

    let ztoc = Ztoc {
        version,
        build_tool_identifier,
        compressed_archive_size,
        uncompressed_archive_size,
        toc: Vec::new(),
        compression_info,
    };
    let entries = TocEntries {
        buf: b,
        order: order.into_iter(),
        next_header: 0,
        failed: false,
    };
    Ok((ztoc, entries))
}

/// The TOC entries of a zTOC blob in read order (sorted by data offset, equal
/// offsets in stored order), each decoded when it is reached and given its
/// tar header offset. After the first error it ends.
#[derive(Debug)]
pub struct TocEntries<'a> {
    buf: &'a [u8],
    /// (data offset as stored, index in the stored vector, table position).
    order: std::vec::IntoIter<(i64, usize, usize)>,
    next_header: u64,
    failed: bool,
}

impl Iterator for TocEntries<'_> {
    type Item = Result<FileMetadata, ZtocError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let (_, i, pos) = self.order.next()?;
        let entry = TableRef::at(self.buf, pos)
            .and_then(decode_file_metadata)
            .map_err(|e| match e {
                ZtocError::Invalid(msg) => ZtocError::Invalid(format!("toc entry {i}: {msg}")),
                e => e,
            })
            .and_then(|mut m| {
                set_tar_header_offset(&mut m, &mut self.next_header)?;
                Ok(m)
            });
        self.failed = entry.is_err();
        Some(entry)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.failed {
            (0, Some(0))
        } else {
            (0, Some(self.order.len()))
        }
    }
}

fn non_negative(field: &str, v: i64) -> Result<u64, ZtocError> {
    u64::try_from(v).map_err(|_| ZtocError::Invalid(format!("negative {field}: {v}")))
}

fn decode_file_metadata(t: TableRef<'_>) -> Result<FileMetadata, ZtocError> {
    use slot::file_metadata as s;
    let name = t.str(s::NAME)?.to_owned();
    let field = |what: &str, v: i64| {
        non_negative(what, v).map_err(|e| match e {
            ZtocError::Invalid(msg) => ZtocError::Invalid(format!("{msg} (name {name:?})")),
            e => e,
        })
    };
    let uncompressed_offset = field("uncompressed_offset", t.i64(s::UNCOMPRESSED_OFFSET)?)?;
    let uncompressed_size = field("uncompressed_size", t.i64(s::UNCOMPRESSED_SIZE)?)?;

    let mut pax_records = BTreeMap::new();
    for x in t.tables(s::XATTRS)? {
        let x = x?;
        // A repeated key keeps its last value, like the Go map upstream fills.
        pax_records.insert(
            x.str(slot::xattr::KEY)?.to_owned(),
            x.str(slot::xattr::VALUE)?.to_owned(),
        );
    }

    Ok(FileMetadata {
        entry_type: t.str(s::TYPE)?.to_owned(),
        uncompressed_offset,
        uncompressed_size,
        linkname: t.str(s::LINKNAME)?.to_owned(),
        mode: t.i64(s::MODE)?,
        uid: t.u32(s::UID)?,
        gid: t.u32(s::GID)?,
        uname: t.str(s::UNAME)?.to_owned(),
        gname: t.str(s::GNAME)?.to_owned(),
        mod_time: t.str(s::MOD_TIME)?.to_owned(),
        devmajor: t.i64(s::DEVMAJOR)?,
        devminor: t.i64(s::DEVMINOR)?,
        pax_records,
        tar_header_offset: 0,
        name,
    })
}

fn decode_compression_info(t: TableRef<'_>) -> Result<CompressionInfo, ZtocError> {
    use slot::compression_info as s;
    let algorithm = match t.i8(s::COMPRESSION_ALGORITHM, ALGORITHM_GZIP)? {
        ALGORITHM_GZIP => CompressionAlgorithm::Gzip,
        ALGORITHM_UNCOMPRESSED => CompressionAlgorithm::Uncompressed,
        other => {
            return Err(ZtocError::Invalid(format!(
                "unknown compression algorithm value {other} (expected 1 = gzip or 2 = uncompressed)"
            )));
        }
    };
    let max_span_id = t.i32(s::MAX_SPAN_ID)?;
    let max_span_id = u32::try_from(max_span_id)
        .map_err(|_| ZtocError::Invalid(format!("negative max_span_id: {max_span_id}")))?;
    let span_digests = t
        .strings(s::SPAN_DIGESTS)?
        .map(|d| d.map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()?;
    let checkpoints = t.bytes(s::CHECKPOINTS)?.to_vec();
    Ok(CompressionInfo {
        algorithm,
        max_span_id,
        span_digests,
        checkpoints,
    })
}

// ---------------------------------------------------------------------------------------
// TOC normalisation
// ---------------------------------------------------------------------------------------

/// `x` rounded up to the next multiple of [`TAR_BLOCK_SIZE`], `None` on overflow.
pub(super) fn align_to_tar_block(x: u64) -> Option<u64> {
    x.checked_next_multiple_of(TAR_BLOCK_SIZE)
}

/// Upstream's read rule for one entry, applied in read order (entries sorted
/// by `uncompressed_offset`, stable): give `m` its `tar_header_offset`, which
/// is 0 for the first entry and the end of the previous entry's data rounded
/// up to a tar block (`next_header`) for the others, and advance
/// `next_header` past `m`'s data.
///
/// Fails with [`ZtocError::InvalidTocEntry`] when the entry's data starts
/// before that header offset, i.e. when entries overlap.
fn set_tar_header_offset(m: &mut FileMetadata, next_header: &mut u64) -> Result<(), ZtocError> {
    if *next_header > m.uncompressed_offset {
        return Err(ZtocError::InvalidTocEntry {
            name: m.name.clone(),
            offset: m.uncompressed_offset,
            previous_end: *next_header,
        });
    }
    m.tar_header_offset = *next_header;
    *next_header = m
        .uncompressed_offset
        .checked_add(m.uncompressed_size)
        .and_then(align_to_tar_block)
        .ok_or_else(|| {
            ZtocError::Invalid(format!(
                "toc entry {:?}: offset {} + size {} overflows",
                m.name, m.uncompressed_offset, m.uncompressed_size
            ))
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read rules over a whole TOC, as [`decode`] applies them.
    fn assign_tar_header_offsets(toc: &mut [FileMetadata]) -> Result<(), ZtocError> {
        toc.sort_by_key(|m| m.uncompressed_offset);
        let mut next_header = 0u64;
        for m in toc.iter_mut() {
            set_tar_header_offset(m, &mut next_header)?;
        }
        Ok(())
    }

    fn entry(name: &str, offset: u64, size: u64) -> FileMetadata {
        FileMetadata {
            name: name.into(),
            uncompressed_offset: offset,
            uncompressed_size: size,
            ..FileMetadata::default()
        }
    }

    #[test]
    fn align_rounds_up_to_blocks() {
        assert_eq!(align_to_tar_block(0), Some(0));
        assert_eq!(align_to_tar_block(1), Some(512));
        assert_eq!(align_to_tar_block(512), Some(512));
        assert_eq!(align_to_tar_block(1524), Some(1536));
        assert_eq!(align_to_tar_block(u64::MAX), None);
    }

    #[test]
    fn header_offsets_follow_previous_entry() {
        let mut toc = vec![entry("b", 2048, 1000), entry("a", 1024, 500)];
        assign_tar_header_offsets(&mut toc).unwrap();
        assert_eq!(toc[0].name, "a");
        assert_eq!(toc[0].tar_header_offset, 0);
        assert_eq!(toc[1].name, "b");
        assert_eq!(toc[1].tar_header_offset, 1536);
    }

    #[test]
    fn header_offsets_reject_overlap_and_overflow() {
        let mut toc = vec![entry("a", 1024, 500), entry("b", 1024, 500)];
        assert!(matches!(
            assign_tar_header_offsets(&mut toc),
            Err(ZtocError::InvalidTocEntry {
                offset: 1024,
                previous_end: 1536,
                ..
            })
        ));
        let mut toc = vec![entry("a", 1 << 62, u64::MAX - (1 << 62))];
        assert!(matches!(
            assign_tar_header_offsets(&mut toc),
            Err(ZtocError::Invalid(_))
        ));
    }

    #[test]
    fn table_ref_rejects_bad_positions() {
        let buf = [8u8, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f];
        assert!(TableRef::at(&buf, 4).is_err());
        assert!(TableRef::at(&buf, 6).is_err());
        assert!(TableRef::at(&buf, usize::MAX - 1).is_err());
        assert!(deref(&buf, 0).is_err());
        assert!(vector_at(&[0xff, 0xff, 0xff, 0xff], 0, 4).is_err());
    }
}
