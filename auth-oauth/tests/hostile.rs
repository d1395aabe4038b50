//! Hostile and broken tokens are all refused with the right error kind; faults at the
//! issuer end within their timeout; cached keys outlive an outage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::{
    Attempt, Authenticator, ConnectionInfo, Credential, CredentialError, Error, OutcomeClass,
    Protocol,
};
use auth_oauth::{FetchSettings, IssuerConfig, JwtAuthenticator, KeySource, ValidationSettings};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use common::{Issuer, Mode, TestKey, claims, now};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn attempt(token: &str) -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Http, "10.0.0.1:1".parse().unwrap()),
        Credential::bearer(token),
    )
}

fn config(issuer: &Issuer) -> IssuerConfig {
    IssuerConfig {
        fetch: FetchSettings {
            timeout: Duration::from_millis(500),
            ..FetchSettings::default()
        },
        ..IssuerConfig::jwks(issuer.url.clone(), format!("{}/jwks", issuer.url), "api")
    }
}

async fn error_of(auth: &JwtAuthenticator, token: &str) -> Error {
    let out = auth.authenticate(&mut attempt(token)).await;
    out.failure()
        .unwrap_or_else(|| panic!("accepted: {out:?}"))
        .error
}

#[tokio::test]
async fn every_algorithm_verifies_and_the_session_carries_the_claims() {
    let keys = [
        TestKey::new("es256", Algorithm::ES256),
        TestKey::new("es384", Algorithm::ES384),
        TestKey::new("ed", Algorithm::EdDSA),
        TestKey::new("rs256", Algorithm::RS256),
    ];
    let issuer = Issuer::start(keys.iter().map(|k| k.jwk.clone()).collect()).await;
    let auth = JwtAuthenticator::new(vec![config(&issuer)], ValidationSettings::default()).unwrap();
    for k in &keys {
        let out = auth
            .authenticate(&mut attempt(&k.sign(&claims(&issuer.url))))
            .await;
        let s = out
            .session()
            .unwrap_or_else(|| panic!("{:?}: {out:?}", k.alg));
        assert_eq!(
            (s.principal(), s.user(), s.method()),
            ("user-123", "user-123", "oauth"),
            "the user is `sub` unless another claim is configured"
        );
        assert_eq!(s.scopes(), ["kms:encrypt", "read"]);
        assert_eq!(s.roles(), [auth_core::Role::Service]);
        assert!(s.expires().is_some());
    }
    assert_eq!(issuer.requests(), 1, "one fetch served every key");

    // `preferred_username` when configured: then a token without it is refused.
    let named = JwtAuthenticator::new(
        vec![config(&issuer)],
        ValidationSettings {
            username_claim: Some("preferred_username".into()),
            ..ValidationSettings::default()
        },
    )
    .unwrap();
    let out = named
        .authenticate(&mut attempt(&keys[0].sign(&claims(&issuer.url))))
        .await;
    assert_eq!(out.session().unwrap().user(), "alice");
    let mut nameless = claims(&issuer.url);
    nameless
        .as_object_mut()
        .unwrap()
        .remove("preferred_username");
    assert_eq!(
        error_of(&named, &keys[0].sign(&nameless)).await,
        Error::Credential(CredentialError::MissingClaim)
    );
}

