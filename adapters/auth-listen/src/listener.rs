//! A TCP listener with admission and TLS: accepts with backoff, admits each connection
//! off the accept loop (a connection waiting for a place delays no one), runs its TLS
//! handshake under a deadline, and hands the server [`Connection`]s.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use auth_core::{Peer, Protocol};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::admission::Admission;
use crate::connection::{Connection, Stream};
use crate::proxy::SharedTrustedProxies;
use crate::tls::TlsSetup;

/// How long a connection may hold its place without authenticating, by default (as
/// PostgreSQL's `authentication_timeout`).
pub const DEFAULT_UNAUTHENTICATED_TIMEOUT: Duration = Duration::from_secs(60);

/// The kernel's accept queue for [`Listener::bind`]: deep enough that a burst of
/// thousands of connections is queued, not dropped.
const BACKLOG: u32 = 4096;

/// A front door's listening socket with its admission and TLS.
///
/// ```no_run
/// use std::sync::Arc;
/// use auth_core::Protocol;
/// use auth_listen::{Admission, Listener};
/// use futures::StreamExt;
///
/// # async fn run() -> std::io::Result<()> {
/// let admission = Arc::new(Admission::default());
/// let mut incoming = Listener::bind("127.0.0.1:8080".parse().unwrap(), Protocol::Http)
///     .await?
///     .with_admission(admission)
///     .incoming();
/// while let Some(connection) = incoming.next().await {
///     // Hand it to hyper, tonic or a protocol loop; its facts say who it is.
///     let _peer = connection.facts().peer().clone();
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    protocol: Protocol,
    admission: Arc<Admission>,
    tls: Option<TlsSetup>,
    unauthenticated_timeout: Duration,
    trusted_proxies: SharedTrustedProxies,
}

impl Listener {
    /// Binds `addr` (address reuse on, a deep accept queue) for `protocol`'s front door,
    /// with a default [`Admission`] of its own and no TLS.
    pub async fn bind(addr: SocketAddr, protocol: Protocol) -> io::Result<Self> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        Ok(Self::new(socket.listen(BACKLOG)?, protocol))
    }

    /// A listener on a socket the caller bound.
    pub fn new(tcp: TcpListener, protocol: Protocol) -> Self {
        Self {
            tcp,
            protocol,
            admission: Arc::new(Admission::default()),
            tls: None,
            unauthenticated_timeout: DEFAULT_UNAUTHENTICATED_TIMEOUT,
            trusted_proxies: SharedTrustedProxies::default(),
        }
    }

    /// The same, admitting through `admission`: share one between every front door of a
    /// process, so an address's connections count together whichever door they use.
    pub fn with_admission(mut self, admission: Arc<Admission>) -> Self {
        self.admission = admission;
        self
    }

    /// The same with TLS on every connection.
    pub fn with_tls(mut self, tls: TlsSetup) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The same offering the ALPN protocols `alpn` under TLS unless its [`TlsSetup`]
    /// names some already: what a server for one protocol sets (`h2` for gRPC, `h2` and
    /// `http/1.1` for HTTP), so a caller who gave a bare certificate gets them.
    pub fn with_default_alpn(mut self, alpn: &[&[u8]]) -> Self {
        self.tls = self.tls.map(|tls| {
            if tls.alpn().is_empty() {
                tls.with_alpn(alpn)
            } else {
                tls
            }
        });
        self
    }

    /// The same, taking the client's address from the PROXY header (v1 or v2) of
    /// connections from `trusted` proxies, and on HTTP and gRPC from their `Forwarded` /
    /// `X-Forwarded-For` headers; a PROXY header from anyone else is refused and audited.
    /// A [`SharedTrustedProxies`] lets a reload replace them while the listener runs.
    pub fn with_trusted_proxies(mut self, trusted: impl Into<SharedTrustedProxies>) -> Self {
        self.trusted_proxies = trusted.into();
        self
    }

    /// The trusted proxies.
    pub fn trusted_proxies(&self) -> &SharedTrustedProxies {
        &self.trusted_proxies
    }

    /// The same with how long a connection may hold its place without authenticating.
    pub fn with_unauthenticated_timeout(mut self, timeout: Duration) -> Self {
        self.unauthenticated_timeout = timeout;
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The admission.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// The TLS setup, if any.
    pub fn tls(&self) -> Option<&TlsSetup> {
        self.tls.as_ref()
    }

    /// How long a connection may hold its place without authenticating.
    pub fn unauthenticated_timeout(&self) -> Duration {
        self.unauthenticated_timeout
    }

    /// The front door's protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The next TCP connection, `TCP_NODELAY` set (small replies would otherwise wait on
    /// delayed ACKs, 40 ms stalls). Accept errors (out of file descriptors, a connection
    /// reset before it was accepted) are logged and retried after a pause that doubles
    /// from 5 ms to 1 s, never in a tight loop; the pause resets after a success.
    pub async fn accept(&self) -> (TcpStream, SocketAddr) {
        accept(&self.tcp).await
    }

    /// The admitted connections, TLS done when configured, as a stream for hyper or
    /// tonic. Admission and handshakes run in their own tasks, so a connection waiting
    /// for a place or stalling its handshake delays no one. Refused connections that are
    /// to be answered come too, [`ConnectionFacts::is_refused`](crate::ConnectionFacts::is_refused)
    /// set. Dropping the stream stops accepting.
    pub fn incoming(self) -> Incoming {
        let (tx, rx) = mpsc::channel(64);
        let listener = Arc::new(self);
        tokio::spawn(async move {
            loop {
                let (tcp, addr) = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = tx.closed() => return,
                };
                let (listener, tx) = (listener.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Some(connection) = listener.admit(tcp, addr).await {
                        // The place is held until the server took the connection, so
                        // admitted connections cannot pile up here either.
                        let _ = tx.send(connection).await;
                    }
                });
            }
        });
        Incoming { rx }
    }

    /// Admits one accepted connection and runs its handshake: the connection, or
    /// `None` when it is closed without an answer.
    async fn admit(&self, mut tcp: TcpStream, addr: SocketAddr) -> Option<Connection> {
        // Read once: the connection keeps the proxies it was admitted under.
        let trusted = self.trusted_proxies.load();
        let admitted = self
            .admission
            .admit(&mut tcp, Peer::Tcp(addr), self.protocol, &trusted)
            .await;
        if admitted.as_ref().is_err_and(|refused| !refused.answer()) {
            return None;
        }
        // A TLS client hears even a refusal only through TLS.
        let (stream, info) = match &self.tls {
            None => (Stream::Plain(tcp), None),
            Some(tls) => match tls.handshake(tcp).await {
                Ok((stream, info)) => (Stream::Tls(Box::new(stream)), Some(info)),
                Err(e) => {
                    tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                    crate::metrics::handshake_failed(self.protocol);
                    return None;
                }
            },
        };
        Some(Connection::new(
            stream,
            info,
            Peer::Tcp(addr),
            admitted,
            self.unauthenticated_timeout,
            trusted,
        ))
    }
}

/// The next connection on `listener`, as [`Listener::accept`] does it, for a server that
/// keeps its own `TcpListener`.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    let mut pause = Duration::from_millis(5);
    loop {
        match listener.accept().await {
            Ok((tcp, addr)) => {
                let _ = tcp.set_nodelay(true);
                return (tcp, addr);
            }
            Err(e) => {
                tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "accept failed; pausing");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The connections of [`Listener::incoming`].
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<Connection>,
}

impl futures::Stream for Incoming {
    type Item = Connection;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Connection>> {
        self.rx.poll_recv(cx)
    }
}
