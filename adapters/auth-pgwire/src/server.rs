//! A pgwire server in a few lines: the engine, a query handler and a listener (with its
//! TLS and admission); this builds pgwire's handlers around a [`PgAuthenticator`] and
//! runs the accept and serve loops.

use std::future::Future;
use std::io;
use std::sync::Arc;

use auth_core::Engine;
use auth_listen::Listener;
use pgwire::api::PgWireServerHandlers;
use pgwire::api::query::SimpleQueryHandler;

use crate::serve::{ServeConfig, serve, serve_unix};
use crate::startup::{PgAuthConfig, PgAuthenticator};
use crate::unix::UnixSocket;

/// A PostgreSQL-wire server authenticating through an auth-core [`Engine`].
///
/// Connection-level settings come from the [`Listener`]: its [`auth_listen::Admission`]
/// (places for unauthenticated connections, shared with other front doors), its TLS
/// (offered on SSLRequest and direct TLS, ALPN `postgresql`, with SCRAM-SHA-256-PLUS
/// bound to its certificate), and its unauthenticated timeout (PostgreSQL's
/// `authentication_timeout`).
///
/// ```no_run
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use auth_core::{Engine, Protocol};
/// use auth_listen::{Listener, TlsSetup};
/// use auth_pgwire::PgServer;
/// use pgwire::api::ClientInfo;
/// use pgwire::api::query::SimpleQueryHandler;
/// use pgwire::api::results::{Response, Tag};
/// use pgwire::error::PgWireResult;
///
/// struct Hello;
///
/// #[async_trait]
/// impl SimpleQueryHandler for Hello {
///     async fn do_query<C: ClientInfo + Unpin + Send + Sync>(
///         &self, _client: &mut C, _query: &str,
///     ) -> PgWireResult<Vec<Response>> {
///         Ok(vec![Response::Execution(Tag::new("OK"))])
///     }
/// }
///
/// # async fn run(engine: Arc<Engine>, cert: &[u8], key: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
/// let listener = Listener::bind("127.0.0.1:6432".parse()?, Protocol::Postgres)
///     .await?
///     .with_tls(TlsSetup::from_pem(cert, key)?);
/// PgServer::new(engine, Hello).serve(listener).await?;
/// # Ok(())
/// # }
/// ```
pub struct PgServer<H> {
    handlers: Arc<Handlers<H>>,
    unix: Option<UnixSocket>,
}

impl<H> std::fmt::Debug for PgServer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("unix", &self.unix)
            .finish_non_exhaustive()
    }
}

/// pgwire's handlers: the caller's, with the startup handler replaced by the
/// authenticator.
struct Handlers<H> {
    auth: Arc<PgAuthenticator>,
    inner: H,
}

impl<H: PgWireServerHandlers> PgWireServerHandlers for Handlers<H> {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.inner.simple_query_handler()
    }
    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.inner.extended_query_handler()
    }
    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.auth.clone()
    }
    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.inner.copy_handler()
    }
    fn error_handler(&self) -> Arc<impl pgwire::api::ErrorHandler> {
        self.inner.error_handler()
    }
    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.inner.cancel_handler()
    }
}

/// Handlers that answer simple queries with `Q` and nothing else.
#[derive(Debug)]
pub struct SimpleQueries<Q>(Arc<Q>);

impl<Q: SimpleQueryHandler + 'static> PgWireServerHandlers for SimpleQueries<Q> {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }
}

impl<Q: SimpleQueryHandler + Send + Sync + 'static> PgServer<SimpleQueries<Q>> {
    /// A server answering simple queries (psql's) with `query`, authenticating with
    /// `engine` ([`PgAuthConfig::new`]'s settings).
    pub fn new(engine: Arc<Engine>, query: Q) -> Self {
        Self::with_handlers(PgAuthConfig::new(engine), SimpleQueries(Arc::new(query)))
    }
}

impl<H: PgWireServerHandlers + Send + Sync> PgServer<H> {
    /// A server with pgwire handlers of the caller's (simple and extended queries, copy,
    /// cancel, errors) and authentication as `auth` says; `handlers`' own startup
    /// handler is not used.
    pub fn with_handlers(auth: PgAuthConfig, handlers: H) -> Self {
        Self {
            handlers: Arc::new(Handlers {
                auth: Arc::new(PgAuthenticator::new(auth)),
                inner: handlers,
            }),
            unix: None,
        }
    }

    /// The same, serving a Unix-domain socket too (`local` connections with the kernel's
    /// peer credentials).
    pub fn with_unix_socket(mut self, socket: UnixSocket) -> Self {
        self.unix = Some(socket);
        self
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Arc<PgAuthenticator> {
        &self.handlers.auth
    }

    /// Serves `listener` (and the Unix socket, if any) until the process ends.
    pub async fn serve(self, listener: Listener) -> io::Result<()> {
        self.serve_until(listener, std::future::pending()).await
    }

    /// Serves until `shutdown` completes, then drains: no new connection is accepted,
    /// logins in progress finish (within the authentication timeout), authenticated
    /// connections end with FATAL 57P01 and their sessions close through the session
    /// stage; returns once every connection has ended (or, at most, the authentication
    /// timeout plus 5 s later). Wait for the sessions' end work (a token revoked at its
    /// provider) with [`auth_core::Engine::drain_sessions`].
    pub async fn serve_until(
        self,
        listener: Listener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let connections = tokio_util::task::TaskTracker::new();
        let stopping = tokio_util::sync::CancellationToken::new();
        let config = Arc::new(ServeConfig {
            shutdown: stopping.clone(),
            tls: listener
                .tls()
                .map(|tls| tls.clone().with_alpn(&[b"postgresql"])),
            auth_timeout: listener.unauthenticated_timeout(),
            admission: listener.admission().clone(),
            trusted_proxies: listener.trusted_proxies().clone(),
            ..ServeConfig::default()
        });
        let unix_path = self.unix.as_ref().map(|u| u.path().to_owned());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                (tcp, _) = listener.accept() => {
                    let (handlers, config) = (self.handlers.clone(), config.clone());
                    connections.spawn(async move {
                        if let Err(e) = serve(tcp, &config, handlers.as_ref()).await {
                            tracing::debug!(error = %e, "connection ended with an I/O error");
                        }
                    });
                }
                stream = accept_unix(self.unix.as_ref()) => {
                    let (handlers, config) = (self.handlers.clone(), config.clone());
                    let path = unix_path.clone();
                    connections.spawn(async move {
                        if let Err(e) = serve_unix(stream, path, &config, handlers.as_ref()).await {
                            tracing::debug!(error = %e, "connection ended with an I/O error");
                        }
                    });
                }
            }
        }
        // Closed at once, so new clients are refused rather than left waiting.
        drop(listener);
        drop(self.unix);
        stopping.cancel();
        connections.close();
        let limit = config.auth_timeout + std::time::Duration::from_secs(5);
        if tokio::time::timeout(limit, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the drain's limit");
        }
        Ok(())
    }
}

/// The next connection on the Unix socket; never, without one.
async fn accept_unix(socket: Option<&UnixSocket>) -> tokio::net::UnixStream {
    match socket {
        Some(socket) => socket.accept().await,
        None => std::future::pending().await,
    }
}
