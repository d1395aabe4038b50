//! A real OpenID provider: node `oidc-provider` (installed by scripts/install-deps.sh)
//! with a `client_credentials` client `svc`, RFC 9068 JWT access tokens for resource
//! `urn:api`, opaque tokens for `urn:opaque`, introspection and revocation.

use std::path::PathBuf;
use std::process::Command;

use crate::process::{HarnessError, ServiceProcess, free_port, run};

const PROVIDER: &str = include_str!("../oidc/provider.mjs");

/// The client secret of client `svc`. Its `+`, `/`, `:` and `%` must be form-encoded in
/// HTTP Basic credentials (RFC 6749 2.3.1), which oidc-provider insists on.
pub const CLIENT_SECRET: &str = "0123456789abcdef0123456789abcdef+svc/secret:%";

/// [`CLIENT_SECRET`] form-encoded, as it goes into Basic credentials.
const CLIENT_SECRET_FORM_ENCODED: &str = "0123456789abcdef0123456789abcdef%2Bsvc%2Fsecret%3A%25";

/// A running provider. Dropping it stops the process.
#[derive(Debug)]
pub struct OidcProvider {
    dir: tempfile::TempDir,
    port: u16,
    process: Option<ServiceProcess>,
}

fn node_modules() -> Result<PathBuf, HarnessError> {
    let base = std::env::var_os("AUTH_TEST_NODE")
        .map_or_else(|| PathBuf::from("/opt/auth-tests/node"), PathBuf::from);
    let modules = base.join("node_modules");
    if modules.join("oidc-provider").is_dir() {
        Ok(modules)
    } else {
        Err(HarnessError::Missing {
            program: "oidc-provider (npm)".into(),
            purpose: "the OAuth tests",
        })
    }
}

impl OidcProvider {
    /// Starts a provider on a free port with a fresh signing key.
    pub fn start() -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("auth-oidc-")
            .tempdir()
            .map_err(HarnessError::io("create the provider directory"))?;
        std::os::unix::fs::symlink(node_modules()?, dir.path().join("node_modules"))
            .map_err(HarnessError::io("link node_modules"))?;
        std::fs::write(dir.path().join("provider.mjs"), PROVIDER)
            .map_err(HarnessError::io("write provider.mjs"))?;
        let mut provider = Self {
            dir,
            port: free_port()?,
            process: None,
        };
        provider.restart()?;
        Ok(provider)
    }

    /// Stops the provider (to test an unreachable issuer).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Starts it again on the same port with a new signing key (key rotation).
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        let mut cmd = Command::new("node");
        cmd.current_dir(self.dir.path())
            .arg("provider.mjs")
            .arg(self.port.to_string())
            .arg(CLIENT_SECRET);
        self.process = Some(ServiceProcess::spawn(
            "oidc-provider",
            &mut cmd,
            "oidc-provider listening",
        )?);
        Ok(())
    }

    /// The issuer URL.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs curl against the provider as client `svc`; returns the body.
    fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<String, HarnessError> {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "--max-time",
            "10",
            "-u",
            &format!("svc:{CLIENT_SECRET_FORM_ENCODED}"),
        ]);
        for (k, v) in form {
            cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        cmd.arg(format!("{}{path}", self.issuer()));
        let out = run(&mut cmd, None)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A client_credentials access token for `resource` (`urn:api`: a JWT; `urn:opaque`:
    /// opaque) with `scope`.
    pub fn token(&self, resource: &str, scope: &str) -> Result<String, HarnessError> {
        let body = self.post(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", scope),
            ],
        )?;
        body.split("\"access_token\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_owned)
            .ok_or_else(|| HarnessError::Command {
                command: "POST /token".into(),
                status: "no access_token".into(),
                output: body,
            })
    }

    /// Revokes `token` (RFC 7009).
    pub fn revoke(&self, token: &str) -> Result<(), HarnessError> {
        self.post("/token/revocation", &[("token", token)])
            .map(drop)
    }
}
