//! CORE-4, CORE-13, CORE-16, ADAPT-4 end to end: one `gateway.toml` guards every front
//! door. The real gateway runs a rules matrix, each cell a real client (psql, curl, the
//! grpcurl stand-in or grpcio from a test host) whose outcome is asserted together with
//! the one `attempt_succeeded`, `attempt_failed` or `policy_reject` event the attempt left
//! in the audit log, naming the rule that decided:
//!
//! - `reject` for one user holds on pgwire, HTTPS and gRPC, for bearer tokens too (the
//!   user a token proves is checked against the rules again);
//! - an address-restricted rule admits its user from a test host (a network namespace)
//!   and not from loopback;
//! - `hostssl` + `client_certificate = "verify-full"` + SCRAM: HTTP Basic needs the
//!   certificate as psql does;
//! - a method on HTTP only (`protocols = ["http"]`) opens HTTP and nothing else.
//!
//! Then transport in the core (with `api_tls = false`, Basic and Bearer are refused on
//! plain HTTP and gRPC unless `danger_allow_cleartext_without_tls = true`), `peer` that
//! admits only the entries of its rule's map (OS user `postgres` is not the gateway's
//! `postgres`), an old data directory whose global identity maps and cleartext key are
//! migrated, and the parser refusing token rules that could match pgwire.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use auth_core::account::Directory;
use auth_examples::api::LocalIssuer;
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_tests::HarnessError;
use auth_tests::gateway::{self, GatewayProcess, printed_line, run_printed, run_printed_grpcurl};
use auth_tests::netns::TestHost;
use auth_tests::pki::{ClientFiles, TestCa};
use base64::Engine as _;
use secrecy::SecretString;
use serde_json::Value;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pg-gateway"))
}

const ALICE: &str = "alice-long-password-2026";
const BOB: &str = "bob-long-password-2026";
const CAROL: &str = "carol-long-password-2026";
const DAVE: &str = "dave-long-password-2026";
const ERIN: &str = "erin-long-password-2026";

/// The events that end an attempt: exactly one of them per attempt.
const DECISIVE: [&str; 3] = ["attempt_succeeded", "attempt_failed", "policy_reject"];

fn printed(output: &str, label: &str) -> String {
    printed_line(output, label).unwrap_or_else(|| panic!("no `{label}` line in:\n{output}"))
}

fn this_os_user() -> String {
    auth_core::local::SystemUsers
        .this_process()
        .unwrap()
        .expect("this process's user has a name")
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Gives `user` `password` in `gw`'s wallet (the running gateway sees it at once).
async fn add_user(gw: &GatewayProcess, hasher: &Hasher, user: &str, password: &str) {
    Users::new(gw.wallet().unwrap_or_else(|e| panic!("{e}")))
        .set_password(
            hasher,
            &PasswordPolicy::default(),
            user,
            &SecretString::from(password.to_owned()),
        )
        .await
        .unwrap();
}

/// The one decisive event (see [`DECISIVE`]) among the audit events after the first
/// `mark`; fails the test unless there is exactly one.
#[track_caller]
fn decisive_since(gw: &GatewayProcess, mark: usize, what: &str) -> Value {
    let events = gw.audit_events();
    let new = events.get(mark..).unwrap_or_default();
    let decisive: Vec<&Value> = new
        .iter()
        .filter(|e| DECISIVE.iter().any(|k| e["event"] == *k))
        .collect();
    assert_eq!(
        decisive.len(),
        1,
        "{what}: exactly one decisive audit event expected, the attempt left {decisive:#?}"
    );
    decisive[0].clone()
}

/// One cell: runs `attempt` (Ok(the user the client got in as), or Err(what the client
/// was told)), checks it against `want` (Ok(user), or Err(a part of the refusal)), and
/// checks that the attempt left exactly one decisive audit event of `kind`, naming `rule`,
/// on `protocol`. Returns that event.
#[track_caller]
fn cell(
    gw: &GatewayProcess,
    what: &str,
    want: Result<&str, &str>,
    (kind, rule, protocol): (&str, &str, &str),
    attempt: impl FnOnce() -> Result<String, String>,
) -> Value {
    let mark = gw.audit_events().len();
    let got = attempt();
    match (want, &got) {
        (Ok(user), Ok(got)) => assert_eq!(got, user, "{what}: in as another user"),
        (Ok(_), Err(e)) => panic!("{what}: refused, expected to get in: {e}"),
        (Err(_), Ok(got)) => panic!("{what}: got in as {got}, expected a refusal"),
        (Err(part), Err(e)) => assert!(e.contains(part), "{what}: expected `{part}` in: {e}"),
    }
    let event = decisive_since(gw, mark, what);
    assert_eq!(event["event"], kind, "{what}: {event}");
    assert_eq!(event["rule"], rule, "{what}: {event}");
    assert_eq!(event["protocol"], protocol, "{what}: {event}");
    event
}

/// Where a client runs.
#[derive(Clone, Copy)]
enum Place<'a> {
    /// This machine, connecting to 127.0.0.1 (the gateway listens on every address).
    Loopback,
    /// A test host in a network namespace, connecting to this machine's address on its
    /// link.
    Host(&'a TestHost),
}

impl Place<'_> {
    fn command(self, program: &str) -> Command {
        match self {
            Self::Loopback => Command::new(program),
            Self::Host(h) => h.command(program),
        }
    }

    fn target(self) -> Ipv4Addr {
        match self {
            Self::Loopback => Ipv4Addr::LOCALHOST,
            Self::Host(h) => h.gateway,
        }
    }
}

