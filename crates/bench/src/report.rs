//! Medians over runs, the Markdown table and the PNG chart.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::analysis::{Analysis, Profile, full_bound, lazy_bound};
use crate::breakdown::Breakdown;
use crate::image::ImageInfo;
use crate::scenario::Record;

/// Median, min and max of a sample.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(v: &[f64]) -> Stat {
        if v.is_empty() {
            return Stat::default();
        }
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Stat {
            median,
            min: s[0],
            max: s[n - 1],
        }
    }
}

/// One row of the summary: a (profile, scenario, workload) over all runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub profile: String,
    pub scenario: String,
    pub workload: String,
    pub runs: usize,
    pub t_ready: Stat,
    pub t_pull: Stat,
    pub t_run: Stat,
    pub t_run_warm: Stat,
    pub bytes_fetched: Stat,
    pub requests: Stat,
    pub touched_bytes: u64,
    pub amplification: Option<f64>,
    pub bound_s: Option<f64>,
    pub ready_over_bound: Option<f64>,
    pub p50_us: Stat,
    pub p95_us: Stat,
    pub p99_us: Stat,
    pub daemon_cpu_s: Option<Stat>,
    pub daemon_peak_rss_mb: Option<Stat>,
    /// The daemon's RSS after the workload's cold and warm runs.
    #[serde(default)]
    pub daemon_rss_after_mb: Option<Stat>,
    pub cache_mb_before_rm: Option<Stat>,
    pub cache_mb_after_rm: Option<Stat>,
    /// Every run read the same bytes as the overlayfs run of the same workload.
    pub verified: bool,
    /// Medians of the daemon's breakdown (lazy runs).
    #[serde(default)]
    pub breakdown: Option<Breakdown>,
    /// Medians of the FUSE requests of the warm run, by operation (lazy runs).
    #[serde(default)]
    pub warm_fuse_ops: std::collections::BTreeMap<String, u64>,
}

/// Per operation, the median over `rs` of the warm run's FUSE requests (an
/// operation a run did not see counts 0 there).
fn median_ops(rs: &[&Record]) -> std::collections::BTreeMap<String, u64> {
    let ops: std::collections::BTreeSet<&String> =
        rs.iter().flat_map(|r| r.warm_fuse_ops.keys()).collect();
    ops.into_iter()
        .map(|op| {
            let v: Vec<f64> = rs
                .iter()
                .map(|r| *r.warm_fuse_ops.get(op).unwrap_or(&0) as f64)
                .collect();
            (op.clone(), Stat::of(&v).median as u64)
        })
        .filter(|&(_, n)| n > 0)
        .collect()
}

fn opt_stat(v: Vec<Option<f64>>) -> Option<Stat> {
    let v: Option<Vec<f64>> = v.into_iter().collect();
    v.filter(|v| !v.is_empty()).map(|v| Stat::of(&v))
}

