//! The server side of containerd's `containerd.services.snapshots.v1.Snapshots`
//! gRPC service, generated at build time from containerd's own protos.
//!
//! This crate holds generated code only, so that lint allowances stay scoped to
//! it. Message types (requests, responses, `Info`, `Mount`) are those of
//! [`containerd_client`], re-exported here so that users need one import path.
//! The snapshotter implementation lives in `soci-snapshotter`.
#![forbid(unsafe_code)]

pub use containerd_client;
pub use containerd_client::services::v1::snapshots;
pub use containerd_client::types::Mount;

/// The generated `Snapshots` server trait and `SnapshotsServer` wrapper.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    rustdoc::all,
    unused_qualifications
)]
pub mod api {
    tonic::include_proto!("containerd.services.snapshots.v1");
}

pub use api::snapshots_server::{Snapshots, SnapshotsServer};
