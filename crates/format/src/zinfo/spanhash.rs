//! sha256 of every span's compressed bytes, computed while the layer is inflated.
//!
//! Hashing costs about a tenth of inflating, so when a second core is available
//! it runs on a helper thread: the indexer hands it shared, reference-counted
//! input chunks (no copies) and span boundaries, in stream order.

use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use super::ZinfoError;
use crate::digest::{Digest, Hasher};

/// A chunk of compressed input, shared with the hashing thread.
pub(super) type Chunk = Arc<Vec<u8>>;

pub(super) enum Msg {
    /// Finish the current span (if any) and start a new one with this first byte.
    Begin(Option<u8>),
    /// Bytes of the current span.
    Update(Chunk, Range<usize>),
}

/// Hashes spans inline or on a helper thread.
pub(super) enum SpanHashing {
    Inline {
        current: Option<Hasher>,
        digests: Vec<Digest>,
    },
    Background {
        tx: Option<Sender<Msg>>,
        /// One message per chunk reference released by the thread.
        released: Receiver<()>,
        handle: Option<JoinHandle<Vec<Digest>>>,
        started: bool,
    },
}

impl SpanHashing {
    /// Hash on a helper thread if `background` and a thread can be started.
    pub(super) fn new(background: bool) -> SpanHashing {
        if background {
            let (tx, rx) = channel::<Msg>();
            let (done_tx, released) = channel::<()>();
            let spawned = std::thread::Builder::new()
                .name("soci-span-hash".into())
                .spawn(move || run(rx, done_tx));
            if let Ok(handle) = spawned {
                return SpanHashing::Background {
                    tx: Some(tx),
                    released,
                    handle: Some(handle),
                    started: false,
                };
            }
        }
        SpanHashing::Inline {
            current: None,
            digests: Vec::new(),
        }
    }

    /// End the current span (if any) and start the next; `overlap` is the byte it
    /// shares with the previous span.
    pub(super) fn begin_span(&mut self, overlap: Option<u8>) -> Result<(), ZinfoError> {
        match self {
            SpanHashing::Inline { current, digests } => {
                if let Some(h) = current.take() {
                    digests.push(h.finish());
                }
                let mut h = Hasher::new();
                if let Some(b) = overlap {
                    h.update(&[b]);
                }
                *current = Some(h);
                Ok(())
            }
            SpanHashing::Background { tx, started, .. } => {
                *started = true;
                send(tx, Msg::Begin(overlap))
            }
        }
    }

    /// Add `chunk[range]` to the current span (ignored before the first span).
    pub(super) fn update(&mut self, chunk: &Chunk, range: Range<usize>) -> Result<(), ZinfoError> {
        if range.is_empty() {
            return Ok(());
        }
        match self {
            SpanHashing::Inline { current, .. } => {
                if let Some(h) = current {
                    h.update(&chunk[range]);
                }
                Ok(())
            }
            SpanHashing::Background { tx, started, .. } => {
                if !*started {
                    return Ok(());
                }
                send(tx, Msg::Update(Arc::clone(chunk), range))
            }
        }
    }

    /// Forget release notices already received (they only serve `wait_release`).
    pub(super) fn drain_releases(&mut self) {
        if let SpanHashing::Background { released, .. } = self {
            while released.try_recv().is_ok() {}
        }
    }

    /// Block until the hashing thread has released at least one more chunk.
    pub(super) fn wait_release(&mut self) -> Result<(), ZinfoError> {
        match self {
            SpanHashing::Inline { .. } => Ok(()),
            SpanHashing::Background { released, .. } => released.recv().map_err(|_| thread_gone()),
        }
    }

    /// Finish the last span and return all digests.
    pub(super) fn finish(self) -> Result<Vec<Digest>, ZinfoError> {
        match self {
            SpanHashing::Inline {
                mut current,
                mut digests,
            } => {
                if let Some(h) = current.take() {
                    digests.push(h.finish());
                }
                Ok(digests)
            }
            SpanHashing::Background {
                mut tx, mut handle, ..
            } => {
                drop(tx.take());
                let handle = handle.take().ok_or_else(thread_gone)?;
                handle.join().map_err(|_| thread_gone())
            }
        }
    }
}

fn send(tx: &Option<Sender<Msg>>, msg: Msg) -> Result<(), ZinfoError> {
    tx.as_ref()
        .ok_or_else(thread_gone)?
        .send(msg)
        .map_err(|_| thread_gone())
}

fn thread_gone() -> ZinfoError {
    ZinfoError::Inconsistent("the span hashing thread stopped unexpectedly".into())
}

fn run(rx: Receiver<Msg>, released: Sender<()>) -> Vec<Digest> {
    let mut current: Option<Hasher> = None;
    let mut digests = Vec::new();
    for msg in rx {
        match msg {
            Msg::Begin(overlap) => {
                if let Some(h) = current.take() {
                    digests.push(h.finish());
                }
                let mut h = Hasher::new();
                if let Some(b) = overlap {
                    h.update(&[b]);
                }
                current = Some(h);
            }
            Msg::Update(chunk, range) => {
                if let Some(h) = &mut current {
                    h.update(&chunk[range]);
                }
                drop(chunk);
                // The indexer may be gone already; that is fine.
                let _ = released.send(());
            }
        }
    }
    if let Some(h) = current.take() {
        digests.push(h.finish());
    }
    digests
}
