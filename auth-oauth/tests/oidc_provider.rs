//! Against a real OpenID provider (node oidc-provider): RFC 9068 access tokens from its
//! client_credentials grant validate through discovery; a restarted provider with a new
//! signing key is picked up with one refetch; tokens for another resource are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use auth_core::secrecy::SecretString;
use auth_core::{
    Attempt, Authenticator, ConnectionInfo, Credential, CredentialError, Error, Protocol,
};
use auth_oauth::{
    ClientAuth, ClientSecret, FetchSettings, IssuerConfig, JwtAuthenticator, ValidationSettings,
};
use auth_tests::oidc::OidcProvider;

fn attempt(token: &str) -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Http, "10.0.0.1:1".parse().unwrap()),
        Credential::bearer(token),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9068_tokens_from_oidc_provider_validate_and_rotation_costs_one_refetch() {
    let mut provider =
        tokio::task::spawn_blocking(|| OidcProvider::start().unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap();
    let issuer = provider.issuer();
    let config = IssuerConfig {
        require_at_jwt: true,
        fetch: FetchSettings {
            refetch_interval: Duration::from_secs(30),
            http: common::run_ca_client(),
            ..FetchSettings::default()
        },
        ..IssuerConfig::discovery(issuer.clone(), "urn:api")
    };
    let auth = JwtAuthenticator::new(vec![config], ValidationSettings::default()).unwrap();

    let token = provider.token("urn:api", "read kms:encrypt").unwrap();
    let out = auth.authenticate(&mut attempt(&token)).await;
    let s = out.session().unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(s.principal(), "svc");
    assert_eq!(s.scopes(), ["read", "kms:encrypt"]);
    let fetches = auth.key_fetches(&issuer);
    assert_eq!(fetches, 1, "one key download (discovery, then JWKS)");

    // An opaque token is not a JWT.
    let opaque = provider.token("urn:opaque", "read").unwrap();
    assert_eq!(
        auth.authenticate(&mut attempt(&opaque))
            .await
            .failure()
            .unwrap()
            .error,
        Error::Credential(CredentialError::Malformed)
    );

    // The provider restarts with a new signing key: the new kid is unknown, one refetch.
    tokio::task::block_in_place(|| provider.restart().unwrap());
    let rotated = provider.token("urn:api", "read").unwrap();
    assert!(
        auth.authenticate(&mut attempt(&rotated))
            .await
            .is_authenticated()
    );
    assert_eq!(
        auth.key_fetches(&issuer),
        fetches + 1,
        "exactly one refetch"
    );
    // Old tokens, signed by the retired key, now fail.
    let again = JwtAuthenticator::new(
        vec![IssuerConfig::discovery(issuer.clone(), "urn:api").with_http(common::run_ca_client())],
        ValidationSettings::default(),
    )
    .unwrap();
    assert_eq!(
        again
            .authenticate(&mut attempt(&token))
            .await
            .failure()
            .unwrap()
            .error,
        Error::Credential(CredentialError::BadSignature)
    );
}

fn introspection(
    provider: &OidcProvider,
    recheck: Duration,
) -> auth_oauth::IntrospectionAuthenticator {
    auth_oauth::IntrospectionAuthenticator::new(auth_oauth::IntrospectionConfig {
        audience: Some("urn:opaque".into()),
        recheck,
        ..every_time_config(provider)
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_introspected_and_revocation_is_noticed() {
    let mut provider =
        tokio::task::spawn_blocking(|| OidcProvider::start().unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap();
    let every_time = introspection(&provider, Duration::ZERO);
    let cached = introspection(&provider, Duration::from_secs(3600));
    let clock = auth_core::ManualClock::new(std::time::SystemTime::now());
    let per_minute = introspection(&provider, Duration::from_secs(60))
        .with_clock(std::sync::Arc::new(clock.clone()));
    let token = provider.token("urn:opaque", "read").unwrap();
    for auth in [&every_time, &cached, &per_minute] {
        let out = auth.authenticate(&mut attempt(&token)).await;
        let s = out.session().unwrap_or_else(|| panic!("{out:?}"));
        assert_eq!(
            (s.principal(), s.scopes()),
            ("svc", &["read".to_owned()][..])
        );
    }
    provider.revoke(&token).unwrap();
    let out = every_time.authenticate(&mut attempt(&token)).await;
    assert_eq!(
        out.failure().unwrap().error,
        Error::Credential(CredentialError::Invalid),
        "revocation noticed at once"
    );
    assert!(
        cached
            .authenticate(&mut attempt(&token))
            .await
            .is_authenticated(),
        "with an hourly re-check the cached answer stands until then"
    );
    assert!(
        per_minute
            .authenticate(&mut attempt(&token))
            .await
            .is_authenticated()
    );
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        per_minute
            .authenticate(&mut attempt(&token))
            .await
            .failure()
            .unwrap()
            .error,
        Error::Credential(CredentialError::Invalid),
        "the re-check after the interval (on the injected clock) notices the revocation"
    );
    assert_eq!(
        every_time
            .authenticate(&mut attempt("never-issued"))
            .await
            .failure()
            .unwrap()
            .error,
        Error::Credential(CredentialError::Invalid)
    );

    // The provider goes away: unavailable within the timeout.
    tokio::task::block_in_place(|| provider.stop());
    let started = std::time::Instant::now();
    let out = every_time.authenticate(&mut attempt(&token)).await;
    assert_eq!(out.class(), auth_core::OutcomeClass::Unavailable, "{out:?}");
    assert!(started.elapsed() < Duration::from_millis(600));

    // Short secrets are refused at construction, and the secret never shows in Debug.
    let err = auth_oauth::ClientSecret::new(SecretString::from("short".to_owned())).unwrap_err();
    assert!(err.to_string().contains("shorter than 32"));
    assert!(!format!("{every_time:?}").contains(auth_tests::oidc::CLIENT_SECRET));
}

fn every_time_config(provider: &OidcProvider) -> auth_oauth::IntrospectionConfig {
    auth_oauth::IntrospectionConfig {
        issuer: Some(provider.issuer()),
        http: common::run_ca_client(),
        timeout: Duration::from_millis(500),
        cache_max: Duration::from_secs(60),
        recheck: Duration::ZERO,
        client_id_as_user: true,
        ..auth_oauth::IntrospectionConfig::new(
            format!("{}/token/introspection", provider.issuer()),
            "svc",
            basic_secret(),
        )
    }
}

/// Client `svc`'s secret, sent in HTTP Basic.
fn basic_secret() -> ClientAuth {
    ClientAuth::SecretBasic(
        ClientSecret::new(SecretString::from(
            auth_tests::oidc::CLIENT_SECRET.to_owned(),
        ))
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_tokens_are_cached_refreshed_and_valid() {
    let provider =
        tokio::task::spawn_blocking(|| OidcProvider::start().unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap();
    let config = |refresh_before: Duration| auth_oauth::ClientCredentialsConfig {
        http: common::run_ca_client(),
        scope: Some("read".into()),
        resource: Some("urn:api".into()),
        refresh_before,
        timeout: Duration::from_secs(3),
        ..auth_oauth::ClientCredentialsConfig::new(
            format!("{}/token", provider.issuer()),
            "svc",
            basic_secret(),
        )
    };
    use auth_core::secrecy::ExposeSecret;
    let source = auth_oauth::ClientCredentials::new(config(Duration::from_secs(30))).unwrap();
    let (a, b) = tokio::join!(source.token(), source.token());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.expose_secret(),
        b.expose_secret(),
        "one token for concurrent callers, then cached"
    );
    let auth = common::provider_jwt(&provider.issuer(), common::run_ca_client());
    assert!(
        auth.authenticate(&mut attempt(a.expose_secret()))
            .await
            .is_authenticated()
    );
    // Refreshing earlier than the token's whole lifetime means a new token every time.
    let eager = auth_oauth::ClientCredentials::new(config(Duration::from_secs(3600))).unwrap();
    let first = eager.token().await.unwrap();
    let second = eager.token().await.unwrap();
    assert_ne!(first.expose_secret(), second.expose_secret());
    assert!(!format!("{source:?}").contains(auth_tests::oidc::CLIENT_SECRET));
}

/// The fixture of the authenticator contract for bearer-token authenticators: `valid`
/// is `token`, `wrong` a token the authenticator must refuse for its proof, `unknown` one
/// it cannot verify at all, `foreign` a password.
fn token_fixture(
    valid: String,
    wrong: String,
    unknown: String,
    principal: &str,
) -> auth_core::contract::authenticator::AuthenticatorFixture {
    use std::sync::Arc;
    let bearer = |t: String| -> auth_core::contract::authenticator::AttemptFactory {
        Arc::new(move || attempt(&t))
    };
    auth_core::contract::authenticator::AuthenticatorFixture {
        secrets: vec![valid.clone(), wrong.clone(), unknown.clone()],
        valid: bearer(valid),
        wrong_secret: bearer(wrong),
        unknown_principal: bearer(unknown),
        foreign: Arc::new(|| {
            Attempt::new(
                ConnectionInfo::tcp(Protocol::Http, "10.0.0.1:1".parse().unwrap()),
                Credential::password("svc", "a password"),
            )
        }),
        principal: principal.to_owned(),
    }
}

fn token_caps() -> auth_core::contract::authenticator::AuthenticatorCapabilities {
    auth_core::contract::authenticator::AuthenticatorCapabilities {
        concurrency: 8,
        credential_names_principal: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwt_and_introspection_authenticators_pass_the_authenticator_suite() {
    let provider =
        tokio::task::spawn_blocking(|| OidcProvider::start().unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap();
    let jwt = common::provider_jwt(&provider.issuer(), common::run_ca_client());
    let token = provider.token("urn:api", "read").unwrap();
    // The same token with its signature's last characters changed; and a token from an
    // issuer the authenticator does not trust (another resource's audience).
    let mut forged = token.clone();
    let tail = if forged.ends_with('A') { "B" } else { "A" };
    forged.replace_range(forged.len() - 4.., &tail.repeat(4));
    let elsewhere = common::TestKey::new("elsewhere", jsonwebtoken::Algorithm::ES256)
        .sign(&common::claims("https://elsewhere.example"));
    let fixture = token_fixture(token, forged, elsewhere, "svc");
    auth_core::contract::authenticator::run_all(&jwt, &fixture, &token_caps()).await;

    let introspection = introspection(&provider, Duration::ZERO);
    let opaque = provider.token("urn:opaque", "read").unwrap();
    let made_up = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5".to_owned();
    // A token the provider issued and then revoked; and one it never issued.
    let revoked = provider.token("urn:opaque", "read").unwrap();
    provider.revoke(&revoked).unwrap();
    let fixture = token_fixture(opaque, revoked, made_up, "svc");
    auth_core::contract::authenticator::run_all(&introspection, &fixture, &token_caps()).await;
}
