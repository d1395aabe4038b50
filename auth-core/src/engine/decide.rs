//! One attempt, start to end: the limiter, the rule's certificate requirement, the chain,
//! the account stage, and the audit events of all of it (built here and nowhere else).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::{Engine, Offer};
use crate::account::IdentityMap;
use crate::attempt::Attempt;
use crate::audit::{AuditEvent, AuditEventKind};
use crate::certificate::{METHOD, Requirement, not_named};
use crate::chain::StepReport;
use crate::connection::{ConnectionInfo, Peer};
use crate::error::{AuthorizationError, CredentialError, Error, Failure, InfrastructureError};
use crate::outcome::{Outcome, OutcomeClass};
use crate::policy::Selection;
use crate::rate_limit::{Ending, Refusal, Subject};
use crate::session::Session;

impl Engine {
    /// Decides `attempt` under `offer` (from [`Engine::offer`] for the same connection):
    /// admits it past the rate limiter, checks the rule's client-certificate requirement,
    /// runs the chain, runs the account stage on a success, and audits every step and the
    /// attempt. Always decides: when no method applied, the refusal is
    /// [`CredentialError::Missing`] if the client presented nothing,
    /// [`CredentialError::Invalid`] if some method could judge the credential, else
    /// [`CredentialError::Unsupported`].
    pub async fn decide(&self, offer: &Offer, attempt: &mut Attempt) -> Outcome {
        use tracing::Instrument;
        // Log lines written during the attempt carry the connection id its audit events
        // carry, so the two can be joined. Nothing a client chose is a field.
        let span = tracing::info_span!(
            "attempt",
            connection_id = attempt.connection.id,
            protocol = attempt.connection.protocol.as_str(),
        );
        // The method and the account stage read the user's record once between them.
        crate::account::read_once::attempt_scope(self.decide_once(offer, attempt))
            .instrument(span)
            .await
    }

