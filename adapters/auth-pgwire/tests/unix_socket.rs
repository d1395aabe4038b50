//! The Unix socket with a real client (tokio-postgres): `peer` admits the OS user running
//! the client as the user of the same name (a chain without an account stage maps
//! nothing), refuses any other requested user, and on loopback TCP, where the kernel says
//! nothing about the client, refuses with the reason audited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use auth_core::local::{PeerAuthenticator, SystemUsers};
use auth_core::policy::{AddressMatch, Rule, Target};
use auth_core::{Chain, Engine, MemoryAuditSink, Policy};
use auth_pgwire::unix::UnixSocket;
use auth_pgwire::{PgAuthConfig, PgAuthenticator, ServeConfig};
use pgwire::api::PgWireServerHandlers;
use tokio_postgres::error::SqlState;

#[derive(Debug)]
struct Handlers(Arc<PgAuthenticator>);

impl PgWireServerHandlers for Handlers {
    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.0.clone()
    }
}

#[tokio::test]
async fn peer_on_the_socket_is_the_os_user_and_nothing_on_loopback_tcp() {
    let me = SystemUsers.this_process().unwrap().unwrap();
    let audit = Arc::new(MemoryAuditSink::default());
    let chain = Chain::builder()
        .link(Arc::new(PeerAuthenticator::new()))
        .build();
    // Loopback or the socket: this machine only, which the policy checks.
    let policy = Policy::new(vec![
        Rule::new("local", Target::Chain(Arc::new(chain))).with_addresses(AddressMatch::Localhost),
    ])
    .unwrap();
    let engine = Engine::builder(policy).audit(audit.clone()).build();
    let handlers = Arc::new(Handlers(Arc::new(PgAuthenticator::new(PgAuthConfig::new(
        Arc::new(engine),
    )))));
    let config = Arc::new(ServeConfig::default());

    let dir = tempfile::tempdir().unwrap();
    let socket = Arc::new(UnixSocket::bind(dir.path(), 5432, 0o700).unwrap());
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    {
        let (handlers, config, socket) = (handlers.clone(), config.clone(), socket.clone());
        tokio::spawn(async move {
            loop {
                let stream = socket.accept().await;
                let (handlers, config) = (handlers.clone(), config.clone());
                let path = Some(socket.path().to_owned());
                tokio::spawn(async move {
                    auth_pgwire::serve_unix(stream, path, &config, handlers.as_ref()).await
                });
            }
        });
    }
    {
        let (handlers, config) = (handlers.clone(), config.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = auth_pgwire::accept(&tcp).await;
                let (handlers, config) = (handlers.clone(), config.clone());
                tokio::spawn(async move {
                    auth_pgwire::serve(stream, &config, handlers.as_ref()).await
                });
            }
        });
    }
    let connect = |host: String, user: &str| {
        let conninfo = format!("host={host} port=5432 user={user} connect_timeout=10");
        async move { tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await }
    };
    let socket_dir = dir.path().display().to_string();

    let (client, connection) = connect(socket_dir.clone(), &me).await.unwrap();
    drop(client);
    drop(connection);

    let other = connect(socket_dir, "someone-else").await.err().unwrap();
    assert_eq!(
        other.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{other:?}"
    );

    let conninfo = format!("host=127.0.0.1 port={port} user={me} connect_timeout=10");
    let tcp = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .err()
        .unwrap();
    assert_eq!(
        tcp.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{tcp:?}"
    );
    let details: Vec<String> = audit
        .events()
        .into_iter()
        .filter(|e| e["event"] == "attempt_failed")
        .filter_map(|e| e["detail"].as_str().map(str::to_owned))
        .collect();
    assert!(
        details.iter().any(|d| d.contains(&format!(
            "identity `{me}` (peer) may not act as the requested user `someone-else`"
        ))),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("peer authentication needs a Unix-domain socket")),
        "{details:?}"
    );
}
