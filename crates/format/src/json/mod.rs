//! Canonical OCI JSON: OCI descriptors, image manifests and image indexes, SOCI
//! index manifests and prefetch artifacts, serialized byte for byte like Go's
//! `encoding/json` does for the `opencontainers/image-spec` v1.1.1 structs.
//!
//! # Why byte identity matters
//!
//! Upstream re-serializes every SOCI index it fetches and stores the result under
//! the *original* digest; digests of converted image manifests and indexes are
//! likewise the digests of Go's output. Anything but Go's exact bytes breaks
//! interoperability, so this module models Go's rules rather than "JSON in
//! general":
//!
//! * **Writing** ([`to_go_json`]): compact, no trailing newline, struct fields in
//!   Go declaration order with Go's `omitempty` rules, map keys sorted bytewise,
//!   and Go's string escaping (`<`, `>`, `&`, U+2028, U+2029 escaped; control
//!   characters as `\b \f \n \r \t` or `\u00xx`; everything else raw UTF-8).
//! * **Reading** ([`from_json`] and the `Deserialize` impls of the types here):
//!   Go's `json.Unmarshal` semantics: unknown fields dropped, keys matched
//!   case-insensitively (Go's simple folding, so `MEDIATYPE` or `ſize` match),
//!   duplicate keys processed in document order (the last scalar wins, objects
//!   and maps merge into what an earlier occurrence produced), `null` leaves
//!   strings and numbers untouched and resets pointers, slices and maps, integer
//!   fields reject fractions and exponents, invalid UTF-8 and unpaired UTF-16
//!   surrogates in strings become U+FFFD.
//! * **Indenting** ([`go_json_indent`]): Go's `json.Indent`, used by
//!   `soci index info`.
//!
//! # Example
//!
//! ```
//! use soci_format::json::{self, IndexVersion, SociIndex, build_tool_annotations, ztoc_descriptor};
//!
//! let ztoc = ztoc_descriptor(
//!     "sha256:eba28fdf50b1b57543f57dd051b2468c1d4f57b64d2006c75aa4de1d03e6c7ec",
//!     65928,
//!     "sha256:1111111111111111111111111111111111111111111111111111111111111111",
//!     json::MEDIA_TYPE_OCI_LAYER_GZIP,
//!     json::DEFAULT_SPAN_SIZE,
//!     false,
//! );
//! let index = SociIndex::new(IndexVersion::V2, vec![ztoc], None, build_tool_annotations(None));
//! let (bytes, desc) = index.marshal_with_descriptor();
//! assert_eq!(bytes.len(), 710);
//! assert_eq!(desc.digest, "sha256:c30a6bda963eebcaa901556d697c541881ceac3211a6609ab1db2c07c2481ed9");
//! assert_eq!(SociIndex::from_manifest_bytes(&bytes).unwrap(), index);
//! let pretty = json::go_json_indent(&bytes, "  ").unwrap();
//! assert!(pretty.starts_with(b"{\n  \"schemaVersion\": 2,\n"));
//! ```
//!
//! # Representation choices
//!
//! * `mediaType`/`artifactType` are plain `String`s: Go cannot tell an empty
//!   string from an absent field, and an empty string is omitted where the Go
//!   field has `omitempty`.
//! * Descriptor digests are kept as `String` (Go's `digest.Digest` is a string
//!   type and accepts anything on parse); validate with [`crate::Digest`] where a
//!   real digest is required.
//! * Maps are `BTreeMap<String, String>`, whose order is Go's bytewise key order.
//!   An empty map and a Go `nil` map serialize identically (omitted).
//! * `Manifest::layers` and `Index::manifests` are `Option<Vec<_>>`: those Go
//!   fields lack `omitempty`, so a nil slice is written as `null` while an empty
//!   one is written as `[]`; parsing keeps whichever was read.
//!
//! # Limits and known divergences from Go
//!
//! * Nesting beyond Go's limit of 10000 levels is rejected, as in Go. Values that
//!   are actually decoded (not skipped as unknown fields) are also bound by
//!   `serde_json`'s recursion limit of 128 levels; the OCI types nest 4 levels,
//!   so this only matters for generic `T` in [`from_json`].
//! * `-0` read into an integer field is 0 (as in Go); read into a generic float
//!   field through [`from_json`] it loses its sign.
//! * When a key holding an array of objects is repeated, Go may decode into
//!   elements left in the old slice's spare capacity; this module only merges
//!   into the elements of the current length.
//! * Writing generic values: non-finite floats become `null` (Go fails), and
//!   maps with non-string keys sort by the key type's order rather than by the
//!   key's text. Neither occurs in the types of this module.
//! * Windows OS-version matching of containerd's platform matcher is not
//!   modelled (SOCI is Linux only).

