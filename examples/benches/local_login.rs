//! Logging in on this machine over the Unix socket, the gateway against PostgreSQL 15 in
//! the same run, both with the same method on the same kind of socket:
//!
//! - `peer` (the kernel's peer credentials, mapped to the user): the gateway's default
//!   local administrator (`postgres`, mapped from this OS user by the default identity
//!   map, with the account stage) against PostgreSQL's `local all <me> peer`;
//! - `trust`: a `type = "local"` trust rule against PostgreSQL's `local ... trust`.
//!
//! For each: connect + authenticate + `SELECT 1` + close with tokio-postgres, 2,000 times
//! one after another (p50/p95/p99 and the ratio of medians), then `pgbench -C -c 8 -j 2
//! -T 5` (connections per second).
//!
//! Run: `cargo bench -p auth-examples --bench local_login`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use auth_tests::gateway::GatewayProcess;
use auth_tests::postgres::{Postgres, pgbench_connections};
use auth_tests::stats::percentile as pct;

const LOGINS: usize = 2_000;

/// Connect + `SELECT 1` + close, `LOGINS` times: sorted latencies.
async fn logins(conninfo: &str) -> Vec<Duration> {
    let mut all = Vec::with_capacity(LOGINS);
    for _ in 0..LOGINS {
        let started = Instant::now();
        let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("{conninfo}: {e}"));
        let driver = tokio::spawn(connection);
        client.simple_query("SELECT 1").await.unwrap();
        drop(client);
        driver.await.unwrap().unwrap();
        all.push(started.elapsed());
    }
    all.sort();
    all
}

fn pgbench_tps(conninfo: &str, script: &Path) -> f64 {
    pgbench_connections(conninfo, &[], 5, script)
        .unwrap_or_else(|e| panic!("{e}"))
        .tps
}

fn row(name: &str, sorted: &[Duration]) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<28} p50 {:>7.0} us  p95 {:>7.0} us  p99 {:>7.0} us",
        us(pct(sorted, 0.50)),
        us(pct(sorted, 0.95)),
        us(pct(sorted, 0.99))
    );
}

fn compare(method: &str, ours: &[Duration], theirs: &[Duration], tps: (f64, f64)) {
    row(&format!("gateway, {method}"), ours);
    row(&format!("PostgreSQL 15, {method}"), theirs);
    println!(
        "ratio of medians (PostgreSQL / gateway): {:.2}x; pgbench -C: gateway {:.0} tps, PostgreSQL {:.0} tps ({:.2}x)",
        pct(theirs, 0.5).as_secs_f64() / pct(ours, 0.5).as_secs_f64(),
        tps.0,
        tps.1,
        tps.0 / tps.1
    );
}

#[tokio::main]
async fn main() {
    let me = auth_core::local::SystemUsers
        .this_process()
        .unwrap()
        .expect("this OS user has a name");
    let script_dir = tempfile::tempdir().unwrap();
    let script = script_dir.path().join("select1.sql");
    std::fs::write(&script, "SELECT 1;\n").unwrap();

    // The gateway as a person first runs it (peer for `postgres`).
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gw = GatewayProcess::start_fresh(binary).unwrap_or_else(|e| panic!("{e}"));
    let socket = gw.socket_dir().display().to_string();
    let peer = format!(
        "host={socket} port={} user=postgres dbname=postgres",
        gw.port
    );

    // PostgreSQL with peer for this OS user and trust for `maint`, on its socket; its own
    // administrator (trusted) creates the roles.
    let hba_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(hba_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let hba = hba_dir.path().join("pg_hba.conf");
    std::fs::write(
        &hba,
        format!(
            "local all postgres trust\nlocal all maint trust\nlocal all {me} peer\n\
             host all all 127.0.0.1/32 scram-sha-256\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hba, std::fs::Permissions::from_mode(0o644)).unwrap();
    let hba_setting = hba.display().to_string();
    let pg = Postgres::start_with_settings("scram-sha-256", &[("hba_file", &hba_setting)])
        .unwrap_or_else(|e| panic!("{e}"));
    pg.psql(&format!("CREATE ROLE \"{me}\" LOGIN")).unwrap();
    pg.psql("CREATE ROLE maint LOGIN").unwrap();
    let pg_socket = pg.socket_dir().display().to_string();
    let pg_peer = format!(
        "host={pg_socket} port={} user={me} dbname=postgres",
        pg.port()
    );

    println!(
        "== peer over the Unix socket: connect + authenticate + SELECT 1 + close, {LOGINS} in a row"
    );
    let (ours, theirs) = (logins(&peer).await, logins(&pg_peer).await);
    let tps = (pgbench_tps(&peer, &script), pgbench_tps(&pg_peer, &script));
    compare("peer", &ours, &theirs, tps);

    // Trust: restart the gateway with a local trust rule for `maint`.
    drop(gw);
    let rules = "unix_socket_directory = \".\"\n\
        [[rule]]\nname = \"maint\"\ntype = \"local\"\nusers = [\"maint\"]\nmethod = \"trust\"\n";
    let gw = GatewayProcess::start(binary, "60s", rules).unwrap_or_else(|e| panic!("{e}"));
    let users = auth_password::Users::new(gw.wallet().unwrap());
    auth_core::account::Directory::new(users.store().clone())
        .update("maint", |r| r.system = true)
        .await
        .unwrap();
    let trust = format!(
        "host={} port={} user=maint dbname=maint",
        gw.socket_dir().display(),
        gw.port
    );
    let pg_trust = format!(
        "host={pg_socket} port={} user=maint dbname=postgres",
        pg.port()
    );
    println!();
    println!(
        "== trust over the Unix socket: connect + authenticate + SELECT 1 + close, {LOGINS} in a row"
    );
    let (ours, theirs) = (logins(&trust).await, logins(&pg_trust).await);
    let tps = (
        pgbench_tps(&trust, &script),
        pgbench_tps(&pg_trust, &script),
    );
    compare("trust", &ours, &theirs, tps);
}
