//! `soci convert`.
//!
//! SOURCE and DEST are skopeo-style locations: `docker://REF` (a registry),
//! `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, or a plain image name in
//! containerd's content store. With `--standalone` they are layout paths.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use soci_artifacts::{ArtifactEntry, ArtifactType, ArtifactsDb, SociStore};
use soci_content::registry::{
    BlockingRuntime, HostsDirs, HttpDebug, RegistryClient, RegistryOptions, RemoteImage, TlsConfig,
};
use soci_content::{BlobSource, ContentError, ImageLocation, Layout, OutputFormat, open_layout};
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Platform, SociIndex};
use soci_indexer::remote::{PushStats, RegistryDestination, convert_to_registry};
use soci_indexer::standalone::LayoutSource;
use soci_indexer::{BuildConfig, ConvertOutcome, Event, Events, PlatformSelection};

use crate::cli::{BuildArgs, ConvertArgs, GlobalArgs, OutputFormatArg, RegistryArgs};
use crate::progress::{Bar, Progress, human_bytes};

/// Prints build progress the way upstream does (stdout, one line per layer).
pub(crate) struct PrintEvents {
    progress: Progress,
    quiet: bool,
}

impl PrintEvents {
    pub(crate) fn new(progress: Progress, quiet: bool) -> Self {
        PrintEvents { progress, quiet }
    }
    fn line(&self, s: String) {
        if !self.quiet {
            self.progress.println(s);
        }
    }
}

impl Events for PrintEvents {
    fn event(&self, e: &Event<'_>) {
        match e {
            Event::LayerStarted { .. } => {}
            Event::ZtocBuilt {
                layer,
                ztoc,
                reused,
            } => {
                if *reused {
                    self.line(format!("layer {layer} -> ztoc {ztoc} (already exists)"));
                } else {
                    self.line(format!("layer {layer} -> ztoc {ztoc}"));
                }
            }
            Event::SkippedSmall {
                layer,
                media_type,
                size,
                min_layer_size,
            } => self.line(format!(
                "ztoc skipped - layer {layer} ({media_type}) size {size} is less than min-layer-size {min_layer_size}"
            )),
            Event::SkippedUnsupported {
                layer,
                media_type,
                compression,
            } => self.line(format!(
                "ztoc skipped - layer {layer} ({media_type}) is compressed in an unsupported format. expect: [tar, gzip, unknown] but got {compression:?}"
            )),
        }
    }
}

pub(crate) fn build_config(args: &BuildArgs) -> anyhow::Result<BuildConfig> {
    Ok(BuildConfig {
        span_size: args.span_size,
        min_layer_size: args.min_layer_size,
        xattr_optimization: args.optimizations.iter().any(|o| o == "xattr"),
        prefetch_paths: prefetch_paths(args)?,
        ..BuildConfig::default()
    })
}

/// `--prefetch-file` paths followed by those of `--prefetch-files-json`.
fn prefetch_paths(args: &BuildArgs) -> anyhow::Result<Vec<String>> {
    let mut paths = args.prefetch_files.clone();
    if let Some(p) = &args.prefetch_files_json {
        let bytes = std::fs::read(p)
            .with_context(|| format!("cannot read --prefetch-files-json {}", p.display()))?;
        let list: Vec<String> = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "--prefetch-files-json {}: expected a JSON array of paths, e.g. [\"/usr/bin/app\"]",
                p.display()
            )
        })?;
        paths.extend(list);
    }
    Ok(paths)
}

/// Say which prefetch paths matched no file (they are matched exactly
/// against the tar names of the indexed layers, like upstream).
pub(crate) fn warn_prefetch_missing<'a>(missing: impl IntoIterator<Item = (&'a str, String)>) {
    for (path, platform) in missing {
        eprintln!(
            "warning: prefetch file {path} not found in any indexed layer of {platform} (paths are matched exactly against the layer's tar names)"
        );
    }
}

