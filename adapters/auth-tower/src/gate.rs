//! The protocol-neutral part of a request's authentication: headers and connection in,
//! a [`Verdict`] out.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::audit::{AuditEvent, AuditEventKind, AuditSink, TracingAuditSink};
use auth_core::{Attempt, ConnectionInfo, Credential, Error, Outcome, Policy, Session};
use http::{HeaderMap, HeaderName};

use crate::credential::{API_KEY_HEADER, credential_from_headers};
use crate::negotiate::MutualToken;

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
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("api_key_header", &self.api_key_header)
            .field("anonymous", &self.anonymous)
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

    /// Decides about a request with `headers` arriving over `connection`.
    pub async fn check(&self, headers: &HeaderMap, mut connection: ConnectionInfo) -> Verdict {
        let credential = match credential_from_headers(headers, self.api_key_header.as_str()) {
            Ok(credential) => credential,
            Err(failure) => {
                self.audit_malformed(&connection, &failure.detail);
                return Verdict::Refused(failure.error);
            }
        };
        let absent = matches!(credential, Credential::Absent);
        if absent && self.anonymous {
            return Verdict::Anonymous;
        }
        let gss = matches!(credential, Credential::GssToken(_));
        connection.gss_requested |= gss;
        let mut attempt = Attempt::new(connection, credential);
        let mutual = gss.then(MutualToken::default);
        if let Some(mutual) = &mutual {
            attempt = attempt.with_conversation(Box::new(mutual.clone()));
        }
        match self.policy.authenticate(&mut attempt).await {
            Outcome::Authenticated(session) => Verdict::Granted {
                session: Arc::from(session),
                mutual: mutual.and_then(|m| m.take()),
            },
            refused => Verdict::Refused(match refused.failure().map(|f| f.error) {
                // Nothing presented is a challenge, whatever the chain made of it.
                _ if absent => Error::MissingCredentials,
                // The header was readable, so the token itself is bad: RFC 6750 3.1 calls
                // a malformed token `invalid_token`, keeping `invalid_request` for a
                // malformed request.
                Some(Error::Malformed) => Error::InvalidCredentials,
                Some(error) => error,
                None => Error::Denied,
            }),
        }
    }

    fn audit_malformed(&self, connection: &ConnectionInfo, detail: &str) {
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
            error: Some(Error::Malformed.code()),
            detail: Some(detail),
        });
    }
}
