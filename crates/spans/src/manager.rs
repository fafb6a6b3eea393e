//! The span manager of one layer: maps uncompressed reads to spans, fetches
//! missing spans once (single flight), verifies them, decompresses them whole
//! and keeps them in a [`SpanCache`].

use std::collections::BTreeMap;
use std::io;
use std::ops::{Range, RangeInclusive};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use soci_content::BlobRangeReader;
use soci_format::Digest;
use soci_format::zinfo::{SpanId, Zinfo, check_gzip_header};
use soci_format::ztoc::{CompressionAlgorithm, Ztoc};

use crate::cache::{CachedSpan, SpanCache};
use crate::{FetchFailure, SpanError, SpanManagerConfig, SpanSource};

/// Where a span lies in the layer blob and in the uncompressed tar stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanGeometry {
    /// Its bytes in the layer blob (may overlap the next span by one byte).
    pub compressed: Range<u64>,
    /// Its bytes in the uncompressed stream.
    pub uncompressed: Range<u64>,
}

/// Counters of one span manager (monotonic, since construction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanStats {
    /// Compressed bytes read from the blob (including failed and re-fetched
    /// attempts and the gzip header read at open).
    pub fetched_compressed_bytes: u64,
    /// Blob reads issued (`read_ranges` calls, retries included).
    pub fetch_requests: u64,
    /// Blob reads that failed and were retried or given up.
    pub fetch_failures: u64,
    /// Spans fetched, verified and decompressed.
    pub spans_fetched: u64,
    /// Fetches of a span whose bytes did not match its digest.
    pub verification_failures: u64,
    /// Spans served from the cache.
    pub cache_hits: u64,
}

/// What the state file `.soci-snapshotter/<layer>.json` reports about a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerState {
    /// The layer digest (`digest`).
    pub digest: Digest,
    /// Compressed layer size (`size`).
    pub size: u64,
    /// Compressed bytes held locally (`fetchedSize`).
    pub fetched_size: u64,
    /// `100 * fetched_size / size` (`fetchedPercent`).
    pub fetched_percent: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Unrequested,
    Fetching,
    Fetched,
}

#[derive(Debug)]
struct Slot {
    status: Status,
    /// Bumped whenever a fetch of the span ends (either way).
    generation: u64,
    /// Why the last fetch failed, for the readers that waited on it.
    error: Option<SpanError>,
}

#[derive(Default)]
struct Counters {
    fetched_compressed_bytes: AtomicU64,
    fetch_requests: AtomicU64,
    fetch_failures: AtomicU64,
    spans_fetched: AtomicU64,
    verification_failures: AtomicU64,
    cache_hits: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

struct Span {
    geometry: SpanGeometry,
    digest: Digest,
}

/// Bytes of one span handed to a read's copy-out step.
enum SpanBytes<'a> {
    Fresh(&'a [u8]),
    Cached(&'a CachedSpan),
}

impl SpanBytes<'_> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match self {
            SpanBytes::Fresh(b) => {
                let start = usize::try_from(offset).map_err(io::Error::other)?;
                let src = start
                    .checked_add(buf.len())
                    .and_then(|end| b.get(start..end))
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                buf.copy_from_slice(src);
                Ok(())
            }
            SpanBytes::Cached(c) => c.read_exact_at(offset, buf),
        }
    }
}

type Sink<'a> = dyn FnMut(SpanId, &SpanBytes<'_>) -> io::Result<()> + 'a;

/// The uncompressed bytes of one layer, served from verified spans.
///
/// Reads map to spans; spans not yet local are fetched with one blob read per
/// call (adjacent spans merged), checked against the zTOC's span digests before
/// anything is decompressed, decompressed whole and stored in the cache.
/// Concurrent readers of a span wait for a single fetch.
pub struct SpanManager {
    layer: Digest,
    /// `layer` as a metrics label.
    label: String,
    zinfo: Zinfo,
    spans: Vec<Span>,
    compressed_size: u64,
    uncompressed_size: u64,
    /// Bytes `[0, start of span 0)`, read and checked at construction.
    header_len: u64,
    reader: Arc<dyn BlobRangeReader>,
    cache: Arc<dyn SpanCache>,
    config: SpanManagerConfig,
    slots: Mutex<Vec<Slot>>,
    changed: Condvar,
    counters: Counters,
}

