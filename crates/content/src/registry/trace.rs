//! `--http-dump` and `--http-trace`: registry HTTP traffic on stderr, with
//! credentials redacted.

use std::time::Instant;

use reqwest::header::HeaderMap;

/// What to print about registry HTTP traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpDebug {
    /// Each request and response: method, URL, status and headers.
    pub dump: bool,
    /// One line per request with its outcome and timing.
    pub trace: bool,
}

/// Headers whose values are secrets.
const SECRET: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

fn headers(out: &mut String, prefix: &str, h: &HeaderMap) {
    for (name, value) in h {
        let v = if SECRET.contains(&name.as_str()) {
            "<redacted>".to_string()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        out.push_str(&format!("{prefix}{name}: {v}\n"));
    }
}

/// Query parameters that carry secrets (token requests).
fn redact_url(url: &reqwest::Url) -> String {
    if url.query().is_none() {
        return url.to_string();
    }
    let mut u = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if ["refresh_token", "password", "access_token"].contains(&k.as_ref()) {
                "<redacted>".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

impl HttpDebug {
    /// Print a request about to be sent; returns when it started.
    pub(crate) fn request(&self, req: &reqwest::Request) -> Instant {
        if self.dump {
            let mut out = format!(
                "> {} {} {:?}\n",
                req.method(),
                redact_url(req.url()),
                req.version()
            );
            headers(&mut out, "> ", req.headers());
            if let Some(b) = req.body() {
                match b.as_bytes() {
                    Some(bytes) => out.push_str(&format!("> ({} byte body)\n", bytes.len())),
                    None => out.push_str("> (streamed body)\n"),
                }
            }
            eprint!("{out}");
        }
        Instant::now()
    }

    /// Print the answer to a request sent at `started`.
    pub(crate) fn response(
        &self,
        method: &reqwest::Method,
        url: &reqwest::Url,
        started: Instant,
        result: &Result<reqwest::Response, reqwest::Error>,
    ) {
        let ms = started.elapsed().as_secs_f64() * 1e3;
        match result {
            Ok(resp) => {
                if self.dump {
                    let mut out = format!("< {:?} {}\n", resp.version(), resp.status());
                    headers(&mut out, "< ", resp.headers());
                    eprint!("{out}");
                }
                if self.trace {
                    eprintln!(
                        "http: {method} {} -> {} after {ms:.1} ms (headers; body streamed after)",
                        redact_url(url),
                        resp.status().as_u16()
                    );
                }
            }
            Err(e) => {
                if self.dump || self.trace {
                    eprintln!(
                        "http: {method} {} failed after {ms:.1} ms: {e}",
                        redact_url(url)
                    );
                }
            }
        }
    }

    /// Send `rb` on `client`, printing what was asked for.
    pub(crate) async fn send(
        &self,
        client: &reqwest::Client,
        rb: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        if !self.dump && !self.trace {
            return rb.send().await;
        }
        let req = rb.build()?;
        let (method, url) = (req.method().clone(), req.url().clone());
        let started = self.request(&req);
        let result = client.execute(req).await;
        self.response(&method, &url, started, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{AUTHORIZATION, HeaderValue};

    #[test]
    fn secrets_are_redacted() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        let mut out = String::new();
        headers(&mut out, "> ", &h);
        assert!(out.contains("authorization: <redacted>"), "{out}");
        assert!(out.contains("accept: application/json"), "{out}");
        assert!(!out.contains("s3cret"));
        let u = reqwest::Url::parse(
            "https://auth.example/token?scope=repository%3Aa%3Apull&refresh_token=s3cret",
        )
        .unwrap();
        let r = redact_url(&u);
        assert!(!r.contains("s3cret"), "{r}");
        assert!(r.contains("scope="), "{r}");
    }
}
