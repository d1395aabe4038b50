//! API keys for service-to-service calls, checked against digests in a
//! [`CredentialStore`].
//!
//! A key is `<id>.<secret>`: the id is public and names the record `api-key/<id>`; the
//! secret is at least 32 characters of high-entropy text, so a SHA-256 digest (not a slow
//! password hash) is enough to keep the stored form useless to a thief.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::attempt::Attempt;
use crate::authenticator::Authenticator;
use crate::authz::Role;
use crate::credential::{Credential, CredentialKind};
use crate::error::CredentialError;
use crate::outcome::Outcome;
use crate::session::{Evidence, StandardSession};
use crate::store::{CredentialStore, Key, Precondition, StoreError};

/// The shortest secret part accepted when registering a key.
pub const MIN_SECRET_LEN: usize = 32;
/// The longest API key accepted from a client; longer input is malformed.
pub const MAX_KEY_LEN: usize = 512;

/// Stands in for the record of an unknown key id (no secret hashes to all zeros).
const DUMMY_RECORD: &[u8] = br#"{"principal":"","roles":[],"scopes":[],"sha256":"0000000000000000000000000000000000000000000000000000000000000000"}"#;

/// What a key grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyGrant {
    /// The user the key authenticates as (with an account stage, an account in the
    /// directory, whose state and roles then apply too).
    pub principal: String,
    /// Roles the key itself grants (on top of the account's).
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Granted scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    #[serde(flatten)]
    grant: ApiKeyGrant,
    sha256: String,
}

/// Why a key could not be registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The id is not usable in a store key or contains a `.`.
    #[error("invalid API key id: use letters, digits, - and _ only")]
    InvalidId,
    /// The secret is too short.
    #[error("the API key secret must be at least {MIN_SECRET_LEN} characters")]
    WeakSecret,
    /// The store refused the write.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Authenticates [`Credential::ApiKey`] against digests kept in a [`CredentialStore`].
#[derive(Debug)]
pub struct ApiKeyAuthenticator {
    store: Arc<dyn CredentialStore>,
}

fn record_key(id: &str) -> Option<Key> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    Key::new(format!("api-key/{id}")).ok()
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl ApiKeyAuthenticator {
    /// An authenticator over `store`.
    pub fn new(store: Arc<dyn CredentialStore>) -> Self {
        Self { store }
    }

    /// Stores (or replaces) key `id` with `secret`, granting `grant`. Returns the full key
    /// to hand to the client, `<id>.<secret>`.
    pub async fn register(
        store: &dyn CredentialStore,
        id: &str,
        secret: &SecretString,
        grant: ApiKeyGrant,
    ) -> Result<SecretString, RegisterError> {
        let key = record_key(id).ok_or(RegisterError::InvalidId)?;
        if secret.expose_secret().chars().count() < MIN_SECRET_LEN {
            return Err(RegisterError::WeakSecret);
        }
        let stored = StoredKey {
            grant,
            sha256: hex::encode(digest(secret.expose_secret())),
        };
        let bytes =
            serde_json::to_vec(&stored).map_err(|e| StoreError::Corrupted(e.to_string()))?;
        store.put(&key, bytes.into(), Precondition::None).await?;
        Ok(SecretString::from(format!(
            "{id}.{}",
            secret.expose_secret()
        )))
    }
}

/// One registered key, as [`ApiKeyAuthenticator::list`] shows it (never its digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// The public id.
    pub id: String,
    /// What the key grants.
    pub grant: ApiKeyGrant,
    /// When it was registered (or last replaced).
    pub updated: std::time::SystemTime,
}

impl ApiKeyAuthenticator {
    /// Every registered key, ordered by id (for the keys of one user, filter on
    /// `grant.principal`).
    pub async fn list(store: &dyn CredentialStore) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let metas = store.list("api-key/").await?;
        let keys: Vec<Key> = metas.iter().map(|m| m.key.clone()).collect();
        let records = store.read_many(&keys).await?;
        let mut out = Vec::with_capacity(keys.len());
        for (meta, record) in metas.into_iter().zip(records) {
            let Some(record) = record else { continue };
            let stored: StoredKey = serde_json::from_slice(record.value.expose_secret())
                .map_err(|e| StoreError::Corrupted(format!("{}: {e}", meta.key)))?;
            out.push(ApiKeyInfo {
                id: meta.key.as_str().trim_start_matches("api-key/").to_owned(),
                grant: stored.grant,
                updated: meta.updated,
            });
        }
        Ok(out)
    }

    /// Revokes the key `id`: it stops working at its next use. Returns whether it existed.
    pub async fn revoke(store: &dyn CredentialStore, id: &str) -> Result<bool, RegisterError> {
        let key = record_key(id).ok_or(RegisterError::InvalidId)?;
        Ok(store.delete(&key, Precondition::None).await?)
    }
}

#[async_trait]
impl Authenticator for ApiKeyAuthenticator {
    fn name(&self) -> &str {
        "api_key"
    }

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::ApiKey(presented) = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        let presented = presented.expose_secret();
        if presented.len() > MAX_KEY_LEN {
            return Outcome::rejected(CredentialError::Malformed, "API key longer than 512 bytes");
        }
        let Some((id, secret)) = presented.split_once('.') else {
            return Outcome::rejected(CredentialError::Malformed, "API key without an id part");
        };
        let Some(key) = record_key(id) else {
            return Outcome::rejected(
                CredentialError::Malformed,
                "API key id has invalid characters",
            );
        };
        let presented_digest = digest(secret);
        let record = match self.store.get(&key).await {
            Ok(r) => r,
            Err(e) => return Outcome::unavailable(format!("credential store: {e}")),
        };
        // An unknown id goes through the same parse, decode and compare as a known one,
        // against a dummy record, so both cost the same.
        let known = record.is_some();
        let bytes = record.map_or_else(
            || DUMMY_RECORD.to_vec(),
            |r| r.value.expose_secret().to_vec(),
        );
        let stored: StoredKey = match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(_) => return Outcome::unavailable(format!("API key record `{key}` is corrupted")),
        };
        let mut expected = [0u8; 32];
        if hex::decode_to_slice(&stored.sha256, &mut expected).is_err() {
            return Outcome::unavailable(format!("API key record `{key}` has a bad digest"));
        }
        let matches = bool::from(presented_digest.ct_eq(&expected));
        if !known {
            return Outcome::rejected(
                CredentialError::Invalid,
                format!("unknown API key id `{id}`"),
            );
        }
        if !matches {
            return Outcome::rejected(
                CredentialError::Invalid,
                format!("wrong secret for API key `{id}`"),
            );
        }
        let roles = stored.grant.roles;
        Outcome::Authenticated(
            StandardSession::new(stored.grant.principal, "api_key", attempt.now())
                .with_roles(roles)
                .with_scopes(stored.grant.scopes)
                .with_evidence(Evidence::ApiKey {
                    key_id: id.to_owned(),
                })
                .boxed(),
        )
    }
}
