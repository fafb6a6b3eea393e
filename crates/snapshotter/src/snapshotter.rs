//! The snapshotter: containerd's snapshot operations over the metadata store
//! and the `snapshots/<id>/{fs,work}` directories, with the remote-layer seam
//! consulted on `Prepare`.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::{debug, info, warn};

use crate::error::{Result, SnapshotError};
use crate::filter::Filters;
use crate::metadata::{Entry, MetaStore};
use crate::mounts::{compute_mounts, mount_points, mounts_under, unmount};
use crate::remote::{
    DeferAll, REMOTE_LABEL, REMOTE_LABEL_VALUE, REMOTE_NAMESPACE_LABEL, RemoteLayers,
    RemoteOutcome, RemotePrepare, RemoteSnapshot, TARGET_SNAPSHOT_LABEL,
};
use crate::types::{Info, Kind, LabelUpdate, Labels, Mount, Usage};
use crate::usage::disk_usage;

/// A containerd snapshotter storing its state under `<root>/snapshotter`.
///
/// Every method takes the request's containerd namespace, if it had one.
/// Without it (containerd 1.6 never forwards the `containerd-namespace` header
/// to proxy plugins; its keys carry the namespace as `<ns>/<seq>/<key>`),
/// lookups search all namespaces and need the key to be unique there, listing
/// covers all namespaces, and new snapshots go to the namespace in front of
/// the key (or `default`). Cloning is cheap and shares the state.
pub struct Snapshotter<R: RemoteLayers = DeferAll> {
    inner: Arc<Inner<R>>,
}

impl<R: RemoteLayers> Clone for Snapshotter<R> {
    fn clone(&self) -> Self {
        Snapshotter {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<R> {
    snapshots: PathBuf,
    meta: MetaStore,
    remote: R,
    /// Held while a snapshot directory is being created and stored, and while
    /// cleanup decides which directories are orphans.
    dirs: Mutex<()>,
    cleanup: tokio::sync::Mutex<()>,
    cleanup_pending: AtomicBool,
    tmp_counter: AtomicU64,
}

impl<R> Inner<R> {
    fn dir(&self, id: u64) -> PathBuf {
        self.snapshots.join(id.to_string())
    }

    fn fs(&self, id: u64) -> PathBuf {
        self.dir(id).join("fs")
    }

    fn work(&self, id: u64) -> PathBuf {
        self.dir(id).join("work")
    }
}

/// The namespace a new snapshot is stored in: the request's, else the one
/// containerd's metadata layer puts in front of its keys (`<ns>/<seq>/<key>`;
/// containerd 1.6 does not forward the namespace header to proxy plugins),
/// else containerd's `default`.
pub(crate) fn create_namespace(namespace: Option<&str>, key: &str) -> String {
    if let Some(ns) = namespace.filter(|ns| !ns.is_empty()) {
        return ns.to_string();
    }
    let mut parts = key.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(ns), Some(seq), Some(rest))
            if !ns.is_empty()
                && !rest.is_empty()
                && !seq.is_empty()
                && seq.bytes().all(|b| b.is_ascii_digit()) =>
        {
            ns.to_string()
        }
        _ => "default".to_string(),
    }
}

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .mode(mode)
        .create(path)
        .map_err(SnapshotError::io("creating", path))
}

fn is_remote(labels: &Labels) -> bool {
    labels.contains_key(REMOTE_LABEL)
}

