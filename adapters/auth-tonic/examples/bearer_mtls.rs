//! A tonic service (gRPC health) that wants both a client certificate of a trusted CA and
//! a bearer token from an issuer's JWKS: a policy rule with the certificate requirement,
//! the JWT validator, a TLS listener asking for client certificates, [`auth_tonic::incoming`].
//!
//! ```text
//! cargo run -p auth-tonic --example bearer_mtls -- --cert server.pem --key server.key \
//!     --client-ca clients.pem --issuer https://idp.example.com --jwks-url https://idp.example.com/jwks \
//!     --audience api [--jwks-ca idp-ca.pem] [--listen 127.0.0.1:50052]
//! ```

use std::sync::Arc;

use auth_core::certificate::{CertificateCheck, Requirement, TrustedIssuers};
use auth_core::policy::{ConnectionType, Rule, Target};
use auth_core::{Chain, Engine, Policy, Protocol};
use auth_listen::{Listener, TlsSetup};
use auth_oauth::{HttpClient, IssuerConfig, JwtAuthenticator, ValidationSettings};
use auth_tonic::AuthLayer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let required = |name: &str| arg(name).ok_or(format!("{name} is required"));
    let mut issuer = IssuerConfig::jwks(
        required("--issuer")?,
        required("--jwks-url")?,
        required("--audience")?,
    );
    if let Some(ca) = arg("--jwks-ca") {
        issuer = issuer.with_http(
            HttpClient::builder()
                .add_ca_pem(&std::fs::read(ca)?)?
                .build()?,
        );
    }
    let jwt = JwtAuthenticator::new(vec![issuer], ValidationSettings::default())?;
    let clients = Arc::new(TrustedIssuers::from_pem(&std::fs::read(required(
        "--client-ca",
    )?)?)?);
    let rule = Rule::new(
        "grpc",
        Target::Chain(Arc::new(Chain::builder().link(Arc::new(jwt)).build())),
    )
    .with_connection(ConnectionType::HostSsl)
    .with_client_certificate(CertificateCheck::new(
        clients.clone(),
        Requirement::VerifyCa,
    ));
    let engine = Arc::new(Engine::builder(Policy::new(vec![rule])?).build());
    let (cert, key) = (
        std::fs::read(required("--cert")?)?,
        std::fs::read(required("--key")?)?,
    );
    let tls = TlsSetup::from_pem_with_client_cas(&cert, &key, &clients)?;
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:50052".into());
    let listener = Listener::bind(listen.parse()?, Protocol::Grpc)
        .await?
        .with_tls(tls);
    print_line(&format!("listening on {}", listener.local_addr()?));
    let (_reporter, health) = tonic_health::server::health_reporter();
    tonic::transport::Server::builder()
        .layer(AuthLayer::new(engine))
        .add_service(health)
        .serve_with_incoming(auth_tonic::incoming(listener))
        .await?;
    Ok(())
}

// What follows is the example's own plumbing.

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|a| a != name);
    args.next().and(args.next())
}

fn print_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
