//! The layer: auth-tower's gate, answering in gRPC statuses.

use std::sync::Arc;

#[cfg(feature = "tls")]
use auth_core::TlsInfo;
use auth_core::authz::ScopeRules;
use auth_core::{ConnectionInfo, Engine, Error, Peer, Protocol, Session};
use auth_tower::{Gate, GateLayer, GateService, Mapping, connection_info};
use http::{Extensions, Response};
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;
#[cfg(feature = "tls")]
use tonic::transport::server::TlsConnectInfo;

use crate::identity::Authenticated;
use crate::status::status_for;

/// gRPC's side of the gate: the peer from tonic's `TcpConnectInfo` (and, with the `tls`
/// feature, TLS and client certificates from its `TlsConnectInfo`), the session as
/// [`Authenticated`], refusals as a trailers-only status response.
#[derive(Debug, Clone, Default)]
pub struct GrpcMapping {
    scopes: Arc<ScopeRules>,
}

impl Mapping for GrpcMapping {
    type Body = Body;

    fn connection(&self, extensions: &Extensions) -> ConnectionInfo {
        #[cfg(feature = "tls")]
        if let Some(tls) = extensions.get::<TlsConnectInfo<TcpConnectInfo>>() {
            let peer = tls.get_ref().remote_addr().map_or(Peer::Unknown, Peer::Tcp);
            // A TlsInfo some layer before this one inserted knows more (the version, the
            // channel binding); tonic tells only that it is TLS, and the client's chain.
            let info = extensions
                .get::<TlsInfo>()
                .cloned()
                .unwrap_or_else(|| TlsInfo {
                    client_certificates: tls
                        .peer_certs()
                        .map(|chain| chain.iter().map(|der| der.to_vec()).collect())
                        .unwrap_or_default(),
                    ..TlsInfo::default()
                });
            return ConnectionInfo::new(Protocol::Grpc, peer).with_tls(info);
        }
        let peer = extensions
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map_or(Peer::Unknown, Peer::Tcp);
        connection_info(Protocol::Grpc, peer, extensions)
    }

    fn grant(&self, session: Arc<dyn Session>, extensions: &mut Extensions) {
        extensions.insert(Authenticated::new(session, self.scopes.clone()));
        remote_addr_for_tonic(extensions);
    }

    fn pass_anonymous(&self, extensions: &mut Extensions) {
        remote_addr_for_tonic(extensions);
    }

    fn refuse(&self, error: Error) -> Response<Body> {
        status_for(error).into_http()
    }
}

/// Behind [`crate::incoming`] tonic knows no `TcpConnectInfo`, so its
/// `Request::remote_addr()` would be `None`: give it the client the listener admitted
/// (behind a trusted proxy, the client the proxy named).
fn remote_addr_for_tonic(extensions: &mut Extensions) {
    if extensions.get::<TcpConnectInfo>().is_some() {
        return;
    }
    if let Some(remote_addr) = extensions
        .get::<auth_listen::ConnectionFacts>()
        .and_then(auth_listen::ConnectionFacts::remote_addr)
    {
        extensions.insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(remote_addr),
        });
    }
}

/// Authenticates every call through an [`Engine`]; see the crate documentation.
///
/// Cloning it costs two reference counts.
///
/// # Example
///
/// The layer on a server, and the same layer around a bare tower service, which shows
/// what a call without a credential gets:
///
/// ```
/// use std::sync::Arc;
/// use auth_core::secrecy::{ExposeSecret, SecretString};
/// use auth_core::{ApiKeyAuthenticator, ApiKeyGrant, Chain, Engine, MemoryStore, Policy};
/// use auth_tonic::{AuthLayer, Authenticated};
/// use tonic::body::Body;
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(MemoryStore::new());
/// let secret = SecretString::from("0123456789abcdef0123456789abcdef".to_owned());
/// let grant = ApiKeyGrant { principal: "ci".into(), roles: vec![], scopes: vec![] };
/// let key = ApiKeyAuthenticator::register(store.as_ref(), "ci", &secret, grant).await?;
/// let chain = Chain::builder().link(Arc::new(ApiKeyAuthenticator::new(store))).build();
/// let auth = AuthLayer::new(Arc::new(Engine::builder(Policy::single(chain)?).build()));
///
/// // Every service of the server behind the policy (add services, then `serve`).
/// let _server = tonic::transport::Server::builder().layer(auth.clone());
///
/// // A service that answers with the caller's user (tonic handlers use `RequestExt`).
/// let service = auth.layer(tower::service_fn(|call: http::Request<Body>| async move {
///     let user = call.extensions().get::<Authenticated>().map(|a| a.user().to_owned());
///     http::Response::builder().header("x-user", user.unwrap_or_default()).body(Body::empty())
/// }));
///
/// let call = http::Request::post("/demo.Demo/Who").body(Body::empty())?;
/// let response = service.clone().oneshot(call).await?;
/// assert_eq!(response.headers()["grpc-status"], "16"); // UNAUTHENTICATED
///
/// // Over TLS (the TLS acceptor records it): a key is never accepted in clear.
/// let call = http::Request::post("/demo.Demo/Who")
///     .header("x-api-key", key.expose_secret())
///     .extension(auth_core::TlsInfo::default())
///     .body(Body::empty())?;
/// let response = service.oneshot(call).await?;
/// assert_eq!(response.headers()["x-user"], "ci");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AuthLayer {
    inner: GateLayer<GrpcMapping>,
}

