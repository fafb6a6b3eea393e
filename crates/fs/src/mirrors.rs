//! Registry mirrors for layer blob reads (`[resolver.host."<registry>"] mirrors`).
//!
//! Span fetches of a layer try each configured mirror of the image's registry
//! in order, then the registry itself; the first that answers serves the read.
//! A mirror that fails is passed over for 30 s, so an unreachable mirror does
//! not cost a timeout on every read.
//! Every span is still checked against its zTOC digest, so a mirror that
//! serves other bytes costs a re-fetch, never a wrong byte. SOCI index and zTOC
//! fetches do not use mirrors: they go to the image's own registry only.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use soci_content::registry::{
    BlockingRuntime, RegistryClient, RegistryOptions, RegistryRangeReader, Repository,
};
use soci_content::{BlobRangeReader, ContentError};
use soci_format::Digest;
use tracing::warn;

/// One mirror of a registry and the client that reaches it.
#[derive(Clone)]
pub(crate) struct Mirror {
    /// `host[:port]` of the mirror.
    host: String,
    /// Used only through the blocking runtime, like the registry's span client.
    client: RegistryClient,
}

/// The mirrors of each registry named in `[resolver.host]`.
#[derive(Clone, Default)]
pub(crate) struct Mirrors {
    by_registry: HashMap<String, Vec<Mirror>>,
}

/// `host` without an `http://` / `https://` prefix or trailing `/`, and
/// whether the prefix asked for plain HTTP.
fn split_scheme(host: &str) -> (&str, Option<bool>) {
    let host = host.trim().trim_end_matches('/');
    if let Some(h) = host.strip_prefix("http://") {
        (h, Some(true))
    } else if let Some(h) = host.strip_prefix("https://") {
        (h, Some(false))
    } else {
        (host, None)
    }
}

impl Mirrors {
    /// Clients for every mirror in `config`, based on `base` (credentials,
    /// timeouts). Unusable entries are logged and skipped.
    pub(crate) fn new(
        config: &soci_config::ResolverConfig,
        base: &RegistryOptions,
    ) -> Result<Mirrors, ContentError> {
        let mut by_registry = HashMap::new();
        for (registry, host) in &config.host {
            let mut list = Vec::new();
            for m in &host.mirrors {
                let (name, scheme_plain) = split_scheme(&m.host);
                if name.is_empty() || name.contains('/') {
                    warn!(registry, mirror = %m.host, "ignoring mirror: host must be host[:port] without a path");
                    continue;
                }
                let mut opts = base.clone();
                opts.plain_http = scheme_plain.unwrap_or(m.insecure);
                if let Some(t) = m.request_timeout_sec.duration().filter(|t| !t.is_zero()) {
                    opts.read_timeout = Some(t);
                    opts.connect_timeout =
                        Some(opts.connect_timeout.map_or(t, |c: Duration| c.min(t)));
                }
                list.push(Mirror {
                    host: name.to_string(),
                    client: RegistryClient::new(opts)?,
                });
            }
            if !list.is_empty() {
                by_registry.insert(registry.clone(), list);
            }
        }
        Ok(Mirrors { by_registry })
    }

    /// The blob reader of `repo`'s layers: its mirrors first, then `registry`.
    pub(crate) fn reader(
        &self,
        repo: &Repository,
        registry: RegistryRangeReader,
        rt: &Arc<BlockingRuntime>,
    ) -> MirroredRangeReader {
        let mut sources: Vec<(String, RegistryRangeReader)> = Vec::new();
        let mirrors = self
            .by_registry
            .get(repo.registry())
            .or_else(|| self.by_registry.get(repo.api_host()));
        for m in mirrors.into_iter().flatten() {
            match Repository::new(&m.host, repo.name()) {
                Ok(r) => sources.push((
                    m.host.clone(),
                    RegistryRangeReader::new(m.client.clone(), r, rt.clone()),
                )),
                Err(e) => warn!(mirror = %m.host, error = %e, "ignoring mirror"),
            }
        }
        sources.push((repo.registry().to_string(), registry));
        MirroredRangeReader {
            down_until: Mutex::new(vec![None; sources.len()]),
            sources,
        }
    }
}

/// How long a mirror that failed is passed over before it is tried again.
const MIRROR_BACKOFF: Duration = Duration::from_secs(30);

/// Reads a layer blob from the first of several hosts that answers.
pub(crate) struct MirroredRangeReader {
    /// Host names (for logs) and readers, mirrors first, the registry last.
    sources: Vec<(String, RegistryRangeReader)>,
    /// Per source: until when it is passed over after a failure (mirrors only;
    /// the registry is always tried).
    down_until: Mutex<Vec<Option<Instant>>>,
}

impl MirroredRangeReader {
    /// Record a blob size known from a descriptor for every host.
    pub(crate) fn set_size(&self, digest: Digest, size: u64) {
        for (_, r) in &self.sources {
            r.set_size(digest.clone(), size);
        }
    }

