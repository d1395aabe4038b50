//! The password-grant bridge end to end: psql, psycopg and the JDBC driver log in to the
//! gateway with a user name and password that the gateway exchanges for tokens at a real
//! OAuth server (django-oauth-toolkit over HTTPS); a wrong password gets 28P01; with the
//! server down a rule without fallback refuses (08006) and one with `fallback = "scram"`
//! checks the gateway's own copy of the password; the token is refreshed while the
//! connection lives and revoked at the server when it ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use auth_core::account::Directory;
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_tests::eventually;
use auth_tests::gateway::{self, GatewayProcess};
use auth_tests::oauth_server::{CLIENT_SECRET, DjangoOAuth, TokenCounts};
use secrecy::SecretString;

const PASSWORD: &str = "alice's long oauth password";

struct Setup {
    server: DjangoOAuth,
    gateway: GatewayProcess,
    _dir: tempfile::TempDir,
}

/// The server knowing alice, and a gateway exchanging passwords there: database
/// `fallback` falls back to the gateway's own users, every other database does not. A
/// refresh is due at every message (`refresh_before` longer than the tokens live).
async fn setup() -> Setup {
    let server = DjangoOAuth::start("alice", PASSWORD).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("oauth-ca.crt");
    std::fs::write(&ca, auth_tests::pki::run_ca().unwrap().pem()).unwrap();
    let url = server.url();
    let rules = format!(
        r#"
[oauth_password]
token_endpoint = "{url}/o/token/"
revocation_endpoint = "{url}/o/revoke_token/"
client_id = "gateway"
client_secret_env = "GATEWAY_TEST_OAUTH_SECRET"
ca_file = "{ca}"
refresh_before = "1h"

[[rule]]
name = "oauth-with-fallback"
type = "hostssl"
databases = ["fallback"]
method = "oauth-password"
fallback = "scram"

[[rule]]
name = "oauth"
type = "hostssl"
method = "oauth-password"
"#,
        ca = ca.display()
    );
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let env = [(
        "GATEWAY_TEST_OAUTH_SECRET".to_owned(),
        CLIENT_SECRET.to_owned(),
    )];
    let gateway = GatewayProcess::start_with_env(binary, "20s", &rules, &env)
        .unwrap_or_else(|e| panic!("{e}"));
    let wallet = gateway.wallet().unwrap();
    Directory::new(wallet.clone())
        .update("alice", |_| {})
        .await
        .unwrap();
    // The gateway's own copy of alice's password, for the fallback.
    let hasher = Hasher::new(Argon2Settings::default()).unwrap();
    Users::new(wallet)
        .set_password(
            &hasher,
            &PasswordPolicy::default(),
            "alice",
            &SecretString::from(PASSWORD.to_owned()),
        )
        .await
        .unwrap();
    Setup {
        server,
        gateway,
        _dir: dir,
    }
}

impl Setup {
    fn conninfo(&self, database: &str) -> String {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user=alice dbname={database} \
             sslmode=verify-full sslrootcert={}",
            self.gateway.port,
            self.gateway.ca_file().display()
        )
    }

    fn psql(&self, database: &str, password: &str) -> Result<String, String> {
        gateway::psql(
            Command::new("psql"),
            &self.conninfo(database),
            password,
            "SELECT current_user",
        )
    }

    fn counts(&self) -> TokenCounts {
        self.server.token_counts().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for the tokens of every ended connection to be revoked (the session stage's
    /// close runs after the client has gone).
    fn all_revoked(&self) -> TokenCounts {
        eventually(Duration::from_secs(20), || {
            let c = self.counts();
            if c.access == 0 && c.live_refresh == 0 {
                Ok(c)
            } else {
                Err(format!("still live at the server: {c:?}"))
            }
        })
    }
}

#[tokio::test]
async fn psql_logs_in_through_the_server_and_its_tokens_are_revoked_after() {
    let s = setup().await;
    assert_eq!(s.psql("alice", PASSWORD).as_deref(), Ok("alice"));
    let after = s.all_revoked();
    // The login got one refresh token and the query's refresh rotated it.
    assert!(after.issued_refresh >= 2, "{after:?}");
    let ok = s.gateway.audit("attempt_succeeded");
    assert_eq!(ok[0]["method"], "oauth-password", "{ok:?}");
    // A wrong password is refused by the server, as PostgreSQL refuses one: 28P01.
    let err = s.psql("alice", "not her password").unwrap_err();
    assert!(
        err.contains("password authentication failed for user \"alice\""),
        "{err}"
    );
    assert_eq!(s.gateway.newest_refusal()["error"], "invalid_credentials");
}

#[tokio::test]
async fn psycopg_keeps_a_refreshed_token_while_connected() {
    let s = setup().await;
    let python = auth_tests::venv_python("psycopg").unwrap_or_else(|e| panic!("{e}"));
    // Connect, run three queries, report the server's token counts while still
    // connected (through stdin/stdout), then close.
    let script = r#"
import sys, psycopg
with psycopg.connect(sys.argv[1], password=sys.argv[2]) as conn:
    for _ in range(3):
        user = conn.execute("SELECT current_user").fetchone()[0]
    print(user, flush=True)
    sys.stdin.readline()
print("closed", flush=True)
"#;
    let mut child = Command::new(python)
        .args(["-c", script, &s.conninfo("alice"), PASSWORD])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "alice");
    // Connected: one live access token and refresh token, after a refresh per query.
    let live = s.counts();
    assert_eq!((live.access, live.live_refresh), (1, 1), "{live:?}");
    assert!(
        live.issued_refresh >= 4,
        "login plus three refreshes: {live:?}"
    );
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    s.all_revoked();
    assert_eq!(s.gateway.audit("session_ended").len(), 1);
    assert!(s.gateway.audit("session_renewal_failed").is_empty());
}

