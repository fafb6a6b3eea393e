//! The async registry client. See the module documentation of
//! [`crate::registry`] for how each operation is done.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap,
    HeaderValue, RANGE,
};
use reqwest::{Method, StatusCode};
use soci_format::Digest;
use soci_format::digest::Hasher;
use soci_format::json::{self, Descriptor, Index};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::auth::{
    Access, Authorizer, Credentials, Scopes, default_docker_config_dir, docker_config_credentials,
    transport_error,
};
use super::hosts::{HostEndpoint, HostsDirs, TlsConfig};
use super::ranges::{self, Extractor};
use super::reference::{ImageReference, ReferenceError, Repository};
use super::trace::HttpDebug;
use crate::ContentError;

/// Manifests and indexes larger than this are refused (registries cap them
/// at 4 MiB too).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

const USER_AGENT: &str = concat!("soci-rs/", env!("CARGO_PKG_VERSION"));
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
/// Blob uploads are sent in pieces of about this size (one PATCH each).
const UPLOAD_CHUNK: usize = 4 << 20;

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Use plain HTTP for every registry (`--plain-http`). Loopback registries
    /// use plain HTTP regardless.
    pub plain_http: bool,
    /// Credentials for every registry (`--user`); when `None` they are read
    /// from the docker config.
    pub credentials: Option<Credentials>,
    /// The docker config directory; `None` means `$DOCKER_CONFIG`, else
    /// `~/.docker`.
    pub docker_config_dir: Option<PathBuf>,
    /// Timeout of establishing a connection.
    pub connect_timeout: Option<Duration>,
    /// Timeout of each read from a connection (not of a whole transfer).
    pub read_timeout: Option<Duration>,
    /// CAs, a client certificate and whether to accept any certificate, for
    /// every registry (`--tlscacert`, `--tlscert`, `--tlskey`, `--skip-verify`).
    pub tls: TlsConfig,
    /// containerd-style `hosts.toml` directories (`--hosts-dir`): per registry
    /// the endpoint to use and its TLS.
    pub hosts_dirs: HostsDirs,
    /// Print registry HTTP traffic on stderr (`--http-dump`, `--http-trace`).
    pub http_debug: HttpDebug,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            plain_http: false,
            credentials: None,
            docker_config_dir: None,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(120)),
            tls: TlsConfig::default(),
            hosts_dirs: HostsDirs::default(),
            http_debug: HttpDebug::default(),
        }
    }
}

/// What a blob upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The repository already had the blob; nothing was sent.
    Exists,
    /// The blob was mounted from another repository of the same registry.
    Mounted,
    /// The blob was uploaded.
    Uploaded,
}

/// A manifest as fetched: its exact bytes, media type and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The bytes, exactly as stored.
    pub bytes: Vec<u8>,
    /// The media type (from `Content-Type`, else from the document).
    pub media_type: String,
    /// The sha256 of `bytes` (verified against the request and the registry).
    pub digest: Digest,
}

impl FetchedManifest {
    /// The descriptor of the manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as i64,
        )
    }
}

/// The referrers of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// Descriptors of the referring manifests (filtered by artifact type
    /// when one was asked for).
    pub manifests: Vec<Descriptor>,
    /// Whether they came from the `sha256-<hex>` tag because the registry has
    /// no referrers API.
    pub via_tag_schema: bool,
}

/// The referrers tag-schema tag of `subject`: `sha256-<hex>`.
pub fn referrers_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.hex())
}

/// The descriptor under which a manifest is listed among its subject's
/// referrers: its own descriptor plus `artifactType` (the manifest's, else its
/// config media type) and its annotations.
pub fn referrer_descriptor(bytes: &[u8], media_type: &str) -> Result<Descriptor, ContentError> {
    let mut d = Descriptor::for_bytes(media_type, bytes);
    let bad = |e: json::JsonError| ContentError::InvalidManifest {
        digest: Digest::of(bytes),
        reason: e.to_string(),
    };
    if json::is_index_type(media_type) {
        let i = Index::from_json(bytes).map_err(bad)?;
        d.artifact_type = i.artifact_type;
        d.annotations = i.annotations;
    } else {
        let m = json::Manifest::from_json(bytes).map_err(bad)?;
        d.artifact_type = if m.artifact_type.is_empty() {
            m.config.media_type
        } else {
            m.artifact_type
        };
        d.annotations = m.annotations;
    }
    Ok(d)
}

/// A verified blob download. The last item is an error instead of the end of
/// the stream when the bytes do not match the digest.
pub struct BlobStream {
    size: Option<u64>,
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, ContentError>> + Send>>,
}

impl BlobStream {
    /// The size announced by the registry (`Content-Length`), if any.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Read the whole blob into memory.
    pub async fn into_vec(mut self) -> Result<Vec<u8>, ContentError> {
        let mut out = Vec::with_capacity(self.size.unwrap_or(0).min(64 << 20) as usize);
        while let Some(chunk) = self.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, ContentError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("size", &self.size)
            .finish()
    }
}

/// Everything about one registry: where it is, the HTTP client with its
/// TLS settings, and its authentication state.
struct Host {
    registry: String,
    base_url: String,
    http: reqwest::Client,
    auth: Authorizer,
}

/// What an operation is about, for error messages.
struct What {
    operation: &'static str,
    object: String,
    digest: Option<Digest>,
}

impl What {
    fn new(operation: &'static str, object: impl ToString) -> What {
        What {
            operation,
            object: object.to_string(),
            digest: None,
        }
    }
    fn blob(operation: &'static str, digest: &Digest) -> What {
        What {
            operation,
            object: digest.to_string(),
            digest: Some(digest.clone()),
        }
    }
    fn describe(&self, repo: &Repository) -> String {
        format!("{} {} in {}", self.operation, self.object, repo)
    }
}

fn store_name(repo: &Repository) -> String {
    format!("registry {repo}")
}