pub(crate) fn platform_selection(args: &BuildArgs) -> anyhow::Result<PlatformSelection> {
    if args.all_platforms {
        return Ok(PlatformSelection::All);
    }
    if args.platforms.is_empty() {
        return Ok(PlatformSelection::Default);
    }
    let ps = args
        .platforms
        .iter()
        .map(|p| Platform::parse(p).with_context(|| format!("could not parse platform {p}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(PlatformSelection::Only(ps))
}

/// A source or destination of `convert`.
pub(crate) enum Endpoint {
    /// `docker://`, `oci:` or `oci-archive:`.
    Location(ImageLocation),
    /// A plain image name: containerd's image store.
    Containerd(String),
}

/// Parse SOURCE or DEST: a plain reference (no transport) means containerd.
pub(crate) fn endpoint(input: &str, what: &str) -> anyhow::Result<Endpoint> {
    let loc: ImageLocation = input.parse().with_context(|| {
        format!(
            "{what} {input:?} is not an image location; use docker://REGISTRY/REPO:TAG, \
             oci:DIR[:TAG], oci-archive:FILE[:TAG] or a containerd image name"
        )
    })?;
    Ok(match loc {
        ImageLocation::Registry(_) if !input.starts_with("docker://") => {
            Endpoint::Containerd(input.to_string())
        }
        other => Endpoint::Location(other),
    })
}

/// A registry client and the runtime its blocking adapters wait on.
pub(crate) struct Registry {
    pub client: RegistryClient,
    pub rt: Arc<BlockingRuntime>,
}

/// The registry client options the flags ask for.
pub(crate) fn registry_options(args: &RegistryArgs) -> anyhow::Result<RegistryOptions> {
    let credentials = args
        .user
        .as_deref()
        .map(super::image::credentials)
        .transpose()?;
    let t = &args.tls;
    Ok(RegistryOptions {
        plain_http: args.plain_http,
        credentials,
        tls: TlsConfig {
            ca_files: t.ca.clone(),
            client: t.cert.clone().zip(t.key.clone()),
            skip_verify: args.skip_verify,
        },
        hosts_dirs: HostsDirs(t.hosts_dirs.clone()),
        http_debug: HttpDebug {
            dump: t.http_dump,
            trace: t.http_trace,
        },
        ..RegistryOptions::default()
    })
}

pub(crate) fn registry(args: &RegistryArgs) -> anyhow::Result<Registry> {
    let client = RegistryClient::new(registry_options(args)?)?;
    Ok(Registry {
        client,
        rt: Arc::new(BlockingRuntime::new()?),
    })
}

/// An opened image location, readable as a layout.
pub(crate) enum Opened {
    Remote(Box<RemoteImage>),
    Layout(Box<dyn Layout>),
}

impl Opened {
    pub(crate) fn layout(&self) -> &dyn Layout {
        match self {
            Opened::Remote(r) => r.as_ref(),
            Opened::Layout(l) => l.as_ref(),
        }
    }
}

/// Open `loc` for reading (a registry image is resolved, nothing else is fetched).
pub(crate) fn open_location(
    loc: &ImageLocation,
    reg: Option<&Registry>,
) -> anyhow::Result<(Opened, Option<String>)> {
    Ok(match loc {
        ImageLocation::Registry(r) => {
            let reg = reg.context("a registry client is needed")?;
            let img = RemoteImage::open(reg.client.clone(), r.clone(), reg.rt.clone())
                .with_context(|| format!("cannot read image {loc}"))?;
            (Opened::Remote(Box::new(img)), None)
        }
        ImageLocation::OciDir { path, tag } | ImageLocation::OciArchive { path, tag } => {
            let l = open_layout(path).with_context(|| format!("cannot read image {loc}"))?;
            (Opened::Layout(l), tag.clone())
        }
    })
}

/// Draws a bar for every layer while it is read.
pub(crate) struct ProgressSource<'a> {
    pub(crate) inner: &'a dyn BlobSource,
    pub(crate) progress: &'a Progress,
}

struct BarReader<'a> {
    inner: Box<dyn Read + Send + 'a>,
    bar: Bar,
}

impl Read for BarReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

impl BlobSource for ProgressSource<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn blob_size(&self, d: &Digest) -> Option<u64> {
        self.inner.blob_size(d)
    }
    fn open_blob(&self, d: &Digest) -> Result<Box<dyn Read + Send + '_>, ContentError> {
        let r = self.inner.open_blob(d)?;
        match self.inner.blob_size(d) {
            Some(n) if self.progress.enabled() && n >= 1 << 20 => Ok(Box::new(BarReader {
                inner: r,
                bar: self.progress.bar(format!("layer {d}"), n),
            })),
            _ => Ok(r),
        }
    }
    fn local_path(&self, d: &Digest) -> Option<std::path::PathBuf> {
        self.inner.local_path(d)
    }
}

pub(crate) fn run(global: &GlobalArgs, args: ConvertArgs) -> anyhow::Result<()> {
    if args.standalone {
        return run_standalone(&args);
    }
    let src = endpoint(&args.source, "source")?;
    let dst = endpoint(&args.dest, "destination")?;
    match (&src, &dst) {
        (Endpoint::Location(s), Endpoint::Location(d)) => run_locations(global, &args, s, d),
        (Endpoint::Containerd(_), Endpoint::Containerd(_)) => {
            super::convert_containerd::run(global, &args)
        }
        _ => bail!(
            "{} -> {}: a plain image name is an image in containerd and a docker://, oci: or \
             oci-archive: location is not; convert within containerd (two plain names) or between \
             locations (e.g. `soci convert docker://{} docker://{}`)",
            args.source,
            args.dest,
            args.source.trim_start_matches("docker://"),
            args.dest.trim_start_matches("docker://")
        ),
    }
}

