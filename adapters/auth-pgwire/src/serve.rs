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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::frames::{DEFAULT_MAX_PRE_AUTH_FRAME, FrameCheck, FrameGuard};
use crate::limits::ConnectionLimits;
use crate::startup::Outbox;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const TLS_HANDSHAKE: u8 = 0x16;

/// Connection-level settings.
#[derive(Clone)]
pub struct ServeConfig {
    /// TLS for SSLRequest and direct TLS; `None` answers SSLRequest with `N`.
    pub tls: Option<TlsAcceptor>,
    /// How long a client may take from connecting to finishing authentication (like
    /// PostgreSQL's `authentication_timeout`, default one minute).
    pub auth_timeout: Duration,
    /// The caps on unauthenticated connections; clones of this config share them.
    pub limits: Arc<ConnectionLimits>,
    /// The largest frame accepted before authentication (default
    /// [`DEFAULT_MAX_PRE_AUTH_FRAME`](crate::frames::DEFAULT_MAX_PRE_AUTH_FRAME)).
    pub max_pre_auth_frame: u32,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("tls", &self.tls.is_some())
            .field("auth_timeout", &self.auth_timeout)
            .field("limits", &self.limits)
            .field("max_pre_auth_frame", &self.max_pre_auth_frame)
            .finish()
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            tls: None,
            auth_timeout: Duration::from_secs(60),
            limits: Arc::new(ConnectionLimits::default()),
            max_pre_auth_frame: DEFAULT_MAX_PRE_AUTH_FRAME,
        }
    }
}

enum Negotiated {
    /// Plaintext; the startup packet's first 8 bytes, already read; its declared length.
    Plain(TcpStream, Vec<u8>, u32),
    Tls(Box<pgwire::tokio::tokio_rustls::server::TlsStream<TcpStream>>),
    /// Refused (plaintext after SSLRequest); the error was sent.
    Refused,
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

async fn refuse_plaintext(tcp: TcpStream) -> io::Result<()> {
    refuse(tcp, "08P01", "received unencrypted data after SSL request").await
}

/// Sends FATAL `code` `message` on a connection that has not started the protocol yet,
/// and closes it.
async fn refuse(mut tcp: TcpStream, code: &str, message: &str) -> io::Result<()> {
    let error = ErrorInfo::new("FATAL".to_owned(), code.to_owned(), message.to_owned());
    let codec =
        PgWireMessageServerCodec::<String>::new(DefaultClient::new(tcp.peer_addr()?, false));
    let mut framed = Framed::new(&mut tcp, codec);
    framed
        .send(PgWireBackendMessage::ErrorResponse(error.into()))
        .await?;
    framed.flush().await?;
    drop(framed);
    tcp.shutdown().await
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
        let stream = acceptor.accept(tcp).await?;
        if stream.get_ref().1.alpn_protocol() != Some(b"postgresql".as_slice()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "direct TLS without ALPN postgresql",
            ));
        }
        return Ok(Negotiated::Tls(Box::new(stream)));
    }
    loop {
        let mut head = [0u8; 8];
        tcp.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        match (len, code) {
            (8, SSL_REQUEST) => match tls {
                Some(acceptor) => {
                    // Anything the client sent after the SSLRequest and before our answer
                    // would be read as if it came over TLS: refuse it.
                    if has_pending_bytes(&tcp)? {
                        refuse_plaintext(tcp).await?;
                        return Ok(Negotiated::Refused);
                    }
                    tcp.write_all(b"S").await?;
                    let stream = acceptor.accept(tcp).await?;
                    return Ok(Negotiated::Tls(Box::new(stream)));
                }
                None => tcp.write_all(b"N").await?,
            },
            // We do not encrypt with GSSAPI; what the client asked for changes nothing
            // (a `hostgss` rule matches only GSS-encrypted connections).
            (8, GSSENC_REQUEST) => tcp.write_all(b"N").await?,
            _ => return Ok(Negotiated::Plain(tcp, head.to_vec(), len)),
        }
    }
}

/// Answers a connection over the caps as PostgreSQL does, FATAL 53300, and closes it.
/// The client's first packet (startup or SSLRequest) is read first, briefly, so that
/// closing does not reset the connection before the client reads the answer; libpq
/// reports an error answer to its SSLRequest as the server's message.
async fn refuse_busy(mut tcp: TcpStream, limits: &ConnectionLimits) -> io::Result<()> {
    // Refusals in progress are bounded too (see `ConnectionLimits::refusal`).
    let Some(_refusing) = limits.refusal() else {
        return Ok(());
    };
    let mut first = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut first)).await;
    refuse(tcp, "53300", "sorry, too many clients already").await
}

/// Serves one client connection with `handlers` (whose startup handler is usually a
/// [`crate::PgAuthenticator`]) until it ends. Errors are the connection's own I/O errors.
pub async fn serve<H: PgWireServerHandlers>(
    tcp: TcpStream,
    config: &ServeConfig,
    handlers: &H,
) -> io::Result<()> {
    let addr = tcp.peer_addr()?;
    let Some(permit) = config.limits.enter(addr.ip()) else {
        tracing::info!(peer = %addr, "too many unauthenticated connections");
        return refuse_busy(tcp, &config.limits).await;
    };
    let deadline = tokio::time::sleep(config.auth_timeout);
    tokio::pin!(deadline);
    tcp.set_nodelay(true)?;
    let negotiated = tokio::select! {
        _ = &mut deadline => return Ok(()),
        n = negotiate(tcp, config.tls.as_ref()) => n?,
    };
    let max_frame = config.max_pre_auth_frame;
    let (io, client, prefix) = match negotiated {
        Negotiated::Refused => return Ok(()),
        Negotiated::Plain(tcp, prefix, len) => {
            let code = u32::from_be_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
            let Ok(check) = FrameCheck::after_startup_header(len, code, max_frame) else {
                return refuse(tcp, "08P01", "invalid length of startup packet").await;
            };
            (
                FrameGuard::new(MaybeTls::Plain(tcp), check),
                DefaultClient::new(addr, false),
                prefix,
            )
        }
        Negotiated::Tls(stream) => {
            let mut client = DefaultClient::new(addr, true);
            client.sni_server_name = stream.get_ref().1.server_name().map(str::to_owned);
            (
                FrameGuard::new(MaybeTls::Tls(stream), FrameCheck::at_startup(max_frame)),
                client,
                Vec::new(),
            )
        }
    };
    let authenticated = io.authenticated();
    let mut permit = Some(permit);
    let mut parts = FramedParts::new(io, PgWireMessageServerCodec::new(client));
    parts.read_buf = BytesMut::from(prefix.as_slice());
    let mut socket = Framed::from_parts(parts);
    socket.set_state(PgWireConnectionState::AwaitingStartup);

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
            socket.next().await
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
        // The session stage: every message after OK is activity; an expired session (a
        // token's `exp`, the account's validity) ends the connection.
        if !is_cancel
            && let Some(session) = crate::session::session(&socket)
            && let Err(over) = session.touch()
        {
            let error = ErrorInfo::new("FATAL".to_owned(), "28000".to_owned(), over.to_string());
            let _ = socket
                .send(PgWireBackendMessage::ErrorResponse(error.into()))
                .await;
            return Ok(());
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
