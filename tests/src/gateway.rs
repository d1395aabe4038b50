//! Runs the `pg-gateway` example binary on a free port in a fresh data directory.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{HarnessError, ServiceProcess, free_port};

/// A running gateway. Dropping it stops the process and deletes the data directory.
#[derive(Debug)]
pub struct GatewayProcess {
    _dir: tempfile::TempDir,
    /// The address every listener is on.
    pub ip: IpAddr,
    /// The data directory.
    pub data: PathBuf,
    /// The pgwire port on `ip`.
    pub port: u16,
    /// The HTTP API's port on `ip`.
    pub http_port: u16,
    /// The gRPC API's port on `ip`.
    pub grpc_port: u16,
    /// The admin listener's port (`/metrics`, `/livez`, `/readyz`): on 127.0.0.1, unless
    /// the test set `GATEWAY_ADMIN_LISTEN` in the gateway's environment.
    pub admin_port: u16,
    /// The process.
    pub process: ServiceProcess,
    /// The `demo` user's password, printed on the first start.
    pub demo_password: String,
}

impl GatewayProcess {
    /// Starts `binary` with `gateway.toml` = `listen` + `auth_timeout` + `rules`.
    pub fn start(binary: &Path, auth_timeout: &str, rules: &str) -> Result<Self, HarnessError> {
        Self::start_with_env(binary, auth_timeout, rules, &[])
    }

    /// As [`GatewayProcess::start`], with extra environment variables (a Kerberos realm's).
    pub fn start_with_env(
        binary: &Path,
        auth_timeout: &str,
        rules: &str,
        env: &[(String, String)],
    ) -> Result<Self, HarnessError> {
        Self::start_at(
            binary,
            IpAddr::from([127, 0, 0, 1]),
            auth_timeout,
            rules,
            env,
        )
    }

    /// As [`GatewayProcess::start_with_env`], with every listener (pgwire, HTTP, gRPC) on
    /// `ip`: a test host's gateway address ([`crate::netns::TestHost::gateway`]).
    pub fn start_at(
        binary: &Path,
        ip: IpAddr,
        auth_timeout: &str,
        rules: &str,
        env: &[(String, String)],
    ) -> Result<Self, HarnessError> {
        Self::start_wrapped(&[], binary, ip, auth_timeout, rules, env)
    }

    /// As [`GatewayProcess::start_at`], run through `wrapper` (a command that execs its
    /// arguments, such as `prlimit --nofile=40:40`), so the process id is the gateway's.
    pub fn start_wrapped(
        wrapper: &[&str],
        binary: &Path,
        ip: IpAddr,
        auth_timeout: &str,
        rules: &str,
        env: &[(String, String)],
    ) -> Result<Self, HarnessError> {
        let (dir, data) = workdir()?;
        std::fs::create_dir_all(&data).map_err(HarnessError::io("create the data directory"))?;
        let port = free_port()?;
        let http_port = free_port()?;
        let grpc_port = free_port()?;
        std::fs::write(
            data.join("gateway.toml"),
            format!(
                "listen = \"{}\"\nauth_timeout = \"{auth_timeout}\"\n{rules}",
                SocketAddr::new(ip, port)
            ),
        )
        .map_err(HarnessError::io("write gateway.toml"))?;
        Self::spawn(
            wrapper,
            binary,
            dir,
            data,
            ip,
            [port, http_port, grpc_port],
            env,
            true,
        )
    }

    /// Starts `binary` as a person does on a fresh machine: no data directory yet, so the
    /// gateway writes its embedded defaults (`--listen` moves it to a free port). The work
    /// directory is opened to every user (0755), so other OS users can reach the Unix
    /// socket, as they could in a normal data directory.
    pub fn start_fresh(binary: &Path) -> Result<Self, HarnessError> {
        let (dir, data) = workdir()?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(HarnessError::io("open the work directory"))?;
        let ports = [free_port()?, free_port()?, free_port()?];
        Self::spawn(
            &[],
            binary,
            dir,
            data,
            IpAddr::from([127, 0, 0, 1]),
            ports,
            &[],
            true,
        )
    }

