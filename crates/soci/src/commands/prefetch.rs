//! `soci prefetch list|info`.

use anyhow::{Context, bail};
use serde::Serialize;
use soci_artifacts::ArtifactType;
use soci_format::json::{self, PrefetchArtifact};

use super::local::{ago, open_local, parse_digest, rfc3339, tabwrite};
use crate::cli::{GlobalArgs, JsonFlag, PrefetchInfoArgs};

/// Prefetch artifacts are small JSON documents.
const MAX_PREFETCH_SIZE: u64 = 16 << 20;

/// A row of `prefetch list --json` (upstream's Go field names).
#[derive(Serialize)]
struct PrefetchInfo {
    #[serde(rename = "Digest")]
    digest: String,
    #[serde(rename = "LayerDigest")]
    layer_digest: String,
    #[serde(rename = "TotalSpans")]
    total_spans: i64,
    #[serde(rename = "CreatedAt")]
    created_at: String,
}

fn total_spans(a: &PrefetchArtifact) -> i64 {
    a.prefetch_spans
        .iter()
        .map(|s| i64::from(s.end_span) - i64::from(s.start_span) + 1)
        .sum()
}

/// `soci prefetch list`.
pub(crate) fn list(global: &GlobalArgs, args: JsonFlag) -> anyhow::Result<()> {
    let local = open_local(global)?;
    let mut rows = Vec::new();
    let mut created = Vec::new();
    for e in local.db.list()? {
        if e.artifact_type != ArtifactType::Prefetch {
            continue;
        }
        let spans = e
            .digest
            .parse()
            .ok()
            .and_then(|d| {
                local
                    .store
                    .read_blob(&d, MAX_PREFETCH_SIZE, "prefetch artifact")
                    .ok()
            })
            .and_then(|b| PrefetchArtifact::unmarshal(&b).ok())
            .map_or(-1, |a| total_spans(&a));
        created.push(e.created_at);
        rows.push(PrefetchInfo {
            digest: e.digest,
            layer_digest: e.original_digest,
            total_spans: spans,
            created_at: rfc3339(e.created_at),
        });
    }
    if args.json {
        let body = if rows.is_empty() {
            "null".to_string()
        } else {
            serde_json::to_string_pretty(&rows)?
        };
        println!("{body}");
        return Ok(());
    }
    let mut table = vec![
        ["DIGEST", "LAYER DIGEST", "SPANS", "CREATED"]
            .map(String::from)
            .to_vec(),
    ];
    for (r, c) in rows.iter().zip(created) {
        table.push(vec![
            r.digest.clone(),
            r.layer_digest.clone(),
            if r.total_spans < 0 {
                "N/A".into()
            } else {
                r.total_spans.to_string()
            },
            ago(c),
        ]);
    }
    print!("{}", tabwrite(&table));
    Ok(())
}

/// `soci prefetch info`.
pub(crate) fn info(global: &GlobalArgs, args: PrefetchInfoArgs) -> anyhow::Result<()> {
    let digest = parse_digest(&args.digest)?;
    let local = open_local(global)?;
    let entry = local.db.get(&digest.to_string())?;
    match &entry {
        Some(e) if e.artifact_type != ArtifactType::Prefetch => bail!(
            "the provided digest is not a prefetch artifact (type: {})",
            e.artifact_type.as_str()
        ),
        None if !local.store.has_blob(&digest) => bail!(
            "no prefetch artifact {digest} in the artifacts database or the content store; \
             `soci prefetch list` shows them"
        ),
        _ => {}
    }
    let bytes = local
        .store
        .read_blob(&digest, MAX_PREFETCH_SIZE, "prefetch artifact")
        .with_context(|| format!("cannot read prefetch artifact {digest}"))?;
    let artifact = PrefetchArtifact::unmarshal(&bytes)
        .with_context(|| format!("{digest} is not a valid prefetch artifact"))?;
    println!("Digest:        {digest}");
    println!("Version:       {}", artifact.version);
    println!("Span Ranges:   {}", artifact.prefetch_spans.len());
    match &entry {
        Some(e) => {
            println!("Layer Digest:  {}", e.original_digest);
            println!("Size:          {} bytes", e.size);
            println!(
                "Created:       {}",
                rfc3339(e.created_at)
                    .replace('T', " ")
                    .trim_end_matches('Z')
            );
        }
        None => {
            println!();
            println!("Warning: Prefetch artifact metadata not found in artifacts database.");
            println!(
                "This may happen if the artifact was created in the content store but not updated in the metadata DB."
            );
            println!(
                "Try running 'soci rebuild-db' to sync the metadata database with the content store."
            );
        }
    }
    println!();
    println!("Prefetch Spans:");
    for (i, s) in artifact.prefetch_spans.iter().enumerate() {
        let n = i64::from(s.end_span) - i64::from(s.start_span) + 1;
        println!(
            "  [{i}] StartSpan: {}, EndSpan: {} (covers {n} spans)",
            s.start_span, s.end_span
        );
        if s.priority != 0 {
            println!("      Priority: {}", s.priority);
        }
    }
    println!();
    println!("Total spans to prefetch: {}", total_spans(&artifact));
    if args.json {
        println!();
        println!("Raw JSON:");
        let raw = artifact.marshal()?;
        let pretty =
            json::go_json_indent(&raw, "  ").map_err(|e| anyhow::anyhow!("cannot indent: {e}"))?;
        println!("{}", String::from_utf8_lossy(&pretty));
    }
    Ok(())
}
