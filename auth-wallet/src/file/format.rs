//! The wallet file's two formats, parsed and written; the v2 MACs computed and checked.
//!
//! v1: `auth-wallet-file v1 sha256=<hex>` and a newline, then JSON `{records, deleted}`;
//! the checksum (unkeyed) catches damage, not an edit.
//!
//! v2: `auth-wallet-file v2 key=<master key id> hmac-sha256=<hex>` and a newline, then
//! JSON `{wallet, manifest, deleted, records}`:
//!
//! - `wallet`: 16 random bytes naming this file, in every MAC, so records cannot be
//!   carried between two wallet files under the same master key;
//! - `manifest`: each record's name and the version the wallet wrote last; with `deleted`
//!   (the last versions of deleted names) it is what the header's HMAC covers;
//! - each record carries an HMAC over its name, version, times and value.
//!
//! So the header MAC proves which records exist at which version, and each record's own
//! MAC proves its contents: the difference between the two names the record that was put
//! back, removed, added or altered. Each MAC input is a fixed layout (lengths before
//! variable fields, a domain string first), never the JSON text, so the JSON may be
//! re-serialized freely.

use std::collections::BTreeMap;
use std::path::Path;

use auth_core::StoreError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::envelope::{self, Format};
use crate::key::FileMacKey;

const MAGIC_V1: &str = "auth-wallet-file v1 sha256=";
const MAGIC_V2: &str = "auth-wallet-file v2 key=";
const MAC_FIELD: &str = " hmac-sha256=";
const RECOVER: &str = "restore it from a backup (authctl import)";

/// The file's contents in memory, whichever format they were read from.
#[derive(Debug, Default)]
pub(super) struct Body {
    pub(super) records: BTreeMap<String, Stored>,
    /// Last versions of deleted keys, so versions are never reused.
    pub(super) deleted: BTreeMap<String, u64>,
    /// The v2 file's random name; given one at its first authenticated write.
    pub(super) wallet: Option<[u8; 16]>,
    pub(super) source: Source,
}

/// What a [`Body`] was read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Source {
    /// No file yet.
    #[default]
    Missing,
    /// The checksummed format.
    V1,
    /// The authenticated format.
    V2,
}

/// One record as stored (the v1 JSON shape; v2 adds a MAC).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Stored {
    pub(super) value: String,
    pub(super) created: u64,
    pub(super) updated: u64,
    pub(super) last_accessed: Option<u64>,
    pub(super) version: u64,
}

#[derive(Serialize, Deserialize)]
struct FileV1 {
    records: BTreeMap<String, Stored>,
    #[serde(default)]
    deleted: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct FileV1Out<'a> {
    records: &'a BTreeMap<String, Stored>,
    deleted: &'a BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV2 {
    wallet: String,
    manifest: BTreeMap<String, u64>,
    deleted: BTreeMap<String, u64>,
    records: BTreeMap<String, StoredV2>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredV2 {
    value: String,
    created: u64,
    updated: u64,
    last_accessed: Option<u64>,
    version: u64,
    mac: String,
}

#[derive(Serialize)]
struct FileV2Out<'a> {
    wallet: String,
    manifest: BTreeMap<&'a str, u64>,
    deleted: &'a BTreeMap<String, u64>,
    records: BTreeMap<&'a str, StoredV2Out<'a>>,
}

#[derive(Serialize)]
struct StoredV2Out<'a> {
    value: &'a str,
    created: u64,
    updated: u64,
    last_accessed: Option<u64>,
    version: u64,
    mac: String,
}

/// The MAC keys a store holds: it writes with `current`, and reads a file authenticated
/// under either (during a re-key, or after one was interrupted).
#[derive(Debug, Clone)]
pub(super) struct MacKeys {
    pub(super) current: FileMacKey,
    pub(super) previous: Option<FileMacKey>,
}

impl MacKeys {
    fn by_id(&self, id: &[u8]) -> Option<&FileMacKey> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|k| k.id() == id)
    }
}

/// Damage or an edit, with how to recover.
pub(super) fn corrupt(path: &Path, why: &str) -> StoreError {
    StoreError::Corrupted(format!(
        "wallet file {} {why}: it was modified outside the wallet or damaged; {RECOVER}",
        path.display()
    ))
}

fn tampered(path: &Path, problems: &[String]) -> StoreError {
    StoreError::Corrupted(format!(
        "wallet file {}: {}; it was modified outside the wallet: {RECOVER}",
        path.display(),
        problems.join("; ")
    ))
}

fn put_len(mac: &mut Hmac<Sha256>, len: usize) {
    mac.update(&u64::try_from(len).unwrap_or(u64::MAX).to_be_bytes());
}

fn put_bytes(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    put_len(mac, bytes.len());
    mac.update(bytes);
}

