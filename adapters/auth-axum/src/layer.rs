//! The tower layer: credential in, policy decision, session out (or the mapped failure).

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use auth_core::audit::{AuditEvent, AuditEventKind, AuditSink, TracingAuditSink};
use auth_core::policy::Target;
use auth_core::{
    Attempt, ConnectionInfo, Credential, CredentialKind, Error, Outcome, Peer, Policy, Protocol,
    TlsInfo,
};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use futures::future::BoxFuture;

use crate::credential::{API_KEY_HEADER, credential_from_headers};
use crate::extract::Authenticated;
use crate::response::failure_response;

/// An authentication scheme offered in `WWW-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// `Bearer` (RFC 6750), for OAuth and JWT methods.
    Bearer,
    /// `Basic` (RFC 7617), for password methods.
    Basic,
    /// `Negotiate` (RFC 4559), for Kerberos.
    Negotiate,
    /// An API-key header (no standard challenge; listed so none is sent for it).
    ApiKey,
}

/// The challenges a 401 carries, shared with the extractors.
#[derive(Debug, Clone)]
pub(crate) struct Challenges {
    pub(crate) methods: Vec<Challenge>,
    pub(crate) realm: String,
}

impl Default for Challenges {
    fn default() -> Self {
        Self {
            methods: vec![Challenge::Bearer],
            realm: "api".into(),
        }
    }
}

/// The challenges for the methods the policy's chains accept, Bearer first.
fn challenges_of(policy: &Policy) -> Vec<Challenge> {
    let mut kinds = Vec::new();
    for rule in policy.rules() {
        if let Target::Chain(chain) = &rule.target {
            for link in chain.links() {
                kinds.extend(link.authenticator().accepts());
            }
        }
    }
    let mut out = Vec::new();
    for (kind, challenge) in [
        (CredentialKind::Bearer, Challenge::Bearer),
        (CredentialKind::Password, Challenge::Basic),
        (CredentialKind::Gss, Challenge::Negotiate),
    ] {
        if kinds.contains(&kind) {
            out.push(challenge);
        }
    }
    if out.is_empty() {
        out.push(Challenge::Bearer);
    }
    out
}

#[derive(Clone)]
struct Shared {
    policy: Arc<Policy>,
    challenges: Arc<Challenges>,
    api_key_header: String,
    anonymous: bool,
    audit: Arc<dyn AuditSink>,
}

/// Authenticates every request through a [`Policy`]; see the crate documentation.
#[derive(Clone)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("challenges", &self.shared.challenges)
            .field("anonymous", &self.shared.anonymous)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// A layer running `policy`, challenging with the schemes its chains accept, realm
    /// `api`, API keys in `x-api-key`, and no anonymous requests.
    pub fn new(policy: Arc<Policy>) -> Self {
        let methods = challenges_of(&policy);
        Self {
            shared: Arc::new(Shared {
                policy,
                challenges: Arc::new(Challenges {
                    methods,
                    realm: "api".into(),
                }),
                api_key_header: API_KEY_HEADER.into(),
                anonymous: false,
                audit: Arc::new(TracingAuditSink),
            }),
        }
    }

    fn with(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        change(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The realm named in the challenges.
    #[must_use]
    pub fn realm(self, realm: impl Into<String>) -> Self {
        let realm = realm.into();
        self.with(|s| Arc::make_mut(&mut s.challenges).realm = realm)
    }

    /// The challenges to send, replacing those derived from the policy.
    #[must_use]
    pub fn challenges(self, methods: impl IntoIterator<Item = Challenge>) -> Self {
        let methods = methods.into_iter().collect();
        self.with(|s| Arc::make_mut(&mut s.challenges).methods = methods)
    }

    /// The header API keys travel in.
    #[must_use]
    pub fn api_key_header(self, name: impl Into<String>) -> Self {
        let name = name.into().to_ascii_lowercase();
        self.with(|s| s.api_key_header = name)
    }

    /// Lets requests without any credential through without a session, for routes that
    /// take `Option<Authenticated>`. A credential that is present must still be valid.
    #[must_use]
    pub fn allow_anonymous(self) -> Self {
        self.with(|s| s.anonymous = true)
    }

    /// Where malformed-header refusals are audited (the chain audits everything else).
    #[must_use]
    pub fn audit(self, sink: Arc<dyn AuditSink>) -> Self {
        self.with(|s| s.audit = sink)
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around `S`.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

impl Shared {
    fn refuse(&self, error: Error) -> Response {
        failure_response(
            error,
            &self.challenges.methods,
            &self.challenges.realm,
            None,
        )
    }

    fn audit_malformed(&self, peer: &Peer, started: Instant, detail: &str) {
        self.audit.record(&AuditEvent {
            timestamp: SystemTime::now(),
            event: AuditEventKind::AttemptFailed,
            method: None,
            username: None,
            source: peer,
            connection_id: 0,
            protocol: Protocol::Http.as_str(),
            duration: started.elapsed(),
            outcome: "rejected",
            action: None,
            error: Some(Error::Malformed.code()),
            detail: Some(detail),
        });
    }
}

impl<S> tower::Service<Request<Body>> for AuthService<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone that was polled ready handles this request (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let started = Instant::now();
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(Peer::Unknown, |c| Peer::Tcp(c.0));
            let credential =
                match credential_from_headers(request.headers(), &shared.api_key_header) {
                    Ok(c) => c,
                    Err(failure) => {
                        shared.audit_malformed(&peer, started, &failure.detail);
                        return Ok(shared.refuse(failure.error));
                    }
                };
            let absent = matches!(credential, Credential::Absent);
            if absent && shared.anonymous {
                // For an extractor that must refuse the anonymous request itself.
                request.extensions_mut().insert(shared.challenges.clone());
                return inner.call(request).await;
            }
            let mut connection = ConnectionInfo::new(Protocol::Http, peer);
            // A TLS acceptor in front of the router says the request was encrypted by
            // putting its TlsInfo in the extensions (hostssl/hostnossl rules need it).
            if let Some(tls) = request.extensions().get::<TlsInfo>() {
                connection = connection.with_tls(tls.clone());
            }
            let mut attempt = Attempt::new(connection, credential);
            match shared.policy.authenticate(&mut attempt).await {
                Outcome::Authenticated(session) => {
                    request.extensions_mut().insert(Authenticated::new(
                        Arc::from(session),
                        shared.challenges.clone(),
                    ));
                    inner.call(request).await
                }
                refused => {
                    // Nothing presented is a challenge, whatever the chain made of it.
                    let error = match refused.failure().map(|f| f.error) {
                        _ if absent => Error::MissingCredentials,
                        // The header was readable, so the token itself is bad: RFC 6750 3.1
                        // calls a malformed token `invalid_token` (401), keeping 400
                        // `invalid_request` for a malformed request.
                        Some(Error::Malformed) => Error::InvalidCredentials,
                        Some(error) => error,
                        None => Error::Denied,
                    };
                    Ok(shared.refuse(error))
                }
            }
        })
    }
}
