//! Platform parsing/formatting/matching (containerd `platforms` semantics) and
//! media-type classification (containerd `images`, upstream `buildSociLayer`).

use soci_format::json::{
    self, LayerCompression, Platform, containerd_diff_compression, dedupe_platforms,
    is_config_type, is_index_type, is_layer_type, is_manifest_type, layer_compression, to_go_json,
};

fn p(os: &str, arch: &str, variant: &str) -> Platform {
    Platform {
        architecture: arch.into(),
        os: os.into(),
        variant: variant.into(),
        ..Platform::default()
    }
}

fn parse(s: &str) -> Platform {
    Platform::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn parse_os_arch_variant() {
    for (spec, expected) in [
        ("linux/amd64", p("linux", "amd64", "")),
        ("linux/x86_64", p("linux", "amd64", "")),
        ("linux/x86-64", p("linux", "amd64", "")),
        ("linux/amd64/v1", p("linux", "amd64", "")),
        ("linux/amd64/v3", p("linux", "amd64", "v3")),
        ("linux/i386", p("linux", "386", "")),
        ("linux/aarch64", p("linux", "arm64", "")),
        ("linux/arm64", p("linux", "arm64", "")),
        ("linux/arm64/v8", p("linux", "arm64", "v8")),
        ("linux/arm64/8", p("linux", "arm64", "v8")),
        ("linux/aarch64/v8.0", p("linux", "arm64", "v8")),
        ("linux/arm64/v9.0", p("linux", "arm64", "v9")),
        ("linux/arm64/v8.2", p("linux", "arm64", "v8.2")),
        ("linux/arm", p("linux", "arm", "")),
        ("linux/arm/v7", p("linux", "arm", "v7")),
        ("linux/arm/7", p("linux", "arm", "v7")),
        ("linux/arm/6", p("linux", "arm", "v6")),
        ("linux/armhf", p("linux", "arm", "")),
        ("linux/armhf/whatever", p("linux", "arm", "v7")),
        ("linux/armel", p("linux", "arm", "v6")),
        ("Linux/AMD64", p("linux", "amd64", "")),
        ("macos/arm64", p("darwin", "arm64", "")),
        ("linux/s390x", p("linux", "s390x", "")),
        ("freebsd/riscv64", p("freebsd", "riscv64", "")),
        ("plan10/weird_arch", p("plan10", "weird_arch", "")),
        // A lone architecture gets the host OS (Linux here).
        ("amd64", p("linux", "amd64", "")),
        ("x86_64", p("linux", "amd64", "")),
        ("aarch64", p("linux", "arm64", "")),
        ("arm", p("linux", "arm", "")),
        ("armel", p("linux", "arm", "v6")),
    ] {
        assert_eq!(parse(spec), expected, "{spec}");
    }
    // A lone OS gets the host architecture.
    let host = Platform::host_default();
    let linux = parse("linux");
    assert_eq!(linux.os, "linux");
    assert_eq!(linux.architecture, host.architecture);
    assert_eq!(
        "linux/arm64/v8".parse::<Platform>().unwrap(),
        p("linux", "arm64", "v8")
    );
}

#[test]
fn parse_os_options() {
    let w = parse("windows(10.0.17763+win32k+b%2Bc)/amd64");
    assert_eq!(w.os, "windows");
    assert_eq!(w.os_version, "10.0.17763");
    assert_eq!(w.os_features, vec!["win32k".to_string(), "b+c".to_string()]);
    assert_eq!(w.architecture, "amd64");
    let w = parse("windows()/amd64");
    assert_eq!(w.os_version, "");
    assert!(w.os_features.is_empty());
    let w = parse("windows(10.0%2E1)/amd64");
    assert_eq!(w.os_version, "10.0.1");
}

#[test]
fn parse_errors() {
    for bad in [
        "",
        "/",
        "linux/",
        "linux//v8",
        "linux/*",
        "*",
        "linux/amd64/v2/extra",
        "lin ux/amd64",
        "linux/amd 64",
        "linux/amd64/v8+x",
        "linux(/amd64",
        "linux(1.0/amd64",
        "windows(1.0+)/amd64",
        "windows(%zz)/amd64",
        "foo",
        "amd64(1)",
        "linux.x/amd64",
    ] {
        assert!(Platform::parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn format_platforms() {
    assert_eq!(p("linux", "amd64", "").format(), "linux/amd64");
    assert_eq!(p("linux", "arm64", "v8").format(), "linux/arm64/v8");
    assert_eq!(p("linux", "", "").format(), "linux");
    assert_eq!(p("", "amd64", "").format(), "unknown");
    assert_eq!(p("linux", "amd64", "").to_string(), "linux/amd64");
    // Go's path.Join cleans.
    assert_eq!(p("linux", "..", "v1").format(), "v1");
    assert_eq!(p("a/b", ".", "").format(), "a/b");
    for s in ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/arm"] {
        assert_eq!(parse(s).format(), s);
    }
}

#[test]
fn host_default_platform() {
    let host = Platform::host_default();
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        assert_eq!(
            String::from_utf8(to_go_json(&host)).unwrap(),
            r#"{"architecture":"amd64","os":"linux"}"#
        );
    }
    if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
        assert_eq!(
            String::from_utf8(to_go_json(&host)).unwrap(),
            r#"{"architecture":"arm64","os":"linux","variant":"v8"}"#
        );
    }
    assert!(host.matches_strict(&host));
}

#[test]
fn strict_matching() {
    let yes = [
        (p("linux", "arm64", ""), p("linux", "arm64", "v8")),
        (p("linux", "arm64", "v8"), p("linux", "aarch64", "")),
        (p("linux", "arm", ""), p("linux", "arm", "v7")),
        (p("linux", "amd64", ""), p("linux", "x86_64", "v1")),
        (p("Linux", "AMD64", ""), p("linux", "amd64", "")),
        (p("linux", "amd64", ""), p("", "amd64", "")),
        (p("linux", "arm64", "v9"), p("linux", "arm64", "9.0")),
    ];
    for (a, b) in yes {
        assert!(a.matches_strict(&b), "{a:?} vs {b:?}");
        assert!(b.matches_strict(&a), "{b:?} vs {a:?}");
    }
    let no = [
        (p("linux", "amd64", ""), p("linux", "arm64", "")),
        (p("linux", "amd64", ""), p("linux", "amd64", "v2")),
        (p("linux", "arm", "v6"), p("linux", "arm", "v7")),
        (p("linux", "arm64", "v8"), p("linux", "arm64", "v8.2")),
        (p("linux", "amd64", ""), p("windows", "amd64", "")),
        (p("linux", "amd64", ""), p("linux", "386", "")),
    ];
    for (a, b) in no {
        assert!(!a.matches_strict(&b), "{a:?} vs {b:?}");
    }
    // OS features: the candidate's features must all be in the matcher's.
    let mut m = p("linux", "amd64", "");
    m.os_features = vec!["b".into(), "a".into()];
    let mut c = p("linux", "amd64", "");
    assert!(m.matches_strict(&c));
    c.os_features = vec!["a".into()];
    assert!(m.matches_strict(&c));
    assert!(!c.matches_strict(&m));
    c.os_features = vec!["c".into()];
    assert!(!m.matches_strict(&c));
}

#[test]
fn dedupe_keeps_first() {
    let ps = [
        p("linux", "arm64", ""),
        p("linux", "amd64", ""),
        p("linux", "arm64", "v8"),
        p("linux", "x86_64", ""),
        p("linux", "arm", "v7"),
        p("linux", "arm", ""),
    ];
    assert_eq!(
        dedupe_platforms(&ps),
        vec![
            p("linux", "arm64", ""),
            p("linux", "amd64", ""),
            p("linux", "arm", "v7")
        ]
    );
}

#[test]
fn normalize_platform() {
    let mut x = p("MacOS", "AArch64", "V8");
    x.os_features = vec!["b".into(), "a".into(), "b".into()];
    let n = x.normalize();
    assert_eq!(n.os, "darwin");
    assert_eq!(n.architecture, "arm64");
    assert_eq!(n.variant, "");
    assert_eq!(n.os_features, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(p("linux", "arm", "").normalize().variant, "v7");
    assert_eq!(
        p("linux", "armhf", "v5").normalize(),
        p("linux", "arm", "v7")
    );
}

#[test]
fn layer_types() {
    for mt in [
        json::MEDIA_TYPE_OCI_LAYER_TAR,
        json::MEDIA_TYPE_OCI_LAYER_GZIP,
        json::MEDIA_TYPE_OCI_LAYER_ZSTD,
        json::MEDIA_TYPE_OCI_LAYER_NONDIST_GZIP,
        "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
        "application/vnd.oci.image.layer.anything",
        json::MEDIA_TYPE_DOCKER_LAYER_TAR,
        json::MEDIA_TYPE_DOCKER_LAYER_GZIP,
        json::MEDIA_TYPE_DOCKER_LAYER_ZSTD,
        json::MEDIA_TYPE_DOCKER_LAYER_FOREIGN_TAR,
        json::MEDIA_TYPE_DOCKER_LAYER_FOREIGN_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar.gzip+encrypted",
    ] {
        assert!(is_layer_type(mt), "{mt}");
    }
    for mt in [
        "",
        json::SOCI_LAYER_MEDIA_TYPE,
        json::SOCI_PREFETCH_MEDIA_TYPE,
        json::MEDIA_TYPE_OCI_CONFIG,
        json::MEDIA_TYPE_OCI_MANIFEST,
        json::MEDIA_TYPE_DOCKER_CONFIG,
        "application/vnd.oci.image.layerx",
        "application/vnd.docker.image.rootfs.diff.tarx",
        "application/vnd.erofs.layer.v1",
    ] {
        assert!(!is_layer_type(mt), "{mt}");
    }
    assert!(is_manifest_type(json::MEDIA_TYPE_OCI_MANIFEST));
    assert!(is_manifest_type(json::MEDIA_TYPE_DOCKER_MANIFEST));
    assert!(!is_manifest_type(json::MEDIA_TYPE_OCI_INDEX));
    assert!(is_index_type(json::MEDIA_TYPE_OCI_INDEX));
    assert!(is_index_type(json::MEDIA_TYPE_DOCKER_MANIFEST_LIST));
    assert!(!is_index_type(json::MEDIA_TYPE_OCI_MANIFEST));
    assert!(is_config_type(json::MEDIA_TYPE_OCI_CONFIG));
    assert!(is_config_type(json::MEDIA_TYPE_DOCKER_CONFIG));
    assert!(!is_config_type(json::SOCI_INDEX_ARTIFACT_TYPE_V1));
}

#[test]
fn layer_compression_decisions() {
    use LayerCompression::*;
    for (mt, expected) in [
        (json::MEDIA_TYPE_OCI_LAYER_GZIP, Gzip),
        (json::MEDIA_TYPE_DOCKER_LAYER_GZIP, Gzip),
        (json::MEDIA_TYPE_DOCKER_LAYER_FOREIGN_GZIP, Gzip),
        (json::MEDIA_TYPE_OCI_LAYER_NONDIST_GZIP, Gzip),
        // containerd picks the last *sorted* suffix.
        (
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            Gzip,
        ),
        (
            "application/vnd.oci.image.layer.v1.tar+encrypted+gzip",
            Gzip,
        ),
        (json::MEDIA_TYPE_OCI_LAYER_TAR, Uncompressed),
        (json::MEDIA_TYPE_DOCKER_LAYER_TAR, Unknown),
        (json::MEDIA_TYPE_DOCKER_LAYER_FOREIGN_TAR, Unknown),
        (json::MEDIA_TYPE_OCI_LAYER_ZSTD, Unsupported("zstd")),
        (json::MEDIA_TYPE_DOCKER_LAYER_ZSTD, Unsupported("zstd")),
        (
            "application/vnd.oci.image.layer.v1.tar+zstd+encrypted",
            Unsupported("zstd"),
        ),
        (json::MEDIA_TYPE_OCI_LAYER_NONDIST_TAR, Unsupported("")),
        (
            "application/vnd.oci.image.layer.v1.tar+encrypted",
            Unsupported(""),
        ),
        (
            "application/vnd.docker.image.rootfs.diff.tar.gzip+encrypted",
            Unsupported(""),
        ),
    ] {
        assert_eq!(layer_compression(mt).unwrap(), expected, "{mt}");
    }
    assert_eq!(Gzip.as_str(), "gzip");
    assert_eq!(Uncompressed.as_str(), "uncompressed");
    assert_eq!(Unknown.as_str(), "unknown");
    assert!(Unknown.is_supported());
    assert!(!Unsupported("zstd").is_supported());
    assert_eq!(
        containerd_diff_compression(json::MEDIA_TYPE_OCI_LAYER_TAR),
        Ok("")
    );
    let err = layer_compression("application/octet-stream").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unrecognised mediatype application/octet-stream: not implemented"
    );
    assert!(layer_compression("application/vnd.oci.image.layer.v2.tar+gzip").is_err());
}
