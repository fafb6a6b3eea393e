//! zTOC build time against plain decompression of the same gzip layer.
//!
//! Run with `cargo bench -p soci-format --bench ztoc_build` (add `-- --size-mb N`
//! to change the layer size, default 640 MiB of tar, ~>200 MiB of gzip; add
//! `-- --only inflate|build|build-1t|sha` to run one operation once, e.g. under
//! `perf stat`). The layer is
//! generated deterministically and cached under the target directory. Each
//! round times, in turn: `gzip -dc > /dev/null`, a plain zlib-rs inflate loop
//! (256 KiB input reads and output buffer, as `build_ztoc` uses), `build_ztoc`,
//! and the same work with the span digests computed on the calling thread;
//! rounds are interleaved so that machine noise hits all alike. Prints a
//! Markdown table with medians of wall time and CPU time (all threads, and the
//! calling thread alone, from `/proc`), min/max and ratios.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use soci_format::zinfo::{IndexerOptions, LayerIndexer};
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

/// CPU time (user + system) from a `/proc` stat file, in seconds.
fn cpu_seconds(stat: &str) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Wall time, CPU time of the whole process and of the calling thread.
#[derive(Clone, Copy)]
struct Sample {
    wall: f64,
    cpu: f64,
    main_cpu: f64,
}

fn measure(f: impl FnOnce()) -> Sample {
    let (p0, m0) = (
        cpu_seconds("/proc/self/stat"),
        cpu_seconds("/proc/thread-self/stat"),
    );
    let t = Instant::now();
    f();
    let wall = t.elapsed().as_secs_f64();
    Sample {
        wall,
        cpu: cpu_seconds("/proc/self/stat") - p0,
        main_cpu: cpu_seconds("/proc/thread-self/stat") - m0,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Input chunk and output buffer of the inflate loops: the sizes `build_ztoc`
/// uses (256 KiB reads of the blob, a 256 KiB buffer for the tar walker).
const IO_SIZE: usize = 256 * 1024;

/// Plain inflate of the whole layer (all gzip members), discarding the output.
fn plain_inflate(layer: &PathBuf) -> u64 {
    let file = BufReader::with_capacity(IO_SIZE, File::open(layer).unwrap());
    let mut d = flate2::bufread::MultiGzDecoder::new(file);
    let mut buf = vec![0u8; IO_SIZE];
    let mut n = 0u64;
    loop {
        let r = d.read(&mut buf).unwrap();
        if r == 0 {
            break;
        }
        n += r as u64;
    }
    n
}

/// `build_ztoc`'s work with the span digests computed on the calling thread.
fn build_single_thread(layer: &PathBuf) -> usize {
    let opts = IndexerOptions {
        background_hashing: false,
        ..IndexerOptions::default()
    };
    let mut ix = LayerIndexer::with_options(
        File::open(layer).unwrap(),
        CompressionAlgorithm::Gzip,
        BuildOptions::default().span_size,
        opts,
    )
    .unwrap();
    let toc = soci_format::toc::build_toc(&mut ix).unwrap();
    let indexed = ix.finish().unwrap();
    toc.entries.len() + indexed.span_digests.len()
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

    // `--only inflate|build|build-1t|sha`: run one operation once (for `perf stat`).
    if let Some(op) = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
    {
        match op.as_str() {
            "inflate" => {
                plain_inflate(&layer);
            }
            "build" => {
                build_ztoc(
                    File::open(&layer).unwrap(),
                    CompressionAlgorithm::Gzip,
                    &BuildOptions::default(),
                )
                .unwrap();
            }
            "build-1t" => {
                build_single_thread(&layer);
            }
            "sha" => {
                let mut f = File::open(&layer).unwrap();
                let mut h = soci_format::digest::Hasher::new();
                let mut buf = vec![0u8; IO_SIZE];
                loop {
                    let n = f.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                std::hint::black_box(h.finish());
            }
            other => panic!("unknown --only operation {other}"),
        }
        return;
    }

    // gzip, plain inflate, build_ztoc, build_ztoc on one thread.
    let mut samples: [Vec<Sample>; 4] = Default::default();
    let mut uncompressed = 0u64;
    let mut spans = 0;
    let mut files = 0;
    for round in 0..ROUNDS {
        samples[0].push(measure(|| {
            let st = Command::new("gzip")
                .arg("-dc")
                .arg(&layer)
                .stdout(Stdio::null())
                .status()
                .expect("gzip");
            assert!(st.success());
        }));
        samples[1].push(measure(|| uncompressed = plain_inflate(&layer)));
        samples[2].push(measure(|| {
            let z = build_ztoc(
                File::open(&layer).unwrap(),
                CompressionAlgorithm::Gzip,
                &BuildOptions::default(),
            )
            .unwrap();
            spans = z.compression_info.max_span_id + 1;
            files = z.toc.len();
        }));
        samples[3].push(measure(|| {
            std::hint::black_box(build_single_thread(&layer));
        }));
        eprintln!(
            "round {}: gzip {:.3}s inflate {:.3}s build {:.3}s build (1 thread) {:.3}s",
            round + 1,
            samples[0][round].wall,
            samples[1][round].wall,
            samples[2][round].wall,
            samples[3][round].wall,
        );
    }
    let stat = |v: &[Sample], f: fn(&Sample) -> f64| median(v.iter().map(f).collect());
    let base = stat(&samples[1], |s| s.wall);
    let base_cpu = stat(&samples[1], |s| s.cpu);
    println!(
        "Layer: {:.1} MiB gzip (level 6), {:.1} MiB uncompressed, {files} files, {spans} spans of 4 MiB; {ROUNDS} interleaved rounds; medians.\n",
        compressed as f64 / 1048576.0,
        uncompressed as f64 / 1048576.0
    );
    println!(
        "| operation | wall (s) | min / max wall (s) | wall ratio to inflate | CPU, all threads (s) | CPU, calling thread (s) | calling-thread CPU ratio to inflate |"
    );
    println!("|---|---|---|---|---|---|---|");
    let names = [
        "`gzip -dc > /dev/null`",
        "plain zlib-rs inflate loop",
        "`build_ztoc` (checkpoints + TOC + span digests)",
        "`build_ztoc` work, span digests on the calling thread",
    ];
    for (i, name) in names.iter().enumerate() {
        let v = &samples[i];
        let wall = stat(v, |s| s.wall);
        let mn = v.iter().map(|s| s.wall).fold(f64::INFINITY, f64::min);
        let mx = v.iter().map(|s| s.wall).fold(0.0, f64::max);
        let ratio = wall / base;
        let ratio = if i == 2 {
            format!("**{ratio:.2}**")
        } else {
            format!("{ratio:.2}")
        };
        // gzip runs in a child process: its CPU time is not ours.
        let (cpu, main_cpu, main_ratio) = if i == 0 {
            ("-".to_string(), "-".to_string(), "-".to_string())
        } else {
            let c = stat(v, |s| s.cpu);
            let m = stat(v, |s| s.main_cpu);
            (
                format!("{c:.2}"),
                format!("{m:.2}"),
                format!("{:.2}", m / base_cpu),
            )
        };
        println!(
            "| {name} | {wall:.3} | {mn:.3} / {mx:.3} | {ratio} | {cpu} | {main_cpu} | {main_ratio} |"
        );
    }
}
