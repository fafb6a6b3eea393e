//! The client against a scripted server on 127.0.0.1: Bearer token auth
//! (basic credentials and identity tokens), tokens that expire, a referrers
//! API, and servers that answer `Range` requests badly.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use soci_content::ContentError;
use soci_content::registry::{
    Credentials, ImageReference, RegistryClient, RegistryOptions, Repository,
};
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index};

use crate::common::fake::{FakeServer, Req, Resp};
use crate::common::random;

const SERVICE: &str = "fake-registry";

fn client_with(
    credentials: Option<Credentials>,
    docker_config: Option<&std::path::Path>,
) -> RegistryClient {
    RegistryClient::new(RegistryOptions {
        credentials,
        docker_config_dir: Some(
            docker_config
                .map(|p| p.to_path_buf())
                .unwrap_or_else(|| "/nonexistent/soci-test-docker-config".into()),
        ),
        ..RegistryOptions::default()
    })
    .unwrap()
}

/// Content the fake serves under `/v2/x/y/`.
struct Content {
    manifest: Vec<u8>,
    blob: Vec<u8>,
}

impl Content {
    fn new() -> Content {
        let blob = random(42, 3000);
        let manifest = json::Manifest {
            schema_version: 2,
            media_type: json::MEDIA_TYPE_OCI_MANIFEST.into(),
            config: Descriptor::for_bytes(json::MEDIA_TYPE_OCI_EMPTY_JSON, b"{}"),
            layers: Some(vec![Descriptor::for_bytes(
                json::MEDIA_TYPE_OCI_LAYER_GZIP,
                &blob,
            )]),
            ..Default::default()
        }
        .to_json();
        Content { manifest, blob }
    }

