//! Fetching an issuer's keys over HTTPS from a real provider (oidc-provider, certificate
//! from the harness's run CA), against the floor of the same two GETs (discovery, then
//! JWKS) made by a bare reqwest client with the same TLS settings, in the same run:
//! - cold: a new authenticator and client per login (TLS handshake, discovery, JWKS,
//!   signature check) against a new bare client per pair of GETs;
//! - refresh: an unknown `kid` makes a warm authenticator fetch again (pooled connection)
//!   against the bare pair of GETs on a warm client.
//!
//! Run: `cargo bench -p auth-oauth --bench jwks_fetch`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::{Attempt, Authenticator, ConnectionInfo, Credential, Protocol};
use auth_oauth::{FetchSettings, HttpClient, IssuerConfig, JwtAuthenticator, ValidationSettings};
use auth_tests::oidc::OidcProvider;
use auth_tests::stats::p50_p95_p99;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

fn report(name: &str, v: &mut [Duration], floor: &mut [Duration]) {
    let (p50, p95, p99) = p50_p95_p99(v);
    let (f50, f95, f99) = p50_p95_p99(floor);
    println!("{name:<44} p50 {p50:>9.2?} p95 {p95:>9.2?} p99 {p99:>9.2?}");
    println!(
        "{:<44} p50 {f50:>9.2?} p95 {f95:>9.2?} p99 {f99:>9.2?}   ours/bare p50 {:.2}x",
        "  bare reqwest, same two GETs",
        p50.as_secs_f64() / f50.as_secs_f64()
    );
}

fn attempt(token: &str) -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Http, "10.0.0.1:1".parse().unwrap()),
        Credential::bearer(token),
    )
}

fn bare_client(ca_pem: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

async fn bare_pair(client: &reqwest::Client, issuer: &str) {
    let doc: serde_json::Value = client
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks = client
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(jwks.len() > 10);
}

/// `token` with its header's `kid` replaced: an unknown key id, same claims.
fn with_unknown_kid(token: &str) -> String {
    let mut parts = token.splitn(2, '.');
    let header = B64URL.decode(parts.next().unwrap()).unwrap();
    let mut header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"] = "not-a-key-of-this-issuer".into();
    format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        parts.next().unwrap()
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let provider = OidcProvider::start().unwrap_or_else(|e| panic!("{e}"));
    let issuer = provider.issuer();
    let ca = provider.ca_pem().unwrap();
    let token = provider.token("urn:api", "read").unwrap();
    let n = 200;
    rt.block_on(async {
        let https = || {
            HttpClient::builder()
                .add_ca_pem(ca.as_bytes())
                .unwrap()
                .only_added_roots()
                .build()
                .unwrap()
        };
        // Warm the provider (its first requests compile routes).
        for _ in 0..20 {
            bare_pair(&bare_client(&ca), &issuer).await;
        }

        let mut cold = Vec::with_capacity(n);
        let mut cold_floor = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let auth = JwtAuthenticator::new(
                vec![IssuerConfig::discovery(issuer.clone(), "urn:api").with_http(https())],
                ValidationSettings::default(),
            )
            .unwrap();
            let out = auth.authenticate(&mut attempt(&token)).await;
            cold.push(started.elapsed());
            assert!(out.is_authenticated(), "{out:?}");
            let started = Instant::now();
            bare_pair(&bare_client(&ca), &issuer).await;
            cold_floor.push(started.elapsed());
        }

        let auth = JwtAuthenticator::new(
            vec![IssuerConfig {
                fetch: FetchSettings {
                    refetch_interval: Duration::ZERO,
                    http: https(),
                    ..FetchSettings::default()
                },
                ..IssuerConfig::discovery(issuer.clone(), "urn:api")
            }],
            ValidationSettings {
                cache_capacity: 0,
                ..ValidationSettings::default()
            },
        )
        .unwrap();
        assert!(
            auth.authenticate(&mut attempt(&token))
                .await
                .is_authenticated()
        );
        let unknown = with_unknown_kid(&token);
        let warm = bare_client(&ca);
        bare_pair(&warm, &issuer).await;
        let before = auth.key_fetches(&issuer);
        let mut refresh = Vec::with_capacity(n);
        let mut refresh_floor = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let out = auth.authenticate(&mut attempt(&unknown)).await;
            refresh.push(started.elapsed());
            assert!(!out.is_authenticated());
            let started = Instant::now();
            bare_pair(&warm, &issuer).await;
            refresh_floor.push(started.elapsed());
        }
        assert_eq!(
            auth.key_fetches(&issuer) - before,
            n as u64,
            "one fetch per login"
        );

        println!("HTTPS JWKS fetch from oidc-provider (discovery + JWKS), {n} each:");
        report(
            "cold (new client: handshake, 2 GETs, verify)",
            &mut cold,
            &mut cold_floor,
        );
        report(
            "refresh on unknown kid (pooled connection)",
            &mut refresh,
            &mut refresh_floor,
        );
    });
}
