//! What each workload touches, from the zTOCs of the converted image: the
//! distinct spans its reads fall in and their compressed bytes, and from
//! that the physical bound of a lazy run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use soci_format::json::ANNOTATION_IMAGE_LAYER_DIGEST;
use soci_format::zinfo::Zinfo;
use soci_format::ztoc::Ztoc;

use crate::image::{ImageInfo, Op, Workload, blob_path};

/// Span geometry and file offsets of one indexed layer.
pub struct LayerIndex {
    pub zinfo: Zinfo,
    /// Path (without leading `/`) -> offset of its data in the tar.
    pub offsets: HashMap<String, u64>,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
}

impl LayerIndex {
    pub fn from_ztoc(z: &Ztoc) -> Result<LayerIndex> {
        let zinfo = Zinfo::from_checkpoints(
            z.compression_info.algorithm,
            &z.compression_info.checkpoints,
        )?;
        zinfo.validate(z.compressed_archive_size, z.uncompressed_archive_size)?;
        let offsets = z
            .toc
            .iter()
            .map(|f| {
                (
                    f.name
                        .trim_start_matches("./")
                        .trim_start_matches('/')
                        .to_string(),
                    f.uncompressed_offset,
                )
            })
            .collect();
        Ok(LayerIndex {
            zinfo,
            offsets,
            compressed_size: z.compressed_archive_size,
            uncompressed_size: z.uncompressed_archive_size,
        })
    }
}

/// What one workload touches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadSpans {
    pub name: String,
    pub ops: usize,
    /// Bytes the workload reads.
    pub touched_bytes: u64,
    /// Distinct spans its reads fall in (all indexed layers).
    pub spans: u64,
    /// Compressed bytes of those spans.
    pub span_compressed_bytes: u64,
    /// Uncompressed bytes of those spans (what must be inflated).
    pub span_uncompressed_bytes: u64,
}

/// The converted image as the lazy path sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Analysis {
    /// zTOC blobs + SOCI index manifest.
    pub index_bytes: u64,
    pub ztocs: usize,
    /// Span size of the zTOCs.
    pub span_size: u64,
    /// Compressed bytes of the layers without a zTOC (pulled whole).
    pub unindexed_bytes: u64,
    pub unindexed_layers: usize,
    /// Manifest, config and image index of the converted image.
    pub metadata_bytes: u64,
    pub workloads: Vec<WorkloadSpans>,
}

/// Spans touched by `w` over the indexed layers (`layer index -> LayerIndex`).
pub fn workload_spans(
    w: &Workload,
    info: &ImageInfo,
    indexed: &BTreeMap<usize, LayerIndex>,
) -> Result<WorkloadSpans> {
    let layer_of: HashMap<&str, usize> = info
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.layer))
        .collect();
    let mut touched: BTreeSet<(usize, u32)> = BTreeSet::new();
    let reads = w.ops.iter().flat_map(|op| match op {
        Op::Read { path, offset, len } => vec![(path, *offset, *len)],
        Op::Exec { reads, .. } => reads.iter().map(|(p, l)| (p, 0, *l)).collect(),
        _ => Vec::new(),
    });
    for (path, offset, len) in reads {
        let (offset, len) = (&offset, &len);
        if *len == 0 {
            continue;
        }
        let Some(&layer) = layer_of.get(path.as_str()) else {
            bail!(
                "workload {} reads {path}, which the image plan does not hold",
                w.name
            );
        };
        let Some(li) = indexed.get(&layer) else {
            continue;
        };
        let base = *li
            .offsets
            .get(path)
            .ok_or_else(|| anyhow!("{path} is not in the zTOC of layer {layer}"))?;
        let (a, b) = (
            li.zinfo.span_of(base + offset),
            li.zinfo.span_of(base + offset + len - 1),
        );
        for s in a..=b {
            touched.insert((layer, s));
        }
    }
    let (mut c, mut u) = (0, 0);
    for &(layer, s) in &touched {
        let li = &indexed[&layer];
        c += li.zinfo.end_compressed_offset(s, li.compressed_size)
            - li.zinfo.start_compressed_offset(s);
        u += li.zinfo.end_uncompressed_offset(s, li.uncompressed_size)
            - li.zinfo.start_uncompressed_offset(s);
    }
    Ok(WorkloadSpans {
        name: w.name.clone(),
        ops: w.ops.len(),
        touched_bytes: w.touched_bytes(),
        spans: touched.len() as u64,
        span_compressed_bytes: c,
        span_uncompressed_bytes: u,
    })
}

fn read_json(layout: &Path, digest: &str) -> Result<(serde_json::Value, u64)> {
    let p = blob_path(layout, digest);
    let b = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
    Ok((serde_json::from_slice(&b)?, b.len() as u64))
}

