//! CORE-3: a multi-round mechanism runs through the engine over a channel conversation,
//! the way a push-style adapter (pgwire) drives it; closed, oversized, silent and
//! non-interactive clients fail cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use auth_core::conversation::{ServerMessage, channel};
use auth_core::secrecy::ExposeSecret;
use auth_core::{
    Attempt, Authenticator, Chain, ConnectionInfo, Conversation, ConversationError, Credential,
    CredentialError, CredentialKind, Engine, Error, InfrastructureError, Link, Outcome, Protocol,
    StandardSession,
};
use common::decide;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const SHARED: &[u8] = b"shared-secret-of-alice";
const NONCE: &[u8] = b"server-nonce-123";

fn proof(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

/// A two-message challenge-response mechanism, `DEMO-CR`: the server sends a nonce, the
/// client answers H(secret, nonce), the server finishes with H(nonce, secret).
#[derive(Debug)]
struct ChallengeResponse;

fn conversation_failure(e: &ConversationError) -> Outcome {
    match e {
        ConversationError::NotInteractive { .. } => {
            Outcome::rejected(CredentialError::Missing, "needs another round")
        }
        other => Outcome::rejected(CredentialError::Malformed, other.to_string()),
    }
}

#[async_trait]
impl Authenticator for ChallengeResponse {
    fn name(&self) -> &str {
        "demo-cr"
    }
    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Sasl("DEMO-CR")]
    }
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let user = match &attempt.credential {
            Credential::Sasl {
                initial: Some(i), ..
            } => String::from_utf8_lossy(i.expose_secret()).into_owned(),
            _ => {
                return Outcome::rejected(CredentialError::Malformed, "no initial response");
            }
        };
        let Some(conv) = attempt.conversation() else {
            return Outcome::unavailable("the adapter provided no conversation");
        };
        let answer = match conv.exchange(NONCE.to_vec()).await {
            Ok(a) => a,
            Err(e) => return conversation_failure(&e),
        };
        let expected = proof(&[SHARED, NONCE]);
        if user != "alice" || !bool::from(answer.ct_eq(&expected)) {
            return Outcome::rejected(CredentialError::Invalid, "wrong proof");
        }
        if let Err(e) = conv.complete(proof(&[NONCE, SHARED])).await {
            return conversation_failure(&e);
        }
        Outcome::Authenticated(
            StandardSession::new(user, "demo-cr", std::time::SystemTime::now()).boxed(),
        )
    }
}

fn attempt() -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.1:1".parse().unwrap()),
        Credential::Sasl {
            mechanism: "DEMO-CR".into(),
            initial: Some(b"alice".to_vec().into()),
        },
    )
}

/// An engine running the mechanism under `timeout`.
fn engine(timeout: Duration) -> Arc<Engine> {
    let chain = Chain::builder()
        .push(
            Link::new(Arc::new(ChallengeResponse), auth_core::Control::CONCLUSIVE)
                .with_timeout(timeout),
        )
        .build();
    Arc::new(common::engine(chain).build())
}

#[tokio::test]
async fn a_two_round_exchange_succeeds_over_the_channel() {
    let (server_end, mut client) = channel(1024);
    let engine = engine(Duration::from_secs(5));
    let task = tokio::spawn(async move {
        let mut a = attempt().with_conversation(Box::new(server_end));
        decide(&engine, &mut a).await
    });
    // The adapter's loop: forward challenges, relay answers.
    let Some(ServerMessage::Challenge(nonce)) = client.next().await else {
        panic!("expected a challenge")
    };
    assert_eq!(nonce, NONCE);
    client.answer(proof(&[SHARED, &nonce])).await.unwrap();
    let Some(ServerMessage::Final(server_proof)) = client.next().await else {
        panic!("expected the final message")
    };
    assert_eq!(
        server_proof,
        proof(&[NONCE, SHARED]),
        "mutual authentication"
    );
    assert!(
        client.next().await.is_none(),
        "the authentication dropped its end"
    );
    let outcome = task.await.unwrap();
    assert_eq!(outcome.session().unwrap().principal(), "alice");
}

#[tokio::test]
async fn a_wrong_answer_is_rejected_and_no_final_message_is_sent() {
    let (server_end, mut client) = channel(1024);
    let engine = engine(Duration::from_secs(5));
    let task = tokio::spawn(async move {
        let mut a = attempt().with_conversation(Box::new(server_end));
        decide(&engine, &mut a).await
    });
    assert!(matches!(
        client.next().await,
        Some(ServerMessage::Challenge(_))
    ));
    client.answer(b"not the proof".to_vec()).await.unwrap();
    assert!(client.next().await.is_none());
    assert_eq!(
        task.await.unwrap().failure().unwrap().error,
        Error::Credential(CredentialError::Invalid)
    );
}

#[tokio::test]
async fn a_client_that_goes_away_or_sends_too_much_fails_cleanly() {
    let (server_end, client) = channel(1024);
    drop(client);
    let mut a = attempt().with_conversation(Box::new(server_end));
    let out = decide(&engine(Duration::from_secs(5)), &mut a).await;
    assert_eq!(
        out.failure().unwrap().error,
        Error::Credential(CredentialError::Malformed)
    );
    assert!(out.failure().unwrap().detail.contains("closed"));

    let (server_end, mut client) = channel(16);
    let e = engine(Duration::from_secs(5));
    let task = tokio::spawn(async move {
        let mut a = attempt().with_conversation(Box::new(server_end));
        decide(&e, &mut a).await
    });
    assert!(matches!(
        client.next().await,
        Some(ServerMessage::Challenge(_))
    ));
    client.answer(vec![b'x'; 17]).await.unwrap();
    let out = task.await.unwrap();
    assert!(out.failure().unwrap().detail.contains("exceeds 16 bytes"));
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_cut_off_by_the_link_timeout() {
    let (server_end, mut client) = channel(1024);
    let e = engine(Duration::from_secs(5));
    let task = tokio::spawn(async move {
        let mut a = attempt().with_conversation(Box::new(server_end));
        decide(&e, &mut a).await
    });
    assert!(matches!(
        client.next().await,
        Some(ServerMessage::Challenge(_))
    ));
    let started = tokio::time::Instant::now();
    let out = task.await.unwrap();
    assert_eq!(
        out.failure().unwrap().error,
        Error::Infrastructure(InfrastructureError::Timeout)
    );
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    drop(client);
}

/// An HTTP-style conversation that cannot do another round.
#[derive(Debug)]
struct OneShot;

#[async_trait]
impl Conversation for OneShot {
    async fn exchange(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, ConversationError> {
        Err(ConversationError::NotInteractive { challenge })
    }
    async fn complete(&mut self, _: Vec<u8>) -> Result<(), ConversationError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_non_interactive_transport_gets_the_challenge_back() {
    let mut a = attempt().with_conversation(Box::new(OneShot));
    let out = decide(&engine(Duration::from_secs(5)), &mut a).await;
    assert_eq!(
        out.failure().unwrap().error,
        Error::Credential(CredentialError::Missing)
    );
    let mut conv = OneShot;
    let err = conv.exchange(b"challenge".to_vec()).await.unwrap_err();
    assert_eq!(
        err,
        ConversationError::NotInteractive {
            challenge: b"challenge".to_vec()
        }
    );
}
