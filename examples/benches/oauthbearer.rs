//! Logins per second on one gateway, OAUTHBEARER against SCRAM-SHA-256, in the same run
//! and with the same load generator: a protocol-level client in this file that opens a TCP
//! connection, asks for TLS (verifying the gateway's certificate), sends the startup
//! packet and then either an OAUTHBEARER initial response with a cached token from
//! oidc-provider (what libpq 18 sends when `oauth_issuer` is the discovery URL and its
//! hook returns a cached token) or a SCRAM exchange played by postgres-protocol's
//! `ScramSha256` (tokio-postgres' client), waits for ReadyForQuery and says Terminate.
//!
//! For each method: 500 logins one after another (p50/p95/p99 and the ratio of medians),
//! then 8 clients logging in back to back for 5 s (logins per second and their ratio).
//!
//! Run: `cargo bench -p auth-examples --bench oauthbearer` (needs node's oidc-provider:
//! scripts/install-deps.sh)
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::account::Directory;
use auth_tests::gateway::{
    GatewayProcess, frontend_message, sasl_initial_response, startup_packet,
};
use auth_tests::oidc::OidcProvider;
use auth_tests::stats::percentile as pct;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, pki_types};

const SEQUENTIAL: usize = 500;
const CLIENTS: usize = 8;
const DURATION: Duration = Duration::from_secs(5);

/// How a login proves itself.
#[derive(Clone)]
enum Method {
    Bearer(Arc<str>),
    Scram(Arc<str>),
}

async fn read_message<S: AsyncRead + Unpin>(s: &mut S) -> (u8, Vec<u8>) {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await.unwrap();
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).await.unwrap();
    (head[0], body)
}

fn auth_code(body: &[u8]) -> u32 {
    u32::from_be_bytes([body[0], body[1], body[2], body[3]])
}

/// One login to the end (ReadyForQuery), then Terminate.
async fn login(addr: SocketAddr, tls: &TlsConnector, user: &str, method: &Method) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await
        .unwrap();
    assert_eq!(tcp.read_u8().await.unwrap(), b'S');
    let name = pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = tls.connect(name, tcp).await.unwrap();
    s.write_all(&startup_packet(user)).await.unwrap();
    let (tag, body) = read_message(&mut s).await;
    assert_eq!((tag, auth_code(&body)), (b'R', 10), "AuthenticationSASL");
    match method {
        Method::Bearer(token) => {
            let initial = format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}");
            s.write_all(&sasl_initial_response("OAUTHBEARER", initial.as_bytes()))
                .await
                .unwrap();
        }
        Method::Scram(password) => {
            let mut scram = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
            s.write_all(&sasl_initial_response("SCRAM-SHA-256", scram.message()))
                .await
                .unwrap();
            let (tag, body) = read_message(&mut s).await;
            assert_eq!((tag, auth_code(&body)), (b'R', 11), "SASLContinue");
            scram.update(&body[4..]).unwrap();
            s.write_all(&frontend_message(b'p', scram.message()))
                .await
                .unwrap();
            let (tag, body) = read_message(&mut s).await;
            assert_eq!((tag, auth_code(&body)), (b'R', 12), "SASLFinal");
            scram.finish(&body[4..]).unwrap();
        }
    }
    let (tag, body) = read_message(&mut s).await;
    assert_eq!(
        (tag, auth_code(&body)),
        (b'R', 0),
        "AuthenticationOk: {}",
        String::from_utf8_lossy(&body)
    );
    loop {
        let (tag, _) = read_message(&mut s).await;
        if tag == b'Z' {
            break;
        }
    }
    s.write_all(&frontend_message(b'X', &[])).await.unwrap();
    s.shutdown().await.ok();
}

fn row(name: &str, sorted: &[Duration]) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<14} p50 {:>7.0} us  p95 {:>7.0} us  p99 {:>7.0} us",
        us(pct(sorted, 0.50)),
        us(pct(sorted, 0.95)),
        us(pct(sorted, 0.99))
    );
}

async fn sequential(addr: SocketAddr, tls: &TlsConnector, user: &str, m: &Method) -> Vec<Duration> {
    let mut all = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let started = Instant::now();
        login(addr, tls, user, m).await;
        all.push(started.elapsed());
    }
    all.sort();
    all
}

/// Logins per second with `CLIENTS` clients logging in back to back for `DURATION`.
async fn throughput(addr: SocketAddr, tls: &TlsConnector, user: &str, m: &Method) -> f64 {
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (tls, user, m) = (tls.clone(), user.to_owned(), m.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while started.elapsed() < DURATION {
                    login(addr, &tls, &user, &m).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let provider = OidcProvider::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("idp-ca.crt");
    std::fs::write(&ca, provider.ca_pem().unwrap()).unwrap();
    let issuer = provider.issuer();
    let rules = format!(
        r#"
[[oauth_issuer]]
issuer = "{issuer}"
audience = "urn:api"
ca_file = "{ca}"

[[rule]]
name = "oauth"
type = "hostssl"
users = ["alice"]
method = "oauthbearer"
issuer = "{issuer}/.well-known/openid-configuration"
scope = "read"

[[rule]]
name = "scram"
type = "hostssl"
method = "scram"
"#,
        ca = ca.display()
    );
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gw = GatewayProcess::start(binary, "20s", &rules).unwrap_or_else(|e| panic!("{e}"));
    Directory::new(gw.wallet().unwrap())
        .update("alice", |_| {})
        .await
        .unwrap();
    let token: Arc<str> = provider
        .token_for("alice", "urn:api", "read")
        .unwrap()
        .into();

    let pem = std::fs::read(gw.ca_file()).unwrap();
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile_certs(&pem) {
        roots.add(cert).unwrap();
    }
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = TlsConnector::from(Arc::new(config));
    let addr = SocketAddr::from((gw.ip, gw.port));
    let bearer = Method::Bearer(token);
    let scram = Method::Scram(gw.demo_password.clone().into());

    // Warm up both paths (the first token validation fetches the provider's keys).
    login(addr, &tls, "alice", &bearer).await;
    login(addr, &tls, "demo", &scram).await;

    println!("gateway logins over TLS, {SEQUENTIAL} one after another:");
    let b = sequential(addr, &tls, "alice", &bearer).await;
    let s = sequential(addr, &tls, "demo", &scram).await;
    row("OAUTHBEARER", &b);
    row("SCRAM-SHA-256", &s);
    println!(
        "median SCRAM / OAUTHBEARER: {:.2}x",
        pct(&s, 0.5).as_secs_f64() / pct(&b, 0.5).as_secs_f64()
    );
    println!(
        "{CLIENTS} clients back to back for {}s:",
        DURATION.as_secs()
    );
    let bt = throughput(addr, &tls, "alice", &bearer).await;
    let st = throughput(addr, &tls, "demo", &scram).await;
    println!("OAUTHBEARER    {bt:>8.0} logins/s");
    println!("SCRAM-SHA-256  {st:>8.0} logins/s");
    println!("OAUTHBEARER / SCRAM: {:.2}x", bt / st);
    assert!(
        gw.audit("attempt_failed").is_empty(),
        "every login succeeded"
    );
}

/// The certificates of a PEM file.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<pki_types::CertificateDer<'static>> {
    use pki_types::pem::PemObject;
    pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .unwrap()
}
