//! `soci push`: the newest SOCI index manifest v1 of each platform of an image,
//! with its config, zTOCs and prefetch artifacts, to the image's repository.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use soci_artifacts::ArtifactEntry;
use soci_content::registry::{
    Credentials, ImageLocation, ImageReference, RegistryClient, Repository, referrer_descriptor,
};
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index, Platform, SociIndex};

use super::image::parse_timeout;
use super::local::{Local, open_local};
use crate::cli::{ExistingIndex, GlobalArgs, PushArgs};
use crate::progress::{Progress, human_bytes};

/// SOCI indexes and the artifacts they list are small; refuse absurd ones.
const MAX_ARTIFACT_SIZE: u64 = 256 << 20;

/// What to push for one image manifest.
struct ToPush {
    index: ArtifactEntry,
    manifest: Descriptor,
}

/// Counters for the summary.
#[derive(Default)]
struct Totals {
    uploaded: AtomicUsize,
    skipped: AtomicUsize,
    bytes: AtomicU64,
}

fn target(reference: &str) -> anyhow::Result<ImageReference> {
    let loc: ImageLocation = reference.parse().with_context(|| {
        format!("cannot push to {reference:?}: give REGISTRY/REPO:TAG or docker://REGISTRY/REPO[:TAG|@DIGEST]")
    })?;
    match loc {
        ImageLocation::Registry(r) => Ok(r.with_default_tag()),
        other => bail!(
            "cannot push to {other}: soci push needs the image in a registry (REGISTRY/REPO:TAG or docker://...)"
        ),
    }
}

/// The image manifests whose indexes are pushed.
fn select_manifests(
    root: &Descriptor,
    root_bytes: &[u8],
    args: &PushArgs,
) -> anyhow::Result<Vec<(String, Descriptor)>> {
    if json::is_manifest_type(&root.media_type) {
        let label = match args.platforms.first() {
            Some(p) => p.clone(),
            None => Platform::host_default().format(),
        };
        return Ok(vec![(label, root.clone())]);
    }
    let index = Index::from_json(root_bytes)
        .with_context(|| format!("image index {} does not parse", root.digest))?;
    let children: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| json::is_manifest_type(&d.media_type) && d.platform.is_some())
        .collect();
    if args.all_platforms {
        return Ok(children
            .into_iter()
            .map(|d| (d.platform.as_ref().expect("filtered").format(), d.clone()))
            .collect());
    }
    let wanted: Vec<Platform> = if args.platforms.is_empty() {
        vec![Platform::host_default()]
    } else {
        args.platforms
            .iter()
            .map(|p| Platform::parse(p).with_context(|| format!("could not parse platform {p}")))
            .collect::<anyhow::Result<_>>()?
    };
    let mut out = Vec::new();
    for p in json::dedupe_platforms(&wanted) {
        let Some(d) = children
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|cp| p.matches_strict(cp)))
        else {
            let have: Vec<String> = children
                .iter()
                .filter_map(|d| d.platform.as_ref().map(Platform::format))
                .collect();
            bail!(
                "the image has no manifest for platform {} (it has: {}); pick one with --platform",
                p.format(),
                have.join(", ")
            );
        };
        out.push((p.format(), (*d).clone()));
    }
    Ok(out)
}

/// The newest v1 index of each manifest (warning about v2 ones).
fn plan(local: &Local, manifests: Vec<(String, Descriptor)>) -> anyhow::Result<Vec<ToPush>> {
    let mut out = Vec::new();
    for (platform, manifest) in manifests {
        let all = local.db.indexes_for_manifest(&manifest.digest)?;
        let found_v2 = all
            .iter()
            .any(|e| e.index_artifact_type == json::SOCI_INDEX_ARTIFACT_TYPE_V2);
        if found_v2 {
            println!(
                "[WARN] Skippping SOCI index manifest v2. You should push the whole image with higher level tools like finch or nerdctl."
            );
        }
        let Some(index) = all
            .into_iter()
            .filter(|e| e.index_artifact_type == json::SOCI_INDEX_ARTIFACT_TYPE_V1)
            .max_by_key(|e| e.created_at)
        else {
            bail!("could not find any soci index manifest v1 to push for platform {platform}");
        };
        out.push(ToPush { index, manifest });
    }
    Ok(out)
}

