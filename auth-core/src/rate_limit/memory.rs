//! The in-memory limiter for one process.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::counter::{Counter, Table, entry};
use super::{
    Busy, Ending, Hold, LimitSettings, LockScope, RateLimiter, Refusal, Reservation, Subject,
    address_key, network_key,
};
use crate::clock::{SharedClock, system_clock};

/// A user's failures are counted per scope: at one known network, or at every network
/// not known for them (`net: None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ScopeKey {
    user: String,
    net: Option<IpAddr>,
}

impl ScopeKey {
    fn lock_scope(&self) -> LockScope {
        match self.net {
            Some(_) => LockScope::UserAtAddress,
            None => LockScope::User,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    scopes: Table<ScopeKey, Counter>,
    addresses: Table<IpAddr, Counter>,
    /// Per user: networks with their latest success, most recent last.
    known: Table<String, Vec<(IpAddr, SystemTime)>>,
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
        let sum = |m: &mut dyn Iterator<Item = u32>| m.sum::<u32>();
        Running {
            attempts: sum(&mut st.addresses.values().map(|c| c.running)),
            verifying: sum(&mut st.scopes.values().map(|c| c.running)),
            waiting: sum(&mut st.scopes.values().map(|c| c.waiting)),
        }
    }

    /// How many keys the tables hold: (user scopes, addresses, users with known networks).
    pub fn tracked(&self) -> (usize, usize, usize) {
        let st = self.inner.state();
        (st.scopes.len(), st.addresses.len(), st.known.len())
    }

    /// Whether `ip`'s network is known for `user` now.
    pub fn is_known(&self, user: &str, ip: IpAddr) -> bool {
        let now = self.inner.clock.now();
        known_network(&self.inner.state(), &self.inner.settings, user, ip, now).is_some()
    }
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new(LimitSettings::default())
    }
}

/// `ip`'s network, if a success from it within `known_for` made it known for `user`.
fn known_network(
    st: &State,
    s: &LimitSettings,
    user: &str,
    ip: IpAddr,
    now: SystemTime,
) -> Option<IpAddr> {
    let net = network_key(ip);
    st.known.get(user)?.iter().find_map(|(n, at)| {
        (*n == net && now.duration_since(*at).unwrap_or_default() < s.known_for).then_some(net)
    })
}

