//! SCRAM-SHA-256(-PLUS) against an independent client implementation: postgres-protocol's
//! `ScramSha256`, the client side tokio-postgres uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use auth_core::contract::authenticator::{
    AuthenticatorCapabilities, AuthenticatorFixture, run_all,
};
use auth_core::{
    AccountError, Attempt, Authenticator, ConnectionInfo, Conversation, ConversationError,
    Credential, CredentialError, Error, Outcome, Protocol,
};
use auth_password::{ScramAuthenticator, UserStatus};
use common::{Binding, cheap, scram_attempt, users_with};

const CERT_HASH: &[u8] = b"sha256-of-the-server-certificate";

async fn scram() -> (ScramAuthenticator, auth_password::Users) {
    let (users, _) = users_with(
        &[
            ("alice", "alice's long password"),
            ("bob", "bob's long password"),
        ],
        cheap(),
    )
    .await;
    (ScramAuthenticator::new(users.clone(), [0x5A; 32]), users)
}

#[tokio::test]
async fn an_independent_client_authenticates_and_verifies_the_server() {
    let (auth, _) = scram().await;
    let (mut attempt, verified) =
        scram_attempt("alice", "alice's long password", Binding::None, None);
    let out = auth.authenticate(&mut attempt).await;
    let session = out.session().expect("authenticated");
    assert_eq!(session.principal(), "alice");
    assert_eq!(session.method(), "scram");
    assert!(
        verified.load(Ordering::SeqCst),
        "the client checked the server signature"
    );
}

#[tokio::test]
async fn scram_sha_256_plus_binds_to_the_tls_certificate() {
    let (auth, _) = scram().await;
    let (mut attempt, verified) = scram_attempt(
        "alice",
        "alice's long password",
        Binding::EndPoint(CERT_HASH.to_vec()),
        Some(CERT_HASH.to_vec()),
    );
    assert!(auth.authenticate(&mut attempt).await.is_authenticated());
    assert!(verified.load(Ordering::SeqCst));

    // A man in the middle terminates TLS with another certificate: the hashes differ.
    let (mut attempt, _) = scram_attempt(
        "alice",
        "alice's long password",
        Binding::EndPoint(b"the-attackers-certificate-hash".to_vec()),
        Some(CERT_HASH.to_vec()),
    );
    let out = auth.authenticate(&mut attempt).await;
    assert_eq!(
        out.failure().unwrap().error,
        Error::Credential(CredentialError::Malformed)
    );
    assert!(
        out.failure()
            .unwrap()
            .detail
            .contains("channel-binding data does not match")
    );
}

