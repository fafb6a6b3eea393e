//! Checkpoints (in, out, bits, window) and span digests equal those of a C zlib
//! zran reference on many kinds of input, and do not depend on I/O chunking.

use std::io::Read;

use flate2::FlushCompress;
use soci_format::Digest;
use soci_format::zinfo::{IndexedLayer, IndexerOptions, LayerIndexer, Zinfo};
use soci_format::ztoc::CompressionAlgorithm;

use crate::common::*;
use crate::reference;

pub const SPANS: &[u64] = &[64 << 10, 256 << 10, 1 << 20, 4 << 20];

/// Index `gz`, reading the output with a cycle of buffer sizes; returns the
/// indexed layer and the uncompressed bytes the consumer saw.
pub fn index_with(
    gz: &[u8],
    span: u64,
    input_sizes: &[usize],
    read_sizes: &[usize],
) -> (IndexedLayer, Vec<u8>) {
    let opts = IndexerOptions {
        background_hashing: true,
        ..IndexerOptions::default()
    };
    index_opts(gz, span, input_sizes, read_sizes, opts)
}

pub fn index_opts(
    gz: &[u8],
    span: u64,
    input_sizes: &[usize],
    read_sizes: &[usize],
    opts: IndexerOptions,
) -> (IndexedLayer, Vec<u8>) {
    let inner = Choppy {
        inner: gz,
        sizes: input_sizes.to_vec(),
        i: 0,
    };
    let mut ix = LayerIndexer::with_options(inner, CompressionAlgorithm::Gzip, span, opts).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; *read_sizes.iter().max().unwrap()];
    let mut i = 0;
    loop {
        let n = read_sizes[i % read_sizes.len()];
        i += 1;
        let got = ix.read(&mut buf[..n]).unwrap();
        if got == 0 {
            break;
        }
        out.extend_from_slice(&buf[..got]);
    }
    (ix.finish().unwrap(), out)
}

pub fn index(gz: &[u8], span: u64) -> IndexedLayer {
    index_with(gz, span, &[1 << 20], &[256 << 10]).0
}

fn gzip_zinfo(l: &IndexedLayer) -> &soci_format::zinfo::GzipZinfo {
    match &l.zinfo {
        Zinfo::Gzip(g) => g,
        Zinfo::Tar(_) => panic!("expected gzip"),
    }
}

/// Compare with the reference and check the geometry, digests and round trip.
pub fn check(name: &str, data: &[u8], gz: &[u8], span: u64) -> IndexedLayer {
    let expect =
        reference::zran(gz, span).unwrap_or_else(|c| panic!("{name}: reference failed {c}"));
    let (layer, out) = index_with(gz, span, &[1 << 20], &[1, 512, 4096, 100_000, 1 << 20]);
    assert!(out == data, "{name}: uncompressed stream differs");
    let z = gzip_zinfo(&layer);
    let got: Vec<(u64, u64, u8)> = z
        .checkpoints()
        .iter()
        .map(|p| (p.compressed_offset, p.uncompressed_offset, p.bits))
        .collect();
    let want: Vec<(u64, u64, u8)> = expect.iter().map(|p| (p.cin, p.cout, p.bits)).collect();
    assert_eq!(got, want, "{name} span {span}: checkpoint positions differ");
    for (i, p) in expect.iter().enumerate() {
        let w = z.window(i);
        if w != p.window.as_slice() {
            let first = w.iter().zip(&p.window).position(|(a, b)| a != b).unwrap();
            panic!("{name} span {span}: window {i} ({p:?}) differs first at byte {first}");
        }
    }
    assert_eq!(layer.compressed_size, gz.len() as u64, "{name}");
    assert_eq!(layer.uncompressed_size, data.len() as u64, "{name}");
    assert_eq!(layer.zinfo.span_size(), span);
    assert_eq!(layer.zinfo.algorithm(), CompressionAlgorithm::Gzip);
    assert_eq!(layer.zinfo.max_span_id() as usize + 1, expect.len());
    layer
        .zinfo
        .validate(layer.compressed_size, layer.uncompressed_size)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    check_digests(name, &layer, gz);
    // Inline hashing and other chunking give the same result.
    let opts = IndexerOptions {
        background_hashing: false,
        direct_read_min: 1,
    };
    let inline = index_opts(gz, span, &[100_000, 16 << 10], &[65536, 1, 300, 4096], opts);
    assert!(
        inline.0 == layer && inline.1 == data,
        "{name}: inline hashing differs"
    );
    let blob = layer.zinfo.to_checkpoints();
    assert_eq!(blob.len(), 12 + 32785 * expect.len());
    let back = Zinfo::from_checkpoints(CompressionAlgorithm::Gzip, &blob).unwrap();
    assert_eq!(back, layer.zinfo, "{name}: blob round trip");
    layer
}

