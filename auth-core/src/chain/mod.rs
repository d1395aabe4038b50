//! The fallback chain: links of (authenticator, control, timeout) run in order with
//! Linux-PAM semantics.
//!
//! # How a chain decides
//!
//! Before any link runs, the rate limiter (if any) admits the attempt or refuses it, and
//! the attempt's verification takes a slot of the user's scope; during each round trip
//! to the client the slot is given back (see [`crate::rate_limit`]). Then, for each
//! link in order: if the authenticator's `supports()` declines the credential the outcome
//! is *not applicable* without calling it; otherwise `authenticate()` runs under the link's
//! timeout (default 5 s; a timeout is an *unavailable* outcome). The link's [`Control`]
//! maps the outcome class to an [`Action`], and the actions combine exactly as in
//! Linux-PAM: the chain succeeds only when its impression is positive and its status is a
//! success; if every link abstains, it fails closed.
//!
//! The full truth table of one link, for each preset and outcome (tested cell by cell in
//! `tests/chain_truth_table.rs`), where "then" is what a following `SUFFICIENT` link that
//! succeeds can still change:
//!
//! | control | outcome | action | chain continues? | result if last | then |
//! |---|---|---|---|---|---|
//! | REQUIRED | success | ok | yes | success | success |
//! | REQUIRED | not applicable | ignore | yes | deny (all abstained) | success |
//! | REQUIRED | rejected / account / unavailable | bad | yes | deny | deny |
//! | REQUISITE | success | ok | yes | success | success |
//! | REQUISITE | not applicable | ignore | yes | deny (all abstained) | success |
//! | REQUISITE | rejected / account / unavailable | die | no | deny | (not run) |
//! | SUFFICIENT | success | done | no | success | (not run) |
//! | SUFFICIENT | not applicable / rejected / account / unavailable | ignore | yes | deny (all abstained) | success |
//! | OPTIONAL | success | ok | yes | success | success |
//! | OPTIONAL | not applicable / rejected / account / unavailable | ignore | yes | deny (all abstained) | success |
//! | CONCLUSIVE | success | done | no | success | (not run) |
//! | CONCLUSIVE | not applicable | ignore | yes | deny (all abstained) | success |
//! | CONCLUSIVE | rejected / account / unavailable | die | no | deny | (not run) |
//! | CONCLUSIVE + fallback | unavailable | ignore | yes | deny | success |
//!
//! # What a failed chain reports
//!
//! The most specific failure by [`Error::rank`], never simply the last: among the
//! failures that made the chain fail (`bad`/`die`, or a failure an `ok` made the status)
//! if there are any, otherwise among every failure seen; the earliest wins a tie. When
//! nothing applied, [`Authenticator::authenticate`] answers `NotApplicable` (so an outer
//! chain can move on) and [`Chain::decide`], which adapters call, answers
//! [`Error::MissingCredentials`] when the client presented nothing and [`Error::Denied`]
//! when no link supports the credential, and [`Error::InvalidCredentials`] when some link
//! could judge it but none decided (so "no such user" looks like a wrong password).
//! Either way the chain fails closed.
//!
//! # What a successful chain returns
//!
//! The session of the first success that set the chain's status, moved to
//! [`SessionState::Active`], if its user is the user the connection asked for (when it
//! asked for one, as pgwire's startup packet does). An identity proved by the credential
//! may not act as another user: alice's Kerberos ticket on a connection for `bob` is an
//! [`Error::InvalidCredentials`] rejection, counted against bob as a failure, never as his
//! success.

mod control;

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;

pub use control::{Action, Control};
use control::{Effect, Evaluator, Flow};

use crate::account::AccountStage;
use crate::attempt::Attempt;
use crate::audit::{AuditEvent, AuditEventKind, AuditSink, TracingAuditSink};
use crate::authenticator::Authenticator;
use crate::certificate::{CertificateCheck, METHOD, Requirement, not_named};
use crate::clock::{SharedClock, system_clock};
use crate::connection::{ConnectionInfo, Peer};
use crate::credential::{Credential, CredentialKind};
use crate::error::{Error, Failure};
use crate::outcome::{Outcome, OutcomeClass};
use crate::rate_limit::{Ending, RateLimiter, Refusal, Subject};
use crate::session::SessionState;

