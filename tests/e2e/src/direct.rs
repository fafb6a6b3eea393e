//! Driving `soci-snapshotter-grpc` without containerd: push a converted image,
//! then send containerd-style `Prepare` requests with the CRI labels straight
//! to the daemon's socket, and read the FUSE mounts it makes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use containerd_client::services::v1::snapshots::PrepareSnapshotRequest;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::with_namespace;
use tonic::Request;

use crate::{Registry, bin, build_image, mounts_under, run, tool};

/// A converted image in the registry.
pub struct PushedImage {
    /// Repository and tag, e.g. `app:soci` (prefix a registry address to use it).
    pub name: String,
    /// The image manifest that carries the SOCI index annotation.
    pub manifest_digest: String,
    /// The image's layers: (digest, size), bottom first.
    pub layers: Vec<(String, u64)>,
    /// Files of the big layer below `/app`: path relative to the layer root -> content.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl PushedImage {
    /// The biggest layer (the one with the application files).
    pub fn big_layer(&self) -> (String, u64) {
        self.layers
            .iter()
            .max_by_key(|(_, size)| *size)
            .cloned()
            .expect("an image has layers")
    }
}

fn get_json(url: &str) -> serde_json::Value {
    let out = run(Command::new(tool("curl"))
        .args([
            "-fsS",
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(url));
    serde_json::from_slice(&out.stdout).expect("registry JSON")
}

/// Builds the test image (`build_image` with a `big_mb` application layer),
/// converts it with `soci convert --standalone --span-size span_size` and pushes
/// it to `reg` as `name` with skopeo.
pub fn push_converted(
    dir: &Path,
    reg: &Registry,
    name: &str,
    big_mb: usize,
    span_size: u64,
) -> PushedImage {
    let (tarball, _) = build_image(dir, big_mb);
    let converted = dir.join("img-soci.tar");
    run(Command::new(bin("soci"))
        .args(["convert", "--standalone", "--min-layer-size", "0"])
        .arg("--span-size")
        .arg(span_size.to_string())
        .arg(&tarball)
        .arg(&converted));
    run(Command::new(tool("skopeo"))
        .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", converted.display()))
        .arg(format!("docker://{}/{name}", reg.addr)));
    let (repo, tag) = name.split_once(':').expect("name:tag");
    let index = get_json(&format!("http://{}/v2/{repo}/manifests/{tag}", reg.addr));
    let manifest_digest = index["manifests"]
        .as_array()
        .expect("an image index")
        .iter()
        .find(|d| d["annotations"]["com.amazon.soci.index-digest"].is_string())
        .expect("annotated image manifest")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = get_json(&format!(
        "http://{}/v2/{repo}/manifests/{manifest_digest}",
        reg.addr
    ));
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    // The files as packed in the big layer (before the top layer changed some).
    let mut files = BTreeMap::new();
    let mut i = 0u64;
    let mut total = 0;
    while total < big_mb << 20 {
        let size = [3000usize, 70_000, 1 << 20, 5 << 20][(i % 4) as usize];
        files.insert(
            format!("app/lib/f{i}.bin"),
            crate::data(i, size, !i.is_multiple_of(3)),
        );
        total += size;
        i += 1;
    }
    files.insert(
        "app/hello.txt".into(),
        b"hello from a lazily loaded layer\n".to_vec(),
    );
    files.insert("app/old/gone.txt".into(), b"deleted above\n".to_vec());
    files.insert(
        "app/old/also.txt".into(),
        b"hidden by an opaque dir\n".to_vec(),
    );
    PushedImage {
        name: name.to_string(),
        manifest_digest,
        layers,
        files,
    }
}

/// Sends a `Prepare` for `layer` of `image` (pulled through `registry`, a
/// `host:port`) to the daemon at `socket`, as containerd does for a remote
/// snapshot. `Ok` means the daemon mounted the layer (it answers AlreadyExists).
pub async fn prepare_remote(
    socket: &Path,
    namespace: &str,
    key: &str,
    registry: &str,
    image: &PushedImage,
    layer: &(String, u64),
) -> Result<(), tonic::Status> {
    let channel = containerd_client::connect(socket)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut client = SnapshotsClient::new(channel);
    let target = format!("{key}-committed");
    let labels: HashMap<String, String> = [
        ("containerd.io/snapshot.ref", target),
        (
            "containerd.io/snapshot/cri.image-ref",
            format!("{registry}/{}", image.name),
        ),
        (
            "containerd.io/snapshot/cri.manifest-digest",
            image.manifest_digest.clone(),
        ),
        ("containerd.io/snapshot/cri.layer-digest", layer.0.clone()),
        (
            "containerd.io/snapshot/remote/soci.size",
            layer.1.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let req = PrepareSnapshotRequest {
        snapshotter: "soci".into(),
        key: key.into(),
        parent: String::new(),
        labels,
    };
    match client.prepare(with_namespace!(req, namespace)).await {
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(s) => Err(s),
        Ok(_) => Err(tonic::Status::failed_precondition(
            "the daemon prepared a local snapshot: the layer was not mounted lazily",
        )),
    }
}

/// The FUSE mount points under `dir`.
pub fn fuse_mounts(dir: &Path) -> Vec<PathBuf> {
    mounts_under(dir)
        .into_iter()
        .filter(|(_, t)| t.starts_with("fuse"))
        .map(|(m, _)| PathBuf::from(m))
        .collect()
}

/// What reading a file through a lazily loaded mount gave.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadTally {
    /// Files read back exactly.
    pub exact: usize,
    /// Reads that failed with EIO.
    pub eio: usize,
}

/// Reads every file of `files` below `mnt`. Each read must give exactly the
/// expected bytes or fail with EIO; anything else (other bytes, another
/// error) panics, naming the file and `phase`.
pub fn read_all(mnt: &Path, files: &BTreeMap<String, Vec<u8>>, phase: &str) -> ReadTally {
    let mut tally = ReadTally::default();
    for (name, want) in files {
        match std::fs::read(mnt.join(name)) {
            Ok(got) => {
                assert!(
                    got.len() == want.len() && got == *want,
                    "{phase}: {name} read {} bytes that differ from the {} packed",
                    got.len(),
                    want.len()
                );
                tally.exact += 1;
            }
            Err(e) if e.raw_os_error() == Some(5) => tally.eio += 1,
            Err(e) => panic!("{phase}: reading {name} failed with {e}, not EIO"),
        }
    }
    tally
}

/// Pushes a second image that shares every layer with the one
/// [`push_converted`] built in `dir`: the same layers under a new config
/// (another command), so a new manifest and a new SOCI index.
pub fn push_sharing_layers(
    dir: &Path,
    reg: &Registry,
    first: &PushedImage,
    name: &str,
    span_size: u64,
) -> PushedImage {
    let layout = dir.join("img2");
    let _ = std::fs::remove_dir_all(&layout);
    run(Command::new("cp")
        .arg("-a")
        .arg(dir.join("img"))
        .arg(&layout));
    run(Command::new(tool("umoci"))
        .args(["config", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .args(["--config.cmd", "/bin/ls", "--config.cmd", "/app"]));
    let tarball = dir.join("img2.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    let converted = dir.join("img2-soci.tar");
    run(Command::new(bin("soci"))
        .args(["convert", "--standalone", "--min-layer-size", "0"])
        .arg("--span-size")
        .arg(span_size.to_string())
        .arg(&tarball)
        .arg(&converted));
    run(Command::new(tool("skopeo"))
        .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", converted.display()))
        .arg(format!("docker://{}/{name}", reg.addr)));
    let (repo, tag) = name.split_once(':').expect("name:tag");
    let index = get_json(&format!("http://{}/v2/{repo}/manifests/{tag}", reg.addr));
    let manifest_digest = index["manifests"]
        .as_array()
        .expect("an image index")
        .iter()
        .find(|d| d["annotations"]["com.amazon.soci.index-digest"].is_string())
        .expect("annotated image manifest")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(manifest_digest, first.manifest_digest);
    PushedImage {
        name: name.to_string(),
        manifest_digest,
        layers: first.layers.clone(),
        files: first.files.clone(),
    }
}

/// Resident memory of process `pid` in KiB (`VmRSS` of /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}
