//! A Redis server on a free loopback port, without persistence.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{HarnessError, ServiceProcess, find_program, free_port};

/// A running Redis server. Dropping it stops the server and deletes its directory.
#[derive(Debug)]
pub struct Redis {
    _dir: TempDir,
    port: u16,
    process: ServiceProcess,
}

impl Redis {
    /// Starts a server.
    pub fn start() -> Result<Self, HarnessError> {
        let program = find_program("redis-server", &[], "shared lockout counters and sessions")?;
        let mut last = None;
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("auth-redis-")
                .tempdir()
                .map_err(HarnessError::io("create the Redis directory"))?;
            let port = free_port()?;
            let mut cmd = Command::new(&program);
            cmd.arg("--port")
                .arg(port.to_string())
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--daemonize", "no", "--logfile", "", "--dir"])
                .arg(dir.path());
            match ServiceProcess::spawn("redis-server", &mut cmd, "Ready to accept connections") {
                Ok(process) => {
                    return Ok(Self {
                        _dir: dir,
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

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Sends one command (RESP array of bulk strings) and returns the first reply line.
    pub fn command(&self, args: &[&str]) -> Result<String, HarnessError> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .map_err(HarnessError::io("connect to Redis"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(HarnessError::io("set a read timeout"))?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream
            .write_all(req.as_bytes())
            .map_err(HarnessError::io("send to Redis"))?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(HarnessError::io("read from Redis"))?;
        if line.starts_with('$') && !line.starts_with("$-1") {
            let mut value = String::new();
            reader
                .read_line(&mut value)
                .map_err(HarnessError::io("read from Redis"))?;
            return Ok(value.trim_end().to_owned());
        }
        Ok(line.trim_end().to_owned())
    }
}
