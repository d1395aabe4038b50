//! The layer: auth-tower's gate, answering in HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use auth_core::authz::ScopeRules;
use auth_core::policy::Target;
use auth_core::{ConnectionInfo, CredentialKind, Engine, Error, Peer, Policy, Protocol, Session};
use auth_tower::{Gate, GateLayer, GateService, Mapping, connection_info};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Extensions, Response};

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

/// What HTTP answers need beyond the error: the challenges and realm of a 401, and the
/// scope rules the extractor's checks follow.
#[derive(Debug, Clone)]
pub(crate) struct HttpContext {
    pub(crate) challenges: Challenges,
    pub(crate) realm: String,
    pub(crate) scopes: ScopeRules,
}

/// Which challenges a 401 carries.
#[derive(Clone)]
pub(crate) enum Challenges {
    /// Those the caller chose ([`AuthLayer::challenges`]).
    Fixed(Vec<Challenge>),
    /// Those of the methods the engine's policy accepts, derived again when the policy
    /// is replaced (a reload that adds Basic advertises it).
    OfPolicy(Arc<PolicyChallenges>),
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(list) => f.debug_tuple("Fixed").field(list).finish(),
            Self::OfPolicy(_) => f.write_str("OfPolicy"),
        }
    }
}

/// The challenges of the policy last seen, and the engine to ask for the current one.
pub(crate) struct PolicyChallenges {
    engine: Arc<Engine>,
    derived: arc_swap::ArcSwap<(Arc<Policy>, Vec<Challenge>)>,
}

impl PolicyChallenges {
    fn new(engine: Arc<Engine>) -> Self {
        let policy = engine.policy();
        let challenges = challenges_of(&policy);
        Self {
            engine,
            derived: arc_swap::ArcSwap::from_pointee((policy, challenges)),
        }
    }

    /// The challenges of the policy in force now.
    fn current(&self) -> Arc<(Arc<Policy>, Vec<Challenge>)> {
        let policy = self.engine.policy();
        let derived = self.derived.load_full();
        if Arc::ptr_eq(&derived.0, &policy) {
            return derived;
        }
        let challenges = challenges_of(&policy);
        let fresh = Arc::new((policy, challenges));
        self.derived.store(fresh.clone());
        fresh
    }
}

impl Default for HttpContext {
    fn default() -> Self {
        Self {
            challenges: Challenges::Fixed(vec![Challenge::Bearer]),
            realm: "api".into(),
            scopes: ScopeRules::default(),
        }
    }
}

impl HttpContext {
    pub(crate) fn refuse(&self, error: Error, scope: Option<&str>) -> Response<Body> {
        match &self.challenges {
            Challenges::Fixed(list) => failure_response(error, list, &self.realm, scope),
            Challenges::OfPolicy(of) => {
                let derived = of.current();
                failure_response(error, &derived.1, &self.realm, scope)
            }
        }
    }
}

