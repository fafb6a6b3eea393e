//! The Snapshots service over a real unix socket, driven by containerd-client's
//! `SnapshotsClient`: lifecycle, error codes, namespaces and the remote seam
//! (with the recording fake).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::*;
use containerd_client::types::Mount;
use soci_snapshotter::remote::fake::{Call, FakeRemote, MARKER};
use soci_snapshotter::remote::{REMOTE_LABEL, REMOTE_NAMESPACE_LABEL, TARGET_SNAPSHOT_LABEL};
use soci_snapshotter::{Config, DeferAll, RemoteLayers, RemoteOutcome, Shutdown, Snapshotter};
use tonic::transport::Channel;
use tonic::{Code, Request};

/// A daemon served in-process on a temporary socket.
struct Server {
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<Shutdown>>,
    task: Option<tokio::task::JoinHandle<soci_snapshotter::Result<Shutdown>>>,
    client: SnapshotsClient<Channel>,
}

impl Server {
    async fn start<R: RemoteLayers>(remote: R) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), remote).await
    }

    async fn start_in<R: RemoteLayers>(dir: tempfile::TempDir, remote: R) -> Server {
        let config = Config {
            root: dir.path().join("root"),
            address: dir.path().join("run/snap.sock"),
            ..Config::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let c = config.clone();
        let task = tokio::spawn(async move {
            soci_snapshotter::serve(&c, remote, async {
                rx.await.unwrap_or(Shutdown::LeaveMounts)
            })
            .await
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !config.address.exists() {
            assert!(!task.is_finished(), "server exited early: {:?}", task.await);
            assert!(
                tokio::time::Instant::now() < deadline,
                "socket never appeared"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let channel = containerd_client::connect(&config.address).await.unwrap();
        Server {
            dir,
            stop: Some(tx),
            task: Some(task),
            client: SnapshotsClient::new(channel),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn snapshots(&self) -> PathBuf {
        self.root().join("snapshotter/snapshots")
    }

    async fn stop(mut self) -> tempfile::TempDir {
        self.stop
            .take()
            .unwrap()
            .send(Shutdown::LeaveMounts)
            .unwrap();
        let how = self.task.take().unwrap().await.unwrap().unwrap();
        assert_eq!(how, Shutdown::LeaveMounts);
        assert!(
            !self.dir.path().join("run/snap.sock").exists(),
            "socket left behind"
        );
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn req<T>(ns: &str, t: T) -> Request<T> {
    let mut r = Request::new(t);
    r.metadata_mut()
        .insert("containerd-namespace", ns.parse().unwrap());
    r
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn prep(key: &str, parent: &str, l: &[(&str, &str)]) -> PrepareSnapshotRequest {
    PrepareSnapshotRequest {
        key: key.into(),
        parent: parent.into(),
        labels: labels(l),
        ..Default::default()
    }
}

async fn prepare(
    c: &mut SnapshotsClient<Channel>,
    ns: &str,
    key: &str,
    parent: &str,
) -> Vec<Mount> {
    c.prepare(req(ns, prep(key, parent, &[])))
        .await
        .unwrap()
        .into_inner()
        .mounts
}

async fn commit(c: &mut SnapshotsClient<Channel>, ns: &str, name: &str, key: &str) {
    c.commit(req(
        ns,
        CommitSnapshotRequest {
            name: name.into(),
            key: key.into(),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
}

async fn stat(
    c: &mut SnapshotsClient<Channel>,
    ns: &str,
    key: &str,
) -> Result<Info, tonic::Status> {
    c.stat(req(
        ns,
        StatSnapshotRequest {
            key: key.into(),
            ..Default::default()
        },
    ))
    .await
    .map(|r| r.into_inner().info.unwrap())
}

async fn remove(
    c: &mut SnapshotsClient<Channel>,
    ns: &str,
    key: &str,
) -> Result<(), tonic::Status> {
    c.remove(req(
        ns,
        RemoveSnapshotRequest {
            key: key.into(),
            ..Default::default()
        },
    ))
    .await
    .map(|_| ())
}

async fn list(
    c: &mut SnapshotsClient<Channel>,
    r: Request<ListSnapshotsRequest>,
) -> Result<Vec<Info>, tonic::Status> {
    let mut stream = c.list(r).await?.into_inner();
    let mut out = Vec::new();
    while let Some(msg) = stream.message().await? {
        out.extend(msg.info);
    }
    Ok(out)
}

async fn list_ns(c: &mut SnapshotsClient<Channel>, ns: &str, filters: &[&str]) -> Vec<Info> {
    let filters = filters.iter().map(|s| s.to_string()).collect();
    list(
        c,
        req(
            ns,
            ListSnapshotsRequest {
                filters,
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap()
}

async fn cleanup(c: &mut SnapshotsClient<Channel>) {
    c.cleanup(Request::new(CleanupRequest::default()))
        .await
        .unwrap();
}

fn opt(m: &Mount, prefix: &str) -> String {
    m.options
        .iter()
        .find_map(|o| o.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {m:?}"))
        .to_string()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Wait (bounded) for the background cleanup after a Remove.
async fn wait_for_entries(dir: &Path, want: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = entries(dir);
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} has {got:?}, want {want:?}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_over_a_unix_socket() {
    let s = Server::start(DeferAll).await;
    let mut c = s.client.clone();
    let snaps = s.snapshots();

    // A base snapshot is a bind mount of its own fs directory.
    let m = prepare(&mut c, "ns", "extract-1", "").await;
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].r#type.as_str(), m[0].options.clone()),
        ("bind", vec!["rw".to_string(), "rbind".into()])
    );
    let base_fs = PathBuf::from(&m[0].source);
    assert_eq!(base_fs, snaps.join("1/fs"));
    assert!(snaps.join("1/work").is_dir());
    std::fs::write(base_fs.join("hello"), vec![1u8; 10_000]).unwrap();
    let u = c
        .usage(req(
            "ns",
            UsageRequest {
                key: "extract-1".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(u.size >= 10_000 && u.inodes == 2, "{u:?}");

    commit(&mut c, "ns", "layer-1", "extract-1").await;
    let info = stat(&mut c, "ns", "layer-1").await.unwrap();
    assert_eq!(
        (info.name.as_str(), info.kind, info.parent.as_str()),
        ("layer-1", Kind::Committed as i32, "")
    );
    assert!(info.created_at.is_some() && info.updated_at.is_some());
    assert_eq!(
        stat(&mut c, "ns", "extract-1").await.unwrap_err().code(),
        Code::NotFound
    );
    // Usage of a committed snapshot is what was measured at commit.
    let u2 = c
        .usage(req(
            "ns",
            UsageRequest {
                key: "layer-1".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u, u2);

    // A view of one parent binds the parent read-only.
    let v = c
        .view(req(
            "ns",
            ViewSnapshotRequest {
                key: "view".into(),
                parent: "layer-1".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .mounts;
    assert_eq!(v[0].r#type, "bind");
    assert_eq!(PathBuf::from(&v[0].source), base_fs);
    assert_eq!(v[0].options, ["ro", "rbind"]);

    // A second layer, then a container snapshot on two parents: overlay.
    prepare(&mut c, "ns", "extract-2", "layer-1").await;
    commit(&mut c, "ns", "layer-2", "extract-2").await;
    let m = prepare(&mut c, "ns", "container", "layer-2").await;
    assert_eq!(
        (m[0].r#type.as_str(), m[0].source.as_str()),
        ("overlay", "overlay")
    );
    let id = 4; // ids: 1 base, 2 view, 3 layer-2, 4 container
    assert_eq!(
        opt(&m[0], "upperdir="),
        snaps.join(format!("{id}/fs")).display().to_string()
    );
    assert_eq!(
        opt(&m[0], "workdir="),
        snaps.join(format!("{id}/work")).display().to_string()
    );
    assert_eq!(
        opt(&m[0], "lowerdir="),
        format!("{}:{}", snaps.join("3/fs").display(), base_fs.display())
    );
    let again = c
        .mounts(req(
            "ns",
            MountsRequest {
                key: "container".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    assert_eq!(again.into_inner().mounts, m);

    // List, with and without filters.
    assert_eq!(list_ns(&mut c, "ns", &[]).await.len(), 4);
    let active = list_ns(&mut c, "ns", &["kind==active"]).await;
    assert_eq!(
        active.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["container"]
    );
    let children = list_ns(&mut c, "ns", &["parent==layer-1"]).await;
    assert_eq!(children.len(), 2);

    // Update labels: a field path sets one, an empty mask replaces all.
    let mut info = stat(&mut c, "ns", "layer-2").await.unwrap();
    info.labels = labels(&[("containerd.io/gc.root", "x"), ("other", "y")]);
    let upd = |info: &Info, paths: &[&str]| UpdateSnapshotRequest {
        info: Some(info.clone()),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|s| s.to_string()).collect(),
        }),
        ..Default::default()
    };
    let got = c
        .update(req("ns", upd(&info, &["labels.containerd.io/gc.root"])))
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!(got.labels, labels(&[("containerd.io/gc.root", "x")]));
    let got = c
        .update(req("ns", upd(&info, &[])))
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!(got.labels, info.labels);
    assert_eq!(
        list_ns(&mut c, "ns", &[r#"labels."containerd.io/gc.root"==x"#])
            .await
            .len(),
        1
    );

    // Parents with children stay; removal goes child first, dirs go in cleanup.
    assert_eq!(
        remove(&mut c, "ns", "layer-1").await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    for k in ["container", "view", "layer-2", "layer-1"] {
        remove(&mut c, "ns", k).await.unwrap();
    }
    assert!(list_ns(&mut c, "ns", &[]).await.is_empty());
    cleanup(&mut c).await;
    assert!(entries(&snaps).is_empty(), "{:?}", entries(&snaps));
    s.stop().await;
}

fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(e) => e.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes_match_containerd() {
    let s = Server::start(DeferAll).await;
    let mut c = s.client.clone();
    assert_eq!(
        stat(&mut c, "ns", "nope").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        remove(&mut c, "ns", "nope").await.unwrap_err().code(),
        Code::NotFound
    );
    prepare(&mut c, "ns", "a", "").await;
    assert_eq!(
        code(c.prepare(req("ns", prep("a", "", &[]))).await),
        Code::AlreadyExists
    );
    // Parent missing, or not committed.
    assert_eq!(
        code(c.prepare(req("ns", prep("b", "nope", &[]))).await),
        Code::NotFound
    );
    assert_eq!(
        code(c.prepare(req("ns", prep("b", "a", &[]))).await),
        Code::InvalidArgument
    );
    commit(&mut c, "ns", "c", "a").await;
    // Committed snapshots have no mounts and cannot be committed again.
    assert_eq!(
        code(
            c.mounts(req(
                "ns",
                MountsRequest {
                    key: "c".into(),
                    ..Default::default()
                }
            ))
            .await
        ),
        Code::FailedPrecondition
    );
    let commit_req = |name: &str, key: &str| CommitSnapshotRequest {
        name: name.into(),
        key: key.into(),
        ..Default::default()
    };
    assert_eq!(
        code(c.commit(req("ns", commit_req("d", "c"))).await),
        Code::FailedPrecondition
    );
    c.view(req(
        "ns",
        ViewSnapshotRequest {
            key: "v".into(),
            parent: "c".into(),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    assert_eq!(
        code(c.commit(req("ns", commit_req("d", "v"))).await),
        Code::FailedPrecondition
    );
    prepare(&mut c, "ns", "a2", "c").await;
    assert_eq!(
        code(c.commit(req("ns", commit_req("c", "a2"))).await),
        Code::AlreadyExists
    );
    assert_eq!(
        code(c.commit(req("ns", commit_req("x", "nope"))).await),
        Code::NotFound
    );
    // Only labels can be updated.
    let info = stat(&mut c, "ns", "c").await.unwrap();
    let bad = UpdateSnapshotRequest {
        info: Some(info),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["parent".into()],
        }),
        ..Default::default()
    };
    assert_eq!(code(c.update(req("ns", bad)).await), Code::InvalidArgument);
    let r = list(
        &mut c,
        req(
            "ns",
            ListSnapshotsRequest {
                filters: vec!["name~=x".into()],
                ..Default::default()
            },
        ),
    )
    .await;
    assert_eq!(r.unwrap_err().code(), Code::InvalidArgument);
    // Without a namespace header (containerd 1.6) the key's prefix is the namespace.
    c.prepare(Request::new(prep("other/7/z", "", &[])))
        .await
        .unwrap();
    assert_eq!(list_ns(&mut c, "other", &[]).await.len(), 1);
    c.prepare(Request::new(prep("z", "", &[]))).await.unwrap();
    assert_eq!(stat(&mut c, "default", "z").await.unwrap().name, "z");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_are_isolated() {
    let s = Server::start(DeferAll).await;
    let mut c = s.client.clone();
    let m1 = prepare(&mut c, "one", "k", "").await;
    let m2 = prepare(&mut c, "two", "k", "").await;
    assert_ne!(m1[0].source, m2[0].source);
    commit(&mut c, "one", "layer", "k").await;
    assert_eq!(
        stat(&mut c, "two", "layer").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        stat(&mut c, "two", "k").await.unwrap().kind,
        Kind::Active as i32
    );
    assert_eq!(list_ns(&mut c, "one", &[]).await.len(), 1);
    // Without a namespace (containerd's garbage collector): everything, and
    // unique keys resolve.
    let all = list(&mut c, Request::new(ListSnapshotsRequest::default()))
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    c.remove(Request::new(RemoveSnapshotRequest {
        key: "layer".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    assert_eq!(
        stat(&mut c, "one", "layer").await.unwrap_err().code(),
        Code::NotFound
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_layer_mounted_is_committed_under_the_target() {
    let fake = FakeRemote::default();
    let s = Server::start(fake.clone()).await;
    let mut c = s.client.clone();
    let chain = "sha256:1111";
    fake.push(Ok(RemoteOutcome::Mounted {
        labels: [(
            "containerd.io/snapshot/remote/has.soci.index.digest".to_string(),
            "true".to_string(),
        )]
        .into(),
    }));
    let l = [
        (TARGET_SNAPSHOT_LABEL, chain),
        ("containerd.io/snapshot/cri.layer-digest", "sha256:aa"),
    ];
    let err = c
        .prepare(req("ns", prep("extract-1 sha256:1111", "", &l)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(
        err.message(),
        format!("target snapshot \"{chain}\": already exists")
    );
    assert_eq!(
        fake.calls(),
        [Call::Prepare {
            key: "extract-1 sha256:1111".into(),
            target: chain.into()
        }]
    );
    let info = stat(&mut c, "ns", chain).await.unwrap();
    assert_eq!(info.kind, Kind::Committed as i32);
    assert_eq!(
        info.labels.get(REMOTE_LABEL).map(String::as_str),
        Some("remote snapshot")
    );
    assert_eq!(
        info.labels.get(REMOTE_NAMESPACE_LABEL).map(String::as_str),
        Some("ns")
    );
    assert_eq!(
        info.labels
            .get("containerd.io/snapshot/remote/has.soci.index.digest")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        info.labels
            .get("containerd.io/snapshot/cri.layer-digest")
            .map(String::as_str),
        Some("sha256:aa")
    );
    assert_eq!(
        stat(&mut c, "ns", "extract-1 sha256:1111")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert!(s.snapshots().join("1/fs").join(MARKER).exists());

    // Asking again for an existing target does not reach the implementation.
    let err = c
        .prepare(req("ns", prep("extract-2 sha256:1111", "", &l)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(fake.calls().len(), 1);

    // A container on top checks its remote ancestor first.
    let m = prepare(&mut c, "ns", "container", chain).await;
    assert_eq!(m[0].r#type, "overlay");
    assert_eq!(fake.calls().last(), Some(&Call::Check(chain.into())));
    *fake.fail_check.lock().unwrap() = Some("fuse connection lost".into());
    let err = c
        .mounts(req(
            "ns",
            MountsRequest {
                key: "container".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(
        err.message().contains("fuse connection lost"),
        "{}",
        err.message()
    );
    *fake.fail_check.lock().unwrap() = None;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_local_defer_and_failure() {
    let fake = FakeRemote::default();
    let s = Server::start(fake.clone()).await;
    let mut c = s.client.clone();

    // Downloaded locally: committed without the remote label, usage measured.
    fake.push(Ok(RemoteOutcome::LocalDone {
        labels: Default::default(),
    }));
    let err = c
        .prepare(req(
            "ns",
            prep("x1", "", &[(TARGET_SNAPSHOT_LABEL, "sha256:l")]),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let info = stat(&mut c, "ns", "sha256:l").await.unwrap();
    assert!(!info.labels.contains_key(REMOTE_LABEL));
    let u = c
        .usage(req(
            "ns",
            UsageRequest {
                key: "sha256:l".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.inodes, 2);

    // Deferred: ordinary mounts, the active snapshot stays for containerd.
    fake.push(Ok(RemoteOutcome::Defer));
    let m = c
        .prepare(req(
            "ns",
            prep("x2", "sha256:l", &[(TARGET_SNAPSHOT_LABEL, "sha256:d")]),
        ))
        .await
        .unwrap()
        .into_inner()
        .mounts;
    assert_eq!(m[0].r#type, "overlay");
    assert_eq!(
        stat(&mut c, "ns", "x2").await.unwrap().kind,
        Kind::Active as i32
    );
    commit(&mut c, "ns", "sha256:d", "x2").await;

    // Failed: the error is reported and nothing is left behind.
    fake.push(Err("registry unreachable".into()));
    let err = c
        .prepare(req(
            "ns",
            prep("x3", "", &[(TARGET_SNAPSHOT_LABEL, "sha256:f")]),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert!(err.message().contains("registry unreachable"));
    assert_eq!(
        stat(&mut c, "ns", "x3").await.unwrap_err().code(),
        Code::NotFound
    );
    wait_for_entries(&s.snapshots(), &["1", "2"]).await;
    s.stop().await;
}

/// Needs root (mounts a tmpfs): a removed snapshot's directory is kept while
/// something is mounted in it, the removal hook is asked first, and it goes
/// once the mount is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_never_deletes_a_mounted_directory() {
    let fake = FakeRemote::default();
    let s = Server::start(fake.clone()).await;
    let mut c = s.client.clone();
    let m = prepare(&mut c, "ns", "a", "").await;
    let fs = PathBuf::from(&m[0].source);
    std::fs::write(fs.join("keep"), b"x").unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&fs)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs (this test needs root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let guard = Unmount(fs.clone());
    remove(&mut c, "ns", "a").await.unwrap();
    cleanup(&mut c).await;
    assert!(
        fake.calls().contains(&Call::Remove(fs.clone())),
        "{:?}",
        fake.calls()
    );
    assert!(fs.is_dir(), "a mounted directory was deleted");
    drop(guard);
    cleanup(&mut c).await;
    assert!(!fs.exists());
    assert!(entries(&s.snapshots()).is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_remote_snapshots() {
    let fake = FakeRemote::default();
    let s = Server::start(fake.clone()).await;
    let mut c = s.client.clone();
    fake.push(Ok(RemoteOutcome::Mounted {
        labels: Default::default(),
    }));
    let err = c
        .prepare(req(
            "ns",
            prep("x", "", &[(TARGET_SNAPSHOT_LABEL, "sha256:r")]),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    prepare(&mut c, "ns", "plain", "").await;
    let dir = s.stop().await;

    // The same root again: the remote snapshot is mounted again, and the
    // metadata survived.
    let fake2 = FakeRemote::default();
    let s = Server::start_in(dir, fake2.clone()).await;
    assert_eq!(fake2.calls(), [Call::Restore("sha256:r".into())]);
    let mut c = s.client.clone();
    assert_eq!(
        stat(&mut c, "ns", "plain").await.unwrap().kind,
        Kind::Active as i32
    );
    let dir = s.stop().await;

    // Without remote support the restore fails, unless invalid mounts are allowed.
    let root = dir.path().join("root");
    let sn = Snapshotter::open(&root, DeferAll).unwrap();
    assert!(sn.restore_remote(false).await.is_err());
    sn.restore_remote(true).await.unwrap();
}