impl Host {
    fn error(&self, repo: &Repository, what: &What, reason: String) -> ContentError {
        ContentError::Registry {
            registry: self.registry.clone(),
            repository: repo.name().to_string(),
            operation: what.operation,
            object: what.object.clone(),
            reason,
        }
    }

    fn not_found(&self, repo: &Repository, what: &What) -> ContentError {
        match &what.digest {
            Some(d) => ContentError::NotFound {
                digest: d.clone(),
                store: store_name(repo),
            },
            None => self.error(repo, what, "not found".into()),
        }
    }

    /// An error for an unexpected HTTP answer, with the registry's message.
    fn status_error(
        &self,
        repo: &Repository,
        what: &What,
        status: StatusCode,
        body: &[u8],
    ) -> ContentError {
        if status == StatusCode::NOT_FOUND && what.digest.is_some() {
            return self.not_found(repo, what);
        }
        // A TLS server answers a plain HTTP request with 400 (and a body
        // saying so, except to HEAD).
        let hint = if status == StatusCode::BAD_REQUEST
            && self.base_url.starts_with("http://")
            && (body.is_empty() || String::from_utf8_lossy(body).contains("HTTPS server"))
        {
            " (if the registry speaks HTTPS: it was asked in plain HTTP, as registries on \
             loopback are by default; pass --tlscacert CA.pem or a --hosts-dir whose \
             hosts.toml says server = \"https://...\")"
        } else {
            ""
        };
        self.error(
            repo,
            what,
            format!("HTTP {}{}{hint}", status.as_u16(), error_body_text(body)),
        )
    }
}

