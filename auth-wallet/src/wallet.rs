//! The wallet: every value sealed with the master key before it reaches the storage
//! backend, audited on every access, re-keyable without downtime, exportable.
//!
//! Each value is sealed for its record's name and for the version the record has while it
//! holds it (see [`crate::envelope`]): a write learns that version before it seals, by
//! compare-and-set on the version it read (`put.rs`), and a read opens the value with the
//! version the store reports. Values sealed before versions were bound are read until
//! [`Wallet::migrate`] reseals them, and refused after.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use auth_core::audit::{AuditEvent, AuditEventKind, AuditSink, TracingAuditSink};
use auth_core::clock::{SharedClock, system_clock};
use auth_core::store::RecordMeta;
use auth_core::{CredentialStore, Key, Precondition, Record, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::envelope::{self, EnvelopeError, Format};
use crate::file::FileStore;
use crate::key::MasterKey;

mod put;
mod reseal;

/// The default prefix of user secrets: `pgwire-user-<name>`.
pub const DEFAULT_USER_PREFIX: &str = "pgwire-user-";
/// The key of the OAuth client secret.
pub const OAUTH_CLIENT_SECRET_KEY: &str = "pgwire-oauth-client";

/// An encrypted secret store over any [`CredentialStore`] backend; itself a
/// [`CredentialStore`] that hands out plaintext only to its caller.
///
/// # Example
///
/// ```
/// use auth_core::{CredentialStore, Key, Precondition};
/// use auth_wallet::{MasterKey, Wallet};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// // In production the key comes from `MasterKey::from_env` or `MasterKey::from_file`.
/// // The file is authenticated as a whole with a key derived from it.
/// let wallet = Wallet::open_file(dir.path().join("wallet"), MasterKey::generate()?).await?;
///
/// let key = Key::new("pgwire-oauth-client")?;
/// wallet.put(&key, b"client-secret".to_vec().into(), Precondition::Absent).await?;
/// let record = wallet.get(&key).await?.ok_or("no such secret")?;
/// assert_eq!(record.value_str(), Some("client-secret"));
///
/// // The backend only ever holds the sealed value.
/// let sealed = wallet.backend().get(&key).await?.ok_or("no such record")?;
/// assert_ne!(sealed.value_str(), Some("client-secret"));
/// # Ok(())
/// # }
/// ```
pub struct Wallet {
    backend: Arc<dyn CredentialStore>,
    key: MasterKey,
    /// A key records may still be sealed under while a rekey runs (or was interrupted).
    previous: Option<MasterKey>,
    audit: Arc<dyn AuditSink>,
    clock: SharedClock,
    /// A record sealed under `key` that an unknown name opens instead, so that "no such
    /// user" costs what a user's record costs (see [`Wallet::get`]).
    stand_in: Option<Arc<Vec<u8>>>,
    /// The backend, when it is a file store this wallet keyed: re-keyed with the records.
    file: Option<FileStore>,
    /// [`Wallet::migrate`] resealed every record without its version: such a record is
    /// refused from now on.
    migrated: AtomicBool,
}

/// The name the stand-in record is sealed under: no [`Key`] can be it.
const STAND_IN_NAME: &str = "\0stand-in";
/// The stand-in's size: about a user record (a PHC hash and a SCRAM verifier in JSON).
const STAND_IN_LEN: usize = 512;

fn stand_in(key: &MasterKey) -> Option<Arc<Vec<u8>>> {
    envelope::seal(key, STAND_IN_NAME, 0, &[0u8; STAND_IN_LEN])
        .ok()
        .map(Arc::new)
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wallet")
            .field("backend", &self.backend)
            .field("key", &self.key)
            .field("previous", &self.previous)
            .finish()
    }
}

/// What a bulk operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Records handled.
    pub records: usize,
}

fn corrupted(key: &Key, e: &EnvelopeError) -> StoreError {
    StoreError::Corrupted(format!("secret `{key}`: {e}"))
}

#[derive(Serialize, Deserialize)]
struct Bundle {
    format: String,
    created: u64,
    records: Vec<BundleRecord>,
}

#[derive(Serialize, Deserialize)]
struct BundleRecord {
    key: String,
    value: String,
}

const BUNDLE_FORMAT: &str = "auth-wallet-bundle v1";

impl Wallet {
    /// A wallet sealing with `key` over `backend`. For a file, prefer
    /// [`Wallet::open_file`] or [`Wallet::over_file`], which authenticate the file as a
    /// whole and re-key it with the records.
    pub fn new(backend: Arc<dyn CredentialStore>, key: MasterKey) -> Self {
        Self {
            backend,
            stand_in: stand_in(&key),
            key,
            previous: None,
            audit: Arc::new(TracingAuditSink),
            clock: system_clock(),
            file: None,
            migrated: AtomicBool::new(false),
        }
    }

