//! The password grant against a real OAuth server (django-oauth-toolkit): login, wrong
//! password, refresh with rotation, revocation when the session ends, and an endpoint that
//! is down or never answers, all within the time limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::clock::system_clock;
use auth_core::secrecy::{ExposeSecret, SecretString};
use auth_core::{
    Attempt, Authenticator, ConnectionInfo, Credential, CredentialError, Error, MemoryAuditSink,
    OpenSession, OutcomeClass, Protocol, Session, SessionState,
};
use auth_oauth::{ClientAuth, ClientSecret, PasswordGrantAuthenticator, PasswordGrantConfig};
use auth_tests::oauth_server::{CLIENT_SECRET, DjangoOAuth};

/// Client `gateway` at the server on `base`, over HTTPS trusting only the run CA.
fn config(base: &str, timeout: Duration) -> PasswordGrantConfig {
    PasswordGrantConfig {
        revocation_endpoint: Some(format!("{base}/o/revoke_token/")),
        http: common::run_ca_client(),
        timeout,
        ..PasswordGrantConfig::new(
            format!("{base}/o/token/"),
            "gateway",
            ClientAuth::SecretBasic(
                ClientSecret::new(SecretString::from(CLIENT_SECRET.to_owned())).unwrap(),
            ),
        )
    }
}

/// django-oauth-toolkit with the user alice, started off the runtime.
async fn alices_server() -> DjangoOAuth {
    tokio::task::spawn_blocking(|| {
        DjangoOAuth::start("alice", "alice long password").unwrap_or_else(|e| panic!("{e}"))
    })
    .await
    .unwrap()
}