fn put_entries<'a>(
    mac: &mut Hmac<Sha256>,
    count: usize,
    entries: impl Iterator<Item = (&'a str, u64)>,
) {
    put_len(mac, count);
    for (name, version) in entries {
        put_bytes(mac, name.as_bytes());
        mac.update(&version.to_be_bytes());
    }
}

/// The header's MAC: which records exist at which version, and which names were deleted
/// at which version.
fn manifest_mac<'a>(
    key: &FileMacKey,
    wallet: &[u8; 16],
    manifest: (usize, impl Iterator<Item = (&'a str, u64)>),
    deleted: &BTreeMap<String, u64>,
) -> Hmac<Sha256> {
    let mut mac = key.hmac();
    mac.update(b"auth-wallet-file v2 manifest\0");
    mac.update(wallet);
    put_entries(&mut mac, manifest.0, manifest.1);
    put_entries(
        &mut mac,
        deleted.len(),
        deleted.iter().map(|(k, v)| (k.as_str(), *v)),
    );
    mac
}

/// One record's MAC, from a copy of a keyed HMAC (so the key is set up once per file).
fn record_mac(keyed: &Hmac<Sha256>, wallet: &[u8; 16], name: &str, s: &Stored) -> Hmac<Sha256> {
    let mut mac = keyed.clone();
    mac.update(b"auth-wallet-file v2 record\0");
    mac.update(wallet);
    put_bytes(&mut mac, name.as_bytes());
    mac.update(&s.version.to_be_bytes());
    mac.update(&s.created.to_be_bytes());
    mac.update(&s.updated.to_be_bytes());
    match s.last_accessed {
        None => mac.update(&[0]),
        Some(t) => {
            mac.update(&[1]);
            mac.update(&t.to_be_bytes());
        }
    }
    put_bytes(&mut mac, s.value.as_bytes());
    mac
}

/// Parses and verifies a file's text: the v1 checksum, or the v2 MACs with `keys`. A v2
/// file without keys is refused: only the key can tell whether it was tampered with.
pub(super) fn parse(text: &str, path: &Path, keys: Option<&MacKeys>) -> Result<Body, StoreError> {
    let (header, json) = text
        .split_once('\n')
        .ok_or_else(|| corrupt(path, "has no header"))?;
    if let Some(expected) = header.strip_prefix(MAGIC_V1) {
        let actual = hex::encode(Sha256::digest(json.as_bytes()));
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            actual.as_bytes(),
        )) {
            return Err(corrupt(path, "failed its checksum"));
        }
        let file: FileV1 =
            serde_json::from_str(json).map_err(|_| corrupt(path, "is not valid JSON"))?;
        if let Some(keys) = keys {
            refuse_versioned_values(&file.records, keys, path)?;
        }
        return Ok(Body {
            records: file.records,
            deleted: file.deleted,
            wallet: None,
            source: Source::V1,
        });
    }
    let Some(rest) = header.strip_prefix(MAGIC_V2) else {
        return Err(corrupt(path, "has an unknown header"));
    };
    let Some(keys) = keys else {
        return Err(StoreError::Unavailable(format!(
            "wallet file {} is authenticated with the master key (format v2), and this store was opened without it: open it with FileStore::with_mac_key(master_key.file_mac_key()) or Wallet::open_file",
            path.display()
        )));
    };
    let (key_id, tag) = rest
        .split_once(MAC_FIELD)
        .ok_or_else(|| corrupt(path, "has a damaged header"))?;
    let key_id = hex::decode(key_id).map_err(|_| corrupt(path, "has a damaged header"))?;
    let tag = hex::decode(tag).map_err(|_| corrupt(path, "has a damaged header"))?;
    let key = keys.by_id(&key_id).ok_or_else(|| {
        StoreError::Unavailable(format!(
            "wallet file {} is authenticated under master key {}, which is not loaded (this store has {}): open it with that key, or with it as the previous key if a re-key was interrupted",
            path.display(),
            hex::encode(&key_id),
            keys.current.fingerprint()
        ))
    })?;
    let file: FileV2 =
        serde_json::from_str(json).map_err(|_| corrupt(path, "is not valid JSON"))?;
    let wallet: [u8; 16] = hex::decode(&file.wallet)
        .ok()
        .and_then(|w| w.try_into().ok())
        .ok_or_else(|| corrupt(path, "has a damaged wallet id"))?;
    manifest_mac(
        key,
        &wallet,
        (
            file.manifest.len(),
            file.manifest.iter().map(|(k, v)| (k.as_str(), *v)),
        ),
        &file.deleted,
    )
    .verify_slice(&tag)
    .map_err(|_| {
        corrupt(
            path,
            &format!(
                "does not authenticate under master key {}: its list of records was edited",
                key.fingerprint()
            ),
        )
    })?;
    let keyed = key.hmac();
    let mut problems = Vec::new();
    for name in file.manifest.keys() {
        if !file.records.contains_key(name) {
            problems.push(format!("record `{name}` was removed"));
        }
    }
    let mut records = BTreeMap::new();
    for (name, r) in file.records {
        let stored = Stored {
            value: r.value,
            created: r.created,
            updated: r.updated,
            last_accessed: r.last_accessed,
            version: r.version,
        };
        let Some(&wrote) = file.manifest.get(&name) else {
            problems.push(match file.deleted.get(&name) {
                Some(at) => format!(
                    "record `{name}` was deleted by the wallet (at version {at}) and put back outside it"
                ),
                None => format!("record `{name}` was added outside the wallet"),
            });
            continue;
        };
        let authentic = hex::decode(&r.mac).is_ok_and(|tag| {
            record_mac(&keyed, &wallet, &name, &stored)
                .verify_slice(&tag)
                .is_ok()
        });
        if !authentic {
            problems.push(format!(
                "record `{name}` was altered or moved from another name"
            ));
        } else if stored.version < wrote {
            problems.push(format!(
                "record `{name}` was replaced by an older copy (version {}, the wallet wrote {wrote})",
                stored.version
            ));
        } else if stored.version > wrote {
            problems.push(format!(
                "record `{name}` is at version {}, newer than the {wrote} the file's list says: the list was put back from an older copy",
                stored.version
            ));
        }
        records.insert(name, stored);
    }
    if !problems.is_empty() {
        return Err(tampered(path, &problems));
    }
    Ok(Body {
        records,
        deleted: file.deleted,
        wallet: Some(wallet),
        source: Source::V2,
    })
}

