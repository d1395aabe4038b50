//! Redis servers on free loopback ports, without persistence: a plain one, a secured one
//! (TLS only, the `default` user off, one ACL user), and a three-node Redis Cluster, plain
//! or secured.
//!
//! [`Redis::command`] and [`RedisCluster::command`] speak RESP themselves (over rustls for
//! a secured server, authenticating as the ACL user), so a reply reads the same whether the
//! server is plain or secured, single or a cluster; [`Redis::cli`] and [`RedisCluster::cli`]
//! give a `redis-cli` already pointed at the server for what a test wants to see a real
//! client do.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;

use crate::pki::{ClientFiles, TestCa};
use crate::process::{HarnessError, READY_TIMEOUT, ServiceProcess, find_program, free_port};

/// What the harness needs Redis for, in a missing-program message.
const PURPOSE: &str = "shared lockout counters and sessions";

/// The ACL user of a secured server or cluster.
const ACL_USER: &str = "gateway";

/// How long [`Redis::command`] waits for a reply (a paused server never sends one).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Redirects [`RedisCluster::command`] follows before giving up (a stable cluster needs one).
const MAX_REDIRECTS: usize = 5;

/// The `redis-cli` program, or an error naming `scripts/install-deps.sh`.
pub fn redis_cli() -> Result<PathBuf, HarnessError> {
    find_program(
        "redis-cli",
        &[],
        "creating Redis clusters and talking to Redis as a client",
    )
}

/// A running Redis server. Dropping it stops the server and deletes its directory.
pub struct Redis {
    // Declared before `dir`: the server is stopped before its directory is removed.
    node: Node,
    security: Option<Security>,
    dir: TempDir,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("url", &self.url())
            .field("pid", &self.pid())
            .field("security", &self.security)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Redis {
    /// Starts a plain server: RESP over TCP, no password.
    pub fn start() -> Result<Self, HarnessError> {
        Self::start_with(None)
    }

    /// Starts a secured server: TLS only (its certificate issued by `ca` for 127.0.0.1 and
    /// `localhost`, clients not asked for one), the `default` user off, and the ACL user
    /// [`Self::acl_user`] with a random password allowed everything.
    pub fn start_secured(ca: &TestCa) -> Result<Self, HarnessError> {
        Self::start_with(Some(ca))
    }

    fn start_with(ca: Option<&TestCa>) -> Result<Self, HarnessError> {
        let dir = tempdir("auth-redis-")?;
        let security = ca.map(|ca| Security::new(ca, dir.path())).transpose()?;
        let node = Node::start(dir.path(), |port| {
            Ok(server_config(dir.path(), port, security.as_ref()))
        })?;
        Ok(Self {
            node,
            security,
            dir,
        })
    }

    /// The port on 127.0.0.1 (the TLS port of a secured server, which has no other).
    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://127.0.0.1:<port>` for a secured server.
    pub fn url(&self) -> String {
        url(self.node.port, self.security.as_ref())
    }

    /// The server's process id; `None` while it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.node.process.pid()
    }

    /// The ACL user of a secured server (`gateway`).
    pub fn acl_user(&self) -> Option<&str> {
        self.security.as_ref().map(|_| ACL_USER)
    }

    /// The ACL user's password, for a secured server.
    pub fn acl_password(&self) -> Option<&str> {
        self.security.as_ref().map(|s| s.password.as_str())
    }

    /// A PEM file with the CA certificate that issued a secured server's certificate.
    pub fn ca_file(&self) -> Option<&Path> {
        self.security.as_ref().map(|s| s.ca_file.as_path())
    }

    /// What the server has printed since it was last started (its log).
    pub fn output(&self) -> String {
        self.node.process.output()
    }

    /// Sends one command (RESP array of bulk strings), as the ACL user over TLS for a
    /// secured server, and returns the reply: a bulk string's value, otherwise its first
    /// line (`+PONG`, `:4`, `$-1`, `-WRONGTYPE ...`, `*2`).
    pub fn command(&self, args: &[&str]) -> Result<String, HarnessError> {
        Connection::open(self.node.port, self.security.as_ref())?.send(&[args])
    }

