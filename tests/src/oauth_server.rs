//! A real OAuth 2.0 server with the password grant: django-oauth-toolkit (in the venv made
//! by scripts/install-deps.sh) over HTTPS (a certificate from [`crate::pki::run_ca`]),
//! client `gateway`, refresh-token rotation, revocation.

use std::path::PathBuf;
use std::process::Command;

use crate::process::{HarnessError, ServiceProcess, free_port};

const SERVER: &str = include_str!("../oauth_server/server.py");

/// The client secret of client `gateway`.
pub const CLIENT_SECRET: &str = "0123456789abcdef0123456789abcdef-gateway";

/// A running server. Dropping it stops the process.
#[derive(Debug)]
pub struct DjangoOAuth {
    dir: tempfile::TempDir,
    port: u16,
    user: (String, String),
    process: Option<ServiceProcess>,
}

fn python() -> Result<PathBuf, HarnessError> {
    crate::venv_python("the password-grant tests (django-oauth-toolkit)")
}

impl DjangoOAuth {
    /// Starts a server that knows `user` with `password`.
    pub fn start(user: &str, password: &str) -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("auth-django-")
            .tempdir()
            .map_err(HarnessError::io("create the server directory"))?;
        std::fs::write(dir.path().join("server.py"), SERVER)
            .map_err(HarnessError::io("write server.py"))?;
        crate::pki::run_ca()?.server_in(dir.path(), "server")?;
        let mut server = Self {
            dir,
            port: free_port()?,
            user: (user.to_owned(), password.to_owned()),
            process: None,
        };
        server.restart()?;
        Ok(server)
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Starts it again (same database and port).
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        let mut cmd = Command::new(python()?);
        cmd.arg(self.dir.path().join("server.py"))
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .arg(CLIENT_SECRET)
            .arg(&self.user.0)
            .arg(&self.user.1)
            .arg(self.dir.path().join("server.crt"))
            .arg(self.dir.path().join("server.key"));
        self.process = Some(ServiceProcess::spawn(
            "django-oauth-toolkit",
            &mut cmd,
            "oauth server listening",
        )?);
        Ok(())
    }

    /// The base URL (`https://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}