pub fn summarize(
    records: &[Record],
    info: &ImageInfo,
    a: &Analysis,
    profiles: &[Profile],
) -> Vec<Row> {
    let mut groups: BTreeMap<(String, String, String), Vec<&Record>> = BTreeMap::new();
    for r in records {
        groups
            .entry((r.profile.clone(), r.scenario.clone(), r.workload.clone()))
            .or_default()
            .push(r);
    }
    // Reference digests: what overlayfs read.
    let mut reference: BTreeMap<String, String> = BTreeMap::new();
    for r in records.iter().filter(|r| r.scenario == "overlayfs") {
        reference
            .entry(r.workload.clone())
            .or_insert(r.reader.digest.clone());
    }
    let mut rows = Vec::new();
    for ((profile, scenario, workload), rs) in groups {
        let p = profiles.iter().find(|p| p.name == profile);
        let ws = a.workloads.iter().find(|w| w.name == workload);
        let f = |g: &dyn Fn(&Record) -> f64| Stat::of(&rs.iter().map(|r| g(r)).collect::<Vec<_>>());
        let t_ready = f(&|r| r.t_ready);
        let bytes = f(&|r| r.net.bytes_down as f64);
        let touched = ws.map(|w| w.touched_bytes).unwrap_or(0);
        let bound = match (p, scenario.as_str(), ws) {
            (Some(p), "soci", Some(w)) => lazy_bound(a, w, p),
            (Some(p), "overlayfs", _) => full_bound(info, p),
            _ => None,
        };
        let verified = rs.iter().all(|r| {
            reference.get(&workload) == Some(&r.reader.digest)
                && r.reader.digest == r.reader_warm.digest
        });
        rows.push(Row {
            runs: rs.len(),
            t_pull: f(&|r| r.t_pull),
            t_run: f(&|r| r.t_run),
            t_run_warm: f(&|r| r.t_run_warm),
            requests: f(&|r| r.net.requests as f64),
            amplification: (touched > 0).then(|| bytes.median / touched as f64),
            ready_over_bound: bound.map(|b| t_ready.median / b),
            bound_s: bound,
            p50_us: f(&|r| r.reader.p50_us),
            p95_us: f(&|r| r.reader.p95_us),
            p99_us: f(&|r| r.reader.p99_us),
            daemon_cpu_s: opt_stat(rs.iter().map(|r| r.daemon_cpu_s).collect()),
            daemon_peak_rss_mb: opt_stat(
                rs.iter()
                    .map(|r| r.daemon_peak_rss_kb.map(|k| k as f64 / 1024.0))
                    .collect(),
            ),
            daemon_rss_after_mb: opt_stat(
                rs.iter()
                    .map(|r| r.daemon_rss_after_kb.map(|k| k as f64 / 1024.0))
                    .collect(),
            ),
            cache_mb_before_rm: opt_stat(
                rs.iter()
                    .map(|r| r.cache_bytes_before_rm.map(|b| b as f64 / 1e6))
                    .collect(),
            ),
            cache_mb_after_rm: opt_stat(
                rs.iter()
                    .map(|r| r.cache_bytes_after_rm.map(|b| b as f64 / 1e6))
                    .collect(),
            ),
            breakdown: Breakdown::median(
                &rs.iter().filter_map(|r| r.breakdown).collect::<Vec<_>>(),
            ),
            warm_fuse_ops: median_ops(&rs),
            touched_bytes: touched,
            bytes_fetched: bytes,
            t_ready,
            verified,
            profile,
            scenario,
            workload,
        });
    }
    rows
}

fn mb(b: f64) -> String {
    format!("{:.1}", b / 1e6)
}

fn s3(s: &Stat) -> String {
    format!("{:.2} ({:.2}-{:.2})", s.median, s.min, s.max)
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

/// The Markdown report: image, tables and target checks.
pub fn markdown(
    rows: &[Row],
    info: &ImageInfo,
    a: &Analysis,
    profiles: &[Profile],
    command: &str,
    note: &str,
    nydus: Option<&crate::nydus::Artifacts>,
) -> String {
    let mut m = String::new();
    let files = info.files.len() + 20;
    m.push_str(&format!("Command: `{command}`\n\n{note}\n\n"));
    m.push_str(&format!(
        "Image `{}` (seed {}): {} files, {} MB uncompressed, {} MB compressed (gzip level 2) in {} layers; \
         converted with `soci convert --standalone` (span {} MiB): {} zTOCs, index {} MB \
         ({:.2}% of the uncompressed image), {} layer(s) below `--min-layer-size` pulled whole ({} MB).\n\n",
        info.size.name(),
        info.seed,
        files,
        mb(info.uncompressed_bytes() as f64),
        mb(info.compressed_bytes() as f64),
        info.layers.len(),
        a.span_size >> 20,
        a.ztocs,
        mb(a.index_bytes as f64),
        100.0 * a.index_bytes as f64 / info.uncompressed_bytes() as f64,
        a.unindexed_layers,
        mb(a.unindexed_bytes as f64),
    ));
    if let Some(n) = nydus {
        m.push_str(&format!(
            "Nydus {} zran (`nydus-image create --type targz-ref`, one merged bootstrap): bootstrap {} MB, \
             {} zran metadata blobs {} MB, index {} MB in all; read through `nydusd`'s FUSE mount in a `chroot` \
             (no containerd: its times leave out the container start), on-demand only (`fs_prefetch` off).\n\n",
            crate::nydus::NYDUS_VERSION,
            mb(n.bootstrap_bytes as f64),
            n.meta_blobs,
            mb(n.meta_bytes as f64),
            mb(n.index_bytes() as f64),
        ));
    }
    m.push_str("| workload | reads | touched (MB) | distinct spans | compressed span bytes (MB) |\n|---|---|---|---|---|\n");
    for w in &a.workloads {
        m.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            w.name,
            w.ops,
            mb(w.touched_bytes as f64),
            w.spans,
            mb(w.span_compressed_bytes as f64)
        ));
    }
    m.push('\n');
    for p in profiles {
        m.push_str(&format!(
            "### {} ({}, {} ms added per request)\n\n",
            p.name,
            if p.mbit == 0 {
                "unshaped".to_string()
            } else {
                format!("{} Mbit/s", p.mbit)
            },
            p.latency_ms
        ));
        m.push_str(
            "| workload | scenario | time to ready, s: median (min-max) | pull, s | run, s | warm run, s | fetched (MB) | requests | amplification | bound, s | ready/bound | read p50/p95/p99 (µs) | daemon CPU, s | daemon peak RSS (MB) | cache MB before/after image rm | same bytes |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in rows.iter().filter(|r| r.profile == p.name) {
            m.push_str(&format!(
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.0} | {} | {} | {} | {:.0}/{:.0}/{:.0} | {} | {} | {} | {} |\n",
                r.workload,
                r.scenario,
                s3(&r.t_ready),
                r.t_pull.median,
                r.t_run.median,
                r.t_run_warm.median,
                mb(r.bytes_fetched.median),
                r.requests.median,
                opt(r.amplification, 2),
                opt(r.bound_s, 2),
                opt(r.ready_over_bound, 2),
                r.p50_us.median,
                r.p95_us.median,
                r.p99_us.median,
                opt(r.daemon_cpu_s.map(|s| s.median), 2),
                opt(r.daemon_peak_rss_mb.map(|s| s.median), 1),
                match (r.cache_mb_before_rm, r.cache_mb_after_rm) {
                    (Some(b), Some(a)) => format!("{:.1}/{:.1}", b.median, a.median),
                    _ => "-".into(),
                },
                if r.verified { "yes" } else { "**NO**" },
            ));
        }
        m.push('\n');
        m.push_str(&where_time_goes(rows, p));
        m.push_str(&targets(rows, info, p));
    }
    m
}

