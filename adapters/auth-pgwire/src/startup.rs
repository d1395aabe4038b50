//! The startup exchange: the startup packet becomes an auth-core `ConnectionInfo`, the
//! `Engine` says what to offer it, the adapter asks for the first mechanism offered, and
//! pgwire's push-style messages are bridged to auth-core's pull-style `Conversation` (a
//! task per exchange and a channel each way).

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use async_trait::async_trait;
use auth_core::conversation::{ConversationPeer, ServerMessage, channel};
use auth_core::{
    Attempt, ConnectionInfo, Credential, Engine, Mechanism, Offer, Outcome, Peer, Protocol, TlsInfo,
};
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, METADATA_DATABASE, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::{Authentication, PasswordMessageFamily, Startup};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use secrecy::SecretString;
use tokio::task::JoinHandle;

use crate::errors::{auth_failed, fatal, method_failed, policy_reject, protocol};
use crate::messages::sasl_initial_response;
use crate::serve::{ProxyFacts, TlsFacts};
use crate::session::AuthenticatedSession;
use crate::unix::UnixTransport;

/// The longest user or database name accepted: PostgreSQL's (`NAMEDATALEN` - 1). Longer
/// ones are refused at startup, before the engine, the limiter or the audit sees them.
pub const MAX_NAME_LEN: usize = 63;

static PIDS: LazyLock<RandomPidSecretKeyGenerator> =
    LazyLock::new(RandomPidSecretKeyGenerator::default);

/// How the adapter authenticates connections. TLS and its channel-binding data are the
/// serve loop's ([`crate::ServeConfig::tls`]), which puts them on each connection for the
/// engine: a [`PgAuthenticator`] runs under [`crate::serve`] or [`crate::serve_unix`] (it
/// needs their frame guard, TLS facts and raw GSSAPI frames).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use auth_core::{Engine, Policy};
/// use auth_pgwire::{PgAuthConfig, PgAuthenticator, ServeConfig};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A policy without rules refuses every connection; see `PgAuthenticator` for one that
/// // lets clients in.
/// let engine = Arc::new(Engine::builder(Policy::new(vec![])?).build());
/// // Passwords go only over TLS or the Unix socket unless the engine was built with
/// // `EngineBuilder::dangerous().allow_cleartext_without_tls()`, for every front door.
/// assert!(!engine.allows_cleartext_without_tls());
/// let config = PgAuthConfig::new(engine);
///
/// let authenticator = PgAuthenticator::new(config);
/// assert_eq!(authenticator.config().max_sasl_message, 8192);
/// // The connection-level settings `auth_pgwire::serve` takes beside the handlers.
/// let serve = ServeConfig { auth_timeout: Duration::from_secs(30), ..ServeConfig::default() };
/// assert!(serve.tls.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PgAuthConfig {
    /// What each connection is offered, and the decisions.
    pub engine: Arc<Engine>,
    /// The largest SASL message accepted from a client.
    pub max_sasl_message: usize,
}

impl PgAuthConfig {
    /// A configuration with `engine`. Whether a cleartext password may cross a
    /// connection without TLS is the engine's decision, the same on every front door
    /// (`EngineBuilder::dangerous().allow_cleartext_without_tls()`).
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            max_sasl_message: 8192,
        }
    }
}

/// Where a connection's authentication stands, kept in its session extensions.
#[derive(Default)]
enum Phase {
    /// Waiting for the startup packet.
    #[default]
    Start,
    /// AuthenticationCleartextPassword was sent.
    Cleartext(Pending),
    /// AuthenticationSASL was sent with these mechanisms.
    SaslInitial(Pending),
    /// A SASL exchange of `mechanism` runs in `task`; `peer` carries its messages.
    Sasl {
        peer: ConversationPeer,
        task: JoinHandle<Outcome>,
        user: String,
        mechanism: &'static str,
    },
    /// AuthenticationGSS was sent.
    GssInitial(Pending),
    /// A GSSAPI exchange runs in `task`.
    Gss {
        peer: ConversationPeer,
        task: JoinHandle<Outcome>,
        user: String,
    },
    /// Finished or failed; nothing more is accepted.
    Over,
}

struct Pending {
    offer: Offer,
    connection: ConnectionInfo,
    user: String,
}

impl Pending {
    /// Runs the engine's decision on `credential` in a task of its own, talking to the
    /// client through the returned peer.
    fn exchange(
        self,
        engine: &Arc<Engine>,
        credential: Credential,
        max_message: usize,
    ) -> (ConversationPeer, JoinHandle<Outcome>, String) {
        let (conversation, peer) = channel(max_message);
        let mut attempt =
            Attempt::new(self.connection, credential).with_conversation(Box::new(conversation));
        let (engine, offer) = (engine.clone(), self.offer);
        let task = tokio::spawn(async move { engine.decide(&offer, &mut attempt).await });
        (peer, task, self.user)
    }
}

