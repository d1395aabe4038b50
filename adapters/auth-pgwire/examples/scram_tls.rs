//! A PostgreSQL-wire server answering queries after SCRAM over TLS: a user, an engine, a
//! TLS listener, [`PgServer`].
//!
//! `cargo run -p auth-pgwire --example scram_tls [-- --listen 127.0.0.1:6433]` prints the
//! psql line that logs in (user `alice`, a fresh password, `sslrootcert` the certificate
//! it wrote to a temporary directory).

use std::sync::Arc;

use async_trait::async_trait;
use auth_core::{Chain, Engine, MemoryStore, Policy, Protocol};
use auth_listen::{Listener, TlsSetup};
use auth_password::{PasswordPolicy, ScramAuthenticator, Users};
use auth_pgwire::PgServer;
use auth_pgwire::pgwire::api::results::{Response, Tag};
use auth_pgwire::pgwire::api::{ClientInfo, query::SimpleQueryHandler};
use auth_pgwire::pgwire::error::PgWireResult;

/// Every query is answered with the tag `HELLO`.
struct Hello;

#[async_trait]
impl SimpleQueryHandler for Hello {
    async fn do_query<C: ClientInfo + Unpin + Send + Sync>(
        &self,
        _client: &mut C,
        _query: &str,
    ) -> PgWireResult<Vec<Response>> {
        Ok(vec![Response::Execution(Tag::new("HELLO"))])
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let password = random_password()?;
    let users = Users::new(Arc::new(MemoryStore::new()));
    users
        .set_scram_password(&PasswordPolicy::default(), "alice", &password)
        .await?;
    let scram = ScramAuthenticator::with_stored_mock_secret(users).await?;
    let policy = Policy::single(Chain::builder().link(Arc::new(scram)).build())?;
    let engine = Arc::new(Engine::builder(policy).build());
    let (tls, cert_pem, _) = TlsSetup::self_signed(&["localhost", "127.0.0.1"])?;
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:6433".into());
    let listener = Listener::bind(listen.parse()?, Protocol::Postgres)
        .await?
        .with_tls(tls);
    let (addr, cert) = (listener.local_addr()?, write_certificate(&cert_pem)?);
    print_line(&format!(
        "connect: PGPASSWORD='{}' psql \"host={} port={} user=alice dbname=alice sslmode=verify-full sslrootcert={}\" -c 'SELECT 1'",
        secrecy::ExposeSecret::expose_secret(&password),
        addr.ip(),
        addr.port(),
        cert.display()
    ));
    PgServer::new(engine, Hello).serve(listener).await?;
    Ok(())
}

// What follows is the example's own plumbing (a password to print, a file for psql's
// `sslrootcert`), not part of serving.

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
    let dir = std::env::temp_dir().join(format!("pg-server-{}", std::process::id()));
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
