//! SEC-2, SEC-3, ADAPT-1 end to end against the real gateway: no client input panics a
//! task (frame lengths below 4 or over the caps at every stage end with FATAL 08P01),
//! unauthenticated connections are capped in all and per address (FATAL 53300, freed when
//! a connection closes), running out of file descriptors does not spin, and SCRAM refuses
//! an authorization identity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use auth_tests::cpu_seconds;
use auth_tests::gateway::{self, GatewayProcess, startup_packet};
use auth_tests::netns::TestHost;

const RULES: &str = "[[rule]]\nname = \"scram\"\nmethod = \"scram\"\n";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pg-gateway"))
}

/// A gateway whose `gateway.toml` starts with `settings` (top-level keys).
fn gateway(settings: &str) -> GatewayProcess {
    GatewayProcess::start(binary(), "60s", &format!("{settings}\n{RULES}"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A client speaking the protocol by hand.
struct Raw(TcpStream);

impl Raw {
    fn connect(port: u16) -> Self {
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self(tcp)
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).unwrap();
    }

    /// The next backend message (type, body), or `None` at end of stream.
    fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        self.0.read_exact(&mut head).ok()?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        self.0.read_exact(&mut body).ok()?;
        Some((head[0], body))
    }

    /// The SQLSTATE of the ErrorResponse that must come next.
    fn error_code(&mut self) -> String {
        let (kind, body) = self.next().expect("an ErrorResponse");
        assert_eq!(kind, b'E', "expected an ErrorResponse");
        body.split(|b| *b == 0)
            .find_map(|f| f.strip_prefix(b"C"))
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap()
    }

    /// Sends the startup packet for `demo` and reads AuthenticationSASL.
    fn started(port: u16) -> Self {
        let mut raw = Self::connect(port);
        raw.send(&startup_packet("demo"));
        let (kind, body) = raw.next().unwrap();
        assert_eq!((kind, &body[..4]), (b'R', &10u32.to_be_bytes()[..]));
        raw
    }

    /// As [`Raw::started`], then a SCRAM client-first, reading AuthenticationSASLContinue.
    fn in_sasl(port: u16) -> Self {
        let mut raw = Self::started(port);
        raw.send(&sasl_initial(b"n,,n=,r=abcdefghijklmnop"));
        let (kind, body) = raw.next().unwrap();
        assert_eq!((kind, &body[..4]), (b'R', &11u32.to_be_bytes()[..]));
        raw
    }
}

fn sasl_initial(client_first: &[u8]) -> Vec<u8> {
    gateway::sasl_initial_response("SCRAM-SHA-256", client_first)
}

fn psql(gw: &GatewayProcess, password: &str) -> Result<String, String> {
    psql_at(Command::new("psql"), gw, password)
}

fn psql_at(cmd: Command, gw: &GatewayProcess, password: &str) -> Result<String, String> {
    let conninfo = gw.conninfo("demo", "sslmode=disable");
    gateway::psql(cmd, &conninfo, password, "SELECT current_user")
}

/// Retries `f` for at most 20 s (a closed connection frees its place when the server
/// notices).
fn eventually(f: impl FnMut() -> Result<String, String>) -> String {
    auth_tests::eventually(Duration::from_secs(20), f)
}

const TOO_MANY: &str = "sorry, too many clients already";

#[test]
fn short_and_oversized_frames_at_every_stage_end_with_08p01_and_panic_nothing() {
    let gw = gateway("");
    // The startup packet: too short, too long.
    for header in [2u32, 7, 10_005, u32::MAX] {
        let mut raw = Raw::connect(gw.port);
        raw.send(&header.to_be_bytes());
        raw.send(&196_608u32.to_be_bytes());
        assert_eq!(raw.error_code(), "08P01", "startup length {header}");
    }
    let oversized = {
        let mut f = b"p".to_vec();
        f.extend_from_slice(&100_000u32.to_be_bytes());
        f
    };
    let frames: [&[u8]; 4] = [b"p\0\0\0\0", b"p\0\0\0\x03", b"d\0\0\0\x02", &oversized];
    for frame in frames {
        // After the startup packet, and in the middle of the SCRAM exchange.
        for mut raw in [Raw::started(gw.port), Raw::in_sasl(gw.port)] {
            raw.send(frame);
            assert_eq!(raw.error_code(), "08P01", "frame {frame:?}");
            let after = raw.next();
            assert!(after.is_none(), "the connection ends: {after:?}");
        }
    }
    // Found by fuzzing: a startup packet whose parameters end before its length does (the
    // rest would be decoded as a frame of length 0), and a message other than a password
    // before authentication (pgwire would decode a Bind).
    let mut packet = startup_packet("demo");
    packet.extend_from_slice(b"p\0\0\0\0");
    let len = u32::try_from(packet.len()).unwrap();
    packet[..4].copy_from_slice(&len.to_be_bytes());
    let mut raw = Raw::connect(gw.port);
    raw.send(&packet);
    assert_eq!(raw.error_code(), "08P01", "startup layout");
    let mut raw = Raw::started(gw.port);
    raw.send(b"B\0\0\0\x08\0\0\xff\xff");
    assert_eq!(raw.error_code(), "08P01", "Bind before authentication");
    // SASLInitialResponse bodies that panicked pgwire's decoder (found by fuzzing): a
    // GSS token where SASL was expected, a negative and an oversized data length.
    for body in [
        &b"\x60\x82\x02\x00\x06\x09\x06\x09"[..],
        b"SCRAM-SHA-256\0\xff\xff\xff\xfe",
        b"SCRAM-SHA-256\0\x00\x10\x00\x00abc",
        b"SCRAM-SHA-256\0\x00",
    ] {
        let mut raw = Raw::started(gw.port);
        let mut frame = b"p".to_vec();
        frame.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
        frame.extend_from_slice(body);
        raw.send(&frame);
        assert_eq!(raw.error_code(), "08P01", "body {body:?}");
    }
    assert_eq!(psql(&gw, &gw.demo_password).unwrap(), "demo");
    let output = gw.process.output();
    assert!(!output.contains("panicked"), "{output}");
}

#[test]
fn scram_refuses_an_authorization_identity_even_the_users_own() {
    let gw = gateway("");
    for client_first in [
        &b"n,a=demo,n=,r=abcdefghijklmnop"[..],
        b"n,a=admin,n=,r=abc",
    ] {
        let mut raw = Raw::started(gw.port);
        raw.send(&sasl_initial(client_first));
        assert_eq!(raw.error_code(), "08P01");
    }
    gw.flush_audit();
    let audit = std::fs::read_to_string(gw.data.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("authorization identity is not supported"),
        "{audit}"
    );
}

/// Starts `preauth.py hold` from `host`: `count` connections the gateway has taken (each
/// SSLRequest answered), held until the returned child's stdin closes.
fn hold(host: &TestHost, gw: &GatewayProcess, count: usize) -> std::process::Child {
    let mut holder = gateway::preauth_client(host)
        .unwrap_or_else(|e| panic!("{e}"))
        .args([
            "hold",
            &gw.ip.to_string(),
            &gw.port.to_string(),
            &count.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("held {count}"));
    holder
}

fn two_hosts() -> (TestHost, TestHost) {
    let host = || TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    (host(), host())
}

fn gateway_on(host: &TestHost, settings: &str) -> GatewayProcess {
    GatewayProcess::start_at(
        binary(),
        IpAddr::V4(host.gateway),
        "60s",
        &format!("{settings}\n{RULES}"),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_unauthenticated_connection_cap_answers_53300_and_frees_up() {
    let (holder_host, client) = two_hosts();
    let gw = gateway_on(&holder_host, "max_unauthenticated_connections = 4");
    let mut holder = hold(&holder_host, &gw, 4);
    let demo = &gw.demo_password;
    let refused = psql_at(client.command("psql"), &gw, demo).unwrap_err();
    assert!(refused.contains(TOO_MANY), "{refused}");
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert_eq!(
        eventually(|| psql_at(client.command("psql"), &gw, demo)),
        "demo"
    );
}

#[test]
fn the_per_address_cap_holds_one_host_back_and_not_the_others() {
    let (host, other) = two_hosts();
    let gw = gateway_on(&host, "max_unauthenticated_per_address = 3");
    let mut holder = hold(&host, &gw, 3);
    let demo = &gw.demo_password;
    let refused = psql_at(host.command("psql"), &gw, demo).unwrap_err();
    assert!(refused.contains(TOO_MANY), "{refused}");
    assert_eq!(psql_at(other.command("psql"), &gw, demo).unwrap(), "demo");
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert_eq!(
        eventually(|| psql_at(host.command("psql"), &gw, demo)),
        "demo"
    );
}

#[test]
fn running_out_of_file_descriptors_backs_off_instead_of_spinning() {
    let gw = GatewayProcess::start_wrapped(
        &["prlimit", "--nofile=64:64"],
        binary(),
        IpAddr::from([127, 0, 0, 1]),
        "60s",
        RULES,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let pid = gw.process.pid().unwrap();
    // More connections than the process may hold: the rest wait in the listen queue, and
    // every accept fails with EMFILE until some close.
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(("127.0.0.1", gw.port)).unwrap())
        .collect();
    let before = cpu_seconds(pid, false);
    let window = Duration::from_secs(2);
    std::thread::sleep(window);
    let used = cpu_seconds(pid, false) - before;
    assert!(
        used < 0.05 * window.as_secs_f64(),
        "{used:.2} s of CPU in {window:?}: accept errors are retried in a loop"
    );
    drop(flood);
    assert_eq!(eventually(|| psql(&gw, &gw.demo_password)), "demo");
}