    /// Serve manifests (GET/HEAD by tag `v1` or digest), the blob, and
    /// manifest PUTs.
    fn serve(&self, req: &Req) -> Resp {
        let md = Digest::of(&self.manifest).to_string();
        let bd = Digest::of(&self.blob).to_string();
        let p = req.path.as_str();
        if p == "/v2/x/y/manifests/v1" || p == format!("/v2/x/y/manifests/{md}") {
            if req.method == "PUT" {
                return Resp::new(400);
            }
            return Resp::new(200)
                .header("Content-Type", json::MEDIA_TYPE_OCI_MANIFEST)
                .header("Docker-Content-Digest", &md)
                .header("Content-Length", self.manifest.len())
                .body(self.manifest.clone());
        }
        if p.starts_with("/v2/x/y/manifests/") && req.method == "PUT" {
            let d = Digest::of(&req.body);
            return Resp::new(201)
                .header("Location", format!("/v2/x/y/manifests/{d}"))
                .header("Docker-Content-Digest", d);
        }
        if p == format!("/v2/x/y/blobs/{bd}") {
            return Resp::new(200)
                .header("Content-Length", self.blob.len())
                .header("Docker-Content-Digest", &bd)
                .body(self.blob.clone());
        }
        Resp::new(404).body(r#"{"errors":[{"code":"NOT_FOUND","message":"not here"}]}"#)
    }
}

#[derive(Default)]
struct TokenState {
    issued: u32,
    /// Scopes that already got a token: their first token is "expired".
    scopes_seen: HashSet<String>,
    expired: HashSet<String>,
    valid: HashSet<String>,
    token_requests: Vec<Req>,
}

/// A registry behind a token server that checks `user:pass` and issues
/// tokens; the first token of every scope is already expired when used.
fn bearer_server(content: Arc<Content>, state: Arc<Mutex<TokenState>>) -> FakeServer {
    let addr: Arc<OnceLock<String>> = Arc::default();
    let a2 = addr.clone();
    let server = FakeServer::start(move |req| {
        let realm = format!("http://{}/token", a2.get().unwrap());
        let challenge = format!(r#"Bearer realm="{realm}",service="{SERVICE}""#);
        let mut st = state.lock().unwrap();
        if req.path == "/token" {
            st.token_requests.push(req.clone());
            let ok = match req.method.as_str() {
                "GET" => req.header("authorization") == Some("Basic dXNlcjpwYXNz"),
                "POST" => req.form_param("refresh_token") == vec!["idt-secret".to_string()],
                _ => false,
            };
            if !ok {
                return Resp::new(401).body(r#"{"details":"bad credentials"}"#);
            }
            let scope = if req.method == "GET" {
                req.query_param("scope").join(" ")
            } else {
                req.form_param("scope").join(" ")
            };
            st.issued += 1;
            let token = format!("tok-{}", st.issued);
            if st.scopes_seen.insert(scope) {
                st.expired.insert(token.clone());
            } else {
                st.valid.insert(token.clone());
            }
            let field = if req.method == "POST" {
                "access_token"
            } else {
                "token"
            };
            return Resp::new(200).body(format!(r#"{{"{field}":"{token}"}}"#));
        }
        let bearer = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_string);
        match bearer {
            Some(t) if st.valid.contains(&t) => {
                if req.path == "/v2/" {
                    Resp::new(200)
                } else {
                    content.serve(req)
                }
            }
            _ => Resp::new(401).header("WWW-Authenticate", &challenge).body(
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            ),
        }
    });
    addr.set(server.addr.clone()).unwrap();
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_and_reauthentication_after_expiry() {
    let content = Arc::new(Content::new());
    let state: Arc<Mutex<TokenState>> = Arc::default();
    let server = bearer_server(content.clone(), state.clone());
    // Credentials from a docker config, keyed with a scheme (as docker writes them).
    let cfg = tempfile::tempdir().unwrap();
    std::fs::write(
        cfg.path().join("config.json"),
        format!(
            r#"{{"auths":{{"http://{}":{{"username":"user","password":"pass"}}}}}}"#,
            server.addr
        ),
    )
    .unwrap();
    let c = client_with(None, Some(cfg.path()));
    let repo = Repository::new(&server.addr, "x/y").unwrap();

    // Hand-written request: the first token is expired, so one 401, one new
    // token, one retry.
    let m = c.get_manifest(&repo, "v1").await.unwrap();
    assert_eq!(m.bytes, content.manifest);
    {
        let st = state.lock().unwrap();
        assert_eq!(st.token_requests.len(), 2);
        let t = &st.token_requests[0];
        assert_eq!(t.query_param("scope"), vec!["repository:x/y:pull"]);
        assert_eq!(t.query_param("service"), vec![SERVICE]);
    }
    // oci-client request with the same scope: the cached token is shared.
    let bd = Digest::of(&content.blob);
    assert_eq!(c.get_blob(&repo, &bd).await.unwrap(), content.blob);
    assert_eq!(
        c.read_ranges(&repo, &bd, &[5..10]).await.unwrap(),
        vec![content.blob[5..10].to_vec()]
    );
    let r: ImageReference = format!("{}/x/y:v1", server.addr).parse().unwrap();
    assert_eq!(
        c.resolve(&r).await.unwrap(),
        Descriptor::for_bytes(json::MEDIA_TYPE_OCI_MANIFEST, &content.manifest)
    );
    assert_eq!(state.lock().unwrap().token_requests.len(), 2);

    // An oci-client push with a push token that turns out expired: re-auth once.
    let d = c
        .push_manifest_raw(
            &repo,
            b"{\"x\":1}".to_vec(),
            json::MEDIA_TYPE_OCI_MANIFEST,
            Some("v2"),
        )
        .await
        .unwrap();
    assert_eq!(d.digest, Digest::of(b"{\"x\":1}").to_string());
    let st = state.lock().unwrap();
    assert_eq!(st.token_requests.len(), 4);
    assert_eq!(
        st.token_requests[3].query_param("scope"),
        vec!["repository:x/y:pull,push"]
    );
    drop(st);
    assert_eq!(server.count("PUT", "/v2/x/y/manifests/v2"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_tokens_use_the_refresh_token_grant() {
    let content = Arc::new(Content::new());
    let state: Arc<Mutex<TokenState>> = Arc::default();
    let server = bearer_server(content.clone(), state.clone());
    let cfg = tempfile::tempdir().unwrap();
    std::fs::write(
        cfg.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"","identitytoken":"idt-secret"}}}}}}"#,
            server.addr
        ),
    )
    .unwrap();
    let c = client_with(None, Some(cfg.path()));
    let repo = Repository::new(&server.addr, "x/y").unwrap();
    assert_eq!(
        c.get_manifest(&repo, "v1").await.unwrap().bytes,
        content.manifest
    );
    assert_eq!(
        c.get_blob(&repo, &Digest::of(&content.blob)).await.unwrap(),
        content.blob
    );
    let st = state.lock().unwrap();
    let t = &st.token_requests[0];
    assert_eq!(t.method, "POST");
    assert_eq!(t.form_param("grant_type"), vec!["refresh_token"]);
    assert_eq!(t.form_param("client_id"), vec!["soci"]);
    assert_eq!(t.form_param("service"), vec![SERVICE]);
    assert_eq!(t.form_param("scope"), vec!["repository:x/y:pull"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_token_request_is_a_clear_error() {
    let server = bearer_server(Arc::new(Content::new()), Arc::default());
    let c = client_with(
        Some(Credentials::from_user_flag("user:wrong").unwrap()),
        None,
    );
    let repo = Repository::new(&server.addr, "x/y").unwrap();
    let e = c.get_manifest(&repo, "v1").await.unwrap_err();
    assert!(matches!(e, ContentError::Unauthorized { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("authentication to {} failed", server.addr))
            && msg.contains("token server")
            && msg.contains("--user")
            && msg.contains(&format!("docker login {}", server.addr)),
        "{msg}"
    );
    // The same through an oci-client operation.
    let e = c.get_blob(&repo, &Digest::of(b"x")).await.unwrap_err();
    assert!(matches!(e, ContentError::Unauthorized { .. }), "{e:?}");
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RangeMode {
    IgnoreRange,
    FirstRangeOnly,
    ShortBody,
    Unsatisfiable,
    BrokenMultipart,
}

fn range_server(blob: Arc<Vec<u8>>, mode: Arc<Mutex<RangeMode>>) -> FakeServer {
    FakeServer::start(move |req| {
        if req.path == "/v2/" {
            return Resp::new(200);
        }
        let n = blob.len();
        let ranges: Vec<(usize, usize)> = req
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .map(|r| {
                r.split(',')
                    .map(|p| {
                        let (a, b) = p.split_once('-').unwrap();
                        (a.parse().unwrap(), b.parse().unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default();
        if req.method == "HEAD" {
            return Resp::new(200).header("Content-Length", n);
        }
        let mode = *mode.lock().unwrap();
        match (mode, ranges.first()) {
            (RangeMode::IgnoreRange, _) | (_, None) => Resp::new(200).body(blob.to_vec()),
            (RangeMode::FirstRangeOnly, Some(&(a, b))) => Resp::new(206)
                .header("Content-Range", format!("bytes {a}-{b}/{n}"))
                .body(blob[a..=b].to_vec()),
            (RangeMode::ShortBody, Some(&(a, b))) => Resp::new(206)
                .header("Content-Range", format!("bytes {a}-{b}/{n}"))
                .body(blob[a..b].to_vec()),
            (RangeMode::Unsatisfiable, _) => {
                Resp::new(416).header("Content-Range", format!("bytes */{n}"))
            }
            (RangeMode::BrokenMultipart, _) => Resp::new(206)
                .header("Content-Type", "multipart/byteranges; boundary=BB")
                .body("--BB\r\nContent-Range: bytes 0-99/5\r\n\r\nshort"),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_from_servers_that_get_them_wrong() {
    let blob = Arc::new(random(8, 600_000));
    let d = Digest::of(&blob);
    let mode = Arc::new(Mutex::new(RangeMode::IgnoreRange));
    let server = range_server(blob.clone(), mode.clone());
    let c = client_with(None, None);
    let repo = Repository::new(&server.addr, "x/y").unwrap();
    let want = [0..10, 300_000..300_010, 599_990..600_000];
    let expect: Vec<Vec<u8>> = want
        .iter()
        .map(|r| blob[r.start as usize..r.end as usize].to_vec())
        .collect();

    // 200 instead of 206: sliced out of the whole blob.
    assert_eq!(c.read_ranges(&repo, &d, &want).await.unwrap(), expect);
    // Only the first range of a multi-range request is served: the rest is
    // asked for again.
    *mode.lock().unwrap() = RangeMode::FirstRangeOnly;
    let before = server.count("GET", "/v2/x/y/blobs/");
    assert_eq!(c.read_ranges(&repo, &d, &want).await.unwrap(), expect);
    assert!(server.count("GET", "/v2/x/y/blobs/") - before >= 2);
    // A 206 body shorter than its Content-Range.
    *mode.lock().unwrap() = RangeMode::ShortBody;
    let e = c.read_ranges(&repo, &d, &[10..20]).await.unwrap_err();
    assert!(matches!(e, ContentError::BadRange { .. }), "{e:?}");
    assert!(e.to_string().contains(&d.to_string()), "{e}");
    // 416.
    *mode.lock().unwrap() = RangeMode::Unsatisfiable;
    let e = c.read_ranges(&repo, &d, &[10..20]).await.unwrap_err();
    assert!(e.to_string().contains("600000 bytes"), "{e}");
    // A multipart answer that does not parse.
    *mode.lock().unwrap() = RangeMode::BrokenMultipart;
    let e = c.read_ranges(&repo, &d, &want).await.unwrap_err();
    assert!(matches!(e, ContentError::BadRange { .. }), "{e:?}");
    assert!(e.to_string().contains("multipart"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_api_is_used_when_the_registry_has_one() {
    let subject = Digest::of(b"subject");
    let mut a = Descriptor::for_bytes(json::MEDIA_TYPE_OCI_MANIFEST, b"a");
    a.artifact_type = json::SOCI_INDEX_ARTIFACT_TYPE_V1.into();
    let mut b = Descriptor::for_bytes(json::MEDIA_TYPE_OCI_MANIFEST, b"b");
    b.artifact_type = "application/vnd.example".into();
    let index = Index {
        schema_version: 2,
        media_type: json::MEDIA_TYPE_OCI_INDEX.into(),
        manifests: Some(vec![a.clone(), b.clone()]),
        ..Default::default()
    }
    .to_json();
    let path = format!("/v2/x/y/referrers/{subject}");
    let server = FakeServer::start(move |req| {
        if req.path == "/v2/" {
            Resp::new(200)
        } else if req.path == path {
            // Ignores the filter, as the spec allows.
            Resp::new(200)
                .header("Content-Type", json::MEDIA_TYPE_OCI_INDEX)
                .body(index.clone())
        } else {
            Resp::new(404)
        }
    });
    let c = client_with(None, None);
    let repo = Repository::new(&server.addr, "x/y").unwrap();
    let all = c.referrers(&repo, &subject, None).await.unwrap();
    assert!(!all.via_tag_schema);
    assert_eq!(all.manifests, vec![a.clone(), b]);
    let soci = c
        .referrers(&repo, &subject, Some(json::SOCI_INDEX_ARTIFACT_TYPE_V1))
        .await
        .unwrap();
    assert_eq!(soci.manifests, vec![a]);
    let reqs = server.requests.lock().unwrap();
    let last = reqs
        .iter()
        .rev()
        .find(|r| r.path.contains("referrers"))
        .unwrap();
    assert_eq!(
        last.query_param("artifactType"),
        vec![json::SOCI_INDEX_ARTIFACT_TYPE_V1]
    );
    drop(reqs);
    assert_eq!(server.count("GET", "/v2/x/y/manifests/"), 0);
}
