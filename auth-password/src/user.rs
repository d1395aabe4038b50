//! User records in a [`CredentialStore`]: the password hash, the SCRAM verifier and the
//! account status, under `user/<name>` (prefix configurable).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{CredentialStore, Key, Precondition, StoreError};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::hasher::{HashFailure, Hasher};
use crate::policy::{PasswordPolicy, WeakPassword};

/// An account's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Usable.
    #[default]
    Active,
    /// Disabled by an administrator.
    Disabled,
    /// Locked.
    Locked,
    /// Soft-deleted: treated exactly like an unknown user.
    Deleted,
}

/// What is stored for one user.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// argon2 PHC string or legacy bcrypt hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// PostgreSQL-format SCRAM-SHA-256 verifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scram: Option<String>,
    /// Account status.
    #[serde(default)]
    pub status: UserStatus,
    /// When the password stops being accepted (seconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_expires: Option<u64>,
    /// Role names (`user`, `service`, `dba`, `system`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "[REDACTED]"),
            )
            .field("scram", &self.scram.as_ref().map(|_| "[REDACTED]"))
            .field("status", &self.status)
            .field("password_expires", &self.password_expires)
            .field("roles", &self.roles)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl UserRecord {
    /// Why the account cannot be used at `now`, if it cannot (checked only after the
    /// credential was verified, so a wrong password never learns it).
    pub fn account_status(&self, now: SystemTime) -> Option<auth_core::AccountStatus> {
        match self.status {
            UserStatus::Disabled | UserStatus::Deleted => Some(auth_core::AccountStatus::Disabled),
            UserStatus::Locked => Some(auth_core::AccountStatus::Locked),
            UserStatus::Active if self.password_expired(now) => {
                Some(auth_core::AccountStatus::Expired)
            }
            UserStatus::Active => None,
        }
    }

    /// Whether the password has expired at `now`.
    pub fn password_expired(&self, now: SystemTime) -> bool {
        self.password_expires
            .is_some_and(|at| now >= SystemTime::UNIX_EPOCH + Duration::from_secs(at))
    }
}

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// The user name cannot be stored (characters outside the store's key set).
    #[error("invalid user name: use letters, digits and -_.@ only, at most 200 bytes")]
    InvalidName,
    /// The password policy refused the password.
    #[error(transparent)]
    Weak(#[from] WeakPassword),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashFailure),
    /// The stored record is not valid JSON of the expected shape.
    #[error("the stored record for this user is corrupted: {0}")]
    Corrupt(String),
    /// Concurrent writers kept changing the record.
    #[error("the user record kept changing; try again")]
    Contended,
}

/// The users in a [`CredentialStore`].
#[derive(Debug, Clone)]
pub struct Users {
    store: Arc<dyn CredentialStore>,
    prefix: String,
}

impl Users {
    /// Users under `user/` in `store`.
    pub fn new(store: Arc<dyn CredentialStore>) -> Self {
        Self {
            store,
            prefix: "user/".to_owned(),
        }
    }

    /// Uses `prefix` for keys instead of `user/`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn CredentialStore> {
        &self.store
    }

    /// The key of `name`, or `None` for a name that cannot be a key (treated as unknown).
    pub fn key(&self, name: &str) -> Option<Key> {
        let valid = !name.is_empty()
            && name.len() <= 200
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
        if !valid {
            return None;
        }
        Key::new(format!("{}{name}", self.prefix)).ok()
    }

    /// The record of `name` and its version.
    pub async fn get(&self, name: &str) -> Result<Option<(UserRecord, u64)>, UserError> {
        let Some(key) = self.key(name) else {
            return Ok(None);
        };
        let Some(record) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let user: UserRecord = serde_json::from_slice(record.value.expose_secret())
            .map_err(|e| UserError::Corrupt(e.to_string()))?;
        Ok(Some((user, record.meta.version)))
    }

    /// Writes `record` for `name` if `precondition` holds.
    pub async fn put(
        &self,
        name: &str,
        record: &UserRecord,
        precondition: Precondition,
    ) -> Result<u64, UserError> {
        let key = self.key(name).ok_or(UserError::InvalidName)?;
        let bytes = serde_json::to_vec(record).map_err(|e| UserError::Corrupt(e.to_string()))?;
        Ok(self.store.put(&key, bytes.into(), precondition).await?)
    }

    /// Applies `change` to the current record of `name` (a default one if absent) with
    /// compare-and-set, retrying when a concurrent writer got there first.
    pub async fn update(
        &self,
        name: &str,
        mut change: impl FnMut(&mut UserRecord),
    ) -> Result<u64, UserError> {
        for _ in 0..16 {
            let (mut record, precondition) = match self.get(name).await? {
                Some((r, v)) => (r, Precondition::Version(v)),
                None => (UserRecord::default(), Precondition::Absent),
            };
            change(&mut record);
            match self.put(name, &record, precondition).await {
                Err(UserError::Store(StoreError::Conflict { .. })) => continue,
                other => return other,
            }
        }
        Err(UserError::Contended)
    }

    /// Sets `name`'s password after checking it against `policy`: stores a new argon2id
    /// hash and SCRAM verifier, keeping the rest of the record.
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
        self.update(name, |r| {
            r.password_hash = Some(hash.clone());
            r.scram = Some(scram.clone());
            if r.status == UserStatus::Deleted {
                r.status = UserStatus::Active;
            }
        })
        .await
    }
}