type PhaseSlot = Mutex<Phase>;

/// Frames the serve loop writes raw after the handler returns (pgwire has no messages for
/// GSSAPI), and whether it should then complete the authentication.
#[derive(Debug, Default)]
pub(crate) struct Outbox(Mutex<(Vec<Vec<u8>>, bool)>);

impl Outbox {
    fn of<C: ClientInfo + ?Sized>(client: &C) -> Arc<Self> {
        client
            .session_extensions()
            .get_or_insert_with(Self::default)
    }

    fn push(&self, frame: Vec<u8>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .push(frame);
    }

    fn finish(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
    }

    /// The frames to write and whether to finish.
    pub(crate) fn take(&self) -> (Vec<Vec<u8>>, bool) {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// pgwire's [`StartupHandler`] that authenticates through an auth-core [`Engine`].
///
/// # Example
///
/// A server on a loopback port, serving one connection with [`crate::serve`], and a
/// `tokio-postgres` client logging in. The policy lets clients on this machine in
/// without a password (`trust`), so the example needs no credential store:
///
/// ```
/// use std::sync::Arc;
/// use auth_core::local::TrustAuthenticator;
/// use auth_core::policy::{AddressMatch, Rule, Target};
/// use auth_core::{Chain, Engine, Policy};
/// use auth_pgwire::{PgAuthConfig, PgAuthenticator, ServeConfig};
/// use pgwire::api::PgWireServerHandlers;
/// use pgwire::api::auth::StartupHandler;
///
/// /// pgwire's handlers: authentication by the engine, pgwire's defaults for the rest.
/// #[derive(Debug)]
/// struct Handlers(Arc<PgAuthenticator>);
///
/// impl PgWireServerHandlers for Handlers {
///     fn startup_handler(&self) -> Arc<impl StartupHandler> {
///         self.0.clone()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let chain = Chain::builder().link(Arc::new(TrustAuthenticator::new())).build();
/// let rule = Rule::new("local", Target::Chain(Arc::new(chain)))
///     .with_addresses(AddressMatch::Localhost);
/// let engine = Arc::new(Engine::builder(Policy::new(vec![rule])?).build());
/// let handlers = Handlers(Arc::new(PgAuthenticator::new(PgAuthConfig::new(engine))));
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let port = listener.local_addr()?.port();
/// tokio::spawn(async move {
///     let (stream, _peer) = auth_pgwire::accept(&listener).await;
///     auth_pgwire::serve(stream, &ServeConfig::default(), &handlers).await
/// });
///
/// let conninfo = format!("host=127.0.0.1 port={port} user=maint");
/// let (client, _connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await?;
/// assert!(!client.is_closed());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PgAuthenticator {
    config: PgAuthConfig,
    next_connection: AtomicU64,
}

impl PgAuthenticator {
    /// An authenticator with `config`.
    pub fn new(config: PgAuthConfig) -> Self {
        Self {
            config,
            next_connection: AtomicU64::new(1),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PgAuthConfig {
        &self.config
    }

    fn connection_info<C: ClientInfo>(&self, client: &C, startup: &Startup) -> ConnectionInfo {
        let mut info = ConnectionInfo::new(Protocol::Postgres, peer_of(client))
            .with_id(self.next_connection.fetch_add(1, Ordering::Relaxed));
        if let Some(proxied) = client.session_extensions().get::<ProxyFacts>() {
            info = info.with_proxy(proxied.0.clone());
        }
        if client.is_secure() {
            let facts = client.session_extensions().get::<TlsFacts>();
            info = info.with_tls(facts.map(|f| f.0.clone()).unwrap_or_else(|| TlsInfo {
                server_name: client.sni_server_name().map(str::to_owned),
                ..TlsInfo::default()
            }));
        }
        info.user = client.metadata().get(METADATA_USER).cloned();
        info.database = client
            .metadata()
            .get(METADATA_DATABASE)
            .cloned()
            .or_else(|| info.user.clone());
        info.parameters = startup
            .parameters
            .iter()
            .filter(|(k, _)| k.as_str() != METADATA_USER && k.as_str() != METADATA_DATABASE)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        info
    }

    async fn start<C>(&self, client: &mut C, startup: &Startup) -> PgWireResult<Phase>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        protocol_negotiation(client, startup).await?;
        // Refused before anything keeps them: the limiter keys on the user name and every
        // audit event of the attempt names it.
        let too_long = [METADATA_USER, METADATA_DATABASE].iter().any(|k| {
            startup
                .parameters
                .get(*k)
                .is_some_and(|v| v.len() > MAX_NAME_LEN)
        });
        if too_long {
            return Err(fatal(
                "28000",
                format!("user and database names are at most {MAX_NAME_LEN} bytes"),
            ));
        }
        save_startup_parameters_to_metadata(client, startup);
        let (pid, key) = PIDS.generate(client);
        client.set_pid_and_secret_key(pid, key);
        let connection = self.connection_info(client, startup);
        let kept = connection.clone();
        client
            .session_extensions()
            .get_or_insert_with(|| Connection(kept));
        let Some(user) = connection.user.clone() else {
            return Err(fatal(
                "28000",
                "no PostgreSQL user name specified in startup packet".into(),
            ));
        };
        let offer = self.config.engine.offer(&connection, None).map_err(|_| {
            policy_reject(
                connection.peer.ip(),
                &user,
                connection.database.as_deref().unwrap_or(&user),
                client.is_secure(),
            )
        })?;
        let first = offer.mechanisms().first().copied();
        let pending = Pending {
            offer,
            connection,
            user,
        };
        // The wire allows one method per connection: the first the engine offers. One that
        // asks the client nothing (peer, a certificate, trust) is decided now.
        if let Some(credential) = first.and_then(Mechanism::immediate) {
            let method = match first {
                Some(Mechanism::Peer) => "peer",
                Some(Mechanism::ClientCertificate) => "certificate",
                _ => "trust",
            };
            let mut attempt = Attempt::new(pending.connection, credential);
            let outcome = self
                .config
                .engine
                .decide(&pending.offer, &mut attempt)
                .await;
            let user = pending.user;
            return self
                .finish(client, outcome, |f| method_failed(f, &user, method))
                .await;
        }
        let phase = match first {
            Some(Mechanism::Gss) => {
                Outbox::of(client).push(frame(AUTH_GSS, &[]));
                Phase::GssInitial(pending)
            }
            Some(Mechanism::Sasl { .. }) => {
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                        sasl_names(&pending.offer).map(str::to_owned).collect(),
                    )))
                    .await?;
                Phase::SaslInitial(pending)
            }
            // A chain whose SASL methods all need channel binding refuses the connection
            // rather than falling back to a cleartext password. The engine offers a
            // password only where the connection is encrypted (or its opt-in says so).
            Some(Mechanism::Password) if !pending.offer.needs_channel_binding() => {
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
                Phase::Cleartext(pending)
            }
            _ if pending.offer.needs_channel_binding() => {
                return Err(fatal(
                    "28000",
                    "SCRAM-SHA-256-PLUS requires an encrypted connection; connect with sslmode=require".into(),
                ));
            }
            _ if pending.offer.needs_tls() => {
                return Err(fatal(
                    "28000",
                    "the authentication method sends a reusable secret and requires an encrypted connection; connect with sslmode=require".into(),
                ));
            }
            _ => {
                return Err(fatal(
                    "28000",
                    format!(
                        "no authentication method is available for user \"{}\"",
                        pending.user
                    ),
                ));
            }
        };
        client.set_state(PgWireConnectionState::AuthenticationInProgress);
        Ok(phase)
    }

    /// AuthenticationOk for a success; otherwise the error `refuse` words for the failure.
    async fn finish<C>(
        &self,
        client: &mut C,
        outcome: Outcome,
        refuse: impl FnOnce(&auth_core::Failure) -> PgWireError,
    ) -> PgWireResult<Phase>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match outcome {
            Outcome::Authenticated(session) => {
                self.keep_session(client, session);
                finish_authentication(client, &DefaultServerParameterProvider::default()).await?;
                Ok(Phase::Over)
            }
            other => {
                let failure = other.failure().unwrap_or_else(|| {
                    auth_core::Error::Authorization(auth_core::AuthorizationError::Rejected).into()
                });
                Err(refuse(&failure))
            }
        }
    }

    /// As [`Self::drive`] for GSSAPI, whose frames pgwire cannot encode: they go to the
    /// connection's outbox, which the serve loop writes raw.
    async fn drive_gss<C>(
        &self,
        client: &mut C,
        mut peer: ConversationPeer,
        task: JoinHandle<Outcome>,
        user: String,
    ) -> PgWireResult<Phase>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        loop {
            match peer.next().await {
                Some(ServerMessage::Challenge(data)) => {
                    Outbox::of(client).push(frame(AUTH_GSS_CONTINUE, &data));
                    return Ok(Phase::Gss { peer, task, user });
                }
                // The mutual-authentication token, sent before AuthenticationOk.
                Some(ServerMessage::Final(data)) => {
                    Outbox::of(client).push(frame(AUTH_GSS_CONTINUE, &data))
                }
                None => break,
            }
        }
        let outcome = exchange_outcome(task).await;
        match outcome {
            Outcome::Authenticated(session) => {
                self.keep_session(client, session);
                // AuthenticationOk must follow the raw frames: the serve loop sends it.
                Outbox::of(client).finish();
                Ok(Phase::Over)
            }
            other => {
                let failure = other.failure().unwrap_or_else(|| {
                    auth_core::Error::Authorization(auth_core::AuthorizationError::Rejected).into()
                });
                Err(method_failed(&failure, &user, "GSSAPI"))
            }
        }
    }

    /// Forwards the exchange's next message to the client, or finishes when it ends.
    async fn drive<C>(
        &self,
        client: &mut C,
        mut peer: ConversationPeer,
        task: JoinHandle<Outcome>,
        user: String,
        mechanism: &'static str,
    ) -> PgWireResult<Phase>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        loop {
            match peer.next().await {
                Some(ServerMessage::Challenge(data)) => {
                    client
                        .send(PgWireBackendMessage::Authentication(
                            Authentication::SASLContinue(data.into()),
                        ))
                        .await?;
                    return Ok(Phase::Sasl {
                        peer,
                        task,
                        user,
                        mechanism,
                    });
                }
                Some(ServerMessage::Final(data)) => {
                    client
                        .feed(PgWireBackendMessage::Authentication(
                            Authentication::SASLFinal(data.into()),
                        ))
                        .await?;
                }
                None => break,
            }
        }
        let outcome = exchange_outcome(task).await;
        self.finish(client, outcome, |f| sasl_refusal(f, &user, mechanism))
            .await
    }

    async fn step<C>(
        &self,
        client: &mut C,
        phase: Phase,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<Phase>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match (phase, message) {
            (Phase::Start, PgWireFrontendMessage::Startup(startup)) => {
                self.start(client, &startup).await
            }
            (Phase::Cleartext(p), PgWireFrontendMessage::PasswordMessageFamily(m)) => {
                let password = password_of(m)?;
                let credential = Credential::Password {
                    user: p.user.clone(),
                    password,
                };
                let mut attempt = Attempt::new(p.connection, credential);
                let outcome = self.config.engine.decide(&p.offer, &mut attempt).await;
                self.finish(client, outcome, |f| auth_failed(f, &p.user, "password"))
                    .await
            }
            (Phase::SaslInitial(p), PgWireFrontendMessage::PasswordMessageFamily(m)) => {
                let PasswordMessageFamily::Raw(body) = m else {
                    return Err(protocol("expected a SASLInitialResponse message"));
                };
                let initial = sasl_initial_response(&body).map_err(protocol)?;
                let Some(mechanism) = sasl_names(&p.offer).find(|m| *m == initial.mechanism) else {
                    return Err(protocol(
                        "the client chose a SASL mechanism that was not offered",
                    ));
                };
                // Checked before it is copied: the copy may hold a token.
                if initial.data.map_or(0, <[u8]>::len) > self.config.max_sasl_message {
                    return Err(protocol("SASL message too large"));
                }
                let data = initial.data.map(<[u8]>::to_vec).unwrap_or_default();
                let credential = Credential::Sasl {
                    mechanism: mechanism.to_owned(),
                    initial: Some(data.into()),
                };
                let (peer, task, user) = p.exchange(
                    &self.config.engine,
                    credential,
                    self.config.max_sasl_message,
                );
                self.drive(client, peer, task, user, mechanism).await
            }
            (
                Phase::Sasl {
                    peer,
                    task,
                    user,
                    mechanism,
                },
                PgWireFrontendMessage::PasswordMessageFamily(m),
            ) => {
                let response = m
                    .into_sasl_response()
                    .map_err(|_| protocol("expected a SASLResponse message"))?;
                if peer.answer(response.data.to_vec()).await.is_err() {
                    // The exchange already ended; its outcome says why.
                }
                self.drive(client, peer, task, user, mechanism).await
            }
            (Phase::GssInitial(p), PgWireFrontendMessage::PasswordMessageFamily(m)) => {
                let token = raw_token(m, self.config.max_sasl_message)?;
                let (peer, task, user) = p.exchange(
                    &self.config.engine,
                    Credential::GssToken(token),
                    self.config.max_sasl_message,
                );
                self.drive_gss(client, peer, task, user).await
            }
            (Phase::Gss { peer, task, user }, PgWireFrontendMessage::PasswordMessageFamily(m)) => {
                let token = raw_token(m, self.config.max_sasl_message)?;
                if peer.answer(token).await.is_err() {
                    // The exchange already ended; its outcome says why.
                }
                self.drive_gss(client, peer, task, user).await
            }
            (Phase::Sasl { task, .. } | Phase::Gss { task, .. }, _) => {
                task.abort();
                Err(protocol("unexpected message during SASL authentication"))
            }
            (_, _) => Err(protocol("unexpected message during authentication")),
        }
    }
}

