#![no_main]
//! Checkpoint blobs: parsing, validation and span geometry never panic.
use libfuzzer_sys::fuzz_target;
use soci_format::zinfo::Zinfo;
use soci_format::ztoc::CompressionAlgorithm;

fuzz_target!(|data: &[u8]| {
    for alg in [CompressionAlgorithm::Gzip, CompressionAlgorithm::Uncompressed] {
        if let Ok(z) = Zinfo::from_checkpoints(alg, data) {
            let _ = z.to_checkpoints();
            let sizes = [0u64, 1, 1 << 20, u64::MAX / 2];
            for c in sizes {
                for u in sizes {
                    if z.validate(c, u).is_ok() {
                        for s in 0..=z.max_span_id().min(64) {
                            let _ = z.start_compressed_offset(s);
                            let _ = z.end_compressed_offset(s, c);
                            let _ = z.start_uncompressed_offset(s);
                            let _ = z.end_uncompressed_offset(s, u);
                        }
                        let _ = z.span_of(u / 2);
                    }
                }
            }
        }
    }
});