/// The per-link timeout when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// One link of a chain.
#[derive(Debug, Clone)]
pub struct Link {
    authenticator: Arc<dyn Authenticator>,
    control: Control,
    timeout: Duration,
}

impl Link {
    /// A link running `authenticator` under `control` with the default timeout.
    pub fn new(authenticator: Arc<dyn Authenticator>, control: Control) -> Self {
        Self {
            authenticator,
            control,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The link's timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The link's authenticator.
    pub fn authenticator(&self) -> &Arc<dyn Authenticator> {
        &self.authenticator
    }

    /// The link's control table.
    pub fn control(&self) -> Control {
        self.control
    }
}

/// An ordered list of authenticators combined with Linux-PAM semantics; see the module
/// documentation for the truth table. A chain is itself an [`Authenticator`], so chains
/// nest and pass the same contract suite.
pub struct Chain {
    name: String,
    links: Vec<Link>,
    audit: Arc<dyn AuditSink>,
    limiter: Option<Arc<dyn RateLimiter>>,
    accounts: Option<Arc<AccountStage>>,
    certificate: Option<Arc<CertificateCheck>>,
    clock: SharedClock,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("name", &self.name)
            .field("links", &self.links)
            .field("rate_limited", &self.limiter.is_some())
            .field("account_stage", &self.accounts.is_some())
            .field(
                "certificate",
                &self.certificate.as_ref().map(|c| c.requirement()),
            )
            .finish()
    }
}

/// Builds a [`Chain`].
#[derive(Debug)]
pub struct ChainBuilder {
    chain: Chain,
}

impl ChainBuilder {
    /// Adds a link with the default [`Control::CONCLUSIVE`] and timeout.
    #[must_use]
    pub fn link(self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.push(Link::new(authenticator, Control::CONCLUSIVE))
    }

    /// Adds a link with `control` and the default timeout.
    #[must_use]
    pub fn link_with(self, authenticator: Arc<dyn Authenticator>, control: Control) -> Self {
        self.push(Link::new(authenticator, control))
    }

    /// Adds a fully specified link.
    #[must_use]
    pub fn push(mut self, link: Link) -> Self {
        self.chain.links.push(link);
        self
    }

    /// Names the chain (its [`Authenticator::name`]).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.chain.name = name.into();
        self
    }

    /// Sends audit events to `sink` (default: [`TracingAuditSink`]).
    #[must_use]
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.chain.audit = sink;
        self
    }

    /// Consults `limiter` before running any link and reports results to it.
    #[must_use]
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.chain.limiter = Some(limiter);
        self
    }

    /// Runs the account stage on every success before the chain reports it: whether the
    /// proved identity may act as the requested user, and whether that account may log
    /// in now (see [`crate::account`]). Without it, the chain still refuses an identity
    /// that is not the requested user.
    #[must_use]
    pub fn accounts(mut self, stage: Arc<AccountStage>) -> Self {
        self.chain.accounts = Some(stage);
        self
    }

    /// Requires a verified client certificate of every attempt, before any link runs
    /// (PostgreSQL's `clientcert=verify-ca|verify-full` on a rule of another method);
    /// with [`Requirement::VerifyFull`](crate::certificate::Requirement::VerifyFull) the
    /// certificate must also name the user a link authenticated (or be mapped to it).
    #[must_use]
    pub fn client_certificate(mut self, check: CertificateCheck) -> Self {
        self.chain.certificate = Some(Arc::new(check));
        self
    }

    /// Reads audit timestamps (and certificate validity) from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.chain.clock = clock;
        self
    }

    /// The chain.
    pub fn build(self) -> Chain {
        self.chain
    }
}

/// A non-success outcome the chain may report, with whether it made the chain fail.
struct Seen {
    outcome: Outcome,
    decisive: bool,
    rank: u8,
    method: usize,
}

