//! The in-memory limiter passes the published rate-limiter contract, and the contract
//! catches a limiter that gets one row of the semantics table wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use auth_core::clock::SharedClock;
use auth_core::contract::rate_limiter::{self, LimiterFactory, run_all};
use auth_core::rate_limit::{Ending, Hold, LimitSettings, Refusal, Reservation, Subject};
use auth_core::{MemoryRateLimiter, RateLimiter};

struct Memory;

#[async_trait]
impl LimiterFactory for Memory {
    async fn limiter(&self, settings: LimitSettings, clock: SharedClock) -> Arc<dyn RateLimiter> {
        Arc::new(MemoryRateLimiter::with_clock(settings, clock))
    }
}

#[tokio::test]
async fn the_memory_limiter_keeps_the_contract() {
    run_all(&Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_limiter_keeps_the_contract_on_a_multi_threaded_runtime() {
    run_all(&Memory).await;
}

/// A limiter with a classic bug: an exchange the client abandoned counts against the user
/// as a wrong secret, so anyone can lock anyone out by hanging up.
#[derive(Debug)]
struct AbandonedCountsAsFailed(MemoryRateLimiter);

#[derive(Debug)]
struct Forwarding(Mutex<Option<Reservation>>);

#[async_trait]
impl Hold for Forwarding {
    async fn acquire(&self, wait: Duration) -> Result<(), Refusal> {
        let inner = self.0.lock().unwrap().take();
        let Some(inner) = inner else {
            return Ok(());
        };
        let taken = inner.resume(wait).await;
        *self.0.lock().unwrap() = Some(inner);
        taken
    }

    fn release(&self) {
        if let Some(inner) = &*self.0.lock().unwrap() {
            inner.pause();
        }
    }

    fn end(&self, ending: Ending, _holding: bool) {
        let ending = match ending {
            Ending::Abandoned => Ending::Failed,
            other => other,
        };
        if let Some(inner) = self.0.lock().unwrap().take() {
            inner.finish(ending);
        }
    }
}

#[async_trait]
impl RateLimiter for AbandonedCountsAsFailed {
    async fn admit(&self, subject: &Subject<'_>) -> Result<Reservation, Refusal> {
        let inner = self.0.admit(subject).await?;
        Ok(Reservation::new(Forwarding(Mutex::new(Some(inner)))))
    }
}

struct Broken;

#[async_trait]
impl LimiterFactory for Broken {
    async fn limiter(&self, settings: LimitSettings, clock: SharedClock) -> Arc<dyn RateLimiter> {
        Arc::new(AbandonedCountsAsFailed(MemoryRateLimiter::with_clock(
            settings, clock,
        )))
    }
}

#[tokio::test]
async fn the_forwarding_wrapper_alone_keeps_a_row_it_does_not_touch() {
    // The wrapper is sound where the bug does not reach: the catch below is the bug's.
    rate_limiter::user_failures_lock_the_user_at_unknown_addresses(&Broken).await;
    rate_limiter::a_round_trip_to_the_client_gives_the_slot_back(&Broken).await;
}

#[tokio::test]
#[should_panic(
    expected = "contract property `abandoned_and_malformed_count_against_the_address_only` broken"
)]
async fn the_contract_catches_abandoned_exchanges_counted_against_the_user() {
    rate_limiter::abandoned_and_malformed_count_against_the_address_only(&Broken).await;
}

#[tokio::test]
#[should_panic(
    expected = "contract property `a_dropped_reservation_ends_as_abandoned_exactly_once` broken"
)]
async fn the_contract_catches_it_through_dropped_reservations_too() {
    rate_limiter::a_dropped_reservation_ends_as_abandoned_exactly_once(&Broken).await;
}
