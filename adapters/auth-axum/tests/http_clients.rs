//! End to end over real TCP: the layer on a served axum app, called by reqwest and curl.
//! The policy admits only local peers, so success also proves the peer address reaches
//! the policy through `ConnectInfo`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use auth_axum::{AuthLayer, Authenticated};
use auth_core::policy::{AddressMatch, Rule, Target};
use auth_core::{Chain, Engine, Policy};
use auth_oauth::{JwtAuthenticator, ValidationSettings};
use axum::Router;
use axum::routing::get;
use common::{local_issuer, token};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-e2e";
const ISS: &str = "https://issuer.test";

async fn serve() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let jwt = JwtAuthenticator::new(
        vec![local_issuer(ISS, SECRET)],
        ValidationSettings {
            // The tests' issuer is our own: its `preferred_username` names the user.
            username_claim: Some("preferred_username".into()),
            ..ValidationSettings::default()
        },
    )
    .unwrap();
    let chain = Arc::new(Chain::builder().link(Arc::new(jwt)).build());
    let policy = Policy::new(vec![
        Rule::new("local", Target::Chain(chain)).with_addresses(AddressMatch::Localhost),
    ])
    .unwrap();
    let app = Router::new()
        .route(
            "/whoami",
            get(|auth: Authenticated| async move { auth.user().to_owned() }),
        )
        // Plain HTTP on loopback: the clients are the subject here, not the transport.
        .layer(AuthLayer::new(Arc::new(
            Engine::builder(policy)
                .dangerous()
                .allow_cleartext_without_tls()
                .build(),
        )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (addr, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_and_curl_authenticate_through_the_layer() {
    let (addr, server) = serve().await;
    let url = format!("http://{addr}/whoami");
    let token = token(ISS, "read", SECRET);

    // reqwest is built with rustls but no default crypto provider (auth-oauth hands
    // aws-lc-rs over explicitly); a bare client takes the process default.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::new();
    let ok = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "alice");
    let refused = client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["www-authenticate"],
        "Bearer realm=\"api\""
    );

    let curl = |args: Vec<String>| {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .expect("curl is installed by scripts/install-deps.sh");
        String::from_utf8(out.stdout).unwrap()
    };
    let out = tokio::task::spawn_blocking({
        let (url, token) = (url.clone(), token.clone());
        move || {
            curl(vec![
                "-H".into(),
                format!("Authorization: Bearer {token}"),
                url,
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(out, "alice\n200");
    let out = tokio::task::spawn_blocking(move || {
        curl(vec!["-H".into(), "Authorization: Bearer x.y.z".into(), url])
    })
    .await
    .unwrap();
    assert!(out.ends_with("\n401"), "{out}");
    assert!(out.contains("\"status\":401"), "{out}");
    server.abort();
}
