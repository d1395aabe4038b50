//! The contract every [`RateLimiter`] keeps: one property per row of the tables in
//! [`crate::rate_limit`].
//!
//! A limiter under test comes from a [`LimiterFactory`], which makes a fresh limiter (one
//! that shares no counts with those made before: a new key prefix for a shared store)
//! with the property's settings and a [`ManualClock`] the property drives. Waits for a
//! verification slot use real time, a few tens of milliseconds at most.
//!
//! A limiter that answers through a store may send [`Hold::end`](crate::rate_limit::Hold::end)
//! and [`Hold::release`](crate::rate_limit::Hold::release) without awaiting the answer,
//! but a later decision by the same limiter must see them: the properties admit again
//! right after an attempt ends.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use auth_core::clock::SharedClock;
//! use auth_core::contract::rate_limiter::{LimiterFactory, run_all};
//! use auth_core::rate_limit::LimitSettings;
//! use auth_core::{MemoryRateLimiter, RateLimiter};
//!
//! struct Fresh;
//!
//! #[async_trait]
//! impl LimiterFactory for Fresh {
//!     async fn limiter(&self, settings: LimitSettings, clock: SharedClock) -> Arc<dyn RateLimiter> {
//!         Arc::new(MemoryRateLimiter::with_clock(settings, clock))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! run_all(&Fresh).await;
//! # }
//! ```

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{broken, check};
use crate::clock::{ManualClock, SharedClock};
use crate::rate_limit::{
    Busy, Ending, LimitSettings, LockScope, RateLimiter, Refusal, Reservation, Subject,
};

/// Makes the limiters the properties run against.
#[async_trait]
pub trait LimiterFactory: Send + Sync {
    /// A limiter with `settings`, reading time from `clock`, sharing no counts with any
    /// limiter this factory made before.
    async fn limiter(&self, settings: LimitSettings, clock: SharedClock) -> Arc<dyn RateLimiter>;
}

/// How long a property lets an attempt wait for a slot it expects to get.
const LONG_WAIT: Duration = Duration::from_secs(10);
/// How long a property watches a waiter it expects to keep waiting.
const STILL_WAITING: Duration = Duration::from_millis(100);

/// A fresh limiter with `settings` and the clock that drives it.
async fn fresh(
    factory: &dyn LimiterFactory,
    settings: LimitSettings,
) -> (Arc<dyn RateLimiter>, ManualClock) {
    let clock = ManualClock::at_fixed_epoch();
    let limiter = factory.limiter(settings, Arc::new(clock.clone())).await;
    (limiter, clock)
}

/// A client at `ip` (not on this machine) naming `user`; `ip` must parse.
pub fn remote<'a>(user: &'a str, ip: &str) -> Subject<'a> {
    Subject {
        user: Some(user),
        address: ip.parse::<IpAddr>().ok(),
        localhost: false,
    }
}

/// One whole attempt from `from` that takes its slot at once and ends with `ending`; the
/// refusal, if refused (the attempt then ends neutral).
pub async fn attempt(
    limiter: &dyn RateLimiter,
    from: &Subject<'_>,
    ending: Ending,
) -> Option<Refusal> {
    let reservation = match admit(limiter, from).await {
        Ok(r) => r,
        Err(refusal) => return Some(refusal),
    };
    if let Err(refusal) = reservation.verify(Duration::ZERO).await {
        reservation.finish(Ending::Neutral);
        return Some(refusal);
    }
    reservation.finish(ending);
    None
}

/// The limiter's answer to an admission, synchronous when it has one.
async fn admit(limiter: &dyn RateLimiter, from: &Subject<'_>) -> Result<Reservation, Refusal> {
    match limiter.try_admit(from) {
        Some(answer) => answer,
        None => limiter.admit(from).await,
    }
}

/// `n` attempts from `from`, each ending with `ending`; panics as `property` if any is
/// refused.
async fn attempts(
    limiter: &dyn RateLimiter,
    from: &Subject<'_>,
    ending: Ending,
    n: u32,
    property: &str,
) {
    for i in 0..n {
        if let Some(r) = attempt(limiter, from, ending).await {
            broken(
                property,
                format!("attempt {} of {n} ({ending:?}) was refused: {r:?}", i + 1),
            );
        }
    }
}

