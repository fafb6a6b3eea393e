use soci_content::ContentError;

/// Why an index could not be built.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// Reading or writing content failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// A manifest or index could not be parsed.
    #[error("cannot parse {what} {digest}: {reason}")]
    BadJson {
        /// What was parsed (manifest, image index, ...).
        what: &'static str,
        /// Its digest.
        digest: String,
        /// Parser message.
        reason: String,
    },
    /// A layer's zTOC could not be built.
    #[error("cannot build ztoc for layer {layer}: {reason}")]
    Ztoc {
        /// Layer digest.
        layer: String,
        /// Why.
        reason: String,
    },
    /// A descriptor in `layers` is not a layer.
    #[error(
        "layer {layer} of manifest {manifest} has media type {media_type:?}, which is not a layer media type"
    )]
    NotLayer {
        /// The descriptor's digest.
        layer: String,
        /// The manifest holding it.
        manifest: String,
        /// Its media type.
        media_type: String,
    },
    /// Building stopped on errors in one or more layers.
    #[error("errors encountered while building soci layers: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Layers(Vec<IndexerError>),
    /// No platform of the image matches the requested one.
    #[error(
        "image manifest for {platform} not found in the image (it has: {available}); pick one with --platform or use --all-platforms"
    )]
    NoPlatformMatch {
        /// The requested platform.
        platform: String,
        /// Platforms the image has.
        available: String,
    },
    /// Every layer was skipped: nothing to index.
    #[error("no ztocs created, all layers either skipped or produced errors{hint}")]
    EmptyIndex {
        /// Advice for the user (e.g. about --min-layer-size).
        hint: String,
    },
    /// The image is malformed in some other way.
    #[error("invalid image: {0}")]
    InvalidImage(String),
}