/// psql from `place` as `user` over TLS (verified from loopback, where the certificate's
/// names apply), presenting `cert` if given: Ok(current_user) or Err(psql's error).
fn psql(
    gw: &GatewayProcess,
    place: Place<'_>,
    user: &str,
    password: &str,
    cert: Option<&ClientFiles>,
) -> Result<String, String> {
    let tls = match place {
        Place::Loopback => format!("sslmode=verify-full sslrootcert={}", gw.ca_file().display()),
        // The gateway's certificate names localhost and 127.0.0.1, not the link address.
        Place::Host(_) => "sslmode=require".to_owned(),
    };
    let mut conninfo = format!(
        "host={} port={} user={user} dbname={user} {tls}",
        place.target(),
        gw.port
    );
    if let Some(c) = cert {
        conninfo.push_str(&format!(
            " sslcert={} sslkey={}",
            c.cert.display(),
            c.key.display()
        ));
    }
    gateway::psql(
        place.command("psql"),
        &conninfo,
        password,
        "SELECT current_user",
    )
}

/// curl GET /whoami over verified TLS from `place` with `args` (credentials), presenting
/// `cert` if given: Ok(the user the API saw) or Err("HTTP <status>: <body>").
fn https(
    gw: &GatewayProcess,
    place: Place<'_>,
    args: &[&str],
    cert: Option<&ClientFiles>,
) -> Result<String, String> {
    let port = gw.http_port;
    let mut cmd = place.command("curl");
    cmd.arg("--cacert")
        .arg(gw.ca_file())
        .arg("--connect-to")
        .arg(format!("localhost:{port}:{}:{port}", place.target()));
    if let Some(c) = cert {
        cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
    }
    cmd.args(args)
        .arg(format!("https://localhost:{port}/whoami"));
    let (body, status) = gateway::curl_reply(cmd).unwrap_or_else(|e| panic!("{e}"));
    whoami_reply(&body, &status)
}