impl Chain {
    /// A builder for an empty chain named `chain`.
    pub fn builder() -> ChainBuilder {
        ChainBuilder {
            chain: Chain {
                name: "chain".to_owned(),
                links: Vec::new(),
                audit: Arc::new(TracingAuditSink),
                limiter: None,
                accounts: None,
                certificate: None,
                clock: system_clock(),
            },
        }
    }

    /// The links, in order.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    fn event<'a>(
        &self,
        timestamp: SystemTime,
        attempt: &'a Attempt,
        kind: AuditEventKind,
        method: Option<&'a str>,
        duration: Duration,
        outcome: &'a str,
    ) -> AuditEvent<'a> {
        AuditEvent {
            timestamp,
            event: kind,
            method,
            username: attempt.user(),
            source: &attempt.connection.peer,
            connection_id: attempt.connection.id,
            protocol: attempt.connection.protocol.as_str(),
            duration,
            outcome,
            action: None,
            error: None,
            detail: None,
        }
    }

    /// Reports a limiter's refusal: a `lockout` or `busy` audit event, and the rejection.
    fn refuse(&self, attempt: &Attempt, refusal: Refusal) -> Outcome {
        let detail = refusal.to_string();
        if self.audit.enabled() {
            let kind = match refusal {
                Refusal::Busy(_) => AuditEventKind::Busy,
                _ => AuditEventKind::Lockout,
            };
            let mut e = self.event(
                self.clock.now(),
                attempt,
                kind,
                None,
                Duration::ZERO,
                "rate_limited",
            );
            e.error = Some(Error::RateLimited.code());
            e.detail = Some(&detail);
            self.audit.record(&e);
        }
        Outcome::Rejected(Failure::new(Error::RateLimited, detail))
    }

    /// How long an attempt may wait for a verification slot: the timeout of the first
    /// link that would judge its credential.
    fn slot_wait(&self, credential: &Credential) -> Duration {
        self.links
            .iter()
            .find(|l| l.authenticator.supports(credential))
            .map_or(DEFAULT_TIMEOUT, |l| l.timeout)
    }

    async fn run_links(&self, attempt: &mut Attempt) -> (Outcome, Option<usize>) {
        // A rule that requires a certificate refuses before any method judges a secret;
        // under verify-full the name it gives is kept for the success (verified once).
        let named = match &self.certificate {
            None => None,
            Some(check) => match check.verify(&attempt.connection, self.clock.now()) {
                Err(failure) => return (crate::certificate::refused(failure), None),
                Ok(identity) => {
                    (check.requirement() == Requirement::VerifyFull).then_some(identity)
                }
            },
        };
        let mut eval = Evaluator::new();
        let mut session = None;
        let mut session_link = None;
        let mut seen: Vec<Seen> = Vec::new();

        // Step timestamps come from one wall-clock reading plus monotonic time, which is
        // cheaper than reading the (injected) wall clock at every step.
        let audit_start = self
            .audit
            .enabled()
            .then(|| (self.clock.now(), Instant::now()));
        let mut step_started = audit_start.map(|(_, mono)| mono);
        for (index, link) in self.links.iter().enumerate() {
            // A refusal here is reported by the caller, which sees it on the reservation.
            if index > 0 && attempt.retake_slot().await.is_err() {
                break;
            }
            let outcome = if link.authenticator.supports(&attempt.credential) {
                bounded(link.authenticator.authenticate(attempt), link.timeout)
                    .await
                    .unwrap_or_else(|| {
                        Outcome::Unavailable(Failure::new(
                            Error::Timeout,
                            format!("no answer within {} ms", link.timeout.as_millis()),
                        ))
                    })
            } else {
                Outcome::NotApplicable
            };
            let class = outcome.class();
            let action = link.control.action(class);
            let (flow, effect) = eval.step(class, action);

            if let Some(started) = step_started {
                let now = Instant::now();
                step_started = Some(now);
                let continues = flow == Flow::Continue && index + 1 < self.links.len();
                let kind = if continues && class != OutcomeClass::Success {
                    AuditEventKind::Fallback
                } else {
                    AuditEventKind::Step
                };
                let timestamp = audit_start.map_or(SystemTime::UNIX_EPOCH, |(wall, mono)| {
                    wall + now.duration_since(mono)
                });
                let mut e = self.event(
                    timestamp,
                    attempt,
                    kind,
                    Some(link.authenticator.name()),
                    now - started,
                    class.as_str(),
                );
                e.action = Some(action.as_str());
                if let Some((error, detail)) = outcome.error_and_detail() {
                    e.error = Some(error.code());
                    e.detail = Some(detail);
                }
                self.audit.record(&e);
            }

            if effect == Effect::Reset {
                session = None;
                session_link = None;
                seen.iter_mut().for_each(|s| s.decisive = false);
            }
            match outcome {
                Outcome::Authenticated(s) => {
                    if effect == Effect::SetStatus {
                        session = Some(s);
                        session_link = Some(index);
                    }
                }
                Outcome::NotApplicable => {}
                other => {
                    let rank = other.error_and_detail().map_or(0, |(e, _)| e.rank());
                    let decisive = matches!(effect, Effect::SetStatus | Effect::Counted);
                    seen.push(Seen {
                        outcome: other,
                        decisive,
                        rank,
                        method: index,
                    });
                }
            }
            if flow == Flow::Stop {
                break;
            }
        }

        if eval.succeeded()
            && let Some(mut s) = session
        {
            // The authenticator hands over a session still authenticating; if it was
            // already active, leave it so.
            let _ = s.transition(SessionState::Active);
            let outcome = match named {
                Some(identity) => {
                    self.certificate_names_user(&attempt.connection, s, &identity)
                        .await
                }
                None => Outcome::Authenticated(s),
            };
            return (outcome, session_link);
        }
        let decisive_exists = seen.iter().any(|s| s.decisive);
        let best = seen
            .into_iter()
            .filter(|s| s.decisive || !decisive_exists)
            .reduce(|best, s| if s.rank > best.rank { s } else { best });
        match best {
            Some(s) => (s.outcome, Some(s.method)),
            // Failed without a failure to show (a not-applicable or success outcome under
            // `bad`): a rejection, never a not-applicable an outer chain could skip.
            None if eval.failed() => (
                Outcome::Rejected(self.nothing_applied(&attempt.credential)),
                None,
            ),
            None => (Outcome::NotApplicable, None),
        }
    }

    /// The failure reported when no link decided: [`Error::MissingCredentials`] when the
    /// client presented nothing, [`Error::InvalidCredentials`] when some link could judge
    /// the credential (a "no such entry" answer must look like a wrong secret, or it
    /// reveals which users exist), else [`Error::Denied`].
    fn nothing_applied(&self, credential: &Credential) -> Failure {
        let error = if matches!(credential, Credential::Absent) {
            Error::MissingCredentials
        } else if self.supports(credential) {
            Error::InvalidCredentials
        } else {
            Error::Denied
        };
        Failure::new(error, "no method in the chain accepted the credential")
    }

    /// Runs the chain and always decides: where [`Authenticator::authenticate`] answers
    /// `NotApplicable` because no link applied (so that chains nest), this answers the
    /// rejection an adapter reports, [`Error::MissingCredentials`] or [`Error::Denied`].
    pub async fn decide(&self, attempt: &mut Attempt) -> Outcome {
        match self.authenticate(attempt).await {
            Outcome::NotApplicable => Outcome::Rejected(self.nothing_applied(&attempt.credential)),
            decided => decided,
        }
    }
}

