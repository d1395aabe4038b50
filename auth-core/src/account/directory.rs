//! The one user directory layout every backend shares, over any [`CredentialStore`].
//!
//! | key | value | written by |
//! |---|---|---|
//! | `user/<name>` | [`UserRecord`]: status, validity, roles, scopes, password verifiers | `authctl user`, auth-password |
//! | `pgwire-user-<name>` (prefix configurable, WALLET-2) | the user's wallet secret | `authctl secret set` |
//! | `api-key/<id>` | an API key's digest and the user it acts as | `authctl apikey` |
//! | `identity/<method>/<identity>` | `{"user": "<name>"}`: a Kerberos principal, certificate subject or token subject mapped to a user | `authctl identity map` |
//! | `directory/layout` | `{"version": 2}` | [`Directory::migrate`] |
//!
//! Every method's success goes through the account stage, which reads `user/<name>`: a
//! user without a record has no account and cannot log in by any method.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::record::{UserRecord, UserStatus, epoch_seconds};
use super::{Account, Accounts, AccountsError, read_once};
use crate::store::{CredentialStore, Key, Precondition, StoreError};

/// The layout version [`Directory::migrate`] brings a store to.
pub const LAYOUT_VERSION: u32 = 2;
const LAYOUT_KEY: &str = "directory/layout";
/// The key prefix of mapped identities.
pub const IDENTITY_PREFIX: &str = "identity/";

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The name cannot be a user name.
    #[error("invalid user name: use letters, digits and -_.@ only, at most 200 bytes")]
    InvalidName,
    /// The identity cannot be stored (empty or longer than 200 bytes once encoded).
    #[error("invalid identity: 1 to 200 bytes")]
    InvalidIdentity,
    /// The user has no account.
    #[error("no user `{0}`")]
    UnknownUser(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record could not be read.
    #[error("the stored record `{key}` is corrupted: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Concurrent writers kept changing the record.
    #[error("the user record kept changing; try again")]
    Contended,
}

/// A stored record under `key` that cannot be read or written as JSON.
fn corrupt(key: &str, e: &serde_json::Error) -> DirectoryError {
    DirectoryError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    }
}

/// What [`Directory::migrate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migration {
    /// The layout version found (1: no marker).
    pub from: u32,
    /// Accounts created for users that had only a wallet secret.
    pub accounts_created: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Layout {
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct MappedIdentity {
    user: String,
}

/// The user directory: accounts under `user/<name>` and identities mapped to them, in one
/// store. It is the [`Accounts`] of the account stage.
///
/// ```
/// use std::sync::Arc;
/// use auth_core::account::{Accounts, Directory, UserStatus};
/// use auth_core::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let dir = Directory::new(Arc::new(MemoryStore::new()));
/// dir.update("alice", |r| r.status = UserStatus::Active).await.unwrap();
/// dir.map_identity("kerberos", "alice/admin@EXAMPLE.COM", "alice").await.unwrap();
/// let account = dir.account("alice").await.unwrap().unwrap();
/// assert!(account.is_active());
/// assert_eq!(
///     dir.mapped_user("kerberos", "alice/admin@EXAMPLE.COM").await.unwrap().as_deref(),
///     Some("alice"),
/// );
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Directory {
    store: Arc<dyn CredentialStore>,
    prefix: String,
}

/// Whether `name` can be a user name: 1..=200 bytes of letters, digits and `-_.@`.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

/// An identity as a key segment: letters, digits and `-_.@/` stay, every other byte
/// becomes `:HH`, so a certificate DN (`CN=a b,O=x`) fits the store's key alphabet.
fn identity_segment(identity: &str) -> Option<String> {
    let mut out = String::with_capacity(identity.len());
    for b in identity.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.@/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!(":{b:02X}"));
        }
    }
    (!identity.is_empty() && out.len() <= 200).then_some(out)
}

impl Directory {
    /// The directory in `store`, with user records under `user/`.
    pub fn new(store: Arc<dyn CredentialStore>) -> Self {
        Self {
            store,
            prefix: "user/".to_owned(),
        }
    }

