//! The tower layer both HTTP-based adapters use, generic over what their protocol makes
//! of a [`Verdict`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use auth_core::{ConnectionInfo, Error, InfrastructureError, Peer, Protocol, Session, TlsInfo};
use auth_listen::ConnectionFacts;
use futures::future::BoxFuture;
use http::{Extensions, Request, Response};

use crate::gate::{Gate, Verdict};

/// One protocol's side of the gate: where the peer address is, and how a grant, an
/// anonymous pass and a refusal look.
pub trait Mapping: Send + Sync + 'static {
    /// The response body of the wrapped service.
    type Body: Send + 'static;

    /// The connection a request arrived on, from what the server put into its extensions.
    fn connection(&self, extensions: &Extensions) -> ConnectionInfo;

    /// Puts the handler-facing identity for `session` into the request's extensions.
    fn grant(&self, session: Arc<dyn Session>, extensions: &mut Extensions);

    /// Marks a request let through without a credential (for extractors that must then
    /// refuse it themselves).
    fn pass_anonymous(&self, extensions: &mut Extensions) {
        let _ = extensions;
    }

    /// The answer to a refused request.
    fn refuse(&self, error: Error) -> Response<Self::Body>;

    /// Adds the server's mutual-authentication token to a granted request's response:
    /// `WWW-Authenticate: Negotiate <token>` (RFC 4559 section 5), which is also how gRPC
    /// carries it, as response metadata.
    fn mutual(&self, token: &[u8], response: &mut Response<Self::Body>) {
        if let Ok(value) = http::HeaderValue::from_str(&crate::negotiate_header(token)) {
            response
                .headers_mut()
                .append(http::header::WWW_AUTHENTICATE, value);
        }
    }
}

/// The connection for `protocol`: from the [`ConnectionFacts`] an auth-listen server put
/// into the extensions (peer and TLS), else from `peer`, encrypted when a TLS acceptor in
/// front of the service put a [`TlsInfo`] into the extensions (`hostssl`/`hostnossl`
/// rules need it).
pub fn connection_info(protocol: Protocol, peer: Peer, extensions: &Extensions) -> ConnectionInfo {
    if let Some(facts) = extensions.get::<ConnectionFacts>() {
        let mut connection = ConnectionInfo::new(protocol, facts.peer().clone());
        connection.proxied = facts.proxied().cloned();
        return match facts.tls() {
            Some(tls) => connection.with_tls(tls.clone()),
            None => connection,
        };
    }
    let connection = ConnectionInfo::new(protocol, peer);
    match extensions.get::<TlsInfo>() {
        Some(tls) => connection.with_tls(tls.clone()),
        None => connection,
    }
}

/// Wraps services in a [`GateService`] that runs a [`Gate`] and maps its verdict with `M`.
#[derive(Debug)]
pub struct GateLayer<M> {
    gate: Arc<Gate>,
    mapping: Arc<M>,
}

impl<M> Clone for GateLayer<M> {
    fn clone(&self) -> Self {
        Self {
            gate: self.gate.clone(),
            mapping: self.mapping.clone(),
        }
    }
}

impl<M> GateLayer<M> {
    /// The layer for `gate`, answering in `mapping`'s protocol.
    pub fn new(gate: Gate, mapping: M) -> Self {
        Self {
            gate: Arc::new(gate),
            mapping: Arc::new(mapping),
        }
    }

    /// The gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The mapping.
    pub fn mapping(&self) -> &M {
        &self.mapping
    }
}

impl<S, M> tower::Layer<S> for GateLayer<M> {
    type Service = GateService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        GateService {
            inner,
            gate: self.gate.clone(),
            mapping: self.mapping.clone(),
        }
    }
}

/// The service [`GateLayer`] wraps around `S`.
pub struct GateService<S, M> {
    inner: S,
    gate: Arc<Gate>,
    mapping: Arc<M>,
}

impl<S: Clone, M> Clone for GateService<S, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            gate: self.gate.clone(),
            mapping: self.mapping.clone(),
        }
    }
}

impl<S, M> std::fmt::Debug for GateService<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateService")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl<S, M, B> tower::Service<Request<B>> for GateService<S, M>
where
    S: tower::Service<Request<B>, Response = Response<M::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    M: Mapping,
    B: Send + 'static,
{
    type Response = Response<M::Body>;
    type Error = S::Error;
    type Future = GateFuture<S::Future, Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let facts = request.extensions().get::<ConnectionFacts>().cloned();
        if facts.as_ref().is_some_and(ConnectionFacts::is_refused) {
            // The listener found no place for the connection within its wait (and
            // audited that): every request on it hears "unavailable" until it closes.
            let busy = Error::Infrastructure(InfrastructureError::Unavailable);
            return GateFuture {
                state: State::Refused {
                    response: Some(self.mapping.refuse(busy)),
                },
            };
        }
        let connection = self.mapping.connection(request.extensions());
        // Behind a trusted HTTP proxy, the client its forwarding headers name.
        let connection = match &facts {
            Some(facts) => crate::forwarded::behind_proxies(connection, request.headers(), facts),
            None => connection,
        };
        // A reused session is known without waiting for anything: the request goes
        // straight to the inner service that was polled ready, with no boxed future.
        if let Some(session) = self.gate.reused(request.headers(), &connection) {
            if let Some(facts) = &facts {
                facts.authenticated();
            }
            self.mapping.grant(session, request.extensions_mut());
            return GateFuture {
                state: State::Direct {
                    inner: self.inner.call(request),
                },
            };
        }
        // The clone that was polled ready handles this request (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        let mapping = self.mapping.clone();
        let future = Box::pin(async move {
            let at = auth_core::audit::SessionPlace::of(&connection);
            match gate.check_unreused(request.headers(), connection).await {
                Verdict::Granted { session, mutual } => {
                    // Authenticated: the connection gives its place back.
                    if let Some(facts) = &facts {
                        facts.authenticated();
                    }
                    // The session stage: the request is the session, audited from OK to
                    // the response, then ended.
                    let started = gate.session_started(session.as_ref(), &at);
                    let mut session_end = session.clone();
                    mapping.grant(session, request.extensions_mut());
                    let response = inner.call(request).await;
                    gate.session_ended(&mut session_end, &at, started);
                    let mut response = response?;
                    if let Some(token) = mutual {
                        mapping.mutual(&token, &mut response);
                    }
                    Ok(response)
                }
                Verdict::Anonymous => {
                    mapping.pass_anonymous(request.extensions_mut());
                    inner.call(request).await
                }
                Verdict::Refused(error) => Ok(mapping.refuse(error)),
            }
        });
        GateFuture {
            state: State::Gated { future },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of a [`GateService`].
    pub struct GateFuture<F, R, E> {
        #[pin]
        state: State<F, R, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProjection]
    enum State<F, R, E> {
        // A reused session: the inner service's own future.
        Direct {
            #[pin]
            inner: F,
        },
        // Authentication first, then the inner service (or the refusal).
        Gated {
            future: BoxFuture<'static, Result<R, E>>,
        },
        // A connection the listener refused: its answer, at once.
        Refused {
            response: Option<R>,
        },
    }
}

impl<F, R, E> std::fmt::Debug for GateFuture<F, R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.state {
            State::Direct { .. } => "GateFuture::Direct",
            State::Gated { .. } => "GateFuture::Gated",
            State::Refused { .. } => "GateFuture::Refused",
        })
    }
}

impl<F, R, E> Future for GateFuture<F, R, E>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Direct { inner } => inner.poll(cx),
            StateProjection::Gated { future } => future.as_mut().poll(cx),
            StateProjection::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
        }
    }
}
