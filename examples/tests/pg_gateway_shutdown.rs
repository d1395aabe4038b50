//! A shutdown that drains: on SIGTERM the gateway stops accepting and lets a login in
//! progress finish (within the authentication timeout) before it exits; a second signal
//! exits at once. (The OAuth session closed and revoked on SIGTERM is in
//! `pg_gateway_oauth_password.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use auth_tests::gateway::{GatewayProcess, startup_packet};

const RULES: &str = r#"
[[rule]]
name = "scram"
method = "scram"
"#;

#[test]
fn a_login_in_progress_holds_the_drain_and_a_second_signal_exits_at_once() {
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let mut gw = GatewayProcess::start(binary, "60s", RULES).unwrap_or_else(|e| panic!("{e}"));
    // A client in the middle of its login: the gateway has asked for SASL.
    let mut client = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    client.write_all(&startup_packet("demo")).unwrap();
    let mut tag = [0u8; 1];
    client.read_exact(&mut tag).unwrap();
    assert_eq!(tag[0], b'R', "AuthenticationSASL");

    assert!(gw.process.signal("TERM"));
    // Stopped accepting: the port is closed, so a new client is refused at once.
    auth_tests::eventually(Duration::from_secs(10), || {
        match TcpStream::connect(("127.0.0.1", gw.port)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            other => Err(format!("still accepting: {other:?}")),
        }
    });
    assert!(
        gw.process.wait_exit(Duration::from_millis(500)).is_none(),
        "the login in progress holds the drain"
    );
    assert!(gw.process.signal("TERM"));
    let status = gw
        .process
        .wait_exit(Duration::from_secs(10))
        .expect("a second signal exits at once");
    assert_eq!(status.code(), Some(130), "{}", gw.process.output());
}
