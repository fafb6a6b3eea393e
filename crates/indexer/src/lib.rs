//! Builds SOCI indexes over images held in a [`BlobSource`].
//!
//! This crate owns what `soci create` and `soci convert` do to an image: pick the
//! layers that get a zTOC, build the zTOCs (in parallel, each layer streamed
//! once and verified against its digest), assemble v1/v2 SOCI index manifests,
//! and for `convert` produce the new OCI image index that binds each image
//! manifest to its SOCI index. It does no CLI parsing and no printing: progress
//! is reported through [`Events`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod convert;
mod create;
mod error;
mod layers;
mod output;
pub mod remote;
pub mod standalone;

pub use convert::{ConvertOutcome, PlatformSelection, convert};
pub use create::{CreateOutcome, CreatedIndex, clean_prefetch_path, create};
pub use error::IndexerError;
pub use layers::{BuildConfig, Event, Events, ExistingZtocs, LayerOutcome, NoEvents};
pub use output::{write_layout, write_layout_named};

pub use soci_content::BlobSource;
