//! Registry credentials and the token flow.
//!
//! Credentials come from `--user` or from the docker config (read with the
//! `docker_credential` crate: `auths`, `credsStore`, `credHelpers`, identity
//! tokens). The [`Authorizer`] turns them into an `Authorization` header per
//! scope, following the registry's `WWW-Authenticate` challenge on `/v2/`:
//! Basic, or a Bearer token from the token server (GET with Basic
//! credentials, or the OAuth2 `refresh_token` grant for identity tokens).
//!
//! Hand-written because the flow needs identity tokens (a refresh-token
//! grant), a clear error when the token server refuses the credentials,
//! tokens covering the source repository of a cross-repository mount, and one
//! header shared by every request of a scope.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use reqwest::header::{HeaderValue, WWW_AUTHENTICATE};

use crate::ContentError;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// No credentials.
    #[default]
    Anonymous,
    /// A user name and password (or access token used as password).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A docker identity token (an OAuth2 refresh token).
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "Anonymous"),
            Credentials::Basic { username, .. } => {
                write!(f, "Basic({username:?}, <redacted>)")
            }
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(<redacted>)"),
        }
    }
}

impl Credentials {
    /// Parse the `--user user:password` flag. A missing password is an error
    /// (prompting for it is the command line's job).
    pub fn from_user_flag(flag: &str) -> Result<Credentials, ContentError> {
        match flag.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials::Basic {
                username: u.to_string(),
                password: p.to_string(),
            }),
            _ => Err(ContentError::Credentials {
                registry: "the registry".into(),
                origin: "--user".into(),
                reason: format!(
                    "{:?} is not user:password (give both, separated by ':')",
                    flag.split(':').next().unwrap_or_default()
                ),
            }),
        }
    }

    fn describe(&self) -> String {
        match self {
            Credentials::Anonymous => "no credentials".into(),
            Credentials::Basic { username, .. } => format!("user {username:?}"),
            Credentials::IdentityToken(_) => "an identity token".into(),
        }
    }
}

/// Where docker keeps `config.json`: `$DOCKER_CONFIG`, else `$HOME/.docker`.
pub fn docker_config_dir_from(
    docker_config: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    docker_config
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.map(|h| Path::new(&h).join(".docker")))
}

/// [`docker_config_dir_from`] with the process environment.
pub fn default_docker_config_dir() -> Option<PathBuf> {
    docker_config_dir_from(std::env::var_os("DOCKER_CONFIG"), std::env::var_os("HOME"))
}

/// Credentials for `registry` (stored under `key`, e.g.
/// `https://index.docker.io/v1/` for Docker Hub) from `<dir>/config.json`.
/// No file, or no entry, means anonymous.
pub fn docker_config_credentials(
    dir: &Path,
    key: &str,
    registry: &str,
) -> Result<Credentials, ContentError> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let path = dir.join("config.json");
    let origin = || format!("docker config {}", path.display());
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::Anonymous),
        Err(e) => {
            return Err(ContentError::Credentials {
                registry: registry.into(),
                origin: origin(),
                reason: e.to_string(),
            });
        }
    };
    let fail = |reason: String| ContentError::Credentials {
        registry: registry.into(),
        origin: origin(),
        reason,
    };
    match docker_credential::get_credential_from_reader(std::io::BufReader::new(file), key) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Credentials::Basic { username, password })
        }
        Ok(DockerCredential::IdentityToken(t)) => Ok(Credentials::IdentityToken(t)),
        Err(E::NoCredentialConfigured) => Ok(Credentials::Anonymous),
        Err(E::HelperFailure {
            helper,
            stdout,
            stderr,
        }) => {
            if stdout.contains("credentials not found") || stderr.contains("credentials not found")
            {
                Ok(Credentials::Anonymous)
            } else {
                Err(fail(format!(
                    "credential helper {helper} failed: {}",
                    format!("{} {}", stdout.trim(), stderr.trim()).trim()
                )))
            }
        }
        Err(E::HelperCommunicationError) => Err(fail(
            "cannot run the docker-credential-* helper named in credsStore/credHelpers (is it installed?)"
                .into(),
        )),
        Err(E::ConfigReadError) => Err(fail("the file is not valid docker config JSON".into())),
        Err(E::CredentialDecodingError) => Err(fail(format!(
            "the \"auth\" of {key} is not base64 of user:password"
        ))),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// A registry's answer to an unauthenticated `GET /v2/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// No authentication required.
    Open,
    /// HTTP Basic.
    Basic,
    /// A token server.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` value: the first Bearer challenge, else Basic.
