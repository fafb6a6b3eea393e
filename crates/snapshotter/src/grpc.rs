//! The only place that sees wire types: the generated `Snapshots` service
//! implemented over [`Snapshotter`], and the mapping of [`SnapshotError`] onto
//! gRPC codes that containerd's `errdefs` turns back into its error kinds.

use std::pin::Pin;
use std::time::SystemTime;

use soci_snapshots_api::snapshots as pb;
use soci_snapshots_api::{Snapshots, SnapshotsServer};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::debug;

use crate::error::SnapshotError;
use crate::remote::RemoteLayers;
use crate::snapshotter::Snapshotter;
use crate::types::{Info, Kind, LabelUpdate, Labels, Mount};

/// gRPC metadata key carrying the containerd namespace.
pub const NAMESPACE_HEADER: &str = "containerd-namespace";

/// How many infos one `List` response message carries.
const LIST_BATCH: usize = 100;

impl From<SnapshotError> for Status {
    fn from(e: SnapshotError) -> Status {
        let msg = e.to_string();
        match e {
            SnapshotError::NotFound { .. } => Status::not_found(msg),
            SnapshotError::AlreadyExists { .. } | SnapshotError::TargetExists { .. } => {
                Status::already_exists(msg)
            }
            SnapshotError::FailedPrecondition { .. } => Status::failed_precondition(msg),
            SnapshotError::InvalidArgument(_) => Status::invalid_argument(msg),
            SnapshotError::Unavailable { .. } => Status::unavailable(msg),
            SnapshotError::Unsupported(_) => Status::unimplemented(msg),
            SnapshotError::Remote { .. }
            | SnapshotError::Db { .. }
            | SnapshotError::Corrupt { .. }
            | SnapshotError::Io { .. }
            | SnapshotError::Serve { .. } => Status::internal(msg),
        }
    }
}

/// The `containerd.services.snapshots.v1.Snapshots` service over a [`Snapshotter`].
pub struct SnapshotService<R: RemoteLayers> {
    snapshotter: Snapshotter<R>,
}

