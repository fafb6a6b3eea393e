//! The `debian-python` image: a Debian bookworm root filesystem with python3,
//! made by `debootstrap --variant=minbase --include=python3`, in two gzip
//! layers split as a Dockerfile would (`base`: everything but python;
//! `python3`: the python interpreter, its standard library and `libpython`),
//! plus a `bench` layer with `soci-bench-reader` and the workload lists.
//!
//! The root filesystem is made once and kept under the bench data directory
//! (`debian-rootfs/`), so a rerun downloads nothing.
//!
//! Workloads:
//! - `python-import`: runs `python3 -c "import json, sqlite3, email"`. Its
//!   touched bytes are every byte of every regular file that command opens, as
//!   recorded with `strace -f -e trace=open,openat` in a chroot of the root
//!   filesystem when the image is generated (before anything is measured);
//! - `metadata`: `stat` of every regular file;
//! - `fullscan`: every byte of every regular file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::image::{FileEntry, Kind, Op, Workload};

/// The command of the `python-import` workload.
pub const PYTHON_IMPORT: [&str; 3] = ["/usr/bin/python3", "-c", "import json, sqlite3, email"];

/// Make (once) the Debian root filesystem under `data` and return its path.
pub fn rootfs(data: &Path) -> Result<PathBuf> {
    let dir = data.join("debian-rootfs");
    if dir.join("usr/bin/python3").exists() {
        return Ok(dir);
    }
    let tmp = data.join("debian-rootfs.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(data)?;
    eprintln!(
        "== debootstrap bookworm with python3 into {}",
        tmp.display()
    );
    crate::scenario::run_cmd(
        Command::new(soci_e2e::tool("debootstrap"))
            .args(["--variant=minbase", "--include=python3", "bookworm"])
            .arg(&tmp)
            .arg("http://deb.debian.org/debian"),
        std::time::Duration::from_secs(1800),
    )
    .context("debootstrap (needs the network to deb.debian.org; scripts/deps.sh installs it)")?;
    std::fs::rename(&tmp, &dir)?;
    Ok(dir)
}

/// Whether a rootfs path belongs to the `python3` layer.
pub fn in_python_layer(path: &str) -> bool {
    path.starts_with("usr/lib/python3")
        || path.starts_with("usr/bin/python3")
        || path.starts_with("usr/lib/x86_64-linux-gnu/libpython3")
        || path.starts_with("usr/share/doc/python3")
        || path.starts_with("usr/share/doc/libpython3")
        || path.starts_with("usr/share/python3")
}

/// What a walk of the root filesystem found, in sorted path order.
pub enum HostEntry {
    Dir { path: String, mode: u32 },
    File { path: String, size: u64, mode: u32 },
    Symlink { path: String, target: String },
}

/// Walk `root` (directories before their content, names sorted), skipping the
/// content of `dev`, `proc`, `sys` and `run`, and anything but directories,
/// regular files and symlinks.
pub fn walk(root: &Path) -> Result<Vec<HostEntry>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![String::new()];
    while let Some(rel) = todo.pop() {
        let dir = root.join(&rel);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .with_context(|| format!("list {}", dir.display()))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        names.sort();
        let mut subdirs = Vec::new();
        for n in names {
            let path = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            let m = std::fs::symlink_metadata(root.join(&path))?;
            let mode = m.permissions().mode() & 0o7777;
            if m.is_dir() {
                out.push(HostEntry::Dir {
                    path: path.clone(),
                    mode,
                });
                if !matches!(path.as_str(), "dev" | "proc" | "sys" | "run") {
                    subdirs.push(path);
                }
            } else if m.is_file() {
                out.push(HostEntry::File {
                    path,
                    size: m.len(),
                    mode,
                });
            } else if m.is_symlink() {
                let target = std::fs::read_link(root.join(&path))?;
                out.push(HostEntry::Symlink {
                    path,
                    target: target.to_string_lossy().into_owned(),
                });
            }
        }
        // Depth first in sorted order: push in reverse so the first name pops first.
        todo.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}

/// Resolve `path` (absolute in the root filesystem) to the path of what it
/// names, following symlinks inside `root` (at most 40).
pub fn resolve(root: &Path, path: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut todo: Vec<String> = path.split('/').rev().map(String::from).collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                parts.pop();
                continue;
            }
            _ => {}
        }
        parts.push(c);
        let here = root.join(parts.join("/"));
        let m = std::fs::symlink_metadata(&here).ok()?;
        if m.is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let t = std::fs::read_link(&here).ok()?;
            let t = t.to_string_lossy().into_owned();
            parts.pop();
            if t.starts_with('/') {
                parts.clear();
            }
            todo.extend(t.split('/').rev().map(String::from));
        }
    }
    Some(parts.join("/"))
}