/// The service [`AuthLayer`] wraps around `S`. It keeps `S`'s gRPC service name, so a
/// server can protect some services and not others:
///
/// ```no_run
/// # use std::sync::Arc;
/// # let engine = Arc::new(auth_core::Engine::builder(auth_core::Policy::new(vec![]).unwrap()).build());
/// use tower::Layer;
///
/// let (_, health) = tonic_health::server::health_reporter();
/// let auth = auth_tonic::AuthLayer::new(engine);
/// // Behind the policy; services added without `auth.layer` (reflection) stay open.
/// let router = tonic::transport::Server::builder().add_service(auth.layer(health));
/// ```
#[derive(Debug, Clone)]
pub struct AuthService<S>(GateService<S, GrpcMapping>);

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    GateService<S, GrpcMapping>: tower::Service<http::Request<B>>,
{
    type Response = <GateService<S, GrpcMapping> as tower::Service<http::Request<B>>>::Response;
    type Error = <GateService<S, GrpcMapping> as tower::Service<http::Request<B>>>::Error;
    type Future = <GateService<S, GrpcMapping> as tower::Service<http::Request<B>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.0.call(request)
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for AuthService<S> {
    const NAME: &'static str = S::NAME;
}

impl AuthLayer {
    /// A layer running `engine`, reading API keys from `x-api-key`, with the built-in
    /// scope rules and no anonymous calls.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self::build(Gate::new(engine), ScopeRules::default())
    }

    fn build(gate: Gate, scopes: ScopeRules) -> Self {
        let mapping = GrpcMapping {
            scopes: Arc::new(scopes),
        };
        Self {
            inner: GateLayer::new(gate, mapping),
        }
    }

    fn gate(&self) -> Gate {
        self.inner.gate().clone()
    }

    fn scopes(&self) -> ScopeRules {
        ScopeRules::clone(&self.inner.mapping().scopes)
    }

    /// The rules [`Authenticated::require_scope`] follows.
    #[must_use]
    pub fn scope_rules(self, rules: ScopeRules) -> Self {
        Self::build(self.gate(), rules)
    }

    /// The metadata key API keys travel in.
    ///
    /// # Errors
    /// When `name` is not a valid metadata key.
    pub fn api_key_header(self, name: &str) -> Result<Self, http::header::InvalidHeaderName> {
        Ok(Self::build(
            self.gate().api_key_header(name)?,
            self.scopes(),
        ))
    }

    /// Lets calls without any credential through without an identity. A credential that
    /// is present must still be valid.
    #[must_use]
    pub fn allow_anonymous(self) -> Self {
        Self::build(self.gate().allow_anonymous(), self.scopes())
    }

    /// The options of this layer that weaken what each call proves, as rustls keeps its
    /// own behind `dangerous()`: each says why on [`DangerousAuthLayer`].
    pub fn dangerous(self) -> DangerousAuthLayer {
        DangerousAuthLayer(self)
    }
}

/// The risky options of an [`AuthLayer`], reached through [`AuthLayer::dangerous`].
#[derive(Debug)]
pub struct DangerousAuthLayer(AuthLayer);

impl DangerousAuthLayer {
    /// Reuses the session a bearer token earned for the next calls with the same token,
    /// for up to `max_age`.
    ///
    /// Dangerous because a reused call skips the chain, the audit, the rate limiter and
    /// the account stage; see [`DangerousGate::reuse_sessions`](auth_tower::DangerousGate::reuse_sessions).
    #[must_use]
    pub fn reuse_sessions(self, capacity: u64, max_age: std::time::Duration) -> AuthLayer {
        let layer = self.0;
        AuthLayer::build(
            layer.gate().dangerous().reuse_sessions(capacity, max_age),
            layer.scopes(),
        )
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService(self.inner.layer(inner))
    }
}