    /// The directory of the gateway's Unix socket (the data directory, by default): the
    /// `host` for libpq.
    pub fn socket_dir(&self) -> &Path {
        &self.data
    }

    /// Starts `binary` on a copy of the data directory `source` (one an earlier version
    /// made, say), with its `listen` line moved to a free port on 127.0.0.1 and then its
    /// `gateway.toml` changed by `edit`. The demo password is empty: the directory already
    /// has the demo user.
    pub fn start_on_copy(
        binary: &Path,
        source: &Path,
        edit: impl FnOnce(String) -> String,
        env: &[(String, String)],
    ) -> Result<Self, HarnessError> {
        Self::start_on_copy_at(binary, source, IpAddr::from([127, 0, 0, 1]), edit, env)
    }

    /// [`Self::start_on_copy`], listening on `ip` (a test host's gateway address, so
    /// clients in network namespaces reach it). Several gateways on copies of one
    /// directory share its users and passwords, as instances behind a load balancer do.
    pub fn start_on_copy_at(
        binary: &Path,
        source: &Path,
        ip: IpAddr,
        edit: impl FnOnce(String) -> String,
        env: &[(String, String)],
    ) -> Result<Self, HarnessError> {
        let (dir, data) = workdir()?;
        copy_dir(source, &data)?;
        let ports = [free_port()?, free_port()?, free_port()?];
        let config = data.join("gateway.toml");
        let text =
            std::fs::read_to_string(&config).map_err(HarnessError::io("read gateway.toml"))?;
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("listen =") {
                    format!("listen = \"{ip}:{}\"\n", ports[0])
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(&config, edit(text)).map_err(HarnessError::io("write gateway.toml"))?;
        Self::spawn(&[], binary, dir, data, ip, ports, env, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        wrapper: &[&str],
        binary: &Path,
        dir: tempfile::TempDir,
        data: PathBuf,
        ip: IpAddr,
        [port, http_port, grpc_port]: [u16; 3],
        env: &[(String, String)],
        fresh: bool,
    ) -> Result<Self, HarnessError> {
        // The admin listener on a free loopback port, unless the test names its own place.
        let admin = match env.iter().find(|(k, _)| k == "GATEWAY_ADMIN_LISTEN") {
            Some((_, place)) => place.clone(),
            None => format!("127.0.0.1:{}", free_port()?),
        };
        let admin_port = admin
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        cmd.arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg(SocketAddr::new(ip, port).to_string())
            .arg("--http-listen")
            .arg(SocketAddr::new(ip, http_port).to_string())
            .arg("--grpc-listen")
            .arg(SocketAddr::new(ip, grpc_port).to_string())
            .arg("--admin-listen")
            .arg(&admin)
            .envs(env.iter().cloned());
        let process = ServiceProcess::spawn("pg-gateway", &mut cmd, "listening on")?;
        let output = process.output();
        let printed = output
            .split("password: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned);
        let demo_password = match printed {
            Some(p) => p,
            None if !fresh => String::new(),
            None => {
                return Err(HarnessError::NotReady {
                    service: "pg-gateway (no demo password printed)",
                    output,
                });
            }
        };
        Ok(Self {
            _dir: dir,
            ip,
            data,
            port,
            http_port,
            grpc_port,
            admin_port,
            process,
            demo_password,
        })
    }

    /// The certificate clients verify the gateway's TLS with (all its front doors).
    pub fn ca_file(&self) -> PathBuf {
        self.data.join("server.crt")
    }

    /// curl arguments and the URL of `path` on the HTTP API, over TLS verified with
    /// [`Self::ca_file`]: the name checked is `localhost` (in the certificate) whatever
    /// address the gateway listens on (`--connect-to`; an IPv6 address in brackets).
    pub fn https(&self, path: &str) -> (Vec<String>, String) {
        let port = self.http_port;
        let ip = match self.ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        (
            vec![
                "--cacert".into(),
                self.ca_file().display().to_string(),
                "--connect-to".into(),
                format!("localhost:{port}:{ip}:{port}"),
            ],
            format!("https://localhost:{port}{path}"),
        )
    }

    /// A libpq connection string for `user` (database of the same name) plus `extra`.
    pub fn conninfo(&self, user: &str, extra: &str) -> String {
        format!(
            "host={} port={} user={user} dbname={user} {extra}",
            self.ip, self.port
        )
    }
}

/// A fresh temporary directory for one gateway, and the path of its data directory.
fn workdir() -> Result<(tempfile::TempDir, PathBuf), HarnessError> {
    let dir = tempfile::Builder::new()
        .prefix("auth-gateway-")
        .tempdir()
        .map_err(HarnessError::io("create the gateway directory"))?;
    let data = dir.path().join("data");
    Ok((dir, data))
}

/// Copies the directory `from` to `to`, every file private (0600) as the gateway makes
/// them: git does not keep the modes of a committed data directory.
fn copy_dir(from: &Path, to: &Path) -> Result<(), HarnessError> {
    std::fs::create_dir_all(to).map_err(HarnessError::io("create a directory"))?;
    for entry in std::fs::read_dir(from).map_err(HarnessError::io("read a directory"))? {
        let entry = entry.map_err(HarnessError::io("read a directory"))?;
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(HarnessError::io("read a directory"))?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::copy(entry.path(), &target).map_err(HarnessError::io("copy a file"))?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
                .map_err(HarnessError::io("make a copied file private"))?;
        }
        // Sockets (a stopped gateway's .s.PGSQL.*) belong to the process that made them.
    }
    Ok(())
}

/// The rest of the line in `output` that starts with `label`, trimmed.
pub fn printed_line(output: &str, label: &str) -> Option<String> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|rest| rest.trim().to_owned())
}