/// The lazy runs as the daemon saw them: its FUSE reads (which include the
/// registry reads of span misses, their verification and inflation), its
/// registry reads alone, and its layer mounts (medians).
fn where_time_goes(rows: &[Row], p: &Profile) -> String {
    let lazy: Vec<(&Row, Breakdown)> = rows
        .iter()
        .filter(|r| r.profile == p.name)
        .filter_map(|r| Some((r, r.breakdown?)))
        .collect();
    if lazy.is_empty() {
        return String::new();
    }
    let mut m = String::from(
        "Where the lazy time goes (daemon metrics, medians; sums over concurrent operations can exceed wall time; \
         FUSE read time leaves out span fetches made when a file is first opened, for its tar header check):\n\n\
         | workload | rpull, s | run, s | FUSE reads: count, total s | registry reads: count, total s | lazy mounts: count, total s | run minus FUSE reads, s | FUSE requests in the warm run |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (r, b) in lazy {
        let warm = if r.warm_fuse_ops.is_empty() {
            "-".to_string()
        } else {
            let mut ops: Vec<(&String, &u64)> = r.warm_fuse_ops.iter().collect();
            ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            ops.iter()
                .map(|(op, n)| format!("{op} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        m.push_str(&format!(
            "| {} | {:.2} | {:.2} | {}, {:.2} | {}, {:.2} | {}, {:.2} | {:.2} | {warm} |\n",
            r.workload,
            r.t_pull.median,
            r.t_run.median,
            b.read_count,
            b.read_s,
            b.fetch_count,
            b.fetch_s,
            b.mount_count,
            b.mount_s,
            (r.t_run.median - b.read_s).max(0.0),
        ));
    }
    m.push('\n');
    m
}

fn find<'a>(rows: &'a [Row], p: &str, s: &str, w: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.profile == p && r.scenario == s && r.workload == w)
}

