//! Authenticated encryption of one secret: XChaCha20-Poly1305 with a fresh random nonce
//! per write, the master key's id in the clear so rekeying can tell old records from new,
//! and, as associated data, the record's name and the version the record has while it
//! holds this value.
//!
//! Two formats, told apart by the first byte:
//!
//! - `0x02`, the one written: `0x02 | key id (8) | version (8, big-endian) | nonce (24) |
//!   ciphertext and tag`. A value moved to another name fails to open; so does a value put
//!   back into its record at another version (an older password restored over a newer
//!   one), which is named as such ([`EnvelopeError::OtherVersion`]). The version is in
//!   the clear only to say which one it was; the associated data authenticates it.
//! - `0x01`, read only: `0x01 | key id (8) | nonce (24) | ciphertext and tag`, the name
//!   alone bound. [`crate::Wallet::migrate`] reseals these as `0x02`.
//!
//! What the associated data cannot see: a record put back whole, value and version
//! together, or removed. The file store's MAC sees those
//! ([`FileStore::with_mac_key`](crate::FileStore::with_mac_key)).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::key::MasterKey;

/// The first byte of an envelope sealed with its name only.
const UNVERSIONED: u8 = 1;
/// The first byte of an envelope sealed with its name and version.
const VERSIONED: u8 = 2;
const UNVERSIONED_HEADER: usize = 1 + 8 + 24;
const VERSIONED_HEADER: usize = 1 + 8 + 8 + 24;
const TAG: usize = 16;

/// Why an envelope could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Too short or an unknown format version.
    #[error("not a wallet envelope (damaged or written by something else)")]
    Format,
    /// Sealed under a key that is not loaded.
    #[error("sealed under master key {0}, which is not loaded")]
    UnknownKey(String),
    /// Authentication failed: tampered, damaged, or moved from another key name.
    #[error("authentication failed: the secret was modified, damaged or moved from another key")]
    Tampered,
    /// Authentic, but sealed for another version of the record.
    #[error(
        "sealed for version {sealed} of the record, which is at version {record}: an older value was put back, or the record's version was changed outside the wallet"
    )]
    OtherVersion {
        /// The version the value was sealed for.
        sealed: u64,
        /// The version the store says the record is at.
        record: u64,
    },
    /// No randomness for a nonce.
    #[error("no randomness for a nonce")]
    Random,
}

/// Which of the two formats an envelope is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// `0x01`: sealed with the record's name only (before the version was bound).
    Unversioned,
    /// `0x02`: sealed with the record's name and this version (as the header claims;
    /// only opening the envelope authenticates it).
    Versioned {
        /// The version in the header.
        version: u64,
    },
}

fn unversioned_aad(name: &str) -> Vec<u8> {
    [b"auth-wallet v1\0".as_slice(), name.as_bytes()].concat()
}

/// The version has a fixed width, so the name after it needs no length.
fn versioned_aad(name: &str, version: u64) -> Vec<u8> {
    [
        b"auth-wallet v2\0".as_slice(),
        &version.to_be_bytes(),
        name.as_bytes(),
    ]
    .concat()
}

/// Encrypts `plaintext` for record `name` at `version` (the version the record will have
/// once it holds this value) under `key`.
pub fn seal(
    key: &MasterKey,
    name: &str,
    version: u64,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|_| EnvelopeError::Random)?;
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let aad = versioned_aad(name, version);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| EnvelopeError::Format)?;
    let mut out = Vec::with_capacity(VERSIONED_HEADER + ciphertext.len());
    out.push(VERSIONED);
    out.extend_from_slice(&key.id());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// The format of an envelope, from its header.
pub fn format(envelope: &[u8]) -> Result<Format, EnvelopeError> {
    match envelope.first() {
        Some(&UNVERSIONED) if envelope.len() >= UNVERSIONED_HEADER + TAG => Ok(Format::Unversioned),
        Some(&VERSIONED) if envelope.len() >= VERSIONED_HEADER + TAG => {
            let mut version = [0u8; 8];
            version.copy_from_slice(&envelope[9..17]);
            Ok(Format::Versioned {
                version: u64::from_be_bytes(version),
            })
        }
        _ => Err(EnvelopeError::Format),
    }
}

/// The id of the key an envelope was sealed under.
pub fn key_id(envelope: &[u8]) -> Result<[u8; 8], EnvelopeError> {
    format(envelope)?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&envelope[1..9]);
    Ok(id)
}

