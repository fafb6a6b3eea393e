//! Local SOCI artifacts: the `soci` content store and the artifacts database.
//!
//! * [`SociStore`] is an OCI image layout at `<root>/content` holding SOCI
//!   indexes, zTOCs and the other blobs `soci` builds or the snapshotter fetches.
//!   Writes are atomic (temporary file, fsync, rename) and reads are verified.
//! * [`ArtifactsDb`] (`<root>/artifacts.db`, redb) records what each artifact is:
//!   a SOCI index for an image manifest and platform, or a zTOC for a layer with
//!   a span size. It is crash-safe: a transaction is either fully there or not.
//!
//! Both are shared by the `soci` CLI and `soci-snapshotter-grpc`. This crate
//! knows nothing of registries, spans or FUSE.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod db;
mod rebuild;
mod store;

pub use db::{ArtifactEntry, ArtifactType, ArtifactsDb, DbError};
pub use rebuild::{RebuildError, RebuildReport, RebuildSource, rebuild, unix_now};
pub use store::{SociStore, StoreError};

/// Path of the artifacts database under a root directory.
pub fn artifacts_db_path(root: &std::path::Path) -> std::path::PathBuf {
    root.join("artifacts.db")
}

/// Path of the soci content store under a root directory.
pub fn content_store_path(root: &std::path::Path) -> std::path::PathBuf {
    root.join("content")
}
