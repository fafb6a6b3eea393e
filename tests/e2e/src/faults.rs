//! A fault-injecting HTTP/1.1 proxy in front of the real registry.
//!
//! Requests are forwarded one by one to the upstream registry; blob `GET`s
//! can be answered with a fault instead, switched at run time with
//! [`FaultProxy::set`]: connection resets, error statuses, truncated, stalled,
//! slow or bit-flipped bodies. [`FaultProxy::require_bearer`] makes the proxy
//! demand bearer tokens it issues itself (realm `/token` on the proxy) and
//! which stop working after a time-to-live while the token response claims an
//! hour, as when a registry revokes or expires a token early: a client only
//! keeps reading if it re-authenticates on 401.
//!
//! Every thread is bounded: connections close when the proxy is dropped, and
//! a stall lasts at most its configured time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does to a blob `GET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward faithfully.
    None,
    /// Close the connection without answering.
    Reset,
    /// Answer with this status and a short body.
    Status(u16),
    /// Send the headers (with the full length) and half the body, then close.
    Truncate,
    /// Flip one bit in the middle of the body of a 200/206 answer.
    FlipBits,
    /// Send the body in 8 KiB pieces with this pause between them.
    Slow(Duration),
    /// Send the headers and half the body, then nothing for this long, then close.
    Stall(Duration),
    /// Append this many bytes to the body of a 200 answer (a blob longer than
    /// its descriptor says).
    Append(usize),
}

struct Active {
    fault: Fault,
    /// How many more blob GETs get the fault; `None` is until changed.
    remaining: Option<u64>,
}

struct Auth {
    ttl: Duration,
    tokens: HashMap<String, Instant>,
}

struct State {
    upstream: String,
    addr: String,
    active: Mutex<Active>,
    auth: Mutex<Option<Auth>>,
    stop: AtomicBool,
    faulted: AtomicU64,
    blob_gets: AtomicU64,
    tokens_issued: AtomicU64,
    challenges: AtomicU64,
    /// Connections currently open (to close them on drop).
    conns: Mutex<Vec<TcpStream>>,
}

/// The proxy; stops accepting and closes its connections when dropped.
pub struct FaultProxy {
    /// `127.0.0.1:<port>` to put in image references.
    pub addr: String,
    state: Arc<State>,
}

impl FaultProxy {
    /// Starts a proxy on a free 127.0.0.1 port in front of `upstream` (`host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(State {
            upstream: upstream.to_string(),
            addr: addr.clone(),
            active: Mutex::new(Active {
                fault: Fault::None,
                remaining: None,
            }),
            auth: Mutex::new(None),
            stop: AtomicBool::new(false),
            faulted: AtomicU64::new(0),
            blob_gets: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            challenges: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            while !st.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(c) = client.try_clone() {
                            st.conns.lock().unwrap().push(c);
                        }
                        let st = st.clone();
                        std::thread::spawn(move || serve(&st, client));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy { addr, state }
    }

    /// Applies `fault` to every blob GET from now on.
    pub fn set(&self, fault: Fault) {
        *self.state.active.lock().unwrap() = Active {
            fault,
            remaining: None,
        };
    }

    /// Applies `fault` to the next `n` blob GETs only.
    pub fn set_for(&self, fault: Fault, n: u64) {
        *self.state.active.lock().unwrap() = Active {
            fault,
            remaining: Some(n),
        };
    }

    /// Forwards faithfully again.
    pub fn clear(&self) {
        self.set(Fault::None);
    }

    /// Demands bearer tokens from now on; each token works for `ttl`.
    pub fn require_bearer(&self, ttl: Duration) {
        *self.state.auth.lock().unwrap() = Some(Auth {
            ttl,
            tokens: HashMap::new(),
        });
    }

    /// Blob GETs answered with a fault so far.
    pub fn faulted(&self) -> u64 {
        self.state.faulted.load(Ordering::Relaxed)
    }

    /// Blob GETs seen so far.
    pub fn blob_gets(&self) -> u64 {
        self.state.blob_gets.load(Ordering::Relaxed)
    }

    /// Bearer tokens issued so far.
    pub fn tokens_issued(&self) -> u64 {
        self.state.tokens_issued.load(Ordering::Relaxed)
    }

    /// 401 challenges sent so far.
    pub fn challenges(&self) -> u64 {
        self.state.challenges.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        for c in self.state.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a header block (request or response) up to the blank line.
fn read_head(r: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut first = String::new();
    if r.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    for _ in 0..200 {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Some((first.trim_end().to_string(), headers));
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    None
}

fn content_length(headers: &[(String, String)]) -> Option<usize> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
}

fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let (line, headers) = read_head(r)?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut body = vec![0; content_length(&headers).unwrap_or(0).min(64 << 20)];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

struct Response {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Sends `req` upstream on a fresh connection and reads the whole answer.
fn forward(upstream: &str, req: &Request) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(upstream)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if ["connection", "authorization", "host"]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Host: {upstream}\r\nConnection: close\r\n\r\n"));
    s.write_all(head.as_bytes())?;
    s.write_all(&req.body)?;
    let mut r = BufReader::new(s);
    let bad = || std::io::Error::other("bad upstream answer");
    let (line, headers) = read_head(&mut r).ok_or_else(bad)?;
    let mut parts = line.splitn(3, ' ');
    let _version = parts.next();
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let reason = parts.next().unwrap_or("").to_string();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let mut body = Vec::new();
    if req.method == "HEAD" || status == 204 || status == 304 {
    } else if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad())?;
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end)?;
                break;
            }
            let start = body.len();
            body.resize(start + n, 0);
            r.read_exact(&mut body[start..])?;
            let mut crlf = [0; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if let Some(n) = content_length(&headers) {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        reason,
        headers,
        body,
    })
}