#[tokio::test]
async fn the_jdbc_driver_logs_in_and_a_wrong_password_is_28p01() {
    let s = setup().await;
    let probe = auth_tests::jdbc::JdbcProbe::compile().unwrap_or_else(|e| panic!("{e}"));
    let run = |password: &str| {
        let url = format!(
            "jdbc:postgresql://127.0.0.1:{}/alice?sslmode=require",
            s.gateway.port
        );
        let out = Command::new("java")
            .arg("-cp")
            .arg(probe.classpath())
            .args(["Probe", &url, "alice", password])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(run(PASSWORD), "OK alice");
    assert_eq!(run("not her password"), "ERR 28P01");
    s.all_revoked();
}

#[tokio::test]
async fn with_the_server_down_only_a_rule_with_fallback_lets_alice_in() {
    let mut s = setup().await;
    s.server.stop();
    let err = s.psql("alice", PASSWORD).unwrap_err();
    assert!(!err.contains("password authentication failed"), "{err}");
    let refusal = s.gateway.newest_refusal();
    assert_eq!(refusal["error"], "unavailable", "{refusal}");
    // The fallback checks the gateway's own copy of the password...
    assert_eq!(s.psql("fallback", PASSWORD).as_deref(), Ok("alice"));
    let ok = s.gateway.audit("attempt_succeeded");
    assert_eq!(ok.last().unwrap()["method"], "password", "{ok:?}");
    // ...and refuses a wrong one as firmly.
    let err = s.psql("fallback", "not her password").unwrap_err();
    assert!(
        err.contains("password authentication failed for user \"alice\""),
        "{err}"
    );
    // With the server back, the bridge is used again.
    s.server.restart().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.psql("fallback", PASSWORD).as_deref(), Ok("alice"));
    let ok = s.gateway.audit("attempt_succeeded");
    assert_eq!(ok.last().unwrap()["method"], "oauth-password", "{ok:?}");
}

#[tokio::test]
async fn sigterm_revokes_an_open_sessions_tokens_before_the_gateway_exits() {
    let mut s = setup().await;
    let python = auth_tests::venv_python("psycopg").unwrap_or_else(|e| panic!("{e}"));
    // Connected and idle while the gateway is told to stop.
    let (mut session, first) =
        gateway::HeldSession::open(Command::new(python), &s.conninfo("alice"), PASSWORD)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first, "alice");
    let live = s.counts();
    assert_eq!((live.access, live.live_refresh), (1, 1), "{live:?}");

    assert!(s.gateway.process.signal("TERM"));
    let status = s
        .gateway
        .process
        .wait_exit(Duration::from_secs(30))
        .expect("the gateway drains and exits");
    assert!(
        status.success(),
        "{status:?}: {}",
        s.gateway.process.output()
    );
    // Revoked before the process ended: no waiting here.
    let after = s.counts();
    assert_eq!((after.access, after.live_refresh), (0, 0), "{after:?}");
    let ended = s.gateway.audit("session_ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["username"], "alice");
    assert!(s.gateway.process.output().contains("stopped"));

    // The client was told why: 57P01, as PostgreSQL says a shutdown.
    let line = session.query();
    assert_eq!(line, "ended: 57P01", "{line}");
}
