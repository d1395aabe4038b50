//! The Redis harness starts real servers that speak RESP (plain, secured with TLS and an
//! ACL user, or a three-node cluster), stops and restarts them in place, and stops them on
//! drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Output;
use std::time::Duration;

use auth_tests::HarnessError;
use auth_tests::pki::run_ca;
use auth_tests::redis::{Redis, RedisCluster};

/// The value, or a panic with the harness's message (which names the install script when
/// a program is missing), not the `Debug` of the error.
fn ok<T>(result: Result<T, HarnessError>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn secured() -> Redis {
    ok(Redis::start_secured(ok(run_ca())))
}

/// The state letter in /proc/<pid>/stat (`S` sleeping, `T` stopped, ...).
fn process_state(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn a_server_starts_answers_and_stops_on_drop() {
    let redis = ok(Redis::start());
    assert_eq!(redis.command(&["PING"]).unwrap(), "+PONG");
    assert_eq!(
        redis.command(&["SET", "lockout:alice", "3"]).unwrap(),
        "+OK"
    );
    assert_eq!(redis.command(&["INCR", "lockout:alice"]).unwrap(), ":4");
    assert_eq!(redis.command(&["GET", "lockout:alice"]).unwrap(), "4");
    assert_eq!(redis.command(&["GET", "nobody"]).unwrap(), "$-1");
    assert!(redis.url().starts_with("redis://127.0.0.1:"));
    assert_eq!((redis.acl_user(), redis.acl_password()), (None, None));
    assert!(redis.ca_file().is_none());
    let pid = redis.pid().unwrap();
    drop(redis);
    assert!(!auth_tests::process_alive(pid), "stopped by PID on drop");
}

#[test]
fn a_secured_server_answers_the_acl_user_over_tls() {
    let redis = secured();
    assert_eq!(redis.url(), format!("rediss://127.0.0.1:{}", redis.port()));
    assert_eq!(redis.acl_user(), Some("gateway"));
    let password = redis.acl_password().unwrap();
    assert!(
        password.len() == 24 && password.chars().all(|c| c.is_ascii_alphanumeric()),
        "{password}"
    );
    let ca = std::fs::read_to_string(redis.ca_file().unwrap()).unwrap();
    assert_eq!(ca, run_ca().unwrap().pem());

    assert_eq!(redis.command(&["PING"]).unwrap(), "+PONG");
    assert_eq!(
        redis.command(&["SET", "session:1", "alice"]).unwrap(),
        "+OK"
    );
    assert_eq!(redis.command(&["GET", "session:1"]).unwrap(), "alice");
    assert_eq!(redis.command(&["ACL", "WHOAMI"]).unwrap(), "gateway");

    // A real client, redis-cli, verifies the certificate against the CA file.
    let out = ok(redis.cli()).arg("PING").output().unwrap();
    assert_eq!(text(&out).trim(), "PONG", "{}", text(&out));
}

#[test]
fn a_secured_server_refuses_plain_text() {
    let redis = secured();
    let out = std::process::Command::new(ok(auth_tests::redis::redis_cli()))
        .args(["-h", "127.0.0.1", "-p", &redis.port().to_string(), "PING"])
        .output()
        .unwrap();
    let said = text(&out);
    assert!(!out.status.success() && said.contains("Error"), "{said}");
    assert!(!said.contains("PONG"), "{said}");

    // Raw RESP gets no reply at all: the server closes the connection.
    let mut tcp = TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = tcp.write_all(b"*1\r\n$4\r\nPING\r\n");
    let mut reply = Vec::new();
    let _ = tcp.read_to_end(&mut reply);
    assert!(
        !String::from_utf8_lossy(&reply).contains("PONG"),
        "{reply:?}"
    );

    let log = auth_tests::eventually(Duration::from_secs(10), || {
        let log = redis.output();
        if log.contains("Error accepting a client connection") {
            Ok(log)
        } else {
            Err(format!("no TLS error in the server's log:\n{log}"))
        }
    });
    assert!(log.contains("wrong version number"), "{log}");
}

#[test]
fn a_secured_server_refuses_a_wrong_password_and_no_password() {
    let redis = secured();
    let out = ok(redis.cli())
        .env("REDISCLI_AUTH", "not-the-password")
        .arg("PING")
        .output()
        .unwrap();
    let said = text(&out);
    assert!(said.contains("WRONGPASS"), "{said}");
    assert!(!said.contains("PONG"), "{said}");

    // Over TLS but without AUTH: the default user is off.
    let out = ok(redis.cli())
        .env_remove("REDISCLI_AUTH")
        .args(["--user", "", "PING"])
        .output()
        .unwrap();
    let said = text(&out);
    assert!(said.contains("NOAUTH"), "{said}");

    let out = ok(redis.cli())
        .env("REDISCLI_AUTH", "anything")
        .args(["--user", "default", "PING"])
        .output()
        .unwrap();
    let said = text(&out);
    assert!(
        said.contains("WRONGPASS"),
        "the default user is off: {said}"
    );
}

fn stop_and_restart(mut redis: Redis) {
    let port = redis.port();
    let pid = redis.pid().unwrap();
    assert_eq!(redis.command(&["SET", "k", "v"]).unwrap(), "+OK");

    redis.stop();
    assert!(!auth_tests::process_alive(pid), "stopped by PID");
    assert_eq!(redis.pid(), None);
    let err = redis.command(&["PING"]).unwrap_err().to_string();
    assert!(err.contains("connect"), "a stopped server refuses: {err}");

    redis.restart().unwrap();
    assert_eq!(redis.port(), port, "same port");
    assert_ne!(redis.pid(), Some(pid));
    assert_eq!(redis.command(&["PING"]).unwrap(), "+PONG");
    assert_eq!(
        redis.command(&["GET", "k"]).unwrap(),
        "$-1",
        "nothing persisted"
    );

    // Restarting a running server works too.
    redis.restart().unwrap();
    assert_eq!(redis.command(&["PING"]).unwrap(), "+PONG");
}

#[test]
fn a_stopped_server_restarts_on_the_same_port() {
    stop_and_restart(ok(Redis::start()));
    stop_and_restart(secured());
}

#[test]
fn a_paused_server_accepts_but_does_not_answer_until_resumed() {
    let redis = secured();
    let pid = redis.pid().unwrap();
    redis.pause().unwrap();
    auth_tests::eventually(Duration::from_secs(5), || {
        match process_state(pid).as_str() {
            "T" => Ok(()),
            s => Err(format!("state {s}")),
        }
    });
    // The kernel still completes the TCP handshake: a hang, not a refusal.
    let mut tcp = TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 1];
    let err = tcp.read(&mut buf).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );

    redis.resume().unwrap();
    assert_eq!(redis.command(&["PING"]).unwrap(), "+PONG");
}

