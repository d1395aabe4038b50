//! The protocol-neutral part of a request's authentication: headers and connection in,
//! a [`Verdict`] out.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::secrecy::ExposeSecret;

use auth_core::audit::{
    AuditEvent, AuditEventKind, AuditSink, SessionPlace, TracingAuditSink, record_session_event,
};
use auth_core::clock::system_clock;
use auth_core::policy::Selection;
use auth_core::{
    Attempt, ConnectionInfo, Credential, Error, Failure, Outcome, Policy, Session, SharedClock,
};
use http::{HeaderMap, HeaderName};

use crate::credential::{API_KEY_HEADER, credential_from_headers, presented_bearer};
use crate::negotiate::MutualToken;
use crate::reuse::SessionReuse;

/// What the gate decided about one request.

#[derive(Debug)]
#[non_exhaustive]
pub enum Verdict {
    /// The policy authenticated the request.
    Granted {
        /// The session, shared with the handler through the request's extensions.
        session: Arc<dyn Session>,
        /// The server's final GSS-API token, which a Negotiate response carries back
        /// so the client can authenticate the server (RFC 4559 section 5).
        mutual: Option<Vec<u8>>,
    },
    /// No credential was presented and the gate lets anonymous requests through.
    Anonymous,
    /// Refused; `error` is what the protocol maps to its answer.
    Refused(Error),
}

