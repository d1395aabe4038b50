//! The gateway end to end with real clients: psql (libpq), tokio-postgres, psycopg 3 and
//! the JDBC driver log in with SCRAM, SCRAM-PLUS over TLS and cleartext over TLS; wrong
//! passwords get 28P01, policy rejects 28000; the audit log says what happened; hostile
//! and broken connections end cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use auth_core::{CredentialStore, Key, Precondition};
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, UserRecord, Users};
use auth_tests::gateway::{
    GatewayProcess, printed_line, run_printed, run_printed_grpcurl, startup_packet,
};

use secrecy::SecretString;

const RULES: &str = r#"
[[rule]]
name = "no-mallory"
users = ["mallory"]
method = "reject"

[[rule]]
name = "cleartext-users"
users = ["clara", "paul"]
method = "password"

[[rule]]
name = "scram"
method = "scram"
"#;

struct Gateway(GatewayProcess);

impl std::ops::Deref for Gateway {
    type Target = GatewayProcess;
    fn deref(&self) -> &GatewayProcess {
        &self.0
    }
}

impl Gateway {
    fn start(auth_timeout: &str) -> Self {
        let binary = std::path::Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
        Self(GatewayProcess::start(binary, auth_timeout, RULES).unwrap_or_else(|e| panic!("{e}")))
    }

    async fn add_users(&self) {
        let wallet = self.wallet().unwrap_or_else(|e| panic!("{e}"));
        wallet
            .put(
                &Key::new("pgwire-user-clara").unwrap(),
                b"clara wallet secret".to_vec().into(),
                Precondition::None,
            )
            .await
            .unwrap();
        let users = Users::new(wallet);
        // A wallet secret is a credential, not an account: clara gets one too.
        users.update("clara", |_| {}).await.unwrap();
        let hasher = Hasher::new(Argon2Settings::default()).unwrap();
        for (name, password) in [
            ("paul", "paul long password"),
            ("mallory", "mallory password"),
        ] {
            users
                .set_password(
                    &hasher,
                    &PasswordPolicy::default(),
                    name,
                    &SecretString::from(password.to_owned()),
                )
                .await
                .unwrap();
        }
    }

    fn cert(&self) -> String {
        self.data.join("server.crt").display().to_string()
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        self.0.audit_events()
    }
}

