//! TLS settings of registry connections and containerd-style hosts
//! directories (`--hosts-dir DIR`: `DIR/<host[:port]>/hosts.toml`).
//!
//! Of a `hosts.toml` the parts that decide where and how this client
//! connects are used: `server`, the `[host."URL"]` entries with their
//! `capabilities`, `ca`, `client` and `skip_verify`. The client talks to one
//! endpoint per registry: the first `[host]` entry that may `push` (the
//! default capabilities are `pull`, `resolve` and `push`), else `server`,
//! else the registry itself. Top-level `ca`, `client` and `skip_verify`
//! belong to `server`. Relative file names are relative to the directory of
//! the `hosts.toml`, as in containerd. A registry without a directory falls
//! back to `DIR/_default/hosts.toml`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ContentError;

/// TLS of the connections to one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM files of certificate authorities trusted besides the system's
    /// (`--tlscacert`, hosts.toml `ca`).
    pub ca_files: Vec<PathBuf>,
    /// A client certificate and its key, both PEM (`--tlscert` and
    /// `--tlskey`, hosts.toml `client`).
    pub client: Option<(PathBuf, PathBuf)>,
    /// Accept any server certificate (`--skip-verify`, hosts.toml `skip_verify`).
    pub skip_verify: bool,
}

impl TlsConfig {
    /// `self` with the settings of `other` added.
    pub fn merged(&self, other: &TlsConfig) -> TlsConfig {
        let mut ca_files = self.ca_files.clone();
        ca_files.extend(other.ca_files.iter().cloned());
        TlsConfig {
            ca_files,
            client: other.client.clone().or_else(|| self.client.clone()),
            skip_verify: self.skip_verify || other.skip_verify,
        }
    }

    /// Apply to a reqwest client builder, reading the files.
    pub(crate) fn apply(
        &self,
        mut b: reqwest::ClientBuilder,
        registry: &str,
    ) -> Result<reqwest::ClientBuilder, ContentError> {
        let read = |p: &Path, what: &str| {
            std::fs::read(p).map_err(|e| ContentError::Setup {
                reason: format!(
                    "cannot read the {what} {} for registry {registry}: {e}",
                    p.display()
                ),
            })
        };
        for f in &self.ca_files {
            let pem = read(f, "CA certificate file")?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ContentError::Setup {
                    reason: format!(
                        "{} is not a PEM certificate (for registry {registry}): {e}",
                        f.display()
                    ),
                })?;
            if certs.is_empty() {
                return Err(ContentError::Setup {
                    reason: format!(
                        "{} holds no PEM certificate (for registry {registry})",
                        f.display()
                    ),
                });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let Some((cert, key)) = &self.client {
            let mut pem = read(cert, "client certificate")?;
            pem.push(b'\n');
            pem.extend(read(key, "client key")?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| ContentError::Setup {
                reason: format!(
                    "client certificate {} with key {} (for registry {registry}): {e}",
                    cert.display(),
                    key.display()
                ),
            })?;
            b = b.identity(id);
        }
        Ok(b.danger_accept_invalid_certs(self.skip_verify))
    }
}

/// Where and how to reach one registry, from its `hosts.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEndpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]` to connect to.
    pub authority: String,
    /// TLS of the endpoint.
    pub tls: TlsConfig,
    /// The `hosts.toml` it came from (for messages).
    pub source: PathBuf,
}

/// `hosts.toml` directories (`--hosts-dir`, repeatable; the first with a
/// file for the registry wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsDirs(pub Vec<PathBuf>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// containerd accepts `client = "both.pem"`, `client = ["cert", "key"]` and
/// `client = [["cert", "key"], ...]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ClientSpec {
    Combined(String),
    Pair(Vec<String>),
    Pairs(Vec<Vec<String>>),
}

#[derive(Deserialize, Default)]
struct HostSection {
    capabilities: Option<Vec<String>>,
    ca: Option<OneOrMany>,
    client: Option<ClientSpec>,
    skip_verify: Option<bool>,
    override_path: Option<bool>,
    // Accepted and not used by a client that only pushes and pulls.
    #[allow(dead_code)]
    header: Option<toml::Table>,
}

