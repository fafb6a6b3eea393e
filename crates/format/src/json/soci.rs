//! The SOCI index model and its serialization as an OCI image manifest (spec §1.2).

use std::collections::BTreeMap;

use super::decode::{go_from_slice, go_struct};
use super::encode::to_go_json;
use super::oci::{Descriptor, Manifest};
use super::{
    ANNOTATION_BUILD_TOOL_IDENTIFIER, ANNOTATION_DISABLE_XATTRS, ANNOTATION_IMAGE_LAYER_DIGEST,
    ANNOTATION_IMAGE_LAYER_MEDIA_TYPE, ANNOTATION_SPAN_SIZE, DEFAULT_BUILD_TOOL_IDENTIFIER,
    DISABLE_XATTRS_TRUE, EMPTY_CONFIG_DIGEST, EMPTY_CONFIG_SIZE, JsonError,
    MEDIA_TYPE_OCI_MANIFEST, SOCI_INDEX_ARTIFACT_TYPE_V1, SOCI_INDEX_ARTIFACT_TYPE_V2,
    SOCI_LAYER_MEDIA_TYPE,
};

/// SOCI index manifest version, carried by `config.mediaType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexVersion {
    /// Bound to its image through `subject` (referrers API).
    V1,
    /// Bound through the image manifest's `com.amazon.soci.index-digest` annotation.
    V2,
}

impl IndexVersion {
    /// The artifact type (and config media type) of this version.
    pub fn artifact_type(self) -> &'static str {
        match self {
            IndexVersion::V1 => SOCI_INDEX_ARTIFACT_TYPE_V1,
            IndexVersion::V2 => SOCI_INDEX_ARTIFACT_TYPE_V2,
        }
    }

    /// The version whose artifact type is `artifact_type`, if any.
    pub fn from_artifact_type(artifact_type: &str) -> Option<IndexVersion> {
        match artifact_type {
            SOCI_INDEX_ARTIFACT_TYPE_V1 => Some(IndexVersion::V1),
            SOCI_INDEX_ARTIFACT_TYPE_V2 => Some(IndexVersion::V2),
            _ => None,
        }
    }

    /// `"v1"` or `"v2"` (as printed by `soci index list`).
    pub fn as_str(self) -> &'static str {
        match self {
            IndexVersion::V1 => "v1",
            IndexVersion::V2 => "v2",
        }
    }

    /// The config descriptor a new index of this version gets: the empty JSON blob
    /// `{}` with this version's artifact type as media type.
    pub fn config_descriptor(self) -> Descriptor {
        Descriptor::new(self.artifact_type(), EMPTY_CONFIG_DIGEST, EMPTY_CONFIG_SIZE)
    }
}

/// A SOCI index (upstream `soci.Index`).
///
/// Serialized ([`SociIndex::marshal`]) exactly like upstream's `MarshalIndex`: an
/// OCI image manifest with `schemaVersion` 2, the OCI manifest media type,
/// `config` = [`SociIndex::config`], `layers` = [`SociIndex::blobs`], `subject`
/// and `annotations`, and no top-level `artifactType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SociIndex {
    /// Version, from `config.mediaType`.
    pub version: IndexVersion,
    /// The top-level `mediaType` as read (informational: marshal always writes the
    /// OCI manifest type, as upstream does).
    pub media_type: String,
    /// The config descriptor written on marshal. New indexes get
    /// [`IndexVersion::config_descriptor`]; parsed ones keep what was read, as
    /// upstream does when it re-serializes a fetched index.
    pub config: Descriptor,
    /// zTOC descriptors in image-layer order, then prefetch descriptors.
    pub blobs: Vec<Descriptor>,
    /// Go nil-slice marker: `true` when the parsed `layers` was `null` or absent.
    /// While it is set and `blobs` is empty, marshal writes `"layers":null`.
    pub layers_null: bool,
    /// The image manifest (v1 only for new indexes; written whenever present).
    pub subject: Option<Descriptor>,
    /// Index annotations (normally just the build tool identifier).
    pub annotations: BTreeMap<String, String>,
}

/// Upstream's `Index` struct fields that `UnmarshalIndex` decodes before the
/// manifest; only `blobs` can fail where the manifest decode would not.
#[derive(Default)]
struct IndexShape {
    blobs: Vec<Descriptor>,
}

go_struct!(IndexShape, "SOCI index", { "blobs" => blobs });

