//! Prefetch artifacts (experimental, spec §1.3).

use serde::Serialize;

use super::decode::{go_from_slice, go_struct};
use super::encode::to_go_json;
use super::oci::Descriptor;
use super::{
    ANNOTATION_IMAGE_LAYER_DIGEST, JsonError, PREFETCH_ARTIFACT_VERSION, SOCI_PREFETCH_MEDIA_TYPE,
};

/// An inclusive range of span ids to prefetch (upstream `PrefetchSpan`).
///
/// JSON: `{"start_span":N,"end_span":M,"priority":P}`, `priority` omitted when 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct PrefetchSpan {
    /// First span id (Go `compression.SpanID`, an `int32`).
    pub start_span: i32,
    /// Last span id, inclusive.
    pub end_span: i32,
    /// Priority (Go `int`); 0 is omitted.
    #[serde(skip_serializing_if = "is_zero")]
    pub priority: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

go_struct!(pub PrefetchSpan, "prefetch span", {
    "start_span" => start_span,
    "end_span" => end_span,
    "priority" => priority,
});

/// A prefetch artifact (upstream `PrefetchArtifact`):
/// `{"version":"1.0","prefetch_spans":[...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct PrefetchArtifact {
    /// Always [`PREFETCH_ARTIFACT_VERSION`] for valid artifacts.
    pub version: String,
    /// The span ranges of one layer.
    pub prefetch_spans: Vec<PrefetchSpan>,
}

go_struct!(pub PrefetchArtifact, "prefetch artifact", {
    "version" => version,
    "prefetch_spans" => prefetch_spans,
});

impl PrefetchArtifact {
    /// An artifact of the current version with the given spans (used as given;
    /// see [`normalize_prefetch_spans`]).
    pub fn new(prefetch_spans: Vec<PrefetchSpan>) -> PrefetchArtifact {
        PrefetchArtifact {
            version: PREFETCH_ARTIFACT_VERSION.to_string(),
            prefetch_spans,
        }
    }

    /// Go-canonical bytes; an artifact without spans is rejected, as upstream does.
    pub fn marshal(&self) -> Result<Vec<u8>, JsonError> {
        if self.prefetch_spans.is_empty() {
            return Err(JsonError::EmptyPrefetchArtifact);
        }
        Ok(to_go_json(self))
    }

    /// Parses an artifact; rejects a version other than `1.0` and an empty span list.
    pub fn unmarshal(bytes: &[u8]) -> Result<PrefetchArtifact, JsonError> {
        let artifact: PrefetchArtifact = go_from_slice(bytes)?;
        if artifact.version != PREFETCH_ARTIFACT_VERSION {
            return Err(JsonError::UnsupportedPrefetchVersion(artifact.version));
        }
        if artifact.prefetch_spans.is_empty() {
            return Err(JsonError::EmptyPrefetchArtifact);
        }
        Ok(artifact)
    }
}

/// Sorts ranges by (start, end) and merges a range into the previous one when
/// `next.start <= cur.end + 1` (overlapping or adjacent), keeping the earlier
/// range's priority. The `+ 1` wraps at `i32::MAX` as Go's `int32` does. The sort is
/// stable (Go's `sort.Slice` is not, which only matters for equal ranges with
/// different priorities).
pub fn normalize_prefetch_spans(mut spans: Vec<PrefetchSpan>) -> Vec<PrefetchSpan> {
    spans.sort_by_key(|s| (s.start_span, s.end_span));
    let mut merged: Vec<PrefetchSpan> = Vec::with_capacity(spans.len());
    for s in spans {
        match merged.last_mut() {
            Some(cur) if s.start_span <= cur.end_span.wrapping_add(1) => {
                if s.end_span > cur.end_span {
                    cur.end_span = s.end_span;
                }
            }
            _ => merged.push(s),
        }
    }
    merged
}

/// The descriptor of a prefetch artifact in a SOCI index: prefetch media type,
/// digest and size of `artifact_bytes`, and only the image-layer-digest annotation.
pub fn prefetch_descriptor(artifact_bytes: &[u8], layer_digest: impl ToString) -> Descriptor {
    let mut desc = Descriptor::for_bytes(SOCI_PREFETCH_MEDIA_TYPE, artifact_bytes);
    desc.annotations.insert(
        ANNOTATION_IMAGE_LAYER_DIGEST.to_string(),
        layer_digest.to_string(),
    );
    desc
}