/// A keyed store reading a v1 file: one holding a value only a versioned wallet seals
/// (envelope format 2 under a loaded key) was not written by the auth-wallet that wrote
/// v1 files for the store to migrate, but made from an authenticated wallet's records
/// with the MACs stripped: a downgrade, refused.
fn refuse_versioned_values(
    records: &BTreeMap<String, Stored>,
    keys: &MacKeys,
    path: &Path,
) -> Result<(), StoreError> {
    for (name, stored) in records {
        let Ok(value) = B64.decode(&stored.value) else {
            continue;
        };
        let versioned = matches!(envelope::format(&value), Ok(Format::Versioned { .. }));
        if versioned
            && envelope::key_id(&value)
                .ok()
                .is_some_and(|id| keys.by_id(&id).is_some())
        {
            return Err(StoreError::Corrupted(format!(
                "wallet file {} is in the unauthenticated v1 format but record `{name}` is sealed with its version, which a wallet that wrote v1 files did not do: it was made from an authenticated wallet's records (a downgrade), or written by a FileStore opened without the key; if the latter, export it with that store and import it here, else {RECOVER}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The file's text: v2 under `keys.current` (giving the file its random name at its first
/// authenticated write), or v1 without keys.
pub(super) fn render(body: &mut Body, keys: Option<&MacKeys>) -> Result<String, StoreError> {
    let Some(keys) = keys else {
        let json = serde_json::to_string(&FileV1Out {
            records: &body.records,
            deleted: &body.deleted,
        })
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        return Ok(format!(
            "{MAGIC_V1}{}\n{json}",
            hex::encode(Sha256::digest(json.as_bytes()))
        ));
    };
    let wallet = match body.wallet {
        Some(w) => w,
        None => {
            let mut w = [0u8; 16];
            getrandom::fill(&mut w)
                .map_err(|e| StoreError::Unavailable(format!("no randomness: {e}")))?;
            body.wallet = Some(w);
            w
        }
    };
    let key = &keys.current;
    let keyed = key.hmac();
    let records = body
        .records
        .iter()
        .map(|(name, s)| {
            let mac = hex::encode(record_mac(&keyed, &wallet, name, s).finalize().into_bytes());
            (
                name.as_str(),
                StoredV2Out {
                    value: &s.value,
                    created: s.created,
                    updated: s.updated,
                    last_accessed: s.last_accessed,
                    version: s.version,
                    mac,
                },
            )
        })
        .collect();
    let tag = manifest_mac(
        key,
        &wallet,
        (
            body.records.len(),
            body.records.iter().map(|(k, s)| (k.as_str(), s.version)),
        ),
        &body.deleted,
    )
    .finalize()
    .into_bytes();
    let json = serde_json::to_string(&FileV2Out {
        wallet: hex::encode(wallet),
        manifest: body
            .records
            .iter()
            .map(|(k, s)| (k.as_str(), s.version))
            .collect(),
        deleted: &body.deleted,
        records,
    })
    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok(format!(
        "{MAGIC_V2}{}{MAC_FIELD}{}\n{json}",
        key.fingerprint(),
        hex::encode(tag)
    ))
}