pub(crate) fn run(global: &GlobalArgs, args: PushArgs) -> anyhow::Result<()> {
    let local = open_local(global)?;
    let reference = target(&args.reference)?;
    let mut options = super::convert::registry_options(&args.registry)?;
    if let Some(token) = &args.refresh {
        options.credentials = Some(Credentials::IdentityToken(token.clone()));
    }
    let client = RegistryClient::new(options)?;
    let concurrency = match args.max_concurrent_uploads {
        0 => 3,
        n => usize::try_from(n).unwrap_or(3),
    };
    let timeout = global.timeout.as_deref().map(parse_timeout).transpose()?;
    let rt = super::runtime()?;
    let dl = Deadline {
        rt,
        at: timeout.map(|d| (tokio::time::Instant::now() + d, d)),
    };
    let repo = reference.repository().clone();
    let (root, root_bytes) = dl
        .run(async {
            let root = client.resolve(&reference).await?;
            let m = client.get_manifest(&repo, &root.digest).await?;
            Ok::<_, soci_content::ContentError>((root, m.bytes))
        })?
        .with_context(|| format!("cannot read image {reference}"))?;
    let manifests = select_manifests(&root, &root_bytes, &args)?;
    let to_push = plan(&local, manifests)?;
    let progress = Progress::new(args.quiet);
    let totals = Totals::default();
    for p in &to_push {
        let manifest_digest = p.manifest.parsed_digest()?;
        if args.existing_index != ExistingIndex::Allow {
            if !args.quiet {
                println!("checking if a soci index already exists in remote repository...");
            }
            let existing = dl
                .run(client.referrers(
                    &repo,
                    &manifest_digest,
                    Some(json::SOCI_INDEX_ARTIFACT_TYPE_V1),
                ))?
                .with_context(|| "failed to fetch list of referrers")?;
            if !existing.manifests.is_empty() {
                let found = if existing.manifests.len() > 1 {
                    "multiple soci indices found in remote repository".to_string()
                } else {
                    format!(
                        "soci index found in remote repository with digest: {}",
                        existing.manifests[0].digest
                    )
                };
                match args.existing_index {
                    ExistingIndex::Skip => {
                        if !args.quiet {
                            println!(
                                "{found}: skipping pushing artifacts for image manifest: {}",
                                p.manifest.digest
                            );
                        }
                        continue;
                    }
                    _ => println!("[WARN] {found}: pushing index anyway"),
                }
            }
        }
        if args.quiet {
            println!("{}", p.index.digest);
        } else {
            println!("pushing soci index with digest: {}", p.index.digest);
        }
        push_graph(
            &dl,
            &client,
            &repo,
            &local,
            p,
            &manifest_digest,
            concurrency,
            args.quiet,
            &progress,
            &totals,
        )
        .with_context(|| "error pushing graph to remote")?;
    }
    if !args.quiet {
        progress.finish_summary(format!(
            "pushed to {repo}: {} artifact(s) uploaded ({}), {} already present",
            totals.uploaded.load(Ordering::Relaxed),
            human_bytes(totals.bytes.load(Ordering::Relaxed)),
            totals.skipped.load(Ordering::Relaxed),
        ));
    }
    Ok(())
}

fn read_artifact(local: &Local, d: &Descriptor, what: &'static str) -> anyhow::Result<Vec<u8>> {
    let digest = d.parsed_digest()?;
    let limit = u64::try_from(d.size)
        .unwrap_or(0)
        .clamp(1, MAX_ARTIFACT_SIZE);
    let bytes = local
        .store
        .read_blob(&digest, limit, what)
        .with_context(|| {
            format!(
                "{what} {digest} is not in the local store; recreate the index with `soci create`"
            )
        })?;
    if bytes.len() as i64 != d.size {
        bail!(
            "{what} {digest} is {} bytes in the local store, but the index says {}",
            bytes.len(),
            d.size
        );
    }
    Ok(bytes)
}