/// Runs a command line a gateway printed (a curl line), unchanged apart from flags
/// appended to print the HTTP status after the body; returns (body, status).
pub fn run_printed(line: &str) -> Result<(String, String), HarnessError> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{line} -s --max-time 10 -w '\\n%{{http_code}}'"))
        .output()
        .map_err(HarnessError::io("run sh (curl)"))?;
    Ok(body_and_status(&out.stdout))
}

/// Runs curl (`cmd`: `Command::new("curl")` or a test host's, with its arguments and URL)
/// quiet, within 10 s, printing the HTTP status after the body; returns (body, status).
pub fn curl_reply(mut cmd: Command) -> Result<(String, String), HarnessError> {
    let out = cmd
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .output()
        .map_err(HarnessError::io(
            "run curl (scripts/install-deps.sh installs it)",
        ))?;
    Ok(body_and_status(&out.stdout))
}

/// curl's output with `-w '\n%{http_code}'`: (body, status).
fn body_and_status(stdout: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(stdout);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (body.to_owned(), status.to_owned())
}

/// What a grpcurl line printed.
#[derive(Debug, Clone)]
pub struct GrpcurlRun {
    /// Standard output: the reply as JSON, or the listing.
    pub stdout: String,
    /// Standard error: the status of a failed call.
    pub stderr: String,
    /// The exit code: 0, or 64 + the gRPC status code.
    pub code: Option<i32>,
}

/// Runs a `grpcurl` line a gateway printed, unchanged: with grpcurl when it is on `PATH`,
/// else with `tests/python/grpcurl.py` (the same flags, on grpcio with reflection) from
/// the test venv.
pub fn run_printed_grpcurl(line: &str) -> Result<GrpcurlRun, HarnessError> {
    let has_grpcurl = Command::new("sh")
        .args(["-c", "command -v grpcurl"])
        .output()
        .is_ok_and(|o| o.status.success());
    let line = match line.strip_prefix("grpcurl ") {
        Some(args) if !has_grpcurl => {
            let python = crate::venv_python("the grpcurl stand-in (grpcio)")?;
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/grpcurl.py");
            format!("'{}' '{}' {args}", python.display(), script.display())
        }
        _ => line.to_owned(),
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .output()
        .map_err(HarnessError::io("run sh (grpcurl)"))?;
    Ok(GrpcurlRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    })
}

