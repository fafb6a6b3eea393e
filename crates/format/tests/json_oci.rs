//! Image-spec types: Go-canonical output, Go decoding semantics and the
//! `soci convert` re-serialization helpers. The `*_converted*.json`, `*_out.json`
//! fixtures under `tests/data/json/` were produced by Go's `encoding/json` with
//! structs carrying the image-spec v1.1.1 field tags.

use std::collections::BTreeMap;

use soci_format::json::{
    self, Descriptor, Index, JsonError, Manifest, Platform, convert_image_manifest,
    convert_oci_index, from_json, to_go_json, validate_media_type,
};

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/json/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn assert_bytes(actual: &[u8], expected: &[u8]) {
    assert_eq!(
        String::from_utf8_lossy(actual),
        String::from_utf8_lossy(expected)
    );
    assert_eq!(actual, expected);
}

/// Hand-written golden of an OCI image index in Go field order.
#[test]
fn oci_index_golden() {
    let mut soci = Descriptor::new(
        json::MEDIA_TYPE_OCI_MANIFEST,
        "sha256:c30a6bda963eebcaa901556d697c541881ceac3211a6609ab1db2c07c2481ed9",
        710,
    );
    soci.artifact_type = json::SOCI_INDEX_ARTIFACT_TYPE_V2.to_string();
    soci.platform = Some(Platform {
        architecture: "arm64".into(),
        os: "linux".into(),
        variant: "v8".into(),
        ..Platform::default()
    });
    soci.annotations.insert(
        json::ANNOTATION_IMAGE_MANIFEST_DIGEST.into(),
        "sha256:0000000000000000000000000000000000000000000000000000000000000001".into(),
    );
    let mut image = Descriptor::new(
        json::MEDIA_TYPE_OCI_MANIFEST,
        "sha256:0000000000000000000000000000000000000000000000000000000000000001",
        1024,
    );
    image.platform = Some(Platform {
        architecture: "arm64".into(),
        os: "linux".into(),
        variant: "v8".into(),
        ..Platform::default()
    });
    image.annotations.insert(
        json::ANNOTATION_SOCI_INDEX_DIGEST.into(),
        "sha256:c30a6bda963eebcaa901556d697c541881ceac3211a6609ab1db2c07c2481ed9".into(),
    );
    let mut index = Index::single(image);
    index.manifests.as_mut().unwrap().push(soci);
    let expected = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000001","size":1024,"annotations":{"com.amazon.soci.index-digest":"sha256:c30a6bda963eebcaa901556d697c541881ceac3211a6609ab1db2c07c2481ed9"},"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:c30a6bda963eebcaa901556d697c541881ceac3211a6609ab1db2c07c2481ed9","size":710,"annotations":{"com.amazon.soci.image-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000001"},"platform":{"architecture":"arm64","os":"linux","variant":"v8"},"artifactType":"application/vnd.amazon.soci.index.v2+json"}]}"#;
    assert_bytes(&index.to_json(), expected);
    assert_eq!(Index::from_json(expected).unwrap(), index);
}

#[test]
fn descriptor_all_fields_in_go_order() {
    let d = Descriptor {
        media_type: String::new(),
        digest: "sha256:x".into(),
        size: -1,
        urls: vec!["u1".into(), "u2".into()],
        annotations: BTreeMap::from([("k".into(), "v".into())]),
        data: b"{}".to_vec(),
        platform: Some(Platform {
            architecture: "amd64".into(),
            os: "windows".into(),
            os_version: "10.0.17763.1".into(),
            os_features: vec!["win32k".into()],
            variant: "v2".into(),
        }),
        artifact_type: "t".into(),
    };
    let expected = br#"{"mediaType":"","digest":"sha256:x","size":-1,"urls":["u1","u2"],"annotations":{"k":"v"},"data":"e30=","platform":{"architecture":"amd64","os":"windows","os.version":"10.0.17763.1","os.features":["win32k"],"variant":"v2"},"artifactType":"t"}"#;
    assert_bytes(&to_go_json(&d), expected);
    assert_eq!(from_json::<Descriptor>(expected).unwrap(), d);
    // Zero values: mediaType, digest, size always written; platform fields too.
    assert_bytes(
        &to_go_json(&Descriptor::default()),
        br#"{"mediaType":"","digest":"","size":0}"#,
    );
    assert_bytes(
        &to_go_json(&Platform::default()),
        br#"{"architecture":"","os":""}"#,
    );
    assert_bytes(
        &to_go_json(&Manifest::default()),
        br#"{"schemaVersion":0,"config":{"mediaType":"","digest":"","size":0},"layers":null}"#,
    );
    assert_bytes(
        &to_go_json(&Index::default()),
        br#"{"schemaVersion":0,"manifests":null}"#,
    );
}

