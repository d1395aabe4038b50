//! CORE-8, CORE-15: the limiter through the engine, with clients at chosen addresses.
//! No unauthenticated client can deny service to another user: running attempts never
//! fail a correct login, abandoned exchanges count against their address only, at most
//! `user_failures` wrong secrets are verified however many arrive at once, and a user's
//! known networks keep working while strangers are locked out (smart lockout).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use auth_core::conversation::{ConversationPeer, ServerMessage, channel};
use auth_core::rate_limit::{LimitSettings, Running};
use auth_core::secrecy::ExposeSecret;
use auth_core::{
    Attempt, AuditEventKind, Authenticator, AuthorizationError, Chain, ConnectionInfo, Credential,
    CredentialError, CredentialKind, Engine, Error, InfrastructureError, Link, ManualClock,
    MemoryAuditSink, MemoryRateLimiter, Outcome, OutcomeClass, Protocol, StandardSession,
};
use common::{Scripted, decide, engine, t0};
use proptest::prelude::*;

/// `PROOF`: the client names the user in its first message, the server challenges, the
/// client answers `right` or anything else. Verifying the answer takes `verify_for` and
/// is counted.
#[derive(Debug, Default)]
struct ProofMechanism {
    verify_for: Duration,
    verified: AtomicUsize,
}

#[async_trait]
impl Authenticator for ProofMechanism {
    fn name(&self) -> &str {
        "proof"
    }
    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Sasl("PROOF")]
    }
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let user = attempt.user().unwrap_or_default().to_owned();
        let Some(conversation) = attempt.conversation() else {
            return Outcome::unavailable("no conversation");
        };
        let answer = match conversation.exchange(b"challenge".to_vec()).await {
            Ok(a) => a,
            Err(e) => {
                return Outcome::rejected(CredentialError::Malformed, e.to_string());
            }
        };
        self.verified.fetch_add(1, Ordering::SeqCst);
        if !self.verify_for.is_zero() {
            tokio::time::sleep(self.verify_for).await;
        }
        if answer != b"right" {
            return Outcome::rejected(CredentialError::Invalid, "wrong proof");
        }
        Outcome::Authenticated(StandardSession::new(user, "proof", t0()).boxed())
    }
}

fn from(ip: &str, user: &str) -> ConnectionInfo {
    ConnectionInfo::tcp(Protocol::Postgres, format!("{ip}:40000").parse().unwrap())
        .with_tls(auth_core::TlsInfo::default())
        .with_user(user)
}

fn password(ip: &str, user: &str, secret: &str) -> Attempt {
    Attempt::new(from(ip, user), Credential::password(user, secret))
}

fn limiter(clock: &ManualClock) -> Arc<MemoryRateLimiter> {
    Arc::new(MemoryRateLimiter::with_clock(
        LimitSettings::default(),
        Arc::new(clock.clone()),
    ))
}

/// One `PROOF` exchange running in its own task, as pgwire drives it.
struct Exchange {
    peer: ConversationPeer,
    task: tokio::task::JoinHandle<Outcome>,
}

impl Exchange {
    /// Starts an exchange and waits for the server's challenge.
    async fn start(engine: &Arc<Engine>, ip: &str, user: &str) -> Result<Self, Outcome> {
        let (conversation, mut peer) = channel(1024);
        let mut attempt = Attempt::new(
            from(ip, user),
            Credential::Sasl {
                mechanism: "PROOF".into(),
                initial: Some(b"first".to_vec().into()),
            },
        )
        .with_conversation(Box::new(conversation));
        let engine = engine.clone();
        let task = tokio::spawn(async move { decide(&engine, &mut attempt).await });
        match peer.next().await {
            Some(ServerMessage::Challenge(_)) => Ok(Self { peer, task }),
            _ => Err(task.await.unwrap()),
        }
    }

    async fn answer(self, answer: &str) -> Outcome {
        let _ = self.peer.answer(answer.as_bytes().to_vec()).await;
        self.task.await.unwrap()
    }
}

async fn login(engine: &Arc<Engine>, ip: &str, user: &str, answer: &str) -> Outcome {
    match Exchange::start(engine, ip, user).await {
        Ok(x) => x.answer(answer).await,
        Err(refused) => refused,
    }
}

