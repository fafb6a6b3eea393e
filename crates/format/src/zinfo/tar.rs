//! Checkpoints of an uncompressed tar layer: a `TarZinfo` flatbuffer
//! (`{version, span_size, size}`, schema `zinfo.fbs` upstream). Spans are fixed
//! slices of `span_size` bytes, the same in the "compressed" (layer blob) and
//! uncompressed domains.

use super::{SpanId, ZinfoError};

/// `TarZinfo` version written by upstream (kept in step with the gzip blob version).
pub const TAR_ZINFO_VERSION: i32 = 2;

/// Checkpoints of an uncompressed layer (upstream `TarZinfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarZinfo {
    version: i32,
    span_size: u64,
    size: u64,
}

// vtable slot offsets: 4 + 2 * field id.
const SLOT_VERSION: u16 = 4;
const SLOT_SPAN_SIZE: u16 = 6;
const SLOT_SIZE: u16 = 8;

impl TarZinfo {
    /// A current-version zinfo for a tar blob of `size` bytes.
    pub fn new(span_size: u64, size: u64) -> TarZinfo {
        TarZinfo {
            version: TAR_ZINFO_VERSION,
            span_size,
            size,
        }
    }

    /// Version field as stored.
    pub fn version(&self) -> i32 {
        self.version
    }

    /// Span size in bytes.
    pub fn span_size(&self) -> u64 {
        self.span_size
    }

    /// Size of the layer blob.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of spans: `ceil(size / span_size)` (0 if either is 0).
    pub fn num_spans(&self) -> u64 {
        if self.span_size == 0 {
            0
        } else {
            self.size.div_ceil(self.span_size)
        }
    }