pub(crate) fn parse_challenge(value: &str) -> Option<Challenge> {
    let mut found_basic = false;
    let mut rest = value.trim();
    while !rest.is_empty() {
        let (scheme, after) = match rest.find(|c: char| c.is_whitespace() || c == ',') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (params, after) = parse_params(after);
        if scheme.eq_ignore_ascii_case("bearer") {
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone())
            };
            if let Some(realm) = get("realm") {
                return Some(Challenge::Bearer {
                    realm,
                    service: get("service"),
                });
            }
        } else if scheme.eq_ignore_ascii_case("basic") {
            found_basic = true;
        }
        rest = after.trim_start_matches([',', ' ', '\t']);
    }
    found_basic.then_some(Challenge::Basic)
}

/// Parse `k=v, k="v"` pairs up to the next challenge scheme.
fn parse_params(mut s: &str) -> (Vec<(String, String)>, &str) {
    let mut out = Vec::new();
    loop {
        let t = s.trim_start_matches([',', ' ', '\t']);
        let Some(eq) = t.find('=') else {
            return (out, t);
        };
        let name = &t[..eq];
        if name.is_empty() || name.contains([' ', '\t', ',']) {
            // Next challenge's scheme.
            return (out, t);
        }
        let v = &t[eq + 1..];
        let (value, rest) = if let Some(q) = v.strip_prefix('"') {
            let mut val = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => val.push(c),
                }
            }
            (val, &q[end.min(q.len())..])
        } else {
            let end = v.find([',', ' ', '\t']).unwrap_or(v.len());
            (v[..end].to_string(), &v[end..])
        };
        out.push((name.to_string(), value));
        s = rest;
    }
}

/// Push or pull access to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    Pull,
    Push,
}

/// The token scopes of one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Scopes(Vec<String>);

impl Scopes {
    pub fn repo(name: &str, access: Access) -> Scopes {
        Scopes(vec![scope(name, access)])
    }

    /// Push to `target` and pull from `source` (cross-repository mount).
    pub fn mount(target: &str, source: &str) -> Scopes {
        Scopes(vec![
            scope(target, Access::Push),
            scope(source, Access::Pull),
        ])
    }
}

fn scope(name: &str, access: Access) -> String {
    match access {
        Access::Pull => format!("repository:{name}:pull"),
        Access::Push => format!("repository:{name}:pull,push"),
    }
}

/// What the registry needs in `Authorization` for some scopes.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Nothing (open registry, or no credentials to offer).
    None,
    Basic {
        username: String,
        password: String,
    },
    Bearer(String),
}

impl Grant {
    pub fn header(&self) -> Option<HeaderValue> {
        use base64::Engine as _;
        let v = match self {
            Grant::None => return None,
            Grant::Basic { username, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            ),
            Grant::Bearer(t) => format!("Bearer {t}"),
        };
        let mut h = HeaderValue::from_str(&v).ok()?;
        h.set_sensitive(true);
        Some(h)
    }
}

#[derive(Default)]
struct State {
    challenge: Option<Challenge>,
    grants: HashMap<Scopes, Grant>,
}

/// Authentication state of one registry: its challenge and a grant per scope.
pub(crate) struct Authorizer {
    registry: String,
    base_url: String,
    credentials: Credentials,
    origin: String,
    http: reqwest::Client,
    debug: super::trace::HttpDebug,
    state: tokio::sync::Mutex<State>,
}

impl Authorizer {
    /// `origin` says where the credentials came from, for error messages.
    pub fn new(
        registry: String,
        base_url: String,
        credentials: Credentials,
        origin: String,
        http: reqwest::Client,
        debug: super::trace::HttpDebug,
    ) -> Authorizer {
        Authorizer {
            registry,
            base_url,
            credentials,
            origin,
            http,
            debug,
            state: Default::default(),
        }
    }

    /// The challenge of the registry (probed once with `GET /v2/`).
    async fn challenge_locked(&self, st: &mut State) -> Result<Challenge, ContentError> {
        if let Some(c) = &st.challenge {
            return Ok(c.clone());
        }
        let url = format!("{}/v2/", self.base_url);
        let resp = self
            .debug
            .send(&self.http, self.http.get(&url))
            .await
            .map_err(|e| transport_error(&self.registry, &url, &e))?;
        let c = if resp.status() == StatusCode::UNAUTHORIZED {
            resp.headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(parse_challenge)
                .ok_or_else(|| ContentError::Unauthorized {
                    registry: self.registry.clone(),
                    reason: format!(
                        "{url} answered 401 without a Basic or Bearer challenge this client understands"
                    ),
                })?
        } else {
            Challenge::Open
        };
        st.challenge = Some(c.clone());
        Ok(c)
    }

