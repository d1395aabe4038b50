//! One read of a user's record per attempt: the method and the account stage ask for the
//! same record within the same attempt, and the second asks the first's answer instead of
//! the store (no second read, decryption or parse). The memory lasts for one call of
//! [`crate::Engine::decide`] and is forgotten at any write of the record.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use super::record::UserRecord;
use crate::store::CredentialStore;

/// What one read found: the store it asked (by address), the key, the answer.
struct Read {
    store: usize,
    key: String,
    found: Option<(UserRecord, u64)>,
}

/// How many records an attempt remembers: a login reads one, a mapped identity two.
const REMEMBERED: usize = 4;

tokio::task_local! {
    static READS: RefCell<Vec<Read>>;
}

/// Runs `attempt` with a memory of the user records it reads.
pub(crate) async fn attempt_scope<F: Future>(attempt: F) -> F::Output {
    READS.scope(RefCell::new(Vec::new()), attempt).await
}

/// The store's address, which tells one store from another while both live.
pub(super) fn store_id(store: &Arc<dyn CredentialStore>) -> usize {
    Arc::as_ptr(store).cast::<()>() as usize
}

/// What this attempt already read of `key` in `store`, if it did.
pub(super) fn recall(store: usize, key: &str) -> Option<Option<(UserRecord, u64)>> {
    READS
        .try_with(|reads| {
            reads
                .borrow()
                .iter()
                .find(|r| r.store == store && r.key == key)
                .map(|r| r.found.clone())
        })
        .ok()
        .flatten()
}

/// Remembers what a read of `key` found, within an attempt (outside one, nothing).
pub(super) fn remember(store: usize, key: &str, found: &Option<(UserRecord, u64)>) {
    let _ = READS.try_with(|reads| {
        let mut reads = reads.borrow_mut();
        reads.retain(|r| !(r.store == store && r.key == key));
        if reads.len() < REMEMBERED {
            reads.push(Read {
                store,
                key: key.to_owned(),
                found: found.clone(),
            });
        }
    });
}

/// Forgets `key` (it is being written).
pub(super) fn forget(store: usize, key: &str) {
    let _ = READS.try_with(|reads| {
        reads
            .borrow_mut()
            .retain(|r| !(r.store == store && r.key == key));
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use secrecy::SecretSlice;

    use super::*;
    use crate::account::Directory;
    use crate::store::{Key, MemoryStore, Precondition, Record, RecordMeta, StoreError};

    /// A store that counts its reads.
    #[derive(Debug, Default)]
    struct Counting {
        inner: MemoryStore,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl CredentialStore for Counting {
        async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.inner.get(key).await
        }
        async fn put(
            &self,
            key: &Key,
            value: SecretSlice<u8>,
            precondition: Precondition,
        ) -> Result<u64, StoreError> {
            self.inner.put(key, value, precondition).await
        }
        async fn delete(&self, key: &Key, precondition: Precondition) -> Result<bool, StoreError> {
            self.inner.delete(key, precondition).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<RecordMeta>, StoreError> {
            self.inner.list(prefix).await
        }
    }

    #[tokio::test]
    async fn an_attempt_reads_a_record_once_and_a_write_is_read_afresh() {
        let store = Arc::new(Counting::default());
        let shared: Arc<dyn CredentialStore> = store.clone();
        // Two directories over one store, as the method and the account stage hold.
        let (method, account) = (Directory::new(shared.clone()), Directory::new(shared));
        method
            .update("alice", |_| {})
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let reads = || store.reads.load(Ordering::Relaxed);
        let before = reads();
        attempt_scope(async {
            assert!(method.get("alice").await.ok().flatten().is_some());
            assert!(account.get("alice").await.ok().flatten().is_some());
            assert!(account.get("nobody").await.ok().flatten().is_none());
            assert!(method.get("nobody").await.ok().flatten().is_none());
        })
        .await;
        assert_eq!(reads() - before, 2, "one read per record per attempt");

        let before = reads();
        attempt_scope(async {
            let first = account.get("alice").await.ok().flatten().map(|(_, v)| v);
            method
                .update("alice", |r| r.system = true)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let (record, version) = account
                .get("alice")
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("alice"));
            assert!(record.system, "a write within the attempt is read afresh");
            assert_ne!(Some(version), first);
        })
        .await;
        assert!(reads() - before >= 2);

        let before = reads();
        let _ = account.get("alice").await;
        let _ = account.get("alice").await;
        assert_eq!(
            reads() - before,
            2,
            "outside an attempt every read asks the store"
        );
    }
}
