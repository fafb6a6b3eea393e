//! Observability and mirrors end to end: a lazily run container through real
//! containerd, with the daemon's Prometheus endpoint scraped, layer blob reads
//! sent to a configured mirror, and a mirror that is down falling back to the
//! registry.

use std::process::Command;
use std::time::Duration;

use soci_e2e::*;

/// Sum of every sample of `name` whose labels contain all of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn scrape(addr: &str) -> String {
    let out = run(Command::new(tool("curl")).args(["-fsS", &format!("http://{addr}/metrics")]));
    String::from_utf8(out.stdout).unwrap()
}

/// A converted image in a fresh registry.
fn push_image(dir: &std::path::Path) -> Registry {
    let (tarball, _expected) = build_image(dir, 40);
    let converted = dir.join("img-soci.tar");
    run(Command::new(bin("soci"))
        .args(["convert", "--standalone"])
        .arg(&tarball)
        .arg(&converted));
    let reg = Registry::start(&dir.join("registry"));
    run(Command::new(tool("skopeo"))
        .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", converted.display()))
        .arg(format!("docker://{}/app:soci", reg.addr)));
    reg
}

fn rpull(ctd: &Containerd, reference: &str) {
    run(Command::new(bin("soci"))
        .arg("--address")
        .arg(&ctd.socket)
        .arg("--namespace")
        .arg(&ctd.namespace)
        .args(["image", "rpull", "--plain-http"])
        .arg(reference));
}

/// Read a small and a 5 MiB file of the lazily loaded layer in a container.
fn run_reader(ctd: &Containerd, reference: &str, name: &str) -> String {
    run_sh(
        ctd,
        reference,
        name,
        "cat /app/hello.txt && sha256sum /app/lib/f3.bin >/dev/null && echo read",
    )
}

