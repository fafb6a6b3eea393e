//! Converting an image straight into a registry.
//!
//! Layers are read once: while the indexer streams a layer to build its zTOC,
//! the same bytes are uploaded to the destination ([`TeeSource`]). Blobs the
//! destination already has are not sent again, and blobs of another
//! repository of the same registry are mounted. Manifests are pushed children
//! first and the destination tag last, so a failure never leaves a tag
//! pointing at a partial image.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use soci_content::registry::{BlockingRuntime, ImageReference, PushOutcome, RegistryClient};
use soci_content::{BlobSource, ContentError, MemStore, VerifyingReader};
use soci_format::Digest;
use soci_format::json::{self, Descriptor};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::IndexerError;
use crate::convert::{ConvertOutcome, PlatformSelection, convert};
use crate::layers::{BuildConfig, Events};
use crate::output::{GraphSink, walk_graph};

/// Chunks in flight between a reader and its upload.
const CHANNEL_CHUNKS: usize = 16;

/// What a push did to the destination.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushStats {
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Bytes of the uploaded blobs.
    pub uploaded_bytes: u64,
    /// Blobs the destination already had.
    pub existing: usize,
    /// Blobs mounted from the source repository.
    pub mounted: usize,
    /// Manifests and indexes pushed (the tagged one included).
    pub manifests: usize,
}

type Upload = JoinHandle<Result<PushOutcome, ContentError>>;

/// A repository being written by a conversion.
pub struct RegistryDestination {
    client: RegistryClient,
    rt: Arc<BlockingRuntime>,
    dest: ImageReference,
    mount_from: Option<soci_content::Repository>,
    uploads: Mutex<HashMap<Digest, (u64, Upload)>>,
    done: Mutex<HashSet<Digest>>,
    stats: Mutex<PushStats>,
}

impl RegistryDestination {
    /// Write to `dest` (which must carry a tag). With `mount_from`, blobs are
    /// mounted from that repository when it is on the same registry.
    pub fn new(
        client: RegistryClient,
        rt: Arc<BlockingRuntime>,
        dest: ImageReference,
        mount_from: Option<soci_content::Repository>,
    ) -> Result<Self, IndexerError> {
        dest.require_tag("destination")
            .map_err(|e| IndexerError::Content(e.into()))?;
        Ok(RegistryDestination {
            client,
            rt,
            dest,
            mount_from,
            uploads: Mutex::new(HashMap::new()),
            done: Mutex::new(HashSet::new()),
            stats: Mutex::new(PushStats::default()),
        })
    }

    /// What was pushed so far.
    pub fn stats(&self) -> PushStats {
        self.stats.lock().expect("poisoned").clone()
    }

    fn count(&self, outcome: PushOutcome, size: u64) {
        let mut s = self.stats.lock().expect("poisoned");
        match outcome {
            PushOutcome::Exists => s.existing += 1,
            PushOutcome::Mounted => s.mounted += 1,
            PushOutcome::Uploaded => {
                s.uploaded += 1;
                s.uploaded_bytes += size;
            }
        }
    }

    fn is_done(&self, d: &Digest) -> bool {
        self.done.lock().expect("poisoned").contains(d)
    }

    /// Skip or mount `d` if possible; else start an upload fed through the
    /// returned sender (dropping it ends the blob).
    fn begin(&self, d: &Digest, size: u64) -> Result<Option<mpsc::Sender<Bytes>>, ContentError> {
        if self.is_done(d) || self.uploads.lock().expect("poisoned").contains_key(d) {
            return Ok(None);
        }
        let repo = self.dest.repository().clone();
        let have = self.rt.block_on(self.client.exists_or_mount(
            &repo,
            d,
            self.mount_from.as_ref(),
        ))??;
        if let Some(o) = have {
            self.count(o, size);
            self.done.lock().expect("poisoned").insert(d.clone());
            return Ok(None);
        }
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let client = self.client.clone();
        let digest = d.clone();
        let handle = self.rt.handle().spawn(async move {
            let reader = ChannelReader {
                rx,
                buf: Bytes::new(),
            };
            client
                .push_blob_stream(&repo, &digest, size, reader, None)
                .await
        });
        self.uploads
            .lock()
            .expect("poisoned")
            .insert(d.clone(), (size, handle));
        Ok(Some(tx))
    }

