//! The engine: one entry point for every front door.
//!
//! An [`Engine`] owns the [`Policy`] and everything an attempt shares with every other
//! attempt: the audit sink, the rate limiter, the account stage and the clock, each set
//! once. An adapter asks it two things:
//! 1. [`Engine::offer`]: what to offer a new connection. The policy's first matching rule
//!    picks a chain; the [`Offer`] lists its [`Mechanism`]s in the order the adapter
//!    should ask for them (with or without channel binding), or refuses the connection.
//! 2. [`Engine::decide`]: the outcome of the attempt the client then made. The engine
//!    admits it past the rate limiter, checks the rule's client-certificate requirement,
//!    runs the chain, runs the account stage on a success, tells the limiter how it
//!    ended, and audits each step and the attempt.
//!
//! After a success, [`Engine::open_session`] runs the session stage.

mod decide;
mod offer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::account::AccountStage;
use crate::audit::{AuditEvent, AuditEventKind, AuditSink, SessionPlace, TracingAuditSink};
use crate::chain::Chain;
use crate::clock::{SharedClock, system_clock};
use crate::connection::ConnectionInfo;
use crate::error::{AuthorizationError, Error, Failure};
use crate::open_session::OpenSession;
use crate::policy::{Policy, Selection};
use crate::rate_limit::RateLimiter;
use crate::session::Session;

pub use offer::{Mechanism, Offer};

/// Runs a [`Policy`] for every front door: what to offer a connection, and the decision
/// on the attempt that follows (see the [module documentation](self)).
///
/// ```
/// use std::sync::Arc;
/// use auth_core::{
///     ApiKeyAuthenticator, ApiKeyGrant, Attempt, Chain, ConnectionInfo, Credential, Engine,
///     MemoryAuditSink, MemoryStore, Policy, Protocol, TlsInfo,
/// };
/// use auth_core::engine::Mechanism;
/// use secrecy::SecretString;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = Arc::new(MemoryStore::new());
/// let secret = SecretString::from("0123456789abcdef0123456789abcdef".to_owned());
/// let grant = ApiKeyGrant { principal: "ci".into(), roles: vec![], scopes: vec![] };
/// let key = ApiKeyAuthenticator::register(store.as_ref(), "ci", &secret, grant).await.unwrap();
///
/// let chain = Chain::builder().link(Arc::new(ApiKeyAuthenticator::new(store))).build();
/// let audit = Arc::new(MemoryAuditSink::new());
/// let engine = Engine::builder(Policy::single(chain).unwrap())
///     .audit(audit.clone())
///     .build();
///
/// // A key is a secret anyone on the path could replay: without TLS it is not offered.
/// let plain = ConnectionInfo::tcp(Protocol::Http, "10.0.0.5:40000".parse().unwrap());
/// assert!(engine.offer(&plain, None).unwrap().mechanisms().is_empty());
/// let connection = plain.with_tls(TlsInfo::default());
/// let offer = engine.offer(&connection, None).unwrap();
/// assert_eq!(offer.mechanisms(), [Mechanism::ApiKey]);
/// let mut attempt = Attempt::new(connection, Credential::ApiKey(key));
/// let outcome = engine.decide(&offer, &mut attempt).await;
/// assert_eq!(outcome.session().map(|s| s.principal()), Some("ci"));
/// assert_eq!(audit.events().last().unwrap()["event"], "attempt_succeeded");
/// # }
/// ```
pub struct Engine {
    /// Swapped whole by [`Engine::replace_policy`]; each offer keeps the one it was made
    /// under, so an attempt in flight finishes under the rules it began with.
    policy: ArcSwap<Policy>,
    /// Set only through [`DangerousEngineBuilder::allow_cleartext_without_tls`].
    allow_cleartext: bool,
    audit: Arc<dyn AuditSink>,
    limiter: Option<Arc<dyn RateLimiter>>,
    accounts: Option<Arc<AccountStage>>,
    clock: SharedClock,
    /// The backends' work of sessions that ended (an OAuth revocation), which a shutdown
    /// waits for ([`Engine::drain_sessions`]).
    session_ends: tokio_util::task::TaskTracker,
    /// The handles of the attempts' series (see [`crate::metrics`]).
    metrics: crate::metrics::EngineMetrics,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("policy", &self.policy.load())
            .field("rate_limited", &self.limiter.is_some())
            .field("account_stage", &self.accounts.is_some())
            .field("allow_cleartext_without_tls", &self.allow_cleartext)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    engine: Engine,
}