#[allow(clippy::too_many_arguments)]
fn push_graph(
    dl: &Deadline,
    client: &RegistryClient,
    repo: &Repository,
    local: &Local,
    p: &ToPush,
    manifest_digest: &Digest,
    concurrency: usize,
    quiet: bool,
    progress: &Progress,
    totals: &Totals,
) -> anyhow::Result<()> {
    let index_digest: Digest = p
        .index
        .digest
        .parse()
        .with_context(|| format!("artifacts database: {:?} is not a digest", p.index.digest))?;
    let index_desc = Descriptor::new(
        json::MEDIA_TYPE_OCI_MANIFEST,
        &index_digest,
        p.index.size as i64,
    );
    let index_bytes = read_artifact(local, &index_desc, "SOCI index")?;
    let index = SociIndex::from_manifest_bytes(&index_bytes)
        .with_context(|| format!("SOCI index {index_digest} in the local store does not parse"))?;
    let mut children = vec![index.config.clone()];
    children.extend(index.blobs.iter().cloned());
    let mut blobs = Vec::new();
    for c in &children {
        let what = if c.media_type == json::SOCI_PREFETCH_MEDIA_TYPE {
            "prefetch artifact"
        } else if c.media_type == json::SOCI_LAYER_MEDIA_TYPE {
            "zTOC"
        } else {
            "config"
        };
        blobs.push((c.parsed_digest()?, read_artifact(local, c, what)?));
    }
    dl.run(async {
        let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(blobs)
            .map(|(d, bytes)| async move {
                if client.blob_exists(repo, &d).await?.is_some() {
                    if !quiet {
                        progress.println(format!("skipped artifact with digest: {d}"));
                    }
                    totals.skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                if !quiet {
                    progress.println(format!("pushing artifact with digest: {d}"));
                }
                let size = bytes.len() as u64;
                let bar = progress.bar(d.to_string(), size);
                client.push_blob(repo, bytes, None).await?;
                bar.inc(size);
                bar.finish();
                totals.uploaded.fetch_add(1, Ordering::Relaxed);
                totals.bytes.fetch_add(size, Ordering::Relaxed);
                if !quiet {
                    progress.println(format!("successfully pushed artifact with digest: {d}"));
                }
                Ok(())
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;

        let exists = client
            .resolve(&ImageReference::with_digest(
                repo.clone(),
                index_digest.clone(),
            ))
            .await
            .is_ok();
        if exists {
            if !quiet {
                progress.println(format!("skipped artifact with digest: {index_digest}"));
            }
            totals.skipped.fetch_add(1, Ordering::Relaxed);
        } else {
            if !quiet {
                progress.println(format!("pushing artifact with digest: {index_digest}"));
            }
            client
                .push_manifest_raw(
                    repo,
                    index_bytes.clone(),
                    json::MEDIA_TYPE_OCI_MANIFEST,
                    None,
                )
                .await?;
            totals.uploaded.fetch_add(1, Ordering::Relaxed);
            totals
                .bytes
                .fetch_add(index_bytes.len() as u64, Ordering::Relaxed);
            if !quiet {
                progress.println(format!(
                    "successfully pushed artifact with digest: {index_digest}"
                ));
            }
        }
        // Registries without the referrers API list referrers under the
        // `sha256-<hex>` tag of the subject.
        let listed = client
            .referrers(
                repo,
                manifest_digest,
                Some(json::SOCI_INDEX_ARTIFACT_TYPE_V1),
            )
            .await?;
        if listed.via_tag_schema
            && !listed
                .manifests
                .iter()
                .any(|m| m.digest == index_desc.digest)
        {
            let referrer = referrer_descriptor(&index_bytes, json::MEDIA_TYPE_OCI_MANIFEST)?;
            client
                .put_referrers_tag_fallback(repo, manifest_digest, &referrer)
                .await?;
        }
        Ok::<_, anyhow::Error>(())
    })??;
    Ok(())
}

/// The async runtime and the `--timeout` deadline of the whole push.
struct Deadline {
    rt: tokio::runtime::Runtime,
    at: Option<(tokio::time::Instant, std::time::Duration)>,
}

impl Deadline {
    /// Run `fut` to completion, or fail once the deadline has passed.
    fn run<F: std::future::Future>(&self, fut: F) -> anyhow::Result<F::Output> {
        match self.at {
            None => Ok(self.rt.block_on(fut)),
            Some((at, limit)) => self
                .rt
                .block_on(async move { tokio::time::timeout_at(at, fut).await })
                .map_err(|_| {
                    anyhow::anyhow!(
                        "the push did not finish within --timeout {limit:?}; blobs already uploaded stay in the registry (raise --timeout and push again)"
                    )
                }),
        }
    }
}
