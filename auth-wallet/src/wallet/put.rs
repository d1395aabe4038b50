//! Writes sealed for the version the record will have.
//!
//! A value is sealed before the store assigns the version, so the write fixes that
//! version itself: a write with `Version(n)` gives the record version `n + 1`; a write with
//! no precondition reads the current version and writes with compare-and-set on it,
//! reading again if another writer got in between; a create gives version 1, unless the
//! name was deleted before: stores continue above a deleted name's last version and none
//! says which beforehand, so such a create is sealed again for the version after the one
//! it got and written over it at once (`settle`). A reader between the two writes is told
//! the value was sealed for another version: the one window in which a sound record does
//! not open, and only when a deleted name is created again.

use auth_core::{Key, Precondition, StoreError};
use secrecy::{ExposeSecret, SecretSlice};

use super::{Wallet, corrupted};
use crate::envelope;

/// Rounds of read and compare-and-set a write with no precondition makes before it gives
/// up (each lost round means another writer's write landed).
const PUT_ATTEMPTS: usize = 64;

/// One write of a batch: the key, the plaintext, the caller's precondition.
type Item = (Key, SecretSlice<u8>, Precondition);

/// The compare-and-set a write makes, given the caller's precondition and (for none) the
/// record's current version, and the version the record has after it.
fn plan(precondition: Precondition, current: Option<u64>) -> (Precondition, u64) {
    match (precondition, current) {
        (Precondition::Version(v), _) | (Precondition::None, Some(v)) => {
            (Precondition::Version(v), v + 1)
        }
        // A guess when the name was deleted before: see `settle`.
        (Precondition::Absent, _) | (Precondition::None, None) => (Precondition::Absent, 1),
    }
}

impl Wallet {
    fn seal(&self, key: &Key, version: u64, plain: &[u8]) -> Result<SecretSlice<u8>, StoreError> {
        envelope::seal(&self.key, key.as_str(), version, plain)
            .map(Into::into)
            .map_err(|e| corrupted(key, &e))
    }

    /// The versions of `keys` now (`None`: absent), read without counting as an access.
    async fn current_versions(&self, keys: Vec<Key>) -> Result<Vec<Option<u64>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .backend
            .read_many(&keys)
            .await?
            .into_iter()
            .map(|r| r.map(|r| r.meta.version))
            .collect())
    }

    /// Seals and writes `items`, each under its precondition, in one backend batch per
    /// round; each item's result as [`CredentialStore::put`](auth_core::CredentialStore::put)
    /// would give it.
    pub(super) async fn put_sealed(
        &self,
        items: Vec<Item>,
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        let mut results: Vec<Option<Result<u64, StoreError>>> = vec![None; items.len()];
        let mut pending: Vec<usize> = (0..items.len()).collect();
        for _ in 0..PUT_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            let blind = pending
                .iter()
                .filter(|&&i| items[i].2 == Precondition::None)
                .map(|&i| items[i].0.clone())
                .collect();
            let mut currents = self.current_versions(blind).await?.into_iter();
            let mut batch = Vec::with_capacity(pending.len());
            let mut expected = Vec::with_capacity(pending.len());
            for &i in &pending {
                let (key, value, precondition) = &items[i];
                let current = match precondition {
                    Precondition::None => currents.next().flatten(),
                    _ => None,
                };
                let (cas, version) = plan(*precondition, current);
                batch.push((
                    key.clone(),
                    self.seal(key, version, value.expose_secret())?,
                    cas,
                ));
                expected.push(version);
            }
            let written = self.backend.put_many(batch).await?;
            let mut again = Vec::new();
            let mut settle = Vec::new();
            for ((&i, want), result) in pending.iter().zip(expected).zip(written) {
                match result {
                    Ok(v) if v == want => results[i] = Some(Ok(v)),
                    Ok(v) => settle.push((i, v)),
                    Err(StoreError::Conflict { .. }) if items[i].2 == Precondition::None => {
                        again.push(i);
                    }
                    Err(e) => results[i] = Some(Err(e)),
                }
            }
            self.settle(&items, settle, &mut results).await?;
            pending = again;
        }
        for i in pending {
            results[i] = Some(Err(StoreError::Unavailable(format!(
                "secret `{}` kept changing under concurrent writes ({PUT_ATTEMPTS} attempts); try again",
                items[i].0
            ))));
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Unavailable("not written".into()))))
            .collect())
    }

    /// Writes that created their record at version `v` but were sealed for another (the
    /// name had been deleted): sealed again for `v + 1` and written with compare-and-set
    /// on `v`. If another writer changed the record first, its value stands and this
    /// write counts as done at `v`.
    async fn settle(
        &self,
        items: &[Item],
        settle: Vec<(usize, u64)>,
        results: &mut [Option<Result<u64, StoreError>>],
    ) -> Result<(), StoreError> {
        if settle.is_empty() {
            return Ok(());
        }
        let batch = settle
            .iter()
            .map(|&(i, v)| {
                let (key, value, _) = &items[i];
                let sealed = self.seal(key, v + 1, value.expose_secret())?;
                Ok((key.clone(), sealed, Precondition::Version(v)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let written = self.backend.put_many(batch).await?;
        for (&(i, v), result) in settle.iter().zip(written) {
            results[i] = Some(match result {
                Err(StoreError::Conflict { .. }) => Ok(v),
                other => other,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use auth_core::{CredentialStore, MemoryStore};

    use super::*;
    use crate::MasterKey;

    fn wallet() -> Wallet {
        Wallet::new(
            Arc::new(MemoryStore::new()),
            MasterKey::generate().unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn key(name: &str) -> Key {
        Key::new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_name_deleted_and_created_again_opens_at_its_new_version() {
        let w = wallet();
        let k = key("user/carol");
        for _ in 0..3 {
            w.put(&k, b"old".to_vec().into(), Precondition::None)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(w.delete(&k, Precondition::None).await.unwrap_or(false));
        let again = w
            .put(&k, b"new".to_vec().into(), Precondition::Absent)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again > 3, "{again}");
        let record = w.get(&k).await.unwrap_or_else(|e| panic!("{e}"));
        let record = record.unwrap_or_else(|| panic!("missing"));
        assert_eq!(record.value_str(), Some("new"));
        assert_eq!(record.meta.version, again);
    }

    #[tokio::test]
    async fn a_blind_write_lands_at_the_next_version_and_batches_keep_their_results() {
        let w = wallet();
        let (a, b) = (key("a"), key("b"));
        w.put(&a, b"1".to_vec().into(), Precondition::None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let results = w
            .put_many(vec![
                (a.clone(), b"2".to_vec().into(), Precondition::None),
                (b.clone(), b"x".to_vec().into(), Precondition::Version(9)),
                (b.clone(), b"y".to_vec().into(), Precondition::Absent),
            ])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(results[0], Ok(2));
        assert_eq!(results[1], Err(StoreError::Conflict { current: None }));
        assert_eq!(results[2], Ok(1));
        let read = w.read_many(&[a, b]).await.unwrap_or_else(|e| panic!("{e}"));
        let values: Vec<Option<String>> = read
            .iter()
            .map(|r| r.as_ref().and_then(|r| r.value_str().map(str::to_owned)))
            .collect();
        assert_eq!(values, [Some("2".to_owned()), Some("y".to_owned())]);
    }
}