/// The challenges for the methods the policy's chains accept, Bearer first.
fn challenges_of(policy: &Policy) -> Vec<Challenge> {
    let mut kinds = Vec::new();
    for rule in policy.rules() {
        if let Target::Chain(chain) = &rule.target {
            kinds.extend(auth_core::Authenticator::accepts(chain.as_ref()));
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

/// HTTP's side of the gate: the peer from axum's `ConnectInfo`, the session as
/// [`Authenticated`], refusals as problem+json with challenges, the Negotiate token on
/// the response.
#[derive(Debug, Clone)]
pub struct HttpMapping {
    context: Arc<HttpContext>,
}

impl Mapping for HttpMapping {
    type Body = Body;

    fn connection(&self, extensions: &Extensions) -> ConnectionInfo {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(Peer::Unknown, |c| Peer::Tcp(c.0));
        connection_info(Protocol::Http, peer, extensions)
    }

    fn grant(&self, session: Arc<dyn Session>, extensions: &mut Extensions) {
        extensions.insert(Authenticated::new(session, self.context.clone()));
    }

    fn pass_anonymous(&self, extensions: &mut Extensions) {
        extensions.insert(self.context.clone());
    }

    fn refuse(&self, error: Error) -> Response<Body> {
        self.context.refuse(error, None)
    }
}

/// Authenticates every request through an [`Engine`]; see the crate documentation.
///
/// Cloning it (axum does, per route) costs two reference counts.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use auth_axum::{AuthLayer, Authenticated};
/// use auth_core::secrecy::{ExposeSecret, SecretString};
/// use auth_core::{ApiKeyAuthenticator, ApiKeyGrant, Chain, Engine, MemoryStore, Policy};
/// use axum::Router;
/// use axum::body::Body;
/// use axum::http::{Request, StatusCode};
/// use axum::routing::get;
/// use tower::ServiceExt; // for `oneshot`
///
/// async fn whoami(auth: Authenticated) -> String {
///     auth.principal().to_owned()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(MemoryStore::new());
/// let secret = SecretString::from("0123456789abcdef0123456789abcdef".to_owned());
/// let grant = ApiKeyGrant { principal: "ci".into(), roles: vec![], scopes: vec![] };
/// let key = ApiKeyAuthenticator::register(store.as_ref(), "ci", &secret, grant).await?;
/// let chain = Chain::builder().link(Arc::new(ApiKeyAuthenticator::new(store))).build();
/// let engine = Arc::new(Engine::builder(Policy::single(chain)?).build());
///
/// let app = Router::new().route("/whoami", get(whoami)).layer(AuthLayer::new(engine));
///
/// // No credential: 401 with a challenge, and the handler never runs.
/// let request = Request::get("/whoami").body(Body::empty())?;
/// let response = app.clone().oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// assert!(response.headers().contains_key("www-authenticate"));
///
/// // An API key is a secret anyone on the path could replay: it is accepted over TLS
/// // only, which the TLS acceptor records in the request's extensions.
/// let request = Request::get("/whoami")
///     .header("x-api-key", key.expose_secret())
///     .extension(auth_core::TlsInfo::default())
///     .body(Body::empty())?;
/// let response = app.oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::OK);
/// let body = axum::body::to_bytes(response.into_body(), 1024).await?;
/// assert_eq!(body, "ci");
/// # Ok(())
/// # }
/// ```
///
/// In a server, serve the router with `into_make_service_with_connect_info::<SocketAddr>()`
/// so that policy rules see the client's address.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    inner: GateLayer<HttpMapping>,
}

/// The service [`AuthLayer`] wraps around `S`.
pub type AuthService<S> = GateService<S, HttpMapping>;

impl AuthLayer {
    /// A layer running `engine`, challenging with the schemes its policy's chains
    /// accept, realm `api`, API keys in `x-api-key`, the built-in scope rules, and no
    /// anonymous requests.
    pub fn new(engine: Arc<Engine>) -> Self {
        let context = HttpContext {
            challenges: Challenges::OfPolicy(Arc::new(PolicyChallenges::new(engine.clone()))),
            ..HttpContext::default()
        };
        Self::build(Gate::new(engine), context)
    }

    fn build(gate: Gate, context: HttpContext) -> Self {
        let mapping = HttpMapping {
            context: Arc::new(context),
        };
        Self {
            inner: GateLayer::new(gate, mapping),
        }
    }

    fn parts(&self) -> (Gate, HttpContext) {
        (
            self.inner.gate().clone(),
            HttpContext::clone(&self.inner.mapping().context),
        )
    }

    fn with_context(self, change: impl FnOnce(&mut HttpContext)) -> Self {
        let (gate, mut context) = self.parts();
        change(&mut context);
        Self::build(gate, context)
    }

    fn with_gate(self, change: impl FnOnce(Gate) -> Gate) -> Self {
        let (gate, context) = self.parts();
        Self::build(change(gate), context)
    }

    /// The realm named in the challenges.
    #[must_use]
    pub fn realm(self, realm: impl Into<String>) -> Self {
        let realm = realm.into();
        self.with_context(|c| c.realm = realm)
    }

    /// The challenges to send, replacing those derived from the policy (which follow a
    /// replaced policy: [`Engine::replace_policy`]).
    #[must_use]
    pub fn challenges(self, methods: impl IntoIterator<Item = Challenge>) -> Self {
        let methods = methods.into_iter().collect();
        self.with_context(|c| c.challenges = Challenges::Fixed(methods))
    }

    /// The rules [`Authenticated::require_scope`] follows (which granted scope implies
    /// which required one).
    #[must_use]
    pub fn scope_rules(self, rules: ScopeRules) -> Self {
        self.with_context(|c| c.scopes = rules)
    }

    /// The header API keys travel in.
    ///
    /// # Errors
    /// When `name` is not a valid header name.
    pub fn api_key_header(self, name: &str) -> Result<Self, axum::http::header::InvalidHeaderName> {
        let (gate, context) = self.parts();
        Ok(Self::build(gate.api_key_header(name)?, context))
    }

    /// Lets requests without any credential through without a session, for routes that
    /// take `Option<Authenticated>`. A credential that is present must still be valid.
    #[must_use]
    pub fn allow_anonymous(self) -> Self {
        self.with_gate(Gate::allow_anonymous)
    }

    /// The options of this layer that weaken what each request proves, as rustls keeps its
    /// own behind `dangerous()`: each says why on [`DangerousAuthLayer`].
    pub fn dangerous(self) -> DangerousAuthLayer {
        DangerousAuthLayer(self)
    }
}

/// The risky options of an [`AuthLayer`], reached through [`AuthLayer::dangerous`].
#[derive(Debug)]
pub struct DangerousAuthLayer(AuthLayer);

impl DangerousAuthLayer {
    /// Reuses the session a bearer token earned for the next requests with the same token,
    /// for up to `max_age`.
    ///
    /// Dangerous because a reused request skips the chain, the audit, the rate limiter and
    /// the account stage; see [`DangerousGate::reuse_sessions`](auth_tower::DangerousGate::reuse_sessions).
    #[must_use]
    pub fn reuse_sessions(self, capacity: u64, max_age: std::time::Duration) -> AuthLayer {
        self.0
            .with_gate(|g| g.dangerous().reuse_sessions(capacity, max_age))
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.inner.layer(inner)
    }
}
