//! SOCI index manifest goldens (spec §1.2) and parsing.

use std::collections::BTreeMap;

use soci_format::Digest;
use soci_format::json::{
    self, Descriptor, IndexVersion, JsonError, Manifest, SociIndex, build_tool_annotations,
    ztoc_descriptor,
};

/// The v2 example of spec §1.2, verbatim (710 bytes).
const V2_GOLDEN: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.amazon.soci.index.v2+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/octet-stream","digest":"sha256:eba28fdf50b1b57543f57dd051b2468c1d4f57b64d2006c75aa4de1d03e6c7ec","size":65928,"annotations":{"com.amazon.soci.image-layer-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","com.amazon.soci.image-layer-mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","com.amazon.soci.span-size":"4194304"}}],"annotations":{"com.amazon.soci.build-tool-identifier":"AWS SOCI CLI v0.2"}}"#;
const V2_GOLDEN_DIGEST: &str =
    "sha256:c30a6bda963eebcaa901556d697c541881ceac3211a6609ab1db2c07c2481ed9";

/// v1: config mediaType v1 and a subject between layers and annotations; written
/// out by hand from the field-order rules.
const V1_GOLDEN: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.amazon.soci.index.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/octet-stream","digest":"sha256:eba28fdf50b1b57543f57dd051b2468c1d4f57b64d2006c75aa4de1d03e6c7ec","size":65928,"annotations":{"com.amazon.soci.image-layer-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","com.amazon.soci.image-layer-mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","com.amazon.soci.span-size":"4194304"}}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":1234},"annotations":{"com.amazon.soci.build-tool-identifier":"AWS SOCI CLI v0.2"}}"#;

const LAYER_DIGEST: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const ZTOC_DIGEST: &str = "sha256:eba28fdf50b1b57543f57dd051b2468c1d4f57b64d2006c75aa4de1d03e6c7ec";

fn golden_ztoc() -> Descriptor {
    ztoc_descriptor(
        ZTOC_DIGEST,
        65928,
        LAYER_DIGEST,
        json::MEDIA_TYPE_OCI_LAYER_GZIP,
        json::DEFAULT_SPAN_SIZE,
        false,
    )
}

fn subject() -> Descriptor {
    Descriptor::new(
        json::MEDIA_TYPE_OCI_MANIFEST,
        "sha256:2222222222222222222222222222222222222222222222222222222222222222",
        1234,
    )
}

#[test]
fn v2_golden_bytes_and_digest() {
    assert_eq!(V2_GOLDEN.len(), 710);
    assert_eq!(Digest::of(V2_GOLDEN).to_string(), V2_GOLDEN_DIGEST);
    let index = SociIndex::new(
        IndexVersion::V2,
        vec![golden_ztoc()],
        None,
        build_tool_annotations(None),
    );
    let bytes = index.marshal();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(V2_GOLDEN)
    );
    assert_eq!(bytes, V2_GOLDEN);
    let (bytes2, desc) = index.marshal_with_descriptor();
    assert_eq!(bytes2, V2_GOLDEN);
    assert_eq!(desc.digest, V2_GOLDEN_DIGEST);
    assert_eq!(desc.size, 710);
    assert_eq!(desc.media_type, json::MEDIA_TYPE_OCI_MANIFEST);
    assert_eq!(desc.artifact_type, json::SOCI_INDEX_ARTIFACT_TYPE_V2);
}

#[test]
fn v1_golden_bytes() {
    let index = SociIndex::new(
        IndexVersion::V1,
        vec![golden_ztoc()],
        Some(subject()),
        build_tool_annotations(None),
    );
    assert_eq!(
        String::from_utf8_lossy(&index.marshal()),
        String::from_utf8_lossy(V1_GOLDEN)
    );
}

#[test]
fn golden_round_trips_are_identity() {
    for (golden, version) in [(V1_GOLDEN, IndexVersion::V1), (V2_GOLDEN, IndexVersion::V2)] {
        let index = SociIndex::from_manifest_bytes(golden).unwrap();
        assert_eq!(index.version, version);
        assert_eq!(index.media_type, json::MEDIA_TYPE_OCI_MANIFEST);
        assert_eq!(index.blobs, vec![golden_ztoc()]);
        assert_eq!(index.marshal(), golden);
    }
    let v1 = SociIndex::from_manifest_bytes(V1_GOLDEN).unwrap();
    assert_eq!(v1.subject, Some(subject()));
}

