//! Rate limiting and lockout, consulted by the chain before any method runs.
//!
//! Failures are counted per user and per client address in a sliding window (defaults: 5
//! per user and 20 per address in 5 minutes). Reaching the limit locks the key; each
//! further lockout of the same key doubles the lock (exponential backoff) up to a maximum.
//! A success resets the user's counters. Localhost clients are exempt by default.

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::clock::{SharedClock, system_clock};

/// Who an attempt is from, as far as limiting is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    /// The user named in the attempt.
    pub user: Option<&'a str>,
    /// The client's IP address.
    pub address: Option<IpAddr>,
    /// Whether the client is on this machine.
    pub localhost: bool,
}

/// Which counter refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitedBy {
    /// The per-user counter.
    User,
    /// The per-address counter.
    Address,
}

/// The limiter's answer before an attempt runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Refused until `retry_after` has passed.
    Blocked {
        /// How long until the lock lifts.
        retry_after: Duration,
        /// Which counter is locked.
        by: LimitedBy,
    },
}

/// A rate limiter and lockout store. The in-memory [`MemoryRateLimiter`] serves one
/// process; a shared store (Redis) lets several instances count together.
#[async_trait]
pub trait RateLimiter: Send + Sync + Debug {
    /// Whether an attempt from `subject` may run now.
    async fn check(&self, subject: &Subject<'_>) -> Admission;
    /// Counts a failed attempt (wrong secret, unknown user, locked account).
    async fn record_failure(&self, subject: &Subject<'_>);
    /// Records a success, which resets the user's counters.
    async fn record_success(&self, subject: &Subject<'_>);

    /// Ends an admitted attempt that counts neither way (an outage, nothing applied).
    /// Limiters that reserve a slot in [`check`](Self::check) release it here.
    async fn release(&self, _subject: &Subject<'_>) {}
}

/// Limits and lockout durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Failures per user within `window` that lock the user.
    pub user_failures: u32,
    /// Failures per address within `window` that lock the address.
    pub address_failures: u32,
    /// The sliding window failures are counted in.
    pub window: Duration,
    /// The first lockout's length; each further lockout doubles it.
    pub lockout: Duration,
    /// The longest lockout.
    pub max_lockout: Duration,
    /// Whether localhost clients are never limited.
    pub exempt_localhost: bool,
    /// How many users (and, separately, addresses) are tracked at most. Beyond it, keys
    /// with nothing to remember are dropped first, then the longest-quiet ones, so a
    /// spray of made-up user names cannot grow memory without bound.
    pub max_tracked: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            user_failures: 5,
            address_failures: 20,
            window: Duration::from_secs(300),
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
            exempt_localhost: true,
            max_tracked: 100_000,
        }
    }
}

/// Keeps `map` within `cap` entries before a new key is inserted.
fn make_room<K: Clone + Eq + std::hash::Hash>(
    map: &mut HashMap<K, Counter>,
    now: SystemTime,
    s: &LimitSettings,
) {
    if map.len() < s.max_tracked.max(1) {
        return;
    }
    map.retain(|_, c| !c.stale(now, s));
    if map.len() >= s.max_tracked.max(1) {
        let mut by_age: Vec<(K, Option<SystemTime>)> = map
            .iter()
            .filter(|(_, c)| c.blocked(now).is_none())
            .map(|(k, c)| (k.clone(), c.quiet_since()))
            .collect();
        by_age.sort_by_key(|(_, q)| *q);
        let excess = map.len() + 1 - s.max_tracked.max(1) * 9 / 10;
        for (k, _) in by_age.into_iter().take(excess) {
            map.remove(&k);
        }
    }
}

/// The key an address is counted under: IPv6 clients by their /64, since one host
/// usually holds a whole /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
        v4 => v4,
    }
}

#[derive(Debug, Default)]
struct Counter {
    failures: VecDeque<SystemTime>,
    lockouts: u32,
    blocked_until: Option<SystemTime>,
    last_failure: Option<SystemTime>,
    /// Admitted attempts not yet recorded: they count against the limit, so N concurrent
    /// guesses cannot all pass one check.
    in_flight: u32,
}

impl Counter {
    fn blocked(&self, now: SystemTime) -> Option<Duration> {
        self.blocked_until
            .and_then(|until| until.duration_since(now).ok())
            .filter(|d| !d.is_zero())
    }

