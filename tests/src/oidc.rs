//! A real OpenID provider: node `oidc-provider` (installed by scripts/install-deps.sh)
//! over HTTPS (a certificate from [`crate::pki::run_ca`]) with `client_credentials`
//! clients `svc` (client_secret_basic), `svc-post`, `svc-hs` (client_secret_jwt) and
//! `svc-key` (private_key_jwt), RFC 9068 JWT access tokens for resource `urn:api`, opaque
//! tokens for `urn:opaque`, introspection and revocation.

use std::path::PathBuf;
use std::process::Command;

use crate::process::{HarnessError, ServiceProcess, free_port, run};

const PROVIDER: &str = include_str!("../oidc/provider.mjs");

/// The client secret of client `svc`. Its `+`, `/`, `:` and `%` must be form-encoded in
/// HTTP Basic credentials (RFC 6749 2.3.1), which oidc-provider insists on.
pub const CLIENT_SECRET: &str = "0123456789abcdef0123456789abcdef+svc/secret:%";

/// A running provider. Dropping it stops the process.
#[derive(Debug)]
pub struct OidcProvider {
    dir: tempfile::TempDir,
    port: u16,
    secret: String,
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
        crate::pki::run_ca()?.server_in(dir.path(), "server")?;
        // The key client `svc-key` signs its private_key_jwt assertions with.
        let key = rcgen::KeyPair::generate()
            .map_err(|e| HarnessError::io("assertion key")(std::io::Error::other(e.to_string())))?;
        std::fs::write(dir.path().join("assertion.key"), key.serialize_pem())
            .map_err(HarnessError::io("write the assertion key"))?;
        std::fs::write(dir.path().join("assertion.pub"), key.public_key_pem())
            .map_err(HarnessError::io("write the assertion public key"))?;
        let mut provider = Self {
            dir,
            port: free_port()?,
            secret: CLIENT_SECRET.to_owned(),
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
            .arg(&self.secret)
            .args(["server.crt", "server.key", "assertion.pub"]);
        self.process = Some(ServiceProcess::spawn(
            "oidc-provider",
            &mut cmd,
            "oidc-provider listening",
        )?);
        Ok(())
    }

    /// Starts it again with `secret` as the clients' secret (a rotation at the provider).
    pub fn restart_with_secret(&mut self, secret: &str) -> Result<(), HarnessError> {
        secret.clone_into(&mut self.secret);
        self.restart()
    }

    /// The issuer URL (`https://127.0.0.1:<port>`).
    pub fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The CA that issued the provider's certificate (PEM): trust this and nothing else.
    pub fn ca_pem(&self) -> Result<String, HarnessError> {
        Ok(crate::pki::run_ca()?.pem())
    }

    /// The private key (PKCS#8 PEM) client `svc-key` authenticates with; the provider
    /// knows its public half as kid `svc-key-1`.
    pub fn assertion_key_pem(&self) -> Result<Vec<u8>, HarnessError> {
        std::fs::read(self.dir.path().join("assertion.key"))
            .map_err(HarnessError::io("read the assertion key"))
    }

    /// Runs curl against the provider as client `svc`; returns the body.
    fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<String, HarnessError> {
        self.post_as("svc", path, form)
    }

    /// Runs curl against the provider as `client` (every client has the same secret).
    fn post_as(
        &self,
        client: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<String, HarnessError> {
        let ca = self.dir.path().join("ca.crt");
        std::fs::write(&ca, self.ca_pem()?).map_err(HarnessError::io("write ca.crt"))?;
        let encoded: String = form_urlencoded::byte_serialize(self.secret.as_bytes()).collect();
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .args(["-u", &format!("{client}:{encoded}")]);
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
        self.token_for("svc", resource, scope)
    }

    /// As [`Self::token`], for `client` (`alice` and `bob` get tokens naming themselves).
    pub fn token_for(
        &self,
        client: &str,
        resource: &str,
        scope: &str,
    ) -> Result<String, HarnessError> {
        let body = self.post_as(
            client,
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
