//! Admission that waits, end to end: every front door of the gateway (pgwire, HTTP, gRPC)
//! takes its connections through one admission. A connection that has sent nothing holds
//! no place (only a silent cap per address); one that has spoken takes a place among the
//! unauthenticated connections (per address and in all), waits for one when there is
//! none, and is refused (53300, 503, `UNAVAILABLE`, audited as `connection_refused`) only
//! when the wait runs out. So a pool's burst of logins from one address is served in
//! turn, a stranger holding every kind of idle connection stops only itself, and loopback
//! (`::1` as much as 127.0.0.1) is kept apart from the total and the rate limiter.
//!
//! The clients are real (psql, curl, psycopg, grpcio) or `tests/python/preauth.py flood`,
//! which opens raw connections and reports, per connection, when the server answered and
//! closed it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use auth_tests::eventually;
use auth_tests::gateway::{self, GatewayProcess};
use auth_tests::netns::TestHost;
use serde_json::Value;

/// SCRAM for everyone, and the same password as HTTP Basic and gRPC Basic.
const SCRAM: &str = r#"
[[rule]]
name = "scram"
method = "scram"
"#;

/// The per-address places (the default `max_unauthenticated_per_address`).
const PLACES_PER_ADDRESS: u64 = 32;
/// The silent connections one address may hold (the default `max_silent_per_address`).
const SILENT_PER_ADDRESS: u64 = 256;
/// `unauthenticated_wait` where a test sets it.
const WAIT: Duration = Duration::from_secs(2);
/// The settings of the tests on test hosts: the wait, and silent connections that live
/// longer than the test (the default closes them after 10 s).
const WAIT_SETTINGS: &str = "unauthenticated_wait = \"2s\"\nsilent_timeout = \"60s\"";
/// How long `flood` watches a silent connection before it counts as held: one closed
/// within it was closed at once.
const AT_ONCE: Duration = Duration::from_secs(1);
/// How long `flood` watches a finished handshake (or an ErrorResponse) for the server to
/// close it: a refused connection is closed about 2 s after its refusal.
const CLOSE_WINDOW: Duration = Duration::from_secs(4);
/// The longest a refused connection may stay open after its refusal.
const CLOSED_AFTER_REFUSAL: f64 = 3.0;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pg-gateway"))
}

fn test_host() -> TestHost {
    TestHost::create().unwrap_or_else(|e| panic!("{e}"))
}