/// A /whoami reply: Ok(user) for 200, else Err("HTTP <status>: <body>").
fn whoami_reply(body: &str, status: &str) -> Result<String, String> {
    if status != "200" {
        return Err(format!("HTTP {status}: {body}"));
    }
    let who: Value = serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
    who["user"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no user in {body}"))
}

/// A grpcurl line run as printed: Ok(the user WhoAmI answered) or Err("exit <code>: ...").
fn grpcurl(line: &str) -> Result<String, String> {
    let run = run_printed_grpcurl(line).unwrap_or_else(|e| panic!("{e}"));
    if run.code != Some(0) {
        return Err(format!(
            "exit {}: {}",
            run.code.unwrap_or(-1),
            run.stderr.trim()
        ));
    }
    let who: Value =
        serde_json::from_str(&run.stdout).map_err(|e| format!("{e}: {}", run.stdout))?;
    who["user"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no user in {}", run.stdout))
}

/// WhoAmI over gRPC with TLS from loopback (the grpcurl stand-in, as the printed lines
/// run), with `authorization` and `cert` if given.
fn grpc(
    gw: &GatewayProcess,
    authorization: &str,
    cert: Option<&ClientFiles>,
) -> Result<String, String> {
    let mut flags = format!("-cacert {}", gw.ca_file().display());
    if let Some(c) = cert {
        flags.push_str(&format!(
            " -cert {} -key {}",
            c.cert.display(),
            c.key.display()
        ));
    }
    grpcurl(&format!(
        "grpcurl {flags} -H 'authorization: {authorization}' 127.0.0.1:{} auth.demo.v1.Demo/WhoAmI",
        gw.grpc_port
    ))
}

/// WhoAmI over gRPC with TLS and Basic credentials from a test host (grpcio in the test
/// venv, `tests/python/preauth.py grpc-call`): Ok(user) when the call returned OK, else
/// Err(the status code's name).
fn grpc_from(
    host: &TestHost,
    gw: &GatewayProcess,
    user: &str,
    password: &str,
) -> Result<String, String> {
    let out = gateway::preauth_client(host)
        .unwrap_or_else(|e| panic!("{e}"))
        .env("AUTH_TEST_CA", gw.ca_file())
        .args([
            "grpc-call".to_owned(),
            host.gateway.to_string(),
            gw.grpc_port.to_string(),
            user.to_owned(),
            password.to_owned(),
        ])
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "preauth.py grpc-call: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if code == "OK" {
        Ok(user.to_owned())
    } else {
        Err(code)
    }
}

struct Matrix {
    gw: GatewayProcess,
    host: TestHost,
    /// erin's certificate (CN erin), and bob's (CN bob), from the CA the gateway trusts.
    erin: ClientFiles,
    bob: ClientFiles,
    _pki: tempfile::TempDir,
}

/// The gateway of the matrix, listening on every address (so loopback clients come from
/// 127.0.0.1 and the test host's from its own address), with its users.
async fn matrix() -> Matrix {
    let host = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    let [a, b, c, _] = host.address.octets();
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Matrix Client CA", pki.path()).unwrap();
    let ca_file = ca.write_ca("client-ca.crt").unwrap();
    let rules = format!(
        r#"[client_certificates]
ca_file = "{ca}"

[[rule]]
name = "no-bob"
users = ["bob"]
method = "reject"

[[rule]]
name = "no-demo"
users = ["demo"]
method = "reject"

[[rule]]
name = "carol-from-the-host"
users = ["carol"]
addresses = ["{a}.{b}.{c}.0/24"]
method = "scram"

[[rule]]
name = "no-carol"
users = ["carol"]
method = "reject"

[[rule]]
name = "erin-with-certificate"
type = "hostssl"
users = ["erin"]
method = "scram"
client_certificate = "verify-full"

[[rule]]
name = "no-erin"
users = ["erin"]
method = "reject"

[[rule]]
name = "dave-over-http"
protocols = ["http"]
users = ["dave"]
method = "password"

[[rule]]
name = "no-dave"
users = ["dave"]
method = "reject"

[[rule]]
name = "api"
protocols = ["http", "grpc"]
method = ["bearer", "api-key", "password"]

[[rule]]
name = "scram"
method = "scram"
"#,
        ca = ca_file.display()
    );
    let gw = GatewayProcess::start_at(
        binary(),
        IpAddr::from(Ipv4Addr::UNSPECIFIED),
        "10s",
        &rules,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let hasher = Hasher::new(Argon2Settings::default()).unwrap();
    for (user, password) in [
        ("alice", ALICE),
        ("bob", BOB),
        ("carol", CAROL),
        ("dave", DAVE),
        ("erin", ERIN),
    ] {
        add_user(&gw, &hasher, user, password).await;
    }
    Matrix {
        erin: ca.client("erin", "erin", 1).unwrap(),
        bob: ca.client("bob", "bob", 2).unwrap(),
        gw,
        host,
        _pki: pki,
    }
}

const SUCCEEDED: &str = "attempt_succeeded";
const FAILED: &str = "attempt_failed";
const REJECTED: &str = "policy_reject";
const PG: &str = "postgres";
const HTTP: &str = "http";
const GRPC: &str = "grpc";
/// What the grpcurl stand-in exits with for UNAUTHENTICATED (64 + 16).
const UNAUTHENTICATED: &str = "exit 80";
/// A valid token (the issuer's signature checked: method `oauth`) refused because the
/// user it proved meets `rule` first, which the audited refusal names.
#[track_caller]
fn token_refused_by(event: &Value, rule: &str) {
    assert_eq!(
        event["method"], "oauth",
        "the token itself was good: {event}"
    );
    let detail = event["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("rule `{rule}`")),
        "the refusal names the rule that holds for the token's user: {event}"
    );
}

/// What psql says for a `reject` rule, from loopback over TLS.
fn no_entry(user: &str) -> String {
    format!("no pg_hba.conf entry for host \"127.0.0.1\", user \"{user}\"")
}

#[tokio::test]
async fn one_policy_guards_pgwire_https_and_grpc() {
    let m = matrix().await;
    let gw = &m.gw;
    let here = Place::Loopback;
    let there = Place::Host(&m.host);

    // alice: the general rules, on every door (SCRAM on pgwire, the API rule on HTTP and
    // gRPC); a wrong password is a failed attempt under the rule that judged it.
    cell(
        gw,
        "alice, psql",
        Ok("alice"),
        (SUCCEEDED, "scram", PG),
        || psql(gw, here, "alice", ALICE, None),
    );
    cell(
        gw,
        "alice, psql, a wrong password",
        Err("password authentication failed for user \"alice\""),
        (FAILED, "scram", PG),
        || psql(gw, here, "alice", "not alice's password", None),
    );
    let alice = format!("alice:{ALICE}");
    cell(
        gw,
        "alice, curl -u",
        Ok("alice"),
        (SUCCEEDED, "api", HTTP),
        || https(gw, here, &["-u", &alice], None),
    );
    cell(
        gw,
        "alice, gRPC Basic",
        Ok("alice"),
        (SUCCEEDED, "api", GRPC),
        || grpc(gw, &basic("alice", ALICE), None),
    );
    let issuer = LocalIssuer::load_or_create(&gw.data).unwrap();
    let token = |user: &str| {
        issuer
            .issue(user, "read", Duration::from_secs(300))
            .unwrap()
    };
    let alice_bearer = format!("Authorization: Bearer {}", token("alice"));
    cell(
        gw,
        "alice's token, curl",
        Ok("alice"),
        (SUCCEEDED, "api", HTTP),
        || https(gw, here, &["-H", &alice_bearer], None),
    );
    cell(
        gw,
        "alice's token, gRPC",
        Ok("alice"),
        (SUCCEEDED, "api", GRPC),
        || grpc(gw, &format!("Bearer {}", token("alice")), None),
    );

    // (a) reject bob: on every door, and his token too (the rule is checked again for the
    // user the token proved). A policy reject is 401 on HTTP, UNAUTHENTICATED on gRPC.
    cell(
        gw,
        "bob, psql",
        Err(&no_entry("bob")),
        (REJECTED, "no-bob", PG),
        || psql(gw, here, "bob", BOB, None),
    );
    let bob = format!("bob:{BOB}");
    let event = cell(
        gw,
        "bob, curl -u",
        Err("HTTP 401"),
        (REJECTED, "no-bob", HTTP),
        || https(gw, here, &["-u", &bob], None),
    );
    assert_eq!(event["username"], "bob", "{event}");
    cell(
        gw,
        "bob, gRPC Basic",
        Err(UNAUTHENTICATED),
        (REJECTED, "no-bob", GRPC),
        || grpc(gw, &basic("bob", BOB), None),
    );
    let bob_bearer = format!("Authorization: Bearer {}", token("bob"));
    let event = cell(
        gw,
        "bob's token, curl",
        Err("HTTP 401"),
        (FAILED, "api", HTTP),
        || https(gw, here, &["-H", &bob_bearer], None),
    );
    token_refused_by(&event, "no-bob");
    // The token the gateway printed is demo's, and demo is rejected too.
    let printed_token = printed(&gw.process.output(), "token (scope read, 1 hour):");
    let demo_bearer = format!("Authorization: Bearer {printed_token}");
    let event = cell(
        gw,
        "the printed demo token, curl",
        Err("HTTP 401"),
        (FAILED, "api", HTTP),
        || https(gw, here, &["-H", &demo_bearer], None),
    );
    token_refused_by(&event, "no-demo");
    let event = cell(
        gw,
        "the printed demo token, gRPC",
        Err(UNAUTHENTICATED),
        (FAILED, "api", GRPC),
        || grpc(gw, &format!("Bearer {printed_token}"), None),
    );
    token_refused_by(&event, "no-demo");
    let demo = format!("demo:{}", gw.demo_password);
    cell(
        gw,
        "demo, curl -u",
        Err("HTTP 401"),
        (REJECTED, "no-demo", HTTP),
        || https(gw, here, &["-u", &demo], None),
    );

    // (b) carol only from the test host's network: in from there, on every door; refused
    // from loopback by the reject that follows.
    let host_address = m.host.address.to_string();
    let from_host = |event: &Value| {
        let source = event["source"].as_str().unwrap_or_default();
        assert!(
            source.starts_with(&format!("{host_address}:")),
            "from the test host: {event}"
        );
    };
    let from_loopback = |event: &Value| {
        let source = event["source"].as_str().unwrap_or_default();
        assert!(source.starts_with("127.0.0.1:"), "from loopback: {event}");
    };
    let rule = "carol-from-the-host";
    let event = cell(
        gw,
        "carol from the host, psql",
        Ok("carol"),
        (SUCCEEDED, rule, PG),
        || psql(gw, there, "carol", CAROL, None),
    );
    from_host(&event);
    let carol = format!("carol:{CAROL}");
    let event = cell(
        gw,
        "carol from the host, curl -u",
        Ok("carol"),
        (SUCCEEDED, rule, HTTP),
        || https(gw, there, &["-u", &carol], None),
    );
    from_host(&event);
    let event = cell(
        gw,
        "carol from the host, gRPC",
        Ok("carol"),
        (SUCCEEDED, rule, GRPC),
        || grpc_from(&m.host, gw, "carol", CAROL),
    );
    from_host(&event);
    let event = cell(
        gw,
        "carol from loopback, psql",
        Err(&no_entry("carol")),
        (REJECTED, "no-carol", PG),
        || psql(gw, here, "carol", CAROL, None),
    );
    from_loopback(&event);
    let event = cell(
        gw,
        "carol from loopback, curl -u",
        Err("HTTP 401"),
        (REJECTED, "no-carol", HTTP),
        || https(gw, here, &["-u", &carol], None),
    );
    from_loopback(&event);
    let event = cell(
        gw,
        "carol from loopback, gRPC",
        Err(UNAUTHENTICATED),
        (REJECTED, "no-carol", GRPC),
        || grpc(gw, &basic("carol", CAROL), None),
    );
    from_loopback(&event);

    // (c) erin: SCRAM and a certificate naming her (verify-full), on every door. HTTP
    // Basic (checked against her password under the SCRAM rule) is no way around it.
    let rule = "erin-with-certificate";
    let needs = "requires a client certificate";
    let detail = |event: &Value, part: &str| {
        assert!(
            event["detail"].as_str().unwrap_or_default().contains(part),
            "`{part}` audited: {event}"
        );
    };
    let erin = format!("erin:{ERIN}");
    cell(
        gw,
        "erin with her certificate, psql",
        Ok("erin"),
        (SUCCEEDED, rule, PG),
        || psql(gw, here, "erin", ERIN, Some(&m.erin)),
    );
    let event = cell(
        gw,
        "erin without a certificate, psql",
        Err("authentication failed for user \"erin\""),
        (FAILED, rule, PG),
        || psql(gw, here, "erin", ERIN, None),
    );
    detail(&event, needs);
    let event = cell(
        gw,
        "erin without a certificate, curl -u",
        Err("HTTP 401"),
        (FAILED, rule, HTTP),
        || https(gw, here, &["-u", &erin], None),
    );
    detail(&event, needs);
    cell(
        gw,
        "erin with her certificate, curl -u",
        Ok("erin"),
        (SUCCEEDED, rule, HTTP),
        || https(gw, here, &["-u", &erin], Some(&m.erin)),
    );
    let event = cell(
        gw,
        "erin with bob's certificate, curl -u",
        Err("HTTP 401"),
        (FAILED, rule, HTTP),
        || https(gw, here, &["-u", &erin], Some(&m.bob)),
    );
    detail(&event, "names `bob`");
    let event = cell(
        gw,
        "erin without a certificate, gRPC",
        Err(UNAUTHENTICATED),
        (FAILED, rule, GRPC),
        || grpc(gw, &basic("erin", ERIN), None),
    );
    detail(&event, needs);
    cell(
        gw,
        "erin with her certificate, gRPC",
        Ok("erin"),
        (SUCCEEDED, rule, GRPC),
        || grpc(gw, &basic("erin", ERIN), Some(&m.erin)),
    );

    // (d) dave: a password over HTTP only; pgwire and gRPC reach the reject after it.
    let dave = format!("dave:{DAVE}");
    cell(
        gw,
        "dave, curl -u",
        Ok("dave"),
        (SUCCEEDED, "dave-over-http", HTTP),
        || https(gw, here, &["-u", &dave], None),
    );
    cell(
        gw,
        "dave, psql",
        Err(&no_entry("dave")),
        (REJECTED, "no-dave", PG),
        || psql(gw, here, "dave", DAVE, None),
    );
    cell(
        gw,
        "dave, gRPC Basic",
        Err(UNAUTHENTICATED),
        (REJECTED, "no-dave", GRPC),
        || grpc(gw, &basic("dave", DAVE), None),
    );
}

/// The API rule of the default file and SCRAM, with the APIs on plain HTTP/2 and the
/// cleartext opt-in as given.
fn plaintext_gateway(opt_in: bool) -> GatewayProcess {
    let rules = format!(
        r#"api_tls = false
danger_allow_cleartext_without_tls = {opt_in}

[[rule]]
name = "api"
protocols = ["http", "grpc"]
method = ["bearer", "api-key", "password"]

[[rule]]
name = "scram"
method = "scram"
"#
    );
    GatewayProcess::start(binary(), "10s", &rules).unwrap_or_else(|e| panic!("{e}"))
}

/// The printed curl and grpcurl lines of `gw` (plain `http://` and `-plaintext`): what
/// each printed line is, run as printed.
fn plaintext_lines(gw: &GatewayProcess) -> Vec<(&'static str, String, &'static str)> {
    let output = gw.process.output();
    let lines = vec![
        (
            "printed bearer curl line",
            printed(&output, "bearer:"),
            HTTP,
        ),
        ("printed basic curl line", printed(&output, "basic:"), HTTP),
        (
            "printed bearer grpcurl line",
            printed(&output, "grpc bearer:"),
            GRPC,
        ),
        (
            "printed basic grpcurl line",
            printed(&output, "grpc basic:"),
            GRPC,
        ),
    ];
    for (what, line, door) in &lines {
        let plain = if *door == HTTP {
            "http://"
        } else {
            "-plaintext"
        };
        assert!(line.contains(plain), "{what}: {line}");
    }
    lines
}

fn run_line(line: &str, door: &str) -> Result<String, String> {
    if door == HTTP {
        let (body, status) = run_printed(line).unwrap_or_else(|e| panic!("{e}"));
        whoami_reply(&body, &status)
    } else {
        grpcurl(line)
    }
}

/// The curl and grpcurl lines a plaintext gateway that refuses secrets does not print
/// (it prints why instead), as they would be printed with the opt-in.
fn unprinted_plaintext_lines(gw: &GatewayProcess) -> Vec<(&'static str, String, &'static str)> {
    let output = gw.process.output();
    assert!(
        output.contains("plain HTTP: passwords and tokens are refused here"),
        "{output}"
    );
    for label in ["bearer:", "basic:", "grpc bearer:", "grpc basic:"] {
        assert!(
            printed_line(&output, label).is_none(),
            "`{label}` printed:\n{output}"
        );
    }
    let token = printed(&output, "token (scope read, 1 hour):")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let (ip, http, grpc) = (gw.ip, gw.http_port, gw.grpc_port);
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("demo:{}", gw.demo_password));
    let call = |header: String| {
        format!("grpcurl -plaintext -H '{header}' {ip}:{grpc} auth.demo.v1.Demo/WhoAmI")
    };
    vec![
        (
            "bearer curl line",
            format!("curl -H 'Authorization: Bearer {token}' http://{ip}:{http}/whoami"),
            HTTP,
        ),
        (
            "basic curl line",
            format!(
                "curl -u 'demo:{}' http://{ip}:{http}/whoami",
                gw.demo_password
            ),
            HTTP,
        ),
        (
            "bearer grpcurl line",
            call(format!("authorization: Bearer {token}")),
            GRPC,
        ),
        (
            "basic grpcurl line",
            call(format!("authorization: Basic {basic}")),
            GRPC,
        ),
    ]
}

#[test]
fn plain_http_and_grpc_refuse_passwords_and_tokens() {
    let gw = plaintext_gateway(false);
    for (what, line, door) in unprinted_plaintext_lines(&gw) {
        let refused = if door == HTTP {
            "HTTP 401"
        } else {
            UNAUTHENTICATED
        };
        let event = cell(&gw, what, Err(refused), (FAILED, "api", door), || {
            run_line(&line, door)
        });
        assert!(
            event["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("not encrypted"),
            "{what}: {event}"
        );
    }
    // SCRAM sends nothing a listener could replay: psql without TLS still logs in.
    cell(
        &gw,
        "demo, psql without TLS",
        Ok("demo"),
        (SUCCEEDED, "scram", PG),
        || {
            gateway::psql(
                Command::new("psql"),
                &gw.conninfo("demo", "sslmode=disable"),
                &gw.demo_password,
                "SELECT current_user",
            )
        },
    );
}

#[test]
fn plain_http_and_grpc_accept_passwords_and_tokens_with_the_dangerous_opt_in() {
    let gw = plaintext_gateway(true);
    for (what, line, door) in plaintext_lines(&gw) {
        cell(&gw, what, Ok("demo"), (SUCCEEDED, "api", door), || {
            run_line(&line, door)
        });
    }
}

/// `line` (a psql line the gateway printed) run by `sh` as this process's user, or with
/// `su` as the OS user `as_user`: Ok(what it printed) or Err(its error output).
fn run_as(as_user: Option<&str>, line: &str) -> Result<String, String> {
    let mut cmd = match as_user {
        Some(user) => {
            let mut c = Command::new("su");
            c.args([user, "-s", "/bin/sh", "-c"]);
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.arg("-c");
            c
        }
    };
    let out = cmd
        .arg(format!("{line} -X -A -t"))
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Lets other OS users reach the Unix socket in `dir` (and its parent, the harness's
/// private work directory).
fn open_to_other_users(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for d in [dir.parent().unwrap(), dir] {
        let mode = std::fs::metadata(d).unwrap().permissions().mode();
        if mode & 0o005 != 0o005 {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o055)).unwrap();
        }
    }
}

fn table<'a>(value: &'a toml::Value, what: &str) -> &'a toml::Table {
    value
        .as_table()
        .unwrap_or_else(|| panic!("{what} is not a table: {value}"))
}

