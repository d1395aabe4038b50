//! An axum API over HTTPS accepting JWTs from an issuer's JWKS: the validator, an engine,
//! a router with the auth layer, a TLS listener, [`auth_axum::serve`].
//!
//! ```text
//! cargo run -p auth-axum --example jwt_api -- --issuer https://idp.example.com \
//!     --jwks-url https://idp.example.com/jwks --audience api [--jwks-ca idp-ca.pem] [--listen 127.0.0.1:8444]
//! ```
//!
//! It prints the curl line for `/whoami` (with `$TOKEN` for a token from the issuer);
//! `/scoped` needs scope `read`.

use std::sync::Arc;

use auth_axum::{AuthLayer, AuthRejection, Authenticated};
use auth_core::{Chain, Engine, Policy, Protocol};
use auth_listen::{Listener, TlsSetup};
use auth_oauth::{HttpClient, IssuerConfig, JwtAuthenticator, ValidationSettings};
use axum::{Router, routing::get};

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
    let policy = Policy::single(Chain::builder().link(Arc::new(jwt)).build())?;
    let engine = Arc::new(Engine::builder(policy).build());
    let app = Router::new()
        .route(
            "/whoami",
            get(|auth: Authenticated| async move { format!("{}\n", auth.user()) }),
        )
        .route("/scoped", get(scoped))
        .layer(AuthLayer::new(engine));
    let (tls, cert_pem, _) = TlsSetup::self_signed(&["localhost", "127.0.0.1"])?;
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:8444".into());
    let listener = Listener::bind(listen.parse()?, Protocol::Http)
        .await?
        .with_tls(tls);
    let (addr, cert) = (listener.local_addr()?, write_certificate(&cert_pem)?);
    print_line(&format!(
        "whoami: curl --cacert {} -H \"Authorization: Bearer $TOKEN\" https://{addr}/whoami",
        cert.display()
    ));
    auth_axum::serve(listener, app).await?;
    Ok(())
}

async fn scoped(auth: Authenticated) -> Result<&'static str, AuthRejection> {
    auth.require_scope("read")?;
    Ok("read\n")
}

// What follows is the example's own plumbing (arguments, a file for curl's `--cacert`).

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|a| a != name);
    args.next().and(args.next())
}

fn write_certificate(pem: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("jwt-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("server.crt");
    std::fs::write(&path, pem)?;
    Ok(path)
}

fn print_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