/// `": CODE: message"` from an OCI error body, or a short text excerpt.
fn error_body_text(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Err>,
    }
    #[derive(serde::Deserialize)]
    struct Err {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body)
        && !env.errors.is_empty()
    {
        let parts: Vec<String> = env
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect();
        return format!(": {}", parts.join("; "));
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

fn header_str(h: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn header_u64(h: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<u64> {
    header_str(h, name).and_then(|v| v.trim().parse().ok())
}

/// The media type of a `Content-Type` value, unless it is a generic one.
fn specific_media_type(h: &HeaderMap) -> Option<String> {
    let ct = header_str(h, CONTENT_TYPE)?;
    let mt = ct.split(';').next().unwrap_or("").trim();
    match mt {
        "" | "application/json" | "text/plain" | "application/octet-stream" => None,
        mt => Some(mt.to_string()),
    }
}

/// The media type a manifest declares or, failing that, implies.
fn detect_media_type(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str())
        && !mt.is_empty()
    {
        return Some(mt.to_string());
    }
    if v.get("manifests").is_some() {
        Some(json::MEDIA_TYPE_OCI_INDEX.to_string())
    } else if v.get("config").is_some() {
        Some(json::MEDIA_TYPE_OCI_MANIFEST.to_string())
    } else {
        None
    }
}

fn manifest_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
    h
}

/// Read a response body of at most `limit` bytes.
async fn read_limited(
    mut resp: reqwest::Response,
    limit: u64,
    on_err: impl Fn(String) -> ContentError,
) -> Result<Vec<u8>, ContentError> {
    if let Some(len) = header_u64(resp.headers(), CONTENT_LENGTH)
        && len > limit
    {
        return Err(on_err(format!(
            "{len} bytes is more than the {limit} bytes allowed"
        )));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| on_err(format!("download failed: {e}")))?
    {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(on_err(format!(
                "the body is more than the {limit} bytes allowed"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// An async registry client for any number of registries. Cheap to clone.
///
/// Pooled HTTP connections belong to the tokio runtime that opened them, so
/// use a client (and its clones) from one runtime; the blocking adapters
/// ([`BlockingRuntime`](super::BlockingRuntime)) make that easy.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    options: RegistryOptions,
    /// For registries without TLS settings of their own.
    http: reqwest::Client,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    endpoints: Mutex<HashMap<String, Option<HostEndpoint>>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("options", &self.inner.options)
            .finish()
    }
}

impl RegistryClient {
    /// A client with `options`. Nothing is contacted until the first call.
    pub fn new(options: RegistryOptions) -> Result<RegistryClient, ContentError> {
        // Built now so that unreadable TLS files fail before anything is sent.
        let http = Self::http_client(&options, &TlsConfig::default(), "every registry")?;
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                options,
                http,
                hosts: Mutex::new(HashMap::new()),
                endpoints: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// An HTTP client with the options' timeouts and TLS plus `extra`.
    fn http_client(
        options: &RegistryOptions,
        extra: &TlsConfig,
        registry: &str,
    ) -> Result<reqwest::Client, ContentError> {
        let mut b = reqwest::Client::builder().user_agent(USER_AGENT);
        if let Some(t) = options.connect_timeout {
            b = b.connect_timeout(t);
        }
        if let Some(t) = options.read_timeout {
            b = b.read_timeout(t);
        }
        options
            .tls
            .merged(extra)
            .apply(b, registry)?
            .build()
            .map_err(|e| ContentError::Setup {
                reason: format!("HTTP client for {registry}: {e}"),
            })
    }

    /// The options the client was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.inner.options
    }

    /// The `hosts.toml` endpoint of `repo`'s registry, if any (looked up once).
    fn endpoint(&self, repo: &Repository) -> Result<Option<HostEndpoint>, ContentError> {
        let mut cache = self.inner.endpoints.lock().expect("poisoned");
        if let Some(e) = cache.get(repo.registry()) {
            return Ok(e.clone());
        }
        let e = self.inner.options.hosts_dirs.endpoint(repo.registry())?;
        cache.insert(repo.registry().to_string(), e.clone());
        Ok(e)
    }

    /// The URL scheme used for `repo`'s registry.
    pub fn scheme_for(&self, repo: &Repository) -> &'static str {
        if let Ok(Some(e)) = self.endpoint(repo) {
            return if e.scheme == "http" { "http" } else { "https" };
        }
        let o = &self.inner.options;
        // TLS files name a TLS registry, on loopback too.
        let tls_given = !o.tls.ca_files.is_empty() || o.tls.client.is_some();
        if o.plain_http || (repo.is_loopback() && !tls_given) {
            "http"
        } else {
            "https"
        }
    }

    async fn host(&self, repo: &Repository) -> Result<Arc<Host>, ContentError> {
        if let Some(h) = self
            .inner
            .hosts
            .lock()
            .expect("poisoned")
            .get(repo.registry())
        {
            return Ok(h.clone());
        }
        let opts = &self.inner.options;
        let (credentials, origin) = match &opts.credentials {
            Some(c) => (c.clone(), "--user".to_string()),
            None => match opts
                .docker_config_dir
                .clone()
                .or_else(default_docker_config_dir)
            {
                Some(dir) => {
                    let origin = format!("docker config {}", dir.join("config.json").display());
                    let key = repo.credential_key().to_string();
                    let registry = repo.registry().to_string();
                    let creds = tokio::task::spawn_blocking(move || {
                        docker_config_credentials(&dir, &key, &registry)
                    })
                    .await
                    .map_err(|e| ContentError::Credentials {
                        registry: repo.registry().into(),
                        origin: origin.clone(),
                        reason: e.to_string(),
                    })??;
                    (creds, origin)
                }
                None => (
                    Credentials::Anonymous,
                    "no docker config: neither $DOCKER_CONFIG nor $HOME is set".to_string(),
                ),
            },
        };
        let endpoint = self.endpoint(repo)?;
        let (base_url, http) = match &endpoint {
            Some(e) => (
                format!("{}://{}", e.scheme, e.authority),
                if e.tls == TlsConfig::default() {
                    self.inner.http.clone()
                } else {
                    Self::http_client(opts, &e.tls, repo.registry())?
                },
            ),
            None => (
                format!("{}://{}", self.scheme_for(repo), repo.api_host()),
                self.inner.http.clone(),
            ),
        };
        let auth = Authorizer::new(
            repo.registry().to_string(),
            base_url.clone(),
            credentials,
            origin,
            http.clone(),
            opts.http_debug,
        );
        let host = Arc::new(Host {
            registry: repo.registry().to_string(),
            base_url,
            http,
            auth,
        });
        let mut hosts = self.inner.hosts.lock().expect("poisoned");
        Ok(hosts
            .entry(repo.registry().to_string())
            .or_insert(host)
            .clone())
    }

    /// Send a body-less request with authentication, re-authenticating once
    /// after a 401. A final 401/403 becomes [`ContentError::Unauthorized`].
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        host: &Host,
        repo: &Repository,
        access: Access,
        what: &What,
        method: Method,
        url: &str,
        headers: HeaderMap,
    ) -> Result<reqwest::Response, ContentError> {
        let scopes = Scopes::repo(repo.name(), access);
        self.send_with(host, repo, &scopes, what, url, |http| {
            http.request(method.clone(), url).headers(headers.clone())
        })
        .await
    }

    /// Send the request `build` makes (again after a 401, with a fresh grant
    /// of `scopes`). A final 401/403 becomes [`ContentError::Unauthorized`].
    async fn send_with(
        &self,
        host: &Host,
        repo: &Repository,
        scopes: &Scopes,
        what: &What,
        url: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ContentError> {
        let mut retried = false;
        loop {
            let resp = self
                .authorized_send(host, scopes, url, build(&host.http))
                .await?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                host.auth.invalidate(scopes).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(host.auth.refused(status.as_u16(), &what.describe(repo)));
            }
            return Ok(resp);
        }
    }

    /// Send a request with a body that cannot be sent twice (a stream):
    /// a 401 is not retried, it becomes [`ContentError::Unauthorized`].
    async fn send_once(
        &self,
        host: &Host,
        repo: &Repository,
        scopes: &Scopes,
        what: &What,
        url: &str,
        rb: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ContentError> {
        let resp = self.authorized_send(host, scopes, url, rb).await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            host.auth.invalidate(scopes).await;
            return Err(host.auth.refused(status.as_u16(), &what.describe(repo)));
        }
        Ok(resp)
    }

    /// Send `rb` once with the grant of `scopes` (printed with
    /// `--http-dump`/`--http-trace`); transport failures become errors
    /// naming the registry and `url`.
    async fn authorized_send(
        &self,
        host: &Host,
        scopes: &Scopes,
        url: &str,
        rb: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ContentError> {
        let rb = match host.auth.grant(scopes).await?.header() {
            Some(h) => rb.header(AUTHORIZATION, h),
            None => rb,
        };
        self.inner
            .options
            .http_debug
            .send(&host.http, rb)
            .await
            .map_err(|e| transport_error(&host.registry, url, &e))
    }

    /// Start a blob upload (`POST .../blobs/uploads/`); returns the URL to
    /// finish it at. With `mount` (`?mount=&from=`), `Ok(None)` means the
    /// blob was mounted (201).
    async fn start_upload(
        &self,
        host: &Host,
        repo: &Repository,
        scopes: &Scopes,
        what: &What,
        mount: Option<(&Digest, &Repository)>,
    ) -> Result<Option<reqwest::Url>, ContentError> {
        let mut url = reqwest::Url::parse(&format!(
            "{}/v2/{}/blobs/uploads/",
            host.base_url,
            repo.name()
        ))
        .map_err(|e| host.error(repo, what, format!("bad URL: {e}")))?;
        if let Some((d, from)) = mount {
            url.query_pairs_mut()
                .append_pair("mount", &d.to_string())
                .append_pair("from", from.name());
        }
        let resp = self
            .send_with(host, repo, scopes, what, url.as_str(), |http| {
                http.post(url.clone()).header(CONTENT_LENGTH, "0")
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::CREATED && mount.is_some() {
            return Ok(None);
        }
        if status != StatusCode::ACCEPTED {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(host.status_error(repo, what, status, &body));
        }
        let location = header_str(resp.headers(), reqwest::header::LOCATION)
            .ok_or_else(|| host.error(repo, what, "202 without a Location header".into()))?;
        let next = url
            .join(location)
            .map_err(|e| host.error(repo, what, format!("bad Location {location:?}: {e}")))?;
        Ok(Some(next))
    }

    /// The URL that completes an upload at `location` with `digest`.
    fn finish_url(location: &reqwest::Url, digest: &Digest) -> reqwest::Url {
        let mut u = location.clone();
        u.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        u
    }

    /// The answer to the `PUT` completing an upload: 201, or an error.
    async fn finish_upload(
        host: &Host,
        repo: &Repository,
        what: &What,
        resp: reqwest::Response,
    ) -> Result<(), ContentError> {
        let status = resp.status();
        if status == StatusCode::CREATED || status.is_success() {
            return Ok(());
        }
        let body = resp.bytes().await.unwrap_or_default();
        Err(host.status_error(repo, what, status, &body))
    }

    /// Look up a manifest by tag or digest with `HEAD` and return its
    /// descriptor (media type, digest, size). Falls back to `GET` when the
    /// registry's `HEAD` answer lacks any of them.
    pub async fn resolve(&self, reference: &ImageReference) -> Result<Descriptor, ContentError> {
        let repo = reference.repository();
        let host = self.host(repo).await?;
        let object = reference.object();
        let what = What::new("resolve manifest", &object);
        let url = format!("{}/v2/{}/manifests/{}", host.base_url, repo.name(), object);
        let resp = self
            .send(
                &host,
                repo,
                Access::Pull,
                &what,
                Method::HEAD,
                &url,
                manifest_headers(),
            )
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(ContentError::ManifestNotFound {
                reference: reference.to_string(),
            });
        }
        if status.is_success() {
            let h = resp.headers();
            let digest =
                header_str(h, DOCKER_CONTENT_DIGEST).and_then(|d| d.parse::<Digest>().ok());
            let size = header_u64(h, CONTENT_LENGTH);
            if let (Some(digest), Some(size), Some(mt)) = (digest, size, specific_media_type(h)) {
                if let Some(want) = reference.digest()
                    && *want != digest
                {
                    return Err(host.error(
                        repo,
                        &what,
                        format!("the registry reports digest {digest} for it"),
                    ));
                }
                return Ok(Descriptor::new(mt, digest, size as i64));
            }
        } else if status != StatusCode::METHOD_NOT_ALLOWED {
            return Err(host.status_error(repo, &what, status, b""));
        }
        let m = self.get_manifest(repo, &object).await?;
        Ok(m.descriptor())
    }

    /// Fetch a manifest or index by tag or digest (`reference` is either), verify
    /// its digest (against the request, or the registry's
    /// `Docker-Content-Digest` for a tag), and return its exact bytes and
    /// media type.
    pub async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<FetchedManifest, ContentError> {
        let want: Option<Digest> = if reference.contains(':') {
            Some(reference.parse().map_err(|_| ReferenceError::Invalid {
                input: format!("{repo}@{reference}"),
                reason: "not a sha256:<64 hex> digest".into(),
            })?)
        } else {
            ImageReference::with_tag(repo.clone(), reference)?;
            None
        };
        let full_ref = match &want {
            Some(d) => format!("{repo}@{d}"),
            None => format!("{repo}:{reference}"),
        };
        let host = self.host(repo).await?;
        let what = What::new("get manifest", reference);
        let url = format!(
            "{}/v2/{}/manifests/{}",
            host.base_url,
            repo.name(),
            reference
        );
        let resp = self
            .send(
                &host,
                repo,
                Access::Pull,
                &what,
                Method::GET,
                &url,
                manifest_headers(),
            )
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(ContentError::ManifestNotFound {
                reference: full_ref,
            });
        }
        if !status.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(host.status_error(repo, &what, status, &body));
        }
        let headers = resp.headers().clone();
        let bytes = read_limited(resp, MAX_MANIFEST_SIZE, |r| host.error(repo, &what, r)).await?;
        let digest = Digest::of(&bytes);
        let expected = want.or_else(|| {
            header_str(&headers, DOCKER_CONTENT_DIGEST).and_then(|d| d.parse::<Digest>().ok())
        });
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(ContentError::DigestMismatch {
                expected,
                actual: digest,
                expected_size: header_u64(&headers, CONTENT_LENGTH).unwrap_or(bytes.len() as u64),
                size: bytes.len() as u64,
                store: store_name(repo),
            });
        }
        let media_type = specific_media_type(&headers)
            .or_else(|| detect_media_type(&bytes))
            .ok_or_else(|| {
                host.error(
                    repo,
                    &what,
                    "the registry gave no media type and the document declares none".into(),
                )
            })?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// The size of a blob, or `None` when the repository does not have it.
    pub async fn blob_exists(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<u64>, ContentError> {
        let host = self.host(repo).await?;
        let what = What::blob("check blob", digest);
        let url = format!("{}/v2/{}/blobs/{}", host.base_url, repo.name(), digest);
        let resp = self
            .send(
                &host,
                repo,
                Access::Pull,
                &what,
                Method::HEAD,
                &url,
                HeaderMap::new(),
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => match header_u64(resp.headers(), CONTENT_LENGTH) {
                Some(n) => Ok(Some(n)),
                None => Err(host.error(repo, &what, "no Content-Length in the answer".into())),
            },
            s => Err(host.status_error(repo, &what, s, b"")),
        }
    }

    /// The size of a blob; [`ContentError::NotFound`] when it is missing.
    pub async fn blob_size(&self, repo: &Repository, digest: &Digest) -> Result<u64, ContentError> {
        self.blob_exists(repo, digest)
            .await?
            .ok_or_else(|| ContentError::NotFound {
                digest: digest.clone(),
                store: store_name(repo),
            })
    }

    /// Stream a whole blob; the stream fails at its end when the bytes do not
    /// hash to `digest`.
    pub async fn get_blob_stream(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<BlobStream, ContentError> {
        let host = self.host(repo).await?;
        let what = What::blob("get blob", digest);
        let url = format!("{}/v2/{}/blobs/{}", host.base_url, repo.name(), digest);
        let resp = self
            .send(
                &host,
                repo,
                Access::Pull,
                &what,
                Method::GET,
                &url,
                HeaderMap::new(),
            )
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(host.status_error(repo, &what, status, &body));
        }
        let size = header_u64(resp.headers(), CONTENT_LENGTH);
        let sized: Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>> =
            Box::pin(resp.bytes_stream());
        struct St {
            src: Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>,
            hasher: Option<Hasher>,
            read: u64,
            expected: Digest,
            expected_size: Option<u64>,
            store: String,
            registry: String,
            url: String,
        }
        let st = St {
            src: sized,
            hasher: Some(Hasher::new()),
            read: 0,
            expected: digest.clone(),
            expected_size: size,
            store: store_name(repo),
            registry: host.registry.clone(),
            url,
        };
        fn mismatch(st: &St, actual: Digest) -> ContentError {
            ContentError::DigestMismatch {
                expected: st.expected.clone(),
                actual,
                expected_size: st.expected_size.unwrap_or(st.read),
                size: st.read,
                store: st.store.clone(),
            }
        }
        let stream = futures_util::stream::unfold(st, |mut st| async move {
            st.hasher.as_ref()?;
            match st.src.next().await {
                Some(Ok(b)) => {
                    st.read += b.len() as u64;
                    if let Some(h) = st.hasher.as_mut() {
                        h.update(&b);
                    }
                    Some((Ok(b), st))
                }
                Some(Err(e)) => {
                    st.hasher = None;
                    let err = ContentError::Unreachable {
                        registry: st.registry.clone(),
                        url: st.url.clone(),
                        reason: format!("download interrupted after {} bytes: {e}", st.read),
                        hint: String::new(),
                    };
                    Some((Err(err), st))
                }
                None => {
                    let actual = st.hasher.take().expect("checked").finish();
                    if actual != st.expected || st.expected_size.is_some_and(|s| s != st.read) {
                        let err = mismatch(&st, actual);
                        Some((Err(err), st))
                    } else {
                        None
                    }
                }
            }
        });
        Ok(BlobStream {
            size,
            inner: Box::pin(stream),
        })
    }

    /// Download a whole blob into memory and verify it.
    pub async fn get_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Vec<u8>, ContentError> {
        self.get_blob_stream(repo, digest).await?.into_vec().await
    }

    /// Read byte ranges of a blob: one buffer per range, each exactly as long
    /// as its range. Nearby ranges are merged; several remaining ranges go in
    /// one multi-range request (`multipart/byteranges`); a server that
    /// ignores `Range` (200) is read only as far as needed; a server that
    /// serves fewer ranges than asked is asked again with one covering range.
    /// The bytes are not verified (the blob's digest covers the whole blob).
    pub async fn read_ranges(
        &self,
        repo: &Repository,
        digest: &Digest,
        wanted: &[Range<u64>],
    ) -> Result<Vec<Vec<u8>>, ContentError> {
        let bad = |reason: String| ContentError::BadRange {
            digest: digest.clone(),
            store: store_name(repo),
            ranges: ranges::describe(wanted),
            reason,
        };
        if let Some(r) = wanted.iter().find(|r| r.start > r.end) {
            return Err(bad(format!("{}..{} is not a range", r.start, r.end)));
        }
        let mut ex = Extractor::new(wanted);
        if ex.missing().is_empty() {
            return Ok(ex.finish());
        }
        let host = self.host(repo).await?;
        let mut covering = false;
        let mut rounds = 0usize;
        let limit =
            ranges::coalesce(wanted, ranges::MERGE_GAP).len() / ranges::MAX_RANGES_PER_REQUEST + 8;
        loop {
            let missing = ex.missing();
            if missing.is_empty() {
                return Ok(ex.finish());
            }
            rounds += 1;
            if rounds > limit {
                return Err(bad(format!(
                    "the registry keeps answering with less than asked; still missing {}",
                    ranges::describe(&missing)
                )));
            }
            let before: u64 = missing.iter().map(|r| r.end - r.start).sum();
            let batch: Vec<Range<u64>> = if covering {
                let start = missing.iter().map(|r| r.start).min().expect("non-empty");
                let end = missing.iter().map(|r| r.end).max().expect("non-empty");
                std::iter::once(start..end).collect()
            } else {
                let groups = ranges::coalesce(&missing, ranges::MERGE_GAP);
                groups
                    .into_iter()
                    .take(ranges::MAX_RANGES_PER_REQUEST)
                    .collect()
            };
            self.fetch_ranges(&host, repo, digest, &batch, &mut ex, &bad)
                .await?;
            let after: u64 = ex.missing().iter().map(|r| r.end - r.start).sum();
            if after == before {
                if covering {
                    return Err(bad(format!(
                        "the registry did not return {}",
                        ranges::describe(&ex.missing())
                    )));
                }
                covering = true;
            }
        }
    }

    /// One ranged GET for `batch`, feeding whatever comes back into `ex`.
    async fn fetch_ranges(
        &self,
        host: &Host,
        repo: &Repository,
        digest: &Digest,
        batch: &[Range<u64>],
        ex: &mut Extractor,
        bad: &impl Fn(String) -> ContentError,
    ) -> Result<(), ContentError> {
        let what = What::blob("read blob", digest);
        let url = format!("{}/v2/{}/blobs/{}", host.base_url, repo.name(), digest);
        let mut headers = HeaderMap::new();
        headers.insert(
            RANGE,
            HeaderValue::from_str(&ranges::header_value(batch)).expect("ascii"),
        );
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        let mut resp = self
            .send(host, repo, Access::Pull, &what, Method::GET, &url, headers)
            .await?;
        let status = resp.status();
        let max_end = batch.iter().map(|r| r.end).max().unwrap_or(0);
        let net = |e: reqwest::Error| transport_error(&host.registry, &url, &e);
        match status {
            StatusCode::PARTIAL_CONTENT => {
                let h = resp.headers();
                if let Some(boundary) =
                    header_str(h, CONTENT_TYPE).and_then(ranges::multipart_boundary)
                {
                    let asked: u64 = batch.iter().map(|r| r.end - r.start).sum();
                    let limit = asked + 64 * 1024 + 512 * batch.len() as u64;
                    let body = read_limited(resp, limit, |r| bad(format!("multipart answer: {r}")))
                        .await?;
                    let parts = ranges::parse_multipart(&body, &boundary)
                        .map_err(|r| bad(format!("unreadable multipart answer: {r}")))?;
                    for (range, data) in parts {
                        ex.feed(range.start, data);
                    }
                    return Ok(());
                }
                let cr = header_str(h, CONTENT_RANGE)
                    .and_then(ranges::parse_content_range)
                    .ok_or_else(|| {
                        bad(format!(
                            "206 answer without a valid Content-Range ({:?})",
                            header_str(h, CONTENT_RANGE)
                        ))
                    })?;
                if let Some(total) = cr.total
                    && max_end > total
                {
                    return Err(bad(format!("the blob is only {total} bytes long")));
                }
                let mut offset = cr.range.start;
                while let Some(chunk) = resp.chunk().await.map_err(net)? {
                    if offset + chunk.len() as u64 > cr.range.end {
                        return Err(bad(format!(
                            "the 206 body is longer than its Content-Range {}-{}",
                            cr.range.start,
                            cr.range.end - 1
                        )));
                    }
                    ex.feed(offset, &chunk);
                    offset += chunk.len() as u64;
                }
                if offset != cr.range.end {
                    return Err(bad(format!(
                        "the 206 body has {} bytes but its Content-Range {}-{} says {}",
                        offset - cr.range.start,
                        cr.range.start,
                        cr.range.end - 1,
                        cr.range.end - cr.range.start
                    )));
                }
                Ok(())
            }
            StatusCode::OK => {
                // The server ignored Range: take what is needed from the whole blob.
                if let Some(len) = header_u64(resp.headers(), CONTENT_LENGTH)
                    && max_end > len
                {
                    return Err(bad(format!("the blob is only {len} bytes long")));
                }
                let mut offset = 0u64;
                while let Some(chunk) = resp.chunk().await.map_err(net)? {
                    ex.feed(offset, &chunk);
                    offset += chunk.len() as u64;
                    if ex.missing().is_empty() {
                        break;
                    }
                }
                if offset < max_end {
                    return Err(bad(format!("the blob is only {offset} bytes long")));
                }
                Ok(())
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let size = header_str(resp.headers(), CONTENT_RANGE)
                    .and_then(|v| v.rsplit('/').next())
                    .and_then(|s| s.trim().parse::<u64>().ok());
                Err(bad(match size {
                    Some(n) => format!("the ranges go past the end of the blob ({n} bytes)"),
                    None => "the ranges go past the end of the blob (HTTP 416)".into(),
                }))
            }
            s => {
                let body = resp.bytes().await.unwrap_or_default();
                Err(host.status_error(repo, &what, s, &body))
            }
        }
    }

    /// Upload a blob held in memory, unless the repository has it already;
    /// with `mount_from` (another repository of the same registry) a
    /// cross-repository mount is tried first.
    pub async fn push_blob(
        &self,
        repo: &Repository,
        data: impl Into<Bytes>,
        mount_from: Option<&Repository>,
    ) -> Result<PushOutcome, ContentError> {
        let data: Bytes = data.into();
        let digest = Digest::of(&data);
        if let Some(o) = self.skip_or_mount(repo, &digest, mount_from).await? {
            return Ok(o);
        }
        let host = self.host(repo).await?;
        let what = What::blob("push blob", &digest);
        let scopes = Scopes::repo(repo.name(), Access::Push);
        let location = self
            .start_upload(&host, repo, &scopes, &what, None)
            .await?
            .expect("an upload without mount has a location");
        let url = Self::finish_url(&location, &digest);
        let resp = self
            .send_with(&host, repo, &scopes, &what, url.as_str(), |http| {
                http.put(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(data.clone())
            })
            .await?;
        Self::finish_upload(&host, repo, &what, resp).await?;
        Ok(PushOutcome::Uploaded)
    }

    /// Upload a blob from a reader, unless the repository has it already (or
    /// it can be mounted from `mount_from`). The bytes are hashed on the way;
    /// if they do not match `digest` and `size` the upload is abandoned with
    /// [`ContentError::DigestMismatch`]. A 401 in the middle of the upload is
    /// not retried (the reader cannot be rewound).
    pub async fn push_blob_stream<R>(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        reader: R,
        mount_from: Option<&Repository>,
    ) -> Result<PushOutcome, ContentError>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        if let Some(o) = self.skip_or_mount(repo, digest, mount_from).await? {
            return Ok(o);
        }
        let host = self.host(repo).await?;
        let what = What::blob("push blob", digest);
        let scopes = Scopes::repo(repo.name(), Access::Push);
        let location = self
            .start_upload(&host, repo, &scopes, &what, None)
            .await?
            .expect("an upload without mount has a location");

        let failure: Arc<Mutex<Option<ContentError>>> = Arc::default();
        struct St<R> {
            reader: R,
            hasher: Option<Hasher>,
            read: u64,
            size: u64,
            digest: Digest,
            store: String,
            failure: Arc<Mutex<Option<ContentError>>>,
        }
        let st = St {
            reader,
            hasher: Some(Hasher::new()),
            read: 0,
            size,
            digest: digest.clone(),
            store: format!("the data pushed to {}", store_name(repo)),
            failure: failure.clone(),
        };
        type Item = Result<Bytes, std::io::Error>;
        fn fail<R>(mut st: St<R>, e: ContentError) -> Option<(Item, St<R>)> {
            let msg = e.to_string();
            *st.failure.lock().expect("poisoned") = Some(e);
            st.hasher = None;
            Some((Err(std::io::Error::other(msg)), st))
        }
        let stream = futures_util::stream::unfold(st, |mut st| async move {
            st.hasher.as_ref()?;
            let mut buf = vec![0u8; UPLOAD_CHUNK];
            let mut n = 0;
            let mut eof = false;
            while n < buf.len() {
                match st.reader.read(&mut buf[n..]).await {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(k) => n += k,
                    Err(e) => {
                        let err = ContentError::Io {
                            action: "read blob to push",
                            path: PathBuf::from(st.digest.to_string()),
                            source: e,
                        };
                        return fail(st, err);
                    }
                }
            }
            st.read += n as u64;
            if let Some(h) = st.hasher.as_mut() {
                h.update(&buf[..n]);
            }
            if eof || st.read > st.size {
                let actual = st.hasher.take().expect("checked").finish();
                if st.read != st.size || actual != st.digest {
                    let err = ContentError::DigestMismatch {
                        expected: st.digest.clone(),
                        actual,
                        expected_size: st.size,
                        size: st.read,
                        store: st.store.clone(),
                    };
                    return fail(st, err);
                }
                if n == 0 {
                    return None;
                }
            }
            buf.truncate(n);
            Some((Ok(Bytes::from(buf)), st))
        });
        let url = Self::finish_url(&location, digest);
        let rb = host
            .http
            .put(url.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream));
        let res = self
            .send_once(&host, repo, &scopes, &what, url.as_str(), rb)
            .await;
        if let Some(e) = failure.lock().expect("poisoned").take() {
            return Err(e);
        }
        Self::finish_upload(&host, repo, &what, res?).await?;
        Ok(PushOutcome::Uploaded)
    }

    /// Whether `repo` already has the blob ([`PushOutcome::Exists`]) or got it
    /// by a cross-repository mount from `mount_from` ([`PushOutcome::Mounted`]);
    /// `None` when it has to be uploaded.
    pub async fn exists_or_mount(
        &self,
        repo: &Repository,
        digest: &Digest,
        mount_from: Option<&Repository>,
    ) -> Result<Option<PushOutcome>, ContentError> {
        self.skip_or_mount(repo, digest, mount_from).await
    }

    async fn skip_or_mount(
        &self,
        repo: &Repository,
        digest: &Digest,
        mount_from: Option<&Repository>,
    ) -> Result<Option<PushOutcome>, ContentError> {
        if self.blob_exists(repo, digest).await?.is_some() {
            return Ok(Some(PushOutcome::Exists));
        }
        let Some(src) = mount_from.filter(|s| s.registry() == repo.registry() && *s != repo) else {
            return Ok(None);
        };
        let host = self.host(repo).await?;
        let what = What::blob("mount blob", digest);
        let scopes = Scopes::mount(repo.name(), src.name());
        match self
            .start_upload(&host, repo, &scopes, &what, Some((digest, src)))
            .await
        {
            Ok(None) => Ok(Some(PushOutcome::Mounted)),
            // 202: the registry started an upload instead (it does not mount
            // or lacks the source blob); cancel it and upload normally.
            Ok(Some(location)) => {
                let url = location.to_string();
                let _ = self
                    .authorized_send(&host, &scopes, &url, host.http.delete(location))
                    .await;
                Ok(None)
            }
            Err(ContentError::Registry { .. } | ContentError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Upload a manifest or index exactly as given, under `tag` or (when
    /// `None`) its digest. Returns its descriptor.
    pub async fn push_manifest_raw(
        &self,
        repo: &Repository,
        bytes: impl Into<Bytes>,
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<Descriptor, ContentError> {
        let bytes: Bytes = bytes.into();
        let digest = Digest::of(&bytes);
        let host = self.host(repo).await?;
        let what = What::new(
            "push manifest",
            tag.map_or_else(|| digest.to_string(), str::to_string),
        );
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(host.error(
                repo,
                &what,
                format!(
                    "{} bytes is more than the {MAX_MANIFEST_SIZE} bytes registries accept",
                    bytes.len()
                ),
            ));
        }
        let object = match tag {
            Some(t) => {
                ImageReference::with_tag(repo.clone(), t)?;
                t.to_string()
            }
            None => digest.to_string(),
        };
        let ct = HeaderValue::from_str(media_type)
            .map_err(|_| host.error(repo, &what, format!("invalid media type {media_type:?}")))?;
        let scopes = Scopes::repo(repo.name(), Access::Push);
        let url = format!("{}/v2/{}/manifests/{}", host.base_url, repo.name(), object);
        let resp = self
            .send_with(&host, repo, &scopes, &what, &url, |http| {
                http.put(&url)
                    .header(CONTENT_TYPE, ct.clone())
                    .body(bytes.clone())
            })
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(host.status_error(repo, &what, status, &body));
        }
        Ok(Descriptor::new(media_type, digest, bytes.len() as i64))
    }

    /// The referrers of `subject`: from the OCI referrers API, or, when the
    /// registry answers 404 there, from the `sha256-<hex>` tag-schema index.
    /// With `artifact_type`, only referrers of that type are returned.
    pub async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers, ContentError> {
        let host = self.host(repo).await?;
        let what = What::new("list referrers of", subject);
        let mut url = reqwest::Url::parse(&format!(
            "{}/v2/{}/referrers/{}",
            host.base_url,
            repo.name(),
            subject
        ))
        .map_err(|e| host.error(repo, &what, format!("bad URL: {e}")))?;
        if let Some(at) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", at);
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(json::MEDIA_TYPE_OCI_INDEX));
        let resp = self
            .send(
                &host,
                repo,
                Access::Pull,
                &what,
                Method::GET,
                url.as_str(),
                headers,
            )
            .await?;
        let filter = |mut v: Vec<Descriptor>| {
            if let Some(at) = artifact_type {
                v.retain(|d| d.artifact_type == at);
            }
            v
        };
        match resp.status() {
            StatusCode::NOT_FOUND => {
                let index = self.tag_schema_index(repo, subject).await?;
                Ok(Referrers {
                    manifests: filter(
                        index
                            .map(|i| i.manifests.unwrap_or_default())
                            .unwrap_or_default(),
                    ),
                    via_tag_schema: true,
                })
            }
            s if s.is_success() => {
                let body =
                    read_limited(resp, MAX_MANIFEST_SIZE, |r| host.error(repo, &what, r)).await?;
                let index = Index::from_json(&body).map_err(|e| {
                    host.error(
                        repo,
                        &what,
                        format!("the referrers answer is not an image index: {e}"),
                    )
                })?;
                Ok(Referrers {
                    manifests: filter(index.manifests.unwrap_or_default()),
                    via_tag_schema: false,
                })
            }
            s => {
                let body = resp.bytes().await.unwrap_or_default();
                Err(host.status_error(repo, &what, s, &body))
            }
        }
    }

    /// The tag-schema referrers index of `subject`, if the tag exists.
    async fn tag_schema_index(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Option<Index>, ContentError> {
        let tag = referrers_tag(subject);
        let m = match self.get_manifest(repo, &tag).await {
            Ok(m) => m,
            Err(ContentError::ManifestNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |reason: String| ContentError::Registry {
            registry: repo.registry().into(),
            repository: repo.name().into(),
            operation: "read referrers tag",
            object: tag.clone(),
            reason,
        };
        if !json::is_index_type(&m.media_type) {
            return Err(bad(format!(
                "it holds a {} instead of an image index of referrers",
                m.media_type
            )));
        }
        Index::from_json(&m.bytes)
            .map(Some)
            .map_err(|e| bad(format!("the index does not parse: {e}")))
    }

    /// Add `referrer` to the tag-schema referrers index of `subject` (for
    /// registries without the referrers API), creating the index if needed.
    /// Returns `false` when it was listed already. Concurrent updates of the
    /// same subject can lose one another's entry, as with oras.
    pub async fn put_referrers_tag_fallback(
        &self,
        repo: &Repository,
        subject: &Digest,
        referrer: &Descriptor,
    ) -> Result<bool, ContentError> {
        let mut index = self
            .tag_schema_index(repo, subject)
            .await?
            .unwrap_or_else(|| Index {
                schema_version: 2,
                media_type: json::MEDIA_TYPE_OCI_INDEX.to_string(),
                manifests: Some(Vec::new()),
                ..Index::default()
            });
        if index
            .manifests()
            .iter()
            .any(|d| d.digest == referrer.digest)
        {
            return Ok(false);
        }
        if index.media_type.is_empty() {
            index.media_type = json::MEDIA_TYPE_OCI_INDEX.to_string();
        }
        index
            .manifests
            .get_or_insert_with(Vec::new)
            .push(referrer.clone());
        self.push_manifest_raw(
            repo,
            index.to_json(),
            json::MEDIA_TYPE_OCI_INDEX,
            Some(&referrers_tag(subject)),
        )
        .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_descriptors() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.amazon.soci.index.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"annotations":{"a":"b"}}"#;
        let d = referrer_descriptor(m, json::MEDIA_TYPE_OCI_MANIFEST).unwrap();
        assert_eq!(d.artifact_type, json::SOCI_INDEX_ARTIFACT_TYPE_V1);
        assert_eq!(d.annotations["a"], "b");
        assert_eq!(d.digest, Digest::of(m).to_string());
        assert_eq!(d.size, m.len() as i64);
        let i = br#"{"schemaVersion":2,"artifactType":"x/y","manifests":[]}"#;
        let d = referrer_descriptor(i, json::MEDIA_TYPE_OCI_INDEX).unwrap();
        assert_eq!(d.artifact_type, "x/y");
        let e = referrer_descriptor(b"[", json::MEDIA_TYPE_OCI_MANIFEST).unwrap_err();
        assert!(matches!(e, ContentError::InvalidManifest { .. }), "{e:?}");
        assert_eq!(
            referrers_tag(&Digest::of(b"{}")),
            "sha256-44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn media_type_detection() {
        assert_eq!(
            detect_media_type(br#"{"mediaType":"a/b","manifests":[]}"#).as_deref(),
            Some("a/b")
        );
        assert_eq!(
            detect_media_type(br#"{"manifests":[]}"#).as_deref(),
            Some(json::MEDIA_TYPE_OCI_INDEX)
        );
        assert_eq!(
            detect_media_type(br#"{"config":{}}"#).as_deref(),
            Some(json::MEDIA_TYPE_OCI_MANIFEST)
        );
        assert_eq!(detect_media_type(b"{}"), None);
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(specific_media_type(&h), None);
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
        );
        assert_eq!(
            specific_media_type(&h).as_deref(),
            Some(json::MEDIA_TYPE_OCI_INDEX)
        );
        assert_eq!(
            error_body_text(br#"{"errors":[{"code":"DENIED","message":"no"}]}"#),
            ": DENIED: no"
        );
        assert_eq!(error_body_text(b""), "");
    }
}
