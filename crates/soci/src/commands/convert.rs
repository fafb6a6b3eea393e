//! `soci convert`.

use std::path::Path;

use anyhow::{Context, bail};
use soci_content::{OutputFormat, open_layout};
use soci_format::json::Platform;
use soci_indexer::{BuildConfig, Event, Events, PlatformSelection};

use crate::cli::{BuildArgs, ConvertArgs, GlobalArgs, OutputFormatArg};

/// Prints build progress the way upstream does (stdout, one line per layer).
pub(crate) struct PrintEvents;

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
                    println!("layer {layer} -> ztoc {ztoc} (already exists)");
                } else {
                    println!("layer {layer} -> ztoc {ztoc}");
                }
            }
            Event::SkippedSmall {
                layer,
                media_type,
                size,
                min_layer_size,
            } => println!(
                "ztoc skipped - layer {layer} ({media_type}) size {size} is less than min-layer-size {min_layer_size}"
            ),
            Event::SkippedUnsupported {
                layer,
                media_type,
                compression,
            } => println!(
                "ztoc skipped - layer {layer} ({media_type}) is compressed in an unsupported format. expect: [tar, gzip, unknown] but got {compression:?}"
            ),
        }
    }
}

pub(crate) fn build_config(args: &BuildArgs) -> BuildConfig {
    BuildConfig {
        span_size: args.span_size,
        min_layer_size: args.min_layer_size,
        xattr_optimization: args.optimizations.iter().any(|o| o == "xattr"),
        ..BuildConfig::default()
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

pub(crate) fn run(_global: &GlobalArgs, args: ConvertArgs) -> anyhow::Result<()> {
    if !args.standalone {
        bail!(
            "converting images in containerd's content store is not supported by this build yet; \
             use --standalone with an OCI image layout, e.g. \
             `skopeo copy docker://IMAGE oci-archive:image.tar && soci convert --standalone image.tar image-soci.tar`"
        );
    }
    let format = match args.format {
        OutputFormatArg::OciArchive => OutputFormat::OciArchive,
        OutputFormatArg::OciDir => OutputFormat::OciDir,
    };
    let cfg = build_config(&args.build);
    let selection = platform_selection(&args.build)?;
    let layout = open_layout(Path::new(&args.source))
        .with_context(|| format!("cannot read input {}", args.source))?;
    let source = soci_indexer::standalone::LayoutSource::new(layout.as_ref())
        .with_context(|| format!("cannot find the image in {}", args.source))?;
    let root = source.root().clone();
    let outcome = soci_indexer::convert(&source, &root, &cfg, &selection, &PrintEvents)?;
    soci_indexer::write_layout(
        &source,
        &outcome.blobs,
        &outcome.index_descriptor,
        Path::new(&args.dest),
        format,
    )
    .with_context(|| format!("cannot write {}", args.dest))?;
    eprintln!(
        "converted {} -> {}: image index {}, {} soci index(es), {} layer(s) indexed, {} skipped",
        args.source,
        args.dest,
        outcome.index_descriptor.digest,
        outcome.soci_indexes.len(),
        outcome.layers_indexed,
        outcome.layers_skipped,
    );
    Ok(())
}