/// Span digests are sha256 of `[start_i, end_i)` as the geometry functions define them.
pub fn check_digests(name: &str, layer: &IndexedLayer, blob: &[u8]) {
    let z = &layer.zinfo;
    assert_eq!(
        layer.span_digests.len(),
        z.max_span_id() as usize + 1,
        "{name}"
    );
    for (i, d) in layer.span_digests.iter().enumerate() {
        let i = i as u32;
        let s = z.start_compressed_offset(i) as usize;
        let e = z.end_compressed_offset(i, blob.len() as u64) as usize;
        assert_eq!(
            *d,
            Digest::of(&blob[s..e]),
            "{name}: digest of span {i} [{s}, {e})"
        );
    }
}

#[test]
fn text_levels_and_spans() {
    let data = text(6 << 20, 1);
    for level in [1, 6, 9] {
        let gz = gzip(&data, level);
        for &span in SPANS {
            check(&format!("text l{level}"), &data, &gz, span);
        }
    }
}

#[test]
fn random_data() {
    let data = random(3 << 20, 2);
    let gz = gzip(&data, 6);
    for &span in SPANS {
        check("random", &data, &gz, span);
    }
}

#[test]
fn mixed_levels() {
    let data = mixed(12 << 20, 3);
    let mut bits_seen = 0;
    for level in [1, 6, 9] {
        let gz = gzip(&data, level);
        for &span in SPANS {
            let l = check(&format!("mixed l{level}"), &data, &gz, span);
            bits_seen += gzip_zinfo(&l)
                .checkpoints()
                .iter()
                .filter(|p| p.bits != 0)
                .count();
        }
    }
    assert!(
        bits_seen > 10,
        "expected checkpoints inside bytes, saw {bits_seen}"
    );
}

#[test]
fn every_block_boundary_with_span_zero() {
    let data = mixed(1 << 20, 4);
    let gz = gzip(&data, 6);
    let l = check("span 0", &data, &gz, 0);
    assert!(l.zinfo.max_span_id() > 3);
}

/// Block boundaries exactly at, just before and just after `last + span`:
/// the indexer inflates without stopping at boundaries below that threshold,
/// so the first boundary past it must still be the one upstream picks, also
/// when an empty stored block (sync flush) puts two boundaries at one offset.
#[test]
fn boundaries_at_the_span_threshold() {
    let data = mixed(1 << 20, 9);
    for flush in [
        FlushCompress::Sync,
        FlushCompress::Full,
        FlushCompress::Partial,
    ] {
        let gz = gzip_member(
            &data,
            6,
            &Header::default(),
            Some(FlushPlan {
                every: 10_000,
                flush,
            }),
        );
        for span in [9_999, 10_000, 10_001, 19_999, 20_000, 20_001] {
            check(&format!("threshold {flush:?}"), &data, &gz, span);
        }
    }
}

#[test]
fn flushes_make_odd_boundaries() {
    let data = mixed(3 << 20, 5);
    for (flush, every) in [
        (FlushCompress::Partial, 5_000),
        (FlushCompress::Sync, 30_000),
        (FlushCompress::Full, 70_000),
        (FlushCompress::Partial, 100_003),
    ] {
        let gz = gzip_member(
            &data,
            6,
            &Header::default(),
            Some(FlushPlan { every, flush }),
        );
        for span in [0, 16 << 10, 64 << 10, 1 << 20] {
            check(&format!("flush {flush:?}/{every}"), &data, &gz, span);
        }
    }
}

