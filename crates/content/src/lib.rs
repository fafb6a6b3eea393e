//! Content access: where the bytes of images and SOCI artifacts live.
//!
//! This crate owns reading and writing OCI image layouts, both as directories
//! and as tar archives (`oci-archive`), and talking to OCI registries
//! ([`registry`]: references, credentials, ranged reads, pushes, referrers).
//! It knows nothing of spans, FUSE or snapshots; it hands out blobs by digest
//! and verifies what it reads.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod layout;
mod range;
pub mod registry;
mod store;

pub use error::ContentError;
pub use layout::{Layout, LayoutArchive, LayoutDir, LayoutWriter, OutputFormat, open_layout};
pub use range::{BlobRangeReader, FileRangeReader};
pub use registry::{
    BlockingRuntime, Credentials, ImageLocation, ImageReference, RegistryClient, RegistryOptions,
    RegistryRangeReader, RemoteImage, Repository,
};
pub use store::{BlobSource, MemStore, VerifyingReader};