mod decode;
mod encode;
mod indent;
mod media;
mod oci;
mod platform;
mod prefetch;
mod soci;

pub use decode::from_json;
pub use encode::{to_go_json, try_to_go_json};
pub use indent::{IndentError, go_json_indent, go_json_indent_with_prefix};
pub use media::{
    LayerCompression, UnrecognisedMediaType, containerd_diff_compression, is_config_type,
    is_index_type, is_layer_type, is_manifest_type, layer_compression, validate_media_type,
};
pub use oci::{Descriptor, Index, Manifest, Platform, convert_image_manifest, convert_oci_index};
pub use platform::{PlatformError, dedupe_platforms};
pub use prefetch::{PrefetchArtifact, PrefetchSpan, normalize_prefetch_spans, prefetch_descriptor};
pub use soci::{IndexVersion, SociIndex, build_tool_annotations, ztoc_descriptor};

/// Errors of JSON parsing and of the document-level checks of this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// Malformed JSON, or a value whose type does not fit the Go field it maps to.
    /// Line/column positions refer to the input after invalid UTF-8 sequences and
    /// unpaired surrogate escapes were replaced by U+FFFD.
    #[error("invalid JSON: {0}")]
    Decode(#[source] serde_json::Error),
    /// A value could not be serialized (only possible for foreign `Serialize` impls).
    #[error("cannot serialize JSON: {0}")]
    Encode(#[source] serde_json::Error),
    /// The SOCI index's `config.mediaType` is neither the v1 nor the v2 artifact type.
    #[error("unknown index version: {0}")]
    UnknownIndexVersion(String),
    /// A prefetch artifact whose `version` is not `1.0`.
    #[error("unsupported prefetch artifact version: {0} (expected {PREFETCH_ARTIFACT_VERSION})")]
    UnsupportedPrefetchVersion(String),
    /// A prefetch artifact without spans (rejected both ways, as upstream does).
    #[error("prefetch artifact is empty")]
    EmptyPrefetchArtifact,
    /// A document whose content contradicts its media type (containerd's
    /// `validateMediaType`); the text is containerd's message.
    #[error("{0}")]
    MediaTypeMismatch(String),
}

// ---------------------------------------------------------------------------------------------
// Constants (spec §1.1)
// ---------------------------------------------------------------------------------------------

/// Artifact type of a v1 SOCI index (bound to its image through `subject`); also the
/// `config.mediaType` of the index manifest.
pub const SOCI_INDEX_ARTIFACT_TYPE_V1: &str = "application/vnd.amazon.soci.index.v1+json";
/// Artifact type of a v2 SOCI index (bound through an image-manifest annotation); also
/// the `config.mediaType` of the index manifest.
pub const SOCI_INDEX_ARTIFACT_TYPE_V2: &str = "application/vnd.amazon.soci.index.v2+json";
/// Media type of a zTOC blob in the SOCI index `layers`.
pub const SOCI_LAYER_MEDIA_TYPE: &str = "application/octet-stream";
/// Media type of a prefetch artifact.
pub const SOCI_PREFETCH_MEDIA_TYPE: &str = "application/vnd.amazon.soci.prefetch.v1+json";
/// The only prefetch artifact version.
pub const PREFETCH_ARTIFACT_VERSION: &str = "1.0";

/// OCI descriptor media type.
pub const MEDIA_TYPE_OCI_DESCRIPTOR: &str = "application/vnd.oci.descriptor.v1+json";
/// OCI image layout header (`oci-layout` file) media type.
pub const MEDIA_TYPE_OCI_LAYOUT_HEADER: &str = "application/vnd.oci.layout.header.v1+json";
/// OCI image manifest media type (also the media type of a serialized SOCI index).
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI empty JSON (`{}`) media type.
pub const MEDIA_TYPE_OCI_EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";
/// OCI uncompressed tar layer.
pub const MEDIA_TYPE_OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip-compressed tar layer.
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd-compressed tar layer.
pub const MEDIA_TYPE_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable uncompressed tar layer (deprecated).
pub const MEDIA_TYPE_OCI_LAYER_NONDIST_TAR: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable gzip tar layer (deprecated).
pub const MEDIA_TYPE_OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable zstd tar layer (deprecated).
pub const MEDIA_TYPE_OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// Docker image manifest, schema 2.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list, schema 2.
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, uncompressed tar ("may be compressed": containerd reports `unknown`).
pub const MEDIA_TYPE_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip layer.
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker zstd layer.
pub const MEDIA_TYPE_DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker foreign (non-distributable) uncompressed layer.
pub const MEDIA_TYPE_DOCKER_LAYER_FOREIGN_TAR: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar";
/// Docker foreign (non-distributable) gzip layer.
pub const MEDIA_TYPE_DOCKER_LAYER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The empty config blob every SOCI index manifest references.
pub const EMPTY_CONFIG_BYTES: &[u8] = b"{}";
/// Digest of [`EMPTY_CONFIG_BYTES`].
pub const EMPTY_CONFIG_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// Size of [`EMPTY_CONFIG_BYTES`].
pub const EMPTY_CONFIG_SIZE: i64 = 2;

/// zTOC descriptor annotation: media type of the indexed image layer (verbatim).
pub const ANNOTATION_IMAGE_LAYER_MEDIA_TYPE: &str = "com.amazon.soci.image-layer-mediaType";
/// zTOC / prefetch descriptor annotation: digest of the indexed image layer.
pub const ANNOTATION_IMAGE_LAYER_DIGEST: &str = "com.amazon.soci.image-layer-digest";
/// zTOC descriptor annotation: span size as a decimal string.
pub const ANNOTATION_SPAN_SIZE: &str = "com.amazon.soci.span-size";
/// zTOC descriptor annotation present (value `"true"`) when the layer has no xattrs.
pub const ANNOTATION_DISABLE_XATTRS: &str = "com.amazon.soci.disable-xattrs";
/// SOCI index annotation: identifier of the tool that built the index.
pub const ANNOTATION_BUILD_TOOL_IDENTIFIER: &str = "com.amazon.soci.build-tool-identifier";
/// Annotation on the v2 SOCI index entry of an OCI index: the image manifest digest.
pub const ANNOTATION_IMAGE_MANIFEST_DIGEST: &str = "com.amazon.soci.image-manifest-digest";
/// Image manifest annotation (v2 binding): the SOCI index digest.
pub const ANNOTATION_SOCI_INDEX_DIGEST: &str = "com.amazon.soci.index-digest";
/// OCI annotation naming a reference (used in OCI layout `index.json`).
pub const ANNOTATION_OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Value of [`ANNOTATION_DISABLE_XATTRS`].
pub const DISABLE_XATTRS_TRUE: &str = "true";
/// Build tool identifier of the `soci` CLI and library default.
pub const DEFAULT_BUILD_TOOL_IDENTIFIER: &str = "AWS SOCI CLI v0.2";
/// Default span size (4 MiB).
pub const DEFAULT_SPAN_SIZE: i64 = 1 << 22;
/// Default minimum layer size for building a zTOC (10 MiB).
pub const DEFAULT_MIN_LAYER_SIZE: i64 = 10 << 20;
