//! The Nydus zran scenario: the same gzip layers, indexed by
//! `nydus-image create --type targz-ref` (Nydus's zran mode), merged into one
//! RAFS v6 bootstrap and read through `nydusd`'s FUSE mount.
//!
//! What crosses the (shaped, counted) network is what a Nydus node fetches:
//! the bootstrap, then on demand the per-layer zran metadata blobs and byte
//! ranges of the original gzip layers, all from the same registry through the
//! same latency proxy as the other scenarios. There is no containerd here: the
//! workload runs in a `chroot` of the mount point, so Nydus's times leave out
//! the container start that the other scenarios pay (`ctr run`).
//!
//! The tools are `nydus-image` and `nydusd` from the `nydus-rs` crate
//! (`scripts/bench.sh --nydus` installs version [`NYDUS_VERSION`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use soci_e2e::{Proc, tail, unmount_under};

use crate::image::{ImageInfo, blob_path, new_layout, put_blob, write_index};
use crate::scenario::{
    Env, Record, disk_usage, drop_page_cache, parse_reader, proc_status_kb, proc_usage, run_cmd,
    wait_until_ready,
};

/// The `nydus-rs` release the benchmark installs and was measured with.
pub const NYDUS_VERSION: &str = "2.2.0";

/// The registry tag the Nydus artifacts (bootstrap and zran metadata blobs) are pushed under.
pub const TAG: &str = "nydus";

/// `nydus-image` and `nydusd`.
#[derive(Debug, Clone)]
pub struct Tools {
    pub image: PathBuf,
    pub daemon: PathBuf,
}

impl Tools {
    /// Find both tools in `dir` if given, else in `/opt/nydus/bin` or `$PATH`.
    pub fn locate(dir: Option<&Path>) -> Result<Tools> {
        let mut dirs: Vec<PathBuf> = dir.into_iter().map(Path::to_path_buf).collect();
        if dir.is_none() {
            dirs.push("/opt/nydus/bin".into());
            if let Some(path) = std::env::var_os("PATH") {
                dirs.extend(std::env::split_paths(&path));
            }
        }
        let find = |name: &str| {
            dirs.iter()
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    anyhow!(
                        "{name} not found in {}: install it with `cargo install nydus-rs --version {NYDUS_VERSION} \
                         --locked --root DIR` (needs cmake) and pass --nydus-bin DIR/bin, or run scripts/bench.sh --nydus",
                        dirs.iter()
                            .map(|d| d.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
        };
        Ok(Tools {
            image: find("nydus-image")?,
            daemon: find("nydusd")?,
        })
    }
}

/// What `build` made: a bootstrap and one zran metadata blob per layer, in
/// an OCI layout ready to be pushed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifacts {
    /// OCI layout holding the bootstrap and the metadata blobs as layers.
    pub layout: PathBuf,
    /// `sha256:...` and size of the merged bootstrap.
    pub bootstrap_digest: String,
    pub bootstrap_bytes: u64,
    /// Total size of the zran metadata blobs.
    pub meta_bytes: u64,
    pub meta_blobs: usize,
}

impl Artifacts {
    /// Index bytes a Nydus node fetches before reading file data.
    pub fn index_bytes(&self) -> u64 {
        self.bootstrap_bytes + self.meta_bytes
    }
}

/// Where the artifacts of the image generated in `data_dir` are kept.
pub fn artifacts_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(format!("nydus-{NYDUS_VERSION}"))
}

/// The artifacts `build` made in `dir`.
pub fn load(dir: &Path) -> Result<Artifacts> {
    let p = dir.join("artifacts.json");
    let b = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
    serde_json::from_slice(&b).with_context(|| format!("parse {}", p.display()))
}

