//! The http-gateway's printed curl lines work as printed: a bearer token from its local
//! issuer, Basic with the demo user's password, 403 for a missing scope; wrong passwords
//! and forged tokens are refused with challenges, and the audit log records it all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use auth_tests::gateway::{printed_line, run_printed};
use auth_tests::{ServiceProcess, free_port};

fn printed(output: &str, label: &str) -> String {
    printed_line(output, label).unwrap_or_else(|| panic!("no `{label}` line in:\n{output}"))
}

#[test]
fn printed_curl_lines_work_and_failures_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_http-gateway"));
    cmd.arg("--data-dir")
        .arg(dir.path())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"));
    let process = ServiceProcess::spawn("http-gateway", &mut cmd, "listening on").unwrap();
    let output = process.output();

    let (body, status) = run_printed(&printed(&output, "bearer:")).unwrap();
    assert_eq!(status, "200", "{body}");
    let who: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (who["user"].as_str(), who["method"].as_str()),
        (Some("demo"), Some("oauth"))
    );

    let basic = printed(&output, "basic:");
    let (body, status) = run_printed(&basic).unwrap();
    assert_eq!(status, "200", "{body}");
    let who: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(who["user"], "demo");
    assert_eq!(who["method"], "password");

    let (_, status) = run_printed(&printed(&output, "forbidden (needs scope admin):")).unwrap();
    assert_eq!(status, "403");

    let url = format!("https://127.0.0.1:{port}/whoami");
    let cacert = dir.path().join("server.crt");
    let cacert = cacert.to_str().unwrap();
    let wrong = Command::new("curl")
        .args([
            "-s",
            "-i",
            "--max-time",
            "10",
            "--cacert",
            cacert,
            "-u",
            "demo:wrong-password",
            &url,
        ])
        .output()
        .unwrap();
    let wrong = String::from_utf8_lossy(&wrong.stdout).to_lowercase();
    // HTTP/2 by ALPN, or 1.1 from a curl without it.
    assert!(
        wrong.starts_with("http/2 401") || wrong.starts_with("http/1.1 401"),
        "{wrong}"
    );
    assert!(
        wrong.contains("www-authenticate: bearer realm=\"demo\""),
        "{wrong}"
    );
    assert!(
        wrong.contains("www-authenticate: basic realm=\"demo\""),
        "{wrong}"
    );
    assert!(!wrong.contains("wrong-password"));

    let (_, status) = run_printed(&format!(
        "curl --cacert {cacert} -H 'Authorization: Bearer {}x' {url}",
        printed(&output, "token (scope read, 1 hour):")
    ))
    .unwrap();
    assert_eq!(status, "401");

    auth_tests::gateway::flush_audit(&process, &dir.path().join("audit.jsonl"));
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"event\":\"attempt_succeeded\""), "{audit}");
    assert!(audit.contains("\"event\":\"attempt_failed\""), "{audit}");
    assert!(!audit.contains("wrong-password"));
}
