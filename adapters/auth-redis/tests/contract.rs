//! The Redis limiter keeps auth-core's published limiter contract against a real Redis
//! over TLS (the harness's throwaway CA) with an ACL user, on one server and on a
//! three-node Redis Cluster; and two limiters on one store count together.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use auth_core::clock::SharedClock;
use auth_core::contract::rate_limiter::{LimiterFactory, attempt, remote, run_all};
use auth_core::rate_limit::{Ending, LimitSettings, LockScope, Refusal};
use auth_core::{ManualClock, RateLimiter};
use auth_redis::{RedisOptions, RedisRateLimiter};
use auth_tests::pki::run_ca;
use auth_tests::redis::{Redis, RedisCluster};
use common::secured;

/// Makes limiters on one store, each under a key prefix of its own.
struct OnRedis {
    base: RedisOptions,
    next: AtomicU64,
}

impl OnRedis {
    fn options(&self) -> RedisOptions {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.base.clone().with_key_prefix(&format!("contract-{n}"))
    }
}

#[async_trait]
impl LimiterFactory for OnRedis {
    async fn limiter(&self, settings: LimitSettings, clock: SharedClock) -> Arc<dyn RateLimiter> {
        let limiter = RedisRateLimiter::builder(self.options(), settings)
            .clock(clock)
            .connect()
            .await
            .unwrap();
        assert!(limiter.store_up(), "the store answers");
        Arc::new(limiter)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_limiter_keeps_the_contract_over_tls_with_an_acl_user() {
    let redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    assert!(redis.url().starts_with("rediss://"));
    run_all(&OnRedis {
        base: secured(&redis),
        next: AtomicU64::new(0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_limiter_keeps_the_contract_on_a_three_node_cluster() {
    let cluster = RedisCluster::start(Some(run_ca().unwrap())).unwrap_or_else(|e| panic!("{e}"));
    let base = common::cluster(&cluster);
    run_all(&OnRedis {
        base,
        next: AtomicU64::new(0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_limiters_on_one_store_count_together_and_a_new_one_remembers() {
    let redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let clock = ManualClock::at_fixed_epoch();
    let make = || {
        RedisRateLimiter::builder(
            secured(&redis).with_key_prefix("shared"),
            LimitSettings::default(),
        )
        .clock(Arc::new(clock.clone()))
        .connect()
    };
    let (one, two) = (make().await.unwrap(), make().await.unwrap());
    assert_eq!(
        attempt(&one, &remote("alice", "192.0.2.1"), Ending::Succeeded).await,
        None
    );
    for l in [&one, &one, &one, &two, &two] {
        assert_eq!(
            attempt(l, &remote("alice", "203.0.113.5"), Ending::Failed).await,
            None
        );
    }
    for l in [&one, &two] {
        assert!(matches!(
            attempt(l, &remote("alice", "203.0.113.5"), Ending::Succeeded).await,
            Some(Refusal::Locked {
                scope: LockScope::User,
                ..
            })
        ));
        assert_eq!(
            attempt(l, &remote("alice", "192.0.2.9"), Ending::Succeeded).await,
            None,
            "the known network logs in at both"
        );
    }
    drop((one, two));
    let restarted = make().await.unwrap();
    assert_eq!(
        restarted.other_limits(),
        None,
        "the same limits as the gateways before"
    );
    let connected = restarted.steps();
    assert!(matches!(
        attempt(
            &restarted,
            &remote("alice", "198.51.100.1"),
            Ending::Succeeded
        )
        .await,
        Some(Refusal::Locked {
            scope: LockScope::User,
            ..
        })
    ));
    assert_eq!(
        attempt(
            &restarted,
            &remote("alice", "192.0.2.10"),
            Ending::Succeeded
        )
        .await,
        None,
        "a new process knows the known network"
    );
    let steps = restarted.steps().awaited - connected.awaited;
    assert_eq!(
        steps, 2,
        "admission and the first slot are one round trip: {steps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_instances_slots_and_running_attempts_come_back_by_expiry() {
    let redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let clock = ManualClock::at_fixed_epoch();
    let limits = LimitSettings {
        user_failures: 1,
        max_running_per_address: 1,
        ..LimitSettings::default()
    };
    let make = || {
        RedisRateLimiter::builder(secured(&redis).with_key_prefix("crash"), limits.clone())
            .clock(Arc::new(clock.clone()))
            .connect()
    };
    let (crashed, survivor) = (make().await.unwrap(), make().await.unwrap());
    let from = remote("alice", "192.0.2.50");
    let held = crashed.admit(&from).await.unwrap();
    held.verify(Duration::ZERO).await.unwrap();
    // The process dies: its reservation never ends.
    std::mem::forget(held);
    assert_eq!(
        survivor.admit(&from).await.unwrap_err(),
        Refusal::Busy(auth_core::rate_limit::Busy::Address)
    );
    let elsewhere = survivor
        .admit(&remote("alice", "192.0.2.51"))
        .await
        .unwrap();
    assert_eq!(
        elsewhere.verify(Duration::from_millis(20)).await,
        Err(Refusal::Busy(auth_core::rate_limit::Busy::User)),
        "the dead process's verification slot is still taken"
    );
    elsewhere.finish(Ending::Neutral);
    // Past the slot lease (60 s) the slot is back; past the attempt lease (10 min) the
    // address's running attempt too.
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        attempt(&survivor, &remote("alice", "192.0.2.51"), Ending::Neutral).await,
        None
    );
    clock.advance(Duration::from_secs(600));
    assert_eq!(attempt(&survivor, &from, Ending::Succeeded).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_dropped_on_a_thread_without_a_runtime_still_ends() {
    let redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let limits = LimitSettings {
        max_running_per_address: 1,
        ..LimitSettings::default()
    };
    let l = RedisRateLimiter::builder(secured(&redis).with_key_prefix("off-runtime"), limits)
        .connect()
        .await
        .unwrap();
    let from = remote("alice", "192.0.2.70");
    let r = l.admit(&from).await.unwrap();
    std::thread::spawn(move || drop(r)).join().unwrap();
    // The ending went out through the limiter's task, ahead of this admission.
    let again = l.admit(&from).await;
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_other_limits_on_the_same_store_is_told() {
    let redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let options = secured(&redis).with_key_prefix("limits");
    let first = RedisRateLimiter::connect(options.clone(), LimitSettings::default())
        .await
        .unwrap();
    assert_eq!(first.other_limits(), None, "the first gateway on the store");
    let stricter = LimitSettings {
        user_failures: 3,
        ..LimitSettings::default()
    };
    let second = RedisRateLimiter::connect(options, stricter).await.unwrap();
    let others = second
        .other_limits()
        .expect("told of the first gateway's limits");
    assert!(others.starts_with("5,20,300000,"), "{others}");
}
