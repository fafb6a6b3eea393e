//! `soci ztoc list | info | get-file`.
//!
//! zTOCs are read from the local soci store (`<root>/content`, recorded in
//! `<root>/artifacts.db` by `soci convert`), or with `get-file --image` from a
//! converted image in a registry or an OCI layout.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;
use soci_artifacts::{ArtifactEntry, ArtifactType, ArtifactsDb, SociStore};
use soci_containerd::ContentSource;
use soci_content::registry::RegistryRangeReader;
use soci_content::{BlobRangeReader, BlobSource, ImageLocation};
use soci_format::Digest;
use soci_format::json::{self, Descriptor, Index, SociIndex};
use soci_format::zinfo::Zinfo;
use soci_format::ztoc::{FileMetadata, Ztoc};
use soci_indexer::standalone::LayoutSource;

use super::convert::{
    Endpoint, Opened, Registry, endpoint, open_location, registry, soci_index_entries,
};
use super::convert_containerd::{connect, containerd_name, open_image};
use crate::cli::{ContentStoreKind, GlobalArgs, ZtocGetFileArgs, ZtocInfoArgs, ZtocListArgs};

/// zTOCs are small; refuse absurd ones.
const MAX_ZTOC: u64 = 256 << 20;
/// Hard and symbolic links followed at most this many times.
const MAX_LINKS: usize = 40;

fn parse_digest(s: &str) -> anyhow::Result<Digest> {
    s.parse()
        .map_err(|_| anyhow::anyhow!("{s:?} is not a digest; expected sha256:<64 hex digits>"))
}

fn open_db(root: &Path) -> anyhow::Result<ArtifactsDb> {
    let p = soci_artifacts::artifacts_db_path(root);
    if !p.exists() {
        bail!(
            "no artifacts database at {}: nothing has been indexed under --root {} yet (run `soci convert` first, or pass the right --root)",
            p.display(),
            root.display()
        );
    }
    Ok(ArtifactsDb::open(&p)?)
}

fn open_store(root: &Path) -> anyhow::Result<SociStore> {
    Ok(SociStore::open(&soci_artifacts::content_store_path(root))?)
}

/// The bytes of a recorded zTOC: from the soci store (where `convert` and
/// `create --content-store soci` put them), else, with `--content-store
/// containerd`, from containerd's content store (where `create` puts them).
fn read_ztoc(global: &GlobalArgs, store: &SociStore, d: &Digest) -> anyhow::Result<Vec<u8>> {
    if store.has_blob(d) || global.content_store != ContentStoreKind::Containerd {
        return Ok(store.read_blob(d, MAX_ZTOC, "ztoc")?);
    }
    let (rt, ctrd) = connect(global).with_context(|| {
        format!(
            "zTOC {d} is not in {} and containerd's content store cannot be read",
            global.root.display()
        )
    })?;
    let source = ContentSource::new(ctrd, rt.handle().clone());
    Ok(source.read_blob(d, MAX_ZTOC, "ztoc")?)
}

/// Lines aligned like Go's `tabwriter.NewWriter(w, 8, 8, 4, ' ', 0)` with
/// every cell tab-terminated: each column is as wide as its widest cell plus
/// 4, and at least 8.
pub(crate) fn tabwrite(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count() + 4)
                .max()
                .unwrap_or(0)
                .max(8)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (c, cell) in r.iter().enumerate() {
            out.push_str(cell);
            out.extend(std::iter::repeat_n(' ', widths[c] - cell.chars().count()));
        }
        out.push('\n');
    }
    out
}

