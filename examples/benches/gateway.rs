//! The gateway against the real system users would otherwise pick, in the same run:
//!
//! 1. connection + SCRAM authentication rate with `pgbench -C` (8 clients, 2 threads,
//!    10 s, `SELECT 1`) against the gateway and against PostgreSQL 15 with
//!    `scram-sha-256` in pg_hba.conf: tps, average connection time, ratio;
//! 2. 10,000 concurrent connections authenticating with SCRAM (tokio-postgres): success
//!    rate, connect latency p50/p95/p99, and the gateway's peak RSS.
//!
//! Run: `cargo bench -p auth-examples --bench gateway`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use auth_tests::cpu_seconds;
use auth_tests::gateway::GatewayProcess;
use auth_tests::kdc::{Kdc, REALM};
use auth_tests::postgres::{PgBench, Postgres, pgbench_connections};
use auth_tests::stats::percentile as pct;

const RULES: &str = "[[rule]]\nname = \"scram\"\nmethod = \"scram\"\n";

fn pgbench(conninfo: &str, password: &str, script: &Path) -> PgBench {
    pgbench_with(
        conninfo,
        &[("PGPASSWORD".to_owned(), password.to_owned())],
        script,
    )
}

fn pgbench_with(conninfo: &str, env: &[(String, String)], script: &Path) -> PgBench {
    pgbench_connections(conninfo, env, 10, script).unwrap_or_else(|e| panic!("{e}"))
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gw = GatewayProcess::start(binary, "60s", RULES).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("select1.sql");
    std::fs::write(&script, "SELECT 1;\n").unwrap();

    println!("== connection + SCRAM authentication: pgbench -C -c 8 -j 2 -T 10, SELECT 1, no TLS");
    let gw_pid = gw.process.pid().unwrap();
    let cpu0 = cpu_seconds(gw_pid, false);
    let ours = pgbench(
        &gw.conninfo("demo", "sslmode=disable"),
        &gw.demo_password,
        &script,
    );
    let ours_cpu = (cpu_seconds(gw_pid, false) - cpu0) / ours.connections * 1000.0;
    let pg = Postgres::start_with_host_auth("scram-sha-256").unwrap_or_else(|e| panic!("{e}"));
    pg.psql("CREATE ROLE bench LOGIN PASSWORD 'bench password'")
        .unwrap();
    pg.psql("CREATE DATABASE bench OWNER bench").unwrap();
    let conninfo = format!(
        "host=127.0.0.1 port={} user=bench dbname=bench sslmode=disable",
        pg.port()
    );
    let postmaster = pg.pid().unwrap();
    let cpu0 = cpu_seconds(postmaster, true);
    let theirs = pgbench(&conninfo, "bench password", &script);
    let theirs_cpu = (cpu_seconds(postmaster, true) - cpu0) / theirs.connections * 1000.0;
    println!(
        "gateway:       {:>8.1} tps, average connection time {:.3} ms",
        ours.tps, ours.connect_ms
    );
    println!(
        "PostgreSQL 15: {:>8.1} tps, average connection time {:.3} ms",
        theirs.tps, theirs.connect_ms
    );
    println!(
        "ratio: {:.1}x the connection rate (target >= 5x)",
        ours.tps / theirs.tps
    );
    println!(
        "server CPU per connection: gateway {ours_cpu:.2} ms, PostgreSQL {theirs_cpu:.2} ms ({:.1}x less); \
         the rest is the client (libpq's PBKDF2 and pgbench), the same for both",
        theirs_cpu / ours_cpu
    );
    drop(pg);

    kerberos(binary, &script);

    const CONNECTIONS: usize = 10_000;
    println!(
        "\n== {CONNECTIONS} concurrent connections authenticating with SCRAM (tokio-postgres)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rss_before = peak_rss_mib(gw.process.pid().unwrap());
    let (latencies, failures, wall) = rt.block_on(async {
        let conninfo = Arc::new(format!(
            "{} password={} connect_timeout=60",
            gw.conninfo("demo", "sslmode=disable"),
            gw.demo_password
        ));
        let all_connected = Arc::new(tokio::sync::Barrier::new(CONNECTIONS + 1));
        let started = Instant::now();
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let (conninfo, barrier) = (conninfo.clone(), all_connected.clone());
                tokio::spawn(async move {
                    let t = Instant::now();
                    let result = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await;
                    let took = t.elapsed();
                    // Hold every connection open until all have tried.
                    let held =
                        result.map(|(client, connection)| (client, tokio::spawn(connection)));
                    barrier.wait().await;
                    (took, held.is_ok())
                })
            })
            .collect();
        all_connected.wait().await;
        let wall = started.elapsed();
        let mut latencies = Vec::with_capacity(CONNECTIONS);
        let mut failures = 0;
        for t in tasks {
            let (took, ok) = t.await.unwrap();
            latencies.push(took);
            failures += usize::from(!ok);
        }
        latencies.sort();
        (latencies, failures, wall)
    });
    let peak = peak_rss_mib(gw.process.pid().unwrap());
    println!(
        "succeeded {}/{CONNECTIONS} ({:.2}%) in {wall:.2?}",
        CONNECTIONS - failures,
        100.0 * (CONNECTIONS - failures) as f64 / CONNECTIONS as f64
    );
    println!(
        "connect latency p50 {:.1?} p95 {:.1?} p99 {:.1?}",
        pct(&latencies, 0.5),
        pct(&latencies, 0.95),
        pct(&latencies, 0.99)
    );
    println!("gateway peak RSS {peak:.0} MiB (before the burst {rss_before:.0} MiB)");
}

