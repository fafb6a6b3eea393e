//! The `soci-snapshotter-grpc` binary end to end: flags, socket handling and
//! signals, and a real containerd 1.6 + runc running a busybox image through it.
//!
//! The containerd test needs root, `containerd`, `ctr`, `runc`, `umoci` and
//! `busybox-static` (`scripts/deps.sh` installs them). It fails when they are
//! missing unless `SOCI_SKIP_CONTAINERD_TESTS=1` is set.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{ListSnapshotsRequest, PrepareSnapshotRequest};
use soci_testkit::{
    Containerd, Proc, UnmountOnDrop, mounts_under, require_containerd_setup, run, skipped, wait_for,
};
use tonic::Request;

const BIN: &str = env!("CARGO_BIN_EXE_soci-snapshotter-grpc");

/// Mount points at or below `dir`.
fn mounts(dir: &Path) -> Vec<PathBuf> {
    mounts_under(dir)
        .into_iter()
        .map(|(t, _)| PathBuf::from(t))
        .collect()
}

fn is_socket(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

fn start_daemon(dir: &Path, sock: &Path, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.arg("--address")
        .arg(format!("unix://{}", sock.display()))
        .arg("--root")
        .arg(dir.join("root"))
        .args(["--log-level", "debug"])
        .args(extra);
    let mut p = Proc::spawn("soci-snapshotter-grpc", &mut cmd, dir.join("soci.log"));
    wait_for("the daemon's socket", Duration::from_secs(30), || {
        p.assert_running();
        is_socket(sock)
    });
    p
}

async fn client(sock: &Path) -> SnapshotsClient<tonic::transport::Channel> {
    SnapshotsClient::new(containerd_client::connect(sock).await.unwrap())
}

fn ns_req<T>(t: T) -> Request<T> {
    req_in("test", t)
}

fn req_in<T>(ns: &str, t: T) -> Request<T> {
    let mut r = Request::new(t);
    r.metadata_mut()
        .insert("containerd-namespace", ns.parse().unwrap());
    r
}

/// [`req_in`] under containerd lease `lease`.
fn req_leased<T>(ns: &str, lease: &str, t: T) -> Request<T> {
    let mut r = req_in(ns, t);
    r.metadata_mut()
        .insert("containerd-lease", lease.parse().unwrap());
    r
}

/// Create containerd lease `id` in namespace `ns`: what is made under it is
/// kept from containerd's garbage collector until the lease is removed.
/// Returns the leases client.
async fn create_lease(
    channel: tonic::transport::Channel,
    ns: &str,
    id: &str,
) -> LeasesClient<tonic::transport::Channel> {
    use containerd_client::services::v1::CreateRequest;
    let mut leases = LeasesClient::new(channel);
    leases
        .create(req_in(
            ns,
            CreateRequest {
                id: id.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    leases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_setup_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sock_dir = dir.path().join("run/soci");
    let sock = sock_dir.join("soci.sock");
    // A stale socket path (here a plain file) is replaced.
    std::fs::create_dir_all(&sock_dir).unwrap();
    std::fs::write(&sock, b"stale").unwrap();
    let mut d = start_daemon(dir.path(), &sock, &[]);
    let mut c = client(&sock).await;
    c.prepare(ns_req(PrepareSnapshotRequest {
        key: "k".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    assert!(dir.path().join("root/snapshotter/metadata.db").is_file());
    assert!(dir.path().join("root/snapshotter/snapshots/1/fs").is_dir());
    // A client that keeps its connection open (as containerd does) must not
    // hold up the exit.
    let _idle = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    d.send("TERM");
    assert!(
        d.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        d.log_text()
    );
    assert!(!sock.exists(), "socket left behind");
    // JSON logs.
    let log = d.log_text();
    let first = log.lines().next().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{first}: {e}"));
    assert!(v.get("level").is_some(), "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_socket_dir_is_private_and_go_style_flags_and_env_work() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("new/dir/s.sock");
    let mut cmd = Command::new(BIN);
    cmd.arg(format!("-address={}", sock.display()))
        .env("SOCI_SNAPSHOTTER_ROOT", dir.path().join("envroot"))
        .env("SOCI_SNAPSHOTTER_LOG_LEVEL", "warn");
    let mut d = Proc::spawn(
        "soci-snapshotter-grpc",
        &mut cmd,
        dir.path().join("soci.log"),
    );
    wait_for("the socket", Duration::from_secs(30), || {
        d.assert_running();
        is_socket(&sock)
    });
    let mode = std::fs::metadata(sock.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    assert!(dir.path().join("envroot/snapshotter/metadata.db").is_file());
    d.send("INT");
    assert!(d.wait_exit(Duration::from_secs(20)).success());
}

#[test]
fn missing_explicit_config_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--address")
        .arg(dir.path().join("s.sock"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .args(["--config", "/nonexistent/soci/config.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/soci/config.toml"), "{err}");
    let out = Command::new(BIN)
        .args(["--address", "fd://"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// SIGTERM leaves layer mounts for the next start to replace; SIGINT unmounts
/// them. A tmpfs in a snapshot's `fs` stands in for a lazily loaded layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_unmounts_and_restart_clears_leftover_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let _unmount = UnmountOnDrop(dir.path().to_path_buf());
    let sock = dir.path().join("s.sock");
    let snapshots = dir.path().join("root/snapshotter/snapshots");
    let mut d = start_daemon(dir.path(), &sock, &[]);
    let mut c = client(&sock).await;
    c.prepare(ns_req(PrepareSnapshotRequest {
        key: "k".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    let fs = snapshots.join("1/fs");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&fs)
        .status()
        .unwrap();
    assert!(st.success(), "mounting a tmpfs (needs root)");
    d.send("TERM");
    assert!(d.wait_exit(Duration::from_secs(20)).success());
    assert_eq!(
        mounts(&snapshots),
        std::slice::from_ref(&fs),
        "SIGTERM must leave mounts"
    );

    let mut d = start_daemon(dir.path(), &sock, &[]);
    assert!(
        mounts(&snapshots).is_empty(),
        "restart must clear leftover mounts"
    );
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&fs)
        .status()
        .unwrap();
    assert!(st.success());
    d.send("INT");
    assert!(
        d.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        d.log_text()
    );
    assert!(mounts(&snapshots).is_empty(), "SIGINT must unmount");
}

// ---------------------------------------------------------------------------
// Real containerd.

fn containerd_prerequisites() -> bool {
    if skipped("the containerd tests of soci-snapshotter-grpc") {
        return false;
    }
    require_containerd_setup();
    true
}

/// The standard output of a command that must succeed.
fn run_ok(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

/// A one-layer busybox image as an OCI layout tar.
fn build_busybox_image(dir: &Path) -> PathBuf {
    let layout = dir.join("bb");
    let bundle = dir.join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&layout),
    );
    run_ok(
        Command::new("umoci")
            .args(["new", "--image"])
            .arg(format!("{}:latest", layout.display())),
    );
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
    );
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let busybox = run_ok(Command::new("sh").args(["-c", "command -v busybox"]));
    std::fs::copy(busybox.trim(), bin.join("busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "ls", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    run_ok(
        Command::new("umoci")
            .args(["repack", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
    );
    run_ok(
        Command::new("umoci")
            .args(["config", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .args([
                "--config.cmd",
                "/bin/sh",
                "--os",
                "linux",
                "--architecture",
                "amd64",
            ]),
    );
    let tar = dir.join("bb.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    tar
}

/// A namespace no other test or containerd on the machine uses.
fn unique_namespace() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("soci-e2e-{}-{nanos}", std::process::id())
}

#[test]
fn containerd_runs_busybox_through_soci() {
    if !containerd_prerequisites() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("soci-e2e")
        .tempdir_in("/tmp")
        .unwrap();
    let w = dir.path();
    // Unmount leftovers last (guards drop in reverse order of declaration).
    let _unmount = UnmountOnDrop(w.to_path_buf());
    let image_tar = build_busybox_image(w);

    let sock = w.join("soci.sock");
    let mut soci = start_daemon(w, &sock, &[]);

    // A namespace of our own: the runc shim shares /run/containerd paths.
    let ns = unique_namespace();
    let mut ctrd = Containerd::start(&w.join("ctd"), &sock, &ns);
    let image = "localhost/soci-e2e:latest";

    let plugins = ctrd.ctr_stdout(&["plugins", "ls"]);
    assert!(
        plugins
            .lines()
            .any(|l| l.contains("io.containerd.snapshotter.v1")
                && l.contains("soci")
                && l.contains("ok")),
        "soci proxy plugin not ok:\n{plugins}"
    );
    ctrd.ctr_stdout(&[
        "images",
        "import",
        "--snapshotter",
        "soci",
        "--base-name",
        "localhost/soci-e2e",
        image_tar.to_str().unwrap(),
    ]);

    // Run a container that prints a line.
    let out = ctrd.ctr_stdout(&[
        "run",
        "--rm",
        "--snapshotter",
        "soci",
        image,
        "run-rm",
        "/bin/sh",
        "-c",
        "echo hello-from-soci",
    ]);
    assert!(out.contains("hello-from-soci"), "container output: {out:?}");

    // A container that writes a file: it lands in its active snapshot's upper dir.
    let out = ctrd.ctr_stdout(&[
        "run",
        "--snapshotter",
        "soci",
        image,
        "keep",
        "/bin/sh",
        "-c",
        "echo written-in-container > /soci-e2e-file && echo done",
    ]);
    assert!(out.contains("done"), "{out:?}");
    let listing = ctrd.ctr_stdout(&["snapshots", "--snapshotter", "soci", "ls"]);
    let keep = listing
        .lines()
        .find(|l| l.starts_with("keep "))
        .unwrap_or_else(|| panic!("no keep snapshot:\n{listing}"));
    assert!(keep.contains("Active"), "{listing}");
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("sha256:") && l.contains("Committed")),
        "{listing}"
    );
    let mount = ctrd.ctr_stdout(&[
        "snapshots",
        "--snapshotter",
        "soci",
        "mounts",
        "/mnt",
        "keep",
    ]);
    let upper = mount
        .split([',', ' '])
        .find_map(|o| o.strip_prefix("upperdir="))
        .unwrap_or_else(|| panic!("no upperdir in {mount:?}"))
        .trim()
        .to_string();
    let snapshots = w.join("root/snapshotter/snapshots");
    assert!(
        Path::new(&upper).starts_with(&snapshots),
        "{upper} not under {}",
        snapshots.display()
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(&upper).join("soci-e2e-file")).unwrap(),
        "written-in-container\n"
    );
    assert!(mount.contains("lowerdir="), "{mount}");

    // The snapshotter's own view of it over gRPC (no namespace header: all).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let names: Vec<String> = rt.block_on(async {
        let mut c = client(&sock).await;
        let mut s = c
            .list(Request::new(ListSnapshotsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        let mut v = Vec::new();
        while let Some(m) = s.message().await.unwrap() {
            v.extend(m.info.into_iter().map(|i| i.name));
        }
        v
    });
    assert!(
        names
            .iter()
            .any(|n| n.starts_with(&format!("{ns}/")) && n.ends_with("/keep")),
        "{names:?}"
    );

    // Commit the container's active snapshot through containerd, then read
    // the written file back through a view of the committed snapshot. A lease
    // keeps containerd's garbage collector, which may run after any removal,
    // off the committed snapshot and the view, which nothing else references.
    const LEASE: &str = "soci-e2e-keep";
    let view_dir = w.join("keep-view");
    std::fs::create_dir_all(&view_dir).unwrap();
    let ctd_sock = ctrd.socket.clone();
    let view_mounts = rt.block_on(async {
        use containerd_client::services::v1::snapshots::{
            CommitSnapshotRequest, ViewSnapshotRequest,
        };
        let channel = containerd_client::connect(&ctd_sock).await.unwrap();
        create_lease(channel.clone(), &ns, LEASE).await;
        let mut c = SnapshotsClient::new(channel);
        c.commit(req_leased(
            &ns,
            LEASE,
            CommitSnapshotRequest {
                snapshotter: "soci".into(),
                name: "keep-committed".into(),
                key: "keep".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
        c.view(req_leased(
            &ns,
            LEASE,
            ViewSnapshotRequest {
                snapshotter: "soci".into(),
                key: "keep-view".into(),
                parent: "keep-committed".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .mounts
    });
    let listing = ctrd.ctr_stdout(&["snapshots", "--snapshotter", "soci", "ls"]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("keep-committed ") && l.contains("Committed")),
        "{listing}"
    );
    assert_eq!(view_mounts.len(), 1, "{view_mounts:?}");
    let m = &view_mounts[0];
    run_ok(
        Command::new("mount")
            .args(["-t", &m.r#type, &m.source])
            .arg(&view_dir)
            .args(["-o", &m.options.join(",")]),
    );
    let seen = std::fs::read_to_string(view_dir.join("soci-e2e-file"));
    let _ = Command::new("umount").arg(&view_dir).status();
    assert_eq!(seen.unwrap(), "written-in-container\n");
    ctrd.ctr_stdout(&["snapshots", "--snapshotter", "soci", "rm", "keep-view"]);
    ctrd.ctr_stdout(&["snapshots", "--snapshotter", "soci", "rm", "keep-committed"]);
    ctrd.ctr_stdout(&["leases", "rm", LEASE]);

    // Remove container and image: the snapshots and their directories go.
    ctrd.ctr_stdout(&["containers", "rm", "keep"]);
    ctrd.ctr_stdout(&["images", "rm", "--sync", image]);
    wait_for(
        "snapshots to be garbage collected",
        Duration::from_secs(60),
        || {
            let l = ctrd.ctr_stdout(&["snapshots", "--snapshotter", "soci", "ls"]);
            l.lines().count() <= 1
        },
    );
    wait_for(
        "snapshot directories to be removed",
        Duration::from_secs(60),
        || std::fs::read_dir(&snapshots).unwrap().count() == 0,
    );
    let log = soci.log_text();
    assert!(log.contains("removed snapshot directory"), "{log}");
    soci.assert_running();
    ctrd.proc.assert_running();

    // Stop containerd, then the daemon with SIGINT.
    drop(ctrd);
    soci.send("INT");
    assert!(
        soci.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        soci.log_text()
    );
}

/// containerd's remote-snapshot protocol against the seam: a prepare with a
/// target chain ID that the remote implementation mounts comes back from
/// containerd as AlreadyExists, containerd finds the committed target through
/// its filtered Walk, and children of it mount it as a lower layer.
#[test]
fn containerd_accepts_remote_snapshots_from_the_seam() {
    use containerd_client::services::v1::DeleteRequest;
    use containerd_client::services::v1::snapshots::{
        Kind, MountsRequest, RemoveSnapshotRequest, StatSnapshotRequest,
    };
    use soci_snapshotter::remote::fake::{FakeRemote, MARKER};
    use soci_snapshotter::remote::{REMOTE_LABEL, TARGET_SNAPSHOT_LABEL};
    use soci_snapshotter::{Config, RemoteOutcome, Shutdown};
    const LEASE: &str = "soci-e2e-lease";
    fn leased<T>(ns: &str, t: T) -> Request<T> {
        req_leased(ns, LEASE, t)
    }

    if !containerd_prerequisites() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("soci-e2e")
        .tempdir_in("/tmp")
        .unwrap();
    let w = dir.path();
    let _unmount = UnmountOnDrop(w.to_path_buf());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sock = w.join("soci.sock");
    let config = Config {
        root: w.join("root"),
        address: sock.clone(),
        ..Config::default()
    };
    let fake = FakeRemote::default();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let server = {
        let (config, fake) = (config.clone(), fake.clone());
        rt.spawn(async move {
            soci_snapshotter::serve(&config, fake, async {
                stopped.await.unwrap_or(Shutdown::LeaveMounts)
            })
            .await
        })
    };
    wait_for("the snapshotter socket", Duration::from_secs(30), || {
        is_socket(&sock)
    });
    let ns = unique_namespace();
    let mut ctrd = Containerd::start(&w.join("ctd"), &sock, &ns);
    let ctd_sock = ctrd.socket.clone();
    let chain = "sha256:1234567890abcdef";
    rt.block_on(async {
        let channel = containerd_client::connect(&ctd_sock).await.unwrap();
        // A lease keeps containerd's garbage collector off these snapshots,
        // which nothing else references, until the test lets go of it.
        let mut leases = create_lease(channel.clone(), &ns, LEASE).await;
        let mut c = SnapshotsClient::new(channel);
        fake.push(Ok(RemoteOutcome::Mounted {
            labels: Default::default(),
        }));
        let err = c
            .prepare(leased(
                &ns,
                PrepareSnapshotRequest {
                    snapshotter: "soci".into(),
                    key: "extract-1".into(),
                    labels: [(TARGET_SNAPSHOT_LABEL.to_string(), chain.to_string())].into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
        let info = c
            .stat(leased(
                &ns,
                StatSnapshotRequest {
                    snapshotter: "soci".into(),
                    key: chain.into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .info
            .unwrap();
        assert_eq!(info.kind, Kind::Committed as i32);
        assert_eq!(
            info.labels.get(REMOTE_LABEL).map(String::as_str),
            Some("remote snapshot")
        );
        let m = c
            .prepare(leased(
                &ns,
                PrepareSnapshotRequest {
                    snapshotter: "soci".into(),
                    key: "container".into(),
                    parent: chain.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .mounts;
        let again = c
            .mounts(leased(
                &ns,
                MountsRequest {
                    snapshotter: "soci".into(),
                    key: "container".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .mounts;
        assert_eq!(m, again);
        let lower = m[0]
            .options
            .iter()
            .find_map(|o| o.strip_prefix("lowerdir="))
            .unwrap_or_else(|| panic!("{m:?}"));
        assert_eq!(
            std::fs::read_to_string(Path::new(lower).join(MARKER)).unwrap(),
            chain
        );
        c.remove(leased(
            &ns,
            RemoveSnapshotRequest {
                snapshotter: "soci".into(),
                key: "container".into(),
            },
        ))
        .await
        .unwrap();
        leases
            .delete(req_in(
                &ns,
                DeleteRequest {
                    id: LEASE.into(),
                    sync: true,
                },
            ))
            .await
            .unwrap();
        // containerd's garbage collector removes them from the snapshotter.
        let mut own = client(&sock).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut s = own
                .list(Request::new(ListSnapshotsRequest::default()))
                .await
                .unwrap()
                .into_inner();
            let mut n = 0;
            while let Some(m) = s.message().await.unwrap() {
                n += m.info.len();
            }
            if n == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{n} snapshots never collected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let snapshots = w.join("root/snapshotter/snapshots");
    wait_for(
        "snapshot directories to go",
        Duration::from_secs(30),
        || std::fs::read_dir(&snapshots).unwrap().count() == 0,
    );
    ctrd.proc.assert_running();
    drop(ctrd);
    stop.send(Shutdown::Unmount).unwrap();
    rt.block_on(server).unwrap().unwrap();
}
