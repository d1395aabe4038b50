//! OAUTHBEARER (RFC 7628) end to end: psycopg on the libpq 18 its wheel bundles logs in to
//! the gateway over TLS with a bearer token from a real OpenID provider (oidc-provider
//! over HTTPS), through libpq's auth-data hook; refused tokens get 28000 after the RFC
//! 7628 error round; a client without a token learns the issuer and scope and reconnects;
//! malformed messages from a raw client end with 08P01; clients that cannot speak
//! OAUTHBEARER (psql 15, the JDBC driver) get a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use auth_core::account::Directory;
use auth_tests::gateway::{
    GatewayProcess, frontend_message, preauth_client, sasl_initial_response, startup_packet,
};
use auth_tests::netns::TestHost;
use auth_tests::oidc::{CLIENT_SECRET, OidcProvider};

struct Setup {
    provider: OidcProvider,
    gateway: GatewayProcess,
    _dir: tempfile::TempDir,
}

/// The provider, and a gateway trusting it for `oauthbearer` rules: over TLS, one
/// advertising the bare issuer (user carol) and one the discovery document (everyone
/// else); and one on the Unix socket, if `extra` makes one.
async fn setup(extra: &str) -> Setup {
    setup_at(IpAddr::from([127, 0, 0, 1]), extra).await
}

/// As [`setup`], with the gateway listening on `ip` (a test host's gateway address).
async fn setup_at(ip: IpAddr, extra: &str) -> Setup {
    let provider = OidcProvider::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("idp-ca.crt");
    std::fs::write(&ca, provider.ca_pem().unwrap()).unwrap();
    let issuer = provider.issuer();
    let rules = format!(
        r#"{extra}
[[oauth_issuer]]
issuer = "{issuer}"
audience = "urn:api"
ca_file = "{ca}"

[[rule]]
name = "oauth-discovered"
type = "hostssl"
users = ["carol"]
method = "oauthbearer"
issuer = "{issuer}"
scope = "read"

[[rule]]
name = "oauth"
type = "hostssl"
method = "oauthbearer"
issuer = "{issuer}/.well-known/openid-configuration"
scope = "read"

[[rule]]
name = "oauth-socket"
type = "local"
method = "oauthbearer"
issuer = "{issuer}/.well-known/openid-configuration"
scope = "read"
"#,
        ca = ca.display()
    );
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gateway =
        GatewayProcess::start_at(binary, ip, "20s", &rules, &[]).unwrap_or_else(|e| panic!("{e}"));
    let directory = Directory::new(gateway.wallet().unwrap());
    for user in ["alice", "bob", "carol"] {
        directory.update(user, |_| {}).await.unwrap();
    }
    Setup {
        provider,
        gateway,
        _dir: dir,
    }
}

/// What `tests/python/oauthbearer.py` reported.
#[derive(Debug)]
struct Login {
    ok: bool,
    user: Option<String>,
    error: String,
    hook_calls: Vec<serde_json::Value>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/oauthbearer.py")
}

impl Setup {
    fn ca(&self) -> PathBuf {
        self._dir.path().join("idp-ca.crt")
    }

