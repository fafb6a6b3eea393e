//! `soci index list|info|remove`.

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use soci_artifacts::{ArtifactEntry, ArtifactType};
use soci_format::json::{self, Platform};

use super::local::{
    Local, ago, image_manifests, open_local, parse_digest, parse_image, tabwrite, with_image,
};
use crate::cli::{DigestArg, GlobalArgs, IndexListArgs, IndexRemoveArgs};

/// Index entries for `--ref IMAGE`: those built for one of its image manifests
/// (of `platforms`, when given) or from its root.
fn entries_of_image(
    global: &GlobalArgs,
    local: &Local,
    image: &str,
    platforms: &[Platform],
) -> anyhow::Result<Vec<ArtifactEntry>> {
    let img = parse_image(image)?;
    let (root, manifests) = with_image(
        global,
        local.ctrd.as_ref(),
        &img,
        soci_content::registry::RegistryOptions::default(),
        |source, root| Ok((root.clone(), image_manifests(source, root)?)),
    )?;
    let mut wanted = BTreeSet::new();
    let single = manifests.len() == 1 && manifests[0].digest == root.digest;
    for m in &manifests {
        let keep = platforms.is_empty()
            || single
            || m.platform
                .as_ref()
                .is_some_and(|mp| platforms.iter().any(|p| p.matches_strict(mp)));
        if keep {
            wanted.insert(m.digest.clone());
        }
    }
    Ok(local
        .db
        .list()?
        .into_iter()
        .filter(|e| e.artifact_type == ArtifactType::Index)
        .filter(|e| {
            wanted.contains(&e.original_digest)
                || (platforms.is_empty() && e.image_digest == root.digest)
        })
        .collect())
}

fn parse_platforms(list: &[String]) -> anyhow::Result<Vec<Platform>> {
    list.iter()
        .map(|p| Platform::parse(p).with_context(|| format!("could not parse platform {p}")))
        .collect()
}

fn version(e: &ArtifactEntry) -> &'static str {
    match e.index_artifact_type.as_str() {
        json::SOCI_INDEX_ARTIFACT_TYPE_V1 => "v1",
        json::SOCI_INDEX_ARTIFACT_TYPE_V2 => "v2",
        _ => "",
    }
}

/// `soci index list`.
pub(crate) fn list(global: &GlobalArgs, args: IndexListArgs) -> anyhow::Result<()> {
    let local = open_local(global)?;
    let platforms = parse_platforms(&args.platforms)?;
    let mut entries = match &args.reference {
        Some(r) => entries_of_image(global, &local, r, &platforms)?,
        None => local
            .db
            .list()?
            .into_iter()
            .filter(|e| e.artifact_type == ArtifactType::Index)
            .filter(|e| {
                platforms.is_empty()
                    || Platform::parse(&e.platform)
                        .is_ok_and(|ep| platforms.iter().any(|p| p.matches_strict(&ep)))
            })
            .collect(),
    };
    entries.sort_by_key(|e| std::cmp::Reverse(e.created_at));
    if args.quiet {
        for e in &entries {
            println!("{}", e.digest);
        }
        return Ok(());
    }
    let mut rows = vec![
        [
            "DIGEST",
            "SIZE",
            "IMAGE REF",
            "PLATFORM",
            "MEDIA TYPE",
            "MANIFEST VERSION",
            "CREATED",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for e in &entries {
        rows.push(vec![
            e.digest.clone(),
            e.size.to_string(),
            e.image_ref.clone(),
            e.platform.clone(),
            e.media_type.clone(),
            version(e).to_string(),
            ago(e.created_at),
        ]);
    }
    print!("{}", tabwrite(&rows));
    Ok(())
}

/// `soci index info`.
pub(crate) fn info(global: &GlobalArgs, args: DigestArg) -> anyhow::Result<()> {
    let digest = parse_digest(&args.digest)?;
    let local = open_local(global)?;
    let Some(e) = local.db.get(&digest.to_string())? else {
        bail!(
            "no artifact {digest} in the artifacts database; `soci index list` shows the indexes \
             (run `soci rebuild-db` if the store has indexes the database lost)"
        );
    };
    match e.artifact_type {
        ArtifactType::Index => {}
        ArtifactType::Ztoc => bail!(
            "the provided digest is of ztoc not SOCI index. Use \"soci ztoc info\" command to get detailed info of ztoc"
        ),
        ArtifactType::Prefetch => bail!(
            "the provided digest is of a prefetch artifact, not a SOCI index. Use \"soci prefetch info\" to show it"
        ),
    }
    let bytes = local
        .store
        .read_blob(&digest, e.size.clamp(1, 16 << 20), "SOCI index")
        .with_context(|| format!("cannot read SOCI index {digest}"))?;
    let pretty = json::go_json_indent(&bytes, "  ")
        .map_err(|err| anyhow::anyhow!("SOCI index {digest} is not valid JSON: {err}"))?;
    println!("{}", String::from_utf8_lossy(&pretty));
    Ok(())
}

/// `soci index remove`.
pub(crate) fn remove(global: &GlobalArgs, args: IndexRemoveArgs) -> anyhow::Result<()> {
    let local = open_local(global)?;
    let digests: Vec<String> = match &args.reference {
        Some(r) => entries_of_image(global, &local, r, &[])?
            .into_iter()
            .map(|e| e.digest)
            .collect(),
        None => {
            if args.digests.is_empty() {
                bail!("give the digests of the indexes to remove, or --ref IMAGE");
            }
            args.digests.clone()
        }
    };
    for d in &digests {
        let digest = parse_digest(d)?;
        match local.db.get(&digest.to_string())? {
            Some(e) if e.artifact_type == ArtifactType::Index => {}
            Some(e) => bail!(
                "{digest} is a {} artifact, not a SOCI index; only indexes can be removed",
                e.artifact_type.as_str()
            ),
            None => bail!("no SOCI index {digest} in the artifacts database"),
        }
        local.db.remove(&digest.to_string())?;
        // As upstream: containerd's content store drops the blob, the soci
        // content store keeps it (`soci rebuild-db` would list it again).
        local.store.forget(&digest)?;
    }
    Ok(())
}
