//! Go string escaping, map-key order and number formatting of `to_go_json`.
//! `escape_out.json` was produced by Go's `json.Marshal` of a `map[string]string`.

use std::collections::BTreeMap;

use soci_format::json::{Descriptor, from_json, to_go_json, try_to_go_json};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/json/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn s(v: &impl serde::Serialize) -> String {
    String::from_utf8(to_go_json(v)).unwrap()
}

#[test]
fn string_map_matches_go() {
    let m: BTreeMap<String, String> = from_json(&data("escape_in.json")).unwrap();
    assert_eq!(
        String::from_utf8(to_go_json(&m)).unwrap(),
        String::from_utf8(data("escape_out.json")).unwrap()
    );
}

#[test]
fn html_and_line_separator_escapes() {
    assert_eq!(s(&"<>&"), r#""\u003c\u003e\u0026""#);
    assert_eq!(s(&"a\u{2028}b\u{2029}c"), r#""a\u2028b\u2029c""#);
    // Neighbours of U+2028/9 in the same UTF-8 lead bytes stay raw.
    assert_eq!(
        s(&"\u{2027}\u{202A}\u{2000}"),
        "\"\u{2027}\u{202A}\u{2000}\""
    );
    assert_eq!(
        s(&"x</script>y&&"),
        r#""x\u003c/script\u003ey\u0026\u0026""#
    );
}

#[test]
fn control_characters() {
    // Go >= 1.22: \b and \f short forms; other controls \u00xx with lower-case hex.
    assert_eq!(s(&"\u{8}\u{c}\n\r\t"), r#""\b\f\n\r\t""#);
    assert_eq!(
        s(&"\u{0}\u{1}\u{1a}\u{1b}\u{1f}"),
        r#""\u0000\u0001\u001a\u001b\u001f""#
    );
    assert_eq!(s(&"\u{7f}"), "\"\u{7f}\"");
    assert_eq!(s(&"\"\\/"), r#""\"\\/""#);
}

#[test]
fn unicode_and_emoji_are_raw() {
    assert_eq!(s(&"é中😀👩‍💻"), "\"é中😀👩‍💻\"");
    assert_eq!(s(&"\u{feff}\u{85}\u{fffd}"), "\"\u{feff}\u{85}\u{fffd}\"");
}

#[test]
fn map_keys_sorted_bytewise_and_escaped() {
    let m = BTreeMap::from([
        ("a.b".to_string(), "1".to_string()),
        ("a-b".to_string(), "2".to_string()),
        ("a".to_string(), "3".to_string()),
        ("B".to_string(), "4".to_string()),
        ("b".to_string(), "5".to_string()),
        ("é".to_string(), "6".to_string()),
        ("z".to_string(), "7".to_string()),
        ("<k>".to_string(), "8".to_string()),
        ("A".to_string(), "9".to_string()),
    ]);
    // '-' (0x2d) < '.' (0x2e); upper case before lower case; 'é' (0xc3..) last.
    assert_eq!(
        s(&m),
        r#"{"\u003ck\u003e":"8","A":"9","B":"4","a":"3","a-b":"2","a.b":"1","b":"5","z":"7","é":"6"}"#
    );
    let d = Descriptor {
        annotations: m,
        ..Descriptor::default()
    };
    assert!(s(&d).contains(r#""annotations":{"\u003ck\u003e":"8","A":"9","#));
}

#[test]
fn floats_like_go() {
    assert_eq!(s(&1.0f64), "1");
    assert_eq!(s(&-0.0f64), "-0");
    assert_eq!(s(&0.5f64), "0.5");
    assert_eq!(s(&1e20f64), "100000000000000000000");
    assert_eq!(s(&1e21f64), "1e+21");
    assert_eq!(s(&1.5e300f64), "1.5e+300");
    assert_eq!(s(&0.000001f64), "0.000001");
    assert_eq!(s(&1e-7f64), "1e-7");
    assert_eq!(s(&1.25e-10f64), "1.25e-10");
    assert_eq!(s(&0.1f64), "0.1");
    assert_eq!(s(&0.1f32), "0.1");
    assert_eq!(s(&1e21f32), "1e+21");
    assert_eq!(s(&123456789.0f64), "123456789");
}

#[test]
fn integers_bytes_and_compactness() {
    assert_eq!(s(&i64::MIN), "-9223372036854775808");
    assert_eq!(s(&u64::MAX), "18446744073709551615");
    assert_eq!(s(&vec![1, 2, 3]), "[1,2,3]");
    assert_eq!(s(&Vec::<u8>::new()), "[]");
    assert_eq!(
        s(&serde_json::json!({"b": [true, null], "a": {}})),
        r#"{"a":{},"b":[true,null]}"#
    );
    struct Bytes;
    impl serde::Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b"{}\xff")
        }
    }
    // Go's []byte encoding.
    assert_eq!(s(&Bytes), r#""e33/""#);
    // Non-string map keys fail (Go would stringify ints; not used here).
    let bad = BTreeMap::from([(vec![1u8], 1)]);
    assert!(try_to_go_json(&bad).is_err());
}
