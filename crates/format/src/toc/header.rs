//! Decoding one 512-byte header block the way Go's `tar.Reader.readHeader` does.

use super::goparse::{c_string, parse_numeric, parse_octal};

pub(crate) const BLOCK: usize = 512;

/// Header fields as Go reads them from a single block (before PAX/GNU overrides).
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub typeflag: u8,
    /// Name with the ustar/star prefix applied.
    pub name: Vec<u8>,
    pub linkname: Vec<u8>,
    pub size: i64,
    pub mode: i64,
    pub uid: i64,
    pub gid: i64,
    pub mtime: i64,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub devmajor: i64,
    pub devminor: i64,
}

/// Why Go would return `ErrHeader` for a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// The checksum field is unparsable or matches neither the unsigned nor the signed sum.
    Checksum { stored: Option<i64>, computed: i64 },
    /// A numeric field is neither octal nor base-256.
    Numeric(&'static str),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Checksum {
                stored: Some(stored),
                computed,
            } => write!(
                f,
                "checksum mismatch (stored {stored:o}, computed {computed:o}): not a tar header"
            ),
            HeaderError::Checksum {
                stored: None,
                computed,
            } => write!(
                f,
                "unreadable checksum field (computed {computed:o}): not a tar header"
            ),
            HeaderError::Numeric(field) => write!(f, "invalid numeric {field} field"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    V7,
    Ustar,
    Gnu,
    Star,
}

/// Sum of all bytes with the checksum field counted as spaces: (unsigned, signed).
fn checksums(b: &[u8; BLOCK]) -> (i64, i64) {
    let mut unsigned: i64 = 8 * i64::from(b' ');
    let mut signed: i64 = unsigned;
    for (i, &c) in b.iter().enumerate() {
        if (148..156).contains(&i) {
            continue;
        }
        unsigned += i64::from(c);
        signed += i64::from(c as i8);
    }
    (unsigned, signed)
}

fn format_of(b: &[u8; BLOCK]) -> Result<Format, HeaderError> {
    let stored = parse_octal(&b[148..156]);
    let (unsigned, signed) = checksums(b);
    match stored {
        Some(v) if v == unsigned || v == signed => {}
        _ => {
            return Err(HeaderError::Checksum {
                stored,
                computed: unsigned,
            });
        }
    }
    let magic = &b[257..263];
    let version = &b[263..265];
    let trailer = &b[508..512];
    Ok(if magic == b"ustar\0" && trailer == b"tar\0" {
        Format::Star
    } else if magic == b"ustar\0" {
        Format::Ustar
    } else if magic == b"ustar " && version == b" \0" {
        Format::Gnu
    } else {
        Format::V7
    })
}

/// Whether the block is all zeros (half of an end-of-archive marker).
pub(crate) fn is_zero_block(b: &[u8; BLOCK]) -> bool {
    b.iter().all(|&c| c == 0)
}

/// Decode a non-zero header block.
pub(crate) fn parse_header(b: &[u8; BLOCK]) -> Result<Header, HeaderError> {
    let format = format_of(b)?;
    // Go parses every field and reports the last error; any error fails the header.
    let mut first_error: Option<&'static str> = None;
    let mut num = |field: &[u8], what: &'static str| -> i64 {
        parse_numeric(field).unwrap_or_else(|| {
            first_error.get_or_insert(what);
            0
        })
    };
    let mut hdr = Header {
        typeflag: b[156],
        name: c_string(&b[0..100]).to_vec(),
        linkname: c_string(&b[157..257]).to_vec(),
        size: num(&b[124..136], "size"),
        mode: num(&b[100..108], "mode"),
        uid: num(&b[108..116], "uid"),
        gid: num(&b[116..124], "gid"),
        mtime: num(&b[136..148], "mtime"),
        uname: Vec::new(),
        gname: Vec::new(),
        devmajor: 0,
        devminor: 0,
    };
    if format != Format::V7 {
        hdr.uname = c_string(&b[265..297]).to_vec();
        hdr.gname = c_string(&b[297..329]).to_vec();
        hdr.devmajor = num(&b[329..337], "devmajor");
        hdr.devminor = num(&b[337..345], "devminor");
        let prefix: &[u8] = match format {
            Format::Ustar => c_string(&b[345..500]),
            Format::Star => {
                // Go also parses the star atime/ctime fields, which can fail the header.
                num(&b[476..488], "atime");
                num(&b[488..500], "ctime");
                c_string(&b[345..476])
            }
            Format::Gnu => {
                // GNU has atime/ctime where ustar has its prefix. Go falls back to
                // reading a prefix (old Go writer bug) when they are not numbers.
                let bad = |f: &[u8]| f[0] != 0 && parse_numeric(f).is_none();
                if bad(&b[345..357]) || bad(&b[357..369]) {
                    let p = c_string(&b[345..500]);
                    if p.is_ascii() { p } else { &[] }
                } else {
                    &[]
                }
            }
            Format::V7 => &[],
        };
        if !prefix.is_empty() {
            let mut name = Vec::with_capacity(prefix.len() + 1 + hdr.name.len());
            name.extend_from_slice(prefix);
            name.push(b'/');
            name.extend_from_slice(&hdr.name);
            hdr.name = name;
        }
    }
    match first_error {
        Some(field) => Err(HeaderError::Numeric(field)),
        None => Ok(hdr),
    }
}