/// The ErrorResponse for a refused SASL exchange, as PostgreSQL words it by the method
/// behind the mechanism: PostgreSQL 18's OAUTHBEARER refuses with 28000 like any method
/// that is not a password; SCRAM (and any other mechanism) as a password, 28P01 for a
/// wrong one.
fn sasl_refusal(failure: &auth_core::Failure, user: &str, mechanism: &str) -> PgWireError {
    match mechanism {
        "OAUTHBEARER" => method_failed(failure, user, "OAuth bearer"),
        _ => auth_failed(failure, user, "password"),
    }
}

/// Authentication request codes pgwire has no message for.
const AUTH_GSS: i32 = 7;
const AUTH_GSS_CONTINUE: i32 = 8;

/// An `R` (Authentication) frame with `code` and `data`.
fn frame(code: i32, data: &[u8]) -> Vec<u8> {
    let len = i32::try_from(8 + data.len()).unwrap_or(i32::MAX);
    let mut out = Vec::with_capacity(9 + data.len());
    out.push(b'R');
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// The SASL mechanisms `offer` lists, in order.
fn sasl_names(offer: &Offer) -> impl Iterator<Item = &'static str> + '_ {
    offer.mechanisms().iter().filter_map(|m| match m {
        Mechanism::Sasl { name, .. } => Some(*name),
        _ => None,
    })
}

/// The token of a GSSResponse message.
fn raw_token(m: PasswordMessageFamily, limit: usize) -> PgWireResult<Vec<u8>> {
    let PasswordMessageFamily::Raw(bytes) = m else {
        return Err(protocol("expected a GSSResponse message"));
    };
    if bytes.is_empty() || bytes.len() > limit {
        return Err(protocol("GSSResponse empty or too large"));
    }
    Ok(bytes.to_vec())
}

fn password_of(m: PasswordMessageFamily) -> PgWireResult<SecretString> {
    let p = m
        .into_password()
        .map_err(|_| protocol("expected a password message"))?;
    Ok(SecretString::from(p.password))
}

#[async_trait]
impl StartupHandler for PgAuthenticator {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let slot = client
            .session_extensions()
            .get_or_insert_with(PhaseSlot::default);
        let phase = std::mem::replace(
            &mut *slot.lock().unwrap_or_else(PoisonError::into_inner),
            Phase::Over,
        );
        let next = self.step(client, phase, message).await?;
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }
}

