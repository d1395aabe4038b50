//! The in-memory limiter for one process.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::counter::{Counter, Table, Tracked, entry};
use super::{
    Busy, Ending, Hold, LimitSettings, LockScope, RateLimiter, Refusal, Reservation, Subject,
    address_key, network_key,
};
use crate::clock::{SharedClock, system_clock};

/// One user: the failures at networks not known for them, and per known network its
/// latest success and its own failures (smart lockout).
#[derive(Debug, Default)]
struct UserEntry {
    unknown: Counter,
    known: Vec<KnownNetwork>,
}

#[derive(Debug)]
struct KnownNetwork {
    net: IpAddr,
    last_success: SystemTime,
    counter: Counter,
}

impl UserEntry {
    /// `net` if a success from it within `known_for` made it known.
    fn knows(&self, net: IpAddr, now: SystemTime, s: &LimitSettings) -> bool {
        self.known.iter().any(|k| {
            k.net == net && now.duration_since(k.last_success).unwrap_or_default() < s.known_for
        })
    }

    /// The counter of a scope: a known network's, or the unknown networks' for `None`.
    fn counter(&mut self, net: Option<IpAddr>) -> &mut Counter {
        let Some(net) = net else {
            return &mut self.unknown;
        };
        let i = match self.known.iter().position(|k| k.net == net) {
            Some(i) => i,
            // Forgotten since admission (cannot happen while it runs): keep counting.
            None => {
                self.known.push(KnownNetwork {
                    net,
                    last_success: SystemTime::UNIX_EPOCH,
                    counter: Counter::default(),
                });
                self.known.len() - 1
            }
        };
        &mut self.known[i].counter
    }

    /// Makes `net` known from `now`, within `max_known_per_user`: the idle network with
    /// the oldest success gives way; when none is idle, `net` is not remembered.
    fn remember(&mut self, net: IpAddr, now: SystemTime, s: &LimitSettings) {
        if let Some(k) = self.known.iter_mut().find(|k| k.net == net) {
            k.last_success = now;
            return;
        }
        let fresh = KnownNetwork {
            net,
            last_success: now,
            counter: Counter::default(),
        };
        if self.known.len() < s.max_known_per_user.max(1) {
            self.known.push(fresh);
        } else if let Some(oldest) = self
            .known
            .iter_mut()
            .filter(|k| !k.counter.busy(now))
            .min_by_key(|k| k.last_success)
        {
            *oldest = fresh;
        }
    }
}

impl Tracked for UserEntry {
    fn stale(&self, now: SystemTime, s: &LimitSettings) -> bool {
        self.unknown.stale(now, s)
            && self.known.iter().all(|k| {
                k.counter.stale(now, s)
                    && now.duration_since(k.last_success).unwrap_or_default() >= s.known_for
            })
    }
    fn busy(&self, now: SystemTime) -> bool {
        self.unknown.busy(now) || self.known.iter().any(|k| k.counter.busy(now))
    }
    fn in_use(&self) -> bool {
        self.unknown.in_use() || self.known.iter().any(|k| k.counter.in_use())
    }
    /// Users with known networks go last: a spray of made-up names must not wipe what
    /// smart lockout knows about real users.
    fn rank(&self, now: SystemTime, s: &LimitSettings) -> (bool, Option<SystemTime>) {
        let knows = self
            .known
            .iter()
            .any(|k| now.duration_since(k.last_success).unwrap_or_default() < s.known_for);
        let latest = self
            .known
            .iter()
            .map(|k| Some(k.last_success))
            .chain([self.unknown.quiet_since()])
            .max()
            .flatten();
        (knows, latest)
    }
}

#[derive(Debug, Default)]
struct State {
    users: Table<Arc<str>, UserEntry>,
    addresses: Table<IpAddr, Counter>,
}

