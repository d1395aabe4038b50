//! The fallback chain: links of (authenticator, control, timeout) run in order with
//! Linux-PAM semantics.
//!
//! A chain holds links and their controls, nothing else: the [`Engine`](crate::Engine)
//! that runs it owns the rate limiter, the account stage, the audit sink and the clock.
//!
//! # How a chain decides
//!
//! For each link in order: if the authenticator's `supports()` declines the credential the outcome
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
//! chain can move on) and [`Engine::decide`](crate::Engine::decide), which adapters call,
//! answers
//! [`CredentialError::Missing`] when the client presented nothing and [`CredentialError::Unsupported`]
//! when no link supports the credential, and [`CredentialError::Invalid`] when some link
//! could judge it but none decided (so "no such user" looks like a wrong password).
//! Either way the chain fails closed.
//!
//! # What a successful chain returns
//!
//! The session of the first success that set the chain's status, moved to
//! [`SessionState::Active`]. Whether that identity may act as the requested user is the
//! engine's account stage.

mod control;

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_trait::async_trait;

pub use control::{Action, Control, DangerousControl};
use control::{Effect, Evaluator, Flow};

use crate::attempt::Attempt;
use crate::authenticator::Authenticator;
use crate::credential::{Credential, CredentialKind};
use crate::error::{CredentialError, Error, Failure, InfrastructureError};
use crate::outcome::{Outcome, OutcomeClass};
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
/// nest and pass the same contract suite; an [`Engine`](crate::Engine) runs it for a
/// connection.
///
/// ```
/// use std::sync::Arc;
/// use auth_core::{Chain, Control};
/// use auth_core::local::TrustAuthenticator;
///
/// let chain = Chain::builder()
///     .name("local")
///     .link_with(Arc::new(TrustAuthenticator::new()), Control::SUFFICIENT)
///     .build();
/// assert_eq!(chain.links().len(), 1);
/// ```
#[derive(Debug)]
pub struct Chain {
    name: String,
    links: Vec<Link>,
    /// What the links accept, in order, without repeats (computed once).
    kinds: Vec<CredentialKind>,
    /// The links (by bit, the 64th standing for every later one) whose method needs an
    /// encrypted connection, and those that need a local one: an offer withholds them
    /// with two mask operations instead of asking each link.
    encrypted_links: u64,
    local_links: u64,
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
        let bit = 1u64 << self.chain.links.len().min(63);
        match link.authenticator.transport() {
            crate::Transport::Encrypted => self.chain.encrypted_links |= bit,
            crate::Transport::Local => self.chain.local_links |= bit,
            _ => {}
        }
        for &kind in link.authenticator.accepts() {
            if !self.chain.kinds.contains(&kind) {
                self.chain.kinds.push(kind);
            }
        }
        self.chain.links.push(link);
        self
    }

    /// Names the chain (its [`Authenticator::name`]).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.chain.name = name.into();
        self
    }

    /// The chain.
    pub fn build(self) -> Chain {
        self.chain
    }
}

/// What one link did, for whoever watches a chain run (the engine's audit).
pub(crate) struct StepReport<'a> {
    pub(crate) link: &'a Link,
    pub(crate) class: OutcomeClass,
    pub(crate) action: Action,
    /// Whether another link runs after this one.
    pub(crate) continues: bool,
    pub(crate) outcome: &'a Outcome,
    /// When the link ended, and how long it ran.
    pub(crate) ended: Instant,
    pub(crate) took: Duration,
}

