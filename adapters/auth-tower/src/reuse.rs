//! Opt-in reuse of the session a bearer token earned, for the requests that present the
//! same token again: what lets a busy API skip the chain on its hot path.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{Chain, Session};
use zeroize::Zeroize;

/// A cached token. It is a secret: wiped when the entry goes, never printed.
struct TokenKey(Box<str>);

impl Drop for TokenKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

// Hash and Eq as the `str` it borrows as, so a lookup needs no allocation.
impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for TokenKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for TokenKey {}

impl Borrow<str> for TokenKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

struct Reused {
    session: Arc<dyn Session>,
    /// The address of the chain that authenticated it: a token is reused only where the
    /// policy picks that same chain (another rule may apply from another address). The
    /// policy keeps its chains for as long as the gate lives, so addresses stay unique.
    chain: usize,
    until: SystemTime,
}

/// The sessions earned by bearer tokens, each for up to `max_age` and never past its
/// expiry.
pub(crate) struct SessionReuse {
    sessions: moka::sync::Cache<TokenKey, Arc<Reused>, foldhash::fast::RandomState>,
    max_age: Duration,
}

fn address(chain: &Arc<Chain>) -> usize {
    Arc::as_ptr(chain) as usize
}

impl SessionReuse {
    pub(crate) fn new(capacity: u64, max_age: Duration) -> Self {
        Self {
            sessions: moka::sync::Cache::builder()
                .max_capacity(capacity)
                // Eviction only; whether an entry may still be used is decided on the gate's clock.
                .time_to_live(max_age)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            max_age,
        }
    }

    /// The session `token` earned on `chain`, while it is still good at `now`.
    pub(crate) fn get(
        &self,
        token: &str,
        chain: &Arc<Chain>,
        now: SystemTime,
    ) -> Option<Arc<dyn Session>> {
        let hit = self.sessions.get(token)?;
        (hit.chain == address(chain) && now < hit.until).then(|| hit.session.clone())
    }

    /// Keeps what `token` earned on `chain` at `now`. A session without an expiry is not
    /// kept: nothing would say when to stop trusting it.
    pub(crate) fn put(
        &self,
        token: &str,
        chain: &Arc<Chain>,
        session: &Arc<dyn Session>,
        now: SystemTime,
    ) {
        let Some(expires) = session.expires() else {
            return;
        };
        let until = expires.min(now + self.max_age);
        if until <= now {
            return;
        }
        self.sessions.insert(
            TokenKey(token.into()),
            Arc::new(Reused {
                session: session.clone(),
                chain: address(chain),
                until,
            }),
        );
    }
}

impl std::fmt::Debug for SessionReuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionReuse")
            .field("max_age", &self.max_age)
            .field("entries", &self.sessions.entry_count())
            .finish_non_exhaustive()
    }
}