#[test]
fn concatenated_members() {
    let data = mixed(8 << 20, 6);
    let mut r = Rng::new(7);
    let mut cuts = vec![0, 100, 100, 10_000, 50_000, 90_000];
    let mut at = 90_000;
    while at < data.len() {
        at += match r.below(4) {
            0 => r.below(40_000),
            1 => r.below(200_000),
            2 => 5_000,
            _ => r.below(3 << 20),
        } as usize;
        if at < data.len() {
            cuts.push(at);
        }
    }
    for level in [1, 6] {
        let gz = multi_member(&data, &cuts, level);
        for &span in SPANS {
            check(&format!("members l{level}"), &data, &gz, span);
        }
        // Many checkpoints right after member headers, windows across members.
        check(&format!("members l{level}"), &data, &gz, 1000);
    }
}

#[test]
fn small_members_windows_cross_boundaries() {
    let data = text(2 << 20, 8);
    let cuts: Vec<usize> = (1..(data.len() / 7_000)).map(|i| i * 7_000).collect();
    let gz = multi_member(&data, &cuts, 6);
    for span in [10_000, 64 << 10] {
        check("7k members", &data, &gz, span);
    }
}

#[test]
fn headers_with_optional_fields() {
    let data = mixed(3 << 20, 9);
    let headers = [
        Header {
            name: Some(b"layer.tar".to_vec()),
            ..Header::default()
        },
        Header {
            extra: Some(vec![7; 300]),
            name: Some(b"n".to_vec()),
            comment: Some(vec![b'c'; 511]),
            hcrc: true,
        },
        Header {
            comment: Some(b"made by hand".to_vec()),
            hcrc: true,
            ..Header::default()
        },
    ];
    let mut all = Vec::new();
    let mut all_data = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let gz = gzip_member(&data, 6, h, None);
        let l = check(&format!("header {i}"), &data, &gz, 1 << 20);
        let start0 = l.zinfo.start_compressed_offset(0) as usize;
        assert_eq!(start0, h.bytes().len());
        soci_format::zinfo::check_gzip_header(&gz[..start0]).unwrap();
        all.extend_from_slice(&gz);
        all_data.extend_from_slice(&data);
    }
    check("headers concatenated", &all_data, &all, 256 << 10);
}

#[test]
fn empty_members_and_empty_stream() {
    let data = text(300_000, 10);
    let mut gz = gzip(&[], 6);
    gz.extend_from_slice(&gzip(&[], 6));
    gz.extend_from_slice(&gzip(&data, 6));
    gz.extend_from_slice(&gzip(&[], 6));
    let l = check("leading empty members", &data, &gz, 64 << 10);
    // Each leading empty member yields a checkpoint at out = 0.
    assert!(
        gzip_zinfo(&l).checkpoints()[..3]
            .iter()
            .all(|p| p.uncompressed_offset == 0)
    );

    let empty = gzip(&[], 9);
    let l = check("empty", &[], &empty, 64 << 10);
    assert_eq!(l.zinfo.max_span_id(), 0);
}

#[test]
fn chunking_does_not_matter() {
    let data = mixed(2 << 20, 11);
    let mut gz = gzip_member(
        &data,
        6,
        &Header::default(),
        Some(FlushPlan {
            every: 20_000,
            flush: FlushCompress::Partial,
        }),
    );
    gz.extend_from_slice(&gzip(&data[..100_000], 1));
    let base = index_with(&gz, 64 << 10, &[16 << 10], &[32 << 10]);
    let variants: &[(&[usize], &[usize])] = &[
        (&[1 << 20], &[1 << 20]),
        (&[1], &[4096]),
        (&[7, 100_003, 333, 16 << 10], &[1, 512, 5000, 70_000]),
        (&[3], &[1]),
        (&[16 << 10], &[1, 2, 3, 250, 258, 259, 1000]),
    ];
    for direct_read_min in [1, 64 << 10] {
        for background_hashing in [false, true] {
            let opts = IndexerOptions {
                background_hashing,
                direct_read_min,
            };
            for (ins, outs) in variants {
                let got = index_opts(&gz, 64 << 10, ins, outs, opts.clone());
                let what = format!("{ins:?}/{outs:?} {opts:?}");
                assert!(got.1 == base.1, "stream differs for {what}");
                assert!(got.0 == base.0, "index differs for {what}");
            }
        }
    }
}