/// Runs psql; returns (succeeded, stdout, stderr).
fn psql(conninfo: &str, password: &str, sql: &str) -> (bool, String, String) {
    let out = Command::new("psql")
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-X", "-w", "-At", "-d", conninfo, "-c", sql])
        .output()
        .expect("psql is installed (scripts/install-deps.sh)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

#[tokio::test]
async fn psql_logs_in_with_scram_scram_plus_and_cleartext_over_tls() {
    let gw = Gateway::start("60s");
    gw.add_users().await;
    let demo = &gw.demo_password;

    let (ok, out, err) = psql(
        &gw.conninfo("demo", "sslmode=disable"),
        demo,
        "SELECT current_user",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "demo");

    // SCRAM-SHA-256-PLUS: channel_binding=require fails unless the server offered and
    // completed it; verify-full checks the generated certificate.
    let tls = format!(
        "sslmode=verify-full sslrootcert={} channel_binding=require",
        gw.cert()
    );
    let (ok, out, err) = psql(&gw.conninfo("demo", &tls), demo, "SELECT session_user");
    assert!(ok, "{err}");
    assert_eq!(out, "demo");

    // Cleartext over TLS: a wallet secret, and a password hash after a wallet miss.
    let (ok, out, err) = psql(
        &gw.conninfo("clara", "sslmode=require"),
        "clara wallet secret",
        "SELECT current_user",
    );
    assert!(ok && out == "clara", "{err}");
    let (ok, out, err) = psql(
        &gw.conninfo("paul", "sslmode=require"),
        "paul long password",
        "SELECT current_user",
    );
    assert!(ok && out == "paul", "{err}");

    let methods: Vec<String> = gw
        .audit()
        .iter()
        .filter(|e| e["event"] == "attempt_succeeded")
        .map(|e| {
            format!(
                "{}:{}",
                e["username"].as_str().unwrap(),
                e["method"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        methods,
        ["demo:scram", "demo:scram", "clara:wallet", "paul:password"]
    );
}

#[tokio::test]
async fn failures_are_generic_to_psql_and_precise_in_the_audit_log() {
    let gw = Gateway::start("60s");
    gw.add_users().await;
    let (ok, _, err) = psql(
        &gw.conninfo("demo", "sslmode=disable"),
        "wrong password",
        "SELECT 1",
    );
    assert!(!ok);
    assert!(
        err.contains("FATAL:  password authentication failed for user \"demo\""),
        "{err}"
    );
    let (ok, _, err) = psql(
        &gw.conninfo("nobody", "sslmode=disable"),
        "anything",
        "SELECT 1",
    );
    assert!(
        !ok && err.contains("password authentication failed for user \"nobody\""),
        "{err}"
    );
    let (ok, _, err) = psql(
        &gw.conninfo("mallory", "sslmode=require"),
        "mallory password",
        "SELECT 1",
    );
    assert!(
        !ok && err.contains("no pg_hba.conf entry for host \"127.0.0.1\", user \"mallory\""),
        "{err}"
    );
    // Cleartext without TLS is refused before any password is sent.
    let (ok, _, err) = psql(
        &gw.conninfo("clara", "sslmode=disable"),
        "clara wallet secret",
        "SELECT 1",
    );
    assert!(
        !ok && err.contains("requires an encrypted connection"),
        "{err}"
    );

    let audit = gw.audit();
    let failed: Vec<(String, String)> = audit
        .iter()
        .filter(|e| e["event"] == "attempt_failed")
        .map(|e| {
            (
                e["username"].as_str().unwrap().to_owned(),
                e["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        failed[0],
        ("demo".into(), "wrong SCRAM proof for user `demo`".into())
    );
    assert_eq!(
        failed[1],
        (
            "nobody".into(),
            "SCRAM for user `nobody` failed: unknown user".into()
        )
    );
    let rejects: Vec<&serde_json::Value> = audit
        .iter()
        .filter(|e| e["event"] == "policy_reject")
        .collect();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["username"], "mallory");
    assert!(
        rejects[0]["detail"]
            .as_str()
            .unwrap()
            .contains("no-mallory")
    );
    gw.flush_audit();
    let text = std::fs::read_to_string(gw.data.join("audit.jsonl")).unwrap();
    for secret in [
        "wrong password",
        "mallory password",
        "clara wallet secret",
        gw.demo_password.as_str(),
    ] {
        assert!(!text.contains(secret), "a password reached the audit log");
    }
}

async fn tokio_pg(
    conninfo: &str,
    password: &str,
) -> Result<(String, String), tokio_postgres::Error> {
    let conninfo = format!("{conninfo} password='{password}' connect_timeout=10");
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    // Extended protocol, then simple protocol.
    let row = client.query_one("SELECT current_user", &[]).await?;
    let mut simple = String::new();
    for m in client.simple_query("SELECT session_user").await? {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            simple = r.get(0).unwrap_or_default().to_owned();
        }
    }
    Ok((row.get::<_, String>(0), simple))
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_owned())
        .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

#[tokio::test]
async fn tokio_postgres_gets_the_sqlstates() {
    let gw = Gateway::start("60s");
    gw.add_users().await;
    let (a, b) = tokio_pg(&gw.conninfo("demo", ""), &gw.demo_password)
        .await
        .unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("demo", "demo"));
    let e = tokio_pg(&gw.conninfo("demo", ""), "wrong")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "28P01");
    let e = tokio_pg(&gw.conninfo("mallory", ""), "mallory password")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "28000");
    let e = tokio_pg(&gw.conninfo("clara", ""), "clara wallet secret")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "28000", "cleartext without TLS");
}

fn venv_python() -> PathBuf {
    auth_tests::venv_python("psycopg").unwrap_or_else(|e| panic!("{e}"))
}

const PSYCOPG: &str = r#"
import sys, psycopg
try:
    with psycopg.connect(sys.argv[1]) as conn:
        print("OK", conn.execute("SELECT current_user").fetchone()[0], conn.pgconn.used_password)
except psycopg.OperationalError as e:
    print("ERR", str(e).strip().splitlines()[-1])
"#;

fn psycopg(conninfo: &str) -> String {
    let out = Command::new(venv_python())
        .args(["-c", PSYCOPG, conninfo])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn psycopg_3_with_its_bundled_libpq() {
    let gw = Gateway::start("60s");
    gw.add_users().await;
    let pw = &gw.demo_password;
    assert_eq!(
        psycopg(&gw.conninfo("demo", &format!("password={pw} sslmode=disable"))),
        "OK demo True"
    );
    let plus = format!(
        "password={pw} sslmode=verify-full sslrootcert={} channel_binding=require",
        gw.cert()
    );
    assert_eq!(psycopg(&gw.conninfo("demo", &plus)), "OK demo True");
    let clear = psycopg(&gw.conninfo("paul", "password='paul long password' sslmode=require"));
    assert_eq!(clear, "OK paul True");
    let wrong = psycopg(&gw.conninfo("demo", "password=wrong sslmode=disable"));
    assert!(
        wrong.contains("password authentication failed for user \"demo\""),
        "{wrong}"
    );
}

#[tokio::test]
async fn the_jdbc_driver() {
    let probe = auth_tests::jdbc::JdbcProbe::compile().unwrap_or_else(|e| panic!("{e}"));
    let gw = Gateway::start("60s");
    gw.add_users().await;
    let run = |url: String, user: &str, password: &str| {
        let out = Command::new("java")
            .arg("-cp")
            .arg(probe.classpath())
            .args(["Probe", &url, user, password])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let url = |extra: &str| format!("jdbc:postgresql://127.0.0.1:{}/demo?{extra}", gw.port);
    assert_eq!(
        run(url("sslmode=disable"), "demo", &gw.demo_password),
        "OK demo"
    );
    assert_eq!(
        run(url("sslmode=require"), "demo", &gw.demo_password),
        "OK demo"
    );
    assert_eq!(
        run(url("sslmode=require"), "paul", "paul long password"),
        "OK paul"
    );
    assert_eq!(run(url("sslmode=disable"), "demo", "wrong"), "ERR 28P01");
    assert_eq!(
        run(url("sslmode=disable"), "mallory", "mallory password"),
        "ERR 28000"
    );
}

#[tokio::test]
async fn a_verifier_imported_from_a_real_postgresql_logs_in_to_the_gateway() {
    let pg = auth_tests::postgres::Postgres::start().unwrap_or_else(|e| panic!("{e}"));
    pg.psql("SET password_encryption = 'scram-sha-256'; CREATE ROLE rita LOGIN PASSWORD 'rita from postgres'").unwrap();
    let verifier = pg
        .psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'rita'")
        .unwrap();
    let gw = Gateway::start("60s");
    let users = Users::new(gw.wallet().unwrap_or_else(|e| panic!("{e}")));
    users
        .put(
            "rita",
            &UserRecord {
                scram: Some(verifier),
                ..UserRecord::default()
            },
            Precondition::Absent,
        )
        .await
        .unwrap();
    let (ok, out, err) = psql(
        &gw.conninfo("rita", "sslmode=disable"),
        "rita from postgres",
        "SELECT current_user",
    );
    assert!(ok && out == "rita", "{err}");
}

/// Reads until the server closes the connection; returns what it sent.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    all
}

#[tokio::test]
async fn hostile_and_broken_connections_end_cleanly() {
    let gw = Gateway::start("2s");
    let connect = || TcpStream::connect(("127.0.0.1", gw.port)).unwrap();

    // Plaintext injected after an SSLRequest (CVE-2021-23214 class): 08P01, no TLS.
    let mut s = connect();
    let mut request = vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    request.extend_from_slice(&startup_packet("demo"));
    s.write_all(&request).unwrap();
    let reply = read_to_close(&mut s);
    assert_eq!(reply.first(), Some(&b'E'), "{reply:?}");
    assert!(String::from_utf8_lossy(&reply).contains("08P01"));

    // GSSENCRequest is declined with 'N', then a normal startup proceeds.
    let mut s = connect();
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]).unwrap();
    let mut n = [0u8; 1];
    s.read_exact(&mut n).unwrap();
    assert_eq!(&n, b"N");
    s.write_all(&startup_packet("demo")).unwrap();
    let mut r = [0u8; 1];
    s.read_exact(&mut r).unwrap();
    assert_eq!(&r, b"R", "an authentication request follows");
    drop(s);

    // Garbage and an absurd length: the connection ends, nothing else happens.
    for junk in [
        b"\xff\xff\xff\xffgarbage".to_vec(),
        vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0],
    ] {
        let mut s = connect();
        s.write_all(&junk).unwrap();
        let _ = read_to_close(&mut s);
    }

    // A client that stalls after the SASL request is cut off by the auth timeout (2s).
    let mut s = connect();
    s.write_all(&startup_packet("demo")).unwrap();
    let started = std::time::Instant::now();
    let reply = read_to_close(&mut s);
    assert_eq!(reply.first(), Some(&b'R'));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "closed by the timeout, not at once"
    );

    // A client that disconnects mid-exchange.
    let mut s = connect();
    s.write_all(&startup_packet("demo")).unwrap();
    s.read_exact(&mut [0u8; 1]).unwrap();
    drop(s);

    // After all that, the gateway still serves.
    let (ok, out, err) = psql(
        &gw.conninfo("demo", "sslmode=disable"),
        &gw.demo_password,
        "SELECT 1",
    );
    assert!(ok && out == "1", "{err}");
    assert!(gw.process.pid().is_some_and(auth_tests::process_alive));
}

