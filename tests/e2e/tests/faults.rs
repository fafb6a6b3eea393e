//! Registry faults never turn into wrong bytes. A fault-injecting proxy sits
//! between `soci-snapshotter-grpc` and the real registry; a lazily mounted
//! layer is read file by file while the proxy resets connections, answers
//! 500/503, truncates, stalls, slows down or flips bits in blob responses.
//! Every read gives exactly the packed bytes or fails with EIO, the daemon
//! stays up, and once the fault stops every file reads back exactly. A
//! transient fault is absorbed by retries. Bearer tokens that die while a
//! layer is in use are renewed on the 401.

use std::path::{Path, PathBuf};
use std::time::Duration;

use soci_e2e::direct::{
    PushedImage, ReadTally, fuse_mounts, prepare_remote, push_converted, read_all,
};
use soci_e2e::faults::{Fault, FaultProxy};
use soci_e2e::*;

/// Short retries and timeouts so that a persistent fault fails a read quickly.
const CONFIG: &str = "\
[background_fetch]
disable = true
[http]
ResponseHeaderTimeoutMsec = 1000
DialTimeoutMsec = 1000
[blob]
max_retries = 2
min_wait_msec = 10
max_wait_msec = 50
";

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    reg: Registry,
    image: PushedImage,
}

fn setup() -> Setup {
    let tmp = tempfile::Builder::new()
        .prefix("soci-e2e-faults-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path().to_path_buf();
    let reg = Registry::start(&dir.join("registry"));
    let image = push_converted(&dir, &reg, "app:soci", 12, 256 << 10);
    Setup {
        _tmp: tmp,
        dir,
        reg,
        image,
    }
}

/// A daemon with its own root (a cold span cache) and the big layer mounted
/// through `proxy`.
async fn mounted(s: &Setup, name: &str, proxy: &FaultProxy) -> (Daemon, PathBuf) {
    let daemon = Daemon::start(&s.dir.join(name), CONFIG);
    let log = daemon.proc.log_text();
    assert!(
        !log.contains("unknown configuration key"),
        "the test's config.toml has a key the daemon ignores:\n{}",
        tail(&log, 20)
    );
    let layer = s.image.big_layer();
    if let Err(e) = prepare_remote(
        &daemon.socket,
        "e2e-faults",
        &format!("{name}-extract"),
        &proxy.addr,
        &s.image,
        &layer,
    )
    .await
    {
        panic!(
            "{name}: prepare failed: {e}\ndaemon log:\n{}",
            tail(&daemon.proc.log_text(), 40)
        );
    }
    let mounts = fuse_mounts(&daemon.root);
    assert_eq!(mounts.len(), 1, "{name}: {mounts:?}");
    let mnt = mounts[0].clone();
    (daemon, mnt)
}

fn alive(daemon: &mut Daemon, phase: &str) {
    let child = daemon.proc.child.as_mut().expect("daemon running");
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "{phase}: the daemon exited\n{}",
        tail(&daemon.proc.log_text(), 40)
    );
}

