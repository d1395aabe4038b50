//! Serving a router through an auth-listen [`Listener`]: admission, TLS, and each
//! request carrying its connection's facts for the auth layer.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use auth_core::{Error, InfrastructureError};
use auth_listen::{Connection, Listener};
use axum::Router;
use axum::extract::ConnectInfo;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower::ServiceExt;

use crate::response::failure_response;

/// How long an HTTP/1 client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener`'s connections until the process ends; see [`serve_until`].
///
/// ```no_run
/// use std::sync::Arc;
/// use auth_axum::{AuthLayer, Authenticated};
/// use auth_core::{Engine, Protocol};
/// use auth_listen::Listener;
/// use axum::{Router, routing::get};
///
/// # async fn run(engine: Arc<Engine>) -> std::io::Result<()> {
/// let app = Router::new()
///     .route("/whoami", get(|auth: Authenticated| async move { auth.user().to_owned() }))
///     .layer(AuthLayer::new(engine));
/// let listener = Listener::bind("127.0.0.1:8080".parse().unwrap(), Protocol::Http).await?;
/// auth_axum::serve(listener, app).await
/// # }
/// ```
pub async fn serve(listener: Listener, app: Router) -> std::io::Result<()> {
    serve_until(listener, app, std::future::pending()).await
}

/// Serves `app` on `listener`'s connections (HTTP/1.1, or HTTP/2 by ALPN or prior
/// knowledge; under TLS without ALPN protocols of its own the listener offers `h2` and
/// `http/1.1`) until `shutdown` completes. Every request carries the client's address as
/// axum's `ConnectInfo<SocketAddr>`, the TLS handshake's [`auth_core::TlsInfo`] (with
/// the client's certificates) and the [`auth_listen::ConnectionFacts`], which
/// [`crate::AuthLayer`] reads; a request that authenticates gives the connection's place
/// among the unauthenticated ones back. A connection the listener refused for want of a
/// place is answered 503 on every request until it closes.
pub async fn serve_until(
    listener: Listener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut incoming = listener.with_default_alpn(&[b"h2", b"http/1.1"]).incoming();
    tokio::pin!(shutdown);
    loop {
        let connection = tokio::select! {
            () = &mut shutdown => return Ok(()),
            next = incoming.next() => match next {
                Some(connection) => connection,
                None => return Ok(()),
            },
        };
        tokio::spawn(serve_connection(connection, app.clone()));
    }
}

/// Serves one connection with `app`, or with 503 when it was refused.
async fn serve_connection(connection: Connection, app: Router) {
    let facts = connection.facts().clone();
    let addr = facts
        .remote_addr()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let service = hyper::service::service_fn(move |mut request: http::Request<_>| {
        let app = app.clone();
        let facts = facts.clone();
        async move {
            if facts.is_refused() {
                let busy = Error::Infrastructure(InfrastructureError::Unavailable);
                return Ok(failure_response(busy, &[], "", None));
            }
            let extensions = request.extensions_mut();
            extensions.insert(ConnectInfo::<SocketAddr>(addr));
            if let Some(tls) = facts.tls() {
                extensions.insert(tls.clone());
            }
            extensions.insert(facts);
            app.oneshot(request).await
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its headers does not keep the connection.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    if let Err(e) = builder
        .serve_connection(TokioIo::new(connection), service)
        .await
    {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}