    /// A wallet over `store`, which it keys with a MAC key derived from `key`
    /// ([`FileStore::with_mac_key`]): the file is authenticated as a whole, and
    /// [`Wallet::rekey`] re-authenticates it. Nothing is read or migrated yet: see
    /// [`Wallet::migrate`], or [`Wallet::open_file`], which does both.
    pub fn over_file(store: FileStore, key: MasterKey) -> Self {
        let store = store.with_mac_key(key.file_mac_key());
        Self {
            file: Some(store.clone()),
            ..Self::new(Arc::new(store), key)
        }
    }

    /// The wallet in the file at `path` (created at its first write; its directory must
    /// exist), authenticated with a key derived from `key`, and migrated
    /// ([`Wallet::migrate`]): a v1 file is rewritten authenticated, and values sealed
    /// without their version are resealed, once. Refuses a file that was tampered with,
    /// naming the record (see [`FileStore`]).
    pub async fn open_file(path: impl Into<PathBuf>, key: MasterKey) -> Result<Self, StoreError> {
        let wallet = Self::over_file(FileStore::new(path), key);
        wallet.migrate().await?;
        Ok(wallet)
    }

    /// Also opens records sealed under `previous` (during or after an interrupted rekey),
    /// and, over a file, reads a file authenticated under it.
    #[must_use]
    pub fn with_previous_key(mut self, previous: MasterKey) -> Self {
        if let Some(file) = &self.file {
            file.set_previous_mac_key(previous.file_mac_key());
        }
        self.previous = Some(previous);
        self
    }

    /// Sends access events to `audit`.
    #[must_use]
    pub fn with_audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = audit;
        self
    }

    /// Reads audit timestamps from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn CredentialStore> {
        &self.backend
    }

    fn keys(&self) -> Vec<&MasterKey> {
        std::iter::once(&self.key)
            .chain(self.previous.as_ref())
            .collect()
    }

    fn audit(&self, op: &'static str, key: &str, started: Instant, outcome: &'static str) {
        metrics::counter!(
            crate::OPERATIONS_METRIC,
            "operation" => op,
            "result" => outcome
        )
        .increment(1);
        if !self.audit.enabled() {
            return;
        }
        let detail = format!("{op} {key}");
        self.audit.record(
            &AuditEvent::local(
                AuditEventKind::SecretAccess,
                self.clock.now(),
                "wallet",
                outcome,
            )
            .with_duration(started.elapsed())
            .with_failure(None, Some(&detail)),
        );
    }

    /// Opens a record's value, sealed for its name and the version the store reports; one
    /// sealed without its version only while `unversioned` is accepted.
    fn open_value(
        &self,
        keyring: &[&MasterKey],
        key: &Key,
        record: &Record,
        unversioned: bool,
    ) -> Result<Vec<u8>, StoreError> {
        let sealed = record.value.expose_secret();
        if !unversioned && envelope::format(sealed) == Ok(Format::Unversioned) {
            return Err(StoreError::Corrupted(format!(
                "secret `{key}` is sealed without its version, after this wallet resealed every such record (Wallet::migrate): it was put back from before the migration, or written by an older auth-wallet; if an older instance wrote it, upgrade that one and restart this one, else restore it from a backup (authctl import)"
            )));
        }
        envelope::open(keyring, key.as_str(), record.meta.version, sealed)
            .map_err(|e| corrupted(key, &e))
    }

    /// Whether values sealed without their version are still read.
    fn reads_unversioned(&self) -> bool {
        !self.migrated.load(Ordering::Acquire)
    }

    fn bundle_cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.bytes().into())
    }

    /// Every secret under `prefix`, decrypted and sealed again as one bundle under the
    /// master key (authenticated as a whole), for backups.
    pub async fn export(&self, prefix: &str) -> Result<Vec<u8>, StoreError> {
        let mut records = Vec::new();
        for meta in self.backend.list(prefix).await? {
            if let Some(record) = self.get(&meta.key).await? {
                records.push(BundleRecord {
                    key: meta.key.as_str().to_owned(),
                    value: B64.encode(record.value.expose_secret()),
                });
            }
        }
        let bundle = Bundle {
            format: BUNDLE_FORMAT.to_owned(),
            created: self
                .clock
                .now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            records,
        };
        let json = Zeroizing::new(
            serde_json::to_vec(&bundle).map_err(|e| StoreError::Unavailable(e.to_string()))?,
        );
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let sealed = self
            .bundle_cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &json,
                    aad: BUNDLE_FORMAT.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Unavailable("bundle encryption failed".into()))?;
        Ok([BUNDLE_FORMAT.as_bytes(), b"\n", &nonce, &sealed].concat())
    }

    /// Restores a bundle made by [`Wallet::export`] with the same master key: each
    /// secret is written (replacing what is there). A bundle that does not authenticate
    /// is refused before anything is written.
    pub async fn import(&self, bundle: &[u8]) -> Result<Counts, StoreError> {
        let refuse = || {
            StoreError::Corrupted(
                "the bundle does not authenticate: it was made with another master key, or modified".into(),
            )
        };
        let rest = bundle
            .strip_prefix(BUNDLE_FORMAT.as_bytes())
            .and_then(|r| r.strip_prefix(b"\n"))
            .filter(|r| r.len() > 24)
            .ok_or_else(refuse)?;
        let (nonce, sealed) = rest.split_at(24);
        let json = Zeroizing::new(
            self.bundle_cipher()
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: BUNDLE_FORMAT.as_bytes(),
                    },
                )
                .map_err(|_| refuse())?,
        );
        let bundle: Bundle = serde_json::from_slice(&json).map_err(|_| refuse())?;
        let mut counts = Counts::default();
        for r in &bundle.records {
            let key = Key::new(r.key.clone()).map_err(StoreError::InvalidKey)?;
            let value = Zeroizing::new(B64.decode(&r.value).map_err(|_| refuse())?);
            self.put(&key, value.to_vec().into(), Precondition::None)
                .await?;
            counts.records += 1;
        }
        Ok(counts)
    }
}

