//! Runs the `pg-gateway` example binary on a free port in a fresh data directory.

use std::net::IpAddr;
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
        let dir = tempfile::Builder::new()
            .prefix("auth-gateway-")
            .tempdir()
            .map_err(HarnessError::io("create the gateway directory"))?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).map_err(HarnessError::io("create the data directory"))?;
        let port = free_port()?;
        let http_port = free_port()?;
        let grpc_port = free_port()?;
        std::fs::write(
            data.join("gateway.toml"),
            format!("listen = \"{ip}:{port}\"\nauth_timeout = \"{auth_timeout}\"\n{rules}"),
        )
        .map_err(HarnessError::io("write gateway.toml"))?;
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
            .arg("--http-listen")
            .arg(format!("{ip}:{http_port}"))
            .arg("--grpc-listen")
            .arg(format!("{ip}:{grpc_port}"))
            .envs(env.iter().cloned());
        let process = ServiceProcess::spawn("pg-gateway", &mut cmd, "listening on")?;
        let output = process.output();
        let demo_password = output
            .split("password: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .ok_or(HarnessError::NotReady {
                service: "pg-gateway (no demo password printed)",
                output,
            })?;
        Ok(Self {
            _dir: dir,
            ip,
            data,
            port,
            http_port,
            grpc_port,
            process,
            demo_password,
        })
    }

    /// A libpq connection string for `user` (database of the same name) plus `extra`.
    pub fn conninfo(&self, user: &str, extra: &str) -> String {
        format!(
            "host={} port={} user={user} dbname={user} {extra}",
            self.ip, self.port
        )
    }
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
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((body.to_owned(), status.to_owned()))
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