#[derive(Debug)]
struct Inner {
    settings: LimitSettings,
    clock: SharedClock,
    state: Mutex<State>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What is in flight in a [`MemoryRateLimiter`], summed over every key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Running {
    /// Attempts admitted and not yet ended.
    pub attempts: u32,
    /// Verifications holding a slot.
    pub verifying: u32,
    /// Attempts waiting for a slot.
    pub waiting: u32,
}

/// The in-memory [`RateLimiter`] for one process; the semantics are the module's table.
#[derive(Debug, Clone)]
pub struct MemoryRateLimiter {
    inner: Arc<Inner>,
}

impl MemoryRateLimiter {
    /// A limiter with `settings` on the system clock.
    pub fn new(settings: LimitSettings) -> Self {
        Self::with_clock(settings, system_clock())
    }

    /// A limiter with `settings` reading time from `clock`.
    pub fn with_clock(settings: LimitSettings, clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                clock,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LimitSettings {
        &self.inner.settings
    }

    /// What is in flight now: with every attempt ended, all zero.
    pub fn running(&self) -> Running {
        let st = self.inner.state();
        let mut r = Running {
            attempts: st.addresses.values().map(|c| c.running).sum(),
            ..Running::default()
        };
        for u in st.users.values() {
            for c in std::iter::once(&u.unknown).chain(u.known.iter().map(|k| &k.counter)) {
                r.verifying += c.running;
                r.waiting += c.waiting;
            }
        }
        r
    }

    /// How many keys the tables hold: (users, addresses).
    pub fn tracked(&self) -> (usize, usize) {
        let st = self.inner.state();
        (st.users.len(), st.addresses.len())
    }

    /// Whether `ip`'s network is known for `user` now.
    pub fn is_known(&self, user: &str, ip: IpAddr) -> bool {
        let now = self.inner.clock.now();
        self.inner
            .state()
            .users
            .get(user)
            .is_some_and(|u| u.knows(network_key(ip), now, &self.inner.settings))
    }
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new(LimitSettings::default())
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    fn try_admit(&self, subject: &Subject<'_>) -> Option<Result<Reservation, Refusal>> {
        Some(self.admit_now(subject))
    }

    async fn admit(&self, subject: &Subject<'_>) -> Result<Reservation, Refusal> {
        self.admit_now(subject)
    }
}

impl MemoryRateLimiter {
    fn admit_now(&self, subject: &Subject<'_>) -> Result<Reservation, Refusal> {
        let s = &self.inner.settings;
        if s.exempt_localhost && subject.localhost {
            return Ok(Reservation::unlimited());
        }
        let now = self.inner.clock.now();
        let mut st = self.inner.state();
        let address = subject.address.map(address_key);
        if let Some(a) = &address {
            // Inserted even when refused: the caps clean empty entries up.
            let c = entry(&mut st.addresses, a, now, s);
            if let Some(retry_after) = c.has_history().then(|| c.blocked(now)).flatten() {
                return Err(Refusal::Locked {
                    retry_after,
                    scope: LockScope::Address,
                });
            }
            if c.running >= s.max_running_per_address {
                return Err(Refusal::Busy(Busy::Address));
            }
            c.running += 1;
        }
        let mut scope = None;
        if let Some(user) = subject.user {
            let (key, net) = match st.users.get_key_value(user) {
                Some((key, u)) => {
                    let net = subject
                        .address
                        .map(network_key)
                        .filter(|net| u.knows(*net, now, s));
                    let c = match net {
                        Some(net) => u.known.iter().find(|k| k.net == net).map(|k| &k.counter),
                        None => Some(&u.unknown),
                    };
                    if let Some(retry_after) =
                        c.filter(|c| c.has_history()).and_then(|c| c.blocked(now))
                    {
                        if let Some(a) = &address
                            && let Some(c) = st.addresses.get_mut(a)
                        {
                            c.running = c.running.saturating_sub(1);
                        }
                        return Err(Refusal::Locked {
                            retry_after,
                            scope: lock_scope(net),
                        });
                    }
                    (key.clone(), net)
                }
                None => (Arc::from(user), None),
            };
            scope = Some(Scope { user: key, net });
        }
        drop(st);
        Ok(Reservation::new(MemoryHold {
            inner: self.inner.clone(),
            scope,
            address,
            admitted: now,
        }))
    }
}

fn lock_scope(net: Option<IpAddr>) -> LockScope {
    match net {
        Some(_) => LockScope::UserAtAddress,
        None => LockScope::User,
    }
}

/// The user scope an attempt was admitted to.
#[derive(Debug)]
struct Scope {
    user: Arc<str>,
    /// The known network, or `None` for the user at unknown networks.
    net: Option<IpAddr>,
}

/// One attempt's claim on a [`MemoryRateLimiter`].
#[derive(Debug)]
struct MemoryHold {
    inner: Arc<Inner>,
    scope: Option<Scope>,
    address: Option<IpAddr>,
    /// When the attempt was admitted: the time a success is remembered at.
    admitted: SystemTime,
}

/// Counts one waiter of a scope for as long as it lives, so that a waiter dropped
/// mid-wait leaves no count behind.
struct Queued<'a> {
    inner: &'a Inner,
    scope: &'a Scope,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if let Some(u) = self.inner.state().users.get_mut(&*self.scope.user) {
            let c = u.counter(self.scope.net);
            c.waiting = c.waiting.saturating_sub(1);
        }
    }
}

