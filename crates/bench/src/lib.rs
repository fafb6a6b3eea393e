//! Time-to-ready benchmark: lazy loading with soci-snapshotter-grpc vs a full
//! pull through containerd's overlayfs snapshotter, on a shaped network, next
//! to the physical bound. See BENCHMARKS.md and `scripts/bench.sh`.

pub mod analysis;
pub mod breakdown;
pub mod debian;
pub mod image;
pub mod many_files;
pub mod net;
pub mod nydus;
pub mod proxy;
pub mod report;
pub mod scenario;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::analysis::{Analysis, Profile};
use crate::image::{ImageInfo, Size};

#[derive(Parser)]
#[command(
    name = "soci-bench",
    about = "Time-to-ready of lazy loading vs full pull on a shaped network"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Generate (or reuse) the image, convert it and print what each workload touches.
    Gen(GenArgs),
    /// Run the benchmark.
    Run(RunArgs),
    /// Render the report of an earlier run again from its JSON files.
    Report(ReportArgs),
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The image of the run (same flags as `run`).
    #[command(flatten)]
    pub image: GenArgs,
    /// Results directory of the run.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Also write the Markdown report into this file between `<!-- bench:begin -->` and `<!-- bench:end -->`.
    #[arg(long)]
    pub update: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
pub struct GenArgs {
    /// Image size class.
    #[arg(long, value_enum, default_value = "s")]
    pub size: Size,
    /// Seed of the image and workloads.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Cache of generated images.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The static workload program copied into the image.
    #[arg(long)]
    pub reader: Option<PathBuf>,
    /// Directory holding `soci` and `soci-snapshotter-grpc`.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Span size given to `soci convert`.
    #[arg(long, default_value_t = 4 << 20)]
    pub span_size: u64,
    /// Convert with `--optimizations xattr` (layers without xattrs are
    /// annotated, and the daemon then answers no xattr requests for them).
    #[arg(long)]
    pub optimize_xattr: bool,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub image: GenArgs,
    /// S image, one profile, 3 runs.
    #[arg(long)]
    pub quick: bool,
    /// Runs per measurement (medians are reported).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Network profiles, BANDWIDTH-LATENCY (e.g. 100mbit-20ms,1gbit-2ms).
    #[arg(long, value_delimiter = ',')]
    pub profiles: Vec<String>,
    /// Workloads (default: all).
    #[arg(long, value_delimiter = ',')]
    pub workloads: Vec<String>,
    /// Results directory (JSON per run, summary, chart).
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Also write the Markdown report into this file between `<!-- bench:begin -->` and `<!-- bench:end -->`.
    #[arg(long)]
    pub update: Option<PathBuf>,
    /// Do not drop the page cache before cold runs.
    #[arg(long)]
    pub no_drop_caches: bool,
    /// Command line recorded in the report.
    #[arg(long, default_value = "scripts/bench.sh")]
    pub command: String,
    /// Also measure Nydus's zran mode (`nydus-image --type targz-ref` + `nydusd`) over the same layers.
    #[arg(long)]
    pub nydus: bool,
    /// Directory holding `nydus-image` and `nydusd` (default: /opt/nydus/bin, then $PATH).
    #[arg(long)]
    pub nydus_bin: Option<PathBuf>,
    /// Run the daemon with `[fuse] attr_timeout`, `entry_timeout` and
    /// `negative_timeout` set to this many seconds (default: the config
    /// defaults, 1 s each).
    #[arg(long)]
    pub fuse_timeout: Option<u64>,
}

pub fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Gen(g) => {
            let (info, a, _) = prepare(&g)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "size": info.size, "seed": info.seed, "files": info.files.len(),
                    "compressed_bytes": info.compressed_bytes(),
                    "uncompressed_bytes": info.uncompressed_bytes(),
                    "layers": info.layers, "analysis": a,
                }))?
            );
            Ok(())
        }
        Cmd::Run(r) => run(r),
        Cmd::Report(r) => rereport(r),
    }
}

