//! OCI registries: references, credentials, and an async client.
//!
//! [`RegistryClient`] talks the OCI distribution API (tokio, HTTP/1.1 through
//! reqwest). It is built on `oci-client` where that crate fits and hand-writes
//! the rest:
//!
//! | operation | how | why |
//! |---|---|---|
//! | blob upload (`push_blob`, `push_blob_stream`) | oci-client `push_blob` / `push_blob_stream` | chunked upload with monolithic fallback, as needed |
//! | cross-repository mount | oci-client `mount_blob` | as needed; a 202 (mount refused) falls back to an upload |
//! | manifest upload | oci-client `push_manifest_raw` | sends the exact bytes, so the digest is ours |
//! | whole-blob download (`get_blob`, `get_blob_stream`) | oci-client `pull_blob_stream`, re-verified here | its verification error is turned into [`ContentError::DigestMismatch`] |
//! | authentication | hand-written ([`auth`](self::auth)), tokens handed to oci-client | see the `auth` module: identity tokens, mount scopes, refused credentials, shared tokens |
//! | `resolve` (HEAD manifest), `blob_size` (HEAD blob) | hand-written | oci-client's HEAD helpers return only a digest or a bool, not size and media type |
//! | `get_manifest` | hand-written | oci-client's `pull_manifest_raw` drops the `Content-Type`, the authoritative media type |
//! | `read_ranges` | hand-written | oci-client reads one `bytes=a-b` range and hides `Content-Range`; we need multi-range requests, `multipart/byteranges`, and checking what a 206 covers |
//! | `referrers`, `put_referrers_tag_fallback` | hand-written | oci-client's `pull_referrers` parses into its own lossy types and reports any registry error on the fallback tag (even 401) as "no referrers"; the tag-schema update needs the raw index |
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
mod ranges;
mod reference;

pub use auth::{
    Credentials, default_docker_config_dir, docker_config_credentials, docker_config_dir_from,
};
pub use blocking::{BlockingRuntime, RegistryRangeReader, RemoteImage};
pub use client::{
    BlobStream, FetchedManifest, MAX_MANIFEST_SIZE, PushOutcome, Referrers, RegistryClient,
    RegistryOptions, referrer_descriptor, referrers_tag,
};
pub use reference::{
    DOCKER_HUB, DOCKER_HUB_API_HOST, DOCKER_HUB_CREDENTIAL_KEY, ImageLocation, ImageReference,
    ReferenceError, Repository, is_loopback_registry, registry_api_host,
};
