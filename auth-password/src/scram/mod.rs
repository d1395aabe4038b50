//! SCRAM-SHA-256 and SCRAM-SHA-256-PLUS on the server (RFC 5802, RFC 7677), from stored
//! keys, driven through auth-core's [`Conversation`](auth_core::Conversation).

mod exchange;
mod messages;
mod verifier;

use std::sync::Arc;

use async_trait::async_trait;
use auth_core::{
    Attempt, Authenticator, ConversationError, Credential, CredentialError, CredentialKind,
    Evidence, Outcome, StandardSession,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::ExposeSecret;

pub use exchange::{Finish, ScramExchange, TLS_SERVER_END_POINT};
pub use messages::{
    CbindFlag, ClientFinal, ClientFirst, MAX_MESSAGE_LEN, parse_client_final, parse_client_first,
};
pub use verifier::{MAX_ITERATIONS, MIN_ITERATIONS, ScramVerifier};

use crate::hasher::DEFAULT_SCRAM_ITERATIONS;
use crate::user::{UserStatus, Users};

/// The mechanism name without channel binding.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// The mechanism name with channel binding.
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// A SCRAM protocol error: the client sent something it must not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScramError {
    /// A message is malformed.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// Channel binding is missing, mismatched or a downgrade.
    #[error("SCRAM channel binding: {0}")]
    ChannelBinding(&'static str),
    /// The mechanism is not SCRAM-SHA-256(-PLUS).
    #[error("unsupported SASL mechanism")]
    UnsupportedMechanism,
    /// A stored verifier is malformed.
    #[error("bad SCRAM verifier: {0}")]
    BadVerifier(&'static str),
}

/// Authenticates `SCRAM-SHA-256` and `SCRAM-SHA-256-PLUS` SASL exchanges against the
/// verifiers in [`Users`].
///
/// Unknown users, users without a verifier and soft-deleted users run a mock exchange
/// with a deterministic per-user salt and fail exactly like a wrong password, as
/// PostgreSQL does.
pub struct ScramAuthenticator {
    users: Users,
    /// Derives unknown users' mock salts and keys; zeroed when the last clone goes.
    mock_secret: Arc<zeroize::Zeroizing<[u8; 32]>>,
    mock_iterations: u32,
}

/// The mock secret is never shown: it derives every unknown user's salt and keys.
impl std::fmt::Debug for ScramAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramAuthenticator")
            .field("users", &self.users)
            .field("mock_secret", &"[redacted]")
            .field("mock_iterations", &self.mock_iterations)
            .finish_non_exhaustive()
    }
}

impl ScramAuthenticator {
    /// An authenticator over `users`, deriving unknown users' mock salts from
    /// `mock_secret`.
    ///
    /// Give every instance of a deployment the same persistent, random secret (keep it in
    /// the wallet, for instance). It must not change across restarts: an unknown user's
    /// mock salt would change with it while a real user's salt stays, which tells them
    /// apart, and a client could then probe which users exist.
    ///
    /// ```
    /// use auth_password::{ScramAuthenticator, Users};
    /// use auth_core::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let users = Users::new(Arc::new(MemoryStore::new()));
    /// // In a deployment: 32 random bytes kept where every instance finds them (the
    /// // wallet, a secrets manager), read into a zeroizing buffer; never a constant.
    /// let mut mock_secret = zeroize::Zeroizing::new([0u8; 32]);
    /// getrandom::fill(mock_secret.as_mut_slice())?;
    /// let scram = ScramAuthenticator::new(users, mock_secret);
    /// # let _ = scram;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(users: Users, mock_secret: impl Into<zeroize::Zeroizing<[u8; 32]>>) -> Self {
        Self {
            users,
            mock_secret: Arc::new(mock_secret.into()),
            mock_iterations: DEFAULT_SCRAM_ITERATIONS,
        }
    }

    /// The authenticator for `users`, with the mock secret kept in their own store under
    /// [`MOCK_SECRET_KEY`]: made (32 random bytes) on the first call, read on every later
    /// one, by every process sharing the store. The one call a SCRAM server needs.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use auth_core::MemoryStore;
    /// use auth_password::{ScramAuthenticator, Users};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), auth_core::StoreError> {
    /// let users = Users::new(Arc::new(MemoryStore::new()));
    /// let scram = ScramAuthenticator::with_stored_mock_secret(users).await?;
    /// # let _ = scram;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn with_stored_mock_secret(users: Users) -> Result<Self, auth_core::StoreError> {
        let secret = stored_mock_secret(users.store().as_ref()).await?;
        Ok(Self::new(users, secret))
    }

    /// The iteration count unknown users' mock exchanges show: set it to what the
    /// deployment's real verifiers use (default 4096).
    #[must_use]
    pub fn with_mock_iterations(mut self, iterations: u32) -> Self {
        self.mock_iterations = iterations;
        self
    }

    /// The verifier an unknown user's mock exchange uses: a salt derived from the user
    /// name, so repeated attempts see the same salt, as for a real user.
    fn mock_verifier(&self, secret: &[u8; 32], user: &str) -> ScramVerifier {
        let salt = verifier::hmac(secret, &[b"salt", user.as_bytes()]);
        let key = verifier::hmac(secret, &[b"key", user.as_bytes()]);
        ScramVerifier {
            iterations: self.mock_iterations,
            salt: salt[..16].to_vec(),
            stored_key: key,
            server_key: key,
        }
    }
}

