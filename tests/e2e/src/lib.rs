//! Harness for the end-to-end tests: real processes on this machine, only on
//! 127.0.0.1 and in private directories, all stopped (by PID) and unmounted
//! when the harness is dropped, even when a test fails.
//!
//! The tests need root, `/dev/fuse`, and the Debian packages `containerd`,
//! `runc`, `docker-registry`, `skopeo`, `umoci` and `busybox-static`
//! (`scripts/deps.sh` installs them). A missing part is a test failure, not a skip.

pub mod direct;
pub mod faults;

pub use soci_testkit::*;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A TCP proxy on 127.0.0.1 that counts the bytes the upstream sends back.
pub struct CountingProxy {
    pub addr: String,
    pub bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl CountingProxy {
    pub fn start(upstream: &str) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        listener.set_nonblocking(true).unwrap();
        let (b, s, up) = (bytes.clone(), stop.clone(), upstream.to_string());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(&up) else {
                            continue;
                        };
                        let (b, s) = (b.clone(), s.clone());
                        std::thread::spawn(move || pipe(client, server, b, s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        CountingProxy { addr, bytes, stop }
    }

    pub fn served(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

fn pipe(client: TcpStream, server: TcpStream, count: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = s_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let mut buf = [0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        match s_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                count.fetch_add(n as u64, Ordering::Relaxed);
                if c_write.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = c_write.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Deterministic pseudo-random bytes; `text` makes them compressible.
pub fn data(seed: u64, len: usize, text: bool) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    let words: [&[u8]; 6] = [b"lazy ", b"span ", b"layer ", b"soci ", b"fuse\n", b"pull "];
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if text {
            out.extend_from_slice(words[(x % 6) as usize]);
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Build an OCI image tar with umoci: busybox, a ~`big_mb` MB application layer,
/// and a small top layer that deletes and replaces files of the layers below.
/// Returns the tar and the expected final file tree (path -> sha256 hex).
pub fn build_image(dir: &Path, big_mb: usize) -> (std::path::PathBuf, BTreeMap<String, String>) {
    let umoci = tool("umoci");
    let layout = dir.join("img");
    let bundle = dir.join("bundle");
    run(Command::new(&umoci).args(["init", "--layout"]).arg(&layout));
    run(Command::new(&umoci)
        .args(["new", "--image"])
        .arg(format!("{}:latest", layout.display())));
    run(Command::new(&umoci)
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(tool("busybox"), rootfs.join("bin/busybox")).unwrap();
    for a in [
        "sh",
        "cat",
        "find",
        "sha256sum",
        "ls",
        "echo",
        "xargs",
        "sort",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    let image = format!("{}:latest", layout.display());
    run(Command::new(&umoci)
        .args(["repack", "--refresh-bundle", "--image"])
        .arg(&image)
        .arg(&bundle));
    // The big layer: many files, text-like and incompressible, plus links.
    let app = rootfs.join("app");
    std::fs::create_dir_all(app.join("lib")).unwrap();
    std::fs::create_dir_all(app.join("old")).unwrap();
    let mut total = 0;
    let mut i = 0u64;
    while total < big_mb << 20 {
        let size = [3000usize, 70_000, 1 << 20, 5 << 20][(i % 4) as usize];
        std::fs::write(
            app.join("lib").join(format!("f{i}.bin")),
            data(i, size, !i.is_multiple_of(3)),
        )
        .unwrap();
        total += size;
        i += 1;
    }
    std::fs::write(app.join("hello.txt"), b"hello from a lazily loaded layer\n").unwrap();
    std::fs::write(app.join("old/gone.txt"), b"deleted above\n").unwrap();
    std::fs::write(app.join("old/also.txt"), b"hidden by an opaque dir\n").unwrap();
    std::os::unix::fs::symlink("hello.txt", app.join("link.txt")).unwrap();
    std::fs::hard_link(app.join("hello.txt"), app.join("hard.txt")).unwrap();
    run(Command::new(&umoci)
        .args(["repack", "--refresh-bundle", "--image"])
        .arg(&image)
        .arg(&bundle));
    // A small top layer with a whiteout and a replaced directory.
    std::fs::remove_file(app.join("lib/f1.bin")).unwrap();
    std::fs::remove_dir_all(app.join("old")).unwrap();
    std::fs::create_dir_all(app.join("old")).unwrap();
    std::fs::write(app.join("old/new.txt"), b"new content\n").unwrap();
    std::fs::write(app.join("top.txt"), b"top layer\n").unwrap();
    run(Command::new(&umoci)
        .args(["repack", "--refresh-bundle", "--image"])
        .arg(&image)
        .arg(&bundle));
    run(Command::new(&umoci)
        .args(["config", "--image"])
        .arg(&image)
        .args([
            "--config.cmd",
            "/bin/cat",
            "--config.cmd",
            "/app/hello.txt",
            "--os",
            "linux",
            "--architecture",
            "amd64",
        ]));
    let tarball = dir.join("img.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    let mut expected = BTreeMap::new();
    collect(&rootfs.join("app"), "/app", &mut expected);
    (tarball, expected)
}

pub fn collect(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let ft = std::fs::symlink_metadata(&p).unwrap().file_type();
        if ft.is_dir() {
            collect(&p, &name, out);
        } else if ft.is_file() {
            out.insert(
                name,
                soci_format::Digest::of(&std::fs::read(&p).unwrap())
                    .hex()
                    .to_string(),
            );
        }
    }
}

/// Builds an OCI image layer by layer with umoci: the first layer holds
/// busybox (`/bin/sh`, `cat`, `find`, `sha256sum`, ...), every
/// [`ImageBuilder::layer`] call changes the root filesystem and commits the
/// difference as one more layer (deletions become whiteouts).
pub struct ImageBuilder {
    umoci: PathBuf,
    layout: PathBuf,
    bundle: PathBuf,
    image: String,
}

impl ImageBuilder {
    pub fn new(dir: &Path) -> ImageBuilder {
        let umoci = tool("umoci");
        let layout = dir.join("img");
        let bundle = dir.join("bundle");
        let image = format!("{}:latest", layout.display());
        run(Command::new(&umoci).args(["init", "--layout"]).arg(&layout));
        run(Command::new(&umoci).args(["new", "--image"]).arg(&image));
        run(Command::new(&umoci)
            .args(["unpack", "--image"])
            .arg(&image)
            .arg(&bundle));
        let b = ImageBuilder {
            umoci,
            layout,
            bundle,
            image,
        };
        b.layer(|root| {
            std::fs::create_dir_all(root.join("bin")).unwrap();
            std::fs::copy(tool("busybox"), root.join("bin/busybox")).unwrap();
            for a in [
                "sh",
                "cat",
                "find",
                "sha256sum",
                "ls",
                "sort",
                "xargs",
                "stat",
                "readlink",
            ] {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
            }
        });
        b
    }

    /// The root filesystem being built.
    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// Change the root filesystem with `f` and commit the change as a layer.
    pub fn layer(&self, f: impl FnOnce(&Path)) {
        f(&self.rootfs());
        run(Command::new(&self.umoci)
            .args(["repack", "--refresh-bundle", "--image"])
            .arg(&self.image)
            .arg(&self.bundle));
    }

    /// Write the image as an OCI archive `<dir>/<name>.tar`; returns it and
    /// the expected files under `/app` (path -> sha256 hex).
    pub fn finish(&self, name: &str) -> (PathBuf, BTreeMap<String, String>) {
        run(Command::new(&self.umoci)
            .args(["config", "--image"])
            .arg(&self.image)
            .args([
                "--config.cmd",
                "/bin/sh",
                "--os",
                "linux",
                "--architecture",
                "amd64",
            ]));
        let tarball = self.layout.with_file_name(format!("{name}.tar"));
        run(Command::new("tar")
            .arg("-C")
            .arg(&self.layout)
            .arg("-cf")
            .arg(&tarball)
            .arg("."));
        let mut expected = BTreeMap::new();
        collect(&self.rootfs().join("app"), "/app", &mut expected);
        (tarball, expected)
    }
}

/// A one-request-per-connection HTTP proxy on 127.0.0.1 that corrupts the
/// body of the first `times` responses whose request path contains `needle`
/// (one byte flipped), and passes everything else through unchanged.
pub struct FlippingProxy {
    pub addr: String,
    pub flipped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl FlippingProxy {
    pub fn start(upstream: &str, needle: &str, times: u64) -> FlippingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let flipped = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        listener.set_nonblocking(true).unwrap();
        let (f, s, up, needle) = (
            flipped.clone(),
            stop.clone(),
            upstream.to_string(),
            needle.to_string(),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let (f, up, needle) = (f.clone(), up.clone(), needle.clone());
                        std::thread::spawn(move || {
                            let _ = flip_one(client, &up, &needle, &f, times);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FlippingProxy {
            addr,
            flipped,
            stop,
        }
    }

    pub fn flipped(&self) -> u64 {
        self.flipped.load(Ordering::Relaxed)
    }
}

impl Drop for FlippingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Forward one request (headers only: the proxy is for pulls) with
/// `Connection: close`, then copy the response, flipping one body byte when
/// the path matches and the budget allows.
fn flip_one(
    mut client: TcpStream,
    upstream: &str,
    needle: &str,
    flipped: &AtomicU64,
    times: u64,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 || head.len() > 64 << 10 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut out = format!("{request_line}\r\n");
    for l in lines.filter(|l| !l.is_empty()) {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(upstream)?;
    server.set_read_timeout(Some(Duration::from_secs(30)))?;
    server.write_all(out.as_bytes())?;
    let corrupt = request_line.starts_with("GET ")
        && request_line.contains(needle)
        && flipped
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < times).then_some(n + 1)
            })
            .is_ok();
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    if corrupt && let Some(pos) = response.windows(4).position(|w| w == b"\r\n\r\n") {
        let body = pos + 4;
        if body < response.len() {
            let at = body + (response.len() - body) / 2;
            response[at] ^= 0xff;
        }
    }
    client.write_all(&response)?;
    let _ = client.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// `curl -fsS` with extra arguments; returns stdout.
pub fn curl(args: &[&str]) -> Vec<u8> {
    run(Command::new(tool("curl")).arg("-fsS").args(args)).stdout
}

/// Every regular file under `/app` of the image, read by a container on the
/// soci snapshotter: path -> sha256 hex.
pub fn container_app_sums(
    ctd: &Containerd,
    reference: &str,
    name: &str,
) -> BTreeMap<String, String> {
    let sums = run_sh(
        ctd,
        reference,
        name,
        "find /app -type f | sort | xargs sha256sum",
    );
    let mut got = BTreeMap::new();
    for line in sums.lines() {
        let (sum, path) = line.split_once("  ").unwrap();
        got.insert(path.to_string(), sum.to_string());
    }
    got
}

/// A temporary directory under /tmp (the tests mount below it), removed when dropped.
pub fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("soci-e2e-")
        .tempdir_in("/tmp")
        .unwrap()
}

/// Run `/bin/sh -c script` in a new container `name` of `reference` on the
/// `soci` snapshotter (removed afterwards); returns its stdout.
pub fn run_sh(ctd: &Containerd, reference: &str, name: &str, script: &str) -> String {
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--snapshotter",
        "soci",
        reference,
        name,
        "/bin/sh",
        "-c",
        script,
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `soci image rpull --plain-http` through containerd; returns stdout.
pub fn rpull(ctd: &Containerd, reference: &str) -> String {
    let out = run(Command::new(bin("soci"))
        .arg("--address")
        .arg(&ctd.socket)
        .arg("--namespace")
        .arg(&ctd.namespace)
        .args(["image", "rpull", "--plain-http"])
        .arg(reference));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The `N lazy, N local, N pulled` counts of rpull's summary line.
pub fn rpull_counts(stdout: &str) -> (usize, usize, usize) {
    let done = stdout
        .lines()
        .find(|l| l.starts_with("done:"))
        .unwrap_or_else(|| panic!("no summary in rpull output:\n{stdout}"));
    let count = |word: &str| -> usize {
        let before = done
            .split(&format!(" {word}"))
            .next()
            .unwrap_or_else(|| panic!("no {word} count in {done:?}"));
        before
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {word} count in {done:?}"))
    };
    (count("lazy,"), count("local,"), count("pulled,"))
}