    /// A `redis-cli` for this server (`-h 127.0.0.1 -p <port>`, and for a secured one
    /// `--tls --cacert <ca> --user gateway` with the password in `REDISCLI_AUTH`); a test
    /// adds the command and may override any of it.
    pub fn cli(&self) -> Result<Command, HarnessError> {
        cli(self.node.port, self.security.as_ref())
    }

    /// Stops the server (SIGKILL, as a crash would) and waits for it to exit; idempotent.
    pub fn stop(&mut self) {
        self.node.process.stop();
    }

    /// Starts the server again, stopping it first if it runs, on the same port with the
    /// same configuration; its data is gone (nothing is persisted).
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.node.restart()
    }

    /// Suspends the server (SIGSTOP): connections are accepted by the kernel but never
    /// answered, as with a hung server rather than a dead one.
    pub fn pause(&self) -> Result<(), HarnessError> {
        self.node.signal("STOP")
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) -> Result<(), HarnessError> {
        self.node.signal("CONT")
    }
}

/// A running three-node Redis Cluster (three masters, no replicas). Dropping it stops the
/// nodes and deletes their directory.
pub struct RedisCluster {
    // Declared before `dir`: the nodes are stopped before their directory is removed.
    nodes: Vec<Node>,
    security: Option<Security>,
    dir: TempDir,
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("urls", &self.urls())
            .field("pids", &self.pids())
            .field("security", &self.security)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl RedisCluster {
    /// The number of nodes.
    pub const NODES: usize = 3;

    /// Starts three nodes in cluster mode, joins them with `redis-cli --cluster create`
    /// and waits until every node reports `cluster_state:ok`. With `ca`, every node is
    /// secured as [`Redis::start_secured`] is, and the cluster bus uses TLS too.
    pub fn start(ca: Option<&TestCa>) -> Result<Self, HarnessError> {
        let cli = redis_cli()?;
        let dir = tempdir("auth-redis-cluster-")?;
        let security = ca.map(|ca| Security::new(ca, dir.path())).transpose()?;
        let mut nodes = Vec::with_capacity(Self::NODES);
        for i in 1..=Self::NODES {
            let node_dir = dir.path().join(format!("node{i}"));
            std::fs::create_dir(&node_dir)
                .map_err(HarnessError::io("create a Redis Cluster node's directory"))?;
            nodes.push(Node::start(&node_dir, |port| {
                cluster_config(&node_dir, port, security.as_ref())
            })?);
        }
        let cluster = Self {
            nodes,
            security,
            dir,
        };
        cluster.create(&cli)?;
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// Assigns the slots to the three nodes and has them meet; bounded, since redis-cli
    /// waits for the join forever when the nodes cannot talk over the bus.
    fn create(&self, cli: &Path) -> Result<(), HarnessError> {
        let mut cmd = Command::new(cli);
        add_security_args(&mut cmd, self.security.as_ref());
        cmd.args(["--cluster", "create"])
            .args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"]);
        // Its last line on success; waiting for it bounds the wait by READY_TIMEOUT.
        let mut create = ServiceProcess::spawn(
            "redis-cli --cluster create",
            &mut cmd,
            "All 16384 slots covered",
        )
        .map_err(|e| self.with_logs(e))?;
        match create.wait_exit(READY_TIMEOUT) {
            Some(status) if status.success() => Ok(()),
            status => Err(HarnessError::Command {
                command: "redis-cli --cluster create".to_owned(),
                status: status.map_or_else(|| "still running".to_owned(), |s| s.to_string()),
                output: create.output(),
            }),
        }
    }

    /// `error` followed by the nodes' logs, which say why they could not join.
    fn with_logs(&self, error: HarnessError) -> HarnessError {
        let logs: String = self
            .nodes
            .iter()
            .map(|n| format!("\nredis-server on port {}:\n{}", n.port, n.process.output()))
            .collect();
        HarnessError::NotReady {
            service: "redis cluster",
            output: format!("{error}{logs}"),
        }
    }

    /// Waits until every node says `cluster_state:ok` (the nodes learn of each other's
    /// slots over the bus a moment after `--cluster create` returns).
    fn wait_ready(&self) -> Result<(), HarnessError> {
        let until = Instant::now() + READY_TIMEOUT;
        for node in &self.nodes {
            loop {
                let info = Connection::open(node.port, self.security.as_ref())
                    .and_then(|mut c| c.send(&[&["CLUSTER", "INFO"]]))
                    .unwrap_or_else(|e| e.to_string());
                if info.contains("cluster_state:ok") {
                    break;
                }
                if Instant::now() > until {
                    return Err(HarnessError::NotReady {
                        service: "redis cluster",
                        output: format!(
                            "CLUSTER INFO on port {}:\n{info}\nits log:\n{}",
                            node.port,
                            node.process.output()
                        ),
                    });
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// One `redis://127.0.0.1:<port>` (`rediss://` when secured) per node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| url(n.port, self.security.as_ref()))
            .collect()
    }

    /// The nodes' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(|n| n.process.pid()).collect()
    }

    /// The ACL user of a secured cluster (`gateway`).
    pub fn acl_user(&self) -> Option<&str> {
        self.security.as_ref().map(|_| ACL_USER)
    }

    /// The ACL user's password, for a secured cluster.
    pub fn acl_password(&self) -> Option<&str> {
        self.security.as_ref().map(|s| s.password.as_str())
    }

    /// A PEM file with the CA certificate that issued a secured cluster's certificates.
    pub fn ca_file(&self) -> Option<&Path> {
        self.security.as_ref().map(|s| s.ca_file.as_path())
    }

    /// Sends one command to the first node, following `MOVED` and `ASK` redirects as
    /// `redis-cli -c` does, and returns the reply as [`Redis::command`] does.
    pub fn command(&self, args: &[&str]) -> Result<String, HarnessError> {
        let mut port = self.nodes.first().map_or(0, |n| n.port);
        let mut asking = false;
        for _ in 0..=MAX_REDIRECTS {
            let mut conn = Connection::open(port, self.security.as_ref())?;
            let reply = if asking {
                conn.send(&[&["ASKING"], args])?
            } else {
                conn.send(&[args])?
            };
            match redirect(&reply) {
                Some((ask, to)) => (asking, port) = (ask, to),
                None => return Ok(reply),
            }
        }
        Err(HarnessError::io(format!(
            "send {args:?} to the Redis Cluster"
        ))(std::io::Error::other(format!(
            "more than {MAX_REDIRECTS} redirects"
        ))))
    }

    /// A `redis-cli -c` for the first node, set up as [`Redis::cli`] is.
    pub fn cli(&self) -> Result<Command, HarnessError> {
        let mut cmd = cli(
            self.nodes.first().map_or(0, |n| n.port),
            self.security.as_ref(),
        )?;
        cmd.arg("-c");
        Ok(cmd)
    }
}

/// `(ask, port)` when `reply` is `-MOVED <slot> <host>:<port>` or `-ASK ...`.
fn redirect(reply: &str) -> Option<(bool, u16)> {
    let mut words = reply.split(' ');
    let ask = match words.next()? {
        "-MOVED" => false,
        "-ASK" => true,
        _ => return None,
    };
    let port = words.nth(1)?.rsplit_once(':')?.1.parse().ok()?;
    Some((ask, port))
}

fn tempdir(prefix: &str) -> Result<TempDir, HarnessError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(HarnessError::io("create the Redis directory"))
}

fn url(port: u16, security: Option<&Security>) -> String {
    let scheme = if security.is_some() {
        "rediss"
    } else {
        "redis"
    };
    format!("{scheme}://127.0.0.1:{port}")
}

fn cli(port: u16, security: Option<&Security>) -> Result<Command, HarnessError> {
    let mut cmd = Command::new(redis_cli()?);
    cmd.args(["-h", "127.0.0.1", "-p"]).arg(port.to_string());
    add_security_args(&mut cmd, security);
    Ok(cmd)
}

/// redis-cli's TLS and ACL options; the password goes in the environment, not on a
/// command line anyone on the machine can read.
fn add_security_args(cmd: &mut Command, security: Option<&Security>) {
    if let Some(s) = security {
        cmd.arg("--tls")
            .arg("--cacert")
            .arg(&s.ca_file)
            .args(["--user", ACL_USER])
            .env("REDISCLI_AUTH", &s.password);
    }
}

/// One redis-server process and the configuration file it was started from.
#[derive(Debug)]
struct Node {
    program: PathBuf,
    conf: PathBuf,
    port: u16,
    process: ServiceProcess,
}

impl Node {
    /// Starts a server configured by `config(port)` (written to `dir/redis.conf`) on a
    /// free port, trying other ports when one is taken between pick and bind.
    fn start(
        dir: &Path,
        config: impl Fn(u16) -> Result<String, HarnessError>,
    ) -> Result<Self, HarnessError> {
        let program = find_program("redis-server", &[], PURPOSE)?;
        let conf = dir.join("redis.conf");
        let mut last = None;
        for _ in 0..3 {
            let port = free_port()?;
            write_private(&conf, &config(port)?)?;
            match spawn(&program, &conf) {
                Ok(process) => {
                    return Ok(Self {
                        program,
                        conf,
                        port,
                        process,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| HarnessError::NotReady {
            service: "redis-server",
            output: String::new(),
        }))
    }

    fn restart(&mut self) -> Result<(), HarnessError> {
        self.process.stop();
        self.process = spawn(&self.program, &self.conf)?;
        Ok(())
    }

    fn signal(&self, signal: &str) -> Result<(), HarnessError> {
        if self.process.signal(signal) {
            Ok(())
        } else {
            Err(HarnessError::io(format!(
                "send SIG{signal} to redis-server"
            ))(std::io::Error::other("it is not running")))
        }
    }
}

fn spawn(program: &Path, conf: &Path) -> Result<ServiceProcess, HarnessError> {
    ServiceProcess::spawn(
        "redis-server",
        Command::new(program).arg(conf),
        "Ready to accept connections",
    )
}

/// The configuration of a single server in `dir` listening on `port`.
fn server_config(dir: &Path, port: u16, security: Option<&Security>) -> String {
    let mut conf = format!(
        "bind 127.0.0.1\nsave \"\"\nappendonly no\ndaemonize no\nlogfile \"\"\ndir {}\n",
        quoted(dir)
    );
    match security {
        Some(s) => conf.push_str(&s.config(port)),
        None => conf.push_str(&format!("port {port}\n")),
    }
    conf
}

/// The configuration of a cluster node in `dir` listening on `port`, with its cluster
/// bus on another free port (not the default `port + 10000`, which nobody checked).
fn cluster_config(
    dir: &Path,
    port: u16,
    security: Option<&Security>,
) -> Result<String, HarnessError> {
    let mut bus = free_port()?;
    while bus == port {
        bus = free_port()?;
    }
    let mut conf = server_config(dir, port, security);
    conf.push_str(&format!(
        "cluster-enabled yes\ncluster-config-file {}\ncluster-announce-ip 127.0.0.1\n\
         cluster-port {bus}\n",
        quoted(&dir.join("nodes.conf"))
    ));
    if security.is_some() {
        conf.push_str("tls-cluster yes\n");
    }
    Ok(conf)
}

/// `path` as a double-quoted redis.conf argument.
fn quoted(path: &Path) -> String {
    let escaped = path
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// Writes `contents` readable by the owner only (a configuration holding a password).
fn write_private(path: &Path, contents: &str) -> Result<(), HarnessError> {
    use std::os::unix::fs::OpenOptionsExt;
    let context = format!("write {}", path.display());
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(HarnessError::io(context))
}

/// The TLS and ACL settings of a secured server or cluster: files the servers read, the
/// password, and the TLS configuration [`Connection`] uses.
struct Security {
    password: String,
    ca_file: PathBuf,
    server: ClientFiles,
    /// What a node presents when it connects to another over the cluster bus, which
    /// always asks for a client certificate (with clientAuth, which `server` lacks).
    bus_client: ClientFiles,
    tls: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("user", &ACL_USER)
            .field("password", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl Security {
    /// Writes `ca`'s certificate and a server certificate from it into `dir`, and picks a
    /// password.
    fn new(ca: &TestCa, dir: &Path) -> Result<Self, HarnessError> {
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, ca.pem()).map_err(HarnessError::io("write the CA"))?;
        let server = ca.server_in(dir, "redis")?;
        Ok(Self {
            password: random_password()?,
            ca_file,
            server,
            bus_client: bus_client(ca, dir)?,
            tls: client_tls(&ca.pem())?,
        })
    }

    /// The TLS-only listener on `port` and the ACL users.
    fn config(&self, port: u16) -> String {
        format!(
            "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
             tls-client-cert-file {}\ntls-client-key-file {}\n\
             tls-ca-cert-file {}\ntls-auth-clients no\n\
             user default off\nuser {ACL_USER} on >{} ~* &* +@all\n",
            quoted(&self.server.cert),
            quoted(&self.server.key),
            quoted(&self.bus_client.cert),
            quoted(&self.bus_client.key),
            quoted(&self.ca_file),
            self.password
        )
    }
}

/// A client certificate from `ca`, moved into `dir`: [`TestCa::client`] writes into the
/// CA's own directory (the system's temporary directory for the run CA), so the files get
/// a name no other server uses there.
fn bus_client(ca: &TestCa, dir: &Path) -> Result<ClientFiles, HarnessError> {
    let unique = dir
        .file_name()
        .map_or_else(|| "auth-redis".into(), |n| n.to_string_lossy().into_owned());
    let issued = ca.client(&format!("{unique}-bus"), "redis cluster bus", 6379)?;
    let moved = ClientFiles {
        cert: dir.join("bus.crt"),
        key: dir.join("bus.key"),
    };
    for (from, to) in [(&issued.cert, &moved.cert), (&issued.key, &moved.key)] {
        // Copied, not renamed: the CA's directory may be on another file system.
        std::fs::copy(from, to)
            .and_then(|_| std::fs::remove_file(from))
            .map_err(HarnessError::io(format!("move {}", from.display())))?;
    }
    Ok(moved)
}

/// 24 random letters and digits from /dev/urandom (nothing ACL syntax would interpret).
fn random_password() -> Result<String, HarnessError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Bytes at or above the largest multiple of 62 are dropped so every character is
    // equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    let mut urandom =
        std::fs::File::open("/dev/urandom").map_err(HarnessError::io("open /dev/urandom"))?;
    let mut password = String::with_capacity(24);
    while password.len() < 24 {
        let mut buf = [0u8; 32];
        urandom
            .read_exact(&mut buf)
            .map_err(HarnessError::io("read /dev/urandom"))?;
        password.extend(
            buf.iter()
                .map(|&b| usize::from(b))
                .filter(|&b| b < limit)
                .filter_map(|b| ALPHABET.get(b % ALPHABET.len()).map(|&c| char::from(c)))
                .take(24 - password.len()),
        );
    }
    Ok(password)
}

/// A rustls client configuration trusting only `ca_pem`.
fn client_tls(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, HarnessError> {
    let tls_error = |e: rustls::Error| std::io::Error::other(e.to_string());
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .map_err(|e| HarnessError::io("read the CA")(std::io::Error::other(e.to_string())))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| HarnessError::io("trust the CA")(tls_error(e)))?;
    let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(crypto)
        .with_safe_default_protocol_versions()
        .map_err(|e| HarnessError::io("TLS versions")(tls_error(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A byte stream to a server, plain or TLS.
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// One connection to a server, authenticated as the ACL user when it is secured.
struct Connection {
    reader: BufReader<Box<dyn Stream>>,
    /// `AUTH` goes first in the first batch of commands, its reply read before theirs.
    auth: Option<String>,
}

impl Connection {
    fn open(port: u16, security: Option<&Security>) -> Result<Self, HarnessError> {
        let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .map_err(HarnessError::io(format!("connect to Redis on port {port}")))?;
        tcp.set_read_timeout(Some(REPLY_TIMEOUT))
            .and_then(|()| tcp.set_write_timeout(Some(REPLY_TIMEOUT)))
            .map_err(HarnessError::io("set Redis timeouts"))?;
        let (stream, auth): (Box<dyn Stream>, _) = match security {
            None => (Box::new(tcp), None),
            Some(s) => {
                let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
                let tls = rustls::ClientConnection::new(s.tls.clone(), name).map_err(|e| {
                    HarnessError::io("start TLS to Redis")(std::io::Error::other(e.to_string()))
                })?;
                let stream = Box::new(rustls::StreamOwned::new(tls, tcp));
                (stream, Some(s.password.clone()))
            }
        };
        Ok(Self {
            reader: BufReader::new(stream),
            auth,
        })
    }

    /// Sends `commands` at once and returns the last reply, or the first error reply
    /// (a failed `AUTH` or `ASKING`) before it.
    fn send(&mut self, commands: &[&[&str]]) -> Result<String, HarnessError> {
        let mut request = String::new();
        let auth = self.auth.take();
        if let Some(password) = &auth {
            request.push_str(&encode(&["AUTH", ACL_USER, password]));
        }
        for args in commands {
            request.push_str(&encode(args));
        }
        let stream = self.reader.get_mut();
        stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.flush())
            .map_err(HarnessError::io("send to Redis"))?;
        let replies = commands.len() + usize::from(auth.is_some());
        let mut reply = String::new();
        for _ in 0..replies {
            reply = read_reply(&mut self.reader)?;
            if reply.starts_with('-') {
                break;
            }
        }
        Ok(reply)
    }
}

/// `args` as a RESP array of bulk strings.
fn encode(args: &[&str]) -> String {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    req
}

/// One reply: a bulk string's value, otherwise its first line without the line end.
fn read_reply(reader: &mut impl BufRead) -> Result<String, HarnessError> {
    let mut line = String::new();
    let read = reader
        .read_line(&mut line)
        .map_err(HarnessError::io("read from Redis"))?;
    if read == 0 {
        return Err(HarnessError::io("read from Redis")(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof,
        )));
    }
    let line = line.trim_end();
    // `$-1` (nil) does not parse as a length and is returned as it is.
    if let Some(len) = line.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
        let mut value = vec![0; len + 2];
        reader
            .read_exact(&mut value)
            .map_err(HarnessError::io("read from Redis"))?;
        value.truncate(len);
        return Ok(String::from_utf8_lossy(&value).into_owned());
    }
    Ok(line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_24_letters_and_digits_and_differ() {
        let a = random_password().unwrap_or_default();
        let b = random_password().unwrap_or_default();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn redirects_are_parsed() {
        assert_eq!(redirect("-MOVED 15495 127.0.0.1:7003"), Some((false, 7003)));
        assert_eq!(redirect("-ASK 3300 127.0.0.1:7001"), Some((true, 7001)));
        assert_eq!(redirect("-ERR unknown command"), None);
        assert_eq!(redirect("+OK"), None);
    }

    #[test]
    fn a_bulk_value_is_read_whole_and_nil_as_it_is() {
        let mut reader = "$13\r\nstate:ok\r\nx:1\r\n$-1\r\n:4\r\n".as_bytes();
        assert_eq!(
            read_reply(&mut reader).ok().as_deref(),
            Some("state:ok\r\nx:1")
        );
        assert_eq!(read_reply(&mut reader).ok().as_deref(), Some("$-1"));
        assert_eq!(read_reply(&mut reader).ok().as_deref(), Some(":4"));
    }
}
