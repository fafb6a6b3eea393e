//! Lazy layers: what the snapshotter calls to provide a layer without a download.
//!
//! For each image (keyed by its manifest digest) the SOCI index is discovered
//! once — an explicit digest label, else the `com.amazon.soci.index-digest`
//! annotation of the image manifest (v2), else, when enabled, the referrers of
//! the manifest (v1) — and the index and its zTOCs are fetched into the local
//! soci store, verified by digest. Each layer with a zTOC is then mounted on
//! FUSE: a span manager reads verified spans from the registry and the layer
//! filesystem serves them. Layers of an indexed image that cannot be mounted
//! lazily (no zTOC, a failed mount, `min_layer_size`) are downloaded and
//! unpacked by the daemon (local snapshots); images without an index, and
//! layers whose local snapshot fails, are left to containerd. The log says
//! which mode each layer and each image got, and why.
//!
//! This crate wires the other crates together; it holds no format, HTTP or
//! FUSE code of its own.
// Only `alloc` (one libc call) allows unsafe code.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod alloc;
pub mod checks;
pub mod daemon;
mod discovery;
mod layers;
mod local;
pub mod metrics_server;
mod mirrors;
mod modes;

pub use discovery::{ImageArtifacts, NoIndex};
pub use layers::{FsOptions, SociFs};

/// Labels the snapshotter reads (set by the CRI plugin or `soci image rpull`).
pub mod labels {
    /// The image reference.
    pub const IMAGE_REF: &str = "containerd.io/snapshot/cri.image-ref";
    /// The platform-specific image manifest digest.
    pub const MANIFEST_DIGEST: &str = "containerd.io/snapshot/cri.manifest-digest";
    /// The layer digest.
    pub const LAYER_DIGEST: &str = "containerd.io/snapshot/cri.layer-digest";
    /// Comma-separated layer digests of the image.
    pub const IMAGE_LAYERS: &str = "containerd.io/snapshot/cri.image-layers";
    /// Layer size.
    pub const LAYER_SIZE: &str = "containerd.io/snapshot/remote/soci.size";
    /// An explicit SOCI index digest.
    pub const INDEX_DIGEST: &str = "containerd.io/snapshot/remote/soci.index.digest";
    /// Written on committed remote snapshots.
    pub const HAS_INDEX: &str = "containerd.io/snapshot/remote/has.soci.index.digest";
}
