//! Integration tests of the span manager over real gzip and tar layers.

mod background;
mod cache;
mod common;
mod concurrency;
mod faults;
mod metrics;
mod read;
mod validate;
