//! An admitted connection: its stream (TCP or TLS) and its facts, which the front door's
//! auth layer reads and through which it gives the connection's place back once a
//! request on it has authenticated.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use auth_core::{Peer, Proxied, TlsInfo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::admission::{Admitted, Place, Refused};
use crate::proxy::TrustedProxies;

/// How long a refused connection lives to hear its refusal.
pub const REFUSAL_LIFETIME: Duration = Duration::from_secs(2);

/// What is known about a connection before its requests are authenticated: where it comes
/// from, what its TLS handshake established, and whether it holds a place among the
/// unauthenticated connections. Cheap to clone; every request of the connection carries
/// one in its extensions (auth-axum's `serve` and auth-tonic's `incoming` put it there),
/// and auth-tower's gate reads the peer and TLS from it.
#[derive(Debug, Clone)]
pub struct ConnectionFacts {
    peer: Peer,
    proxied: Option<Proxied>,
    tls: Option<TlsInfo>,
    state: Arc<Mutex<PlaceState>>,
    trusted: Arc<TrustedProxies>,
}

#[derive(Debug)]
enum PlaceState {
    /// Unauthenticated, holding its place.
    Placed(#[allow(dead_code)] Place),
    /// A request on it authenticated: the place went back.
    Authenticated,
    /// Refused: it lives only to hear why, holding a place among the refusals being
    /// answered.
    Refused(#[allow(dead_code)] Refused),
}

impl ConnectionFacts {
    /// Facts for a connection that was admitted by other means (tests, a server that
    /// counts its own connections): it holds no place, is not refused and trusts no
    /// proxy.
    pub fn unplaced(peer: Peer, tls: Option<TlsInfo>) -> Self {
        Self {
            peer,
            proxied: None,
            tls,
            state: Arc::new(Mutex::new(PlaceState::Authenticated)),
            trusted: Arc::new(TrustedProxies::none()),
        }
    }

    /// The same, trusting `trusted` proxies' forwarding headers.
    pub fn with_trusted_proxies(mut self, trusted: Arc<TrustedProxies>) -> Self {
        self.trusted = trusted;
        self
    }

    /// Where the client connects from: behind a trusted proxy that sent a PROXY header,
    /// the client it named.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The trusted proxy the client came through (PROXY protocol), if any.
    pub fn proxied(&self) -> Option<&Proxied> {
        self.proxied.as_ref()
    }

    /// The proxies the listener trusts (for `Forwarded` headers on HTTP and gRPC).
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted
    }

    /// The peer that sent this connection's bytes: the proxy when there is one, else the
    /// client.
    pub fn sender(&self) -> &Peer {
        self.proxied.as_ref().map_or(&self.peer, |p| &p.proxy)
    }

    /// The client's TCP address, when it has one.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        match self.peer {
            Peer::Tcp(addr) => Some(addr),
            _ => None,
        }
    }

    /// What the TLS handshake established; `None` without TLS.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// Whether the connection was refused for want of a place: the front door answers
    /// every request on it with its "unavailable" (503, `UNAVAILABLE`) until it closes,
    /// which is soon.
    pub fn is_refused(&self) -> bool {
        matches!(*self.lock(), PlaceState::Refused(_))
    }

    /// Whether it still holds a place among the unauthenticated connections.
    pub fn holds_place(&self) -> bool {
        matches!(*self.lock(), PlaceState::Placed(_))
    }

    /// A request on the connection authenticated: its place goes back (to the next
    /// waiting connection of its address), and the unauthenticated deadline no longer
    /// applies to it. Idempotent.
    pub fn authenticated(&self) {
        let mut state = self.lock();
        if matches!(*state, PlaceState::Placed(_)) {
            *state = PlaceState::Authenticated;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PlaceState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The byte stream under a [`Connection`].
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An admitted (or refused, to be answered) connection from a [`crate::Listener`]: a
/// byte stream, TLS already done when the listener has it, and its [`ConnectionFacts`].
///
/// While it holds its place, it lasts at most the listener's unauthenticated timeout:
/// then reads and writes fail and the server drops it. A refused connection lasts
/// [`REFUSAL_LIFETIME`].
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    facts: ConnectionFacts,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Connection {
    /// A connection that holds `admitted`'s place for at most `timeout` unauthenticated,
    /// or was refused and lives [`REFUSAL_LIFETIME`] to hear it.
    pub(crate) fn new(
        stream: Stream,
        tls: Option<TlsInfo>,
        sender: Peer,
        admitted: Result<Admitted, Refused>,
        timeout: Duration,
        trusted: Arc<TrustedProxies>,
    ) -> Self {
        let (peer, proxied, state, lifetime) = match admitted {
            Ok(a) => (a.peer, a.proxied, PlaceState::Placed(a.place), timeout),
            Err(refused) => (sender, None, PlaceState::Refused(refused), REFUSAL_LIFETIME),
        };
        Self {
            stream,
            facts: ConnectionFacts {
                peer,
                proxied,
                tls,
                state: Arc::new(Mutex::new(state)),
                trusted,
            },
            deadline: Some(Box::pin(tokio::time::sleep(lifetime))),
        }
    }

    /// The connection's facts (a clone shares the place).
    pub fn facts(&self) -> &ConnectionFacts {
        &self.facts
    }

    /// The TCP stream under any TLS.
    pub fn tcp(&self) -> &TcpStream {
        match &self.stream {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        }
    }

    /// The TLS session, when the listener has TLS (for its ALPN protocol or certificates).
    pub fn tls_session(&self) -> Option<&rustls::ServerConnection> {
        match &self.stream {
            Stream::Plain(_) => None,
            Stream::Tls(tls) => Some(tls.get_ref().1),
        }
    }

    /// Whether the connection's time is up: unauthenticated past its deadline, or
    /// refused past its lifetime. Polling the deadline registers the waker, so a
    /// connection idle in a read is woken to fail.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = &mut self.deadline else {
            return false;
        };
        if !matches!(
            *self.facts.lock(),
            PlaceState::Placed(_) | PlaceState::Refused(_)
        ) {
            self.deadline = None;
            return false;
        }
        deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the connection did not authenticate in time",
    )
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