#[async_trait]
impl Authenticator for Chain {
    fn name(&self) -> &str {
        &self.name
    }

    fn accepts(&self) -> Vec<CredentialKind> {
        let mut kinds: Vec<CredentialKind> = Vec::new();
        for link in &self.links {
            for kind in link.authenticator.accepts() {
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
        }
        kinds
    }

    fn supports(&self, credential: &Credential) -> bool {
        self.links
            .iter()
            .any(|l| l.authenticator.supports(credential))
    }

    /// A chain with any local-only link is local-only: that link would let a remote
    /// client in wherever the chain runs.
    fn local_only(&self) -> bool {
        self.links.iter().any(|l| l.authenticator.local_only())
    }

    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        // Only the audit event needs the duration; an unaudited chain reads no clock.
        let started = self.audit.enabled().then(Instant::now);
        // A limited chain nested in another limited chain leaves the limiting to it.
        let Some(limiter) = self.limiter.as_ref().filter(|_| !attempt.limited) else {
            let (outcome, link) = self.run_links(attempt).await;
            let outcome = self.account_stage(&attempt.connection, outcome).await;
            self.audit_attempt(attempt, &outcome, link, started, false);
            return outcome;
        };
        let subject = Subject {
            user: attempt.user(),
            // A Unix-socket client is on this machine: with `exempt_localhost` off it is
            // limited under the loopback address, not unlimited for want of an IP.
            address: match &attempt.connection.peer {
                Peer::Unix { .. } => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                peer => peer.ip(),
            },
            localhost: attempt.connection.is_localhost(),
        };
        let admitted = match limiter.try_admit(&subject) {
            Some(answer) => answer,
            None => limiter.admit(&subject).await,
        };
        let reservation = match admitted {
            Ok(r) => r,
            Err(refusal) => return self.refuse(attempt, refusal),
        };
        // Audits the attempt if it is dropped before it ends (the reservation itself
        // tells the limiter).
        let mut unfinished = started
            .filter(|_| reservation.is_limited())
            .map(|started| Unfinished::new(self, attempt, started));
        if let Some(shared) = reservation.shared() {
            // The credential has arrived: its verification takes a slot.
            let wait = self.slot_wait(&attempt.credential);
            if let Err(refusal) = reservation.verify(wait).await {
                reservation.finish(Ending::Neutral);
                if let Some(u) = &mut unfinished {
                    u.chain = None;
                }
                return self.refuse(attempt, refusal);
            }
            attempt.pace(Some((shared, wait)));
            attempt.limited = true;
        }

        let (outcome, link) = self.run_links(attempt).await;
        attempt.pace(None);
        attempt.limited = false;
        let outcome = self.account_stage(&attempt.connection, outcome).await;
        if let Some(u) = &mut unfinished {
            u.chain = None;
        }

        if let Some(refusal) = reservation.refusal() {
            reservation.finish(Ending::Neutral);
            return self.refuse(attempt, refusal);
        }
        let ending = if reservation.client_left() && !outcome.is_authenticated() {
            Ending::Abandoned
        } else {
            ending_of(&outcome)
        };
        reservation.finish(ending);
        self.audit_attempt(
            attempt,
            &outcome,
            link,
            started,
            ending == Ending::Abandoned,
        );
        outcome
    }
}

