//! A PostgreSQL cluster on a free loopback port (initdb + pg_ctl), run as the `postgres`
//! user when the tests run as root, since PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::process::{HarnessError, find_program, free_port, is_root, open_up, run};

/// A running cluster with superuser `postgres` and `trust` authentication on loopback
/// (tests authenticate to *our* gateways, not to this server). Dropping it stops the
/// server and deletes the cluster.
#[derive(Debug)]
pub struct Postgres {
    dir: TempDir,
    port: u16,
    bindir: PathBuf,
    psql: PathBuf,
    as_postgres_user: bool,
    running: bool,
    settings: String,
}

/// The path of a PostgreSQL server-side program (`pgbench`, `pg_ctl`, ...).
pub fn server_program(name: &str) -> Result<PathBuf, HarnessError> {
    let path = bindir()?.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::Missing {
            program: name.to_owned(),
            purpose: "PostgreSQL tools",
        })
    }
}

fn bindir() -> Result<PathBuf, HarnessError> {
    // Debian keeps the server binaries out of PATH, one directory per major version.
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates.reverse();
    if let Some(dir) = candidates.into_iter().find(|d| d.join("pg_ctl").is_file()) {
        return Ok(dir);
    }
    let pg_ctl = find_program("pg_ctl", &[], "the PostgreSQL test cluster")?;
    // Follow a symlink (`/usr/local/bin/pg_ctl`) to the directory with initdb beside it.
    let real = std::fs::canonicalize(&pg_ctl).unwrap_or(pg_ctl);
    Ok(real
        .parent()
        .map_or_else(|| PathBuf::from("/usr/bin"), Path::to_path_buf))
}

impl Postgres {
    /// Creates and starts a cluster where every connection is trusted.
    pub fn start() -> Result<Self, HarnessError> {
        Self::start_with_host_auth("trust")
    }

    /// Creates and starts a cluster whose TCP connections use `method` (`scram-sha-256`,
    /// `md5`, `trust`); Unix-socket connections (what [`Postgres::psql`] uses) stay
    /// trusted.
    pub fn start_with_host_auth(method: &str) -> Result<Self, HarnessError> {
        Self::start_with_settings(method, &[])
    }

    /// As [`Postgres::start_with_host_auth`], with extra server settings
    /// (`("krb_server_keyfile", "/path")`).
    pub fn start_with_settings(
        method: &str,
        settings: &[(&str, &str)],
    ) -> Result<Self, HarnessError> {
        Self::create(method, settings, false)
    }

    /// As [`Postgres::start_with_host_auth`], with `ssl = on` and a server certificate
    /// (for `localhost` and 127.0.0.1) from [`crate::pki::run_ca`]; clients verify it with
    /// [`Postgres::ca_file`].
    pub fn start_with_tls(method: &str) -> Result<Self, HarnessError> {
        Self::create(method, &[], true)
    }

    /// The run CA's certificate as a file in the cluster's directory (`sslrootcert`).
    pub fn ca_file(&self) -> Result<PathBuf, HarnessError> {
        let path = self.dir.path().join("root.crt");
        std::fs::write(&path, crate::pki::run_ca()?.pem())
            .map_err(HarnessError::io("write root.crt"))?;
        Ok(path)
    }