fn is_locked(refusal: Option<Refusal>, scope: LockScope) -> bool {
    matches!(refusal, Some(Refusal::Locked { scope: s, .. }) if s == scope)
}

fn settings() -> LimitSettings {
    LimitSettings::default()
}

/// Runs every property.
pub async fn run_all(factory: &dyn LimiterFactory) {
    too_many_running_from_one_address_are_busy_not_failures(factory).await;
    an_attempt_naming_no_user_needs_no_slot(factory).await;
    verification_slots_are_bounded_by_the_failures_left(factory).await;
    a_waiter_gets_a_released_slot_and_a_wait_that_runs_out_is_busy(factory).await;
    the_wait_queue_is_bounded_and_a_dropped_waiter_leaves_it(factory).await;
    a_round_trip_to_the_client_gives_the_slot_back(factory).await;
    user_failures_lock_the_user_at_unknown_addresses(factory).await;
    failures_outside_the_window_do_not_count(factory).await;
    address_failures_lock_the_address_for_every_user(factory).await;
    abandoned_and_malformed_count_against_the_address_only(factory).await;
    a_neutral_ending_counts_nothing(factory).await;
    success_resets_the_user_but_not_the_address(factory).await;
    lockouts_double_up_to_the_cap_and_a_quiet_period_forgives(factory).await;
    localhost_is_exempt_unless_configured_otherwise(factory).await;
    ipv6_clients_are_counted_by_their_64(factory).await;
    a_known_network_logs_in_while_strangers_are_locked_out(factory).await;
    known_networks_are_forgotten_after_known_for(factory).await;
    only_the_latest_networks_of_a_user_are_known(factory).await;
    a_dropped_reservation_ends_as_abandoned_exactly_once(factory).await;
}

/// Row "attempt admitted": beyond `max_running_per_address` running attempts from one
/// address, admission is refused as busy, and nothing is counted as a failure.
pub async fn too_many_running_from_one_address_are_busy_not_failures(factory: &dyn LimiterFactory) {
    const P: &str = "too_many_running_from_one_address_are_busy_not_failures";
    let (l, _clock) = fresh(
        factory,
        LimitSettings {
            max_running_per_address: 8,
            ..settings()
        },
    )
    .await;
    let from = remote("alice", "192.0.2.10");
    let mut held = Vec::new();
    for i in 0..8 {
        match admit(&*l, &from).await {
            Ok(r) => held.push(r),
            Err(r) => broken(
                P,
                format!("running attempt {} of 8 was refused: {r:?}", i + 1),
            ),
        }
    }
    for _ in 0..3 {
        let refusal = admit(&*l, &from).await.err();
        check(refusal == Some(Refusal::Busy(Busy::Address)), P, || {
            format!("the 9th running attempt got {refusal:?}, not Busy(Address)")
        });
    }
    let other = admit(&*l, &remote("alice", "192.0.2.11")).await;
    check(other.is_ok(), P, || {
        format!("another address was refused: {:?}", other.as_ref().err())
    });
    drop(other);
    for r in held {
        r.finish(Ending::Neutral);
    }
    // 8 more running at once, then a success: no failure was ever counted.
    let mut again = Vec::new();
    for i in 0..8 {
        match admit(&*l, &from).await {
            Ok(r) => again.push(r),
            Err(r) => broken(
                P,
                format!(
                    "after every attempt ended, running attempt {} of 8 was refused: {r:?}",
                    i + 1
                ),
            ),
        }
    }
    for r in again {
        r.finish(Ending::Neutral);
    }
    let last = attempt(&*l, &from, Ending::Succeeded).await;
    check(last.is_none(), P, || {
        format!("a correct login was refused: {last:?}")
    });
}

