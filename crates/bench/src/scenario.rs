//! The measured scenarios, each from a cold cache: a fresh containerd (and
//! snapshotter) with empty roots for every measurement.
//!
//! - `overlayfs`: `ctr images pull` of the unconverted image, then one
//!   `ctr run` per workload (the pull is shared: its time is added to each
//!   workload's run), then the same container again (warm);
//! - `soci`: per workload, `soci image rpull` of the converted image and
//!   `ctr run --snapshotter soci` (cold), then a second container (warm rerun).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use soci_e2e::{Containerd, Proc, tail, unmount_under};

use crate::breakdown::{self, Breakdown};
use crate::proxy::{Counts, LatencyProxy};

/// What `soci-bench-reader` printed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReaderResult {
    pub ops: u64,
    pub bytes: u64,
    pub missing: u64,
    pub elapsed_ns: u64,
    pub p50_us: f64,
    pub p95_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub digest: String,
}

/// One measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub profile: String,
    pub scenario: String,
    pub workload: String,
    pub run: usize,
    /// Pull (or rpull) time, s.
    pub t_pull: f64,
    /// `ctr run` of the workload, cold, s.
    pub t_run: f64,
    /// Time to ready: pull + cold run, s.
    pub t_ready: f64,
    /// `ctr run` of the same workload in a second container, s.
    pub t_run_warm: f64,
    pub reader: ReaderResult,
    pub reader_warm: ReaderResult,
    /// What crossed the proxy (pull + cold run).
    pub net: Counts,
    pub daemon_cpu_s: Option<f64>,
    pub daemon_peak_rss_kb: Option<u64>,
    /// The daemon's RSS after the cold and warm runs (KiB).
    #[serde(default)]
    pub daemon_rss_after_kb: Option<u64>,
    pub cache_bytes_before_rm: Option<u64>,
    pub cache_bytes_after_rm: Option<u64>,
    pub page_cache_dropped: bool,
    /// The daemon's own account of the lazy run (its metrics endpoint).
    #[serde(default)]
    pub breakdown: Option<Breakdown>,
    /// FUSE requests the daemon answered during the warm run, by operation.
    #[serde(default)]
    pub warm_fuse_ops: std::collections::BTreeMap<String, u64>,
}

/// Fixed parts of every scenario.
pub struct Env<'a> {
    pub proxy: &'a LatencyProxy,
    pub work: PathBuf,
    pub soci_bin: PathBuf,
    pub daemon_bin: PathBuf,
    pub plain_ref: String,
    pub soci_ref: String,
    pub drop_caches: bool,
    pub namespace: String,
    /// `[fuse]` timeouts for the daemon, seconds (`None`: its defaults).
    pub fuse_timeout: Option<u64>,
}

/// Run a command to completion within `limit`; its stdout, or an error with both outputs.
pub fn run_cmd(cmd: &mut Command, limit: Duration) -> Result<String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {what}"))?;
    let mut so = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut se = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = t_out.join().unwrap_or_default();
    let err = t_err.join().unwrap_or_default();
    match status {
        Some(st) if st.success() => Ok(out),
        Some(st) => bail!(
            "{what} failed ({st}):\nstdout: {}\nstderr: {}",
            tail(&out, 20),
            tail(&err, 20)
        ),
        None => bail!(
            "{what} did not finish within {limit:?}:\nstderr: {}",
            tail(&err, 20)
        ),
    }
}

pub fn drop_page_cache(enabled: bool) -> bool {
    if !enabled {
        return false;
    }
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

pub fn parse_reader(out: &str) -> Result<ReaderResult> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("SOCI-BENCH-RESULT "))
        .ok_or_else(|| anyhow!("the workload printed no result line:\n{}", tail(out, 10)))?;
    Ok(serde_json::from_str(line)?)
}

/// CPU seconds (user + system) and peak RSS (KiB) of a process.
pub fn proc_usage(pid: u32) -> (Option<f64>, Option<u64>) {
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) start at ") ".
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        });
    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        });
    (cpu, hwm)
}

/// A `kB` field of `/proc/PID/status` (e.g. `VmRSS:`).
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Disk usage (allocated blocks) under `dir`, not crossing into other filesystems (the FUSE mounts).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(root) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let dev = root.dev();
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    let mut steps = 0u64;
    while let Some(d) = todo.pop() {
        steps += 1;
        if steps > 10_000_000 {
            break;
        }
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.dev() != dev {
                continue;
            }
            total += m.blocks() * 512;
            if m.is_dir() {
                todo.push(e.path());
            }
        }
    }
    total
}