/// Authenticates requests through a [`Policy`]: reads the credential from the headers,
/// runs the policy's chain for the connection, and says what happened.
///
/// The failure the client sees is the mapped `error` only; the chain audits the details,
/// and the gate audits the refusals it makes itself (unreadable headers).
#[derive(Clone)]
pub struct Gate {
    policy: Arc<Policy>,
    api_key_header: HeaderName,
    anonymous: bool,
    audit: Arc<dyn AuditSink>,
    clock: SharedClock,
    reuse: Option<Arc<SessionReuse>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("api_key_header", &self.api_key_header)
            .field("anonymous", &self.anonymous)
            .field("reuse", &self.reuse)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate running `policy`, reading API keys from `x-api-key`, refusing anonymous
    /// requests, auditing its own refusals to `tracing`.
    pub fn new(policy: Arc<Policy>) -> Self {
        Self {
            policy,
            api_key_header: HeaderName::from_static(API_KEY_HEADER),
            anonymous: false,
            audit: Arc::new(TracingAuditSink),
            clock: system_clock(),
            reuse: None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The header API keys travel in.
    ///
    /// # Errors
    /// When `name` is not a valid header name.
    pub fn api_key_header(mut self, name: &str) -> Result<Self, http::header::InvalidHeaderName> {
        self.api_key_header = HeaderName::from_bytes(name.as_bytes())?;
        Ok(self)
    }

    /// Lets requests that present no credential through without a session. A credential
    /// that is present must still be valid.
    #[must_use]
    pub fn allow_anonymous(mut self) -> Self {
        self.anonymous = true;
        self
    }

    /// Where the gate's own refusals (unreadable headers) are audited; the chain audits
    /// everything else to its own sink.
    #[must_use]
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = sink;
        self
    }

    /// Reuses the session a bearer token earned for later requests that present the same
    /// token over a like connection (the chain the policy picks for it, the client's
    /// address, TLS and client certificate all the same), for up to `max_age` (capped at
    /// a year) and never past the session's expiry; sessions without one are not reused.
    /// Up to `capacity` tokens are remembered, by their SHA-256 only.
    ///
    /// Off by default, because a reused session skips the chain. The request gets no
    /// audit event and no rate-limiter update or lockout check (the request that earned
    /// the session had all three, and a client locked out later keeps what it earned
    /// before for up to `max_age`), and an authenticator's own revocation checks
    /// (introspection re-checked every request) are not consulted again within
    /// `max_age`. Keep `max_age` at or below the revocation delay you accept.
    #[must_use]
    pub fn reuse_sessions(mut self, capacity: u64, max_age: Duration) -> Self {
        self.reuse = Some(Arc::new(SessionReuse::new(capacity, max_age)));
        self
    }

    /// Reads time from `clock` (session reuse expiry).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The session reuse holds for this request: a well-formed bearer token seen before, on
    /// the chain the policy picks for this connection. Synchronous and without copying
    /// the token, so a layer can answer the hot path without a boxed future.
    pub fn reused(
        &self,
        headers: &HeaderMap,
        connection: &ConnectionInfo,
    ) -> Option<Arc<dyn Session>> {
        let reuse = self.reuse.as_ref()?;
        let token = presented_bearer(headers)?;
        // The user as `Policy::choose` sees it for a bearer attempt (the credential names
        // none), so a rule for a user cannot be skipped here.
        let user = connection.user.as_deref();
        let Selection::Chain(_, chain) = self.policy.select(connection, user) else {
            return None;
        };
        reuse.get(token, chain, connection, self.clock.now())
    }

    /// Decides about a request with `headers` arriving over `connection`.
    pub async fn check(&self, headers: &HeaderMap, connection: ConnectionInfo) -> Verdict {
        if let Some(session) = self.reused(headers, &connection) {
            return Verdict::Granted {
                session,
                mutual: None,
            };
        }
        self.check_unreused(headers, connection).await
    }

    /// [`Gate::check`] for a request [`Gate::reused`] already could not answer.
    pub(crate) async fn check_unreused(
        &self,
        headers: &HeaderMap,
        connection: ConnectionInfo,
    ) -> Verdict {
        let credential = match credential_from_headers(headers, self.api_key_header.as_str()) {
            Ok(credential) => credential,
            Err(failure) => {
                self.audit_refusal(&connection, &failure);
                return Verdict::Refused(failure.error);
            }
        };
        // No header, but a certificate from the TLS handshake: that is the credential
        // when the connection's chain takes certificates. Not on a route open to anyone,
        // where a browser's stray certificate must neither count as a failed login nor
        // close the route.
        let presented = !self.anonymous
            && connection
                .tls
                .as_ref()
                .is_some_and(|t| !t.client_certificates.is_empty());
        let credential = match credential {
            Credential::Absent if presented && self.takes_certificates(&connection) => {
                Credential::ClientCertificate
            }
            other => other,
        };
        let certificate_only = matches!(credential, Credential::ClientCertificate);
        let absent = matches!(credential, Credential::Absent);
        if absent && self.anonymous {
            return Verdict::Anonymous;
        }
        // A Negotiate header asks for Kerberos; it does not make the connection
        // GSS-encrypted, so `hostgss` rules never match HTTP.
        let gss = matches!(credential, Credential::GssToken(_));
        let mut attempt = Attempt::new(connection, credential);
        let mutual = gss.then(MutualToken::default);
        if let Some(mutual) = &mutual {
            attempt = attempt.with_conversation(Box::new(mutual.clone()));
        }
        let outcome = match &self.reuse {
            Some(reuse) if matches!(attempt.credential, Credential::Bearer(_)) => {
                match self.run_and_keep(reuse, &mut attempt).await {
                    Ok(session) => {
                        return Verdict::Granted {
                            session,
                            mutual: None,
                        };
                    }
                    Err(refused) => refused,
                }
            }
            _ => self.policy.authenticate(&mut attempt).await,
        };
        match outcome {
            Outcome::Authenticated(session) => Verdict::Granted {
                session: Arc::from(session),
                mutual: mutual.and_then(|m| m.take()),
            },
            refused => Verdict::Refused(match refused.failure().map(|f| f.error) {
                // Busy, locked out or down say so (429, 503), whatever was presented.
                Some(e @ (Error::RateLimited | Error::Unavailable | Error::Timeout)) => e,
                // Nothing presented (in a header) is a challenge, whatever the chain made
                // of it; why a certificate was refused is in the audit log.
                _ if absent || certificate_only => Error::MissingCredentials,
                // The header was readable, so the token itself is bad: RFC 6750 3.1 calls
                // a malformed token `invalid_token`, keeping `invalid_request` for a
                // malformed request.
                Some(Error::Malformed) => Error::InvalidCredentials,
                Some(error) => error,
                None => Error::Denied,
            }),
        }
    }

    /// Whether the chain the policy picks for `connection` has a method for client
    /// certificates.
    fn takes_certificates(&self, connection: &ConnectionInfo) -> bool {
        match self.policy.select(connection, None) {
            Selection::Chain(_, chain) => {
                auth_core::Authenticator::supports(chain.as_ref(), &Credential::ClientCertificate)
            }
            _ => false,
        }
    }

    /// Runs a bearer attempt the reuse cache could not answer, and keeps the session it
    /// earns for the next request with the same token.
    async fn run_and_keep(
        &self,
        reuse: &SessionReuse,
        attempt: &mut Attempt,
    ) -> Result<Arc<dyn Session>, Outcome> {
        let chain = self.policy.choose(attempt).map_err(Outcome::Rejected)?;
        let Credential::Bearer(token) = &attempt.credential else {
            return Err(chain.decide(attempt).await);
        };
        let token = token.clone();
        let now = self.clock.now();
        match chain.decide(attempt).await {
            Outcome::Authenticated(session) => {
                let session: Arc<dyn Session> = Arc::from(session);
                reuse.put(
                    token.expose_secret(),
                    &chain,
                    &attempt.connection,
                    &session,
                    now,
                );
                Ok(session)
            }
            refused => Err(refused),
        }
    }

    /// Audits the start of a request's session; the time it started.
    pub(crate) fn session_started(
        &self,
        session: &dyn Session,
        at: &SessionPlace,
    ) -> std::time::Instant {
        record_session_event(
            self.audit.as_ref(),
            AuditEventKind::SessionStarted,
            session,
            at,
            self.clock.as_ref(),
            Duration::ZERO,
        );
        std::time::Instant::now()
    }

    /// Ends a request's session: audits it with its duration and, when nothing else holds
    /// the session any more, lets its backend act ([`Session::end`]).
    pub(crate) fn session_ended(
        &self,
        session: &mut Arc<dyn Session>,
        at: &SessionPlace,
        started: std::time::Instant,
    ) {
        record_session_event(
            self.audit.as_ref(),
            AuditEventKind::SessionEnded,
            session.as_ref(),
            at,
            self.clock.as_ref(),
            started.elapsed(),
        );
        if let Some(owned) = Arc::get_mut(session)
            && let Some(work) = owned.end()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(work);
        }
    }

    fn audit_refusal(&self, connection: &ConnectionInfo, failure: &Failure) {
        self.audit.record(&AuditEvent {
            timestamp: SystemTime::now(),
            event: AuditEventKind::AttemptFailed,
            method: None,
            username: None,
            source: &connection.peer,
            connection_id: connection.id,
            protocol: connection.protocol.as_str(),
            // Reading headers takes no measurable time; no clock is read for it on the
            // path every request takes.
            duration: Duration::ZERO,
            outcome: "rejected",
            action: None,
            error: Some(failure.error.code()),
            detail: Some(&failure.detail),
        });
    }
}
