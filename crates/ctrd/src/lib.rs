//! containerd API client helpers for SOCI, and `rpull`.
//!
//! This crate owns the conversation with containerd's gRPC API (through the
//! `containerd-client` stubs): a [`Containerd`] connection bound to a
//! namespace and optionally a lease, and thin, error-naming wrappers of the
//! content, leases, snapshots, diff and images services. On top of them,
//! [`rpull`] pulls an image so that every layer is prepared on a remote
//! snapshotter with the labels it needs for lazy loading — the part of
//! `nerdctl pull --snapshotter soci` that plain `ctr images pull` lacks.
//!
//! It does not speak HTTP to registries itself (that is `soci-content`'s
//! [`RegistryClient`](soci_content::registry::RegistryClient)) and knows
//! nothing of zTOCs, spans or FUSE: whether a layer is lazy is the
//! snapshotter's decision, reported back through `Prepare`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod chain;
mod client;
mod content;
mod error;
pub mod image;
pub mod labels;
mod read;
pub mod rpull;
mod snapshots;
mod source;

pub use chain::{chain_id, chain_ids};
pub use client::{Containerd, LEASE_HEADER, Lease, NAMESPACE_HEADER, socket_path};
pub use content::{WriteOutcome, ref_key};
pub use error::{CtrdError, Result};
pub use rpull::{
    LayerOutcome, LayerReport, NoEvents, RpullEvent, RpullEvents, RpullOptions, RpullReport, rpull,
};
pub use snapshots::{Prepared, wire_descriptor};
pub use source::ContentSource;

/// The generated containerd API types and clients this crate builds on.
pub use containerd_client as api;
