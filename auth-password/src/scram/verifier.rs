//! SCRAM-SHA-256 stored keys in PostgreSQL's format:
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64), as found in
//! `pg_authid.rolpassword`, so verifiers can be imported from an existing PostgreSQL.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::ScramError;
use crate::hash::HashError;

/// The lowest iteration count accepted in a stored verifier.
pub const MIN_ITERATIONS: u32 = 4096;
/// The highest iteration count accepted (bounds the work a tampered store can cause).
pub const MAX_ITERATIONS: u32 = 1_000_000;

type HmacSha256 = Hmac<Sha256>;

pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// What the server stores for SCRAM: never the password, nor the password-equivalent
/// SaltedPassword or ClientKey.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// The salt.
    pub salt: Vec<u8>,
    pub(crate) stored_key: [u8; 32],
    pub(crate) server_key: [u8; 32],
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .field("keys", &"[REDACTED]")
            .finish()
    }
}

/// The password as SCRAM hashes it: SASLprep-normalized when that succeeds, else the raw
/// bytes (PostgreSQL's rule, so non-conforming passwords still work).
pub(crate) fn normalize(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(p) => p.as_bytes().to_vec(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

impl ScramVerifier {
    /// Derives the verifier for `password` with `salt` and `iterations`.
    pub fn compute(password: &str, salt: &[u8], iterations: u32) -> Self {
        let mut normalized = normalize(password);
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(&normalized, salt, iterations, &mut salted);
        let mut client_key = hmac(&salted, &[b"Client Key"]);
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let server_key = hmac(&salted, &[b"Server Key"]);
        normalized.zeroize();
        salted.zeroize();
        client_key.zeroize();
        Self {
            iterations,
            salt: salt.to_vec(),
            stored_key,
            server_key,
        }
    }

    /// A verifier with a fresh 16-byte salt.
    pub fn generate(password: &str, iterations: u32) -> Result<Self, HashError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt)
            .map_err(|e| HashError::Corrupt(format!("no randomness: {e}")))?;
        Ok(Self::compute(password, &salt, iterations))
    }

    /// Parses PostgreSQL's format.
    pub fn parse(text: &str) -> Result<Self, ScramError> {
        let bad = |why: &'static str| ScramError::BadVerifier(why);
        let rest = text
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(bad("does not start with SCRAM-SHA-256$"))?;
        let (iter_salt, keys) = rest
            .split_once('$')
            .ok_or(bad("missing `$` before the keys"))?;
        let (iterations, salt) = iter_salt
            .split_once(':')
            .ok_or(bad("missing `:` between iterations and salt"))?;
        let (stored, server) = keys
            .split_once(':')
            .ok_or(bad("missing `:` between the keys"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| bad("iterations not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(bad("iterations outside 4096..=1000000"));
        }
        let salt = B64.decode(salt).map_err(|_| bad("salt is not base64"))?;
        if salt.is_empty() || salt.len() > 64 {
            return Err(bad("salt length outside 1..=64 bytes"));
        }
        let key = |s: &str| -> Result<[u8; 32], ScramError> {
            B64.decode(s)
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
                .ok_or(bad("key is not 32 bytes of base64"))
        };
        Ok(Self {
            iterations,
            salt,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}