impl Chain {
    /// A success as the account stage judges it (only the identity check without one).
    async fn account_stage(&self, connection: &ConnectionInfo, outcome: Outcome) -> Outcome {
        match (outcome, &self.accounts) {
            (Outcome::Authenticated(session), Some(stage)) => {
                stage.admit(connection, session).await
            }
            (outcome, _) => acting_as_requested(connection, outcome),
        }
    }

    /// Under `clientcert=verify-full`, a success stands only if the certificate's name
    /// `identity` is the user (the requested one, else the method's), directly or through
    /// the identity map.
    async fn certificate_names_user(
        &self,
        connection: &ConnectionInfo,
        session: Box<dyn crate::session::Session>,
        identity: &str,
    ) -> Outcome {
        let user = connection.user.as_deref().unwrap_or(session.user());
        if identity == user {
            return Outcome::Authenticated(session);
        }
        let allowed = match &self.accounts {
            Some(stage) => stage.identity_may_act_as(METHOD, identity, user).await,
            None => Ok(false),
        };
        match allowed {
            Ok(true) => Outcome::Authenticated(session),
            Ok(false) => Outcome::Rejected(not_named(identity, user)),
            Err(refusal) => refusal,
        }
    }

    /// The attempt's audit event: succeeded, failed or abandoned.
    fn audit_attempt(
        &self,
        attempt: &Attempt,
        outcome: &Outcome,
        link: Option<usize>,
        started: Option<Instant>,
        abandoned: bool,
    ) {
        if !self.audit.enabled() {
            return;
        }
        let method = link.map(|i| self.links[i].authenticator.name());
        let nothing = self.nothing_applied(&attempt.credential);
        let failure = match outcome {
            Outcome::NotApplicable => Some((nothing.error, nothing.detail.as_ref())),
            other => other.error_and_detail(),
        };
        let kind = if outcome.is_authenticated() {
            AuditEventKind::AttemptSucceeded
        } else if abandoned {
            AuditEventKind::Abandoned
        } else {
            AuditEventKind::AttemptFailed
        };
        let mut e = self.event(
            self.clock.now(),
            attempt,
            kind,
            method,
            started.map_or(Duration::ZERO, |s| s.elapsed()),
            if abandoned {
                Ending::Abandoned.as_str()
            } else {
                outcome.class().as_str()
            },
        );
        e.error = failure.map(|(error, _)| error.code());
        e.detail = failure.map(|(_, detail)| detail);
        // A bearer or GSS attempt names no user; the session says who it turned out to
        // be, which is what an audit of a success must show.
        if let Some(session) = outcome.session() {
            e.username = Some(session.user());
        }
        self.audit.record(&e);
    }
}