#[tokio::test]
async fn the_same_gateway_answers_curl_and_grpcurl_with_the_lines_it_printed() {
    let gw = Gateway::start("60s");
    let output = gw.process.output();
    let line = |label: &str| {
        printed_line(&output, label).unwrap_or_else(|| panic!("no `{label}` line in:\n{output}"))
    };
    let expected_url = format!("https://127.0.0.1:{}/whoami", gw.http_port);
    let bearer = line("bearer:");
    assert!(bearer.ends_with(&expected_url), "{bearer}");
    let (body, status) = run_printed(&bearer).unwrap();
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("\"user\":\"demo\""), "{body}");
    let (body, status) = run_printed(&line("basic:")).unwrap();
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("\"user\":\"demo\""), "{body}");
    let grpc = line("grpc bearer:");
    assert!(
        grpc.contains(&format!(" 127.0.0.1:{} ", gw.grpc_port)),
        "{grpc}"
    );
    let run = run_printed_grpcurl(&grpc).unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("\"user\": \"demo\""), "{run:?}");
    // Every front door writes to the one audit log.
    let audit = gw.audit();
    for protocol in ["http", "grpc"] {
        assert!(
            audit
                .iter()
                .any(|e| e["event"] == "attempt_succeeded" && e["protocol"] == protocol),
            "{protocol}: {audit:?}"
        );
    }
}