/// An attempt that names no user (a bearer token before validation) verifies without a
/// slot, however many run at once.
pub async fn an_attempt_naming_no_user_needs_no_slot(factory: &dyn LimiterFactory) {
    const P: &str = "an_attempt_naming_no_user_needs_no_slot";
    let (l, _clock) = fresh(factory, settings()).await;
    let nobody = Subject {
        user: None,
        address: "192.0.2.20".parse().ok(),
        localhost: false,
    };
    let mut held = Vec::new();
    for i in 0..10 {
        let r = admit(&*l, &nobody)
            .await
            .unwrap_or_else(|r| broken(P, format!("admission {} was refused: {r:?}", i + 1)));
        if let Err(refusal) = r.verify(Duration::ZERO).await {
            broken(
                P,
                format!("verification {} needed a slot: {refusal:?}", i + 1),
            );
        }
        held.push(r);
    }
    for r in held {
        r.finish(Ending::Succeeded);
    }
}

/// Row "the secret or proof arrives": at most `user_failures` minus the scope's recent
/// failures verify at once.
pub async fn verification_slots_are_bounded_by_the_failures_left(factory: &dyn LimiterFactory) {
    const P: &str = "verification_slots_are_bounded_by_the_failures_left";
    let (l, _clock) = fresh(factory, settings()).await;
    let from = remote("alice", "192.0.2.30");
    attempts(&*l, &from, Ending::Failed, 2, P).await;
    let mut verifying = Vec::new();
    for i in 0..3 {
        let r = admit(&*l, &from)
            .await
            .unwrap_or_else(|r| broken(P, format!("admission {} was refused: {r:?}", i + 1)));
        if let Err(refusal) = r.verify(Duration::ZERO).await {
            broken(
                P,
                format!(
                    "verification {} of 3 (5 minus 2 failures) was refused: {refusal:?}",
                    i + 1
                ),
            );
        }
        verifying.push(r);
    }
    let fourth = admit(&*l, &from)
        .await
        .unwrap_or_else(|r| broken(P, format!("the 4th admission was refused: {r:?}")));
    let refused = fourth.verify(Duration::from_millis(30)).await;
    check(refused == Err(Refusal::Busy(Busy::User)), P, || {
        format!("a 4th verification with 2 recent failures got {refused:?}, not Busy(User)")
    });
    check(
        fourth.refusal() == Some(Refusal::Busy(Busy::User)),
        P,
        || "the reservation does not remember its refusal".to_owned(),
    );
    fourth.finish(Ending::Neutral);
    // Another user is not held up by alice's slots.
    let bob = attempt(&*l, &remote("bob", "192.0.2.30"), Ending::Succeeded).await;
    check(bob.is_none(), P, || format!("bob was refused: {bob:?}"));
    for r in verifying {
        r.finish(Ending::Succeeded);
    }
}

/// Row "the secret or proof arrives": a waiter gets the slot another attempt frees, and
/// one whose wait runs out is refused as busy.
pub async fn a_waiter_gets_a_released_slot_and_a_wait_that_runs_out_is_busy(
    factory: &dyn LimiterFactory,
) {
    const P: &str = "a_waiter_gets_a_released_slot_and_a_wait_that_runs_out_is_busy";
    let (l, _clock) = fresh(
        factory,
        LimitSettings {
            user_failures: 2,
            ..settings()
        },
    )
    .await;
    let from = remote("alice", "192.0.2.40");
    let mut verifying = Vec::new();
    for _ in 0..2 {
        let r = admit(&*l, &from)
            .await
            .unwrap_or_else(|r| broken(P, format!("{r:?}")));
        if let Err(refusal) = r.verify(Duration::ZERO).await {
            broken(P, format!("a free slot was refused: {refusal:?}"));
        }
        verifying.push(r);
    }
    let timed_out = admit(&*l, &from)
        .await
        .unwrap_or_else(|r| broken(P, format!("{r:?}")));
    let refused = timed_out.verify(Duration::from_millis(50)).await;
    check(refused == Err(Refusal::Busy(Busy::User)), P, || {
        format!("a wait that ran out got {refused:?}, not Busy(User)")
    });
    timed_out.finish(Ending::Neutral);

    let waiter = admit(&*l, &from)
        .await
        .unwrap_or_else(|r| broken(P, format!("{r:?}")));
    {
        let mut wait = std::pin::pin!(waiter.verify(LONG_WAIT));
        let early = tokio::time::timeout(STILL_WAITING, &mut wait).await;
        check(early.is_err(), P, || {
            format!("with every slot taken, a waiter got {early:?} instead of waiting")
        });
        if let Some(first) = verifying.pop() {
            first.finish(Ending::Succeeded);
        }
        let got = tokio::time::timeout(LONG_WAIT, &mut wait).await;
        check(matches!(got, Ok(Ok(()))), P, || {
            format!("the waiter did not get the freed slot: {got:?}")
        });
    }
    waiter.finish(Ending::Succeeded);
    for r in verifying {
        r.finish(Ending::Succeeded);
    }
}

