//! The registry client against a real Debian `docker-registry` 2.8 on
//! 127.0.0.1 (no referrers API, so the tag-schema fallback is exercised),
//! with and without htpasswd auth, plus skopeo interop.
#![allow(clippy::single_range_in_vec_init)]

mod common;
#[path = "registry/fake.rs"]
mod fake;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{TestRegistry, free_port, random, skopeo, tar_gz};
use soci_content::registry::{
    BlockingRuntime, Credentials, ImageReference, PushOutcome, RegistryClient, RegistryOptions,
    RegistryRangeReader, RemoteImage, Repository, referrer_descriptor, referrers_tag,
};
use soci_content::{BlobRangeReader, BlobSource, ContentError, Layout};
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index, Manifest};

fn client() -> RegistryClient {
    RegistryClient::new(RegistryOptions {
        // Never pick up the developer's own docker config.
        docker_config_dir: Some(NO_DOCKER_CONFIG.into()),
        ..RegistryOptions::default()
    })
    .unwrap()
}

const NO_DOCKER_CONFIG: &str = "/nonexistent/soci-test-docker-config";

fn repo(reg: &TestRegistry, name: &str) -> Repository {
    Repository::new(&reg.addr, name).unwrap()
}

fn reference(s: &str) -> ImageReference {
    s.parse().unwrap()
}