#[test]
fn ztoc_descriptor_with_disable_xattrs() {
    let d = ztoc_descriptor(
        ZTOC_DIGEST,
        10,
        LAYER_DIGEST,
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        1 << 20,
        true,
    );
    assert_eq!(
        String::from_utf8(json::to_go_json(&d)).unwrap(),
        r#"{"mediaType":"application/octet-stream","digest":"sha256:eba28fdf50b1b57543f57dd051b2468c1d4f57b64d2006c75aa4de1d03e6c7ec","size":10,"annotations":{"com.amazon.soci.disable-xattrs":"true","com.amazon.soci.image-layer-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","com.amazon.soci.image-layer-mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","com.amazon.soci.span-size":"1048576"}}"#
    );
}

#[test]
fn unknown_index_version() {
    let input = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:x","size":2},"layers":[]}"#;
    match SociIndex::from_manifest_bytes(input) {
        Err(JsonError::UnknownIndexVersion(mt)) => {
            assert_eq!(mt, "application/vnd.oci.image.config.v1+json")
        }
        other => panic!("expected unknown index version, got {other:?}"),
    }
    let err = SociIndex::from_manifest_bytes(b"{}").unwrap_err();
    assert_eq!(err.to_string(), "unknown index version: ");
    // Go's Unmarshal of `null` leaves the zero manifest: still an unknown version.
    assert!(matches!(
        SociIndex::from_manifest_bytes(b"null"),
        Err(JsonError::UnknownIndexVersion(_))
    ));
    assert!(matches!(
        SociIndex::from_manifest_bytes(b"{"),
        Err(JsonError::Decode(_))
    ));
}

/// Upstream decodes the bytes into its own `Index` struct first, whose `blobs`
/// field must then hold descriptors.
#[test]
fn blobs_key_must_be_descriptor_list() {
    let bad = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.amazon.soci.index.v2+json"},"blobs":5}"#;
    assert!(matches!(
        SociIndex::from_manifest_bytes(bad),
        Err(JsonError::Decode(_))
    ));
    let ok = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.amazon.soci.index.v2+json"},"BLOBS":[{"size":1}]}"#;
    let index = SociIndex::from_manifest_bytes(ok).unwrap();
    // blobs come from `layers` only.
    assert!(index.blobs.is_empty());
    assert!(index.layers_null);
}

/// Re-marshalling a fetched index (what the snapshotter stores) keeps the parsed
/// config, subject (even on v2) and annotations, drops unknown fields and the
/// top-level artifactType, and forces schemaVersion 2 and the OCI media type.
#[test]
fn remarshal_of_non_canonical_index() {
    let input = br#"  {
        "artifactType": "application/vnd.amazon.soci.index.v2+json",
        "annotations": {"z": "1", "com.amazon.soci.build-tool-identifier": "other tool"},
        "layers": null,
        "config": {"size": 2, "digest": "sha256:abc", "mediaType": "application/vnd.amazon.soci.index.v2+json", "annotations": {"k": "v"}},
        "schemaVersion": 1,
        "unknown": [1, 2, {"x": null}],
        "subject": {"mediaType": "m", "digest": "d", "size": 3}
    }  "#;
    let index = SociIndex::from_manifest_bytes(input).unwrap();
    assert_eq!(index.version, IndexVersion::V2);
    assert_eq!(index.media_type, "");
    assert!(index.layers_null);
    let expected = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.amazon.soci.index.v2+json","digest":"sha256:abc","size":2,"annotations":{"k":"v"}},"layers":null,"subject":{"mediaType":"m","digest":"d","size":3},"annotations":{"com.amazon.soci.build-tool-identifier":"other tool","z":"1"}}"#;
    assert_eq!(
        String::from_utf8_lossy(&index.marshal()),
        String::from_utf8_lossy(expected)
    );
    // The manifest view agrees with a plain Manifest re-marshal apart from the
    // forced fields.
    let m = Manifest::from_json(input).unwrap();
    assert_eq!(m.artifact_type, json::SOCI_INDEX_ARTIFACT_TYPE_V2);
    assert_eq!(m.schema_version, 1);
}

#[test]
fn empty_layers_array_is_kept() {
    let input = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.amazon.soci.index.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let index = SociIndex::from_manifest_bytes(input).unwrap();
    assert!(!index.layers_null);
    assert_eq!(index.marshal(), input);
}

#[test]
fn build_tool_annotation_helper() {
    let a = build_tool_annotations(Some("my tool"));
    assert_eq!(
        a,
        BTreeMap::from([(
            json::ANNOTATION_BUILD_TOOL_IDENTIFIER.to_string(),
            "my tool".to_string()
        )])
    );
    assert_eq!(IndexVersion::V1.as_str(), "v1");
    assert_eq!(
        IndexVersion::from_artifact_type(json::SOCI_INDEX_ARTIFACT_TYPE_V2),
        Some(IndexVersion::V2)
    );
    assert_eq!(IndexVersion::from_artifact_type("x"), None);
    assert_eq!(
        Digest::of(json::EMPTY_CONFIG_BYTES).to_string(),
        json::EMPTY_CONFIG_DIGEST
    );
}
