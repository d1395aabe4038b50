//! The listener's own cost per accepted connection against a bare tokio accept loop,
//! measured in the same run: a client connects, sends one byte and waits for one back;
//! the latency is connect to answer. Plain TCP and TLS (the bare loop with tokio-rustls
//! on the same certificate), then a burst of 2,000 simultaneous connections from one
//! address through the per-address places (32), which wait instead of being refused.
//!
//! `cargo bench -p auth-listen --bench accept`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::Protocol;
use auth_listen::{Admission, AdmissionSettings, Connection, Listener, TlsSetup};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SEQUENTIAL: usize = 3_000;
const BURST: usize = 2_000;

/// Reads one byte and answers one.
async fn echo_one<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    let mut b = [0u8; 1];
    if io.read_exact(&mut b).await.is_ok() {
        let _ = io.write_all(&b).await;
        let _ = io.flush().await;
    }
}

/// A bare accept loop, optionally with TLS.
async fn bare(tls: Option<tokio_rustls::TlsAcceptor>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(tls) => {
                        if let Ok(stream) = tls.accept(tcp).await {
                            echo_one(stream).await;
                        }
                    }
                    None => echo_one(tcp).await,
                }
            });
        }
    });
    addr
}

/// The same behind auth-listen's listener.
async fn listened(tls: Option<TlsSetup>, admission: Arc<Admission>) -> SocketAddr {
    let mut listener = Listener::bind("127.0.0.1:0".parse().unwrap(), Protocol::Other)
        .await
        .unwrap()
        .with_admission(admission);
    if let Some(tls) = tls {
        listener = listener.with_tls(tls);
    }
    let addr = listener.local_addr().unwrap();
    let mut incoming = listener.incoming();
    tokio::spawn(async move {
        while let Some(connection) = incoming.next().await {
            tokio::spawn(async move {
                let connection: Connection = connection;
                let facts = connection.facts().clone();
                echo_one(connection).await;
                // As an auth layer would once the client proved itself.
                facts.authenticated();
            });
        }
    });
    addr
}

/// One client round: connect, (TLS,) one byte out, one back.
async fn round(addr: SocketAddr, tls: Option<&tokio_rustls::TlsConnector>) -> Duration {
    let started = Instant::now();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    match tls {
        Some(connector) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut stream = connector.connect(name, tcp).await.unwrap();
            stream.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            stream.read_exact(&mut b).await.unwrap();
        }
        None => {
            let mut tcp = tcp;
            tcp.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            tcp.read_exact(&mut b).await.unwrap();
        }
    }
    started.elapsed()
}

fn report(name: &str, mut samples: Vec<Duration>) -> [Duration; 3] {
    let (p50, p95, p99) = auth_tests::stats::p50_p95_p99(&mut samples);
    let ps = [p50, p95, p99];
    println!(
        "{name:<28} p50 {:>9.1?} p95 {:>9.1?} p99 {:>9.1?}",
        ps[0], ps[1], ps[2]
    );
    ps
}

async fn sequential(addr: SocketAddr, tls: Option<&tokio_rustls::TlsConnector>) -> Vec<Duration> {
    for _ in 0..100 {
        round(addr, tls).await; // warm-up
    }
    let mut samples = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        samples.push(round(addr, tls).await);
    }
    samples
}

fn ratio(ours: [Duration; 3], theirs: [Duration; 3]) {
    println!(
        "{:<28} p50 {:>8.2}x  p95 {:>8.2}x  p99 {:>8.2}x  (listener / bare; 1.00x = no cost)",
        "ratio",
        ours[0].as_secs_f64() / theirs[0].as_secs_f64(),
        ours[1].as_secs_f64() / theirs[1].as_secs_f64(),
        ours[2].as_secs_f64() / theirs[2].as_secs_f64(),
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        let setup = TlsSetup::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));

        println!("== one connection at a time, {SEQUENTIAL} rounds (connect, 1 byte each way)");
        let admission = Arc::new(Admission::default());
        let theirs = report(
            "bare tokio accept",
            sequential(bare(None).await, None).await,
        );
        let ours = report(
            "auth-listen",
            sequential(listened(None, admission.clone()).await, None).await,
        );
        ratio(ours, theirs);
        let theirs = report(
            "bare tokio-rustls",
            sequential(bare(Some(setup.acceptor().clone())).await, Some(&connector)).await,
        );
        let ours = report(
            "auth-listen TLS",
            sequential(
                listened(Some(setup.clone()), admission.clone()).await,
                Some(&connector),
            )
            .await,
        );
        ratio(ours, theirs);

        println!("\n== {BURST} simultaneous connections from one address (32 places per address)");
        for (name, addr) in [
            ("bare tokio accept", bare(None).await),
            (
                "auth-listen",
                listened(
                    None,
                    Arc::new(Admission::new(AdmissionSettings::new(128, 32))),
                )
                .await,
            ),
        ] {
            let started = Instant::now();
            let tasks: Vec<_> = (0..BURST)
                .map(|_| tokio::spawn(async move { round(addr, None).await }))
                .collect();
            let mut samples = Vec::with_capacity(BURST);
            for t in tasks {
                samples.push(t.await.unwrap());
            }
            let took = started.elapsed();
            report(name, samples);
            println!("{:<28} all {BURST} served in {took:.1?}", "");
        }
    });
}
