//! Redis stopped or hung mid-test: every decision comes within 50 ms under each outage
//! policy, the outage is audited once (not once per attempt), and when Redis is back the
//! limiters share their counts again without being made anew.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::contract::rate_limiter::remote;
use auth_core::rate_limit::{Ending, LimitSettings, LockScope, Refusal, Subject};
use auth_core::{AuditEventKind, MemoryAuditSink, RateLimiter};
use auth_redis::{OnOutage, RedisOptions, RedisRateLimiter};
use auth_tests::pki::run_ca;
use auth_tests::redis::Redis;

/// The bound the issue sets on a decision while the store is down.
const DECISION_BOUND: Duration = Duration::from_millis(50);

fn options(redis: &Redis, on_outage: OnOutage) -> RedisOptions {
    common::secured(redis)
        .with_key_prefix("outage")
        .with_on_outage(on_outage)
        // Under the bound with room for a loaded machine's scheduling.
        .with_response_timeout(Duration::from_millis(25))
        .with_retry_interval(Duration::from_millis(100))
}

/// One attempt ending with `ending`: the refusal, if any, and how long the limiter took
/// to decide (admission and the slot).
async fn timed(
    l: &RedisRateLimiter,
    from: &Subject<'_>,
    ending: Ending,
) -> (Option<Refusal>, Duration) {
    let start = Instant::now();
    let r = match l.admit(from).await {
        Ok(r) => r,
        Err(refusal) => return (Some(refusal), start.elapsed()),
    };
    let slot = r.verify(Duration::from_millis(10)).await;
    let took = start.elapsed();
    match slot {
        Ok(()) => {
            r.finish(ending);
            (None, took)
        }
        Err(refusal) => {
            r.finish(Ending::Neutral);
            (Some(refusal), took)
        }
    }
}

async fn limiter(
    redis: &Redis,
    on_outage: OnOutage,
    audit: &Arc<MemoryAuditSink>,
) -> RedisRateLimiter {
    let l = RedisRateLimiter::builder(options(redis, on_outage), LimitSettings::default())
        .audit(audit.clone())
        .connect()
        .await
        .unwrap();
    assert!(l.store_up());
    l
}

fn count(audit: &MemoryAuditSink, kind: AuditEventKind) -> usize {
    audit
        .events()
        .iter()
        .filter(|e| e["event"] == kind.as_str())
        .count()
}

/// Runs `n` attempts against a store that does not answer; every decision within the
/// bound. Returns the refusals.
async fn decisions_without_the_store(
    l: &RedisRateLimiter,
    n: usize,
    ending: Ending,
) -> Vec<Option<Refusal>> {
    let mut out = Vec::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let (refusal, took) = timed(l, &remote("alice", "203.0.113.7"), ending).await;
        slowest = slowest.max(took);
        out.push(refusal);
    }
    println!("slowest decision without the store: {slowest:?}");
    assert!(slowest < DECISION_BOUND, "a decision took {slowest:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_store_refuses_within_the_bound_by_default_and_recovers() {
    let mut redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let audit = Arc::new(MemoryAuditSink::new());
    let one = limiter(&redis, OnOutage::Refuse, &audit).await;
    let two = limiter(&redis, OnOutage::Refuse, &audit).await;
    assert_eq!(
        timed(&one, &remote("alice", "203.0.113.7"), Ending::Failed)
            .await
            .0,
        None
    );

    redis.stop();
    let refusals = decisions_without_the_store(&one, 20, Ending::Failed).await;
    assert!(
        refusals.iter().all(|r| *r == Some(Refusal::Unavailable)),
        "{refusals:?}"
    );
    assert!(!one.store_up());
    assert_eq!(
        count(&audit, AuditEventKind::StoreUnavailable),
        1,
        "audited once, not per attempt"
    );

    redis.restart().unwrap();
    tokio::time::timeout(Duration::from_secs(20), one.store_changed_to(true))
        .await
        .expect("the limiter finds the store again without being made anew");
    assert_eq!(count(&audit, AuditEventKind::StoreRecovered), 1);
    // Shared again: the restarted Redis forgot the first failure, so 5 fresh ones, split
    // across both limiters, lock the user at both.
    // The second limiter learns of the restart at its first step: its connection died
    // with the server. Within the limit it reconnects, or it counts the store down until
    // its probe finds it (a debug build's TLS handshake can take longer than 25 ms).
    let _ = timed(&two, &remote("bob", "198.51.100.1"), Ending::Neutral).await;
    tokio::time::timeout(Duration::from_secs(20), two.store_changed_to(true))
        .await
        .expect("the second limiter finds the store again");
    for l in [&one, &two, &one, &two, &one] {
        let (refusal, _) = timed(l, &remote("alice", "203.0.113.7"), Ending::Failed).await;
        assert_eq!(refusal, None);
    }
    for l in [&one, &two] {
        let (refusal, _) = timed(l, &remote("alice", "203.0.113.7"), Ending::Succeeded).await;
        assert!(
            matches!(
                refusal,
                Some(Refusal::Locked {
                    scope: LockScope::User,
                    ..
                })
            ),
            "{refusal:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_store_falls_back_to_the_local_limiter_within_the_bound() {
    let redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let audit = Arc::new(MemoryAuditSink::new());
    let l = limiter(&redis, OnOutage::Local, &audit).await;
    redis.pause().unwrap();
    let outcomes = decisions_without_the_store(&l, 6, Ending::Failed).await;
    // The local limiter counts: 5 failures, then the lock.
    assert_eq!(&outcomes[..5], &[None, None, None, None, None]);
    assert!(
        matches!(
            outcomes[5],
            Some(Refusal::Locked {
                scope: LockScope::User,
                ..
            })
        ),
        "{outcomes:?}"
    );
    assert_eq!(count(&audit, AuditEventKind::StoreUnavailable), 1);
    redis.resume().unwrap();
    tokio::time::timeout(Duration::from_secs(20), l.store_changed_to(true))
        .await
        .expect("a resumed store is found again");
    // Back on the store, which never saw the local failures.
    let (refusal, _) = timed(&l, &remote("alice", "203.0.113.7"), Ending::Succeeded).await;
    assert_eq!(refusal, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn danger_allow_limits_nothing_while_the_store_is_down() {
    let mut redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let audit = Arc::new(MemoryAuditSink::new());
    let l = limiter(&redis, OnOutage::DangerAllow, &audit).await;
    redis.stop();
    let outcomes = decisions_without_the_store(&l, 30, Ending::Failed).await;
    assert!(outcomes.iter().all(Option::is_none), "{outcomes:?}");
    assert_eq!(count(&audit, AuditEventKind::StoreUnavailable), 1);
}