    /// Wait for the upload of `d`, if one was started: `Some(Ok(()))` when it
    /// completed, `Some(Err(_))` with its error, `None` when none was started.
    fn finish_upload(&self, d: &Digest) -> Option<Result<(), ContentError>> {
        let (size, handle) = self.uploads.lock().expect("poisoned").remove(d)?;
        let r = match self.rt.block_on(handle) {
            Ok(Ok(Ok(o))) => {
                self.count(o, size);
                self.done.lock().expect("poisoned").insert(d.clone());
                Ok(())
            }
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(join)) => Err(ContentError::Blocking {
                reason: format!("upload of {d} stopped: {join}"),
            }),
            Err(e) => Err(e),
        };
        Some(r)
    }

    /// Copy one blob from `source` unless the destination has it (or an
    /// upload made while the indexer read it succeeded).
    fn copy_blob(
        &self,
        source: &dyn BlobSource,
        d: &Digest,
        size: u64,
    ) -> Result<(), ContentError> {
        if let Some(Ok(())) = self.finish_upload(d) {
            return Ok(());
        }
        let Some(tx) = self.begin(d, size)? else {
            return Ok(());
        };
        let reader = VerifyingReader::new(source.open_blob(d)?, d.clone(), size, source.describe());
        let mut tee = TeeReader {
            inner: reader,
            tx: Some(tx),
            rt: &self.rt,
        };
        let read = io::copy(&mut tee, &mut io::sink());
        drop(tee);
        let uploaded = self.finish_upload(d);
        read.map_err(|e| {
            ContentError::from_io(e, "read blob", format!("{d} in {}", source.describe()))
        })?;
        uploaded.unwrap_or(Ok(()))
    }

    fn push_bytes(&self, d: &Digest, bytes: Vec<u8>) -> Result<(), ContentError> {
        if self.is_done(d) {
            return Ok(());
        }
        let size = bytes.len() as u64;
        let o = self
            .rt
            .block_on(self.client.push_blob(self.dest.repository(), bytes, None))??;
        self.count(o, size);
        self.done.lock().expect("poisoned").insert(d.clone());
        Ok(())
    }

    fn push_manifest(
        &self,
        desc: &Descriptor,
        bytes: &[u8],
        tag: Option<&str>,
    ) -> Result<(), ContentError> {
        self.rt.block_on(self.client.push_manifest_raw(
            self.dest.repository(),
            bytes.to_vec(),
            &desc.media_type,
            tag,
        ))??;
        self.stats.lock().expect("poisoned").manifests += 1;
        Ok(())
    }

    /// Push the image rooted at `root` (blobs from `created`, else `source`),
    /// children first, and set the tag last.
    pub fn push_image(
        &self,
        source: &dyn BlobSource,
        created: &MemStore,
        root: &Descriptor,
    ) -> Result<(), IndexerError> {
        let mut sink = PushSink {
            dest: self,
            source,
            created,
            root: None,
        };
        walk_graph(source, created, root, &mut sink)?;
        let Some(bytes) = sink.root else {
            return Err(IndexerError::InvalidImage(format!(
                "{} is neither an image manifest nor an image index",
                root.digest
            )));
        };
        let tag = self
            .dest
            .require_tag("destination")
            .map_err(|e| IndexerError::Content(e.into()))?;
        self.push_manifest(root, &bytes, Some(tag))?;
        Ok(())
    }

    fn abort_uploads(&self) {
        for (_, (_, h)) in self.uploads.lock().expect("poisoned").drain() {
            h.abort();
        }
    }
}

impl Drop for RegistryDestination {
    fn drop(&mut self) {
        self.abort_uploads();
    }
}

struct PushSink<'a> {
    dest: &'a RegistryDestination,
    source: &'a dyn BlobSource,
    created: &'a MemStore,
    root: Option<Vec<u8>>,
}

impl GraphSink for PushSink<'_> {
    fn blob(&mut self, desc: &Descriptor, d: &Digest) -> Result<(), IndexerError> {
        if let Some(b) = self.created.get(d) {
            self.dest.push_bytes(d, b)?;
        } else {
            let size = match self.source.blob_size(d) {
                Some(n) => n,
                None => u64::try_from(desc.size).map_err(|_| {
                    IndexerError::InvalidImage(format!("blob {d} has a negative size"))
                })?,
            };
            self.dest.copy_blob(self.source, d, size)?;
        }
        Ok(())
    }
    fn manifest(
        &mut self,
        desc: &Descriptor,
        _d: &Digest,
        bytes: &[u8],
        depth: usize,
    ) -> Result<(), IndexerError> {
        if depth == 0 {
            self.root = Some(bytes.to_vec());
        } else {
            self.dest.push_manifest(desc, bytes, None)?;
        }
        Ok(())
    }
}

/// Collects the layer digests of an image.
struct LayerCollector(HashSet<Digest>);

