//! The HTTP mapping through `tower::ServiceExt::oneshot`, with a real JWT authenticator:
//! challenges, status codes, RFC 6750 error codes, problem+json bodies, the session in
//! handlers, scopes, anonymous routes, and an unavailable issuer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use auth_axum::{AuthLayer, Authenticated, Challenge};
use auth_core::policy::{Rule, Target};
use auth_core::{Chain, Engine, MemoryAuditSink, Policy};
use auth_oauth::{FetchSettings, IssuerConfig, JwtAuthenticator, ValidationSettings};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use common::{local_issuer, token};
use tower::ServiceExt;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";
const ISS: &str = "https://issuer.test";
const DOWN: &str = "https://down.test";

fn policy() -> Policy {
    let local = local_issuer(ISS, SECRET);
    // An issuer whose keys live on a port nobody listens on.
    let down = IssuerConfig {
        fetch: FetchSettings {
            timeout: Duration::from_millis(500),
            ..FetchSettings::default()
        },
        ..IssuerConfig::jwks(DOWN, "http://127.0.0.1:9/jwks", "api")
    };
    let jwt = JwtAuthenticator::new(
        vec![local, down],
        ValidationSettings {
            // The tests' issuer is our own: its `preferred_username` names the user.
            username_claim: Some("preferred_username".into()),
            ..ValidationSettings::default()
        },
    )
    .unwrap();
    let chain = Chain::builder().link(Arc::new(jwt)).build();
    Policy::new(vec![Rule::new("all", Target::Chain(Arc::new(chain)))]).unwrap()
}

/// The layer over [`policy`], on an engine with default settings but for the transport:
/// these requests carry no TLS facts, and the mapping is the subject here.
fn layer() -> AuthLayer {
    AuthLayer::new(Arc::new(plaintext(Engine::builder(policy())).build()))
}

fn plaintext(builder: auth_core::engine::EngineBuilder) -> auth_core::engine::EngineBuilder {
    builder.dangerous().allow_cleartext_without_tls()
}

async fn whoami(auth: Authenticated) -> String {
    format!("{} as {}", auth.principal(), auth.user())
}

async fn admin(auth: Authenticated) -> Result<&'static str, auth_axum::AuthRejection> {
    auth.require_scope("admin")?;
    Ok("admin")
}

async fn maybe(auth: Option<Authenticated>) -> String {
    auth.map_or("anonymous".into(), |a| a.user().to_owned())
}

fn app(layer: AuthLayer) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/admin", get(admin))
        .route("/maybe", get(maybe))
        .layer(layer)
}

