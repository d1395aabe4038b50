//! The Redis harness starts a real server that speaks RESP, and stops it on drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_tests::redis::Redis;

#[test]
fn a_server_starts_answers_and_stops_on_drop() {
    let redis = Redis::start().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(redis.command(&["PING"]).unwrap(), "+PONG");
    assert_eq!(
        redis.command(&["SET", "lockout:alice", "3"]).unwrap(),
        "+OK"
    );
    assert_eq!(redis.command(&["INCR", "lockout:alice"]).unwrap(), ":4");
    assert_eq!(redis.command(&["GET", "lockout:alice"]).unwrap(), "4");
    let pid = redis.pid().unwrap();
    drop(redis);
    assert!(!auth_tests::process_alive(pid), "stopped by PID on drop");
}
