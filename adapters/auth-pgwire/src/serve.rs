//! One connection's life: a place under the unauthenticated-connection caps, SSL/GSS
//! negotiation, then pgwire's message loop behind the frame-length guard with an
//! authentication deadline.

use std::io;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use pgwire::api::auth::{DefaultServerParameterProvider, finish_authentication};
use pgwire::api::{
    ClientInfo, DefaultClient, ErrorHandler, PgWireConnectionState, PgWireServerHandlers,
};
use pgwire::error::ErrorInfo;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{MaybeTls, PgWireMessageServerCodec, process_error, process_message};
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::codec::{Framed, FramedParts};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::frames::{DEFAULT_MAX_PRE_AUTH_FRAME, FrameCheck, FrameGuard};
use crate::startup::Outbox;
use crate::unix::{UnixTransport, peer_credentials};
use auth_core::{Peer, Protocol, Proxied, TlsInfo};
use auth_listen::{
    Admission, Admitted, Place, Refused, SharedTrustedProxies, TlsCurrent, TlsSetup,
};

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const TLS_HANDSHAKE: u8 = 0x16;

/// Connection-level settings.
#[derive(Clone)]
pub struct ServeConfig {
    /// TLS for SSLRequest and direct TLS, with the channel-binding data that lets the
    /// engine offer SCRAM-SHA-256-PLUS on TLS connections; `None` answers SSLRequest with
    /// `N`.
    pub tls: Option<TlsSetup>,
    /// How long a client may take from connecting to finishing authentication (like
    /// PostgreSQL's `authentication_timeout`, default one minute).
    pub auth_timeout: Duration,
    /// The places for unauthenticated connections (shared by clones of this config; share
    /// it with the process's other front doors too). A connection beyond its address's
    /// places waits for one; when the wait runs out it is answered FATAL 53300.
    pub admission: Arc<Admission>,
    /// The proxies whose PROXY headers name the client (none by default: a PROXY
    /// header is then refused and audited); each connection reads them when it arrives,
    /// so a reload's replacement holds for the next one.
    pub trusted_proxies: SharedTrustedProxies,
    /// The largest frame accepted before authentication (default
    /// [`DEFAULT_MAX_PRE_AUTH_FRAME`](crate::frames::DEFAULT_MAX_PRE_AUTH_FRAME)).
    pub max_pre_auth_frame: u32,
    /// Cancelled when the server shuts down: an authenticated connection then ends with
    /// FATAL 57P01 (as PostgreSQL's smart shutdown says it) at once, its session closed
    /// through the session stage; a login in progress finishes first.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("tls", &self.tls.is_some())
            .field("auth_timeout", &self.auth_timeout)
            .field("admission", &self.admission)
            .field("max_pre_auth_frame", &self.max_pre_auth_frame)
            .finish()
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            tls: None,
            auth_timeout: Duration::from_secs(60),
            admission: Arc::new(Admission::default()),
            trusted_proxies: SharedTrustedProxies::default(),
            max_pre_auth_frame: DEFAULT_MAX_PRE_AUTH_FRAME,
            shutdown: tokio_util::sync::CancellationToken::new(),
        }
    }
}

enum Negotiated {
    /// Plaintext; the startup packet's first 8 bytes, already read; its declared length.
    Plain(TcpStream, [u8; 8], u32),
    Tls(Box<pgwire::tokio::tokio_rustls::server::TlsStream<TcpStream>>),
    /// Refused (plaintext after SSLRequest); the error was sent.
    Refused,
}

/// How a client opens the protocol, after any requests the server declined.
enum Opening {
    /// The startup packet's first 8 bytes and its declared length.
    Startup([u8; 8], u32),
    /// An SSLRequest, when TLS is offered (the caller answers it).
    SslRequest,
}

/// Whether bytes are already waiting on the socket, without waiting for any.
fn has_pending_bytes(tcp: &TcpStream) -> io::Result<bool> {
    let mut buf = [0u8; 1];
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut read_buf = tokio::io::ReadBuf::new(&mut buf);
    match tcp.poll_peek(&mut cx, &mut read_buf) {
        Poll::Ready(Ok(n)) => Ok(n > 0),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Ok(false),
    }
}

