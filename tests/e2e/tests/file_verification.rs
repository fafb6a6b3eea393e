//! File verification through the daemon: a SOCI index whose zTOC describes one
//! file differently from the layer's tar header (a forged mode) makes reads of
//! that file fail with EIO, while the rest of the layer reads as packed.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use containerd_client::services::v1::snapshots::PrepareSnapshotRequest;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::with_namespace;
use soci_e2e::*;
use soci_format::Digest;
use soci_format::ztoc::Ztoc;
use tonic::Request;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const EIO: i32 = 5;

fn curl(args: &[&str]) -> Vec<u8> {
    run(Command::new(tool("curl")).arg("-fsS").args(args)).stdout
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

fn get_manifest(reg: &str, reference: &str) -> Vec<u8> {
    curl(&[
        "-H",
        &format!("Accept: application/vnd.oci.image.index.v1+json, {MANIFEST}"),
        &format!("http://{reg}/v2/app/manifests/{reference}"),
    ])
}

/// Upload `bytes` as a blob of `app` (monolithic POST + PUT).
fn push_blob(reg: &str, dir: &Path, bytes: &[u8]) -> Digest {
    let digest = Digest::of(bytes);
    let headers = String::from_utf8(curl(&[
        "-X",
        "POST",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("http://{reg}/v2/app/blobs/uploads/"),
    ]))
    .unwrap();
    let location = headers
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .expect("upload location");
    let location = if location.starts_with('/') {
        format!("http://{reg}{location}")
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let file = dir.join("forged.blob");
    std::fs::write(&file, bytes).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{location}{sep}digest={digest}"),
    ]);
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_ztoc_entry_is_eio_and_other_files_read() {
    let tmp = tempfile::Builder::new()
        .prefix("soci-e2e-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    let (tarball, _expected) = build_image(dir, 40);
    let converted = dir.join("img-soci.tar");
    run(Command::new(bin("soci"))
        .args(["convert", "--standalone"])
        .arg(&tarball)
        .arg(&converted));
    let reg = Registry::start(&dir.join("registry"));
    run(Command::new(tool("skopeo"))
        .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", converted.display()))
        .arg(format!("docker://{}/app:soci", reg.addr)));

    // The image manifest, its biggest layer and that layer's zTOC.
    let index = json(&get_manifest(&reg.addr, "soci"));
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["com.amazon.soci.index-digest"].is_string())
        .unwrap()
        .clone();
    let manifest_digest = desc["digest"].as_str().unwrap().to_string();
    let soci_index_digest = desc["annotations"]["com.amazon.soci.index-digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = json(&get_manifest(&reg.addr, &manifest_digest));
    let big = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .unwrap()
        .clone();
    let big_digest = big["digest"].as_str().unwrap().to_string();
    let mut soci_index = json(&get_manifest(&reg.addr, &soci_index_digest));
    let ztoc_desc = soci_index["layers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|l| l["annotations"]["com.amazon.soci.image-layer-digest"] == big_digest.as_str())
        .expect("a zTOC for the big layer");
    let ztoc_digest = ztoc_desc["digest"].as_str().unwrap().to_string();
    let ztoc_bytes = curl(&[&format!("http://{}/v2/app/blobs/{ztoc_digest}", reg.addr)]);

    // Forge the mode of one file and publish an index pointing at the forgery.
    let mut ztoc = Ztoc::from_bytes(&ztoc_bytes).unwrap();
    let victim = ztoc
        .toc
        .iter_mut()
        .find(|e| e.name.trim_start_matches("./") == "app/lib/f0.bin")
        .expect("f0.bin in the zTOC");
    assert_eq!(victim.entry_type, "reg");
    victim.mode ^= 0o4000;
    let forged = ztoc.to_bytes();
    let forged_digest = push_blob(&reg.addr, dir, &forged);
    ztoc_desc["digest"] = forged_digest.to_string().into();
    ztoc_desc["size"] = forged.len().into();
    let index_bytes = serde_json::to_vec(&soci_index).unwrap();
    let forged_index = Digest::of(&index_bytes);
    let file = dir.join("forged-index.json");
    std::fs::write(&file, &index_bytes).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        &format!("Content-Type: {MANIFEST}"),
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{}/v2/app/manifests/{forged_index}", reg.addr),
    ]);

    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::start(
        &dir.join("daemon"),
        &format!("metrics_address = \"{metrics_addr}\"\n[background_fetch]\ndisable = true\n"),
    );
    let channel = containerd_client::connect(&daemon.socket).await.unwrap();
    let mut client = SnapshotsClient::new(channel);
    let labels: HashMap<String, String> = [
        (
            "containerd.io/snapshot.ref",
            "sha256:2222222222222222222222222222222222222222222222222222222222222222".to_string(),
        ),
        (
            "containerd.io/snapshot/cri.image-ref",
            format!("{}/app:soci", reg.addr),
        ),
        (
            "containerd.io/snapshot/cri.manifest-digest",
            manifest_digest,
        ),
        (
            "containerd.io/snapshot/cri.layer-digest",
            big_digest.clone(),
        ),
        (
            "containerd.io/snapshot/remote/soci.index.digest",
            forged_index.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let err = client
        .prepare(with_namespace!(
            PrepareSnapshotRequest {
                snapshotter: "soci".into(),
                key: "extract-forged".into(),
                parent: String::new(),
                labels,
            },
            "e2e-verify"
        ))
        .await
        .expect_err("lazy layer answers AlreadyExists");
    assert_eq!(
        err.code(),
        tonic::Code::AlreadyExists,
        "{err}\n{}",
        tail(&daemon.proc.log_text(), 40)
    );
    let fuse: Vec<_> = mounts_under(&daemon.root)
        .into_iter()
        .filter(|(_, t)| t.starts_with("fuse"))
        .collect();
    assert_eq!(fuse.len(), 1, "{fuse:?}");
    let mnt = Path::new(&fuse[0].0).to_path_buf();

    // The forged file: EIO, and a log line naming the layer and the file.
    let e = std::fs::read(mnt.join("app/lib/f0.bin")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EIO), "{e}");
    // Its (forged) metadata is still listed; only its bytes are refused.
    assert!(mnt.join("app/lib/f0.bin").exists());
    // Every other file reads as packed.
    assert_eq!(
        std::fs::read_to_string(mnt.join("app/hello.txt")).unwrap(),
        "hello from a lazily loaded layer\n"
    );
    for i in [2u64, 4, 5] {
        let size = [3000usize, 70_000, 1 << 20, 5 << 20][(i % 4) as usize];
        let got = std::fs::read(mnt.join(format!("app/lib/f{i}.bin"))).unwrap();
        assert!(
            got == data(i, size, !i.is_multiple_of(3)),
            "f{i}.bin differs"
        );
    }
    let log = daemon.proc.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("file verification failed"))
        .unwrap_or_else(|| panic!("no verification log line:\n{}", tail(&log, 40)));
    assert!(line.contains(&big_digest), "{line}");
    assert!(line.contains("app/lib/f0.bin"), "{line}");
    assert!(line.contains("mode"), "{line}");

    let text = String::from_utf8(curl(&[&format!("http://{metrics_addr}/metrics")])).unwrap();
    let failures = text
        .lines()
        .find(|l| l.starts_with("soci_fs_file_verification_failures_total{"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(failures >= 1.0, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("soci_fs_operation_count{")
                && l.contains("fuse_file_read_failure_count")),
        "{text}"
    );
}
