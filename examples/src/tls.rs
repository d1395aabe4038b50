//! TLS for the HTTP and gRPC APIs: the data directory's certificate, every client asked
//! for a certificate (judged by the policy, not the handshake), handshakes off the accept
//! loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth_core::certificate::tls::{server_config, tls_info};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tower::ServiceExt;

use crate::gateway::{GatewayError, Prepared};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; connections beyond wait in the kernel's backlog, so a
/// flood of clients that never finish costs bounded memory.
const MAX_HANDSHAKES: usize = 512;
/// Handshakes in progress at once from one address: beyond, its connections are closed,
/// so one host that stalls its handshakes cannot take every place.
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 32;
/// How long an HTTP/1 client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The acceptor for an API: `server.crt`/`server.key` of the data directory, the client
/// CAs as hints, and the ALPN protocols `alpn`.
pub fn acceptor(prepared: &Prepared, alpn: &[&[u8]]) -> Result<TlsAcceptor, GatewayError> {
    let read = |name: &str| {
        let path = prepared.data_dir.join(name);
        std::fs::read(&path).map_err(|e| GatewayError(format!("{}: {e}", path.display())))
    };
    let config = server_config(
        &read("server.crt")?,
        &read("server.key")?,
        prepared.client_cas.as_deref(),
        alpn,
    )
    .map_err(|e| GatewayError(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connections of `listener` that completed a TLS handshake with `acceptor`. Each
/// handshake runs in its own task under a deadline, so a client that stalls delays no
/// one; the stream ends when its receiver is dropped.
pub fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let per_address = Arc::new(auth_pgwire::ConnectionLimits::new(
        MAX_HANDSHAKES,
        MAX_HANDSHAKES_PER_ADDRESS,
    ));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let tcp = tokio::select! {
                tcp = auth_pgwire::accept(&listener) => tcp,
                () = tx.closed() => return,
            };
            let Some(permit) = tcp.peer_addr().ok().and_then(|a| per_address.enter(a.ip())) else {
                continue;
            };
            // Without TCP_NODELAY small replies wait on delayed ACKs (40 ms stalls).
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                match handshake.await {
                    // The places are held until the server took the connection, so
                    // finished handshakes cannot pile up either.
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
                drop((permit, slot));
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Serves `app` on TLS connections until `shutdown` completes, HTTP/1.1 or HTTP/2 as
/// ALPN says. Each request carries the peer address (`ConnectInfo`) and the handshake's
/// [`auth_core::TlsInfo`] with the client's certificates, which the auth layer reads.
pub async fn serve_http(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use tokio_stream::StreamExt;
    let mut connections = incoming(listener, acceptor);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return Ok(()),
            next = connections.next() => match next {
                Some(Ok(stream)) => stream,
                Some(Err(_)) => continue,
                None => return Ok(()),
            },
        };
        let Ok(addr) = stream.get_ref().0.peer_addr() else {
            continue;
        };
        let tls = tls_info(stream.get_ref().1);
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut request| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(addr));
                request.extensions_mut().insert(tls.clone());
                app.clone().oneshot(request)
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
            let served = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "HTTPS connection ended with an error");
            }
        });
    }
}
