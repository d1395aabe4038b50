//! JWT validation per operation through `JwtAuthenticator` (no validated-token cache)
//! against a bare `jsonwebtoken::decode` with the same key and checks, in the same run,
//! for HS256, RS256, ES256 and EdDSA; plus the cost of a validated-token cache hit.
//!
//! Run: `cargo bench -p auth-oauth --bench jwt`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use auth_core::{Attempt, Authenticator, ConnectionInfo, Credential, Protocol};
use auth_oauth::{
    Alg, FetchSettings, IssuerConfig, JwtAuthenticator, KeySource, ValidationSettings, VerifyingKey,
};
use auth_tests::stats::p50_p95_p99;
use common::{TestKey, claims};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

const ISS: &str = "https://issuer.example";

fn authenticator(key: VerifyingKey, cache: u64) -> JwtAuthenticator {
    let config = IssuerConfig {
        issuer: ISS.into(),
        keys: KeySource::Static(Arc::new(vec![Arc::new(key)])),
        audience: "api".into(),
        require_at_jwt: false,
        fetch: FetchSettings::default(),
    };
    JwtAuthenticator::new(
        vec![config],
        ValidationSettings {
            cache_capacity: cache,
            ..ValidationSettings::default()
        },
    )
    .unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secret = b"0123456789abcdef0123456789abcdef-hmac-secret".to_vec();
    let mut cases: Vec<(&str, String, VerifyingKey, DecodingKey, Algorithm)> = Vec::new();
    {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("hs".into());
        let token =
            jsonwebtoken::encode(&h, &claims(ISS), &EncodingKey::from_secret(&secret)).unwrap();
        cases.push((
            "HS256",
            token,
            VerifyingKey::hmac(Some("hs".into()), Alg::HS256, &secret).unwrap(),
            DecodingKey::from_secret(&secret),
            Algorithm::HS256,
        ));
    }
    for (name, alg) in [
        ("RS256", Algorithm::RS256),
        ("ES256", Algorithm::ES256),
        ("EdDSA", Algorithm::EdDSA),
    ] {
        let k = TestKey::new(name, alg);
        let token = k.sign(&claims(ISS));
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(k.jwk.clone()).unwrap();
        cases.push((
            name,
            token,
            VerifyingKey::from_jwk(&k.jwk).unwrap(),
            DecodingKey::from_jwk(&jwk).unwrap(),
            alg,
        ));
    }
    println!(
        "{:<8} {:>12} {:>12} {:>12}   {:>12} {:>12} {:>12}   ratio p50",
        "", "ours p50", "p95", "p99", "decode p50", "p95", "p99"
    );
    let n = 3000;
    for (name, token, key, decoding, alg) in cases {
        let auth = authenticator(key, 0);
        let mut ours = Vec::with_capacity(n);
        let mut theirs = Vec::with_capacity(n);
        let mut validation = Validation::new(alg);
        validation.set_audience(&["api"]);
        validation.set_issuer(&[ISS]);
        validation.validate_nbf = true;
        rt.block_on(async {
            for _ in 0..n {
                let mut a = Attempt::new(
                    ConnectionInfo::tcp(Protocol::Http, "10.0.0.1:1".parse().unwrap()),
                    Credential::bearer(token.clone()),
                );
                let t = Instant::now();
                let out = auth.authenticate(&mut a).await;
                ours.push(t.elapsed());
                assert!(out.is_authenticated(), "{name}: {out:?}");
                let t = Instant::now();
                let d = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation);
                theirs.push(t.elapsed());
                assert!(d.is_ok(), "{name}: {d:?}");
            }
        });
        let (o50, o95, o99) = p50_p95_p99(&mut ours);
        let (t50, t95, t99) = p50_p95_p99(&mut theirs);
        println!(
            "{name:<8} {o50:>12.2?} {o95:>12.2?} {o99:>12.2?}   {t50:>12.2?} {t95:>12.2?} {t99:>12.2?}   {:.2}x",
            o50.as_secs_f64() / t50.as_secs_f64()
        );
    }
    // Cache hit: the same token again.
    let k = TestKey::new("es", Algorithm::ES256);
    let token = k.sign(&claims(ISS));
    let auth = authenticator(VerifyingKey::from_jwk(&k.jwk).unwrap(), 10_000);
    let mut hits = Vec::with_capacity(n);
    rt.block_on(async {
        for _ in 0..n {
            let mut a = Attempt::new(
                ConnectionInfo::tcp(Protocol::Http, "10.0.0.1:1".parse().unwrap()),
                Credential::bearer(token.clone()),
            );
            let t = Instant::now();
            assert!(auth.authenticate(&mut a).await.is_authenticated());
            hits.push(t.elapsed());
        }
    });
    let (h50, h95, h99) = p50_p95_p99(&mut hits);
    println!(
        "validated-token cache hit: p50 {h50:.2?} p95 {h95:.2?} p99 {h99:.2?} (target < 1 us)"
    );
}