/// Under `fault` (applied to every blob GET, or to the next `count`), reads
/// of the first `under` files give exact bytes or EIO; after the fault, every
/// file reads back exactly.
async fn phase(s: &Setup, name: &str, fault: Fault, count: Option<u64>, under: usize) -> ReadTally {
    let started = std::time::Instant::now();
    let proxy = FaultProxy::start(&s.reg.addr);
    let (mut daemon, mnt) = mounted(s, name, &proxy).await;
    match count {
        Some(n) => proxy.set_for(fault.clone(), n),
        None => proxy.set(fault.clone()),
    }
    let files = s.image.files.clone().into_iter().take(under).collect();
    let m = mnt.clone();
    let label = format!("{name} ({fault:?})");
    let l = label.clone();
    let under = tokio::task::spawn_blocking(move || read_all(&m, &files, &l))
        .await
        .unwrap();
    eprintln!(
        "{label}: {under:?}, {} of {} blob GETs faulted, {:?}",
        proxy.faulted(),
        proxy.blob_gets(),
        started.elapsed()
    );
    assert!(proxy.faulted() > 0, "{label}: the fault was never applied");
    alive(&mut daemon, &label);
    proxy.clear();
    let files = s.image.files.clone();
    let l = format!("{label}, after");
    let after = tokio::task::spawn_blocking(move || read_all(&mnt, &files, &l))
        .await
        .unwrap();
    assert_eq!(
        after.exact,
        s.image.files.len(),
        "{label}: after the fault, every file reads back exactly\n{}",
        tail(&daemon.proc.log_text(), 30)
    );
    alive(&mut daemon, &label);
    under
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_give_exact_bytes_or_eio_and_the_daemon_recovers() {
    let s = setup();
    let all = s.image.files.len();
    // Persistent faults: reads fail with EIO (at least some), never with other
    // bytes. Each stalled request costs the read timeout: three files suffice.
    for (name, fault, under) in [
        ("reset", Fault::Reset, all),
        ("status500", Fault::Status(500), all),
        ("status503", Fault::Status(503), all),
        ("truncate", Fault::Truncate, all),
        ("flip", Fault::FlipBits, all),
        ("stall", Fault::Stall(Duration::from_secs(5)), 3),
    ] {
        let t = phase(&s, name, fault, None, under).await;
        assert!(
            t.eio > 0,
            "{name}: a persistent fault failed no read: {t:?}"
        );
    }
    // Transient faults and slow bodies: retries absorb them.
    for (name, fault, n) in [
        ("reset-once", Fault::Reset, 1),
        ("status503-once", Fault::Status(503), 1),
        ("truncate-once", Fault::Truncate, 1),
        ("flip-once", Fault::FlipBits, 1),
        ("slow", Fault::Slow(Duration::from_millis(2)), 1_000_000),
    ] {
        let t = phase(&s, name, fault, Some(n), all).await;
        assert_eq!(
            t.exact,
            s.image.files.len(),
            "{name}: a transient fault reached a reader: {t:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_bearer_tokens_are_renewed_while_a_layer_is_read() {
    let s = setup();
    let proxy = FaultProxy::start(&s.reg.addr);
    let ttl = Duration::from_secs(2);
    proxy.require_bearer(ttl);
    let (mut daemon, mnt) = mounted(&s, "bearer", &proxy).await;
    let issued = proxy.tokens_issued();
    assert!(issued >= 1, "the daemon never asked for a token");

    let (first, rest): (Vec<_>, Vec<_>) = s
        .image
        .files
        .clone()
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let first = first.into_iter().map(|(_, f)| f).collect();
    let rest = rest.into_iter().map(|(_, f)| f).collect();
    let m = mnt.clone();
    let t = tokio::task::spawn_blocking(move || read_all(&m, &first, "bearer, fresh token"))
        .await
        .unwrap();
    assert_eq!(t.eio, 0, "{t:?}\n{}", tail(&daemon.proc.log_text(), 30));

    // Every token the daemon holds is now dead, though it was told an hour.
    tokio::time::sleep(ttl + Duration::from_millis(500)).await;
    let challenges = proxy.challenges();
    let m = mnt.clone();
    let t = tokio::task::spawn_blocking(move || read_all(&m, &rest, "bearer, expired token"))
        .await
        .unwrap();
    assert_eq!(
        t.eio,
        0,
        "reads after the token expired failed: {t:?}\n{}",
        tail(&daemon.proc.log_text(), 30)
    );
    assert!(
        proxy.challenges() > challenges && proxy.tokens_issued() > issued,
        "the daemon did not re-authenticate: {} challenges, {} tokens",
        proxy.challenges(),
        proxy.tokens_issued()
    );
    alive(&mut daemon, "bearer");
    assert!(Path::new(&mnt).exists());
}

/// A registry that sends a zTOC longer than the SOCI index says: the daemon
/// stops reading at the first extra byte, mounts nothing, and leaves the
/// layer to containerd; with an honest registry the same layer mounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_ztoc_is_refused_before_mounting() {
    let s = setup();
    let proxy = FaultProxy::start(&s.reg.addr);
    proxy.set(Fault::Append(1 << 20));
    let daemon = Daemon::start(&s.dir.join("oversized"), CONFIG);
    let layer = s.image.big_layer();
    let e = prepare_remote(
        &daemon.socket,
        "e2e-faults",
        "oversized-extract",
        &proxy.addr,
        &s.image,
        &layer,
    )
    .await
    .expect_err("the layer must not be mounted");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    assert!(proxy.faulted() > 0);
    assert!(fuse_mounts(&daemon.root).is_empty());
    let log = daemon.proc.log_text();
    assert!(
        log.contains("bytes the SOCI index says"),
        "the refusal is not logged:\n{}",
        tail(&log, 20)
    );
    drop(daemon);

    proxy.clear();
    let (_daemon, mnt) = mounted(&s, "honest", &proxy).await;
    let files = s.image.files.clone();
    let t = tokio::task::spawn_blocking(move || read_all(&mnt, &files, "honest"))
        .await
        .unwrap();
    assert_eq!(t.exact, s.image.files.len());
}