impl std::fmt::Debug for SpanManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanManager")
            .field("layer", &self.layer)
            .field("spans", &self.spans.len())
            .field("compressed_size", &self.compressed_size)
            .field("uncompressed_size", &self.uncompressed_size)
            .finish_non_exhaustive()
    }
}

impl SpanManager {
    /// Open a layer: check the zTOC against itself and the blob (span digest
    /// count, max span id, checkpoints vs sizes, blob size, and for gzip that
    /// bytes `[0, start of span 0)` are a gzip header).
    pub fn new(
        ztoc: &Ztoc,
        layer: Digest,
        reader: Arc<dyn BlobRangeReader>,
        cache: Arc<dyn SpanCache>,
        config: SpanManagerConfig,
    ) -> Result<SpanManager, SpanError> {
        let invalid = |reason: String| SpanError::InvalidZtoc {
            layer: layer.clone(),
            reason,
        };
        let ci = &ztoc.compression_info;
        let compressed_size = ztoc.compressed_archive_size;
        let uncompressed_size = ztoc.uncompressed_archive_size;
        let zinfo = Zinfo::from_checkpoints(ci.algorithm, &ci.checkpoints).map_err(|e| {
            SpanError::Checkpoints {
                layer: layer.clone(),
                source: Arc::new(e),
            }
        })?;
        let digests = ci.span_digests.len() as u64;
        if u64::from(ci.max_span_id) + 1 != digests {
            return Err(invalid(format!(
                "max span id {} does not match {digests} span digests",
                ci.max_span_id
            )));
        }
        if zinfo.num_spans() != digests {
            return Err(invalid(format!(
                "checkpoints describe {} spans but there are {digests} span digests",
                zinfo.num_spans()
            )));
        }
        zinfo
            .validate(compressed_size, uncompressed_size)
            .map_err(|e| SpanError::Checkpoints {
                layer: layer.clone(),
                source: Arc::new(e),
            })?;

        let mut spans = Vec::with_capacity(ci.span_digests.len());
        for (i, d) in ci.span_digests.iter().enumerate() {
            let id = i as SpanId;
            let digest: Digest = d
                .parse()
                .map_err(|e| invalid(format!("span {id} digest: {e}")))?;
            let compressed =
                zinfo.start_compressed_offset(id)..zinfo.end_compressed_offset(id, compressed_size);
            let uncompressed = zinfo.start_uncompressed_offset(id)
                ..zinfo.end_uncompressed_offset(id, uncompressed_size);
            if compressed.start > compressed.end || compressed.end > compressed_size {
                return Err(invalid(format!(
                    "span {id} compressed range {compressed:?} is not within the {compressed_size}-byte blob"
                )));
            }
            if uncompressed.start > uncompressed.end {
                return Err(invalid(format!(
                    "span {id} uncompressed range {uncompressed:?} is reversed"
                )));
            }
            let (clen, ulen) = (
                compressed.end - compressed.start,
                uncompressed.end - uncompressed.start,
            );
            if clen.max(ulen) > config.max_span_bytes {
                return Err(invalid(format!(
                    "span {id} is {clen} compressed / {ulen} uncompressed bytes, more than the {} allowed",
                    config.max_span_bytes
                )));
            }
            let expected_start = spans
                .last()
                .map(|s: &Span| s.geometry.uncompressed.end)
                .unwrap_or(0);
            if uncompressed.start != expected_start {
                return Err(invalid(format!(
                    "span {id} starts at uncompressed offset {}, expected {expected_start}",
                    uncompressed.start
                )));
            }
            spans.push(Span {
                geometry: SpanGeometry {
                    compressed,
                    uncompressed,
                },
                digest,
            });
        }
        let header_len = spans[0].geometry.compressed.start;

        let mgr = SpanManager {
            slots: Mutex::new(
                (0..spans.len())
                    .map(|_| Slot {
                        status: Status::Unrequested,
                        generation: 0,
                        error: None,
                    })
                    .collect(),
            ),
            label: layer.to_string(),
            layer,
            zinfo,
            spans,
            compressed_size,
            uncompressed_size,
            header_len,
            reader,
            cache,
            config,
            changed: Condvar::new(),
            counters: Counters::default(),
        };

        let actual = mgr
            .with_retries(|| mgr.reader.blob_size(&mgr.layer).map_err(content_failure))
            .map_err(|(source, attempts)| SpanError::BlobSizeUnavailable {
                layer: mgr.layer.clone(),
                attempts,
                source,
            })?;
        if actual != compressed_size {
            return Err(SpanError::BlobSize {
                layer: mgr.layer.clone(),
                expected: compressed_size,
                actual,
            });
        }
        if mgr.zinfo.algorithm() == CompressionAlgorithm::Gzip {
            let range = 0..header_len;
            let header = mgr
                .with_retries(|| mgr.read_ranges(std::slice::from_ref(&range), false))
                .map_err(|(source, attempts)| SpanError::Fetch {
                    layer: mgr.layer.clone(),
                    first_span: 0,
                    last_span: 0,
                    start: 0,
                    end: header_len,
                    attempts,
                    source,
                })?;
            check_gzip_header(&header[0]).map_err(|e| SpanError::GzipHeader {
                layer: mgr.layer.clone(),
                end: header_len,
                source: Arc::new(e),
            })?;
        }
        Ok(mgr)
    }

