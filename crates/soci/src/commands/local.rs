//! The local SOCI store and artifacts database as the commands see them, the
//! images they read, and upstream's table and time formats.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use soci_artifacts::{ArtifactsDb, SociStore};
use soci_containerd::Containerd;
use soci_containerd::image::image_name;
use soci_content::registry::{
    BlockingRuntime, ImageLocation, RegistryClient, RegistryOptions, RemoteImage,
};
use soci_content::{BlobSource, ContentError, open_layout};
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index};
use soci_indexer::standalone::LayoutSource;

use crate::cli::{ContentStoreKind, GlobalArgs};

/// Where SOCI artifacts are kept: the soci content store or containerd's.
pub(crate) trait ArtifactStore: BlobSource {
    /// Store a blob (verified against `d`), with containerd GC `labels`
    /// (ignored by the soci store).
    fn put(
        &self,
        d: &Digest,
        media_type: &str,
        bytes: &[u8],
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<()>;
    /// Delete a blob after its record was removed (a no-op for the soci
    /// store, as upstream).
    fn forget(&self, d: &Digest) -> anyhow::Result<()>;
}

impl ArtifactStore for SociStore {
    fn put(
        &self,
        d: &Digest,
        _media_type: &str,
        bytes: &[u8],
        _labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        Ok(self.put_verified(d, bytes)?)
    }
    fn forget(&self, _d: &Digest) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A connection to containerd usable from blocking code.
#[derive(Clone)]
pub(crate) struct Ctrd {
    pub client: Containerd,
    pub rt: Arc<tokio::runtime::Runtime>,
}

/// containerd reads are done in pieces of this size.
const CTRD_READ_CHUNK: u64 = 4 << 20;

impl Ctrd {
    /// Connect to `--address` in `--namespace`.
    pub fn connect(global: &GlobalArgs) -> anyhow::Result<Ctrd> {
        let (rt, client) = super::convert_containerd::connect(global)?;
        Ok(Ctrd {
            client,
            rt: Arc::new(rt),
        })
    }

    /// The same connection with every call inside `lease`.
    pub fn leased(&self, lease: &soci_containerd::Lease) -> anyhow::Result<Ctrd> {
        Ok(Ctrd {
            client: self.client.with_lease(lease)?,
            rt: self.rt.clone(),
        })
    }

    /// The descriptor an image record points at.
    pub fn image_target(&self, name: &str) -> anyhow::Result<Descriptor> {
        let img = self.rt.block_on(self.client.get_image(name))?;
        let Some(t) = img.and_then(|i| i.target) else {
            bail!(
                "image {name} is not in containerd (namespace {}); pull it first (e.g. `ctr -n {} images pull {name}`) or give docker://{name}",
                self.client.namespace(),
                self.client.namespace()
            );
        };
        Ok(Descriptor::new(t.media_type, t.digest, t.size))
    }

    /// Add `labels` to the image record `name`, keeping its other labels.
    pub fn label_image(&self, name: &str, labels: &BTreeMap<String, String>) -> anyhow::Result<()> {
        let Some(img) = self.rt.block_on(self.client.get_image(name))? else {
            bail!("image {name} vanished from containerd");
        };
        let target = img.target.clone().context("image without target")?;
        let mut all: BTreeMap<String, String> = img.labels.into_iter().collect();
        all.extend(labels.clone());
        let t = Descriptor::new(target.media_type, target.digest, target.size);
        self.rt.block_on(self.client.put_image(name, &t, &all))?;
        Ok(())
    }
}

struct CtrdReader<'a> {
    ctrd: &'a Ctrd,
    digest: String,
    offset: u64,
    size: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for CtrdReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.offset >= self.size {
                return Ok(0);
            }
            let n = CTRD_READ_CHUNK.min(self.size - self.offset);
            self.buf = self
                .ctrd
                .rt
                .block_on(self.ctrd.client.read_content(&self.digest, self.offset, n))
                .map_err(std::io::Error::other)?;
            if self.buf.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("containerd ended blob {} at {}", self.digest, self.offset),
                ));
            }
            self.offset += self.buf.len() as u64;
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl BlobSource for Ctrd {
    fn describe(&self) -> String {
        format!(
            "containerd content store ({}, namespace {})",
            self.client.address(),
            self.client.namespace()
        )
    }
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        let info = self
            .rt
            .block_on(self.client.content_info(&digest.to_string()))
            .ok()??;
        u64::try_from(info.size).ok()
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ContentError> {
        let size = self
            .blob_size(digest)
            .ok_or_else(|| ContentError::NotFound {
                digest: digest.clone(),
                store: self.describe(),
            })?;
        Ok(Box::new(CtrdReader {
            ctrd: self,
            digest: digest.to_string(),
            offset: 0,
            size,
            buf: Vec::new(),
            pos: 0,
        }))
    }
}

impl ArtifactStore for Ctrd {
    fn put(
        &self,
        d: &Digest,
        media_type: &str,
        bytes: &[u8],
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let desc = Descriptor::new(media_type, d, bytes.len() as i64);
        self.rt
            .block_on(self.client.write_content_bytes(&desc, labels, bytes))?;
        Ok(())
    }
    fn forget(&self, d: &Digest) -> anyhow::Result<()> {
        self.rt
            .block_on(self.client.delete_content(&d.to_string()))?;
        Ok(())
    }
}

