//! Label names containerd and the SOCI snapshotter agree on, and the label
//! sets `rpull` sends.
//!
//! Two families:
//!
//! * garbage-collection references (`containerd.io/gc.*`) on content and
//!   leases, which keep what an image needs alive once the pull's lease is
//!   gone;
//! * snapshot labels on `Prepare`, which containerd passes through to the
//!   snapshotter (`containerd.io/snapshot.ref` and everything under
//!   `containerd.io/snapshot/`): they tell a remote snapshotter which image,
//!   manifest and layer the snapshot is for, so it can mount the layer lazily.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// containerd rejects a label whose key plus value is longer than this.
pub const MAX_LABEL_SIZE: usize = 4096;

/// Lease label: when the lease expires (RFC 3339).
pub const GC_EXPIRE: &str = "containerd.io/gc.expire";
/// Content label on a manifest: its config blob.
pub const GC_REF_CONFIG: &str = "containerd.io/gc.ref.content.config";
/// Content label prefix on a manifest: its layers (`l.<i>`).
pub const GC_REF_LAYER_PREFIX: &str = "containerd.io/gc.ref.content.l.";
/// Content label prefix on an index: its manifests (`m.<i>`).
pub const GC_REF_MANIFEST_PREFIX: &str = "containerd.io/gc.ref.content.m.";
/// Content label prefix on a config: the top snapshot of the image unpacked
/// on a snapshotter (`<snapshotter>`), which keeps the snapshot chain alive.
pub const GC_REF_SNAPSHOT_PREFIX: &str = "containerd.io/gc.ref.snapshot.";
/// Content label prefix recording where a blob came from
/// (`<registry>` = repository).
pub const DISTRIBUTION_SOURCE_PREFIX: &str = "containerd.io/distribution.source.";

/// Snapshot label: the chain ID the prepared snapshot is to be committed as.
pub const SNAPSHOT_REF: &str = "containerd.io/snapshot.ref";
/// Snapshot label: the image reference.
pub const CRI_IMAGE_REF: &str = "containerd.io/snapshot/cri.image-ref";
/// Snapshot label: the platform image manifest digest.
pub const CRI_MANIFEST_DIGEST: &str = "containerd.io/snapshot/cri.manifest-digest";
/// Snapshot label: the layer digest.
pub const CRI_LAYER_DIGEST: &str = "containerd.io/snapshot/cri.layer-digest";
/// Snapshot label: comma-separated digests of this layer and those above it.
pub const CRI_IMAGE_LAYERS: &str = "containerd.io/snapshot/cri.image-layers";
/// Snapshot label: the layer's size in bytes.
pub const SOCI_LAYER_SIZE: &str = "containerd.io/snapshot/remote/soci.size";
/// Snapshot label: comma-separated sizes matching [`CRI_IMAGE_LAYERS`].
pub const SOCI_IMAGE_LAYERS_SIZE: &str = "containerd.io/snapshot/remote/image.layers.size";
/// Snapshot label: an explicit SOCI index digest.
pub const SOCI_INDEX_DIGEST: &str = "containerd.io/snapshot/remote/soci.index.digest";
/// Label the snapshotter writes on snapshots whose layer is mounted lazily.
pub const SNAPSHOT_REMOTE: &str = "containerd.io/snapshot/remote";

/// Whether containerd accepts `key` = `value` (its only rule is the size).
pub fn fits(key: &str, value: &str) -> bool {
    key.len() + value.len() <= MAX_LABEL_SIZE
}

/// A layer as the labels need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// Layer (blob) digest.
    pub digest: String,
    /// Layer size in bytes.
    pub size: i64,
}

/// What the snapshot labels of an image's layers have in common.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLabels {
    /// The image reference, as containerd names the image.
    pub image_ref: String,
    /// The platform image manifest digest.
    pub manifest_digest: String,
    /// Every layer of the manifest, bottom first.
    pub layers: Vec<LayerRef>,
    /// An explicit SOCI index digest, when one was asked for.
    pub soci_index_digest: Option<String>,
}

