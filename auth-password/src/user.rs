//! Users' passwords in the shared user directory ([`auth_core::account::Directory`]):
//! the password hash and SCRAM verifier live in the account record under `user/<name>`.

use std::sync::Arc;

use auth_core::account::{Directory, DirectoryError};
use auth_core::{CredentialStore, Key, Precondition, StoreError};
use secrecy::SecretString;

pub use auth_core::account::{UserRecord, UserStatus};

use crate::hasher::{HashFailure, Hasher};
use crate::policy::{PasswordPolicy, WeakPassword};

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// The name cannot be a user name.
    #[error("invalid user name: use letters, digits and -_.@ only, at most 200 bytes")]
    InvalidName,
    /// The user has no account.
    #[error("no user `{0}`")]
    UnknownUser(String),
    /// The password breaks the policy.
    #[error(transparent)]
    Weak(#[from] WeakPassword),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashFailure),
    /// The stored record cannot be read.
    #[error("the stored record for this user is corrupted: {0}")]
    Corrupt(String),
    /// Concurrent writers kept changing the record.
    #[error("the user record kept changing; try again")]
    Contended,
}

impl From<DirectoryError> for UserError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::InvalidName | DirectoryError::InvalidIdentity => Self::InvalidName,
            DirectoryError::UnknownUser(name) => Self::UnknownUser(name),
            DirectoryError::Store(e) => Self::Store(e),
            DirectoryError::Contended => Self::Contended,
            other => Self::Corrupt(other.to_string()),
        }
    }
}

/// The users of the directory, as the password methods see them.
#[derive(Debug, Clone)]
pub struct Users {
    directory: Directory,
}

impl Users {
    /// The users in `store`, under `user/`.
    pub fn new(store: Arc<dyn CredentialStore>) -> Self {
        Self {
            directory: Directory::new(store),
        }
    }

    /// Uses another prefix for user records.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.directory = self.directory.with_prefix(prefix);
        self
    }

    /// The directory the users live in (accounts, identities).
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn CredentialStore> {
        self.directory.store()
    }

    /// The key of `name`'s record, or `None` if `name` cannot be a user name.
    pub fn key(&self, name: &str) -> Option<Key> {
        self.directory.key(name)
    }

    /// The record of `name` and its version.
    pub async fn get(&self, name: &str) -> Result<Option<(UserRecord, u64)>, UserError> {
        Ok(self.directory.get(name).await?)
    }

    /// Writes the record if `precondition` holds; returns the new version.
    pub async fn put(
        &self,
        name: &str,
        record: &UserRecord,
        precondition: Precondition,
    ) -> Result<u64, UserError> {
        Ok(self.directory.put(name, record, precondition).await?)
    }

    /// Reads, changes and writes the record (creating it if absent), retrying on write
    /// conflicts.
    pub async fn update(
        &self,
        name: &str,
        change: impl FnMut(&mut UserRecord),
    ) -> Result<u64, UserError> {
        Ok(self.directory.update(name, change).await?)
    }

    /// Sets `name`'s SCRAM-SHA-256 verifier only (creating the user if needed, reviving a
    /// deleted one), with no argon2 [`Hasher`]: for a server whose users log in with
    /// SCRAM alone (a pgwire server). The policy is checked first; the verifier's PBKDF2
    /// (4096 iterations) runs off the async threads. Such a user has no password hash:
    /// [`crate::PasswordAuthenticator`] (cleartext, HTTP Basic) refuses them until
    /// [`Self::set_password`] stores one. An older hash is removed, so the two cannot
    /// disagree.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use auth_core::MemoryStore;
    /// use auth_password::{PasswordPolicy, Users};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let users = Users::new(Arc::new(MemoryStore::new()));
    /// let password = "correct horse battery staple".to_owned().into();
    /// users.set_scram_password(&PasswordPolicy::default(), "alice", &password).await?;
    /// let (record, _version) = users.get("alice").await?.expect("created");
    /// assert!(record.scram.is_some() && record.password_hash.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_scram_password(
        &self,
        policy: &PasswordPolicy,
        name: &str,
        password: &SecretString,
    ) -> Result<u64, UserError> {
        self.key(name).ok_or(UserError::InvalidName)?;
        policy.check(name, password)?;
        let password = password.clone();
        let scram = tokio::task::spawn_blocking(move || {
            crate::ScramVerifier::generate(
                secrecy::ExposeSecret::expose_secret(&password),
                crate::DEFAULT_SCRAM_ITERATIONS,
            )
        })
        .await
        .map_err(|_| UserError::Hash(HashFailure::Pool(crate::PoolClosed)))?
        .map_err(|e| UserError::Hash(e.into()))?
        .to_string();
        self.store_password(name, None, scram).await
    }

    /// Stores a password's hash (or none) and SCRAM verifier, creating the user if needed
    /// and reviving a deleted one.
    async fn store_password(
        &self,
        name: &str,
        hash: Option<String>,
        scram: String,
    ) -> Result<u64, UserError> {
        self.update(name, |r| {
            r.password_hash = hash.clone();
            r.scram = Some(scram.clone());
            if r.status == UserStatus::Deleted {
                r.status = UserStatus::Active;
            }
        })
        .await
    }

    /// Sets `name`'s password (creating the user if needed, reviving a deleted one):
    /// checks the policy, then stores an argon2id hash and a SCRAM verifier.
    pub async fn set_password(
        &self,
        hasher: &Hasher,
        policy: &PasswordPolicy,
        name: &str,
        password: &SecretString,
    ) -> Result<u64, UserError> {
        self.key(name).ok_or(UserError::InvalidName)?;
        policy.check(name, password)?;
        let hash = hasher.hash(password.clone()).await?;
        let scram = hasher.scram_verifier(password.clone()).await?.to_string();
        self.store_password(name, Some(hash), scram).await
    }
}