/// `rebuild-db` on containerd's content store (the `--namespace`), through
/// its API: works with any containerd root, unlike a scan of its directory.
impl soci_artifacts::RebuildSource for Ctrd {
    fn blobs(&self) -> Result<Vec<(Digest, u64)>, soci_artifacts::RebuildError> {
        let listed = self
            .rt
            .block_on(self.client.list_content())
            .map_err(|e| ctrd_rebuild_error(e.to_string()))?;
        Ok(listed
            .into_iter()
            .filter_map(|(d, size)| Some((d.parse().ok()?, u64::try_from(size).ok()?)))
            .collect())
    }
    fn read(&self, d: &Digest, max: u64) -> Result<Vec<u8>, soci_artifacts::RebuildError> {
        use std::io::Read as _;
        let mut r = self
            .open_blob(d)
            .map_err(|e| ctrd_rebuild_error(e.to_string()))?;
        let mut out = Vec::new();
        r.by_ref()
            .take(max + 1)
            .read_to_end(&mut out)
            .map_err(|e| ctrd_rebuild_error(format!("read {d}: {e}")))?;
        if out.len() as u64 > max {
            return Err(ctrd_rebuild_error(format!(
                "{d} is larger than {max} bytes"
            )));
        }
        Ok(out)
    }
}

fn ctrd_rebuild_error(reason: String) -> soci_artifacts::RebuildError {
    soci_artifacts::RebuildError::Source {
        store: "containerd content store".into(),
        reason,
    }
}

/// The artifact store and database under `--root`.
pub(crate) struct Local {
    pub store: Box<dyn ArtifactStore>,
    pub db: ArtifactsDb,
    /// The containerd connection when `--content-store containerd`.
    pub ctrd: Option<Ctrd>,
}

/// Open (creating if needed) the artifact store selected by `--content-store`
/// and the artifacts database under `--root`.
pub(crate) fn open_local(global: &GlobalArgs) -> anyhow::Result<Local> {
    create_root(&global.root)?;
    let db = ArtifactsDb::open(&soci_artifacts::artifacts_db_path(&global.root))?;
    match global.content_store {
        ContentStoreKind::Soci => {
            let store = SociStore::open(&soci_artifacts::content_store_path(&global.root))
                .with_context(|| {
                    format!(
                        "cannot open the soci content store under {}",
                        global.root.display()
                    )
                })?;
            Ok(Local {
                store: Box::new(store),
                db,
                ctrd: None,
            })
        }
        ContentStoreKind::Containerd => {
            let ctrd = Ctrd::connect(global)?;
            Ok(Local {
                store: Box::new(ctrd.clone()),
                db,
                ctrd: Some(ctrd),
            })
        }
    }
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

/// An image argument: a transport location, or (a plain reference) an image
/// in containerd's image store, as upstream reads it.
pub(crate) enum ImageArg {
    /// `oci:`, `oci-archive:` or `docker://`.
    Location(ImageLocation),
    /// A plain reference: the containerd image of that name.
    Containerd(String),
}

/// Parse an image argument (`oci:`, `oci-archive:`, `docker://` or a plain
/// reference naming a containerd image).
pub(crate) fn parse_image(image: &str) -> anyhow::Result<ImageArg> {
    let loc = image.parse::<ImageLocation>().with_context(|| {
        format!(
            "cannot use image {image:?}: give oci:DIR[:TAG], oci-archive:FILE[:TAG], \
             docker://REGISTRY/REPO[:TAG|@DIGEST] or the name of an image in containerd"
        )
    })?;
    match loc {
        ImageLocation::Registry(r) if !image.starts_with("docker://") => {
            Ok(ImageArg::Containerd(image_name(&r)))
        }
        other => Ok(ImageArg::Location(other)),
    }
}

/// Run `f` on the image: its blobs and its root descriptor (an image manifest
/// or an image index). Containerd images are read through `ctrd` (or a new
/// connection when it is `None`).
pub(crate) fn with_image<T>(
    global: &GlobalArgs,
    ctrd: Option<&Ctrd>,
    image: &ImageArg,
    registry: RegistryOptions,
    f: impl FnOnce(&dyn BlobSource, &Descriptor) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match image {
        ImageArg::Location(loc) => with_location(loc, registry, f),
        ImageArg::Containerd(name) => {
            let own;
            let ctrd = match ctrd {
                Some(c) => c,
                None => {
                    own = Ctrd::connect(global)?;
                    &own
                }
            };
            let root = ctrd.image_target(name)?;
            f(ctrd, &root)
        }
    }
}

/// Run `f` on the image at a transport location.
pub(crate) fn with_location<T>(
    loc: &ImageLocation,
    registry: RegistryOptions,
    f: impl FnOnce(&dyn BlobSource, &Descriptor) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match loc {
        ImageLocation::Registry(r) => {
            let rt = Arc::new(BlockingRuntime::new()?);
            let client = RegistryClient::new(registry)?;
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
    let report = match &local.ctrd {
        Some(ctrd) => soci_artifacts::rebuild(ctrd, &local.db)?,
        None => {
            let store = SociStore::open(&soci_artifacts::content_store_path(&global.root))?;
            soci_artifacts::rebuild(&store, &local.db)?
        }
    };
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
