//! The local SOCI store and artifacts database as the commands see them, the
//! images they read, and upstream's table and time formats.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use soci_artifacts::{ArtifactsDb, SociStore};
use soci_content::registry::{
    BlockingRuntime, ImageLocation, RegistryClient, RegistryOptions, RemoteImage,
};
use soci_content::{BlobSource, open_layout};
use soci_format::json::{self, Descriptor, Index};
use soci_indexer::standalone::LayoutSource;

use crate::cli::{ContentStoreKind, GlobalArgs};

/// The store and database under `--root`.
pub(crate) struct Local {
    pub store: SociStore,
    pub db: ArtifactsDb,
}

/// Open (creating if needed) the store and database under `--root`. Only the
/// `soci` content store is supported by these commands.
pub(crate) fn open_local(global: &GlobalArgs) -> anyhow::Result<Local> {
    if global.content_store != ContentStoreKind::Soci {
        bail!(
            "this command works on the soci content store only (an OCI layout under {}/content); \
             add --content-store soci",
            global.root.display()
        );
    }
    create_root(&global.root)?;
    let store =
        SociStore::open(&soci_artifacts::content_store_path(&global.root)).with_context(|| {
            format!(
                "cannot open the soci content store under {}",
                global.root.display()
            )
        })?;
    let db = ArtifactsDb::open(&soci_artifacts::artifacts_db_path(&global.root))?;
    Ok(Local { store, db })
}

fn create_root(root: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if root.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("cannot create the root directory {}", root.display()))
}

/// Parse an image argument (`oci:`, `oci-archive:`, `docker://` or a plain reference).
pub(crate) fn parse_location(image: &str) -> anyhow::Result<ImageLocation> {
    image.parse::<ImageLocation>().with_context(|| {
        format!(
            "cannot use image {image:?}: give oci:DIR[:TAG], oci-archive:FILE[:TAG], \
             docker://REGISTRY/REPO[:TAG|@DIGEST] or REGISTRY/REPO[:TAG]"
        )
    })
}

/// Run `f` on the image at `loc`: its blobs and its root descriptor (an image
/// manifest or an image index).
pub(crate) fn with_image<T>(
    loc: &ImageLocation,
    f: impl FnOnce(&dyn BlobSource, &Descriptor) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match loc {
        ImageLocation::Registry(r) => {
            let rt = Arc::new(BlockingRuntime::new()?);
            let client = RegistryClient::new(RegistryOptions::default())?;
            let img = RemoteImage::open(client, r.clone().with_default_tag(), rt)
                .with_context(|| format!("cannot read image {r}"))?;
            let root = img.root().clone();
            f(&img, &root)
        }
        ImageLocation::OciDir { path, tag } | ImageLocation::OciArchive { path, tag } => {
            let layout = open_layout(path)
                .with_context(|| format!("cannot read the OCI layout {}", path.display()))?;
            match tag {
                Some(t) => {
                    let bytes = layout.index_json()?;
                    let index = Index::from_json(&bytes).with_context(|| {
                        format!("{}: index.json does not parse", path.display())
                    })?;
                    let found = index.manifests().iter().find(|d| {
                        d.annotations
                            .get(json::ANNOTATION_OCI_REF_NAME)
                            .is_some_and(|n| n == t)
                    });
                    let Some(root) = found.cloned() else {
                        let names: Vec<String> = index
                            .manifests()
                            .iter()
                            .filter_map(|d| {
                                d.annotations.get(json::ANNOTATION_OCI_REF_NAME).cloned()
                            })
                            .collect();
                        bail!(
                            "no image tagged {t:?} in {} (its tags: {})",
                            loc,
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        );
                    };
                    f(layout.as_ref(), &root)
                }
                None => {
                    let source = LayoutSource::new(layout.as_ref())
                        .with_context(|| format!("cannot find the image in {loc}"))?;
                    let root = source.root().clone();
                    f(&source, &root)
                }
            }
        }
    }
}

/// Digests of the image manifests of an image: the root itself, or the
/// manifests listed by an image index (one level, as image indexes are).
pub(crate) fn image_manifests(
    source: &dyn BlobSource,
    root: &Descriptor,
) -> anyhow::Result<Vec<Descriptor>> {
    if json::is_manifest_type(&root.media_type) {
        return Ok(vec![root.clone()]);
    }
    let d = root.parsed_digest()?;
    let bytes = source.read_blob(&d, 8 << 20, "image index")?;
    let index =
        Index::from_json(&bytes).with_context(|| format!("image index {d} does not parse"))?;
    Ok(index
        .manifests()
        .iter()
        .filter(|m| json::is_manifest_type(&m.media_type))
        .cloned()
        .collect())
}

/// `soci rebuild-db`.
pub(crate) fn rebuild_db(global: &GlobalArgs) -> anyhow::Result<()> {
    let local = open_local(global)?;
    let report = soci_artifacts::rebuild(&local.store, &local.db)?;
    eprintln!(
        "artifacts database rebuilt: {} entr{} removed, {} added",
        report.removed.len(),
        if report.removed.len() == 1 {
            "y"
        } else {
            "ies"
        },
        report.added.len()
    );
    Ok(())
}

/// Go's `text/tabwriter` with minwidth 8, tabwidth 8, padding 4, pad char ' '
/// and no flags, for rows whose cells are all tab-terminated (each given
/// cell is one terminated cell; nothing follows the last tab).
pub(crate) fn tabwrite(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![8usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count() + 4);
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            out.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count()));
        }
        out.push('\n');
    }
    out
}

/// Go's `time.Duration.String()` of whole seconds.
pub(crate) fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// `<duration> ago`, or `n/a` for an unknown time (upstream's CREATED column).
pub(crate) fn ago(created_at: i64) -> String {
    if created_at <= 0 {
        return "n/a".into();
    }
    let now = soci_artifacts::unix_now();
    format!(
        "{} ago",
        go_duration(now.saturating_sub(created_at).max(0) as u64)
    )
}

/// RFC 3339 in UTC (`2006-01-02T15:04:05Z`), as Go marshals a time.
pub(crate) fn rfc3339(created_at: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(created_at.max(0) as u64);
    soci_containerd::labels::rfc3339_utc(t).replace(".000000000Z", "Z")
}

/// Parse a `sha256:<hex>` argument.
pub(crate) fn parse_digest(s: &str) -> anyhow::Result<soci_format::Digest> {
    s.parse().map_err(|e| {
        anyhow::anyhow!("{s:?} is not a digest (expected sha256:<64 hex digits>): {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_like_go() {
        let rows = vec![
            vec!["DIGEST".to_string(), "SIZE".into()],
            vec!["sha256:abc".to_string(), "12".into()],
        ];
        assert_eq!(
            tabwrite(&rows),
            "DIGEST        SIZE    \nsha256:abc    12      \n"
        );
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(59), "59s");
        assert_eq!(go_duration(61), "1m1s");
        assert_eq!(go_duration(3600), "1h0m0s");
        assert_eq!(ago(0), "n/a");
        assert_eq!(rfc3339(86_400 + 61), "1970-01-02T00:01:01Z");
    }
}