/// Analyse the converted OCI layout `soci_layout` of the image `info`.
pub fn analyze(soci_layout: &Path, info: &ImageInfo) -> Result<Analysis> {
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(soci_layout.join("index.json"))
            .context("read index.json of the converted image")?,
    )?;
    // Walk every manifest and index reachable from index.json.
    let mut todo: Vec<serde_json::Value> =
        index["manifests"].as_array().cloned().unwrap_or_default();
    let mut soci_index = None;
    let mut metadata_bytes = 0;
    let mut steps = 0;
    while let Some(d) = todo.pop() {
        steps += 1;
        if steps > 1000 {
            bail!("the converted image has too many manifests");
        }
        let Some(digest) = d["digest"].as_str() else {
            continue;
        };
        let (v, len) = read_json(soci_layout, digest)?;
        if let Some(ms) = v["manifests"].as_array() {
            metadata_bytes += len;
            todo.extend(ms.iter().cloned());
        } else if [&v["artifactType"], &v["config"]["mediaType"]]
            .iter()
            .any(|t| t.as_str() == Some("application/vnd.amazon.soci.index.v2+json"))
        {
            soci_index = Some((v, len));
        } else if v["layers"].is_array() {
            metadata_bytes += len + v["config"]["size"].as_u64().unwrap_or(0);
        }
    }
    let (soci, soci_len) =
        soci_index.ok_or_else(|| anyhow!("no SOCI index in {}", soci_layout.display()))?;
    let mut index_bytes = soci_len;
    let mut indexed = BTreeMap::new();
    let mut span_size = 0;
    for z in soci["layers"].as_array().into_iter().flatten() {
        let digest = z["digest"]
            .as_str()
            .ok_or_else(|| anyhow!("zTOC descriptor without digest"))?;
        let layer_digest = z["annotations"][ANNOTATION_IMAGE_LAYER_DIGEST]
            .as_str()
            .ok_or_else(|| anyhow!("zTOC {digest} names no layer"))?;
        let bytes = std::fs::read(blob_path(soci_layout, digest))?;
        index_bytes += bytes.len() as u64;
        let ztoc = Ztoc::from_bytes(&bytes)?;
        let li = LayerIndex::from_ztoc(&ztoc)?;
        span_size = li.zinfo.span_size();
        let layer = info
            .layers
            .iter()
            .position(|l| l.digest == layer_digest)
            .ok_or_else(|| {
                anyhow!("zTOC {digest} is for layer {layer_digest}, which the image does not hold")
            })?;
        indexed.insert(layer, li);
    }
    let unindexed: Vec<_> = (0..info.layers.len())
        .filter(|i| !indexed.contains_key(i))
        .collect();
    let workloads = info
        .workloads
        .iter()
        .map(|w| workload_spans(w, info, &indexed))
        .collect::<Result<_>>()?;
    Ok(Analysis {
        index_bytes,
        ztocs: indexed.len(),
        span_size,
        unindexed_bytes: unindexed.iter().map(|&i| info.layers[i].size).sum(),
        unindexed_layers: unindexed.len(),
        metadata_bytes,
        workloads,
    })
}

/// A network profile: bandwidth (0 = unshaped) and added latency per request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    pub name: String,
    pub mbit: u64,
    pub latency_ms: u64,
}

impl Profile {
    /// Parse `100mbit-20ms`, `1gbit-2ms` or `unshaped-0ms`.
    pub fn parse(s: &str) -> Result<Profile> {
        let (bw, lat) = s.split_once('-').ok_or_else(|| {
            anyhow!("profile {s:?}: expected BANDWIDTH-LATENCY, e.g. 100mbit-20ms")
        })?;
        let mbit = if bw == "unshaped" {
            0
        } else if let Some(n) = bw.strip_suffix("gbit") {
            n.parse::<u64>()? * 1000
        } else if let Some(n) = bw.strip_suffix("mbit") {
            n.parse::<u64>()?
        } else {
            bail!("profile {s:?}: bandwidth must end in mbit or gbit, or be `unshaped`");
        };
        let latency_ms = lat
            .strip_suffix("ms")
            .ok_or_else(|| anyhow!("profile {s:?}: latency must end in ms"))?
            .parse()?;
        Ok(Profile {
            name: s.to_string(),
            mbit,
            latency_ms,
        })
    }

    /// Bytes per second (`None` when unshaped).
    pub fn bytes_per_sec(&self) -> Option<f64> {
        (self.mbit > 0).then(|| self.mbit as f64 * 1e6 / 8.0)
    }
}

/// The physical bound of a lazy run: every byte that must cross the wire at
/// the link's bandwidth, plus one added latency per request that cannot be
/// avoided (image index, manifest, config, SOCI index, each zTOC, each
/// unindexed layer, each distinct span). `None` on an unshaped link.
pub fn lazy_bound(a: &Analysis, w: &WorkloadSpans, p: &Profile) -> Option<f64> {
    let bw = p.bytes_per_sec()?;
    let bytes = a.metadata_bytes + a.index_bytes + a.unindexed_bytes + w.span_compressed_bytes;
    let requests = 4 + a.ztocs as u64 + a.unindexed_layers as u64 + w.spans;
    Some(bytes as f64 / bw + requests as f64 * p.latency_ms as f64 / 1000.0)
}

/// The physical bound of a full pull: every layer over the wire, plus one
/// latency per request (manifest, config, each layer).
pub fn full_bound(info: &ImageInfo, p: &Profile) -> Option<f64> {
    let bw = p.bytes_per_sec()?;
    let bytes = info.metadata_bytes + info.compressed_bytes();
    let requests = 2 + info.layers.len() as u64;
    Some(bytes as f64 / bw + requests as f64 * p.latency_ms as f64 / 1000.0)
}
