//! The `f200k` image: 200,000 small files in a `node_modules`-like tree.
//!
//! Packages of 5-45 files (`package.json`, `index.js`, `README.md`,
//! `LICENSE`, `lib/`, `lib/<sub>/`, `dist/`, some `bin/cli.js`), nested up to
//! three `node_modules` levels deep, file sizes 0-8 KiB (log-uniform, 3% empty).
//! Every tenth package has a `.bin/` symlink to its `bin/cli.js`; every
//! `LICENSE` after the first of a layer is a hard link to that first one. The
//! packages are split in two gzip layers of about the same file count.
//!
//! Workloads: `metadata` stats every file, link and directory and lists every
//! directory (a `find`-like walk); `clustered` reads ~1% of the files as 20
//! runs of neighbours in tar order; `scattered` reads as many files chosen at
//! random; `headers` reads the first 512 bytes of 2,000 random files;
//! `fullscan` reads every file.

use std::collections::BTreeSet;

use crate::image::{FileEntry, Kind, Op, Rng, Workload};

/// Regular files of the image's content layers.
pub const FILES: usize = 200_000;

/// A symlink or hard link of a content layer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Link {
    pub path: String,
    /// Symlink target (relative) or, for a hard link, the path of the file it names.
    pub target: String,
    pub hard: bool,
    pub layer: usize,
}

/// Files (in tar order) and links of the tree.
pub fn plan(seed: u64) -> (Vec<FileEntry>, Vec<Link>) {
    let mut r = Rng::new(seed ^ 0xF200_0000_0000_0001);
    let mut files = Vec::with_capacity(FILES);
    let mut links = Vec::new();
    let mut pkg = 0u64;
    // The package directory of the last package at each depth (nesting parent).
    let mut last: Vec<String> = Vec::new();
    let mut first_license: [Option<String>; 3] = [None, None, None];
    while files.len() < FILES {
        let layer = if files.len() < FILES / 2 { 1 } else { 2 };
        let depth = match r.below(10) {
            0..=5 => 0,
            6..=8 => 1,
            _ => 2,
        }
        .min(last.len());
        let parent = if depth == 0 {
            "app".to_string()
        } else {
            last[depth - 1].clone()
        };
        let dir = format!("{parent}/node_modules/pkg{pkg:05}");
        last.truncate(depth);
        last.push(dir.clone());
        let n = 5 + r.below(41) as usize;
        let subs = 1 + r.below(4);
        let has_bin = pkg % 10 == 3;
        let mut names: Vec<String> =
            vec!["package.json".into(), "index.js".into(), "README.md".into()];
        if has_bin {
            names.push("bin/cli.js".into());
        }
        while names.len() < n {
            let i = names.len();
            let name = match r.below(3) {
                0 => format!("dist/m{i:02}.js"),
                1 => format!("lib/f{i:02}.js"),
                _ => format!("lib/s{}/f{i:02}.js", r.below(subs)),
            };
            names.push(name);
        }
        names.sort();
        for name in names {
            if files.len() >= FILES {
                break;
            }
            let size = if r.below(100) < 3 {
                0
            } else {
                r.log_uniform(16, 8192)
            };
            files.push(FileEntry {
                path: format!("{dir}/{name}"),
                size,
                kind: Kind::Text,
                layer,
                seed: r.next_u64(),
            });
        }
        let license = format!("{dir}/LICENSE");
        match &first_license[layer] {
            None => {
                files.push(FileEntry {
                    path: license.clone(),
                    size: 1071,
                    kind: Kind::Text,
                    layer,
                    seed: 0x11CE,
                });
                first_license[layer] = Some(license);
            }
            Some(t) => links.push(Link {
                path: license,
                target: t.clone(),
                hard: true,
                layer,
            }),
        }
        if has_bin {
            links.push(Link {
                path: format!("{parent}/node_modules/.bin/pkg{pkg:05}"),
                target: format!("../pkg{pkg:05}/bin/cli.js"),
                hard: false,
                layer,
            });
        }
        pkg += 1;
    }
    (files, links)
}

