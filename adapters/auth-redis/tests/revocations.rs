//! The Redis revocation list keeps auth-core's revocations contract over TLS with an ACL
//! user, on one server and on a three-node cluster; a revocation at one instance is seen
//! by another at once; a stopped store fails the ask within the response timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use auth_core::Revocations;
use auth_core::clock::SharedClock;
use auth_core::contract::revocations::{RevocationsFactory, run_all};
use auth_core::revocation::{TokenFacts, TokenId};
use auth_redis::{RedisOptions, RedisRevocations};
use auth_tests::pki::run_ca;
use auth_tests::redis::{Redis, RedisCluster};

struct OnRedis {
    base: RedisOptions,
    next: AtomicU64,
}

#[async_trait]
impl RevocationsFactory for OnRedis {
    async fn revocations(&self, keep_for: Duration, clock: SharedClock) -> Arc<dyn Revocations> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let options = self
            .base
            .clone()
            .with_key_prefix(&format!("rv-contract-{n}"));
        let store = RedisRevocations::builder(options, keep_for)
            .clock(clock)
            .connect()
            .await
            .unwrap();
        assert!(store.store_up());
        Arc::new(store)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_revocations_keep_the_contract_over_tls() {
    let redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    run_all(&OnRedis {
        base: common::secured(&redis).with_response_timeout(Duration::from_secs(2)),
        next: AtomicU64::new(0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_revocations_keep_the_contract_on_a_three_node_cluster() {
    let cluster = RedisCluster::start(Some(run_ca().unwrap())).unwrap_or_else(|e| panic!("{e}"));
    let base = common::cluster(&cluster);
    run_all(&OnRedis {
        base,
        next: AtomicU64::new(0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_at_one_instance_holds_at_another_and_an_outage_fails_fast() {
    let mut redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let options = common::secured(&redis)
        .with_key_prefix("shared-rv")
        .with_response_timeout(Duration::from_millis(25));
    let day = Duration::from_secs(86_400);
    let one = RedisRevocations::connect(options.clone(), day)
        .await
        .unwrap();
    let two = RedisRevocations::connect(options, day).await.unwrap();
    let now = SystemTime::now();
    let facts = TokenFacts {
        id: TokenId::Jti("jti-1".into()),
        user: Some("alice"),
        grant: None,
        issued_at: Some(now),
    };
    assert!(!two.is_revoked(&facts).await.unwrap());
    one.revoke_token(&facts.id, now + Duration::from_secs(600))
        .await
        .unwrap();
    assert!(
        two.is_revoked(&facts).await.unwrap(),
        "seen by the other instance"
    );

    redis.stop();
    let started = Instant::now();
    let answer = two.is_revoked(&facts).await;
    let took = started.elapsed();
    assert!(answer.is_err(), "{answer:?}");
    assert!(
        took < Duration::from_millis(50),
        "an ask took {took:?} with the store down"
    );
}

struct Replicas {
    base: RedisOptions,
    next: AtomicU64,
}

#[async_trait]
impl RevocationsFactory for Replicas {
    async fn revocations(&self, keep_for: Duration, clock: SharedClock) -> Arc<dyn Revocations> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let options = self
            .base
            .clone()
            .with_key_prefix(&format!("rv-replica-{n}"));
        let store = RedisRevocations::builder(options, keep_for)
            .clock(clock)
            .connect()
            .await
            .unwrap();
        let replica = store.replica(Duration::from_secs(1)).await.unwrap();
        assert!(replica.is_current());
        Arc::new(replica)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_replica_keeps_the_contract() {
    let redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    run_all(&Replicas {
        base: common::secured(&redis).with_response_timeout(Duration::from_secs(2)),
        next: AtomicU64::new(0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_another_replica_within_a_second_and_a_silent_store_is_not_trusted() {
    let mut redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let options = common::secured(&redis)
        .with_key_prefix("replicas")
        .with_response_timeout(Duration::from_millis(500))
        .with_retry_interval(Duration::from_millis(100));
    let day = Duration::from_secs(86_400);
    let one = RedisRevocations::connect(options.clone(), day)
        .await
        .unwrap()
        .replica(Duration::from_secs(1))
        .await
        .unwrap();
    let other = RedisRevocations::connect(options, day)
        .await
        .unwrap()
        .replica(Duration::from_secs(1))
        .await
        .unwrap();
    let now = SystemTime::now();
    let mut delays = Vec::new();
    for i in 0..20 {
        let facts = TokenFacts {
            id: TokenId::Jti(format!("jti-{i}")),
            user: Some("alice"),
            grant: None,
            issued_at: Some(now),
        };
        assert!(!other.is_revoked(&facts).await.unwrap());
        let started = Instant::now();
        one.revoke_token(&facts.id, now + Duration::from_secs(600))
            .await
            .unwrap();
        // Each revocation is polled for at the other replica: the log's push is what is
        // measured, bounded by the one-second promise.
        while !other.is_revoked(&facts).await.unwrap() {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "not seen within 1 s"
            );
            tokio::task::yield_now().await;
        }
        delays.push(started.elapsed());
    }
    delays.sort();
    println!(
        "propagation between replicas: p50 {:?}, max {:?}",
        delays[10], delays[19]
    );

    // The store goes away: within the bound, asks fail rather than answer from a replica
    // that can no longer hear of revocations; each answer is immediate.
    redis.stop();
    let started = Instant::now();
    let facts = TokenFacts {
        id: TokenId::Jti("never-revoked".into()),
        user: Some("bob"),
        grant: None,
        issued_at: Some(now),
    };
    loop {
        let asked = Instant::now();
        let answer = other.is_revoked(&facts).await;
        assert!(asked.elapsed() < Duration::from_millis(50));
        if answer.is_err() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still trusted after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!other.is_current());
}
