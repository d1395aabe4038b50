//! LISTEN-3: the two programs a newcomer writes from the documentation (`pg-server`: a
//! SCRAM-over-TLS pgwire server answering queries with `PgServer`; `api-server`: an axum
//! API with `auth_axum::serve`) run as printed, against psql and curl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use auth_tests::ServiceProcess;

/// Runs `binary` on a free loopback port with its temporary files in `tmp`, and returns
/// it with the line it printed that starts with `prefix` (without the prefix).
fn start(binary: &Path, tmp: &Path, prefix: &'static str) -> (ServiceProcess, String) {
    let mut command = Command::new(binary);
    command.args(["--listen", "127.0.0.1:0"]).env("TMPDIR", tmp);
    let process = ServiceProcess::spawn("newcomer server", &mut command, prefix)
        .unwrap_or_else(|e| panic!("{e}"));
    let output = process.output();
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in {output}"))
        .trim()
        .to_owned();
    (process, line)
}

/// Runs a printed command line with sh; (success, stdout, stderr).
fn sh(line: &str) -> (bool, String, String) {
    let out = Command::new("sh").args(["-c", line]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

#[test]
fn the_pgwire_server_from_the_docs_serves_psql_over_tls_with_scram() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, line) = start(
        Path::new(env!("CARGO_BIN_EXE_pg-server")),
        tmp.path(),
        "connect: ",
    );
    assert!(line.contains("sslmode=verify-full"), "{line}");
    let (ok, stdout, stderr) = sh(&line);
    assert!(ok, "as printed: {line}\n{stderr}");
    assert_eq!(stdout, "HELLO", "the query handler answered");
    // SCRAM-SHA-256-PLUS over TLS: libpq insists on channel binding when told to.
    let (ok, stdout, stderr) = sh(&line.replace("sslmode=", "channel_binding=require sslmode="));
    assert!(ok && stdout == "HELLO", "channel binding: {stderr}");
    // A wrong password is refused as PostgreSQL refuses it.
    let wrong = line.replacen("PGPASSWORD='", "PGPASSWORD='x", 1);
    let (ok, _, stderr) = sh(&wrong);
    assert!(!ok, "a wrong password logged in");
    assert!(
        stderr.contains("password authentication failed for user \"alice\""),
        "{stderr}"
    );
}

#[test]
fn the_axum_api_from_the_docs_serves_curl_over_tls_with_basic() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, line) = start(
        Path::new(env!("CARGO_BIN_EXE_api-server")),
        tmp.path(),
        "whoami: ",
    );
    assert!(line.contains("https://"), "{line}");
    let (ok, stdout, stderr) = sh(&format!("{line} --fail-with-body -sS"));
    assert!(ok, "as printed: {line}\n{stderr}");
    assert_eq!(stdout, "alice");
    // HTTP/2 through ALPN, which the listener offers without being told.
    let (ok, stdout, stderr) = sh(&format!(
        "{line} --http2 -sS -o /dev/null -w '%{{http_version}}'"
    ));
    assert!(ok && stdout == "2", "HTTP/2: {stdout} {stderr}");
    let wrong = line.replacen("alice:", "alice:x", 1);
    let (_, stdout, _) = sh(&format!("{wrong} -sS -o /dev/null -w '%{{http_code}}'"));
    assert_eq!(stdout, "401", "a wrong password");
}
