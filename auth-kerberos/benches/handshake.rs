//! In-process Kerberos handshake latency with a cached service ticket: MIT's initiator
//! (libgssapi ClientCtx) against our `GssAuthenticator`, p50/p95/p99 of the acceptor's
//! work and of the whole handshake. The realm's settings are process-wide environment
//! variables, so the bench runs itself as a child with them set.
//!
//! Run: `cargo bench -p auth-kerberos --bench handshake`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use auth_core::{Attempt, Authenticator, ConnectionInfo, Credential, Protocol};
use auth_kerberos::{GssAuthenticator, PrincipalMapper};
use auth_tests::kdc::Kdc;
use auth_tests::stats::percentile as pct;
use common::Initiator;
use libgssapi::context::{ClientCtx, CtxFlags};
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_NT_HOSTBASED_SERVICE};

fn row(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name:<40} {:>10.1?} {:>10.1?} {:>10.1?}",
        pct(&v, 0.5),
        pct(&v, 0.95),
        pct(&v, 0.99)
    );
}

fn child(keytab: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let auth = GssAuthenticator::new(Some(keytab.into()), PrincipalMapper::default());
        let (mut accept, mut full) = (Vec::new(), Vec::new());
        for i in 0..1200 {
            let started = Instant::now();
            let target = Name::new(b"postgres@localhost", Some(GSS_NT_HOSTBASED_SERVICE)).unwrap();
            let mut client = ClientCtx::new(
                None,
                target,
                CtxFlags::GSS_C_MUTUAL_FLAG,
                Some(GSS_MECH_KRB5),
            );
            let first = client.step(None, None).unwrap().unwrap().to_vec();
            let mut attempt = Attempt::new(
                ConnectionInfo::tcp(Protocol::Postgres, "127.0.0.1:1".parse().unwrap()),
                Credential::GssToken(first),
            )
            .with_conversation(Box::new(Initiator(client)));
            let server = Instant::now();
            let out = auth.authenticate(&mut attempt).await;
            assert!(out.is_authenticated(), "{out:?}");
            // The first round fetches the service ticket from the KDC; measure cached ones.
            if i >= 200 {
                accept.push(server.elapsed());
                full.push(started.elapsed());
            }
        }
        println!("{:<40} {:>10} {:>10} {:>10}", "", "p50", "p95", "p99");
        row("acceptor (GssAuthenticator)", accept);
        row("whole handshake (initiator + acceptor)", full);
    });
}

fn main() {
    if let Ok(keytab) = std::env::var("AUTH_KERBEROS_BENCH_KEYTAB") {
        child(&keytab);
        return;
    }
    let kdc = Kdc::start().unwrap_or_else(|e| panic!("{e}"));
    kdc.add_user("alice", "alice-kerberos-password").unwrap();
    kdc.add_service("postgres/localhost", None).unwrap();
    kdc.kinit("alice", "alice-kerberos-password", None, None)
        .unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .envs(kdc.env())
        .env("AUTH_KERBEROS_BENCH_KEYTAB", kdc.keytab())
        .status()
        .unwrap();
    assert!(status.success());
}