/// Every directory holding a file or link, parents first.
pub fn dirs(files: &[FileEntry], links: &[Link]) -> Vec<String> {
    let mut set = BTreeSet::new();
    for p in files
        .iter()
        .map(|f| f.path.as_str())
        .chain(links.iter().map(|l| l.path.as_str()))
    {
        let mut acc = p;
        while let Some((d, _)) = acc.rsplit_once('/') {
            if !set.insert(d.to_string()) {
                break;
            }
            acc = d;
        }
    }
    set.into_iter().collect()
}

/// The workloads of the tree (seeded, chosen before anything is measured).
pub fn workloads(files: &[FileEntry], links: &[Link], seed: u64) -> Vec<Workload> {
    let mut r = Rng::new(seed ^ 0x5CA7_7E2E_D000_F200);
    let read = |f: &FileEntry| Op::Read {
        path: f.path.clone(),
        offset: 0,
        len: f.size,
    };
    let mut meta: Vec<Op> = Vec::new();
    for d in dirs(files, links) {
        meta.push(Op::Stat { path: d.clone() });
        meta.push(Op::Readdir { path: d });
    }
    meta.extend(files.iter().map(|f| Op::Stat {
        path: f.path.clone(),
    }));
    meta.extend(links.iter().map(|l| Op::Stat {
        path: l.path.clone(),
    }));

    let want = files.len() / 100;
    let mut clustered = Vec::new();
    let mut taken = vec![false; files.len()];
    let mut attempts = 0;
    while clustered.len() < want && attempts < 1000 {
        attempts += 1;
        let start = r.below(files.len() as u64) as usize;
        for (i, t) in taken.iter_mut().enumerate().skip(start).take(want / 20) {
            if !*t && clustered.len() < want {
                *t = true;
                clustered.push(i);
            }
        }
    }
    clustered.sort_unstable();
    let mut all: Vec<usize> = (0..files.len()).collect();
    r.shuffle(&mut all);
    let scattered: Vec<usize> = all[..want].to_vec();
    let headers: Vec<Op> = all[want..want + 2000]
        .iter()
        .map(|&i| Op::Read {
            path: files[i].path.clone(),
            offset: 0,
            len: files[i].size.min(512),
        })
        .collect();
    vec![
        Workload {
            name: "clustered".into(),
            description: "1% of the files, 20 runs of neighbours in tar order".into(),
            ops: clustered.iter().map(|&i| read(&files[i])).collect(),
        },
        Workload {
            name: "scattered".into(),
            description: "1% of the files, chosen at random".into(),
            ops: scattered.iter().map(|&i| read(&files[i])).collect(),
        },
        Workload {
            name: "metadata".into(),
            description: "stat + readdir of every directory, stat of every file and link".into(),
            ops: meta,
        },
        Workload {
            name: "headers".into(),
            description: "first 512 B of 2,000 random files".into(),
            ops: headers,
        },
        Workload {
            name: "fullscan".into(),
            description: "every byte of every file, tar order".into(),
            ops: files.iter().map(read).collect(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_has_200k_files_links_and_depth() {
        let (files, links) = plan(1);
        assert_eq!(files.len(), FILES);
        let paths: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths.len(), FILES, "paths are unique");
        assert!(files.iter().all(|f| f.size <= 8192));
        assert!(files.iter().any(|f| f.size == 0));
        assert!(files.iter().any(|f| f.layer == 1) && files.iter().any(|f| f.layer == 2));
        let deepest = files
            .iter()
            .map(|f| f.path.matches("node_modules").count())
            .max();
        assert_eq!(deepest, Some(3));
        assert!(links.iter().any(|l| l.hard) && links.iter().any(|l| !l.hard));
        for l in links.iter().filter(|l| l.hard) {
            assert!(paths.contains(l.target.as_str()), "{} names a file", l.path);
        }
        let d = dirs(&files, &links);
        assert!(d.len() > 10_000, "{} directories", d.len());
        // Same seed, same plan.
        let (again, _) = plan(1);
        assert!(
            files
                .iter()
                .zip(&again)
                .all(|(a, b)| a.path == b.path && a.seed == b.seed)
        );
        let w = workloads(&files, &links, 1);
        let c = w
            .iter()
            .find(|w| w.name == "clustered")
            .map(|w| w.ops.len());
        assert_eq!(c, Some(FILES / 100));
    }
}