fn attempt(user: &str, password: &str) -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.1:1".parse().unwrap()),
        Credential::password(user, password),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refresh_rotation_and_revocation() {
    let server = alices_server().await;
    let auth =
        PasswordGrantAuthenticator::new(config(&server.url(), Duration::from_secs(5))).unwrap();
    let out = auth
        .authenticate(&mut attempt("alice", "alice long password"))
        .await;
    assert_eq!(out.session().unwrap().user(), "alice");
    let out = auth
        .authenticate(&mut attempt("alice", "wrong password"))
        .await;
    assert_eq!(
        out.failure().unwrap().error,
        Error::Credential(CredentialError::Invalid)
    );
    let out = auth
        .authenticate(&mut attempt("mallory", "alice long password"))
        .await;
    assert_eq!(
        out.failure().unwrap().error,
        Error::Credential(CredentialError::Invalid)
    );

    let mut session = auth
        .login(
            "alice",
            &SecretString::from("alice long password".to_owned()),
        )
        .await
        .unwrap();
    let first = session.access_token().await.unwrap();
    assert!(session.expires().is_some() && !format!("{session:?}").contains(first.expose_secret()));
    session.refresh().await.unwrap();
    let second = session.access_token().await.unwrap();
    assert_ne!(
        first.expose_secret(),
        second.expose_secret(),
        "a new access token"
    );
    // Rotation: refreshing again works with the rotated refresh token.
    session.refresh().await.unwrap();
    let mut again = auth
        .login(
            "alice",
            &SecretString::from("alice long password".to_owned()),
        )
        .await
        .unwrap();
    again.refresh().await.unwrap();
    // Ending the session revokes its tokens: the server says they are no longer active.
    let current = session.access_token().await.unwrap();
    assert!(active(&server.url(), current.expose_secret()).await);
    session.revoke().await.unwrap();
    assert!(
        !active(&server.url(), current.expose_secret()).await,
        "revoked"
    );

    // The session stage: an adapter holds the session as `dyn Session` and closes it when
    // the connection ends; the close revokes the token at the provider.
    let token = again.access_token().await.unwrap();
    assert!(active(&server.url(), token.expose_secret()).await);
    let audit = Arc::new(MemoryAuditSink::default());
    let connection = ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.9:5000".parse().unwrap());
    let mut held: Box<dyn Session> = Box::new(again);
    held.transition(SessionState::Active).unwrap();
    let open = OpenSession::open(held, &connection, audit.clone(), system_clock());
    open.touch().unwrap();
    open.close_and_wait().await;
    assert!(
        !active(&server.url(), token.expose_secret()).await,
        "closing the session revoked its token"
    );
    let events: Vec<String> = audit
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, ["session_started", "session_ended"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_session_renews_its_token_and_ends_when_the_server_refuses() {
    let server = alices_server().await;
    // Refresh due at once: the tokens live shorter than an hour.
    let config = PasswordGrantConfig {
        refresh_before: Duration::from_secs(3600),
        ..config(&server.url(), Duration::from_secs(5))
    };
    let auth = PasswordGrantAuthenticator::new(config).unwrap();
    let mut session = auth
        .login(
            "alice",
            &SecretString::from("alice long password".to_owned()),
        )
        .await
        .unwrap();
    session.transition(SessionState::Active).unwrap();
    let first = session.access_token().await.unwrap();
    let audit = Arc::new(MemoryAuditSink::default());
    let connection = ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.9:5000".parse().unwrap());
    let open = OpenSession::open(
        Box::new(session),
        &connection,
        audit.clone(),
        system_clock(),
    );
    // A renewal refreshes: the server now has a newer refresh token than the login's.
    let counts = || tokio::task::block_in_place(|| server.token_counts().unwrap());
    let issued = counts().issued_refresh;
    open.renew().await;
    assert!(open.touch().is_ok());
    assert!(counts().issued_refresh > issued);
    assert!(
        !active(&server.url(), first.expose_secret()).await,
        "rotated out"
    );
    // Logged out at the server: the next renewal is refused and the session is over.
    tokio::task::block_in_place(|| server.revoke_all_refresh_tokens().unwrap());
    open.renew().await;
    assert_eq!(open.touch(), Err(auth_core::SessionOver::Expired));
    let events: Vec<String> = audit
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, ["session_started", "session_renewal_failed"]);
}

/// RFC 7662 introspection at the server, as client `gateway` (curl, trusting the run CA).
async fn active(base: &str, token: &str) -> bool {
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), auth_tests::pki::run_ca().unwrap().pem()).unwrap();
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "10", "--cacert"])
        .arg(ca.path())
        .args(["-u", &format!("gateway:{CLIENT_SECRET}")])
        .arg("--data-urlencode")
        .arg(format!("token={token}"))
        .arg(format!("{base}/o/introspect/"))
        .output()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    body["active"].as_bool().unwrap_or_else(|| panic!("{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_is_down_or_silent_is_unavailable_within_the_limit() {
    let limit = Duration::from_millis(500);
    // Down: nothing listens.
    let port = auth_tests::free_port().unwrap();
    let auth = PasswordGrantAuthenticator::new(config(&format!("http://127.0.0.1:{port}"), limit))
        .unwrap();
    let started = Instant::now();
    let out = auth.authenticate(&mut attempt("alice", "pw")).await;
    assert_eq!(out.class(), OutcomeClass::Unavailable, "{out:?}");
    assert!(started.elapsed() < limit + Duration::from_millis(100));
    // Silent: accepts the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let auth = PasswordGrantAuthenticator::new(config(&url, limit)).unwrap();
    let started = Instant::now();
    let out = auth.authenticate(&mut attempt("alice", "pw")).await;
    assert_eq!(out.class(), OutcomeClass::Unavailable, "{out:?}");
    assert!(
        started.elapsed() < limit + Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_grant_passes_the_authenticator_suite() {
    use auth_core::contract::authenticator::{
        AuthenticatorCapabilities, AuthenticatorFixture, run_all,
    };
    let server = alices_server().await;
    let auth =
        PasswordGrantAuthenticator::new(config(&server.url(), Duration::from_secs(5))).unwrap();
    let fixture = AuthenticatorFixture {
        valid: Arc::new(|| attempt("alice", "alice long password")),
        wrong_secret: Arc::new(|| attempt("alice", "not alice's password")),
        unknown_principal: Arc::new(|| attempt("nobody", "alice long password")),
        foreign: Arc::new(|| {
            Attempt::new(
                ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.1:1".parse().unwrap()),
                Credential::bearer("a-token"),
            )
        }),
        principal: "alice".into(),
        secrets: vec![
            "alice long password".into(),
            "not alice's password".into(),
            CLIENT_SECRET.into(),
        ],
    };
    let caps = AuthenticatorCapabilities {
        concurrency: 4,
        ..AuthenticatorCapabilities::default()
    };
    run_all(&auth, &fixture, &caps).await;
}
