//! zTOC build time against plain decompression of the same gzip layer.
//!
//! Run with `cargo bench -p soci-format --bench ztoc_build` (add `-- --size-mb N`
//! to change the layer size, default 640 MiB of tar, ~>200 MiB of gzip). The layer is
//! generated deterministically and cached under the target directory. Each
//! round times, in turn: `gzip -dc > /dev/null`, a plain zlib-rs inflate loop,
//! and `build_ztoc`; rounds are interleaved so that machine noise hits all
//! three alike. Prints a Markdown table with medians, min/max and ratios.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use soci_format::ztoc::{BuildOptions, CompressionAlgorithm, build_ztoc};

const ROUNDS: usize = 5;

fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A tar with a realistic mix: many small text-like files, some mid-size
/// "libraries" (repetitive binary), and incompressible assets.
fn write_layer(path: &PathBuf, tar_bytes: u64) {
    let file = File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(
        BufWriter::with_capacity(1 << 20, file),
        flate2::Compression::new(6),
    );
    let mut tar = tar::Builder::new(gz);
    let mut state = 0x5eed_u64;
    let words: Vec<&[u8]> = vec![
        b"import ",
        b"def ",
        b"return ",
        b"self",
        b"(x, y)",
        b"\n    ",
        b"# comment about spans\n",
        b"class Layer:\n",
        b"0x1f2e3d",
        b"value = ",
    ];
    let mut written = 0u64;
    let mut i = 0u64;
    while written < tar_bytes {
        let kind = rng(&mut state) % 100;
        let size = match kind {
            0..=79 => rng(&mut state) % 16_384,
            80..=96 => 64 * 1024 + rng(&mut state) % (2 << 20),
            _ => (1 << 20) + rng(&mut state) % (6 << 20),
        } as usize;
        let mut data = Vec::with_capacity(size);
        while data.len() < size {
            if kind > 96 {
                data.extend_from_slice(&rng(&mut state).to_le_bytes());
            } else if kind > 79 {
                let x = rng(&mut state);
                for _ in 0..(x % 32) {
                    data.extend_from_slice(&(x & 0xffff_0000_ffff).to_le_bytes());
                }
                data.extend_from_slice(&x.to_le_bytes());
            } else {
                data.extend_from_slice(words[(rng(&mut state) % words.len() as u64) as usize]);
            }
        }
        data.truncate(size);
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(
            &mut h,
            format!("usr/lib/pkg{}/file{}.py", i / 100, i),
            &data[..],
        )
        .unwrap();
        written += 512 + (size as u64).div_ceil(512) * 512;
        i += 1;
    }
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size_mb: u64 = args
        .iter()
        .position(|a| a == "--size-mb")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(640);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let layer = dir.join(format!("layer-{size_mb}mb.tar.gz"));
    if !layer.exists() {
        eprintln!("generating {} ...", layer.display());
        let tmp = layer.with_extension("tmp");
        write_layer(&tmp, size_mb << 20);
        std::fs::rename(&tmp, &layer).unwrap();
    }
    let compressed = std::fs::metadata(&layer).unwrap().len();

    let mut gzip_t = Vec::new();
    let mut inflate_t = Vec::new();
    let mut build_t = Vec::new();
    let mut uncompressed = 0u64;
    let mut spans = 0;
    let mut files = 0;
    for round in 0..ROUNDS {
        let t = Instant::now();
        let st = Command::new("gzip")
            .arg("-dc")
            .arg(&layer)
            .stdout(Stdio::null())
            .status()
            .expect("gzip");
        assert!(st.success());
        gzip_t.push(t.elapsed());

        let t = Instant::now();
        let mut d = flate2::read::MultiGzDecoder::new(File::open(&layer).unwrap());
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let r = d.read(&mut buf).unwrap();
            if r == 0 {
                break;
            }
            n += r as u64;
        }
        inflate_t.push(t.elapsed());
        uncompressed = n;

        let t = Instant::now();
        let z = build_ztoc(
            File::open(&layer).unwrap(),
            CompressionAlgorithm::Gzip,
            &BuildOptions::default(),
        )
        .unwrap();
        build_t.push(t.elapsed());
        spans = z.compression_info.max_span_id + 1;
        files = z.toc.len();
        eprintln!(
            "round {}: gzip {:?} inflate {:?} build {:?}",
            round + 1,
            gzip_t[round],
            inflate_t[round],
            build_t[round]
        );
    }
    let minmax = |v: &[Duration]| {
        let mn = v.iter().min().unwrap().as_secs_f64();
        let mx = v.iter().max().unwrap().as_secs_f64();
        format!("{mn:.3} / {mx:.3}")
    };
    let (g_mm, i_mm, b_mm) = (minmax(&gzip_t), minmax(&inflate_t), minmax(&build_t));
    let g = median(&mut gzip_t).as_secs_f64();
    let i = median(&mut inflate_t).as_secs_f64();
    let b = median(&mut build_t).as_secs_f64();
    println!(
        "Layer: {:.1} MiB gzip (level 6), {:.1} MiB uncompressed, {files} files, {spans} spans of 4 MiB; {ROUNDS} interleaved rounds.\n",
        compressed as f64 / 1048576.0,
        uncompressed as f64 / 1048576.0
    );
    println!("| operation | median (s) | min / max (s) | ratio to zlib-rs inflate |");
    println!("|---|---|---|---|");
    println!(
        "| `gzip -dc > /dev/null` | {g:.3} | {g_mm} | {:.2} |",
        g / i
    );
    println!("| plain zlib-rs inflate loop | {i:.3} | {i_mm} | 1.00 |");
    println!(
        "| `build_ztoc` (checkpoints + TOC + span digests) | {b:.3} | {b_mm} | **{:.2}** |",
        b / i
    );
}
