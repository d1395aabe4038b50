//! The rate limiter on Redis: auth-core's semantics table, shared by every process that
//! uses the same store and key prefix.

mod hold;
mod keys;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use auth_core::MemoryRateLimiter;
use auth_core::audit::AuditSink;
use auth_core::clock::{SharedClock, system_clock};
use auth_core::rate_limit::{
    Busy, LimitSettings, LockScope, RateLimiter, Refusal, Reservation, Subject,
};
use redis::Value;

use crate::outage::{Component, OnOutage};
use crate::settings::RedisOptions;
use crate::writer::{NoAnswer, Writer};
use hold::{RedisHold, Unsent};
pub(crate) use keys::millis;
use keys::{AttemptKeys, StepSettings, step};

/// The Lua source of every step.
const SCRIPT: &str = include_str!("limiter.lua");

/// A [`RateLimiter`] whose counts, locks and known networks live in Redis, so that every
/// gateway on the same store and key prefix counts together and a restart forgets
/// nothing. Each step is one Lua script; all of one process's steps go out in order
/// through one task, batched into pipelines.
///
/// While the store does not answer within the response timeout, attempts are decided as
/// [`OnOutage`] says (refused by default), and the outage is audited.
///
/// ```no_run
/// use std::sync::Arc;
/// use auth_core::rate_limit::LimitSettings;
/// use auth_redis::{RedisOptions, RedisRateLimiter};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let options = RedisOptions::new("rediss://redis.internal:6380")?
///     .with_ca_pem(std::fs::read("redis-ca.pem")?);
/// let limiter: Arc<dyn auth_core::RateLimiter> =
///     Arc::new(RedisRateLimiter::connect(options, LimitSettings::default()).await?);
/// // Engine::builder(...).rate_limiter(limiter), as with the in-memory limiter.
/// # let _ = limiter; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) writer: Writer,
    pub(crate) settings: StepSettings,
    pub(crate) limits: LimitSettings,
    pub(crate) clock: SharedClock,
    local: MemoryRateLimiter,
    prefix: String,
    /// This process's ids are `<instance>:<n>`: unique across gateways on one store.
    instance: String,
    next: AtomicU64,
    /// The limits another gateway on this store counted by, when they differ from ours.
    others: std::sync::OnceLock<String>,
}

/// The steps one limiter has sent, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepCounts {
    /// Steps whose answer an attempt awaited (admission, a slot taken after a wait or a
    /// round trip to the client).
    pub awaited: u64,
    /// Steps sent without awaiting the answer (a slot given back, an ending).
    pub sent: u64,
    /// Pipelines written to the store: each is one round trip, carrying every step that
    /// queued while the previous one was out.
    pub pipelines: u64,
}

/// Why a limiter could not be made.
#[derive(Debug, thiserror::Error)]
#[error("the Redis rate limiter cannot start: {0}")]
pub struct StartError(pub(crate) String);

impl RedisRateLimiter {
    /// A limiter on the store `options` names, counting by `limits`, on the system clock
    /// and without an audit sink; see [`builder`](Self::builder) for those. Connects
    /// within the connect timeout; a store that does not answer yet is tried again
    /// every retry interval (attempts meanwhile are decided as [`OnOutage`] says).
    pub async fn connect(options: RedisOptions, limits: LimitSettings) -> Result<Self, StartError> {
        Self::builder(options, limits).connect().await
    }

    /// A builder, for the clock and the audit sink.
    pub fn builder(options: RedisOptions, limits: LimitSettings) -> RedisRateLimiterBuilder {
        RedisRateLimiterBuilder {
            options,
            limits,
            clock: system_clock(),
            audit: None,
        }
    }

    /// The steps sent so far.
    pub fn steps(&self) -> StepCounts {
        let c = &self.inner.writer.counts;
        StepCounts {
            awaited: c.awaited.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            pipelines: c.pipelines.load(Ordering::Relaxed),
        }
    }

