//! containerd's Snapshots service (through containerd, so that its metadata
//! store records the snapshots), its Diff service and its Images service.

use std::collections::BTreeMap;

use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, Info as SnapshotInfo, PrepareSnapshotRequest, RemoveSnapshotRequest,
    StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, GetImageRequest, Image, UpdateImageRequest,
};
use containerd_client::types::{Descriptor as WireDescriptor, Mount};
use soci_format::json::Descriptor;
use tonic::Code;

use crate::client::Containerd;
use crate::error::{CtrdError, Result};

/// What a `Prepare` that names a target chain ID gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// An active snapshot to apply the layer into.
    Mounts(Vec<Mount>),
    /// The snapshotter (or containerd) reported that the target, or the
    /// key, already exists.
    AlreadyExists,
}

fn labels_map(labels: &BTreeMap<String, String>) -> std::collections::HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A descriptor in containerd's wire form.
pub fn wire_descriptor(d: &Descriptor) -> WireDescriptor {
    WireDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: d
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

impl Containerd {
    fn snapshots(&self) -> SnapshotsClient<tonic::transport::Channel> {
        SnapshotsClient::new(self.channel())
    }

    /// `Prepare(key, parent)` on `snapshotter` with `labels`.
    pub async fn prepare_snapshot(
        &self,
        snapshotter: &str,
        key: &str,
        parent: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Prepared> {
        let req = PrepareSnapshotRequest {
            snapshotter: snapshotter.to_string(),
            key: key.to_string(),
            parent: parent.unwrap_or_default().to_string(),
            labels: labels_map(labels),
        };
        match self.snapshots().prepare(self.request(req)).await {
            Ok(r) => Ok(Prepared::Mounts(r.into_inner().mounts)),
            Err(s) if s.code() == Code::AlreadyExists => Ok(Prepared::AlreadyExists),
            Err(s) => Err(self.rpc_error(
                "prepare snapshot",
                format!("{key:?} on snapshotter {snapshotter}"),
                &s,
            )),
        }
    }

    /// `Stat(key)` on `snapshotter`, or `None` when there is no such snapshot.
    pub async fn stat_snapshot(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> Result<Option<SnapshotInfo>> {
        let req = StatSnapshotRequest {
            snapshotter: snapshotter.to_string(),
            key: key.to_string(),
        };
        match self.snapshots().stat(self.request(req)).await {
            Ok(r) => Ok(r.into_inner().info),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(self.rpc_error(
                "stat snapshot",
                format!("{key:?} on snapshotter {snapshotter}"),
                &s,
            )),
        }
    }

    /// `Commit(name, key)` on `snapshotter` with `labels`.
    pub async fn commit_snapshot(
        &self,
        snapshotter: &str,
        name: &str,
        key: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        let req = CommitSnapshotRequest {
            snapshotter: snapshotter.to_string(),
            name: name.to_string(),
            key: key.to_string(),
            labels: labels_map(labels),
        };
        self.snapshots()
            .commit(self.request(req))
            .await
            .map_err(|s| {
                self.rpc_error(
                    "commit snapshot",
                    format!("{key:?} as {name} on snapshotter {snapshotter}"),
                    &s,
                )
            })?;
        Ok(())
    }

    /// `Remove(key)` on `snapshotter`; a missing snapshot is not an error.
    pub async fn remove_snapshot(&self, snapshotter: &str, key: &str) -> Result<()> {
        let req = RemoveSnapshotRequest {
            snapshotter: snapshotter.to_string(),
            key: key.to_string(),
        };
        match self.snapshots().remove(self.request(req)).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(self.rpc_error(
                "remove snapshot",
                format!("{key:?} on snapshotter {snapshotter}"),
                &s,
            )),
        }
    }

    /// Apply the layer blob `layer` (which must be in the content store) onto
    /// `mounts` with containerd's applier (it decompresses and handles
    /// whiteouts); returns the descriptor of what was applied, whose digest
    /// is the layer's diff ID.
    pub async fn apply_layer(
        &self,
        layer: &Descriptor,
        mounts: Vec<Mount>,
    ) -> Result<WireDescriptor> {
        let req = ApplyRequest {
            diff: Some(wire_descriptor(layer)),
            mounts,
            ..ApplyRequest::default()
        };
        let resp = DiffClient::new(self.channel())
            .apply(self.request(req))
            .await
            .map_err(|s| self.rpc_error("apply layer", &layer.digest, &s))?;
        resp.into_inner().applied.ok_or_else(|| CtrdError::Rpc {
            operation: "apply layer",
            object: layer.digest.clone(),
            code: Code::Internal,
            message: "containerd's answer has no applied descriptor".into(),
            hint: String::new(),
        })
    }

    /// The image record `name`, or `None`.
    pub async fn get_image(&self, name: &str) -> Result<Option<Image>> {
        match ImagesClient::new(self.channel())
            .get(self.request(GetImageRequest {
                name: name.to_string(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().image),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(self.rpc_error("get image", name, &s)),
        }
    }

    /// Create the image record `name` pointing at `target`, or point an
    /// existing one at it (replacing its labels with `labels`).
    pub async fn put_image(
        &self,
        name: &str,
        target: &Descriptor,
        labels: &BTreeMap<String, String>,
    ) -> Result<Image> {
        let image = Image {
            name: name.to_string(),
            labels: labels_map(labels),
            target: Some(wire_descriptor(target)),
            ..Image::default()
        };
        let mut images = ImagesClient::new(self.channel());
        // Create; on a name clash update; if the image vanished in between,
        // create again (bounded: a clash every time means something is wrong).
        let mut last = None;
        for _ in 0..3 {
            match images
                .create(self.request(CreateImageRequest {
                    image: Some(image.clone()),
                    ..CreateImageRequest::default()
                }))
                .await
            {
                Ok(r) => return Ok(r.into_inner().image.unwrap_or(image)),
                Err(s) if s.code() == Code::AlreadyExists => {}
                Err(s) => return Err(self.rpc_error("create image", name, &s)),
            }
            match images
                .update(self.request(UpdateImageRequest {
                    image: Some(image.clone()),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["target".into(), "labels".into()],
                    }),
                    ..UpdateImageRequest::default()
                }))
                .await
            {
                Ok(r) => return Ok(r.into_inner().image.unwrap_or(image)),
                Err(s) if s.code() == Code::NotFound => last = Some(s),
                Err(s) => return Err(self.rpc_error("update image", name, &s)),
            }
        }
        let s = last.expect("the loop ran");
        Err(self.rpc_error("create image", name, &s))
    }
}
