//! An independent SCRAM-SHA-256(-PLUS) client for tests: postgres-protocol's
//! `ScramSha256` (the client side of tokio-postgres), wired to a server-side authenticator
//! through auth-core's [`Conversation`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use auth_core::{
    Attempt, ConnectionInfo, Conversation, ConversationError, Credential, Protocol, TlsInfo,
};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

/// The client half of a SCRAM exchange, played by postgres-protocol's `ScramSha256`.
pub struct ScramClient {
    client: Option<ScramSha256>,
    /// Set once the client has verified the server's signature (mutual authentication).
    server_verified: Arc<AtomicBool>,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramClient")
    }
}

#[async_trait]
impl Conversation for ScramClient {
    async fn exchange(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, ConversationError> {
        let client = self.client.as_mut().ok_or(ConversationError::Closed)?;
        client
            .update(&challenge)
            .map_err(|e| ConversationError::Protocol(e.to_string()))?;
        Ok(client.message().to_vec())
    }

    async fn complete(&mut self, data: Vec<u8>) -> Result<(), ConversationError> {
        let client = self.client.as_mut().ok_or(ConversationError::Closed)?;
        client
            .finish(&data)
            .map_err(|e| ConversationError::Protocol(e.to_string()))?;
        self.server_verified.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// How the client treats channel binding.
#[derive(Debug, Clone)]
pub enum Binding {
    /// `n`: not supported.
    None,
    /// `y`: supported but not used.
    Unrequested,
    /// `p=tls-server-end-point` with this certificate hash.
    EndPoint(Vec<u8>),
}

/// A SCRAM attempt by `user` with `password`; `server_cb` is the server's channel-binding
/// data (the connection has TLS when it is set).
pub fn scram_attempt(
    user: &str,
    password: &str,
    binding: Binding,
    server_cb: Option<Vec<u8>>,
) -> (Attempt, Arc<AtomicBool>) {
    let (cb, mechanism) = match binding {
        Binding::None => (ChannelBinding::unsupported(), "SCRAM-SHA-256"),
        Binding::Unrequested => (ChannelBinding::unrequested(), "SCRAM-SHA-256"),
        Binding::EndPoint(hash) => (
            ChannelBinding::tls_server_end_point(hash),
            "SCRAM-SHA-256-PLUS",
        ),
    };
    let client = ScramSha256::new(password.as_bytes(), cb);
    let initial = client.message().to_vec();
    let verified = Arc::new(AtomicBool::new(false));
    let mut conn = ConnectionInfo::tcp(
        Protocol::Postgres,
        std::net::SocketAddr::from(([10, 0, 0, 9], 40000)),
    )
    .with_user(user);
    if let Some(cb) = server_cb {
        conn = conn.with_tls(TlsInfo {
            server_end_point: Some(cb),
            ..TlsInfo::default()
        });
    }
    let attempt = Attempt::new(
        conn,
        Credential::Sasl {
            mechanism: mechanism.into(),
            initial: Some(initial.into()),
        },
    )
    .with_conversation(Box::new(ScramClient {
        client: Some(client),
        server_verified: verified.clone(),
    }));
    (attempt, verified)
}
