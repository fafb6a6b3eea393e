//! Blocking adapters over the async [`RegistryClient`]: a
//! [`BlobRangeReader`] for the span manager and a [`BlobSource`] / [`Layout`]
//! for the indexer.
//!
//! Both wait for futures on a [`BlockingRuntime`], which is always a
//! multi-threaded tokio runtime (our own, or a borrowed one), so its workers
//! drive the I/O while the caller waits. Waiting never stalls or deadlocks a
//! runtime: from a plain thread the future is driven with `block_on`; from a
//! thread of a multi-threaded runtime (a worker or a `spawn_blocking` thread)
//! inside `block_in_place`, which hands a worker's tasks to other workers;
//! from a thread of a single-threaded runtime on a helper thread (that
//! runtime cannot be the one we wait on, which is multi-threaded).

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures_util::StreamExt;
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index};
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use super::client::{BlobStream, RegistryClient};
use super::reference::{ImageReference, Repository};
use crate::{BlobRangeReader, BlobSource, ContentError, Layout};

/// A tokio runtime to wait on from blocking code: one of our own, or a handle
/// to the caller's.
pub struct BlockingRuntime {
    owned: Option<Runtime>,
    handle: Handle,
}

impl std::fmt::Debug for BlockingRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingRuntime")
            .field("owned", &self.owned.is_some())
            .finish()
    }
}

impl BlockingRuntime {
    /// A runtime of our own: two worker threads named `soci-registry`.
    pub fn new() -> Result<BlockingRuntime, ContentError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("soci-registry")
            .enable_all()
            .build()
            .map_err(|e| ContentError::Blocking {
                reason: format!("cannot start an async runtime: {e}"),
            })?;
        Ok(BlockingRuntime {
            handle: rt.handle().clone(),
            owned: Some(rt),
        })
    }

    /// Use the caller's runtime, which must be multi-threaded: a
    /// single-threaded runtime cannot drive our requests while its only
    /// thread waits for them.
    pub fn from_handle(handle: Handle) -> Result<BlockingRuntime, ContentError> {
        if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
            return Err(ContentError::Blocking {
                reason: "the borrowed tokio runtime is single-threaded; borrow a \
                         multi-threaded one or let the adapter own its runtime \
                         (BlockingRuntime::new)"
                    .into(),
            });
        }
        Ok(BlockingRuntime {
            owned: None,
            handle,
        })
    }

    /// The runtime's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Wait for `fut` on this runtime without stalling an async runtime.
    pub fn block_on<F>(&self, fut: F) -> Result<F::Output, ContentError>
    where
        F: Future + Send,
        F::Output: Send,
    {
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Err(_) => Ok(self.handle.block_on(fut)),
            Ok(RuntimeFlavor::MultiThread) => {
                Ok(tokio::task::block_in_place(|| self.handle.block_on(fut)))
            }
            Ok(_) => std::thread::scope(|s| {
                s.spawn(|| self.handle.block_on(fut))
                    .join()
                    .map_err(|_| ContentError::Blocking {
                        reason: "the registry request panicked".into(),
                    })
            }),
        }
    }
}

impl Drop for BlockingRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside an async context panics; let it wind down
        // in the background instead.
        if let Some(rt) = self.owned.take()
            && Handle::try_current().is_ok()
        {
            rt.shutdown_background();
        }
    }
}

/// Byte ranges of the blobs of one repository, for the span manager.
pub struct RegistryRangeReader {
    client: RegistryClient,
    repo: Repository,
    rt: Arc<BlockingRuntime>,
    sizes: RwLock<HashMap<Digest, u64>>,
}

impl RegistryRangeReader {
    /// A reader of `repo`'s blobs through `client`, waiting on `rt`.
    pub fn new(client: RegistryClient, repo: Repository, rt: Arc<BlockingRuntime>) -> Self {
        RegistryRangeReader {
            client,
            repo,
            rt,
            sizes: RwLock::new(HashMap::new()),
        }
    }

    /// Record a blob size known from a descriptor, saving a `HEAD`.
    pub fn set_size(&self, digest: Digest, size: u64) {
        self.sizes.write().expect("poisoned").insert(digest, size);
    }

    /// The repository read from.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }
}

impl BlobRangeReader for RegistryRangeReader {
    fn blob_size(&self, digest: &Digest) -> Result<u64, ContentError> {
        if let Some(s) = self.sizes.read().expect("poisoned").get(digest) {
            return Ok(*s);
        }
        let size = self
            .rt
            .block_on(self.client.blob_size(&self.repo, digest))??;
        self.set_size(digest.clone(), size);
        Ok(size)
    }

