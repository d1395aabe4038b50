//! The chain beyond its truth table: which failure it reports, which session it returns,
//! what the engine running it audits, timeouts and rate limiting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use auth_core::rate_limit::LimitSettings;
use auth_core::{
    AccountError, Attempt, AuthorizationError, ConnectionInfo, CredentialError, InfrastructureError,
};
use auth_core::{
    AuditEventKind, Authenticator, Chain, Control, Credential, Error, ManualClock, MemoryAuditSink,
    MemoryRateLimiter, Outcome, OutcomeClass, Protocol, SessionState,
};
use common::{Scripted, decide, engine, remote_password};

use OutcomeClass::*;

fn failure_of(outcome: &Outcome) -> Error {
    outcome.failure().expect("a failure").error
}

#[tokio::test]
async fn reports_the_most_specific_failure_not_the_last() {
    // OAuth down (falls through), then the password is wrong: the client hears 28P01, not
    // "unavailable".
    let chain = Chain::builder()
        .link_with(
            Scripted::new("oauth", Unavailable),
            Control::CONCLUSIVE.fallback_on_unavailable(),
        )
        .link(Scripted::new("password", Rejected))
        .build();
    let out = chain
        .authenticate(&mut remote_password("alice", "pw"))
        .await;
    assert_eq!(
        failure_of(&out),
        Error::Credential(CredentialError::Invalid)
    );

    // Password wrong first (ignored by SUFFICIENT), then a decisive outage: the decisive
    // failure is reported even though a higher-ranked one was seen.
    let chain = Chain::builder()
        .link_with(Scripted::new("wallet", Rejected), Control::SUFFICIENT)
        .link_with(Scripted::new("kerberos", Unavailable), Control::REQUIRED)
        .build();
    let out = chain
        .authenticate(&mut remote_password("alice", "pw"))
        .await;
    assert_eq!(
        failure_of(&out),
        Error::Infrastructure(InfrastructureError::Unavailable)
    );

    // Two decisive failures: the higher rank wins regardless of order.
    let chain = Chain::builder()
        .link_with(Scripted::new("a", Unavailable), Control::REQUIRED)
        .link_with(Scripted::new("b", AccountRefused), Control::REQUIRED)
        .build();
    let out = chain
        .authenticate(&mut remote_password("alice", "pw"))
        .await;
    assert_eq!(out.class(), OutcomeClass::AccountRefused);
    assert_eq!(failure_of(&out), Error::Account(AccountError::Locked));

    // Equal rank: the earliest wins.
    let chain = Chain::builder()
        .link_with(
            Scripted::failing(
                "jwt",
                Rejected,
                Error::Credential(CredentialError::BadSignature),
            ),
            Control::REQUIRED,
        )
        .link_with(Scripted::new("password", Rejected), Control::REQUIRED)
        .build();
    let out = chain
        .authenticate(&mut remote_password("alice", "pw"))
        .await;
    assert_eq!(
        failure_of(&out),
        Error::Credential(CredentialError::BadSignature)
    );
}

#[tokio::test]
async fn nothing_applicable_reports_missing_or_unsupported() {
    let chain = Chain::builder()
        .link(Scripted::new("password", Success))
        .build();
    let mut absent = Attempt::new(
        ConnectionInfo::tcp(Protocol::Http, "10.0.0.1:1".parse().unwrap())
            .with_tls(auth_core::TlsInfo::default()),
        Credential::Absent,
    );
    assert!(matches!(
        chain.authenticate(&mut absent).await,
        Outcome::NotApplicable
    ));
    let engine = engine(chain).build();
    assert_eq!(
        failure_of(&decide(&engine, &mut absent).await),
        Error::Credential(CredentialError::Missing)
    );
    let mut bearer = Attempt::new(
        ConnectionInfo::tcp(Protocol::Http, "10.0.0.1:1".parse().unwrap())
            .with_tls(auth_core::TlsInfo::default()),
        Credential::bearer("t"),
    );
    assert_eq!(
        failure_of(&decide(&engine, &mut bearer).await),
        Error::Credential(CredentialError::Unsupported)
    );
}