    /// The grant for `scopes`, fetching a token if needed.
    pub async fn grant(&self, scopes: &Scopes) -> Result<Grant, ContentError> {
        let mut st = self.state.lock().await;
        if let Some(g) = st.grants.get(scopes) {
            return Ok(g.clone());
        }
        let g = match self.challenge_locked(&mut st).await? {
            Challenge::Open => Grant::None,
            Challenge::Basic => match &self.credentials {
                Credentials::Basic { username, password } => Grant::Basic {
                    username: username.clone(),
                    password: password.clone(),
                },
                _ => Grant::None,
            },
            Challenge::Bearer { realm, service } => {
                Grant::Bearer(self.fetch_token(&realm, service.as_deref(), scopes).await?)
            }
        };
        st.grants.insert(scopes.clone(), g.clone());
        Ok(g)
    }

    /// Forget the grant of `scopes` and the challenge (after a 401).
    pub async fn invalidate(&self, scopes: &Scopes) {
        let mut st = self.state.lock().await;
        st.grants.remove(scopes);
        st.challenge = None;
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &Scopes,
    ) -> Result<String, ContentError> {
        let req = match &self.credentials {
            Credentials::IdentityToken(refresh) => {
                let mut form: Vec<(&str, String)> = vec![
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", refresh.clone()),
                    ("client_id", "soci".into()),
                    ("scope", scopes.0.join(" ")),
                ];
                if let Some(s) = service {
                    form.push(("service", s.into()));
                }
                self.http.post(realm).form(&form)
            }
            creds => {
                let mut query: Vec<(&str, &str)> =
                    scopes.0.iter().map(|s| ("scope", s.as_str())).collect();
                if let Some(s) = service {
                    query.push(("service", s));
                }
                let req = self.http.get(realm).query(&query);
                match creds {
                    Credentials::Basic { username, password } => {
                        req.basic_auth(username, Some(password))
                    }
                    _ => req,
                }
            }
        };
        let resp = self
            .debug
            .send(&self.http, req)
            .await
            .map_err(|e| transport_error(&self.registry, realm, &e))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&self.registry, realm, &e))?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ContentError::Unauthorized {
                registry: self.registry.clone(),
                reason: format!(
                    "the token server {realm} refused {} ({}) for {} (HTTP {})",
                    self.credentials.describe(),
                    self.origin,
                    scopes.0.join(" "),
                    status.as_u16()
                ),
            });
        }
        if !status.is_success() {
            return Err(ContentError::Unauthorized {
                registry: self.registry.clone(),
                reason: format!(
                    "the token server {realm} answered HTTP {}: {}",
                    status.as_u16(),
                    String::from_utf8_lossy(&body[..body.len().min(300)]).trim()
                ),
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| ContentError::Unauthorized {
                registry: self.registry.clone(),
                reason: format!("the token server {realm} sent an unreadable answer: {e}"),
            })?;
        t.token
            .filter(|t| !t.is_empty())
            .or(t.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| ContentError::Unauthorized {
                registry: self.registry.clone(),
                reason: format!("the token server {realm} sent no token"),
            })
    }

    /// The error for a request that was refused with `status` even with the
    /// grant of its scopes.
    pub fn refused(&self, status: u16, what: &str) -> ContentError {
        let reason = if status == 403 {
            format!(
                "access denied to {what} with {} ({})",
                self.credentials.describe(),
                self.origin
            )
        } else if self.credentials == Credentials::Anonymous {
            format!(
                "{what} needs credentials and none were found ({})",
                self.origin
            )
        } else {
            format!(
                "{what} was refused (HTTP {status}) with {} ({})",
                self.credentials.describe(),
                self.origin
            )
        };
        ContentError::Unauthorized {
            registry: self.registry.clone(),
            reason,
        }
    }
}

/// Map a transport-level reqwest error (no HTTP status) to a clear error.
pub(crate) fn transport_error(registry: &str, url: &str, e: &reqwest::Error) -> ContentError {
    let mut reason = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if !reason.contains(&text) {
            reason = format!("{reason}: {text}");
        }
        src = s.source();
    }
    let hint = transport_hint(url, &reason, e.is_connect(), e.is_timeout());
    ContentError::Unreachable {
        registry: registry.to_string(),
        url: url.to_string(),
        reason,
        hint,
    }
}