impl<R: RemoteLayers> Snapshotter<R> {
    /// Open (or create) the snapshotter state under `<root>/snapshotter`:
    /// `metadata.db` and `snapshots/`.
    pub fn open(root: &Path, remote: R) -> Result<Self> {
        let base = root.join("snapshotter");
        let snapshots = base.join("snapshots");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&snapshots)
            .map_err(SnapshotError::io("creating", &snapshots))?;
        let meta = MetaStore::open(&base.join("metadata.db"))?;
        Ok(Snapshotter {
            inner: Arc::new(Inner {
                snapshots,
                meta,
                remote,
                dirs: Mutex::new(()),
                cleanup: tokio::sync::Mutex::new(()),
                cleanup_pending: AtomicBool::new(false),
                tmp_counter: AtomicU64::new(0),
            }),
        })
    }

    /// The remote-layer implementation.
    pub fn remote(&self) -> &R {
        &self.inner.remote
    }

    /// `<root>/snapshotter/snapshots`.
    pub fn snapshots_dir(&self) -> &Path {
        &self.inner.snapshots
    }

    /// Run blocking work (database, file system) off the async threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner<R>) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        match tokio::task::spawn_blocking(move || f(&inner)).await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Create an active or view snapshot with its directories.
    async fn create(
        &self,
        ns: &str,
        key: &str,
        kind: Kind,
        parent: Option<&str>,
        labels: Labels,
    ) -> Result<(Entry, Vec<Entry>)> {
        let (ns, key, parent) = (ns.to_string(), key.to_string(), parent.map(str::to_string));
        self.blocking(move |inner| {
            let _guard = inner.dirs.lock().unwrap_or_else(|e| e.into_inner());
            let n = inner.tmp_counter.fetch_add(1, Ordering::Relaxed);
            let tmp = inner
                .snapshots
                .join(format!("new-{}-{n}", std::process::id()));
            let placed: std::cell::Cell<Option<PathBuf>> = std::cell::Cell::new(None);
            let result = (|| {
                mkdir(&tmp, 0o700)?;
                mkdir(&tmp.join("fs"), 0o755)?;
                if kind == Kind::Active {
                    mkdir(&tmp.join("work"), 0o711)?;
                }
                inner
                    .meta
                    .create(&ns, &key, kind, parent.as_deref(), labels, |id| {
                        let dest = inner.dir(id);
                        std::fs::rename(&tmp, &dest)
                            .map_err(SnapshotError::io("renaming into", &dest))?;
                        placed.set(Some(dest));
                        Ok(())
                    })
            })();
            match result {
                Ok(created) => Ok((
                    Entry {
                        namespace: ns,
                        key,
                        record: created.record,
                    },
                    created.ancestors,
                )),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    if let Some(dest) = placed.take() {
                        let _ = std::fs::remove_dir_all(dest);
                    }
                    Err(e)
                }
            }
        })
        .await
    }

    fn remote_snapshot(&self, e: &Entry) -> RemoteSnapshot {
        RemoteSnapshot {
            namespace: e.namespace.clone(),
            name: e.key.clone(),
            labels: e.record.labels.clone(),
            mountpoint: self.inner.fs(e.record.id),
        }
    }

    /// Mounts of a snapshot, after checking every remote ancestor.
    async fn mounts_of(&self, entry: &Entry, ancestors: &[Entry]) -> Result<Vec<Mount>> {
        for a in ancestors.iter().filter(|a| is_remote(&a.record.labels)) {
            self.inner
                .remote
                .check(&self.remote_snapshot(a))
                .await
                .map_err(|source| SnapshotError::Unavailable {
                    key: a.key.clone(),
                    source,
                })?;
        }
        let parents: Vec<PathBuf> = ancestors
            .iter()
            .map(|a| self.inner.fs(a.record.id))
            .collect();
        let id = entry.record.id;
        Ok(compute_mounts(
            entry.record.kind,
            &self.inner.fs(id),
            &self.inner.work(id),
            &parents,
        ))
    }

    /// Create an active snapshot `key` on top of `parent` and return its mounts.
    ///
    /// With the [`TARGET_SNAPSHOT_LABEL`] label the remote implementation is
    /// asked first; if it provides the layer, the snapshot is committed under
    /// the target and [`SnapshotError::TargetExists`] is returned (containerd
    /// then skips the layer).
    pub async fn prepare(
        &self,
        namespace: Option<&str>,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
    ) -> Result<Vec<Mount>> {
        let ns = &create_namespace(namespace, key);
        let target = labels
            .get(TARGET_SNAPSHOT_LABEL)
            .filter(|t| !t.is_empty())
            .cloned();
        if let Some(target) = &target {
            // Without a namespace header (containerd 1.6) containerd looks the
            // target up by its bare name, across namespaces: a layer committed
            // for one namespace is the layer of every namespace, as upstream
            // keeps one backend snapshot per target.
            let scope = namespace.map(|_| ns.to_string());
            let t = target.clone();
            let existing = self
                .blocking(move |i| i.meta.resolve(scope.as_deref(), &t))
                .await;
            if existing.is_ok_and(|e| e.record.kind == Kind::Committed) {
                return Err(SnapshotError::TargetExists {
                    target: target.clone(),
                });
            }
        }
        let (entry, ancestors) = self
            .create(ns, key, Kind::Active, parent, labels.clone())
            .await?;
        if let Some(target) = target {
            let shared = namespace.is_none();
            self.try_remote(&entry, &ancestors, parent, &target, shared)
                .await?;
            info!(key, parent, "defer-snapshot-runtime");
        }
        self.mounts_of(&entry, &ancestors).await
    }

    /// Ask the remote implementation for the layer. `Ok` means defer.
    async fn try_remote(
        &self,
        entry: &Entry,
        ancestors: &[Entry],
        parent: Option<&str>,
        target: &str,
        shared: bool,
    ) -> Result<()> {
        let fs = self.inner.fs(entry.record.id);
        let request = RemotePrepare {
            namespace: entry.namespace.clone(),
            key: entry.key.clone(),
            target: target.to_string(),
            parent: parent.map(str::to_string),
            labels: entry.record.labels.clone(),
            mountpoint: fs.clone(),
            parent_dirs: ancestors
                .iter()
                .map(|a| self.inner.fs(a.record.id))
                .collect(),
        };
        let outcome = self.inner.remote.prepare_remote(&request).await;
        let (mounted, extra) = match outcome {
            Ok(RemoteOutcome::Defer) => return Ok(()),
            Ok(RemoteOutcome::Mounted { labels }) => (true, labels),
            Ok(RemoteOutcome::LocalDone { labels }) => (false, labels),
            Err(source) => {
                self.discard(entry, false).await;
                return Err(SnapshotError::Remote {
                    key: entry.key.clone(),
                    source,
                });
            }
        };
        let mut labels = entry.record.labels.clone();
        labels.extend(extra);
        if mounted {
            labels.insert(REMOTE_LABEL.into(), REMOTE_LABEL_VALUE.into());
            labels.insert(REMOTE_NAMESPACE_LABEL.into(), entry.namespace.clone());
        }
        let (ns, key, name) = (
            entry.namespace.clone(),
            entry.key.clone(),
            target.to_string(),
        );
        let committed = self
            .blocking(move |inner| {
                let usage = if mounted {
                    Usage::default()
                } else {
                    disk_usage(&fs)?
                };
                // Shared targets (no namespace header): a concurrent prepare in
                // another namespace may have committed the layer meanwhile.
                let _guard = inner.dirs.lock().unwrap_or_else(|e| e.into_inner());
                if shared {
                    match inner.meta.resolve(None, &name) {
                        Ok(e) if e.record.kind == Kind::Committed => {
                            return Err(SnapshotError::AlreadyExists { key: name });
                        }
                        Err(SnapshotError::FailedPrecondition { .. }) => {
                            return Err(SnapshotError::AlreadyExists { key: name });
                        }
                        _ => {}
                    }
                }
                inner.meta.commit(&ns, &key, &name, labels, usage)
            })
            .await;
        match committed {
            Ok(_) => {
                let msg = if mounted {
                    "remote-snapshot-prepared"
                } else {
                    "local-snapshot-prepared"
                };
                info!(key = %entry.key, target, parent, "{msg}");
                Err(SnapshotError::TargetExists {
                    target: target.to_string(),
                })
            }
            Err(SnapshotError::AlreadyExists { .. }) => {
                debug!(key = %entry.key, target, "target appeared while preparing; dropping the new snapshot");
                self.discard(entry, mounted).await;
                Err(SnapshotError::TargetExists {
                    target: target.to_string(),
                })
            }
            Err(e) => {
                self.discard(entry, mounted).await;
                Err(e)
            }
        }
    }

    /// Drop an active snapshot that failed to become remote.
    async fn discard(&self, entry: &Entry, mounted: bool) {
        if mounted {
            let fs = self.inner.fs(entry.record.id);
            if let Err(e) = self.inner.remote.remove(&fs).await {
                warn!(key = %entry.key, path = %fs.display(), error = %e, "unmounting a discarded remote layer");
            }
        }
        let (ns, key) = (entry.namespace.clone(), entry.key.clone());
        if let Err(e) = self.blocking(move |i| i.meta.remove(&ns, &key)).await {
            warn!(key = %entry.key, error = %e, "removing a discarded snapshot");
        }
        self.schedule_cleanup();
    }

    /// Create a read-only view `key` of `parent` and return its mounts.
    pub async fn view(
        &self,
        namespace: Option<&str>,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
    ) -> Result<Vec<Mount>> {
        let ns = &create_namespace(namespace, key);
        let (entry, ancestors) = self.create(ns, key, Kind::View, parent, labels).await?;
        self.mounts_of(&entry, &ancestors).await
    }

    /// Mounts of an active snapshot or view.
    pub async fn mounts(&self, namespace: Option<&str>, key: &str) -> Result<Vec<Mount>> {
        let (ns, k) = (namespace.map(str::to_string), key.to_string());
        let (entry, ancestors) = self
            .blocking(move |i| i.meta.with_ancestors(ns.as_deref(), &k))
            .await?;
        if entry.record.kind == Kind::Committed {
            return Err(SnapshotError::precondition(
                key,
                "is committed; only active snapshots and views have mounts",
            ));
        }
        self.mounts_of(&entry, &ancestors).await
    }

    /// Commit the active snapshot `key` as `name` (same content), replacing
    /// its labels with `labels`.
    pub async fn commit(
        &self,
        namespace: Option<&str>,
        name: &str,
        key: &str,
        labels: Labels,
    ) -> Result<()> {
        let (ns, key, name) = (
            namespace.map(str::to_string),
            key.to_string(),
            name.to_string(),
        );
        self.blocking(move |inner| {
            let entry = inner.meta.resolve(ns.as_deref(), &key)?;
            if entry.record.kind != Kind::Active {
                return Err(SnapshotError::precondition(
                    &key,
                    format!(
                        "is a {} snapshot, not an active one",
                        entry.record.kind.as_str()
                    ),
                ));
            }
            let usage = disk_usage(&inner.fs(entry.record.id))?;
            inner
                .meta
                .commit(&entry.namespace, &key, &name, labels, usage)?;
            Ok(())
        })
        .await
    }

    /// Remove a snapshot's metadata; its directory goes in the background
    /// cleanup (or the next [`Self::cleanup`]).
    pub async fn remove(&self, namespace: Option<&str>, key: &str) -> Result<()> {
        let (ns, key) = (namespace.map(str::to_string), key.to_string());
        self.blocking(move |inner| {
            let entry = inner.meta.resolve(ns.as_deref(), &key)?;
            inner.meta.remove(&entry.namespace, &key)?;
            Ok(())
        })
        .await?;
        self.schedule_cleanup();
        Ok(())
    }

    /// Information on a snapshot.
    pub async fn stat(&self, namespace: Option<&str>, key: &str) -> Result<Info> {
        let (ns, k) = (namespace.map(str::to_string), key.to_string());
        let entry = self
            .blocking(move |i| i.meta.resolve(ns.as_deref(), &k))
            .await?;
        Ok(entry.record.info(&entry.key))
    }

    /// Change a snapshot's labels (the only mutable part of its info).
    pub async fn update(
        &self,
        namespace: Option<&str>,
        key: &str,
        labels: Labels,
        how: LabelUpdate,
    ) -> Result<Info> {
        let (ns, key) = (namespace.map(str::to_string), key.to_string());
        self.blocking(move |inner| {
            let entry = inner.meta.resolve(ns.as_deref(), &key)?;
            let record = inner
                .meta
                .update_labels(&entry.namespace, &key, labels, &how)?;
            Ok(record.info(&key))
        })
        .await
    }

    /// Disk usage: measured now for an active snapshot, as measured at commit
    /// for a committed one, zero for a view.
    pub async fn usage(&self, namespace: Option<&str>, key: &str) -> Result<Usage> {
        let (ns, key) = (namespace.map(str::to_string), key.to_string());
        self.blocking(move |inner| {
            let entry = inner.meta.resolve(ns.as_deref(), &key)?;
            match entry.record.kind {
                Kind::Active => disk_usage(&inner.fs(entry.record.id)),
                Kind::Committed => Ok(entry.record.usage.unwrap_or_default()),
                Kind::View => Ok(Usage::default()),
            }
        })
        .await
    }

    /// Snapshots matching any of `filters` (see [`crate::filter`]).
    pub async fn list(&self, namespace: Option<&str>, filters: &[String]) -> Result<Vec<Info>> {
        let filters = Filters::parse(filters)?;
        let ns = namespace.map(str::to_string);
        let entries = self.blocking(move |i| i.meta.list(ns.as_deref())).await?;
        Ok(entries
            .iter()
            .map(|e| e.record.info(&e.key))
            .filter(|info| filters.matches(info))
            .collect())
    }

    /// Delete the directories of removed snapshots. A directory with anything
    /// still mounted in it is asked to unmount through the remote
    /// implementation and is kept if that does not help.
    pub async fn cleanup(&self) -> Result<()> {
        let _running = self.inner.cleanup.lock().await;
        self.inner.cleanup_pending.store(false, Ordering::SeqCst);
        let orphans = self
            .blocking(|inner| {
                let _guard = inner.dirs.lock().unwrap_or_else(|e| e.into_inner());
                let live = inner.meta.ids()?;
                let dir = &inner.snapshots;
                let mut out = Vec::new();
                for entry in std::fs::read_dir(dir).map_err(SnapshotError::io("listing", dir))? {
                    let entry = entry.map_err(SnapshotError::io("listing", dir))?;
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    if name.parse::<u64>().is_ok_and(|id| live.contains(&id)) {
                        continue;
                    }
                    out.push(entry.path());
                }
                Ok(out)
            })
            .await?;
        let mut first_error = None;
        for dir in orphans {
            let mut mounted = mounts_under(&mount_points()?, &dir);
            if !mounted.is_empty() {
                for m in &mounted {
                    if let Err(e) = self.inner.remote.remove(m).await {
                        warn!(path = %m.display(), error = %e, "unmounting the layer of a removed snapshot");
                    }
                }
                mounted = mounts_under(&mount_points()?, &dir);
            }
            if !mounted.is_empty() {
                warn!(dir = %dir.display(), mounts = ?mounted, "keeping a removed snapshot's directory: still mounted");
                continue;
            }
            let d = dir.clone();
            match self
                .blocking(move |_| {
                    std::fs::remove_dir_all(&d).map_err(SnapshotError::io("removing", &d))
                })
                .await
            {
                Ok(()) => debug!(dir = %dir.display(), "removed snapshot directory"),
                Err(e) => {
                    warn!(error = %e, "cleanup");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Start a cleanup in the background unless one is already waiting.
    fn schedule_cleanup(&self) {
        if self.inner.cleanup_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.cleanup().await {
                warn!(error = %e, "background cleanup");
            }
        });
    }

    /// Startup: force-unmount whatever is left mounted under `snapshots/` (a
    /// previous daemon's layers) and mount every remote snapshot again. A
    /// failure stops startup unless `allow_invalid` is set.
    pub async fn restore_remote(&self, allow_invalid: bool) -> Result<()> {
        for m in mounts_under(&mount_points()?, &self.inner.snapshots) {
            info!(path = %m.display(), "unmounting a mount left by a previous daemon");
            if let Err(e) = unmount(&m, true) {
                warn!(error = %e, "force unmount");
            }
        }
        let entries = self.blocking(|i| i.meta.list(None)).await?;
        for e in entries
            .iter()
            .filter(|e| e.record.kind == Kind::Committed && is_remote(&e.record.labels))
        {
            let snapshot = self.remote_snapshot(e);
            match self.inner.remote.restore(&snapshot).await {
                Ok(()) => {
                    info!(namespace = %e.namespace, name = %e.key, "restored remote snapshot")
                }
                Err(source) if allow_invalid => {
                    warn!(namespace = %e.namespace, name = %e.key, error = %source, "remote snapshot left invalid")
                }
                Err(source) => {
                    return Err(SnapshotError::Remote {
                        key: e.key.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Shutdown on `SIGINT`: release every mount under `snapshots/` through the
    /// remote implementation, then detach whatever is still there.
    pub async fn unmount_all(&self) -> Result<()> {
        for m in mounts_under(&mount_points()?, &self.inner.snapshots) {
            if let Err(e) = self.inner.remote.unmount(&m).await {
                warn!(path = %m.display(), error = %e, "remote unmount");
            }
        }
        for m in mounts_under(&mount_points()?, &self.inner.snapshots) {
            unmount(&m, false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::create_namespace;

    #[test]
    fn namespace_for_new_snapshots() {
        assert_eq!(create_namespace(Some("hdr"), "other/1/k"), "hdr");
        assert_eq!(
            create_namespace(None, "k8s.io/12/extract-1 sha256:ab"),
            "k8s.io"
        );
        assert_eq!(create_namespace(None, "ns/1/a/b"), "ns");
        assert_eq!(create_namespace(Some(""), "plain"), "default");
        assert_eq!(create_namespace(None, "sha256:ab"), "default");
        assert_eq!(create_namespace(None, "a/b/c"), "default");
        assert_eq!(create_namespace(None, "ns/1/"), "default");
    }
}