fn error(out: &Outcome) -> Option<Error> {
    out.failure().map(|f| f.error)
}

fn proof_engine(limiter: &Arc<MemoryRateLimiter>, verify_for: Duration) -> Arc<Engine> {
    proof_engine_audited(limiter, verify_for, &MemoryAuditSink::new()).0
}

fn proof_engine_audited(
    limiter: &Arc<MemoryRateLimiter>,
    verify_for: Duration,
    audit: &MemoryAuditSink,
) -> (Arc<Engine>, Arc<ProofMechanism>) {
    let mechanism = Arc::new(ProofMechanism {
        verify_for,
        verified: AtomicUsize::new(0),
    });
    let chain = Chain::builder()
        .push(
            Link::new(mechanism.clone(), auth_core::Control::CONCLUSIVE)
                .with_timeout(Duration::from_secs(2)),
        )
        .build();
    let engine = engine(chain)
        .audit(Arc::new(audit.clone()))
        .rate_limiter(limiter.clone())
        .build();
    (Arc::new(engine), mechanism)
}

#[tokio::test(start_paused = true)]
async fn fifty_simultaneous_correct_logins_from_one_address_all_succeed() {
    let clock = ManualClock::new(t0());
    let limiter = limiter(&clock);
    let verifier = Scripted::delayed("password", OutcomeClass::Success, Duration::from_millis(30));
    let engine = engine(Chain::builder().link(verifier.clone()).build())
        .rate_limiter(limiter.clone())
        .build();
    let outcomes = futures::future::join_all(
        (0..50).map(|_| async { decide(&engine, &mut password("10.0.0.7", "alice", "pw")).await }),
    )
    .await;
    assert!(outcomes.iter().all(Outcome::is_authenticated));
    assert_eq!(verifier.calls(), 50);
    assert_eq!(limiter.running(), Running::default());

    // The same through round trips: fifty exchanges all awaiting their client at once.
    let engine = proof_engine(&limiter, Duration::from_millis(30));
    let mut started = Vec::new();
    for _ in 0..50 {
        started.push(Exchange::start(&engine, "10.0.0.7", "alice").await.unwrap());
    }
    let outcomes = futures::future::join_all(started.into_iter().map(|x| x.answer("right"))).await;
    assert!(outcomes.iter().all(Outcome::is_authenticated));
    assert_eq!(limiter.running(), Running::default());
}