/// Index every layer of the image in `image_layout` with
/// `nydus-image create --type targz-ref`, merge the bootstraps, and put the
/// result in an OCI layout under `dir` (made once; reused while
/// `dir/artifacts.json` exists).
pub fn build(
    tools: &Tools,
    image_layout: &Path,
    info: &ImageInfo,
    dir: &Path,
) -> Result<Artifacts> {
    let done = dir.join("artifacts.json");
    if done.exists() {
        return load(dir);
    }
    let _ = std::fs::remove_dir_all(dir);
    // What gets pushed: the bootstrap and the metadata blobs as the layers of
    // one artifact manifest.
    let layout = dir.join("layout");
    new_layout(&layout)?;
    // Per layer: its bootstrap, named by the layer's hex digest (`merge` takes
    // the data blob id from that name, and the data blob is the gzip layer
    // itself), and its zran metadata blob, named by its own digest.
    let mut boots = Vec::new();
    let mut metas: Vec<(String, u64)> = Vec::new();
    for (i, l) in info.layers.iter().enumerate() {
        let hex = l
            .digest
            .strip_prefix("sha256:")
            .ok_or_else(|| anyhow!("layer digest {} is not sha256", l.digest))?;
        let ldir = dir.join(format!("layer{i}"));
        let blobs = ldir.join("blobs");
        std::fs::create_dir_all(&blobs)?;
        let boot = ldir.join(hex);
        run_cmd(
            Command::new(&tools.image)
                .args(["create", "--type", "targz-ref", "--fs-version", "6"])
                .args(["--log-level", "warn", "--bootstrap"])
                .arg(&boot)
                .arg("--blob-dir")
                .arg(&blobs)
                .arg(blob_path(image_layout, &l.digest)),
            Duration::from_secs(1800),
        )
        .with_context(|| format!("nydus-image create --type targz-ref of layer {}", l.digest))?;
        let made: Vec<PathBuf> = std::fs::read_dir(&blobs)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        let [meta] = made.as_slice() else {
            bail!(
                "nydus-image wrote {} blobs for layer {} in {} (expected one zran metadata blob)",
                made.len(),
                l.digest,
                blobs.display()
            );
        };
        let bytes = std::fs::read(meta).with_context(|| format!("read {}", meta.display()))?;
        let digest = put_blob(&layout, &bytes)?;
        if meta
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .as_deref()
            != digest.strip_prefix("sha256:")
        {
            bail!(
                "{}: nydus-image named a blob other than by its sha256 ({digest})",
                meta.display()
            );
        }
        metas.push((digest, bytes.len() as u64));
        boots.push(boot);
    }
    let bootstrap = dir.join("bootstrap");
    let list =
        |f: &dyn Fn(&(String, u64)) -> String| metas.iter().map(f).collect::<Vec<_>>().join(",");
    run_cmd(
        Command::new(&tools.image)
            .args(["merge", "--log-level", "warn", "--bootstrap"])
            .arg(&bootstrap)
            .arg("--blob-digests")
            .arg(list(&|m| m.0.trim_start_matches("sha256:").to_string()))
            .arg("--blob-sizes")
            .arg(list(&|m| m.1.to_string()))
            .args(&boots),
        Duration::from_secs(600),
    )
    .context("nydus-image merge")?;
    let boot =
        std::fs::read(&bootstrap).with_context(|| format!("read {}", bootstrap.display()))?;
    let boot_digest = put_blob(&layout, &boot)?;
    let boot_size = boot.len() as u64;
    let config = b"{}";
    let config_digest = put_blob(&layout, config)?;
    let layers = std::iter::once((boot_digest.clone(), boot_size)).chain(metas.iter().cloned());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.soci-bench.nydus-zran",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": layers.map(|(d, s)| serde_json::json!({
            "mediaType": "application/octet-stream",
            "digest": d,
            "size": s,
        })).collect::<Vec<_>>(),
    });
    let mbytes = serde_json::to_vec(&manifest)?;
    let mdigest = put_blob(&layout, &mbytes)?;
    write_index(&layout, &mdigest, mbytes.len(), TAG)?;
    let a = Artifacts {
        layout,
        bootstrap_digest: boot_digest,
        bootstrap_bytes: boot_size,
        meta_bytes: metas.iter().map(|m| m.1).sum(),
        meta_blobs: metas.len(),
    };
    std::fs::write(&done, serde_json::to_vec(&a)?)?;
    Ok(a)
}

/// `nydusd`'s configuration: the registry backend through the proxy, a blob
/// cache in `cache`, on-demand reads only (no prefetch, as the lazy scenario
/// runs without background fetch).
fn config(proxy_addr: &str, repo: &str, cache: &Path) -> serde_json::Value {
    serde_json::json!({
        "device": {
            "backend": {
                "type": "registry",
                "config": {
                    "scheme": "http",
                    "host": proxy_addr,
                    "repo": repo,
                    "timeout": 60,
                    "connect_timeout": 10,
                    "retry_limit": 0,
                }
            },
            "cache": {"type": "blobcache", "config": {"work_dir": cache}},
        },
        "mode": "direct",
        "digest_validate": false,
        "iostats_files": false,
        "enable_xattr": true,
        "fs_prefetch": {"enable": false},
    })
}

fn is_mounted(path: &Path) -> bool {
    soci_e2e::mounts_under(path)
        .iter()
        .any(|(t, _)| Path::new(t) == path)
}