#[test]
fn finish_drains_unread_input() {
    let data = mixed(3 << 20, 12);
    let gz = gzip(&data, 6);
    let full = index(&gz, 256 << 10);
    let mut ix = LayerIndexer::new(&gz[..], CompressionAlgorithm::Gzip, 256 << 10).unwrap();
    let mut head = vec![0u8; 10_000];
    ix.read_exact(&mut head).unwrap();
    assert_eq!(head, data[..10_000]);
    assert_eq!(ix.finish().unwrap(), full);
}

#[test]
fn uncompressed_layers() {
    let data = mixed(1 << 20, 13);
    for (len, span) in [
        (1 << 20, 4096u64),
        (1_000_000, 65536),
        (10240, 4 << 20),
        (1, 1),
        (0, 512),
    ] {
        let blob = &data[..len];
        let inner = Choppy {
            inner: blob,
            sizes: vec![1000, 77, 65536],
            i: 0,
        };
        let mut ix = LayerIndexer::new(inner, CompressionAlgorithm::Uncompressed, span).unwrap();
        let mut out = Vec::new();
        ix.read_to_end(&mut out).unwrap();
        assert!(out == blob);
        let l = ix.finish().unwrap();
        assert_eq!(l.compressed_size, len as u64);
        assert_eq!(l.uncompressed_size, len as u64);
        assert_eq!(l.zinfo.algorithm(), CompressionAlgorithm::Uncompressed);
        let spans = (len as u64).div_ceil(span);
        assert_eq!(l.zinfo.num_spans(), spans);
        assert_eq!(l.span_digests.len() as u64, spans);
        if spans > 0 {
            check_digests("tar", &l, blob);
            l.zinfo.validate(len as u64, len as u64).unwrap();
        } else {
            assert!(l.zinfo.validate(0, 0).is_err());
        }
        let back = Zinfo::from_checkpoints(
            CompressionAlgorithm::Uncompressed,
            &l.zinfo.to_checkpoints(),
        )
        .unwrap();
        assert_eq!(back, l.zinfo);
    }
    assert!(LayerIndexer::new(&data[..], CompressionAlgorithm::Uncompressed, 0).is_err());
}

/// Compare with the reference on a real file: `SOCI_DIFF_GZ=<file.gz>` (ignored by default).
#[test]
#[ignore]
fn reference_on_file() {
    let Some(path) = std::env::var_os("SOCI_DIFF_GZ") else {
        panic!("set SOCI_DIFF_GZ to a gzip file");
    };
    let gz = std::fs::read(path).unwrap();
    let mut data = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut data)
        .unwrap();
    for &span in SPANS {
        let l = check("file", &data, &gz, span);
        println!(
            "span {span}: {} checkpoints, {} inside a byte",
            l.zinfo.num_spans(),
            gzip_zinfo(&l)
                .checkpoints()
                .iter()
                .filter(|p| p.bits != 0)
                .count()
        );
    }
}

#[test]
fn types_cross_threads() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<LayerIndexer<std::fs::File>>();
    send::<IndexedLayer>();
    send::<Zinfo>();
    sync::<Zinfo>();
    send::<soci_format::zinfo::ZinfoError>();
    sync::<soci_format::zinfo::ZinfoError>();
}

#[test]
fn zlib_wrapped_stream_like_upstream() {
    // Upstream inflates with windowBits 47 (gzip or zlib auto-detection).
    use std::io::Write;
    let data = mixed(1 << 20, 14);
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&data).unwrap();
    let z = e.finish().unwrap();
    let l = check("zlib", &data, &z, 64 << 10);
    assert_eq!(l.zinfo.start_compressed_offset(0), 2);
    assert!(soci_format::zinfo::check_gzip_header(&z[..2]).is_err());
}
