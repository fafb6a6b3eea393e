//! Tests of `soci_format::zinfo`: checkpoints compared with a C zlib reference,
//! extraction, span digests, blob parsing, corrupt input.

#[path = "zinfo/blob.rs"]
mod blob;
#[path = "zinfo/common.rs"]
mod common;
#[path = "zinfo/corrupt.rs"]
mod corrupt;
#[path = "zinfo/diff.rs"]
mod diff;
#[path = "zinfo/extract.rs"]
mod extract;
#[path = "zinfo/reference.rs"]
mod reference;
#[path = "zinfo/speed.rs"]
mod speed;
