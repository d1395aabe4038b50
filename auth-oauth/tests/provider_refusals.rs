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

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const PASSWORD: &str = "alice's password at the provider";
const SECRET: &str = "0123456789abcdef0123456789abcdef-gateway";
const JSON: &str = "application/json";

/// One answer of the token endpoint.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
}

fn answer(status: u16, content_type: &'static str, body: &str) -> Answer {
    Answer {
        status,
        content_type,
        body: body.to_owned(),
    }
}

/// A request the endpoint got: its head (request line and headers) and its body.
#[derive(Debug, Clone)]
struct Request {
    head: String,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// A token endpoint on `https://localhost:<port>/token`, answering every request with
/// the answer set last; one thread per connection, each answer closing its connection.
struct Provider {
    port: u16,
    answer: Arc<Mutex<Answer>>,
    requests: Arc<Mutex<Vec<Request>>>,
    _dir: tempfile::TempDir,
}

impl Provider {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tls = tls_config(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(Mutex::new(answer(500, JSON, r#"{"error":"server_error"}"#)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (a, r) = (answer.clone(), requests.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (tls, a, r) = (tls.clone(), a.clone(), r.clone());
                std::thread::spawn(move || {
                    let _ = serve(tcp, tls, &a, &r);
                });
            }
        });
        Self {
            port,
            answer,
            requests,
            _dir: dir,
        }
    }

    fn token_endpoint(&self) -> String {
        format!("https://localhost:{}/token", self.port)
    }

    fn answer(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// The run CA's certificate for `localhost` and 127.0.0.1, as a rustls server config.
fn tls_config(dir: &Path) -> Arc<rustls::ServerConfig> {
    let files = auth_tests::pki::run_ca()
        .unwrap()
        .server_in(dir, "provider")
        .unwrap();
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
    let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(crypto)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    )
}

/// Reads one HTTP/1.1 request on `tcp` over TLS, records it, and writes the current
/// answer.
fn serve(
    tcp: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    answer: &Mutex<Answer>,
    requests: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let server = rustls::ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(server, tcp);
    let mut read = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        read.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&read[..head_end]).into_owned();
    let request = Request {
        head,
        body: String::new(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while read.len() < head_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        read.extend_from_slice(&chunk[..n]);
    }
    let end = read.len().min(head_end + length);
    let body = String::from_utf8_lossy(&read[head_end..end]).into_owned();
    requests.lock().unwrap().push(Request { body, ..request });
    let a = answer.lock().unwrap().clone();
    let mut out = format!("HTTP/1.1 {} Answer\r\n", a.status);
    if !a.content_type.is_empty() {
        out.push_str(&format!("Content-Type: {}\r\n", a.content_type));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        a.body.len(),
        a.body
    ));
    stream.write_all(out.as_bytes())?;
    stream.conn.send_close_notify();
    stream.flush()
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
    let provider = Provider::start();
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

    let provider = Provider::start();
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
    let provider = Provider::start();
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
    let provider = Provider::start();
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
