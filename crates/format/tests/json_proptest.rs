//! Property tests: parsers never panic, canonical output is a fixpoint, escaping
//! round-trips, indentation only adds whitespace, span normalisation invariants.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use soci_format::json::{
    Descriptor, Index, Manifest, Platform, PrefetchArtifact, PrefetchSpan, SociIndex, from_json,
    go_json_indent, normalize_prefetch_spans, to_go_json, validate_media_type,
};

/// Text made of JSON punctuation and a few letters, to reach deep into the parsers.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b":".to_vec()),
        Just(b",".to_vec()),
        Just(b"\"".to_vec()),
        Just(b" ".to_vec()),
        Just(b"null".to_vec()),
        Just(b"-0".to_vec()),
        Just(b"1e5".to_vec()),
        Just(b"\\u".to_vec()),
        Just(b"d800".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\"layers\"".to_vec()),
        Just(b"\"config\"".to_vec()),
        Just(b"\"mediaType\"".to_vec()),
        Just(b"\"annotations\"".to_vec()),
        Just(b"\"data\"".to_vec()),
        Just(b"\"platform\"".to_vec()),
        Just(b"\"application/vnd.amazon.soci.index.v2+json\"".to_vec()),
        Just(b"\xff".to_vec()),
        Just(b"\xe2\x80".to_vec()),
        (0u8..=255).prop_map(|b| vec![b]),
    ];
    prop::collection::vec(token, 0..48).prop_map(|v| v.concat())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z./+:-]{0,12}",
        any::<String>(),
        "[<>&\u{2028}\u{2029}\u{0}-\u{1f}\"\\\\é😀]{0,8}",
    ]
}

fn map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(text(), text(), 0..4)
}

fn platform() -> impl Strategy<Value = Platform> {
    (
        text(),
        text(),
        text(),
        prop::collection::vec(text(), 0..3),
        text(),
    )
        .prop_map(
            |(architecture, os, os_version, os_features, variant)| Platform {
                architecture,
                os,
                os_version,
                os_features,
                variant,
            },
        )
}

fn descriptor() -> impl Strategy<Value = Descriptor> {
    (
        text(),
        text(),
        any::<i64>(),
        prop::collection::vec(text(), 0..3),
        map(),
        prop::collection::vec(any::<u8>(), 0..8),
        prop::option::of(platform()),
        text(),
    )
        .prop_map(
            |(media_type, digest, size, urls, annotations, data, platform, artifact_type)| {
                Descriptor {
                    media_type,
                    digest,
                    size,
                    urls,
                    annotations,
                    data,
                    platform,
                    artifact_type,
                }
            },
        )
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (
        any::<i64>(),
        text(),
        text(),
        descriptor(),
        prop::option::of(prop::collection::vec(descriptor(), 0..3)),
        prop::option::of(descriptor()),
        map(),
    )
        .prop_map(
            |(schema_version, media_type, artifact_type, config, layers, subject, annotations)| {
                Manifest {
                    schema_version,
                    media_type,
                    artifact_type,
                    config,
                    layers,
                    subject,
                    annotations,
                }
            },
        )
}

/// Removes JSON whitespace outside strings.
fn strip_ws(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut in_str, mut esc) = (false, false);
    for &c in b {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            if c == b'"' {
                in_str = true;
            }
            out.push(c);
        }
    }
    out
}

