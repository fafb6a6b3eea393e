//! The config loader's round-trip property, shared by the `config_toml` fuzz
//! target and the regression test that replays its corpus.

use soci_config::{Config, ConfigWarning, parse_size};

/// Loads `text`; if it loads, its dump loads back to the same config, dumps
/// to the same text, and warns only about the unsupported decompressors it
/// keeps (so that the dump shows them). Panics when the property fails.
pub fn check(text: &str) {
    let _ = parse_size(text);
    let Ok(loaded) = Config::from_toml_str(text) else {
        return;
    };
    let dumped = loaded.config.dump_toml();
    let again = Config::from_toml_str(&dumped)
        .unwrap_or_else(|e| panic!("a dumped config does not load: {e}\n{dumped}"));
    assert_eq!(
        again.config, loaded.config,
        "dump/load changed the config:\n{dumped}"
    );
    assert_eq!(again.config.dump_toml(), dumped);
    for w in &again.warnings {
        match w {
            ConfigWarning::UnsupportedDecompressor { algorithm } => assert!(
                loaded
                    .config
                    .pull_modes
                    .parallel_pull_unpack
                    .decompress_streams
                    .contains_key(algorithm),
                "a dump warned about {algorithm}, which the config does not hold"
            ),
            other => panic!("a dump warned: {other}\n{dumped}"),
        }
    }
}