/// Row "the secret or proof arrives": at most `max_waiting_per_user` wait; one more is
/// refused as busy at once, and a waiter that goes away leaves its place.
pub async fn the_wait_queue_is_bounded_and_a_dropped_waiter_leaves_it(
    factory: &dyn LimiterFactory,
) {
    const P: &str = "the_wait_queue_is_bounded_and_a_dropped_waiter_leaves_it";
    let (l, _clock) = fresh(
        factory,
        LimitSettings {
            user_failures: 1,
            max_waiting_per_user: 1,
            ..settings()
        },
    )
    .await;
    let from = remote("alice", "192.0.2.50");
    let holder = admit(&*l, &from)
        .await
        .unwrap_or_else(|r| broken(P, format!("{r:?}")));
    if let Err(refusal) = holder.verify(Duration::ZERO).await {
        broken(P, format!("a free slot was refused: {refusal:?}"));
    }
    let a = admit(&*l, &from)
        .await
        .unwrap_or_else(|r| broken(P, format!("{r:?}")));
    let b = admit(&*l, &from)
        .await
        .unwrap_or_else(|r| broken(P, format!("{r:?}")));
    {
        // Whichever queues first holds the one place; the other is refused at once.
        let mut wa = std::pin::pin!(a.verify(LONG_WAIT));
        let mut wb = std::pin::pin!(b.verify(LONG_WAIT));
        let first =
            tokio::time::timeout(LONG_WAIT, futures::future::select(&mut wa, &mut wb)).await;
        let still = match first {
            Ok(futures::future::Either::Left((r, _))) => (r, "b"),
            Ok(futures::future::Either::Right((r, _))) => (r, "a"),
            Err(_) => broken(P, "two waiters for one place both kept waiting"),
        };
        check(still.0 == Err(Refusal::Busy(Busy::User)), P, || {
            format!(
                "the waiter beyond the queue got {:?}, not Busy(User)",
                still.0
            )
        });
    }
    // Whoever waited was dropped with its future above: its place must be free again.
    a.finish(Ending::Neutral);
    b.finish(Ending::Neutral);
    let c = admit(&*l, &from)
        .await
        .unwrap_or_else(|r| broken(P, format!("{r:?}")));
    {
        let mut wc = std::pin::pin!(c.verify(LONG_WAIT));
        let early = tokio::time::timeout(STILL_WAITING, &mut wc).await;
        check(early.is_err(), P, || {
            format!("after the waiter went away, a new one got {early:?} instead of its place")
        });
        holder.finish(Ending::Succeeded);
        let got = tokio::time::timeout(LONG_WAIT, &mut wc).await;
        check(matches!(got, Ok(Ok(()))), P, || {
            format!("the new waiter did not get the freed slot: {got:?}")
        });
    }
    c.finish(Ending::Succeeded);
}

