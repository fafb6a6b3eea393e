//! OCI registries: references, credentials, and an async client.
//!
//! [`RegistryClient`] talks the OCI distribution API (tokio, HTTP/1.1 through
//! reqwest), every operation on one reqwest client per registry:
//!
//! | operation | how |
//! |---|---|
//! | blob upload (`push_blob`, `push_blob_stream`) | `POST .../blobs/uploads/`, then one `PUT ...?digest=` with the whole body (streamed, hashed on the way) |
//! | cross-repository mount | `POST .../blobs/uploads/?mount=&from=`; a 202 (no mount) is cancelled and the blob uploaded |
//! | manifest upload | `PUT .../manifests/<tag or digest>` with the exact bytes, so the digest is ours |
//! | whole-blob download (`get_blob`, `get_blob_stream`) | `GET`, verified against the digest while it streams |
//! | authentication | [`auth`](self::auth): identity tokens, mount scopes, refused credentials |
//! | `resolve` (HEAD manifest), `blob_size` (HEAD blob), `get_manifest` | size, media type and digest from the answer |
//! | `read_ranges` | multi-range requests, `multipart/byteranges`, checking what a 206 covers |
//! | `referrers`, `put_referrers_tag_fallback` | the OCI referrers API with the tag-schema fallback |
//!
//! No oci-client: it builds its own HTTP client, which cannot present a
//! client certificate (`--tlscert`/`--tlskey`, hosts.toml `client`), and its
//! authentication has no refresh-token grant; with one HTTP client per
//! registry, TLS settings ([`TlsConfig`], [`HostsDirs`]) and the debug output
//! of `--http-dump`/`--http-trace` ([`HttpDebug`]) cover every request.
//!
//! Every operation re-authenticates once after a 401 (an expired token) and
//! then fails with [`ContentError::Unauthorized`] naming the registry. Errors
//! name the registry, repository and digest or tag.
//!
//! Registries on loopback (`localhost`, `127.0.0.0/8`, `::1`) are reached over
//! plain HTTP, as upstream does; others over HTTPS unless
//! [`RegistryOptions::plain_http`] is set.
//!
//! [`RegistryRangeReader`] and [`RemoteImage`] adapt the client to the
//! blocking seams of this crate ([`BlobRangeReader`](crate::BlobRangeReader),
//! [`BlobSource`](crate::BlobSource) and [`Layout`](crate::Layout)).

pub mod auth;
mod blocking;
mod client;
pub mod hosts;
mod ranges;
mod reference;
pub mod trace;

pub use auth::{
    Credentials, default_docker_config_dir, docker_config_credentials, docker_config_dir_from,
};
pub use blocking::{BlockingRuntime, RegistryRangeReader, RemoteImage};
pub use client::{
    BlobStream, FetchedManifest, MAX_MANIFEST_SIZE, PushOutcome, Referrers, RegistryClient,
    RegistryOptions, referrer_descriptor, referrers_tag,
};
pub use hosts::{HostEndpoint, HostsDirs, TlsConfig};
pub use reference::{
    DOCKER_HUB, DOCKER_HUB_API_HOST, DOCKER_HUB_CREDENTIAL_KEY, ImageLocation, ImageReference,
    ReferenceError, Repository, is_loopback_registry, registry_api_host,
};
pub use trace::HttpDebug;
