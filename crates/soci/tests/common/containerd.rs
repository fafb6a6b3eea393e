//! Real containerd 1.6 (private root, state and config, `[proxy_plugins.soci]`)
//! and the `soci-snapshotter-grpc` daemon, for the `soci image rpull` tests.
//!
//! Processes are stopped by PID and everything mounted under the test
//! directory is unmounted when the guards drop, also when a test fails.
//! Every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::require_tool;

/// Set to `1` to skip the tests that need containerd, runc, FUSE and root.
pub const SKIP_ENV: &str = "SOCI_SKIP_CONTAINERD_TESTS";

/// Whether the containerd tests are switched off (and says so on stderr).
pub fn skipped(test: &str) -> bool {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("{test}: skipped because {SKIP_ENV}=1");
        return true;
    }
    false
}

/// Fail loudly unless everything the containerd tests need is here.
pub fn require_containerd_setup() {
    for tool in [
        "containerd",
        "ctr",
        "runc",
        "docker-registry",
        "skopeo",
        "umoci",
    ] {
        require_tool(tool);
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing: install busybox-static (scripts/deps.sh), or set {SKIP_ENV}=1 to skip"
    );
    assert!(
        rustix::process::geteuid().is_root(),
        "the containerd tests need root (containerd, runc and overlay mounts); set {SKIP_ENV}=1 to skip"
    );
}

/// A workspace binary from another package, next to this test's target dir.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // <target>/<profile>/deps/<test> -> <target>/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build -p {name}` (same profile and target dir) before these tests",
        p.display()
    );
    p
}

/// Wait until `f` holds, at most `limit`; `what` names it in the panic.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `n` lines of a file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A child process with its log file; on drop it gets `stop_signal`, then
/// SIGKILL after a bounded wait.
pub struct Proc {
    name: &'static str,
    child: Option<Child>,
    stop_signal: rustix::process::Signal,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(
        name: &'static str,
        cmd: &mut Command,
        log: PathBuf,
        stop_signal: rustix::process::Signal,
    ) -> Proc {
        let f = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name,
            child: Some(child),
            stop_signal,
            log,
        }
    }

    /// Panic with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!(
                "{} exited early ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 40)
            );
        }
    }

    /// Stop by PID: the stop signal, then SIGKILL after 20 s.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
            let _ = rustix::process::kill_process(pid, self.stop_signal);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            if Instant::now() > deadline {
                eprintln!("{} did not stop within 20s; killing it", self.name);
                let _ = c.kill();
                let _ = c.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Detach-unmount everything mounted under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.to_string_lossy().to_string();
    let mut targets: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|t| t.replace("\\040", " "))
        .filter(|t| t.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        if let Err(e) = rustix::mount::unmount(t.as_str(), rustix::mount::UnmountFlags::DETACH) {
            eprintln!("unmounting {t}: {e}");
        }
    }
}

/// `soci-snapshotter-grpc` serving on `<dir>/soci.sock` with root `<dir>/root`.
pub struct Daemon {
    pub socket: PathBuf,
    pub root: PathBuf,
    pub proc: Proc,
}

