//! Rough speed of the indexer against a plain inflate loop. Ignored by default;
//! run with `cargo test --release -p soci-format --test zinfo -- --ignored --nocapture speed`.

use std::io::Read;
use std::time::Instant;

use soci_format::zinfo::LayerIndexer;
use soci_format::ztoc::CompressionAlgorithm;

use crate::common::*;

#[test]
#[ignore]
fn speed_vs_plain_inflate() {
    let data = mixed(50 << 20, 99);
    let gz = gzip(&data, 6);
    let mut buf = vec![0u8; 256 << 10];
    let mut best_plain = f64::MAX;
    let mut best_index = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let mut d = flate2::read::MultiGzDecoder::new(&gz[..]);
        let mut total = 0;
        loop {
            let n = d.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, data.len());
        best_plain = best_plain.min(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut ix = LayerIndexer::new(&gz[..], CompressionAlgorithm::Gzip, 4 << 20).unwrap();
        let mut total = 0;
        loop {
            let n = ix.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        let l = ix.finish().unwrap();
        assert_eq!(total, data.len());
        assert!(l.span_digests.len() > 5);
        best_index = best_index.min(t.elapsed().as_secs_f64());
    }
    let mb = data.len() as f64 / 1e6;
    println!(
        "{:.1} MB uncompressed ({:.1} MB gzip): plain inflate {:.3}s ({:.0} MB/s), indexer {:.3}s ({:.0} MB/s), ratio {:.3}",
        mb,
        gz.len() as f64 / 1e6,
        best_plain,
        mb / best_plain,
        best_index,
        mb / best_index,
        best_index / best_plain
    );
}