#[async_trait]
impl CredentialStore for Wallet {
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        let started = Instant::now();
        let Some(record) = self.backend.get(key).await? else {
            // Equal cost: open a record of a user's size all the same, so the time to
            // answer does not tell whether the name exists.
            if let Some(stand_in) = &self.stand_in {
                let _ = envelope::open(&self.keys(), STAND_IN_NAME, 0, stand_in);
            }
            self.audit("read", key.as_str(), started, "not_found");
            return Ok(None);
        };
        let plain = self
            .open_value(&self.keys(), key, &record, self.reads_unversioned())
            .inspect_err(|_| self.audit("read", key.as_str(), started, "corrupted"))?;
        self.audit("read", key.as_str(), started, "success");
        Ok(Some(Record {
            value: plain.into(),
            meta: record.meta,
        }))
    }

    async fn put(
        &self,
        key: &Key,
        value: SecretSlice<u8>,
        precondition: Precondition,
    ) -> Result<u64, StoreError> {
        let started = Instant::now();
        let result = self
            .put_sealed(vec![(key.clone(), value, precondition)])
            .await
            .and_then(|mut results| {
                results.pop().unwrap_or_else(|| {
                    Err(StoreError::Unavailable("the write returned nothing".into()))
                })
            });
        self.audit(
            "write",
            key.as_str(),
            started,
            if result.is_ok() { "success" } else { "failed" },
        );
        result
    }

    async fn delete(&self, key: &Key, precondition: Precondition) -> Result<bool, StoreError> {
        let started = Instant::now();
        let result = self.backend.delete(key, precondition).await;
        self.audit(
            "delete",
            key.as_str(),
            started,
            if result.is_ok() { "success" } else { "failed" },
        );
        result
    }

    async fn list(&self, prefix: &str) -> Result<Vec<RecordMeta>, StoreError> {
        self.backend.list(prefix).await
    }

    async fn read_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>, StoreError> {
        let started = Instant::now();
        let records = self.backend.read_many(keys).await?;
        let keyring = self.keys();
        let unversioned = self.reads_unversioned();
        let opened = keys
            .iter()
            .zip(records)
            .map(|(key, record)| {
                record
                    .map(|r| {
                        let plain = self.open_value(&keyring, key, &r, unversioned)?;
                        Ok(Record {
                            value: plain.into(),
                            meta: r.meta,
                        })
                    })
                    .transpose()
            })
            .collect();
        self.audit(
            "read_many",
            &format!("{} keys", keys.len()),
            started,
            "success",
        );
        opened
    }

    async fn put_many(
        &self,
        items: Vec<(Key, SecretSlice<u8>, Precondition)>,
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        let started = Instant::now();
        let count = items.len();
        let results = self.put_sealed(items).await;
        self.audit(
            "write_many",
            &format!("{count} keys"),
            started,
            if results.is_ok() { "success" } else { "failed" },
        );
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unknown_name_opens_the_stand_in_under_the_current_key() {
        let key = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let wallet = Wallet::new(Arc::new(auth_core::MemoryStore::new()), key.clone());
        let stand_in = wallet.stand_in.clone().unwrap_or_default();
        assert!(envelope::open(&wallet.keys(), STAND_IN_NAME, 0, &stand_in).is_ok());
        let (rekeyed, _) = wallet
            .rekey(MasterKey::generate().unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let stand_in = rekeyed.stand_in.clone().unwrap_or_default();
        assert!(
            envelope::open(&rekeyed.keys(), STAND_IN_NAME, 0, &stand_in).is_ok(),
            "after a rekey the stand-in is sealed under the new key"
        );
        let missing = Key::new("user/nobody").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            rekeyed
                .get(&missing)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none()
        );
    }
}
