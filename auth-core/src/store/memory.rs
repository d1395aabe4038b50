//! The in-memory reference store.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretSlice};

use super::{CredentialStore, Key, Precondition, Record, RecordMeta, StoreError};
use crate::clock::{SharedClock, system_clock};

struct Entry {
    value: SecretSlice<u8>,
    meta: RecordMeta,
}

/// A [`CredentialStore`] in process memory: the reference implementation, for tests and
/// single-process hosts that load credentials at start-up.
///
/// # Example
///
/// ```
/// use auth_core::{CredentialStore, Key, MemoryStore, Precondition, StoreError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new();
/// let key = Key::new("service/db-password")?;
///
/// // Create, then read back with its metadata.
/// let version = store.put(&key, b"s3cret".to_vec().into(), Precondition::Absent).await?;
/// let record = store.get(&key).await?.ok_or("record missing")?;
/// assert_eq!(record.value_str(), Some("s3cret"));
/// assert_eq!(record.meta.version, version);
///
/// // Compare-and-set: a writer holding a stale version is refused.
/// store.put(&key, b"rotated".to_vec().into(), Precondition::Version(version)).await?;
/// let stale = store.put(&key, b"lost".to_vec().into(), Precondition::Version(version)).await;
/// assert_eq!(stale, Err(StoreError::Conflict { current: Some(version + 1) }));
///
/// assert!(store.delete(&key, Precondition::None).await?);
/// assert!(store.get(&key).await?.is_none());
/// # Ok(())
/// # }
/// ```
pub struct MemoryStore {
    entries: Mutex<Entries>,
    clock: SharedClock,
}

#[derive(Default)]
struct Entries {
    live: BTreeMap<Key, Entry>,
    /// The last version of each deleted key, so a re-created record continues from it and
    /// a writer holding a version from before the delete cannot succeed (no ABA).
    deleted: BTreeMap<Key, u64>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .len();
        write!(f, "MemoryStore({n} records)")
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(system_clock())
    }

    /// An empty store reading time from `clock`.
    pub fn with_clock(clock: SharedClock) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            clock,
        }
    }
}

#[async_trait]
impl CredentialStore for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(entries.live.get_mut(key).map(|e| {
            e.meta.last_accessed = Some(now);
            Record {
                value: e.value.expose_secret().to_vec().into(),
                meta: e.meta.clone(),
            }
        }))
    }

    async fn put(
        &self,
        key: &Key,
        value: SecretSlice<u8>,
        precondition: Precondition,
    ) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let current = entries.live.get(key).map(|e| e.meta.version);
        precondition.check(current)?;
        if let Some(e) = entries.live.get_mut(key) {
            e.value = value;
            e.meta.updated = now;
            e.meta.version += 1;
            return Ok(e.meta.version);
        }
        let version = entries.deleted.remove(key).map_or(1, |last| last + 1);
        let meta = RecordMeta {
            key: key.clone(),
            created: now,
            updated: now,
            last_accessed: None,
            version,
        };
        entries.live.insert(key.clone(), Entry { value, meta });
        Ok(version)
    }

    async fn delete(&self, key: &Key, precondition: Precondition) -> Result<bool, StoreError> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let current = entries.live.get(key).map(|e| e.meta.version);
        if current.is_none() && !matches!(precondition, Precondition::Version(_)) {
            // Deleting what is not there is not a conflict unless a version was expected.
            return Ok(false);
        }
        precondition.check(current)?;
        match entries.live.remove(key) {
            Some(e) => {
                entries.deleted.insert(key.clone(), e.meta.version);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn read_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>, StoreError> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(keys
            .iter()
            .map(|k| {
                entries.live.get(k).map(|e| Record {
                    value: e.value.expose_secret().to_vec().into(),
                    meta: e.meta.clone(),
                })
            })
            .collect())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<RecordMeta>, StoreError> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(entries
            .live
            .iter()
            .filter(|(k, _)| k.as_str().starts_with(prefix))
            .map(|(_, e)| e.meta.clone())
            .collect())
    }
}