    /// Uses another prefix for user records.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn CredentialStore> {
        &self.store
    }

    /// The key of `name`'s record, or `None` if `name` cannot be a user name.
    pub fn key(&self, name: &str) -> Option<Key> {
        if !valid_user_name(name) {
            return None;
        }
        Key::new(format!("{}{name}", self.prefix)).ok()
    }

    /// The record and its version.
    pub async fn get(&self, name: &str) -> Result<Option<(UserRecord, u64)>, DirectoryError> {
        let Some(key) = self.key(name) else {
            return Ok(None);
        };
        let store = read_once::store_id(&self.store);
        if let Some(found) = read_once::recall(store, key.as_str()) {
            return Ok(found);
        }
        let found = self.read(&key).await?;
        read_once::remember(store, key.as_str(), &found);
        Ok(found)
    }

    /// `key`'s record from the store.
    async fn read(&self, key: &Key) -> Result<Option<(UserRecord, u64)>, DirectoryError> {
        let Some(record) = self.store.get(key).await? else {
            // Equal cost: read a record of a user's shape all the same, so the time to
            // answer does not tell whether the name exists.
            let stand_in = serde_json::from_slice::<UserRecord>(stand_in_record());
            std::hint::black_box(stand_in.is_ok());
            return Ok(None);
        };
        let user: UserRecord = serde_json::from_slice(record.value.expose_secret())
            .map_err(|e| corrupt(key.as_str(), &e))?;
        Ok(Some((user, record.meta.version)))
    }

    /// Writes the record if `precondition` holds; returns the new version.
    pub async fn put(
        &self,
        name: &str,
        record: &UserRecord,
        precondition: Precondition,
    ) -> Result<u64, DirectoryError> {
        let key = self.key(name).ok_or(DirectoryError::InvalidName)?;
        let bytes = serde_json::to_vec(record).map_err(|e| corrupt(key.as_str(), &e))?;
        // Whatever the write's outcome (a conflict too), the next read asks the store.
        read_once::forget(read_once::store_id(&self.store), key.as_str());
        Ok(self.store.put(&key, bytes.into(), precondition).await?)
    }

    /// Reads, changes and writes the record (creating it if absent), retrying on write
    /// conflicts so that concurrent changes are not lost.
    pub async fn update(
        &self,
        name: &str,
        change: impl FnMut(&mut UserRecord),
    ) -> Result<u64, DirectoryError> {
        self.change(name, true, change).await
    }

    /// Like [`update`](Self::update), for an existing account only: an unknown (or
    /// deleted) user is [`DirectoryError::UnknownUser`], never created.
    pub async fn modify(
        &self,
        name: &str,
        change: impl FnMut(&mut UserRecord),
    ) -> Result<u64, DirectoryError> {
        self.change(name, false, change).await
    }

    async fn change(
        &self,
        name: &str,
        create: bool,
        mut change: impl FnMut(&mut UserRecord),
    ) -> Result<u64, DirectoryError> {
        self.key(name).ok_or(DirectoryError::InvalidName)?;
        for _ in 0..16 {
            let (mut record, precondition) = match self.get(name).await? {
                Some((r, _)) if !create && r.status == UserStatus::Deleted => {
                    return Err(DirectoryError::UnknownUser(name.to_owned()));
                }
                Some((r, v)) => (r, Precondition::Version(v)),
                None if create => (UserRecord::default(), Precondition::Absent),
                None => return Err(DirectoryError::UnknownUser(name.to_owned())),
            };
            change(&mut record);
            match self.put(name, &record, precondition).await {
                Err(DirectoryError::Store(StoreError::Conflict { .. })) => continue,
                other => return other,
            }
        }
        Err(DirectoryError::Contended)
    }

    fn identity_key(method: &str, identity: &str) -> Result<Key, DirectoryError> {
        let valid_method = !method.is_empty()
            && method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        let segment = identity_segment(identity).filter(|_| valid_method);
        let segment = segment.ok_or(DirectoryError::InvalidIdentity)?;
        Key::new(format!("{IDENTITY_PREFIX}{method}/{segment}"))
            .map_err(|_| DirectoryError::InvalidIdentity)
    }

    /// Maps `identity`, proved by `method` (`kerberos`, `certificate`, `oauth`), to the
    /// existing user `user`.
    pub async fn map_identity(
        &self,
        method: &str,
        identity: &str,
        user: &str,
    ) -> Result<(), DirectoryError> {
        let key = Self::identity_key(method, identity)?;
        match self.get(user).await? {
            Some((r, _)) if r.status != UserStatus::Deleted => {}
            _ => return Err(DirectoryError::UnknownUser(user.to_owned())),
        }
        let value = serde_json::to_vec(&MappedIdentity {
            user: user.to_owned(),
        })
        .map_err(|e| corrupt(key.as_str(), &e))?;
        self.store
            .put(&key, value.into(), Precondition::None)
            .await?;
        Ok(())
    }

    /// Removes a mapping; returns whether there was one.
    pub async fn unmap_identity(
        &self,
        method: &str,
        identity: &str,
    ) -> Result<bool, DirectoryError> {
        let key = Self::identity_key(method, identity)?;
        Ok(self.store.delete(&key, Precondition::None).await?)
    }

    /// The user `identity` is mapped to, if any.
    pub async fn mapped_user(
        &self,
        method: &str,
        identity: &str,
    ) -> Result<Option<String>, DirectoryError> {
        let Ok(key) = Self::identity_key(method, identity) else {
            return Ok(None);
        };
        let Some(record) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let mapped: MappedIdentity = serde_json::from_slice(record.value.expose_secret())
            .map_err(|e| corrupt(key.as_str(), &e))?;
        Ok(Some(mapped.user))
    }

    /// Brings a store written by an earlier layout to [`LAYOUT_VERSION`]; safe to run at
    /// every start, and concurrently.
    ///
    /// Version 1 kept users with only a wallet secret (`<wallet_prefix><name>`) without an
    /// account; they get an active account with no roles, so they keep logging in.
    pub async fn migrate(&self, wallet_prefix: &str) -> Result<Migration, DirectoryError> {
        let layout_key = Key::new(LAYOUT_KEY).map_err(StoreError::from)?;
        let from = match self
            .store
            .read_many(std::slice::from_ref(&layout_key))
            .await?
            .pop()
            .flatten()
        {
            None => 1,
            Some(r) => {
                serde_json::from_slice::<Layout>(r.value.expose_secret())
                    .map_err(|e| corrupt(LAYOUT_KEY, &e))?
                    .version
            }
        };
        let mut migration = Migration {
            from,
            accounts_created: Vec::new(),
        };
        if from >= LAYOUT_VERSION {
            return Ok(migration);
        }
        for meta in self.store.list(wallet_prefix).await? {
            let Some(name) = meta.key.as_str().strip_prefix(wallet_prefix) else {
                continue;
            };
            let Some(key) = self.key(name) else {
                continue;
            };
            match self
                .store
                .put(&key, b"{}".to_vec().into(), Precondition::Absent)
                .await
            {
                Ok(_) => migration.accounts_created.push(name.to_owned()),
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let marker = serde_json::to_vec(&Layout {
            version: LAYOUT_VERSION,
        })
        .map_err(|e| corrupt(LAYOUT_KEY, &e))?;
        self.store
            .put(&layout_key, marker.into(), Precondition::None)
            .await?;
        Ok(migration)
    }
}

/// The account fields of a [`UserRecord`]: the account stage reads these on every login
/// and skips the password verifiers without copying them.
#[derive(Deserialize)]
struct AccountFields {
    #[serde(default)]
    status: UserStatus,
    #[serde(default)]
    valid_until: Option<u64>,
    #[serde(default)]
    roles: Vec<crate::authz::Role>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    system: bool,
    #[serde(default)]
    remote_login: bool,
}

#[async_trait]
impl Accounts for Directory {
    async fn account(&self, user: &str) -> Result<Option<Account>, AccountsError> {
        let Some(key) = self.key(user) else {
            return Ok(None);
        };
        let record = match self.store.get(&key).await {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(None),
            Err(e) => return Err(AccountsError(e.to_string())),
        };
        let fields: AccountFields = serde_json::from_slice(record.value.expose_secret())
            .map_err(|e| AccountsError(corrupt(key.as_str(), &e).to_string()))?;
        if fields.status == UserStatus::Deleted {
            return Ok(None);
        }
        Ok(Some(Account {
            name: user.to_owned(),
            status: fields.status,
            valid_until: fields.valid_until.map(epoch_seconds),
            roles: fields.roles,
            scopes: fields.scopes,
            system: fields.system,
            remote_login: fields.remote_login,
        }))
    }

    async fn mapped_user(
        &self,
        method: &str,
        identity: &str,
    ) -> Result<Option<String>, AccountsError> {
        Directory::mapped_user(self, method, identity)
            .await
            .map_err(|e| AccountsError(e.to_string()))
    }
}

/// A user record of the usual shape (an argon2id PHC string, a SCRAM verifier, roles),
/// which [`Directory::get`] parses for a name that has no record.
fn stand_in_record() -> &'static [u8] {
    static STAND_IN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    STAND_IN.get_or_init(|| {
        let record = UserRecord {
            password_hash: Some(format!(
                "$argon2id$v=19$m=19456,t=2,p=1${}${}",
                "A".repeat(22),
                "A".repeat(43)
            )),
            scram: Some(format!(
                "SCRAM-SHA-256$4096:{}${}:{}",
                "A".repeat(24),
                "A".repeat(44),
                "A".repeat(44)
            )),
            roles: vec![crate::Role::Dba],
            ..UserRecord::default()
        };
        serde_json::to_vec(&record).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stand_in_record_parses_as_a_users_would() {
        let record: Result<super::UserRecord, _> = serde_json::from_slice(super::stand_in_record());
        assert!(record.is_ok_and(|r| r.scram.is_some() && r.password_hash.is_some()));
    }

    use super::*;

    #[test]
    fn identities_become_key_segments() {
        assert_eq!(
            identity_segment("alice/admin@R").as_deref(),
            Some("alice/admin@R")
        );
        assert_eq!(identity_segment("CN=a b").as_deref(), Some("CN:3Da:20b"));
        assert_eq!(identity_segment(""), None);
        assert_eq!(identity_segment(&"x".repeat(201)), None);
    }
}
