//! containerd's content store read as a blocking [`BlobSource`], for the
//! indexer (`soci convert` of an image in containerd).

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Mutex;

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::{ReadContentRequest, ReadContentResponse};
use soci_content::{BlobSource, ContentError};
use soci_format::Digest;
use tokio::runtime::Handle;
use tonic::Streaming;

use crate::client::Containerd;

/// Blobs of one containerd namespace. Every call waits on `handle`'s
/// runtime, so use it from threads that are not runtime workers.
pub struct ContentSource {
    ctrd: Containerd,
    handle: Handle,
    sizes: Mutex<HashMap<Digest, Option<u64>>>,
}

impl ContentSource {
    /// Read through `ctrd`, waiting on `handle` (the runtime `ctrd` was connected on).
    pub fn new(ctrd: Containerd, handle: Handle) -> ContentSource {
        ContentSource {
            ctrd,
            handle,
            sizes: Mutex::new(HashMap::new()),
        }
    }
}

impl BlobSource for ContentSource {
    fn describe(&self) -> String {
        format!(
            "containerd content store (namespace {} at {})",
            self.ctrd.namespace(),
            self.ctrd.address()
        )
    }

    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        if let Some(s) = self.sizes.lock().expect("poisoned").get(digest) {
            return *s;
        }
        let size = match self
            .handle
            .block_on(self.ctrd.content_info(&digest.to_string()))
        {
            Ok(info) => info.and_then(|i| u64::try_from(i.size).ok()),
            // Not cached: a transient error must not read as "missing" for good.
            Err(_) => return None,
        };
        self.sizes
            .lock()
            .expect("poisoned")
            .insert(digest.clone(), size);
        size
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ContentError> {
        let ctrd = &self.ctrd;
        let stream = self
            .handle
            .block_on(async {
                ContentClient::new(ctrd.channel())
                    .read(ctrd.request(ReadContentRequest {
                        digest: digest.to_string(),
                        offset: 0,
                        size: 0,
                    }))
                    .await
            })
            .map_err(|s| {
                if s.code() == tonic::Code::NotFound {
                    ContentError::NotFound {
                        digest: digest.clone(),
                        store: self.describe(),
                    }
                } else {
                    ContentError::Io {
                        action: "read from containerd",
                        path: PathBuf::from(digest.to_string()),
                        source: io::Error::other(s.message().to_string()),
                    }
                }
            })?
            .into_inner();
        Ok(Box::new(ContentReader {
            stream,
            buf: Vec::new(),
            pos: 0,
            handle: &self.handle,
        }))
    }
}

struct ContentReader<'a> {
    stream: Streaming<ReadContentResponse>,
    buf: Vec<u8>,
    pos: usize,
    handle: &'a Handle,
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos >= self.buf.len() {
            match self.handle.block_on(self.stream.message()) {
                Ok(Some(m)) => {
                    self.buf = m.data;
                    self.pos = 0;
                }
                Ok(None) => return Ok(0),
                Err(s) => return Err(io::Error::other(s.message().to_string())),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
