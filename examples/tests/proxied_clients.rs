//! Clients behind a real reverse proxy: HAProxy (Debian's package, `auth_tests::haproxy`)
//! on a test host's link address forwards to the gateway on 127.0.0.1, and the gateway
//! trusts 127.0.0.1 as a proxy (`trusted_proxies`). The client the proxy reports, in a
//! PROXY protocol header (v2, and v2 with the SSL TLVs) or in `X-Forwarded-For` /
//! `X-Forwarded-Proto`, is the connection's peer for the rate limiter and lockout, for
//! system accounts' remote-login check and in the audit log (with the proxy beside it);
//! a proxied client is never loopback, whatever the header says. The same headers from a
//! client that is not a trusted proxy are refused (PROXY) or ignored (`X-Forwarded-*`,
//! `Forwarded`).
//!
//! The clients are real (psql, curl, grpcio) and run on test hosts in network namespaces
//! (`auth_tests::netns`), or on this machine; a raw PROXY header is sent by a few lines of
//! Python from a test host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use auth_core::account::Directory;
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_tests::eventually;
use auth_tests::gateway::{self, GatewayProcess};
use auth_tests::haproxy::{self, Frontend, HaProxy, ProxyHeader};
use auth_tests::netns::TestHost;
use secrecy::SecretString;
use serde_json::Value;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The proxy the gateway trusts: HAProxy's connections come from here.
const TRUSTED: &str = "trusted_proxies = [\"127.0.0.1\"]\n";
/// SCRAM for everyone (on the APIs, the same password as HTTP Basic).
const SCRAM: &str = "[[rule]]\nname = \"scram\"\nmethod = \"scram\"\n";
/// Five failures lock the address, and the user at unknown addresses, for a minute: the
/// rest of the test.
const LIMITS: &str = "[rate_limit]\nuser_failures = 5\naddress_failures = 5\nlockout = \"60s\"\n";
/// What a client writes to pose as someone else.
const SPOOFED: &str = "203.0.113.9";
/// What psql says for 28P01.
const WRONG_DEMO: &str = "password authentication failed for user \"demo\"";
/// What psql says once the rate limiter refuses.
const REFUSED: &str = "too many failed attempts";
const WRONG: &str = "wrong password";
const CAROL: &str = "carol long password 2026";
const MAINT: &str = "maintenance long password";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pg-gateway"))
}

fn test_host() -> TestHost {
    TestHost::create().unwrap_or_else(|e| panic!("{e}"))
}

