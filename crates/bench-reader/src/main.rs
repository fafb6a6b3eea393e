//! Workload program of the time-to-ready benchmark.
//!
//! `soci-bench-reader LIST` runs the operations of LIST, one per line:
//!
//! - `r OFFSET LEN PATH`: open PATH, read LEN bytes from OFFSET, close;
//! - `s PATH`: stat PATH, which must exist (its type, and the size of a file
//!   or link, go into the hash);
//! - `m PATH`: stat PATH, which must not exist (a negative lookup);
//! - `d PATH`: list the directory PATH (names hashed in sorted order);
//! - `x PROGRAM\tARG...`: run PROGRAM with the tab-separated arguments; it
//!   must exit with status 0 (its standard output is hashed).
//!
//! It times every operation and prints one line, `SOCI-BENCH-RESULT {json}`,
//! with the count, bytes read, elapsed time, latency percentiles and a digest
//! of everything read (so that two filesystems can be compared byte for byte).
//! Any failed operation makes it exit with status 1. No dependencies: the
//! benchmark builds it as a static binary and copies it into the image.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 2 {
        eprintln!("usage: soci-bench-reader LIST");
        std::process::exit(2);
    }
    match run(&args[1]) {
        Ok(line) => println!("SOCI-BENCH-RESULT {line}"),
        Err(e) => {
            eprintln!("soci-bench-reader: {e}");
            std::process::exit(1);
        }
    }
}

/// A 64-bit digest, fed eight bytes at a time (not cryptographic; it only
/// has to tell two byte streams apart).
struct Hash(u64);

impl Hash {
    fn feed(&mut self, buf: &[u8]) {
        let mut chunks = buf.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            self.mix(w);
        }
        for &b in chunks.remainder() {
            self.mix(b as u64 | 0x100);
        }
    }

    fn mix(&mut self, w: u64) {
        self.0 = (self.0 ^ w)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
}

fn run(list: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(list).map_err(|e| format!("read {list}: {e}"))?;
    let mut lat_ns: Vec<u64> = Vec::new();
    let mut bytes = 0u64;
    let mut missing = 0u64;
    let mut hash = Hash(0x5EED);
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let t = Instant::now();
        let bad = || format!("{list}:{}: malformed line {line:?}", n + 1);
        match line.split_at_checked(2).ok_or_else(bad)? {
            ("r ", rest) => {
                let mut it = rest.splitn(3, ' ');
                let off: u64 = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
                let len: u64 = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
                let path = it.next().ok_or_else(bad)?;
                let mut f = File::open(path).map_err(|e| format!("open {path}: {e}"))?;
                if off > 0 {
                    f.seek(SeekFrom::Start(off))
                        .map_err(|e| format!("seek {path}: {e}"))?;
                }
                let mut left = len;
                while left > 0 {
                    let want = left.min(buf.len() as u64) as usize;
                    let got = f
                        .read(&mut buf[..want])
                        .map_err(|e| format!("read {path}: {e}"))?;
                    if got == 0 {
                        return Err(format!("{path}: ends {left} bytes early"));
                    }
                    hash.feed(&buf[..got]);
                    left -= got as u64;
                }
                bytes += len;
            }
            ("s ", path) => {
                let m = std::fs::symlink_metadata(path).map_err(|e| format!("stat {path}: {e}"))?;
                // The type, and the size of files and links. A directory's
                // size is the backing filesystem's business (ext4 under
                // overlayfs: blocks of 4 KiB; a tar header: 0), not the image's.
                let t = m.file_type();
                let kind = if t.is_dir() {
                    1
                } else if t.is_symlink() {
                    2
                } else {
                    3
                };
                hash.mix(kind);
                hash.mix(if t.is_dir() { 0 } else { m.len() });
            }
            ("m ", path) => match std::fs::symlink_metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing += 1,
                Err(e) => return Err(format!("stat {path}: {e}")),
                Ok(_) => return Err(format!("{path} exists but should not")),
            },
            ("d ", path) => {
                let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(path)
                    .map_err(|e| format!("list {path}: {e}"))?
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("list {path}: {e}"))?;
                names.sort();
                for n in &names {
                    hash.feed(n.as_encoded_bytes());
                }
                hash.mix(names.len() as u64);
            }
            ("x ", cmd) => {
                let mut argv = cmd.split('\t');
                let prog = argv.next().ok_or_else(bad)?;
                let out = std::process::Command::new(prog)
                    .args(argv)
                    // A closed pipe rather than /dev/null: the Nydus scenario
                    // runs the reader in a bare chroot with no /dev.
                    .stdin(std::process::Stdio::piped())
                    .output()
                    .map_err(|e| format!("run {prog}: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "{prog} failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                hash.feed(&out.stdout);
            }
            _ => return Err(bad()),
        }
        lat_ns.push(t.elapsed().as_nanos() as u64);
    }
    let elapsed = start.elapsed().as_nanos() as u64;
    lat_ns.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat_ns.is_empty() {
            return 0.0;
        }
        let i = ((lat_ns.len() as f64 - 1.0) * p).round() as usize;
        lat_ns[i.min(lat_ns.len() - 1)] as f64 / 1000.0
    };
    Ok(format!(
        "{{\"ops\":{},\"bytes\":{},\"missing\":{},\"elapsed_ns\":{},\"p50_us\":{:.1},\"p95_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1},\"digest\":\"{:016x}\"}}",
        lat_ns.len(),
        bytes,
        missing,
        elapsed,
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(1.0),
        hash.0
    ))
}
