#![no_main]
//! Extraction from arbitrary (possibly hostile) span bytes with a valid
//! checkpoint set never panics: it yields bytes or an error.
use libfuzzer_sys::fuzz_target;
use soci_format::zinfo::Zinfo;
use soci_format::ztoc::CompressionAlgorithm;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // A v2 blob with one checkpoint at the start of the deflate stream.
    let bits = data[0] & 7;
    let mut blob = Vec::new();
    blob.extend_from_slice(&1i32.to_le_bytes());
    blob.extend_from_slice(&(1i64 << 16).to_le_bytes());
    blob.extend_from_slice(&10i64.to_le_bytes());
    blob.extend_from_slice(&0i64.to_le_bytes());
    blob.push(bits);
    blob.extend(std::iter::repeat_n(data[1], 32768));
    let Ok(z) = Zinfo::from_checkpoints(CompressionAlgorithm::Gzip, &blob) else {
        return;
    };
    let offset = u64::from(data[2]) * 7;
    let mut out = vec![0u8; usize::from(data[3]) * 33 + 1];
    let _ = z.extract(&data[4..], 0, offset, &mut out);
});
