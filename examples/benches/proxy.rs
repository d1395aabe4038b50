//! The gateway and PostgreSQL 15 behind the same reverse proxy, in the same run:
//! connection + SCRAM authentication rate with `pgbench -C` (8 clients, 2 threads, 10 s,
//! `SELECT 1`, no TLS) through HAProxy in TCP mode, which sends the gateway a PROXY v2
//! header (`send-proxy-v2`; the gateway trusts 127.0.0.1) and PostgreSQL nothing (it does
//! not speak the PROXY protocol): tps, average connection time, ratio. The same pgbench
//! straight to each follows, for the proxy's share.
//!
//! Behind the proxy the gateway's client is not loopback (whatever the header says), so
//! the rate limiter counts every login; straight from 127.0.0.1 it is exempt.
//!
//! Run: `cargo bench -p auth-examples --bench proxy`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use auth_tests::cpu_seconds;
use auth_tests::gateway::GatewayProcess;
use auth_tests::haproxy::{self, Frontend, HaProxy, ProxyHeader};
use auth_tests::postgres::{PgBench, Postgres, pgbench_connections};

const RULES: &str =
    "trusted_proxies = [\"127.0.0.1\"]\n\n[[rule]]\nname = \"scram\"\nmethod = \"scram\"\n";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const SECONDS: u32 = 10;

/// pgbench -C against `conninfo` with `password`, and the server CPU (process `pid`, with
/// its reaped children when `children`) per connection in ms.
fn run(conninfo: &str, password: &str, script: &Path, pid: u32, children: bool) -> (PgBench, f64) {
    let cpu0 = cpu_seconds(pid, children);
    let bench = pgbench_connections(
        conninfo,
        &[("PGPASSWORD".to_owned(), password.to_owned())],
        SECONDS,
        script,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cpu = (cpu_seconds(pid, children) - cpu0) / bench.connections * 1000.0;
    (bench, cpu)
}

fn rows(ours: (PgBench, f64), theirs: (PgBench, f64)) {
    let ((ours, ours_cpu), (theirs, theirs_cpu)) = (ours, theirs);
    println!(
        "gateway:       {:>8.1} tps, average connection time {:.3} ms, server CPU {ours_cpu:.2} ms/connection",
        ours.tps, ours.connect_ms
    );
    println!(
        "PostgreSQL 15: {:>8.1} tps, average connection time {:.3} ms, server CPU {theirs_cpu:.2} ms/connection",
        theirs.tps, theirs.connect_ms
    );
    println!("ratio: {:.1}x the connection rate", ours.tps / theirs.tps);
}

fn main() {
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gw = GatewayProcess::start(binary, "60s", RULES).unwrap_or_else(|e| panic!("{e}"));
    let pg = Postgres::start_with_host_auth("scram-sha-256").unwrap_or_else(|e| panic!("{e}"));
    pg.psql("CREATE ROLE bench LOGIN PASSWORD 'bench password'")
        .unwrap();
    pg.psql("CREATE DATABASE bench OWNER bench").unwrap();
    let proxy = HaProxy::start(
        &[LOOPBACK],
        &[
            Frontend::Tcp {
                backend: SocketAddr::new(LOOPBACK, gw.port),
                header: ProxyHeader::V2,
            },
            Frontend::Tcp {
                backend: SocketAddr::new(LOOPBACK, pg.port()),
                header: ProxyHeader::None,
            },
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("select1.sql");
    std::fs::write(&script, "SELECT 1;\n").unwrap();
    let gw_pid = gw.process.pid().unwrap();
    let postmaster = pg.pid().unwrap();
    let gateway_at =
        |port: u16| format!("host=127.0.0.1 port={port} user=demo dbname=demo sslmode=disable");
    let postgres_at =
        |port: u16| format!("host=127.0.0.1 port={port} user=bench dbname=bench sslmode=disable");

    println!(
        "== connection + SCRAM authentication through HAProxy {} (TCP mode; PROXY v2 to the gateway, \
         none to PostgreSQL): pgbench -C -c 8 -j 2 -T {SECONDS}, SELECT 1, no TLS",
        haproxy::version().unwrap_or_else(|e| panic!("{e}"))
    );
    let ours = run(
        &gateway_at(proxy.port(0)),
        &gw.demo_password,
        &script,
        gw_pid,
        false,
    );
    let theirs = run(
        &postgres_at(proxy.port(1)),
        "bench password",
        &script,
        postmaster,
        true,
    );
    rows(ours, theirs);
    let proxied_logins = count_proxied(&gw);
    println!(
        "gateway audit: {proxied_logins} successful logins name the proxy (of {:.0} pgbench connections)",
        ours.0.connections
    );

    println!("\n== the same, straight to each (no proxy)");
    let ours_direct = run(
        &gateway_at(gw.port),
        &gw.demo_password,
        &script,
        gw_pid,
        false,
    );
    let theirs_direct = run(
        &postgres_at(pg.port()),
        "bench password",
        &script,
        postmaster,
        true,
    );
    rows(ours_direct, theirs_direct);
    println!(
        "the proxy's cost: gateway {:.0}% of its direct rate, PostgreSQL {:.0}%",
        100.0 * ours.0.tps / ours_direct.0.tps,
        100.0 * theirs.0.tps / theirs_direct.0.tps
    );
    drop(proxy);
}

/// Successful logins in the gateway's audit log that came through the proxy.
fn count_proxied(gw: &GatewayProcess) -> usize {
    gw.audit("attempt_succeeded")
        .iter()
        .filter(|e| e["proxy"].is_string())
        .count()
}