    /// Whether the store answered the last step (or the last probe).
    pub fn store_up(&self) -> bool {
        self.inner.writer.health.is_up()
    }

    /// The limits another gateway on this store counted by when this one started, if
    /// they differ from this one's (`user_failures,address_failures,window ms,...`).
    /// Every gateway on one store and prefix should count by the same `[rate_limit]`;
    /// the difference is also logged as a warning.
    pub fn other_limits(&self) -> Option<&str> {
        self.inner.others.get().map(String::as_str)
    }

    /// Writes this gateway's limits to the store and compares them with those written
    /// before.
    async fn compare_limits(&self) {
        let i = &self.inner;
        let keys = AttemptKeys::for_limits(&i.prefix);
        let cmd = step(
            "limits",
            &keys,
            &i.settings,
            millis(i.clock.now()),
            false,
            "",
            0,
        );
        let Ok(Value::BulkString(before)) = i.writer.call(cmd).await else {
            return;
        };
        let before = String::from_utf8_lossy(&before).into_owned();
        let mine = i.settings.joined();
        if before != mine {
            tracing::warn!(
                "another gateway on this Redis counted with different [rate_limit] settings \
                 ({before}; this one: {mine}): each counts shared failures by its own limits; \
                 give every gateway on the store the same [rate_limit]"
            );
            let _ = i.others.set(before);
        }
    }

    /// Asks the store once (a step that changes nothing) and says how it went: the round
    /// trip's time, or why it failed and what decides meanwhile. A readiness check.
    pub async fn probe(&self) -> Result<String, String> {
        let started = std::time::Instant::now();
        match self.inner.writer.call(ping_step(&self.inner)).await {
            Ok(_) => Ok(format!(
                "answers in {:.1} ms",
                started.elapsed().as_secs_f64() * 1000.0
            )),
            Err(e) => Err(format!(
                "{}; logins are decided with on_outage = {}",
                match e {
                    NoAnswer::Down => "does not answer".to_owned(),
                    NoAnswer::Error(e) => format!("answered an error: {e}"),
                },
                self.inner.writer.health.on_outage()
            )),
        }
    }

    /// Waits until the store is up (`true`: a probe found it again) or down (`false`).
    pub async fn store_changed_to(&self, up: bool) {
        self.inner.writer.health.until(up).await;
    }

    /// The limits.
    pub fn limits(&self) -> &LimitSettings {
        &self.inner.limits
    }

    /// The decision for `subject` while the store does not answer.
    fn without_store(&self, subject: &Subject<'_>) -> Result<Reservation, Refusal> {
        let health = &self.inner.writer.health;
        health.decided_without();
        match health.on_outage() {
            OnOutage::Local => match self.inner.local.try_admit(subject) {
                Some(answer) => answer,
                None => Err(Refusal::Unavailable),
            },
            OnOutage::DangerAllow => Ok(Reservation::unlimited()),
            _ => Err(Refusal::Unavailable),
        }
    }
}

/// Builds a [`RedisRateLimiter`].
#[derive(Debug)]
pub struct RedisRateLimiterBuilder {
    options: RedisOptions,
    limits: LimitSettings,
    clock: SharedClock,
    audit: Option<Arc<dyn AuditSink>>,
}

impl RedisRateLimiterBuilder {
    /// Reads time from `clock` (tests drive it); the store keeps every deadline in the
    /// caller's time.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Records outages (`store_unavailable`, `store_recovered`) in `audit`.
    #[must_use]
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Starts the limiter's task on the current runtime and tries the store once, within
    /// the connect timeout.
    pub async fn connect(self) -> Result<RedisRateLimiter, StartError> {
        let o = &self.options;
        let writer = Writer::open(
            o,
            Component::RateLimiter,
            self.audit,
            self.clock.clone(),
            SCRIPT,
        )?;
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).map_err(|e| StartError(e.to_string()))?;
        let limiter = RedisRateLimiter {
            inner: Arc::new(Inner {
                settings: StepSettings::new(&self.limits, o.slot_lease, o.attempt_lease),
                local: MemoryRateLimiter::with_clock(self.limits.clone(), self.clock.clone()),
                limits: self.limits,
                clock: self.clock,
                prefix: o.key_prefix.clone(),
                instance: format!("{:016x}", u64::from_le_bytes(raw)),
                next: AtomicU64::new(0),
                others: std::sync::OnceLock::new(),
                writer,
            }),
        };
        // The first connection (and TLS handshake) may take longer than one answer may:
        // it gets the connect timeout, and the outage policy decides until it succeeds.
        let _ = tokio::time::timeout(
            o.connect_timeout,
            limiter.inner.writer.call(ping_step(&limiter.inner)),
        )
        .await;
        limiter.compare_limits().await;
        Ok(limiter)
    }
}