    /// The layer digest.
    pub fn layer(&self) -> &Digest {
        &self.layer
    }

    /// Number of spans.
    pub fn num_spans(&self) -> u32 {
        self.spans.len() as u32
    }

    /// Id of the last span.
    pub fn max_span_id(&self) -> SpanId {
        self.num_spans() - 1
    }

    /// Geometry of a span (`None` past the last span).
    pub fn span_geometry(&self, span: SpanId) -> Option<SpanGeometry> {
        self.spans.get(span as usize).map(|s| s.geometry.clone())
    }

    /// Spans holding the uncompressed bytes `[offset, offset + len)`, clipped to
    /// the layer; `None` when nothing of the range is inside the layer.
    pub fn span_ids_for_range(&self, offset: u64, len: u64) -> Option<RangeInclusive<SpanId>> {
        if len == 0 || offset >= self.uncompressed_size {
            return None;
        }
        let end = offset.saturating_add(len).min(self.uncompressed_size);
        Some(self.span_of(offset)..=self.span_of(end - 1))
    }

    fn span_of(&self, offset: u64) -> SpanId {
        self.zinfo.span_of(offset).min(self.max_span_id())
    }

    /// Counters since construction.
    pub fn stats(&self) -> SpanStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SpanStats {
            fetched_compressed_bytes: get(&c.fetched_compressed_bytes),
            fetch_requests: get(&c.fetch_requests),
            fetch_failures: get(&c.fetch_failures),
            spans_fetched: get(&c.spans_fetched),
            verification_failures: get(&c.verification_failures),
            cache_hits: get(&c.cache_hits),
        }
    }

    /// Whether a span is known to be in the cache.
    pub fn is_fetched(&self, span: SpanId) -> bool {
        self.lock()
            .get(span as usize)
            .is_some_and(|s| s.status == Status::Fetched)
    }

    /// Number of spans known to be in the cache.
    pub fn fetched_spans(&self) -> u32 {
        self.lock()
            .iter()
            .filter(|s| s.status == Status::Fetched)
            .count() as u32
    }

    /// Compressed bytes of the layer held locally: the union of the compressed
    /// ranges of the spans in the cache, plus the gzip header read at open.
    pub fn fetched_size(&self) -> u64 {
        let slots = self.lock();
        let mut ranges: Vec<&Range<u64>> = self
            .spans
            .iter()
            .zip(slots.iter())
            .filter(|(_, s)| s.status == Status::Fetched)
            .map(|(sp, _)| &sp.geometry.compressed)
            .collect();
        drop(slots);
        ranges.sort_by_key(|r| (r.start, r.end));
        let mut total = self.header_len;
        let mut covered = self.header_len;
        for r in ranges {
            let start = r.start.max(covered);
            if r.end > start {
                total += r.end - start;
                covered = r.end;
            }
        }
        total.min(self.compressed_size)
    }

    /// `100 * fetched_size() / compressed size`.
    pub fn fetched_percent(&self) -> f64 {
        if self.compressed_size == 0 {
            return 100.0;
        }
        self.fetched_size() as f64 * 100.0 / self.compressed_size as f64
    }

    /// What the layer's state file reports.
    pub fn state(&self) -> LayerState {
        let fetched_size = self.fetched_size();
        LayerState {
            digest: self.layer.clone(),
            size: self.compressed_size,
            fetched_size,
            fetched_percent: if self.compressed_size == 0 {
                100.0
            } else {
                fetched_size as f64 * 100.0 / self.compressed_size as f64
            },
        }
    }

    /// Make sure the given spans are in the cache (prefetch, background fetch).
    /// Spans are requested `prefetch_batch_spans` at a time; already fetched
    /// spans cost nothing.
    pub fn fetch_spans(&self, spans: RangeInclusive<SpanId>) -> Result<(), SpanError> {
        let (first, last) = (*spans.start(), *spans.end());
        if first > last {
            return Ok(());
        }
        if last > self.max_span_id() {
            return Err(SpanError::SpanOutOfRange {
                layer: self.layer.clone(),
                span: last,
                max: self.max_span_id(),
            });
        }
        let batch = self.config.prefetch_batch_spans.max(1);
        let mut at = first;
        loop {
            let end = at.saturating_add(batch - 1).min(last);
            let ids: Vec<SpanId> = (at..=end).collect();
            self.ensure(&ids, None)?;
            if end == last {
                return Ok(());
            }
            at = end + 1;
        }
    }

    /// Fetch one span if it is not local yet (what the background fetcher does).
    pub fn fetch_span(&self, span: SpanId) -> Result<(), SpanError> {
        self.fetch_spans(span..=span)
    }

    /// First span `>= from` that is neither fetched nor being fetched.
    pub fn next_unfetched(&self, from: SpanId) -> Option<SpanId> {
        let slots = self.lock();
        (from as usize..slots.len())
            .find(|&i| slots[i].status == Status::Unrequested)
            .map(|i| i as SpanId)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().expect("span state poisoned")
    }

    /// Make `ids` (sorted, distinct) local; with a sink, hand each span's bytes
    /// to it. Returns once every span was handed over (or is local), or with the
    /// first error.
    fn ensure(&self, ids: &[SpanId], mut sink: Option<&mut Sink<'_>>) -> Result<(), SpanError> {
        let mut pending: Vec<SpanId> = ids.to_vec();
        while !pending.is_empty() {
            let mut ready = Vec::new();
            let mut claimed = Vec::new();
            let mut waiting = Vec::new();
            {
                let mut slots = self.lock();
                for &s in &pending {
                    let slot = &mut slots[s as usize];
                    match slot.status {
                        Status::Fetched => ready.push(s),
                        Status::Fetching => waiting.push((s, slot.generation)),
                        Status::Unrequested => {
                            slot.status = Status::Fetching;
                            claimed.push(s);
                        }
                    }
                }
            }
            // From here on every claimed span is released, whatever happens.
            let mut claim = Claim {
                mgr: self,
                open: claimed.clone(),
            };
            let mut done = Vec::with_capacity(pending.len());
            for s in ready {
                let Some(sink) = sink.as_deref_mut() else {
                    done.push(s);
                    continue;
                };
                if self.serve_cached(s, sink) {
                    done.push(s);
                } else {
                    // Evicted or corrupt: fetch it again.
                    let mut slots = self.lock();
                    if slots[s as usize].status == Status::Fetched {
                        slots[s as usize].status = Status::Unrequested;
                    }
                }
            }
            if !claimed.is_empty() {
                self.load_claimed(&mut claim, sink.as_deref_mut())?;
                done.extend_from_slice(&claimed);
            }
            if !waiting.is_empty() {
                let mut slots = self.lock();
                while waiting.iter().any(|&(s, g)| {
                    let slot = &slots[s as usize];
                    slot.status == Status::Fetching && slot.generation == g
                }) {
                    slots = self.changed.wait(slots).expect("span state poisoned");
                }
                for &(s, g) in &waiting {
                    let slot = &slots[s as usize];
                    if slot.status == Status::Unrequested
                        && slot.generation != g
                        && let Some(e) = &slot.error
                    {
                        return Err(e.clone());
                    }
                }
            }
            pending.retain(|s| !done.contains(s));
        }
        Ok(())
    }

    fn expected_len(&self, s: SpanId) -> u64 {
        let u = &self.spans[s as usize].geometry.uncompressed;
        u.end - u.start
    }

    /// Serve a span from the cache; false on a miss or unreadable entry.
    fn serve_cached(&self, s: SpanId, sink: &mut Sink<'_>) -> bool {
        let Some(c) = self.cache.get(&self.layer, s, self.expected_len(s)) else {
            return false;
        };
        match sink(s, &SpanBytes::Cached(&c)) {
            Ok(()) => {
                bump(&self.counters.cache_hits, 1);
                soci_metrics::span_cache(&self.label, true);
                true
            }
            Err(e) => {
                tracing::warn!(layer = %self.layer, span = s, error = %e, "cached span unreadable, fetching it again");
                false
            }
        }
    }

    /// End a fetch of `s`: fetched (in cache), back to unrequested (not cached),
    /// or failed with an error for the waiters.
    fn finish(&self, s: SpanId, outcome: Result<bool, SpanError>) {
        let mut slots = self.lock();
        let slot = &mut slots[s as usize];
        slot.generation += 1;
        match outcome {
            Ok(true) => {
                slot.status = Status::Fetched;
                slot.error = None;
            }
            Ok(false) => {
                slot.status = Status::Unrequested;
                slot.error = None;
            }
            Err(e) => {
                slot.status = Status::Unrequested;
                slot.error = Some(e);
            }
        }
        drop(slots);
        self.changed.notify_all();
    }

    /// Load spans this thread claimed: from the cache if there (an earlier
    /// process or manager may have stored them), else from the blob. Every
    /// claimed span is finished before this returns.
    fn load_claimed(
        &self,
        claim: &mut Claim<'_>,
        mut sink: Option<&mut Sink<'_>>,
    ) -> Result<(), SpanError> {
        let mut to_fetch = Vec::new();
        for s in claim.open.clone() {
            let hit = match sink.as_deref_mut() {
                Some(sink) => self.serve_cached(s, sink),
                None => {
                    let hit = self
                        .cache
                        .get(&self.layer, s, self.expected_len(s))
                        .is_some();
                    if hit {
                        bump(&self.counters.cache_hits, 1);
                        soci_metrics::span_cache(&self.label, true);
                    }
                    hit
                }
            };
            if hit {
                claim.finish(s, Ok(true));
            } else {
                soci_metrics::span_cache(&self.label, false);
                to_fetch.push(s);
            }
        }
        if to_fetch.is_empty() {
            return Ok(());
        }
        let mut first_error = None;
        // Without a reader waiting, the fetch is for the background fetcher or prefetch.
        let background = sink.is_none();
        for (s, compressed) in self.fetch_verified(&to_fetch, background) {
            let outcome = compressed
                .and_then(|c| self.decompress(s, c.bytes()))
                .and_then(|data| {
                    bump(&self.counters.spans_fetched, 1);
                    let cached = match self.cache.put(&self.layer, s, &data) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(layer = %self.layer, span = s, error = %e, "cannot cache span");
                            false
                        }
                    };
                    if let Some(sink) = sink.as_deref_mut() {
                        // Cannot fail: `data` has exactly the span's length.
                        sink(s, &SpanBytes::Fresh(&data)).map_err(|_| SpanError::ShortSpan {
                            layer: self.layer.clone(),
                            span: s,
                            start: self.spans[s as usize].geometry.uncompressed.start,
                            expected: self.expected_len(s),
                            produced: data.len() as u64,
                        })?;
                    }
                    Ok(cached)
                });
            if let Err(e) = &outcome {
                first_error.get_or_insert_with(|| e.clone());
            }
            claim.finish(s, outcome);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Decompress a verified span into exactly its uncompressed length.
    fn decompress(&self, s: SpanId, compressed: &[u8]) -> Result<Vec<u8>, SpanError> {
        let u = &self.spans[s as usize].geometry.uncompressed;
        let len = u.end - u.start;
        let mut out = vec![0u8; len as usize];
        if len == 0 {
            return Ok(out);
        }
        let produced = self
            .zinfo
            .extract(compressed, s, u.start, &mut out)
            .map_err(|e| SpanError::Decompress {
                layer: self.layer.clone(),
                span: s,
                start: u.start,
                end: u.end,
                source: Arc::new(e),
            })?;
        if produced as u64 != len {
            return Err(SpanError::ShortSpan {
                layer: self.layer.clone(),
                span: s,
                start: u.start,
                expected: len,
                produced: produced as u64,
            });
        }
        Ok(out)
    }

    /// Fetch the compressed bytes of `spans` and check each against its digest,
    /// re-fetching failed ones as configured. One result per span.
    fn fetch_verified(
        &self,
        spans: &[SpanId],
        background: bool,
    ) -> Vec<(SpanId, Result<Compressed, SpanError>)> {
        let mut results: BTreeMap<SpanId, Result<Compressed, SpanError>> = BTreeMap::new();
        let mut todo: Vec<SpanId> = spans.to_vec();
        let mut attempts = 0u32;
        while !todo.is_empty() {
            let plan = self.plan(&todo);
            let bufs = match self.with_retries(|| self.read_ranges(&plan.ranges, background)) {
                Ok(bufs) => bufs,
                Err((source, tries)) => {
                    let (first, last) = (todo[0], *todo.last().expect("not empty"));
                    let err = SpanError::Fetch {
                        layer: self.layer.clone(),
                        first_span: first.min(last),
                        last_span: first.max(last),
                        start: plan.ranges.first().map_or(0, |r| r.start),
                        end: plan.ranges.last().map_or(0, |r| r.end),
                        attempts: tries,
                        source,
                    };
                    tracing::warn!(error = %err, "span fetch failed");
                    for s in todo {
                        results.insert(s, Err(err.clone()));
                    }
                    break;
                }
            };
            attempts += 1;
            let bufs: Vec<Arc<Vec<u8>>> = bufs.into_iter().map(Arc::new).collect();
            let mut bad = Vec::new();
            for (&s, at) in todo.iter().zip(&plan.at) {
                let g = &self.spans[s as usize];
                let compressed = match at {
                    None => Compressed::empty(),
                    Some((i, off)) => {
                        let len =
                            (g.geometry.compressed.end - g.geometry.compressed.start) as usize;
                        Compressed {
                            buf: Arc::clone(&bufs[*i]),
                            at: *off..*off + len,
                        }
                    }
                };
                let actual = Digest::of(compressed.bytes());
                if actual == g.digest {
                    results.insert(s, Ok(compressed));
                } else {
                    bump(&self.counters.verification_failures, 1);
                    soci_metrics::span_verification_failure(&self.label);
                    let err = SpanError::Verification {
                        layer: self.layer.clone(),
                        span: s,
                        start: g.geometry.compressed.start,
                        end: g.geometry.compressed.end,
                        expected: g.digest.clone(),
                        actual,
                        attempts,
                    };
                    tracing::warn!(error = %err, "span verification failed");
                    bad.push((s, err));
                }
            }
            if attempts > self.config.max_span_verification_retries {
                for (s, err) in bad {
                    results.insert(s, Err(err));
                }
                break;
            }
            todo = bad.into_iter().map(|(s, _)| s).collect();
        }
        results.into_iter().collect()
    }

    /// Blob ranges for `spans`: sorted, merged where spans touch or overlap
    /// (adjacent gzip spans share a byte), empty spans need no bytes.
    fn plan(&self, spans: &[SpanId]) -> Plan {
        let mut order: Vec<usize> = (0..spans.len()).collect();
        order.sort_by_key(|&i| {
            let c = &self.spans[spans[i] as usize].geometry.compressed;
            (c.start, c.end)
        });
        let mut ranges: Vec<Range<u64>> = Vec::new();
        let mut at = vec![None; spans.len()];
        for i in order {
            let c = &self.spans[spans[i] as usize].geometry.compressed;
            if c.start == c.end {
                continue;
            }
            let last = ranges.len().wrapping_sub(1);
            match ranges.last_mut() {
                Some(r) if c.start <= r.end => {
                    r.end = r.end.max(c.end);
                    at[i] = Some((last, (c.start - r.start) as usize));
                }
                _ => {
                    ranges.push(c.clone());
                    at[i] = Some((ranges.len() - 1, 0));
                }
            }
        }
        Plan { ranges, at }
    }

    /// One `read_ranges` call, with its result checked for shape.
    /// `background`: made for the background fetcher or prefetch, not a reader.
    fn read_ranges(
        &self,
        ranges: &[Range<u64>],
        background: bool,
    ) -> Result<Vec<Vec<u8>>, FetchFailure> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        bump(&self.counters.fetch_requests, 1);
        let started = std::time::Instant::now();
        let bufs = self
            .reader
            .read_ranges(&self.layer, ranges)
            .map_err(content_failure)?;
        let got: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        bump(&self.counters.fetched_compressed_bytes, got);
        soci_metrics::blob_read(&self.label, background, got, started.elapsed());
        if bufs.len() != ranges.len() {
            return Err(FetchFailure::WrongLength {
                start: ranges[0].start,
                end: ranges[ranges.len() - 1].end,
                got,
            });
        }
        for (r, b) in ranges.iter().zip(&bufs) {
            if b.len() as u64 != r.end - r.start {
                return Err(FetchFailure::WrongLength {
                    start: r.start,
                    end: r.end,
                    got: b.len() as u64,
                });
            }
        }
        Ok(bufs)
    }

    /// Run `op`, retrying failures with backoff; on final failure, the last
    /// error and the number of attempts.
    fn with_retries<T>(
        &self,
        mut op: impl FnMut() -> Result<T, FetchFailure>,
    ) -> Result<T, (FetchFailure, u32)> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match op() {
                Ok(v) => return Ok(v),
                Err(e) => {
                    bump(&self.counters.fetch_failures, 1);
                    if attempt > self.config.max_retries {
                        return Err((e, attempt));
                    }
                    let wait = self.config.backoff(attempt);
                    tracing::debug!(layer = %self.layer, attempt, error = %e, ?wait, "retrying blob read");
                    std::thread::sleep(wait);
                }
            }
        }
    }
}

