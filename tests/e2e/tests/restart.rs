//! Restart safety of `soci-snapshotter-grpc`: killed with SIGKILL or stopped
//! with SIGTERM while a reader is reading a lazily loaded layer, the daemon
//! comes back on the same root, mounts the committed remote snapshots again
//! and serves exact bytes (readers only ever see exact bytes or an error);
//! new containers start on the restored layers. SIGINT unmounts every layer
//! and leaves no FUSE mount behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use soci_e2e::direct::{fuse_mounts, prepare_remote, push_converted, read_all};
use soci_e2e::*;

const CONFIG: &str = "[background_fetch]\ndisable = true\n";

/// Reads every file over and over until stopped (at most 2 minutes, 10000
/// files): counts exact reads and failed reads; a read that gives other bytes
/// panics the thread.
struct Reader {
    stop: Arc<AtomicBool>,
    exact: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    handle: JoinHandle<()>,
}

impl Reader {
    fn start(mnt: PathBuf, files: BTreeMap<String, Vec<u8>>) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let exact = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let (s, e, f) = (stop.clone(), exact.clone(), failed.clone());
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            for (name, want) in files.iter().cycle().take(10_000) {
                if s.load(Ordering::Relaxed) || Instant::now() > deadline {
                    return;
                }
                match std::fs::read(mnt.join(name)) {
                    Ok(got) => {
                        assert!(got == *want, "{name}: a reader got different bytes");
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        f.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        });
        Reader {
            stop,
            exact,
            failed,
            handle,
        }
    }

    /// Waits (bounded) until at least `n` files were read exactly.
    fn wait_exact(&self, n: usize) {
        wait_for("the reader to read files", Duration::from_secs(60), || {
            self.exact.load(Ordering::Relaxed) >= n
        });
    }

    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the reader saw different bytes");
        (
            self.exact.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

fn fuse_mountinfo(root: &Path) -> Vec<String> {
    let prefix = root.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            let target = l.split_whitespace().nth(4).unwrap_or("");
            let fstype = l
                .split(" - ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or("");
            target.starts_with(&prefix) && fstype.starts_with("fuse")
        })
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_term_while_reading_then_restart_serves_exact_bytes() {
    let tmp = tempfile::Builder::new()
        .prefix("soci-e2e-restart-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    let reg = Registry::start(&dir.join("registry"));
    let image = push_converted(dir, &reg, "app:soci", 16, 512 << 10);
    let mut daemon = Daemon::start(&dir.join("daemon"), CONFIG);
    let layer = image.big_layer();
    prepare_remote(
        &daemon.socket,
        "e2e-restart",
        "extract-1",
        &reg.addr,
        &image,
        &layer,
    )
    .await
    .unwrap_or_else(|e| panic!("prepare: {e}\n{}", tail(&daemon.proc.log_text(), 40)));
    let mounts = fuse_mounts(&daemon.root);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    let mnt = mounts[0].clone();

    for sig in ["KILL", "TERM"] {
        let reader = Reader::start(mnt.clone(), image.files.clone());
        reader.wait_exact(2);
        let pid = daemon.proc.pid();
        daemon.restart(sig);
        assert_ne!(daemon.proc.pid(), pid);
        let (exact, failed) = reader.finish();
        eprintln!("SIG{sig}: the reader read {exact} files exactly, {failed} reads failed");

        // The committed snapshot is mounted again at the same place.
        let again = fuse_mounts(&daemon.root);
        assert!(
            again.contains(&mnt),
            "after SIG{sig}: {again:?} lacks {}\n{}",
            mnt.display(),
            tail(&daemon.proc.log_text(), 40)
        );
        let files = image.files.clone();
        let m = mnt.clone();
        let t = tokio::task::spawn_blocking(move || read_all(&m, &files, "after restart"))
            .await
            .unwrap();
        assert_eq!(
            t.exact,
            image.files.len(),
            "after SIG{sig}: {t:?}\n{}",
            tail(&daemon.proc.log_text(), 40)
        );
        // A new snapshot of the same layer still prepares.
        prepare_remote(
            &daemon.socket,
            "e2e-restart",
            &format!("extract-after-{sig}"),
            &reg.addr,
            &image,
            &layer,
        )
        .await
        .unwrap_or_else(|e| panic!("prepare after SIG{sig}: {e}"));
    }

    // SIGINT unmounts every layer.
    assert!(!fuse_mountinfo(&daemon.root).is_empty());
    daemon.proc.signal("INT");
    let left = fuse_mountinfo(&daemon.root);
    assert!(left.is_empty(), "FUSE mounts left after SIGINT: {left:#?}");
}

#[test]
fn new_containers_start_after_the_daemon_is_killed() {
    let tmp = tempfile::Builder::new()
        .prefix("soci-e2e-restart-ctr-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    let reg = Registry::start(&dir.join("registry"));
    let _image = push_converted(dir, &reg, "app:soci", 12, 1 << 20);
    let mut daemon = Daemon::start(&dir.join("daemon"), CONFIG);
    let ctd = Containerd::start(&dir.join("containerd"), &daemon.socket, "soci-e2e-restart");
    let reference = format!("{}/app:soci", reg.addr);
    run(Command::new(bin("soci"))
        .arg("--address")
        .arg(&ctd.socket)
        .arg("--namespace")
        .arg(&ctd.namespace)
        .args(["image", "rpull", "--plain-http"])
        .arg(&reference));
    // containerd's connection to the snapshotter comes back with gRPC's
    // reconnect backoff: until then `ctr` reports "unavailable" (bounded retry).
    let cat = |name: &str, daemon: &Daemon| {
        let deadline = Instant::now() + Duration::from_secs(60);
        for attempt in 0.. {
            let args = [
                "run",
                "--rm",
                "--snapshotter",
                "soci",
                &reference,
                &format!("{name}-{attempt}"),
                "/bin/cat",
                "/app/hello.txt",
            ];
            let out = ctd.ctr_raw(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() && err.contains("unavailable") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            assert!(
                out.status.success(),
                "ctr {args:?}: {err}\ndaemon log:\n{}",
                tail(&daemon.proc.log_text(), 40)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "hello from a lazily loaded layer\n"
            );
            return;
        }
    };
    cat("before", &daemon);
    let before = fuse_mounts(&daemon.root);
    assert!(!before.is_empty());
    for sig in ["KILL", "TERM"] {
        daemon.restart(sig);
        let after = fuse_mounts(&daemon.root);
        for m in &before {
            assert!(
                after.contains(m),
                "after SIG{sig}: {} is not mounted again: {after:?}\n{}",
                m.display(),
                tail(&daemon.proc.log_text(), 40)
            );
        }
        cat(&format!("after-{}", sig.to_lowercase()), &daemon);
    }
}