#[test]
fn debug_does_not_show_the_password() {
    let redis = secured();
    let password = redis.acl_password().unwrap().to_owned();
    let shown = format!("{redis:?}");
    assert!(!shown.contains(&password), "{shown}");
    assert!(
        shown.contains("redacted") && shown.contains("rediss://"),
        "{shown}"
    );
}

fn cluster_works(cluster: &RedisCluster, scheme: &str) {
    let urls = cluster.urls();
    assert_eq!(urls.len(), 3);
    assert!(urls.iter().all(|u| u.starts_with(scheme)), "{urls:?}");
    assert_eq!(cluster.pids().len(), 3);
    let info = cluster.command(&["CLUSTER", "INFO"]).unwrap();
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_known_nodes:3"), "{info}");

    // `a` and `b` live in different slots, on different nodes: the first node owns the
    // slots of `b` only, so `a` is reached through a MOVED redirect.
    let slot_a = cluster.command(&["CLUSTER", "KEYSLOT", "a"]).unwrap();
    let slot_b = cluster.command(&["CLUSTER", "KEYSLOT", "b"]).unwrap();
    assert_ne!(slot_a, slot_b);
    assert_eq!(cluster.command(&["SET", "a", "1"]).unwrap(), "+OK");
    assert_eq!(cluster.command(&["SET", "b", "2"]).unwrap(), "+OK");
    assert_eq!(cluster.command(&["GET", "a"]).unwrap(), "1");
    assert_eq!(cluster.command(&["GET", "b"]).unwrap(), "2");

    // redis-cli -c sees the same data.
    let out = ok(cluster.cli()).args(["GET", "a"]).output().unwrap();
    assert_eq!(text(&out).trim(), "1", "{}", text(&out));
}

fn stopped_on_drop(cluster: RedisCluster) {
    let pids = cluster.pids();
    drop(cluster);
    for pid in pids {
        assert!(
            !auth_tests::process_alive(pid),
            "node {pid} stopped on drop"
        );
    }
}

#[test]
fn a_plain_cluster_reaches_ok_and_follows_redirects() {
    let cluster = ok(RedisCluster::start(None));
    assert_eq!(cluster.acl_user(), None);
    cluster_works(&cluster, "redis://");
    stopped_on_drop(cluster);
}

#[test]
fn a_secured_cluster_reaches_ok_and_follows_redirects_over_tls() {
    let cluster = ok(RedisCluster::start(Some(ok(run_ca()))));
    assert_eq!(cluster.acl_user(), Some("gateway"));
    assert!(cluster.acl_password().is_some() && cluster.ca_file().is_some());
    cluster_works(&cluster, "rediss://");
    let shown = format!("{cluster:?}");
    assert!(!shown.contains(cluster.acl_password().unwrap()), "{shown}");
    stopped_on_drop(cluster);
}
