//! Media-type classification as containerd v2.2 (`core/images`) does it, and the
//! layer-compression decision of upstream's `buildSociLayer` (spec §2.6).

use super::decode::{Present, go_from_slice, go_struct};
use super::{
    JsonError, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_LAYER_FOREIGN_GZIP,
    MEDIA_TYPE_DOCKER_LAYER_FOREIGN_TAR, MEDIA_TYPE_DOCKER_LAYER_GZIP, MEDIA_TYPE_DOCKER_LAYER_TAR,
    MEDIA_TYPE_DOCKER_LAYER_ZSTD, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_LAYER_NONDIST_TAR,
    MEDIA_TYPE_OCI_LAYER_TAR, MEDIA_TYPE_OCI_MANIFEST,
};

/// Splits `mt` at the first `+` into the base type and the sorted `+` suffixes
/// (containerd `parseMediaTypes`, at most 50 suffixes, the last one unsplit).
fn parse_media_type(mt: &str) -> (&str, Vec<&str>) {
    match mt.split_once('+') {
        None => (mt, Vec::new()),
        Some((base, ext)) => {
            let mut suffixes: Vec<&str> = ext.splitn(50, '+').collect();
            suffixes.sort_unstable();
            (base, suffixes)
        }
    }
}

/// Whether `mt` is a layer media type (containerd `images.IsLayerType`): any
/// `application/vnd.oci.image.layer.*`, or a Docker rootfs diff type (plain,
/// gzip, zstd, foreign) with any `+` suffixes.
pub fn is_layer_type(mt: &str) -> bool {
    if mt.starts_with("application/vnd.oci.image.layer.") {
        return true;
    }
    matches!(
        parse_media_type(mt).0,
        MEDIA_TYPE_DOCKER_LAYER_TAR
            | MEDIA_TYPE_DOCKER_LAYER_GZIP
            | MEDIA_TYPE_DOCKER_LAYER_FOREIGN_TAR
            | MEDIA_TYPE_DOCKER_LAYER_FOREIGN_GZIP
            | MEDIA_TYPE_DOCKER_LAYER_ZSTD
    )
}

/// Whether `mt` is an OCI image manifest or Docker schema 2 manifest.
pub fn is_manifest_type(mt: &str) -> bool {
    matches!(mt, MEDIA_TYPE_OCI_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST)
}

/// Whether `mt` is an OCI image index or Docker manifest list.
pub fn is_index_type(mt: &str) -> bool {
    matches!(mt, MEDIA_TYPE_OCI_INDEX | MEDIA_TYPE_DOCKER_MANIFEST_LIST)
}

/// Whether `mt` is an OCI or Docker image config.
pub fn is_config_type(mt: &str) -> bool {
    matches!(mt, MEDIA_TYPE_OCI_CONFIG | MEDIA_TYPE_DOCKER_CONFIG)
}

/// A media type containerd does not recognise as a layer diff
/// (`errdefs.ErrNotImplemented`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unrecognised mediatype {0}: not implemented")]
pub struct UnrecognisedMediaType(pub String);

/// containerd's `images.DiffCompression`: `"gzip"`, `"zstd"`, `"unknown"` (Docker
/// uncompressed types, which may in fact be compressed) or `""` (OCI uncompressed,
/// an unknown OCI suffix, or a wrapped Docker type such as `…tar.gzip+encrypted`).
/// For OCI types the *last sorted* suffix decides, so `+gzip+encrypted` is gzip.
pub fn containerd_diff_compression(mt: &str) -> Result<&'static str, UnrecognisedMediaType> {
    let (base, ext) = parse_media_type(mt);
    match base {
        MEDIA_TYPE_DOCKER_LAYER_TAR | MEDIA_TYPE_DOCKER_LAYER_FOREIGN_TAR => {
            Ok(if ext.is_empty() { "unknown" } else { "" })
        }
        MEDIA_TYPE_DOCKER_LAYER_GZIP | MEDIA_TYPE_DOCKER_LAYER_FOREIGN_GZIP => {
            Ok(if ext.is_empty() { "gzip" } else { "" })
        }
        MEDIA_TYPE_DOCKER_LAYER_ZSTD => Ok(if ext.is_empty() { "zstd" } else { "" }),
        MEDIA_TYPE_OCI_LAYER_TAR | MEDIA_TYPE_OCI_LAYER_NONDIST_TAR => Ok(match ext.last() {
            Some(&"gzip") => "gzip",
            Some(&"zstd") => "zstd",
            _ => "",
        }),
        _ => Err(UnrecognisedMediaType(mt.to_string())),
    }
}