/// Row "a round trip to the client": the slot goes back while the client is awaited.
pub async fn a_round_trip_to_the_client_gives_the_slot_back(factory: &dyn LimiterFactory) {
    const P: &str = "a_round_trip_to_the_client_gives_the_slot_back";
    let (l, _clock) = fresh(
        factory,
        LimitSettings {
            user_failures: 1,
            ..settings()
        },
    )
    .await;
    let from = remote("alice", "192.0.2.60");
    let slow = admit(&*l, &from)
        .await
        .unwrap_or_else(|r| broken(P, format!("{r:?}")));
    if let Err(refusal) = slow.verify(Duration::ZERO).await {
        broken(P, format!("a free slot was refused: {refusal:?}"));
    }
    slow.pause();
    // Neutral: a success would make the network known, a scope of its own.
    let other = attempt(&*l, &from, Ending::Neutral).await;
    check(other.is_none(), P, || {
        format!("while the first client was awaited, another attempt got {other:?}")
    });
    let back = slow.resume(LONG_WAIT).await;
    check(back.is_ok(), P, || {
        format!("the answer could not take a slot again: {back:?}")
    });
    let third = admit(&*l, &from)
        .await
        .unwrap_or_else(|r| broken(P, format!("{r:?}")));
    let refused = third.verify(Duration::from_millis(30)).await;
    check(refused == Err(Refusal::Busy(Busy::User)), P, || {
        format!("after resume, the one slot was free again: {refused:?}")
    });
    third.finish(Ending::Neutral);
    slow.finish(Ending::Succeeded);
}

/// Row "wrong secret": `user_failures` failures within `window` lock the user at unknown
/// addresses for `lockout`, with the real remaining time; other users and addresses are
/// untouched.
pub async fn user_failures_lock_the_user_at_unknown_addresses(factory: &dyn LimiterFactory) {
    const P: &str = "user_failures_lock_the_user_at_unknown_addresses";
    let (l, clock) = fresh(factory, settings()).await;
    let from = remote("alice", "192.0.2.70");
    attempts(&*l, &from, Ending::Failed, 5, P).await;
    let refusal = attempt(&*l, &from, Ending::Succeeded).await;
    check(
        refusal
            == Some(Refusal::Locked {
                retry_after: Duration::from_secs(60),
                scope: LockScope::User,
            }),
        P,
        || format!("after 5 failures: {refusal:?}, not locked 60 s as the user"),
    );
    let elsewhere = attempt(&*l, &remote("alice", "198.51.100.1"), Ending::Succeeded).await;
    check(is_locked(elsewhere, LockScope::User), P, || {
        format!("the user at another unknown address: {elsewhere:?}")
    });
    let bob = attempt(&*l, &remote("bob", "192.0.2.70"), Ending::Succeeded).await;
    check(bob.is_none(), P, || {
        format!("bob at the same address: {bob:?}")
    });
    clock.advance(Duration::from_secs(45));
    let later = attempt(&*l, &from, Ending::Succeeded).await;
    check(
        later
            == Some(Refusal::Locked {
                retry_after: Duration::from_secs(15),
                scope: LockScope::User,
            }),
        P,
        || format!("45 s later: {later:?}, not 15 s left"),
    );
    clock.advance(Duration::from_secs(15));
    let free = attempt(&*l, &from, Ending::Succeeded).await;
    check(free.is_none(), P, || format!("after the lockout: {free:?}"));
}

/// Failures older than `window` do not count.
pub async fn failures_outside_the_window_do_not_count(factory: &dyn LimiterFactory) {
    const P: &str = "failures_outside_the_window_do_not_count";
    let (l, clock) = fresh(factory, settings()).await;
    let from = remote("alice", "192.0.2.80");
    attempts(&*l, &from, Ending::Failed, 4, P).await;
    clock.advance(Duration::from_secs(300));
    attempts(&*l, &from, Ending::Failed, 4, P).await;
    let fifth = attempt(&*l, &from, Ending::Succeeded).await;
    check(fifth.is_none(), P, || {
        format!("4 failures, 4 more a window later: {fifth:?}")
    });
}

/// Row "wrong secret": `address_failures` failures from one address, for any users, lock
/// the address for every user; another address is untouched.
pub async fn address_failures_lock_the_address_for_every_user(factory: &dyn LimiterFactory) {
    const P: &str = "address_failures_lock_the_address_for_every_user";
    let (l, _clock) = fresh(factory, settings()).await;
    for i in 0..20 {
        let user = format!("user{i}");
        attempts(&*l, &remote(&user, "192.0.2.90"), Ending::Failed, 1, P).await;
    }
    let fresh_user = attempt(&*l, &remote("fresh", "192.0.2.90"), Ending::Succeeded).await;
    check(
        fresh_user
            == Some(Refusal::Locked {
                retry_after: Duration::from_secs(60),
                scope: LockScope::Address,
            }),
        P,
        || format!("after 20 failures from the address: {fresh_user:?}"),
    );
    let next_door = attempt(&*l, &remote("fresh", "192.0.2.91"), Ending::Succeeded).await;
    check(next_door.is_none(), P, || {
        format!("another address: {next_door:?}")
    });
}