fn rules(file: &toml::Table) -> Vec<&toml::Table> {
    file["rule"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| table(r, "[[rule]]"))
        .collect()
}

fn rule<'a>(file: &'a toml::Table, name: &str) -> &'a toml::Table {
    rules(file)
        .into_iter()
        .find(|r| r["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no rule `{name}` in {file}"))
}

#[test]
fn peer_admits_only_the_os_user_of_its_rules_map() {
    let me = this_os_user();
    let gw = GatewayProcess::start_fresh(binary()).unwrap_or_else(|e| panic!("{e}"));
    let output = gw.process.output();

    // The default file: the local administrator's rule names its map, whose one entry is
    // the OS user who made the data directory; the API rule opens HTTP and gRPC.
    let text = std::fs::read_to_string(gw.data.join("gateway.toml")).unwrap();
    let file: toml::Table = text.parse().unwrap();
    assert_eq!(
        file.get("danger_allow_cleartext_without_tls"),
        Some(&toml::Value::Boolean(false)),
        "{text}"
    );
    assert!(!file.contains_key("allow_cleartext_without_tls"), "{text}");
    let names: Vec<_> = rules(&file).iter().map(|r| r["name"].clone()).collect();
    assert_eq!(
        names,
        ["local-admin", "local", "api", "scram"].map(toml::Value::from),
        "{text}"
    );
    let admin = rule(&file, "local-admin");
    assert_eq!(
        (&admin["type"], &admin["method"], &admin["map"]),
        (&"local".into(), &"peer".into(), &"local-admin".into()),
        "{text}"
    );
    assert_eq!(
        admin["users"],
        toml::Value::from(vec!["postgres"]),
        "{text}"
    );
    let api = rule(&file, "api");
    assert_eq!(
        (&api["protocols"], &api["method"]),
        (
            &toml::Value::from(vec!["http", "grpc"]),
            &toml::Value::from(vec!["bearer", "api-key", "password"])
        ),
        "{text}"
    );
    let maps = file["identity_map"].as_array().unwrap();
    assert_eq!(maps.len(), 1, "{text}");
    let entry = table(&maps[0], "[[identity_map]]");
    assert_eq!(
        (
            &entry["map"],
            &entry["method"],
            &entry["identity"],
            &entry["user"]
        ),
        (
            &"local-admin".into(),
            &"peer".into(),
            &me.as_str().into(),
            &"postgres".into()
        ),
        "{text}"
    );

    // The printed local line: the OS user who made the data directory is `postgres`; OS
    // user `postgres` is not, though the names are the same.
    open_to_other_users(&gw.data);
    let local = printed(&output, "local:");
    cell(
        &gw,
        &format!("the printed local line as {me}"),
        Ok("postgres"),
        (SUCCEEDED, "local-admin", PG),
        || run_as(None, &local),
    );
    let event = cell(
        &gw,
        "the printed local line as OS user postgres",
        Err("peer authentication failed for user \"postgres\""),
        (FAILED, "local-admin", PG),
        || run_as(Some("postgres"), &local),
    );
    assert_eq!(
        event["detail"], "identity `postgres` (peer) may not act as the requested user `postgres`",
        "{event}"
    );
    // OS user postgres logs in like everyone else on the socket: with a password.
    let demo_local = format!(
        "PGPASSWORD='{}' psql -h {} -p {} -U demo -d demo -c 'SELECT current_user'",
        gw.demo_password,
        gw.socket_dir().display(),
        gw.port
    );
    cell(
        &gw,
        "demo on the socket as OS user postgres",
        Ok("demo"),
        (SUCCEEDED, "local", PG),
        || run_as(Some("postgres"), &demo_local),
    );

    // The other printed lines work as printed, each under its rule.
    let connect = format!(
        "PGPASSWORD='{}' {}",
        gw.demo_password,
        printed(&output, "connect:")
    );
    cell(
        &gw,
        "the printed connect line",
        Ok("demo"),
        (SUCCEEDED, "scram", PG),
        || run_as(None, &connect),
    );
    for (what, label, door) in [
        ("the printed bearer curl line", "bearer:", HTTP),
        ("the printed basic curl line", "basic:", HTTP),
        ("the printed bearer grpcurl line", "grpc bearer:", GRPC),
        ("the printed basic grpcurl line", "grpc basic:", GRPC),
    ] {
        let line = printed(&output, label);
        cell(&gw, what, Ok("demo"), (SUCCEEDED, "api", door), || {
            run_line(&line, door)
        });
    }
}

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/gateway-data-v1"
);
/// The fixture's demo password.
const FIXTURE_DEMO: &str = "bBCcijRksBfWj9EhSHA5";

