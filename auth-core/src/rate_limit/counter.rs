//! One key's failures, lock and running attempts, and the bounded tables that hold them.

use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use super::LimitSettings;

/// The limiter's tables: keys come from clients (user names), so the hasher is seeded
/// per process (foldhash's quality variant: several times faster than SipHash here).
pub(super) type Table<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;

#[derive(Debug, Default)]
pub(super) struct Counter {
    failures: VecDeque<SystemTime>,
    lockouts: u32,
    blocked_until: Option<SystemTime>,
    last_failure: Option<SystemTime>,
    /// Addresses: attempts admitted and not ended. User scopes: verifications running.
    pub(super) running: u32,
    /// User scopes: attempts waiting for a verification slot.
    pub(super) waiting: u32,
    /// Wakes the waiters when a slot frees up or the scope locks.
    wake: Option<Arc<Notify>>,
}

impl Counter {
    /// How long the key stays locked, if it is.
    pub(super) fn blocked(&self, now: SystemTime) -> Option<Duration> {
        self.blocked_until
            .and_then(|until| until.duration_since(now).ok())
            .filter(|d| !d.is_zero())
    }

    /// Whether the counter holds failures or a lock, whose judgement needs the time.
    pub(super) fn has_history(&self) -> bool {
        !self.failures.is_empty() || self.blocked_until.is_some()
    }

    /// Failures within `window` of `now`.
    pub(super) fn recent(&self, now: SystemTime, window: Duration) -> usize {
        self.failures
            .iter()
            .filter(|t| now.duration_since(**t).unwrap_or_default() < window)
            .count()
    }

    /// Since when nothing has happened to this key: the last failure or the end of the
    /// last lock, whichever is later.
    pub(super) fn quiet_since(&self) -> Option<SystemTime> {
        match (self.last_failure, self.blocked_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the key holds nothing worth remembering at `now`.
    pub(super) fn stale(&self, now: SystemTime, s: &LimitSettings) -> bool {
        self.running == 0
            && self.waiting == 0
            && self.blocked(now).is_none()
            && self.quiet_since().is_none_or(|q| {
                now.duration_since(q).unwrap_or_default() > s.max_lockout.max(s.window)
            })
    }

    /// Counts a failure; locks the key when `limit` failures fall within the window.
    pub(super) fn fail(&mut self, now: SystemTime, limit: u32, s: &LimitSettings) {
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

    /// Forgets failures and locks (a success), keeping what is running and waiting.
    pub(super) fn reset(&mut self) {
        self.failures.clear();
        self.lockouts = 0;
        self.blocked_until = None;
        self.last_failure = None;
    }

    /// The notifier waiters subscribe to.
    pub(super) fn waker(&mut self) -> Arc<Notify> {
        self.wake.get_or_insert_with(Default::default).clone()
    }

    /// Wakes every waiter to look again.
    pub(super) fn wake_all(&self) {
        if let Some(w) = &self.wake {
            w.notify_waiters();
        }
    }
}

/// A table entry the caps may evict.
pub(super) trait Tracked: Default {
    /// Holds nothing worth remembering at `now`.
    fn stale(&self, now: SystemTime, s: &LimitSettings) -> bool;
    /// Running, waiting or locked: a locked entry goes after idle ones of its rank.
    fn busy(&self, now: SystemTime) -> bool;
    /// Running or waiting: never evicted (their attempts will come back to it).
    fn in_use(&self) -> bool;
    /// Eviction order: whether the entry knows something worth keeping (known networks),
    /// and since when it has been quiet; the smallest goes first.
    fn rank(&self, now: SystemTime, s: &LimitSettings) -> (bool, Option<SystemTime>);
}

impl Tracked for Counter {
    fn stale(&self, now: SystemTime, s: &LimitSettings) -> bool {
        Counter::stale(self, now, s)
    }
    fn busy(&self, now: SystemTime) -> bool {
        self.in_use() || self.blocked(now).is_some()
    }
    fn in_use(&self) -> bool {
        self.running > 0 || self.waiting > 0
    }
    fn rank(&self, _now: SystemTime, _s: &LimitSettings) -> (bool, Option<SystemTime>) {
        (false, self.quiet_since())
    }
}

/// The entry under `key`, made room for within the cap if it is new. One lookup when
/// the table is below its cap (cloning a key is a copy or a reference count).
pub(super) fn entry<'m, K: Clone + Eq + Hash, V: Tracked>(
    map: &'m mut Table<K, V>,
    key: &K,
    now: SystemTime,
    s: &LimitSettings,
) -> &'m mut V {
    if map.len() >= s.max_tracked.max(1) && !map.contains_key(key) {
        make_room(map, now, s);
    }
    map.entry(key.clone()).or_default()
}

/// Where an entry stands in the eviction order: (knows something worth keeping, is
/// locked, quiet since); the smallest goes first.
type EvictionOrder = (bool, bool, Option<SystemTime>);

/// Keeps `map` within `max_tracked` entries before a new key is inserted: stale entries
/// go first, then idle ones in their rank's order.
fn make_room<K: Clone + Eq + Hash, V: Tracked>(
    map: &mut Table<K, V>,
    now: SystemTime,
    s: &LimitSettings,
) {
    let cap = s.max_tracked.max(1);
    map.retain(|_, v| !v.stale(now, s));
    if map.len() < cap {
        return;
    }
    // Never an entry with attempts running or waiting. Among the rest: what knows nothing
    // (rank) first, idle before locked, the longest quiet first; so a flood of locked
    // made-up keys can neither grow the table past its cap nor push out what smart
    // lockout knows about real users.
    let mut by_rank: Vec<(K, EvictionOrder)> = map
        .iter()
        .filter(|(_, v)| !v.in_use())
        .map(|(k, v)| {
            let (knows, quiet) = v.rank(now, s);
            (k.clone(), (knows, v.busy(now), quiet))
        })
        .collect();
    by_rank.sort_by_key(|(_, r)| *r);
    let excess = (map.len() + 1).saturating_sub(cap * 9 / 10);
    for (k, _) in by_rank.into_iter().take(excess) {
        map.remove(&k);
    }
}