    /// Since when nothing has happened to this key: the last failure or the end of the
    /// last lock, whichever is later.
    fn quiet_since(&self) -> Option<SystemTime> {
        match (self.last_failure, self.blocked_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether one more attempt may start now: not locked, and the failures in the window
    /// plus the attempts still running stay under `limit`.
    fn admits(&self, now: SystemTime, limit: u32, window: Duration) -> Result<(), Duration> {
        if let Some(d) = self.blocked(now) {
            return Err(d);
        }
        let recent = self
            .failures
            .iter()
            .filter(|t| now.duration_since(**t).unwrap_or_default() < window)
            .count();
        if recent + self.in_flight as usize >= limit as usize {
            // Busy rather than locked: retry when the running attempts end.
            return Err(Duration::from_secs(1));
        }
        Ok(())
    }

    fn done(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Whether the key holds nothing worth remembering at `now`.
    fn stale(&self, now: SystemTime, s: &LimitSettings) -> bool {
        self.in_flight == 0
            && self.blocked(now).is_none()
            && self.quiet_since().is_none_or(|q| {
                now.duration_since(q).unwrap_or_default() > s.max_lockout.max(s.window)
            })
    }

    fn fail(&mut self, now: SystemTime, limit: u32, s: &LimitSettings) {
        // A long quiet period after the last lock ended forgives earlier lockouts.
        if self
            .quiet_since()
            .is_some_and(|q| now.duration_since(q).unwrap_or_default() > s.max_lockout)
        {
            self.lockouts = 0;
        }
        self.last_failure = Some(now);
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t).unwrap_or_default() >= s.window)
        {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        if self.failures.len() >= limit as usize {
            let factor = 1u32.checked_shl(self.lockouts).unwrap_or(u32::MAX);
            let lock = s.lockout.saturating_mul(factor).min(s.max_lockout);
            self.blocked_until = Some(now + lock);
            self.lockouts = self.lockouts.saturating_add(1);
            self.failures.clear();
        }
    }
}

/// The in-memory [`RateLimiter`] for one process.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    settings: LimitSettings,
    clock: SharedClock,
    users: Mutex<HashMap<String, Counter>>,
    addresses: Mutex<HashMap<IpAddr, Counter>>,
}

impl MemoryRateLimiter {
    /// A limiter with `settings` on the system clock.
    pub fn new(settings: LimitSettings) -> Self {
        Self::with_clock(settings, system_clock())
    }

    /// A limiter with `settings` reading time from `clock`.
    pub fn with_clock(settings: LimitSettings, clock: SharedClock) -> Self {
        Self {
            settings,
            clock,
            users: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
        }
    }

    fn exempt(&self, subject: &Subject<'_>) -> bool {
        self.settings.exempt_localhost && subject.localhost
    }
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new(LimitSettings::default())
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, subject: &Subject<'_>) -> Admission {
        if self.exempt(subject) {
            return Admission::Allowed;
        }
        let now = self.clock.now();
        let s = &self.settings;
        // Both maps locked in one order (users, then addresses) everywhere both are held.
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(user) = subject.user
            && let Some(Err(retry_after)) = users
                .get(user)
                .map(|c| c.admits(now, s.user_failures, s.window))
        {
            return Admission::Blocked {
                retry_after,
                by: LimitedBy::User,
            };
        }
        if let Some(ip) = subject.address
            && let Some(Err(retry_after)) = addresses
                .get(&address_key(ip))
                .map(|c| c.admits(now, s.address_failures, s.window))
        {
            return Admission::Blocked {
                retry_after,
                by: LimitedBy::Address,
            };
        }
        // Admitted: reserve a slot under each key until the outcome is recorded.
        if let Some(user) = subject.user {
            if !users.contains_key(user) {
                make_room(&mut users, now, s);
            }
            users.entry(user.to_owned()).or_default().in_flight += 1;
        }
        if let Some(ip) = subject.address {
            let key = address_key(ip);
            if !addresses.contains_key(&key) {
                make_room(&mut addresses, now, s);
            }
            addresses.entry(key).or_default().in_flight += 1;
        }
        Admission::Allowed
    }