#[tokio::test]
async fn an_old_data_directory_keeps_its_maps_and_its_cleartext_opt_in() {
    let me = this_os_user();
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Upgrade Client CA", pki.path()).unwrap();
    let ca_file = ca.write_ca("client-ca.crt").unwrap();
    let service = ca.client("svc-hana", "svc-hana", 1).unwrap();
    // The fixture's file as the previous version wrote and people edited it: the old
    // cleartext key (set), global identity maps for a peer rule and a certificate rule,
    // plain HTTP for the APIs.
    let old_file = |text: String| {
        let key = "allow_cleartext_without_tls = false";
        assert!(text.contains(key), "the fixture changed: {text}");
        let text = text.replace(
            key,
            "allow_cleartext_without_tls = true\napi_tls = false\nunix_socket_directory = \".\"",
        );
        let text = text.replacen(
            "[[rule]]",
            "[[rule]]\nname = \"local-admin\"\ntype = \"local\"\nusers = [\"postgres\"]\nmethod = \"peer\"\n\n\
             [[rule]]\nname = \"services\"\ntype = \"hostssl\"\nusers = [\"hana\"]\nmethod = \"cert\"\n\n[[rule]]",
            1,
        );
        format!(
            "{text}\n[client_certificates]\nca_file = \"{}\"\n\n\
             [[identity_map]]\nmethod = \"peer\"\nidentity = \"{me}\"\nuser = \"postgres\"\n\n\
             [[identity_map]]\nmethod = \"cert\"\nidentity = \"svc-hana\"\nuser = \"hana\"\n",
            ca_file.display()
        )
    };
    let gw = GatewayProcess::start_on_copy(binary(), Path::new(FIXTURE), old_file, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let output = gw.process.output();
    assert!(
        output.contains("danger_allow_cleartext_without_tls"),
        "the rename is announced: {output}"
    );

    // The file now says it the new way: the opt-in renamed, each map on its rule.
    let text = std::fs::read_to_string(gw.data.join("gateway.toml")).unwrap();
    let file: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        file.get("danger_allow_cleartext_without_tls"),
        Some(&toml::Value::Boolean(true)),
        "{text}"
    );
    assert!(!file.contains_key("allow_cleartext_without_tls"), "{text}");
    let entries: Vec<&toml::Table> = file["identity_map"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| table(e, "[[identity_map]]"))
        .collect();
    for (rule_name, identity, user) in [
        ("local-admin", me.as_str(), "postgres"),
        ("services", "svc-hana", "hana"),
    ] {
        let map = rule(&file, rule_name)
            .get("map")
            .unwrap_or_else(|| panic!("rule `{rule_name}` got no map: {text}"));
        assert!(
            entries.iter().any(|e| e.get("map") == Some(map)
                && e["identity"].as_str() == Some(identity)
                && e["user"].as_str() == Some(user)),
            "rule `{rule_name}`'s map {map} has `{identity}` -> `{user}`: {text}"
        );
    }

    // And the maps still work: peer for the OS user of the entry only, the certificate
    // for hana.
    Directory::new(gw.wallet().unwrap())
        .update("postgres", |r| r.system = true)
        .await
        .unwrap();
    open_to_other_users(&gw.data);
    let local = format!(
        "psql -h {} -p {} -U postgres -d postgres -c 'SELECT current_user'",
        gw.socket_dir().display(),
        gw.port
    );
    cell(
        &gw,
        &format!("postgres on the socket as {me}"),
        Ok("postgres"),
        (SUCCEEDED, "local-admin", PG),
        || run_as(None, &local),
    );
    cell(
        &gw,
        "postgres on the socket as OS user postgres",
        Err("peer authentication failed for user \"postgres\""),
        (FAILED, "local-admin", PG),
        || run_as(Some("postgres"), &local),
    );
    let tls = format!(
        "sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        gw.ca_file().display(),
        service.cert.display(),
        service.key.display()
    );
    cell(
        &gw,
        "hana with the svc-hana certificate",
        Ok("hana"),
        (SUCCEEDED, "services", PG),
        || {
            gateway::psql(
                Command::new("psql"),
                &gw.conninfo("hana", &tls),
                "",
                "SELECT current_user",
            )
        },
    );

    // The renamed opt-in still holds: Basic over plain HTTP, under the `api` rule the
    // upgrade put before the first rule for everyone.
    let event = cell(
        &gw,
        "demo, curl -u over plain HTTP",
        Ok("demo"),
        (SUCCEEDED, "api", HTTP),
        || {
            let url = format!("http://127.0.0.1:{}/whoami", gw.http_port);
            let mut cmd = Command::new("curl");
            cmd.args(["-u", &format!("demo:{FIXTURE_DEMO}"), &url]);
            let (body, status) = gateway::curl_reply(cmd).unwrap_or_else(|e| panic!("{e}"));
            whoami_reply(&body, &status)
        },
    );
    assert_eq!(event["username"], "demo", "{event}");
}

#[test]
fn token_rules_that_could_match_pgwire_do_not_start() {
    for method in [r#""bearer""#, r#"["api-key"]"#, r#"["bearer", "password"]"#] {
        let rules = format!("[[rule]]\nname = \"tokens\"\nmethod = {method}\n");
        match GatewayProcess::start(binary(), "10s", &rules) {
            Err(HarnessError::NotReady { output, .. }) => assert!(
                output.contains("rule `tokens`") && output.contains("protocols"),
                "method = {method}: {output}"
            ),
            other => panic!("method = {method} on every door started: {other:?}"),
        }
    }
    // Without pgwire, the same rule starts.
    let rules =
        "[[rule]]\nname = \"tokens\"\nprotocols = [\"http\", \"grpc\"]\nmethod = \"bearer\"\n";
    GatewayProcess::start(binary(), "10s", rules).unwrap_or_else(|e| panic!("{e}"));
}
