//! One admitted attempt's side of the Redis limiter.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::rate_limit::{Busy, Ending, Hold, Refusal};

use super::keys::{AttemptKeys, millis, step};
use super::{Inner, ints, locked};
use crate::outage::OnOutage;
use crate::writer::NoAnswer;

/// The first pause between two looks at a full scope, and the longest.
const FIRST_POLL: Duration = Duration::from_millis(2);
const LONGEST_POLL: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub(crate) struct RedisHold {
    inner: Arc<Inner>,
    attempt: Arc<AttemptKeys>,
    /// Admitted into the scope of a network known for the user.
    scope_known: bool,
    /// The admission took the first slot already (one round trip for both).
    prefetched: AtomicBool,
    admitted: SystemTime,
}

impl RedisHold {
    pub(crate) fn new(
        inner: Arc<Inner>,
        attempt: Arc<AttemptKeys>,
        scope_known: bool,
        slot: bool,
        admitted: SystemTime,
    ) -> Self {
        Self {
            inner,
            attempt,
            scope_known,
            prefetched: AtomicBool::new(slot),
            admitted,
        }
    }

    fn step(&self, op: &str, extra: &str, extra2: u64) -> redis::Cmd {
        step(
            op,
            &self.attempt,
            &self.inner.settings,
            millis(self.inner.clock.now()),
            self.scope_known,
            extra,
            extra2,
        )
    }
}

#[async_trait]
impl Hold for RedisHold {
    fn try_acquire(&self) -> Option<Result<(), Refusal>> {
        if !self.attempt.has_user || self.prefetched.swap(false, Ordering::AcqRel) {
            return Some(Ok(()));
        }
        None
    }

    async fn acquire(&self, wait: Duration) -> Result<(), Refusal> {
        if !self.attempt.has_user {
            return Ok(());
        }
        let start = tokio::time::Instant::now();
        let deadline = start
            .checked_add(wait)
            .unwrap_or_else(|| start + Duration::from_secs(86_400 * 365));
        // Queued and dropped mid-wait (the client hung up): the place in the queue is
        // given back by a step queued behind ours.
        let mut queued = Queued {
            hold: self,
            armed: false,
        };
        let mut pause = FIRST_POLL;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let until = u64::try_from(left.as_millis()).unwrap_or(u64::MAX / 4) + 1000;
            let answer = self
                .inner
                .writer
                .call(self.step("acquire", "1", until))
                .await;
            let reply = match answer {
                Ok(v) => ints(&v),
                Err(NoAnswer::Down | NoAnswer::Error(_)) => {
                    queued.armed = false;
                    return self.without_store();
                }
            };
            match reply.as_slice() {
                [0] => {
                    queued.armed = false;
                    return Ok(());
                }
                [1, ms, scope] => {
                    queued.armed = false;
                    return Err(locked(*ms, *scope));
                }
                [3] => queued.armed = true,
                _ => {
                    // Busy, or an answer we do not know: no slot. A queued attempt that
                    // was refused holds no place any more.
                    queued.armed = false;
                    return Err(Refusal::Busy(Busy::User));
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Refusal::Busy(Busy::User));
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(LONGEST_POLL);
        }
    }

    fn release(&self) {
        self.inner.writer.send(self.step("release", "", 0));
    }

    fn end(&self, ending: Ending, _holding: bool) {
        // The ending frees the slot, the queue place and the running count by the
        // attempt's id whatever the reservation believes it holds: a slot granted to a
        // dropped future is freed too.
        self.inner
            .writer
            .send(self.step("end", ending.as_str(), millis(self.admitted)));
    }
}

impl RedisHold {
    /// A slot asked for while the store does not answer: the attempt passed the store's
    /// checks when it was admitted, so only `refuse` refuses it.
    fn without_store(&self) -> Result<(), Refusal> {
        let health = &self.inner.writer.health;
        health.decided_without();
        match health.on_outage() {
            OnOutage::Local | OnOutage::DangerAllow => Ok(()),
            _ => Err(Refusal::Unavailable),
        }
    }
}

/// Gives a queue place back if the wait is dropped or runs out while queued.
struct Queued<'a> {
    hold: &'a RedisHold,
    armed: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.hold.inner.writer.send(self.hold.step("leave", "", 0));
        }
    }
}

/// An admission whose answer was not awaited to the end: ends it, queued behind it.
pub(crate) struct Unsent {
    inner: Arc<Inner>,
    attempt: Arc<AttemptKeys>,
    at: SystemTime,
    armed: bool,
}

impl Unsent {
    pub(crate) fn new(inner: Arc<Inner>, attempt: Arc<AttemptKeys>, at: SystemTime) -> Self {
        Self {
            inner,
            attempt,
            at,
            armed: true,
        }
    }

    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Unsent {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Neutral: the client proved nothing, and admitting counted nothing but the
        // running attempt and a slot, which the ending frees. Both scopes' slots are
        // freed, as the scope chosen is unknown here.
        for known in [false, true] {
            self.inner.writer.send(step(
                "end",
                &self.attempt,
                &self.inner.settings,
                millis(self.at),
                known,
                Ending::Neutral.as_str(),
                millis(self.at),
            ));
        }
    }
}
