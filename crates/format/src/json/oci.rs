//! The image-spec v1.1.1 types (`specs-go/v1`), with Go's field order and
//! `omitempty` rules, plus the `soci convert` re-serialization helpers.

use std::collections::BTreeMap;

use serde::Serialize;

use super::decode::{go_from_slice, go_struct};
use super::encode::{serialize_base64, to_go_json};
use super::{
    ANNOTATION_SOCI_INDEX_DIGEST, JsonError, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
};
use crate::Digest;

/// An OCI content descriptor (`ocispec.Descriptor`).
///
/// JSON field order: `mediaType` (always written, even empty), `digest`, `size`,
/// `urls`?, `annotations`?, `data`? (base64), `platform`?, `artifactType`?.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Descriptor {
    /// Media type of the referenced content. Not `omitempty` in Go.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Digest of the content, normally `sha256:<hex>`. Kept as text, unvalidated,
    /// like Go's `digest.Digest`; see [`Descriptor::parsed_digest`].
    pub digest: String,
    /// Size of the content in bytes.
    pub size: i64,
    /// Alternative download locations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Arbitrary metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Embedded content (written as standard base64).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_base64"
    )]
    pub data: Vec<u8>,
    /// Platform of the referenced manifest (in indexes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Type of an artifact when the descriptor points to one.
    #[serde(rename = "artifactType", skip_serializing_if = "String::is_empty")]
    pub artifact_type: String,
}

go_struct!(pub Descriptor, "descriptor", {
    "mediaType" => media_type,
    "digest" => digest,
    "size" => size,
    "urls" => urls,
    "annotations" => annotations,
    "data" => data as Base64Bytes,
    "platform" => platform,
    "artifactType" => artifact_type,
});

impl Descriptor {
    /// A descriptor with only media type, digest and size set.
    pub fn new(media_type: impl Into<String>, digest: impl ToString, size: i64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: digest.to_string(),
            size,
            ..Descriptor::default()
        }
    }

    /// The descriptor of `bytes` with the given media type.
    pub fn for_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Descriptor {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as i64)
    }

    /// The digest parsed as a validated sha256 [`Digest`].
    pub fn parsed_digest(&self) -> Result<Digest, crate::digest::InvalidDigest> {
        self.digest.parse()
    }
}

/// Platform of an image (`ocispec.Platform`).
///
/// JSON field order: `architecture`, `os` (both always written), `os.version`?,
/// `os.features`?, `variant`?. Parsing, formatting, normalisation and matching
/// follow `containerd/platforms` (see the methods in this module's `platform`
/// helpers: [`Platform::parse`], [`Platform::format`], [`Platform::normalize`],
/// [`Platform::matches_strict`], [`Platform::host_default`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system (`linux`, ...).
    pub os: String,
    /// OS version (Windows).
    #[serde(rename = "os.version", skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    /// Required OS features (Windows).
    #[serde(rename = "os.features", skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`, ...).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

go_struct!(pub Platform, "platform", {
    "architecture" => architecture,
    "os" => os,
    "os.version" => os_version,
    "os.features" => os_features,
    "variant" => variant,
});

/// An OCI image manifest (`ocispec.Manifest`); also the serialized form of a SOCI
/// index.
///
/// JSON field order: `schemaVersion`, `mediaType`?, `artifactType`?, `config`,
/// `layers` (never omitted: `null` when `None`), `subject`?, `annotations`?.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// Always 2 for valid manifests.
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    /// The manifest's own media type.
    #[serde(rename = "mediaType", skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// Artifact type (OCI 1.1 artifacts).
    #[serde(rename = "artifactType", skip_serializing_if = "String::is_empty")]
    pub artifact_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// Layer blobs; `None` is Go's nil slice and is written as `null`.
    pub layers: Option<Vec<Descriptor>>,
    /// The manifest this one refers to (referrers API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

go_struct!(pub Manifest, "image manifest", {
    "schemaVersion" => schema_version,
    "mediaType" => media_type,
    "artifactType" => artifact_type,
    "config" => config,
    "layers" => layers as NilableSlice,
    "subject" => subject,
    "annotations" => annotations,
});