#[derive(Deserialize, Default)]
struct HostsFile {
    server: Option<String>,
    // The server's capabilities: it is the endpoint of last resort either way.
    #[allow(dead_code)]
    capabilities: Option<Vec<String>>,
    ca: Option<OneOrMany>,
    client: Option<ClientSpec>,
    skip_verify: Option<bool>,
    #[serde(default)]
    host: toml::Table,
}

impl HostsDirs {
    /// The endpoint for `registry` (as written in references, `host[:port]`),
    /// or `None` when no directory has a `hosts.toml` for it.
    pub fn endpoint(&self, registry: &str) -> Result<Option<HostEndpoint>, ContentError> {
        for dir in &self.0 {
            for name in [registry, "_default"] {
                let file = dir.join(name).join("hosts.toml");
                if file.is_file() {
                    return parse_hosts_file(&file, registry).map(Some);
                }
            }
        }
        Ok(None)
    }
}

fn bad(file: &Path, reason: impl std::fmt::Display) -> ContentError {
    ContentError::Setup {
        reason: format!("{}: {reason}", file.display()),
    }
}

fn tls_of(
    file: &Path,
    ca: Option<OneOrMany>,
    client: Option<ClientSpec>,
    skip_verify: Option<bool>,
) -> Result<TlsConfig, ContentError> {
    let base = file.parent().unwrap_or(Path::new("."));
    let path = |p: String| base.join(p);
    let client = match client {
        None => None,
        Some(ClientSpec::Combined(both)) => Some((path(both.clone()), path(both))),
        Some(ClientSpec::Pair(v)) if v.len() == 2 => {
            let mut it = v.into_iter();
            let cert = it.next().expect("two");
            Some((path(cert), path(it.next().expect("two"))))
        }
        Some(ClientSpec::Pair(v)) if v.len() == 1 => {
            let both = v.into_iter().next().expect("one");
            Some((path(both.clone()), path(both)))
        }
        Some(ClientSpec::Pairs(pairs)) => match pairs.into_iter().next() {
            None => None,
            Some(p) if p.len() == 2 => {
                let mut it = p.into_iter();
                let cert = it.next().expect("two");
                Some((path(cert), path(it.next().expect("two"))))
            }
            Some(p) => {
                return Err(bad(
                    file,
                    format!("client pair {p:?} must be [certificate, key]"),
                ));
            }
        },
        Some(ClientSpec::Pair(v)) => {
            return Err(bad(
                file,
                format!("client {v:?} must be [certificate, key]"),
            ));
        }
    };
    Ok(TlsConfig {
        ca_files: ca
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .map(path)
            .collect(),
        client,
        skip_verify: skip_verify.unwrap_or(false),
    })
}

/// `scheme://authority[/v2]` → (scheme, authority).
fn split_url(file: &Path, url: &str) -> Result<(String, String), ContentError> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("https".to_string(), url),
    };
    if scheme != "http" && scheme != "https" {
        return Err(bad(file, format!("{url:?}: only http and https hosts")));
    }
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p.trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(bad(file, format!("{url:?} names no host")));
    }
    if !path.is_empty() && path != "v2" {
        return Err(bad(
            file,
            format!("{url:?}: a path other than /v2 is not supported"),
        ));
    }
    Ok((scheme, authority.to_string()))
}