/// Makes `ip`'s network known for `user`, within the per-user and table caps.
fn remember(st: &mut State, s: &LimitSettings, user: &str, ip: IpAddr, now: SystemTime) {
    let net = network_key(ip);
    if let Some(nets) = st.known.get_mut(user) {
        // The common case, a user logging in again from where they did: no allocation.
        match nets.iter().position(|(n, _)| *n == net) {
            Some(i) if i + 1 == nets.len() => nets[i].1 = now,
            Some(i) => {
                nets.remove(i);
                nets.push((net, now));
            }
            None => {
                nets.push((net, now));
                let excess = nets.len().saturating_sub(s.max_known_per_user.max(1));
                nets.drain(..excess);
            }
        }
        return;
    }
    if st.known.len() >= s.max_tracked.max(1) {
        // Expired entries first, then the user whose latest success is oldest.
        st.known.retain(|_, nets| {
            nets.retain(|(_, at)| now.duration_since(*at).unwrap_or_default() < s.known_for);
            !nets.is_empty()
        });
        if st.known.len() >= s.max_tracked.max(1)
            && let Some(oldest) = st
                .known
                .iter()
                .min_by_key(|(_, nets)| nets.last().map(|(_, at)| *at))
                .map(|(u, _)| u.clone())
        {
            st.known.remove(&oldest);
        }
    }
    st.known.insert(user.to_owned(), vec![(net, now)]);
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
        if let Some(c) = address.and_then(|a| st.addresses.get(&a)) {
            if let Some(retry_after) = c.has_history().then(|| c.blocked(now)).flatten() {
                return Err(Refusal::Locked {
                    retry_after,
                    scope: LockScope::Address,
                });
            }
            if c.running >= s.max_running_per_address {
                return Err(Refusal::Busy(Busy::Address));
            }
        }
        let scope = subject.user.map(|user| ScopeKey {
            user: user.to_owned(),
            net: subject
                .address
                .and_then(|ip| known_network(&st, s, user, ip, now)),
        });
        if let Some(key) = &scope
            && let Some(retry_after) = st
                .scopes
                .get(key)
                .filter(|c| c.has_history())
                .and_then(|c| c.blocked(now))
        {
            return Err(Refusal::Locked {
                retry_after,
                scope: key.lock_scope(),
            });
        }
        if let Some(a) = &address {
            entry(&mut st.addresses, a, now, s).running += 1;
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

/// One attempt's claim on a [`MemoryRateLimiter`].
#[derive(Debug)]
struct MemoryHold {
    inner: Arc<Inner>,
    scope: Option<ScopeKey>,
    address: Option<IpAddr>,
    /// When the attempt was admitted: the time a success is remembered at.
    admitted: SystemTime,
}

/// Counts one waiter of `key` for as long as it lives, so that a waiter dropped mid-wait
/// leaves no count behind.
struct Queued<'a> {
    inner: &'a Inner,
    key: &'a ScopeKey,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.inner.state().scopes.get_mut(self.key) {
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
    fn look(&self, key: &ScopeKey, queue: bool) -> Look {
        let s = &self.inner.settings;
        let mut st = self.inner.state();
        let c = entry(&mut st.scopes, key, self.admitted, s);
        // Only a counter with failures or a lock needs the time.
        let now = (c.has_history()).then(|| self.inner.clock.now());
        if let Some(retry_after) = now.and_then(|now| c.blocked(now)) {
            return Look::Decided(Err(Refusal::Locked {
                retry_after,
                scope: key.lock_scope(),
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
        let Some(key) = &self.scope else {
            return Some(Ok(()));
        };
        match self.look(key, false) {
            Look::Decided(Err(Refusal::Busy(_))) => None,
            Look::Decided(done) => Some(done),
            Look::Wait(_) => None,
        }
    }

    async fn acquire(&self, wait: Duration) -> Result<(), Refusal> {
        let Some(key) = &self.scope else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = match self.look(key, true) {
                Look::Decided(done) => return done,
                Look::Wait(notified) => notified,
            };
            let queued = Queued {
                inner: &self.inner,
                key,
            };
            let woken = tokio::time::timeout_at(deadline, notified).await.is_ok();
            drop(queued);
            if !woken {
                return Err(Refusal::Busy(Busy::User));
            }
        }
    }

    fn release(&self) {
        if let Some(key) = &self.scope
            && let Some(c) = self.inner.state().scopes.get_mut(key)
        {
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
        if let Some(key) = &self.scope {
            let c = entry(&mut st.scopes, key, now, s);
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
                remember(&mut st, s, &key.user, ip, now);
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
        let clock = ManualClock::at_fixed_epoch();
        (
            MemoryRateLimiter::with_clock(LimitSettings::default(), Arc::new(clock.clone())),
            clock,
        )
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
        let alice = &st.scopes[&ScopeKey {
            user: "alice".into(),
            net: None,
        }];
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
            attempt(&l, &victim, Ending::Failed).await;
        }
        for i in 0..1000 {
            clock.advance(Duration::from_millis(10));
            let user = format!("spray{i}");
            attempt(&l, &remote(&user, "10.0.0.2"), Ending::Failed).await;
            attempt(
                &l,
                &remote(&user, &format!("10.1.{}.1", i % 250)),
                Ending::Succeeded,
            )
            .await;
        }
        let (scopes, addresses, known) = l.tracked();
        assert!(scopes <= 100 && addresses <= 100 && known <= 100);
        assert!(
            matches!(
                attempt(&l, &victim, Ending::Succeeded).await,
                Some(Refusal::Locked { .. })
            ),
            "a live lock survives"
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
        assert_eq!(l.inner.state().known["alice"].len(), 8);
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