    /// Serialize as a finished flatbuffer, fields added in slot order 0, 1, 2 and
    /// zero values omitted (byte-identical to upstream's Go builder).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = flatbuffers::FlatBufferBuilder::new();
        let start = b.start_table();
        b.push_slot::<i32>(SLOT_VERSION, self.version, 0);
        // Constructors keep both below 2^63.
        b.push_slot::<i64>(SLOT_SPAN_SIZE, self.span_size as i64, 0);
        b.push_slot::<i64>(SLOT_SIZE, self.size as i64, 0);
        let table = b.end_table(start);
        b.finish(table, None);
        b.finished_data().to_vec()
    }

    /// Decode a `TarZinfo` flatbuffer. Every offset is bounds-checked; absent
    /// fields read as 0 like upstream. Negative sizes are rejected.
    pub fn from_bytes(buf: &[u8]) -> Result<TarZinfo, ZinfoError> {
        let invalid = |reason: String| ZinfoError::InvalidTarZinfo {
            len: buf.len(),
            reason,
        };
        let rd = |at: usize, n: usize, what: &str| -> Result<&[u8], ZinfoError> {
            at.checked_add(n)
                .and_then(|end| buf.get(at..end))
                .ok_or_else(|| invalid(format!("{what} at {at} is out of bounds")))
        };
        let u32_at = |at: usize, what: &str| -> Result<u32, ZinfoError> {
            let b = rd(at, 4, what)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let u16_at = |at: usize, what: &str| -> Result<u16, ZinfoError> {
            let b = rd(at, 2, what)?;
            Ok(u16::from_le_bytes([b[0], b[1]]))
        };

        let table = u32_at(0, "root offset")? as usize;
        let soffset = u32_at(table, "table")? as i32;
        let vtable = i64::try_from(table).unwrap_or(i64::MAX) - i64::from(soffset);
        let vtable = usize::try_from(vtable)
            .map_err(|_| invalid(format!("vtable offset {vtable} is out of bounds")))?;
        let vtable_len = u16_at(vtable, "vtable length")? as usize;
        let table_len = u16_at(vtable + 2, "table length")? as usize;
        if vtable_len < 4 || !vtable_len.is_multiple_of(2) {
            return Err(invalid(format!("bad vtable length {vtable_len}")));
        }
        rd(vtable, vtable_len, "vtable")?;
        rd(table, table_len.max(4), "table")?;

        let field = |slot: u16, size: usize| -> Result<Option<&[u8]>, ZinfoError> {
            let slot = usize::from(slot);
            if slot + 2 > vtable_len {
                return Ok(None);
            }
            let off = usize::from(u16_at(vtable + slot, "vtable entry")?);
            if off == 0 {
                return Ok(None);
            }
            if off + size > table_len {
                return Err(invalid(format!(
                    "field at table offset {off} overruns the {table_len}-byte table"
                )));
            }
            rd(table + off, size, "field").map(Some)
        };
        let version = field(SLOT_VERSION, 4)?
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        let i64_field = |slot: u16, what: &str| -> Result<u64, ZinfoError> {
            let v = field(slot, 8)?
                .map(|b| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    i64::from_le_bytes(a)
                })
                .unwrap_or(0);
            u64::try_from(v).map_err(|_| invalid(format!("negative {what} {v}")))
        };
        let span_size = i64_field(SLOT_SPAN_SIZE, "span size")?;
        let size = i64_field(SLOT_SIZE, "size")?;
        Ok(TarZinfo {
            version,
            span_size,
            size,
        })
    }

    pub(crate) fn max_span_id(&self) -> SpanId {
        self.num_spans()
            .saturating_sub(1)
            .min(u64::from(SpanId::MAX)) as SpanId
    }

    pub(crate) fn span_of(&self, off: u64) -> SpanId {
        if self.span_size == 0 {
            return 0;
        }
        (off / self.span_size).min(u64::from(SpanId::MAX)) as SpanId
    }

    fn span_start(&self, span: SpanId) -> u64 {
        self.span_size.saturating_mul(u64::from(span))
    }

    pub(crate) fn start_offset(&self, span: SpanId) -> u64 {
        self.span_start(span)
    }

    pub(crate) fn end_offset(&self, span: SpanId, size: u64) -> u64 {
        if span >= self.max_span_id() {
            size.max(self.span_start(span))
        } else {
            self.span_start(span + 1)
        }
    }

    pub(crate) fn validate(
        &self,
        compressed_size: u64,
        uncompressed_size: u64,
    ) -> Result<(), ZinfoError> {
        let bad = |m: String| Err(ZinfoError::Inconsistent(m));
        if self.span_size == 0 {
            return bad("tar zinfo span size is 0".into());
        }
        if self.size == 0 {
            return bad("tar zinfo describes an empty layer (no spans)".into());
        }
        if self.size != compressed_size {
            return bad(format!(
                "tar zinfo size {} differs from the layer size {compressed_size}",
                self.size
            ));
        }
        if uncompressed_size > compressed_size {
            return bad(format!(
                "uncompressed size {uncompressed_size} exceeds the size {compressed_size} of an uncompressed layer"
            ));
        }
        if self.num_spans() > u64::from(SpanId::MAX) + 1 {
            return bad(format!("{} spans do not fit a span id", self.num_spans()));
        }
        Ok(())
    }

    pub(crate) fn extract(
        &self,
        data: &[u8],
        first_span: SpanId,
        offset: u64,
        out: &mut [u8],
    ) -> Result<usize, ZinfoError> {
        let spans = self.num_spans();
        if u64::from(first_span) >= spans {
            return Err(ZinfoError::SpanOutOfRange {
                span: first_span,
                max: self.max_span_id(),
                spans,
            });
        }
        let start = self.span_start(first_span);
        if offset < start {
            return Err(ZinfoError::OffsetBeforeSpan {
                span: first_span,
                offset,
                span_start: start,
            });
        }
        let skip = offset - start;
        let Some(avail) = usize::try_from(skip).ok().and_then(|s| data.get(s..)) else {
            return Ok(0);
        };
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden() {
        let z = TarZinfo::new(4194304, 10240);
        assert_eq!(
            hex::encode(z.to_bytes()),
            "140000000000000000000a001c0018000c0004000a000000002800000000000000004000000000000000000002000000"
        );
        assert_eq!(TarZinfo::from_bytes(&z.to_bytes()).unwrap(), z);
    }
}
