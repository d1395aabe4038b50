//! What both layer benchmarks serve: an ES256 issuer with a token, and the route behind
//! `AuthLayer` in each configuration measured.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_axum::{AuthLayer, Authenticated};
use auth_core::policy::{Rule, Target};
use auth_core::{Chain, Policy};
use auth_oauth::{IssuerConfig, JwtAuthenticator, KeySource, ValidationSettings, VerifyingKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::json;

/// The issuer every benchmarked verifier trusts.
pub(crate) const ISS: &str = "https://issuer.bench";

/// A fresh P-256 key: its public JWK and PEM, and a one-hour token it signed.
pub(crate) struct Es256 {
    pub(crate) jwk: serde_json::Value,
    pub(crate) public_pem: String,
    pub(crate) token: String,
}

pub(crate) fn es256() -> Es256 {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "k", "alg": "ES256",
                     "x": B64URL.encode(&raw[1..33]), "y": B64URL.encode(&raw[33..])});
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k".into());
    let token = jsonwebtoken::encode(
        &header,
        &json!({"iss": ISS, "sub": "user-1", "aud": "api", "exp": now + 3600, "iat": now}),
        &jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    Es256 {
        jwk,
        public_pem: pair.public_key_pem(),
        token,
    }
}

/// The route that answers the caller's principal, behind `AuthLayer` over a JWT chain
/// with a validated-token cache of `cache` entries (0: none), reusing sessions or not.
pub(crate) fn layered(jwk: &serde_json::Value, cache: u64, reuse: bool) -> axum::Router {
    let jwt = JwtAuthenticator::new(
        vec![IssuerConfig {
            keys: KeySource::Static(Arc::new(vec![Arc::new(
                VerifyingKey::from_jwk(jwk).unwrap(),
            )])),
            ..IssuerConfig::discovery(ISS, "api")
        }],
        ValidationSettings {
            cache_capacity: cache,
            ..ValidationSettings::default()
        },
    )
    .unwrap();
    let chain = Chain::builder().link(Arc::new(jwt)).build();
    let policy = Arc::new(Policy::new(vec![Rule::new(
        "all",
        Target::Chain(Arc::new(chain)),
    )]));
    let layer = AuthLayer::new(policy);
    let layer = if reuse {
        layer.reuse_sessions(10_000, Duration::from_secs(60))
    } else {
        layer
    };
    axum::Router::new()
        .route(
            "/",
            axum::routing::get(|auth: Authenticated| async move { auth.principal().to_owned() }),
        )
        .layer(layer)
}

/// The same route without authentication.
pub(crate) fn plain() -> axum::Router {
    axum::Router::new().route("/", axum::routing::get(|| async { "user-1".to_owned() }))
}
