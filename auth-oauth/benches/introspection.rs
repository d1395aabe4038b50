//! RFC 7662 introspection latency through `IntrospectionAuthenticator`, with the answer
//! re-checked on every request and with a cached answer, against a bare `reqwest` POST of
//! the same form to the same loopback endpoint (the floor any client pays), in one run.
//!
//! Run: `cargo bench -p auth-oauth --bench introspection`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth_core::secrecy::SecretString;
use auth_core::{Attempt, Authenticator, ConnectionInfo, Credential, Protocol};
use auth_oauth::{ClientAuth, ClientSecret, IntrospectionAuthenticator, IntrospectionConfig};
use auth_tests::stats::p50_p95_p99;
use serde_json::json;

const SECRET: &str = "bench-client-secret-0123456789abcdef";

async fn introspect() -> axum::Json<serde_json::Value> {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    axum::Json(
        json!({"active": true, "sub": "user-123", "username": "alice",
                      "scope": "read write", "aud": "api", "exp": exp, "client_id": "svc"}),
    )
}

fn report(name: &str, v: &mut [Duration], floor: Duration) {
    let (p50, p95, p99) = p50_p95_p99(v);
    println!(
        "{name:<34} p50 {p50:>10.2?} p95 {p95:>10.2?} p99 {p99:>10.2?}   {:.2}x the bare POST",
        p50.as_secs_f64() / floor.as_secs_f64()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/introspect", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/introspect", axum::routing::post(introspect));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let secret = ClientSecret::new(SecretString::from(SECRET.to_owned())).unwrap();
        let config = |recheck| IntrospectionConfig {
            audience: Some("api".into()),
            timeout: Duration::from_secs(2),
            cache_max: Duration::from_secs(300),
            recheck,
            ..IntrospectionConfig::new(
                endpoint.clone(),
                "svc",
                ClientAuth::SecretBasic(secret.clone()),
            )
        };
        let every_time = IntrospectionAuthenticator::new(config(Duration::ZERO)).unwrap();
        let cached = IntrospectionAuthenticator::new(config(Duration::from_secs(60))).unwrap();
        // reqwest is built without a default crypto provider (one provider, aws-lc-rs,
        // handed over explicitly); the bare client takes the process default.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let bare = reqwest::Client::new();
        let n = 3000;
        let token = "opaque-token-0123456789abcdefghijklmnopqrstuvwxyz";
        let attempt = || {
            Attempt::new(
                ConnectionInfo::tcp(Protocol::Http, "10.0.0.1:1".parse().unwrap()),
                Credential::bearer(token),
            )
        };
        // Warm the connection pools.
        for _ in 0..50 {
            assert!(
                every_time
                    .authenticate(&mut attempt())
                    .await
                    .is_authenticated()
            );
        }
        let (mut ours, mut floor, mut hits) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let mut a = attempt();
            let t = Instant::now();
            let out = every_time.authenticate(&mut a).await;
            ours.push(t.elapsed());
            assert!(out.is_authenticated(), "{out:?}");

            let t = Instant::now();
            let body: serde_json::Value = bare
                .post(&endpoint)
                .basic_auth("svc", Some(SECRET))
                .form(&[("token", token), ("token_type_hint", "access_token")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            floor.push(t.elapsed());
            assert_eq!(body["active"], true);

            let mut a = attempt();
            let t = Instant::now();
            let out = cached.authenticate(&mut a).await;
            hits.push(t.elapsed());
            assert!(out.is_authenticated(), "{out:?}");
        }
        let base = p50_p95_p99(&mut floor).0;
        report("bare reqwest POST (floor)", &mut floor, base);
        report("introspection, every request", &mut ours, base);
        report("introspection, cached answer", &mut hits, base);
        server.abort();
    });
}
