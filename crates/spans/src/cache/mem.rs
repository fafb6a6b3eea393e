//! A span cache in memory (`filesystem_cache_type = "memory"`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use soci_format::Digest;
use soci_format::zinfo::SpanId;

use super::{CachedSpan, SpanCache};
use crate::SpanError;

type LayerSpans = HashMap<SpanId, Arc<[u8]>>;

/// Spans held in memory until their layer is removed. Unbounded.
#[derive(Debug, Default)]
pub struct MemSpanCache {
    layers: Mutex<HashMap<Digest, LayerSpans>>,
    used: AtomicU64,
}

impl MemSpanCache {
    /// An empty cache.
    pub fn new() -> MemSpanCache {
        MemSpanCache::default()
    }

    /// Number of spans held.
    pub fn len(&self) -> usize {
        let layers = self.layers.lock().expect("poisoned");
        layers.values().map(HashMap::len).sum()
    }

    /// True when no span is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SpanCache for MemSpanCache {
    fn get(&self, layer: &Digest, span: SpanId, expected_len: u64) -> Option<CachedSpan> {
        let mut layers = self.layers.lock().expect("poisoned");
        let spans = layers.get_mut(layer)?;
        let bytes = spans.get(&span)?;
        if bytes.len() as u64 != expected_len {
            let len = bytes.len() as u64;
            spans.remove(&span);
            self.used.fetch_sub(len, Ordering::Relaxed);
            tracing::warn!(%layer, span, len, expected_len, "dropping cached span of the wrong length");
            return None;
        }
        Some(CachedSpan::from_bytes(bytes.clone()))
    }

    fn put(&self, layer: &Digest, span: SpanId, data: &[u8]) -> Result<(), SpanError> {
        let mut layers = self.layers.lock().expect("poisoned");
        let old = layers
            .entry(layer.clone())
            .or_default()
            .insert(span, Arc::from(data));
        self.used.fetch_add(data.len() as u64, Ordering::Relaxed);
        if let Some(old) = old {
            self.used.fetch_sub(old.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    fn remove_layer(&self, layer: &Digest) -> Result<(), SpanError> {
        let mut layers = self.layers.lock().expect("poisoned");
        if let Some(spans) = layers.remove(layer) {
            let n: u64 = spans.values().map(|b| b.len() as u64).sum();
            self.used.fetch_sub(n, Ordering::Relaxed);
        }
        Ok(())
    }

    fn bytes_used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_remove_and_accounting() {
        let c = MemSpanCache::new();
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        c.put(&a, 0, b"hello").unwrap();
        c.put(&a, 1, b"xy").unwrap();
        c.put(&b, 0, b"zzz").unwrap();
        assert_eq!(c.bytes_used(), 10);
        assert_eq!(c.get(&a, 0, 5).unwrap().to_vec().unwrap(), b"hello");
        assert!(c.get(&a, 2, 0).is_none());
        // Replacing an entry adjusts the count.
        c.put(&a, 0, b"hi").unwrap();
        assert_eq!(c.bytes_used(), 7);
        // A length mismatch is a miss and drops the entry.
        assert!(c.get(&a, 0, 5).is_none());
        assert!(c.get(&a, 0, 2).is_none());
        assert_eq!(c.bytes_used(), 5);
        c.remove_layer(&a).unwrap();
        assert_eq!(c.bytes_used(), 3);
        assert_eq!(c.len(), 1);
    }
}