/// Sends FATAL `code` `message` on a connection that has not started the protocol yet,
/// and closes it.
async fn refuse<S: AsyncWrite + Unpin>(
    mut io: S,
    addr: SocketAddr,
    code: &str,
    message: &str,
) -> io::Result<()> {
    let error = ErrorInfo::new("FATAL".to_owned(), code.to_owned(), message.to_owned());
    let codec = PgWireMessageServerCodec::<String>::new(DefaultClient::new(addr, false));
    let mut framed = Framed::new(&mut io, codec);
    framed
        .send(PgWireBackendMessage::ErrorResponse(error.into()))
        .await?;
    framed.flush().await?;
    drop(framed);
    io.shutdown().await
}

/// Reads the client's opening packets, answering `N` to a GSSENCRequest (we do not
/// encrypt with GSSAPI; what the client asked for changes nothing: a `hostgss` rule
/// matches only GSS-encrypted connections) and to an SSLRequest when TLS is not offered.
async fn read_opening<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    tls_offered: bool,
) -> io::Result<Opening> {
    loop {
        let mut head = [0u8; 8];
        io.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        match (len, code) {
            (8, SSL_REQUEST) if tls_offered => return Ok(Opening::SslRequest),
            (8, SSL_REQUEST | GSSENC_REQUEST) => io.write_all(b"N").await?,
            _ => return Ok(Opening::Startup(head, len)),
        }
    }
}

fn handshake_failed() {
    auth_listen::metrics::handshake_failed(Protocol::Postgres);
}

async fn negotiate(mut tcp: TcpStream, tls: Option<&TlsAcceptor>) -> io::Result<Negotiated> {
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if first[0] == TLS_HANDSHAKE {
        // Direct TLS (PostgreSQL 17 `sslnegotiation=direct`): the ALPN must say postgresql.
        let Some(acceptor) = tls else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "direct TLS without TLS configured",
            ));
        };
        let stream = acceptor
            .accept(tcp)
            .await
            .inspect_err(|_| handshake_failed())?;
        if stream.get_ref().1.alpn_protocol() != Some(b"postgresql".as_slice()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "direct TLS without ALPN postgresql",
            ));
        }
        return Ok(Negotiated::Tls(Box::new(stream)));
    }
    match (read_opening(&mut tcp, tls.is_some()).await?, tls) {
        (Opening::Startup(head, len), _) => Ok(Negotiated::Plain(tcp, head, len)),
        (Opening::SslRequest, Some(acceptor)) => {
            // Anything the client sent after the SSLRequest and before our answer would be
            // read as if it came over TLS: refuse it.
            if has_pending_bytes(&tcp)? {
                let addr = tcp.peer_addr()?;
                refuse(
                    tcp,
                    addr,
                    "08P01",
                    "received unencrypted data after SSL request",
                )
                .await?;
                return Ok(Negotiated::Refused);
            }
            tcp.write_all(b"S").await?;
            let stream = acceptor
                .accept(tcp)
                .await
                .inspect_err(|_| handshake_failed())?;
            Ok(Negotiated::Tls(Box::new(stream)))
        }
        (Opening::SslRequest, None) => Err(io::ErrorKind::InvalidData.into()),
    }
}

/// Answers a connection that found no place within the wait as PostgreSQL answers one
/// over `max_connections`, FATAL 53300, and closes it; one the admission would not have
/// answered (too many refusals in progress, or a client that never spoke) is closed.
/// The client's first packet (startup or SSLRequest) is read first, briefly, so that
/// closing does not reset the connection before the client reads the answer; libpq
/// reports an error answer to its SSLRequest as the server's message.
async fn refuse_busy<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    addr: SocketAddr,
    refused: Refused,
) -> io::Result<()> {
    if !refused.answer() {
        return Ok(());
    }
    let mut first = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(500), io.read(&mut first)).await;
    refuse(io, addr, "53300", "sorry, too many clients already").await
}