#[tokio::test]
async fn the_y_flag_is_refused_when_plus_was_offered() {
    let (auth, _) = scram().await;
    let (mut attempt, _) = scram_attempt(
        "alice",
        "alice's long password",
        Binding::Unrequested,
        Some(CERT_HASH.to_vec()),
    );
    let out = auth.authenticate(&mut attempt).await;
    assert!(
        out.failure().unwrap().detail.contains("channel binding"),
        "{out:?}"
    );
    // Without TLS, `y` is honest and accepted.
    let (mut attempt, _) =
        scram_attempt("alice", "alice's long password", Binding::Unrequested, None);
    assert!(auth.authenticate(&mut attempt).await.is_authenticated());
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_alike_and_the_server_proves_nothing() {
    let (auth, _) = scram().await;
    let (mut wrong, wrong_verified) =
        scram_attempt("alice", "not her password", Binding::None, None);
    let (mut unknown, unknown_verified) =
        scram_attempt("mallory", "whatever password", Binding::None, None);
    let w = auth.authenticate(&mut wrong).await;
    let u = auth.authenticate(&mut unknown).await;
    assert_eq!(
        w.failure().unwrap().error,
        Error::Credential(CredentialError::Invalid)
    );
    assert_eq!(
        u.failure().unwrap().error,
        Error::Credential(CredentialError::Invalid)
    );
    assert!(!wrong_verified.load(Ordering::SeqCst) && !unknown_verified.load(Ordering::SeqCst));
}

/// Records the server-first message and then hangs up.
#[derive(Debug, Default)]
struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

#[async_trait]
impl Conversation for Recorder {
    async fn exchange(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, ConversationError> {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8(challenge).unwrap());
        Err(ConversationError::Closed)
    }
    async fn complete(&mut self, _: Vec<u8>) -> Result<(), ConversationError> {
        Ok(())
    }
}

async fn server_first(auth: &ScramAuthenticator, user: &str) -> String {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut attempt = Attempt::new(
        ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.9:1".parse().unwrap()).with_user(user),
        Credential::Sasl {
            mechanism: "SCRAM-SHA-256".into(),
            initial: Some(b"n,,n=,r=clientnonce".to_vec().into()),
        },
    )
    .with_conversation(Box::new(Recorder(seen.clone())));
    let _ = auth.authenticate(&mut attempt).await;
    seen.lock().unwrap()[0].clone()
}

fn salt_and_iterations(server_first: &str) -> String {
    server_first
        .split(',')
        .skip(1)
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test]
async fn an_unknown_users_mock_salt_is_stable_and_looks_real() {
    let (auth, _) = scram().await;
    let a = salt_and_iterations(&server_first(&auth, "ghost").await);
    let b = salt_and_iterations(&server_first(&auth, "ghost").await);
    assert_eq!(a, b, "the same unknown user always sees the same salt");
    assert_ne!(
        a,
        salt_and_iterations(&server_first(&auth, "phantom").await)
    );
    let real = salt_and_iterations(&server_first(&auth, "alice").await);
    assert_eq!(
        real.len(),
        a.len(),
        "same shape as a real user's: {real} vs {a}"
    );
    assert!(a.ends_with(",i=4096"));
}

#[tokio::test]
async fn account_refused_is_reported_after_a_correct_proof_only() {
    let (auth, users) = scram().await;
    users
        .update("bob", |r| r.status = UserStatus::Disabled)
        .await
        .unwrap();
    let (mut right, verified) = scram_attempt("bob", "bob's long password", Binding::None, None);
    let out = auth.authenticate(&mut right).await;
    assert!(
        matches!(
            out,
            Outcome::AccountRefused {
                error: AccountError::Disabled,
                ..
            }
        ),
        "{out:?}"
    );
    assert!(
        !verified.load(Ordering::SeqCst),
        "no server-final for a disabled account"
    );
    let (mut wrong, _) = scram_attempt("bob", "wrong password!!", Binding::None, None);
    assert_eq!(
        auth.authenticate(&mut wrong).await.failure().unwrap().error,
        Error::Credential(CredentialError::Invalid)
    );
    users
        .update("bob", |r| r.status = UserStatus::Deleted)
        .await
        .unwrap();
    let (mut right, _) = scram_attempt("bob", "bob's long password", Binding::None, None);
    assert_eq!(
        auth.authenticate(&mut right).await.failure().unwrap().error,
        Error::Credential(CredentialError::Invalid)
    );
}

#[tokio::test]
async fn garbage_client_messages_are_protocol_errors() {
    let (auth, _) = scram().await;
    for initial in [
        b"".to_vec(),
        b"garbage".to_vec(),
        b"n,,n=,r=".to_vec(),
        vec![0xff; 10],
        vec![b'a'; 100_000],
    ] {
        let mut attempt = Attempt::new(
            ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.9:1".parse().unwrap())
                .with_user("alice"),
            Credential::Sasl {
                mechanism: "SCRAM-SHA-256".into(),
                initial: Some(initial.into()),
            },
        )
        .with_conversation(Box::new(Recorder::default()));
        let out = auth.authenticate(&mut attempt).await;
        assert_eq!(
            out.failure().unwrap().error,
            Error::Credential(CredentialError::Malformed),
            "{out:?}"
        );
    }
}

#[tokio::test]
async fn scram_passes_the_authenticator_contract() {
    let (auth, _) = scram().await;
    let fixture = AuthenticatorFixture {
        valid: Arc::new(|| scram_attempt("alice", "alice's long password", Binding::None, None).0),
        wrong_secret: Arc::new(|| {
            scram_attempt("alice", "a wrong password", Binding::None, None).0
        }),
        unknown_principal: Arc::new(|| {
            scram_attempt("nobody", "alice's long password", Binding::None, None).0
        }),
        foreign: Arc::new(|| common::password_attempt("alice", "alice's long password")),
        principal: "alice".into(),
        secrets: vec!["alice's long password".into(), "a wrong password".into()],
    };
    run_all(&auth, &fixture, &AuthenticatorCapabilities::default()).await;
}

#[tokio::test]
async fn the_mock_secret_never_shows_in_debug_output() {
    let (users, _) = users_with(&[], cheap()).await;
    let secret = [0xAB_u8; 32];
    let auth = ScramAuthenticator::new(users, secret);
    let shown = format!("{auth:?} {auth:#?}");
    assert!(shown.contains("[redacted]"), "{shown}");
    for needle in [
        "171", "0xab", "0xAB", "ab, ab", "AB, AB", "ABAB", "abab", "q6ur",
    ] {
        assert!(!shown.contains(needle), "`{needle}` in {shown}");
    }
}
