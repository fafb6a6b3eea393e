//! Harness for tests with real parts: Debian's `docker-registry` on
//! 127.0.0.1, containerd 1.6 with the soci proxy plugin, and
//! `soci-snapshotter-grpc`. Every process is stopped by PID and everything
//! mounted under a test's directory is unmounted when its guard drops, also
//! when a test fails. Every wait is bounded.
//!
//! The parts are Debian packages that `scripts/deps.sh` installs; a missing
//! part is a test failure, not a skip.

pub mod containerd;
pub mod process;
pub mod registry;

pub use containerd::{Containerd, Daemon, require_containerd_setup, skipped};
pub use process::{
    Proc, UnmountOnDrop, bin, free_port, mounts_under, random, run, skopeo, tail, tool,
    unmount_under, wait_for,
};
pub use registry::{Registry, TlsFiles, docker_config, flip_byte, http_status, make_certificates};
