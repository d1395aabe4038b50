//! HAProxy (Debian's package) in front of a server, as deployments put it: passing TCP
//! through with a PROXY protocol header (`send-proxy`, `send-proxy-v2`,
//! `send-proxy-v2-ssl`) or none, or terminating TLS for plain HTTP behind it with
//! `option forwardfor` and `X-Forwarded-Proto`.
//!
//! Every frontend listens on one free port on each of the given addresses (loopback, or a
//! test host's [`gateway`](crate::netns::TestHost::gateway) address, reachable from every
//! test host), and forwards to its backend (a server on 127.0.0.1), so the server sees the
//! proxy's connections from 127.0.0.1. HAProxy runs in the foreground in master-worker
//! mode (its master says `Loading success.` once the worker serves); dropping the handle
//! stops it by the master's process id, which stops the worker too.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{HarnessError, ServiceProcess, find_program, free_port, process_alive};

/// The PROXY protocol header HAProxy sends the backend before the client's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// None: the backend sees HAProxy as its client.
    None,
    /// Version 1, text (`send-proxy`).
    V1,
    /// Version 2, binary (`send-proxy-v2`).
    V2,
    /// Version 2 with the SSL TLVs, whose client-SSL bit says whether the client spoke TLS
    /// to HAProxy (`send-proxy-v2-ssl`).
    V2Ssl,
}

impl ProxyHeader {
    fn server_option(self) -> &'static str {
        match self {
            Self::None => "",
            Self::V1 => " send-proxy",
            Self::V2 => " send-proxy-v2",
            Self::V2Ssl => " send-proxy-v2-ssl",
        }
    }
}

/// One frontend and its backend.
#[derive(Debug, Clone)]
pub enum Frontend {
    /// TCP mode: the client's bytes (a TLS handshake with the backend too) passed
    /// through to `backend`, after a PROXY header as `header` says.
    Tcp {
        /// Where HAProxy forwards to.
        backend: SocketAddr,
        /// The header it sends first.
        header: ProxyHeader,
    },
    /// TCP mode terminating TLS (a certificate for `localhost` from
    /// [`crate::pki::run_ca`]) and passing the plaintext to `backend`, after a PROXY
    /// header as `header` says ([`ProxyHeader::V2Ssl`] tells the backend the client spoke
    /// TLS).
    TlsTcp {
        /// Where HAProxy forwards to.
        backend: SocketAddr,
        /// The header it sends first.
        header: ProxyHeader,
    },
    /// HTTP mode terminating TLS (a certificate for `localhost` from
    /// [`crate::pki::run_ca`]) in front of a plain HTTP/1.1 `backend`: `option
    /// forwardfor` (appends the client to `X-Forwarded-For`) and `X-Forwarded-Proto:
    /// https` (set, replacing any the client sent).
    Https {
        /// Where HAProxy forwards to.
        backend: SocketAddr,
    },
    /// HTTP mode without TLS in front of a plain HTTP/1.1 `backend`: `option forwardfor`,
    /// and any `X-Forwarded-Proto` the client sent removed, so nothing says TLS.
    Http {
        /// Where HAProxy forwards to.
        backend: SocketAddr,
    },
}

/// A running HAProxy. Dropping it stops the process and deletes its directory.
#[derive(Debug)]
pub struct HaProxy {
    dir: tempfile::TempDir,
    /// The addresses every frontend listens on.
    pub binds: Vec<IpAddr>,
    /// Each frontend's port (on every address of [`Self::binds`]), in the order given.
    pub ports: Vec<u16>,
    /// The configuration it runs.
    pub config: String,
    process: ServiceProcess,
}