impl ImageLabels {
    /// The labels of the `Prepare` of layer `index` (0-based) whose chain ID
    /// is `chain_id`: what containerd's CRI plugin and nerdctl set for a
    /// remote snapshotter.
    ///
    /// [`CRI_IMAGE_LAYERS`] lists this layer and the ones above it, as many
    /// as fit in one label (as containerd does), and
    /// [`SOCI_IMAGE_LAYERS_SIZE`] their sizes, as many as fit but never more
    /// than the digests listed.
    pub fn layer_labels(&self, index: usize, chain_id: &str) -> BTreeMap<String, String> {
        let layer = &self.layers[index];
        let mut labels = BTreeMap::new();
        labels.insert(SNAPSHOT_REF.to_string(), chain_id.to_string());
        labels.insert(CRI_IMAGE_REF.to_string(), self.image_ref.clone());
        labels.insert(
            CRI_MANIFEST_DIGEST.to_string(),
            self.manifest_digest.clone(),
        );
        labels.insert(CRI_LAYER_DIGEST.to_string(), layer.digest.clone());
        let rest = &self.layers[index..];
        let digests = join_fitting(CRI_IMAGE_LAYERS, rest.iter().map(|l| l.digest.clone()));
        let listed = digests.split(',').filter(|s| !s.is_empty()).count();
        let sizes = join_fitting(
            SOCI_IMAGE_LAYERS_SIZE,
            rest.iter().take(listed).map(|l| l.size.to_string()),
        );
        labels.insert(CRI_IMAGE_LAYERS.to_string(), digests);
        labels.insert(SOCI_LAYER_SIZE.to_string(), layer.size.to_string());
        labels.insert(SOCI_IMAGE_LAYERS_SIZE.to_string(), sizes);
        if let Some(d) = &self.soci_index_digest {
            labels.insert(SOCI_INDEX_DIGEST.to_string(), d.clone());
        }
        labels
    }
}

/// Comma-join `items` in order, stopping before the first one that would
/// make `key` = the list too long for containerd.
fn join_fitting(key: &str, items: impl Iterator<Item = String>) -> String {
    let mut out = String::new();
    for item in items {
        let extra = if out.is_empty() {
            item.len()
        } else {
            item.len() + 1
        };
        if key.len() + out.len() + extra > MAX_LABEL_SIZE {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&item);
    }
    out
}

/// The GC labels of an image manifest: its config and its layers (which
/// need not be in the content store: a reference to missing content is
/// allowed, and lazily loaded layers never are).
pub fn manifest_gc_labels(config: &str, layers: &[LayerRef]) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(GC_REF_CONFIG.to_string(), config.to_string());
    for (i, l) in layers.iter().enumerate() {
        labels.insert(format!("{GC_REF_LAYER_PREFIX}{i}"), l.digest.clone());
    }
    labels
}

/// The GC labels of an image index: its manifests.
pub fn index_gc_labels<'a>(
    manifests: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, String> {
    manifests
        .into_iter()
        .enumerate()
        .map(|(i, d)| (format!("{GC_REF_MANIFEST_PREFIX}{i}"), d.to_string()))
        .collect()
}

/// The label on an image's config that marks it unpacked on `snapshotter`
/// with top snapshot `chain_id` (and keeps that snapshot chain alive).
pub fn snapshot_gc_label(snapshotter: &str, chain_id: &str) -> (String, String) {
    (
        format!("{GC_REF_SNAPSHOT_PREFIX}{snapshotter}"),
        chain_id.to_string(),
    )
}

/// The label recording which repository of `registry` a blob came from.
pub fn distribution_source_label(registry: &str, repository: &str) -> (String, String) {
    (
        format!("{DISTRIBUTION_SOURCE_PREFIX}{registry}"),
        repository.to_string(),
    )
}

