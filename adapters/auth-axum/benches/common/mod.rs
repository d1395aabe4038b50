//! What both layer benchmarks serve: an ES256 issuer with a token, and the route behind
//! `AuthLayer` in each configuration measured.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;
use std::time::Duration;

use auth_axum::{AuthLayer, Authenticated};

use auth_core::{Chain, Engine, Policy};
use auth_oauth::{IssuerConfig, JwtAuthenticator, KeySource, ValidationSettings, VerifyingKey};

/// The issuer every benchmarked verifier trusts.
pub(crate) const ISS: &str = "https://issuer.bench";

/// A fresh ES256 issuer's public JWK and PEM, and a one-hour token it signed.
pub(crate) struct Es256 {
    pub(crate) jwk: serde_json::Value,
    pub(crate) public_pem: String,
    pub(crate) token: String,
}

pub(crate) fn es256() -> Es256 {
    let issuer = auth_tests::jwt::Es256Issuer::new();
    Es256 {
        token: issuer.token(ISS),
        jwk: issuer.jwk,
        public_pem: issuer.public_pem,
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
    // wrk speaks plain HTTP on loopback: the layer's cost is measured, not TLS's, so the
    // bearer token is allowed in clear here.
    let engine = Engine::builder(Policy::single(chain).unwrap())
        .dangerous()
        .allow_cleartext_without_tls()
        .build();
    let layer = AuthLayer::new(Arc::new(engine));
    let layer = if reuse {
        layer
            .dangerous()
            .reuse_sessions(10_000, Duration::from_secs(60))
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