    async fn decide_once(&self, offer: &Offer, attempt: &mut Attempt) -> Outcome {
        attempt.set_clock(&self.clock);
        // The decision's time, for the audit event and the latency histogram.
        let started = Instant::now();
        if !offer.permits(&attempt.credential) {
            // Refused before anything reads the secret, and neutral for the limiter: the
            // client's software chose the transport, not a guess at a password.
            let outcome = Outcome::Rejected(Failure::new(
                CredentialError::Unsupported,
                "the credential is a secret anyone on the network could replay, and the \
                 connection is not encrypted; connect with TLS",
            ));
            self.audit_attempt(offer, attempt, &outcome, None, started, false);
            return outcome;
        }
        let Some(limiter) = &self.limiter else {
            let (outcome, link) = self.judge(offer, attempt).await;
            let (outcome, link, again) = match self.recheck(offer, attempt, outcome, link) {
                Rechecked::Done(outcome, link, again) => (outcome, link, again),
                Rechecked::Again(again) => self.judge_again(again, attempt).await,
            };
            let offer = again.as_deref().unwrap_or(offer);
            let outcome = decided(offer, attempt, outcome);
            self.audit_attempt(offer, attempt, &outcome, link, started, false);
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
        let mut unfinished = (self.audit.enabled() && reservation.is_limited())
            .then(|| Unfinished::new(self, attempt, started));
        if let Some(shared) = reservation.shared() {
            // The credential has arrived: its verification takes a slot.
            let wait = offer.chain.slot_wait(&attempt.credential);
            if let Err(refusal) = reservation.verify(wait).await {
                reservation.finish(Ending::Neutral);
                if let Some(u) = &mut unfinished {
                    u.engine = None;
                }
                return self.refuse(attempt, refusal);
            }
            attempt.pace(Some((shared, wait)));
        }

        let (outcome, link) = self.judge(offer, attempt).await;
        let (outcome, link, again) = match self.recheck(offer, attempt, outcome, link) {
            Rechecked::Done(outcome, link, again) => (outcome, link, again),
            Rechecked::Again(again) => self.judge_again(again, attempt).await,
        };
        let offer = again.as_deref().unwrap_or(offer);
        attempt.pace(None);
        if let Some(u) = &mut unfinished {
            u.engine = None;
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
        let outcome = decided(offer, attempt, outcome);
        self.audit_attempt(
            offer,
            attempt,
            &outcome,
            link,
            started,
            ending == Ending::Abandoned,
        );
        outcome
    }

    /// The verdict on the attempt, without the limiter: certificate requirement, chain,
    /// account stage. The index of the link the outcome came from, if one did.
    async fn judge(&self, offer: &Offer, attempt: &mut Attempt) -> (Outcome, Option<usize>) {
        // A rule that requires a certificate refuses before any method judges a secret;
        // under verify-full the name it gives is kept for the success (verified once).
        let named = match &offer.certificate {
            None => None,
            Some(check) => match check.verify(&attempt.connection, self.clock.now()) {
                Err(failure) => return (crate::certificate::refused(failure), None),
                Ok(identity) => {
                    (check.requirement() == Requirement::VerifyFull).then_some(identity)
                }
            },
        };
        let (outcome, link) = if self.audit.enabled() {
            // Step timestamps come from one wall-clock reading plus monotonic time, which
            // is cheaper than reading the (injected) wall clock at every step.
            let (wall, mono) = (self.clock.now(), Instant::now());
            let mut observe = |attempt: &Attempt, step: &StepReport<'_>| {
                self.audit_step(attempt, step, wall + step.ended.duration_since(mono));
            };
            offer.chain.run(attempt, Some(&mut observe)).await
        } else {
            offer.chain.run(attempt, None).await
        };
        let outcome = match (outcome, named) {
            (Outcome::Authenticated(session), Some(identity)) => {
                let map = offer.identity_map.as_deref();
                self.certificate_names_user(&attempt.connection, session, &identity, map)
                    .await
            }
            (outcome, _) => outcome,
        };
        let map = offer.identity_map.as_deref();
        let outcome = self.account_stage(&attempt.connection, outcome, map).await;
        (outcome, link)
    }

    /// A success as the account stage judges it (only the identity check without one).
    async fn account_stage(
        &self,
        connection: &ConnectionInfo,
        outcome: Outcome,
        map: Option<&IdentityMap>,
    ) -> Outcome {
        match (outcome, &self.accounts) {
            (Outcome::Authenticated(session), Some(stage)) => {
                stage
                    .admit_under(connection, session, self.clock.now(), map)
                    .await
            }
            (outcome, _) => acting_as_requested(connection, outcome, map),
        }
    }

    /// A success whose user nobody named before the method ran (a bearer token, a
    /// certificate, a Kerberos ticket over HTTP) stands only under the rule the policy
    /// picks for that user: a rule that refuses bob, or asks more of him, holds for bob's
    /// token too. When that is another rule, the same method instance in its chain (and no
    /// certificate requirement) lets the judgement stand; otherwise the attempt is to be
    /// judged again under that rule, once. Synchronous, so the common case (the user was
    /// named, or the rule is the same) adds nothing to every attempt's future.
    fn recheck(
        &self,
        offer: &Offer,
        attempt: &Attempt,
        outcome: Outcome,
        link: Option<usize>,
    ) -> Rechecked {
        // Most API policies never look at the user before the rule that ran: nothing to
        // check again, and nothing to look up on the hot path.
        if offer.user_known || offer.policy.picks_regardless_of_user(offer.index) {
            return Rechecked::Done(outcome, link, None);
        }
        let Some(session) = outcome.session() else {
            return Rechecked::Done(outcome, link, None);
        };
        // Nothing is copied on the way: this runs for every bearer request.
        let (index, name, rule, chain) = match offer
            .policy
            .select(&attempt.connection, Some(session.user()))
        {
            Selection::Chain(index, ..) if index == offer.index => {
                return Rechecked::Done(outcome, link, None);
            }
            Selection::Chain(index, name, rule, chain) => (index, name, rule, chain),
            Selection::Rejected(i) => {
                let name = &offer.policy.rules()[i].name;
                let refused = not_this_rule(offer, &outcome, &format!("rule `{name}` (reject)"));
                return Rechecked::Done(refused, link, None);
            }
            Selection::NoMatch => {
                return Rechecked::Done(not_this_rule(offer, &outcome, "no rule"), link, None);
            }
        };
        let again = Box::new(Offer::new(
            super::offer::Selected {
                index,
                name,
                rule,
                chain,
                user_known: true,
            },
            &attempt.connection,
            self.allow_cleartext,
            offer.policy.clone(),
        ));
        let judged_by = link.map(|i| offer.chain.links()[i].authenticator());
        let same = judged_by.and_then(|m| {
            chain
                .links()
                .iter()
                .position(|l| std::ptr::addr_eq(Arc::as_ptr(l.authenticator()), Arc::as_ptr(m)))
        });
        if let Some(position) = same.filter(|_| rule.client_certificate.is_none()) {
            return Rechecked::Done(outcome, Some(position), Some(again));
        }
        if !again.supports(&attempt.credential) || !again.permits(&attempt.credential) {
            let refused = not_this_rule(offer, &outcome, &format!("rule `{name}`"));
            return Rechecked::Done(refused, None, Some(again));
        }
        Rechecked::Again(again)
    }

    /// The second judgement [`Engine::recheck`] asked for, under the proved user's rule.
    /// Boxed: it is rare, and must not grow every attempt's future.
    async fn judge_again(
        &self,
        again: Box<Offer>,
        attempt: &mut Attempt,
    ) -> (Outcome, Option<usize>, Option<Box<Offer>>) {
        let (outcome, link) = Box::pin(self.judge(&again, attempt)).await;
        (outcome, link, Some(again))
    }

    /// Under `clientcert=verify-full`, a success stands only if the certificate's name
    /// `identity` is the user (the requested one, else the method's), directly or through
    /// the identity map.
    async fn certificate_names_user(
        &self,
        connection: &ConnectionInfo,
        session: Box<dyn Session>,
        identity: &str,
        map: Option<&IdentityMap>,
    ) -> Outcome {
        let user = connection.user.as_deref().unwrap_or(session.user());
        // With a rule map, only its entries admit (PostgreSQL's `map=`), the same name too.
        if map.is_none() && identity == user {
            return Outcome::Authenticated(session);
        }
        let allowed = match (&self.accounts, map) {
            (Some(stage), map) => stage.identity_may_act_as(METHOD, identity, user, map).await,
            (None, Some(map)) => Ok(map.allows(METHOD, identity, user)),
            (None, None) => Ok(false),
        };
        match allowed {
            Ok(true) => Outcome::Authenticated(session),
            Ok(false) => Outcome::Rejected(not_named(identity, user)),
            Err(refusal) => refusal,
        }
    }

    /// Reports a limiter's refusal: a `lockout` or `busy` audit event, and the rejection.
    fn refuse(&self, attempt: &Attempt, refusal: Refusal) -> Outcome {
        crate::metrics::limiter_refusal(attempt.connection.protocol, &refusal);
        let detail = refusal.to_string();
        // Without its store the limiter proved nothing about anyone: an outage, not a
        // lockout, for the client's error and the audit log alike.
        let (kind, reason, error) = match refusal {
            Refusal::Busy(_) => (
                AuditEventKind::Busy,
                "rate_limited",
                Error::Authorization(AuthorizationError::RateLimited),
            ),
            Refusal::Unavailable => (
                AuditEventKind::AttemptFailed,
                "limiter_unavailable",
                Error::Infrastructure(InfrastructureError::Unavailable),
            ),
            Refusal::Locked { .. } => (
                AuditEventKind::Lockout,
                "rate_limited",
                Error::Authorization(AuthorizationError::RateLimited),
            ),
        };
        if self.audit.enabled() {
            self.audit.record(
                &AuditEvent::on(kind, self.clock.now(), &attempt.connection, reason)
                    .with_user(attempt.user())
                    .with_failure(Some(error.code()), Some(&detail)),
            );
        }
        match refusal {
            Refusal::Unavailable => Outcome::unavailable(detail),
            _ => Outcome::Rejected(Failure::new(AuthorizationError::RateLimited, detail)),
        }
    }

    /// One step's event: `step`, or `fallback` when the chain goes on after a link that
    /// did not succeed.
    fn audit_step(&self, attempt: &Attempt, step: &StepReport<'_>, at: SystemTime) {
        let kind = if step.continues && step.class != OutcomeClass::Success {
            AuditEventKind::Fallback
        } else {
            AuditEventKind::Step
        };
        let failure = step.outcome.error_and_detail();
        self.audit.record(
            &AuditEvent::on(kind, at, &attempt.connection, step.class.as_str())
                .with_user(attempt.user())
                .with_method(Some(step.link.authenticator().name()))
                .with_duration(step.took)
                .with_action(step.action.as_str())
                .with_failure(
                    failure.map(|(error, _)| error.code()),
                    failure.map(|(_, detail)| detail),
                ),
        );
    }

    /// The attempt's audit event: succeeded, failed or abandoned.
    fn audit_attempt(
        &self,
        offer: &Offer,
        attempt: &Attempt,
        outcome: &Outcome,
        link: Option<usize>,
        started: Instant,
        abandoned: bool,
    ) {
        let method = link.map(|i| offer.chain.links()[i].authenticator().name());
        let took = started.elapsed();
        let failure = outcome.error_and_detail();
        self.metrics.attempt(
            attempt.connection.protocol,
            method,
            crate::metrics::outcome_label(outcome.class(), abandoned),
            failure.map(|(error, _)| error),
            took,
        );
        if !self.audit.enabled() {
            return;
        }
        let kind = if outcome.is_authenticated() {
            AuditEventKind::AttemptSucceeded
        } else if abandoned {
            AuditEventKind::Abandoned
        } else {
            AuditEventKind::AttemptFailed
        };
        let result = if abandoned {
            Ending::Abandoned.as_str()
        } else {
            outcome.class().as_str()
        };
        // A bearer or GSS attempt names no user; the session says who it turned out to
        // be, which is what an audit of a success must show.
        let user = outcome.session().map(|s| s.user()).or(attempt.user());
        self.audit.record(
            &AuditEvent::on(kind, self.clock.now(), &attempt.connection, result)
                .with_user(user)
                .with_rule(Some(offer.rule()))
                .with_method(method)
                .with_duration(took)
                .with_failure(
                    failure.map(|(error, _)| error.code()),
                    failure.map(|(_, detail)| detail),
                ),
        );
    }
}

/// The refusal of a success whose proved user another rule (`decides`) is for.
fn not_this_rule(offer: &Offer, outcome: &Outcome, decides: &str) -> Outcome {
    let (user, method) = outcome
        .session()
        .map_or(("", ""), |s| (s.user(), s.method()));
    Outcome::Rejected(Failure::new(
        AuthorizationError::Rejected,
        format!(
            "the credential proved `{user}` ({method}), for whom {decides} decides, not rule `{}`",
            offer.rule()
        ),
    ))
}

/// What [`Engine::recheck`] concluded: the outcome (with the link and, when it changed,
/// the offer that decided), or another judgement under this offer.
enum Rechecked {
    Done(Outcome, Option<usize>, Option<Box<Offer>>),
    Again(Box<Offer>),
}

/// An attempt that has not ended yet: dropped armed (the future was dropped mid-way: a
/// client that hung up, an aborted task), it audits an `abandoned` event.
struct Unfinished<'e> {
    engine: Option<&'e Engine>,
    started: Instant,
    peer: Peer,
    user: Option<String>,
    connection_id: u64,
    protocol: &'static str,
}

