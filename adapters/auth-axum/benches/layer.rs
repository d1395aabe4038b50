//! One axum route served several ways in the same run and loaded by `wrk` on loopback
//! with the same request (bearer header included): without authentication; behind
//! `AuthLayer` (ES256 bearer, keys held in memory) reusing sessions, with the
//! validated-token cache only, and with neither; and behind `jwt-authorizer` (the same key
//! and checks). Prints requests/s, p50/p99 latency and the ratios.
//!
//! Run: `cargo bench -p auth-axum --bench layer` (needs `wrk`: scripts/install-deps.sh).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::net::SocketAddr;
use std::process::Command;

use jwt_authorizer::IntoLayer;

mod common;

struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn millis(text: &str) -> f64 {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * factor
}

fn wrk(url: &str, token: Option<&str>, seconds: u32) -> Load {
    // wrk on core 1, the servers on core 0 (see main), so they do not steal each other's
    // time slices; without taskset both float.
    let mut cmd = Command::new("taskset");
    cmd.args([
        "-c",
        "1",
        "wrk",
        "-t1",
        "-c16",
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(t) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk is installed by scripts/install-deps.sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains("Non-2xx"), "requests were refused:\n{text}");
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
            .unwrap_or_else(|| panic!("no `{prefix}` in wrk output:\n{text}"))
    };
    Load {
        rps: field("Requests/sec:").parse().unwrap(),
        p50_ms: millis(&field("50%")),
        p99_ms: millis(&field("99%")),
    }
}

async fn serve07(app: axum07::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum07::serve(listener, app).await });
    addr
}

async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

fn main() {
    // Pin this process (and the runtime threads it starts) to core 0.
    let pinned = Command::new("taskset")
        .args(["-a", "-cp", "0", &std::process::id().to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    println!("servers pinned to core 0, wrk to core 1: {pinned}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let common::Es256 {
        jwk,
        public_pem,
        token,
    } = common::es256();

    let (plain, reused, cached, uncached, theirs) = rt.block_on(async {
        let plain = serve(common::plain()).await;
        let reused = serve(common::layered(&jwk, 10_000, true)).await;
        let cached = serve(common::layered(&jwk, 10_000, false)).await;
        let uncached = serve(common::layered(&jwk, 0, false)).await;
        let authorizer: jwt_authorizer::Authorizer<jwt_authorizer::RegisteredClaims> =
            jwt_authorizer::JwtAuthorizer::from_ec_pem_text(&public_pem)
                .validation(
                    jwt_authorizer::Validation::new()
                        .iss(&[common::ISS])
                        .aud(&["api"]),
                )
                .build()
                .await
                .unwrap();
        let theirs = serve07(
            axum07::Router::new()
                .route(
                    "/",
                    axum07::routing::get(
                        |jwt_authorizer::JwtClaims(c): jwt_authorizer::JwtClaims<
                            jwt_authorizer::RegisteredClaims,
                        >| async move { c.sub.unwrap_or_default() },
                    ),
                )
                .layer(authorizer.into_layer()),
        )
        .await;
        (plain, reused, cached, uncached, theirs)
    });
    let url = |a: SocketAddr| format!("http://{a}/");
    let cases = [
        // The same request everywhere, token included: what differs is only the layer, not
        // the bytes hyper parses.
        ("no auth", url(plain), Some(token.as_str())),
        (
            "AuthLayer, session reuse",
            url(reused),
            Some(token.as_str()),
        ),
        ("AuthLayer, token cache", url(cached), Some(token.as_str())),
        (
            "AuthLayer, no token cache",
            url(uncached),
            Some(token.as_str()),
        ),
        ("jwt-authorizer 0.15", url(theirs), Some(token.as_str())),
    ];
    // Warm every server, then measure each in turn, three times, keeping the best run.
    for (_, u, t) in &cases {
        wrk(u, *t, 1);
    }
    let mut results: Vec<Load> = cases.iter().map(|(_, u, t)| wrk(u, *t, 5)).collect();
    for _ in 0..2 {
        for (i, (_, u, t)) in cases.iter().enumerate() {
            let again = wrk(u, *t, 5);
            if again.rps > results[i].rps {
                results[i] = again;
            }
        }
    }
    println!(
        "{:<28} {:>10} {:>9} {:>9} {:>10} {:>16}",
        "", "req/s", "p50 ms", "p99 ms", "vs no auth", "vs jwt-authorizer"
    );
    for ((name, _, _), r) in cases.iter().zip(&results) {
        println!(
            "{name:<28} {:>10.0} {:>9.3} {:>9.3} {:>9.2}x {:>15.2}x",
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.rps / results[0].rps,
            r.rps / results[4].rps
        );
    }
}