/// The targets of the benchmark for one profile, met or not.
fn targets(rows: &[Row], info: &ImageInfo, p: &Profile) -> String {
    let mut m = String::from("| target | measured | met |\n|---|---|---|\n");
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    let big = info.uncompressed_bytes() >= 1 << 30;
    let note = if big {
        ""
    } else {
        " (image < 1 GB: the target is defined for >= 1 GB)"
    };
    if let (Some(l), Some(f)) = (
        find(rows, &p.name, "soci", "clustered"),
        find(rows, &p.name, "overlayfs", "clustered"),
    ) {
        let r = l.t_ready.median / f.t_ready.median;
        m.push_str(&format!(
            "| clustered: lazy / full <= 0.10{note} | {r:.3} | {} |\n",
            yes(r <= 0.10)
        ));
        if let Some(b) = l.ready_over_bound {
            m.push_str(&format!(
                "| clustered: lazy / bound <= 1.25 | {b:.2} | {} |\n",
                yes(b <= 1.25)
            ));
        }
        match find(rows, &p.name, "nydus", "clustered") {
            Some(n) => {
                let r = l.t_ready.median / n.t_ready.median;
                m.push_str(&format!(
                    "| clustered: lazy / Nydus targz-ref <= 0.8 | {r:.2} ({:.2} s vs {:.2} s) | {} |\n",
                    l.t_ready.median,
                    n.t_ready.median,
                    yes(r <= 0.8)
                ));
            }
            None => m.push_str(
                "| clustered: lazy / Nydus targz-ref <= 0.8 | not measured (run with --nydus) | - |\n",
            ),
        }
    }
    for w in crate::image::WORKLOADS {
        if let (Some(l), Some(f)) = (
            find(rows, &p.name, "soci", w),
            find(rows, &p.name, "overlayfs", w),
        ) {
            let r = l.t_run_warm.median / f.t_run_warm.median;
            m.push_str(&format!(
                "| {w}: warm rerun within 10% of overlayfs | {:.2} s vs {:.2} s ({:+.0}%) | {} |\n",
                l.t_run_warm.median,
                f.t_run_warm.median,
                (r - 1.0) * 100.0,
                yes(r <= 1.10)
            ));
        }
    }
    let limit_mb = 64.0 + 200.0 * (info.files.len() + 20) as f64 / 1e6;
    let peak = rows
        .iter()
        .filter(|r| r.profile == p.name && r.scenario == "soci")
        .filter_map(|r| r.daemon_peak_rss_mb.map(|s| s.max))
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
    if let Some(peak) = peak {
        m.push_str(&format!(
            "| daemon peak RSS <= 64 MB + 200 B/file ({limit_mb:.1} MB) | {peak:.1} MB (max over runs and workloads) | {} |\n",
            yes(peak <= limit_mb)
        ));
    }
    for r in rows
        .iter()
        .filter(|r| r.profile == p.name && r.scenario == "soci")
    {
        if let (Some(peak), Some(after)) = (r.daemon_peak_rss_mb, r.daemon_rss_after_mb) {
            m.push_str(&format!(
                "| {}: daemon RSS <= {limit_mb:.1} MB (peak / after the runs, max over runs) | {:.1} MB / {:.1} MB | {} |\n",
                r.workload,
                peak.max,
                after.max,
                yes(peak.max <= limit_mb)
            ));
        }
    }
    m.push('\n');
    m
}

/// A PNG bar chart of the median time to ready (whiskers: min-max), one panel per profile.
pub fn chart(rows: &[Row], profiles: &[Profile], path: &Path) -> Result<()> {
    let font = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or_else(|| {
            anyhow!("DejaVuSans.ttf not found: install fonts-dejavu-core (scripts/deps.sh)")
        })?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| anyhow!("cannot load DejaVuSans.ttf"))?;
    let h = 420 * profiles.len().max(1) as u32;
    let root = BitMapBackend::new(path, (1100, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let panels = root.split_evenly((profiles.len().max(1), 1));
    let scenarios: Vec<&str> = ["overlayfs", "soci", "nydus"]
        .into_iter()
        .filter(|s| rows.iter().any(|r| r.scenario == *s))
        .collect();
    let colors = [
        RGBColor(200, 90, 60),
        RGBColor(60, 120, 200),
        RGBColor(90, 170, 90),
    ];
    let width = 0.8 / scenarios.len().max(1) as f64;
    for (p, area) in profiles.iter().zip(panels.iter()) {
        let ws: Vec<&str> = crate::image::WORKLOADS
            .iter()
            .copied()
            .filter(|w| rows.iter().any(|r| r.profile == p.name && r.workload == *w))
            .collect();
        let ymax = rows
            .iter()
            .filter(|r| r.profile == p.name)
            .map(|r| r.t_ready.max)
            .fold(1.0f64, f64::max)
            * 1.35;
        let mut c = ChartBuilder::on(area)
            .caption(
                format!("time to ready, {} (median, min-max)", p.name),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..ws.len() as f64, 0f64..ymax)
            .map_err(|e| anyhow!("{e}"))?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("seconds")
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (i, w) in ws.iter().enumerate() {
            c.draw_series(std::iter::once(Text::new(
                w.to_string(),
                (i as f64 + 0.3, -ymax * 0.02),
                ("sans-serif", 16).into_font(),
            )))
            .map_err(|e| anyhow!("{e}"))?;
            for (k, s) in scenarios.iter().enumerate() {
                let Some(r) = find(rows, &p.name, s, w) else {
                    continue;
                };
                let x0 = i as f64 + 0.1 + width * k as f64;
                let x1 = x0 + width * 0.9;
                c.draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x1, r.t_ready.median)],
                    colors[k].filled(),
                )))
                .map_err(|e| anyhow!("{e}"))?;
                let xm = (x0 + x1) / 2.0;
                c.draw_series(std::iter::once(PathElement::new(
                    vec![(xm, r.t_ready.min), (xm, r.t_ready.max)],
                    BLACK.stroke_width(2),
                )))
                .map_err(|e| anyhow!("{e}"))?;
                c.draw_series(std::iter::once(Text::new(
                    format!("{:.1}", r.t_ready.median),
                    (x0, r.t_ready.max + ymax * 0.04),
                    ("sans-serif", 14).into_font(),
                )))
                .map_err(|e| anyhow!("{e}"))?;
            }
        }
        for (k, s) in scenarios.iter().enumerate() {
            let col = colors[k];
            c.draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (0.0, 0.0)],
                col.filled(),
            )))
            .map_err(|e| anyhow!("{e}"))?
            .label(match *s {
                "soci" => "lazy (soci rpull + ctr run)",
                "nydus" => "Nydus zran (bootstrap + nydusd, chroot)",
                _ => "full pull (overlayfs)",
            })
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], col.filled()));
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
    }
    root.present()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// Replace the text between `<!-- bench:begin -->` and `<!-- bench:end -->` in `path`.
