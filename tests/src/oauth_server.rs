//! A real OAuth 2.0 server with the password grant: django-oauth-toolkit (in the venv made
//! by scripts/install-deps.sh) over HTTPS (a certificate from [`crate::pki::run_ca`]),
//! client `gateway`, refresh-token rotation, revocation.

use std::path::PathBuf;
use std::process::Command;

use crate::process::{HarnessError, ServiceProcess, free_port};

const SERVER: &str = include_str!("../oauth_server/server.py");

/// The client secret of client `gateway`.
pub const CLIENT_SECRET: &str = "0123456789abcdef0123456789abcdef-gateway";

/// The tokens in the server's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCounts {
    /// Access tokens that exist (revocation deletes them).
    pub access: usize,
    /// Refresh tokens not revoked.
    pub live_refresh: usize,
    /// Refresh tokens ever issued (each refresh rotates one).
    pub issued_refresh: usize,
}

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

    /// What the server's database holds: access tokens (revoking one deletes it), refresh
    /// tokens not revoked, and refresh tokens ever issued.
    pub fn token_counts(&self) -> Result<TokenCounts, HarnessError> {
        let db = self.dir.path().join("db.sqlite3");
        let script = "import sqlite3, sys\n\
            c = sqlite3.connect(sys.argv[1])\n\
            q = lambda s: c.execute(s).fetchone()[0]\n\
            print(q('select count(*) from oauth2_provider_accesstoken'), \
            q('select count(*) from oauth2_provider_refreshtoken where revoked is null'), \
            q('select count(*) from oauth2_provider_refreshtoken'))";
        let mut cmd = Command::new(python()?);
        cmd.args(["-c", script]).arg(db);
        let out = crate::process::run(&mut cmd, None)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let n: Vec<usize> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        match n[..] {
            [access, live_refresh, issued_refresh] => Ok(TokenCounts {
                access,
                live_refresh,
                issued_refresh,
            }),
            _ => Err(HarnessError::Command {
                command: "count the server's tokens".into(),
                status: "unexpected output".into(),
                output: text.into_owned(),
            }),
        }
    }

    /// Revokes every refresh token in the server's database, as an administrator logging
    /// every session out at the server would.
    pub fn revoke_all_refresh_tokens(&self) -> Result<(), HarnessError> {
        let db = self.dir.path().join("db.sqlite3");
        let script = "import sqlite3, sys\n\
            c = sqlite3.connect(sys.argv[1])\n\
            c.execute(\"update oauth2_provider_refreshtoken set revoked = datetime('now')\")\n\
            c.commit()";
        let mut cmd = Command::new(python()?);
        cmd.args(["-c", script]).arg(db);
        crate::process::run(&mut cmd, None).map(drop)
    }

    /// The base URL (`https://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}