    async fn record_failure(&self, subject: &Subject<'_>) {
        if self.exempt(subject) {
            return;
        }
        let now = self.clock.now();
        let s = &self.settings;
        if let Some(user) = subject.user {
            let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
            if !users.contains_key(user) {
                make_room(&mut users, now, s);
            }
            let counter = users.entry(user.to_owned()).or_default();
            counter.done();
            counter.fail(now, s.user_failures, s);
        }
        if let Some(ip) = subject.address {
            let mut addresses = self
                .addresses
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let key = address_key(ip);
            if !addresses.contains_key(&key) {
                make_room(&mut addresses, now, s);
            }
            let counter = addresses.entry(key).or_default();
            counter.done();
            counter.fail(now, s.address_failures, s);
        }
    }

    async fn record_success(&self, subject: &Subject<'_>) {
        if self.exempt(subject) {
            return;
        }
        // Only the user's counters reset: resetting the address too would let an attacker
        // holding one valid account clear their address between guesses at others.
        if let Some(user) = subject.user {
            let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = users.get_mut(user) {
                c.done();
                let in_flight = c.in_flight;
                *c = Counter {
                    in_flight,
                    ..Counter::default()
                };
            }
        }
        self.release_address(subject);
    }

    async fn release(&self, subject: &Subject<'_>) {
        if self.exempt(subject) {
            return;
        }
        if let Some(user) = subject.user
            && let Some(c) = self
                .users
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(user)
        {
            c.done();
        }
        self.release_address(subject);
    }
}

