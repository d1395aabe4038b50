//! A throwaway ES256 issuer for benchmarks and tests: a fresh P-256 key, its public JWK
//! and PEM, and tokens it signs.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::json;

/// A fresh P-256 key whose JWK has `kid` `k` and `alg` `ES256`.
pub struct Es256Issuer {
    /// The public key as a JWK.
    pub jwk: serde_json::Value,
    /// The public key as SPKI PEM.
    pub public_pem: String,
    encoding: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for Es256Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Es256Issuer")
            .field("jwk", &self.jwk)
            .finish_non_exhaustive()
    }
}

impl Es256Issuer {
    /// A new key.
    ///
    /// # Panics
    /// When the platform cannot generate a P-256 key.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let pair =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
        let raw = pair.public_key_raw();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "k", "alg": "ES256",
                         "x": B64URL.encode(&raw[1..33]), "y": B64URL.encode(&raw[33..])});
        let encoding = jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())
            .expect("rcgen's PEM");
        Self {
            jwk,
            public_pem: pair.public_key_pem(),
            encoding,
        }
    }

    /// A one-hour token from `iss` for `sub` `user-1`, audience `api`.
    ///
    /// # Panics
    /// When signing fails.
    #[allow(clippy::expect_used)]
    pub fn token(&self, iss: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("k".into());
        jsonwebtoken::encode(
            &header,
            &json!({"iss": iss, "sub": "user-1", "aud": "api", "exp": now + 3600, "iat": now}),
            &self.encoding,
        )
        .expect("signing")
    }
}

impl Default for Es256Issuer {
    fn default() -> Self {
        Self::new()
    }
}
