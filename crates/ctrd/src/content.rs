//! containerd's content store: write a blob (with its expected digest and
//! size, under a `ref` that names the ingest), look blobs up, set labels.

use std::collections::BTreeMap;

use bytes::Bytes;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::{
    AbortRequest, Info, InfoRequest, ListContentRequest, UpdateRequest, WriteAction,
    WriteContentRequest, WriteContentResponse,
};
use futures_util::{Stream, StreamExt};
use soci_format::json::{self, Descriptor};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Streaming};

use crate::client::Containerd;
use crate::error::{CtrdError, Result};

/// Data is sent to containerd in messages of at most this many bytes
/// (containerd accepts up to 16 MiB per message).
const WRITE_CHUNK: usize = 1 << 20;

/// What [`Containerd::write_content`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The blob was written and committed.
    Written,
    /// The namespace already had the blob; its labels were updated instead.
    Existed,
}

/// The ingest `ref` containerd's own fetcher uses for a descriptor
/// (`manifest-<digest>`, `index-…`, `layer-…`, `config-…`, `unknown-…`), so
/// that a concurrent `ctr pull` of the same blob waits on the same ingest.
pub fn ref_key(desc: &Descriptor) -> String {
    let mt = desc.media_type.as_str();
    let kind = if json::is_manifest_type(mt) {
        "manifest"
    } else if json::is_index_type(mt) {
        "index"
    } else if json::is_layer_type(mt) {
        "layer"
    } else if json::is_config_type(mt) {
        "config"
    } else {
        "unknown"
    };
    format!("{kind}-{}", desc.digest)
}

impl Containerd {
    fn content(&self) -> ContentClient<tonic::transport::Channel> {
        ContentClient::new(self.channel())
    }

