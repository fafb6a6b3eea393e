//! Debian's `docker-registry` on a free 127.0.0.1 port, optionally behind
//! htpasswd Basic auth, with its storage visible to the test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::process::{Proc, free_port, tail, tool};

/// A `docker-registry` process, killed on drop.
pub struct Registry {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    pub proc: Proc,
    /// The directory holding its config, log and storage.
    pub dir: PathBuf,
    /// The storage root (`rootdirectory`).
    pub data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Registry {
    /// An open registry keeping its files under `dir`.
    pub fn start(dir: &Path) -> Registry {
        Self::start_in(dir, None, None, None)
    }

    /// A registry serving HTTPS with `tls`, in a temporary directory; `addr`
    /// is still `127.0.0.1:<port>`.
    pub fn start_temp_tls(tls: &TlsFiles) -> Registry {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        Self::start_in(&dir, None, Some(tls), Some(tmp))
    }

    /// An open registry in a temporary directory.
    pub fn start_temp() -> Registry {
        Self::start_temp_with_auth(None)
    }

    /// A registry in a temporary directory; with `auth` it requires that
    /// user and password (bcrypt htpasswd made with `htpasswd -Bbn`).
    pub fn start_temp_with_auth(auth: Option<(&str, &str)>) -> Registry {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        Self::start_in(&dir, auth, None, Some(tmp))
    }

    fn start_in(
        dir: &Path,
        auth: Option<(&str, &str)>,
        tls: Option<&TlsFiles>,
        tmp: Option<tempfile::TempDir>,
    ) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        let data = dir.join("data");
        let mut auth_cfg = String::new();
        if let Some((user, password)) = auth {
            let out = Command::new(tool("htpasswd"))
                .args(["-Bbn", user, password])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            auth_cfg = format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            );
        }
        let tls_cfg = tls.map_or(String::new(), |t| {
            let mut c = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.cert.display(),
                t.key.display()
            );
            if let Some(ca) = &t.client_ca {
                c.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
            }
            c
        });
        // A port that was free may be taken before the registry binds it.
        let mut last_err = String::new();
        for attempt in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let cfg = dir.join("registry.yml");
            std::fs::write(
                &cfg,
                format!(
                    "version: 0.1\nlog:\n  level: error\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {addr}\n{tls_cfg}{auth_cfg}",
                    data.display()
                ),
            )
            .unwrap();
            let mut proc = Proc::spawn(
                "docker-registry",
                Command::new(tool("docker-registry")).arg("serve").arg(&cfg),
                dir.join(format!("registry-{attempt}.log")),
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let up = if tls.is_some() {
                    TcpStream::connect(&addr).is_ok()
                } else {
                    http_status(&addr, "/v2/").is_some()
                };
                if up {
                    return Registry {
                        addr,
                        proc,
                        dir: dir.to_path_buf(),
                        data,
                        _tmp: tmp,
                    };
                }
                if let Some(Ok(Some(status))) = proc.child.as_mut().map(|c| c.try_wait()) {
                    last_err = format!(
                        "docker-registry exited with {status}: {}",
                        tail(&proc.log_text(), 20)
                    );
                    break;
                }
                if Instant::now() > deadline {
                    last_err = format!("docker-registry did not answer on {addr} within 20s");
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("{last_err}");
    }

    /// Where the registry keeps the bytes of blob `digest` (`sha256:<hex>`).
    pub fn blob_file(&self, digest: impl std::fmt::Display) -> PathBuf {
        let digest = digest.to_string();
        let hex = digest.strip_prefix("sha256:").unwrap_or(&digest);
        self.data.join(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }

    /// How many `GET`s of blob `digest` of `repo` the registry has answered
    /// (from its access log).
    pub fn blob_gets(&self, repo: &str, digest: impl std::fmt::Display) -> usize {
        let needle = format!("\"GET /v2/{repo}/blobs/{digest} ");
        self.proc
            .log_text()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
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
        let out = Command::new(tool("skopeo"))
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

/// Certificate files of a TLS registry (PEM).
pub struct TlsFiles {
    /// The server certificate (for IP 127.0.0.1).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// With it, clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate made
/// with `openssl` in `dir`: `ca.pem`, `server.pem`/`server.key`,
/// `client.pem`/`client.key`.
pub fn make_certificates(dir: &Path) {
    let ossl = |args: &[&str]| {
        let out = Command::new(tool("openssl"))
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::create_dir_all(dir).unwrap();
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=soci test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        ossl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={who}"),
            "-keyout",
            &format!("{who}.key"),
            "-out",
            &format!("{who}.csr"),
        ]);
        ossl(&[
            "x509",
            "-req",
            "-in",
            &format!("{who}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{who}.ext"),
            "-out",
            &format!("{who}.pem"),
        ]);
    }
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