#[test]
fn metrics_count_lazy_reads_and_mirrors_serve_blob_ranges() {
    let tmp = tempfile::Builder::new()
        .prefix("soci-e2e-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    let reg = push_image(dir);

    // The image is pulled through `registry`; a second proxy in front of the
    // same registry is its mirror.
    let registry = CountingProxy::start(&reg.addr);
    let mirror = CountingProxy::start(&reg.addr);
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::start(
        &dir.join("daemon"),
        &format!(
            "metrics_address = \"{metrics_addr}\"\n\
             [background_fetch]\ndisable = true\n\
             [resolver.host.\"{}\"]\n\
             mirrors = [{{host = \"{}\", insecure = true}}]\n",
            registry.addr, mirror.addr
        ),
    );
    let ctd = Containerd::start(&dir.join("containerd"), &daemon.socket, "soci-e2e-metrics");
    let reference = format!("{}/app:soci", registry.addr);
    rpull(&ctd, &reference);
    let mirror_after_pull = mirror.served();
    let registry_after_pull = registry.served();

    let out = run_reader(&ctd, &reference, "metrics1");
    assert_eq!(out, "hello from a lazily loaded layer\nread\n");

    // Blob range reads went to the mirror only.
    let via_mirror = mirror.served();
    assert!(
        via_mirror > mirror_after_pull + (1 << 20),
        "the mirror served {via_mirror} bytes (after the pull: {mirror_after_pull}); daemon log:\n{}",
        tail(&daemon.proc.log_text(), 40)
    );
    assert_eq!(
        registry.served(),
        registry_after_pull,
        "running the container read nothing from the registry itself"
    );

    let text = scrape(&metrics_addr);
    let fetched = metric(&text, "soci_fs_fetched_bytes_total", &[]);
    let requests = metric(
        &text,
        "soci_fs_operation_duration_milliseconds_count",
        &["operation_type=\"remote_registry_get\""],
    );
    eprintln!("fetched {fetched} bytes in {requests} blob reads; the mirror sent {via_mirror}");
    // The payload the span managers counted is what crossed the mirror, less
    // HTTP framing (headers, multipart boundaries) and the size lookups.
    assert!(fetched > (1 << 20) as f64, "{fetched}");
    assert!(requests >= 1.0);
    assert!(fetched <= via_mirror as f64, "{fetched} > {via_mirror}");
    assert!(
        (via_mirror as f64) <= fetched + requests * 16384.0 + 65536.0,
        "the mirror sent {via_mirror} bytes, the daemon counted {fetched} in {requests} reads"
    );
    assert_eq!(
        metric(&text, "soci_fs_background_fetched_bytes_total", &[]),
        0.0,
        "background fetch is disabled"
    );
    for op in ["lookup", "open", "read"] {
        assert!(
            metric(
                &text,
                "soci_fs_fuse_operation_count",
                &[&format!("operation=\"{op}\"")]
            ) > 0.0,
            "no FUSE {op} counted:\n{text}"
        );
    }
    assert!(
        metric(
            &text,
            "soci_fs_operation_count",
            &["operation_type=\"synchronous_read_count\""]
        ) > 0.0
    );
    assert!(metric(&text, "soci_fs_pull_mode_count", &["mode=\"lazy\""]) >= 1.0);
    // The image's small layers have no zTOC: the daemon unpacks them itself.
    assert!(metric(&text, "soci_fs_pull_mode_count", &["mode=\"local\""]) >= 1.0);
    assert!(
        metric(
            &text,
            "soci_fs_operation_duration_milliseconds_count",
            &["operation_type=\"mount\""]
        ) >= 1.0
    );
    assert_eq!(
        metric(&text, "soci_fs_span_verification_failures_total", &[]),
        0.0
    );
    assert_eq!(
        metric(&text, "soci_fs_file_verification_failures_total", &[]),
        0.0
    );
    assert!(metric(&text, "soci_fs_span_cache_misses_total", &[]) >= 1.0);
    // Upstream's per-layer gauges, for the one lazily mounted layer.
    let size = metric(&text, "soci_fs_layer_size_bytes", &[]);
    let held = metric(&text, "soci_fs_layer_fetched_size_bytes", &[]);
    assert!(size > (20 << 20) as f64, "{size}");
    assert!(
        held > 0.0 && held <= fetched && held < size,
        "{held} of {size}"
    );

    // A second run reads the same spans from the cache, not the network.
    let before = mirror.served();
    let out = run_reader(&ctd, &reference, "metrics2");
    assert_eq!(out, "hello from a lazily loaded layer\nread\n");
    let text2 = scrape(&metrics_addr);
    assert_eq!(
        metric(&text2, "soci_fs_fetched_bytes_total", &[]),
        fetched,
        "nothing new fetched"
    );
    assert!(mirror.served() - before < 65536);
    assert!(
        metric(
            &text2,
            "soci_fs_fuse_operation_count",
            &["operation=\"read\""]
        ) >= metric(
            &text,
            "soci_fs_fuse_operation_count",
            &["operation=\"read\""]
        )
    );
}

#[test]
fn a_mirror_that_is_down_falls_back_to_the_registry() {
    let tmp = tempfile::Builder::new()
        .prefix("soci-e2e-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    let reg = push_image(dir);
    let registry = CountingProxy::start(&reg.addr);
    // Nothing listens on this port.
    let dead = format!("127.0.0.1:{}", free_port());
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::start(
        &dir.join("daemon"),
        &format!(
            "metrics_address = \"{metrics_addr}\"\n\
             [background_fetch]\nsilence_period_msec = 0\nfetch_period_msec = 20\n\
             [resolver.host.\"{}\"]\n\
             mirrors = [{{host = \"{dead}\", insecure = true, request_timeout_sec = 5}}]\n",
            registry.addr
        ),
    );
    let ctd = Containerd::start(&dir.join("containerd"), &daemon.socket, "soci-e2e-mirror");
    let reference = format!("{}/app:soci", registry.addr);
    rpull(&ctd, &reference);
    let after_pull = registry.served();

    let out = run_reader(&ctd, &reference, "fallback1");
    assert_eq!(
        out,
        "hello from a lazily loaded layer\nread\n",
        "daemon log:\n{}",
        tail(&daemon.proc.log_text(), 40)
    );
    let text = scrape(&metrics_addr);
    let fetched = metric(&text, "soci_fs_fetched_bytes_total", &[]);
    // Only the registry can have sent these bytes: the mirror's port is closed.
    let served = registry.served();
    assert!(fetched > (1 << 20) as f64, "{fetched}");
    assert!(
        served as f64 >= fetched,
        "the registry served {served} bytes while the daemon fetched {fetched}"
    );
    assert!(
        served > after_pull,
        "the container's reads reached the registry"
    );
    assert!(metric(&text, "soci_fs_pull_mode_count", &["mode=\"lazy\""]) >= 1.0);

    // The background fetcher (on here) also reads through the fallback and is
    // counted apart.
    let mut last = String::new();
    wait_for("background fetch metrics", Duration::from_secs(90), || {
        last = scrape(&metrics_addr);
        metric(
            &last,
            "soci_fs_operation_count",
            &["operation_type=\"background_span_fetch_count\""],
        ) >= 2.0
    });
    let background = metric(&last, "soci_fs_background_fetched_bytes_total", &[]);
    let all = metric(&last, "soci_fs_fetched_bytes_total", &[]);
    assert!(
        background > 0.0 && background < all,
        "{background} of {all}"
    );
    assert_eq!(
        metric(
            &last,
            "soci_fs_operation_count",
            &["operation_type=\"background_span_fetch_failure_count\""]
        ),
        0.0
    );
}