/// A harmless step (an unknown attempt's `release`) that warms the connection and loads
/// the script.
fn ping_step(inner: &Inner) -> redis::Cmd {
    let nobody = Subject {
        user: None,
        address: None,
        localhost: false,
    };
    let keys = AttemptKeys::new(&inner.prefix, "warm-up".to_owned(), &nobody);
    step(
        "release",
        &keys,
        &inner.settings,
        millis(inner.clock.now()),
        false,
        "",
        0,
    )
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    fn try_admit(&self, subject: &Subject<'_>) -> Option<Result<Reservation, Refusal>> {
        if self.inner.limits.exempt_localhost && subject.localhost {
            return Some(Ok(Reservation::unlimited()));
        }
        if !self.inner.writer.health.is_up() {
            return Some(self.without_store(subject));
        }
        None
    }

    async fn admit(&self, subject: &Subject<'_>) -> Result<Reservation, Refusal> {
        if let Some(answer) = self.try_admit(subject) {
            return answer;
        }
        let inner = &self.inner;
        let id = format!(
            "{}:{}",
            inner.instance,
            inner.next.fetch_add(1, Ordering::Relaxed)
        );
        let attempt = Arc::new(AttemptKeys::new(&inner.prefix, id, subject));
        let now = inner.clock.now();
        let take_slot = if attempt.has_user { "1" } else { "0" };
        let cmd = step(
            "admit",
            &attempt,
            &inner.settings,
            millis(now),
            false,
            take_slot,
            0,
        );
        // Dropped while awaiting the answer (the client hung up): the admission is undone
        // by an ending queued behind it.
        let unsent = Unsent::new(inner.clone(), attempt.clone(), now);
        let answer = inner.writer.call(cmd).await;
        unsent.disarm();
        let reply = match answer {
            Ok(v) => ints(&v),
            Err(NoAnswer::Down) => return self.without_store(subject),
            Err(NoAnswer::Error(e)) => {
                tracing::error!("rate limiter script failed: {e}");
                return self.without_store(subject);
            }
        };
        match reply.as_slice() {
            [0, known, slot] => Ok(Reservation::new(RedisHold::new(
                inner.clone(),
                attempt,
                *known == 1,
                *slot == 1,
                now,
            ))),
            [1, ms, scope] => Err(locked(*ms, *scope)),
            [2, 0] => Err(Refusal::Busy(Busy::Address)),
            [2, _] => Err(Refusal::Busy(Busy::User)),
            other => {
                tracing::error!("rate limiter script answered {other:?} to admit");
                self.without_store(subject)
            }
        }
    }
}

/// The integers of a script's array answer.
pub(crate) fn ints(v: &Value) -> Vec<i64> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Int(n) => *n,
                _ => -1,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A lock the script reported: `ms` left, scope 0 user, 1 address, 2 user at address.
pub(crate) fn locked(ms: i64, scope: i64) -> Refusal {
    Refusal::Locked {
        retry_after: std::time::Duration::from_millis(u64::try_from(ms.max(1)).unwrap_or(1)),
        scope: match scope {
            1 => LockScope::Address,
            2 => LockScope::UserAtAddress,
            _ => LockScope::User,
        },
    }
}
