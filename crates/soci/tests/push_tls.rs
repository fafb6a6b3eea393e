//! `soci push` (and `create`) against registries served over TLS: a CA of our
//! own (`--tlscacert`), a registry that requires a client certificate
//! (`--tlscert`/`--tlskey`), the same through a containerd-style
//! `--hosts-dir`, and `--http-dump` output with credentials redacted.
//! Certificates are made with `openssl`; the registry is Debian's
//! docker-registry on 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use soci_testkit::{TlsFiles, make_certificates};

fn run(root: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--root", root.to_str().unwrap(), "--content-store", "soci"];
    all.extend_from_slice(args);
    soci(&all)
}

fn text(o: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(root: &Path, args: &[&str]) -> std::process::Output {
    let o = run(root, args);
    assert!(o.status.success(), "soci {args:?}: {}", text(&o));
    o
}

/// skopeo's certificate directory: the CA (`*.crt`) and a client pair.
fn skopeo_cert_dir(certs: &Path) -> PathBuf {
    let d = certs.join("skopeo");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(certs.join("ca.pem"), d.join("ca.crt")).unwrap();
    std::fs::copy(certs.join("client.pem"), d.join("client.cert")).unwrap();
    std::fs::copy(certs.join("client.key"), d.join("client.key")).unwrap();
    d
}

/// A one-platform image with a layer big enough to be indexed, copied to
/// `reg` as `app:v1`.
fn publish(reg: &Registry, dir: &Path, cert_dir: &Path) {
    let lb = LayoutBuilder::new(dir);
    let big = gzip(&tar_of(&layer_items(31, 20, 200_000)), 6);
    let mut m = lb.image("amd64", &[(OCI_LAYER_GZIP, big)]);
    m["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "v1"});
    lb.finish(vec![m]);
    skopeo(&[
        "copy",
        "--dest-cert-dir",
        cert_dir.to_str().unwrap(),
        &format!("oci:{}:v1", dir.display()),
        &format!("docker://{}/app:v1", reg.addr),
    ]);
}

/// Whether the registry serves the tag-schema referrers index of the pushed
/// index (docker-registry 2.8 has no referrers API), asked over TLS by curl.
fn has_referrers_tag(reg: &Registry, certs: &Path, manifest: &str) -> bool {
    let out = std::process::Command::new(require_tool("curl"))
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(certs.join("ca.pem"))
        .args(["--cert"])
        .arg(certs.join("client.pem"))
        .args(["--key"])
        .arg(certs.join("client.key"))
        .args([
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json",
            &format!(
                "https://{}/v2/app/manifests/{}",
                reg.addr,
                manifest.replace(':', "-")
            ),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout) == "200"
}

/// The image manifest digest of `app:v1` (from `soci index list` after create).
fn created_index(root: &Path) -> String {
    let out = ok(root, &["index", "list", "-q"]);
    let index = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(index.starts_with("sha256:"), "{index}");
    let info = json(&ok(root, &["index", "info", &index]).stdout);
    info["subject"]["digest"].as_str().unwrap().to_string()
}

#[test]
fn push_over_tls_with_a_ca_a_client_certificate_and_a_hosts_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    make_certificates(&certs);
    let cert_dir = skopeo_cert_dir(&certs);
    let ca = certs.join("ca.pem");
    let (ca_s, cert_s, key_s) = (
        ca.to_str().unwrap(),
        certs.join("client.pem"),
        certs.join("client.key"),
    );

    // 1. A registry with a certificate from our CA.
    let reg = Registry::start_temp_tls(&TlsFiles {
        cert: certs.join("server.pem"),
        key: certs.join("server.key"),
        client_ca: None,
    });
    publish(&reg, &tmp.path().join("img1"), &cert_dir);
    let image = format!("{}/app:v1", reg.addr);
    let root = tmp.path().join("root1");
    ok(
        &root,
        &[
            "create",
            "--min-layer-size",
            "0",
            "--tlscacert",
            ca_s,
            &format!("docker://{image}"),
        ],
    );
    let manifest = created_index(&root);

    // Without the CA: a TLS error naming the registry and the flags to use;
    // nothing is pushed.
    let o = run(&root, &["push", "--snapshotter", "anything", &image]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&reg.addr), "{err}");
    assert!(err.contains("--tlscacert"), "{err}");
    assert!(!has_referrers_tag(&reg, &certs, &manifest));

    // With it: pushed, and found through the tag fallback.
    let o = ok(&root, &["push", "--tlscacert", ca_s, &image]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("pushing soci index with digest: sha256:"),
        "{}",
        text(&o)
    );
    assert!(has_referrers_tag(&reg, &certs, &manifest));

    // 2. A registry that requires a client certificate.
    let mtls = Registry::start_temp_tls(&TlsFiles {
        cert: certs.join("server.pem"),
        key: certs.join("server.key"),
        client_ca: Some(ca.clone()),
    });
    publish(&mtls, &tmp.path().join("img2"), &cert_dir);
    let image2 = format!("{}/app:v1", mtls.addr);
    let root2 = tmp.path().join("root2");
    let client_flags = [
        "--tlscacert",
        ca_s,
        "--tlscert",
        cert_s.to_str().unwrap(),
        "--tlskey",
        key_s.to_str().unwrap(),
    ];
    let mut create = vec!["create", "--min-layer-size", "0"];
    create.extend_from_slice(&client_flags);
    let src = format!("docker://{image2}");
    create.push(&src);
    ok(&root2, &create);
    let manifest2 = created_index(&root2);
    // The CA alone is not enough: the error says a client certificate is needed.
    let o = run(&root2, &["push", "--tlscacert", ca_s, &image2]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&mtls.addr), "{err}");
    assert!(err.contains("--tlscert"), "{err}");
    assert!(!has_referrers_tag(&mtls, &certs, &manifest2));
    // --tlscert without --tlskey is a usage error.
    let o = run(
        &root2,
        &["push", "--tlscert", cert_s.to_str().unwrap(), &image2],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--tlskey"),
        "{}",
        text(&o)
    );

    // 3. The same through a hosts directory (relative file names).
    let hosts = tmp.path().join("hosts");
    let hdir = hosts.join(&mtls.addr);
    std::fs::create_dir_all(&hdir).unwrap();
    for f in ["ca.pem", "client.pem", "client.key"] {
        std::fs::copy(certs.join(f), hdir.join(f)).unwrap();
    }
    std::fs::write(
        hdir.join("hosts.toml"),
        format!(
            "server = \"https://{}\"\n\n[host.\"https://{}\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  ca = \"ca.pem\"\n  client = [[\"client.pem\", \"client.key\"]]\n",
            mtls.addr, mtls.addr
        ),
    )
    .unwrap();
    ok(
        &root2,
        &["push", "--hosts-dir", hosts.to_str().unwrap(), &image2],
    );
    assert!(has_referrers_tag(&mtls, &certs, &manifest2));

    // A malformed hosts.toml is an error naming the file.
    std::fs::write(hdir.join("hosts.toml"), "server = [\n").unwrap();
    let o = run(
        &root2,
        &["push", "--hosts-dir", hosts.to_str().unwrap(), &image2],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("hosts.toml"),
        "{}",
        text(&o)
    );
}

