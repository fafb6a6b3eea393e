//! Real FUSE mounts of generated layers, checked with plain syscalls.
//!
//! These tests need root and `/dev/fuse`; without them they fail loudly. Set
//! `SOCI_SKIP_FUSE_TESTS=1` to skip them explicitly.

mod mount;
mod oracle;
mod overlay;
mod util;
mod verify;