/// Re-indent compact JSON the way Go's `json.MarshalIndent(v, "", "  ")` does.
pub(crate) fn indent_json(compact: &[u8]) -> String {
    let s = String::from_utf8_lossy(compact);
    let mut out = String::with_capacity(s.len() * 2);
    let mut depth = 0usize;
    let (mut in_str, mut esc) = (false, false);
    let chars: Vec<char> = s.chars().collect();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                if chars.get(i + 1) == Some(&close) {
                    out.push(c);
                    out.push(close);
                    i += 2;
                    continue;
                }
                out.push(c);
                depth += 1;
                newline(&mut out, depth);
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// The zTOC descriptors of the SOCI indexes of the image `root` in `source`.
fn ztocs_of(
    source: &dyn BlobSource,
    root: &Descriptor,
    what: &str,
) -> anyhow::Result<Vec<Descriptor>> {
    if !json::is_index_type(&root.media_type) {
        bail!(
            "{what} is a single image manifest without SOCI indexes; convert it first with `soci convert`"
        );
    }
    let d = parse_digest(&root.digest)?;
    let bytes = source.read_blob(&d, 8 << 20, "image index")?;
    let index = Index::from_json(&bytes).with_context(|| format!("image index of {what}"))?;
    let entries = soci_index_entries(&index);
    if entries.is_empty() {
        bail!("{what} has no SOCI index; convert it first with `soci convert`");
    }
    let mut out = Vec::new();
    for e in entries {
        let ed = parse_digest(&e.digest)?;
        let b = source.read_blob(&ed, 8 << 20, "SOCI index")?;
        let si = SociIndex::from_manifest_bytes(&b)
            .with_context(|| format!("SOCI index {} of {what}", e.digest))?;
        out.extend(
            si.blobs
                .into_iter()
                .filter(|b| b.media_type == json::SOCI_LAYER_MEDIA_TYPE),
        );
    }
    Ok(out)
}

/// The zTOC descriptors of the SOCI indexes of an image (a location).
fn image_ztocs(
    loc: &ImageLocation,
    reg: Option<&Registry>,
) -> anyhow::Result<(Opened, Option<String>, Vec<Descriptor>)> {
    let (opened, tag) = open_location(loc, reg)?;
    let ztocs = {
        let source = LayoutSource::with_ref_name(opened.layout(), tag.as_deref())
            .with_context(|| format!("cannot find the image in {loc}"))?;
        let root = source.root().clone();
        ztocs_of(&source, &root, &loc.to_string())?
    };
    Ok((opened, tag, ztocs))
}

pub(crate) fn list(global: &GlobalArgs, args: ZtocListArgs) -> anyhow::Result<()> {
    let mut entries: Vec<ArtifactEntry> = Vec::new();
    let db_path = soci_artifacts::artifacts_db_path(&global.root);
    match &args.image_ref {
        // Nothing indexed yet: an empty list, as upstream prints.
        None if !db_path.exists() => {}
        None => {
            let db = open_db(&global.root)?;
            for e in db.list()? {
                if e.artifact_type == ArtifactType::Ztoc
                    && args.ztoc_digest.as_deref().is_none_or(|d| d == e.digest)
                {
                    entries.push(e);
                }
            }
        }
        Some(image) => {
            let db = open_db(&global.root)?;
            let ztocs = match endpoint(image, "--image-ref")? {
                Endpoint::Location(loc) => {
                    let reg = match &loc {
                        ImageLocation::Registry(_) => Some(registry(&args.registry)?),
                        _ => None,
                    };
                    image_ztocs(&loc, reg.as_ref())?.2
                }
                Endpoint::Containerd(name) => {
                    let name = containerd_name(&name)?;
                    let (rt, ctrd, root) = open_image(global, &name)?;
                    let source = ContentSource::new(ctrd, rt.handle().clone());
                    ztocs_of(&source, &root, &name)?
                }
            };
            let loc = image;
            let mut seen = std::collections::BTreeSet::new();
            for z in ztocs {
                if !seen.insert(z.digest.clone()) {
                    continue;
                }
                let e = db.get(&z.digest)?.with_context(|| {
                    format!(
                        "zTOC {} of {loc} is not in the local store under {} (convert the image with this --root)",
                        z.digest,
                        global.root.display()
                    )
                })?;
                if args.ztoc_digest.as_deref().is_none_or(|d| d == e.digest) {
                    entries.push(e);
                }
            }
            if args.ztoc_digest.is_some() && entries.is_empty() {
                bail!(
                    "the specified ztoc doesn't exist or is not associated with the specified image"
                );
            }
        }
    }
    let mut out = String::new();
    if args.quiet {
        for e in &entries {
            out.push_str(&e.digest);
            out.push('\n');
        }
    } else {
        let mut rows = vec![vec![
            "DIGEST".to_string(),
            "SIZE".to_string(),
            "LAYER DIGEST".to_string(),
        ]];
        for e in &entries {
            rows.push(vec![
                e.digest.clone(),
                e.size.to_string(),
                e.original_digest.clone(),
            ]);
        }
        out = tabwrite(&rows);
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

#[derive(Serialize)]
struct Info {
    version: String,
    build_tool: String,
    size: u64,
    span_size: u64,
    num_spans: u64,
    num_files: usize,
    num_multi_span_files: usize,
    files: Option<Vec<FileInfo>>,
}

#[derive(Serialize)]
struct FileInfo {
    filename: String,
    offset: u64,
    size: u64,
    #[serde(rename = "type")]
    kind: String,
    start_span: u32,
    end_span: u32,
}

fn zinfo_of(z: &Ztoc) -> anyhow::Result<Zinfo> {
    Ok(Zinfo::from_checkpoints(
        z.compression_info.algorithm,
        &z.compression_info.checkpoints,
    )?)
}

pub(crate) fn info(global: &GlobalArgs, args: ZtocInfoArgs) -> anyhow::Result<()> {
    let d = parse_digest(&args.digest)?;
    let db = open_db(&global.root)?;
    let entry = db.get(&args.digest)?.with_context(|| {
        format!(
            "no artifact {} in {}; list zTOCs with `soci ztoc list`",
            args.digest,
            global.root.display()
        )
    })?;
    if entry.artifact_type == ArtifactType::Index {
        bail!(
            "the provided digest belongs to a SOCI index. Use `soci index info` to get the detailed information about it"
        );
    }
    let store = open_store(&global.root)?;
    let bytes = read_ztoc(global, &store, &d)?;
    let z = Ztoc::from_bytes(&bytes).with_context(|| format!("zTOC {d}"))?;
    let zinfo = zinfo_of(&z)?;
    let mut files = Vec::new();
    let mut multi = 0;
    for f in &z.toc {
        let start = zinfo.span_of(f.uncompressed_offset);
        let end = zinfo.span_of(f.uncompressed_offset + f.uncompressed_size);
        if start != end {
            multi += 1;
        }
        files.push(FileInfo {
            filename: f.name.clone(),
            offset: f.uncompressed_offset,
            size: f.uncompressed_size,
            kind: f.entry_type.clone(),
            start_span: start,
            end_span: end,
        });
    }
    let info = Info {
        version: z.version.clone(),
        build_tool: z.build_tool_identifier.clone(),
        size: entry.size,
        span_size: zinfo.span_size(),
        num_spans: u64::from(z.compression_info.max_span_id) + 1,
        num_files: z.toc.len(),
        num_multi_span_files: multi,
        files: (!files.is_empty()).then_some(files),
    };
    println!("{}", indent_json(&json::to_go_json(&info)));
    Ok(())
}

/// The entry for `name`, following link names like upstream does.
fn lookup<'a>(z: &'a Ztoc, name: &str) -> anyhow::Result<&'a FileMetadata> {
    let mut want = name.to_string();
    for _ in 0..=MAX_LINKS {
        let e = z
            .toc
            .iter()
            .find(|f| f.name == want)
            .with_context(|| format!("file {want} does not exist in metadata"))?;
        if e.linkname.is_empty() {
            return Ok(e);
        }
        want = e.linkname.clone();
    }
    bail!("{name}: more than {MAX_LINKS} links to follow (a link loop?)")
}

/// Reads byte ranges of a layer blob.
enum LayerReader<'a> {
    Ranges(Box<dyn BlobRangeReader + 'a>),
    Stream(&'a dyn BlobSource),
}

impl LayerReader<'_> {
    fn read(&self, d: &Digest, start: u64, end: u64) -> anyhow::Result<Vec<u8>> {
        match self {
            LayerReader::Ranges(r) => {
                let ranges = [std::ops::Range { start, end }];
                let mut v = r.read_ranges(d, &ranges)?;
                Ok(v.pop().unwrap_or_default())
            }
            LayerReader::Stream(s) => {
                let mut r = s.open_blob(d)?;
                std::io::copy(&mut (&mut r).take(start), &mut std::io::sink())?;
                let mut buf = Vec::with_capacity((end - start) as usize);
                r.take(end - start).read_to_end(&mut buf)?;
                Ok(buf)
            }
        }
    }
}

/// Extract `file` from a layer through its zTOC; every span read is checked
/// against the span digests of the zTOC.
fn extract(
    z: &Ztoc,
    layer: &Digest,
    reader: &LayerReader<'_>,
    file: &str,
) -> anyhow::Result<Vec<u8>> {
    let e = lookup(z, file)?;
    if e.uncompressed_size == 0 {
        return Ok(Vec::new());
    }
    let zinfo = zinfo_of(z)?;
    let first = zinfo.span_of(e.uncompressed_offset);
    let last = zinfo.span_of(e.uncompressed_offset + e.uncompressed_size - 1);
    let start = zinfo.start_compressed_offset(first);
    let end = zinfo.end_compressed_offset(last, z.compressed_archive_size);
    if end < start || end > z.compressed_archive_size {
        bail!("zTOC spans {first}..={last} point outside the layer");
    }
    let buf = reader.read(layer, start, end)?;
    if buf.len() as u64 != end - start {
        bail!(
            "layer {layer}: got {} bytes of range {start}..{end}; the layer is shorter than its zTOC says",
            buf.len()
        );
    }
    let digests = &z.compression_info.span_digests;
    if !digests.is_empty() {
        for s in first..=last {
            let a = (zinfo.start_compressed_offset(s) - start) as usize;
            let b = (zinfo.end_compressed_offset(s, z.compressed_archive_size) - start) as usize;
            let want = digests
                .get(s as usize)
                .with_context(|| format!("zTOC has no digest for span {s}"))?;
            let got = Digest::of(&buf[a..b]).to_string();
            if &got != want {
                bail!(
                    "layer {layer}: span {s} has digest {got}, the zTOC says {want}; the layer does not match its zTOC"
                );
            }
        }
    }
    let mut out = vec![0u8; e.uncompressed_size as usize];
    let n = zinfo.extract(&buf, first, e.uncompressed_offset, &mut out)?;
    if n as u64 != e.uncompressed_size {
        bail!(
            "layer {layer}: {file} ends early ({n} of {} bytes)",
            e.uncompressed_size
        );
    }
    Ok(out)
}

fn write_output(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .with_context(|| format!("cannot chmod {}", path.display()))?;
    Ok(())
}

pub(crate) fn get_file(global: &GlobalArgs, args: ZtocGetFileArgs) -> anyhow::Result<()> {
    let zd = parse_digest(&args.ztoc_digest)?;
    let data = match &args.image {
        Some(image) => {
            let loc = match endpoint(image, "--image")? {
                Endpoint::Location(l) => l,
                Endpoint::Containerd(name) => bail!(
                    "--image {name:?}: name the image with a transport: docker://{name}, oci:DIR[:TAG] or oci-archive:FILE[:TAG]"
                ),
            };
            let reg = match &loc {
                ImageLocation::Registry(_) => Some(registry(&args.registry)?),
                _ => None,
            };
            let (opened, _, ztocs) = image_ztocs(&loc, reg.as_ref())?;
            let desc = ztocs
                .iter()
                .find(|z| z.digest == args.ztoc_digest)
                .with_context(|| {
                    format!(
                        "{loc} has no zTOC {}; list them with `soci ztoc list --image-ref {image}`",
                        args.ztoc_digest
                    )
                })?;
            let layer = parse_digest(
                desc.annotations
                    .get(json::ANNOTATION_IMAGE_LAYER_DIGEST)
                    .with_context(|| format!("zTOC {} names no layer", desc.digest))?,
            )?;
            let src = opened.layout();
            let zbytes = src.read_blob(&zd, MAX_ZTOC, "ztoc")?;
            let z = Ztoc::from_bytes(&zbytes).with_context(|| format!("zTOC {zd}"))?;
            let reader = match (&loc, reg.as_ref()) {
                (ImageLocation::Registry(r), Some(reg)) => {
                    LayerReader::Ranges(Box::new(RegistryRangeReader::new(
                        reg.client.clone(),
                        r.repository().clone(),
                        reg.rt.clone(),
                    )))
                }
                _ => LayerReader::Stream(src),
            };
            extract(&z, &layer, &reader, &args.file)?
        }
        None => {
            let db = open_db(&global.root)?;
            let entry = db.get(&args.ztoc_digest)?.with_context(|| {
                format!(
                    "no zTOC {} in {}; list them with `soci ztoc list`, or read a converted image with --image docker://REF",
                    args.ztoc_digest,
                    global.root.display()
                )
            })?;
            if entry.artifact_type != ArtifactType::Ztoc {
                bail!("{} is not a zTOC", args.ztoc_digest);
            }
            let layer = parse_digest(&entry.original_digest)?;
            let store = open_store(&global.root)?;
            let zbytes = read_ztoc(global, &store, &zd)?;
            let z = Ztoc::from_bytes(&zbytes).with_context(|| format!("zTOC {zd}"))?;
            if store.has_blob(&layer) {
                extract(&z, &layer, &LayerReader::Stream(&store), &args.file)?
            } else {
                // Upstream reads the layer from containerd's content store.
                let not_local = || {
                    format!(
                        "layer {layer} of zTOC {zd} is neither in {} nor in containerd's content store \
                         (namespace {} at {}); read it from the converted image with --image docker://REGISTRY/REPO:TAG",
                        global.root.display(),
                        global.namespace,
                        global.address
                    )
                };
                let (rt, ctrd) = connect(global).with_context(not_local)?;
                let source = ContentSource::new(ctrd, rt.handle().clone());
                if !source.has_blob(&layer) {
                    bail!(not_local());
                }
                extract(&z, &layer, &LayerReader::Stream(&source), &args.file)?
            }
        }
    };
    match &args.output {
        Some(p) => write_output(p, &data)?,
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(&data)?;
            o.write_all(b"\n")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_like_go() {
        assert_eq!(
            indent_json(br#"{"a":1,"b":[],"c":[{"d":"x,y:{"}],"e":null}"#),
            "{\n  \"a\": 1,\n  \"b\": [],\n  \"c\": [\n    {\n      \"d\": \"x,y:{\"\n    }\n  ],\n  \"e\": null\n}"
        );
    }

    #[test]
    fn tabwriter_columns() {
        let rows = vec![
            vec!["DIGEST".into(), "SIZE".into()],
            vec!["sha256:abcdef".into(), "12".into()],
        ];
        assert_eq!(
            tabwrite(&rows),
            "DIGEST           SIZE    \nsha256:abcdef    12      \n"
        );
    }
}
