//! Revocations in this process's memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{Revocation, RevocationError, Revocations, TokenFacts, TokenId, issued_by};
use crate::clock::{SharedClock, system_clock};

/// Keys come from clients (a token's `jti`), so the hasher is seeded per process
/// (foldhash's quality variant, as the rate limiter's tables).
type Table<K> = HashMap<K, SystemTime, foldhash::quality::RandomState>;

#[derive(Debug, Default)]
struct State {
    /// Revoked tokens, until their expiry.
    tokens: Table<TokenId>,
    /// Users and grants, revoked for what was issued at or before the time.
    users: Table<String>,
    grants: Table<String>,
    /// Entries at the last pruning: the next comes when the tables have doubled.
    pruned_at: usize,
}

/// [`Revocations`] for one process.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use auth_core::revocation::{MemoryRevocations, Revocations, TokenFacts, TokenId};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let revocations = MemoryRevocations::new(Duration::from_secs(86_400));
/// let now = SystemTime::now();
/// let facts = TokenFacts { id: TokenId::Jti("t-1".into()), user: Some("alice"), grant: None, issued_at: Some(now) };
/// assert!(!revocations.is_revoked(&facts).await.unwrap());
/// revocations.revoke_user("alice", now).await.unwrap();
/// assert!(revocations.is_revoked(&facts).await.unwrap());
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct MemoryRevocations {
    state: Arc<Mutex<State>>,
    keep_for: Duration,
    clock: SharedClock,
}

impl MemoryRevocations {
    /// Revocations whose user and grant entries are kept `keep_for` (the longest lifetime
    /// of a token they could refuse), on the system clock.
    pub fn new(keep_for: Duration) -> Self {
        Self::with_clock(keep_for, system_clock())
    }

    /// As [`new`](Self::new), reading time from `clock`.
    pub fn with_clock(keep_for: Duration, clock: SharedClock) -> Self {
        Self {
            state: Arc::default(),
            keep_for,
            clock,
        }
    }

    /// Applies a revocation another instance made (a local replica of a shared store).
    pub fn apply(&self, revocation: &Revocation) {
        let mut st = self.state();
        match revocation {
            Revocation::Token { id, expires } => {
                later(st.tokens.entry(id.clone()).or_insert(*expires), *expires);
            }
            Revocation::User { user, at } => {
                later(st.users.entry(user.clone()).or_insert(*at), *at);
            }
            Revocation::Grant { grant, at } => {
                later(st.grants.entry(grant.clone()).or_insert(*at), *at);
            }
        }
        self.prune(&mut st);
    }

    /// Whether the token `facts` describes is revoked, at once (no await).
    pub fn is_revoked_now(&self, facts: &TokenFacts<'_>) -> bool {
        let st = self.state();
        if st.tokens.contains_key(&facts.id) {
            return true;
        }
        let by = |table: &Table<String>, name: Option<&str>| {
            name.and_then(|n| table.get(n))
                .is_some_and(|at| issued_by(facts.issued_at, *at))
        };
        by(&st.users, facts.user) || by(&st.grants, facts.grant)
    }

    /// How many revocations are held: (tokens, users, grants).
    pub fn len(&self) -> (usize, usize, usize) {
        let st = self.state();
        (st.tokens.len(), st.users.len(), st.grants.len())
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0, 0)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets what can no longer refuse anything, once the tables have doubled since
    /// the last time: amortized, and memory stays within twice what matters.
    fn prune(&self, st: &mut State) {
        let size = st.tokens.len() + st.users.len() + st.grants.len();
        if size < 64 || size < st.pruned_at * 2 {
            return;
        }
        let now = self.clock.now();
        st.tokens.retain(|_, until| *until > now);
        let keep =
            |at: &mut SystemTime| now.duration_since(*at).unwrap_or_default() < self.keep_for;
        st.users.retain(|_, at| keep(at));
        st.grants.retain(|_, at| keep(at));
        st.pruned_at = st.tokens.len() + st.users.len() + st.grants.len();
    }
}

/// The later of two revocation times: a revocation never moves back.
fn later(entry: &mut SystemTime, at: SystemTime) {
    *entry = (*entry).max(at);
}

#[async_trait]
impl Revocations for MemoryRevocations {
    async fn revoke_token(&self, id: &TokenId, expires: SystemTime) -> Result<(), RevocationError> {
        self.apply(&Revocation::Token {
            id: id.clone(),
            expires,
        });
        Ok(())
    }

    async fn revoke_user(&self, user: &str, at: SystemTime) -> Result<(), RevocationError> {
        self.apply(&Revocation::User {
            user: user.to_owned(),
            at,
        });
        Ok(())
    }

    async fn revoke_grant(&self, grant: &str, at: SystemTime) -> Result<(), RevocationError> {
        self.apply(&Revocation::Grant {
            grant: grant.to_owned(),
            at,
        });
        Ok(())
    }

    async fn is_revoked(&self, facts: &TokenFacts<'_>) -> Result<bool, RevocationError> {
        Ok(self.is_revoked_now(facts))
    }
}