/// What to do about a transport error `reason` on `url`, or "".
fn transport_hint(url: &str, reason: &str, is_connect: bool, is_timeout: bool) -> String {
    let lower = reason.to_ascii_lowercase();
    let https = url.starts_with("https://");
    let client_cert = "pass --tlscert CERT.pem --tlskey KEY.pem, or a --hosts-dir whose hosts.toml names a client certificate";
    if https
        && (lower.contains("certificaterequired")
            || lower.contains("certificate required")
            || lower.contains("handshakefailure")
            || lower.contains("bad certificate")
            || lower.contains("badcertificate"))
    {
        format!(" (the registry asks for a client certificate: {client_cert})")
    } else if https
        && (lower.contains("unknownissuer")
            || lower.contains("unknown issuer")
            || lower.contains("invalid peer certificate"))
    {
        " (the registry's certificate is not signed by a CA this machine trusts: pass --tlscacert CA.pem, or a --hosts-dir whose hosts.toml names the CA; --skip-verify accepts any certificate)".to_string()
    } else if https
        && (lower.contains("connection was not ready")
            || lower.contains("connection closed before message completed"))
    {
        // With TLS 1.3 the server checks the client certificate after the
        // client has finished its handshake, so a refusal can arrive as a
        // closed connection rather than as the alert that names it.
        format!(
            " (the registry closed the TLS connection before answering, as one that requires a client certificate does when none is sent: {client_cert})"
        )
    } else if https && (is_connect || lower.contains("tls") || lower.contains("certificate")) {
        " (for a registry served over plain HTTP pass --plain-http; for a certificate signed by your own CA --tlscacert CA.pem; to accept any certificate --skip-verify)".to_string()
    } else if is_timeout {
        " (the request timed out)".to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_hints_name_the_flag_that_helps() {
        let tls = "https://127.0.0.1:5000/v2/";
        // The client certificate is missing: named by the alert, or (TLS 1.3)
        // only seen as a connection closed before the request went out.
        for reason in [
            "error sending request: received fatal alert: CertificateRequired",
            "error sending request for url (https://127.0.0.1:5000/v2/): client error (Canceled): operation was canceled: connection was not ready",
            "error sending request: connection closed before message completed",
        ] {
            let h = transport_hint(tls, reason, false, false);
            assert!(
                h.contains("--tlscert CERT.pem --tlskey KEY.pem"),
                "{reason}: {h}"
            );
        }
        let h = transport_hint(tls, "invalid peer certificate: UnknownIssuer", true, false);
        assert!(h.contains("--tlscacert CA.pem"), "{h}");
        let h = transport_hint(tls, "tcp connect error: Connection refused", true, false);
        assert!(h.contains("--plain-http"), "{h}");
        // Over plain HTTP a closed connection says nothing about certificates.
        let h = transport_hint(
            "http://127.0.0.1:5000/v2/",
            "connection closed before message completed",
            false,
            false,
        );
        assert_eq!(h, "");
        assert_eq!(
            transport_hint("http://r/v2/", "operation timed out", false, true),
            " (the request timed out)"
        );
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="test""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="a, b", Bearer realm=http://x/t, scope="s\"q""#),
            Some(Challenge::Bearer {
                realm: "http://x/t".into(),
                service: None
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
    }

    #[test]
    fn user_flag() {
        assert_eq!(
            Credentials::from_user_flag("u:p:q").unwrap(),
            Credentials::Basic {
                username: "u".into(),
                password: "p:q".into()
            }
        );
        assert!(Credentials::from_user_flag("u").is_err());
        assert!(Credentials::from_user_flag(":p").is_err());
        let dbg = format!("{:?}", Credentials::from_user_flag("u:secret").unwrap());
        assert!(!dbg.contains("secret"), "{dbg}");
    }

    #[test]
    fn config_dir() {
        assert_eq!(
            docker_config_dir_from(Some("/c".into()), Some("/h".into())),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            docker_config_dir_from(Some("".into()), Some("/h".into())),
            Some(PathBuf::from("/h/.docker"))
        );
        assert_eq!(docker_config_dir_from(None, None), None);
    }

    #[test]
    fn docker_config_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let reg = "127.0.0.1:5000";
        assert_eq!(
            docker_config_credentials(dir.path(), reg, reg).unwrap(),
            Credentials::Anonymous
        );
        let cfg = dir.path().join("config.json");
        std::fs::write(
            &cfg,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"},"https://index.docker.io/v1/":{"identitytoken":"tok"},"bad.example":{"auth":"!!"}}}"#,
        )
        .unwrap();
        assert_eq!(
            docker_config_credentials(dir.path(), reg, reg).unwrap(),
            Credentials::Basic {
                username: "user".into(),
                password: "pass".into()
            }
        );
        assert_eq!(
            docker_config_credentials(dir.path(), "https://index.docker.io/v1/", "docker.io")
                .unwrap(),
            Credentials::IdentityToken("tok".into())
        );
        assert_eq!(
            docker_config_credentials(dir.path(), "other:1", "other:1").unwrap(),
            Credentials::Anonymous
        );
        let e = docker_config_credentials(dir.path(), "bad.example", "bad.example")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.example") && e.contains("base64"), "{e}");
        std::fs::write(&cfg, "{not json").unwrap();
        let e = docker_config_credentials(dir.path(), reg, reg)
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.json") && e.contains("not valid"), "{e}");
        std::fs::write(&cfg, r#"{"credsStore":"soci-test-missing-helper"}"#).unwrap();
        let e = docker_config_credentials(dir.path(), reg, reg)
            .unwrap_err()
            .to_string();
        assert!(e.contains("helper"), "{e}");
    }
}
