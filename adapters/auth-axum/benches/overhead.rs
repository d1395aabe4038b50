//! The layer's CPU cost per request, in process (no sockets): the same axum route called
//! through `tower::Service` without authentication and behind `AuthLayer` (ES256 bearer,
//! keys in memory), reusing sessions and with the validated-token cache only. Prints
//! p50/p95/p99 of the per-request time over batches of 1000 calls, and the overhead.
//!
//! Run: `cargo bench -p auth-axum --bench overhead [-- FILTER]`.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::time::Instant;

use auth_tests::stats::percentile as pct;
use axum::body::Body;
use axum::http::Request;
use tower::{Service, ServiceExt};

mod common;

const BATCH: u32 = 1000;
const BATCHES: usize = 600;

/// Per-request microseconds (batch means), sorted.
async fn measure(app: axum::Router, token: &str) -> Vec<f64> {
    let mut svc = app.with_state::<()>(()).into_service::<Body>();
    let header = format!("Bearer {token}");
    let mut call = async || {
        let request = Request::get("/")
            .header("authorization", header.as_str())
            .body(Body::empty())
            .unwrap();
        let response = svc.ready().await.unwrap().call(request).await.unwrap();
        assert!(response.status().is_success());
    };
    for _ in 0..BATCH {
        call().await;
    }
    let mut samples = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let started = Instant::now();
        for _ in 0..BATCH {
            call().await;
        }
        samples.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(BATCH));
    }
    samples.sort_by(f64::total_cmp);
    samples
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let common::Es256 { jwk, token, .. } = common::es256();
    let cases = [
        ("no auth", common::plain()),
        (
            "AuthLayer, session reuse",
            common::layered(&jwk, 10_000, true),
        ),
        (
            "AuthLayer, token cache",
            common::layered(&jwk, 10_000, false),
        ),
    ];
    println!(
        "{:<26} {:>8} {:>8} {:>8} {:>14}",
        "µs per request", "p50", "p95", "p99", "overhead p50"
    );
    // `cargo bench --bench overhead -- reuse` measures only the cases naming `reuse` (for
    // a profiler); cargo's own `--bench` flag is not a filter.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let mut base = None;
    for (name, app) in cases {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let s = rt.block_on(measure(app, &token));
        let p50 = pct(&s, 0.50);
        let base = *base.get_or_insert(p50);
        println!(
            "{name:<26} {p50:>8.3} {:>8.3} {:>8.3} {:>+13.3}",
            pct(&s, 0.95),
            pct(&s, 0.99),
            p50 - base
        );
    }
}