impl<R: RemoteLayers> SnapshotService<R> {
    /// Serve `snapshotter`.
    pub fn new(snapshotter: Snapshotter<R>) -> Self {
        SnapshotService { snapshotter }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> SnapshotsServer<Self> {
        SnapshotsServer::new(self)
    }
}

/// The request's namespace; also logs the request at debug level.
fn namespace<T: std::fmt::Debug>(req: &Request<T>) -> Option<String> {
    let ns = req
        .metadata()
        .get(NAMESPACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    debug!(namespace = ns.as_deref(), request = ?req.get_ref(), "snapshots request");
    ns
}

fn parent(p: &str) -> Option<&str> {
    (!p.is_empty()).then_some(p)
}

fn labels(map: std::collections::HashMap<String, String>) -> Labels {
    map.into_iter().collect()
}

fn mounts(m: Vec<Mount>) -> Vec<soci_snapshots_api::Mount> {
    m.into_iter()
        .map(|m| soci_snapshots_api::Mount {
            r#type: m.kind,
            source: m.source,
            target: String::new(),
            options: m.options,
        })
        .collect()
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

fn info(i: Info) -> pb::Info {
    pb::Info {
        name: i.name,
        parent: i.parent.unwrap_or_default(),
        kind: match i.kind {
            Kind::View => pb::Kind::View,
            Kind::Active => pb::Kind::Active,
            Kind::Committed => pb::Kind::Committed,
        } as i32,
        created_at: Some(timestamp(i.created)),
        updated_at: Some(timestamp(i.updated)),
        labels: i.labels.into_iter().collect(),
    }
}

/// Turn an update mask into a label update. containerd only lets labels change.
fn label_update(name: &str, paths: &[String]) -> Result<LabelUpdate, SnapshotError> {
    if paths.is_empty() {
        return Ok(LabelUpdate::ReplaceAll);
    }
    let mut keys = Vec::new();
    for p in paths {
        if p == "labels" {
            return Ok(LabelUpdate::ReplaceAll);
        }
        match p.strip_prefix("labels.") {
            Some(k) if !k.is_empty() => keys.push(k.to_string()),
            _ => {
                return Err(SnapshotError::InvalidArgument(format!(
                    "cannot update {p:?} field on snapshot {name:?}"
                )));
            }
        }
    }
    Ok(LabelUpdate::Keys(keys))
}

type ListStream = Pin<Box<dyn Stream<Item = Result<pb::ListSnapshotsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<R: RemoteLayers> Snapshots for SnapshotService<R> {
    async fn prepare(
        &self,
        req: Request<pb::PrepareSnapshotRequest>,
    ) -> Result<Response<pb::PrepareSnapshotResponse>, Status> {
        let ns = namespace(&req);
        let r = req.into_inner();
        let m = self
            .snapshotter
            .prepare(ns.as_deref(), &r.key, parent(&r.parent), labels(r.labels))
            .await?;
        Ok(Response::new(pb::PrepareSnapshotResponse {
            mounts: mounts(m),
        }))
    }

    async fn view(
        &self,
        req: Request<pb::ViewSnapshotRequest>,
    ) -> Result<Response<pb::ViewSnapshotResponse>, Status> {
        let ns = namespace(&req);
        let r = req.into_inner();
        let m = self
            .snapshotter
            .view(ns.as_deref(), &r.key, parent(&r.parent), labels(r.labels))
            .await?;
        Ok(Response::new(pb::ViewSnapshotResponse {
            mounts: mounts(m),
        }))
    }

    async fn mounts(
        &self,
        req: Request<pb::MountsRequest>,
    ) -> Result<Response<pb::MountsResponse>, Status> {
        let ns = namespace(&req);
        let m = self
            .snapshotter
            .mounts(ns.as_deref(), &req.get_ref().key)
            .await?;
        Ok(Response::new(pb::MountsResponse { mounts: mounts(m) }))
    }

    async fn commit(
        &self,
        req: Request<pb::CommitSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let ns = namespace(&req);
        let r = req.into_inner();
        self.snapshotter
            .commit(ns.as_deref(), &r.name, &r.key, labels(r.labels))
            .await?;
        Ok(Response::new(()))
    }

    async fn remove(
        &self,
        req: Request<pb::RemoveSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let ns = namespace(&req);
        self.snapshotter
            .remove(ns.as_deref(), &req.get_ref().key)
            .await?;
        Ok(Response::new(()))
    }

    async fn stat(
        &self,
        req: Request<pb::StatSnapshotRequest>,
    ) -> Result<Response<pb::StatSnapshotResponse>, Status> {
        let ns = namespace(&req);
        let i = self
            .snapshotter
            .stat(ns.as_deref(), &req.get_ref().key)
            .await?;
        Ok(Response::new(pb::StatSnapshotResponse {
            info: Some(info(i)),
        }))
    }

    async fn update(
        &self,
        req: Request<pb::UpdateSnapshotRequest>,
    ) -> Result<Response<pb::UpdateSnapshotResponse>, Status> {
        let ns = namespace(&req);
        let r = req.into_inner();
        let i = r
            .info
            .ok_or_else(|| SnapshotError::InvalidArgument("update without snapshot info".into()))?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let how = label_update(&i.name, &paths)?;
        let updated = self
            .snapshotter
            .update(ns.as_deref(), &i.name, labels(i.labels), how)
            .await?;
        Ok(Response::new(pb::UpdateSnapshotResponse {
            info: Some(info(updated)),
        }))
    }

    type ListStream = ListStream;

    async fn list(
        &self,
        req: Request<pb::ListSnapshotsRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let ns = namespace(&req);
        let infos = self
            .snapshotter
            .list(ns.as_deref(), &req.get_ref().filters)
            .await?;
        let mut batches = Vec::new();
        let mut it = infos.into_iter().map(info).peekable();
        while it.peek().is_some() {
            let info: Vec<pb::Info> = it.by_ref().take(LIST_BATCH).collect();
            batches.push(Ok(pb::ListSnapshotsResponse { info }));
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(batches))))
    }

    async fn usage(
        &self,
        req: Request<pb::UsageRequest>,
    ) -> Result<Response<pb::UsageResponse>, Status> {
        let ns = namespace(&req);
        let u = self
            .snapshotter
            .usage(ns.as_deref(), &req.get_ref().key)
            .await?;
        Ok(Response::new(pb::UsageResponse {
            size: u.size,
            inodes: u.inodes,
        }))
    }

    async fn cleanup(&self, req: Request<pb::CleanupRequest>) -> Result<Response<()>, Status> {
        namespace(&req);
        self.snapshotter.cleanup().await?;
        Ok(Response::new(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_masks() {
        assert_eq!(label_update("s", &[]).unwrap(), LabelUpdate::ReplaceAll);
        assert_eq!(
            label_update("s", &["labels.a".into(), "labels.b.c".into()]).unwrap(),
            LabelUpdate::Keys(vec!["a".into(), "b.c".into()])
        );
        assert_eq!(
            label_update("s", &["labels.a".into(), "labels".into()]).unwrap(),
            LabelUpdate::ReplaceAll
        );
        assert!(matches!(
            label_update("s", &["parent".into()]),
            Err(SnapshotError::InvalidArgument(_))
        ));
    }

    #[test]
    fn error_codes() {
        let code = |e: SnapshotError| Status::from(e).code();
        assert_eq!(
            code(SnapshotError::NotFound { key: "k".into() }),
            tonic::Code::NotFound
        );
        assert_eq!(
            code(SnapshotError::AlreadyExists { key: "k".into() }),
            tonic::Code::AlreadyExists
        );
        let s = Status::from(SnapshotError::TargetExists {
            target: "sha256:ab".into(),
        });
        assert_eq!(
            (s.code(), s.message()),
            (
                tonic::Code::AlreadyExists,
                r#"target snapshot "sha256:ab": already exists"#
            )
        );
        assert_eq!(
            code(SnapshotError::precondition("k", "x")),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            code(SnapshotError::InvalidArgument("x".into())),
            tonic::Code::InvalidArgument
        );
    }
}