impl MemoryRateLimiter {
    fn release_address(&self, subject: &Subject<'_>) {
        if let Some(ip) = subject.address
            && let Some(c) = self
                .addresses
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(&address_key(ip))
        {
            c.done();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    fn limiter() -> (MemoryRateLimiter, ManualClock) {
        let clock = ManualClock::at_fixed_epoch();
        (
            MemoryRateLimiter::with_clock(LimitSettings::default(), Arc::new(clock.clone())),
            clock,
        )
    }

    fn remote(user: &str, ip: &str) -> Subject<'static> {
        Subject {
            user: Some(Box::leak(user.to_owned().into_boxed_str())),
            address: Some(ip.parse().unwrap()),
            localhost: false,
        }
    }

    #[tokio::test]
    async fn five_user_failures_lock_the_user_then_backoff_doubles() {
        let (l, clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        for _ in 0..4 {
            l.record_failure(&s).await;
            assert_eq!(l.check(&s).await, Admission::Allowed);
        }
        l.record_failure(&s).await;
        assert_eq!(
            l.check(&s).await,
            Admission::Blocked {
                retry_after: Duration::from_secs(60),
                by: LimitedBy::User
            }
        );
        // Another user from another address is unaffected.
        assert_eq!(
            l.check(&remote("bob", "10.0.0.2")).await,
            Admission::Allowed
        );
        clock.advance(Duration::from_secs(60));
        assert_eq!(l.check(&s).await, Admission::Allowed);
        for _ in 0..5 {
            l.record_failure(&s).await;
        }
        assert!(matches!(
            l.check(&s).await,
            Admission::Blocked { retry_after, .. } if retry_after == Duration::from_secs(120)
        ));
    }

    #[tokio::test]
    async fn failures_outside_the_window_do_not_count() {
        let (l, clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        for _ in 0..4 {
            l.record_failure(&s).await;
        }
        clock.advance(Duration::from_secs(300));
        l.record_failure(&s).await;
        assert_eq!(l.check(&s).await, Admission::Allowed);
    }

    #[tokio::test]
    async fn twenty_failures_from_one_address_lock_the_address() {
        let (l, _clock) = limiter();
        for i in 0..20 {
            l.record_failure(&remote(&format!("user{i}"), "10.9.9.9"))
                .await;
        }
        assert!(matches!(
            l.check(&remote("fresh", "10.9.9.9")).await,
            Admission::Blocked {
                by: LimitedBy::Address,
                ..
            }
        ));
        assert_eq!(
            l.check(&remote("fresh", "10.9.9.8")).await,
            Admission::Allowed
        );
    }

    #[tokio::test]
    async fn success_resets_the_user_but_not_the_address() {
        let (l, _clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        for _ in 0..4 {
            l.record_failure(&s).await;
        }
        l.record_success(&s).await;
        for _ in 0..4 {
            l.record_failure(&s).await;
        }
        assert_eq!(l.check(&s).await, Admission::Allowed);
        assert_eq!(
            l.addresses.lock().unwrap()[&"10.0.0.1".parse().unwrap()]
                .failures
                .len(),
            8
        );
    }

    #[tokio::test]
    async fn localhost_is_exempt_unless_configured_otherwise() {
        let (l, _clock) = limiter();
        let local = Subject {
            user: Some("postgres"),
            address: Some("127.0.0.1".parse().unwrap()),
            localhost: true,
        };
        for _ in 0..50 {
            l.record_failure(&local).await;
        }
        assert_eq!(l.check(&local).await, Admission::Allowed);

        let strict = MemoryRateLimiter::new(LimitSettings {
            exempt_localhost: false,
            ..LimitSettings::default()
        });
        for _ in 0..5 {
            strict.record_failure(&local).await;
        }
        assert!(matches!(
            strict.check(&local).await,
            Admission::Blocked { .. }
        ));
    }

    #[tokio::test]
    async fn waiting_out_a_capped_lock_does_not_reset_the_backoff() {
        let (l, clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        for _ in 0..8 {
            for _ in 0..5 {
                l.record_failure(&s).await;
            }
            if let Admission::Blocked { retry_after, .. } = l.check(&s).await {
                clock.advance(retry_after + Duration::from_secs(1));
            }
        }
        for _ in 0..5 {
            l.record_failure(&s).await;
        }
        assert!(matches!(
            l.check(&s).await,
            Admission::Blocked { retry_after, .. } if retry_after == Duration::from_secs(3600)
        ));
        // A quiet hour after the lock ends forgives.
        clock.advance(Duration::from_secs(3600 + 3601));
        for _ in 0..5 {
            l.record_failure(&s).await;
        }
        assert!(matches!(
            l.check(&s).await,
            Admission::Blocked { retry_after, .. } if retry_after == Duration::from_secs(60)
        ));
    }

    #[tokio::test]
    async fn ipv6_clients_are_counted_by_their_64() {
        let (l, _clock) = limiter();
        for i in 0..20u16 {
            l.record_failure(&remote(&format!("u{i}"), &format!("2001:db8:1:2::{i:x}")))
                .await;
        }
        assert!(matches!(
            l.check(&remote("fresh", "2001:db8:1:2:ffff::1")).await,
            Admission::Blocked {
                by: LimitedBy::Address,
                ..
            }
        ));
        assert_eq!(
            l.check(&remote("fresh", "2001:db8:1:3::1")).await,
            Admission::Allowed
        );
    }

    #[tokio::test]
    async fn a_spray_of_user_names_stays_within_the_cap_and_keeps_locks() {
        let clock = ManualClock::at_fixed_epoch();
        let l = MemoryRateLimiter::with_clock(
            LimitSettings {
                max_tracked: 100,
                address_failures: u32::MAX,
                ..LimitSettings::default()
            },
            Arc::new(clock.clone()),
        );
        let victim = remote("victim", "10.0.0.1");
        for _ in 0..5 {
            l.record_failure(&victim).await;
        }
        for i in 0..1000 {
            clock.advance(Duration::from_millis(10));
            l.record_failure(&remote(&format!("spray{i}"), "10.0.0.2"))
                .await;
        }
        assert!(l.users.lock().unwrap().len() <= 100);
        assert!(
            matches!(l.check(&victim).await, Admission::Blocked { .. }),
            "a live lock survives"
        );
    }

    #[tokio::test]
    async fn concurrent_attempts_cannot_all_pass_one_check() {
        let (l, _clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        let mut admitted = 0;
        for _ in 0..10 {
            if l.check(&s).await == Admission::Allowed {
                admitted += 1;
            }
        }
        assert_eq!(
            admitted, 5,
            "no more running attempts than failures allowed"
        );
        // Outcomes that count neither way give their slot back.
        l.release(&s).await;
        assert_eq!(l.check(&s).await, Admission::Allowed);
    }

    #[tokio::test]
    async fn lockout_is_capped() {
        let (l, clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        let mut last = Duration::ZERO;
        for _ in 0..10 {
            for _ in 0..5 {
                l.record_failure(&s).await;
            }
            if let Admission::Blocked { retry_after, .. } = l.check(&s).await {
                last = retry_after;
                clock.advance(retry_after);
            }
        }
        assert_eq!(last, Duration::from_secs(3600));
    }
}
