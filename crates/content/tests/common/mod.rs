//! Test helpers: the shared harness (a real Debian `docker-registry` on a free
//! 127.0.0.1 port, optionally behind htpasswd Basic auth) plus small helpers.
#![allow(dead_code)]

pub mod fake;

pub use soci_testkit::{Registry as TestRegistry, free_port, random, skopeo};

use std::io::Write;

/// A gzip-compressed tar with the given files.
pub fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}