/// Serves one client connection with `handlers` (whose startup handler is usually a
/// [`crate::PgAuthenticator`]) until it ends: first a place from
/// [`ServeConfig::admission`] (waiting for one when its address's are taken), then
/// SSL negotiation and authentication under [`ServeConfig::auth_timeout`]. Errors are
/// the connection's own I/O errors.
pub async fn serve<H: PgWireServerHandlers>(
    mut tcp: TcpStream,
    config: &ServeConfig,
    handlers: &H,
) -> io::Result<()> {
    let sender = tcp.peer_addr()?;
    tcp.set_nodelay(true)?;
    let admitted = config
        .admission
        .admit(
            &mut tcp,
            Peer::Tcp(sender),
            Protocol::Postgres,
            &config.trusted_proxies.load(),
        )
        .await;
    let (permit, addr, proxied) = match admitted {
        Ok(Admitted {
            place,
            peer: Peer::Tcp(client),
            proxied,
        }) => (place, client, proxied),
        Ok(a) => (a.place, sender, None),
        Err(refused) => return refuse_busy(tcp, sender, refused).await,
    };
    let deadline = tokio::time::sleep(config.auth_timeout);
    tokio::pin!(deadline);
    // Taken once: the connection's channel-binding data is its certificate's, even if a
    // reload replaces the certificate during the handshake.
    let tls = config.tls.as_ref().map(TlsSetup::current);
    let negotiated = tokio::select! {
        _ = &mut deadline => return Ok(()),
        n = negotiate(tcp, tls.as_ref().map(TlsCurrent::acceptor)) => n?,
    };
    let max_frame = config.max_pre_auth_frame;
    let (io, (secure, tls), prefix) = match negotiated {
        Negotiated::Refused => return Ok(()),
        Negotiated::Plain(tcp, prefix, len) => {
            let code = u32::from_be_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
            let Ok(check) = FrameCheck::after_startup_header(len, code, max_frame) else {
                return refuse(tcp, addr, "08P01", "invalid length of startup packet").await;
            };
            (
                FrameGuard::new(MaybeTls::Plain(tcp), check),
                (false, None),
                prefix.to_vec(),
            )
        }
        Negotiated::Tls(stream) => {
            let facts = match &tls {
                Some(tls) => tls.facts(stream.get_ref().1),
                None => auth_core::certificate::tls::tls_info(stream.get_ref().1),
            };
            (
                FrameGuard::new(MaybeTls::Tls(stream), FrameCheck::at_startup(max_frame)),
                (true, Some(facts)),
                Vec::new(),
            )
        }
    };
    let opened = Opened {
        io,
        addr,
        secure,
        tls,
        prefix,
        permit,
        label: addr.to_string(),
        transport: None,
        proxied,
    };
    run(opened, deadline, handlers, &config.shutdown).await
}