/// A verifier in PostgreSQL's format that an unknown user's exchange parses, so that it
/// costs what a real user's does.
const STAND_IN_VERIFIER: &str = "SCRAM-SHA-256$4096:c3RhbmQtaW4tc2FsdC0xNg==$c3RhbmQtaW4tc3RvcmVkLWtleS0zMi1ieXRlcy0hISE=:c3RhbmQtaW4tc2VydmVyLWtleS0zMi1ieXRlcy0hISE=";

/// Where [`ScramAuthenticator::with_stored_mock_secret`] keeps the mock secret.
pub const MOCK_SECRET_KEY: &str = "scram/mock-secret";

/// The store's mock secret, made on first use; two processes making it at once agree
/// (the second write is refused and the first one's secret read).
async fn stored_mock_secret(
    store: &dyn auth_core::CredentialStore,
) -> Result<zeroize::Zeroizing<[u8; 32]>, auth_core::StoreError> {
    use secrecy::ExposeSecret;
    let key = auth_core::Key::new(MOCK_SECRET_KEY)
        .map_err(|e| auth_core::StoreError::Corrupted(e.to_string()))?;
    for _ in 0..2 {
        if let Some(record) = store.get(&key).await? {
            let value = record.value.expose_secret();
            let mut secret = zeroize::Zeroizing::new([0u8; 32]);
            if value.len() != secret.len() {
                return Err(auth_core::StoreError::Corrupted(format!(
                    "{MOCK_SECRET_KEY} holds {} bytes, not 32",
                    value.len()
                )));
            }
            secret.copy_from_slice(value);
            return Ok(secret);
        }
        let mut fresh = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(fresh.as_mut_slice())
            .map_err(|e| auth_core::StoreError::Unavailable(format!("no randomness: {e}")))?;
        let value = secrecy::SecretSlice::from(fresh.to_vec());
        match store
            .put(&key, value, auth_core::Precondition::Absent)
            .await
        {
            Ok(_) => return Ok(fresh),
            // Another process made it first: read theirs.
            Err(auth_core::StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Err(auth_core::StoreError::Corrupted(format!(
        "{MOCK_SECRET_KEY} could neither be read nor made"
    )))
}

fn server_nonce() -> Option<String> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).ok()?;
    Some(B64.encode(bytes))
}

fn conversation_failure(e: ConversationError) -> Outcome {
    match e {
        ConversationError::NotInteractive { .. } => Outcome::rejected(
            CredentialError::Missing,
            "SCRAM needs an interactive transport",
        ),
        other => Outcome::rejected(
            CredentialError::Malformed,
            format!("SCRAM conversation: {other}"),
        ),
    }
}

#[async_trait]
impl Authenticator for ScramAuthenticator {
    fn name(&self) -> &str {
        "scram"
    }

    fn accepts(&self) -> &[CredentialKind] {
        &[
            CredentialKind::Sasl(SCRAM_SHA_256_PLUS),
            CredentialKind::Sasl(SCRAM_SHA_256),
        ]
    }

    fn supports(&self, credential: &Credential) -> bool {
        matches!(
            credential.sasl_mechanism(),
            Some(SCRAM_SHA_256 | SCRAM_SHA_256_PLUS)
        )
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::Sasl { mechanism, initial } = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        let mechanism = mechanism.clone();
        let Some(client_first) = initial.as_ref().map(|i| i.expose_secret().to_vec()) else {
            return Outcome::rejected(
                CredentialError::Malformed,
                "SCRAM without a client-first message",
            );
        };
        let channel_binding = attempt.connection.channel_binding().map(<[u8]>::to_vec);
        // PostgreSQL clients name the user at startup and send an empty SCRAM user name.
        let startup_user = attempt.connection.user.clone();
        let user = match startup_user {
            Some(u) => u,
            None => match parse_client_first(&client_first) {
                Ok(first) if !first.username.is_empty() => first.username,
                Ok(_) => {
                    return Outcome::rejected(
                        CredentialError::Malformed,
                        "SCRAM without a user name",
                    );
                }
                Err(e) => {
                    return Outcome::rejected(CredentialError::Malformed, e.to_string());
                }
            },
        };

        let record = match self.users.get(&user).await {
            Ok(r) => r.map(|(r, _)| r),
            Err(e) => return Outcome::unavailable(format!("user store: {e}")),
        };
        let (verifier, why_not) = match &record {
            Some(r) if r.status == UserStatus::Deleted => (None, "user is deleted"),
            Some(r) => match r.scram.as_deref().map(ScramVerifier::parse) {
                Some(Ok(v)) => (Some(v), ""),
                Some(Err(_)) => (None, "stored SCRAM verifier is corrupt"),
                None => (None, "user has no SCRAM verifier"),
            },
            None => {
                // Equal cost: parse a verifier all the same.
                std::hint::black_box(ScramVerifier::parse(STAND_IN_VERIFIER).is_ok());
                (None, "unknown user")
            }
        };
        // Without randomness there is no safe nonce: refuse to run.
        let Some(nonce) = server_nonce() else {
            return Outcome::unavailable("no randomness for the SCRAM nonce");
        };
        let (exchange, server_first) = match ScramExchange::start(
            &mechanism,
            &client_first,
            channel_binding.as_deref(),
            verifier,
            self.mock_verifier(&self.mock_secret, &user),
            &nonce,
        ) {
            Ok(x) => x,
            Err(e) => {
                return Outcome::rejected(CredentialError::Malformed, e.to_string());
            }
        };

        // Validity is judged as of the start of the exchange.
        let now = attempt.now();
        let Some(conversation) = attempt.conversation() else {
            return Outcome::unavailable("the adapter provided no conversation for SCRAM");
        };
        let client_final = match conversation.exchange(server_first.into_bytes()).await {
            Ok(m) => m,
            Err(e) => return conversation_failure(e),
        };
        let server_final = match exchange.finish(&client_final) {
            Ok(Finish::Verified { server_final }) => server_final,
            Ok(Finish::ProofMismatch) => {
                let detail = if why_not.is_empty() {
                    format!("wrong SCRAM proof for user `{user}`")
                } else {
                    format!("SCRAM for user `{user}` failed: {why_not}")
                };
                return Outcome::rejected(CredentialError::Invalid, detail);
            }
            Err(e) => {
                return Outcome::rejected(CredentialError::Malformed, e.to_string());
            }
        };
        // Only a genuine verifier can verify, so the record exists.
        let Some(record) = record else {
            return Outcome::rejected(CredentialError::Invalid, "unknown user");
        };
        if let Some((status, detail)) = record.refusal(&user, now) {
            return Outcome::AccountRefused {
                error: status,
                detail: detail.into(),
            };
        }
        if let Err(e) = conversation.complete(server_final.into_bytes()).await {
            return conversation_failure(e);
        }
        Outcome::Authenticated(
            StandardSession::new(user, "scram", now)
                .with_evidence(Evidence::Sasl { mechanism })
                .with_roles(record.roles.iter().copied())
                .with_scopes(record.scopes)
                .boxed(),
        )
    }
}

#[cfg(test)]
mod stand_in_tests {
    #[test]
    fn the_stand_in_verifier_parses_as_a_users_would() {
        assert!(super::ScramVerifier::parse(super::STAND_IN_VERIFIER).is_ok());
    }
}