fn parse_hosts_file(file: &Path, registry: &str) -> Result<HostEndpoint, ContentError> {
    let text = std::fs::read_to_string(file).map_err(|e| bad(file, e))?;
    let parsed: HostsFile = toml::from_str(&text).map_err(|e| bad(file, e))?;
    let push =
        |caps: &Option<Vec<String>>| caps.as_ref().is_none_or(|c| c.iter().any(|x| x == "push"));
    for (url, section) in &parsed.host {
        let section: HostSection = section
            .clone()
            .try_into()
            .map_err(|e| bad(file, format!("[host.{url:?}]: {e}")))?;
        if section.override_path == Some(true) {
            return Err(bad(
                file,
                format!("[host.{url:?}]: override_path is not supported"),
            ));
        }
        if !push(&section.capabilities) {
            continue;
        }
        let (scheme, authority) = split_url(file, url)?;
        return Ok(HostEndpoint {
            scheme,
            authority,
            tls: tls_of(file, section.ca, section.client, section.skip_verify)?,
            source: file.to_path_buf(),
        });
    }
    let (scheme, authority) = match &parsed.server {
        Some(s) => split_url(file, s)?,
        None => ("https".to_string(), registry.to_string()),
    };
    Ok(HostEndpoint {
        scheme,
        authority,
        tls: tls_of(file, parsed.ca, parsed.client, parsed.skip_verify)?,
        source: file.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, registry: &str, text: &str) -> PathBuf {
        let d = dir.join(registry);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("hosts.toml"), text).unwrap();
        d
    }

    #[test]
    fn server_with_top_level_tls() {
        let t = tempfile::tempdir().unwrap();
        let d = write(
            t.path(),
            "reg.example:5000",
            "server = \"https://reg.example:5000\"\nca = \"ca.pem\"\nclient = [[\"c.pem\", \"k.pem\"]]\n",
        );
        let e = HostsDirs(vec![t.path().into()])
            .endpoint("reg.example:5000")
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.scheme.as_str(), e.authority.as_str()),
            ("https", "reg.example:5000")
        );
        assert_eq!(e.tls.ca_files, vec![d.join("ca.pem")]);
        assert_eq!(e.tls.client, Some((d.join("c.pem"), d.join("k.pem"))));
        assert!(!e.tls.skip_verify);
    }

    #[test]
    fn first_push_host_wins_and_defaults_apply() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "docker.io",
            r#"server = "https://registry-1.docker.io"
[host."http://mirror.local:5000"]
  capabilities = ["pull", "resolve"]
[host."https://push.example/v2"]
  capabilities = ["pull", "resolve", "push"]
  ca = ["/abs/ca.pem", "rel.pem"]
  skip_verify = true
  client = "both.pem"
"#,
        );
        let dirs = HostsDirs(vec![t.path().join("missing"), t.path().into()]);
        let e = dirs.endpoint("docker.io").unwrap().unwrap();
        assert_eq!(
            (e.scheme.as_str(), e.authority.as_str()),
            ("https", "push.example")
        );
        assert_eq!(e.tls.ca_files[0], PathBuf::from("/abs/ca.pem"));
        assert!(e.tls.ca_files[1].ends_with("docker.io/rel.pem"));
        assert!(e.tls.skip_verify);
        assert!(e.tls.client.as_ref().unwrap().0.ends_with("both.pem"));
        assert_eq!(dirs.endpoint("other.example").unwrap(), None);
        // _default covers every other registry.
        write(t.path(), "_default", "server = \"http://fallback:80\"\n");
        let e = dirs.endpoint("other.example").unwrap().unwrap();
        assert_eq!(
            (e.scheme.as_str(), e.authority.as_str()),
            ("http", "fallback:80")
        );
    }

    #[test]
    fn unsupported_and_malformed_files_are_errors_naming_the_file() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "a",
            "[host.\"https://x/custom\"]\noverride_path = true\n",
        );
        let err = HostsDirs(vec![t.path().into()]).endpoint("a").unwrap_err();
        assert!(err.to_string().contains("override_path"), "{err}");
        assert!(err.to_string().contains("hosts.toml"), "{err}");
        write(t.path(), "b", "server = [1, 2]\n");
        assert!(HostsDirs(vec![t.path().into()]).endpoint("b").is_err());
        write(t.path(), "c", "server = \"ftp://c\"\n");
        let err = HostsDirs(vec![t.path().into()]).endpoint("c").unwrap_err();
        assert!(err.to_string().contains("http and https"), "{err}");
    }

    #[test]
    fn tls_files_that_are_missing_or_not_pem_are_setup_errors() {
        let t = tempfile::tempdir().unwrap();
        let missing = TlsConfig {
            ca_files: vec![t.path().join("nope.pem")],
            ..TlsConfig::default()
        };
        let err = missing
            .apply(reqwest::Client::builder(), "r.example")
            .err()
            .unwrap();
        assert!(err.to_string().contains("nope.pem"), "{err}");
        assert!(err.to_string().contains("r.example"), "{err}");
        let junk = t.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = TlsConfig {
            ca_files: vec![junk],
            ..TlsConfig::default()
        }
        .apply(reqwest::Client::builder(), "r.example")
        .err()
        .unwrap();
        assert!(err.to_string().contains("junk.pem"), "{err}");
    }
}
