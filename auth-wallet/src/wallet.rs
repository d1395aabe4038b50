//! The wallet: every value sealed with the master key before it reaches the storage
//! backend, audited on every access, re-keyable without downtime, exportable.

use std::fmt;
use std::sync::Arc;
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

use crate::envelope::{self, EnvelopeError};
use crate::key::MasterKey;

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
/// use std::sync::Arc;
/// use auth_core::{CredentialStore, Key, Precondition};
/// use auth_wallet::{FileStore, MasterKey, Wallet};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let backend = Arc::new(FileStore::new(dir.path().join("wallet")));
/// // In production the key comes from `MasterKey::from_env` or `MasterKey::from_file`.
/// let wallet = Wallet::new(backend, MasterKey::generate()?);
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
}

/// The name the stand-in record is sealed under: no [`Key`] can be it.
const STAND_IN_NAME: &str = "\0stand-in";
/// The stand-in's size: about a user record (a PHC hash and a SCRAM verifier in JSON).
const STAND_IN_LEN: usize = 512;

fn stand_in(key: &MasterKey) -> Option<Arc<Vec<u8>>> {
    envelope::seal(key, STAND_IN_NAME, &[0u8; STAND_IN_LEN])
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

/// Records re-sealed per batch while re-keying.
const REKEY_BATCH: usize = 1000;

impl Wallet {
    /// A wallet sealing with `key` over `backend`.
    pub fn new(backend: Arc<dyn CredentialStore>, key: MasterKey) -> Self {
        Self {
            backend,
            stand_in: stand_in(&key),
            key,
            previous: None,
            audit: Arc::new(TracingAuditSink),
            clock: system_clock(),
        }
    }

    /// Also opens records sealed under `previous` (during or after an interrupted rekey).
    #[must_use]
    pub fn with_previous_key(mut self, previous: MasterKey) -> Self {
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

    fn audit(&self, op: &str, key: &str, started: Instant, outcome: &str) {
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

    /// Re-encrypts every record sealed under another key with `new_key`, one record at a
    /// time with compare-and-set, while readers keep working: records are readable under
    /// either key throughout. Returns the wallet now using only `new_key`.
    pub async fn rekey(self, new_key: MasterKey) -> Result<(Self, Counts), StoreError> {
        let old = self.key.clone();
        let wallet = Wallet {
            previous: Some(old),
            stand_in: stand_in(&new_key),
            key: new_key,
            ..self
        };
        let mut counts = Counts::default();
        let all: Vec<Key> = wallet
            .backend
            .list("")
            .await?
            .into_iter()
            .map(|m| m.key)
            .collect();
        for chunk in all.chunks(REKEY_BATCH) {
            let mut pending: Vec<Key> = chunk.to_vec();
            // Records changed by a concurrent writer are read and re-sealed again.
            while !pending.is_empty() {
                let records = wallet.backend.read_many(&pending).await?;
                let mut batch = Vec::new();
                for (key, record) in pending.iter().zip(records) {
                    let Some(record) = record else { continue };
                    let sealed = record.value.expose_secret();
                    if envelope::key_id(sealed).map_err(|e| corrupted(key, &e))? == wallet.key.id()
                    {
                        continue;
                    }
                    let plain = Zeroizing::new(
                        envelope::open(&wallet.keys(), key.as_str(), sealed)
                            .map_err(|e| corrupted(key, &e))?,
                    );
                    let resealed = envelope::seal(&wallet.key, key.as_str(), &plain)
                        .map_err(|e| corrupted(key, &e))?;
                    batch.push((
                        key.clone(),
                        resealed.into(),
                        Precondition::Version(record.meta.version),
                    ));
                }
                let keys: Vec<Key> = batch.iter().map(|(k, _, _)| k.clone()).collect();
                let results = wallet.backend.put_many(batch).await?;
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
        Ok((
            Wallet {
                previous: None,
                ..wallet
            },
            counts,
        ))
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
                let _ = envelope::open(&self.keys(), STAND_IN_NAME, stand_in);
            }
            self.audit("read", key.as_str(), started, "not_found");
            return Ok(None);
        };
        let plain = envelope::open(&self.keys(), key.as_str(), record.value.expose_secret())
            .map_err(|e| {
                self.audit("read", key.as_str(), started, "corrupted");
                corrupted(key, &e)
            })?;
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
        let sealed = envelope::seal(&self.key, key.as_str(), value.expose_secret())
            .map_err(|e| corrupted(key, &e))?;
        let result = self.backend.put(key, sealed.into(), precondition).await;
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
        let opened = keys
            .iter()
            .zip(records)
            .map(|(key, record)| {
                record
                    .map(|r| {
                        let plain = envelope::open(&keyring, key.as_str(), r.value.expose_secret())
                            .map_err(|e| corrupted(key, &e))?;
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
        let sealed = items
            .into_iter()
            .map(|(key, value, p)| {
                let sealed = envelope::seal(&self.key, key.as_str(), value.expose_secret())
                    .map_err(|e| corrupted(&key, &e))?;
                Ok((key, sealed.into(), p))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let results = self.backend.put_many(sealed).await;
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
        assert!(envelope::open(&wallet.keys(), STAND_IN_NAME, &stand_in).is_ok());
        let (rekeyed, _) = wallet
            .rekey(MasterKey::generate().unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let stand_in = rekeyed.stand_in.clone().unwrap_or_default();
        assert!(
            envelope::open(&rekeyed.keys(), STAND_IN_NAME, &stand_in).is_ok(),
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
