//! The SOCI snapshotter core: containerd's Snapshots service over a crash-safe
//! metadata database and overlay mounts, with a seam for remote layers.
//!
//! This crate owns snapshot metadata (`<root>/snapshotter/metadata.db`), the
//! snapshot directories (`<root>/snapshotter/snapshots/<id>/{fs,work}`), the
//! mounts returned to containerd and the daemon's serve loop. It does not know
//! how a layer is lazily loaded: that is behind [`RemoteLayers`], which the
//! FUSE/span crates implement; [`DeferAll`] leaves every layer to containerd.
//! Only [`grpc`] sees wire types.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
pub mod daemon;
mod error;
pub mod filter;
pub mod grpc;
mod metadata;
pub mod mounts;
pub mod remote;
mod snapshotter;
pub mod types;
mod usage;

pub use config::Config;
pub use daemon::{Shutdown, serve};
pub use error::{Result, SnapshotError};
pub use grpc::SnapshotService;
pub use remote::{
    DeferAll, RemoteError, RemoteLayers, RemoteOutcome, RemotePrepare, RemoteSnapshot,
};
pub use snapshotter::Snapshotter;
pub use types::{Info, Kind, LabelUpdate, Labels, Mount, Usage};
pub use usage::disk_usage;