#[test]
fn canonical_manifest_round_trip_is_identity() {
    let canonical = data("docker_manifest_converted_annotated.json");
    let m = Manifest::from_json(&canonical).unwrap();
    assert_bytes(&m.to_json(), &canonical);
    for name in ["oci_index_out.json", "oci_index_converted.json"] {
        let canonical = data(name);
        assert_bytes(&Index::from_json(&canonical).unwrap().to_json(), &canonical);
    }
    let canonical = data("go_semantics_out.json");
    assert_bytes(
        &Manifest::from_json(&canonical).unwrap().to_json(),
        &canonical,
    );
}

#[test]
fn layers_null_versus_empty() {
    for (input, output) in [
        (
            &br#"{"schemaVersion":2,"config":{}}"#[..],
            &br#"{"schemaVersion":2,"config":{"mediaType":"","digest":"","size":0},"layers":null}"#
                [..],
        ),
        (
            br#"{"schemaVersion":2,"config":{},"layers":null}"#,
            br#"{"schemaVersion":2,"config":{"mediaType":"","digest":"","size":0},"layers":null}"#,
        ),
        (
            br#"{"schemaVersion":2,"config":{},"layers":[]}"#,
            br#"{"schemaVersion":2,"config":{"mediaType":"","digest":"","size":0},"layers":[]}"#,
        ),
        (
            br#"{"schemaVersion":2,"config":{},"layers":[{}],"layers":[]}"#,
            br#"{"schemaVersion":2,"config":{"mediaType":"","digest":"","size":0},"layers":[]}"#,
        ),
        (
            br#"{"schemaVersion":2,"config":{},"layers":[],"layers":null}"#,
            br#"{"schemaVersion":2,"config":{"mediaType":"","digest":"","size":0},"layers":null}"#,
        ),
    ] {
        assert_bytes(&Manifest::from_json(input).unwrap().to_json(), output);
    }
    let i = Index::from_json(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
    assert_eq!(i.manifests, Some(vec![]));
    assert_bytes(&i.to_json(), br#"{"schemaVersion":2,"manifests":[]}"#);
    let i = Index::from_json(br#"{"schemaVersion":2}"#).unwrap();
    assert_eq!(i.manifests, None);
    assert!(i.manifests().is_empty());
}

/// A non-canonical index (whitespace, key order, unknown fields, Docker list type)
/// re-marshals to Go's bytes; `convert_oci_index` also forces the OCI index type.
#[test]
fn non_canonical_index_remarshals_like_go() {
    let input = data("oci_index_in.json");
    let index = Index::from_json(&input).unwrap();
    assert_bytes(&index.to_json(), &data("oci_index_out.json"));
    let converted = convert_oci_index(&input).unwrap();
    assert_eq!(converted.media_type, json::MEDIA_TYPE_OCI_INDEX);
    assert_bytes(&converted.to_json(), &data("oci_index_converted.json"));
}

/// Spec §1.4 step 4 on a Docker schema 2 manifest (3-space indented, as registries
/// serve them), with and without the SOCI index annotation.
#[test]
fn docker_manifest_converts_like_go() {
    let input = data("docker_manifest.json");
    validate_media_type(&input, json::MEDIA_TYPE_DOCKER_MANIFEST).unwrap();
    let (m, bytes) = convert_image_manifest(&input, None).unwrap();
    assert_bytes(&bytes, &data("docker_manifest_converted.json"));
    assert!(m.annotations.is_empty());
    let (m, bytes) = convert_image_manifest(
        &input,
        Some("sha256:c30a6bda963eebcaa901556d697c541881ceac3211a6609ab1db2c07c2481ed9"),
    )
    .unwrap();
    assert_bytes(&bytes, &data("docker_manifest_converted_annotated.json"));
    assert_eq!(m.media_type, json::MEDIA_TYPE_OCI_MANIFEST);
    assert_eq!(m.config.media_type, json::MEDIA_TYPE_OCI_CONFIG);
    assert_eq!(m.layers().len(), 2);
    assert_eq!(
        m.annotations[json::ANNOTATION_SOCI_INDEX_DIGEST],
        "sha256:c30a6bda963eebcaa901556d697c541881ceac3211a6609ab1db2c07c2481ed9"
    );
    // Converting the converted manifest again changes nothing but the annotation.
    let (_, again) = convert_image_manifest(&bytes, None).unwrap();
    assert_bytes(&again, &bytes);
}

/// Case-insensitive keys (incl. U+017F and U+212A folding), repeated keys merging
/// into earlier values, `null` semantics, base64 with newlines, invalid UTF-8 and
/// lone surrogates become U+FFFD, `-0` as an integer: all as Go decodes them.
#[test]
fn go_decoding_semantics_match_go() {
    let input = data("go_semantics_in.json");
    let m = Manifest::from_json(&input).unwrap();
    assert_bytes(&m.to_json(), &data("go_semantics_out.json"));
    assert_eq!(m.layers()[2].data, vec![1, 2, 3, 4]);
    assert_eq!(m.config.size, 7);
}

#[test]
fn go_decoding_edge_cases() {
    // Type errors fail the whole decode, as json.Unmarshal returns an error.
    for bad in [
        &br#"{"schemaVersion":"2"}"#[..],
        br#"{"schemaVersion":2.0}"#,
        br#"{"schemaVersion":1e2}"#,
        br#"{"schemaVersion":9223372036854775808}"#,
        br#"{"config":{"size":-0.0}}"#,
        br#"{"config":[]}"#,
        br#"{"layers":{}}"#,
        br#"{"layers":[1]}"#,
        br#"{"annotations":{"a":1}}"#,
        br#"{"annotations":[]}"#,
        br#"{"subject":"x"}"#,
        br#"{"config":{"data":"e30"}}"#,
        br#"{"config":{"data":[256]}}"#,
        br#"{"config":{"urls":"x"}}"#,
        br#"[]"#,
        br#""manifest""#,
        br#"{} x"#,
        br#"{"a":1,}"#,
        b"{\"mediaType\":\"a\tb\"}",
        b"",
    ] {
        assert!(
            Manifest::from_json(bad).is_err(),
            "accepted {:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Accepted by Go.
    let m = Manifest::from_json(br#" null "#).unwrap();
    assert_eq!(m, Manifest::default());
    let m = Manifest::from_json(
        br#"{"schemaVersion":-0,"config":{"data":[1,2,null],"size":9223372036854775807},"subject":{"size":1},"subject":null}"#,
    )
    .unwrap();
    assert_eq!(m.schema_version, 0);
    assert_eq!(m.config.data, vec![1, 2, 0]);
    assert_eq!(m.config.size, i64::MAX);
    assert_eq!(m.subject, None);
    // Non-canonical base64 trailing bits are tolerated by Go's StdEncoding.
    let d: Descriptor = from_json(br#"{"data":"e31="}"#).unwrap();
    assert_eq!(d.data, b"{}".to_vec());
    let d: Descriptor = from_json(br#"{"data":"e3=="}"#).unwrap();
    assert_eq!(d.data, b"{".to_vec());
    // Exact-match keys and folded keys are the same field; last one wins.
    let d: Descriptor = from_json(br#"{"MEDIATYPE":"a","mediaType":"b","MediaType":"c"}"#).unwrap();
    assert_eq!(d.media_type, "c");
    // A non-ASCII key that only looks similar does not match.
    let d: Descriptor = from_json("{\"mediaTypé\":\"a\"}".as_bytes()).unwrap();
    assert_eq!(d.media_type, "");
    // Long s and Kelvin sign fold to S and K.
    let p: Platform = from_json("{\"oſ\":\"linux\",\"\u{212A}\":1}".as_bytes()).unwrap();
    assert_eq!(p.os, "linux");
}

/// Go's limit: 10000 nested levels in total are fine (even in skipped unknown
/// fields), 10001 are "exceeded max depth"; both without stack overflow.
#[test]
fn nesting_limit_matches_go() {
    let nested = |n: usize| {
        let mut v = b"{\"x\":".to_vec();
        v.extend(std::iter::repeat_n(b'[', n));
        v.extend(std::iter::repeat_n(b']', n));
        v.push(b'}');
        v
    };
    assert!(Manifest::from_json(&nested(9999)).is_ok());
    match Manifest::from_json(&nested(10000)) {
        Err(JsonError::Decode(e)) => assert!(e.to_string().contains("exceeded max depth")),
        other => panic!("{other:?}"),
    }
    // Decoded (not skipped) values deeper than serde_json's 128 levels are an error.
    let mut deep = b"[".repeat(200);
    deep.extend(b"]".repeat(200));
    assert!(from_json::<serde_json::Value>(&deep).is_err());
}

#[test]
fn validate_media_type_like_containerd() {
    let manifest = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
    let index = br#"{"schemaVersion":2,"manifests":[]}"#;
    validate_media_type(manifest, json::MEDIA_TYPE_OCI_MANIFEST).unwrap();
    validate_media_type(index, json::MEDIA_TYPE_OCI_INDEX).unwrap();
    validate_media_type(index, json::MEDIA_TYPE_DOCKER_MANIFEST_LIST).unwrap();
    let e = validate_media_type(index, json::MEDIA_TYPE_OCI_MANIFEST).unwrap_err();
    assert_eq!(
        e.to_string(),
        "media-type: expected manifest but found index (application/vnd.oci.image.manifest.v1+json)"
    );
    let e = validate_media_type(manifest, json::MEDIA_TYPE_OCI_INDEX).unwrap_err();
    assert_eq!(
        e.to_string(),
        "media-type: expected index but found manifest (application/vnd.oci.image.index.v1+json)"
    );
    // Presence counts, even `null`; keys match case-insensitively.
    assert!(validate_media_type(br#"{"Layers":null}"#, json::MEDIA_TYPE_OCI_INDEX).is_err());
    assert!(
        validate_media_type(
            br#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
            json::MEDIA_TYPE_DOCKER_MANIFEST
        )
        .is_err()
    );
    assert!(validate_media_type(br#"{"fsLayers":[]}"#, "x").is_err());
    assert!(validate_media_type(br#"{"manifests":[]}"#, "other").is_ok());
    assert!(validate_media_type(b"[", json::MEDIA_TYPE_OCI_INDEX).is_err());
}