/// What one look at a scope's counter decided.
enum Look {
    Decided(Result<(), Refusal>),
    /// Queued: wait for this notification, then look again.
    Wait(tokio::sync::futures::OwnedNotified),
}

impl MemoryHold {
    /// Takes a slot, refuses, or (when `queue`) joins the waiters.
    fn look(&self, scope: &Scope, queue: bool) -> Look {
        let s = &self.inner.settings;
        let mut st = self.inner.state();
        let c = entry(&mut st.users, &scope.user, self.admitted, s).counter(scope.net);
        // Only a counter with failures or a lock needs the time.
        let now = c.has_history().then(|| self.inner.clock.now());
        if let Some(retry_after) = now.and_then(|now| c.blocked(now)) {
            return Look::Decided(Err(Refusal::Locked {
                retry_after,
                scope: lock_scope(scope.net),
            }));
        }
        let recent = now.map_or(0, |now| c.recent(now, s.window));
        if recent + (c.running as usize) < s.user_failures as usize {
            c.running += 1;
            return Look::Decided(Ok(()));
        }
        if !queue || c.waiting >= s.max_waiting_per_user {
            return Look::Decided(Err(Refusal::Busy(Busy::User)));
        }
        c.waiting += 1;
        // Created under the state lock, and waking happens under it too: no wake between
        // this look and the await is missed.
        Look::Wait(c.waker().notified_owned())
    }
}

#[async_trait]
impl Hold for MemoryHold {
    fn try_acquire(&self) -> Option<Result<(), Refusal>> {
        let Some(scope) = &self.scope else {
            return Some(Ok(()));
        };
        match self.look(scope, false) {
            Look::Decided(Err(Refusal::Busy(_))) | Look::Wait(_) => None,
            Look::Decided(done) => Some(done),
        }
    }

    async fn acquire(&self, wait: Duration) -> Result<(), Refusal> {
        let Some(scope) = &self.scope else {
            return Ok(());
        };
        // A link timeout of "forever" (Duration::MAX) must not overflow the deadline.
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(wait)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
        loop {
            let notified = match self.look(scope, true) {
                Look::Decided(done) => return done,
                Look::Wait(notified) => notified,
            };
            let queued = Queued {
                inner: &self.inner,
                scope,
            };
            let woken = tokio::time::timeout_at(deadline, notified).await.is_ok();
            drop(queued);
            if !woken {
                return Err(Refusal::Busy(Busy::User));
            }
        }
    }

    fn release(&self) {
        if let Some(scope) = &self.scope
            && let Some(u) = self.inner.state().users.get_mut(&*scope.user)
        {
            let c = u.counter(scope.net);
            c.running = c.running.saturating_sub(1);
            c.wake_all();
        }
    }

