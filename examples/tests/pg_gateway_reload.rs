//! OPS-5, CORE-14: a running gateway reloads `gateway.toml` on SIGHUP. Its clients are a
//! test host's (a network namespace: not loopback, so the rate limiter counts them), and
//! the gateway keeps serving them through the reload:
//! - a new `reject` rule holds on pgwire and HTTP at once;
//! - a new CRL refuses the client certificate it revokes;
//! - a new server certificate (from the harness's CA) is what clients are shown on every
//!   door, and SCRAM-SHA-256-PLUS binds to it (libpq's `channel_binding=require`);
//! - a psycopg session opened before goes on; a user locked out before stays locked;
//! - a file with a problem is refused with its line, audited, and the rules in force stay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use auth_core::account::Directory;
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_tests::gateway::{self, GatewayProcess, HeldSession};
use auth_tests::netns::TestHost;
use auth_tests::pki::{ClientFiles, TestCa};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

const BOB_PASSWORD: &str = "bob-long-password-2026";
const LOCKED: &str = "too many failed attempts";
const RELOAD_WAIT: Duration = Duration::from_secs(30);

/// The file in force at start: certificates for alice, SCRAM for everyone else, and a
/// lockout long enough to outlast the test.
fn rules(ca: &Path, crl: &Path, extra_rule: &str) -> String {
    format!(
        r#"[client_certificates]
ca_file = "{}"
crl_file = "{}"

[rate_limit]
user_failures = 3
lockout = "300s"

[[rule]]
name = "certificates"
type = "hostssl"
users = ["alice"]
method = "cert"
{extra_rule}
[[rule]]
name = "scram"
method = "scram"
"#,
        ca.display(),
        crl.display()
    )
}

const NO_BOB: &str = r#"
[[rule]]
name = "no-bob"
users = ["bob"]
method = "reject"
"#;

struct Setup {
    gw: GatewayProcess,
    host: TestHost,
    ca: TestCa,
    alice: ClientFiles,
    pki: tempfile::TempDir,
}