/// Watches each step of a run.
pub(crate) type Observer<'o> = &'o mut (dyn FnMut(&Attempt, &StepReport<'_>) + Send);

/// A non-success outcome the chain may report, with whether it made the chain fail.
struct Seen {
    outcome: Outcome,
    decisive: bool,
    rank: u8,
    method: usize,
}

impl Chain {
    /// The links a connection must not run for want of encryption or locality, by bit
    /// (link `i` is bit `min(i, 63)`).
    /// A chain without such links asks the connection nothing.
    pub(crate) fn withheld_on(
        &self,
        encrypted: impl FnOnce() -> bool,
        local: impl FnOnce() -> bool,
    ) -> u64 {
        let mut withheld = 0;
        if self.encrypted_links != 0 && !encrypted() {
            withheld |= self.encrypted_links;
        }
        if self.local_links != 0 && !local() {
            withheld |= self.local_links;
        }
        withheld
    }

    /// A builder for an empty chain named `chain`.
    pub fn builder() -> ChainBuilder {
        ChainBuilder {
            chain: Chain {
                name: "chain".to_owned(),
                links: Vec::new(),
                kinds: Vec::new(),
                encrypted_links: 0,
                local_links: 0,
            },
        }
    }

    /// The links, in order.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// How long an attempt may wait for a verification slot: the timeout of the first
    /// link that would judge its credential.
    pub(crate) fn slot_wait(&self, credential: &Credential) -> Duration {
        self.links
            .iter()
            .find(|l| l.authenticator.supports(credential))
            .map_or(DEFAULT_TIMEOUT, |l| l.timeout)
    }

    /// Runs the links in order; the outcome and the index of the link it came from.
    /// `observe`, when given, sees every step (and only then are steps timed).
    pub(crate) async fn run(
        &self,
        attempt: &mut Attempt,
        mut observe: Option<Observer<'_>>,
    ) -> (Outcome, Option<usize>) {
        let mut eval = Evaluator::new();
        let mut session = None;
        let mut session_link = None;
        let mut seen: Vec<Seen> = Vec::new();

        let mut step_started = observe.is_some().then(Instant::now);
        for (index, link) in self.links.iter().enumerate() {
            // A refusal here is reported by the engine, which sees it on the reservation.
            if index > 0 && attempt.retake_slot().await.is_err() {
                break;
            }
            let outcome = if link.authenticator.supports(&attempt.credential) {
                bounded(link.authenticator.authenticate(attempt), link.timeout)
                    .await
                    .unwrap_or_else(|| {
                        Outcome::Unavailable(Failure::new(
                            InfrastructureError::Timeout,
                            format!("no answer within {} ms", link.timeout.as_millis()),
                        ))
                    })
            } else {
                Outcome::NotApplicable
            };
            let class = outcome.class();
            let action = link.control.action(class);
            let (flow, effect) = eval.step(class, action);

            if let (Some(observe), Some(started)) = (observe.as_mut(), step_started) {
                let ended = Instant::now();
                step_started = Some(ended);
                observe(
                    attempt,
                    &StepReport {
                        link,
                        class,
                        action,
                        continues: flow == Flow::Continue && index + 1 < self.links.len(),
                        outcome: &outcome,
                        ended,
                        took: ended - started,
                    },
                );
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
            return (Outcome::Authenticated(s), session_link);
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

    /// The failure reported when no link decided: [`CredentialError::Missing`] when the
    /// client presented nothing, [`CredentialError::Invalid`] when some link could judge
    /// the credential (a "no such entry" answer must look like a wrong secret, or it
    /// reveals which users exist), else [`CredentialError::Unsupported`].
    pub(crate) fn nothing_applied(&self, credential: &Credential) -> Failure {
        let error = if matches!(credential, Credential::Absent) {
            Error::Credential(CredentialError::Missing)
        } else if self.supports(credential) {
            Error::Credential(CredentialError::Invalid)
        } else {
            Error::Credential(CredentialError::Unsupported)
        };
        Failure::new(error, "no method in the chain accepted the credential")
    }
}

#[async_trait]
impl Authenticator for Chain {
    fn name(&self) -> &str {
        &self.name
    }

    fn accepts(&self) -> &[CredentialKind] {
        &self.kinds
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

    /// A nested chain needs what its strictest link needs: the engine withholds links of
    /// the chain it runs one by one, but a chain inside a link is withheld as a whole.
    fn transport(&self) -> crate::Transport {
        use crate::Transport;
        let all = self.links.iter().map(|l| l.authenticator.transport());
        all.fold(Transport::Any, |strictest, t| match (strictest, t) {
            (Transport::Local, _) | (_, Transport::Local) => Transport::Local,
            (Transport::Encrypted, _) | (_, Transport::Encrypted) => Transport::Encrypted,
            _ => Transport::Any,
        })
    }

    /// Runs the links unwatched: a nested chain's steps are its outer link's step.
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        self.run(attempt, None).await.0
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
