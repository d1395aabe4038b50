//! OAUTH-3 end to end: the gateway's `oauth-password` rules against a token endpoint in
//! this test process (HTTPS, a certificate from the harness's run CA) that answers as a
//! provider does when it blocks a user (`access_denied`, a proxy's HTML 403), when it is
//! down (503) and when it refuses the gateway as its client (`invalid_client`). psql and the
//! JDBC driver log in as alice with her correct password, of which the gateway keeps its
//! own copy: a refusal by the provider is 28P01 and never falls back to that copy, even
//! with `fallback = "scram"`; an outage falls back (or is 08006 without a fallback); a
//! refusal of the gateway's client falls back too, audited as configuration. Refusals
//! count toward alice's lockout, outages do not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::path::Path;
use std::process::Command;

use auth_core::account::Directory;
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_tests::gateway::{self, GatewayProcess};
use auth_tests::token_endpoint::{Answer, TokenEndpoint as Provider};
use secrecy::SecretString;

/// Alice's password: at the provider, and the gateway's own copy for the fallback.
const PASSWORD: &str = "alice's long oauth password";
const CLIENT_SECRET: &str = "0123456789abcdef0123456789abcdef-gateway";
const JSON: &str = "application/json";
const WRONG_PASSWORD: &str = "password authentication failed for user \"alice\"";