/// Spans this thread marked `Fetching`. Whatever is not finished when it is
/// dropped (a panic in a cache or in decompression) is released with an error,
/// so that waiters never wait forever.
struct Claim<'a> {
    mgr: &'a SpanManager,
    open: Vec<SpanId>,
}

impl Claim<'_> {
    fn finish(&mut self, s: SpanId, outcome: Result<bool, SpanError>) {
        self.open.retain(|&o| o != s);
        self.mgr.finish(s, outcome);
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        for s in std::mem::take(&mut self.open) {
            let err = SpanError::Abandoned {
                layer: self.mgr.layer.clone(),
                span: s,
            };
            self.mgr.finish(s, Err(err));
        }
    }
}

/// A verified span's compressed bytes: its part of one fetched range, shared
/// with the other spans fetched in that range rather than copied out of it
/// (the range is freed once its last span is inflated).
struct Compressed {
    buf: Arc<Vec<u8>>,
    at: Range<usize>,
}

impl Compressed {
    fn empty() -> Compressed {
        Compressed {
            buf: Arc::new(Vec::new()),
            at: 0..0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.at.clone()]
    }
}

struct Plan {
    ranges: Vec<Range<u64>>,
    /// Per requested span: (range index, offset in that range); `None` = empty span.
    at: Vec<Option<(usize, usize)>>,
}

