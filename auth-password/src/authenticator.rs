//! Plain passwords (pgwire cleartext, HTTP Basic) checked against stored hashes.

use async_trait::async_trait;
use auth_core::{
    Attempt, Authenticator, Credential, CredentialError, CredentialKind, Evidence, Outcome,
    Precondition, StandardSession,
};
use secrecy::{ExposeSecret, SecretString};

use crate::hasher::Hasher;
use crate::policy::MAX_BYTES;
use crate::user::{UserError, UserStatus, Users};

/// Authenticates [`Credential::Password`] against argon2id or bcrypt hashes in [`Users`].
///
/// - Unknown and soft-deleted users run a dummy verification with the same parameters,
///   so they cost the same time as a wrong password.
/// - A right password whose hash is outdated (bcrypt, other argon2 parameters) is
///   rehashed and written back with compare-and-set; a concurrent change wins.
/// - Disabled, locked and expired accounts are reported as
///   [`Outcome::AccountRefused`] only after the password was verified.
/// - Hashing runs on the [`Hasher`]'s bounded pool, never on the async runtime.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use auth_core::secrecy::SecretString;
/// use auth_core::{
///     Attempt, Authenticator, ConnectionInfo, Credential, CredentialError, Error, MemoryStore,
///     Protocol,
/// };
/// use auth_password::{Argon2Settings, Hasher, PasswordAuthenticator, PasswordPolicy, Users};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let users = Users::new(Arc::new(MemoryStore::new()));
/// let hasher = Hasher::new(Argon2Settings::default())?; // argon2id, OWASP parameters
/// let password = SecretString::from("correct horse battery staple".to_owned());
/// users.set_password(&hasher, &PasswordPolicy::default(), "alice", &password).await?;
/// let auth = PasswordAuthenticator::new(users, hasher);
///
/// let connection = ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.5:40000".parse()?);
/// let right = Credential::password("alice", "correct horse battery staple");
/// let outcome = auth.authenticate(&mut Attempt::new(connection.clone(), right)).await;
/// assert_eq!(outcome.session().map(|s| s.user()), Some("alice"));
///
/// // A wrong password and an unknown user fail alike.
/// let invalid = Some(Error::Credential(CredentialError::Invalid));
/// let wrong = Credential::password("alice", "Tr0ub4dor&3");
/// let outcome = auth.authenticate(&mut Attempt::new(connection.clone(), wrong)).await;
/// assert_eq!(outcome.failure().map(|f| f.error), invalid);
/// let unknown = Credential::password("mallory", "correct horse battery staple");
/// let outcome = auth.authenticate(&mut Attempt::new(connection, unknown)).await;
/// assert_eq!(outcome.failure().map(|f| f.error), invalid);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PasswordAuthenticator {
    users: Users,
    hasher: Hasher,
}

impl PasswordAuthenticator {
    /// An authenticator over `users`, hashing with `hasher`.
    pub fn new(users: Users, hasher: Hasher) -> Self {
        Self { users, hasher }
    }

    async fn rehash(&self, user: &str, password: SecretString, version: u64) {
        let Ok(hash) = self.hasher.hash(password).await else {
            return;
        };
        let Ok(Some((mut record, current))) = self.users.get(user).await else {
            return;
        };
        if current != version {
            return;
        }
        record.password_hash = Some(hash);
        match self
            .users
            .put(user, &record, Precondition::Version(version))
            .await
        {
            Ok(_) => tracing::info!(user, "password rehashed with current parameters"),
            // Someone changed the record meanwhile: their change wins.
            Err(UserError::Store(auth_core::StoreError::Conflict { .. })) => {}
            Err(e) => tracing::warn!(user, error = %e, "could not store the rehashed password"),
        }
    }
}

#[async_trait]
impl Authenticator for PasswordAuthenticator {
    fn name(&self) -> &str {
        "password"
    }

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Password]
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::Password { user, password } = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        // No policy at login, but no hashing of absurd input either.
        if password.expose_secret().len() > MAX_BYTES {
            return Outcome::rejected(CredentialError::Invalid, "password longer than 4096 bytes");
        }
        let (user, password) = (user.clone(), password.clone());
        let found = match self.users.get(&user).await {
            Ok(found) => found,
            Err(UserError::Corrupt(e)) => {
                return Outcome::unavailable(format!("record of user `{user}` is corrupt: {e}"));
            }
            Err(e) => return Outcome::unavailable(format!("user store: {e}")),
        };
        let usable =
            found.filter(|(r, _)| r.status != UserStatus::Deleted && r.password_hash.is_some());
        let Some((record, version)) = usable else {
            self.hasher.verify_dummy(password).await;
            return Outcome::rejected(
                CredentialError::Invalid,
                format!("unknown user `{user}` (or no password set)"),
            );
        };
        let stored = record.password_hash.clone().unwrap_or_default();
        let verification = match self.hasher.verify(password.clone(), stored).await {
            Ok(v) => v,
            Err(e) => return Outcome::unavailable(format!("password hash of `{user}`: {e}")),
        };
        if !verification.matches {
            return Outcome::rejected(
                CredentialError::Invalid,
                format!("wrong password for user `{user}`"),
            );
        }
        if let Some((status, detail)) = record.refusal(&user, attempt.now()) {
            return Outcome::AccountRefused {
                error: status,
                detail: detail.into(),
            };
        }
        if verification.needs_rehash {
            self.rehash(&user, password, version).await;
        }
        Outcome::Authenticated(
            StandardSession::new(user, "password", attempt.now())
                .with_evidence(Evidence::Password)
                .with_roles(record.roles.iter().copied())
                .with_scopes(record.scopes)
                .boxed(),
        )
    }
}
