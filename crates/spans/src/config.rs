//! Knobs of the span manager (the `[blob]` section of upstream's config.toml).

use std::time::Duration;

/// How a [`SpanManager`](crate::SpanManager) fetches and checks spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanManagerConfig {
    /// Retries of a failed blob read (`[blob] max_retries`, default 8). The
    /// first retry waits `min_wait`, each next one twice as long, at most `max_wait`.
    pub max_retries: u32,
    /// First backoff (`[blob] min_wait_msec`, default 30 ms).
    pub min_wait: Duration,
    /// Longest backoff (`[blob] max_wait_msec`, default 300 s).
    pub max_wait: Duration,
    /// Re-fetches of a span whose bytes do not match its digest
    /// (`[blob] max_span_verification_retries`, default 0: fail at once).
    pub max_span_verification_retries: u32,
    /// Largest span (compressed or uncompressed) the manager will hold in
    /// memory; a zTOC with a larger span is rejected. Default 256 MiB.
    pub max_span_bytes: u64,
    /// Most spans [`SpanManager::fetch_spans`](crate::SpanManager::fetch_spans)
    /// requests in one blob read. Default 8.
    pub prefetch_batch_spans: u32,
}

impl Default for SpanManagerConfig {
    fn default() -> Self {
        SpanManagerConfig {
            max_retries: 8,
            min_wait: Duration::from_millis(30),
            max_wait: Duration::from_millis(300_000),
            max_span_verification_retries: 0,
            max_span_bytes: 256 << 20,
            prefetch_batch_spans: 8,
        }
    }
}

impl SpanManagerConfig {
    /// Wait before retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.min_wait
            .checked_mul(factor)
            .unwrap_or(self.max_wait)
            .min(self.max_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_saturates() {
        let c = SpanManagerConfig::default();
        assert_eq!(c.backoff(1), Duration::from_millis(30));
        assert_eq!(c.backoff(2), Duration::from_millis(60));
        assert_eq!(c.backoff(5), Duration::from_millis(480));
        assert_eq!(c.backoff(40), Duration::from_secs(300));
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(300));
    }
}