impl EngineBuilder {
    /// Sends every audit event (policy rejects, steps, attempts, lockouts, sessions) to
    /// `sink` (default: [`TracingAuditSink`]).
    #[must_use]
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.engine.audit = sink;
        self
    }

    /// Admits every attempt through `limiter` before any method runs, and reports how it
    /// ended (see [`crate::rate_limit`]). Without one, nothing is limited.
    #[must_use]
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.engine.limiter = Some(limiter);
        self
    }

    /// Runs the account stage on every success before it is reported: whether the
    /// proved identity may act as the requested user, and whether that account may log
    /// in now (see [`crate::account`]). Without it, an identity that is not the requested
    /// user is still refused.
    #[must_use]
    pub fn accounts(mut self, stage: Arc<AccountStage>) -> Self {
        self.engine.accounts = Some(stage);
        self
    }

    /// Reads the time from `clock`: audit timestamps, certificate and account validity,
    /// and the judgement of every method that reads [`Attempt::now`](crate::Attempt::now).
    /// Methods that keep time between attempts (key and token caches: the auth-oauth
    /// authenticators) keep their own clock.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.engine.clock = clock;
        self
    }

    /// The options of this engine that weaken what an attempt proves, as rustls keeps its
    /// own behind `dangerous()`: each says why on [`DangerousEngineBuilder`].
    pub fn dangerous(self) -> DangerousEngineBuilder {
        DangerousEngineBuilder(self)
    }

    /// The engine.
    pub fn build(self) -> Engine {
        self.engine
    }
}

/// The risky options of an [`EngineBuilder`], from [`EngineBuilder::dangerous`].
#[derive(Debug)]
pub struct DangerousEngineBuilder(EngineBuilder);

impl DangerousEngineBuilder {
    /// Offers methods whose clients send a reusable secret (passwords, bearer tokens, API
    /// keys: [`Transport::Encrypted`](crate::Transport::Encrypted)) on TCP connections
    /// without TLS too, on every front door. Anyone who can read the network can then
    /// replay what they read. Only for a server whose plaintext port is reachable from
    /// nowhere but a TLS-terminating proxy on the same machine.
    #[must_use]
    pub fn allow_cleartext_without_tls(mut self) -> EngineBuilder {
        self.0.engine.allow_cleartext = true;
        self.0
    }
}

impl Engine {
    /// A builder for an engine running `policy`, auditing to `tracing`, without a rate
    /// limiter or an account stage, on the system clock.
    pub fn builder(policy: Policy) -> EngineBuilder {
        EngineBuilder {
            engine: Engine {
                policy: ArcSwap::from_pointee(policy),
                allow_cleartext: false,
                audit: Arc::new(TracingAuditSink),
                limiter: None,
                accounts: None,
                clock: system_clock(),
                session_ends: tokio_util::task::TaskTracker::new(),
                metrics: crate::metrics::EngineMetrics::default(),
            },
        }
    }