fn content_failure(e: soci_content::ContentError) -> FetchFailure {
    FetchFailure::Content(Arc::new(e))
}

impl SpanSource for SpanManager {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, SpanError> {
        if buf.is_empty() || offset >= self.uncompressed_size {
            return Ok(0);
        }
        let end = offset
            .saturating_add(buf.len() as u64)
            .min(self.uncompressed_size);
        let n = (end - offset) as usize;
        let Some(ids) = self.span_ids_for_range(offset, n as u64) else {
            return Ok(0);
        };
        let ids: Vec<SpanId> = ids.collect();
        let out = &mut buf[..n];
        let mut copied = vec![0u64; ids.len()];
        let first = ids[0];
        let mut sink = |s: SpanId, bytes: &SpanBytes<'_>| -> io::Result<()> {
            let u = &self.spans[s as usize].geometry.uncompressed;
            let from = offset.max(u.start);
            let to = end.min(u.end);
            if from >= to {
                return Ok(());
            }
            bytes.read_exact_at(
                from - u.start,
                &mut out[(from - offset) as usize..(to - offset) as usize],
            )?;
            copied[(s - first) as usize] = to - from;
            Ok(())
        };
        self.ensure(&ids, Some(&mut sink))?;
        // The geometry is checked to be contiguous at construction, so the spans
        // cover the range; make sure no byte of the buffer went unwritten.
        let total: u64 = copied.iter().sum();
        if total != n as u64 {
            return Err(SpanError::InvalidZtoc {
                layer: self.layer.clone(),
                reason: format!(
                    "spans {ids:?} cover {total} of the {n} bytes at uncompressed offset {offset}"
                ),
            });
        }
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.uncompressed_size
    }
}