/// `t` as RFC 3339 in UTC with nanoseconds (`2006-01-02T15:04:05.999999999Z`),
/// the format containerd parses [`GC_EXPIRE`] with.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days end each 4/100/400-year
    // cycle; eras are 400 years (146097 days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn image(n: usize) -> ImageLabels {
        ImageLabels {
            image_ref: "127.0.0.1:5000/app:soci".into(),
            manifest_digest: digest(0xaa),
            layers: (0..n)
                .map(|i| LayerRef {
                    digest: digest(i as u8),
                    size: 1000 + i as i64,
                })
                .collect(),
            soci_index_digest: None,
        }
    }

    #[test]
    fn layer_labels_name_image_manifest_and_layer() {
        let img = image(3);
        let l = img.layer_labels(1, "sha256:chain");
        assert_eq!(l[SNAPSHOT_REF], "sha256:chain");
        assert_eq!(l[CRI_IMAGE_REF], "127.0.0.1:5000/app:soci");
        assert_eq!(l[CRI_MANIFEST_DIGEST], digest(0xaa));
        assert_eq!(l[CRI_LAYER_DIGEST], digest(1));
        assert_eq!(l[CRI_IMAGE_LAYERS], format!("{},{}", digest(1), digest(2)));
        assert_eq!(l[SOCI_LAYER_SIZE], "1001");
        assert_eq!(l[SOCI_IMAGE_LAYERS_SIZE], "1001,1002");
        assert!(!l.contains_key(SOCI_INDEX_DIGEST));
        // Every label but the target is one containerd passes on to the
        // snapshotter (it forwards only `containerd.io/snapshot/...`).
        for k in l.keys().filter(|k| *k != SNAPSHOT_REF) {
            assert!(k.starts_with("containerd.io/snapshot/"), "{k}");
        }
    }

    #[test]
    fn layer_labels_top_layer_and_index_digest() {
        let mut img = image(2);
        img.soci_index_digest = Some(digest(0x55));
        let l = img.layer_labels(1, "c");
        assert_eq!(l[CRI_IMAGE_LAYERS], digest(1));
        assert_eq!(l[SOCI_IMAGE_LAYERS_SIZE], "1001");
        assert_eq!(l[SOCI_INDEX_DIGEST], digest(0x55));
        let l0 = img.layer_labels(0, "c0");
        assert_eq!(l0[SOCI_INDEX_DIGEST], digest(0x55));
        assert_eq!(l0[CRI_IMAGE_LAYERS], format!("{},{}", digest(0), digest(1)));
    }

    #[test]
    fn long_layer_lists_are_cut_to_fit_and_sizes_follow() {
        // 100 layers of 71-character digests cannot all fit in 4096 bytes.
        let img = image(100);
        let l = img.layer_labels(0, "c");
        let digests = &l[CRI_IMAGE_LAYERS];
        assert!(fits(CRI_IMAGE_LAYERS, digests));
        let n = digests.split(',').count();
        assert!(n > 10 && n < 100, "{n}");
        assert_eq!(digests.split(',').next().unwrap(), digest(0));
        // One more would not fit.
        let longer = format!("{digests},{}", digest(n as u8));
        assert!(!fits(CRI_IMAGE_LAYERS, &longer));
        let sizes = &l[SOCI_IMAGE_LAYERS_SIZE];
        assert_eq!(sizes.split(',').count(), n);
        for (k, v) in &l {
            assert!(fits(k, v));
        }
    }

    #[test]
    fn gc_labels() {
        let layers = image(2).layers;
        let m = manifest_gc_labels("sha256:cfg", &layers);
        assert_eq!(m[GC_REF_CONFIG], "sha256:cfg");
        assert_eq!(m["containerd.io/gc.ref.content.l.0"], digest(0));
        assert_eq!(m["containerd.io/gc.ref.content.l.1"], digest(1));
        assert_eq!(m.len(), 3);
        let i = index_gc_labels(["sha256:a", "sha256:b"]);
        assert_eq!(i["containerd.io/gc.ref.content.m.0"], "sha256:a");
        assert_eq!(i["containerd.io/gc.ref.content.m.1"], "sha256:b");
        assert_eq!(
            snapshot_gc_label("soci", "sha256:top"),
            (
                "containerd.io/gc.ref.snapshot.soci".to_string(),
                "sha256:top".to_string()
            )
        );
        assert_eq!(
            distribution_source_label("127.0.0.1:5000", "app").0,
            "containerd.io/distribution.source.127.0.0.1:5000"
        );
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        // 2024-02-29T12:34:56.5Z (a leap day).
        let t = UNIX_EPOCH + Duration::new(1_709_210_096, 500_000_000);
        assert_eq!(rfc3339_utc(t), "2024-02-29T12:34:56.500000000Z");
        // 2000-03-01 (after a 400-year leap day).
        let t = UNIX_EPOCH + Duration::from_secs(951_868_800);
        assert_eq!(rfc3339_utc(t), "2000-03-01T00:00:00.000000000Z");
        // 2100-12-31T23:59:59Z.
        let t = UNIX_EPOCH + Duration::from_secs(4_133_980_799);
        assert_eq!(rfc3339_utc(t), "2100-12-31T23:59:59.000000000Z");
    }
}