/// Wait (at most `limit`) until `ready()` holds for a daemon just started;
/// an error with the tail of its log if it exits first or takes too long.
pub fn wait_until_ready(
    daemon: &mut Proc,
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !ready() {
        if let Some(c) = daemon.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            bail!(
                "{} exited ({status}) before it could {what}:\n{}",
                daemon.name,
                tail(&daemon.log_text(), 20)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not {what} within {limit:?}:\n{}",
                daemon.name,
                tail(&daemon.log_text(), 20)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

const PULL_LIMIT: Duration = Duration::from_secs(3600);
const RUN_LIMIT: Duration = Duration::from_secs(1800);

fn ctr_run(ctd: &Containerd, args: &[&str]) -> Result<(String, f64)> {
    let t = Instant::now();
    let out = run_cmd(
        Command::new(soci_e2e::tool("ctr"))
            .arg("-a")
            .arg(&ctd.socket)
            .arg("-n")
            .arg(&ctd.namespace)
            .args(args),
        RUN_LIMIT,
    )?;
    Ok((out, t.elapsed().as_secs_f64()))
}

fn stop_containerd(ctd: Containerd, dir: &Path) {
    drop(ctd);
    unmount_under(dir);
}

/// Full pull through containerd's overlayfs snapshotter, then every workload cold and warm.
pub fn full(env: &Env, profile: &str, run: usize, workloads: &[String]) -> Result<Vec<Record>> {
    let dir = env.work.join(format!("{profile}-r{run}-overlayfs"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let ctd = Containerd::start(
        &dir.join("ctd"),
        &dir.join("no-snapshotter.sock"),
        &env.namespace,
    );
    let result = (|| {
        let dropped = drop_page_cache(env.drop_caches);
        let c0 = env.proxy.counts();
        let t0 = Instant::now();
        ctr_run(&ctd, &["images", "pull", "--plain-http", &env.plain_ref])
            .map_err(|e| e.context(format!("pull {} (full)", env.plain_ref)))?;
        let t_pull = t0.elapsed().as_secs_f64();
        let net = env.proxy.counts().since(c0);
        let mut recs = Vec::new();
        for w in workloads {
            let list = format!("/bench/{w}.txt");
            let dropped_w = drop_page_cache(env.drop_caches) && dropped;
            let id = format!("ov-{w}-{run}");
            let (out, t_run) = ctr_run(
                &ctd,
                &["run", "--rm", &env.plain_ref, &id, "/bench/reader", &list],
            )?;
            let reader = parse_reader(&out)?;
            let (out, t_run_warm) = ctr_run(
                &ctd,
                &[
                    "run",
                    "--rm",
                    &env.plain_ref,
                    &format!("{id}-w"),
                    "/bench/reader",
                    &list,
                ],
            )?;
            let reader_warm = parse_reader(&out)?;
            recs.push(Record {
                profile: profile.to_string(),
                scenario: "overlayfs".into(),
                workload: w.clone(),
                run,
                t_pull,
                t_run,
                t_ready: t_pull + t_run,
                t_run_warm,
                reader,
                reader_warm,
                net,
                daemon_cpu_s: None,
                daemon_peak_rss_kb: None,
                daemon_rss_after_kb: None,
                cache_bytes_before_rm: None,
                cache_bytes_after_rm: None,
                page_cache_dropped: dropped_w,
                breakdown: None,
                warm_fuse_ops: Default::default(),
            });
        }
        Ok(recs)
    })();
    stop_containerd(ctd, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Lazy pull through soci-snapshotter-grpc, one workload, cold then warm.
pub fn lazy(env: &Env, profile: &str, run: usize, workload: &str) -> Result<Record> {
    let dir = env.work.join(format!("{profile}-r{run}-soci-{workload}"));
    let _ = std::fs::remove_dir_all(&dir);
    let sdir = dir.join("soci");
    std::fs::create_dir_all(&sdir)?;
    let socket = sdir.join("soci.sock");
    let root = sdir.join("root");
    let config = sdir.join("config.toml");
    // Background fetch off: the bytes counted are the ones the workload needs.
    // Metrics on 127.0.0.1 tell where the daemon's time went.
    let metrics = format!("127.0.0.1:{}", soci_e2e::free_port());
    let mut toml = format!("metrics_address = \"{metrics}\"\n[background_fetch]\ndisable = true\n");
    if let Some(t) = env.fuse_timeout {
        toml.push_str(&format!(
            "[fuse]\nattr_timeout = {t}\nentry_timeout = {t}\nnegative_timeout = {t}\n"
        ));
    }
    std::fs::write(&config, toml)?;
    let mut daemon = Proc::spawn(
        "soci-snapshotter-grpc",
        Command::new(&env.daemon_bin)
            .arg("--address")
            .arg(&socket)
            .arg("--root")
            .arg(&root)
            .arg("--config")
            .arg(&config),
        sdir.join("daemon.log"),
    );
    wait_until_ready(
        &mut daemon,
        &format!("listen on {}", socket.display()),
        Duration::from_secs(30),
        || socket.exists(),
    )?;
    let pid = daemon.pid();
    let ctd = Containerd::start(&dir.join("ctd"), &socket, &env.namespace);
    let result = (|| {
        let dropped = drop_page_cache(env.drop_caches);
        let c0 = env.proxy.counts();
        let t0 = Instant::now();
        run_cmd(
            Command::new(&env.soci_bin)
                .arg("--address")
                .arg(&ctd.socket)
                .arg("--namespace")
                .arg(&env.namespace)
                .args(["image", "rpull", "--plain-http", &env.soci_ref]),
            PULL_LIMIT,
        )
        .map_err(|e| e.context(format!("rpull {}", env.soci_ref)))?;
        let t_pull = t0.elapsed().as_secs_f64();
        let list = format!("/bench/{workload}.txt");
        let id = format!("soci-{workload}-{run}");
        let (out, t_run) = ctr_run(
            &ctd,
            &[
                "run",
                "--rm",
                "--snapshotter",
                "soci",
                &env.soci_ref,
                &id,
                "/bench/reader",
                &list,
            ],
        )?;
        let net = env.proxy.counts().since(c0);
        let reader = parse_reader(&out)?;
        let ops_before = breakdown::scrape(&metrics).map(|t| breakdown::fuse_ops(&t));
        let (out, t_run_warm) = ctr_run(
            &ctd,
            &[
                "run",
                "--rm",
                "--snapshotter",
                "soci",
                &env.soci_ref,
                &format!("{id}-w"),
                "/bench/reader",
                &list,
            ],
        )?;
        let reader_warm = parse_reader(&out)?;
        // One scrape after the runs serves the warm run's requests and the breakdown.
        let after = breakdown::scrape(&metrics).ok();
        let warm_fuse_ops = match (ops_before, &after) {
            (Ok(before), Some(after)) => breakdown::ops_since(&breakdown::fuse_ops(after), &before),
            _ => Default::default(),
        };
        let (cpu, hwm) = proc_usage(pid);
        let breakdown = after.as_deref().map(breakdown::parse);
        let rss = proc_status_kb(pid, "VmRSS:");
        let before = disk_usage(&root);
        ctr_run(&ctd, &["images", "rm", "--sync", &env.soci_ref])?;
        // The daemon deletes the span caches of removed layers when
        // containerd's cleanup reaches it: give it a bounded moment.
        let spancache = root.join("soci/spancache");
        let deadline = Instant::now() + Duration::from_secs(20);
        while disk_usage(&spancache) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        let after = disk_usage(&root);
        Ok(Record {
            profile: profile.to_string(),
            scenario: "soci".into(),
            workload: workload.to_string(),
            run,
            t_pull,
            t_run,
            t_ready: t_pull + t_run,
            t_run_warm,
            reader,
            reader_warm,
            warm_fuse_ops,
            net,
            daemon_cpu_s: cpu,
            daemon_peak_rss_kb: hwm,
            daemon_rss_after_kb: rss,
            cache_bytes_before_rm: Some(before),
            cache_bytes_after_rm: Some(after),
            page_cache_dropped: dropped,
            breakdown,
        })
    })();
    stop_containerd(ctd, &dir);
    daemon.signal("INT");
    unmount_under(&dir);
    if result.is_err() {
        eprintln!("daemon log tail:\n{}", tail(&daemon.log_text(), 30));
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}
