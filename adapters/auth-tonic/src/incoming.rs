//! tonic serving through an auth-listen [`Listener`]: admission, TLS, and the
//! connection's facts on every call.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use auth_listen::{Connection, ConnectionFacts, Listener};
use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// One connection from [`incoming`]: a byte stream whose tonic connect info is its
/// [`ConnectionFacts`] (in every request's extensions, where [`crate::AuthLayer`] reads
/// the peer and TLS from them; the layer also gives tonic's `Request::remote_addr()` the
/// admitted client).
#[derive(Debug)]
pub struct GrpcConnection(Connection);

impl Connected for GrpcConnection {
    type ConnectInfo = ConnectionFacts;

    fn connect_info(&self) -> ConnectionFacts {
        self.0.facts().clone()
    }
}

/// `listener`'s admitted connections (TLS done when it has TLS, offering ALPN `h2` unless
/// its setup names protocols of its own; gRPC clients insist on it), for
/// tonic's `Server::serve_with_incoming`. Connections beyond an address's places wait
/// for one; one refused when the wait ran out is answered `UNAVAILABLE` by the auth layer
/// on every call until it closes, within seconds.
///
/// ```no_run
/// use std::sync::Arc;
/// use auth_core::{Engine, Protocol};
/// use auth_listen::Listener;
/// use auth_tonic::AuthLayer;
///
/// # async fn run(engine: Arc<Engine>, routes: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error>> {
/// let listener = Listener::bind("127.0.0.1:50051".parse()?, Protocol::Grpc).await?;
/// tonic::transport::Server::builder()
///     .layer(AuthLayer::new(engine))
///     .add_routes(routes)
///     .serve_with_incoming(auth_tonic::incoming(listener))
///     .await?;
/// # Ok(())
/// # }
/// ```
pub fn incoming(listener: Listener) -> impl Stream<Item = io::Result<GrpcConnection>> {
    listener
        .with_default_alpn(&[b"h2"])
        .incoming()
        .map(|c| Ok(GrpcConnection(c)))
}

impl AsyncRead for GrpcConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for GrpcConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