    fn first_ok<T>(
        &self,
        digest: &Digest,
        what: &str,
        mut f: impl FnMut(&RegistryRangeReader) -> Result<T, ContentError>,
    ) -> Result<T, ContentError> {
        let last = self.sources.len() - 1;
        for (i, (host, r)) in self.sources.iter().enumerate() {
            if i < last {
                let down = self.down_until.lock().expect("poisoned")[i];
                if down.is_some_and(|until| Instant::now() < until) {
                    continue;
                }
            }
            match f(r) {
                Ok(v) => {
                    self.down_until.lock().expect("poisoned")[i] = None;
                    return Ok(v);
                }
                Err(e) if i < last => {
                    warn!(host, %digest, error = %e, "{what} from mirror failed; using the next host, and not this one for {}s", MIRROR_BACKOFF.as_secs());
                    self.down_until.lock().expect("poisoned")[i] =
                        Some(Instant::now() + MIRROR_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the registry itself is always the last source")
    }
}

impl BlobRangeReader for MirroredRangeReader {
    fn blob_size(&self, digest: &Digest) -> Result<u64, ContentError> {
        self.first_ok(digest, "blob size", |r| r.blob_size(digest))
    }

    fn read_ranges(
        &self,
        digest: &Digest,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Vec<u8>>, ContentError> {
        self.first_ok(digest, "range read", |r| r.read_ranges(digest, ranges))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_mirror_is_passed_over_then_retried() {
        let closed = |_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .to_string()
        };
        let mirror = closed(0);
        let registry = (1..100)
            .map(closed)
            .find(|r| *r != mirror)
            .expect("two distinct free ports");
        let toml = format!(
            "[resolver.host.\"{registry}\"]\nmirrors = [{{host = \"{mirror}\", insecure = true}}]\n"
        );
        let config = soci_config::Config::from_toml_str(&toml).unwrap().config;
        let mirrors = Mirrors::new(&config.resolver, &RegistryOptions::default()).unwrap();
        let rt = Arc::new(BlockingRuntime::new().unwrap());
        let repo = Repository::new(&registry, "app").unwrap();
        let client = RegistryClient::new(RegistryOptions::default()).unwrap();
        let reader = mirrors.reader(
            &repo,
            RegistryRangeReader::new(client, repo.clone(), rt.clone()),
            &rt,
        );
        let digest = Digest::of(b"layer");
        let down = |r: &MirroredRangeReader| r.down_until.lock().unwrap().clone();
        assert_eq!(down(&reader), [None, None]);
        // Nothing listens anywhere: the registry's error is the answer, and the
        // mirror is marked down (the registry never is).
        let e = reader
            .read_ranges(&digest, std::slice::from_ref(&(0..10)))
            .unwrap_err();
        assert!(e.to_string().contains(&registry), "{e}");
        let marked = down(&reader);
        assert!(marked[0].is_some_and(|t| t > Instant::now()));
        assert_eq!(marked[1], None);
        // While down it is not tried (its mark stays as it was).
        reader.blob_size(&digest).unwrap_err();
        assert_eq!(down(&reader), marked);
        // Once the pause is over it is tried again.
        reader.down_until.lock().unwrap()[0] = Some(Instant::now());
        reader.blob_size(&digest).unwrap_err();
        assert!(down(&reader)[0].is_some_and(|t| t > marked[0].unwrap()));
    }

    #[test]
    fn scheme_prefixes_decide_plain_http() {
        assert_eq!(split_scheme("m.example:5000"), ("m.example:5000", None));
        assert_eq!(split_scheme("http://m.example/"), ("m.example", Some(true)));
        assert_eq!(
            split_scheme("https://m.example"),
            ("m.example", Some(false))
        );
    }

    #[test]
    fn mirrors_are_tried_before_the_registry() {
        let toml = r#"
[resolver.host."registry.example:5000"]
mirrors = [{host = "mirror-a.example", insecure = true}, {host = "http://mirror-b.example:81"}, {host = "bad/path"}]
"#;
        let config = soci_config::Config::from_toml_str(toml).unwrap().config;
        let mirrors = Mirrors::new(&config.resolver, &RegistryOptions::default()).unwrap();
        let rt = Arc::new(BlockingRuntime::new().unwrap());
        let client = RegistryClient::new(RegistryOptions::default()).unwrap();
        let repo = Repository::new("registry.example:5000", "app").unwrap();
        let reader = mirrors.reader(
            &repo,
            RegistryRangeReader::new(client.clone(), repo.clone(), rt.clone()),
            &rt,
        );
        let hosts: Vec<&str> = reader.sources.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(
            hosts,
            [
                "mirror-a.example",
                "mirror-b.example:81",
                "registry.example:5000"
            ]
        );
        let plain: Vec<bool> = mirrors.by_registry["registry.example:5000"]
            .iter()
            .map(|m| {
                m.client
                    .scheme_for(&Repository::new(&m.host, "app").unwrap())
                    == "http"
            })
            .collect();
        assert_eq!(plain, [true, true]);

        // Another registry has no mirrors.
        let other = Repository::new("other.example", "app").unwrap();
        let reader = mirrors.reader(
            &other,
            RegistryRangeReader::new(client, other.clone(), rt.clone()),
            &rt,
        );
        assert_eq!(reader.sources.len(), 1);
    }
}