proptest! {
    #[test]
    fn parsers_never_panic_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = from_json::<Manifest>(&bytes);
        let _ = from_json::<Index>(&bytes);
        let _ = from_json::<Descriptor>(&bytes);
        let _ = SociIndex::from_manifest_bytes(&bytes);
        let _ = PrefetchArtifact::unmarshal(&bytes);
        let _ = validate_media_type(&bytes, "application/vnd.oci.image.index.v1+json");
        let _ = go_json_indent(&bytes, "  ");
        let _ = Platform::parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn parsers_never_panic_on_jsonish_text(bytes in jsonish()) {
        if let Ok(m) = from_json::<Manifest>(&bytes) {
            // Whatever Go-semantics decoding accepted re-marshals to a fixpoint.
            let once = to_go_json(&m);
            let again = to_go_json(&from_json::<Manifest>(&once).unwrap());
            prop_assert_eq!(once, again);
        }
        let _ = from_json::<Index>(&bytes);
        let _ = SociIndex::from_manifest_bytes(&bytes);
        let _ = PrefetchArtifact::unmarshal(&bytes);
        // Indent accepts exactly what the Go-semantics parser accepts (both take
        // invalid UTF-8 and lone surrogates), and only moves whitespace.
        let parsed = from_json::<serde_json::Value>(&bytes);
        match go_json_indent(&bytes, "\t") {
            Ok(out) => {
                prop_assert!(parsed.is_ok(), "indent accepted, parser rejected: {:?}", parsed);
                prop_assert_eq!(strip_ws(&out), strip_ws(&bytes));
            }
            Err(e) => prop_assert!(parsed.is_err(), "indent rejected: {}", e),
        }
    }

    #[test]
    fn manifest_round_trip(m in manifest()) {
        let bytes = to_go_json(&m);
        let back: Manifest = from_json(&bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(to_go_json(&back), bytes.clone());
        // Indented output parses to the same value and compacts back to the input.
        let pretty = go_json_indent(&bytes, "  ").unwrap();
        prop_assert_eq!(from_json::<Manifest>(&pretty).unwrap(), m);
        prop_assert_eq!(strip_ws(&pretty), bytes);
    }

    #[test]
    fn strings_escape_like_go(s in any::<String>()) {
        let out = to_go_json(&s);
        prop_assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s.clone());
        let text = String::from_utf8(out.clone()).unwrap();
        let inner = &text[1..text.len() - 1];
        let forbidden = ['<', '>', '&', '\u{2028}', '\u{2029}'];
        assert!(!inner.contains(forbidden), "unescaped character in {inner:?}");
        prop_assert!(!inner.chars().any(|c| (c as u32) < 0x20));
        // Only Go's escapes appear.
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                let e = chars.next().unwrap();
                prop_assert!("\"\\bfnrtu".contains(e), "escape \\{}", e);
            }
        }
    }

    #[test]
    fn strings_with_arbitrary_bytes_decode(body in prop::collection::vec(any::<u8>(), 0..64)) {
        // Any byte except '"', '\\' and controls is accepted inside a string, as in Go.
        let body: Vec<u8> = body.into_iter().filter(|b| *b >= 0x20 && *b != b'"' && *b != b'\\').collect();
        let mut doc = b"\"".to_vec();
        doc.extend_from_slice(&body);
        doc.push(b'"');
        let s: String = from_json(&doc).unwrap();
        if let Ok(valid) = std::str::from_utf8(&body) {
            prop_assert_eq!(s, valid);
        } else {
            let replacement = char::REPLACEMENT_CHARACTER;
            prop_assert!(s.contains(replacement));
        }
    }

    #[test]
    fn prefetch_normalisation_invariants(
        raw in prop::collection::vec((0i32..200, 0i32..20, 0i64..3), 0..12)
    ) {
        let spans: Vec<PrefetchSpan> = raw
            .iter()
            .map(|&(s, len, priority)| PrefetchSpan { start_span: s, end_span: s + len, priority })
            .collect();
        let norm = normalize_prefetch_spans(spans.clone());
        let cover = |v: &[PrefetchSpan]| -> BTreeSet<i32> {
            v.iter().flat_map(|s| s.start_span..=s.end_span).collect()
        };
        prop_assert_eq!(cover(&norm), cover(&spans));
        for w in norm.windows(2) {
            prop_assert!(w[1].start_span > w[0].end_span + 1);
        }
        prop_assert_eq!(normalize_prefetch_spans(norm.clone()), norm.clone());
        if !norm.is_empty() {
            let a = PrefetchArtifact::new(norm);
            prop_assert_eq!(PrefetchArtifact::unmarshal(&a.marshal().unwrap()).unwrap(), a);
        }
    }

    #[test]
    fn platform_parse_format_fixpoint(
        os in "[a-zA-Z][a-zA-Z0-9_-]{0,7}",
        arch in prop_oneof![
            Just("amd64".to_string()), Just("x86_64".to_string()), Just("arm64".to_string()),
            Just("aarch64".to_string()), Just("arm".to_string()), Just("armhf".to_string()),
            Just("armel".to_string()), Just("i386".to_string()), "[a-z0-9_]{1,6}"
        ],
        variant in prop::option::of(prop_oneof![
            Just("v8".to_string()), Just("8".to_string()), Just("v7".to_string()),
            Just("7".to_string()), Just("v1".to_string()), "[a-z0-9]{1,4}"
        ]),
    ) {
        let spec = match &variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        };
        let p = Platform::parse(&spec).unwrap();
        let again = Platform::parse(&p.format()).unwrap();
        prop_assert_eq!(&again, &p);
        prop_assert!(p.matches_strict(&again));
        prop_assert!(p.matches_strict(&p.normalize()));
    }
}
