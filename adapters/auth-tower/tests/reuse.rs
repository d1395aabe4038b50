//! Session reuse in the gate: a repeated bearer token skips the chain only while the
//! session is good, only on the chain that earned it, and never for a refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::policy::{AddressMatch, Rule, Target};
use auth_core::secrecy::ExposeSecret;
use auth_core::{
    Attempt, Authenticator, Chain, ConnectionInfo, Credential, CredentialKind, Error, ManualClock,
    Outcome, Peer, Policy, Protocol, StandardSession,
};
use auth_tower::{Gate, Verdict};
use http::HeaderMap;

/// Accepts tokens starting with `good-` as the rest of the token, with sessions that
/// expire `lifetime` after the clock's now; counts its calls.
#[derive(Debug)]
struct Tokens {
    calls: AtomicUsize,
    clock: Arc<ManualClock>,
    lifetime: Duration,
}

#[async_trait]
impl Authenticator for Tokens {
    fn name(&self) -> &str {
        "tokens"
    }

    fn accepts(&self) -> Vec<CredentialKind> {
        vec![CredentialKind::Bearer]
    }

    fn supports(&self, credential: &Credential) -> bool {
        matches!(credential, Credential::Bearer(_))
    }

    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let Credential::Bearer(token) = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        match token.expose_secret().strip_prefix("good-") {
            Some(user) => {
                let now = auth_core::Clock::now(self.clock.as_ref());
                Outcome::Authenticated(
                    StandardSession::new(user, "tokens", now)
                        .with_expiry(now + self.lifetime)
                        .boxed(),
                )
            }
            None => Outcome::rejected(Error::InvalidCredentials, "not good"),
        }
    }
}

struct Setup {
    gate: Gate,
    local: Arc<Tokens>,
    remote: Arc<Tokens>,
    clock: Arc<ManualClock>,
}

/// Localhost goes to one chain, everyone else to another, each with its own counter.
fn setup(lifetime: Duration, max_age: Duration) -> Setup {
    let clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
    ));
    let tokens = || {
        Arc::new(Tokens {
            calls: AtomicUsize::new(0),
            clock: clock.clone(),
            lifetime,
        })
    };
    let (local, remote) = (tokens(), tokens());
    let chain = |t: &Arc<Tokens>| Target::Chain(Arc::new(Chain::builder().link(t.clone()).build()));
    let policy = Policy::new(vec![
        Rule::new("local", chain(&local)).with_addresses(AddressMatch::Localhost),
        Rule::new("remote", chain(&remote)),
    ]);
    let gate = Gate::new(Arc::new(policy))
        .clock(clock.clone())
        .reuse_sessions(100, max_age);
    Setup {
        gate,
        local,
        remote,
        clock,
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers
}

fn from(addr: &str) -> ConnectionInfo {
    ConnectionInfo::new(Protocol::Http, Peer::Tcp(addr.parse().unwrap()))
}

async fn user(gate: &Gate, token: &str, addr: &str) -> Result<String, Error> {
    match gate.check(&bearer(token), from(addr)).await {
        Verdict::Granted { session, .. } => Ok(session.user().to_owned()),
        Verdict::Refused(error) => Err(error),
        other => panic!("{other:?}"),
    }
}

const LOCAL: &str = "127.0.0.1:5000";
const REMOTE: &str = "192.0.2.7:5000";

#[tokio::test]
async fn a_repeated_token_reuses_its_session_on_the_same_chain_only() {
    let s = setup(Duration::from_secs(3600), Duration::from_secs(60));
    assert_eq!(user(&s.gate, "good-alice", LOCAL).await, Ok("alice".into()));
    assert_eq!(user(&s.gate, "good-alice", LOCAL).await, Ok("alice".into()));
    assert_eq!(
        s.local.calls.load(Ordering::SeqCst),
        1,
        "the second request reused"
    );

    // Another token runs the chain.
    assert_eq!(user(&s.gate, "good-bob", LOCAL).await, Ok("bob".into()));
    assert_eq!(s.local.calls.load(Ordering::SeqCst), 2);

    // The same token from an address another rule covers runs that rule's chain.
    assert_eq!(
        user(&s.gate, "good-alice", REMOTE).await,
        Ok("alice".into())
    );
    assert_eq!(s.remote.calls.load(Ordering::SeqCst), 1);
    assert_eq!(s.local.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refusals_are_never_reused() {
    let s = setup(Duration::from_secs(3600), Duration::from_secs(60));
    for _ in 0..3 {
        assert_eq!(
            user(&s.gate, "forged", LOCAL).await,
            Err(Error::InvalidCredentials)
        );
    }
    assert_eq!(s.local.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn reuse_ends_at_max_age() {
    let s = setup(Duration::from_secs(3600), Duration::from_secs(60));
    user(&s.gate, "good-alice", LOCAL).await.unwrap();
    s.clock.advance(Duration::from_secs(59));
    user(&s.gate, "good-alice", LOCAL).await.unwrap();
    assert_eq!(s.local.calls.load(Ordering::SeqCst), 1);
    s.clock.advance(Duration::from_secs(1));
    user(&s.gate, "good-alice", LOCAL).await.unwrap();
    assert_eq!(
        s.local.calls.load(Ordering::SeqCst),
        2,
        "60 s on, the chain runs again"
    );
}

#[tokio::test]
async fn reuse_ends_when_the_session_expires() {
    let s = setup(Duration::from_secs(10), Duration::from_secs(60));
    user(&s.gate, "good-alice", LOCAL).await.unwrap();
    s.clock.advance(Duration::from_secs(10));
    user(&s.gate, "good-alice", LOCAL).await.unwrap();
    assert_eq!(
        s.local.calls.load(Ordering::SeqCst),
        2,
        "an expired session is not handed out again"
    );
}

#[tokio::test]
async fn without_reuse_every_request_runs_the_chain() {
    let s = setup(Duration::from_secs(3600), Duration::from_secs(60));
    let policy = s.gate.policy().clone();
    let gate = Gate::new(policy);
    for _ in 0..3 {
        user(&gate, "good-alice", LOCAL).await.unwrap();
    }
    assert_eq!(s.local.calls.load(Ordering::SeqCst), 3);
}
