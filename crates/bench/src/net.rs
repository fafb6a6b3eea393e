//! The registry's network: a namespace made by the benchmark, reached from the
//! host over a veth pair (10.201.N.1 on the host, 10.201.N.2 inside), with the
//! bandwidth shaped by `tc ... tbf` on both ends. Removed on drop.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Prefix of the namespaces and links this benchmark makes.
pub const PREFIX: &str = "sbench";

pub struct Netns {
    pub name: String,
    pub host_if: String,
    pub ns_if: String,
    pub host_ip: String,
    pub ns_ip: String,
}

fn ip(args: &[&str]) -> Result<()> {
    sh("ip", args)
}

fn sh(cmd: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("run {cmd} (install iproute2: scripts/deps.sh)"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Remove namespaces left by earlier runs of this benchmark whose process is gone.
pub fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|p| p.parse::<u32>().ok())
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
            let _ = Command::new("ip")
                .args(["link", "del", &format!("{PREFIX}h{pid}")])
                .status();
        }
    }
}

impl Netns {
    /// Make the namespace and the link (named after this process).
    pub fn create() -> Result<Netns> {
        remove_stale();
        let pid = std::process::id();
        let subnet = 20 + pid % 200;
        let n = Netns {
            name: format!("{PREFIX}{pid}"),
            host_if: format!("{PREFIX}h{pid}"),
            ns_if: format!("{PREFIX}n{pid}"),
            host_ip: format!("10.201.{subnet}.1"),
            ns_ip: format!("10.201.{subnet}.2"),
        };
        ip(&["netns", "add", &n.name])?;
        // From here on, drop removes what was made.
        ip(&[
            "link", "add", &n.host_if, "type", "veth", "peer", "name", &n.ns_if,
        ])?;
        ip(&["link", "set", &n.ns_if, "netns", &n.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", n.host_ip),
            "dev",
            &n.host_if,
        ])?;
        ip(&["link", "set", &n.host_if, "up"])?;
        n.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", n.ns_ip),
            "dev",
            &n.ns_if,
        ])?;
        n.exec_ok(&["ip", "link", "set", &n.ns_if, "up"])?;
        n.exec_ok(&["ip", "link", "set", "lo", "up"])?;
        Ok(n)
    }

    fn exec_ok(&self, args: &[&str]) -> Result<()> {
        let mut a = vec!["netns", "exec", &self.name];
        a.extend_from_slice(args);
        ip(&a)
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Shape both directions to `mbit` (0 removes the shaping).
    pub fn shape(&self, mbit: u64) -> Result<()> {
        let _ = Command::new("tc")
            .args(["qdisc", "del", "dev", &self.host_if, "root"])
            .output();
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "tc",
                "qdisc",
                "del",
                "dev",
                &self.ns_if,
                "root",
            ])
            .output();
        if mbit == 0 {
            return Ok(());
        }
        // The bucket must hold a full (GSO) packet and 10 ms of traffic.
        let burst = (mbit * 1_000_000 / 8 / 100).max(256 * 1024);
        let rate = format!("{mbit}mbit");
        let burst = format!("{burst}b");
        let tbf = [
            "root", "tbf", "rate", &rate, "burst", &burst, "latency", "100ms",
        ];
        let mut a = vec!["qdisc", "add", "dev", &self.host_if];
        a.extend_from_slice(&tbf);
        sh("tc", &a)?;
        let mut a = vec![
            "netns",
            "exec",
            &self.name,
            "tc",
            "qdisc",
            "add",
            "dev",
            &self.ns_if,
        ];
        a.extend_from_slice(&tbf);
        ip(&a)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
