//! How each image's layers were provided, so no fallback is silent: one log
//! line per image (at its top layer) counts lazy, local and deferred layers
//! and repeats the first reason a layer was not lazy.

use std::collections::HashMap;
use std::sync::Mutex;

use tracing::info;

use crate::labels;

/// How one layer was provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Mounted on FUSE, loaded on demand.
    Lazy,
    /// Downloaded and unpacked by the daemon.
    Local,
    /// Left to containerd.
    Deferred,
}

#[derive(Debug, Default)]
struct Counts {
    lazy: usize,
    local: usize,
    deferred: usize,
    reason: Option<String>,
}

/// Per-image counters, keyed by image manifest digest.
#[derive(Debug, Default)]
pub(crate) struct ModeLog {
    images: Mutex<HashMap<String, Counts>>,
}

impl ModeLog {
    /// Record a layer; at the image's top layer (the `cri.image-layers` label
    /// lists only this layer), or when that label is absent, log the totals.
    pub(crate) fn record(&self, request: &soci_snapshotter::Labels, mode: Mode, reason: &str) {
        let get = |k: &str| request.get(k).map(String::as_str).unwrap_or_default();
        let manifest = get(labels::MANIFEST_DIGEST);
        let layer = get(labels::LAYER_DIGEST);
        let rest: Vec<&str> = get(labels::IMAGE_LAYERS)
            .split(',')
            .filter(|s| !s.is_empty())
            .collect();
        let top = rest.is_empty() || rest == [layer];
        let mut images = self.images.lock().unwrap_or_else(|e| e.into_inner());
        let c = images.entry(manifest.to_string()).or_default();
        match mode {
            Mode::Lazy => c.lazy += 1,
            Mode::Local => c.local += 1,
            Mode::Deferred => c.deferred += 1,
        }
        if mode != Mode::Lazy && c.reason.is_none() && !reason.is_empty() {
            c.reason = Some(reason.to_string());
        }
        if !top {
            return;
        }
        let summary = match (c.lazy, c.local, c.deferred) {
            (_, 0, 0) => "lazy",
            (0, _, 0) => "local",
            (0, 0, _) => "deferred",
            _ => "mixed",
        };
        info!(
            image = get(labels::IMAGE_REF),
            manifest,
            mode = summary,
            lazy = c.lazy,
            local = c.local,
            deferred = c.deferred,
            reason = c.reason.as_deref().unwrap_or(""),
            "image-snapshot-modes: image prepared ({summary})"
        );
        images.remove(manifest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_until_the_top_layer() {
        let log = ModeLog::default();
        let labels = |layer: &str, rest: &str| {
            let mut l = soci_snapshotter::Labels::new();
            l.insert(labels::MANIFEST_DIGEST.into(), "sha256:m".into());
            l.insert(labels::LAYER_DIGEST.into(), layer.into());
            l.insert(labels::IMAGE_LAYERS.into(), rest.into());
            l
        };
        log.record(&labels("a", "a,b,c"), Mode::Lazy, "");
        log.record(&labels("b", "b,c"), Mode::Local, "no zTOC");
        assert_eq!(log.images.lock().unwrap()["sha256:m"].local, 1);
        log.record(&labels("c", "c"), Mode::Deferred, "later");
        assert!(
            log.images.lock().unwrap().is_empty(),
            "reset after the top layer"
        );
    }
}
