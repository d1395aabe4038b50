//! gRPC over loopback (HTTP/2, tonic's client and server), the same unary call three ways
//! in the same run: without authentication, behind `AuthLayer` (ES256 bearer, keys in
//! memory, validated-token cache), and behind `AuthLayer` reusing sessions. 16 callers
//! share one channel; prints calls/s, per-call p50/p95/p99 and the ratios.
//!
//! Run: `cargo bench -p auth-tonic --bench grpc`.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::{Chain, Engine, Policy};
use auth_oauth::{IssuerConfig, JwtAuthenticator, KeySource, ValidationSettings, VerifyingKey};
use auth_tests::stats::percentile as pct;
use auth_tonic::AuthLayer;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const ISS: &str = "https://issuer.bench";
const CALLERS: usize = 16;
const CALLS_EACH: usize = 3000;

fn engine(jwk: &serde_json::Value) -> Arc<Engine> {
    let jwt = JwtAuthenticator::new(
        vec![IssuerConfig {
            keys: KeySource::Static(Arc::new(vec![Arc::new(
                VerifyingKey::from_jwk(jwk).unwrap(),
            )])),
            ..IssuerConfig::discovery(ISS, "api")
        }],
        ValidationSettings::default(),
    )
    .unwrap();
    let chain = Chain::builder().link(Arc::new(jwt)).build();
    // Plain HTTP/2 on loopback: the layer's cost is measured, not TLS's.
    Arc::new(
        Engine::builder(Policy::single(chain).unwrap())
            .dangerous()
            .allow_cleartext_without_tls()
            .build(),
    )
}

async fn serve(layer: Option<AuthLayer>) -> String {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
        .unwrap()
        .with_nodelay(Some(true));
    let url = format!("http://{}", incoming.local_addr().unwrap());
    match layer {
        Some(layer) => tokio::spawn(
            tonic::transport::Server::builder()
                .layer(layer)
                .add_service(health)
                .serve_with_incoming(incoming),
        ),
        None => tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(incoming),
        ),
    };
    url
}

/// Per-call latencies in µs (sorted) and calls per second.
async fn load(url: &str, token: &str) -> (Vec<f64>, f64) {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let header: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let run = |calls: usize| {
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let mut client = HealthClient::new(channel.clone());
                let header = header.clone();
                tokio::spawn(async move {
                    let mut took = Vec::with_capacity(calls);
                    for _ in 0..calls {
                        let mut request = tonic::Request::new(HealthCheckRequest::default());
                        request
                            .metadata_mut()
                            .insert("authorization", header.clone());
                        let started = Instant::now();
                        client.check(request).await.unwrap();
                        took.push(started.elapsed().as_secs_f64() * 1e6);
                    }
                    took
                })
            })
            .collect();
        async move {
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        }
    };
    run(200).await; // warm up
    let started = Instant::now();
    let mut took = run(CALLS_EACH).await;
    let rate = took.len() as f64 / started.elapsed().as_secs_f64();
    took.sort_by(f64::total_cmp);
    (took, rate)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let issuer = auth_tests::jwt::Es256Issuer::new();
    let (jwk, token) = (issuer.jwk.clone(), issuer.token(ISS));
    rt.block_on(async {
        let cases = [
            ("no auth", serve(None).await),
            (
                "AuthLayer, token cache",
                serve(Some(AuthLayer::new(engine(&jwk)))).await,
            ),
            (
                "AuthLayer, session reuse",
                serve(Some(
                    AuthLayer::new(engine(&jwk))
                        .dangerous()
                        .reuse_sessions(10_000, Duration::from_secs(60)),
                ))
                .await,
            ),
        ];
        println!(
            "{:<26} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "", "calls/s", "p50 µs", "p95 µs", "p99 µs", "vs no auth"
        );
        // The same request everywhere, token included. Rounds go through every case in
        // turn (load on a 2-core machine drifts), keeping each case's best of five.
        let mut best: Vec<Option<(Vec<f64>, f64)>> = cases.iter().map(|_| None).collect();
        for _ in 0..5 {
            for (i, (_, url)) in cases.iter().enumerate() {
                let run = load(url, &token).await;
                if best[i].as_ref().is_none_or(|b| run.1 > b.1) {
                    best[i] = Some(run);
                }
            }
        }
        let base = best[0].as_ref().unwrap().1;
        for ((name, _), result) in cases.iter().zip(best) {
            let (took, rate) = result.unwrap();
            println!(
                "{name:<26} {rate:>9.0} {:>9.1} {:>9.1} {:>9.1} {:>9.2}x",
                pct(&took, 0.50),
                pct(&took, 0.95),
                pct(&took, 0.99),
                rate / base
            );
        }
    });
}
