//! The revocation check on the bearer hot path and the propagation between instances, in
//! the same run:
//!
//! 1. `is_revoked` of a token nobody revoked, with 10,000 revocations held: the local
//!    replica of a Redis list (`ReplicatedRevocations`), `MemoryRevocations` alone (the
//!    floor), and a Redis round trip per check (`RedisRevocations`); ns p50/p95/p99
//!    (target for the replica: <= 100 ns at p50);
//! 2. the delay from a revocation at one replica until another replica refuses the
//!    token, p50/p99 over 1,000 revocations.
//!
//! Redis 7 on loopback with TLS and an ACL user. Run:
//! `cargo bench -p auth-examples --bench revocation_check`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::time::{Duration, Instant, SystemTime};

use auth_core::MemoryRevocations;
use auth_core::revocation::{Revocations, TokenFacts, TokenId};
use auth_redis::{RedisOptions, RedisRevocations};
use auth_tests::pki::run_ca;
use auth_tests::redis::Redis;
use auth_tests::stats::p50_p95_p99;
use secrecy::SecretString;

const DAY: Duration = Duration::from_secs(86_400);

/// ns per check, each sample the mean of a batch of 64 checks.
async fn per_check(store: &dyn Revocations, facts: &TokenFacts<'_>, samples: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        for _ in 0..64 {
            assert!(!store.is_revoked(facts).await.unwrap());
        }
        out.push(started.elapsed().as_nanos() as f64 / 64.0);
    }
    out
}

async fn run(redis: &Redis) {
    let options = RedisOptions::new(&redis.url())
        .unwrap()
        .with_ca_pem(std::fs::read(redis.ca_file().unwrap()).unwrap())
        .with_user(
            redis.acl_user().unwrap(),
            SecretString::from(redis.acl_password().unwrap().to_owned()),
        )
        .with_key_prefix("bench-rv");
    let remote = RedisRevocations::connect(options.clone(), DAY)
        .await
        .unwrap();
    let now = SystemTime::now();
    let floor = MemoryRevocations::new(DAY);
    for i in 0..10_000 {
        let id = TokenId::Jti(format!("revoked-{i}"));
        remote.revoke_token(&id, now + DAY).await.unwrap();
        floor.revoke_token(&id, now + DAY).await.unwrap();
    }
    let replica = remote.replica(Duration::from_secs(1)).await.unwrap();
    let other = RedisRevocations::connect(options, DAY)
        .await
        .unwrap()
        .replica(Duration::from_secs(1))
        .await
        .unwrap();
    let facts = TokenFacts {
        id: TokenId::Jti("a-valid-token".into()),
        user: Some("alice"),
        grant: None,
        issued_at: Some(now),
    };
    println!("== is_revoked of a token nobody revoked, 10,000 revocations held (ns per check)");
    let _ = per_check(&replica, &facts, 1000).await;
    let mut r = per_check(&replica, &facts, 20_000).await;
    let mut m = per_check(&floor, &facts, 20_000).await;
    let mut rt = Vec::new();
    for _ in 0..2000 {
        let started = Instant::now();
        assert!(!remote.is_revoked(&facts).await.unwrap());
        rt.push(started.elapsed().as_nanos() as f64);
    }
    let (r50, r95, r99) = p50_p95_p99(&mut r);
    let (m50, m95, m99) = p50_p95_p99(&mut m);
    let (t50, t95, t99) = p50_p95_p99(&mut rt);
    println!(
        "local replica (ReplicatedRevocations): p50 {r50:>9.0}  p95 {r95:>9.0}  p99 {r99:>9.0}  (target p50 <= 100)"
    );
    println!(
        "MemoryRevocations alone (the floor):   p50 {m50:>9.0}  p95 {m95:>9.0}  p99 {m99:>9.0}"
    );
    println!(
        "a Redis round trip (RedisRevocations): p50 {t50:>9.0}  p95 {t95:>9.0}  p99 {t99:>9.0}  ({:.0}x the replica)",
        t50 / r50
    );

    println!(
        "\n== propagation: revoked at one replica until another refuses the token, 1,000 revocations"
    );
    let mut delays = Vec::with_capacity(1000);
    for i in 0..1000 {
        let facts = TokenFacts {
            id: TokenId::Jti(format!("propagated-{i}")),
            user: Some("alice"),
            grant: None,
            issued_at: Some(now),
        };
        let started = Instant::now();
        replica.revoke_token(&facts.id, now + DAY).await.unwrap();
        while !other.is_revoked(&facts).await.unwrap() {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "not seen within 1 s"
            );
            tokio::task::yield_now().await;
        }
        delays.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let (d50, d95, d99) = p50_p95_p99(&mut delays);
    println!("delay: p50 {d50:.0} us  p95 {d95:.0} us  p99 {d99:.0} us  (bound: 1 s)");
}

fn main() {
    let redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(&redis));
}