/// Decrypts an envelope of record `name`, which the store says is at `version`, with
/// whichever of `keys` sealed it. An envelope in the unversioned format opens whatever the
/// version (the caller decides whether it still accepts that format).
pub fn open(
    keys: &[&MasterKey],
    name: &str,
    version: u64,
    envelope: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let format = format(envelope)?;
    let id = key_id(envelope)?;
    let key = keys
        .iter()
        .find(|k| k.id() == id)
        .ok_or_else(|| EnvelopeError::UnknownKey(hex::encode(id)))?;
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let (aad, header) = match format {
        Format::Unversioned => (unversioned_aad(name), UNVERSIONED_HEADER),
        Format::Versioned { version: sealed } => (versioned_aad(name, sealed), VERSIONED_HEADER),
    };
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(&envelope[header - 24..header]),
                Payload {
                    msg: &envelope[header..],
                    aad: &aad,
                },
            )
            .map_err(|_| EnvelopeError::Tampered)?,
    );
    // Opened first, so the version named in the error is the authentic one.
    match format {
        Format::Versioned { version: sealed } if sealed != version => {
            Err(EnvelopeError::OtherVersion {
                sealed,
                record: version,
            })
        }
        _ => Ok(plaintext.to_vec()),
    }
}

/// Seals the way auth-wallet did before versions were bound, for tests of reading and
/// migrating such envelopes.
#[cfg(test)]
pub(crate) fn seal_unversioned(
    key: &MasterKey,
    name: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|_| EnvelopeError::Random)?;
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &unversioned_aad(name),
            },
        )
        .map_err(|_| EnvelopeError::Format)?;
    Ok([&[UNVERSIONED][..], &key.id(), &nonce, &ciphertext].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_fresh_nonces_and_binding_to_the_name() {
        let k = MasterKey::generate().unwrap();
        let a = seal(&k, "pgwire-user-alice", 1, b"s3cret").unwrap();
        let b = seal(&k, "pgwire-user-alice", 1, b"s3cret").unwrap();
        assert_ne!(a, b, "a fresh nonce per write");
        assert_eq!(open(&[&k], "pgwire-user-alice", 1, &a).unwrap(), b"s3cret");
        assert_eq!(
            open(&[&k], "pgwire-user-bob", 1, &a),
            Err(EnvelopeError::Tampered)
        );
        assert!(!a.windows(6).any(|w| w == b"s3cret"));
    }

    #[test]
    fn a_value_put_back_at_another_version_is_named() {
        let k = MasterKey::generate().unwrap();
        let old = seal(&k, "user/alice", 3, b"old password").unwrap();
        assert_eq!(format(&old), Ok(Format::Versioned { version: 3 }));
        assert_eq!(
            open(&[&k], "user/alice", 5, &old),
            Err(EnvelopeError::OtherVersion {
                sealed: 3,
                record: 5
            })
        );
        // Rewriting the version in the header does not help: it is authenticated.
        let mut forged = old.clone();
        forged[9..17].copy_from_slice(&5u64.to_be_bytes());
        assert_eq!(
            open(&[&k], "user/alice", 5, &forged),
            Err(EnvelopeError::Tampered)
        );
    }

    #[test]
    fn the_unversioned_format_still_opens() {
        let k = MasterKey::generate().unwrap();
        let old = seal_unversioned(&k, "user/bob", b"v").unwrap();
        assert_eq!(format(&old), Ok(Format::Unversioned));
        assert_eq!(key_id(&old), Ok(k.id()));
        assert_eq!(open(&[&k], "user/bob", 7, &old).unwrap(), b"v");
        assert_eq!(
            open(&[&k], "user/carol", 7, &old),
            Err(EnvelopeError::Tampered)
        );
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let k = MasterKey::generate().unwrap();
        let sealed = seal(&k, "k", 4, b"value").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open(&[&k], "k", 4, &bad).is_err(), "byte {i}");
        }
        assert_eq!(
            open(&[&k], "k", 4, &sealed[..10]),
            Err(EnvelopeError::Format)
        );
    }

    #[test]
    fn the_right_key_is_chosen_and_a_missing_one_named() {
        let old = MasterKey::generate().unwrap();
        let new = MasterKey::generate().unwrap();
        let sealed = seal(&old, "k", 1, b"v").unwrap();
        assert_eq!(open(&[&new, &old], "k", 1, &sealed).unwrap(), b"v");
        assert_eq!(
            open(&[&new], "k", 1, &sealed),
            Err(EnvelopeError::UnknownKey(old.fingerprint()))
        );
    }
}