/// Rows "abandoned" and "malformed": they count against the address, never the user.
pub async fn abandoned_and_malformed_count_against_the_address_only(factory: &dyn LimiterFactory) {
    const P: &str = "abandoned_and_malformed_count_against_the_address_only";
    let (l, _clock) = fresh(factory, settings()).await;
    let from = remote("alice", "192.0.2.100");
    for i in 0..20 {
        let ending = if i % 2 == 0 {
            Ending::Abandoned
        } else {
            Ending::Malformed
        };
        attempts(&*l, &from, ending, 1, P).await;
    }
    let locked = attempt(&*l, &from, Ending::Succeeded).await;
    check(is_locked(locked, LockScope::Address), P, || {
        format!("after 20 abandoned or malformed: {locked:?}, not an address lock")
    });
    let elsewhere = attempt(&*l, &remote("alice", "192.0.2.101"), Ending::Succeeded).await;
    check(elsewhere.is_none(), P, || {
        format!("the user from another address was touched: {elsewhere:?}")
    });
}

/// Row "outage, nothing applied": a neutral ending counts against nobody.
pub async fn a_neutral_ending_counts_nothing(factory: &dyn LimiterFactory) {
    const P: &str = "a_neutral_ending_counts_nothing";
    let (l, _clock) = fresh(factory, settings()).await;
    let from = remote("alice", "192.0.2.110");
    attempts(&*l, &from, Ending::Neutral, 30, P).await;
    let ok = attempt(&*l, &from, Ending::Succeeded).await;
    check(ok.is_none(), P, || {
        format!("after 30 neutral endings: {ok:?}")
    });
}

/// Row "success": resets the user's scope but not the address's failures.
pub async fn success_resets_the_user_but_not_the_address(factory: &dyn LimiterFactory) {
    const P: &str = "success_resets_the_user_but_not_the_address";
    let (l, _clock) = fresh(factory, settings()).await;
    let from = remote("alice", "192.0.2.120");
    attempts(&*l, &from, Ending::Failed, 4, P).await;
    attempts(&*l, &from, Ending::Succeeded, 1, P).await;
    // The user's 4 are forgotten: 4 more do not lock.
    attempts(
        &*l,
        &remote("alice", "198.51.100.120"),
        Ending::Failed,
        4,
        P,
    )
    .await;
    // The address's 4 are not: 16 more (other users) make 20.
    for i in 0..16 {
        let user = format!("user{i}");
        attempts(&*l, &remote(&user, "192.0.2.120"), Ending::Failed, 1, P).await;
    }
    let locked = attempt(&*l, &remote("bob", "192.0.2.120"), Ending::Succeeded).await;
    check(is_locked(locked, LockScope::Address), P, || {
        format!("4 failures before the success and 16 after: {locked:?}, not an address lock")
    });
}

/// Each further lockout of a key doubles, up to `max_lockout`; a quiet period of
/// `max_lockout` forgives the earlier ones.
pub async fn lockouts_double_up_to_the_cap_and_a_quiet_period_forgives(
    factory: &dyn LimiterFactory,
) {
    const P: &str = "lockouts_double_up_to_the_cap_and_a_quiet_period_forgives";
    let (l, clock) = fresh(factory, settings()).await;
    let from = remote("alice", "192.0.2.130");
    let mut seen = Vec::new();
    for _ in 0..8 {
        attempts(&*l, &from, Ending::Failed, 5, P).await;
        match attempt(&*l, &from, Ending::Failed).await {
            Some(Refusal::Locked { retry_after, .. }) => {
                seen.push(retry_after.as_secs());
                clock.advance(retry_after);
            }
            other => broken(P, format!("5 failures did not lock: {other:?}")),
        }
    }
    check(
        seen == [60, 120, 240, 480, 960, 1920, 3600, 3600],
        P,
        || format!("lockout lengths {seen:?}, not doubling from 60 s to the 3600 s cap"),
    );
    clock.advance(Duration::from_secs(3601));
    attempts(&*l, &from, Ending::Failed, 5, P).await;
    let forgiven = attempt(&*l, &from, Ending::Failed).await;
    check(
        forgiven
            == Some(Refusal::Locked {
                retry_after: Duration::from_secs(60),
                scope: LockScope::User,
            }),
        P,
        || format!("after a quiet hour: {forgiven:?}, not a first lockout of 60 s"),
    );
}

