//! Corrupt gzip layers make the indexer fail (never panic), exactly where the C
//! zlib reference (upstream's behaviour) fails.

use std::io::{self, Read};

use soci_format::zinfo::{IndexedLayer, LayerIndexer, ZinfoError};
use soci_format::ztoc::CompressionAlgorithm;

use crate::common::*;
use crate::reference;

fn try_index(gz: &[u8], span: u64) -> Result<(IndexedLayer, Vec<u8>), ZinfoError> {
    let mut ix = LayerIndexer::new(gz, CompressionAlgorithm::Gzip, span)?;
    let mut out = Vec::new();
    match ix.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) => {
            // The ZinfoError travels inside the io::Error, and finish reports it too.
            assert!(e.get_ref().is_some_and(|s| s.is::<ZinfoError>()), "{e}");
            let again = ix.finish().unwrap_err();
            assert_eq!(again.to_string(), e.get_ref().unwrap().to_string());
            return Err(again);
        }
    }
    ix.finish().map(|l| (l, out))
}

/// Our verdict agrees with the reference; on success the output is the original.
fn agree(what: &str, gz: &[u8], data: &[u8]) -> bool {
    let ours = try_index(gz, 64 << 10);
    let theirs = reference::zran(gz, 64 << 10);
    assert_eq!(
        ours.is_ok(),
        theirs.is_ok(),
        "{what}: ours {:?} vs reference {:?}",
        ours.as_ref().err(),
        theirs.as_ref().err()
    );
    if let Ok((l, out)) = ours {
        assert!(out == data, "{what}: accepted but output differs");
        assert_eq!(l.compressed_size, gz.len() as u64);
        return true;
    }
    false
}

#[test]
fn truncated() {
    let data = mixed(400_000, 41);
    let gz = gzip(&data, 6);
    let mut r = Rng::new(1);
    let mut cuts: Vec<usize> = (0..40).collect();
    cuts.extend((0..150).map(|_| r.below(gz.len() as u64) as usize));
    cuts.extend(gz.len() - 9..gz.len());
    for cut in cuts {
        assert!(
            !agree(&format!("cut {cut}"), &gz[..cut], &data),
            "cut {cut} accepted"
        );
        let e = try_index(&gz[..cut], 64 << 10).unwrap_err();
        assert!(
            matches!(
                e,
                ZinfoError::TruncatedGzip { .. } | ZinfoError::CorruptGzip { .. }
            ),
            "{e}"
        );
    }
}

#[test]
fn flipped_bytes() {
    let data = mixed(300_000, 42);
    let gz = gzip(&data, 6);
    let mut r = Rng::new(2);
    let mut rejected = 0;
    for _ in 0..300 {
        let mut bad = gz.clone();
        let at = 10 + r.below(gz.len() as u64 - 10) as usize;
        bad[at] ^= 1 << r.below(8);
        if !agree(&format!("flip at {at}"), &bad, &data) {
            rejected += 1;
        }
    }
    assert!(
        rejected > 250,
        "only {rejected} of 300 corruptions rejected"
    );
    let mut bad = gz.clone();
    bad[0] = 0x1e;
    assert!(!agree("bad magic", &bad, &data));
}

#[test]
fn trailing_garbage() {
    let data = text(200_000, 43);
    let gz = gzip(&data, 6);
    let tails: Vec<Vec<u8>> = vec![
        vec![0],
        vec![0; 8],
        vec![0; 4096],
        vec![0x1f],
        vec![0x1f, 0x8b],
        vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3],
        b"garbage after the gzip stream".to_vec(),
        random(100_000, 4),
        gz[..gz.len() / 2].to_vec(),
    ];
    for t in tails {
        let mut bad = gz.clone();
        bad.extend_from_slice(&t);
        assert!(!agree(&format!("tail of {} bytes", t.len()), &bad, &data));
    }
    // A whole extra member is not garbage.
    let mut two = gz.clone();
    two.extend_from_slice(&gz);
    let mut twice = data.clone();
    twice.extend_from_slice(&data);
    assert!(agree("two members", &two, &twice));
}

#[test]
fn empty_and_tiny_inputs() {
    for b in [&[][..], &[0x1f], &[0x1f, 0x8b, 8], &[0; 20]] {
        assert!(try_index(b, 1 << 20).is_err());
        assert!(reference::zran(b, 1 << 20).is_err());
    }
}

struct FailingReader {
    data: Vec<u8>,
    pos: usize,
    fail_at: usize,
    interrupted: bool,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.interrupted {
            self.interrupted = true;
            return Err(io::Error::new(io::ErrorKind::Interrupted, "again"));
        }
        if self.pos >= self.fail_at {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.fail_at - self.pos).min(10_000);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn read_errors_are_reported() {
    let data = mixed(500_000, 44);
    let gz = gzip(&data, 6);
    let r = FailingReader {
        data: gz.clone(),
        pos: 0,
        fail_at: gz.len() / 2,
        interrupted: false,
    };
    let ix = LayerIndexer::new(r, CompressionAlgorithm::Gzip, 1 << 16).unwrap();
    match ix.finish() {
        Err(ZinfoError::Io { offset, .. }) => assert_eq!(offset, (gz.len() / 2) as u64),
        other => panic!("expected an io error, got {other:?}"),
    }
}