/// Serves one connection accepted on a [`UnixSocket`](crate::unix::UnixSocket) at
/// `socket` (its path, for the audit log) with `handlers` until it ends. The connection
/// carries the kernel's peer credentials; it has no TLS (an SSLRequest is answered `N`);
/// its place is counted per user id, as a local client (never against the total).
pub async fn serve_unix<H: PgWireServerHandlers>(
    mut stream: UnixStream,
    socket: Option<PathBuf>,
    config: &ServeConfig,
    handlers: &H,
) -> io::Result<()> {
    let transport = UnixTransport {
        path: socket,
        credentials: peer_credentials(&stream),
    };
    let sender = Peer::unix(transport.path.clone(), transport.credentials);
    let admitted = config
        .admission
        .admit(
            &mut stream,
            sender.clone(),
            Protocol::Postgres,
            &config.trusted_proxies.load(),
        )
        .await;
    // Behind a trusted proxy on the socket, the connection is the TCP client it named.
    let (permit, addr, label, transport, proxied) = match admitted {
        Ok(Admitted {
            place,
            peer: Peer::Tcp(client),
            proxied: Some(proxied),
        }) => (place, client, client.to_string(), None, Some(proxied)),
        Ok(a) => (
            a.place,
            UNIX_PLACEHOLDER,
            sender.to_string(),
            Some(transport),
            None,
        ),
        Err(refused) => return refuse_busy(stream, UNIX_PLACEHOLDER, refused).await,
    };
    let deadline = tokio::time::sleep(config.auth_timeout);
    tokio::pin!(deadline);
    let opening = tokio::select! {
        _ = &mut deadline => return Ok(()),
        o = read_opening(&mut stream, false) => o?,
    };
    let Opening::Startup(prefix, len) = opening else {
        return Ok(());
    };
    let code = u32::from_be_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    let Ok(check) = FrameCheck::after_startup_header(len, code, config.max_pre_auth_frame) else {
        return refuse(
            stream,
            UNIX_PLACEHOLDER,
            "08P01",
            "invalid length of startup packet",
        )
        .await;
    };
    let opened = Opened {
        io: FrameGuard::new(MaybeTls::Unix(stream), check),
        addr,
        secure: false,
        tls: None,
        prefix: prefix.to_vec(),
        permit,
        label,
        transport,
        proxied,
    };
    run(opened, deadline, handlers, &config.shutdown).await
}

/// What pgwire is told a Unix-socket client's address is (it needs one; so does pgwire's
/// own Unix serve loop). The authenticator reads the real peer from [`UnixTransport`].
const UNIX_PLACEHOLDER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// What the TLS handshake established, for the authenticator: pgwire's own accessor for
/// client certificates cannot see through the frame guard.
pub(crate) struct TlsFacts(pub(crate) TlsInfo);

/// The trusted proxy a client came through, for the authenticator.
pub(crate) struct ProxyFacts(pub(crate) Proxied);

/// A connection whose opening was read, ready for pgwire's message loop.
struct Opened {
    io: FrameGuard<MaybeTls>,
    /// The address pgwire is told.
    addr: SocketAddr,
    /// Whether the connection has TLS.
    secure: bool,
    /// What the TLS handshake established (SNI, the client's certificates).
    tls: Option<TlsInfo>,
    /// Bytes of the startup packet already read.
    prefix: Vec<u8>,
    permit: Place,
    /// The peer, for logs.
    label: String,
    transport: Option<UnixTransport>,
    /// The trusted proxy the client came through.
    proxied: Option<Proxied>,
}