fn run_standalone(args: &ConvertArgs) -> anyhow::Result<()> {
    let format = match args.format {
        OutputFormatArg::OciArchive => OutputFormat::OciArchive,
        OutputFormatArg::OciDir => OutputFormat::OciDir,
    };
    let cfg = build_config(&args.build)?;
    let selection = platform_selection(&args.build)?;
    let progress = Progress::new(args.quiet);
    let layout = open_layout(Path::new(&args.source))
        .with_context(|| format!("cannot read input {}", args.source))?;
    let source = LayoutSource::new(layout.as_ref())
        .with_context(|| format!("cannot find the image in {}", args.source))?;
    let root = source.root().clone();
    let shown = ProgressSource {
        inner: &source,
        progress: &progress,
    };
    let events = PrintEvents::new(progress.clone(), args.quiet);
    let outcome = soci_indexer::convert(&shown, &root, &cfg, &selection, &events)?;
    soci_indexer::write_layout(
        &source,
        &outcome.blobs,
        &outcome.index_descriptor,
        Path::new(&args.dest),
        format,
    )
    .with_context(|| format!("cannot write {}", args.dest))?;
    finish(&progress, args, &outcome, None);
    Ok(())
}

fn run_locations(
    global: &GlobalArgs,
    args: &ConvertArgs,
    src: &ImageLocation,
    dst: &ImageLocation,
) -> anyhow::Result<()> {
    if let ImageLocation::Registry(r) = dst {
        r.require_tag("destination")?;
    }
    let uses_registry =
        matches!(src, ImageLocation::Registry(_)) || matches!(dst, ImageLocation::Registry(_));
    let reg = if uses_registry {
        Some(registry(&args.registry)?)
    } else {
        None
    };
    let cfg = build_config(&args.build)?;
    let selection = platform_selection(&args.build)?;
    let progress = Progress::new(args.quiet);
    let events = PrintEvents::new(progress.clone(), args.quiet);

    let (opened, tag) = open_location(src, reg.as_ref())?;
    let source = LayoutSource::with_ref_name(opened.layout(), tag.as_deref())
        .with_context(|| format!("cannot find the image in {src}"))?;
    let root = source.root().clone();
    let shown = ProgressSource {
        inner: &source,
        progress: &progress,
    };

    let (outcome, stats) = match dst {
        ImageLocation::Registry(dref) => {
            let reg = reg.as_ref().context("a registry client is needed")?;
            let mount_from = match src {
                ImageLocation::Registry(s) if s.registry() == dref.registry() => {
                    Some(s.repository().clone())
                }
                _ => None,
            };
            let dest = RegistryDestination::new(
                reg.client.clone(),
                reg.rt.clone(),
                dref.clone(),
                mount_from,
            )?;
            let outcome = convert_to_registry(&shown, &root, &dest, &cfg, &selection, &events)
                .with_context(|| format!("cannot convert {src} to {dst}"))?;
            (outcome, Some(dest.stats()))
        }
        ImageLocation::OciDir { path, tag } | ImageLocation::OciArchive { path, tag } => {
            let format = if matches!(dst, ImageLocation::OciDir { .. }) {
                OutputFormat::OciDir
            } else {
                OutputFormat::OciArchive
            };
            let outcome = soci_indexer::convert(&shown, &root, &cfg, &selection, &events)
                .with_context(|| format!("cannot convert {src}"))?;
            soci_indexer::write_layout_named(
                &source,
                &outcome.blobs,
                &outcome.index_descriptor,
                path,
                format,
                tag.as_deref(),
            )
            .with_context(|| format!("cannot write {dst}"))?;
            (outcome, None)
        }
    };
    if let Err(e) = record(&global.root, &outcome, &root.digest) {
        eprintln!(
            "soci: warning: the zTOCs were not recorded in {} ({e:#}); `soci ztoc list` will not show them",
            global.root.display()
        );
    }
    finish(&progress, args, &outcome, stats);
    Ok(())
}