    /// psycopg (libpq 18) logging in as `user` with `oauth_issuer`, its hook fetching a
    /// token as client `client` for `resource`.
    fn login(&self, user: &str, oauth_issuer: &str, client: &str, resource: &str) -> Login {
        let python = auth_tests::venv_python("psycopg").unwrap_or_else(|e| panic!("{e}"));
        let conninfo = self.gateway.conninfo(
            user,
            &format!(
                "sslmode=verify-full sslrootcert={} oauth_issuer={oauth_issuer} oauth_client_id=gateway-test",
                self.gateway.ca_file().display()
            ),
        )
        // The certificate names localhost.
        .replace("host=127.0.0.1", "host=localhost hostaddr=127.0.0.1");
        let out = Command::new(python)
            .arg(script())
            .arg(conninfo)
            .arg(format!("{}/token", self.provider.issuer()))
            .args([client, CLIENT_SECRET])
            .arg(self.ca())
            .args([resource, "read"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
        Login {
            ok: v["ok"] == true,
            user: v["user"].as_str().map(str::to_owned),
            error: v["error"].as_str().unwrap_or_default().to_owned(),
            hook_calls: v["hook_calls"].as_array().cloned().unwrap_or_default(),
        }
    }

    fn discovery(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.provider.issuer()
        )
    }
}

#[tokio::test]
async fn psycopg_on_libpq_18_logs_in_with_a_token_from_the_provider() {
    let s = setup("").await;
    let login = s.login("alice", &s.discovery(), "alice", "urn:api");
    assert!(login.ok, "{login:?}");
    assert_eq!(login.user.as_deref(), Some("alice"));
    // libpq asked the hook once, for the advertised document and scope.
    assert_eq!(login.hook_calls.len(), 1, "{login:?}");
    assert_eq!(login.hook_calls[0]["openid_configuration"], s.discovery());
    let ok = s.gateway.audit("attempt_succeeded");
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_eq!(ok[0]["username"], "alice");
    assert!(
        s.gateway.audit("attempt_failed").is_empty(),
        "no discovery round when the client knows the document"
    );
}

#[tokio::test]
async fn refused_tokens_end_with_28000_after_the_error_round() {
    let s = setup("").await;
    // Another audience, an expired token, and alice's token on bob's login.
    for (user, client, resource, detail) in [
        ("alice", "alice", "urn:other", "aud"),
        ("alice", "expired", "urn:api", "expired"),
        (
            "bob",
            "alice",
            "urn:api",
            "may not act as the requested user `bob`",
        ),
    ] {
        let login = s.login(user, &s.discovery(), client, resource);
        assert!(
            !login.ok,
            "{user} with {client}'s {resource} token: {login:?}"
        );
        assert!(
            login.error.contains(&format!(
                "OAuth bearer authentication failed for user \"{user}\""
            )),
            "{login:?}"
        );
        let refusal = s.gateway.newest_refusal();
        assert_eq!(refusal["username"], user, "{refusal}");
        let said = refusal["detail"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        assert!(said.contains(detail), "{detail}: {refusal}");
    }
    let codes: Vec<_> = s
        .gateway
        .audit("attempt_failed")
        .iter()
        .map(|e| e["error"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(codes.len(), 3, "{codes:?}");
    assert!(codes.iter().all(|c| !c.is_empty()), "{codes:?}");
}

#[tokio::test]
async fn a_client_without_a_token_learns_the_issuer_and_reconnects() {
    let s = setup("").await;
    // oauth_issuer is the bare issuer: libpq first asks the server which document and
    // scope (an empty token), then reconnects with the hook's token.
    let login = s.login("carol", &s.provider.issuer(), "alice", "urn:api");
    // The token names alice: carol's login is refused after the discovery round...
    assert!(!login.ok, "{login:?}");
    assert_eq!(login.hook_calls.len(), 1, "{login:?}");
    assert_eq!(login.hook_calls[0]["openid_configuration"], s.discovery());
    assert_eq!(login.hook_calls[0]["scope"], "read");
    let failed = s.gateway.audit("attempt_failed");
    assert_eq!(
        failed.len(),
        2,
        "discovery, then the refused token: {failed:?}"
    );
    assert_eq!(failed[0]["error"], "missing_credentials", "{failed:?}");
    // ...and with carol's own identity mapped, the same two connections log in.
    let directory = Directory::new(s.gateway.wallet().unwrap());
    directory
        .map_identity("oauth", "alice", "carol")
        .await
        .unwrap();
    let login = s.login("carol", &s.provider.issuer(), "alice", "urn:api");
    assert!(login.ok, "{login:?}");
    assert_eq!(login.user.as_deref(), Some("carol"));
    // Neither discovery round counted as a failure against anyone.
    assert!(s.gateway.audit("lockout").is_empty());
}

#[tokio::test]
async fn discovery_rounds_from_another_host_are_not_failed_attempts() {
    let host = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    // Two failures would lock alice out, and her address.
    let limits = "[rate_limit]\nuser_failures = 2\naddress_failures = 2\nlockout = \"1h\"\n";
    let s = setup_at(host.gateway.into(), limits).await;
    let gw = &s.gateway;
    let out = preauth_client(&host)
        .unwrap_or_else(|e| panic!("{e}"))
        .args([
            "pg-discover",
            &gw.ip.to_string(),
            &gw.port.to_string(),
            "alice",
            "6",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "discovered 6",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.gateway.audit("attempt_failed").len(), 6);
    // From the same address, alice logs in with her token: nothing was counted.
    let token = s.provider.token_for("alice", "urn:api", "read").unwrap();
    let python = auth_tests::venv_python("psycopg").unwrap_or_else(|e| panic!("{e}"));
    let conninfo = gw.conninfo(
        "alice",
        &format!(
            "sslmode=verify-ca sslrootcert={} oauth_issuer={} oauth_client_id=gateway-test",
            gw.ca_file().display(),
            s.discovery()
        ),
    );
    let out = host
        .command(&python.display().to_string())
        .arg(script())
        .args([&conninfo, "-", "alice", &token, "-", "urn:api", "read"])
        .output()
        .unwrap();
    let said: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(said["ok"], true, "{said}");
    assert_eq!(said["user"], "alice", "{said}");
    assert!(s.gateway.audit("lockout").is_empty());
    assert!(s.gateway.audit("abandoned").is_empty());
    // The limits are real: refused tokens from there for bob, who has not logged in from
    // there before, lock him out.
    let bob = conninfo.replace("user=alice dbname=alice", "user=bob dbname=bob");
    for _ in 0..3 {
        let out = host
            .command(&python.display().to_string())
            .arg(script())
            .args([&bob, "-", "bob", "not-his-token", "-", "urn:api", "read"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"ok\": false"));
    }
    assert!(
        !s.gateway.audit("lockout").is_empty(),
        "{:?}",
        s.gateway.audit_events()
    );
}

/// A raw client on the gateway's Unix socket: the startup packet for `user`, then a
/// SASLInitialResponse for OAUTHBEARER carrying `initial`, then `then` if the server
/// answered with a SASLContinue. Returns the server's messages after the startup.
fn raw_exchange(socket: &Path, user: &str, initial: &[u8], then: Option<&[u8]>) -> Vec<Vec<u8>> {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&startup_packet(user)).unwrap();
    let offer = read_message(&mut stream);
    assert_eq!(&offer[..1], b"R", "AuthenticationSASL first: {offer:?}");
    assert!(offer.windows(11).any(|w| w == b"OAUTHBEARER"), "{offer:?}");
    stream
        .write_all(&sasl_initial_response("OAUTHBEARER", initial))
        .unwrap();
    let mut seen = vec![read_message(&mut stream)];
    if let (Some(then), b'R') = (then, seen[0][0]) {
        stream.write_all(&frontend_message(b'p', then)).unwrap();
        seen.push(read_message(&mut stream));
    }
    seen
}

fn read_message(stream: &mut UnixStream) -> Vec<u8> {
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).unwrap();
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).unwrap();
    let mut out = head.to_vec();
    out.extend(body);
    out
}

/// The SQLSTATE of an ErrorResponse (`None` for any other message).
fn sqlstate(message: &[u8]) -> Option<String> {
    if message.first() != Some(&b'E') {
        return None;
    }
    message[5..]
        .split(|b| *b == 0)
        .find_map(|field| field.strip_prefix(b"C"))
        .map(|c| String::from_utf8_lossy(c).into_owned())
}

/// The JSON of an AuthenticationSASLContinue (code 11).
fn sasl_continue(message: &[u8]) -> serde_json::Value {
    assert_eq!(&message[..1], b"R", "{message:?}");
    assert_eq!(
        &message[5..9],
        &11i32.to_be_bytes(),
        "SASLContinue: {message:?}"
    );
    serde_json::from_slice(&message[9..]).unwrap()
}

#[tokio::test]
async fn malformed_messages_from_a_raw_client_end_cleanly() {
    let s = setup(
        r#"unix_socket_directory = "."
"#,
    )
    .await;
    let socket = s
        .gateway
        .socket_dir()
        .join(format!(".s.PGSQL.{}", s.gateway.port));
    let discovery = s.discovery();
    // Broken structure: 08P01 at once, no error round.
    for initial in [
        &b"p=tls-server-end-point,,\x01auth=Bearer abc\x01\x01"[..],
        b"n,,\x01\x01",
        b"n,a=bob,\x01auth=Bearer abc\x01\x01",
        b"n,,\x01auth=Bearer abc\x01",
        b"",
    ] {
        let seen = raw_exchange(&socket, "alice", initial, Some(b"\x01"));
        assert_eq!(seen.len(), 1, "{initial:?}: {seen:?}");
        assert_eq!(sqlstate(&seen[0]).as_deref(), Some("08P01"), "{initial:?}");
    }
    let huge = [
        b"n,,\x01auth=Bearer ".as_slice(),
        &[b'a'; 9000],
        b"\x01\x01",
    ]
    .concat();
    let seen = raw_exchange(&socket, "alice", &huge, None);
    assert_eq!(sqlstate(&seen[0]).as_deref(), Some("08P01"));
    // A discovery request and a garbled token: the RFC 7628 error, 0x01, then 28000.
    for initial in [
        &b"n,,\x01auth=\x01\x01"[..],
        b"n,,\x01auth=Bearer not a token\x01\x01",
        b"y,,\x01host=x\x01auth=Bearer abc.def\x01\x01",
    ] {
        let seen = raw_exchange(&socket, "alice", initial, Some(b"\x01"));
        assert_eq!(seen.len(), 2, "{initial:?}: {seen:?}");
        let error = sasl_continue(&seen[0]);
        assert_eq!(error["status"], "invalid_token");
        assert_eq!(error["openid-configuration"], discovery);
        assert_eq!(error["scope"], "read");
        assert_eq!(sqlstate(&seen[1]).as_deref(), Some("28000"), "{initial:?}");
    }
    // Anything but 0x01 after the error is a protocol violation.
    let seen = raw_exchange(&socket, "alice", b"n,,\x01auth=\x01\x01", Some(b"\x01\x01"));
    assert_eq!(sqlstate(&seen[1]).as_deref(), Some("08P01"));
    // The gateway still serves a real login afterwards.
    let login = s.login("alice", &s.discovery(), "alice", "urn:api");
    assert!(login.ok, "{login:?}");
}

#[tokio::test]
async fn clients_without_oauthbearer_get_a_clear_error() {
    let s = setup("").await;
    let conninfo = s.gateway.conninfo(
        "alice",
        &format!(
            "sslmode=verify-ca sslrootcert={}",
            s.gateway.ca_file().display()
        ),
    );
    let psql = Command::new("psql")
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-X", "-w", "-At", "-d", &conninfo, "-c", "select 1"])
        .output()
        .unwrap();
    assert!(!psql.status.success());
    let said = String::from_utf8_lossy(&psql.stderr);
    // libpq before 18 names the problem: it knows none of the offered mechanisms; libpq
    // 18 knows OAUTHBEARER and asks for the settings it lacks.
    let version = Command::new("psql").arg("--version").output().unwrap();
    let major: u32 = String::from_utf8_lossy(&version.stdout)
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap();
    let expected = if major >= 18 {
        "oauth_issuer and oauth_client_id are not both set"
    } else {
        "none of the server's SASL authentication mechanisms are supported"
    };
    assert!(said.contains(expected), "psql {major}: {said}");
    let probe = auth_tests::jdbc::JdbcProbe::compile().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("java")
        .arg("-cp")
        .arg(probe.classpath())
        .args([
            "Probe",
            &format!(
                "jdbc:postgresql://127.0.0.1:{}/alice?sslmode=require",
                s.gateway.port
            ),
            "alice",
            "unused",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ERR"),
        "{said}"
    );
    // pgjdbc knows only SCRAM among SASL mechanisms, and says so.
    assert!(
        said.contains("unsupported by client SCRAM mechanisms"),
        "{said}"
    );
    // Neither client left anything behind: a libpq 18 login still works.
    assert!(s.login("alice", &s.discovery(), "alice", "urn:api").ok);
}