/// Push a one-layer OCI image; returns (manifest bytes, manifest digest, layer bytes).
async fn push_image(
    c: &RegistryClient,
    r: &Repository,
    tag: &str,
    seed: u64,
) -> (Vec<u8>, Digest, Vec<u8>) {
    let layer = tar_gz(&[("hello.txt", &random(seed, 5000))]);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::of(b"unused")
    )
    .into_bytes();
    assert_eq!(
        c.push_blob(r, layer.clone(), None).await.unwrap(),
        PushOutcome::Uploaded
    );
    c.push_blob(r, config.clone(), None).await.unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: json::MEDIA_TYPE_OCI_MANIFEST.into(),
        config: Descriptor::for_bytes(json::MEDIA_TYPE_OCI_CONFIG, &config),
        layers: Some(vec![Descriptor::for_bytes(
            json::MEDIA_TYPE_OCI_LAYER_GZIP,
            &layer,
        )]),
        ..Manifest::default()
    };
    let bytes = manifest.to_json();
    let d = c
        .push_manifest_raw(r, bytes.clone(), json::MEDIA_TYPE_OCI_MANIFEST, Some(tag))
        .await
        .unwrap();
    (bytes, d.parsed_digest().unwrap(), layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_read_back_byte_identical() {
    let reg = TestRegistry::start_temp();
    let c = client();
    let r = repo(&reg, "soci/roundtrip");
    let (bytes, digest, layer) = push_image(&c, &r, "v1", 1).await;

    // Manifest by tag and by digest: the exact bytes, with media type.
    let by_tag = c.get_manifest(&r, "v1").await.unwrap();
    assert_eq!(by_tag.bytes, bytes);
    assert_eq!(by_tag.media_type, json::MEDIA_TYPE_OCI_MANIFEST);
    assert_eq!(by_tag.digest, digest);
    let by_digest = c.get_manifest(&r, &digest.to_string()).await.unwrap();
    assert_eq!(by_digest.bytes, bytes);

    // HEAD / resolve by tag and by digest.
    let d = c
        .resolve(&reference(&format!("{}/soci/roundtrip:v1", reg.addr)))
        .await
        .unwrap();
    assert_eq!(
        d,
        Descriptor::for_bytes(json::MEDIA_TYPE_OCI_MANIFEST, &bytes)
    );
    let d2 = c
        .resolve(&reference(&format!("{}/soci/roundtrip@{digest}", reg.addr)))
        .await
        .unwrap();
    assert_eq!(d2, d);

    // Blobs: whole, streamed, size.
    let ld = Digest::of(&layer);
    assert_eq!(c.get_blob(&r, &ld).await.unwrap(), layer);
    assert_eq!(c.blob_size(&r, &ld).await.unwrap(), layer.len() as u64);
    let s = c.get_blob_stream(&r, &ld).await.unwrap();
    assert_eq!(s.size(), Some(layer.len() as u64));
    assert_eq!(s.into_vec().await.unwrap(), layer);
    assert_eq!(c.blob_exists(&r, &Digest::of(b"nope")).await.unwrap(), None);

    // An existing blob is not uploaded again.
    assert_eq!(
        c.push_blob(&r, layer.clone(), None).await.unwrap(),
        PushOutcome::Exists
    );

    // Pushing by digest (no tag) lands the exact bytes too.
    let other = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let od = c
        .push_manifest_raw(&r, other.to_vec(), json::MEDIA_TYPE_OCI_INDEX, None)
        .await
        .unwrap();
    let got = c.get_manifest(&r, &od.digest).await.unwrap();
    assert_eq!(got.bytes, other);
    assert_eq!(got.media_type, json::MEDIA_TYPE_OCI_INDEX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_things_are_reported_clearly() {
    let reg = TestRegistry::start_temp();
    let c = client();
    let r = repo(&reg, "soci/missing");
    let e = c
        .resolve(&reference(&format!("{}/soci/missing:nope", reg.addr)))
        .await
        .unwrap_err();
    assert!(matches!(e, ContentError::ManifestNotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("{}/soci/missing:nope", reg.addr)),
        "{msg}"
    );

    let e = c.get_manifest(&r, "nope").await.unwrap_err();
    assert!(matches!(e, ContentError::ManifestNotFound { .. }), "{e:?}");

    let d = Digest::of(b"absent");
    let e = c.get_blob(&r, &d).await.unwrap_err();
    assert!(matches!(e, ContentError::NotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&d.to_string()) && msg.contains(&reg.addr),
        "{msg}"
    );
    let e = c.blob_size(&r, &d).await.unwrap_err();
    assert!(matches!(e, ContentError::NotFound { .. }), "{e:?}");
    let e = c.read_ranges(&r, &d, &[0..1]).await.unwrap_err();
    assert!(matches!(e, ContentError::NotFound { .. }), "{e:?}");

    assert!(c.get_manifest(&r, "sha256:bad").await.is_err());
    assert!(c.get_manifest(&r, "bad tag").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_reads() {
    let reg = TestRegistry::start_temp();
    let c = client();
    let r = repo(&reg, "soci/ranges");
    let blob = random(7, 700_000);
    let d = Digest::of(&blob);
    c.push_blob(&r, blob.clone(), None).await.unwrap();
    let n = blob.len() as u64;
    let slice = |a: u64, b: u64| blob[a as usize..b as usize].to_vec();

    // Single range.
    assert_eq!(
        c.read_ranges(&r, &d, &[100..200]).await.unwrap(),
        vec![slice(100, 200)]
    );
    // Several far-apart ranges (one multi-range request), a zero-length
    // range, adjacent ranges, and the end of the blob.
    let want = [
        0..10,
        10..10,
        10..20,
        300_000..300_100,
        500_000..500_001,
        n - 10..n,
    ];
    let got = c.read_ranges(&r, &d, &want).await.unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(*g, slice(w.start, w.end), "range {w:?}");
    }
    // Unsorted input is served in input order.
    let got = c.read_ranges(&r, &d, &[n - 1..n, 0..1]).await.unwrap();
    assert_eq!(got, vec![slice(n - 1, n), slice(0, 1)]);
    // Many ranges: more than fit into one request.
    let many: Vec<_> = (0..70u64).map(|i| i * 9_000..i * 9_000 + 17).collect();
    let got = c.read_ranges(&r, &d, &many).await.unwrap();
    for (g, w) in got.iter().zip(&many) {
        assert_eq!(*g, slice(w.start, w.end));
    }
    // The whole blob as one range.
    assert_eq!(
        c.read_ranges(&r, &d, &[0..n]).await.unwrap(),
        vec![blob.clone()]
    );
    // Nothing asked: nothing fetched.
    assert!(c.read_ranges(&r, &d, &[]).await.unwrap().is_empty());

    // Past the end of the blob.
    let e = c.read_ranges(&r, &d, &[n - 5..n + 5]).await.unwrap_err();
    assert!(matches!(e, ContentError::BadRange { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&d.to_string()), "{msg}");
    let e = c.read_ranges(&r, &d, &[n + 10..n + 20]).await.unwrap_err();
    assert!(matches!(e, ContentError::BadRange { .. }), "{e:?}");
    #[allow(clippy::reversed_empty_ranges)]
    let e = c.read_ranges(&r, &d, &[5..4]).await.unwrap_err();
    assert!(matches!(e, ContentError::BadRange { .. }), "{e:?}");
}

#[test]
fn blocking_range_reader_on_plain_threads_and_inside_runtimes() {
    let reg = TestRegistry::start_temp();
    let rt = Arc::new(BlockingRuntime::new().unwrap());
    let c = client();
    let r = repo(&reg, "soci/blocking");
    let blob = random(3, 100_000);
    let d = Digest::of(&blob);
    rt.block_on(c.push_blob(&r, blob.clone(), None))
        .unwrap()
        .unwrap();

    let reader = Arc::new(RegistryRangeReader::new(c.clone(), r.clone(), rt.clone()));
    assert_eq!(reader.blob_size(&d).unwrap(), 100_000);
    assert_eq!(
        reader.read_ranges(&d, &[1..3, 99_990..100_000]).unwrap(),
        vec![blob[1..3].to_vec(), blob[99_990..].to_vec()]
    );
    // From many threads at once.
    std::thread::scope(|s| {
        for i in 0..4u64 {
            let reader = reader.clone();
            let blob = &blob;
            let d = &d;
            s.spawn(move || {
                let a = i * 1000;
                assert_eq!(
                    reader.read_ranges(d, &[a..a + 10]).unwrap(),
                    vec![blob[a as usize..a as usize + 10].to_vec()]
                );
            });
        }
    });

    // From inside a single-threaded runtime: works with our own runtime.
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    single.block_on(async {
        assert_eq!(
            reader.read_ranges(&d, &[0..4]).unwrap(),
            vec![blob[..4].to_vec()]
        );
    });
    // From a spawn_blocking thread of that runtime too.
    let r2 = reader.clone();
    let d2 = d.clone();
    let got = single
        .block_on(single.spawn_blocking(move || r2.read_ranges(&d2, &[5..9])))
        .unwrap()
        .unwrap();
    assert_eq!(got, vec![blob[5..9].to_vec()]);
    // A borrowed single-threaded runtime is refused (it could deadlock).
    let e = BlockingRuntime::from_handle(single.handle().clone()).unwrap_err();
    assert!(matches!(e, ContentError::Blocking { .. }), "{e:?}");
    assert!(e.to_string().contains("multi-threaded"), "{e}");

    // From a worker of a multi-threaded runtime (block_in_place).
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r3 = reader.clone();
    let d3 = d.clone();
    let got = multi
        .block_on(multi.spawn(async move { r3.read_ranges(&d3, &[10..20]) }))
        .unwrap()
        .unwrap();
    assert_eq!(got, vec![blob[10..20].to_vec()]);
    let borrowed_multi = Arc::new(RegistryRangeReader::new(
        c,
        r,
        Arc::new(BlockingRuntime::from_handle(multi.handle().clone()).unwrap()),
    ));
    // On a worker of the borrowed runtime itself, ...
    let b = borrowed_multi.clone();
    let d4 = d.clone();
    let got = multi
        .block_on(multi.spawn(async move { b.read_ranges(&d4, &[20..30]) }))
        .unwrap()
        .unwrap();
    assert_eq!(got, vec![blob[20..30].to_vec()]);
    // ... on one of its blocking threads, ...
    let b = borrowed_multi.clone();
    let d5 = d.clone();
    let got = multi
        .block_on(multi.spawn_blocking(move || b.read_ranges(&d5, &[30..40])))
        .unwrap()
        .unwrap();
    assert_eq!(got, vec![blob[30..40].to_vec()]);
    // ... and from a plain thread.
    assert_eq!(
        borrowed_multi.read_ranges(&d, &[40..50]).unwrap(),
        vec![blob[40..50].to_vec()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_push_verifies_and_skips_existing() {
    let reg = TestRegistry::start_temp();
    let c = client();
    let r = repo(&reg, "soci/stream");
    // Larger than one upload chunk, so several PATCHes are sent.
    let blob = random(11, 9 * 1024 * 1024 + 123);
    let d = Digest::of(&blob);
    let out = c
        .push_blob_stream(
            &r,
            &d,
            blob.len() as u64,
            std::io::Cursor::new(blob.clone()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out, PushOutcome::Uploaded);
    assert_eq!(c.get_blob(&r, &d).await.unwrap(), blob);
    let out = c
        .push_blob_stream(
            &r,
            &d,
            blob.len() as u64,
            std::io::Cursor::new(Vec::new()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out, PushOutcome::Exists);

    // Bytes that do not match the announced digest are not committed.
    let claimed = Digest::of(b"something else");
    let e = c
        .push_blob_stream(
            &r,
            &claimed,
            5,
            std::io::Cursor::new(b"hello".to_vec()),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ContentError::DigestMismatch { .. }), "{e:?}");
    assert_eq!(c.blob_exists(&r, &claimed).await.unwrap(), None);
    assert_eq!(
        c.blob_exists(&r, &Digest::of(b"hello")).await.unwrap(),
        None
    );
    // Too short a stream as well.
    let e = c
        .push_blob_stream(
            &r,
            &Digest::of(b"hello world"),
            11,
            std::io::Cursor::new(b"hello".to_vec()),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ContentError::DigestMismatch { .. }), "{e:?}");

    // An empty blob can be pushed.
    let empty = Digest::of(b"");
    c.push_blob_stream(&r, &empty, 0, std::io::Cursor::new(Vec::new()), None)
        .await
        .unwrap();
    assert_eq!(c.get_blob(&r, &empty).await.unwrap(), b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_repository_mount() {
    let reg = TestRegistry::start_temp();
    let c = client();
    let a = repo(&reg, "soci/source");
    let b = repo(&reg, "soci/target");
    let blob = random(5, 50_000);
    let d = Digest::of(&blob);
    c.push_blob(&a, blob.clone(), None).await.unwrap();
    assert_eq!(c.blob_exists(&b, &d).await.unwrap(), None);
    assert_eq!(
        c.push_blob(&b, blob.clone(), Some(&a)).await.unwrap(),
        PushOutcome::Mounted
    );
    assert_eq!(c.get_blob(&b, &d).await.unwrap(), blob);
    // Mounting again: already there.
    assert_eq!(
        c.push_blob(&b, blob.clone(), Some(&a)).await.unwrap(),
        PushOutcome::Exists
    );
    // A source without the blob: the mount is refused and the blob uploaded.
    let other = random(6, 1000);
    let c2 = repo(&reg, "soci/third");
    assert_eq!(
        c.push_blob(&c2, other.clone(), Some(&a)).await.unwrap(),
        PushOutcome::Uploaded
    );
    // The streaming variant mounts too.
    let d_other = Digest::of(&other);
    let out = c
        .push_blob_stream(
            &b,
            &d_other,
            other.len() as u64,
            std::io::Cursor::new(Vec::new()),
            Some(&c2),
        )
        .await
        .unwrap();
    assert_eq!(out, PushOutcome::Mounted);
    assert_eq!(c.get_blob(&b, &d_other).await.unwrap(), other);
}

fn soci_index_for(subject: &Descriptor, artifact_type: &str, seed: u64) -> Vec<u8> {
    let ztoc = random(seed, 100);
    let mut annotations = BTreeMap::new();
    annotations.insert("test.seed".to_string(), seed.to_string());
    Manifest {
        schema_version: 2,
        media_type: json::MEDIA_TYPE_OCI_MANIFEST.into(),
        artifact_type: artifact_type.into(),
        config: Descriptor::for_bytes(json::MEDIA_TYPE_OCI_EMPTY_JSON, json::EMPTY_CONFIG_BYTES),
        layers: Some(vec![Descriptor::for_bytes(
            json::SOCI_LAYER_MEDIA_TYPE,
            &ztoc,
        )]),
        subject: Some(subject.clone()),
        annotations,
    }
    .to_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_fall_back_to_the_tag_schema() {
    let reg = TestRegistry::start_temp();
    let c = client();
    let r = repo(&reg, "soci/referrers");
    let (bytes, subject, _) = push_image(&c, &r, "v1", 2).await;
    let subject_desc = Descriptor::for_bytes(json::MEDIA_TYPE_OCI_MANIFEST, &bytes);

    // Nothing yet: registry 2.8 has no referrers API, and no fallback tag.
    let none = c.referrers(&r, &subject, None).await.unwrap();
    assert!(none.manifests.is_empty());
    assert!(none.via_tag_schema);

    // Two referrers of different artifact types.
    c.push_blob(&r, json::EMPTY_CONFIG_BYTES.to_vec(), None)
        .await
        .unwrap();
    let v1 = soci_index_for(&subject_desc, json::SOCI_INDEX_ARTIFACT_TYPE_V1, 1);
    let other = soci_index_for(&subject_desc, "application/vnd.example.sig", 2);
    let mut descs = Vec::new();
    for m in [&v1, &other] {
        let layer = Manifest::from_json(m).unwrap().layers()[0].clone();
        let seed: u64 = if m == &v1 { 1 } else { 2 };
        let ztoc = random(seed, 100);
        assert_eq!(layer.digest, Digest::of(&ztoc).to_string());
        c.push_blob(&r, ztoc, None).await.unwrap();
        c.push_manifest_raw(&r, m.clone(), json::MEDIA_TYPE_OCI_MANIFEST, None)
            .await
            .unwrap();
        let d = referrer_descriptor(m, json::MEDIA_TYPE_OCI_MANIFEST).unwrap();
        assert!(
            c.put_referrers_tag_fallback(&r, &subject, &d)
                .await
                .unwrap()
        );
        descs.push(d);
    }
    assert_eq!(descs[0].artifact_type, json::SOCI_INDEX_ARTIFACT_TYPE_V1);
    assert_eq!(descs[0].annotations.get("test.seed").unwrap(), "1");
    // Adding one twice is a no-op.
    assert!(
        !c.put_referrers_tag_fallback(&r, &subject, &descs[0])
            .await
            .unwrap()
    );

    // The fallback index is a plain OCI index under sha256-<hex>.
    let tag = referrers_tag(&subject);
    assert_eq!(tag, format!("sha256-{}", subject.hex()));
    let idx = c.get_manifest(&r, &tag).await.unwrap();
    assert_eq!(idx.media_type, json::MEDIA_TYPE_OCI_INDEX);
    assert_eq!(
        Index::from_json(&idx.bytes).unwrap().manifests(),
        &descs[..]
    );

    let all = c.referrers(&r, &subject, None).await.unwrap();
    assert!(all.via_tag_schema);
    assert_eq!(all.manifests, descs);
    let soci = c
        .referrers(&r, &subject, Some(json::SOCI_INDEX_ARTIFACT_TYPE_V1))
        .await
        .unwrap();
    assert_eq!(soci.manifests, vec![descs[0].clone()]);
    let found = c.get_manifest(&r, &soci.manifests[0].digest).await.unwrap();
    assert_eq!(found.bytes, v1);
    let none = c
        .referrers(&r, &subject, Some(json::SOCI_INDEX_ARTIFACT_TYPE_V2))
        .await
        .unwrap();
    assert!(none.manifests.is_empty());

    // A fallback tag that holds something else than an index is an error.
    let bogus_subject = Digest::of(b"bogus subject");
    c.push_manifest_raw(
        &r,
        bytes.clone(),
        json::MEDIA_TYPE_OCI_MANIFEST,
        Some(&referrers_tag(&bogus_subject)),
    )
    .await
    .unwrap();
    let e = c.referrers(&r, &bogus_subject, None).await.unwrap_err();
    assert!(e.to_string().contains("instead of an image index"), "{e}");
}

fn write_docker_config(auths: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), auths).unwrap();
    dir
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_registry_with_docker_config_credentials() {
    let reg = TestRegistry::start_temp_with_auth(Some(("user", "pass")));
    let r = repo(&reg, "soci/private");

    // Credentials from a docker config (`auths`, base64 user:password).
    let cfg = write_docker_config(&format!(
        r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
        reg.addr,
        b64("user:pass")
    ));
    let c = RegistryClient::new(RegistryOptions {
        docker_config_dir: Some(cfg.path().to_path_buf()),
        ..RegistryOptions::default()
    })
    .unwrap();
    let (bytes, digest, layer) = push_image(&c, &r, "v1", 4).await;
    assert_eq!(c.get_manifest(&r, "v1").await.unwrap().bytes, bytes);
    let ld = Digest::of(&layer);
    assert_eq!(c.get_blob(&r, &ld).await.unwrap(), layer);
    assert_eq!(
        c.read_ranges(&r, &ld, &[0..3, 4000..4010]).await.unwrap(),
        vec![layer[0..3].to_vec(), layer[4000..4010].to_vec()]
    );
    let d = c
        .resolve(&reference(&format!("{}/soci/private:v1", reg.addr)))
        .await
        .unwrap();
    assert_eq!(d.digest, digest.to_string());
    assert!(
        c.referrers(&r, &digest, None)
            .await
            .unwrap()
            .manifests
            .is_empty()
    );
    // Cross-repository mount with credentials.
    let r2 = repo(&reg, "soci/private2");
    assert_eq!(
        c.push_blob(&r2, layer.clone(), Some(&r)).await.unwrap(),
        PushOutcome::Mounted
    );

    // --user credentials take precedence over the docker config.
    let c_user = RegistryClient::new(RegistryOptions {
        credentials: Some(Credentials::from_user_flag("user:pass").unwrap()),
        docker_config_dir: Some(NO_DOCKER_CONFIG.into()),
        ..RegistryOptions::default()
    })
    .unwrap();
    assert_eq!(c_user.get_blob(&r, &ld).await.unwrap(), layer);

    // The wrong password: a clear 401 naming the registry, for every kind of call.
    let bad_cfg = write_docker_config(&format!(
        r#"{{"auths":{{"http://{}":{{"auth":"{}"}}}}}}"#,
        reg.addr,
        b64("user:wrong")
    ));
    let bad = RegistryClient::new(RegistryOptions {
        docker_config_dir: Some(bad_cfg.path().to_path_buf()),
        ..RegistryOptions::default()
    })
    .unwrap();
    let expect_401 = |e: ContentError| {
        assert!(matches!(e, ContentError::Unauthorized { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("authentication to {} failed", reg.addr))
                && msg.contains(&format!("docker login {}", reg.addr))
                && msg.contains("--user")
                && msg.contains("\"user\""),
            "{msg}"
        );
        msg
    };
    let msg = expect_401(bad.get_manifest(&r, "v1").await.unwrap_err());
    assert!(msg.contains("soci/private"), "{msg}");
    expect_401(bad.get_blob(&r, &ld).await.unwrap_err());
    expect_401(bad.read_ranges(&r, &ld, &[0..1]).await.unwrap_err());
    expect_401(bad.push_blob(&r, b"x".to_vec(), None).await.unwrap_err());
    expect_401(
        bad.push_manifest_raw(&r, bytes.clone(), json::MEDIA_TYPE_OCI_MANIFEST, Some("v2"))
            .await
            .unwrap_err(),
    );
    expect_401(
        bad.resolve(&reference(&format!("{}/soci/private:v1", reg.addr)))
            .await
            .unwrap_err(),
    );

    // No credentials at all.
    let anon = client();
    let e = anon.get_blob(&r, &ld).await.unwrap_err();
    assert!(matches!(e, ContentError::Unauthorized { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("none were found") && msg.contains(&reg.addr),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_registry_is_a_clear_error() {
    let addr = format!("127.0.0.1:{}", free_port());
    let c = client();
    let r = Repository::new(&addr, "x").unwrap();
    let e = c.blob_size(&r, &Digest::of(b"x")).await.unwrap_err();
    assert!(matches!(e, ContentError::Unreachable { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("cannot reach registry {addr}")) && msg.contains("running"),
        "{msg}"
    );
    let e = c
        .resolve(&reference(&format!("{addr}/x:latest")))
        .await
        .unwrap_err();
    assert!(matches!(e, ContentError::Unreachable { .. }), "{e:?}");
    let e = c.push_blob(&r, b"x".to_vec(), None).await.unwrap_err();
    assert!(matches!(e, ContentError::Unreachable { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blob_fails_verification() {
    let reg = TestRegistry::start_temp();
    let c = client();
    let r = repo(&reg, "soci/corrupt");
    let (_, _, layer) = push_image(&c, &r, "v1", 9).await;
    let d = Digest::of(&layer);
    let file = reg.blob_file(&d);
    let mut bad = std::fs::read(&file).unwrap();
    assert_eq!(bad, layer);
    bad[100] ^= 0xff;
    std::fs::write(&file, &bad).unwrap();

    let e = c.get_blob(&r, &d).await.unwrap_err();
    assert!(matches!(e, ContentError::DigestMismatch { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&d.to_string()) && msg.contains(&reg.addr) && msg.contains("corrupt"),
        "{msg}"
    );
    // Ranged reads are not verified (the digest covers the whole blob).
    assert_eq!(
        c.read_ranges(&r, &d, &[100..101]).await.unwrap(),
        vec![vec![bad[100]]]
    );

    // A corrupted manifest is caught too (the registry parses manifests, so
    // only an annotation value is changed).
    let mut m = Manifest::from_json(&c.get_manifest(&r, "v1").await.unwrap().bytes).unwrap();
    m.annotations.insert("note".into(), "aaaa".into());
    let mf = c
        .push_manifest_raw(&r, m.to_json(), json::MEDIA_TYPE_OCI_MANIFEST, Some("v2"))
        .await
        .unwrap();
    let md = mf.parsed_digest().unwrap();
    let mfile = reg.blob_file(&md);
    let mbytes = String::from_utf8(std::fs::read(&mfile).unwrap()).unwrap();
    assert!(mbytes.contains("\"aaaa\""), "{mbytes}");
    std::fs::write(&mfile, mbytes.replace("\"aaaa\"", "\"aaab\"")).unwrap();
    let e = c.get_manifest(&r, &mf.digest).await.unwrap_err();
    assert!(matches!(e, ContentError::DigestMismatch { .. }), "{e:?}");
}

#[test]
fn remote_image_reads_like_a_layout_and_catches_corruption() {
    let reg = TestRegistry::start_temp();
    let rt = Arc::new(BlockingRuntime::new().unwrap());
    let c = client();
    let r = repo(&reg, "soci/remote");
    let (bytes, digest, layer) = rt.block_on(push_image(&c, &r, "v1", 12)).unwrap();
    let img = RemoteImage::open(
        c.clone(),
        reference(&format!("{}/soci/remote:v1", reg.addr)),
        rt.clone(),
    )
    .unwrap();
    assert_eq!(img.root().digest, digest.to_string());
    let index = Index::from_json(&img.index_json().unwrap()).unwrap();
    assert_eq!(index.manifests()[0].digest, digest.to_string());
    assert_eq!(
        index.manifests()[0].annotations[json::ANNOTATION_OCI_REF_NAME],
        "v1"
    );
    // Manifests and blobs by digest through the BlobSource seam.
    assert_eq!(img.read_blob(&digest, 1 << 20, "manifest").unwrap(), bytes);
    let ld = Digest::of(&layer);
    assert_eq!(img.blob_size(&ld), Some(layer.len() as u64));
    assert_eq!(img.read_blob(&ld, 1 << 20, "layer").unwrap(), layer);
    let mut streamed = Vec::new();
    std::io::Read::read_to_end(&mut img.open_blob(&ld).unwrap(), &mut streamed).unwrap();
    assert_eq!(streamed, layer);
    assert_eq!(img.blob_size(&Digest::of(b"none")), None);
    assert!(matches!(
        img.open_blob(&Digest::of(b"none")),
        Err(ContentError::NotFound { .. })
    ));

    // A corrupted layer is reported as such through the blocking reader.
    let file = reg.blob_file(&ld);
    let mut bad = std::fs::read(&file).unwrap();
    bad[10] ^= 1;
    std::fs::write(&file, &bad).unwrap();
    let e = img.read_blob(&ld, 1 << 20, "layer").unwrap_err();
    assert!(matches!(e, ContentError::DigestMismatch { .. }), "{e:?}");
}

#[test]
fn image_pushed_by_skopeo_is_readable() {
    let reg = TestRegistry::start_temp();
    // An OCI layout written by hand, copied into the registry by skopeo.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let put = |b: &[u8]| {
        let d = Digest::of(b);
        std::fs::write(layout.join("blobs/sha256").join(d.hex()), b).unwrap();
        d
    };
    let layer = tar_gz(&[("a.txt", b"hello"), ("b.bin", &random(1, 300_000))]);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    put(&layer);
    put(config);
    let manifest = Manifest {
        schema_version: 2,
        media_type: json::MEDIA_TYPE_OCI_MANIFEST.into(),
        config: Descriptor::for_bytes(json::MEDIA_TYPE_OCI_CONFIG, config),
        layers: Some(vec![Descriptor::for_bytes(
            json::MEDIA_TYPE_OCI_LAYER_GZIP,
            &layer,
        )]),
        ..Manifest::default()
    }
    .to_json();
    let md = put(&manifest);
    let mut desc = Descriptor::for_bytes(json::MEDIA_TYPE_OCI_MANIFEST, &manifest);
    desc.annotations
        .insert(json::ANNOTATION_OCI_REF_NAME.into(), "v1".into());
    std::fs::write(layout.join("index.json"), Index::single(desc).to_json()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/skopeo/img:v1", reg.addr),
    ]);

    let rt = Arc::new(BlockingRuntime::new().unwrap());
    let c = client();
    let reference = reference(&format!("{}/skopeo/img:v1", reg.addr));
    let r = reference.repository().clone();
    let root = rt.block_on(c.resolve(&reference)).unwrap().unwrap();
    let m = rt
        .block_on(c.get_manifest(&r, &root.digest))
        .unwrap()
        .unwrap();
    // skopeo keeps an OCI manifest as it is.
    assert_eq!(m.digest, md);
    assert_eq!(m.bytes, manifest);
    let parsed = Manifest::from_json(&m.bytes).unwrap();
    let ld = parsed.layers()[0].parsed_digest().unwrap();
    assert_eq!(rt.block_on(c.get_blob(&r, &ld)).unwrap().unwrap(), layer);
    let reader = RegistryRangeReader::new(c.clone(), r.clone(), rt.clone());
    reader.set_size(ld.clone(), layer.len() as u64);
    assert_eq!(
        reader.read_ranges(&ld, &[0..2, 1000..1010]).unwrap(),
        vec![layer[0..2].to_vec(), layer[1000..1010].to_vec()]
    );
    let img = RemoteImage::open(c, reference, rt).unwrap();
    let cd = parsed.config.parsed_digest().unwrap();
    assert_eq!(img.read_blob(&cd, 1 << 20, "config").unwrap(), config);
    assert_eq!(img.read_blob(&md, 1 << 20, "manifest").unwrap(), manifest);

    // And skopeo sees the same bytes.
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/skopeo/img:v1", reg.addr),
    ]);
    assert_eq!(out.stdout, manifest);
}
