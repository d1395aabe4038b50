//! The gate and the generic layer: a repeated bearer token skips the chain only while
//! the session is good, only on the chain that earned it, and never for a refusal; with a
//! minimal protocol mapping around a counting inner service, refusals never reach it,
//! grants and anonymous passes mark the request, and the service that was polled ready is
//! the one called (tower's contract), on both the gated and the reused path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::policy::{AddressMatch, NameMatch, Rule, Target};
use auth_core::secrecy::ExposeSecret;
use auth_core::{
    Attempt, Authenticator, AuthorizationError, Chain, ConnectionInfo, Credential, CredentialError,
    CredentialKind, Engine, Error, ManualClock, Outcome, Peer, Policy, Protocol, Session,
    StandardSession,
};
use auth_tower::{Gate, GateLayer, Mapping, Verdict};
use http::{Extensions, HeaderMap, Request, Response};
use tower::{Layer, Service, ServiceExt};

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

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Bearer]
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
            None => Outcome::rejected(CredentialError::Invalid, "not good"),
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
        Rule::new("no-admin", Target::Reject).with_users(NameMatch::Names(vec!["admin".into()])),
        Rule::new("local", chain(&local)).with_addresses(AddressMatch::Localhost),
        Rule::new("remote", chain(&remote)),
    ])
    .unwrap();
    // Plaintext connections (reuse keys on TLS, which some tests vary): the transport
    // rule is not the subject here.
    let engine = Engine::builder(policy)
        .dangerous()
        .allow_cleartext_without_tls()
        .clock(clock.clone())
        .build();
    let gate = Gate::new(Arc::new(engine))
        .dangerous()
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
    user_over(gate, token, from(addr)).await
}

