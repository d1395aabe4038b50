//! HS256 tokens and the matching locally configured issuer, shared by the tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use auth_oauth::{Alg, IssuerConfig, KeySource, VerifyingKey};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

/// A five-minute token for `user-1` (username `alice`) with `scope`, signed with `secret`.
pub(crate) fn token(iss: &str, scope: &str, secret: &[u8]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k".into());
    let claims = json!({"iss": iss, "sub": "user-1", "aud": "api", "exp": now + 300,
                        "iat": now, "preferred_username": "alice", "scope": scope});
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// Issuer `iss` (audience `api`) whose only key is the HMAC `secret`, id `k`.
pub(crate) fn local_issuer(iss: &str, secret: &[u8]) -> IssuerConfig {
    IssuerConfig {
        keys: KeySource::Static(Arc::new(vec![Arc::new(
            VerifyingKey::hmac(Some("k".into()), Alg::HS256, secret).unwrap(),
        )])),
        ..IssuerConfig::discovery(iss, "api")
    }
}
