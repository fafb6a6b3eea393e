//! A real `docker-registry` on 127.0.0.1 whose storage the test can see (to
//! tamper with a blob), optionally behind htpasswd Basic auth; docker config
//! files; raw HTTP status checks.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use soci_format::Digest;

use super::require_tool;

/// A `docker-registry` process, killed on drop.
pub struct StoredRegistry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The HTTP status of `GET path` (no credentials), or `None` when nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}

impl StoredRegistry {
    /// Start a registry; with `auth` it requires that user and password.
    pub fn start(auth: Option<(&str, &str)>) -> StoredRegistry {
        let bin = require_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            data.display()
        );
        if let Some((user, password)) = auth {
            let out = Command::new(require_tool("htpasswd"))
                .args(["-Bbn", user, password])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let access = std::fs::File::create(dir.path().join("access.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg_path)
            .stdout(access)
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let reg = StoredRegistry {
            child,
            addr,
            data,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_status(&reg.addr, "/v2/").is_none() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {}",
                reg.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// Where the registry keeps the bytes of blob `d`.
    pub fn blob_file(&self, d: &Digest) -> PathBuf {
        self.data.join(format!(
            "docker/registry/v2/blobs/sha256/{}/{}/data",
            &d.hex()[..2],
            d.hex()
        ))
    }

    /// How many `GET`s of blob `d` of `repo` the registry has answered
    /// (from its access log).
    pub fn blob_gets(&self, repo: &str, d: &Digest) -> usize {
        let log = std::fs::read_to_string(self._dir.path().join("access.log")).unwrap();
        let needle = format!("\"GET /v2/{repo}/blobs/{d} ");
        log.lines().filter(|l| l.contains(&needle)).count()
    }

    /// Whether `repo:tag` exists (for an open registry).
    pub fn has_tag(&self, repo: &str, tag: &str) -> bool {
        match http_status(&self.addr, &format!("/v2/{repo}/manifests/{tag}")) {
            Some(200) => true,
            Some(404) => false,
            other => panic!("unexpected answer for {repo}:{tag}: {other:?}"),
        }
    }

    /// Whether `repo:tag` exists, asking with credentials.
    pub fn has_tag_as(&self, repo: &str, tag: &str, user: &str, password: &str) -> bool {
        let out = Command::new(require_tool("skopeo"))
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--creds",
                &format!("{user}:{password}"),
                &format!("docker://{}/{repo}:{tag}", self.addr),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run skopeo");
        out.status.success()
    }
}

impl Drop for StoredRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Write `<dir>/config.json` with Basic credentials for `registry`.
pub fn docker_config(dir: &Path, registry: &str, user: &str, password: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let cfg = serde_json::json!({"auths": {registry: {"auth": auth}}});
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
}

/// Flip one byte in the middle of a file.
pub fn flip_byte(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0xff;
    std::fs::write(path, b).unwrap();
}
