//! The PostgreSQL harness starts a real server, answers queries and stops by PID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_tests::postgres::Postgres;

#[test]
fn a_cluster_starts_answers_psql_and_stops() {
    let mut pg = Postgres::start().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pg.psql("SELECT 1 + 1").unwrap(), "2");
    let version = pg.psql("SHOW server_version_num").unwrap();
    assert!(version.parse::<u32>().unwrap() >= 130_000, "{version}");
    assert_eq!(pg.psql("SHOW listen_addresses").unwrap(), "127.0.0.1");
    pg.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('x')")
        .unwrap();
    assert_eq!(pg.psql("SELECT count(*) FROM t").unwrap(), "1");

    let pid = pg.pid().expect("postmaster.pid");
    assert!(auth_tests::process_alive(pid));
    pg.stop();
    assert!(!auth_tests::process_alive(pid), "stopped");
    assert!(pg.psql("SELECT 1").is_err(), "nothing answers after stop");
}