/// Localhost clients are never limited unless `exempt_localhost` is off.
pub async fn localhost_is_exempt_unless_configured_otherwise(factory: &dyn LimiterFactory) {
    const P: &str = "localhost_is_exempt_unless_configured_otherwise";
    let local = Subject {
        user: Some("postgres"),
        address: "127.0.0.1".parse().ok(),
        localhost: true,
    };
    let (l, _clock) = fresh(factory, settings()).await;
    attempts(&*l, &local, Ending::Failed, 30, P).await;
    let ok = attempt(&*l, &local, Ending::Succeeded).await;
    check(ok.is_none(), P, || {
        format!("localhost after 30 failures: {ok:?}")
    });
    let (strict, _clock) = fresh(
        factory,
        LimitSettings {
            exempt_localhost: false,
            ..settings()
        },
    )
    .await;
    attempts(&*strict, &local, Ending::Failed, 5, P).await;
    let locked = attempt(&*strict, &local, Ending::Succeeded).await;
    check(matches!(locked, Some(Refusal::Locked { .. })), P, || {
        format!("with exempt_localhost off, localhost after 5 failures: {locked:?}")
    });
}

/// IPv6 clients are counted by their /64: 20 failures from one /64 lock all of it.
pub async fn ipv6_clients_are_counted_by_their_64(factory: &dyn LimiterFactory) {
    const P: &str = "ipv6_clients_are_counted_by_their_64";
    let (l, _clock) = fresh(factory, settings()).await;
    for i in 0..20u16 {
        let user = format!("u{i}");
        let ip = format!("2001:db8:1:2::{:x}", i + 1);
        attempts(&*l, &remote(&user, &ip), Ending::Failed, 1, P).await;
    }
    let same64 = attempt(
        &*l,
        &remote("fresh", "2001:db8:1:2:ffff::1"),
        Ending::Succeeded,
    )
    .await;
    check(is_locked(same64, LockScope::Address), P, || {
        format!("another host of the /64: {same64:?}, not an address lock")
    });
    let other64 = attempt(&*l, &remote("fresh", "2001:db8:1:3::1"), Ending::Succeeded).await;
    check(other64.is_none(), P, || format!("another /64: {other64:?}"));
}

/// Smart lockout: a success makes its network known for the user; strangers locking the
/// user out elsewhere do not lock it there, and failures there lock only that network.
pub async fn a_known_network_logs_in_while_strangers_are_locked_out(factory: &dyn LimiterFactory) {
    const P: &str = "a_known_network_logs_in_while_strangers_are_locked_out";
    let (l, _clock) = fresh(factory, settings()).await;
    let home = remote("alice", "192.0.2.140");
    attempts(&*l, &home, Ending::Succeeded, 1, P).await;
    let stranger = remote("alice", "203.0.113.9");
    attempts(&*l, &stranger, Ending::Failed, 5, P).await;
    let locked = attempt(&*l, &stranger, Ending::Succeeded).await;
    check(is_locked(locked, LockScope::User), P, || {
        format!("the stranger after 5 failures: {locked:?}")
    });
    let same_net = attempt(&*l, &remote("alice", "192.0.2.77"), Ending::Succeeded).await;
    check(same_net.is_none(), P, || {
        format!("the user's known /24 while strangers are locked out: {same_net:?}")
    });
    attempts(&*l, &home, Ending::Failed, 5, P).await;
    let home_locked = attempt(&*l, &home, Ending::Succeeded).await;
    check(is_locked(home_locked, LockScope::UserAtAddress), P, || {
        format!("5 failures at the known network: {home_locked:?}, not a lock there")
    });
    let unknown = attempt(&*l, &remote("alice", "198.51.100.140"), Ending::Succeeded).await;
    check(is_locked(unknown, LockScope::User), P, || {
        format!("an unknown address is still under the strangers' lock: {unknown:?}")
    });
}

