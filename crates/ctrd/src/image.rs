//! Image-level decisions that do not talk to anything: the name containerd
//! gives an image, which manifest of an index a platform gets, and the diff
//! IDs in an image config.

use serde::Deserialize;
use soci_content::registry::ImageReference;
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index, Platform};

/// The name containerd (and nerdctl) record an image under: the normalised
/// reference, with `latest` when it has neither tag nor digest, and only the
/// digest when it has both (`127.0.0.1:5000/app:soci`,
/// `docker.io/library/busybox:latest`, `…/app@sha256:…`).
pub fn image_name(reference: &ImageReference) -> String {
    match reference.digest() {
        Some(d) => format!("{}@{d}", reference.repository()),
        None => format!(
            "{}:{}",
            reference.repository(),
            reference.tag().unwrap_or("latest")
        ),
    }
}

/// Whether an index entry is a SOCI index or another artifact rather than
/// a runnable image.
fn is_artifact(d: &Descriptor) -> bool {
    !d.artifact_type.is_empty()
        || d.annotations
            .contains_key(json::ANNOTATION_IMAGE_MANIFEST_DIGEST)
}

/// The entry of `index` containerd would run on `platform`: among the image
/// manifests whose platform matches (or that declare none), those with a
/// platform first, in index order. SOCI indexes and other artifacts are
/// never chosen.
pub fn select_manifest<'a>(index: &'a Index, platform: &Platform) -> Option<&'a Descriptor> {
    let candidates = index.manifests().iter().filter(|d| {
        json::is_manifest_type(&d.media_type)
            && !is_artifact(d)
            && d.platform
                .as_ref()
                .is_none_or(|p| platform.matches_strict(p))
    });
    let (with, without): (Vec<&Descriptor>, Vec<&Descriptor>) =
        candidates.partition(|d| d.platform.is_some());
    with.into_iter().chain(without).next()
}

/// The platforms an index offers (for error messages).
pub fn offered_platforms(index: &Index) -> Vec<String> {
    index
        .manifests()
        .iter()
        .filter(|d| json::is_manifest_type(&d.media_type) && !is_artifact(d))
        .map(|d| {
            d.platform
                .as_ref()
                .map_or_else(|| "unspecified".to_string(), Platform::format)
        })
        .collect()
}

/// The parts of an image config `rpull` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// `rootfs.diff_ids`: digests of the uncompressed layers, bottom first.
    pub diff_ids: Vec<Digest>,
    /// `os/architecture[/variant]` as declared.
    pub platform: Platform,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: String,
    rootfs: Option<RawRootfs>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    diff_ids: Vec<String>,
}

impl ImageConfig {
    /// Parse an image config (OCI or Docker).
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, String> {
        let raw: RawConfig = serde_json::from_slice(bytes)
            .map_err(|e| format!("the image config does not parse: {e}"))?;
        let rootfs = raw
            .rootfs
            .ok_or_else(|| "the image config has no rootfs".to_string())?;
        if rootfs.kind != "layers" {
            return Err(format!(
                "the image config's rootfs type is {:?}, not \"layers\"",
                rootfs.kind
            ));
        }
        let diff_ids = rootfs
            .diff_ids
            .iter()
            .map(|d| {
                d.parse::<Digest>().map_err(|_| {
                    format!("diff ID {d:?} in the image config is not a sha256 digest")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ImageConfig {
            diff_ids,
            platform: Platform {
                architecture: raw.architecture,
                os: raw.os,
                variant: raw.variant,
                ..Platform::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn r(s: &str) -> ImageReference {
        s.parse().unwrap()
    }

    #[test]
    fn names_like_containerd() {
        assert_eq!(
            image_name(&r("127.0.0.1:5000/app:soci")),
            "127.0.0.1:5000/app:soci"
        );
        assert_eq!(
            image_name(&r("127.0.0.1:5000/app")),
            "127.0.0.1:5000/app:latest"
        );
        assert_eq!(
            image_name(&r("busybox")),
            "docker.io/library/busybox:latest"
        );
        let d = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        assert_eq!(
            image_name(&r(&format!("localhost:5000/a/b:t@{d}"))),
            format!("localhost:5000/a/b@{d}")
        );
    }

    fn entry(digest: u8, platform: Option<&str>) -> Descriptor {
        let mut d = Descriptor::new(
            json::MEDIA_TYPE_OCI_MANIFEST,
            format!("sha256:{}", format!("{digest:02x}").repeat(32)),
            100,
        );
        d.platform = platform.map(|p| Platform::parse(p).unwrap());
        d
    }

    #[test]
    fn selects_the_matching_platform() {
        let mut soci = entry(9, Some("linux/amd64"));
        soci.artifact_type = json::SOCI_INDEX_ARTIFACT_TYPE_V2.into();
        soci.annotations = BTreeMap::from([(
            json::ANNOTATION_IMAGE_MANIFEST_DIGEST.to_string(),
            "x".to_string(),
        )]);
        let index = Index {
            schema_version: 2,
            manifests: Some(vec![
                soci,
                entry(1, None),
                entry(2, Some("linux/arm64")),
                entry(3, Some("linux/amd64")),
                entry(4, Some("linux/amd64")),
            ]),
            ..Index::default()
        };
        let amd64 = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            select_manifest(&index, &amd64).unwrap().digest,
            entry(3, None).digest
        );
        let arm64 = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(
            select_manifest(&index, &arm64).unwrap().digest,
            entry(2, None).digest
        );
        // No platform entry matches: the one without a platform.
        let s390 = Platform::parse("linux/s390x").unwrap();
        assert_eq!(
            select_manifest(&index, &s390).unwrap().digest,
            entry(1, None).digest
        );
        let only = Index {
            schema_version: 2,
            manifests: Some(vec![entry(2, Some("linux/arm64"))]),
            ..Index::default()
        };
        assert!(select_manifest(&only, &amd64).is_none());
        assert_eq!(offered_platforms(&only), vec!["linux/arm64".to_string()]);
    }

    #[test]
    fn config_diff_ids() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let cfg = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{a}","{b}"]}}}}"#
        );
        let c = ImageConfig::parse(cfg.as_bytes()).unwrap();
        assert_eq!(c.diff_ids, vec![a, b]);
        assert_eq!(c.platform.format(), "linux/amd64");
        assert!(ImageConfig::parse(b"{}").unwrap_err().contains("rootfs"));
        assert!(
            ImageConfig::parse(br#"{"rootfs":{"type":"layers","diff_ids":["md5:x"]}}"#)
                .unwrap_err()
                .contains("md5:x")
        );
        assert!(ImageConfig::parse(b"[").is_err());
    }
}
