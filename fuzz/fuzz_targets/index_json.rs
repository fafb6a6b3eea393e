#![no_main]
//! Index and manifest JSON: parsing never panics; what parses re-serializes to
//! bytes that parse to the same value.
use libfuzzer_sys::fuzz_target;
use soci_format::json::{self, Index, Manifest, SociIndex};

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = SociIndex::from_manifest_bytes(data) {
        let bytes = idx.marshal();
        let again = SociIndex::from_manifest_bytes(&bytes).expect("re-marshaled index parses");
        assert_eq!(again.marshal(), bytes);
    }
    if let Ok(m) = Manifest::from_json(data) {
        let bytes = json::to_go_json(&m);
        let again = Manifest::from_json(&bytes).expect("re-marshaled manifest parses");
        assert_eq!(json::to_go_json(&again), bytes);
    }
    if let Ok(i) = Index::from_json(data) {
        let bytes = json::to_go_json(&i);
        let again = Index::from_json(&bytes).expect("re-marshaled index parses");
        assert_eq!(json::to_go_json(&again), bytes);
    }
});
