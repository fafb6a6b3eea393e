//! Prefetch artifact JSON (spec §1.3) and span-range normalisation.

use soci_format::Digest;
use soci_format::json::{
    self, JsonError, PrefetchArtifact, PrefetchSpan, normalize_prefetch_spans, prefetch_descriptor,
    to_go_json,
};

fn span(start: i32, end: i32) -> PrefetchSpan {
    PrefetchSpan {
        start_span: start,
        end_span: end,
        priority: 0,
    }
}

#[test]
fn marshal_golden() {
    let a = PrefetchArtifact::new(vec![
        span(0, 3),
        PrefetchSpan {
            start_span: 5,
            end_span: 9,
            priority: 2,
        },
    ]);
    let bytes = a.marshal().unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        r#"{"version":"1.0","prefetch_spans":[{"start_span":0,"end_span":3},{"start_span":5,"end_span":9,"priority":2}]}"#
    );
    assert_eq!(PrefetchArtifact::unmarshal(&bytes).unwrap(), a);

    let desc = prefetch_descriptor(&bytes, "sha256:1111");
    assert_eq!(desc.media_type, json::SOCI_PREFETCH_MEDIA_TYPE);
    assert_eq!(desc.size, bytes.len() as i64);
    assert_eq!(desc.digest, Digest::of(&bytes).to_string());
    assert_eq!(
        String::from_utf8(to_go_json(&desc)).unwrap(),
        format!(
            r#"{{"mediaType":"application/vnd.amazon.soci.prefetch.v1+json","digest":"{}","size":{},"annotations":{{"com.amazon.soci.image-layer-digest":"sha256:1111"}}}}"#,
            desc.digest,
            bytes.len()
        )
    );
}

#[test]
fn marshal_rejects_empty() {
    assert!(matches!(
        PrefetchArtifact::new(vec![]).marshal(),
        Err(JsonError::EmptyPrefetchArtifact)
    ));
}

#[test]
fn unmarshal_rules() {
    assert!(matches!(
        PrefetchArtifact::unmarshal(br#"{"version":"0.9","prefetch_spans":[{"start_span":1,"end_span":1}]}"#),
        Err(JsonError::UnsupportedPrefetchVersion(v)) if v == "0.9"
    ));
    assert!(matches!(
        PrefetchArtifact::unmarshal(br#"{"prefetch_spans":[{"start_span":1,"end_span":1}]}"#),
        Err(JsonError::UnsupportedPrefetchVersion(v)) if v.is_empty()
    ));
    for empty in [
        &br#"{"version":"1.0","prefetch_spans":[]}"#[..],
        br#"{"version":"1.0","prefetch_spans":null}"#,
        br#"{"version":"1.0"}"#,
    ] {
        assert!(matches!(
            PrefetchArtifact::unmarshal(empty),
            Err(JsonError::EmptyPrefetchArtifact)
        ));
    }
    assert!(matches!(
        PrefetchArtifact::unmarshal(b"not-json"),
        Err(JsonError::Decode(_))
    ));
    // Span ids are Go int32.
    assert!(
        PrefetchArtifact::unmarshal(
            br#"{"version":"1.0","prefetch_spans":[{"start_span":2147483648,"end_span":1}]}"#
        )
        .is_err()
    );
    // Go decoding: unknown fields ignored, keys case-insensitive, priority optional.
    let a = PrefetchArtifact::unmarshal(
        br#"{"Version":"1.0","extra":1,"PREFETCH_SPANS":[{"START_SPAN":-1,"end_span":2147483647,"priority":-3}]}"#,
    )
    .unwrap();
    assert_eq!(
        a.prefetch_spans,
        vec![PrefetchSpan {
            start_span: -1,
            end_span: i32::MAX,
            priority: -3
        }]
    );
}

#[test]
fn normalisation() {
    assert!(normalize_prefetch_spans(vec![]).is_empty());
    assert_eq!(
        normalize_prefetch_spans(vec![span(0, 10)]),
        vec![span(0, 10)]
    );
    // overlapping
    assert_eq!(
        normalize_prefetch_spans(vec![span(0, 10), span(5, 15)]),
        vec![span(0, 15)]
    );
    // adjacent (next.start == cur.end + 1)
    assert_eq!(
        normalize_prefetch_spans(vec![span(0, 10), span(11, 20)]),
        vec![span(0, 20)]
    );
    // gap of one span stays separate
    assert_eq!(
        normalize_prefetch_spans(vec![span(0, 10), span(12, 20)]),
        vec![span(0, 10), span(12, 20)]
    );
    // sort then merge
    assert_eq!(
        normalize_prefetch_spans(vec![span(20, 30), span(0, 10), span(5, 25)]),
        vec![span(0, 30)]
    );
    // contained range does not shrink the current one
    assert_eq!(
        normalize_prefetch_spans(vec![span(0, 10), span(2, 3), span(4, 4)]),
        vec![span(0, 10)]
    );
    // duplicates and equal starts sorted by end
    assert_eq!(
        normalize_prefetch_spans(vec![span(3, 9), span(3, 4), span(3, 4), span(40, 41)]),
        vec![span(3, 9), span(40, 41)]
    );
    // int32 wrap-around of end+1 as in Go: nothing merges into a range ending at MAX
    assert_eq!(
        normalize_prefetch_spans(vec![span(7, 8), span(5, i32::MAX)]),
        vec![span(5, i32::MAX), span(7, 8)]
    );
    assert_eq!(
        normalize_prefetch_spans(vec![span(i32::MAX, i32::MAX), span(i32::MIN, 0)]),
        vec![span(i32::MIN, 0), span(i32::MAX, i32::MAX)]
    );
}
