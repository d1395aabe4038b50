//! Shared helpers: a real, independent SCRAM client (postgres-protocol, the client side of
//! tokio-postgres) wired to our server through a Conversation, and user set-up.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use auth_core::{
    Attempt, ConnectionInfo, Conversation, ConversationError, Credential, MemoryStore, Protocol,
    TlsInfo,
};
use auth_password::{Argon2Settings, Hasher, HashingPool, PasswordPolicy, Users};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use secrecy::SecretString;

/// Cheap argon2 parameters for tests that are not about hashing cost.
pub fn cheap() -> Argon2Settings {
    Argon2Settings {
        m_cost_kib: 256,
        t_cost: 1,
        p_cost: 1,
    }
}

pub fn hasher(settings: Argon2Settings) -> Hasher {
    Hasher::with_pool(HashingPool::new(2, &settings), settings).unwrap()
}

pub async fn users_with(pairs: &[(&str, &str)], settings: Argon2Settings) -> (Users, Hasher) {
    let users = Users::new(Arc::new(MemoryStore::new()));
    let hasher = hasher(settings);
    for (user, password) in pairs {
        users
            .set_password(
                &hasher,
                &PasswordPolicy::length_only(),
                user,
                &SecretString::from((*password).to_owned()),
            )
            .await
            .unwrap();
    }
    (users, hasher)
}

/// The client half of a SCRAM exchange, played by postgres-protocol's `ScramSha256`.
pub struct ScramClient {
    client: Option<ScramSha256>,
    /// Set once the client has verified the server's signature (mutual authentication).
    pub server_verified: Arc<AtomicBool>,
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
    let mut conn =
        ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.9:40000".parse().unwrap()).with_user(user);
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

pub fn password_attempt(user: &str, password: &str) -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.9:40000".parse().unwrap()).with_user(user),
        Credential::password(user, password),
    )
}

pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}