/// Where the client is: the Unix socket's peer when the serve loop said so, else TCP.
fn peer_of<C: ClientInfo>(client: &C) -> Peer {
    match client.session_extensions().get::<UnixTransport>() {
        Some(unix) => Peer::unix(unix.path.clone(), unix.credentials),
        None => Peer::Tcp(client.socket_addr()),
    }
}

/// The connection as the startup packet described it, for the session stage.
struct Connection(ConnectionInfo);

impl PgAuthenticator {
    /// Makes the authenticated session the connection's: the mapped user is who the
    /// connection is from now on, query handlers find the session in its extensions, and
    /// the session is open (audited) until the connection ends.
    fn keep_session<C: ClientInfo>(&self, client: &mut C, session: Box<dyn auth_core::Session>) {
        client
            .metadata_mut()
            .insert(METADATA_USER.to_owned(), session.user().to_owned());
        let connection = match client.session_extensions().get::<Connection>() {
            Some(c) => c.0.clone(),
            None => ConnectionInfo::new(Protocol::Postgres, peer_of(client)),
        };
        let open = self.config.engine.open_session(session, &connection);
        client
            .session_extensions()
            .get_or_insert_with(|| AuthenticatedSession(open));
    }
}

/// What the authentication task of a multi-round exchange decided.
async fn exchange_outcome(task: JoinHandle<Outcome>) -> Outcome {
    task.await
        .unwrap_or_else(|e| Outcome::unavailable(format!("authentication task failed: {e}")))
}