/// The session stage over pgwire: a login opens a session (audited once, with the
/// connection's id), queries keep it alive, and the end of the connection closes it
/// (audited with its duration). An account whose validity ends while connected ends the
/// connection at its next query.
#[tokio::test]
async fn a_connection_is_a_session_from_ok_to_close_and_ends_when_the_account_expires() {
    let gw = Gateway::start("60s");
    let conninfo = format!(
        "{} password='{}' connect_timeout=10",
        gw.conninfo("demo", "sslmode=disable"),
        gw.demo_password
    );
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    for _ in 0..3 {
        client.simple_query("SELECT current_user").await.unwrap();
    }
    let started = gw.0.audit("session_started");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["username"], "demo");
    assert_eq!(started[0]["method"], "scram");
    assert!(gw.0.audit("session_ended").is_empty());
    drop(client);
    driver.await.unwrap().unwrap();
    let ended = auth_tests::eventually(std::time::Duration::from_secs(10), || {
        match gw.0.audit("session_ended").pop() {
            Some(e) => Ok(e),
            None => Err("no session_ended yet".to_owned()),
        }
    });
    assert_eq!(ended["connection_id"], started[0]["connection_id"]);
    assert_eq!(ended["username"], "demo");
    assert!(ended["duration_us"].as_u64().unwrap() > 0, "{ended}");

    // The account expires while a connection is open: the next query ends it.
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.simple_query("SELECT 1").await.unwrap();
    // Validity is kept in whole seconds.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let in_two_seconds = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now.as_secs() + 2);
    let users = Users::new(gw.wallet().unwrap());
    // Validity is read at login: the open connection keeps the one it logged in with, so
    // a new login sees the change and the old connection does not (yet).
    users
        .update("demo", |r| {
            r.valid_until = Some(
                in_two_seconds
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            );
        })
        .await
        .unwrap();
    let (client2, connection2) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection2);
    client2.simple_query("SELECT 1").await.unwrap();
    // Once the validity has passed, the connection that logged in with it is ended at
    // its next query; the one from before the change goes on.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let error = loop {
        match client2.simple_query("SELECT 1").await {
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Ok(_) => panic!("the connection outlived its account's validity"),
            Err(e) => break e,
        }
    };
    let text = format!("{error:?}");
    assert!(text.contains("the session has expired"), "{text}");
    assert!(std::time::SystemTime::now() >= in_two_seconds);
    client.simple_query("SELECT 1").await.unwrap();
    drop(client);
}