impl GatewayProcess {
    /// The gateway's wallet (its data directory's master key and wallet file), where tests
    /// add users and secrets; the running gateway sees them at the next login.
    pub fn wallet(&self) -> Result<std::sync::Arc<auth_wallet::Wallet>, HarnessError> {
        let key =
            auth_wallet::MasterKey::from_file(&self.data.join("master.key")).map_err(|e| {
                HarnessError::io("read the gateway's master key")(std::io::Error::other(e))
            })?;
        // Keyed as the gateway keys it: the file is authenticated as a whole.
        Ok(std::sync::Arc::new(auth_wallet::Wallet::over_file(
            auth_wallet::FileStore::new(self.data.join("wallet.db")),
            key,
        )))
    }

    /// Asks the gateway to write out the audit events it has queued (see [`flush_audit`]).
    pub fn flush_audit(&self) {
        flush_audit(&self.process, &self.data.join("audit.jsonl"));
    }

    /// Every event in the audit log, oldest first (after [`Self::flush_audit`]).
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        self.flush_audit();
        std::fs::read_to_string(self.data.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect()
    }

    /// The audit log's events of kind `event` (`attempt_failed`, `lockout`, ...).
    pub fn audit(&self, event: &str) -> Vec<serde_json::Value> {
        let mut events = self.audit_events();
        events.retain(|v| v["event"] == event);
        events
    }

    /// The newest refusal (`attempt_failed`) in the audit log; `Null` when there is none,
    /// so a test's `["detail"]` comparison fails with what it found.
    pub fn newest_refusal(&self) -> serde_json::Value {
        self.audit("attempt_failed").pop().unwrap_or_default()
    }

