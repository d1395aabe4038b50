//! The protocol-neutral part of a request's authentication: headers and connection in,
//! a [`Verdict`] out.

use std::sync::Arc;
use std::time::Duration;

use auth_core::audit::{AuditEventKind, SessionPlace};
use auth_core::secrecy::ExposeSecret;
use auth_core::{
    Attempt, AuthorizationError, ConnectionInfo, Credential, CredentialError, Engine, Error,
    InfrastructureError, Mechanism, Outcome, Session,
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

/// Authenticates requests through an [`Engine`]: reads the credential from the headers,
/// asks the engine what the connection is offered and for its decision, and says what
/// happened.
///
/// The failure the client sees is the mapped `error` only; the engine audits the details,
/// including the gate's own refusals (unreadable headers).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use auth_core::secrecy::{ExposeSecret, SecretString};
/// use auth_core::{
///     ApiKeyAuthenticator, ApiKeyGrant, Chain, ConnectionInfo, CredentialError, Engine, Error,
///     MemoryStore, Policy, Protocol, TlsInfo,
/// };
/// use auth_tower::{Gate, Verdict};
/// use http::{HeaderMap, HeaderValue};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(MemoryStore::new());
/// let secret = SecretString::from("0123456789abcdef0123456789abcdef".to_owned());
/// let grant = ApiKeyGrant { principal: "ci".into(), roles: vec![], scopes: vec![] };
/// let key = ApiKeyAuthenticator::register(store.as_ref(), "ci", &secret, grant).await?;
/// let chain = Chain::builder().link(Arc::new(ApiKeyAuthenticator::new(store))).build();
/// let gate = Gate::new(Arc::new(Engine::builder(Policy::single(chain)?).build()));
/// // Over TLS: a key, like a password or a token, is never offered in clear.
/// let connection = ConnectionInfo::tcp(Protocol::Http, "10.0.0.5:40000".parse()?)
///     .with_tls(TlsInfo::default());
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-api-key", HeaderValue::from_str(key.expose_secret())?);
/// match gate.check(&headers, connection.clone()).await {
///     Verdict::Granted { session, .. } => assert_eq!(session.principal(), "ci"),
///     other => panic!("refused: {other:?}"),
/// }
///
/// // No credential at all: refused as missing (a 401 challenge in HTTP).
/// let verdict = gate.check(&HeaderMap::new(), connection).await;
/// assert!(matches!(verdict, Verdict::Refused(Error::Credential(CredentialError::Missing))));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Gate {
    engine: Arc<Engine>,
    api_key_header: HeaderName,
    anonymous: bool,
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
    /// A gate running `engine`, reading API keys from `x-api-key`, refusing anonymous
    /// requests.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            api_key_header: HeaderName::from_static(API_KEY_HEADER),
            anonymous: false,
            reuse: None,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
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

    /// The options of this gate that weaken what each request proves, as rustls keeps its
    /// own behind `dangerous()`: each says why on [`DangerousGate`].
    pub fn dangerous(self) -> DangerousGate {
        DangerousGate(self)
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
        // The chain an offer for this connection would carry (a bearer credential names
        // no user), so a rule for a user cannot be skipped here.
        let chain = self.engine.chain_for(connection)?;
        reuse.get(token, &chain, connection, self.engine.clock().now())
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
                self.engine.refused_before_offer(&connection, &failure);
                return Verdict::Refused(failure.error);
            }
        };
        // A certificate from the TLS handshake can be the credential of a request without
        // an Authorization header. Not on a route open to anyone, where a browser's stray
        // certificate must neither count as a failed login nor close the route.
        let presented = !self.anonymous
            && connection
                .tls
                .as_ref()
                .is_some_and(|t| !t.client_certificates.is_empty());
        if matches!(credential, Credential::Absent) && self.anonymous {
            return Verdict::Anonymous;
        }
        // Basic names the user the request is for: the rules match it.
        let offer = match self.engine.offer(&connection, credential.user()) {
            Ok(offer) => offer,
            Err(failure) => {
                let absent = matches!(credential, Credential::Absent);
                return Verdict::Refused(refusal(Outcome::Rejected(failure), absent));
            }
        };
        // No header, but a certificate: that is the credential when the connection's
        // chain is offered certificates.
        let credential = match credential {
            Credential::Absent if presented && offer.includes(Mechanism::ClientCertificate) => {
                Credential::ClientCertificate
            }
            other => other,
        };
        let nothing_in_headers = matches!(
            credential,
            Credential::Absent | Credential::ClientCertificate
        );
        // A Negotiate header asks for Kerberos; it does not make the connection
        // GSS-encrypted, so `hostgss` rules never match HTTP.
        let gss = matches!(credential, Credential::GssToken(_));
        let mut attempt = Attempt::new(connection, credential);
        let mutual = gss.then(MutualToken::default);
        if let Some(mutual) = &mutual {
            attempt = attempt.with_conversation(Box::new(mutual.clone()));
        }
        let outcome = match (&self.reuse, &attempt.credential) {
            (Some(reuse), Credential::Bearer(token)) => {
                let token = token.clone();
                let now = self.engine.clock().now();
                match self.engine.decide(&offer, &mut attempt).await {
                    Outcome::Authenticated(session) => {
                        let session: Arc<dyn Session> = Arc::from(session);
                        reuse.put(
                            token.expose_secret(),
                            offer.chain(),
                            &attempt.connection,
                            &session,
                            now,
                        );
                        return Verdict::Granted {
                            session,
                            mutual: None,
                        };
                    }
                    refused => refused,
                }
            }
            _ => self.engine.decide(&offer, &mut attempt).await,
        };
        match outcome {
            Outcome::Authenticated(session) => Verdict::Granted {
                session: Arc::from(session),
                mutual: mutual.and_then(|m| m.take()),
            },
            refused => Verdict::Refused(refusal(refused, nothing_in_headers)),
        }
    }

    /// Audits the start of a request's session; the time it started.
    pub(crate) fn session_started(
        &self,
        session: &dyn Session,
        at: &SessionPlace,
    ) -> std::time::Instant {
        self.engine
            .record_session(AuditEventKind::SessionStarted, session, at, Duration::ZERO);
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
        self.engine.record_session(
            AuditEventKind::SessionEnded,
            session.as_ref(),
            at,
            started.elapsed(),
        );
        if let Some(owned) = Arc::get_mut(session)
            && let Some(work) = owned.end()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(work);
        }
    }
}