#[tokio::test(start_paused = true)]
async fn a_hundred_concurrent_wrong_passwords_reach_the_verifier_five_times() {
    let clock = ManualClock::new(t0());
    let limiter = limiter(&clock);
    let audit = MemoryAuditSink::new();
    let verifier = Scripted::delayed(
        "password",
        OutcomeClass::Rejected,
        Duration::from_millis(50),
    );
    let engine = engine(Chain::builder().link(verifier.clone()).build())
        .audit(Arc::new(audit.clone()))
        .rate_limiter(limiter.clone())
        .build();
    // From many addresses, so that no address lock cuts the test short.
    let outcomes = futures::future::join_all((0..100).map(|i| {
        let engine = &engine;
        async move {
            let ip = format!("10.1.{}.{}", i / 50, i % 50 + 1);
            decide(engine, &mut password(&ip, "alice", "guess")).await
        }
    }))
    .await;
    assert_eq!(
        verifier.calls(),
        5,
        "at most user_failures wrong secrets verified"
    );
    let refused = outcomes
        .iter()
        .filter(|o| error(o) == Some(Error::Authorization(AuthorizationError::RateLimited)))
        .count();
    assert_eq!(refused, 95);
    assert_eq!(limiter.running(), Running::default());
    let lockouts = audit.of_kind(AuditEventKind::Lockout);
    assert_eq!(lockouts.len(), 95);
    assert!(
        lockouts[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("user at unknown addresses locked for another 60 s")
    );
}

#[tokio::test(start_paused = true)]
async fn a_hundred_wrong_proofs_after_a_round_trip_are_verified_five_times() {
    let clock = ManualClock::new(t0());
    let limiter = limiter(&clock);
    let (engine, mechanism) =
        proof_engine_audited(&limiter, Duration::from_millis(50), &MemoryAuditSink::new());
    let mut started = Vec::new();
    for i in 0..100 {
        let ip = format!("10.4.{}.{}", i / 50, i % 50 + 1);
        started.push(Exchange::start(&engine, &ip, "alice").await.unwrap());
    }
    let outcomes = futures::future::join_all(started.into_iter().map(|x| x.answer("wrong"))).await;
    assert_eq!(mechanism.verified.load(Ordering::SeqCst), 5);
    let refused = outcomes
        .iter()
        .filter(|o| error(o) == Some(Error::Authorization(AuthorizationError::RateLimited)))
        .count();
    assert_eq!(refused, 95, "the slot is taken again for the answer");
    assert_eq!(limiter.running(), Running::default());
}

#[tokio::test(start_paused = true)]
async fn exchanges_awaiting_their_client_hold_no_verification_slot() {
    let clock = ManualClock::new(t0());
    let limiter = limiter(&clock);
    let engine = proof_engine(&limiter, Duration::ZERO);
    let mut waiting = Vec::new();
    for _ in 0..20 {
        waiting.push(Exchange::start(&engine, "10.0.0.9", "alice").await.unwrap());
    }
    assert_eq!(limiter.running().verifying, 0);
    assert!(
        login(&engine, "10.0.0.10", "alice", "right")
            .await
            .is_authenticated()
    );
    for x in waiting {
        assert!(x.answer("right").await.is_authenticated());
    }
}

/// Abandons one exchange the way `how` says.
async fn abandon(engine: &Arc<Engine>, ip: &str, how: usize) {
    let Ok(x) = Exchange::start(engine, ip, "alice").await else {
        return;
    };
    match how % 4 {
        // The task is aborted while the client is awaited (an unexpected frame).
        0 => {
            x.task.abort();
            let _ = x.task.await;
        }
        // The client hangs up while it is awaited.
        1 => {
            drop(x.peer);
            let _ = x.task.await;
        }
        // The client answers and hangs up while the answer is verified (argon2 running).
        2 => {
            x.peer.answer(b"right".to_vec()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            x.task.abort();
            let _ = x.task.await;
        }
        // The client never answers: the link times out while it is awaited.
        _ => {
            let out = x.task.await.unwrap();
            assert_eq!(
                error(&out),
                Some(Error::Infrastructure(InfrastructureError::Timeout))
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn abandoned_exchanges_count_against_the_address_never_the_user() {
    for count in [5, 50] {
        let clock = ManualClock::new(t0());
        let limiter = limiter(&clock);
        let audit = MemoryAuditSink::new();
        let (engine, _) = proof_engine_audited(&limiter, Duration::from_millis(50), &audit);
        for i in 0..count {
            abandon(&engine, "10.0.0.66", i).await;
        }
        assert_eq!(
            limiter.running(),
            Running::default(),
            "nothing left in flight"
        );
        assert_eq!(
            audit.of_kind(AuditEventKind::Abandoned).len(),
            count.min(20),
            "each abandonment audited until the address locks"
        );
        assert!(audit.of_kind(AuditEventKind::AttemptFailed).is_empty());
        // Another address: at once.
        assert!(
            login(&engine, "10.0.0.77", "alice", "right")
                .await
                .is_authenticated()
        );
        // The same address: at once after 5, after the backoff after 50.
        let out = login(&engine, "10.0.0.66", "alice", "right").await;
        if count < 20 {
            assert!(out.is_authenticated());
        } else {
            assert_eq!(
                error(&out),
                Some(Error::Authorization(AuthorizationError::RateLimited))
            );
            assert!(
                out.failure()
                    .unwrap()
                    .detail
                    .starts_with("address locked for another 60 s")
            );
            clock.advance(Duration::from_secs(60));
            assert!(
                login(&engine, "10.0.0.66", "alice", "right")
                    .await
                    .is_authenticated()
            );
        }
    }
}

#[tokio::test]
async fn smart_lockout_keeps_the_known_address_working() {
    let clock = ManualClock::new(t0());
    let limiter = limiter(&clock);
    let verifier = Arc::new(PasswordIs("correct"));
    let engine = engine(Chain::builder().link(verifier).build())
        .rate_limiter(limiter.clone())
        .build();
    let (known, unknown, third) = ("192.0.2.10", "198.51.100.20", "203.0.113.30");
    assert!(
        decide(&engine, &mut password(known, "alice", "correct"))
            .await
            .is_authenticated()
    );
    let mut refused = 0;
    for _ in 0..50 {
        let out = decide(&engine, &mut password(unknown, "alice", "guess")).await;
        if error(&out) == Some(Error::Authorization(AuthorizationError::RateLimited)) {
            refused += 1;
        }
    }
    assert_eq!(refused, 45, "five guesses, then locked");
    let out = decide(&engine, &mut password(unknown, "alice", "correct")).await;
    assert_eq!(
        error(&out),
        Some(Error::Authorization(AuthorizationError::RateLimited)),
        "U is locked"
    );
    assert!(
        decide(&engine, &mut password("192.0.2.99", "alice", "correct"))
            .await
            .is_authenticated(),
        "K's network logs in"
    );
    let out = decide(&engine, &mut password(third, "alice", "correct")).await;
    assert!(
        out.failure()
            .unwrap()
            .detail
            .starts_with("user at unknown addresses locked for another 60 s"),
        "a third unknown address is refused"
    );
    clock.advance(Duration::from_secs(60));
    assert!(
        decide(&engine, &mut password(third, "alice", "correct"))
            .await
            .is_authenticated(),
        "until the lock ends"
    );

    // Failures from the known network lock the user there, and only there.
    for _ in 0..5 {
        decide(&engine, &mut password(known, "alice", "guess")).await;
    }
    let out = decide(&engine, &mut password(known, "alice", "correct")).await;
    assert!(
        out.failure()
            .unwrap()
            .detail
            .starts_with("user at address locked")
    );
    assert!(
        decide(&engine, &mut password(third, "alice", "correct"))
            .await
            .is_authenticated()
    );
}

#[tokio::test]
async fn one_limiter_counts_across_front_doors() {
    let clock = ManualClock::new(t0());
    let limiter = limiter(&clock);
    let door = |protocol: Protocol| {
        let chain = Chain::builder()
            .name(protocol.as_str())
            .link(Arc::new(PasswordIs("correct")))
            .build();
        engine(chain).rate_limiter(limiter.clone()).build()
    };
    let (http, pg) = (door(Protocol::Http), door(Protocol::Postgres));
    for _ in 0..5 {
        let mut a = password("198.51.100.1", "alice", "guess");
        a.connection.protocol = Protocol::Http;
        decide(&http, &mut a).await;
    }
    let out = decide(&pg, &mut password("198.51.100.2", "alice", "correct")).await;
    assert_eq!(
        error(&out),
        Some(Error::Authorization(AuthorizationError::RateLimited))
    );
}

#[tokio::test]
async fn a_chain_nested_in_a_limited_engine_counts_once() {
    // A nested chain has no limiter of its own: the engine admits and counts the attempt
    // once, however deep the link that judged it.
    let clock = ManualClock::new(t0());
    let limiter = limiter(&clock);
    let inner = Chain::builder()
        .name("inner")
        .link(Arc::new(PasswordIs("correct")))
        .build();
    let outer = engine(Chain::builder().link(Arc::new(inner)).build())
        .rate_limiter(limiter.clone())
        .build();
    for _ in 0..4 {
        let out = decide(&outer, &mut password("198.51.100.9", "alice", "guess")).await;
        assert_eq!(
            error(&out),
            Some(Error::Credential(CredentialError::Invalid))
        );
    }
    assert!(
        decide(&outer, &mut password("198.51.100.9", "alice", "correct"))
            .await
            .is_authenticated(),
        "four guesses, not eight"
    );
    assert_eq!(limiter.running(), Running::default());
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_slot_is_bounded() {
    let clock = ManualClock::new(t0());
    let limiter = Arc::new(MemoryRateLimiter::with_clock(
        LimitSettings {
            max_waiting_per_user: 3,
            ..LimitSettings::default()
        },
        Arc::new(clock.clone()),
    ));
    let audit = MemoryAuditSink::new();
    let verifier = Scripted::delayed("password", OutcomeClass::Success, Duration::from_secs(1));
    let engine = engine(Chain::builder().link(verifier).build())
        .audit(Arc::new(audit.clone()))
        .rate_limiter(limiter.clone())
        .build();
    let outcomes = futures::future::join_all((0..10).map(|i| {
        let engine = &engine;
        async move {
            let ip = format!("10.2.0.{}", i + 1);
            decide(engine, &mut password(&ip, "alice", "pw")).await
        }
    }))
    .await;
    let ok = outcomes.iter().filter(|o| o.is_authenticated()).count();
    assert_eq!(ok, 8, "five verify, three wait, two find the queue full");
    let busy = audit.of_kind(AuditEventKind::Busy);
    assert_eq!(busy.len(), 2);
    assert!(busy[0]["detail"].as_str().unwrap().starts_with("busy"));
    assert_eq!(limiter.running(), Running::default());
}

/// Accepts exactly one password.
#[derive(Debug)]
struct PasswordIs(&'static str);

#[async_trait]
impl Authenticator for PasswordIs {
    fn name(&self) -> &str {
        "password"
    }
    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Password]
    }
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::Password { user, password } = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        if password.expose_secret() == self.0 {
            Outcome::Authenticated(StandardSession::new(user.clone(), "password", t0()).boxed())
        } else {
            Outcome::rejected(CredentialError::Invalid, "wrong password")
        }
    }
}

/// What the property test does next to one of its clients.
#[derive(Debug, Clone)]
enum Step {
    Start(usize),
    Answer(usize, bool),
    HangUp(usize),
    Abort(usize),
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..8usize).prop_map(Step::Start),
        (0..8usize, any::<bool>()).prop_map(|(i, right)| Step::Answer(i, right)),
        (0..8usize).prop_map(Step::HangUp),
        (0..8usize).prop_map(Step::Abort),
        (0..3000u64).prop_map(Step::Advance),
    ]
}

/// Lets every task run until it waits on something the test controls.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random interleavings of start, finish (right or wrong), hang-up, abort and
    /// timeout never hold more than `user_failures` verification slots, and leave
    /// nothing in flight.
    #[test]
    fn any_interleaving_leaves_nothing_in_flight(steps in proptest::collection::vec(step(), 1..80)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let clock = ManualClock::new(t0());
            let limiter = limiter(&clock);
            let engine = proof_engine(&limiter, Duration::from_millis(100));
            let mut clients: Vec<Option<(Option<ConversationPeer>, tokio::task::JoinHandle<Outcome>)>> =
                (0..8).map(|_| None).collect();
            for s in steps {
                match s {
                    Step::Start(i) if clients[i].is_none() => {
                        let (conversation, peer) = channel(64);
                        let mut attempt = Attempt::new(
                            from(&format!("10.3.0.{}", i % 3 + 1), "alice"),
                            Credential::Sasl { mechanism: "PROOF".into(), initial: Some(b"x".to_vec().into()) },
                        )
                        .with_conversation(Box::new(conversation));
                        let engine = engine.clone();
                        let task = tokio::spawn(async move { decide(&engine, &mut attempt).await });
                        clients[i] = Some((Some(peer), task));
                    }
                    Step::Answer(i, right) => {
                        if let Some((Some(peer), _)) = &mut clients[i]
                            && let Ok(Some(ServerMessage::Challenge(_))) =
                                tokio::time::timeout(Duration::ZERO, peer.next()).await
                        {
                            let _ = peer.answer(if right { b"right".to_vec() } else { b"wrong".to_vec() }).await;
                        }
                    }
                    Step::HangUp(i) => {
                        if let Some((peer, _)) = &mut clients[i] {
                            peer.take();
                        }
                    }
                    Step::Abort(i) => {
                        if let Some((_, task)) = clients[i].take() {
                            task.abort();
                        }
                    }
                    Step::Advance(ms) => {
                        clock.advance(Duration::from_millis(ms));
                        tokio::time::advance(Duration::from_millis(ms)).await;
                    }
                    Step::Start(_) => {}
                }
                settle().await;
                assert!(limiter.running().verifying <= 5);
                for c in &mut clients {
                    if c.as_ref().is_some_and(|(_, t)| t.is_finished()) {
                        c.take();
                    }
                }
            }
            for (_, task) in clients.into_iter().flatten() {
                task.abort();
                let _ = task.await;
            }
            settle().await;
            assert_eq!(limiter.running(), Running::default());
        });
    }
}
