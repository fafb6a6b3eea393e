//! Building a zTOC from a layer stream in one pass.
//!
//! The compressed layer is inflated exactly once: the [`LayerIndexer`] records
//! checkpoints and span digests while the tar walker consumes the inflated
//! stream it produces. Upstream inflates twice (once for the TOC, once for the
//! checkpoints); the result is the same, at about half the cost.

use std::io::Read;

use super::{CompressionAlgorithm, CompressionInfo, ZTOC_VERSION, Ztoc};
use crate::toc::{self, TocError};
use crate::zinfo::{LayerIndexer, ZinfoError};

/// Options of a zTOC build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Span size in uncompressed bytes (upstream default 4 MiB).
    pub span_size: u64,
    /// Build tool identifier written into the zTOC.
    pub build_tool_identifier: String,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            span_size: 1 << 22,
            build_tool_identifier: super::DEFAULT_BUILD_TOOL.to_string(),
        }
    }
}

/// Why a zTOC could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The compressed stream is invalid or could not be read.
    #[error("{0}")]
    Compression(#[from] ZinfoError),
    /// The tar stream is invalid or holds entries SOCI cannot index.
    #[error("{0}")]
    Tar(#[from] TocError),
    /// The span size is unusable.
    #[error("invalid span size {0}: it must be at least 1")]
    SpanSize(u64),
}

/// Build the zTOC of a layer from its compressed bytes.
pub fn build_ztoc<R: Read>(
    layer: R,
    algorithm: CompressionAlgorithm,
    opts: &BuildOptions,
) -> Result<Ztoc, BuildError> {
    if opts.span_size == 0 {
        return Err(BuildError::SpanSize(0));
    }
    let mut indexer = LayerIndexer::new(layer, algorithm, opts.span_size)?;
    let toc = toc::build_toc(&mut indexer)?;
    let indexed = indexer.finish()?;
    Ok(Ztoc {
        version: ZTOC_VERSION.to_string(),
        build_tool_identifier: opts.build_tool_identifier.clone(),
        compressed_archive_size: indexed.compressed_size,
        uncompressed_archive_size: toc.uncompressed_archive_size,
        toc: toc.entries,
        compression_info: CompressionInfo {
            algorithm,
            max_span_id: indexed.zinfo.max_span_id(),
            span_digests: indexed.span_digests.iter().map(|d| d.to_string()).collect(),
            checkpoints: indexed.zinfo.to_checkpoints(),
        },
    })
}