    /// The `detail` of [`Self::newest_refusal`] (empty when there is none).
    pub fn newest_refusal_detail(&self) -> String {
        self.newest_refusal()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// `cmd` (`Command::new("psql")`, or a test host's `psql`) set up to run `sql` against
/// `conninfo` with `password`, without prompting and with a 10 s connect timeout.
pub fn psql_command(mut cmd: Command, conninfo: &str, password: &str, sql: &str) -> Command {
    cmd.env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-X", "-w", "-At", "-d", conninfo, "-c", sql]);
    cmd
}

/// Runs [`psql_command`]: what psql printed (trimmed) on success, its error output
/// otherwise (or why it could not run).
pub fn psql(cmd: Command, conninfo: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = psql_command(cmd, conninfo, password, sql)
        .output()
        .map_err(|e| format!("psql did not run ({e}); run scripts/install-deps.sh"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// curl (`cmd`: `Command::new("curl")`, or a test host's) fetching `url` with `args`
/// within 10 s: the HTTP status it got (`000` when none, or why curl did not run).
pub fn http_status<S: AsRef<std::ffi::OsStr>>(mut cmd: Command, args: &[S], url: &str) -> String {
    let out = cmd
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .arg(url)
        .output();
    match out {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Err(e) => format!("curl did not run ({e}); run scripts/install-deps.sh"),
    }
}

/// `tests/python/preauth.py` (clients that begin a login and walk away, or hold
/// connections) run from `host` with the test venv's Python; add its arguments.
pub fn preauth_client(host: &crate::netns::TestHost) -> Result<Command, HarnessError> {
    let python = crate::venv_python("the pre-auth clients (grpcio)")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/preauth.py");
    let mut cmd = host.command(&python.display().to_string());
    cmd.arg(script);
    Ok(cmd)
}

/// `tests/python/preauth.py` run on this machine (a loopback client) with the test venv's
/// Python; add its arguments.
pub fn preauth_local() -> Result<Command, HarnessError> {
    let python = crate::venv_python("the pre-auth clients (grpcio)")?;
    let mut cmd = Command::new(python);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/preauth.py"));
    Ok(cmd)
}

/// A frontend message: `tag`, the length, `body`.
pub fn frontend_message(tag: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    let mut out = vec![tag];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A SASLInitialResponse choosing `mechanism`, with `data` as the initial response.
pub fn sasl_initial_response(mechanism: &str, data: &[u8]) -> Vec<u8> {
    let mut body = mechanism.as_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    body.extend_from_slice(data);
    frontend_message(b'p', &body)
}

/// A protocol 3.0 startup packet for `user` on the database of the same name.
pub fn startup_packet(user: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", user)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    let mut packet = len.to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// Asks the gateway `process` to write out the audit events it has queued for the log at
/// `audit` (SIGUSR1) and waits until it has (it then rewrites `<audit>.flushed`): the log
/// is written behind the login path, so a test reads it only after this. Nothing to do
/// for a process that has stopped.
pub fn flush_audit(process: &ServiceProcess, audit: &Path) {
    let mut marker = audit.as_os_str().to_owned();
    marker.push(".flushed");
    let marker = PathBuf::from(marker);
    let _ = std::fs::remove_file(&marker);
    if !process.signal("USR1") {
        return;
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !marker.exists() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The time from connecting to the gateway's HTTP API on 127.0.0.1:`port` to its answer
/// to `GET /whoami` with HTTP Basic `user` and a wrong password, which must be a 401 (raw
/// HTTP/1.1, plaintext: the benches compare refusals, not TLS).
pub fn basic_refusal_time(port: u16, user: &str) -> std::time::Duration {
    use base64::Engine as _;
    use std::io::{Read, Write};
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:wrong guess"));
    let request = format!(
        "GET /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {token}\r\nConnection: close\r\n\r\n"
    );
    let started = std::time::Instant::now();
    let mut reply = String::new();
    let answered = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut tcp| {
        tcp.write_all(request.as_bytes())?;
        tcp.read_to_string(&mut reply)
    });
    let took = started.elapsed();
    assert!(
        answered.is_ok() && reply.starts_with("HTTP/1.1 401"),
        "{answered:?}: {reply}"
    );
    took
}

/// A psycopg session held open by a process of the test venv's Python (`python`: that
/// program, or a test host's command running it): it answers `SELECT current_user` at
/// once, and again on each [`HeldSession::query`]; a query that fails answers
/// `ended: <SQLSTATE>`. Killed when dropped.
#[derive(Debug)]
pub struct HeldSession {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

const HELD_SESSION: &str = r#"
import sys, psycopg
conn = psycopg.connect(sys.argv[1], password=sys.argv[2])
for _ in sys.stdin:
    try:
        print(conn.execute("SELECT current_user").fetchone()[0], flush=True)
    except psycopg.Error as e:
        print("ended:", e.sqlstate, flush=True)
"#;

impl HeldSession {
    /// Connects with `conninfo` and `password`; the session and its first answer.
    pub fn open(
        mut python: Command,
        conninfo: &str,
        password: &str,
    ) -> Result<(Self, String), HarnessError> {
        use std::process::Stdio;
        let mut child = python
            .args(["-c", HELD_SESSION, conninfo, password])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(HarnessError::io("spawn the psycopg session"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(HarnessError::io("pipe to the psycopg session")(
                std::io::ErrorKind::BrokenPipe.into(),
            ));
        };
        let mut held = Self {
            child,
            stdin,
            stdout: std::io::BufReader::new(stdout),
        };
        let first = held.query();
        Ok((held, first))
    }

    /// Asks `SELECT current_user` again: its answer, `ended: <SQLSTATE>`, or `""` when the
    /// process has gone.
    pub fn query(&mut self) -> String {
        use std::io::{BufRead, Write};
        let _ = writeln!(self.stdin);
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        line.trim().to_owned()
    }
}

impl Drop for HeldSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
