#![no_main]
//! The tar walker never panics, and every entry it reports lies inside the
//! archive size it reports.
use libfuzzer_sys::fuzz_target;
use soci_format::toc::build_toc;

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    if let Ok(toc) = build_toc(&mut r) {
        assert!(toc.uncompressed_archive_size <= data.len() as u64);
        for e in &toc.entries {
            assert!(e.uncompressed_offset + e.uncompressed_size <= data.len() as u64);
        }
    }
});
