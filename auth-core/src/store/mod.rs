//! Where credentials live: a key-value store of secret records with versions, so
//! concurrent writers never lose an update.

mod memory;

use std::fmt::{self, Debug};
use std::time::SystemTime;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretSlice};

pub use memory::MemoryStore;

/// The longest key a store must accept.
pub const MAX_KEY_LEN: usize = 256;

/// A validated store key, such as `pgwire-user-alice` or `api-key/ci`.
///
/// Keys are 1 to [`MAX_KEY_LEN`] bytes of ASCII letters, digits and `-_.:/@`; the part
/// before a separator acts as a namespace, and [`CredentialStore::list`] lists by prefix.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

/// A key that is empty, too long or has characters outside the allowed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid store key: {reason} (keys are 1..=256 bytes of ASCII letters, digits and -_.:/@)")]
pub struct InvalidKey {
    /// What is wrong.
    pub reason: &'static str,
}

impl Key {
    /// Validates `key`.
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidKey> {
        let key = key.into();
        if key.is_empty() {
            return Err(InvalidKey { reason: "empty" });
        }
        if key.len() > MAX_KEY_LEN {
            return Err(InvalidKey { reason: "too long" });
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@".contains(&b))
        {
            return Err(InvalidKey {
                reason: "character outside the allowed set",
            });
        }
        Ok(Self(key))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Facts about a record, without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    /// The key.
    pub key: Key,
    /// When the record was created.
    pub created: SystemTime,
    /// When its value was last written.
    pub updated: SystemTime,
    /// When its value was last read with [`CredentialStore::get`].
    pub last_accessed: Option<SystemTime>,
    /// Grows by one on every write. A new key starts at 1; a key that is deleted and
    /// created again continues above its last version, so a version seen before the
    /// delete never matches again.
    pub version: u64,
}

/// A record: its value and its metadata.
pub struct Record {
    /// The secret value.
    pub value: SecretSlice<u8>,
    /// Metadata, as it stood after this read (so `last_accessed` is this read's time).
    pub meta: RecordMeta,
}

impl Record {
    /// The value as UTF-8 text, if it is.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(self.value.expose_secret()).ok()
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("value", &"[REDACTED]")
            .field("meta", &self.meta)
            .finish()
    }
}

/// The condition a write needs to hold to go ahead (compare-and-set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Write whatever is there.
    None,
    /// Only if the key does not exist (create).
    Absent,
    /// Only if the record is at this version (update after a read).
    Version(u64),
}

impl Precondition {
    /// Whether the precondition holds for a record at version `current` (`None`: absent);
    /// the conflict to report when it does not.
    pub fn check(self, current: Option<u64>) -> Result<(), StoreError> {
        let holds = match self {
            Precondition::None => true,
            Precondition::Absent => current.is_none(),
            Precondition::Version(v) => current == Some(v),
        };
        if holds {
            Ok(())
        } else {
            Err(StoreError::Conflict { current })
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The precondition did not hold; `current` is the version found (`None`: absent).
    #[error("write conflict: the record is at version {current:?}")]
    Conflict {
        /// The version found.
        current: Option<u64>,
    },
    /// The key was invalid.
    #[error(transparent)]
    InvalidKey(#[from] InvalidKey),
    /// The backend could not be reached or failed.
    #[error("credential store unavailable: {0}")]
    Unavailable(String),
    /// Stored data failed an integrity check (tampered or corrupted); never returned as a
    /// value.
    #[error("credential store data is corrupted: {0}")]
    Corrupted(String),
}

impl From<StoreError> for crate::Failure {
    /// A store that failed the decision: a bad key is the credential's (a user name no
    /// key can hold), everything else the infrastructure's.
    fn from(e: StoreError) -> Self {
        let kind: crate::Error = match &e {
            StoreError::InvalidKey(_) => crate::CredentialError::Malformed.into(),
            _ => crate::InfrastructureError::Unavailable.into(),
        };
        crate::Failure::new(kind, e.to_string())
    }
}

/// A store of credentials by namespaced key.
///
/// Implementations keep `created`, `updated`, `last_accessed` and `version` as documented
/// on [`RecordMeta`], and make [`put`](Self::put) and [`delete`](Self::delete) atomic with
/// their [`Precondition`]. Run `auth_core::contract::store::run_all` against an
/// implementation to check it.
#[async_trait]
pub trait CredentialStore: Send + Sync + Debug {
    /// Reads a record and records the access time.
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError>;

    /// Writes `value` under `key` if `precondition` holds; returns the new version.
    async fn put(
        &self,
        key: &Key,
        value: SecretSlice<u8>,
        precondition: Precondition,
    ) -> Result<u64, StoreError>;

    /// Deletes `key` if `precondition` holds; returns whether a record was deleted.
    async fn delete(&self, key: &Key, precondition: Precondition) -> Result<bool, StoreError>;

    /// Metadata of every record whose key starts with `prefix`, ordered by key. Does not
    /// count as an access.
    async fn list(&self, prefix: &str) -> Result<Vec<RecordMeta>, StoreError>;

    /// Reads several records for maintenance (re-keying, export) without counting as an
    /// access. The default reads them one by one with [`get`](Self::get), which does
    /// count; stores should override it.
    async fn read_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    /// Writes several records, each under its own precondition, returning each write's
    /// result (a conflict on one does not stop the others). The default writes them one by
    /// one; a store whose every write is expensive (one file) should write them at once.
    async fn put_many(
        &self,
        items: Vec<(Key, SecretSlice<u8>, Precondition)>,
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        let mut out = Vec::with_capacity(items.len());
        for (key, value, precondition) in items {
            out.push(self.put(&key, value, precondition).await);
        }
        Ok(out)
    }
}

/// The text secret stored under `name` (a client secret, a service's password), as
/// stored; or why it cannot be read: the name is not a key, the store failed, there is no such
/// record, or it is not text.
pub async fn text_secret(
    store: &dyn CredentialStore,
    name: &str,
) -> Result<secrecy::SecretString, String> {
    let key = Key::new(name).map_err(|e| e.to_string())?;
    let record = store
        .get(&key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no secret `{key}`"))?;
    let text = record
        .value_str()
        .ok_or_else(|| format!("secret `{key}` is not text"))?;
    Ok(secrecy::SecretString::from(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert!(Key::new("pgwire-user-alice").is_ok());
        assert!(Key::new("api-key/ci@prod:1").is_ok());
        assert_eq!(Key::new(""), Err(InvalidKey { reason: "empty" }));
        assert!(Key::new("a".repeat(257)).is_err());
        assert!(Key::new("a".repeat(256)).is_ok());
        for bad in ["with space", "new\nline", "ünï", "semi;colon", "../x\0"] {
            assert!(Key::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn record_debug_redacts_value() {
        let r = Record {
            value: b"top-secret".to_vec().into(),
            meta: RecordMeta {
                key: Key::new("k").unwrap(),
                created: SystemTime::UNIX_EPOCH,
                updated: SystemTime::UNIX_EPOCH,
                last_accessed: None,
                version: 1,
            },
        };
        assert!(!format!("{r:?}").contains("top-secret"));
        assert_eq!(r.value_str(), Some("top-secret"));
    }
}