async fn call(app: &Router, path: &str, headers: &[(&str, &str)]) -> Response<Body> {
    let mut request = Request::get(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    app.clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn body(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn challenges(response: &Response<Body>) -> Vec<String> {
    response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn statuses_challenges_and_bodies() {
    let app = app(layer().realm("demo"));

    // Nothing presented: a bare challenge (RFC 6750 3.1: no error code).
    let r = call(&app, "/whoami", &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenges(&r), ["Bearer realm=\"demo\""]);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(&body(r).await).unwrap();
    assert_eq!(problem["status"], 401);
    assert_eq!(problem["detail"], "authentication is required");

    // A valid token: the handler sees the session.
    let good = format!("Bearer {}", token(ISS, "read", SECRET));
    let r = call(&app, "/whoami", &[("authorization", &good)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await, "user-1 as alice");

    // Forged, foreign issuer, expired-looking garbage: invalid_token, generic detail.
    for bad in [
        format!(
            "Bearer {}",
            token(ISS, "read", b"another-secret-another-secret-xx")
        ),
        format!("Bearer {}", token("https://evil.test", "read", SECRET)),
    ] {
        let r = call(&app, "/whoami", &[("authorization", &bad)]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenges(&r),
            ["Bearer realm=\"demo\", error=\"invalid_token\""]
        );
        let text = body(r).await;
        assert!(text.contains("the credentials were not accepted"), "{text}");
        assert!(
            !text.contains("issuer") && !text.contains("signature"),
            "{text}"
        );
    }

    // A header that cannot be read: 400 invalid_request.
    let r = call(&app, "/whoami", &[("authorization", "Bearer a b")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        challenges(&r),
        ["Bearer realm=\"demo\", error=\"invalid_request\""]
    );

    // Authenticated but without the scope: 403 insufficient_scope naming it.
    let r = call(&app, "/admin", &[("authorization", &good)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenges(&r),
        ["Bearer realm=\"demo\", error=\"insufficient_scope\", scope=\"admin\""]
    );
    let admin_token = format!("Bearer {}", token(ISS, "read admin", SECRET));
    let r = call(&app, "/admin", &[("authorization", &admin_token)]).await;
    assert_eq!(r.status(), StatusCode::OK);

    // The issuer's keys cannot be fetched: 503, no challenge.
    let down = format!("Bearer {}", token(DOWN, "read", SECRET));
    let r = call(&app, "/whoami", &[("authorization", &down)]).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(challenges(&r).is_empty());
}

#[tokio::test]
async fn anonymous_routes_and_explicit_challenges() {
    let app = app(layer().allow_anonymous());
    assert_eq!(body(call(&app, "/maybe", &[]).await).await, "anonymous");
    let good = format!("Bearer {}", token(ISS, "read", SECRET));
    assert_eq!(
        body(call(&app, "/maybe", &[("authorization", &good)]).await).await,
        "alice"
    );
    // A credential that is present must still be valid, and a scheme nothing here
    // understands is not the absence of a credential.
    for presented in ["Bearer not-a-jwt", "Digest username=\"alice\""] {
        let r = call(&app, "/maybe", &[("authorization", presented)]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{presented}");
        assert_eq!(challenges(&r).len(), 1, "{presented}");
    }
    // A handler that needs an identity refuses the anonymous request itself.
    let r = call(&app, "/whoami", &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let app =
        self::app(layer().challenges([Challenge::Bearer, Challenge::Basic, Challenge::Negotiate]));
    let r = call(&app, "/whoami", &[]).await;
    assert_eq!(
        challenges(&r),
        [
            "Bearer realm=\"api\"",
            "Basic realm=\"api\", charset=\"UTF-8\"",
            "Negotiate"
        ]
    );
    // A 403 says why in Bearer's terms only; Basic and Negotiate would not help.
    let good = format!("Bearer {}", token(ISS, "read", SECRET));
    let r = call(&app, "/admin", &[("authorization", &good)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenges(&r),
        ["Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"admin\""]
    );
}

#[tokio::test]
async fn malformed_headers_are_audited_without_secrets() {
    let audit = Arc::new(MemoryAuditSink::default());
    let engine = plaintext(Engine::builder(policy()))
        .audit(audit.clone())
        .build();
    let app = app(AuthLayer::new(Arc::new(engine)));
    let r = call(&app, "/whoami", &[("authorization", "Basic !!!secret!!!")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let events = audit.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let line = format!("{events:?}");
    assert!(line.contains("malformed"), "{line}");
    assert!(!line.contains("secret"), "{line}");
}

#[tokio::test]
async fn hostssl_rules_see_the_tls_info_a_tls_acceptor_inserts() {
    use auth_core::policy::ConnectionType;
    let chain = match &policy().rules()[0].target {
        Target::Chain(c) => c.clone(),
        Target::Reject => unreachable!(),
    };
    // Only encrypted TCP connections; the peer must be TCP, as ConnectInfo gives it.
    let tls_only = Policy::new(vec![
        Rule::new("https", Target::Chain(chain)).with_connection(ConnectionType::HostSsl),
    ])
    .unwrap();
    let app = app(AuthLayer::new(Arc::new(Engine::builder(tls_only).build())));
    let good = format!("Bearer {}", token(ISS, "read", SECRET));
    let request = |tls: bool| {
        let mut r = Request::get("/whoami")
            .header("authorization", &good)
            .body(Body::empty())
            .unwrap();
        r.extensions_mut().insert(axum::extract::ConnectInfo(
            "127.0.0.1:40000".parse::<std::net::SocketAddr>().unwrap(),
        ));
        if tls {
            r.extensions_mut().insert(auth_core::TlsInfo {
                version: Some("TLSv1.3".into()),
                ..auth_core::TlsInfo::default()
            });
        }
        r
    };
    let plain = app.clone().oneshot(request(false)).await.unwrap();
    assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
    let encrypted = app.clone().oneshot(request(true)).await.unwrap();
    assert_eq!(encrypted.status(), StatusCode::OK);
}

/// A bearer token is a secret anyone on the path can replay: without TLS the engine does
/// not offer it, on a rule for every connection too, unless its one opt-in says so.
#[tokio::test]
async fn bearer_tokens_need_tls_unless_the_engine_opts_in() {
    let audit = Arc::new(MemoryAuditSink::default());
    let strict = app(AuthLayer::new(Arc::new(
        Engine::builder(policy()).audit(audit.clone()).build(),
    )));
    let good = format!("Bearer {}", token(ISS, "read", SECRET));
    let request = |tls: bool| {
        let mut r = Request::get("/whoami")
            .header("authorization", &good)
            .body(Body::empty())
            .unwrap();
        r.extensions_mut().insert(axum::extract::ConnectInfo(
            "192.0.2.8:40000".parse::<std::net::SocketAddr>().unwrap(),
        ));
        if tls {
            r.extensions_mut().insert(auth_core::TlsInfo::default());
        }
        r
    };
    let plain = strict.clone().oneshot(request(false)).await.unwrap();
    assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
    let refused = audit.events();
    let last = refused.last().unwrap();
    assert_eq!(last["event"], "attempt_failed");
    assert_eq!(last["rule"], "all");
    assert!(
        last["detail"].as_str().unwrap().contains("not encrypted"),
        "{last}"
    );
    let encrypted = strict.oneshot(request(true)).await.unwrap();
    assert_eq!(encrypted.status(), StatusCode::OK);
    let opted_in = app(layer()).oneshot(request(false)).await.unwrap();
    assert_eq!(opted_in.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_challenges_follow_a_replaced_policy() {
    let engine = Arc::new(plaintext(Engine::builder(policy())).build());
    let app = app(AuthLayer::new(engine.clone()).realm("demo"));
    let r = call(&app, "/whoami", &[]).await;
    assert_eq!(challenges(&r), ["Bearer realm=\"demo\""]);

    // A reload that adds passwords for bob: its 401s now offer Basic too.
    let users = auth_password::Users::new(Arc::new(auth_core::MemoryStore::new()));
    let hasher = auth_password::Hasher::new(auth_password::Argon2Settings::default()).unwrap();
    let basic = Chain::builder()
        .link(Arc::new(auth_password::PasswordAuthenticator::new(
            users, hasher,
        )))
        .build();
    let jwt = policy().rules()[0].clone();
    engine.replace_policy(
        Policy::new(vec![
            Rule::new("bob", Target::Chain(Arc::new(basic)))
                .with_users(auth_core::policy::NameMatch::Names(vec!["bob".into()])),
            jwt,
        ])
        .unwrap(),
    );
    let r = call(&app, "/whoami", &[]).await;
    assert_eq!(
        challenges(&r),
        [
            "Bearer realm=\"demo\"",
            "Basic realm=\"demo\", charset=\"UTF-8\""
        ]
    );
}
