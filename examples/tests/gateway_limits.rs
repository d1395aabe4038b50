//! CORE-8, CORE-15 end to end, from clients that are not loopback: test hosts in network
//! namespaces (`auth_tests::netns`) reach the gateway's pgwire, HTTP and gRPC front doors,
//! which share one rate limiter. A pool's simultaneous logins all succeed; exchanges
//! abandoned at every stage, HTTP clients that hang up while argon2 runs and cancelled gRPC
//! calls never lock the user; smart lockout keeps the user's known address working; and
//! failures on one front door count on the others.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use auth_tests::eventually;
use auth_tests::gateway::{self, GatewayProcess};
use auth_tests::netns::TestHost;

/// SCRAM for everyone; a short first lockout so "after the backoff" is seconds away.
const RULES: &str = r#"
[[rule]]
name = "scram"
method = "scram"

[rate_limit]
lockout = "3s"
"#;

const REFUSED: &str = "too many failed attempts";

struct Setup {
    gw: GatewayProcess,
    /// Where the user logs in from.
    known: TestHost,
    /// Where the stranger is.
    stranger: TestHost,
    /// Another address.
    third: TestHost,
}

fn setup() -> Setup {
    let known = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    let stranger = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    let third = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gw = GatewayProcess::start_at(binary, known.gateway.into(), "10s", RULES, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    Setup {
        gw,
        known,
        stranger,
        third,
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

fn psql_command(host: &TestHost, gw: &GatewayProcess, password: &str) -> Command {
    gateway::psql_command(
        host.command("psql"),
        &gw.conninfo("demo", "sslmode=disable"),
        password,
        "SELECT current_user",
    )
}

/// psql from `host` as demo: Ok(current_user) or Err(stderr).
fn psql(host: &TestHost, gw: &GatewayProcess, password: &str) -> Result<String, String> {
    gateway::psql(
        host.command("psql"),
        &gw.conninfo("demo", "sslmode=disable"),
        password,
        "SELECT current_user",
    )
}

/// curl from `host`: the HTTP status of GET /whoami with Basic credentials.
fn curl(host: &TestHost, gw: &GatewayProcess, password: &str) -> String {
    let (mut args, url) = gw.https("/whoami");
    args.extend(["-u".to_owned(), format!("demo:{password}")]);
    gateway::http_status(host.command("curl"), &args, &url)
}

/// `tests/python/preauth.py` from `host`; what it printed.
fn preauth(host: &TestHost, gw: &GatewayProcess, args: &[String]) -> String {
    let out = gateway::preauth_client(host)
        .unwrap_or_else(|e| panic!("{e}"))
        .env("AUTH_TEST_CA", gw.ca_file())
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "preauth.py {args:?}: {stderr}");
    stdout
}

fn grpc(host: &TestHost, gw: &GatewayProcess, password: &str) -> String {
    preauth(
        host,
        gw,
        &[
            "grpc-call".into(),
            gw.ip.to_string(),
            gw.grpc_port.to_string(),
            "demo".into(),
            password.into(),
        ],
    )
}

#[test]
fn ten_simultaneous_psql_logins_from_one_address_all_succeed() {
    let s = setup();
    let children: Vec<_> = (0..10)
        .map(|_| {
            psql_command(&s.stranger, &s.gw, &s.gw.demo_password)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(stdout, "demo");
    }
    let successes = s.gw.audit("attempt_succeeded");
    assert_eq!(successes.len(), 10);
    assert!(
        successes[0]["source"]
            .as_str()
            .unwrap()
            .starts_with(&s.stranger.address.to_string()),
        "the clients were not loopback: {}",
        successes[0]
    );
}

#[test]
fn abandoned_exchanges_hang_ups_and_cancelled_calls_never_lock_the_user() {
    for count in [5usize, 50] {
        let s = setup();
        // One stranger per front door, so that one door's address lock does not hide the
        // next door's clients.
        let (pg_stranger, http_stranger, grpc_stranger) = (
            &s.stranger,
            &TestHost::create().unwrap_or_else(|e| panic!("{e}")),
            &TestHost::create().unwrap_or_else(|e| panic!("{e}")),
        );
        let (ip, n) = (s.gw.ip.to_string(), count.to_string());
        let out = preauth(
            pg_stranger,
            &s.gw,
            &[
                "pg-abandon".into(),
                ip.clone(),
                s.gw.port.to_string(),
                "demo".into(),
                n.clone(),
            ],
        );
        assert_eq!(out, format!("done {count}"));
        // The right password: a client that hangs up after its login finished (a loaded
        // machine can be that slow) simply logged in. A wrong one would make such a late
        // hang-up a real failed guess, and this test depend on timing.
        for (host, door, port) in [
            (http_stranger, "http-hangup", s.gw.http_port),
            (grpc_stranger, "grpc-cancel", s.gw.grpc_port),
        ] {
            let out = preauth(
                host,
                &s.gw,
                &[
                    door.into(),
                    ip.clone(),
                    port.to_string(),
                    "demo".into(),
                    s.gw.demo_password.clone(),
                    n.clone(),
                    "10".into(),
                ],
            );
            assert_eq!(out, format!("done {count}"));
        }
        // Each front door saw clients walk away (over HTTP and gRPC, a hang-up 10 ms in
        // lands mid-verification for most of fifty), and none of it was a failed login.
        let abandoned = s.gw.audit("abandoned");
        let doors: &[&str] = if count < 20 {
            &["postgres"]
        } else {
            &["postgres", "http", "grpc"]
        };
        for protocol in doors {
            assert!(
                abandoned.iter().any(|e| e["protocol"] == *protocol),
                "no abandonment audited over {protocol}: {abandoned:?}"
            );
        }
        assert!(s.gw.audit("attempt_failed").is_empty());
        // Another address, at once, on every front door.
        let demo = &s.gw.demo_password;
        assert_eq!(psql(&s.third, &s.gw, demo).unwrap(), "demo");
        assert_eq!(curl(&s.third, &s.gw, demo), "200");
        assert_eq!(grpc(&s.third, &s.gw, demo), "OK");
        // The same addresses: at once after a few, after the backoff after many.
        if count < 20 {
            assert_eq!(psql(pg_stranger, &s.gw, demo).unwrap(), "demo");
            assert_eq!(curl(http_stranger, &s.gw, demo), "200");
            assert_eq!(grpc(grpc_stranger, &s.gw, demo), "OK");
        } else {
            let refused = psql(pg_stranger, &s.gw, demo).unwrap_err();
            assert!(refused.contains(REFUSED), "{refused}");
            let lock = s.gw.audit("lockout");
            assert!(
                lock.iter()
                    .any(|e| e["detail"].as_str().unwrap().starts_with("address locked")),
                "the address is what is locked"
            );
            let user = eventually(Duration::from_secs(30), || psql(pg_stranger, &s.gw, demo));
            assert_eq!(user, "demo");
            let status = eventually(Duration::from_secs(30), || {
                Some(curl(http_stranger, &s.gw, demo))
                    .filter(|s| s == "200")
                    .ok_or_else(|| "HTTP still refused".to_owned())
            });
            assert_eq!(status, "200");
            let code = eventually(Duration::from_secs(30), || {
                Some(grpc(grpc_stranger, &s.gw, demo))
                    .filter(|c| c == "OK")
                    .ok_or_else(|| "gRPC still refused".to_owned())
            });
            assert_eq!(code, "OK");
        }
    }
}

#[test]
fn smart_lockout_keeps_the_known_address_working() {
    let s = setup();
    let demo = &s.gw.demo_password;
    assert_eq!(psql(&s.known, &s.gw, demo).unwrap(), "demo");
    // Fifty wrong passwords from the stranger, ten at a time.
    for _ in 0..5 {
        let children: Vec<_> = (0..10)
            .map(|_| {
                psql_command(&s.stranger, &s.gw, "wrong password")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(!c.wait().unwrap().success());
        }
    }
    let refused = psql(&s.stranger, &s.gw, demo).unwrap_err();
    assert!(
        refused.contains(REFUSED),
        "the stranger's address: {refused}"
    );
    assert_eq!(
        psql(&s.known, &s.gw, demo).unwrap(),
        "demo",
        "the known address logs in"
    );
    let refused = psql(&s.third, &s.gw, demo).unwrap_err();
    assert!(refused.contains(REFUSED), "a third address: {refused}");
    let lock = s.gw.audit("lockout");
    assert!(
        lock.iter().any(|e| e["detail"]
            .as_str()
            .unwrap()
            .starts_with("user at unknown addresses locked for another")),
        "{lock:?}"
    );
    let user = eventually(Duration::from_secs(60), || psql(&s.third, &s.gw, demo));
    assert_eq!(user, "demo", "until the lock ends");
}

#[test]
fn stalled_tls_handshakes_do_not_stand_in_the_way_of_real_requests() {
    use std::io::{BufRead, BufReader};
    let s = setup();
    // Connections that never begin their handshake hold no place; an address may keep
    // this many of them before its further silent ones must speak within the wait.
    let stalled = auth_listen::AdmissionSettings::default().max_silent_per_address;
    let mut staller = gateway::preauth_client(&s.stranger)
        .unwrap_or_else(|e| panic!("{e}"))
        .args([
            "stall".into(),
            s.gw.ip.to_string(),
            s.gw.http_port.to_string(),
            stalled.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(staller.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("stalled {stalled}"));
    // The address's silent places are all taken, yet its next real request is served:
    // it speaks at once, and only connections that say nothing wait on silent places.
    let demo = &s.gw.demo_password;
    assert_eq!(
        curl(&s.stranger, &s.gw, demo),
        "200",
        "a request beside the address's stalled handshakes"
    );
    assert_eq!(curl(&s.known, &s.gw, demo), "200", "another address");
    drop(staller.stdin.take());
    assert!(staller.wait().unwrap().success());
}

#[test]
fn failures_over_http_count_for_pgwire_and_grpc() {
    let s = setup();
    for _ in 0..5 {
        assert_eq!(curl(&s.stranger, &s.gw, "wrong password"), "401");
    }
    let demo = &s.gw.demo_password;
    let refused = psql(&s.third, &s.gw, demo).unwrap_err();
    assert!(refused.contains(REFUSED), "{refused}");
    assert_eq!(grpc(&s.third, &s.gw, demo), "RESOURCE_EXHAUSTED");
    assert_eq!(curl(&s.third, &s.gw, demo), "429");
}