pub fn update_section(path: &Path, body: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let (b, e) = ("<!-- bench:begin -->", "<!-- bench:end -->");
    let (Some(i), Some(j)) = (text.find(b), text.find(e)) else {
        anyhow::bail!("{} has no `{b}` ... `{e}` markers", path.display());
    };
    let new = format!("{}{b}\n{body}{}", &text[..i], &text[j..]);
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, new)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Size;

    fn row(scenario: &str, workload: &str, t_ready: f64, rss_mb: Option<f64>) -> Row {
        let st = |v: f64| Stat {
            median: v,
            min: v,
            max: v,
        };
        Row {
            profile: "100mbit-20ms".into(),
            scenario: scenario.into(),
            workload: workload.into(),
            runs: 1,
            t_ready: st(t_ready),
            t_pull: st(0.0),
            t_run: st(t_ready),
            t_run_warm: st(1.0),
            bytes_fetched: st(0.0),
            requests: st(0.0),
            touched_bytes: 0,
            amplification: None,
            bound_s: None,
            ready_over_bound: None,
            p50_us: st(0.0),
            p95_us: st(0.0),
            p99_us: st(0.0),
            daemon_cpu_s: None,
            daemon_peak_rss_mb: rss_mb.map(st),
            daemon_rss_after_mb: rss_mb.map(st),
            cache_mb_before_rm: None,
            cache_mb_after_rm: None,
            verified: true,
            breakdown: None,
            warm_fuse_ops: Default::default(),
        }
    }

    #[test]
    fn targets_judge_our_daemon_and_compare_with_nydus() {
        let info = ImageInfo {
            generator_version: 0,
            size: Size::S,
            seed: 1,
            layers: Vec::new(),
            files: Vec::new(),
            workloads: Vec::new(),
            links: 0,
            manifest_digest: String::new(),
            metadata_bytes: 0,
        };
        let p = Profile::parse("100mbit-20ms").unwrap();
        let rows = vec![
            row("overlayfs", "clustered", 100.0, None),
            row("soci", "clustered", 6.0, Some(50.0)),
            // nydusd's memory is not ours to judge.
            row("nydus", "clustered", 10.0, Some(140.0)),
        ];
        let t = targets(&rows, &info, &p);
        assert!(
            t.contains("| daemon peak RSS <= 64 MB + 200 B/file (64.0 MB) | 50.0 MB"),
            "{t}"
        );
        assert!(
            t.contains(
                "| clustered: lazy / Nydus targz-ref <= 0.8 | 0.60 (6.00 s vs 10.00 s) | yes |"
            ),
            "{t}"
        );
        let t = targets(&rows[..2], &info, &p);
        assert!(t.contains("not measured (run with --nydus)"), "{t}");
    }
}