/// pgbench -C with GSSAPI against the gateway and PostgreSQL 15 (`gss` in pg_hba.conf),
/// both accepting tickets from the same throwaway realm.
fn kerberos(binary: &Path, script: &Path) {
    println!(
        "\n== connection + GSSAPI authentication: pgbench -C -c 8 -j 2 -T 10, SELECT 1, no encryption"
    );
    let kdc = Kdc::start().unwrap_or_else(|e| panic!("{e}"));
    kdc.add_user("alice", "alice-kerberos-password").unwrap();
    kdc.add_service("postgres/localhost", None).unwrap();
    kdc.kinit("alice", "alice-kerberos-password", None, None)
        .unwrap();
    let rules = format!(
        "[[rule]]\nname = \"kerberos\"\nmethod = \"gss\"\n[kerberos]\nkeytab = \"{}\"\n",
        kdc.keytab().display()
    );
    let gw = GatewayProcess::start_with_env(binary, "60s", &rules, &kdc.env())
        .unwrap_or_else(|e| panic!("{e}"));
    // The gateway's users: alice exists (the demo set-up made `demo`; add alice's record).
    add_user(&gw, "alice");
    let env = kdc.env();
    let gw_pid = gw.process.pid().unwrap();
    let cpu0 = cpu_seconds(gw_pid, false);
    let conninfo = format!(
        "host=localhost port={} user=alice dbname=alice gssencmode=disable sslmode=disable",
        gw.port
    );
    let ours = pgbench_with(&conninfo, &env, script);
    let ours_cpu = (cpu_seconds(gw_pid, false) - cpu0) / ours.connections * 1000.0;

    // PostgreSQL reads the same keytab (a copy it may read) and maps nothing: the role is
    // the full principal (include_realm defaults to 1).
    let dir = tempfile::tempdir().unwrap();
    let keytab = dir.path().join("pg.keytab");
    std::fs::copy(kdc.keytab(), &keytab).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&keytab, std::fs::Permissions::from_mode(0o644)).unwrap();
    let pg =
        Postgres::start_with_settings("gss", &[("krb_server_keyfile", keytab.to_str().unwrap())])
            .unwrap_or_else(|e| panic!("{e}"));
    pg.psql(&format!("CREATE ROLE \"alice@{REALM}\" LOGIN"))
        .unwrap();
    let conninfo = format!(
        "host=localhost port={} user=alice@{REALM} dbname=postgres gssencmode=disable sslmode=disable",
        pg.port()
    );
    let postmaster = pg.pid().unwrap();
    let cpu0 = cpu_seconds(postmaster, true);
    let theirs = pgbench_with(&conninfo, &env, script);
    let theirs_cpu = (cpu_seconds(postmaster, true) - cpu0) / theirs.connections * 1000.0;
    println!(
        "gateway:       {:>8.1} tps, average connection time {:.3} ms",
        ours.tps, ours.connect_ms
    );
    println!(
        "PostgreSQL 15: {:>8.1} tps, average connection time {:.3} ms",
        theirs.tps, theirs.connect_ms
    );
    println!(
        "ratio: {:.1}x the connection rate (target >= 3x)",
        ours.tps / theirs.tps
    );
    println!(
        "server CPU per connection: gateway {ours_cpu:.2} ms, PostgreSQL {theirs_cpu:.2} ms ({:.1}x less)",
        theirs_cpu / ours_cpu
    );
}

fn add_user(gw: &GatewayProcess, name: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let wallet = gw.wallet().unwrap_or_else(|e| panic!("{e}"));
        auth_password::Users::new(wallet)
            .put(
                name,
                &auth_password::UserRecord::default(),
                auth_core::Precondition::Absent,
            )
            .await
            .unwrap();
    });
}
