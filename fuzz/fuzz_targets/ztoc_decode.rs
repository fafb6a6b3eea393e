#![no_main]
//! Any bytes given to the zTOC decoder give a zTOC or an error, never a panic;
//! a decoded zTOC re-encodes and decodes to the same value.
use libfuzzer_sys::fuzz_target;
use soci_format::ztoc::Ztoc;

fuzz_target!(|data: &[u8]| {
    if let Ok(z) = Ztoc::from_bytes(data) {
        let again = Ztoc::from_bytes(&z.to_bytes()).expect("re-encoded zTOC decodes");
        assert_eq!(again, z);
    }
});
