//! Background fetch: fill the cache with the spans of mounted layers that no
//! one has read yet, without getting in the way of foreground reads.
//!
//! A small pool of worker threads (one by default) serves a bounded queue of
//! layers round-robin: each turn fetches the next not yet fetched span of the
//! layer at the front, puts the layer back at the end, and waits
//! `fetch_period`. A span is fetched alone, so a foreground read that needs
//! the same span waits at most one span fetch. [`BackgroundFetcher::silence`]
//! pauses all work for `silence_period` (upstream does this whenever an image
//! is mounted). Layers are held weakly: dropping a layer's manager ends its
//! background fetch.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::SpanId;
use crate::SpanManager;

/// Which layer to drop when a layer is added to a full queue
/// (`[background_fetch] drop_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropPolicy {
    /// Refuse the layer being added.
    #[default]
    Newest,
    /// Drop the layer queued longest ago.
    Oldest,
}

/// Knobs of the background fetcher (`[background_fetch]` of config.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackgroundFetchConfig {
    /// Pause between two span fetches of a worker (`fetch_period_msec`, 500 ms).
    pub fetch_period: Duration,
    /// Pause after [`BackgroundFetcher::silence`] (`silence_period_msec`, 30 s).
    pub silence_period: Duration,
    /// Most layers queued (`max_queue_size`, 300).
    pub max_queue_size: usize,
    /// What to drop when the queue is full (`drop_policy`, newest).
    pub drop_policy: DropPolicy,
    /// Worker threads (1).
    pub workers: usize,
}

impl Default for BackgroundFetchConfig {
    fn default() -> Self {
        BackgroundFetchConfig {
            fetch_period: Duration::from_millis(500),
            silence_period: Duration::from_millis(30_000),
            max_queue_size: 300,
            drop_policy: DropPolicy::Newest,
            workers: 1,
        }
    }
}

/// Counters of a background fetcher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackgroundStats {
    /// Spans made local by the fetcher.
    pub spans_fetched: u64,
    /// Span fetches that failed (the span is skipped for this pass).
    pub errors: u64,
    /// Layers refused or dropped because the queue was full.
    pub dropped_layers: u64,
    /// Layers whose every span was visited.
    pub completed_layers: u64,
}

struct Job {
    layer: Weak<SpanManager>,
    next: SpanId,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    silenced_until: Option<Instant>,
    stopped: bool,
    stats: BackgroundStats,
}

struct Shared {
    config: BackgroundFetchConfig,
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("background fetcher poisoned")
    }
}

/// Fetches the spans of registered layers in the background. Stops (and joins
/// its threads) on [`BackgroundFetcher::stop`] or drop.
pub struct BackgroundFetcher {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for BackgroundFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundFetcher")
            .field("config", &self.shared.config)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl BackgroundFetcher {
    /// Start the worker threads.
    pub fn new(config: BackgroundFetchConfig) -> BackgroundFetcher {
        let n = config.workers.max(1);
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let workers = (0..n)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("soci-bgfetch-{i}"))
                    .spawn(move || worker(&shared))
                    .expect("spawning a background fetch thread")
            })
            .collect();
        BackgroundFetcher { shared, workers }
    }

    /// Queue a layer for background fetch. Returns false if it was refused
    /// (queue full with [`DropPolicy::Newest`], or the fetcher is stopped).
    /// A layer already queued is not queued twice.
    pub fn add(&self, layer: &Arc<SpanManager>) -> bool {
        let mut st = self.shared.lock();
        if st.stopped {
            return false;
        }
        let weak = Arc::downgrade(layer);
        if st.queue.iter().any(|j| Weak::ptr_eq(&j.layer, &weak)) {
            return true;
        }
        if st.queue.len() >= self.shared.config.max_queue_size {
            st.stats.dropped_layers += 1;
            match self.shared.config.drop_policy {
                DropPolicy::Newest => return false,
                DropPolicy::Oldest => {
                    st.queue.pop_front();
                }
            }
            if self.shared.config.max_queue_size == 0 {
                return false;
            }
        }
        st.queue.push_back(Job {
            layer: weak,
            next: 0,
        });
        drop(st);
        self.shared.wake.notify_one();
        true
    }

    /// Pause background fetching for `silence_period` from now.
    pub fn silence(&self) {
        let mut st = self.shared.lock();
        st.silenced_until = Some(Instant::now() + self.shared.config.silence_period);
    }

    /// Layers waiting for (more) background fetch.
    pub fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Counters since start.
    pub fn stats(&self) -> BackgroundStats {
        self.shared.lock().stats
    }

    /// Stop the workers and wait for them (a span fetch in progress finishes
    /// first). Idempotent.
    pub fn stop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                tracing::error!("a background fetch thread panicked");
            }
        }
    }
}

impl Drop for BackgroundFetcher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.stopped {
            return;
        }
        if let Some(until) = st.silenced_until {
            let now = Instant::now();
            if now < until {
                st = shared
                    .wake
                    .wait_timeout(st, until - now)
                    .expect("background fetcher poisoned")
                    .0;
                continue;
            }
            st.silenced_until = None;
        }
        let Some(mut job) = st.queue.pop_front() else {
            st = shared.wake.wait(st).expect("background fetcher poisoned");
            continue;
        };
        drop(st);

        let mut requeue = false;
        let mut fetched = None;
        if let Some(layer) = job.layer.upgrade()
            && let Some(span) = layer.next_unfetched(job.next)
        {
            let started = Instant::now();
            let ok = match layer.fetch_span(span) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(layer = %layer.layer(), span, error = %e, "background fetch failed");
                    false
                }
            };
            soci_metrics::background_span_fetch(&layer.layer().to_string(), ok, started.elapsed());
            fetched = Some(ok);
            job.next = span + 1;
            requeue = span < layer.max_span_id();
        }

        st = shared.lock();
        match fetched {
            Some(true) => st.stats.spans_fetched += 1,
            Some(false) => st.stats.errors += 1,
            None => {}
        }
        if requeue && !st.stopped {
            st.queue.push_back(job);
        } else if !st.stopped && job.layer.strong_count() > 0 {
            st.stats.completed_layers += 1;
        }
        if fetched.is_some() {
            let deadline = Instant::now() + shared.config.fetch_period;
            while !st.stopped {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = shared
                    .wake
                    .wait_timeout(st, deadline - now)
                    .expect("background fetcher poisoned")
                    .0;
            }
        }
    }
}