/// How SOCI treats a layer's compression (spec §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerCompression {
    /// gzip: zran checkpoints.
    Gzip,
    /// OCI uncompressed tar.
    Uncompressed,
    /// Docker `…diff.tar`: containerd says `unknown`; SOCI indexes it as a plain tar.
    Unknown,
    /// Anything else containerd recognises (`zstd`, wrapped/encrypted types, ...):
    /// the layer is skipped. Holds containerd's algorithm string for the message
    /// `expect: [tar, gzip, unknown] but got "<s>"`.
    Unsupported(&'static str),
}

impl LayerCompression {
    /// The algorithm string upstream uses (`gzip`, `uncompressed`, `unknown`, or the
    /// unsupported string).
    pub fn as_str(self) -> &'static str {
        match self {
            LayerCompression::Gzip => "gzip",
            LayerCompression::Uncompressed => "uncompressed",
            LayerCompression::Unknown => "unknown",
            LayerCompression::Unsupported(s) => s,
        }
    }

    /// Whether a zTOC can be built (gzip, uncompressed or unknown).
    pub fn is_supported(self) -> bool {
        !matches!(self, LayerCompression::Unsupported(_))
    }
}

/// Layer compression as upstream decides it: containerd's `DiffCompression`, with
/// `""` meaning uncompressed only for exactly `application/vnd.oci.image.layer.v1.tar`.
pub fn layer_compression(mt: &str) -> Result<LayerCompression, UnrecognisedMediaType> {
    Ok(match containerd_diff_compression(mt)? {
        "gzip" => LayerCompression::Gzip,
        "unknown" => LayerCompression::Unknown,
        "" if mt == MEDIA_TYPE_OCI_LAYER_TAR => LayerCompression::Uncompressed,
        other => LayerCompression::Unsupported(other),
    })
}

/// containerd's `unknownDocument`: which keys are present (any value, even `null`).
#[derive(Default)]
struct UnknownDocument {
    media_type: String,
    config: Present,
    layers: Present,
    manifests: Present,
    fs_layers: Present,
}

go_struct!(UnknownDocument, "OCI document", {
    "mediaType" => media_type,
    "config" => config,
    "layers" => layers,
    "manifests" => manifests,
    "fsLayers" => fs_layers,
});

/// containerd's `validateMediaType`: `bytes` must be a JSON object that does not
/// contradict `mt` (a manifest type must not look like an index and vice versa;
/// schema 1 is refused). Messages are containerd's.
pub fn validate_media_type(bytes: &[u8], mt: &str) -> Result<(), JsonError> {
    let doc: UnknownDocument = go_from_slice(bytes)?;
    if doc.fs_layers.0 {
        return Err(JsonError::MediaTypeMismatch(
            "media-type: schema 1 not supported".to_string(),
        ));
    }
    if is_manifest_type(mt) && (doc.manifests.0 || is_index_type(&doc.media_type)) {
        return Err(JsonError::MediaTypeMismatch(format!(
            "media-type: expected manifest but found index ({mt})"
        )));
    }
    if is_index_type(mt) && (doc.config.0 || doc.layers.0 || is_manifest_type(&doc.media_type)) {
        return Err(JsonError::MediaTypeMismatch(format!(
            "media-type: expected index but found manifest ({mt})"
        )));
    }
    Ok(())
}