const ACCESS_DENIED: Answer = Answer {
    status: 400,
    content_type: JSON,
    body: Cow::Borrowed(r#"{"error":"access_denied","error_description":"alice is blocked"}"#),
};
const HTML_403: Answer = Answer {
    status: 403,
    content_type: "text/html",
    body: Cow::Borrowed("<html><body><h1>403 Forbidden</h1>Request blocked.</body></html>"),
};
const DOWN: Answer = Answer {
    status: 503,
    content_type: "text/html",
    body: Cow::Borrowed("<html><body><h1>503 Service Unavailable</h1></body></html>"),
};
const INVALID_CLIENT: Answer = Answer {
    status: 401,
    content_type: JSON,
    body: Cow::Borrowed(r#"{"error":"invalid_client","error_description":"unknown client"}"#),
};

struct Setup {
    provider: Provider,
    gateway: GatewayProcess,
    _dir: tempfile::TempDir,
}

/// The provider, and a gateway exchanging passwords there: database `fallback` falls back
/// to the gateway's own copy of alice's password, every other database does not. `extra`
/// is appended to `gateway.toml`.
async fn setup(extra: &str) -> Setup {
    let provider = Provider::start(DOWN).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("oauth-ca.crt");
    std::fs::write(&ca, auth_tests::pki::run_ca().unwrap().pem()).unwrap();
    let rules = format!(
        r#"
[oauth_password]
token_endpoint = "https://127.0.0.1:{port}/token"
client_id = "gateway"
client_secret_env = "GATEWAY_TEST_OAUTH_SECRET"
ca_file = "{ca}"

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
{extra}"#,
        port = provider.port,
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
        provider,
        gateway,
        _dir: dir,
    }
}

impl Setup {
    /// psql as alice on `database` with her correct password: what it printed, or its
    /// error. Exactly one request must have reached the provider (`asked`), or none.
    fn psql(&self, database: &str, asked: bool) -> Result<String, String> {
        let before = self.provider.token_requests().len();
        let conninfo = format!(
            "host=localhost hostaddr=127.0.0.1 port={} user=alice dbname={database} \
             sslmode=verify-full sslrootcert={}",
            self.gateway.port,
            self.gateway.ca_file().display()
        );
        let out = gateway::psql(
            Command::new("psql"),
            &conninfo,
            PASSWORD,
            "SELECT current_user",
        );
        let requests = self.provider.token_requests();
        assert_eq!(requests.len(), before + usize::from(asked), "{out:?}");
        if asked {
            let sent = &requests.last().unwrap().body;
            assert!(
                sent.contains("grant_type=password") && sent.contains("username=alice"),
                "{sent}"
            );
        }
        out
    }

    /// The newest event of kind `event`, `Null` when there is none.
    fn newest(&self, event: &str) -> serde_json::Value {
        self.gateway.audit(event).pop().unwrap_or_default()
    }

    /// Whether the gateway's own password check ran at all.
    fn local_copy_used(&self) -> bool {
        self.gateway
            .audit_events()
            .iter()
            .any(|e| e["method"] == "password")
    }
}

/// The JDBC driver as alice on `database` with her correct password: `OK alice` or
/// `ERR <SQLSTATE>`.
fn jdbc(probe: &auth_tests::jdbc::JdbcProbe, s: &Setup, database: &str) -> String {
    let url = format!(
        "jdbc:postgresql://127.0.0.1:{}/{database}?sslmode=require",
        s.gateway.port
    );
    let out = Command::new("java")
        .arg("-cp")
        .arg(probe.classpath())
        .args(["Probe", &url, "alice", PASSWORD])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_refusal_by_the_provider_is_final_and_only_an_outage_falls_back() {
    let s = setup("").await;
    let probe = auth_tests::jdbc::JdbcProbe::compile().unwrap_or_else(|e| panic!("{e}"));

    // The provider blocks alice. Her password is right, and the gateway has its own copy,
    // but the provider's word stands: 28P01, as for a wrong password, and no fallback.
    for (answer, shown) in [
        (ACCESS_DENIED, "access_denied: alice is blocked"),
        (HTML_403, "HTTP 403"),
    ] {
        s.provider.answer(answer);
        let err = s.psql("fallback", true).unwrap_err();
        assert!(err.contains(WRONG_PASSWORD), "{shown}: {err}");
        let refusal = s.gateway.newest_refusal();
        assert_eq!(refusal["error"], "invalid_credentials", "{refusal}");
        assert_eq!(refusal["outcome"], "rejected", "{refusal}");
        assert_eq!(refusal["method"], "oauth-password", "{refusal}");
        assert_eq!(refusal["rule"], "oauth-with-fallback", "{refusal}");
        let detail = refusal["detail"].as_str().unwrap();
        assert!(detail.contains(shown), "{detail}");
        assert!(!detail.contains(PASSWORD), "{detail}");
        // The oauth-password step ended the chain.
        let step = s.newest("step");
        assert_eq!(step["method"], "oauth-password", "{step}");
        assert_eq!(step["outcome"], "rejected", "{step}");
        assert_eq!(step["action"], "die", "{step}");
        // Without a fallback: the same.
        let err = s.psql("alice", true).unwrap_err();
        assert!(err.contains(WRONG_PASSWORD), "{shown}: {err}");
        assert_eq!(s.newest_refusal_error(), "invalid_credentials");
    }
    assert!(s.gateway.audit("fallback").is_empty());
    assert!(!s.local_copy_used());
    // The SQLSTATE itself, with and without a fallback.
    s.provider.answer(ACCESS_DENIED);
    assert_eq!(jdbc(&probe, &s, "fallback"), "ERR 28P01");
    assert_eq!(jdbc(&probe, &s, "alice"), "ERR 28P01");
    assert!(!s.local_copy_used());
    assert!(s.gateway.audit("attempt_succeeded").is_empty());

    // The provider is down: with the fallback the gateway checks its own copy...
    s.provider.answer(DOWN);
    assert_eq!(s.psql("fallback", true).as_deref(), Ok("alice"));
    let ok = s.newest("attempt_succeeded");
    assert_eq!(ok["method"], "password", "{ok}");
    assert_eq!(ok["rule"], "oauth-with-fallback", "{ok}");
    let fallback = s.newest("fallback");
    assert_eq!(fallback["method"], "oauth-password", "{fallback}");
    assert_eq!(fallback["outcome"], "unavailable", "{fallback}");
    assert_eq!(fallback["error"], "unavailable", "{fallback}");
    assert!(
        fallback["detail"].as_str().unwrap().contains("HTTP 503"),
        "{fallback}"
    );
    // ...and without one the login fails as an outage, not as a wrong password.
    let err = s.psql("alice", true).unwrap_err();
    assert!(!err.contains(WRONG_PASSWORD), "{err}");
    let refusal = s.gateway.newest_refusal();
    assert_eq!(refusal["error"], "unavailable", "{refusal}");
    assert_eq!(refusal["outcome"], "unavailable", "{refusal}");
    assert_eq!(jdbc(&probe, &s, "alice"), "ERR 08006");

    // The provider refuses the gateway as its client: nothing was decided about alice,
    // so the fallback runs, and the audit says whose the fault is.
    s.provider.answer(INVALID_CLIENT);
    let fallbacks = s.gateway.audit("fallback").len();
    assert_eq!(s.psql("fallback", true).as_deref(), Ok("alice"));
    assert_eq!(s.gateway.audit("fallback").len(), fallbacks + 1);
    let fallback = s.newest("fallback");
    assert_eq!(fallback["outcome"], "unavailable", "{fallback}");
    assert_eq!(fallback["error"], "invalid_configuration", "{fallback}");
    assert!(
        fallback["detail"]
            .as_str()
            .unwrap()
            .contains("invalid_client: unknown client"),
        "{fallback}"
    );
    assert_eq!(s.newest("attempt_succeeded")["method"], "password");
    let err = s.psql("alice", true).unwrap_err();
    assert!(!err.contains(WRONG_PASSWORD), "{err}");
    let refusal = s.gateway.newest_refusal();
    assert_eq!(refusal["error"], "invalid_configuration", "{refusal}");
    assert_eq!(refusal["outcome"], "unavailable", "{refusal}");
}

#[tokio::test]
async fn refusals_count_toward_a_lockout_and_outages_do_not() {
    // Three failures lock alice out, also on loopback.
    let s = setup(
        "\n[rate_limit]\nuser_failures = 3\naddress_failures = 100\nexempt_localhost = false\nlockout = \"1h\"\n",
    )
    .await;
    // Four outages without a fallback: none counts...
    s.provider.answer(DOWN);
    for _ in 0..4 {
        let err = s.psql("alice", true).unwrap_err();
        assert!(!err.contains(WRONG_PASSWORD), "{err}");
        assert_eq!(s.newest_refusal_error(), "unavailable");
    }
    assert!(s.gateway.audit("lockout").is_empty());
    // ...so alice is not locked: the fallback lets her in.
    assert_eq!(s.psql("fallback", true).as_deref(), Ok("alice"));

    // Three refusals by the provider count as three wrong passwords...
    s.provider.answer(ACCESS_DENIED);
    for _ in 0..3 {
        let err = s.psql("fallback", true).unwrap_err();
        assert!(err.contains(WRONG_PASSWORD), "{err}");
    }
    assert!(s.gateway.audit("lockout").is_empty());
    // ...and lock her out: with the provider down, the fallback would let her in, but the
    // limiter refuses before any method runs (the provider is not asked).
    s.provider.answer(DOWN);
    let err = s.psql("fallback", false).unwrap_err();
    assert!(err.contains("too many failed attempts"), "{err}");
    let lockouts = s.gateway.audit("lockout");
    assert_eq!(lockouts.len(), 1, "{lockouts:?}");
    assert_eq!(lockouts[0]["username"], "alice", "{lockouts:?}");
    assert_eq!(lockouts[0]["error"], "rate_limited", "{lockouts:?}");
    // The one success is the fallback's before the refusals.
    assert_eq!(s.gateway.audit("attempt_succeeded").len(), 1);
}

impl Setup {
    /// The `error` of the newest refusal.
    fn newest_refusal_error(&self) -> String {
        self.gateway.newest_refusal()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}
