//! Rough speed of the indexer against a plain inflate loop. Ignored by default;
//! run with `cargo test --release -p soci-format --test zinfo -- --ignored --nocapture speed`
//! (`SOCI_BENCH_GZ=<file.gz>` measures a real layer instead of generated data).

use std::io::Read;
use std::time::Instant;

use soci_format::zinfo::{IndexerOptions, LayerIndexer};
use soci_format::ztoc::CompressionAlgorithm;

use crate::common::*;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU time of the calling thread (Linux `CLOCK_THREAD_CPUTIME_ID`), in seconds.
fn thread_cpu() -> f64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    assert_eq!(unsafe { clock_gettime(3, &mut ts) }, 0);
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

#[inline(never)]
fn plain(gz: &[u8], buf: &mut [u8]) -> usize {
    let mut d = flate2::read::MultiGzDecoder::new(gz);
    let mut total = 0;
    loop {
        let n = d.read(buf).unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

#[inline(never)]
fn indexed(gz: &[u8], buf: &mut [u8], background_hashing: bool) -> usize {
    let opts = IndexerOptions {
        background_hashing,
        ..IndexerOptions::default()
    };
    let mut ix = LayerIndexer::with_options(gz, CompressionAlgorithm::Gzip, 4 << 20, opts).unwrap();
    let mut total = 0;
    loop {
        let n = ix.read(buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    let l = ix.finish().unwrap();
    assert!(!l.span_digests.is_empty());
    total
}

#[inline(never)]
fn indexed_8k(gz: &[u8], buf: &mut [u8]) -> usize {
    indexed(gz, buf, true)
}

#[test]
#[ignore]
fn speed_vs_plain_inflate() {
    let gz = match std::env::var_os("SOCI_BENCH_GZ") {
        Some(p) => std::fs::read(p).unwrap(),
        None => gzip(&mixed(50 << 20, 99), 6),
    };
    let mut buf = vec![0u8; 256 << 10];
    let mut best = [f64::MAX; 5];
    let mut cpu = [f64::MAX; 2];
    let mut size = 0;
    let iters: usize = std::env::var("SOCI_BENCH_ITERS").map_or(15, |v| v.parse().unwrap());
    for _ in 0..iters {
        let t = Instant::now();
        size = plain(&gz, &mut buf);
        best[0] = best[0].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        assert_eq!(indexed(&gz, &mut buf, true), size);
        best[1] = best[1].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        assert_eq!(indexed(&gz, &mut buf, false), size);
        best[2] = best[2].min(t.elapsed().as_secs_f64());
        let c = thread_cpu();
        plain(&gz, &mut buf);
        cpu[0] = cpu[0].min(thread_cpu() - c);
        let c = thread_cpu();
        indexed(&gz, &mut buf, false);
        cpu[1] = cpu[1].min(thread_cpu() - c);
        let t = Instant::now();
        assert_eq!(soci_format::Digest::of(&gz).hex().len(), 64);
        best[3] = best[3].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        assert_eq!(indexed_8k(&gz, &mut buf[..8192]), size);
        best[4] = best[4].min(t.elapsed().as_secs_f64());
    }
    let mb = size as f64 / 1e6;
    println!(
        "{mb:.1} MB uncompressed, {:.1} MB gzip (best of {iters}): plain inflate {:.3}s ({:.0} MB/s); \
         indexer {:.3}s = {:.3}x with background hashing, {:.3}s = {:.3}x inline, \
         {:.3}s = {:.3}x with 8 KiB reads; sha256 alone {:.3}s; \
         thread CPU time: plain {:.3}s, inline indexer {:.3}s = {:.3}x",
        gz.len() as f64 / 1e6,
        best[0],
        mb / best[0],
        best[1],
        best[1] / best[0],
        best[2],
        best[2] / best[0],
        best[4],
        best[4] / best[0],
        best[3],
        cpu[0],
        cpu[1],
        cpu[1] / cpu[0]
    );
}