/// An attempt that has not ended yet: dropped armed (the future was dropped mid-way: a
/// client that hung up, an aborted task), it audits an `abandoned` event.
struct Unfinished<'c> {
    chain: Option<&'c Chain>,
    started: Instant,
    peer: crate::connection::Peer,
    user: Option<String>,
    connection_id: u64,
    protocol: &'static str,
}

impl<'c> Unfinished<'c> {
    fn new(chain: &'c Chain, attempt: &Attempt, started: Instant) -> Self {
        Self {
            chain: Some(chain),
            started,
            peer: attempt.connection.peer.clone(),
            user: attempt.user().map(str::to_owned),
            connection_id: attempt.connection.id,
            protocol: attempt.connection.protocol.as_str(),
        }
    }
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        let Some(chain) = self.chain else {
            return;
        };
        chain.audit.record(&AuditEvent {
            timestamp: chain.clock.now(),
            event: AuditEventKind::Abandoned,
            method: None,
            username: self.user.as_deref(),
            source: &self.peer,
            connection_id: self.connection_id,
            protocol: self.protocol,
            duration: self.started.elapsed(),
            outcome: Ending::Abandoned.as_str(),
            action: None,
            error: None,
            detail: Some("the attempt ended before an outcome (client gone, task aborted)"),
        });
    }
}

/// An identity proved by the credential (a Kerberos ticket, a token) may log in only as
/// the user the connection asked for (pg_ident semantics with the method's mapping as the
/// identity map): alice's ticket on a connection for `bob` is refused, before the limiter
/// could count it as bob's success.
fn acting_as_requested(connection: &ConnectionInfo, outcome: Outcome) -> Outcome {
    match (&outcome, connection.user.as_deref()) {
        (Outcome::Authenticated(session), Some(requested)) if session.user() != requested => {
            crate::account::not_acting_as(session.as_ref(), requested)
        }
        _ => outcome,
    }
}

/// How the limiter counts an outcome (the `rate_limit` module's table): only a method's
/// judgement of the secret counts against the user; an unreadable credential counts
/// against the address; outages and "nothing applied" count neither way.
fn ending_of(outcome: &Outcome) -> Ending {
    match outcome {
        Outcome::Authenticated(_) => Ending::Succeeded,
        Outcome::AccountStatus { .. } => Ending::Failed,
        Outcome::Rejected(f) => match f.error {
            Error::InvalidCredentials
            | Error::Expired
            | Error::InvalidSignature
            | Error::UntrustedIssuer
            | Error::MissingClaim
            | Error::Locked => Ending::Failed,
            Error::Malformed => Ending::Malformed,
            _ => Ending::Neutral,
        },
        _ => Ending::Neutral,
    }
}

/// Runs `fut` for at most `limit`; `None` when it ran out of time.
///
/// Most in-process authenticators finish on their first poll: for them no timer is
/// registered at all. Only a future that has to wait gets the timeout.
async fn bounded<F: Future<Output = Outcome>>(fut: F, limit: Duration) -> Option<Outcome> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(outcome) => Some(outcome),
        Poll::Pending => tokio::time::timeout(limit, fut).await.ok(),
    }
}
