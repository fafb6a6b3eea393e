//! The `soci-snapshotter-grpc` binary end to end: flags, socket handling and
//! signals, and a real containerd 1.6 + runc running a busybox image through it.
//!
//! The containerd test needs root, `containerd`, `ctr`, `runc`, `umoci` and
//! `busybox-static` (`scripts/deps.sh` installs them). It fails when they are
//! missing unless `SOCI_SKIP_CONTAINERD_TESTS=1` is set.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{ListSnapshotsRequest, PrepareSnapshotRequest};
use tonic::Request;

const BIN: &str = env!("CARGO_BIN_EXE_soci-snapshotter-grpc");

/// A child process, killed by its PID when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc { name, child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} {}", self.pid());
    }

    /// Wait (bounded) for the process to exit.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}; log:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!(
                "{} exited early ({st}); log:\n{}",
                self.name,
                self.log_text()
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Mount points of this mount namespace at or below `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut v: Vec<PathBuf> = soci_snapshotter::mounts::parse_mountinfo(&text)
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}

/// Unmounts whatever is left under a directory when dropped.
struct UnmountGuard(PathBuf);

impl Drop for UnmountGuard {
    fn drop(&mut self) {
        for m in mounts_under(&self.0) {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
    wait_until("the daemon's socket", Duration::from_secs(30), || {
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
    d.signal("TERM");
    assert!(
        d.wait(Duration::from_secs(20)).success(),
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
    wait_until("the socket", Duration::from_secs(30), || {
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
    d.signal("INT");
    assert!(d.wait(Duration::from_secs(20)).success());
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
    let _unmount = UnmountGuard(dir.path().to_path_buf());
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
    d.signal("TERM");
    assert!(d.wait(Duration::from_secs(20)).success());
    assert_eq!(
        mounts_under(&snapshots),
        std::slice::from_ref(&fs),
        "SIGTERM must leave mounts"
    );

    let mut d = start_daemon(dir.path(), &sock, &[]);
    assert!(
        mounts_under(&snapshots).is_empty(),
        "restart must clear leftover mounts"
    );
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&fs)
        .status()
        .unwrap();
    assert!(st.success());
    d.signal("INT");
    assert!(
        d.wait(Duration::from_secs(20)).success(),
        "{}",
        d.log_text()
    );
    assert!(mounts_under(&snapshots).is_empty(), "SIGINT must unmount");
}

// ---------------------------------------------------------------------------
// Real containerd.

fn containerd_prerequisites() -> bool {
    if std::env::var("SOCI_SKIP_CONTAINERD_TESTS").as_deref() == Ok("1") {
        eprintln!("SOCI_SKIP_CONTAINERD_TESTS=1: skipping the containerd test");
        return false;
    }
    let missing: Vec<&str> = ["containerd", "ctr", "runc", "umoci", "busybox"]
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}: run scripts/deps.sh (apt-get install -y containerd runc umoci busybox-static), \
         or set SOCI_SKIP_CONTAINERD_TESTS=1 to skip this test"
    );
    assert!(
        rustix_is_root(),
        "the containerd test needs root (or set SOCI_SKIP_CONTAINERD_TESTS=1)"
    );
    true
}

fn rustix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Run a command to completion within `timeout`, killing it past that.
fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{desc}: {e}"));
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{desc} timed out after {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn run_ok(cmd: &mut Command, timeout: Duration) -> String {
    let desc = format!("{cmd:?}");
    let out = run(cmd, timeout);
    assert!(
        out.status.success(),
        "{desc} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A one-layer busybox image as an OCI layout tar.
fn build_busybox_image(dir: &Path) -> PathBuf {
    let t = Duration::from_secs(120);
    let layout = dir.join("bb");
    let bundle = dir.join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&layout),
        t,
    );
    run_ok(
        Command::new("umoci")
            .args(["new", "--image"])
            .arg(format!("{}:latest", layout.display())),
        t,
    );
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
        t,
    );
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let busybox = run_ok(Command::new("sh").args(["-c", "command -v busybox"]), t);
    std::fs::copy(busybox.trim(), bin.join("busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "ls", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    run_ok(
        Command::new("umoci")
            .args(["repack", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
        t,
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
        t,
    );
    let tar = dir.join("bb.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
        t,
    );
    tar
}

/// Best-effort removal of what a failed test may leave in containerd: tasks
/// (and their shims), containers, images. Runs before containerd is killed.
struct ContainerdCleanup {
    /// Set once the test cleaned up itself; only the namespace is left to remove.
    done: bool,
    ctr: Vec<String>,
    namespace: String,
    containers: Vec<String>,
    image: String,
}

impl ContainerdCleanup {
    fn ctr(&self, args: &[&str]) {
        let mut cmd = Command::new("ctr");
        cmd.args(&self.ctr).args(args);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&mut cmd, Duration::from_secs(30))
        }));
    }
}

impl ContainerdCleanup {
    fn run_now(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        for c in self.containers.clone() {
            self.ctr(&["tasks", "kill", "-s", "SIGKILL", &c]);
            self.ctr(&["tasks", "rm", "-f", &c]);
            self.ctr(&["containers", "rm", &c]);
        }
        let image = self.image.clone();
        self.ctr(&["images", "rm", "--sync", &image]);
        let ns = self.namespace.clone();
        self.ctr(&["namespaces", "rm", &ns]);
        // The runc shim's state directory for our namespace (shared /run path).
        let _ = std::fs::remove_dir(Path::new("/run/containerd/runc").join(&ns));
    }
}

impl Drop for ContainerdCleanup {
    fn drop(&mut self) {
        self.run_now();
    }
}

/// A namespace no other test or containerd on the machine uses.
fn unique_namespace() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("soci-e2e-{}-{nanos}", std::process::id())
}

/// containerd 1.6 with a private root, state and socket, the CRI plugin off,
/// and `soci` as a proxy snapshotter on `snapshotter_sock`.
fn start_containerd(w: &Path, snapshotter_sock: &Path) -> (Proc, PathBuf) {
    let ctd = w.join("ctd");
    std::fs::create_dir_all(&ctd).unwrap();
    let ctd_sock = ctd.join("containerd.sock");
    let config = format!(
        r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{grpc}"
[proxy_plugins]
  [proxy_plugins.soci]
    type = "snapshot"
    address = "{sock}"
"#,
        root = ctd.join("root").display(),
        state = ctd.join("state").display(),
        grpc = ctd_sock.display(),
        sock = snapshotter_sock.display(),
    );
    std::fs::write(ctd.join("config.toml"), config).unwrap();
    let mut containerd = Proc::spawn(
        "containerd",
        Command::new("containerd")
            .arg("--config")
            .arg(ctd.join("config.toml")),
        w.join("containerd.log"),
    );
    wait_until("containerd's socket", Duration::from_secs(60), || {
        containerd.assert_running();
        is_socket(&ctd_sock)
    });
    (containerd, ctd_sock)
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
    let _unmount = UnmountGuard(w.to_path_buf());
    let image_tar = build_busybox_image(w);

    let sock = w.join("soci.sock");
    let mut soci = start_daemon(w, &sock, &[]);

    let (mut containerd, ctd_sock) = start_containerd(w, &sock);

    // A namespace of our own: the runc shim shares /run/containerd paths.
    let ns = unique_namespace();
    let ctr_base = vec![
        "-a".to_string(),
        ctd_sock.display().to_string(),
        "-n".into(),
        ns.clone(),
    ];
    let ctr = |args: &[&str]| {
        let mut c = Command::new("ctr");
        c.args(&ctr_base).args(args);
        c
    };
    let image = "localhost/soci-e2e:latest";
    let mut cleanup = ContainerdCleanup {
        done: false,
        namespace: ns.clone(),
        ctr: ctr_base.clone(),
        containers: vec!["run-rm".into(), "keep".into()],
        image: image.into(),
    };
    let t = Duration::from_secs(120);

    wait_until("ctr version", Duration::from_secs(30), || {
        run(&mut ctr(&["version"]), t).status.success()
    });
    let plugins = run_ok(&mut ctr(&["plugins", "ls"]), t);
    assert!(
        plugins
            .lines()
            .any(|l| l.contains("io.containerd.snapshotter.v1")
                && l.contains("soci")
                && l.contains("ok")),
        "soci proxy plugin not ok:\n{plugins}"
    );
    run_ok(
        ctr(&[
            "images",
            "import",
            "--snapshotter",
            "soci",
            "--base-name",
            "localhost/soci-e2e",
        ])
        .arg(&image_tar),
        t,
    );

    // Run a container that prints a line.
    let out = run_ok(
        &mut ctr(&[
            "run",
            "--rm",
            "--snapshotter",
            "soci",
            image,
            "run-rm",
            "/bin/sh",
            "-c",
            "echo hello-from-soci",
        ]),
        t,
    );
    assert!(out.contains("hello-from-soci"), "container output: {out:?}");

    // A container that writes a file: it lands in its active snapshot's upper dir.
    let out = run_ok(
        &mut ctr(&[
            "run",
            "--snapshotter",
            "soci",
            image,
            "keep",
            "/bin/sh",
            "-c",
            "echo written-in-container > /soci-e2e-file && echo done",
        ]),
        t,
    );
    assert!(out.contains("done"), "{out:?}");
    let listing = run_ok(&mut ctr(&["snapshots", "--snapshotter", "soci", "ls"]), t);
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
    let mount = run_ok(
        &mut ctr(&[
            "snapshots",
            "--snapshotter",
            "soci",
            "mounts",
            "/mnt",
            "keep",
        ]),
        t,
    );
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
    // the written file back through a view of the committed snapshot.
    run_ok(
        &mut ctr(&[
            "snapshots",
            "--snapshotter",
            "soci",
            "commit",
            "keep-committed",
            "keep",
        ]),
        t,
    );
    let listing = run_ok(&mut ctr(&["snapshots", "--snapshotter", "soci", "ls"]), t);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("keep-committed ") && l.contains("Committed")),
        "{listing}"
    );
    run_ok(
        &mut ctr(&[
            "snapshots",
            "--snapshotter",
            "soci",
            "view",
            "keep-view",
            "keep-committed",
        ]),
        t,
    );
    let view_dir = w.join("keep-view");
    std::fs::create_dir_all(&view_dir).unwrap();
    let view_mount = run_ok(
        &mut ctr(&[
            "snapshots",
            "--snapshotter",
            "soci",
            "mounts",
            &view_dir.display().to_string(),
            "keep-view",
        ]),
        t,
    );
    let mount_cmd = view_mount.trim().to_string();
    run_ok(Command::new("sh").arg("-c").arg(&mount_cmd), t);
    let seen = std::fs::read_to_string(view_dir.join("soci-e2e-file"));
    let _ = Command::new("umount").arg(&view_dir).status();
    assert_eq!(seen.unwrap(), "written-in-container\n");
    run_ok(
        &mut ctr(&["snapshots", "--snapshotter", "soci", "rm", "keep-view"]),
        t,
    );
    run_ok(
        &mut ctr(&["snapshots", "--snapshotter", "soci", "rm", "keep-committed"]),
        t,
    );

    // Remove container and image: the snapshots and their directories go.
    run_ok(&mut ctr(&["containers", "rm", "keep"]), t);
    run_ok(&mut ctr(&["images", "rm", "--sync", image]), t);
    wait_until(
        "snapshots to be garbage collected",
        Duration::from_secs(60),
        || {
            let l = run_ok(&mut ctr(&["snapshots", "--snapshotter", "soci", "ls"]), t);
            l.lines().count() <= 1
        },
    );
    wait_until(
        "snapshot directories to be removed",
        Duration::from_secs(60),
        || std::fs::read_dir(&snapshots).unwrap().count() == 0,
    );
    let log = soci.log_text();
    assert!(log.contains("removed snapshot directory"), "{log}");
    soci.assert_running();
    containerd.assert_running();

    // Tidy the namespace, stop containerd, then the daemon with SIGINT.
    cleanup.containers.clear();
    cleanup.run_now();
    containerd.signal("TERM");
    containerd.wait(Duration::from_secs(30));
    soci.signal("INT");
    assert!(
        soci.wait(Duration::from_secs(30)).success(),
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
    use containerd_client::services::v1::leases_client::LeasesClient;
    use containerd_client::services::v1::snapshots::{
        Kind, MountsRequest, RemoveSnapshotRequest, StatSnapshotRequest,
    };
    use containerd_client::services::v1::{CreateRequest, DeleteRequest};
    use soci_snapshotter::remote::fake::{FakeRemote, MARKER};
    use soci_snapshotter::remote::{REMOTE_LABEL, TARGET_SNAPSHOT_LABEL};
    use soci_snapshotter::{Config, RemoteOutcome, Shutdown};
    const LEASE: &str = "soci-e2e-lease";
    fn leased<T>(ns: &str, t: T) -> Request<T> {
        let mut r = req_in(ns, t);
        r.metadata_mut()
            .insert("containerd-lease", LEASE.parse().unwrap());
        r
    }

    if !containerd_prerequisites() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("soci-e2e")
        .tempdir_in("/tmp")
        .unwrap();
    let w = dir.path();
    let _unmount = UnmountGuard(w.to_path_buf());
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
    wait_until("the snapshotter socket", Duration::from_secs(30), || {
        is_socket(&sock)
    });
    let (mut containerd, ctd_sock) = start_containerd(w, &sock);
    let ns = unique_namespace();
    let chain = "sha256:1234567890abcdef";
    rt.block_on(async {
        let channel = containerd_client::connect(&ctd_sock).await.unwrap();
        // A lease keeps containerd's garbage collector off these snapshots,
        // which nothing else references, until the test lets go of it.
        let mut leases = LeasesClient::new(channel.clone());
        leases
            .create(req_in(
                &ns,
                CreateRequest {
                    id: LEASE.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
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
    wait_until(
        "snapshot directories to go",
        Duration::from_secs(30),
        || std::fs::read_dir(&snapshots).unwrap().count() == 0,
    );
    containerd.assert_running();
    let _ = run(
        Command::new("ctr")
            .arg("-a")
            .arg(&ctd_sock)
            .args(["namespaces", "rm", &ns]),
        Duration::from_secs(30),
    );
    containerd.signal("TERM");
    containerd.wait(Duration::from_secs(30));
    stop.send(Shutdown::Unmount).unwrap();
    rt.block_on(server).unwrap().unwrap();
}