impl Daemon {
    pub fn start(dir: &Path) -> Daemon {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("soci.sock");
        let root = dir.join("root");
        // An explicit --config must exist; an empty file means every default.
        std::fs::write(dir.join("config.toml"), b"").unwrap();
        let mut proc = Proc::spawn(
            "soci-snapshotter-grpc",
            Command::new(workspace_bin("soci-snapshotter-grpc"))
                .arg("--address")
                .arg(&socket)
                .arg("--root")
                .arg(&root)
                .arg("--config")
                .arg(dir.join("config.toml"))
                .arg("--log-level")
                .arg("debug"),
            dir.join("daemon.log"),
            rustix::process::Signal::INT,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            proc.assert_running();
            assert!(
                Instant::now() < deadline,
                "soci-snapshotter-grpc did not create {} within 30s; log:\n{}",
                socket.display(),
                tail(&proc.log, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon { socket, root, proc }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.proc.stop();
        unmount_under(&self.root);
    }
}

/// containerd with a private root, state and config whose
/// `[proxy_plugins.soci]` points at `soci_socket`; the CRI plugin is off.
pub struct Containerd {
    pub socket: PathBuf,
    pub namespace: String,
    pub dir: PathBuf,
    pub proc: Proc,
}

impl Containerd {
    pub fn start(dir: &Path, soci_socket: &Path, namespace: &str) -> Containerd {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("state/containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{sock}"
[proxy_plugins]
  [proxy_plugins.soci]
    type = "snapshot"
    address = "{soci}"
"#,
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                sock = socket.display(),
                soci = soci_socket.display(),
            ),
        )
        .unwrap();
        let proc = Proc::spawn(
            "containerd",
            Command::new(require_tool("containerd"))
                .arg("--config")
                .arg(&config),
            dir.join("containerd.log"),
            rustix::process::Signal::TERM,
        );
        let mut c = Containerd {
            socket,
            namespace: namespace.to_string(),
            dir: dir.to_path_buf(),
            proc,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr_raw(&["version"]).status.success() {
            c.proc.assert_running();
            assert!(
                Instant::now() < deadline,
                "containerd did not answer on {} within 30s; log:\n{}",
                c.socket.display(),
                tail(&c.proc.log, 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// `ctr -a SOCK -n NS ARGS…`, whatever its outcome (bounded by `timeout`).
    pub fn ctr_raw(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("120")
            .arg(require_tool("ctr"))
            .arg("-a")
            .arg(&self.socket)
            .arg("-n")
            .arg(&self.namespace)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }

    /// `ctr …`, which must succeed.
    pub fn ctr(&self, args: &[&str]) -> String {
        let out = self.ctr_raw(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}):\nstdout: {}\nstderr: {}\ncontainerd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.proc.log, 30)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run garbage collection now: create a lease and delete it with `--sync`.
    pub fn collect_garbage(&self) {
        let id = format!("gc-{}", std::process::id());
        self.ctr(&["leases", "create", "--id", &id]);
        self.ctr(&["leases", "rm", "--sync", &id]);
    }

    /// Committed snapshots on snapshotter `soci`: (name, parent).
    pub fn soci_snapshots(&self) -> Vec<(String, String)> {
        self.ctr(&["snapshots", "--snapshotter", "soci", "ls"])
            .lines()
            .skip(1)
            .filter(|l| l.trim_end().ends_with("Committed"))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let parent = if f.len() == 3 { f[1] } else { "" };
                (f[0].to_string(), parent.to_string())
            })
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers of our namespace first, so that runc shims exit.
        let tasks = self.ctr_raw(&["tasks", "ls", "-q"]);
        for t in String::from_utf8_lossy(&tasks.stdout).lines() {
            let _ = self.ctr_raw(&["tasks", "kill", "-s", "SIGKILL", t]);
            let _ = self.ctr_raw(&["tasks", "rm", "-f", t]);
        }
        let cs = self.ctr_raw(&["containers", "ls", "-q"]);
        for c in String::from_utf8_lossy(&cs.stdout).lines() {
            let _ = self.ctr_raw(&["containers", "rm", c]);
        }
        self.proc.stop();
        unmount_under(&self.dir);
    }
}

/// Build a three-layer busybox image in an OCI layout `<dir>/img` with umoci:
/// 1. busybox (`/bin/sh`, `echo`, `cat`, `ls`, `test`), `/etc/removed`,
///    `/opq/old`;
/// 2. `/etc/greeting` = `hello-layer2`;
/// 3. deletes `/etc/removed` (a whiteout) and replaces `/opq` by a directory
///    holding only `new` (an opaque directory).
///
/// Returns the layout path; the image is tagged `latest`.
pub fn busybox_layout(dir: &Path) -> PathBuf {
    let umoci = require_tool("umoci");
    let layout = dir.join("img");
    let image = format!("{}:latest", layout.display());
    let run = |args: &[&str]| {
        let out = Command::new(&umoci)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run umoci");
        assert!(
            out.status.success(),
            "umoci {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["init", "--layout", layout.to_str().unwrap()]);
    run(&["new", "--image", &image]);
    let bundle = |n: u32| dir.join(format!("bundle{n}"));
    let rootfs = |n: u32| bundle(n).join("rootfs");

    run(&["unpack", "--image", &image, bundle(1).to_str().unwrap()]);
    std::fs::create_dir_all(rootfs(1).join("bin")).unwrap();
    std::fs::create_dir_all(rootfs(1).join("etc")).unwrap();
    std::fs::create_dir_all(rootfs(1).join("opq")).unwrap();
    std::fs::copy("/bin/busybox", rootfs(1).join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "ls", "test"] {
        std::os::unix::fs::symlink("busybox", rootfs(1).join("bin").join(applet)).unwrap();
    }
    std::fs::write(rootfs(1).join("etc/removed"), "doomed\n").unwrap();
    std::fs::write(rootfs(1).join("opq/old"), "old\n").unwrap();
    run(&["repack", "--image", &image, bundle(1).to_str().unwrap()]);

    run(&["unpack", "--image", &image, bundle(2).to_str().unwrap()]);
    std::fs::write(rootfs(2).join("etc/greeting"), "hello-layer2\n").unwrap();
    run(&["repack", "--image", &image, bundle(2).to_str().unwrap()]);

    run(&["unpack", "--image", &image, bundle(3).to_str().unwrap()]);
    std::fs::remove_file(rootfs(3).join("etc/removed")).unwrap();
    std::fs::remove_dir_all(rootfs(3).join("opq")).unwrap();
    std::fs::create_dir(rootfs(3).join("opq")).unwrap();
    std::fs::write(rootfs(3).join("opq/new"), "new\n").unwrap();
    run(&["repack", "--image", &image, bundle(3).to_str().unwrap()]);

    run(&[
        "config",
        "--image",
        &image,
        "--config.cmd",
        "/bin/sh",
        "--os",
        "linux",
        "--architecture",
        "amd64",
    ]);
    layout
}