#[tokio::test]
async fn the_first_success_supplies_the_session_and_it_becomes_active() {
    let chain = Chain::builder()
        .link_with(Scripted::new("first", Success), Control::REQUIRED)
        .link_with(Scripted::new("second", Success), Control::REQUIRED)
        .build();
    let out = chain
        .authenticate(&mut remote_password("alice", "pw"))
        .await;
    let s = out.session().unwrap();
    assert_eq!(s.method(), "first");
    assert_eq!(s.state(), SessionState::Active);
}

#[tokio::test]
async fn every_step_is_audited_and_one_event_per_attempt() {
    let audit = MemoryAuditSink::new();
    let chain = Chain::builder()
        .link_with(
            Scripted::new("oauth", Unavailable),
            Control::CONCLUSIVE.fallback_on_unavailable(),
        )
        .link(Scripted::new("kerberos", NotApplicable))
        .link(Scripted::new("password", Success))
        .build();
    let engine = engine(chain).audit(Arc::new(audit.clone())).build();
    let out = decide(&engine, &mut remote_password("alice", "hunter22")).await;
    assert!(out.is_authenticated());

    let events = audit.events();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["fallback", "fallback", "step", "attempt_succeeded"]);
    assert_eq!(events[0]["method"], "oauth");
    assert_eq!(events[0]["outcome"], "unavailable");
    assert_eq!(events[0]["action"], "ignore");
    assert_eq!(events[0]["error"], "unavailable");
    assert_eq!(events[1]["outcome"], "not_applicable");
    assert_eq!(events[2]["action"], "done");
    let last = &events[3];
    assert_eq!(last["method"], "password");
    assert_eq!(last["username"], "alice");
    assert_eq!(last["source"], "10.0.0.7:50000");
    assert_eq!(last["connection_id"], 42);
    assert_eq!(last["protocol"], "postgres");
    assert!(last["duration_us"].is_u64());
    assert!(last["timestamp"].as_str().unwrap().ends_with('Z'));
    let all = serde_json::to_string(&events).unwrap();
    assert!(
        !all.contains("hunter22"),
        "a password reached the audit log"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_link_times_out_as_unavailable_and_can_fall_through() {
    let slow = Scripted::slow("oauth", Duration::from_secs(30));
    let chain = Chain::builder()
        .push(
            auth_core::Link::new(slow.clone(), Control::CONCLUSIVE.fallback_on_unavailable())
                .with_timeout(Duration::from_millis(200)),
        )
        .link(Scripted::new("password", Success))
        .build();
    let started = tokio::time::Instant::now();
    let out = chain
        .authenticate(&mut remote_password("alice", "pw"))
        .await;
    assert!(out.is_authenticated());
    assert_eq!(out.session().unwrap().method(), "password");
    assert_eq!(started.elapsed(), Duration::from_millis(200));

    // Without fallback the timeout denies, with the Timeout kind.
    let chain = Chain::builder()
        .link(Scripted::slow("oauth", Duration::from_secs(30)))
        .link(Scripted::new("password", Success))
        .build();
    let started = tokio::time::Instant::now();
    let out = chain
        .authenticate(&mut remote_password("alice", "pw"))
        .await;
    assert_eq!(
        failure_of(&out),
        Error::Infrastructure(InfrastructureError::Timeout)
    );
    assert_eq!(started.elapsed(), auth_core::chain::DEFAULT_TIMEOUT);
}

#[tokio::test]
async fn the_rate_limiter_locks_out_before_any_link_runs() {
    let clock = ManualClock::at_fixed_epoch();
    let limiter = Arc::new(MemoryRateLimiter::with_clock(
        LimitSettings::default(),
        Arc::new(clock.clone()),
    ));
    let audit = MemoryAuditSink::new();
    let password = Scripted::new("password", Rejected);
    let chain = Chain::builder().link(password.clone()).build();
    let engine = engine(chain)
        .audit(Arc::new(audit.clone()))
        .rate_limiter(limiter)
        .build();
    for _ in 0..5 {
        let out = decide(&engine, &mut remote_password("alice", "guess")).await;
        assert_eq!(
            failure_of(&out),
            Error::Credential(CredentialError::Invalid)
        );
    }
    let out = decide(&engine, &mut remote_password("alice", "guess")).await;
    assert_eq!(
        failure_of(&out),
        Error::Authorization(AuthorizationError::RateLimited)
    );
    assert_eq!(password.calls(), 5, "a locked attempt runs no method");
    let lockouts = audit.of_kind(AuditEventKind::Lockout);
    assert_eq!(lockouts.len(), 1);
    assert_eq!(lockouts[0]["username"], "alice");
    assert!(
        lockouts[0]["detail"]
            .as_str()
            .unwrap()
            .contains("user at unknown addresses locked for another 60 s")
    );

    clock.advance(Duration::from_secs(60));
    let out = decide(&engine, &mut remote_password("alice", "guess")).await;
    assert_eq!(
        failure_of(&out),
        Error::Credential(CredentialError::Invalid),
        "the lock lifted"
    );
}

#[tokio::test]
async fn unavailable_backends_do_not_count_towards_lockout() {
    let chain = Chain::builder()
        .link(Scripted::new("oauth", Unavailable))
        .build();
    let engine = engine(chain)
        .rate_limiter(Arc::new(MemoryRateLimiter::default()))
        .build();
    for _ in 0..10 {
        let out = decide(&engine, &mut remote_password("alice", "pw")).await;
        assert_eq!(
            failure_of(&out),
            Error::Infrastructure(InfrastructureError::Unavailable)
        );
    }
}

#[tokio::test]
async fn chains_nest_and_report_the_inner_method() {
    let inner = Chain::builder()
        .name("inner")
        .link(Scripted::new("wallet", NotApplicable))
        .link(Scripted::new("password", Success))
        .build();
    let outer = Chain::builder()
        .link(Scripted::new("oauth", NotApplicable))
        .link(Arc::new(inner))
        .build();
    let out = outer
        .authenticate(&mut remote_password("alice", "pw"))
        .await;
    assert_eq!(out.session().unwrap().method(), "password");
    assert!(
        outer
            .accepts()
            .contains(&auth_core::CredentialKind::Password)
    );
}

/// One call to the limiter: what, user, address, localhost.
type LimiterCall = (String, Option<String>, Option<std::net::IpAddr>, bool);

/// Records what the engine tells its limiter and its reservations.
#[derive(Debug, Default, Clone)]
struct RecordingLimiter {
    calls: Arc<std::sync::Mutex<Vec<LimiterCall>>>,
}

#[derive(Debug)]
struct RecordingHold(RecordingLimiter, LimiterCall);

#[async_trait::async_trait]
impl auth_core::RateLimiter for RecordingLimiter {
    async fn admit(
        &self,
        s: &auth_core::rate_limit::Subject<'_>,
    ) -> Result<auth_core::rate_limit::Reservation, auth_core::rate_limit::Refusal> {
        let call = (
            String::new(),
            s.user.map(Into::into),
            s.address,
            s.localhost,
        );
        self.note("admit", &call);
        Ok(auth_core::rate_limit::Reservation::new(RecordingHold(
            self.clone(),
            call,
        )))
    }
}

#[async_trait::async_trait]
impl auth_core::rate_limit::Hold for RecordingHold {
    async fn acquire(&self, _wait: Duration) -> Result<(), auth_core::rate_limit::Refusal> {
        self.0.note("acquire", &self.1);
        Ok(())
    }
    fn release(&self) {
        self.0.note("release", &self.1);
    }
    fn end(&self, ending: auth_core::rate_limit::Ending, holding: bool) {
        assert!(holding, "the slot is still held when a method decided");
        self.0.note(ending.as_str(), &self.1);
    }
}

impl RecordingLimiter {
    fn note(&self, what: &str, call: &LimiterCall) {
        let mut call = call.clone();
        call.0 = what.into();
        self.calls.lock().unwrap().push(call);
    }
}

#[tokio::test]
async fn the_limiter_hears_each_outcome_exactly_once_with_the_right_subject() {
    let limiter = Arc::new(RecordingLimiter::default());
    for class in [Rejected, Unavailable, Success, AccountRefused] {
        let chain = Chain::builder()
            .link(Scripted::new("password", class))
            .build();
        let engine = engine(chain).rate_limiter(limiter.clone()).build();
        decide(&engine, &mut remote_password("alice", "pw")).await;
    }
    let calls = limiter.calls.lock().unwrap().clone();
    let what: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
    // An outage is not the client's fault: it is never counted.
    assert_eq!(
        what,
        [
            "admit",
            "acquire",
            "failed",
            "admit",
            "acquire",
            "neutral",
            "admit",
            "acquire",
            "succeeded",
            "admit",
            "acquire",
            "failed"
        ]
    );
    for (_, user, address, localhost) in &calls {
        assert_eq!(user.as_deref(), Some("alice"));
        assert_eq!(*address, Some("10.0.0.7".parse().unwrap()));
        assert!(!localhost);
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_guesses_cannot_outrun_the_lockout() {
    let slow_wrong = Arc::new(Scripted {
        name: "password",
        class: Rejected,
        error: Error::Credential(CredentialError::Invalid),
        delay: Some(Duration::from_millis(100)),
        calls: std::sync::atomic::AtomicUsize::new(0),
    });
    let chain = Chain::builder().link(slow_wrong.clone()).build();
    let engine = engine(chain)
        .rate_limiter(Arc::new(MemoryRateLimiter::default()))
        .build();
    let outcomes = futures::future::join_all((0..20).map(|_| async {
        decide(&engine, &mut remote_password("alice", "guess"))
            .await
            .failure()
            .unwrap()
            .error
    }))
    .await;
    assert_eq!(slow_wrong.calls(), 5, "only five guesses ran");
    assert_eq!(
        outcomes
            .iter()
            .filter(|e| **e == Error::Authorization(AuthorizationError::RateLimited))
            .count(),
        15
    );
}

/// Proves the identity `alice` whatever user the connection asked for, as a Kerberos
/// ticket does.
#[derive(Debug)]
struct AlicesTicket;

#[async_trait::async_trait]
impl auth_core::Authenticator for AlicesTicket {
    fn name(&self) -> &str {
        "kerberos"
    }
    fn accepts(&self) -> &[auth_core::CredentialKind] {
        &[auth_core::CredentialKind::Password]
    }
    fn supports(&self, _: &auth_core::Credential) -> bool {
        true
    }
    async fn authenticate(&self, _: &mut auth_core::Attempt) -> Outcome {
        Outcome::Authenticated(
            auth_core::StandardSession::new("alice", "kerberos", common::t0()).boxed(),
        )
    }
}

#[tokio::test]
async fn an_identity_logs_in_only_as_the_user_the_connection_asked_for() {
    let limiter = Arc::new(MemoryRateLimiter::default());
    let audit = MemoryAuditSink::new();
    let chain = Chain::builder().link(Arc::new(AlicesTicket)).build();
    let engine = engine(chain)
        .audit(Arc::new(audit.clone()))
        .rate_limiter(limiter.clone())
        .build();
    let mut as_bob = remote_password("bob", "unused");
    let out = decide(&engine, &mut as_bob).await;
    assert_eq!(
        failure_of(&out),
        Error::Credential(CredentialError::Invalid)
    );
    let failed = audit.of_kind(AuditEventKind::AttemptFailed);
    assert!(
        failed[0]["detail"]
            .as_str()
            .unwrap()
            .contains("identity `alice` (kerberos) may not act as the requested user `bob`"),
        "{failed:?}"
    );
    let ip = "10.0.0.7".parse().unwrap();
    assert!(!limiter.is_known("bob", ip), "not a success for bob");

    let out = decide(&engine, &mut remote_password("alice", "unused")).await;
    assert_eq!(out.session().unwrap().user(), "alice");
    assert!(limiter.is_known("alice", ip));
}
