//! Opt-in reuse of the session a bearer token earned, for the requests that present the
//! same token again over the same kind of connection: what lets a busy API skip the chain
//! on its hot path.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{Chain, ConnectionInfo, Session};
use sha2::{Digest, Sha256};

/// What a session was earned under, beyond the token: a later request must match all of
/// it, so an authenticator that looked at the connection (an address allow-list, a token
/// bound to the client certificate, RFC 8705) would have decided the same.
struct Earned {
    /// The chain the policy picked, kept so its address cannot be reused: after a reload
    /// (`Engine::replace_policy`) the new policy's chains are other chains, and what was
    /// earned under the old rules is not reused under the new ones.
    chain: Arc<Chain>,
    peer: Option<IpAddr>,
    tls: bool,
    /// SHA-256 of the client's leaf certificate, when it presented one.
    client_certificate: Option<[u8; 32]>,
}

impl Earned {
    fn of(chain: &Arc<Chain>, connection: &ConnectionInfo) -> Self {
        let tls = connection.tls.as_ref();
        Self {
            chain: chain.clone(),
            peer: connection.peer.ip(),
            tls: tls.is_some(),
            client_certificate: tls
                .and_then(|t| t.client_certificates.first())
                .map(|der| Sha256::digest(der).into()),
        }
    }
}

impl Earned {
    /// Whether a request on `chain` over `connection` is like the one that earned this.
    /// Compared field by field, so a hit builds nothing.
    fn matches(&self, chain: &Arc<Chain>, connection: &ConnectionInfo) -> bool {
        let tls = connection.tls.as_ref();
        Arc::ptr_eq(&self.chain, chain)
            && self.peer == connection.peer.ip()
            && self.tls == tls.is_some()
            && self.client_certificate
                == tls
                    .and_then(|t| t.client_certificates.first())
                    .map(|der| Sha256::digest(der).into())
    }
}

struct Reused {
    session: Arc<dyn Session>,
    earned: Earned,
    until: SystemTime,
}

/// Longer than any sensible reuse, and short enough for the cache's own timer.
const MAX_AGE_CAP: Duration = Duration::from_secs(365 * 86_400);

/// The sessions earned by bearer tokens, keyed by the tokens' SHA-256 (no token is kept),
/// each for up to `max_age` and never past its expiry.
pub(crate) struct SessionReuse {
    sessions: quick_cache::sync::Cache<[u8; 32], Arc<Reused>>,
    max_age: Duration,
    /// `auth_session_reuse_total` by `result` (`hit`, `miss`).
    counted: auth_core::metrics::HitCounters,
}

/// `auth_session_reuse_total{result}`: requests that presented a bearer token, by whether
/// the session it earned before was reused (`hit`) or the chain ran (`miss`).
pub const SESSION_REUSE_METRIC: &str = "auth_session_reuse_total";

impl SessionReuse {
    pub(crate) fn new(capacity: u64, max_age: Duration) -> Self {
        let max_age = max_age.min(MAX_AGE_CAP);
        Self {
            // Bounded by count; whether an entry may still be used is decided on the
            // gate's clock, and stale ones give way to new ones.
            sessions: quick_cache::sync::Cache::new(
                usize::try_from(capacity.max(1)).unwrap_or(usize::MAX),
            ),
            max_age,
            counted: auth_core::metrics::HitCounters::new(SESSION_REUSE_METRIC, &[]),
        }
    }

    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The session `token` earned on `chain` over a connection like `connection`, while
    /// it is still good at `now`.
    pub(crate) fn get(
        &self,
        token: &str,
        chain: &Arc<Chain>,
        connection: &ConnectionInfo,
        now: SystemTime,
    ) -> Option<Arc<dyn Session>> {
        let reused = self.sessions.get(&Self::key(token)).and_then(|hit| {
            (now < hit.until && hit.earned.matches(chain, connection)).then(|| hit.session.clone())
        });
        self.counted.count(reused.is_some());
        reused
    }

    /// Keeps what `token` earned on `chain` over `connection` at `now`. A session without
    /// an expiry is not kept: nothing would say when to stop trusting it.
    pub(crate) fn put(
        &self,
        token: &str,
        chain: &Arc<Chain>,
        connection: &ConnectionInfo,
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
            Self::key(token),
            Arc::new(Reused {
                session: session.clone(),
                earned: Earned::of(chain, connection),
                until,
            }),
        );
    }
}

impl std::fmt::Debug for SessionReuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionReuse")
            .field("max_age", &self.max_age)
            .field("entries", &self.sessions.len())
            .finish_non_exhaustive()
    }
}