pub(crate) fn finish(
    progress: &Progress,
    args: &ConvertArgs,
    outcome: &ConvertOutcome,
    stats: Option<PushStats>,
) {
    warn_prefetch_missing(
        outcome
            .prefetch_missing
            .iter()
            .map(|(p, path)| (path.as_str(), p.format())),
    );
    if args.quiet {
        println!("{}", outcome.index_descriptor.digest);
        return;
    }
    let indexes: Vec<String> = outcome
        .soci_indexes
        .iter()
        .map(|d| d.digest.clone())
        .collect();
    let mut line = format!(
        "converted {} -> {}: image index {}, {} soci index(es) [{}], {} layer(s) indexed, {} skipped",
        args.source,
        args.dest,
        outcome.index_descriptor.digest,
        indexes.len(),
        indexes.join(", "),
        outcome.layers_indexed,
        outcome.layers_skipped,
    );
    if outcome.prefetch_artifacts > 0 {
        line.push_str(&format!(
            ", {} prefetch artifact(s)",
            outcome.prefetch_artifacts
        ));
    }
    if let Some(s) = stats {
        line.push_str(&format!(
            "; pushed {} blob(s) ({}), {} already present, {} mounted, {} manifest(s)",
            s.uploaded,
            human_bytes(s.uploaded_bytes),
            s.existing,
            s.mounted,
            s.manifests
        ));
    }
    progress.finish_summary(line);
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Store the SOCI indexes and zTOCs of a conversion in the local soci store
/// and the artifacts database under `root`, as upstream's convert does.
/// Returns the number of artifacts recorded.
pub(crate) fn record(
    root: &Path,
    outcome: &ConvertOutcome,
    image_digest: &str,
) -> anyhow::Result<usize> {
    // Like upstream, the root is private to its owner.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(root)
        .with_context(|| format!("cannot create {}", root.display()))?;
    let store = SociStore::open(&soci_artifacts::content_store_path(root))?;
    let db = ArtifactsDb::open(&soci_artifacts::artifacts_db_path(root))?;
    let created_at = now();
    let mut n = 0;
    for idx in &outcome.soci_indexes {
        let d: Digest = idx.digest.parse()?;
        let bytes = outcome
            .blobs
            .get(&d)
            .context("the converted SOCI index is missing")?;
        let index = SociIndex::from_manifest_bytes(&bytes)?;
        for z in &index.blobs {
            let zd: Digest = z.digest.parse()?;
            let zb = outcome
                .blobs
                .get(&zd)
                .with_context(|| format!("zTOC {zd} is missing"))?;
            store.put_verified(&zd, &zb)?;
            let layer = z
                .annotations
                .get(json::ANNOTATION_IMAGE_LAYER_DIGEST)
                .cloned()
                .unwrap_or_default();
            let span_size = z
                .annotations
                .get(json::ANNOTATION_SPAN_SIZE)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            db.put(&ArtifactEntry {
                digest: z.digest.clone(),
                size: zb.len() as u64,
                artifact_type: ArtifactType::Ztoc,
                original_digest: layer.clone(),
                image_digest: String::new(),
                platform: String::new(),
                location: layer,
                media_type: json::SOCI_LAYER_MEDIA_TYPE.to_string(),
                index_artifact_type: String::new(),
                span_size,
                created_at,
                image_index_digest: String::new(),
                image_ref: String::new(),
            })?;
            n += 1;
        }
        store.put_verified(
            &Digest::of(json::EMPTY_CONFIG_BYTES),
            json::EMPTY_CONFIG_BYTES,
        )?;
        store.put_verified(&d, &bytes)?;
        let manifest = idx
            .annotations
            .get(json::ANNOTATION_IMAGE_MANIFEST_DIGEST)
            .cloned()
            .unwrap_or_default();
        db.put(&ArtifactEntry {
            digest: idx.digest.clone(),
            size: bytes.len() as u64,
            artifact_type: ArtifactType::Index,
            original_digest: manifest.clone(),
            image_digest: image_digest.to_string(),
            platform: idx
                .platform
                .as_ref()
                .map(Platform::format)
                .unwrap_or_default(),
            location: manifest,
            media_type: json::MEDIA_TYPE_OCI_MANIFEST.to_string(),
            index_artifact_type: json::SOCI_INDEX_ARTIFACT_TYPE_V2.to_string(),
            span_size: 0,
            created_at,
            image_index_digest: outcome.index_descriptor.digest.clone(),
            image_ref: String::new(),
        })?;
        n += 1;
    }
    Ok(n)
}

/// The SOCI index descriptors (v2 entries) of an image index.
pub(crate) fn soci_index_entries(index: &json::Index) -> Vec<Descriptor> {
    index
        .manifests
        .iter()
        .flatten()
        .filter(|d| {
            d.artifact_type == json::SOCI_INDEX_ARTIFACT_TYPE_V2
                || d.annotations
                    .contains_key(json::ANNOTATION_IMAGE_MANIFEST_DIGEST)
        })
        .cloned()
        .collect()
}
