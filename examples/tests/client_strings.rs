//! SEC-5 end to end: what a client chooses is bounded before the limiter or the audit log
//! keeps it. User and database names beyond PostgreSQL's 63 bytes are refused at startup;
//! HTTP Basic user names beyond 256 bytes are refused like a wrong password, while a long
//! e-mail address still logs in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_tests::gateway::{self, GatewayProcess};
use secrecy::SecretString;

const RULES: &str = "[[rule]]\nname = \"scram\"\nmethod = \"scram\"\n";

fn gateway() -> GatewayProcess {
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    GatewayProcess::start(binary, "60s", RULES).unwrap_or_else(|e| panic!("{e}"))
}

fn audit_bytes(gw: &GatewayProcess) -> usize {
    gw.flush_audit();
    std::fs::metadata(gw.data.join("audit.jsonl")).map_or(0, |m| m.len() as usize)
}

/// A startup packet naming only `user` (the database defaults to it), so a long name
/// stays within the gateway's startup frame cap.
fn startup_packet(user: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    body.extend_from_slice(b"user\0");
    body.extend_from_slice(user.as_bytes());
    body.extend_from_slice(b"\0\0");
    let mut packet = u32::try_from(body.len() + 4)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// The first backend message after a startup packet for `user`: (type, body).
fn first_answer(port: u16, user: &str) -> (u8, Vec<u8>) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(&startup_packet(user)).unwrap();
    let mut head = [0u8; 5];
    tcp.read_exact(&mut head).unwrap();
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    tcp.read_exact(&mut body).unwrap();
    (head[0], body)
}

fn sqlstate(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find_map(|f| f.strip_prefix(b"C"))
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default()
}

#[test]
fn oversized_pgwire_names_are_refused_before_anything_keeps_them() {
    let gw = gateway();
    let before = audit_bytes(&gw);
    // Before the fix each of these reached SCRAM, and each abandoned exchange wrote about
    // 20 KB of audit events naming the user, and kept the name as a limiter key.
    let huge = "u".repeat(9_800);
    for _ in 0..50 {
        let (kind, body) = first_answer(gw.port, &huge);
        assert_eq!(
            kind, b'E',
            "an ErrorResponse, not an authentication request"
        );
        assert_eq!(sqlstate(&body), "28000");
        let message = String::from_utf8_lossy(&body);
        assert!(message.contains("at most 63 bytes"), "{message}");
        assert!(!message.contains(&huge[..64]), "the name is not echoed");
    }
    let grown = audit_bytes(&gw) - before;
    assert!(grown <= 50_000, "the audit log grew by {grown} bytes");
    assert!(
        gw.audit_events()
            .iter()
            .all(|e| e["username"].as_str().is_none_or(|u| u.len() <= 256)),
        "no event keeps a long name"
    );
    // PostgreSQL's limit itself: 63 bytes are asked for SCRAM, 64 are refused.
    let (kind, body) = first_answer(gw.port, &"a".repeat(63));
    assert_eq!((kind, &body[..4]), (b'R', &10u32.to_be_bytes()[..]), "SASL");
    let (kind, body) = first_answer(gw.port, &"a".repeat(64));
    assert_eq!((kind, sqlstate(&body).as_str()), (b'E', "28000"));
}

/// curl GET /whoami over verified TLS with Basic `user:password`: (status, body).
fn basic(gw: &GatewayProcess, user: &str, password: &str) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.arg("--cacert")
        .arg(gw.ca_file())
        .arg("-u")
        .arg(format!("{user}:{password}"))
        .arg(format!("https://127.0.0.1:{}/whoami", gw.http_port));
    let (body, status) = gateway::curl_reply(cmd).unwrap_or_else(|e| panic!("{e}"));
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_email_logs_in_over_http_and_a_longer_name_is_refused_unkept() {
    let gw = gateway();
    // As long as the directory's names go (200 bytes).
    let email = format!(
        "{}@{}.example.com",
        "first.last".repeat(10),
        "dept".repeat(20)
    );
    assert!(email.len() > 190 && email.len() <= 200, "{}", email.len());
    let password = "a long enough password for the policy";
    Users::new(gw.wallet().unwrap())
        .set_password(
            &Hasher::new(Argon2Settings::default()).unwrap(),
            &PasswordPolicy::default(),
            &email,
            &SecretString::from(password.to_owned()),
        )
        .await
        .unwrap();
    let (status, body) = basic(&gw, &email, password);
    assert_eq!(status, "200", "{body}");
    let who: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(who["user"], email.as_str());

    let before = audit_bytes(&gw);
    let long = "v".repeat(300);
    let (status, _) = basic(&gw, &long, password);
    assert_eq!(status, "401", "refused like a wrong password");
    let refused = gw.newest_refusal();
    assert!(refused["username"].is_null(), "{refused}");
    let detail = refused["detail"].as_str().unwrap();
    assert!(detail.contains("longer than 256 bytes"), "{detail}");
    assert!(!detail.contains(&long[..40]), "{detail}");
    assert!(audit_bytes(&gw) - before < 1_000);
}