/// pgwire's message loop behind the frame guard, with the authentication deadline.
async fn run<H: PgWireServerHandlers>(
    opened: Opened,
    mut deadline: std::pin::Pin<&mut tokio::time::Sleep>,
    handlers: &H,
    shutdown: &tokio_util::sync::CancellationToken,
) -> io::Result<()> {
    let Opened {
        io,
        addr: socket_addr,
        secure,
        tls,
        prefix,
        permit,
        label: addr,
        transport,
        proxied,
    } = opened;
    let mut client = DefaultClient::new(socket_addr, secure);
    client.sni_server_name = tls.as_ref().and_then(|t| t.server_name.clone());
    let authenticated = io.authenticated();
    let mut permit = Some(permit);
    let mut parts = FramedParts::new(io, PgWireMessageServerCodec::new(client));
    parts.read_buf = BytesMut::from(prefix.as_slice());
    let mut socket = Framed::from_parts(parts);
    socket.set_state(PgWireConnectionState::AwaitingStartup);
    if let Some(transport) = transport {
        socket.session_extensions().get_or_insert_with(|| transport);
    }
    if let Some(tls) = tls {
        socket
            .session_extensions()
            .get_or_insert_with(|| TlsFacts(tls));
    }
    if let Some(proxied) = proxied {
        socket
            .session_extensions()
            .get_or_insert_with(|| ProxyFacts(proxied));
    }

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        let authenticating = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        if !authenticating && permit.take().is_some() {
            // Authenticated: off the pre-authentication caps and frame limit.
            authenticated.store(true, Ordering::Release);
        }
        let message = if authenticating {
            tokio::select! {
                _ = &mut deadline => {
                    tracing::info!(peer = %addr, "authentication timed out");
                    return Ok(());
                }
                m = socket.next() => m,
            }
        } else {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let error = ErrorInfo::new(
                        "FATAL".to_owned(),
                        "57P01".to_owned(),
                        "terminating connection due to administrator command".to_owned(),
                    );
                    let _ = socket
                        .send(PgWireBackendMessage::ErrorResponse(error.into()))
                        .await;
                    return Ok(());
                }
                m = socket.next() => m,
            }
        };
        let unread = socket.read_buffer().len();
        let message = match message {
            // pgwire took exactly whole frames, or its next decode would read a header
            // out of the middle of one (see `frames`).
            Some(Ok(_)) if !socket.get_mut().aligned(unread) => {
                let error = ErrorInfo::new(
                    "FATAL".to_owned(),
                    "08P01".to_owned(),
                    "invalid message format".to_owned(),
                );
                let _ = socket
                    .send(PgWireBackendMessage::ErrorResponse(error.into()))
                    .await;
                return Ok(());
            }
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                // Garbled input (a frame length the guard refused, a message pgwire cannot
                // decode): say so and end the connection, with no ReadyForQuery after a
                // FATAL error.
                let error = ErrorInfo::new(
                    "FATAL".to_owned(),
                    "08P01".to_owned(),
                    format!("invalid frontend message: {e}"),
                );
                let _ = socket
                    .send(PgWireBackendMessage::ErrorResponse(error.into()))
                    .await;
                return Ok(());
            }
            None => return Ok(()),
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        let extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(is_extended) => is_extended,
            _ => message.is_extended_query(),
        };
        let is_cancel = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        if authenticating {
            // During authentication every error ends the connection, whatever its
            // severity (an error handler that softened it must not leave an
            // unauthenticated connection ready for queries).
            if let Err(e) = process_message(
                message,
                &mut socket,
                startup.clone(),
                simple.clone(),
                extended.clone(),
                copy.clone(),
                cancel.clone(),
            )
            .await
            {
                let info: ErrorInfo = e.into();
                socket
                    .send(PgWireBackendMessage::ErrorResponse(info.into()))
                    .await?;
                return Ok(());
            }
            // Frames pgwire cannot encode (GSSAPI), then AuthenticationOk if due.
            if let Some(outbox) = socket.session_extensions().get::<Outbox>() {
                let (frames, finish) = outbox.take();
                if !frames.is_empty() {
                    socket.flush().await?;
                    for f in frames {
                        socket.get_mut().write_all(&f).await?;
                    }
                    socket.get_mut().flush().await?;
                }
                if finish
                    && let Err(e) = finish_authentication(
                        &mut socket,
                        &DefaultServerParameterProvider::default(),
                    )
                    .await
                {
                    tracing::debug!(error = %e, "could not complete authentication");
                    return Ok(());
                }
            }
            if is_cancel {
                return Ok(());
            }
            continue;
        }
        // The session stage: every message after OK is activity, after the session's
        // renewal when one is due (an OAuth token refresh); an expired session (a token's
        // `exp`, the account's validity) ends the connection.
        if !is_cancel && let Some(session) = crate::session::session(&socket) {
            session.renew().await;
            if let Err(over) = session.touch() {
                let error =
                    ErrorInfo::new("FATAL".to_owned(), "28000".to_owned(), over.to_string());
                let _ = socket
                    .send(PgWireBackendMessage::ErrorResponse(error.into()))
                    .await;
                return Ok(());
            }
        }
        if let Err(mut e) = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await
        {
            errors.on_error(&socket, &mut e);
            let fatal = e.is_fatal();
            process_error(&mut socket, e, extended_query).await?;
            if fatal {
                return Ok(());
            }
        }
        if is_cancel {
            return Ok(());
        }
    }
}
