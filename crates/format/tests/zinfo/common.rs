//! Test data: deterministic generators, gzip writers (flate2 / hand-made headers)
//! and a reader that hands out input in small pieces.

use std::io::{Read, Write};

use flate2::{Compress, Compression, FlushCompress};

/// xorshift64* — deterministic, dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "the",
    "layer",
    "span",
    "checkpoint",
    "container",
    "snapshot",
    "registry",
    "index",
    "gzip",
    "window",
    "offset",
    "lazy",
    "fetch",
    "manifest",
    "digest",
    "tar",
    "file",
    "directory",
    "usr",
    "lib",
    "bin",
    "share",
    "doc",
    "copyright",
    "license",
    "Apache",
    "version",
    "0.9",
    "build",
    "zlib",
    "deflate",
    "inflate",
    "block",
    "boundary",
    "{",
    "}",
    "(",
    ")",
    ";",
    "=",
    "fn",
    "let",
];

/// Text-like data (compresses ~3-4x).
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut v = Vec::with_capacity(len + 32);
    while v.len() < len {
        let w = WORDS[r.below(WORDS.len() as u64) as usize];
        v.extend_from_slice(w.as_bytes());
        v.push(match r.below(12) {
            0 => b'\n',
            1 => b',',
            _ => b' ',
        });
    }
    v.truncate(len);
    v
}

/// Incompressible data.
pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    Rng::new(seed).fill(&mut v);
    v
}

/// Alternating runs of text, random bytes and zeros (like a tar of mixed files).
pub fn mixed(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let n = (1 + r.below(200_000)) as usize;
        let n = n.min(len - v.len());
        match r.below(4) {
            0 | 1 => v.extend_from_slice(&text(n, r.next())),
            2 => v.extend_from_slice(&random(n, r.next())),
            _ => v.resize(v.len() + n, 0),
        }
    }
    v
}

/// gzip with flate2 (one member, minimal header).
pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Optional gzip header fields.
#[derive(Default, Clone)]
pub struct Header {
    pub extra: Option<Vec<u8>>,
    pub name: Option<Vec<u8>>,
    pub comment: Option<Vec<u8>>,
    pub hcrc: bool,
}

impl Header {
    pub fn bytes(&self) -> Vec<u8> {
        let mut flags = 0u8;
        if self.hcrc {
            flags |= 2;
        }
        if self.extra.is_some() {
            flags |= 4;
        }
        if self.name.is_some() {
            flags |= 8;
        }
        if self.comment.is_some() {
            flags |= 16;
        }
        let mut h = vec![0x1f, 0x8b, 8, flags, 0x78, 0x56, 0x34, 0x12, 0, 3];
        if let Some(x) = &self.extra {
            h.extend_from_slice(&(x.len() as u16).to_le_bytes());
            h.extend_from_slice(x);
        }
        for s in [&self.name, &self.comment].into_iter().flatten() {
            h.extend_from_slice(s);
            h.push(0);
        }
        if self.hcrc {
            let mut c = flate2::Crc::new();
            c.update(&h);
            h.extend_from_slice(&(c.sum() as u16).to_le_bytes());
        }
        h
    }
}

/// How to flush while deflating: every `every` input bytes use `flush`.
#[derive(Clone, Copy)]
pub struct FlushPlan {
    pub every: usize,
    pub flush: FlushCompress,
}

/// Raw deflate of `data`, flushing per `plan`.
pub fn deflate_raw(data: &[u8], level: u32, plan: Option<FlushPlan>) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let step = plan.map_or(data.len().max(1), |p| p.every.max(1));
    let mut chunks = data.chunks(step).peekable();
    loop {
        let chunk = chunks.next().unwrap_or(&[]);
        let last = chunks.peek().is_none();
        let flush = if last {
            FlushCompress::Finish
        } else {
            plan.map_or(FlushCompress::None, |p| p.flush)
        };
        let mut input = chunk;
        loop {
            out.reserve(64 * 1024);
            let before_in = c.total_in();
            let st = c.compress_vec(input, &mut out, flush).unwrap();
            input = &input[(c.total_in() - before_in) as usize..];
            if st == flate2::Status::StreamEnd {
                break;
            }
            if !last && input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if last {
            break;
        }
    }
    out
}

/// One gzip member with the given header and flush plan.
pub fn gzip_member(data: &[u8], level: u32, header: &Header, plan: Option<FlushPlan>) -> Vec<u8> {
    let mut m = header.bytes();
    m.extend_from_slice(&deflate_raw(data, level, plan));
    let mut c = flate2::Crc::new();
    c.update(data);
    m.extend_from_slice(&c.sum().to_le_bytes());
    m.extend_from_slice(&(data.len() as u32).to_le_bytes());
    m
}

/// Concatenated members, one per piece of `data` split at `cuts`.
pub fn multi_member(data: &[u8], cuts: &[usize], level: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        out.extend_from_slice(&gzip(&data[prev..c], level));
        prev = c;
    }
    out
}

/// Hands out at most `sizes[i % len]` bytes per read.
pub struct Choppy<R> {
    pub inner: R,
    pub sizes: Vec<usize>,
    pub i: usize,
}

impl<R: Read> Read for Choppy<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.sizes[self.i % self.sizes.len()].min(buf.len());
        self.i += 1;
        self.inner.read(&mut buf[..n])
    }
}