fn exe_dir() -> Result<PathBuf> {
    Ok(std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .to_path_buf())
}

fn bin_dir(g: &GenArgs) -> Result<PathBuf> {
    match &g.bin_dir {
        Some(d) => Ok(d.clone()),
        None => exe_dir(),
    }
}

/// Where the image converted as `g` asks is kept, below the image's data dir.
fn soci_dir(g: &GenArgs, data_dir: &Path) -> PathBuf {
    data_dir.join(format!(
        "soci-span{}{}",
        g.span_size,
        if g.optimize_xattr { "-xattr" } else { "" }
    ))
}

/// Generate (cached) and convert the image; analyse it.
pub fn prepare(g: &GenArgs) -> Result<(ImageInfo, Analysis, PathBuf)> {
    let data = match &g.data {
        Some(d) => d.clone(),
        None => exe_dir()?.join("../bench-data"),
    };
    let dir = data.join(format!(
        "{}-{}-v{}",
        g.size.name(),
        g.seed,
        image::GENERATOR_VERSION
    ));
    let info_path = dir.join("info.json");
    let info: ImageInfo = if let Ok(b) = std::fs::read(&info_path) {
        serde_json::from_slice(&b)?
    } else {
        let reader = match &g.reader {
            Some(r) => r.clone(),
            None => exe_dir()?.join("../x86_64-unknown-linux-gnu/release/soci-bench-reader"),
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        eprintln!(
            "== generating the {} image (seed {}) in {}",
            g.size.name(),
            g.seed,
            dir.display()
        );
        let info = if g.size == Size::DebianPython {
            let rootfs = debian::rootfs(&data)?;
            image::generate_debian(&dir.join("image"), &rootfs, &reader, &dir)?
        } else {
            image::generate(
                &dir.join("image"),
                g.size,
                g.seed,
                &soci_e2e::tool("busybox"),
                &reader,
            )?
        };
        std::fs::write(&info_path, serde_json::to_vec(&info)?)?;
        info
    };
    let soci_dir = soci_dir(g, &dir);
    if !soci_dir.join("index.json").exists() {
        let _ = std::fs::remove_dir_all(&soci_dir);
        eprintln!("== soci convert --standalone");
        let mut convert = Command::new(bin_dir(g)?.join("soci"));
        convert
            .args([
                "convert",
                "--standalone",
                "--format",
                "oci-dir",
                "--span-size",
            ])
            .arg(g.span_size.to_string());
        if g.optimize_xattr {
            convert.args(["--optimizations", "xattr"]);
        }
        scenario::run_cmd(
            convert.arg(dir.join("image")).arg(&soci_dir),
            Duration::from_secs(3600),
        )?;
    }
    let a = analysis::analyze(&soci_dir, &info)?;
    Ok((info, a, dir))
}

fn run(mut r: RunArgs) -> Result<()> {
    if r.quick {
        r.image.size = Size::S;
        if r.profiles.is_empty() {
            r.profiles = vec!["100mbit-20ms".into()];
        }
    }
    if r.profiles.is_empty() {
        r.profiles = vec!["100mbit-20ms".into(), "1gbit-2ms".into()];
    }
    let runs = r.runs.unwrap_or(if r.quick { 3 } else { 5 });
    let profiles: Vec<Profile> = r
        .profiles
        .iter()
        .map(|p| Profile::parse(p))
        .collect::<Result<_>>()?;
    for t in [
        "containerd",
        "ctr",
        "runc",
        "docker-registry",
        "skopeo",
        "ip",
        "tc",
        "busybox",
    ] {
        soci_e2e::tool(t);
    }
    let nydus_tools = if r.nydus {
        Some(nydus::Tools::locate(r.nydus_bin.as_deref())?)
    } else {
        None
    };
    // The commit measured (taken now: the tree may move on during a long run).
    let commit = git_commit();
    let (info, a, data_dir) = prepare(&r.image)?;
    let nydus_arts = match &nydus_tools {
        Some(t) => {
            eprintln!("== nydus-image create --type targz-ref, merge");
            Some(nydus::build(
                t,
                &data_dir.join("image"),
                &info,
                &nydus::artifacts_dir(&data_dir),
            )?)
        }
        None => None,
    };
    let names: Vec<&str> = image::WORKLOADS
        .into_iter()
        .filter(|w| info.workload(w).is_some())
        .collect();
    let workloads: Vec<String> = if r.workloads.is_empty() {
        names.iter().map(|s| s.to_string()).collect()
    } else {
        r.workloads.clone()
    };
    for w in &workloads {
        if !names.contains(&w.as_str()) {
            bail!(
                "unknown workload {w:?} for the {} image: choose from {}",
                info.size.name(),
                names.join(", ")
            );
        }
    }
    std::fs::create_dir_all(&r.out)?;
    let work = r.out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let work = work.canonicalize()?;

    eprintln!("== network namespace, registry, pushes");
    let ns = net::Netns::create()?;
    let reg_dir = work.join("registry");
    std::fs::create_dir_all(&reg_dir)?;
    let reg_addr = format!("{}:5000", ns.ns_ip);
    std::fs::write(
        reg_dir.join("registry.yml"),
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {reg_addr}\n",
            reg_dir.join("data").display()
        ),
    )?;
    let mut reg_cmd = ns.command(&soci_e2e::tool("docker-registry"));
    reg_cmd.arg("serve").arg(reg_dir.join("registry.yml"));
    let _registry = soci_e2e::Proc::spawn(
        "docker-registry",
        &mut reg_cmd,
        reg_dir.join("registry.log"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&reg_addr).is_err() {
        if std::time::Instant::now() > deadline {
            bail!("docker-registry did not listen on {reg_addr} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ns.shape(0)?;
    for (src, tag) in [
        (
            format!("oci:{}:latest", data_dir.join("image").display()),
            "plain",
        ),
        (
            format!("oci:{}", soci_dir(&r.image, &data_dir).display()),
            "soci",
        ),
    ]
    .into_iter()
    .chain(nydus_arts.iter().map(|n| {
        (
            format!("oci:{}:{}", n.layout.display(), nydus::TAG),
            nydus::TAG,
        )
    })) {
        scenario::run_cmd(
            Command::new(soci_e2e::tool("skopeo")).args([
                "copy",
                "--quiet",
                "--all",
                "--dest-tls-verify=false",
                &src,
                &format!("docker://{reg_addr}/bench:{tag}"),
            ]),
            Duration::from_secs(3600),
        )?;
    }
    let proxy = proxy::LatencyProxy::start(&reg_addr)?;
    let bins = bin_dir(&r.image)?;
    let env = scenario::Env {
        proxy: &proxy,
        work: work.clone(),
        soci_bin: bins.join("soci"),
        daemon_bin: bins.join("soci-snapshotter-grpc"),
        plain_ref: format!("{}/bench:plain", proxy.addr),
        soci_ref: format!("{}/bench:soci", proxy.addr),
        drop_caches: !r.no_drop_caches,
        namespace: format!("soci-bench-{}", std::process::id()),
        fuse_timeout: r.fuse_timeout,
    };
    let mut records = Vec::new();
    for p in &profiles {
        ns.shape(p.mbit)?;
        proxy.set_latency_ms(p.latency_ms);
        for run in 0..runs {
            eprintln!(
                "== {} run {}/{runs}: full pull (overlayfs)",
                p.name,
                run + 1
            );
            let mut recs = scenario::full(&env, &p.name, run, &workloads)?;
            for w in &workloads {
                eprintln!("== {} run {}/{runs}: lazy (soci) {w}", p.name, run + 1);
                recs.push(scenario::lazy(&env, &p.name, run, w)?);
                if let (Some(t), Some(n)) = (&nydus_tools, &nydus_arts) {
                    eprintln!("== {} run {}/{runs}: Nydus zran {w}", p.name, run + 1);
                    recs.push(nydus::run(&env, t, n, &p.name, run, w)?);
                }
            }
            write_json(&r.out.join(format!("run-{}-{run}.json", p.name)), &recs)?;
            records.extend(recs);
        }
    }
    drop(ns);
    let note = format!(
        "{runs} runs per cell on {} (commit {}), page cache dropped before cold runs: {}. Chart: `{}`.",
        machine(),
        commit,
        !r.no_drop_caches,
        "docs/bench-time-to-ready.png"
    );
    let rendered = Rendered {
        command: r.command.clone(),
        note,
        profiles,
        runs,
        commit,
    };
    let md = render(
        &r.out,
        &records,
        &info,
        &a,
        &rendered,
        nydus_arts.as_ref(),
        r.update.as_deref(),
    )?;
    println!("{md}");
    eprintln!("results in {}", r.out.display());
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// What a report says about the run besides its records.
#[derive(serde::Serialize, serde::Deserialize)]
struct Rendered {
    command: String,
    note: String,
    profiles: Vec<Profile>,
    runs: usize,
    commit: String,
}

/// Summarize `records` and write `summary.json`, `summary.md` and
/// `time-to-ready.png` into `out` (and the section of `update`, if given).
fn render(
    out: &Path,
    records: &[scenario::Record],
    info: &ImageInfo,
    a: &Analysis,
    r: &Rendered,
    nydus_arts: Option<&nydus::Artifacts>,
    update: Option<&Path>,
) -> Result<String> {
    let rows = report::summarize(records, info, a, &r.profiles);
    write_json(
        &out.join("summary.json"),
        &serde_json::json!({
            "image": {"size": info.size, "seed": info.seed, "files": info.files.len(),
                      "compressed_bytes": info.compressed_bytes(), "uncompressed_bytes": info.uncompressed_bytes()},
            "analysis": a, "profiles": r.profiles, "runs": r.runs, "rows": rows,
            "commit": r.commit, "command": r.command, "note": r.note,
        }),
    )?;
    let md = report::markdown(&rows, info, a, &r.profiles, &r.command, &r.note, nydus_arts);
    std::fs::write(out.join("summary.md"), &md)?;
    report::chart(&rows, &r.profiles, &out.join("time-to-ready.png"))?;
    if let Some(path) = update {
        report::update_section(path, &md)?;
    }
    Ok(md)
}

/// Render the report of an earlier run again from its `run-*.json` files
/// (after a change to the report, without measuring again).
fn rereport(r: ReportArgs) -> Result<()> {
    let (info, a, data_dir) = prepare(&r.image)?;
    // summary.json holds every field of `Rendered` beside the rows.
    let summary = r.out.join("summary.json");
    let bytes = std::fs::read(&summary).with_context(|| format!("read {}", summary.display()))?;
    let rendered: Rendered = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} lacks the command, note, profiles, runs or commit of the run \
             (written before `report` existed?): run the benchmark again",
            summary.display()
        )
    })?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&r.out)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("run-") && n.ends_with(".json"))
    });
    files.sort();
    let mut records: Vec<scenario::Record> = Vec::new();
    for f in &files {
        records.extend(serde_json::from_slice::<Vec<scenario::Record>>(
            &std::fs::read(f).with_context(|| format!("read {}", f.display()))?,
        )?);
    }
    if records.is_empty() {
        bail!("{} holds no run-*.json records", r.out.display());
    }
    let nydus_arts = if records.iter().any(|r| r.scenario == "nydus") {
        Some(nydus::load(&nydus::artifacts_dir(&data_dir))?)
    } else {
        None
    };
    let md = render(
        &r.out,
        &records,
        &info,
        &a,
        &rendered,
        nydus_arts.as_ref(),
        r.update.as_deref(),
    )?;
    println!("{md}");
    Ok(())
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(v)?)
        .with_context(|| format!("write {}", path.display()))
}

fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cpus} cores (load average at the end: {})",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