async fn setup() -> Setup {
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Gateway Reload CA", pki.path()).unwrap();
    let ca_file = ca.write_ca("ca.crt").unwrap();
    let crl = ca.write_crl("client-ca.crl", &[99]).unwrap();
    let host = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gw = GatewayProcess::start_at(
        binary,
        host.gateway.into(),
        "10s",
        &rules(&ca_file, &crl, ""),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let wallet = gw.wallet().unwrap_or_else(|e| panic!("{e}"));
    Directory::new(wallet.clone())
        .update("alice", |_| {})
        .await
        .unwrap();
    Users::new(wallet)
        .set_password(
            &Hasher::new(Argon2Settings::default()).unwrap(),
            &PasswordPolicy::default(),
            "bob",
            &SecretString::from(BOB_PASSWORD.to_owned()),
        )
        .await
        .unwrap();
    Setup {
        alice: ca.client("alice", "alice", 7).unwrap(),
        gw,
        host,
        ca,
        pki,
    }
}

impl Setup {
    /// psql from the test host as `user`, TLS verified against `root` (`verify-ca`: the
    /// harness CA's server certificate names localhost, the host connects by address).
    fn psql(&self, user: &str, password: &str, root: &Path, extra: &str) -> Result<String, String> {
        gateway::psql(
            self.host.command("psql"),
            &self.gw.conninfo(
                user,
                &format!("sslmode=verify-ca sslrootcert={} {extra}", root.display()),
            ),
            password,
            "SELECT current_user",
        )
    }

    /// alice by her client certificate.
    fn alice(&self, root: &Path) -> Result<String, String> {
        let files = format!(
            "sslcert={} sslkey={}",
            self.alice.cert.display(),
            self.alice.key.display()
        );
        self.psql("alice", "", root, &files)
    }

    /// The HTTP status of `GET /whoami` as `user` from the test host, TLS verified
    /// against `root` for the name localhost.
    fn curl(&self, user: &str, password: &str, root: &Path) -> String {
        let port = self.gw.http_port;
        let args = [
            "--cacert".to_owned(),
            root.display().to_string(),
            "--connect-to".to_owned(),
            format!("localhost:{port}:{}:{port}", self.gw.ip),
            "-u".to_owned(),
            format!("{user}:{password}"),
        ];
        gateway::http_status(
            self.host.command("curl"),
            &args,
            &format!("https://localhost:{port}/whoami"),
        )
    }

    /// Writes `gateway.toml` with the harness's `listen` and `auth_timeout` and `body`;
    /// the text written.
    fn write_config(&self, body: &str) -> String {
        let text = format!(
            "listen = \"{}:{}\"\nauth_timeout = \"10s\"\n{body}",
            self.gw.ip, self.gw.port
        );
        std::fs::write(self.gw.data.join("gateway.toml"), &text).unwrap();
        text
    }

    /// Sends SIGHUP and waits for the `count`th line containing `marker`.
    fn reload(&self, marker: &str, count: usize) -> String {
        assert!(self.gw.process.signal("HUP"));
        self.gw
            .process
            .wait_for_lines(marker, count, RELOAD_WAIT)
            .unwrap_or_else(|| {
                panic!(
                    "no `{marker}` line after SIGHUP: {}",
                    self.gw.process.output()
                )
            })
    }
}

/// A psycopg session as demo from the test host, held open.
fn held_session(s: &Setup) -> HeldSession {
    let python = auth_tests::venv_python("psycopg").unwrap_or_else(|e| panic!("{e}"));
    let (held, first) = HeldSession::open(
        s.host.command(python.to_str().unwrap()),
        &s.gw.conninfo("demo", "sslmode=require"),
        &s.gw.demo_password,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first, "demo");
    held
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_puts_new_rules_crl_and_certificate_in_force_and_sessions_and_lockouts_survive() {
    let s = setup().await;
    // The certificate the first start made; kept, to show it is no longer served.
    let first_cert = s.pki.path().join("first-server.crt");
    std::fs::copy(s.gw.ca_file(), &first_cert).unwrap();
    let demo = s.gw.demo_password.clone();

    assert_eq!(
        s.psql("bob", BOB_PASSWORD, &first_cert, ""),
        Ok("bob".into())
    );
    assert_eq!(s.curl("bob", BOB_PASSWORD, &first_cert), "200");
    assert_eq!(s.alice(&first_cert), Ok("alice".into()));
    let mut session = held_session(&s);
    // carol is locked out from this address before the reload.
    for _ in 0..3 {
        let refused = s.psql("carol", "wrong", &first_cert, "").unwrap_err();
        assert!(!refused.contains(LOCKED), "{refused}");
    }
    let locked = s.psql("carol", "wrong", &first_cert, "").unwrap_err();
    assert!(locked.contains(LOCKED), "{locked}");

    // The new files: a server certificate from the CA, a CRL revoking alice's
    // certificate, and a rule refusing bob.
    let data = &s.gw.data;
    std::fs::remove_file(data.join("server.crt")).unwrap();
    std::fs::remove_file(data.join("server.key")).unwrap();
    s.ca.server_in(data, "server").unwrap();
    let ca_file = s.pki.path().join("ca.crt");
    let crl = s.ca.write_crl("client-ca.crl", &[7]).unwrap();
    let text = s.write_config(&rules(&ca_file, &crl, NO_BOB));
    let output = s.reload("reloaded:", 1);
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    assert!(output.contains(&digest), "{output}");
    assert!(
        !output.contains("after a restart"),
        "nothing waits for a restart: {output}"
    );

    // The new certificate on pgwire and HTTP; the first one is not served any more.
    let refused = s.psql("demo", &demo, &first_cert, "").unwrap_err();
    assert!(refused.contains("certificate verify failed"), "{refused}");
    assert_eq!(s.curl("demo", &demo, &first_cert), "000");
    // SCRAM-SHA-256-PLUS binds to the certificate served now.
    assert_eq!(
        s.psql("demo", &demo, &ca_file, "channel_binding=require"),
        Ok("demo".into())
    );
    assert_eq!(s.curl("demo", &demo, &ca_file), "200");
    // The new rule on both doors, the CRL for alice.
    let refused = s.psql("bob", BOB_PASSWORD, &ca_file, "").unwrap_err();
    assert!(refused.contains("no pg_hba.conf entry"), "{refused}");
    assert_eq!(
        s.gw.audit("policy_reject").last().unwrap()["rule"],
        "no-bob"
    );
    assert_eq!(s.curl("bob", BOB_PASSWORD, &ca_file), "401");
    let refused = s.alice(&ca_file).unwrap_err();
    assert!(refused.contains("authentication failed"), "{refused}");
    assert!(
        s.gw.newest_refusal_detail().contains("revoked"),
        "{}",
        s.gw.newest_refusal_detail()
    );

    // What survives: the open session, and carol's lockout.
    assert_eq!(session.query(), "demo");
    let locked = s.psql("carol", "wrong", &ca_file, "").unwrap_err();
    assert!(locked.contains(LOCKED), "{locked}");

    let reloaded = s.gw.audit("config_reloaded");
    assert_eq!(reloaded.len(), 1);
    assert!(
        reloaded[0]["detail"].as_str().unwrap().contains(&digest),
        "{reloaded:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_is_refused_with_its_line_and_the_rules_in_force_stay() {
    let s = setup().await;
    let cert = s.pki.path().join("first-server.crt");
    std::fs::copy(s.gw.ca_file(), &cert).unwrap();
    let ca_file = s.pki.path().join("ca.crt");
    let crl = s.pki.path().join("client-ca.crl");

    // A reject rule for bob, and a typo further down: nothing of it may take effect.
    let mut broken = rules(&ca_file, &crl, NO_BOB);
    broken.push_str("\n[[rule]]\nname = \"typo\"\ntype = \"hostsll\"\nmethod = \"scram\"\n");
    let broken = s.write_config(&broken);
    let output = s.reload("reload refused", 1);
    let line = broken.lines().position(|l| l.contains("hostsll")).unwrap() + 1;
    assert!(
        output.contains(&format!(":{line}")) && output.contains("hostsll"),
        "the refusal names the line: {output}"
    );
    assert_eq!(s.psql("bob", BOB_PASSWORD, &cert, ""), Ok("bob".into()));
    assert_eq!(s.curl("bob", BOB_PASSWORD, &cert), "200");

    // A certificate that is not there: refused too, and TLS goes on with the one in force.
    let missing = rules(&ca_file, &crl, NO_BOB).replace(
        "[client_certificates]",
        "tls_certificate = \"renewed.crt\"\n\n[client_certificates]",
    );
    s.write_config(&missing);
    let output = s.reload("reload refused", 2);
    assert!(output.contains("renewed.crt"), "{output}");
    assert_eq!(s.psql("bob", BOB_PASSWORD, &cert, ""), Ok("bob".into()));

    let refused = s.gw.audit("config_refused");
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(s.gw.audit("config_reloaded").is_empty());

    // Mended, it is put in force, and says what waits for a restart.
    let mended = rules(&ca_file, &crl, NO_BOB).replace("user_failures = 3", "user_failures = 4");
    s.write_config(&mended);
    let output = s.reload("reloaded:", 1);
    assert!(
        output.contains("in force after a restart: [rate_limit]"),
        "{output}"
    );
    let refused = s.psql("bob", BOB_PASSWORD, &cert, "").unwrap_err();
    assert!(refused.contains("no pg_hba.conf entry"), "{refused}");
}
