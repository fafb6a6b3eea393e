//! The daemon's lazy path without containerd in between: a containerd-style
//! `Prepare` with the CRI labels, sent straight to `soci-snapshotter-grpc`, mounts
//! the converted layer on FUSE, and every file read through the mount equals
//! what was packed, while the registry serves only what is read.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CleanupRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::with_namespace;
use soci_e2e::*;
use tonic::Request;

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

fn fetch(url: &str) -> Vec<u8> {
    run(Command::new(tool("curl"))
        .args(["-fsS", "-H", "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"])
        .arg(url))
    .stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_with_labels_mounts_the_layer_lazily() {
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

    // Find the image manifest and its biggest layer.
    let index = json(&fetch(&format!(
        "http://{}/v2/app/manifests/soci",
        reg.addr
    )));
    let manifest_desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["com.amazon.soci.index-digest"].is_string())
        .expect("annotated image manifest")
        .clone();
    let manifest_digest = manifest_desc["digest"].as_str().unwrap().to_string();
    let manifest = json(&fetch(&format!(
        "http://{}/v2/app/manifests/{manifest_digest}",
        reg.addr
    )));
    let big = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .unwrap()
        .clone();
    let big_digest = big["digest"].as_str().unwrap().to_string();
    let big_size = big["size"].as_u64().unwrap();

    let proxy = CountingProxy::start(&reg.addr);
    let daemon = Daemon::start(&dir.join("daemon"), "[background_fetch]\ndisable = true\n");
    let channel = containerd_client::connect(&daemon.socket).await.unwrap();
    let mut client = SnapshotsClient::new(channel);
    let ns = "e2e-direct";
    let target = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let labels: HashMap<String, String> = [
        ("containerd.io/snapshot.ref", target.to_string()),
        (
            "containerd.io/snapshot/cri.image-ref",
            format!("{}/app:soci", proxy.addr),
        ),
        (
            "containerd.io/snapshot/cri.manifest-digest",
            manifest_digest.clone(),
        ),
        (
            "containerd.io/snapshot/cri.layer-digest",
            big_digest.clone(),
        ),
        (
            "containerd.io/snapshot/remote/soci.size",
            big_size.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let req = PrepareSnapshotRequest {
        snapshotter: "soci".into(),
        key: "extract-1".into(),
        parent: String::new(),
        labels,
    };
    let err = client
        .prepare(with_namespace!(req, ns))
        .await
        .expect_err("lazy layer answers AlreadyExists");
    assert_eq!(
        err.code(),
        tonic::Code::AlreadyExists,
        "{err}\ndaemon log:\n{}",
        tail(&daemon.proc.log_text(), 40)
    );
    let info = client
        .stat(with_namespace!(
            StatSnapshotRequest {
                snapshotter: "soci".into(),
                key: target.into()
            },
            ns
        ))
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!(
        info.labels
            .get("containerd.io/snapshot/remote")
            .map(String::as_str),
        Some("remote snapshot")
    );

    let fuse: Vec<_> = mounts_under(&daemon.root)
        .into_iter()
        .filter(|(_, t)| t.starts_with("fuse"))
        .collect();
    assert_eq!(fuse.len(), 1, "{fuse:?}");
    let mnt = Path::new(&fuse[0].0).to_path_buf();
    assert_eq!(
        std::fs::read_to_string(mnt.join("app/hello.txt")).unwrap(),
        "hello from a lazily loaded layer\n"
    );
    assert_eq!(
        std::fs::read_link(mnt.join("app/link.txt")).unwrap(),
        Path::new("hello.txt")
    );
    let served_small = proxy.served();
    assert!(
        served_small * 4 < big_size,
        "reading one small file fetched {served_small} of {big_size} bytes"
    );

    // Every file of the layer equals what was packed.
    let mut checked = 0;
    for e in std::fs::read_dir(mnt.join("app/lib")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        let i: u64 = name
            .trim_start_matches('f')
            .trim_end_matches(".bin")
            .parse()
            .unwrap();
        let size = [3000usize, 70_000, 1 << 20, 5 << 20][(i % 4) as usize];
        let got = std::fs::read(e.path()).unwrap();
        assert!(got == data(i, size, !i.is_multiple_of(3)), "{name} differs");
        checked += 1;
    }
    assert!(checked > 10);
    let state_dir = mnt.join(".soci-snapshotter");
    let state = std::fs::read_to_string(state_dir.join(format!("{big_digest}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(v["size"].as_u64(), Some(big_size), "{state}");
    assert!(v["fetchedSize"].as_u64().unwrap() > big_size / 2, "{state}");

    // SIGTERM leaves the mount; the restarted daemon replaces it with a fresh one
    // from the stored labels, and the layer reads the same.
    let mut daemon = daemon;
    daemon.restart("TERM");
    let again: Vec<_> = mounts_under(&daemon.root)
        .into_iter()
        .filter(|(_, t)| t.starts_with("fuse"))
        .collect();
    assert_eq!(
        again.len(),
        1,
        "{again:?}\ndaemon log:\n{}",
        tail(&daemon.proc.log_text(), 40)
    );
    let mnt = Path::new(&again[0].0).to_path_buf();
    assert_eq!(
        std::fs::read_to_string(mnt.join("app/hello.txt")).unwrap(),
        "hello from a lazily loaded layer\n"
    );
    let channel = containerd_client::connect(&daemon.socket).await.unwrap();
    let mut client = SnapshotsClient::new(channel);

    // Removing the snapshot unmounts the layer.
    client
        .remove(with_namespace!(
            RemoveSnapshotRequest {
                snapshotter: "soci".into(),
                key: target.into()
            },
            ns
        ))
        .await
        .unwrap();
    let _ = client
        .cleanup(with_namespace!(
            CleanupRequest {
                snapshotter: "soci".into()
            },
            ns
        ))
        .await;
    let still: Vec<_> = mounts_under(&daemon.root)
        .into_iter()
        .filter(|(_, t)| t.starts_with("fuse"))
        .collect();
    assert!(still.is_empty(), "{still:?}");
}