    fn create(method: &str, settings: &[(&str, &str)], tls: bool) -> Result<Self, HarnessError> {
        let bindir = bindir()?;
        let psql = find_program(
            "psql",
            std::slice::from_ref(&bindir),
            "talking to the PostgreSQL test cluster",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("auth-pg-")
            .tempdir()
            .map_err(HarnessError::io("create the PostgreSQL directory"))?;
        let as_postgres_user = is_root();
        if as_postgres_user {
            open_up(dir.path())?;
            run(
                Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(dir.path()),
                None,
            )?;
        }
        let mut settings: String = settings
            .iter()
            .map(|(k, v)| format!(" -c {k}={v}"))
            .collect();
        if tls {
            let files = crate::pki::run_ca()?.server_in(dir.path(), "server")?;
            if as_postgres_user {
                run(
                    Command::new("chown")
                        .arg("postgres:postgres")
                        .arg(&files.cert)
                        .arg(&files.key),
                    None,
                )?;
            }
            settings.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                files.cert.display(),
                files.key.display()
            ));
        }
        let mut pg = Self {
            dir,
            port: 0,
            bindir,
            psql,
            as_postgres_user,
            running: false,
            settings,
        };
        let data = pg.data_dir();
        run(
            pg.server_command("initdb").arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "--auth-local=trust",
                &format!("--auth-host={method}"),
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            None,
        )?;
        let mut last = None;
        for _ in 0..3 {
            pg.port = free_port()?;
            match pg.pg_ctl_start() {
                Ok(()) => {
                    pg.running = true;
                    return Ok(pg);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| HarnessError::NotReady {
            service: "postgres",
            output: String::new(),
        }))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn server_command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        if self.as_postgres_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn pg_ctl_start(&self) -> Result<(), HarnessError> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off{}",
            self.port,
            self.dir.path().display(),
            self.settings
        );
        // `-w` makes pg_ctl itself wait until the server accepts connections.
        run(
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-w", "-t", "30", "-o", &options, "-l"])
                .arg(self.dir.path().join("server.log"))
                .arg("start"),
            None,
        )
        .map(drop)
    }

    /// The directory of the server's Unix socket (`host` for libpq).
    pub fn socket_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq connection string for `user` on database `postgres`.
    pub fn conninfo(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres",
            self.port
        )
    }

    /// Runs `sql` with `psql` as the superuser over the Unix socket; returns unaligned,
    /// tuples-only output.
    pub fn psql(&self, sql: &str) -> Result<String, HarnessError> {
        let socket = format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.path().display(),
            self.port
        );
        let out = run(
            Command::new(&self.psql)
                .args(["-X", "-v", "ON_ERROR_STOP=1", "-At", "-d"])
                .arg(socket)
                .args(["-c", sql]),
            None,
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// Runs `sql` with `psql` over TCP as `user` with `password`.
    pub fn psql_as(&self, user: &str, password: &str, sql: &str) -> Result<String, HarnessError> {
        let out = run(
            Command::new(&self.psql)
                .env("PGPASSWORD", password)
                .args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-At", "-d"])
                .arg(self.conninfo(user))
                .args(["-c", sql]),
            None,
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// The server's process id (first line of `postmaster.pid`).
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the server; idempotent.
    pub fn stop(&mut self) {
        if self.running {
            self.running = false;
            let pid = self.pid();
            let stopped = run(
                self.server_command("pg_ctl")
                    .arg("-D")
                    .arg(self.data_dir())
                    .args(["-m", "immediate", "-w", "stop"]),
                None,
            );
            // pg_ctl returns once the pid file is gone, a moment before the postmaster
            // has exited: wait for the process itself, and kill it if it lingers.
            if let Some(pid) = pid
                && (stopped.is_err() || !crate::process::wait_until_gone(pid, STOP_WAIT))
            {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                crate::process::wait_until_gone(pid, STOP_WAIT);
            }
        }
    }
}

/// How long a stopped server may take to exit.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What `pgbench -C` measured: every transaction on a new connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgBench {
    /// Transactions (so connections) per second.
    pub tps: f64,
    /// The average time to connect and authenticate, in milliseconds.
    pub connect_ms: f64,
    /// Transactions processed.
    pub connections: f64,
}

/// Runs `pgbench -C -n -c 8 -j 2 -T seconds -f script conninfo` with `env` (a password,
/// Kerberos settings): a new connection for every transaction.
pub fn pgbench_connections(
    conninfo: &str,
    env: &[(String, String)],
    seconds: u32,
    script: &Path,
) -> Result<PgBench, HarnessError> {
    let mut cmd = Command::new(server_program("pgbench")?);
    cmd.envs(env.iter().cloned())
        .args([
            "-C",
            "-n",
            "-c",
            "8",
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(script)
        .arg(conninfo);
    let out = run(&mut cmd, None)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let number = |prefix: &str| -> Result<f64, HarnessError> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| HarnessError::NotReady {
                service: "pgbench (an unexpected report)",
                output: text.clone(),
            })
    };
    Ok(PgBench {
        tps: number("tps = ")?,
        connect_ms: number("average connection time = ")?,
        connections: number("number of transactions actually processed: ")?,
    })
}