fn write_head(w: &mut TcpStream, resp: &Response, head_request: bool) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, resp.reason);
    for (k, v) in &resp.headers {
        if [
            "connection",
            "transfer-encoding",
            "content-length",
            "keep-alive",
        ]
        .iter()
        .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let len = if head_request {
        content_length(&resp.headers).unwrap_or(0)
    } else {
        resp.body.len()
    };
    head.push_str(&format!(
        "Content-Length: {len}\r\nConnection: keep-alive\r\n\r\n"
    ));
    w.write_all(head.as_bytes())
}

fn simple(status: u16, reason: &str, headers: Vec<(String, String)>, body: &[u8]) -> Response {
    Response {
        status,
        reason: reason.to_string(),
        headers,
        body: body.to_vec(),
    }
}

/// The repository named by a `/v2/<name>/{manifests,blobs,referrers,tags}/...` path.
fn repository(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    ["/manifests/", "/blobs/", "/referrers/", "/tags/"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .map(|i| &rest[..i])
}

/// Answers a token request or checks a request's token; `Some` is the answer to send.
fn authenticate(st: &State, req: &Request) -> Option<Response> {
    let mut auth = st.auth.lock().unwrap();
    let auth = auth.as_mut()?;
    if req.path.starts_with("/token") {
        let n = st.tokens_issued.fetch_add(1, Ordering::Relaxed);
        let token = format!("fault-proxy-token-{n}-{}", std::process::id());
        auth.tokens.insert(token.clone(), Instant::now() + auth.ttl);
        // Claims an hour: the client cannot know the token dies early.
        let body = format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":3600}}"#);
        return Some(simple(
            200,
            "OK",
            vec![("Content-Type".into(), "application/json".into())],
            body.as_bytes(),
        ));
    }
    if !req.path.starts_with("/v2") {
        return None;
    }
    let valid = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| auth.tokens.get(t.trim()))
        .is_some_and(|expiry| Instant::now() < *expiry);
    if valid {
        return None;
    }
    st.challenges.fetch_add(1, Ordering::Relaxed);
    let mut challenge = format!(
        r#"Bearer realm="http://{}/token",service="fault-proxy""#,
        st.addr
    );
    if let Some(repo) = repository(&req.path) {
        challenge.push_str(&format!(r#",scope="repository:{repo}:pull""#));
    }
    Some(simple(
        401,
        "Unauthorized",
        vec![
            ("WWW-Authenticate".into(), challenge),
            ("Content-Type".into(), "application/json".into()),
        ],
        br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
    ))
}

/// The fault for this request, counting it down.
fn take_fault(st: &State, req: &Request) -> Fault {
    if req.method != "GET" || !req.path.contains("/blobs/") {
        return Fault::None;
    }
    st.blob_gets.fetch_add(1, Ordering::Relaxed);
    let mut a = st.active.lock().unwrap();
    if a.fault == Fault::None {
        return Fault::None;
    }
    match &mut a.remaining {
        Some(0) => return Fault::None,
        Some(n) => *n -= 1,
        None => {}
    }
    st.faulted.fetch_add(1, Ordering::Relaxed);
    a.fault.clone()
}

/// Sleeps up to `d`, waking early when the proxy stops.
fn pause(st: &State, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !st.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10).min(d));
    }
}

/// Serves one client connection: requests one after another.
fn serve(st: &State, client: TcpStream) {
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut r = BufReader::new(read_half);
    let mut w = client;
    for _ in 0..100_000 {
        if st.stop.load(Ordering::Relaxed) {
            return;
        }
        let Some(req) = read_request(&mut r) else {
            return;
        };
        let head = req.method == "HEAD";
        if let Some(resp) = authenticate(st, &req) {
            if write_head(&mut w, &resp, head).is_err() || w.write_all(&resp.body).is_err() {
                return;
            }
            continue;
        }
        let fault = take_fault(st, &req);
        if fault == Fault::Reset {
            let _ = w.shutdown(Shutdown::Both);
            return;
        }
        if let Fault::Status(code) = fault {
            let resp = simple(code, "Injected Fault", Vec::new(), b"fault injected\n");
            if write_head(&mut w, &resp, head).is_err() || w.write_all(&resp.body).is_err() {
                return;
            }
            continue;
        }
        let Ok(mut resp) = forward(&st.upstream, &req) else {
            let resp = simple(502, "Bad Gateway", Vec::new(), b"upstream failed\n");
            let _ = write_head(&mut w, &resp, head);
            let _ = w.write_all(&resp.body);
            return;
        };
        if let Fault::Append(n) = fault
            && resp.status == 200
        {
            resp.body.extend((0..n).map(|i| (i % 251) as u8));
        }
        if write_head(&mut w, &resp, head).is_err() {
            return;
        }
        let half = resp.body.len() / 2;
        let ok = match fault {
            Fault::Truncate => {
                let _ = w.write_all(&resp.body[..half]);
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
            Fault::Stall(d) => {
                let _ = w.write_all(&resp.body[..half]);
                let _ = w.flush();
                pause(st, d);
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
            Fault::Slow(d) => {
                let mut ok = true;
                for piece in resp.body.chunks(8 << 10) {
                    if w.write_all(piece).is_err() {
                        ok = false;
                        break;
                    }
                    pause(st, d);
                }
                ok
            }
            Fault::FlipBits => {
                if matches!(resp.status, 200 | 206) && !resp.body.is_empty() {
                    resp.body[half] ^= 0x10;
                }
                w.write_all(&resp.body).is_ok()
            }
            _ => w.write_all(&resp.body).is_ok(),
        };
        if !ok {
            return;
        }
    }
}
