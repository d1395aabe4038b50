//! Sealing every record again: under a new master key ([`Wallet::rekey`]), or with its
//! version bound ([`Wallet::migrate`]). One batch at a time with compare-and-set, while
//! readers keep working.

use std::sync::atomic::Ordering;

use auth_core::{Key, Precondition, StoreError};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::{Counts, Wallet, corrupted, stand_in};
use crate::envelope::{self, EnvelopeError, Format};
use crate::key::MasterKey;

/// Records re-sealed per batch.
const RESEAL_BATCH: usize = 1000;

impl Wallet {
    /// Re-encrypts every record sealed under another key with `new_key`, one record at a
    /// time with compare-and-set, while readers keep working: records are readable under
    /// either key throughout. Returns the wallet now using only `new_key`. Over a file
    /// ([`Wallet::over_file`]) the file is authenticated under `new_key` as well.
    pub async fn rekey(self, new_key: MasterKey) -> Result<(Self, Counts), StoreError> {
        let old = self.key.clone();
        let wallet = Wallet {
            previous: Some(old),
            stand_in: stand_in(&new_key),
            key: new_key,
            ..self
        };
        if let Some(file) = &wallet.file {
            file.rotate_mac_key(wallet.key.file_mac_key());
        }
        let new_id = wallet.key.id();
        let unversioned = wallet.reads_unversioned();
        let counts = wallet
            .reseal_where(unversioned, |sealed| {
                Ok(envelope::key_id(sealed)? != new_id
                    || envelope::format(sealed)? == Format::Unversioned)
            })
            .await?;
        if let Some(file) = &wallet.file {
            // Even when no record needed it: the file's MAC is the old key's until now.
            file.reauthenticate().await?;
            file.forget_previous_mac_key();
        }
        Ok((
            Wallet {
                previous: None,
                ..wallet
            },
            counts,
        ))
    }

    /// Brings the wallet up to date, once (run again, it finds nothing to do): over a
    /// file ([`Wallet::over_file`]) a v1 file is checked and rewritten authenticated
    /// ([`FileStore::migrate`](crate::FileStore::migrate)); then every record sealed
    /// without its version is sealed again with it. Returns how many records it resealed.
    ///
    /// From then on this wallet refuses a value sealed without its version, which only a
    /// copy from before the migration (or an older auth-wallet) can hold. That is what
    /// stops such a value being put back on PostgreSQL, where no file MAC is. Two limits:
    /// the refusal lives in this process (a later `migrate`, at the next start, reseals
    /// whatever unversioned value it finds, as it cannot tell an older instance's write
    /// from one put back), and during a rolling upgrade a record an older instance writes
    /// is refused here until then.
    pub async fn migrate(&self) -> Result<Counts, StoreError> {
        if let Some(file) = &self.file {
            file.migrate().await?;
        }
        let counts = self
            .reseal_where(true, |sealed| {
                Ok(envelope::format(sealed)? == Format::Unversioned)
            })
            .await?;
        self.migrated.store(true, Ordering::Release);
        Ok(counts)
    }