#[test]
fn http_dump_shows_requests_without_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start_temp_with_auth(Some(("alice", "s3cret-pass")));
    let lb = LayoutBuilder::new(&tmp.path().join("img"));
    let big = gzip(&tar_of(&layer_items(41, 20, 200_000)), 6);
    let mut m = lb.image("amd64", &[(OCI_LAYER_GZIP, big)]);
    m["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "v1"});
    lb.finish(vec![m]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:s3cret-pass",
        &format!("oci:{}:v1", lb.dir.display()),
        &format!("docker://{}/app:v1", reg.addr),
    ]);
    let root = tmp.path().join("root");
    let image = format!("{}/app:v1", reg.addr);
    ok(
        &root,
        &[
            "create",
            "--min-layer-size",
            "0",
            "-u",
            "alice:s3cret-pass",
            &format!("docker://{image}"),
        ],
    );
    let o = ok(
        &root,
        &[
            "push",
            "--http-dump",
            "--http-trace",
            "-u",
            "alice:s3cret-pass",
            &image,
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("> GET http://{}/v2/", reg.addr)),
        "{err}"
    );
    assert!(err.contains("> PUT http://"), "{err}");
    assert!(err.contains("< HTTP/1.1 201"), "{err}");
    assert!(err.contains("authorization: <redacted>"), "{err}");
    assert!(err.contains("http: PUT http://"), "{err}");
    assert!(!err.contains("s3cret-pass"), "{err}");
    // The Basic credentials, base64-encoded, are not printed either.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pass");
    assert!(!err.contains(&b64), "{err}");

    // --refresh goes with no --user.
    let o = run(&root, &["push", "--refresh", "tok", "-u", "a:b", &image]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot be used with"),
        "{}",
        text(&o)
    );
}
