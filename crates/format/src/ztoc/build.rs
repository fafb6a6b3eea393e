//! Building a zTOC from a layer stream in one pass.

/// Options of a zTOC build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Span size in uncompressed bytes (upstream default 4 MiB).
    pub span_size: u64,
    /// Build tool identifier written into the zTOC.
    pub build_tool_identifier: String,
}

/// Why a zTOC could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {}

/// Build a zTOC.
pub fn build_ztoc() {}