/// A network stops being known `known_for` after its last success.
pub async fn known_networks_are_forgotten_after_known_for(factory: &dyn LimiterFactory) {
    const P: &str = "known_networks_are_forgotten_after_known_for";
    let (l, clock) = fresh(
        factory,
        LimitSettings {
            known_for: Duration::from_secs(86_400),
            max_lockout: Duration::from_secs(7 * 86_400),
            lockout: Duration::from_secs(7 * 86_400),
            ..settings()
        },
    )
    .await;
    let home = remote("alice", "192.0.2.150");
    attempts(&*l, &home, Ending::Succeeded, 1, P).await;
    clock.advance(Duration::from_secs(86_400));
    // Known no more: the strangers' week-long lock covers home too.
    attempts(&*l, &remote("alice", "203.0.113.15"), Ending::Failed, 5, P).await;
    let home_now = attempt(&*l, &home, Ending::Succeeded).await;
    check(is_locked(home_now, LockScope::User), P, || {
        format!("a day after its last success the network is still known: {home_now:?}")
    });
}

/// At most `max_known_per_user` networks are known; the least recent goes first.
pub async fn only_the_latest_networks_of_a_user_are_known(factory: &dyn LimiterFactory) {
    const P: &str = "only_the_latest_networks_of_a_user_are_known";
    let (l, clock) = fresh(
        factory,
        LimitSettings {
            max_known_per_user: 2,
            ..settings()
        },
    )
    .await;
    for net in ["10.1.0.1", "10.2.0.1", "10.3.0.1"] {
        clock.advance(Duration::from_secs(1));
        attempts(&*l, &remote("alice", net), Ending::Succeeded, 1, P).await;
    }
    attempts(&*l, &remote("alice", "203.0.113.16"), Ending::Failed, 5, P).await;
    let oldest = attempt(&*l, &remote("alice", "10.1.0.2"), Ending::Succeeded).await;
    check(is_locked(oldest, LockScope::User), P, || {
        format!("the oldest of 3 networks, with 2 remembered, is still known: {oldest:?}")
    });
    for net in ["10.2.0.2", "10.3.0.2"] {
        let latest = attempt(&*l, &remote("alice", net), Ending::Succeeded).await;
        check(latest.is_none(), P, || {
            format!("one of the 2 latest networks ({net}) is not known: {latest:?}")
        });
    }
}

/// A reservation dropped mid-attempt (a timeout, an aborted task) ends once, as
/// abandoned: counted against the address, its running count and slot given back.
pub async fn a_dropped_reservation_ends_as_abandoned_exactly_once(factory: &dyn LimiterFactory) {
    const P: &str = "a_dropped_reservation_ends_as_abandoned_exactly_once";
    let (l, _clock) = fresh(
        factory,
        LimitSettings {
            max_running_per_address: 5,
            ..settings()
        },
    )
    .await;
    let from = remote("alice", "192.0.2.160");
    for round in 0..4 {
        let mut held = Vec::new();
        for i in 0..5 {
            let r = admit(&*l, &from).await.unwrap_or_else(|r| {
                broken(
                    P,
                    format!("round {round}: admission {} was refused: {r:?}", i + 1),
                )
            });
            if let Err(refusal) = r.verify(Duration::ZERO).await {
                broken(
                    P,
                    format!(
                        "round {round}: verification {} was refused: {refusal:?}",
                        i + 1
                    ),
                );
            }
            held.push(r);
        }
        drop(held);
    }
    let locked = attempt(&*l, &from, Ending::Succeeded).await;
    check(is_locked(locked, LockScope::Address), P, || {
        format!("20 dropped reservations: {locked:?}, not 20 abandoned against the address")
    });
    let user_elsewhere = attempt(&*l, &remote("alice", "192.0.2.161"), Ending::Succeeded).await;
    check(user_elsewhere.is_none(), P, || {
        format!("dropped reservations touched the user: {user_elsewhere:?}")
    });
}