/// A gateway on `ip` with `settings` (top-level keys) before the SCRAM rule and `tables`
/// after it; unauthenticated HTTP and gRPC connections live 120 s.
fn gateway_at(ip: IpAddr, settings: &str, tables: &str) -> GatewayProcess {
    GatewayProcess::start_at(
        binary(),
        ip,
        "120s",
        &format!("{settings}\n{SCRAM}\n{tables}"),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

/// `tests/python/preauth.py` from `host`, trusting the gateway's certificate.
fn preauth(host: &TestHost, gw: &GatewayProcess) -> Command {
    let mut cmd = gateway::preauth_client(host).unwrap_or_else(|e| panic!("{e}"));
    cmd.env("AUTH_TEST_CA", gw.ca_file());
    cmd
}

/// psql from `host` (this machine when `None`) as demo with `password` and `sslmode`:
/// Ok(current_user) or Err(stderr), and how long it took.
fn psql(
    host: Option<&TestHost>,
    gw: &GatewayProcess,
    sslmode: &str,
    password: &str,
) -> (Result<String, String>, Duration) {
    let cmd = host.map_or_else(|| Command::new("psql"), |h| h.command("psql"));
    let started = Instant::now();
    let result = gateway::psql(
        cmd,
        &gw.conninfo("demo", &format!("sslmode={sslmode}")),
        password,
        "SELECT current_user",
    );
    (result, started.elapsed())
}

/// curl from `host` (this machine when `None`): the HTTP status of GET /whoami with
/// demo's Basic credentials, and how long it took.
fn curl(host: Option<&TestHost>, gw: &GatewayProcess, password: &str) -> (String, Duration) {
    let cmd = host.map_or_else(|| Command::new("curl"), |h| h.command("curl"));
    let (mut args, url) = gw.https("/whoami");
    args.extend(["-u".to_owned(), format!("demo:{password}")]);
    let started = Instant::now();
    let status = gateway::http_status(cmd, &args, &url);
    (status, started.elapsed())
}

/// A gRPC call (grpcio) from `host` with demo's Basic credentials: the status code's
/// name, the details of a failure, and how long it took.
fn grpc(host: &TestHost, gw: &GatewayProcess, password: &str) -> (String, String, Duration) {
    let started = Instant::now();
    let out = preauth(host, gw)
        .args([
            "grpc-call",
            &gw.ip.to_string(),
            &gw.grpc_port.to_string(),
            "demo",
            password,
        ])
        .output()
        .unwrap();
    let took = started.elapsed();
    let (code, details) = text(&out);
    assert!(out.status.success(), "preauth.py grpc-call: {details}");
    (code, details, took)
}

/// A running `preauth.py flood`: its JSON lines, and the connections it holds until it
/// is dropped (its standard input closes).
struct Flood {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Flood {
    /// Starts `cmd` (a preauth.py command) flooding `ip`:`port` with `count` connections
    /// in `mode`, each watched `window` for a close. Its errors go to the test's output.
    fn start(
        mut cmd: Command,
        ip: IpAddr,
        port: u16,
        count: u64,
        mode: &str,
        window: Duration,
    ) -> Self {
        let what = format!("flood {count} {mode} on {ip} port {port}");
        let mut child = cmd
            .args([
                "flood".to_owned(),
                ip.to_string(),
                port.to_string(),
                count.to_string(),
                mode.to_owned(),
                window.as_secs_f64().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("preauth.py {what}: {e}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            what,
            child,
            stdin,
            stdout,
        }
    }

    /// The next JSON line: first the summary, printed once every connection settled.
    fn line(&mut self) -> Value {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "preauth.py {} ended without a line (its errors are above)",
            self.what
        );
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("preauth.py {} printed {line:?}: {e}", self.what))
    }

    /// How many of its held connections the server has not closed.
    fn open(&mut self) -> u64 {
        writeln!(self.stdin.as_mut().unwrap(), "status").unwrap();
        let status = self.line();
        status["open"]
            .as_u64()
            .unwrap_or_else(|| panic!("preauth.py {}: status {status}", self.what))
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if std::thread::panicking() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A count in a flood's summary.
fn count(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no count `{key}` in {summary}"))
}

/// A [min, max] in a flood's summary (`None` when no connection had it).
fn span(summary: &Value, key: &str) -> Option<(f64, f64)> {
    summary[key]
        .as_array()
        .map(|a| (a[0].as_f64().unwrap(), a[1].as_f64().unwrap()))
}

/// A flood of `count` connections that spoke, on `door`, from an address whose places
/// were taken (some perhaps by this flood): every connection either holds a place or was
/// refused when the wait ran out, not before it and at most a second after, answered or
/// (when too many refusals are being answered at once) closed without a word, and each
/// answered one closed within 3 s of its refusal. Returns how many hold places.
fn check_refusals(door: &str, summary: &Value, total: u64) -> u64 {
    let held = count(summary, "held");
    let refused = count(summary, "refused");
    let closed = count(summary, "closed");
    assert_eq!(
        count(summary, "other"),
        0,
        "{door}: connections neither held nor refused: {summary}"
    );
    assert_eq!(
        held + refused + closed,
        total,
        "{door}: every connection settled: {summary}"
    );
    assert!(
        refused > 0,
        "{door}: no refusal was answered (53300, or a handshake finished to say so): {summary}"
    );
    let wait = WAIT.as_secs_f64();
    for key in ["refused_after", "closed_after"] {
        if let Some((first, last)) = span(summary, key) {
            assert!(
                first >= wait - 0.1,
                "{door}: refused {first} s after speaking, before the {wait} s wait ran out \
                 ({key}): {summary}"
            );
            assert!(
                last <= wait + 1.0,
                "{door}: refused {last} s after speaking, later than the wait and a second \
                 ({key}): {summary}"
            );
        }
    }
    assert_eq!(
        count(summary, "refused_open"),
        0,
        "{door}: refused connections the server left open: {summary}"
    );
    if let Some(after) = summary["closed_after_refusal"].as_f64() {
        assert!(
            after <= CLOSED_AFTER_REFUSAL,
            "{door}: a refused connection was closed {after} s after its refusal: {summary}"
        );
    }
    if held > 0 {
        let after = summary["held_after"].as_f64().unwrap();
        assert!(
            after < wait,
            "{door}: a held connection got its place {after} s after speaking, though \
             places were free: {summary}"
        );
    }
    held
}

/// Whether an audit event is about a client at `address`.
fn is_from(event: &Value, address: &str) -> bool {
    event["source"]
        .as_str()
        .is_some_and(|s| s.starts_with(&format!("{address}:")))
}

#[test]
fn a_pool_of_200_logins_from_64_threads_on_one_address_all_succeed() {
    let client = test_host();
    let gw = gateway_at(client.gateway.into(), "", "");
    for sslmode in ["disable", "require"] {
        let started = Instant::now();
        let out = preauth(&client, &gw)
            .args([
                "pool",
                &gw.ip.to_string(),
                &gw.port.to_string(),
                "demo",
                &gw.demo_password,
                "64",
                "200",
                sslmode,
            ])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "preauth.py pool: {stderr}");
        assert_eq!(
            stdout,
            "ok 200 failed 0",
            "200 logins from 64 threads at once (sslmode={sslmode}, {:?}): {stderr}",
            started.elapsed()
        );
        eprintln!("sslmode={sslmode}: {stderr}");
    }
    let refused = gw.audit("connection_refused");
    assert!(refused.is_empty(), "no connection was refused: {refused:?}");
    let succeeded = gw.audit("attempt_succeeded");
    assert_eq!(succeeded.len(), 400, "every login is audited as a success");
    assert!(
        succeeded
            .iter()
            .all(|e| is_from(e, &client.address.to_string())),
        "the logins came from the test host, not loopback: {}",
        succeeded[0]
    );
}

#[test]
fn a_stranger_holding_1000_idle_connections_on_every_door_does_not_stop_another_host() {
    let (stranger, other) = (test_host(), test_host());
    let gw = gateway_at(stranger.gateway.into(), WAIT_SETTINGS, "");
    let (ip, demo) = (gw.ip, gw.demo_password.clone());
    let (a, b) = (stranger.address.to_string(), other.address.to_string());

    // One door after the other, 1000 connections that speak (a TLS handshake; an
    // SSLRequest) and then say nothing more: the first flood (HTTP/2 connections, which
    // wait for requests until the auth timeout) takes the stranger's places on every
    // door, since the doors share one admission; everything else waits and is refused.
    let mut floods = Vec::new();
    let (mut held, mut refusals) = (0, 0);
    for (door, port, mode) in [
        ("gRPC", gw.grpc_port, "tls-grpc"),
        ("HTTP", gw.http_port, "tls-http"),
        ("pgwire", gw.port, "ssl"),
    ] {
        let mut flood = Flood::start(preauth(&stranger, &gw), ip, port, 1000, mode, CLOSE_WINDOW);
        let summary = flood.line();
        eprintln!("{door}: {summary}");
        held += check_refusals(door, &summary, 1000);
        refusals += count(&summary, "refused") + count(&summary, "closed");
        floods.push(flood);
    }
    assert_eq!(
        held, PLACES_PER_ADDRESS,
        "the stranger holds its address's places across the three doors, no more, no fewer"
    );

    // The stranger's own clients, now: each waits, then hears its door's refusal.
    let (refused_psql, refused_curl, refused_grpc) = std::thread::scope(|s| {
        let pg = s.spawn(|| psql(Some(&stranger), &gw, "disable", &demo));
        let http = s.spawn(|| curl(Some(&stranger), &gw, &demo));
        let rpc = s.spawn(|| grpc(&stranger, &gw, &demo));
        (
            pg.join().unwrap(),
            http.join().unwrap(),
            rpc.join().unwrap(),
        )
    });
    refusals += 3;
    eprintln!("the stranger's clients: {refused_psql:?} {refused_curl:?} {refused_grpc:?}");
    let slack = WAIT + Duration::from_secs(3);
    let (result, took) = refused_psql;
    let refused = result.expect_err("psql from the stranger is refused");
    assert!(
        refused.contains("sorry, too many clients already"),
        "pgwire refuses with 53300: {refused}"
    );
    assert!(
        took >= WAIT && took < slack,
        "psql was refused after {took:?}, not when the {WAIT:?} wait ran out"
    );
    let (status, took) = refused_curl;
    assert_eq!(status, "503", "HTTP refuses with 503");
    assert!(
        took >= WAIT && took < slack,
        "curl was refused after {took:?}, not when the {WAIT:?} wait ran out"
    );
    let (code, details, took) = refused_grpc;
    assert_eq!(
        code, "UNAVAILABLE",
        "gRPC refuses with UNAVAILABLE: {details}"
    );
    assert!(
        details.contains("try again later"),
        "the gateway's answer, not a failed connection (grpcio says UNAVAILABLE for those \
         too): {details}"
    );
    assert!(
        took >= WAIT && took < slack,
        "the gRPC call was refused after {took:?}, not when the {WAIT:?} wait ran out"
    );

    // Connections that never speak, on all three doors at once: the address's silent
    // cap is shared too, and those beyond it are closed when the wait runs out.
    let silent_each = 100;
    let mut silent: Vec<Flood> = [gw.port, gw.http_port, gw.grpc_port]
        .into_iter()
        .map(|port| {
            Flood::start(
                preauth(&stranger, &gw),
                ip,
                port,
                silent_each,
                "silent",
                WAIT + AT_ONCE,
            )
        })
        .collect();
    let summaries: Vec<Value> = silent.iter_mut().map(Flood::line).collect();
    let total = |key: &str| summaries.iter().map(|s| count(s, key)).sum::<u64>();
    assert_eq!(
        total("other"),
        0,
        "silent connections are held or closed: {summaries:?}"
    );
    assert_eq!(
        total("held"),
        SILENT_PER_ADDRESS,
        "the address's silent connections across the doors, up to the cap: {summaries:?}"
    );
    assert_eq!(
        total("closed") + total("refused"),
        3 * silent_each - SILENT_PER_ADDRESS,
        "the silent connections beyond the cap are closed within the wait: {summaries:?}"
    );

    // Meanwhile another host logs in on every door, without waiting.
    let (user, took) = psql(Some(&other), &gw, "require", &demo);
    assert_eq!(user.as_deref(), Ok("demo"), "psql from another host");
    assert!(
        took < WAIT,
        "psql from another host took {took:?}: it waited for a place"
    );
    let (status, _) = curl(Some(&other), &gw, &demo);
    assert_eq!(status, "200", "curl from another host");
    let (code, details, _) = grpc(&other, &gw, &demo);
    assert_eq!(code, "OK", "a gRPC call from another host: {details}");

    // ... while the stranger still held all of it.
    let still: u64 = floods.iter_mut().map(Flood::open).sum();
    assert_eq!(
        still, PLACES_PER_ADDRESS,
        "the stranger's connections holding places were open throughout"
    );
    let still: u64 = silent.iter_mut().map(Flood::open).sum();
    assert_eq!(
        still, SILENT_PER_ADDRESS,
        "the stranger's silent connections were open throughout"
    );

    // Every refusal is audited, as the stranger's; none is the other host's.
    let audited = eventually(Duration::from_secs(10), || {
        let events = gw.audit("connection_refused");
        let theirs = events.iter().filter(|e| is_from(e, &a)).count();
        if u64::try_from(theirs).unwrap() >= refusals {
            Ok(events)
        } else {
            Err(format!(
                "{theirs} connection_refused events for {a}, {refusals} refusals seen"
            ))
        }
    });
    let others: Vec<&Value> = audited.iter().filter(|e| is_from(e, &b)).collect();
    assert!(
        others.is_empty(),
        "no refusal for the other host: {others:?}"
    );
}

#[test]
fn a_login_beside_200_silent_connections_from_the_same_address_succeeds_within_the_wait() {
    let client = test_host();
    let gw = gateway_at(client.gateway.into(), WAIT_SETTINGS, "");
    let mut silent = Flood::start(
        preauth(&client, &gw),
        gw.ip,
        gw.port,
        200,
        "silent",
        AT_ONCE,
    );
    let summary = silent.line();
    assert_eq!(
        count(&summary, "held"),
        200,
        "200 silent connections are within the address's cap: {summary}"
    );
    let (user, took) = psql(Some(&client), &gw, "require", &gw.demo_password);
    assert_eq!(
        user.as_deref(),
        Ok("demo"),
        "psql beside 200 silent connections"
    );
    assert!(
        took < WAIT,
        "the login took {took:?}: silent connections held places it waited for"
    );
    assert_eq!(
        silent.open(),
        200,
        "the silent connections were open throughout the login"
    );
}

#[test]
fn ipv6_loopback_is_loopback_for_the_caps_and_the_limiter() {
    let loopback = IpAddr::V6(Ipv6Addr::LOCALHOST);
    // Three failures lock a client that is not loopback.
    let limits = |exempt: bool| {
        format!(
            "[rate_limit]\nuser_failures = 3\naddress_failures = 3\nlockout = \"60s\"\n\
             exempt_localhost = {exempt}\n"
        )
    };
    let settings = "max_unauthenticated_connections = 4\nunauthenticated_wait = \"1s\"";
    let gw = gateway_at(loopback, settings, &limits(true));
    let local = || {
        let mut cmd = gateway::preauth_local().unwrap_or_else(|e| panic!("{e}"));
        cmd.env("AUTH_TEST_CA", gw.ca_file());
        cmd
    };

    // Ten connections from ::1 past their SSLRequest, beyond a total of four.
    let mut held = Flood::start(local(), loopback, gw.port, 10, "ssl", CLOSE_WINDOW);
    let summary = held.line();
    assert_eq!(
        count(&summary, "held"),
        10,
        "every SSLRequest from ::1 answered S: ::1 does not count against the total of 4: \
         {summary}"
    );
    let (user, _) = psql(None, &gw, "require", &gw.demo_password);
    assert_eq!(user.as_deref(), Ok("demo"), "psql from ::1 beside them");
    assert_eq!(held.open(), 10, "the ten were held throughout");
    drop(held);

    // Twelve wrong passwords from ::1 lock nothing.
    for attempt in 1..=12 {
        let (status, _) = curl(None, &gw, "wrong password");
        assert_eq!(
            status, "401",
            "wrong password {attempt} from ::1 (exempt from the limiter)"
        );
    }
    let (status, _) = curl(None, &gw, &gw.demo_password);
    assert_eq!(
        status, "200",
        "the right password from ::1 after twelve wrong"
    );
    drop(gw);

    // The same limits without the exemption lock ::1 after three: what the exemption
    // spared it.
    let control = gateway_at(loopback, settings, &limits(false));
    let statuses: Vec<String> = (0..6)
        .map(|_| curl(None, &control, "wrong password").0)
        .collect();
    assert_eq!(
        statuses[..3],
        ["401", "401", "401"],
        "the first three wrong passwords are failures"
    );
    assert!(
        statuses[3..].iter().all(|s| s == "429"),
        "without the exemption ::1 is locked after three failures: {statuses:?}"
    );
}