async fn user_over(gate: &Gate, token: &str, connection: ConnectionInfo) -> Result<String, Error> {
    match gate.check(&bearer(token), connection).await {
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
async fn reuse_needs_the_same_user_rule_address_and_tls() {
    let s = setup(Duration::from_secs(3600), Duration::from_secs(60));
    let as_alice = from(REMOTE).with_user("alice");
    assert_eq!(
        user_over(&s.gate, "good-alice", as_alice.clone()).await,
        Ok("alice".into())
    );
    assert_eq!(
        user_over(&s.gate, "good-alice", as_alice).await,
        Ok("alice".into())
    );
    assert_eq!(s.remote.calls.load(Ordering::SeqCst), 1);
    // A rule for the user the connection names still refuses, cached token or not.
    assert_eq!(
        user_over(&s.gate, "good-alice", from(REMOTE).with_user("admin")).await,
        Err(Error::Authorization(AuthorizationError::Rejected))
    );
    // Another address on the same rule, or TLS where there was none: the chain decides.
    user_over(
        &s.gate,
        "good-alice",
        from("192.0.2.8:5000").with_user("alice"),
    )
    .await
    .unwrap();
    assert_eq!(s.remote.calls.load(Ordering::SeqCst), 2);
    let tls = from(REMOTE)
        .with_user("alice")
        .with_tls(auth_core::TlsInfo::default());
    user_over(&s.gate, "good-alice", tls).await.unwrap();
    assert_eq!(s.remote.calls.load(Ordering::SeqCst), 3);
    // A connection that names another user is not alice's, whatever her token proves.
    assert_eq!(
        user_over(&s.gate, "good-alice", from(REMOTE).with_user("bob")).await,
        Err(Error::Credential(CredentialError::Invalid))
    );
}

#[tokio::test]
async fn refusals_are_never_reused() {
    let s = setup(Duration::from_secs(3600), Duration::from_secs(60));
    for _ in 0..3 {
        assert_eq!(
            user(&s.gate, "forged", LOCAL).await,
            Err(Error::Credential(CredentialError::Invalid))
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
    let policy = s.gate.engine().clone();
    let gate = Gate::new(policy);
    for _ in 0..3 {
        user(&gate, "good-alice", LOCAL).await.unwrap();
    }
    assert_eq!(s.local.calls.load(Ordering::SeqCst), 3);
}

/// The identity a grant leaves in the extensions.
#[derive(Clone)]
struct Who(String);

/// Marks an anonymous pass.
#[derive(Clone)]
struct Anonymous;

struct Plain;

impl Mapping for Plain {
    type Body = String;

    fn connection(&self, _: &Extensions) -> ConnectionInfo {
        // Over TLS: bearer tokens are withheld from plaintext connections.
        ConnectionInfo::new(
            Protocol::Http,
            Peer::Tcp("192.0.2.1:40000".parse().unwrap()),
        )
        .with_tls(auth_core::TlsInfo::default())
    }

    fn grant(&self, session: Arc<dyn Session>, extensions: &mut Extensions) {
        extensions.insert(Who(session.user().to_owned()));
    }

    fn pass_anonymous(&self, extensions: &mut Extensions) {
        extensions.insert(Anonymous);
    }

    fn refuse(&self, error: Error) -> Response<String> {
        Response::builder()
            // The protocol's column of the mapping, as an adapter owns it.
            .status(match error {
                Error::Credential(CredentialError::Malformed) => 400,
                _ => 401,
            })
            .body(format!("refused: {}", error.code()))
            .unwrap()
    }
}

/// An inner service that answers with what the layer left in the extensions, counting
/// its calls, behind a concurrency limit of one: calling a clone that was not polled
/// ready panics, so the tests catch a layer that breaks tower's contract.
fn inner(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<()>,
    Response = Response<String>,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    let service = tower::service_fn(move |request: Request<()>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let who = match (
            request.extensions().get::<Who>(),
            request.extensions().get::<Anonymous>(),
        ) {
            (Some(Who(user)), _) => format!("user {user}"),
            (None, Some(_)) => "anonymous".to_owned(),
            (None, None) => "unmarked".to_owned(),
        };
        async move { Ok::<_, std::convert::Infallible>(Response::new(who)) }
    });
    tower::limit::ConcurrencyLimitLayer::new(1).layer(service)
}

#[tokio::test]
async fn refusals_never_reach_the_service_and_grants_mark_the_request() {
    let s = setup(Duration::from_secs(3600), Duration::from_secs(60));
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new(s.gate.engine().clone());
    let mut service = GateLayer::new(gate, Plain).layer(inner(calls.clone()));

    for (headers, status, body) in [
        (&[][..], 401, "refused: missing_credentials"),
        (
            &[("authorization", "Bearer forged")],
            401,
            "refused: invalid_credentials",
        ),
        (&[("authorization", "Basic !!!")], 400, "refused: malformed"),
        (
            &[("authorization", "Digest x")],
            401,
            "refused: missing_credentials",
        ),
    ] {
        let response = call(&mut service, headers).await;
        assert_eq!(
            (response.status().as_u16(), response.body().as_str()),
            (status, body),
            "{headers:?}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    for _ in 0..3 {
        let response = call(&mut service, &[("authorization", "Bearer good-alice")]).await;
        assert_eq!(response.body(), "user alice");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        s.remote.calls.load(Ordering::SeqCst),
        4,
        "the forged token and each good request ran the chain: no reuse without opting in"
    );
}

#[tokio::test]
async fn anonymous_requests_pass_marked_only_when_allowed() {
    let s = setup(Duration::from_secs(3600), Duration::from_secs(60));
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new(s.gate.engine().clone()).allow_anonymous();
    let mut service = GateLayer::new(gate, Plain).layer(inner(calls.clone()));
    assert_eq!(call(&mut service, &[]).await.body(), "anonymous");
    let refused = call(&mut service, &[("authorization", "Bearer forged")]).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_reused_path_calls_the_service_that_was_polled_ready() {
    let s = setup(Duration::from_secs(3600), Duration::from_secs(60));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service = GateLayer::new(s.gate, Plain).layer(inner(calls.clone()));
    for _ in 0..3 {
        let response = call(&mut service, &[("authorization", "Bearer good-alice")]).await;
        assert_eq!(response.body(), "user alice");
    }
    // A reused session is answered without a boxed authentication future.
    let request = Request::get("/")
        .header("authorization", "Bearer good-alice")
        .body(())
        .unwrap();
    let future = service.ready().await.unwrap().call(request);
    assert_eq!(format!("{future:?}"), "GateFuture::Direct");
    assert_eq!(future.await.unwrap().body(), "user alice");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(
        s.remote.calls.load(Ordering::SeqCst),
        1,
        "the first request earned the session, the others reused it"
    );
}

async fn call<S>(service: &mut S, headers: &[(&str, &str)]) -> Response<String>
where
    S: Service<Request<()>, Response = Response<String>, Error = std::convert::Infallible>,
{
    let mut builder = Request::get("/");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    service
        .ready()
        .await
        .unwrap()
        .call(builder.body(()).unwrap())
        .await
        .unwrap()
}
