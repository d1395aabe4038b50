//! What the password grant makes of each way a token endpoint can say no, against an
//! in-process token endpoint over HTTPS (a certificate from the harness's run CA): the
//! provider's refusals of the user (`access_denied`, `mfa_required`, a proxy's HTML 403,
//! `invalid_grant`) are `Rejected` with a credential error, so a chain never falls back
//! from them; outages (429, 5xx whatever the body, `temporarily_unavailable`, a 200 we
//! cannot read) are `Unavailable`; a refusal of our client (`invalid_client` after one try
//! with a re-read secret, `unauthorized_client`) is `Unavailable` with a configuration
//! error. A session's refresh follows the same classification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use auth_core::secrecy::{SecretSlice, SecretString};
use auth_core::{
    Attempt, Authenticator, Chain, ConfigurationError, ConnectionInfo, Control, Credential,
    CredentialError, CredentialKind, CredentialStore, Error, Failure, InfrastructureError, Key,
    Outcome, OutcomeClass, Precondition, Protocol, Session, StandardSession,
};
use auth_oauth::{
    ClientAuth, ClientSecret, GrantError, PasswordGrantAuthenticator, PasswordGrantConfig,
};
use auth_tests::token_endpoint::{Answer, Request, TokenEndpoint as Provider};
use base64::Engine;

const PASSWORD: &str = "alice's password at the provider";
const SECRET: &str = "0123456789abcdef0123456789abcdef-gateway";
const JSON: &str = "application/json";

fn answer(status: u16, content_type: &'static str, body: &str) -> Answer {
    Answer::new(status, content_type, body)
}

/// The in-process token endpoint, answering a server error until told otherwise.
fn provider() -> Provider {
    Provider::start(answer(500, JSON, r#"{"error":"server_error"}"#)).unwrap()
}

fn config(provider: &Provider, auth: ClientAuth) -> PasswordGrantConfig {
    PasswordGrantConfig {
        http: common::run_ca_client(),
        timeout: Duration::from_secs(5),
        ..PasswordGrantConfig::new(provider.token_endpoint(), "gateway", auth)
    }
}

fn fixed_secret() -> ClientAuth {
    ClientAuth::SecretBasic(ClientSecret::new(SecretString::from(SECRET.to_owned())).unwrap())
}

fn attempt() -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.1:1".parse().unwrap()),
        Credential::password("alice", PASSWORD),
    )
}

/// How the gateway must take an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The provider refused the user: rejected, a wrong credential.
    Refused,
    /// The provider is down or overloaded: unavailable.
    Outage,
    /// The provider refused us as its client: unavailable, a configuration error.
    Ours,
}

