//! Processes, tools, ports, waits and mounts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A workspace binary, next to the running test's target directory
/// (`<target>/<profile>/deps/<test>` -> `<target>/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace` (same profile and target dir) before these tests",
        p.display()
    );
    p
}

/// A system tool, or a loud failure naming what to install.
pub fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: run scripts/deps.sh as root before the tests");
}

/// Run a command, panicking with its output on failure.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// The last `n` lines of a text.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Deterministic incompressible bytes.
pub fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A child process with its log file (stdout and stderr). On drop it gets
/// its stop signal (SIGKILL unless set otherwise), then SIGKILL after a
/// bounded wait.
pub struct Proc {
    pub name: String,
    pub child: Option<Child>,
    pub log: PathBuf,
    stop_signal: rustix::process::Signal,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        let f = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("create log {}: {e}", log.display()));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log,
            stop_signal: rustix::process::Signal::KILL,
        }
    }

    /// Stop with `sig` (instead of SIGKILL) when dropped or [`Proc::stop`]ped.
    pub fn with_stop_signal(mut self, sig: rustix::process::Signal) -> Proc {
        self.stop_signal = sig;
        self
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
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
                tail(&self.log_text(), 40)
            );
        }
    }

    /// Send a signal by name (`TERM`, `INT`, `KILL`...) and wait (at most
    /// 20 s, then SIGKILL) for the process to exit.
    pub fn signal(&mut self, sig: &str) {
        self.stop_with(signal_named(sig));
    }

    /// Send a signal by name and return at once.
    pub fn send(&self, sig: &str) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("a live pid");
        rustix::process::kill_process(pid, signal_named(sig))
            .unwrap_or_else(|e| panic!("kill -{sig} {}: {e}", self.name));
    }

    /// Wait for the process to exit, at most `limit` (then panic with its log).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let c = self.child.as_mut().expect("running");
        loop {
            if let Some(st) = c.try_wait().expect("wait for child") {
                self.child = None;
                return st;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not exit within {limit:?}; log:\n{}",
                    self.name,
                    tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop with the stop signal, then SIGKILL after 20 s.
    pub fn stop(&mut self) {
        self.stop_with(self.stop_signal);
    }

    fn stop_with(&mut self, sig: rustix::process::Signal) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
            let _ = rustix::process::kill_process(pid, sig);
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn signal_named(sig: &str) -> rustix::process::Signal {
    match sig {
        "INT" => rustix::process::Signal::INT,
        "TERM" => rustix::process::Signal::TERM,
        "KILL" | "9" => rustix::process::Signal::KILL,
        "HUP" => rustix::process::Signal::HUP,
        "QUIT" => rustix::process::Signal::QUIT,
        other => panic!("unknown signal {other}"),
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Mount points under `dir` with their filesystem type.
pub fn mounts_under(dir: &Path) -> Vec<(String, String)> {
    let prefix = dir.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let _src = it.next()?;
            let target = it.next()?.replace("\\040", " ");
            let fstype = it.next()?.to_string();
            target.starts_with(&prefix).then_some((target, fstype))
        })
        .collect()
}

/// Unmounts whatever is mounted under a directory when dropped.
pub struct UnmountOnDrop(pub PathBuf);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        unmount_under(&self.0);
    }
}

/// Detach-unmount everything mounted under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let mut targets: Vec<String> = mounts_under(dir).into_iter().map(|(t, _)| t).collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        if let Err(e) = rustix::mount::unmount(t.as_str(), rustix::mount::UnmountFlags::DETACH) {
            eprintln!("unmounting {t}: {e}");
        }
    }
}

/// Run skopeo, which must succeed (panics with its stderr otherwise).
pub fn skopeo(args: &[&str]) -> Output {
    let out = Command::new(tool("skopeo"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