    /// A blob's info (size, labels), or `None` when the namespace lacks it.
    pub async fn content_info(&self, digest: &str) -> Result<Option<Info>> {
        match self
            .content()
            .info(self.request(InfoRequest {
                digest: digest.to_string(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().info),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(self.rpc_error("get content info of", digest, &s)),
        }
    }

    /// Every blob of the namespace: digest and size.
    pub async fn list_content(&self) -> Result<Vec<(String, i64)>> {
        let mut stream = self
            .content()
            .list(self.request(ListContentRequest { filters: vec![] }))
            .await
            .map_err(|s| self.rpc_error("list content of", self.namespace(), &s))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(msg) = stream
            .message()
            .await
            .map_err(|s| self.rpc_error("list content of", self.namespace(), &s))?
        {
            out.extend(msg.info.into_iter().map(|i| (i.digest, i.size)));
        }
        Ok(out)
    }

    /// Set (add or replace) `labels` on a blob, leaving its other labels alone.
    pub async fn update_content_labels(
        &self,
        digest: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        self.content()
            .update(self.request(UpdateRequest {
                info: Some(Info {
                    digest: digest.to_string(),
                    labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    ..Info::default()
                }),
                update_mask: Some(prost_types::FieldMask { paths }),
            }))
            .await
            .map_err(|s| self.rpc_error("set labels on content", digest, &s))?;
        Ok(())
    }

    /// Write a blob held in memory; see [`Self::write_content`].
    pub async fn write_content_bytes(
        &self,
        desc: &Descriptor,
        labels: &BTreeMap<String, String>,
        data: &[u8],
    ) -> Result<WriteOutcome> {
        let data = Bytes::copy_from_slice(data);
        let stream = futures_util::stream::iter(std::iter::once(Ok(data)));
        self.write_content(desc, labels, stream).await
    }

    /// Write the blob `desc` from `data` into the content store under the
    /// ingest [`ref_key`], committing it with `labels` (containerd checks
    /// the size and digest). When the namespace already has the blob,
    /// nothing is sent and `labels` are set on it instead.
    ///
    /// An error from `data` aborts the ingest and is returned as it is.
    pub async fn write_content<S>(
        &self,
        desc: &Descriptor,
        labels: &BTreeMap<String, String>,
        data: S,
    ) -> Result<WriteOutcome>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
    {
        let reference = ref_key(desc);
        let mut data = data;
        // Another writer of the same blob (a concurrent pull) holds the ref:
        // wait for it as containerd's own client does, with a growing pause,
        // then find the blob written or take the ref over. Bounded in count
        // and time; the other writer's ingest is never aborted.
        let deadline = std::time::Instant::now() + LOCKED_WAIT;
        let mut pause = std::time::Duration::from_millis(16);
        let result = loop {
            match self
                .write_session(&reference, desc, labels, &mut data)
                .await
            {
                Err(Failure::Locked(s)) => {
                    if std::time::Instant::now() + pause > deadline {
                        return Err(self.rpc_error("write content", &desc.digest, &s));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
                other => break other,
            }
        };
        match result {
            Ok(()) => Ok(WriteOutcome::Written),
            Err(Failure::Locked(s)) => Err(self.rpc_error("write content", &desc.digest, &s)),
            Err(Failure::Exists) => {
                self.update_content_labels(&desc.digest, labels).await?;
                Ok(WriteOutcome::Existed)
            }
            Err(Failure::Source(e)) => {
                self.abort_ingest(&reference).await;
                Err(e)
            }
            Err(Failure::Rpc(s)) => {
                self.abort_ingest(&reference).await;
                Err(self.rpc_error("write content", &desc.digest, &s))
            }
        }
    }

    /// One `Write` session: stat, write from offset 0 (which also discards
    /// what an interrupted earlier ingest of the same ref left), commit.
    /// Every request is answered before the next is sent.
    async fn write_session<S>(
        &self,
        reference: &str,
        desc: &Descriptor,
        labels: &BTreeMap<String, String>,
        data: &mut S,
    ) -> Result<(), Failure>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
    {
        let (tx, rx) = mpsc::channel::<WriteContentRequest>(2);
        let base = WriteContentRequest {
            r#ref: reference.to_string(),
            total: desc.size,
            expected: desc.digest.clone(),
            ..WriteContentRequest::default()
        };
        send(
            &tx,
            WriteContentRequest {
                action: WriteAction::Stat as i32,
                ..base.clone()
            },
        )
        .await?;
        let mut responses: Streaming<WriteContentResponse> = self
            .content()
            .write(self.request(ReceiverStream::new(rx)))
            .await
            .map_err(Failure::from_status)
            .map_err(Failure::locked)?
            .into_inner();
        answer(&mut responses).await.map_err(Failure::locked)?;
        // containerd takes the ref's lock at the first write: an empty write
        // at offset 0 takes it (and truncates what an interrupted earlier
        // ingest of this ref left) before any data is consumed, so that a
        // locked ref can be waited for and the write started over.
        let mut offset: i64 = 0;
        write(&tx, &mut responses, &base, &mut offset, Vec::new())
            .await
            .map_err(Failure::locked)?;

        let mut pending: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
        while let Some(chunk) = data.next().await {
            pending.extend_from_slice(&chunk.map_err(Failure::Source)?);
            while pending.len() >= WRITE_CHUNK {
                let rest = pending.split_off(WRITE_CHUNK);
                let full = std::mem::replace(&mut pending, rest);
                write(&tx, &mut responses, &base, &mut offset, full).await?;
            }
        }
        if !pending.is_empty() {
            write(&tx, &mut responses, &base, &mut offset, pending).await?;
        }
        send(
            &tx,
            WriteContentRequest {
                action: WriteAction::Commit as i32,
                offset,
                labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                ..base
            },
        )
        .await?;
        answer(&mut responses).await?;
        drop(tx);
        // containerd ends the call once our side is closed.
        while responses
            .message()
            .await
            .map_err(Failure::from_status)?
            .is_some()
        {}
        Ok(())
    }

    async fn abort_ingest(&self, reference: &str) {
        if let Err(s) = self
            .content()
            .abort(self.request(AbortRequest {
                r#ref: reference.to_string(),
            }))
            .await
            && s.code() != Code::NotFound
        {
            tracing::warn!(reference, error = %s.message(), "aborting a failed content ingest");
        }
    }
}

/// Why a write session stopped.
enum Failure {
    /// containerd already has the blob.
    Exists,
    /// The data source failed.
    Source(CtrdError),
    /// containerd refused.
    Rpc(tonic::Status),
    /// Another writer holds the ingest ref; nothing was sent yet.
    Locked(tonic::Status),
}

/// How long a write waits for another writer of the same blob.
const LOCKED_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

impl Failure {
    /// containerd answers `Unavailable` ("ref ... locked") while another
    /// writer holds the ref.
    fn locked(self) -> Failure {
        match self {
            Failure::Rpc(s)
                if matches!(s.code(), Code::Unavailable | Code::Unknown)
                    && s.message().contains("locked") =>
            {
                Failure::Locked(s)
            }
            f => f,
        }
    }

    fn from_status(s: tonic::Status) -> Failure {
        if s.code() == Code::AlreadyExists {
            Failure::Exists
        } else {
            Failure::Rpc(s)
        }
    }
}

/// Send one `WRITE` of `data` at `offset` and wait for its answer.
async fn write(
    tx: &mpsc::Sender<WriteContentRequest>,
    responses: &mut Streaming<WriteContentResponse>,
    base: &WriteContentRequest,
    offset: &mut i64,
    data: Vec<u8>,
) -> Result<(), Failure> {
    let n = data.len() as i64;
    send(
        tx,
        WriteContentRequest {
            action: WriteAction::Write as i32,
            offset: *offset,
            data,
            ..base.clone()
        },
    )
    .await?;
    answer(responses).await?;
    *offset += n;
    Ok(())
}

async fn send(
    tx: &mpsc::Sender<WriteContentRequest>,
    req: WriteContentRequest,
) -> Result<(), Failure> {
    tx.send(req).await.map_err(|_| {
        Failure::Rpc(tonic::Status::unavailable(
            "containerd closed the write stream",
        ))
    })
}

async fn answer(
    responses: &mut Streaming<WriteContentResponse>,
) -> Result<WriteContentResponse, Failure> {
    match responses.message().await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(Failure::Rpc(tonic::Status::unavailable(
            "containerd ended the write stream early",
        ))),
        Err(s) => Err(Failure::from_status(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_keys_follow_containerd() {
        let d = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let k = |mt: &str| ref_key(&Descriptor::new(mt, d, 1));
        assert_eq!(k(json::MEDIA_TYPE_OCI_MANIFEST), format!("manifest-{d}"));
        assert_eq!(k(json::MEDIA_TYPE_DOCKER_MANIFEST), format!("manifest-{d}"));
        assert_eq!(k(json::MEDIA_TYPE_OCI_INDEX), format!("index-{d}"));
        assert_eq!(
            k(json::MEDIA_TYPE_DOCKER_MANIFEST_LIST),
            format!("index-{d}")
        );
        assert_eq!(k(json::MEDIA_TYPE_OCI_LAYER_GZIP), format!("layer-{d}"));
        assert_eq!(k(json::MEDIA_TYPE_DOCKER_LAYER_GZIP), format!("layer-{d}"));
        assert_eq!(k(json::MEDIA_TYPE_OCI_CONFIG), format!("config-{d}"));
        assert_eq!(k(json::MEDIA_TYPE_DOCKER_CONFIG), format!("config-{d}"));
        assert_eq!(k("application/octet-stream"), format!("unknown-{d}"));
    }
}
