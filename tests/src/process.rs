//! Child processes: starting, waiting for readiness by reading their output, stopping.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The script that installs every system package the tests need.
pub(crate) const INSTALL_SCRIPT: &str = "scripts/install-deps.sh";

/// How long a service may take to say it is ready.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A service could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A program is not installed.
    #[error("`{program}` is not installed (needed for {purpose}); run `sudo {INSTALL_SCRIPT}`")]
    Missing {
        /// The program looked for.
        program: String,
        /// What it is for.
        purpose: &'static str,
    },
    /// A command failed.
    #[error(
        "`{command}` failed ({status}): {output}\n(if a package is missing, run `sudo {INSTALL_SCRIPT}`)"
    )]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed.
        output: String,
    },
    /// A service did not become ready.
    #[error("{service} did not become ready within {READY_TIMEOUT:?}; its output:\n{output}")]
    NotReady {
        /// The service.
        service: &'static str,
        /// What it printed.
        output: String,
    },
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl HarnessError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// A port on 127.0.0.1 that was free a moment ago. Services retry on a clash.
pub fn free_port() -> Result<u16, HarnessError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(HarnessError::io("bind 127.0.0.1:0"))?;
    let port = listener
        .local_addr()
        .map_err(HarnessError::io("local_addr"))?
        .port();
    Ok(port)
}

/// Finds `program` on PATH or in `extra` directories.
pub(crate) fn find_program(
    program: &str,
    extra: &[PathBuf],
    purpose: &'static str,
) -> Result<PathBuf, HarnessError> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let sbin = [PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")];
    path_dirs
        .iter()
        .chain(extra)
        .chain(sbin.iter())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| HarnessError::Missing {
            program: program.to_owned(),
            purpose,
        })
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion with `stdin` as input; an error if it exits non-zero.
pub(crate) fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<Output, HarnessError> {
    let command = describe(cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(HarnessError::io(format!("spawn `{command}`")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        // A program that exits before reading all input is reported by its status.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(HarnessError::io(format!("wait for `{command}`")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(HarnessError::Command {
            command,
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// A long-running service process, killed (and reaped) when dropped.
#[derive(Debug)]
pub struct ServiceProcess {
    name: &'static str,
    child: Option<Child>,
    output: Arc<Mutex<String>>,
    /// Notified after every line recorded in `output`.
    printed: Arc<Condvar>,
}

impl ServiceProcess {
    /// Spawns `cmd` with stdout and stderr captured, and waits until a line of its
    /// output contains `ready_marker`.
    pub fn spawn(
        name: &'static str,
        cmd: &mut Command,
        ready_marker: &'static str,
    ) -> Result<Self, HarnessError> {
        let command = describe(cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(HarnessError::io(format!("spawn `{command}`")))?;
        let output = Arc::new(Mutex::new(String::new()));
        let printed = Arc::new(Condvar::new());
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            let printed = printed.clone();
            let ready_tx = ready_tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    // Recorded before the ready signal: whoever waited reads it at once.
                    let ready = line.contains(ready_marker);
                    {
                        let mut out = output.lock().unwrap_or_else(PoisonError::into_inner);
                        out.push_str(&line);
                        out.push('\n');
                    }
                    printed.notify_all();
                    if ready {
                        let _ = ready_tx.send(());
                    }
                }
            });
        }
        drop(ready_tx);
        let mut process = Self {
            name,
            child: Some(child),
            output,
            printed,
        };
        // The readers drop their senders at EOF, so a service that dies early wakes us
        // with a disconnect instead of leaving us waiting for the timeout.
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(()) => Ok(process),
            Err(_) => {
                process.stop();
                Err(HarnessError::NotReady {
                    service: name,
                    output: process.output(),
                })
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the process printed so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits, at most `limit`, until the process has printed `count` lines containing
    /// `marker` (a reload's `reloaded:` line, say); its output then, or `None` when it
    /// did not within `limit`. Woken by each line it prints, not by polling.
    pub fn wait_for_lines(&self, marker: &str, count: usize, limit: Duration) -> Option<String> {
        let until = Instant::now() + limit;
        let mut out = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if out.lines().filter(|l| l.contains(marker)).count() >= count {
                return Some(out.clone());
            }
            let left = until.checked_duration_since(Instant::now())?;
            out = self
                .printed
                .wait_timeout(out, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Sends `signal` (`TERM`, `HUP`, ...) to the process; false when it could not be sent
    /// (the process has ended).
    pub fn signal(&self, signal: &str) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits, at most `limit`, for the process to exit by itself; its status, or `None`
    /// when it is still running (or was already reaped).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < until => thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }

    /// Kills the process and waits for it; idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The service name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether process `pid` is running (exists and is not a zombie waiting to be reaped).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized command name, which may contain spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Retries `f` every 200 ms until it succeeds, for at most `limit`, and panics with its
/// last error after that: how a test outwaits a lockout or a connection slot freeing up.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > until => panic!("still failing after {limit:?}: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// CPU seconds process `pid` has used, plus its reaped children's when `children`; 0 when
/// it cannot be read.
pub fn cpu_seconds(pid: u32, children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the parenthesized command name (which may contain spaces): state is field 0,
    // utime 11, stime 12, cutime 13, cstime 14, in clock ticks of 1/100 s. Fields are
    // counted before parsing: the state is a letter, and skipping it shifts the rest.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let ticks = field(11) + field(12) + if children { field(13) + field(14) } else { 0.0 };
    ticks / 100.0
}

/// Waits until process `pid` has exited (or is a zombie), checking every 10 ms for at
/// most `limit`; whether it has.
pub(crate) fn wait_until_gone(pid: u32, limit: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + limit;
    while process_alive(pid) {
        if std::time::Instant::now() > until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    true
}

/// Whether this process runs as root (services such as PostgreSQL refuse to).
pub(crate) fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Makes `path` readable and traversable by other users (for services run as another
/// user from a root-owned temp dir).
pub(crate) fn open_up(path: &Path) -> Result<(), HarnessError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(HarnessError::io(format!("chmod {}", path.display())))
}

/// The Python of the test venv that scripts/install-deps.sh makes (psycopg,
/// django-oauth-toolkit, grpcio): `$AUTH_TEST_VENV/bin/python`, by default under
/// `/opt/auth-tests/venv`.
pub fn venv_python(purpose: &'static str) -> Result<PathBuf, HarnessError> {
    let venv = std::env::var_os("AUTH_TEST_VENV")
        .map_or_else(|| PathBuf::from("/opt/auth-tests/venv"), PathBuf::from);
    let python = venv.join("bin/python");
    if python.is_file() {
        Ok(python)
    } else {
        Err(HarnessError::Missing {
            program: python.display().to_string(),
            purpose,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_the_install_script() {
        let err = find_program("no-such-program-for-auth-tests", &[], "a test").unwrap_err();
        assert!(err.to_string().contains("scripts/install-deps.sh"), "{err}");
    }

    #[test]
    fn a_failed_command_names_the_install_script_and_its_output() {
        let err = run(
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("boom") && text.contains("install-deps.sh"),
            "{text}"
        );
    }

    #[test]
    fn a_service_that_dies_before_ready_fails_at_once_with_its_output() {
        let started = std::time::Instant::now();
        let err = ServiceProcess::spawn(
            "short-lived",
            Command::new("sh").args(["-c", "echo starting; exit 1"]),
            "never printed",
        )
        .unwrap_err();
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "did not wait for the timeout"
        );
        assert!(err.to_string().contains("starting"), "{err}");
    }

    #[test]
    fn our_own_process_is_alive() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX));
    }
}