#[tokio::test]
async fn hostile_tokens_are_refused_with_the_right_error() {
    let good = TestKey::new("k1", Algorithm::ES256);
    let rsa = TestKey::new("rsa", Algorithm::RS256);
    let other = TestKey::new("k1", Algorithm::ES256); // same kid, another issuer's key
    let issuer = Issuer::start(vec![good.jwk.clone(), rsa.jwk.clone()]).await;
    let second = Issuer::start(vec![other.jwk.clone()]).await;
    let trap = Issuer::start(vec![other.jwk.clone()]).await;
    let at_jwt = IssuerConfig {
        require_at_jwt: true,
        ..config(&second)
    };
    let auth = JwtAuthenticator::new(vec![config(&issuer), at_jwt], ValidationSettings::default())
        .unwrap();
    let iss = issuer.url.clone();
    let c = claims(&iss);
    assert!(
        auth.authenticate(&mut attempt(&good.sign(&c)))
            .await
            .is_authenticated()
    );

    let enc = |v: &serde_json::Value| B64URL.encode(serde_json::to_vec(v).unwrap());
    // alg none.
    let none = format!("{}.{}.", enc(&json!({"alg": "none", "kid": "k1"})), enc(&c));
    assert_eq!(
        error_of(&auth, &format!("{none}eA")).await,
        Error::Credential(CredentialError::BadSignature)
    );
    // HS256 "signed" with the issuer's RSA public key: the key only verifies RS256.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa".into());
    let confused =
        jsonwebtoken::encode(&h, &c, &EncodingKey::from_secret(&rsa.public_raw)).unwrap();
    assert_eq!(
        error_of(&auth, &confused).await,
        Error::Credential(CredentialError::BadSignature)
    );
    // An unknown algorithm.
    let unknown = format!(
        "{}.{}.{}",
        enc(&json!({"alg": "XS999", "kid": "k1"})),
        enc(&c),
        B64URL.encode("sig")
    );
    assert_eq!(
        error_of(&auth, &unknown).await,
        Error::Credential(CredentialError::BadSignature)
    );
    // An untrusted issuer.
    assert_eq!(
        error_of(&auth, &good.sign(&claims("https://evil.example"))).await,
        Error::Credential(CredentialError::UntrustedIssuer)
    );
    // A trusted issuer's name, signed by another issuer's key (same kid).
    assert_eq!(
        error_of(&auth, &other.sign(&c)).await,
        Error::Credential(CredentialError::BadSignature)
    );
    // Wrong typ where at+jwt is required.
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    h.typ = Some("JWT".into());
    assert_eq!(
        error_of(&auth, &other.sign_with(h.clone(), &claims(&second.url))).await,
        Error::Credential(CredentialError::MissingClaim)
    );
    h.typ = Some("at+jwt".into());
    assert!(
        auth.authenticate(&mut attempt(&other.sign_with(h, &claims(&second.url))))
            .await
            .is_authenticated()
    );
    // Audience missing or foreign; lifetime and time claims.
    let t = now();
    for (patch, expected) in [
        (
            json!({"aud": null}),
            Error::Credential(CredentialError::MissingClaim),
        ),
        (
            json!({"aud": ["other"]}),
            Error::Credential(CredentialError::MissingClaim),
        ),
        (
            json!({"exp": t - 3600}),
            Error::Credential(CredentialError::Expired),
        ),
        (
            json!({"nbf": t + 3600}),
            Error::Credential(CredentialError::Expired),
        ),
        (
            json!({"exp": t + 7 * 24 * 3600}),
            Error::Credential(CredentialError::MissingClaim),
        ),
        (
            json!({"exp": null}),
            Error::Credential(CredentialError::MissingClaim),
        ),
        (
            json!({"sub": null}),
            Error::Credential(CredentialError::MissingClaim),
        ),
        (
            json!({"exp": "tomorrow"}),
            Error::Credential(CredentialError::Malformed),
        ),
    ] {
        let mut claims = c.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        assert_eq!(
            error_of(&auth, &good.sign(&claims)).await,
            expected,
            "{patch}"
        );
    }
    // jku / x5u / jwk headers pointing elsewhere: ignored, nothing fetched from them.
    let before = trap.requests();
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    h.jku = Some(format!("{}/jwks", trap.url));
    h.x5u = Some(format!("{}/jwks", trap.url));
    assert_eq!(
        error_of(&auth, &other.sign_with(h.clone(), &c)).await,
        Error::Credential(CredentialError::BadSignature)
    );
    assert!(
        auth.authenticate(&mut attempt(&good.sign_with(h, &c)))
            .await
            .is_authenticated()
    );
    assert_eq!(
        trap.requests(),
        before,
        "no fetch from a token-supplied URL"
    );
    // crit, truncation, size, encoding, JSON, duplicates.
    let crit = format!(
        "{}.{}.{}",
        enc(&json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]})),
        enc(&c),
        B64URL.encode("s")
    );
    let signed = good.sign(&c);
    let dup_claims = format!(
        "{}.{}.{}",
        enc(&json!({"alg": "ES256", "kid": "k1"})),
        B64URL.encode(format!(r#"{{"iss":"{iss}","sub":"a","sub":"b"}}"#)),
        B64URL.encode("s")
    );
    for bad in [
        crit,
        signed[..signed.len() / 2].to_owned(),
        format!("{signed}.extra"),
        "x".repeat(17 * 1024),
        format!("!!!.{}.sig", enc(&c)),
        format!("{}.{}.sig", B64URL.encode("not json"), enc(&c)),
        dup_claims,
    ] {
        assert_eq!(
            error_of(&auth, &bad).await,
            Error::Credential(CredentialError::Malformed),
            "{bad:.50}"
        );
    }
}

#[tokio::test]
async fn unknown_kids_cause_one_refetch_however_many_tokens() {
    let good = TestKey::new("k1", Algorithm::ES256);
    let issuer = Issuer::start(vec![good.jwk.clone()]).await;
    let auth = Arc::new(
        JwtAuthenticator::new(vec![config(&issuer)], ValidationSettings::default()).unwrap(),
    );
    assert!(
        auth.authenticate(&mut attempt(&good.sign(&claims(&issuer.url))))
            .await
            .is_authenticated()
    );
    assert_eq!(issuer.requests(), 1);
    let tokens: Vec<String> = (0..100)
        .map(|i| {
            TestKey::new(&format!("attacker-{i}"), Algorithm::ES256).sign(&claims(&issuer.url))
        })
        .collect();
    let results = futures_join(auth.clone(), tokens).await;
    assert!(
        results
            .iter()
            .all(|e| *e == Some(Error::Credential(CredentialError::BadSignature)))
    );
    assert_eq!(
        issuer.requests(),
        2,
        "exactly one refetch for 100 unknown kids"
    );

    // A rotated key is picked up by that refetch path once the interval allows.
    let rotated = TestKey::new("k2", Algorithm::ES256);
    issuer.keys.lock().unwrap().push(rotated.jwk.clone());
    let fast = JwtAuthenticator::new(
        vec![IssuerConfig {
            fetch: FetchSettings {
                refetch_interval: Duration::ZERO,
                ..FetchSettings::default()
            },
            ..config(&issuer)
        }],
        ValidationSettings::default(),
    )
    .unwrap();
    assert!(
        fast.authenticate(&mut attempt(&rotated.sign(&claims(&issuer.url))))
            .await
            .is_authenticated()
    );
}

async fn futures_join(auth: Arc<JwtAuthenticator>, tokens: Vec<String>) -> Vec<Option<Error>> {
    let handles: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let auth = auth.clone();
            tokio::spawn(async move {
                auth.authenticate(&mut attempt(&t))
                    .await
                    .failure()
                    .map(|f| f.error)
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_end_within_the_timeout_and_cached_keys_keep_working() {
    let good = TestKey::new("k1", Algorithm::ES256);
    let limit = Duration::from_millis(500) + Duration::from_millis(100);
    for mode in [Mode::Slow, Mode::Garbage] {
        let issuer = Issuer::start(vec![good.jwk.clone()]).await;
        issuer.set_mode(mode);
        let auth =
            JwtAuthenticator::new(vec![config(&issuer)], ValidationSettings::default()).unwrap();
        let started = Instant::now();
        let out = auth
            .authenticate(&mut attempt(&good.sign(&claims(&issuer.url))))
            .await;
        assert_eq!(out.class(), OutcomeClass::Unavailable, "{out:?}");
        assert!(started.elapsed() < limit, "{:?}", started.elapsed());
    }
    // Keys fetched before the issuer went down keep working, past their TTL too.
    let issuer = Issuer::start(vec![good.jwk.clone()]).await;
    let short_ttl = IssuerConfig {
        fetch: FetchSettings {
            ttl: Duration::ZERO,
            timeout: Duration::from_millis(500),
            ..FetchSettings::default()
        },
        ..config(&issuer)
    };
    let auth = JwtAuthenticator::new(
        vec![short_ttl],
        ValidationSettings {
            cache_capacity: 0,
            ..ValidationSettings::default()
        },
    )
    .unwrap();
    assert!(
        auth.authenticate(&mut attempt(&good.sign(&claims(&issuer.url))))
            .await
            .is_authenticated()
    );
    issuer.stop().await;
    let started = Instant::now();
    let out = auth
        .authenticate(&mut attempt(&good.sign(&claims(&issuer.url))))
        .await;
    assert!(out.is_authenticated(), "stale-if-error: {out:?}");
    assert!(started.elapsed() < limit);
    // A provider that was never reachable: unavailable, quickly.
    let auth = JwtAuthenticator::new(vec![config(&issuer)], ValidationSettings::default()).unwrap();
    let started = Instant::now();
    let out = auth
        .authenticate(&mut attempt(&good.sign(&claims(&issuer.url))))
        .await;
    assert_eq!(out.class(), OutcomeClass::Unavailable);
    assert!(started.elapsed() < limit);
}

#[tokio::test]
async fn discovery_requires_the_exact_issuer() {
    let good = TestKey::new("k1", Algorithm::ES256);
    let issuer = Issuer::start(vec![good.jwk.clone()]).await;
    let auth = JwtAuthenticator::new(
        vec![IssuerConfig {
            keys: KeySource::Discovery,
            ..config(&issuer)
        }],
        ValidationSettings::default(),
    )
    .unwrap();
    assert!(
        auth.authenticate(&mut attempt(&good.sign(&claims(&issuer.url))))
            .await
            .is_authenticated()
    );
    // Configured with a trailing slash, the discovery document's issuer does not match.
    let slash = format!("{}/", issuer.url);
    let auth = JwtAuthenticator::new(
        vec![IssuerConfig {
            issuer: slash.clone(),
            keys: KeySource::Discovery,
            ..config(&issuer)
        }],
        ValidationSettings::default(),
    )
    .unwrap();
    let out = auth
        .authenticate(&mut attempt(&good.sign(&claims(&slash))))
        .await;
    assert_eq!(out.class(), OutcomeClass::Unavailable, "{out:?}");
}

#[tokio::test]
async fn stale_keys_serve_while_one_background_refresh_runs() {
    let good = TestKey::new("k1", Algorithm::ES256);
    let issuer = Issuer::start(vec![good.jwk.clone()]).await;
    let stale_at_once = IssuerConfig {
        fetch: FetchSettings {
            ttl: Duration::ZERO,
            timeout: Duration::from_secs(8),
            ..FetchSettings::default()
        },
        ..config(&issuer)
    };
    let auth = JwtAuthenticator::new(
        vec![stale_at_once],
        ValidationSettings {
            cache_capacity: 0,
            ..ValidationSettings::default()
        },
    )
    .unwrap();
    let token = good.sign(&claims(&issuer.url));
    assert!(
        auth.authenticate(&mut attempt(&token))
            .await
            .is_authenticated()
    );
    assert_eq!(issuer.requests(), 1);
    // The issuer now takes 10 s to answer: requests must not wait for it (the fetch
    // timeout is 8 s, so a blocking refresh would show).
    issuer.set_mode(Mode::Slow);
    let started = Instant::now();
    for _ in 0..20 {
        assert!(
            auth.authenticate(&mut attempt(&token))
                .await
                .is_authenticated()
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Exactly one refresh reaches the issuer, however many requests saw stale keys.
    let deadline = Instant::now() + Duration::from_secs(5);
    while issuer.requests() < 2 && Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    for _ in 0..20 {
        assert!(
            auth.authenticate(&mut attempt(&token))
                .await
                .is_authenticated()
        );
    }
    assert_eq!(issuer.requests(), 2);
    assert_eq!(auth.key_fetches(&issuer.url), 2);
}

#[tokio::test]
async fn a_maximum_lifetime_requires_iat() {
    let good = TestKey::new("k1", Algorithm::ES256);
    let issuer = Issuer::start(vec![good.jwk.clone()]).await;
    let mut no_iat = claims(&issuer.url);
    no_iat.as_object_mut().unwrap().remove("iat");
    let token = good.sign(&no_iat);
    let bounded =
        JwtAuthenticator::new(vec![config(&issuer)], ValidationSettings::default()).unwrap();
    assert_eq!(
        error_of(&bounded, &token).await,
        Error::Credential(CredentialError::MissingClaim)
    );
    let unbounded = JwtAuthenticator::new(
        vec![config(&issuer)],
        ValidationSettings {
            max_lifetime: None,
            ..ValidationSettings::default()
        },
    )
    .unwrap();
    assert!(
        unbounded
            .authenticate(&mut attempt(&token))
            .await
            .is_authenticated()
    );
}

/// Serves `doc` at `path` and the JWKS `keys` at `/jwks` on loopback; the base URL.
async fn serve_document(
    path: &'static str,
    doc: serde_json::Value,
    keys: Vec<serde_json::Value>,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let doc =
        serde_json::from_str::<serde_json::Value>(&doc.to_string().replace("BASE", &base)).unwrap();
    let app = axum::Router::new()
        .route(
            path,
            axum::routing::get(move || async move { axum::Json(doc) }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || async move { axum::Json(json!({ "keys": keys })) }),
        );
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, handle)
}

#[tokio::test]
async fn rfc8414_discovery_when_there_is_no_openid_configuration() {
    let good = TestKey::new("k1", Algorithm::ES256);
    // An authorization server whose issuer has a path: the RFC 8414 document lives at
    // /.well-known/oauth-authorization-server/tenant (and no OpenID document exists).
    let (base, server) = serve_document(
        "/.well-known/oauth-authorization-server/tenant",
        json!({"issuer": "BASE/tenant", "jwks_uri": "BASE/jwks", "token_endpoint": "BASE/token"}),
        vec![good.jwk.clone()],
    )
    .await;
    let iss = format!("{base}/tenant");
    let auth = JwtAuthenticator::new(
        vec![IssuerConfig::discovery(iss.clone(), "api")],
        ValidationSettings::default(),
    )
    .unwrap();
    let out = auth
        .authenticate(&mut attempt(&good.sign(&claims(&iss))))
        .await;
    assert!(out.is_authenticated(), "{out:?}");
    server.abort();
}

#[tokio::test]
async fn a_plain_http_jwks_uri_off_loopback_from_discovery_is_refused() {
    let good = TestKey::new("k1", Algorithm::ES256);
    let (base, server) = serve_document(
        "/.well-known/openid-configuration",
        json!({"issuer": "BASE", "jwks_uri": "http://jwks.example.com/keys"}),
        vec![good.jwk.clone()],
    )
    .await;
    let auth = JwtAuthenticator::new(
        vec![IssuerConfig::discovery(base.clone(), "api")],
        ValidationSettings::default(),
    )
    .unwrap();
    let out = auth
        .authenticate(&mut attempt(&good.sign(&claims(&base))))
        .await;
    assert_eq!(out.class(), OutcomeClass::Unavailable, "{out:?}");
    let text = format!("{out:?}");
    assert!(
        text.contains("plain http is allowed only to loopback"),
        "{text}"
    );
    server.abort();
}

#[tokio::test]
async fn stale_keys_stop_serving_after_their_maximum_age() {
    let good = TestKey::new("k1", Algorithm::ES256);
    let issuer = Issuer::start(vec![good.jwk.clone()]).await;
    let clock = auth_core::ManualClock::new(std::time::SystemTime::now());
    let auth = JwtAuthenticator::new(
        vec![IssuerConfig {
            fetch: FetchSettings {
                ttl: Duration::from_secs(300),
                stale_max_age: Duration::from_secs(3600),
                timeout: Duration::from_millis(500),
                ..FetchSettings::default()
            },
            ..config(&issuer)
        }],
        ValidationSettings {
            cache_capacity: 0,
            max_lifetime: None,
            ..ValidationSettings::default()
        },
    )
    .unwrap()
    .with_clock(Arc::new(clock.clone()));
    // Tokens whose own times do not matter here: valid for a day around the test.
    let mut long = claims(&issuer.url);
    long["exp"] = json!(now() + 2 * 86_400);
    let token = good.sign(&long);
    assert!(
        auth.authenticate(&mut attempt(&token))
            .await
            .is_authenticated()
    );
    issuer.stop().await;
    // Past the TTL, within the maximum age: the cached keys still serve.
    clock.advance(Duration::from_secs(1800));
    assert!(
        auth.authenticate(&mut attempt(&token))
            .await
            .is_authenticated()
    );
    // Past the maximum age, with the issuer still down: no key is trusted any more.
    clock.advance(Duration::from_secs(1900));
    let out = auth.authenticate(&mut attempt(&token)).await;
    assert_eq!(out.class(), OutcomeClass::Unavailable, "{out:?}");
    assert!(
        format!("{out:?}").contains("older than the maximum age"),
        "{out:?}"
    );
}

#[tokio::test]
async fn oversized_documents_are_refused_while_they_are_read() {
    let good = TestKey::new("k1", Algorithm::ES256);
    // A JWKS streamed without a length that never ends: reading stops at the 1 MiB cap
    // (an implementation that read everything first would wait forever).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(|| async {
            let chunks =
                futures::stream::repeat_with(|| Ok::<_, std::io::Error>(vec![b' '; 32 * 1024]));
            axum::body::Body::from_stream(chunks)
        }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let auth = JwtAuthenticator::new(
        vec![IssuerConfig::jwks(
            base.clone(),
            format!("{base}/jwks"),
            "api",
        )],
        ValidationSettings::default(),
    )
    .unwrap();
    let out = auth
        .authenticate(&mut attempt(&good.sign(&claims(&base))))
        .await;
    assert_eq!(out.class(), OutcomeClass::Unavailable, "{out:?}");
    assert!(
        format!("{out:?}").contains("answer larger than 1048576 bytes"),
        "{out:?}"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_behind_a_failed_fetch_share_its_error() {
    let good = TestKey::new("k1", Algorithm::ES256);
    let issuer = Issuer::start(vec![good.jwk.clone()]).await;
    issuer.set_mode(Mode::Slow);
    let auth = Arc::new(
        JwtAuthenticator::new(vec![config(&issuer)], ValidationSettings::default()).unwrap(),
    );
    let token = good.sign(&claims(&issuer.url));
    let started = Instant::now();
    let outcomes = futures_join(auth.clone(), vec![token; 8]).await;
    assert!(outcomes.iter().all(Option::is_some), "{outcomes:?}");
    // One fetch reached the issuer and timed out (500 ms); the seven behind it got its
    // error at once instead of a time limit each.
    assert_eq!(issuer.requests(), 1);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}