/// A gateway on 127.0.0.1 trusting 127.0.0.1 as a proxy, with the top-level `settings`,
/// SCRAM and [`LIMITS`].
fn gateway_behind_proxy(settings: &str) -> GatewayProcess {
    GatewayProcess::start(
        binary(),
        "10s",
        &format!("{TRUSTED}{settings}\n{SCRAM}\n{LIMITS}"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn start_proxy(binds: &[IpAddr], frontends: &[Frontend]) -> HaProxy {
    HaProxy::start(binds, frontends).unwrap_or_else(|e| panic!("{e}"))
}

fn on(port: u16) -> SocketAddr {
    SocketAddr::new(LOOPBACK, port)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Gives `user` `password` in `gw`'s wallet (the running gateway sees it at once).
fn set_password(gw: &GatewayProcess, user: &str, password: &str) {
    block_on(async {
        Users::new(gw.wallet().unwrap_or_else(|e| panic!("{e}")))
            .set_password(
                &Hasher::new(Argon2Settings::default()).unwrap(),
                &PasswordPolicy::default(),
                user,
                &SecretString::from(password.to_owned()),
            )
            .await
            .unwrap();
    });
}

/// `maint`, a system account with [`MAINT`] as its password, on `gw`.
fn system_account(gw: &GatewayProcess, remote_login: bool) {
    set_password(gw, "maint", MAINT);
    block_on(async {
        let users = Users::new(gw.wallet().unwrap_or_else(|e| panic!("{e}")));
        Directory::new(users.store().clone())
            .modify("maint", |r| {
                r.system = true;
                r.remote_login = remote_login;
            })
            .await
            .unwrap();
    });
}

/// psql (`cmd`: this machine's or a test host's) to `ip`:`port` as `user` without TLS:
/// Ok(current_user) or Err(its error output).
fn psql(cmd: Command, ip: IpAddr, port: u16, user: &str, password: &str) -> Result<String, String> {
    gateway::psql(
        cmd,
        &format!("host={ip} port={port} user={user} dbname={user} sslmode=disable"),
        password,
        "SELECT current_user",
    )
}

/// curl from `host`: the HTTP status of GET /whoami over TLS at `ip`:`port` verified
/// with `ca`, with demo's Basic credentials `password` and `headers`.
fn https_status(
    host: &TestHost,
    (ip, port): (IpAddr, u16),
    ca: &Path,
    password: &str,
    headers: &[&str],
) -> String {
    let (mut args, url) = haproxy::https_url(ip, port, ca, "/whoami");
    args.extend(["-u".to_owned(), format!("demo:{password}")]);
    for h in headers {
        args.extend(["-H".to_owned(), (*h).to_owned()]);
    }
    gateway::http_status(host.command("curl"), &args, &url)
}

/// curl from `host`: the HTTP status of GET /whoami over plain HTTP at `ip`:`port`, with
/// demo's Basic credentials `password` and `headers`.
fn http_status(
    host: &TestHost,
    (ip, port): (IpAddr, u16),
    password: &str,
    headers: &[&str],
) -> String {
    let mut args = vec!["-u".to_owned(), format!("demo:{password}")];
    for h in headers {
        args.extend(["-H".to_owned(), (*h).to_owned()]);
    }
    gateway::http_status(
        host.command("curl"),
        &args,
        &haproxy::http_url(ip, port, "/whoami"),
    )
}

/// A gRPC call (grpcio, TLS verified with `ca` for `localhost`) from `host` to
/// `ip`:`port` with demo's Basic credentials: the status code's name.
fn grpc(host: &TestHost, (ip, port): (IpAddr, u16), ca: &Path, password: &str) -> String {
    let out = gateway::preauth_client(host)
        .unwrap_or_else(|e| panic!("{e}"))
        .env("AUTH_TEST_CA", ca)
        .args([
            "grpc-call",
            &ip.to_string(),
            &port.to_string(),
            "demo",
            password,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "preauth.py grpc-call: {stderr}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The address of an audit event's `source`, when it is an IP peer (with a port, or
/// without one as `X-Forwarded-For` names it).
fn source_ip(event: &Value) -> Option<IpAddr> {
    let source = event["source"].as_str()?;
    source
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| source.parse::<IpAddr>())
        .ok()
}

/// Whether an audit event is about a client at `address`.
fn is_from(event: &Value, address: Ipv4Addr) -> bool {
    source_ip(event) == Some(IpAddr::V4(address))
}

/// Whether an audit event names the proxy on 127.0.0.1 the client came through.
fn names_the_proxy(event: &Value) -> bool {
    event["proxy"]
        .as_str()
        .and_then(|p| p.parse::<SocketAddr>().ok())
        .is_some_and(|p| p.ip() == LOOPBACK)
}

/// Every audit event with a TCP source: each is one of `clients` (never loopback, never
/// the spoofed address), and each names the proxy. Returns them.
fn all_proxied(gw: &GatewayProcess, clients: &[Ipv4Addr]) -> Vec<Value> {
    let events: Vec<Value> = gw
        .audit_events()
        .into_iter()
        .filter(|e| source_ip(e).is_some())
        .collect();
    assert!(!events.is_empty(), "no client events audited");
    for e in &events {
        let ip = source_ip(e).unwrap();
        assert!(
            !ip.is_loopback(),
            "a client behind the proxy was audited as the proxy (loopback): {e}"
        );
        assert!(
            clients.iter().any(|c| IpAddr::V4(*c) == ip),
            "a source that is none of the test hosts {clients:?}: {e}"
        );
    }
    let unnamed: Vec<&Value> = events.iter().filter(|e| !names_the_proxy(e)).collect();
    let mut kinds: Vec<&str> = unnamed.iter().filter_map(|e| e["event"].as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert!(
        unnamed.is_empty(),
        "{} proxied clients' events (kinds {kinds:?}) without `proxy` naming 127.0.0.1, \
         the first: {}",
        unnamed.len(),
        unnamed.first().map(|e| e.to_string()).unwrap_or_default()
    );
    events
}

/// The newest event of one of `kinds` after the first `mark` audit events.
fn newest_since(gw: &GatewayProcess, mark: usize, kinds: &[&str]) -> Value {
    let events = gw.audit_events();
    events
        .get(mark..)
        .unwrap_or_default()
        .iter()
        .rev()
        .find(|e| kinds.iter().any(|k| e["event"] == *k))
        .cloned()
        .unwrap_or_else(|| panic!("no {kinds:?} event after the first {mark}: {events:?}"))
}

#[test]
fn behind_proxy_v2_the_client_is_locked_out_not_the_proxy_nor_other_clients() {
    let (a, b, c) = (test_host(), test_host(), test_host());
    let gw = gateway_behind_proxy("");
    let proxy = start_proxy(
        &[a.gateway.into()],
        &[gw.port, gw.http_port, gw.grpc_port].map(|port| Frontend::Tcp {
            backend: on(port),
            header: ProxyHeader::V2,
        }),
    );
    let at = IpAddr::from(a.gateway);
    let (pg, http, grpc_door) = (
        (at, proxy.port(0)),
        (at, proxy.port(1)),
        (at, proxy.port(2)),
    );
    let ca = gw.ca_file();
    let demo = gw.demo_password.clone();
    set_password(&gw, "carol", CAROL);

    // B logs in first: its network is known for demo from now on.
    assert_eq!(
        psql(b.command("psql"), pg.0, pg.1, "demo", &demo).as_deref(),
        Ok("demo"),
        "B logs in as demo through the proxy"
    );
    // A guesses: twice over pgwire (28P01), three times over HTTP (401), all through the
    // proxy. Five failures lock A's address and demo at unknown addresses.
    for i in 1..=2 {
        let err = psql(a.command("psql"), pg.0, pg.1, "demo", WRONG).unwrap_err();
        assert!(
            err.contains(WRONG_DEMO),
            "A's wrong password {i} over pgwire: {err}"
        );
    }
    for i in 3..=5 {
        assert_eq!(
            https_status(&a, http, &ca, WRONG, &[]),
            "401",
            "A's wrong password {i} over HTTP"
        );
    }
    // A is locked out on every door, even with the right password, even as another user.
    let err = psql(a.command("psql"), pg.0, pg.1, "demo", &demo).unwrap_err();
    assert!(err.contains(REFUSED), "A as demo over pgwire: {err}");
    assert_eq!(
        https_status(&a, http, &ca, &demo, &[]),
        "429",
        "A as demo over HTTP"
    );
    assert_eq!(
        grpc(&a, grpc_door, &ca, &demo),
        "RESOURCE_EXHAUSTED",
        "A as demo over gRPC"
    );
    let err = psql(a.command("psql"), pg.0, pg.1, "carol", CAROL).unwrap_err();
    assert!(
        err.contains(REFUSED),
        "A's address is locked for every user: {err}"
    );
    // B, through the same proxy, is not: as another user, and as demo (smart lockout
    // keeps demo's known network working), on every door.
    assert_eq!(
        psql(b.command("psql"), pg.0, pg.1, "carol", CAROL).as_deref(),
        Ok("carol"),
        "B as carol through the proxy"
    );
    assert_eq!(
        psql(b.command("psql"), pg.0, pg.1, "demo", &demo).as_deref(),
        Ok("demo"),
        "B as demo through the proxy, from demo's known network"
    );
    assert_eq!(
        https_status(&b, http, &ca, &demo, &[]),
        "200",
        "B as demo over HTTP"
    );
    assert_eq!(grpc(&b, grpc_door, &ca, &demo), "OK", "B as demo over gRPC");
    // C, a network demo never logged in from: demo is locked there.
    let err = psql(c.command("psql"), pg.0, pg.1, "demo", &demo).unwrap_err();
    assert!(
        err.contains(REFUSED),
        "C as demo (an unknown network): {err}"
    );

    // The audit log names A, B and C (never the proxy's 127.0.0.1), and the proxy beside.
    let events = all_proxied(&gw, &[a.address, b.address, c.address]);
    let of = |kind: &str, host: Ipv4Addr| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["event"] == kind && is_from(e, host))
            .collect()
    };
    let failed = of("attempt_failed", a.address);
    assert!(
        failed.len() >= 5,
        "A's five wrong passwords are audited from A: {failed:?}"
    );
    assert!(
        of("attempt_failed", b.address).is_empty() && of("lockout", b.address).is_empty(),
        "B never failed nor was locked out: {events:?}"
    );
    assert!(
        of("attempt_succeeded", a.address).is_empty(),
        "A never got in: {events:?}"
    );
    let a_locked = of("lockout", a.address);
    assert!(
        a_locked.len() >= 4
            && a_locked.iter().all(|e| e["detail"]
                .as_str()
                .unwrap_or("")
                .starts_with("address locked")),
        "A's four refusals are lockouts of A's address: {a_locked:?}"
    );
    let c_locked = of("lockout", c.address);
    assert!(
        c_locked.len() == 1
            && c_locked[0]["detail"]
                .as_str()
                .unwrap_or("")
                .starts_with("user at unknown addresses locked"),
        "C's refusal is demo's lock at unknown addresses: {c_locked:?}"
    );
    let b_in = of("attempt_succeeded", b.address);
    for protocol in ["postgres", "http", "grpc"] {
        assert!(
            b_in.iter().any(|e| e["protocol"] == protocol),
            "B's login over {protocol} audited from B: {b_in:?}"
        );
    }
    assert!(
        b_in.iter().any(|e| e["username"] == "carol"),
        "B's login as carol audited from B: {b_in:?}"
    );
}

#[test]
fn behind_a_tls_terminating_proxy_plain_http_takes_passwords_and_locks_out_the_client() {
    let (a, b) = (test_host(), test_host());
    let gw = gateway_behind_proxy("api_tls = false");
    let output = gw.process.output();
    assert!(
        output.contains(auth_examples::api::SECRETS_REFUSED),
        "the plain API refuses passwords on its own (no cleartext opt-in): {output}"
    );
    let api = on(gw.http_port);
    let proxy = start_proxy(
        &[a.gateway.into()],
        &[
            Frontend::Https { backend: api },
            Frontend::TlsTcp {
                backend: api,
                header: ProxyHeader::V2Ssl,
            },
            Frontend::Http { backend: api },
            Frontend::Tcp {
                backend: api,
                header: ProxyHeader::V2,
            },
        ],
    );
    let ca = proxy.ca_file().unwrap_or_else(|e| panic!("{e}"));
    let at = IpAddr::from(a.gateway);
    let (https, tls_v2, plain_http, plain_v2) = (
        (at, proxy.port(0)),
        (at, proxy.port(1)),
        (at, proxy.port(2)),
        (at, proxy.port(3)),
    );
    let demo = gw.demo_password.clone();
    let spoof = format!("X-Forwarded-For: {SPOOFED}");

    // B: TLS to the proxy, which says so (X-Forwarded-Proto, or PROXY v2's SSL TLV).
    assert_eq!(
        https_status(&b, https, &ca, &demo, &[]),
        "200",
        "B through the TLS-terminating HTTP proxy"
    );
    assert_eq!(
        https_status(&b, tls_v2, &ca, &demo, &[]),
        "200",
        "B through the TLS-terminating TCP proxy (send-proxy-v2-ssl)"
    );
    // A guesses five times, posing as someone else: HAProxy appends A to the
    // X-Forwarded-For A sent, and the right-most address is the client.
    for i in 1..=5 {
        assert_eq!(
            https_status(&a, https, &ca, WRONG, &[&spoof]),
            "401",
            "A's wrong password {i}"
        );
    }
    assert_eq!(
        https_status(&a, https, &ca, &demo, &[&spoof]),
        "429",
        "A is locked out"
    );
    assert_eq!(
        https_status(&a, tls_v2, &ca, &demo, &[]),
        "429",
        "A is locked out behind the PROXY v2 door too"
    );
    assert_eq!(
        https_status(&b, https, &ca, &demo, &[]),
        "200",
        "B still gets in"
    );

    let events = all_proxied(&gw, &[a.address, b.address]);
    for e in &events {
        assert_ne!(
            source_ip(e),
            Some(SPOOFED.parse().unwrap()),
            "the address A wrote was believed: {e}"
        );
    }
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "attempt_failed")
        .collect();
    assert!(
        failed.len() >= 5 && failed.iter().all(|e| is_from(e, a.address)),
        "the wrong passwords are A's: {failed:?}"
    );
    let succeeded: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "attempt_succeeded")
        .collect();
    assert!(
        succeeded.len() == 3 && succeeded.iter().all(|e| is_from(e, b.address)),
        "the three logins are B's: {succeeded:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "lockout" && is_from(e, a.address)),
        "A's lockout is audited from A: {events:?}"
    );

    // Through a proxy that does not say the client spoke TLS, a password is refused as
    // on the plain API itself: the proxy is trusted for who the client is, not for TLS
    // it did not report.
    for (what, door) in [
        ("plain HTTP proxy (no X-Forwarded-Proto)", plain_http),
        ("plain TCP proxy (send-proxy-v2, no SSL TLV)", plain_v2),
    ] {
        let mark = gw.audit_events().len();
        assert_eq!(
            http_status(&b, door, &demo, &["X-Forwarded-Proto: https"]),
            "401",
            "B through the {what}"
        );
        let refusal = newest_since(&gw, mark, &["attempt_failed", "policy_reject"]);
        assert!(
            refusal["detail"]
                .as_str()
                .unwrap_or("")
                .contains("not encrypted")
                && is_from(&refusal, b.address)
                && names_the_proxy(&refusal),
            "B through the {what}: refused as not encrypted, from B behind the proxy: {refusal}"
        );
    }
}

#[test]
fn a_system_account_behind_the_proxy_is_remote_even_when_the_header_says_loopback() {
    let a = test_host();
    let gw = gateway_behind_proxy("");
    system_account(&gw, false);
    let proxy = start_proxy(
        &[a.gateway.into(), LOOPBACK],
        &[Frontend::Tcp {
            backend: on(gw.port),
            header: ProxyHeader::V2,
        }],
    );
    let not_remote = "system account `maint` may not log in from another machine";
    let refused = "password authentication failed for user \"maint\"";

    // The control: on this machine, straight to the gateway, maint logs in.
    assert_eq!(
        psql(Command::new("psql"), LOOPBACK, gw.port, "maint", MAINT).as_deref(),
        Ok("maint"),
        "maint from loopback, no proxy"
    );
    let local = gw.audit("attempt_succeeded").pop().unwrap_or_default();
    assert!(
        source_ip(&local).is_some_and(|ip| ip.is_loopback()) && local.get("proxy").is_none(),
        "a direct loopback login has no proxy: {local}"
    );

    // From A through the proxy: another machine.
    let err = psql(
        a.command("psql"),
        a.gateway.into(),
        proxy.port(0),
        "maint",
        MAINT,
    )
    .unwrap_err();
    assert!(
        err.contains(refused),
        "maint from A through the proxy: {err}"
    );
    let refusal = gw.newest_refusal();
    assert_eq!(refusal["detail"], not_remote, "{refusal}");
    assert!(
        is_from(&refusal, a.address) && names_the_proxy(&refusal),
        "the refusal names A behind the proxy: {refusal}"
    );

    // From this machine through the proxy: the header says 127.0.0.1, and still a proxied
    // client is not on this machine.
    let err = psql(
        Command::new("psql"),
        LOOPBACK,
        proxy.port(0),
        "maint",
        MAINT,
    )
    .unwrap_err();
    assert!(
        err.contains(refused),
        "maint from loopback through the proxy: {err}"
    );
    let refusal = gw.newest_refusal();
    assert_eq!(refusal["detail"], not_remote, "{refusal}");
    assert!(
        source_ip(&refusal).is_some_and(|ip| ip.is_loopback()) && names_the_proxy(&refusal),
        "the refusal names the loopback client the header reported, behind the proxy: {refusal}"
    );

    // Allowed remote login: from A through the proxy, with the password.
    system_account(&gw, true);
    assert_eq!(
        psql(
            a.command("psql"),
            a.gateway.into(),
            proxy.port(0),
            "maint",
            MAINT
        )
        .as_deref(),
        Ok("maint"),
        "maint with remote login from A through the proxy"
    );
    let remote = gw.audit("attempt_succeeded").pop().unwrap_or_default();
    assert!(
        is_from(&remote, a.address) && names_the_proxy(&remote),
        "{remote}"
    );
}

/// Sends a PROXY header (`v1` or `v2`) naming [`SPOOFED`] from `host` to `ip`:`port`,
/// then the start of what `door` (`pg`, `http`, `grpc`) speaks, and waits up to 10 s for
/// the server to close: prints `{"closed": ..., "received": hex, "after": s}`.
const PROXY_CLIENT: &str = r#"
import json, socket, struct, sys, time
host, port, version, door, spoofed = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
if version == "v1":
    header = f"PROXY TCP4 {spoofed} {host} 40000 {port}\r\n".encode()
else:
    addresses = socket.inet_aton(spoofed) + socket.inet_aton(host) + struct.pack("!HH", 40000, port)
    header = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses
if door == "pg":
    body = struct.pack("!I", 196608) + b"user\x00demo\x00database\x00demo\x00\x00"
    payload = struct.pack("!I", len(body) + 4) + body
elif door == "http":
    payload = b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n"
else:
    payload = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
sock = socket.create_connection((host, port), timeout=10)
started = time.monotonic()
sock.sendall(header + payload)
received, closed = b"", False
try:
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            closed = True
            break
        received += chunk
except ConnectionResetError:
    closed = True
except socket.timeout:
    pass
print(json.dumps({"closed": closed, "received": received[:64].hex(), "after": round(time.monotonic() - started, 3)}))
"#;

#[test]
fn proxy_headers_from_a_client_that_is_not_a_trusted_proxy_are_refused_or_ignored() {
    let a = test_host();
    // Every door on A's link, so A reaches the gateway itself; the APIs on plain HTTP.
    let gw = GatewayProcess::start_at(
        binary(),
        a.gateway.into(),
        "10s",
        &format!("{TRUSTED}api_tls = false\n{SCRAM}"),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let demo = gw.demo_password.clone();
    assert_eq!(
        psql(a.command("psql"), gw.ip, gw.port, "demo", &demo).as_deref(),
        Ok("demo"),
        "A logs in without a header"
    );
    let python: PathBuf =
        auth_tests::venv_python("the PROXY header client").unwrap_or_else(|e| panic!("{e}"));

    for (door, port, version, protocol) in [
        ("pg", gw.port, "v1", "postgres"),
        ("pg", gw.port, "v2", "postgres"),
        ("http", gw.http_port, "v1", "http"),
        ("http", gw.http_port, "v2", "http"),
        ("grpc", gw.grpc_port, "v2", "grpc"),
    ] {
        let what = format!("a PROXY {version} header from A on {protocol}");
        let mark = gw.audit_events().len();
        let out = a
            .command(&python.display().to_string())
            .args([
                "-c",
                PROXY_CLIENT,
                &gw.ip.to_string(),
                &port.to_string(),
                version,
                door,
                SPOOFED,
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{what}: the client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{what}: the client printed {stdout:?}: {e}"));
        assert!(
            result["closed"] == true && result["after"].as_f64().is_some_and(|s| s < 5.0),
            "{what}: the gateway closes the connection at once, not at the 10 s \
             authentication timeout: {result}"
        );
        if door == "pg" {
            assert!(
                !result["received"].as_str().unwrap_or("").starts_with("52"),
                "{what}: no authentication request was sent: {result}"
            );
        }
        let refusal = eventually(Duration::from_secs(10), || {
            let events = gw.audit_events();
            events
                .get(mark..)
                .unwrap_or_default()
                .iter()
                .find(|e| e["event"] == "connection_refused")
                .cloned()
                .ok_or_else(|| format!("{what}: no connection_refused audited: {events:?}"))
        });
        assert!(
            is_from(&refusal, a.address),
            "{what}: audited from A itself, not the address in the header: {refusal}"
        );
        assert!(
            refusal["detail"]
                .as_str()
                .unwrap_or("")
                .to_lowercase()
                .contains("proxy"),
            "{what}: the detail says why: {refusal}"
        );
        assert_eq!(refusal["protocol"], protocol, "{what}: {refusal}");
        assert!(
            refusal.get("proxy").is_none(),
            "{what}: A is not a proxy: {refusal}"
        );
    }

    // Forwarding headers straight from A are not believed: not the address (the audit
    // names A), not the TLS (the plain API still refuses the password).
    let mark = gw.audit_events().len();
    assert_eq!(
        http_status(
            &a,
            (gw.ip, gw.http_port),
            &demo,
            &[
                &format!("X-Forwarded-For: {SPOOFED}"),
                "X-Forwarded-Proto: https",
                &format!("Forwarded: for={SPOOFED};proto=https"),
            ],
        ),
        "401",
        "A's password on plain HTTP with forwarding headers"
    );
    let refusal = newest_since(&gw, mark, &["attempt_failed", "policy_reject"]);
    assert!(
        is_from(&refusal, a.address),
        "the audit names A, not {SPOOFED}: {refusal}"
    );
    assert!(
        refusal.get("proxy").is_none(),
        "A is not a proxy: {refusal}"
    );
    assert!(
        refusal["detail"]
            .as_str()
            .unwrap_or("")
            .contains("not encrypted"),
        "refused as not encrypted: {refusal}"
    );
}