    /// The policy now in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Puts `policy` in force for every offer made from now on (a reload): the adapters
    /// keep their `Arc<Engine>`, attempts already offered finish under the policy they
    /// were offered under, and open sessions go on. The audit sink, the rate limiter with
    /// its counts, the account stage and the clock stay as they are. Returns the policy it
    /// replaced.
    pub fn replace_policy(&self, policy: Policy) -> Arc<Policy> {
        self.policy.swap(Arc::new(policy))
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Where the engine writes its audit events: front doors record what happens before
    /// an attempt (a connection refused for want of a place) in the same log.
    pub fn audit_sink(&self) -> &Arc<dyn AuditSink> {
        &self.audit
    }

    /// Whether methods that send a reusable secret are offered without TLS too
    /// ([`DangerousEngineBuilder::allow_cleartext_without_tls`]).
    pub fn allows_cleartext_without_tls(&self) -> bool {
        self.allow_cleartext
    }

    /// What to offer `connection`: the mechanisms of the first matching rule's chain, in
    /// order. Rules match the user `credential_user` names (a protocol whose credential
    /// carries the user, as HTTP Basic does, passes it; pgwire passes `None`), else the
    /// user the connection asks for. A rule that rejects, or no rule at all, is an
    /// [`AuthorizationError::Rejected`] refusal, audited as a policy reject.
    ///
    /// Methods the connection's transport does not allow (a password without TLS, see
    /// [`Authenticator::transport`](crate::Authenticator::transport)) are left out of the
    /// offer, and [`Engine::decide`] refuses their credentials. When neither names a user
    /// (a bearer token, a certificate), the decision checks again, once the method said
    /// who the client is, that this rule is the one the policy picks for that user.
    pub fn offer(
        &self,
        connection: &ConnectionInfo,
        credential_user: Option<&str>,
    ) -> Result<Offer, Failure> {
        let user = credential_user.or(connection.user.as_deref());
        let policy = self.policy.load_full();
        let (detail, rule) = match policy.select(connection, user) {
            Selection::Chain(index, name, rule, chain) => {
                return Ok(Offer::new(
                    offer::Selected {
                        index,
                        name,
                        rule,
                        chain,
                        user_known: user.is_some(),
                    },
                    connection,
                    self.allow_cleartext,
                    policy.clone(),
                ));
            }
            Selection::Rejected(i) => {
                let name = policy.rules()[i].name.as_str();
                (format!("rejected by policy rule `{name}`"), Some(name))
            }
            Selection::NoMatch => ("no policy rule matches the connection".to_owned(), None),
        };
        crate::metrics::policy_reject(connection.protocol);
        if self.audit.enabled() {
            self.audit.record(
                &AuditEvent::on(
                    AuditEventKind::PolicyReject,
                    self.clock.now(),
                    connection,
                    "rejected",
                )
                .with_user(user)
                .with_rule(rule)
                .with_failure(
                    Some(Error::Authorization(AuthorizationError::Rejected).code()),
                    Some(&detail),
                ),
            );
        }
        Err(Failure::new(AuthorizationError::Rejected, detail))
    }

    /// The chain an offer for `connection` would carry, found without auditing anything:
    /// for caches keyed on the chain (session reuse), never to run it. A cache that keeps
    /// the `Arc` and compares with [`Arc::ptr_eq`] misses after
    /// [`Engine::replace_policy`], as it should: the new policy's chains are new.
    pub fn chain_for(&self, connection: &ConnectionInfo) -> Option<Arc<Chain>> {
        match self
            .policy
            .load()
            .select(connection, connection.user.as_deref())
        {
            Selection::Chain(_, _, _, chain) => Some(chain.clone()),
            _ => None,
        }
    }

    /// Audits a refusal an adapter made before any method could run (an unreadable
    /// header, a malformed message) as a failed attempt on `connection`.
    pub fn refused_before_offer(&self, connection: &ConnectionInfo, failure: &Failure) {
        if !self.audit.enabled() {
            return;
        }
        // Reading a request takes no measurable time: no duration is measured for it.
        self.audit.record(
            &AuditEvent::on(
                AuditEventKind::AttemptFailed,
                self.clock.now(),
                connection,
                "rejected",
            )
            .with_failure(Some(failure.error.code()), Some(&failure.detail)),
        );
    }

    /// Opens the session a decision returned (the session stage), audited to the
    /// engine's sink: adapters call it after OK, touch the session on every query or
    /// request, and close it when the connection or request ends.
    pub fn open_session(
        &self,
        session: Box<dyn Session>,
        connection: &ConnectionInfo,
    ) -> OpenSession {
        OpenSession::open(session, connection, self.audit.clone(), self.clock.clone())
            .with_end_tracker(self.session_ends.clone())
    }

    /// Waits, at most `limit`, for the work of the sessions that have ended (a token
    /// revoked at its provider): what a shutdown does after its connections have closed,
    /// so that no session's end is cut off by the process exiting. Returns whether it all
    /// finished. Sessions that end later still run their work.
    pub async fn drain_sessions(&self, limit: std::time::Duration) -> bool {
        self.session_ends.close();
        let finished = tokio::time::timeout(limit, self.session_ends.wait())
            .await
            .is_ok();
        self.session_ends.reopen();
        finished
    }

    /// Audits the start or end of a session an adapter shares rather than owns (an HTTP
    /// request's session, which its handler holds too): `session_started` or
    /// `session_ended` at `place`, with the session's `duration` for the end.
    pub fn record_session(
        &self,
        kind: AuditEventKind,
        session: &dyn Session,
        place: &SessionPlace,
        duration: Duration,
    ) {
        crate::audit::record_session_event(
            self.audit.as_ref(),
            kind,
            session,
            place,
            self.clock.as_ref(),
            duration,
            None,
        );
    }
}