/// The error a refused request maps to. `nothing_in_headers`: the request had no
/// credential header (none at all, or only a TLS client certificate).
fn refusal(outcome: Outcome, nothing_in_headers: bool) -> Error {
    match outcome.failure().map(|f| f.error) {
        // Busy, locked out or down say so (429, 503), whatever was presented.
        Some(
            e @ (Error::Authorization(AuthorizationError::RateLimited)
            | Error::Infrastructure(InfrastructureError::Unavailable)
            | Error::Infrastructure(InfrastructureError::Timeout)),
        ) => e,
        // Nothing presented (in a header) is a challenge, whatever the engine made of it;
        // why a certificate was refused is in the audit log.
        _ if nothing_in_headers => Error::Credential(CredentialError::Missing),
        // The header was readable, so the token itself is bad: RFC 6750 3.1 calls a
        // malformed token `invalid_token`, keeping `invalid_request` for a malformed
        // request.
        Some(Error::Credential(CredentialError::Malformed)) => {
            Error::Credential(CredentialError::Invalid)
        }
        Some(error) => error,
        None => Error::Authorization(AuthorizationError::Rejected),
    }
}

/// The risky options of a [`Gate`], reached through [`Gate::dangerous`].
#[derive(Debug)]
pub struct DangerousGate(Gate);

impl DangerousGate {
    /// Reuses the session a bearer token earned for later requests that present the same
    /// token over a like connection (the chain the policy picks for it, the client's
    /// address, TLS and client certificate all the same), for up to `max_age` (capped at
    /// a year) and never past the session's expiry; sessions without one are not reused.
    /// Up to `capacity` tokens are remembered, by their SHA-256 only.
    ///
    /// Dangerous because a reused session skips the chain. The request gets no audit
    /// event and no rate-limiter update or lockout check (the request that earned the
    /// session had all three, and a client locked out or disabled later keeps what it
    /// earned before for up to `max_age`), and an authenticator's own revocation checks
    /// (introspection re-checked every request) are not consulted again within
    /// `max_age`. Keep `max_age` at or below the revocation delay you accept.
    #[must_use]
    pub fn reuse_sessions(self, capacity: u64, max_age: Duration) -> Gate {
        let mut gate = self.0;
        gate.reuse = Some(Arc::new(SessionReuse::new(capacity, max_age)));
        gate
    }
}
