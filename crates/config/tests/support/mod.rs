//! Helpers shared by the config tests (and the config fuzz target).
pub mod roundtrip;
