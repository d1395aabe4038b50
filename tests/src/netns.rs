//! Test hosts that are not loopback: a network namespace joined to this machine by a veth
//! pair, each on its own /24 of 10.231.0.0/16, so limits, lockouts and address rules can be
//! tested from where users are (loopback is exempt from rate limiting).
//!
//! Host `N` is `10.231.N.2` inside a namespace `authtest-N-<pid>-<claim>`; this machine is
//! `10.231.N.1` on its side of the pair. Every host routes 10.231.0.0/16 to this machine,
//! so a server listening on one host's `.1` address is reachable from all of them, and
//! traffic never leaves the machine. Needs root and iproute2 (`scripts/install-deps.sh`).

use std::net::Ipv4Addr;
use std::process::Command;

use crate::process::HarnessError;

/// One test host. Dropping it deletes the namespace and its veth pair.
#[derive(Debug)]
pub struct TestHost {
    /// The namespace's name.
    pub namespace: String,
    /// The host's address (inside the namespace).
    pub address: Ipv4Addr,
    /// This machine's address on the host's link: a server bound here is reachable from
    /// every test host.
    pub gateway: Ipv4Addr,
    link: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl TestHost {
    /// Makes a new host on the first free /24 (several test processes may make hosts at
    /// once: creating the veth pair is the atomic claim).
    pub fn create() -> Result<Self, HarnessError> {
        let not_ready = |output: String| HarnessError::NotReady {
            service: "test host (ip netns; run as root with iproute2: scripts/install-deps.sh)",
            output,
        };
        let mut last = String::new();
        for n in 1..=250u8 {
            let link = format!("ath{n}");
            let peer = format!("atn{n}");
            if let Err(e) = ip(&["link", "add", &link, "type", "veth", "peer", "name", &peer]) {
                if e.contains("No such file") || e.contains("Operation not permitted") {
                    return Err(not_ready(e));
                }
                last = e;
                continue;
            }
            // The namespace's name is this claim's own, so a host being dropped elsewhere
            // (which deletes its link, then its namespace) never deletes this one.
            let host = Self {
                namespace: format!("authtest-{n}-{}-{}", std::process::id(), next_claim()),
                address: Ipv4Addr::new(10, 231, n, 2),
                gateway: Ipv4Addr::new(10, 231, n, 1),
                link,
            };
            host.configure(&peer).map_err(not_ready)?;
            return Ok(host);
        }
        Err(not_ready(format!("no free 10.231.N.0/24 left: {last}")))
    }

    fn configure(&self, peer: &str) -> Result<(), String> {
        let ns = self.namespace.as_str();
        // Namespaces of this /24 left by a killed run go: whoever made them no longer
        // holds the link, which this claim now does.
        if let Some(prefix) = ns.rsplitn(3, '-').nth(2) {
            for stale in namespaces()
                .iter()
                .filter(|n| n.starts_with(&format!("{prefix}-")))
            {
                let _ = ip(&["netns", "del", stale]);
            }
        }
        ip(&["netns", "add", ns])?;
        ip(&["link", "set", peer, "netns", ns])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", self.gateway),
            "dev",
            &self.link,
        ])?;
        ip(&["link", "set", &self.link, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &format!("{}/24", self.address), "dev", peer])?;
        inside(&["link", "set", peer, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        inside(&[
            "route",
            "add",
            "10.231.0.0/16",
            "via",
            &self.gateway.to_string(),
        ])?;
        Ok(())
    }

    /// `program` run inside the host's namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.namespace, program]);
        c
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // The link first: while it exists the /24 is this host's claim, so nobody reuses
        // its names before both are gone (deleting one end of the pair deletes both).
        let _ = ip(&["link", "del", &self.link]);
        let _ = ip(&["netns", "del", &self.namespace]);
    }
}

/// A number for each claim this process makes.
fn next_claim() -> u64 {
    static CLAIMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    CLAIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The names of the network namespaces there are.
fn namespaces() -> Vec<String> {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
