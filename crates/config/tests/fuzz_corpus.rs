//! Replays the `config_toml` fuzz target's committed seeds and every input it
//! ever crashed on (fuzz/regressions/config_toml) through the same property,
//! so that a fixed crash stays fixed without a nightly toolchain.

mod support;

use std::path::Path;

#[test]
fn fuzz_seeds_and_regressions_hold_the_round_trip_property() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for dir in ["corpus/config_toml", "regressions/config_toml"] {
        let dir = fuzz.join(dir);
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let bytes = std::fs::read(&path).expect("read input");
            if let Ok(text) = std::str::from_utf8(&bytes) {
                support::roundtrip::check(text);
            }
            replayed += 1;
        }
    }
    assert!(
        replayed >= 6,
        "only {replayed} inputs found under {}",
        fuzz.display()
    );
}
