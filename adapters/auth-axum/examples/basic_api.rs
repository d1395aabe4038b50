//! An axum API behind HTTPS with HTTP Basic, written the way the auth-axum documentation
//! shows: a user, an engine, a router with the auth layer, a TLS listener,
//! [`auth_axum::serve`].
//!
//! `cargo run -p auth-axum --example basic_api [-- --listen 127.0.0.1:8443]` prints the
//! curl line that works (user `alice`, a fresh password, `--cacert` the certificate it
//! wrote to a temporary directory).

use std::sync::Arc;

use auth_axum::{AuthLayer, Authenticated};
use auth_core::{Chain, Engine, MemoryStore, Policy, Protocol};
use auth_listen::{Listener, TlsSetup};
use auth_password::{Argon2Settings, Hasher, PasswordAuthenticator, PasswordPolicy, Users};
use axum::{Router, routing::get};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let password = random_password()?;
    let users = Users::new(Arc::new(MemoryStore::new()));
    let hasher = Hasher::new(Argon2Settings::default())?;
    users
        .set_password(&hasher, &PasswordPolicy::default(), "alice", &password)
        .await?;
    let passwords = PasswordAuthenticator::new(users, hasher);
    let policy = Policy::single(Chain::builder().link(Arc::new(passwords)).build())?;
    let engine = Arc::new(Engine::builder(policy).build());
    let app = Router::new()
        .route(
            "/whoami",
            get(|auth: Authenticated| async move { format!("{}\n", auth.user()) }),
        )
        .layer(AuthLayer::new(engine));
    let (tls, cert_pem, _) = TlsSetup::self_signed(&["localhost", "127.0.0.1"])?;
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:8443".into());
    let listener = Listener::bind(listen.parse()?, Protocol::Http)
        .await?
        .with_tls(tls);
    let (addr, cert) = (listener.local_addr()?, write_certificate(&cert_pem)?);
    print_line(&format!(
        "whoami: curl --cacert {} -u 'alice:{}' https://{addr}/whoami",
        cert.display(),
        secrecy::ExposeSecret::expose_secret(&password)
    ));
    auth_axum::serve(listener, app).await?;
    Ok(())
}

// What follows is the example's own plumbing (a password to print, a file for curl's
// `--cacert`), not part of serving.

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|a| a != name);
    args.next().and(args.next())
}

fn random_password() -> Result<secrecy::SecretString, getrandom::Error> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes).into())
}

fn write_certificate(pem: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("api-server-{}", std::process::id()));
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