/// Run the `python-import` command under strace in a chroot of `root` and
/// return the regular files it opened (rootfs paths, first-open order).
pub fn trace_python_import(root: &Path, work: &Path) -> Result<Vec<String>> {
    let log = work.join("python-import.strace");
    let status = Command::new(soci_e2e::tool("strace"))
        .args(["-f", "-qq", "-e", "trace=execve,open,openat", "-o"])
        .arg(&log)
        .arg(soci_e2e::tool("chroot"))
        .arg(root)
        .args(PYTHON_IMPORT)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .context("run strace (scripts/deps.sh installs it)")?;
    if !status.success() {
        bail!(
            "{} failed in a chroot of {}: {status}",
            PYTHON_IMPORT.join(" "),
            root.display()
        );
    }
    let text = std::fs::read_to_string(&log)?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    // The opens of `chroot` itself (host files, before python starts) do not count.
    let mut started = false;
    for line in text.lines() {
        if line.contains(&format!("execve(\"{}\"", PYTHON_IMPORT[0])) && line.ends_with("= 0") {
            started = true;
            continue;
        }
        if !started || line.contains("execve(") {
            continue;
        }
        // `PID openat(AT_FDCWD, "/path", FLAGS) = FD` (failed opens end in `= -1 ENOENT ...`).
        let Some((call, ret)) = line.rsplit_once(") = ") else {
            continue;
        };
        if ret.starts_with('-') {
            continue;
        }
        let Some(start) = call.find('"') else {
            continue;
        };
        let Some(len) = call[start + 1..].find('"') else {
            continue;
        };
        let p = &call[start + 1..start + 1 + len];
        if !p.starts_with('/') {
            continue;
        }
        let Some(r) = resolve(root, p) else {
            continue;
        };
        if std::fs::symlink_metadata(root.join(&r)).is_ok_and(|m| m.is_file())
            && seen.insert(r.clone())
        {
            out.push(r);
        }
    }
    if out.is_empty() {
        bail!(
            "strace recorded no file opened by {}",
            PYTHON_IMPORT.join(" ")
        );
    }
    Ok(out)
}

/// The workloads of the image, from its files and the traced opens.
pub fn workloads(files: &[FileEntry], opened: &[String]) -> Vec<Workload> {
    let read = |f: &FileEntry| Op::Read {
        path: f.path.clone(),
        offset: 0,
        len: f.size,
    };
    let by_path: std::collections::HashMap<&str, &FileEntry> =
        files.iter().map(|f| (f.path.as_str(), f)).collect();
    let reads: Vec<(String, u64)> = opened
        .iter()
        .filter_map(|p| by_path.get(p.as_str()).map(|f| (f.path.clone(), f.size)))
        .collect();
    vec![
        Workload {
            name: "python-import".into(),
            description: format!(
                "`{}`; touched: every file it opens",
                PYTHON_IMPORT.join(" ")
            ),
            ops: vec![Op::Exec {
                argv: PYTHON_IMPORT.iter().map(|s| s.to_string()).collect(),
                reads,
            }],
        },
        Workload {
            name: "metadata".into(),
            description: "stat of every regular file".into(),
            ops: files
                .iter()
                .map(|f| Op::Stat {
                    path: f.path.clone(),
                })
                .collect(),
        },
        Workload {
            name: "fullscan".into(),
            description: "every byte of every regular file, tar order".into(),
            ops: files.iter().map(read).collect(),
        },
    ]
}

/// File plan of the rootfs walk: regular files with the index of their layer
/// in the manifest (0 = base, 1 = python3).
pub fn files(entries: &[HostEntry]) -> Vec<FileEntry> {
    entries
        .iter()
        .filter_map(|e| match e {
            HostEntry::File { path, size, .. } => Some(FileEntry {
                path: path.clone(),
                size: *size,
                kind: Kind::Binary,
                layer: usize::from(in_python_layer(path)),
                seed: 0,
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_carry_the_manifest_index_of_the_layer_they_are_written_to() {
        // generate_debian writes the base layer first (index 0), then python3 (index 1).
        let f = |path: &str| HostEntry::File {
            path: path.into(),
            size: 1,
            mode: 0o644,
        };
        let planned = files(&[
            f("etc/ld.so.cache"),
            f("usr/lib/python3.11/json/__init__.py"),
            f("usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0"),
            f("usr/lib/x86_64-linux-gnu/libc.so.6"),
        ]);
        let layers: Vec<usize> = planned.iter().map(|e| e.layer).collect();
        assert_eq!(layers, [0, 1, 1, 0]);
    }

    #[test]
    fn resolve_follows_relative_and_absolute_links_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/lib/x")).unwrap();
        std::fs::write(r.join("usr/lib/x/f"), b"1").unwrap();
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib/x/f", r.join("usr/lib/abs")).unwrap();
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert_eq!(resolve(r, "/lib/x/f").as_deref(), Some("usr/lib/x/f"));
        assert_eq!(resolve(r, "/lib/abs").as_deref(), Some("usr/lib/x/f"));
        assert_eq!(resolve(r, "/lib/x/../x/f").as_deref(), Some("usr/lib/x/f"));
        assert_eq!(resolve(r, "/loop"), None);
        assert_eq!(resolve(r, "/nothing"), None);
    }
}