impl GraphSink for LayerCollector {
    fn blob(&mut self, desc: &Descriptor, d: &Digest) -> Result<(), IndexerError> {
        if json::is_layer_type(&desc.media_type) {
            self.0.insert(d.clone());
        }
        Ok(())
    }
    fn manifest(
        &mut self,
        _: &Descriptor,
        _: &Digest,
        _: &[u8],
        _: usize,
    ) -> Result<(), IndexerError> {
        Ok(())
    }
}

/// A [`BlobSource`] that uploads each layer to a [`RegistryDestination`]
/// while it is read.
pub struct TeeSource<'a> {
    inner: &'a dyn BlobSource,
    dest: &'a RegistryDestination,
    layers: HashSet<Digest>,
}

impl BlobSource for TeeSource<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.inner.blob_size(digest)
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ContentError> {
        if !self.layers.contains(digest) {
            return self.inner.open_blob(digest);
        }
        let size = self
            .inner
            .blob_size(digest)
            .ok_or_else(|| ContentError::NotFound {
                digest: digest.clone(),
                store: self.inner.describe(),
            })?;
        let tx = self.dest.begin(digest, size)?;
        let inner = self.inner.open_blob(digest)?;
        Ok(match tx {
            None => inner,
            Some(tx) => Box::new(TeeReader {
                inner,
                tx: Some(tx),
                rt: &self.dest.rt,
            }),
        })
    }
    fn local_path(&self, digest: &Digest) -> Option<std::path::PathBuf> {
        self.inner.local_path(digest)
    }
}

/// Convert the image at `root` of `source` and push the result to `dest`.
/// The layers the indexer reads are uploaded as they are read.
pub fn convert_to_registry(
    source: &dyn BlobSource,
    root: &Descriptor,
    dest: &RegistryDestination,
    cfg: &BuildConfig,
    selection: &PlatformSelection,
    events: &dyn Events,
) -> Result<ConvertOutcome, IndexerError> {
    let mut layers = LayerCollector(HashSet::new());
    walk_graph(source, &MemStore::new(), root, &mut layers)?;
    let tee = TeeSource {
        inner: source,
        dest,
        layers: layers.0,
    };
    let outcome = match convert(&tee, root, cfg, selection, events) {
        Ok(o) => o,
        Err(e) => {
            dest.abort_uploads();
            return Err(e);
        }
    };
    dest.push_image(source, &outcome.blobs, &outcome.index_descriptor)?;
    Ok(outcome)
}

/// Passes reads through and sends a copy of every chunk to an upload.
struct TeeReader<'a, R> {
    inner: R,
    tx: Option<mpsc::Sender<Bytes>>,
    rt: &'a BlockingRuntime,
}

impl<R: Read> Read for TeeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.tx = None;
                return Err(e);
            }
        };
        if n == 0 {
            self.tx = None;
            return Ok(0);
        }
        if let Some(tx) = &self.tx {
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            let sent = match tx.try_send(chunk) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
                Err(mpsc::error::TrySendError::Full(chunk)) => {
                    matches!(self.rt.block_on(tx.send(chunk)), Ok(Ok(())))
                }
            };
            if !sent {
                // The upload ended (the blob was there after all, or it
                // failed); reading goes on for the indexer.
                self.tx = None;
            }
        }
        Ok(n)
    }
}

/// An [`AsyncRead`] over the chunks of a channel.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    buf: Bytes,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.buf.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(b)) => self.buf = b,
            }
        }
        let n = out.remaining().min(self.buf.len());
        let chunk = self.buf.split_to(n);
        out.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn tee_copies_every_byte_and_survives_a_closed_upload() {
        let rt = BlockingRuntime::new().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (tx, rx) = mpsc::channel(2);
        let upload = rt.handle().spawn(async move {
            let mut r = ChannelReader {
                rx,
                buf: Bytes::new(),
            };
            let mut out = Vec::new();
            r.read_to_end(&mut out).await.unwrap();
            out
        });
        let mut tee = TeeReader {
            inner: &data[..],
            tx: Some(tx),
            rt: &rt,
        };
        let mut read = Vec::new();
        // Small reads fill the channel and make the tee wait for the upload.
        let mut buf = [0u8; 1000];
        loop {
            let n = tee.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            read.extend_from_slice(&buf[..n]);
        }
        drop(tee);
        assert_eq!(read, data);
        assert_eq!(rt.block_on(upload).unwrap().unwrap(), data);

        // The upload side went away: reading goes on undisturbed.
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut tee = TeeReader {
            inner: &data[..],
            tx: Some(tx),
            rt: &rt,
        };
        let mut read = Vec::new();
        tee.read_to_end(&mut read).unwrap();
        assert_eq!(read, data);
        assert!(tee.tx.is_none());
    }
}
