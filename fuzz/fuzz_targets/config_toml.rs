#![no_main]
//! The daemon's config.toml loader: any bytes give a config or an error, never
//! a panic; a loaded config dumps to TOML that loads back to the same config
//! (see crates/config/tests/support/roundtrip.rs); a size string parses or is
//! refused.
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/config/tests/support/roundtrip.rs"]
mod roundtrip;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        roundtrip::check(text);
    }
});