    /// Seals again, under the current key and for the version after the record's, every
    /// record whose sealed value `needs` it; reads unversioned values only when
    /// `unversioned`. A record changed by a concurrent writer is read and sealed again.
    async fn reseal_where(
        &self,
        unversioned: bool,
        needs: impl Fn(&[u8]) -> Result<bool, EnvelopeError>,
    ) -> Result<Counts, StoreError> {
        let mut counts = Counts::default();
        let all: Vec<Key> = self
            .backend
            .list("")
            .await?
            .into_iter()
            .map(|m| m.key)
            .collect();
        let keyring = self.keys();
        for chunk in all.chunks(RESEAL_BATCH) {
            let mut pending: Vec<Key> = chunk.to_vec();
            while !pending.is_empty() {
                let records = self.backend.read_many(&pending).await?;
                let mut batch = Vec::new();
                for (key, record) in pending.iter().zip(records) {
                    let Some(record) = record else { continue };
                    if !needs(record.value.expose_secret()).map_err(|e| corrupted(key, &e))? {
                        continue;
                    }
                    let plain =
                        Zeroizing::new(self.open_value(&keyring, key, &record, unversioned)?);
                    let version = record.meta.version;
                    let resealed = envelope::seal(&self.key, key.as_str(), version + 1, &plain)
                        .map_err(|e| corrupted(key, &e))?;
                    batch.push((key.clone(), resealed.into(), Precondition::Version(version)));
                }
                let keys: Vec<Key> = batch.iter().map(|(k, _, _)| k.clone()).collect();
                let results = self.backend.put_many(batch).await?;
                pending = Vec::new();
                for (key, result) in keys.into_iter().zip(results) {
                    match result {
                        Ok(_) => counts.records += 1,
                        Err(StoreError::Conflict { .. }) => pending.push(key),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use auth_core::{CredentialStore, MemoryStore};

    use super::*;

    fn unwrap<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn unversioned_values_are_read_resealed_once_then_refused() {
        let store = Arc::new(MemoryStore::new());
        let master = unwrap(MasterKey::generate());
        let wallet = Wallet::new(store.clone(), master.clone());
        let k = unwrap(Key::new("user/bob"));
        let old = unwrap(envelope::seal_unversioned(&master, "user/bob", b"disabled"));
        unwrap(
            store
                .put(&k, old.clone().into(), Precondition::Absent)
                .await,
        );
        let read = unwrap(wallet.get(&k).await).unwrap_or_else(|| panic!("missing"));
        assert_eq!(read.value_str(), Some("disabled"), "read before migrating");

        assert_eq!(unwrap(wallet.migrate().await).records, 1);
        assert_eq!(unwrap(wallet.migrate().await).records, 0, "once");
        let stored = unwrap(store.get(&k).await).unwrap_or_else(|| panic!("missing"));
        assert_eq!(
            envelope::format(stored.value.expose_secret()),
            Ok(Format::Versioned { version: 2 })
        );
        let read = unwrap(wallet.get(&k).await).unwrap_or_else(|| panic!("missing"));
        assert_eq!(read.value_str(), Some("disabled"));

        // The value from before the migration, put back.
        unwrap(store.put(&k, old.into(), Precondition::None).await);
        let err = wallet.get(&k).await.err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.contains("`user/bob` is sealed without its version"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_value_put_back_or_swapped_in_the_store_does_not_open() {
        let store = Arc::new(MemoryStore::new());
        let wallet = Wallet::new(store.clone(), unwrap(MasterKey::generate()));
        let (alice, bob) = (unwrap(Key::new("user/alice")), unwrap(Key::new("user/bob")));
        unwrap(
            wallet
                .put(&alice, b"old".to_vec().into(), Precondition::None)
                .await,
        );
        unwrap(
            wallet
                .put(&bob, b"bob".to_vec().into(), Precondition::None)
                .await,
        );
        let old = unwrap(store.get(&alice).await).unwrap_or_else(|| panic!("missing"));
        unwrap(
            wallet
                .put(&alice, b"new".to_vec().into(), Precondition::None)
                .await,
        );

        // The older value, put back without its version (the store moves to 3).
        let value = old.value.expose_secret().to_vec();
        unwrap(store.put(&alice, value.into(), Precondition::None).await);
        let err = wallet.get(&alice).await.err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.contains("`user/alice`")
                && err.contains("sealed for version 1 of the record, which is at version 3"),
            "{err}"
        );

        // Bob's value moved to alice at the version it was sealed for.
        let bobs = unwrap(store.get(&bob).await).unwrap_or_else(|| panic!("missing"));
        unwrap(store.delete(&alice, Precondition::None).await);
        let value = bobs.value.expose_secret().to_vec();
        let moved = unwrap(store.put(&alice, value.into(), Precondition::None).await);
        assert_eq!(moved, 4);
        let err = wallet.get(&alice).await.err().map(|e| e.to_string());
        assert!(
            err.unwrap_or_default().contains("authentication failed"),
            "moved between names"
        );
    }
}