/// One workload through Nydus, cold then warm (same daemon, same mount).
pub fn run(
    env: &Env,
    tools: &Tools,
    arts: &Artifacts,
    profile: &str,
    run: usize,
    workload: &str,
) -> Result<Record> {
    let dir = env.work.join(format!("{profile}-r{run}-nydus-{workload}"));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = dir.join("cache");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&cache)?;
    std::fs::create_dir_all(&mnt)?;
    let (host, repo) = env
        .plain_ref
        .split_once('/')
        .and_then(|(h, rest)| Some((h, rest.split_once(':')?.0)))
        .ok_or_else(|| anyhow!("cannot split {} into host and repository", env.plain_ref))?;
    let cfg = dir.join("nydusd.json");
    std::fs::write(
        &cfg,
        serde_json::to_vec_pretty(&config(host, repo, &cache))?,
    )?;
    let boot = dir.join("bootstrap");
    let dropped = drop_page_cache(env.drop_caches);
    let c0 = env.proxy.counts();
    let t0 = Instant::now();
    // What a node does first: fetch the bootstrap, then start nydusd on it.
    run_cmd(
        Command::new(soci_e2e::tool("curl"))
            .args(["-sSf", "-o"])
            .arg(&boot)
            .arg(format!(
                "http://{host}/v2/{repo}/blobs/{}",
                arts.bootstrap_digest
            )),
        Duration::from_secs(600),
    )
    .context("fetch the Nydus bootstrap through the proxy")?;
    let mut daemon = Proc::spawn(
        "nydusd",
        Command::new(&tools.daemon)
            .arg("--config")
            .arg(&cfg)
            .arg("--bootstrap")
            .arg(&boot)
            .arg("--mountpoint")
            .arg(&mnt)
            // nydusd raises its open-file limit to 1,000,000 by default, which
            // fails where the hard limit is lower: keep the inherited one.
            .args(["--log-level", "warn", "--rlimit-nofile", "0"]),
        dir.join("nydusd.log"),
    );
    let result = (|| {
        wait_until_ready(
            &mut daemon,
            &format!("mount {}", mnt.display()),
            Duration::from_secs(60),
            || is_mounted(&mnt),
        )?;
        let t_pull = t0.elapsed().as_secs_f64();
        let reader = || -> Result<(String, f64)> {
            let t = Instant::now();
            let out = run_cmd(
                Command::new(soci_e2e::tool("chroot"))
                    .arg(&mnt)
                    .args(["/bench/reader", &format!("/bench/{workload}.txt")])
                    .env_clear()
                    .env(
                        "PATH",
                        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    ),
                Duration::from_secs(1800),
            )
            .with_context(|| format!("{workload} in a chroot of the nydusd mount"))?;
            Ok((out, t.elapsed().as_secs_f64()))
        };
        let (out, t_run) = reader()?;
        let net = env.proxy.counts().since(c0);
        let cold = parse_reader(&out)?;
        let (out, t_run_warm) = reader()?;
        let warm = parse_reader(&out)?;
        let pid = daemon.pid();
        let (cpu, hwm) = proc_usage(pid);
        let rss = proc_status_kb(pid, "VmRSS:");
        Ok(Record {
            profile: profile.to_string(),
            scenario: "nydus".into(),
            workload: workload.to_string(),
            run,
            t_pull,
            t_run,
            t_ready: t_pull + t_run,
            t_run_warm,
            reader: cold,
            reader_warm: warm,
            net,
            daemon_cpu_s: cpu,
            daemon_peak_rss_kb: hwm,
            daemon_rss_after_kb: rss,
            cache_bytes_before_rm: Some(disk_usage(&cache)),
            cache_bytes_after_rm: None,
            page_cache_dropped: dropped,
            breakdown: None,
            warm_fuse_ops: Default::default(),
        })
    })();
    unmount_under(&dir);
    daemon.signal("TERM");
    if result.is_err() {
        eprintln!("nydusd log tail:\n{}", tail(&daemon.log_text(), 30));
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_on_demand_through_the_proxy() {
        let c = config("127.0.0.1:4000", "bench", Path::new("/tmp/c"));
        assert_eq!(c["device"]["backend"]["config"]["host"], "127.0.0.1:4000");
        assert_eq!(c["device"]["backend"]["config"]["repo"], "bench");
        assert_eq!(c["device"]["cache"]["type"], "blobcache");
        assert_eq!(c["fs_prefetch"]["enable"], false);
    }

    #[test]
    fn locate_names_the_install_command_when_missing() {
        let d = tempfile::tempdir().unwrap();
        let e = Tools::locate(Some(d.path())).unwrap_err().to_string();
        assert!(e.contains("cargo install nydus-rs"), "{e}");
        std::fs::write(d.path().join("nydus-image"), b"").unwrap();
        std::fs::write(d.path().join("nydusd"), b"").unwrap();
        let t = Tools::locate(Some(d.path())).unwrap();
        assert_eq!(t.daemon, d.path().join("nydusd"));
    }
}
