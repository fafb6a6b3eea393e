//! `go_json_indent` against Go's `json.Indent(dst, src, "", "  ")`; the `*indent*`
//! fixtures under `tests/data/json/` are Go's output.

use soci_format::json::{go_json_indent, go_json_indent_with_prefix};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/json/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn indent(src: &str) -> String {
    String::from_utf8(go_json_indent(src.as_bytes(), "  ").unwrap()).unwrap()
}

#[test]
fn nested_document_matches_go() {
    // Leading whitespace dropped, inner whitespace dropped, trailing kept, escapes
    // and number spellings copied verbatim, empty containers stay {} and [].
    let out = go_json_indent(&data("indent_in.json"), "  ").unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        String::from_utf8(data("indent_out.json")).unwrap()
    );
}

#[test]
fn oci_index_matches_go() {
    let out = go_json_indent(&data("oci_index_converted.json"), "  ").unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        String::from_utf8(data("oci_index_converted_indented.json")).unwrap()
    );
}

#[test]
fn small_cases() {
    assert_eq!(indent("{}"), "{}");
    assert_eq!(indent("[ ]"), "[]");
    assert_eq!(indent(" 12 "), "12 ");
    assert_eq!(indent("\"s\""), "\"s\"");
    assert_eq!(indent("[1,{}]"), "[\n  1,\n  {}\n]");
    assert_eq!(
        indent("{\"a\":{\"b\":[]}}"),
        "{\n  \"a\": {\n    \"b\": []\n  }\n}"
    );
    assert_eq!(
        String::from_utf8(go_json_indent(b"[[1]]", "\t").unwrap()).unwrap(),
        "[\n\t[\n\t\t1\n\t]\n]"
    );
    assert_eq!(
        String::from_utf8(go_json_indent_with_prefix(b"{\"a\":1}", ">", "-").unwrap()).unwrap(),
        "{\n>-\"a\": 1\n>}"
    );
    // Invalid UTF-8 inside strings is copied, as Go's scanner does not check it.
    assert_eq!(
        go_json_indent(b"[\"\xff\"]", "").unwrap(),
        b"[\n\"\xff\"\n]"
    );
}

#[test]
fn errors_like_go() {
    for (src, msg) in [
        (
            "{\"a\":1,}",
            "invalid character '}' looking for beginning of object key string",
        ),
        ("[1 2]", "invalid character '2' after array element"),
        ("{\"a\" 1}", "invalid character '1' after object key"),
        (
            "{1:2}",
            "invalid character '1' looking for beginning of object key string",
        ),
        (
            "tru",
            "invalid character ' ' in literal true (expecting 'e')",
        ),
        (
            "nul",
            "invalid character ' ' in literal null (expecting 'l')",
        ),
        (
            "trux",
            "invalid character 'x' in literal true (expecting 'e')",
        ),
        ("\"abc", "unexpected end of JSON input"),
        ("\"\\x\"", "invalid character 'x' in string escape code"),
        (
            "\"\\u12G4\"",
            "invalid character 'G' in \\u hexadecimal character escape",
        ),
        ("\"a\nb\"", "invalid character '\\n' in string literal"),
        ("01", "invalid character '1' after top-level value"),
        ("-", "invalid character ' ' in numeric literal"),
        (
            "1.",
            "invalid character ' ' after decimal point in numeric literal",
        ),
        ("1e", "invalid character ' ' in exponent of numeric literal"),
        ("[", "unexpected end of JSON input"),
        ("", "unexpected end of JSON input"),
        ("{\"a\":1}x", "invalid character 'x' after top-level value"),
        (
            "[,]",
            "invalid character ',' looking for beginning of value",
        ),
        (
            "{\"a\":1 \"b\":2}",
            "invalid character '\"' after object key:value pair",
        ),
    ] {
        let err = go_json_indent(src.as_bytes(), "  ").unwrap_err();
        assert_eq!(err.message, msg, "input {src:?}");
    }
}

#[test]
fn depth_limit_like_go() {
    let nested = |n: usize| {
        let mut v = b"[".repeat(n);
        v.extend(b"]".repeat(n));
        v
    };
    let out = go_json_indent(&nested(10_000), "").unwrap();
    assert_eq!(out.len(), 10_000 * 2 + 9_999 * 2);
    let err = go_json_indent(&nested(10_001), "").unwrap_err();
    assert_eq!(err.message, "invalid character '[' exceeded max depth");
}