impl SociIndex {
    /// A new index as upstream's `NewIndex` builds it: OCI manifest media type and
    /// the version's default config. Pass `subject` only for v1.
    pub fn new(
        version: IndexVersion,
        blobs: Vec<Descriptor>,
        subject: Option<Descriptor>,
        annotations: BTreeMap<String, String>,
    ) -> SociIndex {
        SociIndex {
            version,
            media_type: MEDIA_TYPE_OCI_MANIFEST.to_string(),
            config: version.config_descriptor(),
            blobs,
            layers_null: false,
            subject,
            annotations,
        }
    }

    /// The artifact type of this index's version.
    pub fn artifact_type(&self) -> &'static str {
        self.version.artifact_type()
    }

    /// The OCI manifest this index serializes as.
    pub fn to_manifest(&self) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: MEDIA_TYPE_OCI_MANIFEST.to_string(),
            artifact_type: String::new(),
            config: self.config.clone(),
            layers: if self.layers_null && self.blobs.is_empty() {
                None
            } else {
                Some(self.blobs.clone())
            },
            subject: self.subject.clone(),
            annotations: self.annotations.clone(),
        }
    }

    /// Go-canonical bytes of the index manifest (upstream `MarshalIndex`).
    pub fn marshal(&self) -> Vec<u8> {
        to_go_json(&self.to_manifest())
    }

    /// The marshalled bytes together with the descriptor upstream stores the index
    /// under: OCI manifest media type, digest, size and the version's artifact type.
    pub fn marshal_with_descriptor(&self) -> (Vec<u8>, Descriptor) {
        let bytes = self.marshal();
        let mut desc = Descriptor::for_bytes(MEDIA_TYPE_OCI_MANIFEST, &bytes);
        desc.artifact_type = self.artifact_type().to_string();
        (bytes, desc)
    }

    /// Converts a parsed manifest (upstream `fromManifest`): the version comes from
    /// `config.mediaType`, anything else is "unknown index version".
    pub fn from_manifest(manifest: Manifest) -> Result<SociIndex, JsonError> {
        let version = IndexVersion::from_artifact_type(&manifest.config.media_type)
            .ok_or_else(|| JsonError::UnknownIndexVersion(manifest.config.media_type.clone()))?;
        let layers_null = manifest.layers.is_none();
        Ok(SociIndex {
            version,
            media_type: manifest.media_type,
            config: manifest.config,
            blobs: manifest.layers.unwrap_or_default(),
            layers_null,
            subject: manifest.subject,
            annotations: manifest.annotations,
        })
    }

    /// Parses serialized index bytes (upstream `UnmarshalIndex`), with Go decoding
    /// semantics.
    pub fn from_manifest_bytes(bytes: &[u8]) -> Result<SociIndex, JsonError> {
        go_from_slice::<IndexShape>(bytes)?;
        SociIndex::from_manifest(Manifest::from_json(bytes)?)
    }
}

/// Index annotations naming the build tool (`com.amazon.soci.build-tool-identifier`);
/// `None` uses [`DEFAULT_BUILD_TOOL_IDENTIFIER`].
pub fn build_tool_annotations(tool: Option<&str>) -> BTreeMap<String, String> {
    BTreeMap::from([(
        ANNOTATION_BUILD_TOOL_IDENTIFIER.to_string(),
        tool.unwrap_or(DEFAULT_BUILD_TOOL_IDENTIFIER).to_string(),
    )])
}

/// The descriptor of a zTOC blob in a SOCI index: media type
/// `application/octet-stream`, the zTOC's digest and size, and the annotations
/// image-layer-digest, image-layer-mediaType (verbatim), span-size (decimal) and,
/// when `disable_xattrs`, `com.amazon.soci.disable-xattrs: "true"`.
pub fn ztoc_descriptor(
    ztoc_digest: impl ToString,
    ztoc_size: i64,
    layer_digest: impl ToString,
    layer_media_type: &str,
    span_size: i64,
    disable_xattrs: bool,
) -> Descriptor {
    let mut desc = Descriptor::new(SOCI_LAYER_MEDIA_TYPE, ztoc_digest, ztoc_size);
    desc.annotations.insert(
        ANNOTATION_IMAGE_LAYER_MEDIA_TYPE.to_string(),
        layer_media_type.to_string(),
    );
    desc.annotations.insert(
        ANNOTATION_IMAGE_LAYER_DIGEST.to_string(),
        layer_digest.to_string(),
    );
    desc.annotations
        .insert(ANNOTATION_SPAN_SIZE.to_string(), span_size.to_string());
    if disable_xattrs {
        desc.annotations.insert(
            ANNOTATION_DISABLE_XATTRS.to_string(),
            DISABLE_XATTRS_TRUE.to_string(),
        );
    }
    desc
}