impl<'e> Unfinished<'e> {
    fn new(engine: &'e Engine, attempt: &Attempt, started: Instant) -> Self {
        Self {
            engine: Some(engine),
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
        let Some(engine) = self.engine else {
            return;
        };
        crate::metrics::abandoned(self.protocol);
        engine.audit.record(
            &AuditEvent::new(
                AuditEventKind::Abandoned,
                engine.clock.now(),
                (&self.peer, self.connection_id, self.protocol),
                Ending::Abandoned.as_str(),
            )
            .with_user(self.user.as_deref())
            .with_duration(self.started.elapsed())
            .with_failure(
                None,
                Some("the attempt ended before an outcome (client gone, task aborted)"),
            ),
        );
    }
}

/// The outcome an adapter reports: where no method applied, the refusal that says why
/// (after the limiter counted it as nothing).
fn decided(offer: &Offer, attempt: &Attempt, outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::NotApplicable => {
            Outcome::Rejected(offer.chain.nothing_applied(&attempt.credential))
        }
        decided => decided,
    }
}

/// An identity proved by the credential (a Kerberos ticket, a token) may log in only as
/// the user the connection asked for (pg_ident semantics with the method's mapping as the
/// identity map): alice's ticket on a connection for `bob` is refused, before the limiter
/// could count it as bob's success.
fn acting_as_requested(
    connection: &ConnectionInfo,
    outcome: Outcome,
    map: Option<&IdentityMap>,
) -> Outcome {
    match (&outcome, connection.user.as_deref()) {
        (Outcome::Authenticated(session), Some(requested))
            if !crate::account::identity_admitted(session.as_ref(), requested, map)
                && !map.is_some_and(|m| {
                    m.allows(session.method(), session.principal(), requested)
                }) =>
        {
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
        Outcome::AccountRefused { .. } => Ending::Failed,
        Outcome::Rejected(f) => match f.error {
            Error::Credential(
                CredentialError::Invalid
                | CredentialError::Expired
                | CredentialError::BadSignature
                | CredentialError::UntrustedIssuer
                | CredentialError::MissingClaim,
            )
            | Error::Account(_) => Ending::Failed,
            Error::Credential(CredentialError::Malformed) => Ending::Malformed,
            _ => Ending::Neutral,
        },
        _ => Ending::Neutral,
    }
}
