//! containerd 1.6 with a private root, state and config whose
//! `[proxy_plugins.soci]` points at our daemon, and `soci-snapshotter-grpc`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::process::{Proc, bin, tail, tool, unmount_under};

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
    for t in [
        "containerd",
        "ctr",
        "runc",
        "docker-registry",
        "skopeo",
        "umoci",
    ] {
        tool(t);
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

/// containerd with a private root, state and config; the CRI plugin is off.
pub struct Containerd {
    pub socket: PathBuf,
    pub namespace: String,
    pub proc: Proc,
    pub dir: PathBuf,
}

impl Containerd {
    pub fn start(dir: &Path, soci_socket: &Path, namespace: &str) -> Containerd {
        tool("runc");
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("state/containerd.sock");
        let cfg = dir.join("config.toml");
        std::fs::write(
            &cfg,
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
                soci = soci_socket.display()
            ),
        )
        .unwrap();
        let proc = Proc::spawn(
            "containerd",
            Command::new(tool("containerd")).arg("--config").arg(&cfg),
            dir.join("containerd.log"),
        )
        .with_stop_signal(rustix::process::Signal::TERM);
        let mut c = Containerd {
            socket,
            namespace: namespace.to_string(),
            proc,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr_raw(&["version"]).status.success() {
            c.proc.assert_running();
            assert!(
                Instant::now() < deadline,
                "containerd did not answer on {} within 30s; log:\n{}",
                c.socket.display(),
                tail(&c.proc.log_text(), 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// `ctr -a SOCK -n NS ARGS…`, whatever its outcome (bounded to 120 s).
    pub fn ctr_raw(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("120")
            .arg(tool("ctr"))
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
    pub fn ctr(&self, args: &[&str]) -> Output {
        let out = self.ctr_raw(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}):\nstdout: {}\nstderr: {}\ncontainerd log tail:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.proc.log_text(), 40)
        );
        out
    }

    /// The standard output of `ctr …`, which must succeed.
    pub fn ctr_stdout(&self, args: &[&str]) -> String {
        String::from_utf8(self.ctr(args).stdout).expect("ctr printed UTF-8")
    }

    /// Run garbage collection now: create a lease and delete it with `--sync`.
    pub fn collect_garbage(&self) {
        let id = format!("gc-{}", std::process::id());
        self.ctr(&["leases", "create", "--id", &id]);
        self.ctr(&["leases", "rm", "--sync", &id]);
    }

    /// Committed snapshots on snapshotter `soci`: (name, parent).
    pub fn soci_snapshots(&self) -> Vec<(String, String)> {
        self.ctr_stdout(&["snapshots", "--snapshotter", "soci", "ls"])
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
        // Tasks and containers of our namespace go first, so runc shims exit.
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

/// `soci-snapshotter-grpc` on `<dir>/soci.sock` with root `<dir>/root` and
/// the config `<dir>/config.toml`; stopped with SIGINT on drop.
pub struct Daemon {
    pub socket: PathBuf,
    pub root: PathBuf,
    pub config: PathBuf,
    pub proc: Proc,
}

impl Daemon {
    /// Start with `config_toml` as its config (empty: every default).
    pub fn start(dir: &Path, config_toml: &str) -> Daemon {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("soci.sock");
        let root = dir.join("root");
        let config = dir.join("config.toml");
        std::fs::write(&config, config_toml).unwrap();
        let proc = Self::spawn(&socket, &root, &config, dir);
        Daemon {
            socket,
            root,
            config,
            proc,
        }
    }

    fn spawn(socket: &Path, root: &Path, config: &Path, dir: &Path) -> Proc {
        let _ = std::fs::remove_file(socket);
        // One log per start, so a restarted daemon does not overwrite the first log.
        let n = (0..1000)
            .find(|n| !dir.join(format!("daemon-{n}.log")).exists())
            .unwrap_or(1000);
        let mut p = Proc::spawn(
            "soci-snapshotter-grpc",
            Command::new(bin("soci-snapshotter-grpc"))
                .arg("--address")
                .arg(socket)
                .arg("--root")
                .arg(root)
                .arg("--config")
                .arg(config)
                .arg("--log-level")
                .arg("debug"),
            dir.join(format!("daemon-{n}.log")),
        )
        .with_stop_signal(rustix::process::Signal::INT);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            p.assert_running();
            assert!(
                Instant::now() < deadline,
                "soci-snapshotter-grpc did not create {} within 30s; log:\n{}",
                socket.display(),
                tail(&p.log_text(), 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    /// Stop with a signal and start again on the same socket and root.
    pub fn restart(&mut self, sig: &str) {
        self.proc.signal(sig);
        let dir = self.config.parent().unwrap().to_path_buf();
        self.proc = Self::spawn(&self.socket, &self.root, &self.config, &dir);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.proc.stop();
        unmount_under(&self.root);
    }
}