/// Every answer, what it must be judged, and a piece of the provider's answer the audit
/// detail must show.
fn cases() -> Vec<(&'static str, Answer, Verdict, &'static str)> {
    use Verdict::{Ours, Outage, Refused};
    vec![
        (
            "access_denied (400)",
            answer(
                400,
                JSON,
                r#"{"error":"access_denied","error_description":"the user is blocked"}"#,
            ),
            Refused,
            "access_denied: the user is blocked",
        ),
        (
            "mfa_required (400)",
            answer(400, JSON, r#"{"error":"mfa_required"}"#),
            Refused,
            "mfa_required",
        ),
        (
            "mfa_required (403)",
            answer(403, JSON, r#"{"error":"mfa_required"}"#),
            Refused,
            "mfa_required",
        ),
        (
            "an HTML 403",
            answer(
                403,
                "text/html",
                "<html><body><h1>403 Forbidden</h1></body></html>",
            ),
            Refused,
            "HTTP 403",
        ),
        ("an empty 401", answer(401, "", ""), Refused, "HTTP 401"),
        (
            "invalid_grant (400)",
            answer(400, JSON, r#"{"error":"invalid_grant"}"#),
            Refused,
            "invalid_grant",
        ),
        ("an empty 429", answer(429, "", ""), Outage, "HTTP 429"),
        (
            "a JSON 429",
            answer(429, JSON, r#"{"error":"slow_down"}"#),
            Outage,
            "HTTP 429: slow_down",
        ),
        (
            "a 429 saying access_denied",
            answer(429, JSON, r#"{"error":"access_denied"}"#),
            Outage,
            "HTTP 429: access_denied",
        ),
        (
            "an HTML 503",
            answer(503, "text/html", "<html>Service Unavailable</html>"),
            Outage,
            "HTTP 503",
        ),
        (
            "a 503 saying access_denied",
            answer(503, JSON, r#"{"error":"access_denied"}"#),
            Outage,
            "HTTP 503: access_denied",
        ),
        (
            "server_error (500)",
            answer(500, JSON, r#"{"error":"server_error"}"#),
            Outage,
            "HTTP 500: server_error",
        ),
        (
            "temporarily_unavailable (400)",
            answer(400, JSON, r#"{"error":"temporarily_unavailable"}"#),
            Outage,
            "temporarily_unavailable",
        ),
        (
            "server_error (400)",
            answer(400, JSON, r#"{"error":"server_error"}"#),
            Outage,
            "server_error",
        ),
        (
            "a 200 with garbage JSON",
            answer(200, JSON, r#"{"access_token": "#),
            Outage,
            "unreadable answer",
        ),
        (
            "a 200 with an HTML page",
            answer(200, "text/html", "<html>welcome</html>"),
            Outage,
            "Content-Type",
        ),
        (
            "invalid_client (401)",
            answer(
                401,
                JSON,
                r#"{"error":"invalid_client","error_description":"unknown client"}"#,
            ),
            Ours,
            "invalid_client: unknown client",
        ),
        (
            "unauthorized_client (400)",
            answer(400, JSON, r#"{"error":"unauthorized_client"}"#),
            Ours,
            "unauthorized_client",
        ),
    ]
}

/// Whether `out` is what `verdict` says, with `shown` in the audit detail.
fn check(what: &str, out: &Outcome, verdict: Verdict, shown: &str) {
    let (class, error) = match verdict {
        Verdict::Refused => (
            OutcomeClass::Rejected,
            Error::Credential(CredentialError::Invalid),
        ),
        Verdict::Outage => (
            OutcomeClass::Unavailable,
            Error::Infrastructure(InfrastructureError::Unavailable),
        ),
        Verdict::Ours => (
            OutcomeClass::Unavailable,
            Error::Configuration(ConfigurationError::Invalid),
        ),
    };
    assert_eq!(out.class(), class, "{what}: {out:?}");
    let failure = out.failure().unwrap();
    assert_eq!(failure.error, error, "{what}: {out:?}");
    assert!(
        failure.detail.contains(shown),
        "{what}: the detail shows `{shown}`: {out:?}"
    );
    assert!(!failure.detail.contains(PASSWORD), "{what}: {out:?}");
    assert!(!failure.detail.contains(SECRET), "{what}: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_answer_of_the_token_endpoint_is_judged_as_the_provider_meant_it() {
    let provider = provider();
    let grant = PasswordGrantAuthenticator::new(config(&provider, fixed_secret())).unwrap();
    for (what, a, verdict, shown) in cases() {
        provider.answer(a);
        let before = provider.requests().len();
        let out = grant.authenticate(&mut attempt()).await;
        check(what, &out, verdict, shown);
        // One request each: a fixed secret is not re-read, and nothing else is retried.
        let requests = provider.requests();
        assert_eq!(requests.len(), before + 1, "{what}");
        let sent = requests.last().unwrap();
        assert!(sent.head.starts_with("POST /token "), "{what}: {sent:?}");
        assert!(
            sent.body.contains("grant_type=password") && sent.body.contains("username=alice"),
            "{what}: {sent:?}"
        );
    }
    // With an answer carrying tokens, the same authenticator logs alice in: what came
    // before was the provider's answers, not a broken client.
    provider.answer(answer(
        200,
        JSON,
        r#"{"access_token":"at-1","token_type":"Bearer","expires_in":3600}"#,
    ));
    let out = grant.authenticate(&mut attempt()).await;
    assert_eq!(out.session().map(Session::user), Some("alice"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_falls_back_and_a_refusal_never_does() {
    /// The gateway's own copy of the password: lets everyone in, and counts its calls.
    #[derive(Debug, Default)]
    struct LocalCopy {
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Authenticator for LocalCopy {
        fn name(&self) -> &str {
            "local-copy"
        }
        fn accepts(&self) -> &[CredentialKind] {
            &[CredentialKind::Password]
        }
        async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match &attempt.credential {
                Credential::Password { user, .. } => Outcome::Authenticated(Box::new(
                    StandardSession::new(user.clone(), "local-copy", SystemTime::now()),
                )),
                _ => Outcome::NotApplicable,
            }
        }
    }

    let provider = provider();
    let grant = PasswordGrantAuthenticator::new(config(&provider, fixed_secret())).unwrap();
    let local = Arc::new(LocalCopy::default());
    // As the gateway builds `fallback = "scram"`.
    let chain = Chain::builder()
        .link_with(
            Arc::new(grant),
            Control::CONCLUSIVE.fallback_on_unavailable(),
        )
        .link(local.clone())
        .build();
    for (what, a, verdict, _) in cases() {
        provider.answer(a);
        let calls = local.calls.load(Ordering::SeqCst);
        let out = chain.authenticate(&mut attempt()).await;
        match verdict {
            Verdict::Refused => {
                assert_eq!(out.class(), OutcomeClass::Rejected, "{what}: {out:?}");
                assert_eq!(
                    out.failure().unwrap().error,
                    Error::Credential(CredentialError::Invalid),
                    "{what}"
                );
                assert_eq!(
                    local.calls.load(Ordering::SeqCst),
                    calls,
                    "{what}: no fallback"
                );
            }
            Verdict::Outage | Verdict::Ours => {
                assert_eq!(
                    out.session().map(Session::method),
                    Some("local-copy"),
                    "{what}: {out:?}"
                );
                assert_eq!(local.calls.load(Ordering::SeqCst), calls + 1, "{what}");
            }
        }
    }
}

async fn put(store: &dyn CredentialStore, key: &str, value: &str) {
    store
        .put(
            &Key::new(key).unwrap(),
            SecretSlice::from(value.as_bytes().to_vec()),
            Precondition::None,
        )
        .await
        .unwrap();
}

/// The client secret in a `Basic` authorization header.
fn basic_secret(request: &Request) -> String {
    let header = request.header("authorization").unwrap();
    let encoded = header.strip_prefix("Basic ").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let text = String::from_utf8(decoded).unwrap();
    text.split_once(':').unwrap().1.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_client_is_tried_once_more_with_a_rotated_secret_then_is_configuration() {
    let provider = provider();
    let wallet: Arc<dyn CredentialStore> = Arc::new(auth_wallet::Wallet::new(
        Arc::new(auth_core::MemoryStore::new()),
        auth_wallet::MasterKey::generate().unwrap(),
    ));
    let key = auth_wallet::OAUTH_CLIENT_SECRET_KEY;
    put(wallet.as_ref(), key, SECRET).await;
    let stored = ClientSecret::from_store(
        wallet.clone(),
        key,
        Duration::from_secs(3600),
        auth_core::clock::system_clock(),
    )
    .await
    .unwrap();
    let grant = PasswordGrantAuthenticator::new(config(&provider, ClientAuth::SecretBasic(stored)))
        .unwrap();
    // The operator rotated the secret in the wallet, but the provider does not know it
    // either: the second refusal is final, and it is our configuration.
    let rotated = "fedcba9876543210fedcba9876543210-rotated";
    put(wallet.as_ref(), key, rotated).await;
    provider.answer(answer(401, JSON, r#"{"error":"invalid_client"}"#));
    let out = grant.authenticate(&mut attempt()).await;
    check(
        "invalid_client twice",
        &out,
        Verdict::Ours,
        "invalid_client",
    );
    let requests = provider.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(basic_secret(&requests[0]), SECRET);
    assert_eq!(basic_secret(&requests[1]), rotated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_ends_the_session_on_a_refusal_and_waits_out_an_outage_or_our_client() {
    let provider = provider();
    let grant = PasswordGrantAuthenticator::new(config(&provider, fixed_secret())).unwrap();
    provider.answer(answer(
        200,
        JSON,
        r#"{"access_token":"at-1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-1"}"#,
    ));
    let mut session = grant
        .login("alice", &SecretString::from(PASSWORD.to_owned()))
        .await
        .unwrap();
    let alive = |session: &auth_oauth::OAuthSession| {
        session.expires().unwrap() > SystemTime::now() + Duration::from_secs(600)
    };
    assert!(alive(&session));

    // Overloaded: an outage, the session keeps its tokens.
    provider.answer(answer(429, "", ""));
    let err = session.refresh().await.unwrap_err();
    assert!(
        matches!(&err, GrantError::Unavailable { operation: "refresh", why } if why.contains("HTTP 429")),
        "{err:?}"
    );
    assert_eq!(
        Failure::from(err).error,
        Error::Infrastructure(InfrastructureError::Unavailable)
    );
    assert!(alive(&session));

    // Our client refused: configuration, and the session keeps its tokens.
    provider.answer(answer(401, JSON, r#"{"error":"invalid_client"}"#));
    let err = session.refresh().await.unwrap_err();
    assert!(
        matches!(&err, GrantError::Misconfigured { operation: "refresh", why } if why.contains("invalid_client")),
        "{err:?}"
    );
    assert_eq!(
        Failure::from(err).error,
        Error::Configuration(ConfigurationError::Invalid)
    );
    assert!(alive(&session));

    // The provider refuses the user now (a proxy's HTML 403): the session is over, and
    // its refresh token is not offered again.
    provider.answer(answer(403, "text/html", "<html>Forbidden</html>"));
    let err = session.refresh().await.unwrap_err();
    assert!(
        matches!(&err, GrantError::Refused { operation: "refresh", why } if why.contains("HTTP 403")),
        "{err:?}"
    );
    assert_eq!(
        Failure::from(err).error,
        Error::Credential(CredentialError::Expired)
    );
    assert!(session.expires().unwrap() <= SystemTime::now());
    let requests = provider.requests().len();
    assert_eq!(
        session.refresh().await.unwrap_err(),
        GrantError::NoRefreshToken
    );
    assert_eq!(provider.requests().len(), requests);
}