impl Manifest {
    /// Parses a manifest with Go `json.Unmarshal` semantics (unknown fields dropped).
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, JsonError> {
        go_from_slice(bytes)
    }

    /// Go-canonical bytes (`json.Marshal`).
    pub fn to_json(&self) -> Vec<u8> {
        to_go_json(self)
    }

    /// The layers, treating Go's nil slice as empty.
    pub fn layers(&self) -> &[Descriptor] {
        self.layers.as_deref().unwrap_or(&[])
    }
}

/// An OCI image index (`ocispec.Index`).
///
/// JSON field order: `schemaVersion`, `mediaType`?, `artifactType`?, `manifests`
/// (never omitted: `null` when `None`), `subject`?, `annotations`?.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Index {
    /// Always 2 for valid indexes.
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    /// The index's own media type.
    #[serde(rename = "mediaType", skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// Artifact type (OCI 1.1 artifacts).
    #[serde(rename = "artifactType", skip_serializing_if = "String::is_empty")]
    pub artifact_type: String,
    /// Child manifests; `None` is Go's nil slice and is written as `null`.
    pub manifests: Option<Vec<Descriptor>>,
    /// The manifest this one refers to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

go_struct!(pub Index, "image index", {
    "schemaVersion" => schema_version,
    "mediaType" => media_type,
    "artifactType" => artifact_type,
    "manifests" => manifests as NilableSlice,
    "subject" => subject,
    "annotations" => annotations,
});

impl Index {
    /// Parses an index (or Docker manifest list) with Go `json.Unmarshal` semantics.
    pub fn from_json(bytes: &[u8]) -> Result<Index, JsonError> {
        go_from_slice(bytes)
    }

    /// Go-canonical bytes (`json.Marshal`).
    pub fn to_json(&self) -> Vec<u8> {
        to_go_json(self)
    }

    /// The index `soci convert` creates around a single-manifest image:
    /// `{"schemaVersion":2,"mediaType":<OCI index>,"manifests":[target]}`.
    pub fn single(target: Descriptor) -> Index {
        Index {
            schema_version: 2,
            media_type: MEDIA_TYPE_OCI_INDEX.to_string(),
            manifests: Some(vec![target]),
            ..Index::default()
        }
    }

    /// The child manifests, treating Go's nil slice as empty.
    pub fn manifests(&self) -> &[Descriptor] {
        self.manifests.as_deref().unwrap_or(&[])
    }
}

/// `soci convert` step 4 (spec §1.4): re-parses an image manifest (OCI or Docker
/// schema 2) as an image-spec `Manifest` (unknown fields dropped), forces
/// `mediaType` to the OCI manifest type and `config.mediaType` to the OCI config
/// type, adds `com.amazon.soci.index-digest` when `soci_index_digest` is given,
/// and re-marshals. Returns the manifest (its annotations replace those of the
/// descriptor in the OCI index) and its Go-canonical bytes.
///
/// The caller is expected to have checked the document against its descriptor's
/// media type first ([`super::validate_media_type`]), as containerd does.
pub fn convert_image_manifest(
    bytes: &[u8],
    soci_index_digest: Option<&str>,
) -> Result<(Manifest, Vec<u8>), JsonError> {
    let mut manifest = Manifest::from_json(bytes)?;
    manifest.media_type = MEDIA_TYPE_OCI_MANIFEST.to_string();
    manifest.config.media_type = MEDIA_TYPE_OCI_CONFIG.to_string();
    if let Some(d) = soci_index_digest {
        manifest
            .annotations
            .insert(ANNOTATION_SOCI_INDEX_DIGEST.to_string(), d.to_string());
    }
    let out = manifest.to_json();
    Ok((manifest, out))
}

/// `soci convert` step 2 (spec §1.4): re-parses an OCI index or Docker manifest
/// list as an image-spec `Index` (unknown fields dropped) and forces `mediaType`
/// to the OCI index type.
pub fn convert_oci_index(bytes: &[u8]) -> Result<Index, JsonError> {
    let mut index = Index::from_json(bytes)?;
    index.media_type = MEDIA_TYPE_OCI_INDEX.to_string();
    Ok(index)
}