    fn read_ranges(
        &self,
        digest: &Digest,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Vec<u8>>, ContentError> {
        self.rt
            .block_on(self.client.read_ranges(&self.repo, digest, ranges))?
    }
}

#[derive(Clone)]
enum Kind {
    Blob(u64),
    Manifest(Arc<Vec<u8>>),
}

/// An image in a registry, readable like an OCI layout: `index_json` lists the
/// resolved image (tagged with its reference's tag), and blobs — manifests,
/// indexes, configs and layers alike — are read by digest. Manifests are
/// fetched from the manifests endpoint and kept in memory.
pub struct RemoteImage {
    client: RegistryClient,
    reference: ImageReference,
    root: Descriptor,
    rt: Arc<BlockingRuntime>,
    known: RwLock<HashMap<Digest, Kind>>,
    last_error: Mutex<Option<String>>,
}

impl RemoteImage {
    /// Resolve `reference` and fetch its top manifest or index.
    pub fn open(
        client: RegistryClient,
        reference: ImageReference,
        rt: Arc<BlockingRuntime>,
    ) -> Result<RemoteImage, ContentError> {
        let (root, top) = rt.block_on(async {
            let root = client.resolve(&reference).await?;
            let m = client
                .get_manifest(reference.repository(), &root.digest)
                .await?;
            Ok::<_, ContentError>((root, m))
        })??;
        let img = RemoteImage {
            client,
            reference,
            root,
            rt,
            known: RwLock::new(HashMap::new()),
            last_error: Mutex::new(None),
        };
        img.known
            .write()
            .expect("poisoned")
            .insert(top.digest, Kind::Manifest(Arc::new(top.bytes)));
        Ok(img)
    }

    /// The descriptor the reference resolved to.
    pub fn root(&self) -> &Descriptor {
        &self.root
    }

    /// The reference the image was opened from.
    pub fn reference(&self) -> &ImageReference {
        &self.reference
    }

    fn repo(&self) -> &Repository {
        self.reference.repository()
    }

    fn remember_error(&self, e: &ContentError) {
        *self.last_error.lock().expect("poisoned") = Some(e.to_string());
    }

    /// Find out whether `digest` is a blob or a manifest (blobs first).
    fn lookup(&self, digest: &Digest) -> Result<Option<Kind>, ContentError> {
        if let Some(k) = self.known.read().expect("poisoned").get(digest) {
            return Ok(Some(k.clone()));
        }
        let repo = self.repo().clone();
        let client = self.client.clone();
        let d = digest.clone();
        let kind = self.rt.block_on(async move {
            if let Some(size) = client.blob_exists(&repo, &d).await? {
                return Ok(Some(Kind::Blob(size)));
            }
            match client.get_manifest(&repo, &d.to_string()).await {
                Ok(m) => Ok(Some(Kind::Manifest(Arc::new(m.bytes)))),
                Err(ContentError::ManifestNotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })??;
        if let Some(k) = &kind {
            self.known
                .write()
                .expect("poisoned")
                .insert(digest.clone(), k.clone());
        }
        Ok(kind)
    }
}

impl BlobSource for RemoteImage {
    fn describe(&self) -> String {
        match self.last_error.lock().expect("poisoned").as_deref() {
            Some(e) => format!("registry {} (last error: {e})", self.repo()),
            None => format!("registry {}", self.repo()),
        }
    }

    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        match self.lookup(digest) {
            Ok(Some(Kind::Blob(n))) => Some(n),
            Ok(Some(Kind::Manifest(b))) => Some(b.len() as u64),
            Ok(None) => None,
            Err(e) => {
                self.remember_error(&e);
                None
            }
        }
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ContentError> {
        match self.lookup(digest)? {
            Some(Kind::Manifest(b)) => Ok(Box::new(io::Cursor::new(b.as_ref().clone()))),
            Some(Kind::Blob(_)) => {
                let stream = self
                    .rt
                    .block_on(self.client.get_blob_stream(self.repo(), digest))??;
                Ok(Box::new(StreamReader {
                    stream,
                    buf: Bytes::new(),
                    rt: &self.rt,
                }))
            }
            None => Err(ContentError::NotFound {
                digest: digest.clone(),
                store: self.describe(),
            }),
        }
    }
}

impl Layout for RemoteImage {
    /// `{"schemaVersion":2,"mediaType":<OCI index>,"manifests":[<root>]}`,
    /// with the tag as `org.opencontainers.image.ref.name`.
    fn index_json(&self) -> Result<Vec<u8>, ContentError> {
        let mut root = self.root.clone();
        if let Some(t) = self.reference.tag() {
            root.annotations
                .insert(json::ANNOTATION_OCI_REF_NAME.to_string(), t.to_string());
        }
        Ok(Index::single(root).to_json())
    }
}

/// A blocking `Read` over a [`BlobStream`].
struct StreamReader<'a> {
    stream: BlobStream,
    buf: Bytes,
    rt: &'a BlockingRuntime,
}

impl Read for StreamReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.buf.is_empty() {
            let next = self
                .rt
                .block_on(self.stream.next())
                .map_err(io::Error::other)?;
            match next {
                None => return Ok(0),
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => {
                    let kind = match e {
                        ContentError::DigestMismatch { .. } => io::ErrorKind::InvalidData,
                        _ => io::ErrorKind::Other,
                    };
                    return Err(io::Error::new(kind, e));
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}