    fn end(&self, ending: Ending, holding: bool) {
        let s = &self.inner.settings;
        // A failure is counted when it happened; anything else needs only the admission
        // time (a success's network is remembered from then).
        let now = match ending {
            Ending::Failed | Ending::Abandoned | Ending::Malformed => self.inner.clock.now(),
            Ending::Succeeded | Ending::Neutral => self.admitted,
        };
        let mut st = self.inner.state();
        if let Some(scope) = &self.scope {
            let u = entry(&mut st.users, &scope.user, now, s);
            let c = u.counter(scope.net);
            if holding {
                c.running = c.running.saturating_sub(1);
            }
            match ending {
                Ending::Succeeded => c.reset(),
                Ending::Failed => c.fail(now, s.user_failures, s),
                Ending::Abandoned | Ending::Malformed | Ending::Neutral => {}
            }
            c.wake_all();
            if ending == Ending::Succeeded
                && let Some(ip) = self.address
            {
                u.remember(network_key(ip), now, s);
            }
        }
        if let Some(a) = &self.address {
            let c = entry(&mut st.addresses, a, now, s);
            c.running = c.running.saturating_sub(1);
            if matches!(
                ending,
                Ending::Failed | Ending::Abandoned | Ending::Malformed
            ) {
                c.fail(now, s.address_failures, s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn limiter() -> (MemoryRateLimiter, ManualClock) {
        limiter_with(LimitSettings::default())
    }

    fn limiter_with(settings: LimitSettings) -> (MemoryRateLimiter, ManualClock) {
        let clock = ManualClock::at_fixed_epoch();
        (
            MemoryRateLimiter::with_clock(settings, Arc::new(clock.clone())),
            clock,
        )
    }

    /// A limiter tracking 100 keys per table, with no address limit in the way.
    fn small_limiter() -> (MemoryRateLimiter, ManualClock) {
        limiter_with(LimitSettings {
            max_tracked: 100,
            address_failures: u32::MAX,
            ..LimitSettings::default()
        })
    }

    fn remote<'a>(user: &'a str, ip: &str) -> Subject<'a> {
        Subject {
            user: Some(user),
            address: Some(ip.parse().unwrap()),
            localhost: false,
        }
    }

    /// One whole attempt that verifies and ends with `ending`; the refusal if refused.
    async fn attempt(l: &MemoryRateLimiter, s: &Subject<'_>, ending: Ending) -> Option<Refusal> {
        let r = match l.admit(s).await {
            Ok(r) => r,
            Err(refusal) => return Some(refusal),
        };
        if let Err(refusal) = r.verify(Duration::ZERO).await {
            r.finish(Ending::Neutral);
            return Some(refusal);
        }
        r.finish(ending);
        None
    }

    fn locked(scope: LockScope, secs: u64) -> Option<Refusal> {
        Some(Refusal::Locked {
            retry_after: Duration::from_secs(secs),
            scope,
        })
    }

    #[tokio::test]
    async fn five_user_failures_lock_the_user_then_backoff_doubles() {
        let (l, clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        for _ in 0..5 {
            assert_eq!(attempt(&l, &s, Ending::Failed).await, None);
        }
        assert_eq!(
            attempt(&l, &s, Ending::Succeeded).await,
            locked(LockScope::User, 60)
        );
        // Another user from another address is unaffected.
        assert_eq!(
            attempt(&l, &remote("bob", "10.0.0.2"), Ending::Succeeded).await,
            None
        );
        clock.advance(Duration::from_secs(60));
        for _ in 0..5 {
            assert_eq!(attempt(&l, &s, Ending::Failed).await, None);
        }
        assert_eq!(
            attempt(&l, &s, Ending::Failed).await,
            locked(LockScope::User, 120)
        );
        assert_eq!(l.running(), Running::default());
    }

    #[tokio::test]
    async fn failures_outside_the_window_do_not_count() {
        let (l, clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        for _ in 0..4 {
            attempt(&l, &s, Ending::Failed).await;
        }
        clock.advance(Duration::from_secs(300));
        attempt(&l, &s, Ending::Failed).await;
        assert_eq!(attempt(&l, &s, Ending::Failed).await, None);
    }

    #[tokio::test]
    async fn twenty_failures_from_one_address_lock_the_address() {
        let (l, _clock) = limiter();
        for i in 0..20 {
            let user = format!("user{i}");
            attempt(&l, &remote(&user, "10.9.9.9"), Ending::Failed).await;
        }
        assert_eq!(
            attempt(&l, &remote("fresh", "10.9.9.9"), Ending::Succeeded).await,
            locked(LockScope::Address, 60)
        );
        assert_eq!(
            attempt(&l, &remote("fresh", "10.9.9.8"), Ending::Succeeded).await,
            None
        );
    }

    #[tokio::test]
    async fn abandoned_and_malformed_count_against_the_address_only() {
        let (l, _clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        for i in 0..20 {
            let ending = if i % 2 == 0 {
                Ending::Abandoned
            } else {
                Ending::Malformed
            };
            attempt(&l, &s, ending).await;
        }
        assert_eq!(
            attempt(&l, &s, Ending::Succeeded).await,
            locked(LockScope::Address, 60)
        );
        assert_eq!(
            attempt(&l, &remote("alice", "10.0.0.2"), Ending::Succeeded).await,
            None,
            "the user was never touched"
        );
    }

    #[tokio::test]
    async fn success_resets_the_user_but_not_the_address() {
        let (l, _clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        for _ in 0..4 {
            attempt(&l, &s, Ending::Failed).await;
        }
        attempt(&l, &s, Ending::Succeeded).await;
        let st = l.inner.state();
        let alice = &st.users["alice"].unknown;
        assert_eq!(
            alice.recent(l.inner.clock.now(), Duration::from_secs(300)),
            0
        );
        assert_eq!(
            st.addresses[&"10.0.0.1".parse::<IpAddr>().unwrap()]
                .recent(l.inner.clock.now(), Duration::from_secs(300)),
            4
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
            attempt(&l, &local, Ending::Failed).await;
        }
        assert_eq!(attempt(&l, &local, Ending::Succeeded).await, None);

        let strict = MemoryRateLimiter::new(LimitSettings {
            exempt_localhost: false,
            ..LimitSettings::default()
        });
        for _ in 0..5 {
            attempt(&strict, &local, Ending::Failed).await;
        }
        assert!(matches!(
            attempt(&strict, &local, Ending::Succeeded).await,
            Some(Refusal::Locked { .. })
        ));
    }

    #[tokio::test]
    async fn lockout_doubles_up_to_the_cap_and_a_quiet_period_forgives() {
        let (l, clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        let mut last = Duration::ZERO;
        for _ in 0..10 {
            for _ in 0..5 {
                attempt(&l, &s, Ending::Failed).await;
            }
            if let Some(Refusal::Locked { retry_after, .. }) = attempt(&l, &s, Ending::Failed).await
            {
                last = retry_after;
                clock.advance(retry_after);
            }
        }
        assert_eq!(last, Duration::from_secs(3600));
        clock.advance(Duration::from_secs(3601));
        for _ in 0..5 {
            attempt(&l, &s, Ending::Failed).await;
        }
        assert_eq!(
            attempt(&l, &s, Ending::Failed).await,
            locked(LockScope::User, 60)
        );
    }

    #[tokio::test]
    async fn ipv6_clients_are_counted_by_their_64() {
        let (l, _clock) = limiter();
        for i in 0..20u16 {
            let user = format!("u{i}");
            attempt(
                &l,
                &remote(&user, &format!("2001:db8:1:2::{i:x}")),
                Ending::Failed,
            )
            .await;
        }
        assert_eq!(
            attempt(
                &l,
                &remote("fresh", "2001:db8:1:2:ffff::1"),
                Ending::Succeeded
            )
            .await,
            locked(LockScope::Address, 60)
        );
        assert_eq!(
            attempt(&l, &remote("fresh", "2001:db8:1:3::1"), Ending::Succeeded).await,
            None
        );
    }

    #[tokio::test]
    async fn a_spray_of_user_names_stays_within_the_cap_and_keeps_locks() {
        let (l, clock) = small_limiter();
        let victim = remote("victim", "10.0.0.1");
        for _ in 0..5 {
            attempt(&l, &victim, Ending::Failed).await;
        }
        attempt(&l, &remote("alice", "192.0.2.1"), Ending::Succeeded).await;
        for i in 0..1000 {
            clock.advance(Duration::from_millis(10));
            let user = format!("spray{i}");
            let from = format!("10.1.{}.{}", i / 250, i % 250 + 1);
            attempt(&l, &remote(&user, &from), Ending::Failed).await;
        }
        let (users, addresses) = l.tracked();
        assert!(users <= 100 && addresses <= 100);
        assert!(l.is_known("alice", "192.0.2.1".parse().unwrap()));
        assert!(
            matches!(
                attempt(&l, &victim, Ending::Succeeded).await,
                Some(Refusal::Locked { .. })
            ),
            "a live lock survives"
        );
    }

    #[tokio::test]
    async fn a_flood_of_locked_made_up_users_stays_within_the_cap() {
        let (l, _clock) = small_limiter();
        attempt(&l, &remote("alice", "192.0.2.1"), Ending::Succeeded).await;
        for i in 0..300 {
            let user = format!("locked{i}");
            for _ in 0..5 {
                attempt(&l, &remote(&user, "10.0.0.2"), Ending::Failed).await;
            }
        }
        assert!(l.tracked().0 <= 100, "{:?}", l.tracked());
        assert!(
            l.is_known("alice", "192.0.2.1".parse().unwrap()),
            "users with known networks go last"
        );
    }

    #[tokio::test]
    async fn a_success_makes_the_network_known_for_a_while() {
        let (l, clock) = limiter();
        attempt(&l, &remote("alice", "192.0.2.10"), Ending::Succeeded).await;
        assert!(
            l.is_known("alice", "192.0.2.99".parse().unwrap()),
            "same /24"
        );
        assert!(!l.is_known("alice", "192.0.3.10".parse().unwrap()));
        assert!(!l.is_known("bob", "192.0.2.10".parse().unwrap()));
        clock.advance(Duration::from_secs(30 * 86_400));
        assert!(!l.is_known("alice", "192.0.2.10".parse().unwrap()));
    }

    #[tokio::test]
    async fn only_the_latest_networks_of_a_user_are_kept() {
        let (l, clock) = limiter();
        for i in 0..20 {
            clock.advance(Duration::from_secs(1));
            attempt(
                &l,
                &remote("alice", &format!("10.{i}.0.1")),
                Ending::Succeeded,
            )
            .await;
        }
        assert_eq!(l.inner.state().users["alice"].known.len(), 8);
        assert!(l.is_known("alice", "10.19.0.1".parse().unwrap()));
        assert!(!l.is_known("alice", "10.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn too_many_running_attempts_from_one_address_are_busy_not_failures() {
        let (l, _clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        let mut held = Vec::new();
        for _ in 0..64 {
            held.push(l.admit(&s).await.unwrap());
        }
        assert_eq!(l.admit(&s).await.unwrap_err(), Refusal::Busy(Busy::Address));
        for r in held {
            r.finish(Ending::Neutral);
        }
        assert_eq!(attempt(&l, &s, Ending::Succeeded).await, None);
        assert_eq!(l.running(), Running::default());
    }

    #[tokio::test]
    async fn a_dropped_reservation_is_abandoned_exactly_once() {
        let (l, _clock) = limiter();
        let s = remote("alice", "10.0.0.1");
        for _ in 0..20 {
            let r = l.admit(&s).await.unwrap();
            r.verify(Duration::ZERO).await.unwrap();
            drop(r);
        }
        assert_eq!(l.running(), Running::default());
        assert_eq!(
            l.admit(&s).await.unwrap_err(),
            Refusal::Locked {
                retry_after: Duration::from_secs(60),
                scope: LockScope::Address
            }
        );
        assert!(
            attempt(&l, &remote("alice", "10.0.0.2"), Ending::Succeeded)
                .await
                .is_none()
        );
    }
}
