//! Authenticated encryption of one secret: XChaCha20-Poly1305 with a fresh random nonce
//! per write, the record's key name bound as associated data (a record moved to another
//! key fails to decrypt), and the master key's id in the clear so rekeying can tell old
//! records from new.
//!
//! Layout: `0x01 | key id (8) | nonce (24) | ciphertext and tag`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::key::MasterKey;

const VERSION: u8 = 1;
const HEADER: usize = 1 + 8 + 24;

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
    /// No randomness for a nonce.
    #[error("no randomness for a nonce")]
    Random,
}

fn aad(name: &str) -> Vec<u8> {
    [b"auth-wallet v1\0".as_slice(), name.as_bytes()].concat()
}

/// Encrypts `plaintext` for record `name` under `key`.
pub fn seal(key: &MasterKey, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|_| EnvelopeError::Random)?;
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let aad = aad(name);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| EnvelopeError::Format)?;
    let mut out = Vec::with_capacity(HEADER + ciphertext.len());
    out.push(VERSION);
    out.extend_from_slice(&key.id());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// The id of the key an envelope was sealed under.
pub fn key_id(envelope: &[u8]) -> Result<[u8; 8], EnvelopeError> {
    if envelope.len() < HEADER + 16 || envelope[0] != VERSION {
        return Err(EnvelopeError::Format);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&envelope[1..9]);
    Ok(id)
}

/// Decrypts an envelope of record `name` with whichever of `keys` sealed it.
pub fn open(keys: &[&MasterKey], name: &str, envelope: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let id = key_id(envelope)?;
    let key = keys
        .iter()
        .find(|k| k.id() == id)
        .ok_or_else(|| EnvelopeError::UnknownKey(hex::encode(id)))?;
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let aad = aad(name);
    cipher
        .decrypt(
            XNonce::from_slice(&envelope[9..HEADER]),
            Payload {
                msg: &envelope[HEADER..],
                aad: &aad,
            },
        )
        .map_err(|_| EnvelopeError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_fresh_nonces_and_binding_to_the_name() {
        let k = MasterKey::generate().unwrap();
        let a = seal(&k, "pgwire-user-alice", b"s3cret").unwrap();
        let b = seal(&k, "pgwire-user-alice", b"s3cret").unwrap();
        assert_ne!(a, b, "a fresh nonce per write");
        assert_eq!(open(&[&k], "pgwire-user-alice", &a).unwrap(), b"s3cret");
        assert_eq!(
            open(&[&k], "pgwire-user-bob", &a),
            Err(EnvelopeError::Tampered)
        );
        assert!(!a.windows(6).any(|w| w == b"s3cret"));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let k = MasterKey::generate().unwrap();
        let sealed = seal(&k, "k", b"value").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open(&[&k], "k", &bad).is_err(), "byte {i}");
        }
        assert_eq!(open(&[&k], "k", &sealed[..10]), Err(EnvelopeError::Format));
    }

    #[test]
    fn the_right_key_is_chosen_and_a_missing_one_named() {
        let old = MasterKey::generate().unwrap();
        let new = MasterKey::generate().unwrap();
        let sealed = seal(&old, "k", b"v").unwrap();
        assert_eq!(open(&[&new, &old], "k", &sealed).unwrap(), b"v");
        assert_eq!(
            open(&[&new], "k", &sealed),
            Err(EnvelopeError::UnknownKey(old.fingerprint()))
        );
    }
}
