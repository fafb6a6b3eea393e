//! An HTTP/1.1 proxy on 127.0.0.1 that adds a fixed delay to every request and
//! counts requests, range requests and the bytes sent back: the ground truth
//! for "bytes fetched". (`tc netem` is not available on the benchmark machine,
//! so latency is added here; bandwidth is shaped with `tbf` on the veth link.)

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;

/// Counters of the proxy.
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub range_requests: AtomicU64,
    pub bytes_down: AtomicU64,
    pub connections: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub requests: u64,
    pub range_requests: u64,
    pub bytes_down: u64,
    pub connections: u64,
}

pub struct LatencyProxy {
    pub addr: String,
    counters: Arc<Counters>,
    latency_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl LatencyProxy {
    pub fn start(upstream: &str) -> Result<LatencyProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        listener.set_nonblocking(true)?;
        let counters = Arc::new(Counters::default());
        let latency_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, l, s, up) = (
            counters.clone(),
            latency_ms.clone(),
            stop.clone(),
            upstream.to_string(),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let _ = client.set_nodelay(true);
                        let Ok(server) = TcpStream::connect(&up) else {
                            continue;
                        };
                        let _ = server.set_nodelay(true);
                        c.connections.fetch_add(1, Ordering::Relaxed);
                        let (c, l) = (c.clone(), l.clone());
                        std::thread::spawn(move || relay(client, server, c, l));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Ok(LatencyProxy {
            addr,
            counters,
            latency_ms,
            stop,
        })
    }

    pub fn set_latency_ms(&self, ms: u64) {
        self.latency_ms.store(ms, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        let c = &self.counters;
        Counts {
            requests: c.requests.load(Ordering::Relaxed),
            range_requests: c.range_requests.load(Ordering::Relaxed),
            bytes_down: c.bytes_down.load(Ordering::Relaxed),
            connections: c.connections.load(Ordering::Relaxed),
        }
    }
}

impl Counts {
    /// Counts since `before`.
    pub fn since(self, before: Counts) -> Counts {
        Counts {
            requests: self.requests - before.requests,
            range_requests: self.range_requests - before.range_requests,
            bytes_down: self.bytes_down - before.bytes_down,
            connections: self.connections - before.connections,
        }
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Find the end of the request head (`\r\n\r\n`) in `buf`.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// `(is a range request, body length)` of a request head.
pub fn parse_head(head: &[u8]) -> (bool, u64) {
    let text = String::from_utf8_lossy(head);
    let mut range = false;
    let mut body = 0;
    for line in text.split("\r\n").skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = true;
            } else if k.eq_ignore_ascii_case("content-length") {
                body = v.trim().parse().unwrap_or(0);
            }
        }
    }
    (range, body)
}

fn relay(client: TcpStream, server: TcpStream, c: Arc<Counters>, latency: Arc<AtomicU64>) {
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let cc = c.clone();
    // Requests: read each head, wait the added latency, forward it (and any body).
    let up = std::thread::spawn(move || {
        let mut buf: Vec<u8> = Vec::with_capacity(8192);
        let mut chunk = [0u8; 16384];
        'conn: loop {
            let end = loop {
                if let Some(e) = head_end(&buf) {
                    break e;
                }
                if buf.len() > 1 << 20 {
                    break 'conn;
                }
                match c_read.read(&mut chunk) {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let (range, mut body) = parse_head(&buf[..end]);
            cc.requests.fetch_add(1, Ordering::Relaxed);
            if range {
                cc.range_requests.fetch_add(1, Ordering::Relaxed);
            }
            let ms = latency.load(Ordering::Relaxed);
            if ms > 0 {
                std::thread::sleep(Duration::from_millis(ms));
            }
            if s_write.write_all(&buf[..end]).is_err() {
                break;
            }
            buf.drain(..end);
            // Forward the body (pushes do not go through the proxy, but stay correct).
            while body > 0 {
                if buf.is_empty() {
                    match c_read.read(&mut chunk) {
                        Ok(0) | Err(_) => break 'conn,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let n = (body as usize).min(buf.len());
                if s_write.write_all(&buf[..n]).is_err() {
                    break 'conn;
                }
                buf.drain(..n);
                body -= n as u64;
            }
        }
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let mut buf = vec![0u8; 65536];
    loop {
        match s_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                c.bytes_down.fetch_add(n as u64, Ordering::Relaxed);
                if c_write.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    // The registry closed: end the client side too, which ends the request thread.
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = up.join();
}