impl HaProxy {
    /// Starts HAProxy with `frontends`, each on a free port on every address of `binds`.
    pub fn start(binds: &[IpAddr], frontends: &[Frontend]) -> Result<Self, HarnessError> {
        let haproxy = find_program("haproxy", &[], "the reverse proxy in front of the gateway")?;
        let dir = tempfile::Builder::new()
            .prefix("auth-haproxy-")
            .tempdir()
            .map_err(HarnessError::io("create the HAProxy directory"))?;
        let needs_tls = frontends
            .iter()
            .any(|f| matches!(f, Frontend::TlsTcp { .. } | Frontend::Https { .. }));
        let pem = if needs_tls {
            Some(certificate(dir.path())?)
        } else {
            None
        };
        // A port free on 127.0.0.1 a moment ago may be taken by the time HAProxy binds
        // it, on one of its addresses: a few tries with new ports.
        let mut last = None;
        for _ in 0..3 {
            let ports = frontends
                .iter()
                .map(|_| free_port())
                .collect::<Result<Vec<_>, _>>()?;
            let config = configuration(binds, frontends, &ports, pem.as_deref());
            let file = dir.path().join("haproxy.cfg");
            std::fs::write(&file, &config).map_err(HarnessError::io("write haproxy.cfg"))?;
            let mut cmd = Command::new(&haproxy);
            cmd.args(["-W", "-db", "-f"]).arg(&file);
            match ServiceProcess::spawn("haproxy", &mut cmd, "Loading success.") {
                Ok(process) => {
                    return Ok(Self {
                        dir,
                        binds: binds.to_vec(),
                        ports,
                        config,
                        process,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| HarnessError::NotReady {
            service: "haproxy",
            output: String::new(),
        }))
    }

    /// The port of frontend `i` (in the order given to [`Self::start`]).
    ///
    /// # Panics
    /// When there is no frontend `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    /// The run CA's certificate as a file (`--cacert` for the TLS frontends).
    pub fn ca_file(&self) -> Result<PathBuf, HarnessError> {
        let path = self.dir.path().join("run-ca.crt");
        std::fs::write(&path, crate::pki::run_ca()?.pem())
            .map_err(HarnessError::io("write run-ca.crt"))?;
        Ok(path)
    }

    /// What HAProxy printed so far (its notices and alerts).
    pub fn output(&self) -> String {
        self.process.output()
    }

    /// The master's process id.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        // SIGTERM to the master stops its worker at once and then the master; the master
        // is this process's child, so it stays a zombie (which counts as gone) until
        // ServiceProcess reaps it. SIGKILL (the ServiceProcess) if it lingers.
        if let Some(pid) = self.process.pid() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let until = Instant::now() + Duration::from_secs(10);
            while process_alive(pid) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.process.stop();
    }
}

/// The installed HAProxy's version (`2.6.12-1+deb12u4`).
pub fn version() -> Result<String, HarnessError> {
    let haproxy = find_program("haproxy", &[], "the reverse proxy in front of the gateway")?;
    let out = crate::process::run(Command::new(haproxy).arg("-v"), None)?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_owned())
}

/// curl arguments and the URL of `path` over TLS at `ip`:`port`, verified with `ca` for
/// the name `localhost` whatever the address (`--connect-to`; IPv6 in brackets).
pub fn https_url(ip: IpAddr, port: u16, ca: &Path, path: &str) -> (Vec<String>, String) {
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    (
        vec![
            "--cacert".into(),
            ca.display().to_string(),
            "--connect-to".into(),
            format!("localhost:{port}:{host}:{port}"),
        ],
        format!("https://localhost:{port}{path}"),
    )
}

/// The URL of `path` over plain HTTP at `ip`:`port`.
pub fn http_url(ip: IpAddr, port: u16, path: &str) -> String {
    format!("http://{}{path}", SocketAddr::new(ip, port))
}

/// A certificate for `localhost` from the run CA with its key, in one PEM file as HAProxy
/// reads it (`crt`).
fn certificate(dir: &Path) -> Result<PathBuf, HarnessError> {
    let files = crate::pki::run_ca()?.server_in(dir, "haproxy")?;
    let mut pem = std::fs::read(&files.cert).map_err(HarnessError::io("read haproxy.crt"))?;
    pem.extend(std::fs::read(&files.key).map_err(HarnessError::io("read haproxy.key"))?);
    let path = dir.join("haproxy.pem");
    std::fs::write(&path, pem).map_err(HarnessError::io("write haproxy.pem"))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(HarnessError::io("make haproxy.pem private"))?;
    Ok(path)
}

/// The whole configuration. Traffic is not logged (a benchmark's thousands of connections
/// would be); notices and alerts go to standard error's neighbour, standard output.
fn configuration(
    binds: &[IpAddr],
    frontends: &[Frontend],
    ports: &[u16],
    pem: Option<&Path>,
) -> String {
    let mut config = String::from(
        "global\n    log stdout format raw local0 notice\n    maxconn 4096\n\n\
         defaults\n    log global\n    mode tcp\n    timeout connect 5s\n    \
         timeout client 120s\n    timeout server 120s\n    timeout http-request 30s\n\n",
    );
    let pem = pem.map(|p| p.display().to_string()).unwrap_or_default();
    for (i, (frontend, port)) in frontends.iter().zip(ports).enumerate() {
        let (mode, tls, backend, header, http) = match frontend {
            Frontend::Tcp { backend, header } => ("tcp", false, backend, *header, ""),
            Frontend::TlsTcp { backend, header } => ("tcp", true, backend, *header, ""),
            Frontend::Https { backend } => (
                "http",
                true,
                backend,
                ProxyHeader::None,
                "    option forwardfor\n    http-request set-header X-Forwarded-Proto https\n",
            ),
            Frontend::Http { backend } => (
                "http",
                false,
                backend,
                ProxyHeader::None,
                "    option forwardfor\n    http-request del-header X-Forwarded-Proto\n",
            ),
        };
        config.push_str(&format!("frontend f{i}\n    mode {mode}\n"));
        for ip in binds {
            let ssl = if tls {
                format!(" ssl crt {pem}")
            } else {
                String::new()
            };
            config.push_str(&format!("    bind {}{ssl}\n", SocketAddr::new(*ip, *port)));
        }
        config.push_str(http);
        config.push_str(&format!(
            "    default_backend b{i}\n\nbackend b{i}\n    mode {mode}\n    server s{i} {backend}{}\n\n",
            header.server_option()
        ));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_names_each_frontend_its_binds_and_its_header() {
        let backend: SocketAddr = "127.0.0.1:5432".parse().unwrap_or_else(|e| panic!("{e}"));
        let config = configuration(
            &[IpAddr::from([127, 0, 0, 1]), IpAddr::from([10, 231, 1, 1])],
            &[
                Frontend::Tcp {
                    backend,
                    header: ProxyHeader::V2,
                },
                Frontend::Https { backend },
            ],
            &[1000, 1001],
            Some(Path::new("/x/haproxy.pem")),
        );
        for line in [
            "bind 127.0.0.1:1000\n",
            "bind 10.231.1.1:1000\n",
            "server s0 127.0.0.1:5432 send-proxy-v2\n",
            "bind 10.231.1.1:1001 ssl crt /x/haproxy.pem\n",
            "option forwardfor\n",
            "http-request set-header X-Forwarded-Proto https\n",
            "server s1 127.0.0.1:5432\n",
        ] {
            assert!(config.contains(line), "no `{line}` in:\n{config}");
        }
    }
}
